"""Decode many images with look-ahead, in input order, turning bad files into error results."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from .decode import ImageDecodeError

S = TypeVar("S")
T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded(Generic[S, T]):
    """One input: ``value`` when it loaded, else ``error`` (a one-line reason)."""

    source: S
    value: T | None
    error: str | None


def _load_one(load: Callable[[S], T], source: S) -> Loaded[S, T]:
    try:
        return Loaded(source, load(source), None)
    except ImageDecodeError as exc:
        return Loaded(source, None, str(exc))
    except Exception as exc:  # one odd file must not end a million-image run
        log.warning("unexpected error loading %s", source, exc_info=True)
        return Loaded(source, None, f"unexpected {type(exc).__name__}: {exc}")


def load_batches(
    sources: Iterable[S],
    load: Callable[[S], T],
    *,
    batch_size: int = 32,
    workers: int = 2,
) -> Iterator[list[Loaded[S, T]]]:
    """Yield lists of up to ``batch_size`` results in input order.

    Decoding runs in ``workers`` threads (Pillow releases the GIL while decoding and
    resizing) and stays up to two batches ahead, so it overlaps the caller's model work.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be >= 1")
    window = 2 * batch_size
    pending: deque[Future[Loaded[S, T]]] = deque()
    batch: list[Loaded[S, T]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        for source in sources:
            pending.append(pool.submit(_load_one, load, source))
            while len(pending) > window:
                batch.append(pending.popleft().result())
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        while pending:
            batch.append(pending.popleft().result())
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
