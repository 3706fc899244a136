"""Checking listings: decode in a thread pool, micro-batched inference, evidence kept.

The Detector is the core pipeline's; this adds only what serving needs around it: timeouts,
per-image errors in batches, verdict ids, timing and metrics.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ..data.decode import ImageDecodeError
from ..data.preprocess import Preprocessor
from ..detect import Match, Verdict
from .batcher import MicroBatcher
from .errors import ApiError, CheckTimeoutError, decode_error
from .evidence import EvidenceEntry, EvidenceStore, Region, outline_box, whole_image_region
from .imaging import DecodedImage, ImageLimits, decode_for_model
from .metrics import ServiceMetrics
from .uploads import ListingUpload

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    decode_ms: float
    queue_ms: float
    inference_ms: float
    total_ms: float
    batch_size: int


@dataclass(frozen=True)
class CheckOutcome:
    verdict_id: str
    verdict: Verdict
    regions: tuple[Region | None, ...]  # one per match, in listing pixels
    listing_size: tuple[int, int]
    listing_id: str | None
    seller_id: str | None
    filename: str | None
    timing: Timing


@dataclass(frozen=True)
class CheckFailure:
    """A batch item that could not be checked (bad image); the others still are."""

    filename: str | None
    listing_id: str | None
    error: ApiError


class CheckService:
    def __init__(
        self,
        preprocessor: Preprocessor,
        batcher: MicroBatcher,
        evidence: EvidenceStore,
        metrics: ServiceMetrics,
        *,
        limits: ImageLimits,
        decode_workers: int,
        timeout_s: float,
    ) -> None:
        self.preprocessor = limits.apply(preprocessor)  # built once, not per upload
        self.batcher = batcher
        self.evidence = evidence
        self.metrics = metrics
        self.timeout_s = timeout_s
        self._decoders = ThreadPoolExecutor(decode_workers, thread_name_prefix="lookalike-decode")

    def close(self) -> None:
        self._decoders.shutdown(wait=False, cancel_futures=True)

    async def decode(self, data: bytes) -> DecodedImage:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._decoders, decode_for_model, data, self.preprocessor)

    async def check(self, upload: ListingUpload) -> CheckOutcome:
        """One listing; ImageDecodeError for a bad image, CheckTimeoutError past the limit."""
        return await self._within_timeout(self._check(upload))

    async def check_batch(
        self, uploads: Sequence[ListingUpload]
    ) -> list[CheckOutcome | CheckFailure]:
        """Each image joins the shared batches on its own; bad images fail alone."""
        jobs = [self._check_or_fail(upload) for upload in uploads]
        return list(await self._within_timeout(asyncio.gather(*jobs)))

    async def _within_timeout(self, job: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(job, self.timeout_s)
        except TimeoutError:
            raise CheckTimeoutError(self.timeout_s) from None

    async def _check_or_fail(self, upload: ListingUpload) -> CheckOutcome | CheckFailure:
        try:
            return await self._check(upload)
        except ImageDecodeError as exc:
            return CheckFailure(upload.filename, upload.listing_id, decode_error(exc))

    async def _check(self, upload: ListingUpload) -> CheckOutcome:
        started = time.perf_counter()
        decoded = await self.decode(upload.data)
        decoded_at = time.perf_counter()
        result = await self.batcher.submit(decoded.prepared)
        verdict = result.verdict
        # A verified paste or collage cell carries its outline; other photo matches cover
        # the whole listing (logos carry their own regions).
        regions = tuple(_photo_region(match, decoded.size) for match in verdict.matches)
        verdict_id = uuid.uuid4().hex
        self.evidence.put(
            verdict_id,
            EvidenceEntry(verdict, upload.data, decoded.size, upload.listing_id, regions),
        )
        self.metrics.verdicts.labels(verdict.label).inc()
        total = time.perf_counter() - started
        timing = Timing(
            decode_ms=round((decoded_at - started) * 1000, 2),
            queue_ms=round(result.queued_s * 1000, 2),
            inference_ms=round(result.inference_s * 1000, 2),
            total_ms=round(total * 1000, 2),
            batch_size=result.batch_size,
        )
        return CheckOutcome(
            verdict_id,
            verdict,
            regions,
            decoded.size,
            upload.listing_id,
            upload.seller_id,
            upload.filename,
            timing,
        )


def _photo_region(match: Match, size: tuple[int, int]) -> Region | None:
    if match.region:
        return outline_box(match.region, size)
    return whole_image_region(size)
