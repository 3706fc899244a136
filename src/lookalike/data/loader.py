"""Decode many images with look-ahead, in input order, turning bad files into error results.

Two ways to run the decoder: threads (Pillow releases the GIL while decoding and resizing;
cheap to start, right for small jobs and the service) or worker processes (no GIL at all, and
a decoder that crashes on a hostile file takes down one worker, not the job).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from typing import Generic, TypeVar

from .decode import ImageDecodeError

S = TypeVar("S")
T = TypeVar("T")

log = logging.getLogger(__name__)

# Images per task sent to a worker process: enough to amortise the pickling round trip, few
# enough that the workers share a batch evenly.
PROCESS_CHUNK = 4


@dataclass(frozen=True)
class Loaded(Generic[S, T]):
    """One input: ``value`` when it loaded, else ``error`` (a one-line reason);
    ``seconds``: time spent loading it."""

    source: S
    value: T | None
    error: str | None
    seconds: float = 0.0


def load_one(load: Callable[[S], T], source: S) -> Loaded[S, T]:
    """``load(source)``, timed, with any failure turned into an error result."""
    start = time.perf_counter()
    try:
        value = load(source)
    except ImageDecodeError as exc:
        return Loaded(source, None, str(exc), time.perf_counter() - start)
    except Exception as exc:  # one odd file must not end a million-image run
        log.warning("unexpected error loading %s", source, exc_info=True)
        error = f"unexpected {type(exc).__name__}: {exc}"
        return Loaded(source, None, error, time.perf_counter() - start)
    return Loaded(source, value, None, time.perf_counter() - start)


def _exit_with_parent(parent_pid: int) -> None:
    """In each worker: exit as soon as the job's process is gone, even killed with -9, so
    that no decoder outlives the job it served."""

    def watch() -> None:
        try:
            handle = os.pidfd_open(parent_pid)
        except (AttributeError, OSError):  # no pidfd (not Linux, or an old kernel): poll
            while os.getppid() == parent_pid:
                time.sleep(1.0)
        else:
            select.select([handle], [], [])  # readable once the parent has exited
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _load_chunk(load: Callable[[S], T], sources: Sequence[S]) -> list[Loaded[S, T]]:
    return [load_one(load, source) for source in sources]


class _Pool:
    """A thread or process pool that can replace itself when a worker process dies.

    ``generation`` counts the replacements, so that the many futures a dead pool leaves
    behind restart it once, not once each.
    """

    def __init__(self, workers: int, processes: bool) -> None:
        self.workers, self.processes = workers, processes
        self.generation = 0
        self.executor = self._start()

    def _start(self) -> Executor:
        if not self.processes:
            return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="decode")
        # fork on Linux, as torch's DataLoader does: no re-import of the caller's script (which
        # spawn and forkserver need, and which breaks scripts without a __main__ guard); the
        # workers only touch PIL and numpy, never the parent's torch or FAISS threads.
        method = "fork" if sys.platform == "linux" else "spawn"
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, load: Callable[[S], T], chunk: list[S]) -> _Task[S, T]:
        try:
            return _Task(chunk, self.generation, self.executor.submit(_load_chunk, load, chunk))
        except BrokenProcessPool:  # died since we last looked
            self.restart(self.generation)
            return _Task(chunk, self.generation, self.executor.submit(_load_chunk, load, chunk))

    def restart(self, broken_generation: int) -> None:
        if broken_generation != self.generation:
            return  # already replaced
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()
        self.generation += 1

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class _Task(Generic[S, T]):
    chunk: list[S]
    generation: int
    future: Future[list[Loaded[S, T]]]


def _collect(pool: _Pool, load: Callable[[S], T], task: _Task[S, T]) -> list[Loaded[S, T]]:
    """The chunk's results; if a worker process died meanwhile, retry its images one by one
    in a fresh pool, so that only an image that kills the decoder (twice) becomes an error."""
    try:
        return task.future.result()
    except BrokenProcessPool:
        pool.restart(task.generation)
    results: list[Loaded[S, T]] = []
    for source in task.chunk:
        for attempt in (1, 2):
            retry = pool.submit(load, [source])
            try:
                results.extend(retry.future.result())
                break
            except BrokenProcessPool:
                pool.restart(retry.generation)
                if attempt == 2:
                    results.append(Loaded(source, None, "the image decoder crashed on this file"))
    return results


def load_batches(
    sources: Iterable[S],
    load: Callable[[S], T],
    *,
    batch_size: int = 32,
    workers: int = 2,
    processes: bool = False,
) -> Iterator[list[Loaded[S, T]]]:
    """Yield lists of up to ``batch_size`` results in input order.

    Decoding runs in ``workers`` threads, or worker processes when ``processes`` (then ``load``
    and the sources must pickle), and stays up to two batches ahead so that it overlaps the
    caller's model work.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be >= 1")
    chunk_size = PROCESS_CHUNK if processes else 1
    window = max(2 * batch_size // chunk_size, 2 * workers)
    iterator = iter(sources)
    pending: deque[_Task[S, T]] = deque()
    batch: list[Loaded[S, T]] = []
    pool = _Pool(workers, processes)
    try:
        while True:
            while len(pending) < window and (chunk := list(islice(iterator, chunk_size))):
                pending.append(pool.submit(load, chunk))
            if not pending:
                break
            for loaded in _collect(pool, load, pending.popleft()):
                batch.append(loaded)
                if len(batch) == batch_size:
                    yield batch
                    batch = []
    finally:
        pool.close()
    if batch:
        yield batch
