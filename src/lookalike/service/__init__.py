"""The HTTP service for moderation tools (FastAPI): ``create_app(settings)``.

Loaded lazily, like the top-level package: ``lookalike --help`` imports
``lookalike.service.cli`` and must not pull in FastAPI or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"Settings": "lookalike.service.settings", "create_app": "lookalike.service.app"}

__all__ = ["Settings", "create_app"]

if TYPE_CHECKING:
    from .app import create_app
    from .settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lookalike.service' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
