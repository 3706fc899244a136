"""Logo matching: protected brand logos inside listing photos, with the region as evidence.

Submodules: :mod:`.windows` (torch-free window grid, used by decoding workers),
:mod:`.network` (the region network and its checkpoints), :mod:`.catalog` (logo vectors +
clean renderings), :mod:`.matcher` (search, geometric verification, scores). Import them
directly; this package imports nothing so that decoding workers stay free of torch.
"""
