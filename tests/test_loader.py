"""Tests for lookalike.data.loader (threads and worker processes) and the picklable
Preprocessor that worker processes run.

The load functions below live at module level so that worker processes can unpickle them;
this module imports nothing heavy (no torch), so that each worker starts fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

from lookalike.data.decode import ImageDecodeError, decode_image
from lookalike.data.loader import PROCESS_CHUNK, Loaded, load_batches
from lookalike.data.preprocess import PreparedImage, Preprocessor
from lookalike.data.sources import ImageInput, iter_shard
from lookalike.data.synthetic import synthetic_image

if TYPE_CHECKING:
    from lookalike.model import Embedder

MODES = pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
CRASHING = frozenset({5, 18})  # sources that kill the worker process decoding them


# -- load functions (module level: they must pickle) --------------------------------------------


def load_number(source: int) -> str:
    """Sources ending in 7 cannot be decoded; 9 raises something unexpected."""
    if source % 10 == 7:
        raise ImageDecodeError(f"<{source}>", "not an image")
    if source % 10 == 9:
        raise RuntimeError(f"odd {source}")
    return f"value-{source}"


def load_slowly(source: int) -> int:
    time.sleep(0.02)
    return source


def load_or_crash(source: int) -> str:
    """Kill the worker process (as a decoder segfault would) on the CRASHING sources."""
    if source in CRASHING:
        os._exit(1)
    return f"value-{source}"


# -- helpers ------------------------------------------------------------------------------------


def outcomes(batches: Iterable[list[Loaded[Any, Any]]]) -> list[tuple[Any, Any, str | None]]:
    """(source, value, error) of every result, batches concatenated."""
    return [(item.source, item.value, item.error) for batch in batches for item in batch]


def expected_number(source: int) -> tuple[int, str | None, str | None]:
    if source % 10 == 7:
        return source, None, f"cannot decode image <{source}>: not an image"
    if source % 10 == 9:
        return source, None, f"unexpected RuntimeError: odd {source}"
    return source, f"value-{source}", None


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


# -- order, errors, timing ----------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 5, 8])  # chunks of 4 straddle batches of 5
def test_threads_and_processes_give_the_same_results_in_input_order(batch_size: int) -> None:
    """Both modes yield every input once, in input order, in batches of ``batch_size`` (the
    last one shorter), with chunks straddling batch boundaries; bad inputs are error
    results in place and do not stop the others."""
    sources = list(range(23))
    results: dict[bool, list[tuple[Any, Any, str | None]]] = {}
    for processes in (False, True):
        batches = list(
            load_batches(
                iter(sources),
                load_number,
                batch_size=batch_size,
                workers=2,
                processes=processes,
            )
        )
        full, rest = divmod(len(sources), batch_size)
        assert [len(b) for b in batches] == [batch_size] * full + ([rest] if rest else [])
        results[processes] = outcomes(batches)
    assert results[False] == results[True] == [expected_number(s) for s in sources]


@MODES
def test_a_bad_image_is_an_error_result_and_the_others_load(
    tmp_path: Path, processes: bool
) -> None:
    """A truncated JPEG and a text file named .png become errors naming the file; the
    images around them decode."""
    paths = []
    for seed in range(6):
        path = tmp_path / f"{seed}.png"
        synthetic_image(seed, size=(40, 30)).save(path)
        paths.append(str(path))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(encode(synthetic_image(9), "JPEG")[:300])
    text = tmp_path / "text.png"
    text.write_text("not a picture\n" * 10)
    sources = [paths[0], str(truncated), *paths[1:4], str(text), *paths[4:]]

    preprocess = Preprocessor(16)
    loaded = [
        item
        for batch in load_batches(sources, preprocess, batch_size=3, workers=2, processes=processes)
        for item in batch
    ]
    assert [item.source for item in loaded] == sources
    errors = {item.source: item.error for item in loaded if item.error}
    assert set(errors) == {str(truncated), str(text)}
    assert all(source in error for source, error in errors.items())
    assert "truncated" in errors[str(truncated)]
    for item in loaded:
        if item.error is None:
            assert isinstance(item.value, PreparedImage)
            assert item.value.pixels.shape == (3, 16, 16)
            assert item.value.pixels.dtype == np.uint8


@MODES
def test_loaded_seconds_is_the_time_spent_loading(processes: bool) -> None:
    batches = load_batches(range(6), load_slowly, batch_size=4, workers=2, processes=processes)
    loaded = [item for batch in batches for item in batch]
    assert [item.value for item in loaded] == list(range(6))
    assert all(0.015 <= item.seconds < 5 for item in loaded), [i.seconds for i in loaded]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        next(load_batches([1], load_number, batch_size=0))
    with pytest.raises(ValueError):
        next(load_batches([1], load_number, workers=0))


def test_no_sources_give_no_batches() -> None:
    assert list(load_batches([], load_number, processes=True)) == []


# -- a worker process that dies ----------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [3, 32])
def test_a_source_that_kills_its_worker_is_the_only_error(batch_size: int) -> None:
    """Sources that kill the decoding process (twice) are the only errors, "decoder
    crashed"; every other source, in the same chunk (4-7, 16-19), in chunks in flight at
    the time and in later chunks, loads, in order. Two crashes in one run: the retry after
    the second crash must not blame the sources retried meanwhile."""
    sources = list(range(30))
    assert {s // PROCESS_CHUNK for s in CRASHING} == {1, 4}  # both mid-chunk
    started = time.monotonic()
    batches = list(
        load_batches(sources, load_or_crash, batch_size=batch_size, workers=2, processes=True)
    )
    assert time.monotonic() - started < 60
    assert sum(len(batch) for batch in batches) == len(sources)
    assert all(len(batch) == batch_size for batch in batches[:-1])
    results = outcomes(batches)
    assert [source for source, _, _ in results] == sources
    for source, value, error in results:
        if source in CRASHING:
            assert value is None
            assert error is not None and "decoder crashed" in error
        else:
            assert (value, error) == (f"value-{source}", None)


def live_processes_in_group(pgid: int) -> list[int]:
    """Pids of the processes (zombies aside) in process group ``pgid``, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            pids.append(int(entry))
    return pids


# Loads 0.05 s "images" (time.sleep pickles by reference) in 2 worker processes.
LOADING_CHILD = """
import time
from lookalike.data.loader import load_batches
for batch in load_batches([0.05] * 400, time.sleep, batch_size=4, workers=2, processes=True):
    print(len(batch), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_worker_processes_do_not_outlive_a_killed_job() -> None:
    """After a kill -9 of the process that runs ``load_batches``, its decoding worker
    processes (and the forkserver) exit within a few seconds."""
    child = subprocess.Popen(
        [sys.executable, "-c", LOADING_CHILD], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"4"  # workers up and loading
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 5
        while (left := live_processes_in_group(child.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], f"{len(left)} processes outlived the killed job"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


# -- the Preprocessor workers run ---------------------------------------------------------------


def test_preprocessor_pickles_and_matches_the_embedder(
    shared_embedder: Embedder, tmp_path: Path
) -> None:
    """A pickled Preprocessor is equal to the original and gives exactly the pixels of
    ``Embedder.preprocess`` (PNG) and ``Embedder.load`` (JPEG, decoded at draft scale), from
    a path, from bytes and from a shard member, in a worker process too."""
    size = shared_embedder.input_size
    preprocess = Preprocessor(size)
    clone = pickle.loads(pickle.dumps(preprocess))
    assert clone == preprocess

    big = synthetic_image(3, size=(1000, 760))  # large enough for a JPEG draft decode
    png, jpeg = tmp_path / "a.png", tmp_path / "b.jpg"
    big.save(png)
    big.save(jpeg, quality=92)
    expected = {
        str(png): shared_embedder.preprocess(decode_image(png)).numpy(),
        str(jpeg): shared_embedder.load(jpeg).numpy(),
    }
    for path, pixels in expected.items():
        assert pixels.shape == (3, size, size)
        np.testing.assert_array_equal(clone(path).pixels, pixels)
        np.testing.assert_array_equal(clone(Path(path).read_bytes()).pixels, pixels)
        assert clone(path).image is None  # nothing kept without keep_side

    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as archive:
        archive.add(png, arcname="dir/a.png")
    [member] = iter_shard(str(shard))
    np.testing.assert_array_equal(clone(member).pixels, expected[str(png)])

    inputs = [ImageInput(str(png)), ImageInput(str(jpeg)), member]
    [batch] = load_batches(inputs, clone, batch_size=8, workers=1, processes=True)
    assert [item.error for item in batch] == [None, None, None]
    wanted = [expected[str(png)], expected[str(jpeg)], expected[str(png)]]
    for item, pixels in zip(batch, wanted, strict=True):
        assert item.value is not None
        np.testing.assert_array_equal(item.value.pixels, pixels)


def test_preprocessor_keeps_a_small_copy_when_asked() -> None:
    kept = Preprocessor(32, keep_side=100)(synthetic_image(1, size=(400, 300)))
    assert kept.pixels.shape == (3, 32, 32)
    assert kept.image is not None and kept.image.size == (100, 75)
    assert pickle.loads(pickle.dumps(Preprocessor(32, keep_side=100))).keep_side == 100


def test_preprocessor_errors_name_the_input_key(tmp_path: Path) -> None:
    """A member's bytes that do not decode, and an input that arrived with an error, raise
    ImageDecodeError naming the input's key (not ``<bytes>``)."""
    member_key = f"{tmp_path}/s.tar#dir/000001.jpg"
    with pytest.raises(ImageDecodeError) as info:
        Preprocessor(16)(ImageInput(member_key, data=b"garbage" * 20, member="dir/000001.jpg"))
    assert info.value.source == member_key
    assert member_key in str(info.value)
    with pytest.raises(ImageDecodeError) as info:
        Preprocessor(16)(ImageInput(str(tmp_path / "x.tar"), error="tar shard unreadable"))
    assert (info.value.source, info.value.reason) == (
        str(tmp_path / "x.tar"),
        "tar shard unreadable",
    )
