"""Per-key token buckets, in memory (one server process; a restart refills every bucket)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` tokens per second up to ``burst``; one token per image checked.

    ``rate`` 0 turns limiting off. ``take`` returns 0.0 when allowed, else the seconds to wait
    before that many tokens are available (the caller answers 429 with Retry-After).
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, tokens: int = 1) -> float:
        if not self.enabled:
            return 0.0
        # A batch larger than the bucket drains it whole instead of never being allowed.
        tokens = min(tokens, self.burst)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= tokens:
                bucket.tokens -= tokens
                return 0.0
            return max((tokens - bucket.tokens) / self.rate, 1e-3)


def retry_after_header(wait_s: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}
