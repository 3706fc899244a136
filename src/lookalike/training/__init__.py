"""Training and evaluation of the copy-detection descriptor.

Submodules are imported explicitly (e.g. ``lookalike.training.metrics``) so that importing this
package stays cheap and does not pull in torch.
"""

__all__: list[str] = []
