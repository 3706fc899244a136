"""``create_app(settings)``: the FastAPI application. Nothing is loaded at import or in
``create_app``; the model and index load in the lifespan, so tests and servers decide when."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..model import Embedder
from .errors import install_error_handlers
from .keys import KeyStore
from .limits import BodySizeLimit
from .metrics import ServiceMetrics
from .observability import RequestObserver
from .routes import catalogue, checks, evidence, health, review
from .settings import Settings
from .state import build_state, load_service_detector

log = logging.getLogger("lookalike.service")

DESCRIPTION = """
Checks marketplace listing photos against a brand's catalogue of authentic photos and says
whether a listing reuses one (**copy**), might (**review**) or does not (**clear**), with the
matched catalogue items as evidence.

**Keys.** Every `/v1` call needs an API key (`X-API-Key: lk_...` or `Authorization: Bearer
lk_...`) made with `lookalike keys create`. Role `moderator`: checks, evidence, catalogue
reads. Role `admin`: also adds and removes catalogue items. `/healthz`, `/readyz`, `/metrics`
and the review page are open.

**Errors** always read `{"error": {"code": "...", "message": "..."}}`.
"""

TAGS = [
    {"name": "checks", "description": "Verdicts on listing photos."},
    {"name": "evidence", "description": "Why a listing was flagged, as an image."},
    {"name": "catalogue", "description": "The authentic images listings are checked against."},
    {"name": "health", "description": "Liveness, readiness and metrics (no key needed)."},
    {"name": "review", "description": "The moderators' review page."},
]


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None) -> FastAPI:
    """The service. ``settings`` default: from ``LOOKALIKE_*`` environment variables.

    ``embedder``: an already built model to use instead of loading the index's (it must be
    the same model); tests pass one to avoid rebuilding it for every app.
    """
    settings = settings or Settings()  # type: ignore[call-arg]  # required fields from env
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Only effective if torch has not started its OpenMP pool yet (`lookalike serve` sets
        # it before importing torch): spinning idle threads starve the decoders on 2 cores.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        keys = KeyStore(settings.keys_file, reload_s=settings.keys_reload_s)
        keys.load()  # fail at start-up, not on the first request, when the file is missing
        detector = await asyncio.to_thread(load_service_detector, settings, embedder)
        if not detector.embedder.trained:
            log.warning(
                "model %s has untrained weights: verdicts are not calibrated",
                detector.embedder.name,
            )
        state = build_state(settings, detector, keys, metrics)
        await state.start()
        app.state.service = state
        log.info(
            "ready",
            extra={
                "index_dir": str(settings.index_dir),
                "items": len(detector.index),
                "micro_batching": settings.micro_batching,
                "max_batch": settings.effective_max_batch,
            },
        )
        try:
            yield
        finally:
            app.state.service = None
            await state.close()

    app = FastAPI(
        title="lookalike",
        version=__version__,
        summary="Counterfeit listing detection: listing photos vs a brand's catalogue.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    install_error_handlers(app)
    # Added last = outermost: the observer also sees requests the size limit refuses.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestObserver, metrics=metrics)
    for module in (checks, catalogue, evidence, health, review):
        app.include_router(module.router)
    return app
