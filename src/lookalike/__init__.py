"""lookalike: find listing photos that reuse authentic catalogue photos or show protected logos.

The public API is loaded lazily so that ``import lookalike`` stays light (no torch, no FAISS)
until one of these names is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "CatalogIndex": "lookalike.index",
    "CatalogItem": "lookalike.index",
    "Detector": "lookalike.detect",
    "Embedder": "lookalike.model",
    "ImageDecodeError": "lookalike.data",
    "Match": "lookalike.detect",
    "Thresholds": "lookalike.detect",
    "Verdict": "lookalike.detect",
    "create_embedder": "lookalike.model",
    "decode_image": "lookalike.data",
    "list_models": "lookalike.model",
    "load_detector": "lookalike.detect",
}

__all__ = [
    "CatalogIndex",
    "CatalogItem",
    "Detector",
    "Embedder",
    "ImageDecodeError",
    "Match",
    "Thresholds",
    "Verdict",
    "__version__",
    "create_embedder",
    "decode_image",
    "list_models",
    "load_detector",
]

if TYPE_CHECKING:
    from .data import ImageDecodeError, decode_image
    from .detect import Detector, Match, Thresholds, Verdict, load_detector
    from .index import CatalogIndex, CatalogItem
    from .model import Embedder, create_embedder, list_models


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
