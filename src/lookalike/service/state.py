"""What the lifespan builds and the routes use: model, index, batcher, stores, limits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from ..detect import Detector, Thresholds, load_detector
from ..index import IndexNotFoundError
from ..index.catalog import current_snapshot
from ..model import Embedder, create_embedder
from .batcher import MicroBatcher
from .catalogue import CatalogueService, IndexVersion
from .checking import CheckService
from .errors import ApiError
from .evidence import EvidenceStore
from .imaging import ImageLimits
from .keys import KeyStore
from .metrics import ServiceMetrics
from .ratelimit import RateLimiter
from .settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    detector: Detector
    batcher: MicroBatcher
    checks: CheckService
    catalogue: CatalogueService
    evidence: EvidenceStore
    keys: KeyStore
    limiter: RateLimiter
    metrics: ServiceMetrics

    @property
    def ready(self) -> bool:
        return self.batcher.running

    async def start(self) -> None:
        await self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        self.checks.close()


def torch_threads(settings: Settings) -> int:
    """One per core this process may use (affinity, not the machine's count)."""
    return settings.threads or len(os.sched_getaffinity(0)) or 1


def load_service_detector(settings: Settings, embedder: Embedder | None) -> Detector:
    """The index in ``settings.index_dir`` and the model that built it (or ``embedder``)."""
    threads = torch_threads(settings)
    try:
        current_snapshot(settings.index_dir)
    except IndexNotFoundError:
        if not settings.create_index:
            raise
        _create_empty_index(settings, embedder, threads)
    detector = load_detector(
        settings.index_dir,
        model=embedder if embedder is not None else settings.model,
        thresholds=_thresholds(settings),
        top_k=settings.top_k,
        precision=settings.precision,
        threads=threads,
        batch_size=max(32, settings.max_batch),
        # None: re-rank (with query tiles) as the model recommends, with that mode's
        # calibration; False: descriptor only. Logo search runs when the index has logos.
        verify=None if settings.verify else False,
    )
    detector.warm_up()  # before the service reports ready, not on the first request
    return detector


def _thresholds(settings: Settings) -> Thresholds | None:
    if settings.copy_threshold is None or settings.review_threshold is None:
        return None  # the model's own (calibrated) thresholds, or the defaults
    return Thresholds(copy=settings.copy_threshold, review=settings.review_threshold)


def _create_empty_index(settings: Settings, embedder: Embedder | None, threads: int) -> None:
    from ..indexing import new_index_for

    model = embedder or create_embedder(
        settings.model or "default", precision=settings.precision, threads=threads
    )
    new_index_for(model).save(settings.index_dir)


def build_state(
    settings: Settings, detector: Detector, keys: KeyStore, metrics: ServiceMetrics
) -> ServiceState:
    threads = torch_threads(settings)
    batcher = MicroBatcher(
        detector,
        max_batch=settings.effective_max_batch,
        max_wait_s=settings.max_wait_ms / 1000,
        threads=threads,
        on_batch=metrics.observe_batch,
    )
    evidence = EvidenceStore(settings.evidence_cache_items, settings.evidence_cache_bytes)
    limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)
    checks = CheckService(
        detector.preprocessor,
        batcher,
        evidence,
        metrics,
        limits=limits,
        decode_workers=settings.decode_workers,
        timeout_s=settings.request_timeout_s,
    )
    version = IndexVersion(current_snapshot(Path(settings.index_dir)).name)
    catalogue = CatalogueService(
        detector.index,
        detector.embedder,
        checks,
        batcher,
        index_dir=settings.index_dir,
        images_dir=settings.resolved_catalogue_dir,
        version=version,
    )
    metrics.track(lambda: len(detector.index), lambda: batcher.queue_depth)
    limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    return ServiceState(
        settings, detector, batcher, checks, catalogue, evidence, keys, limiter, metrics
    )


def get_state(request: Request) -> ServiceState:
    state: ServiceState | None = getattr(request.app.state, "service", None)
    if state is None or not state.ready:
        raise ApiError(503, "not_ready", "the model and index are still loading")
    return state


State = Annotated[ServiceState, Depends(get_state)]
