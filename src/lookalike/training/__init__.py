"""Training and evaluation of the copy-detection descriptor.

Submodules are imported explicitly (e.g. ``lookalike.training.metrics``) so that importing this
package stays cheap and does not pull in torch. The training entry points are also reachable
here (``lookalike.training.train``, ``TrainConfig``...): they load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

# Attribute -> submodule; resolved lazily because those submodules import torch.
_LAZY = {
    "TrainConfig": "train",
    "TrainResult": "train",
    "info_nce": "losses",
    "koleo": "losses",
    "sscd_loss": "losses",
}

__all__: list[str] = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
