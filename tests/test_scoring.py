"""Tests for lookalike.scoring: resumable result files with exactly one row per input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lookalike.data.manifest import load_catalog
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import LABELS, Detector, Match
from lookalike.index import CatalogRecord
from lookalike.indexing import add_entries, new_index_for
from lookalike.model import Embedder
from lookalike.scoring import (
    CSV_COLUMNS,
    ISC_COLUMNS,
    ResumableWriter,
    ScoreSummary,
    parquet_schema,
    score_images,
)

FORMATS = ("csv", "jsonl", "isc", "parquet")
SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "isc": ".csv", "parquet": ".parquet"}
TOP_K = 3
CATALOGUE_SIZE = 20

ImageWriter = Callable[..., list[Path]]  # conftest's write_images fixture


class SimulatedCrash(RuntimeError):
    """Stands for the process dying (kill -9, power loss) at a chosen point."""


@pytest.fixture(scope="module")
def detector(
    shared_embedder: Embedder, write_images: ImageWriter, tmp_path_factory: pytest.TempPathFactory
) -> Detector:
    folder = tmp_path_factory.mktemp("catalogue")
    write_images(folder, range(CATALOGUE_SIZE))  # item000.png ... item019.png
    index = new_index_for(shared_embedder)
    report = add_entries(index, shared_embedder, load_catalog(folder), progress=False)
    assert len(report.added) == CATALOGUE_SIZE
    return Detector(shared_embedder, index, top_k=TOP_K)


# -- helpers ---------------------------------------------------------------------------------


def listing_photos(write_images: ImageWriter, folder: Path, seeds: Sequence[int]) -> list[Path]:
    """JPEG copies of catalogue pictures, named q{seed}.jpg (original: item{seed}.png)."""
    return write_images(folder, seeds, prefix="q", suffix=".jpg")


def original_of(query_id: str) -> str:
    return "item" + query_id.removeprefix("q")


def run_score(
    detector: Detector, inputs: Sequence[Path], out: Path, fmt: str, *, batch_size: int = 2
) -> ScoreSummary:
    return score_images(
        detector,
        [str(p) for p in inputs],
        out,
        fmt=fmt,
        top_k=TOP_K,
        batch_size=batch_size,
        workers=1,
        progress=False,
    )


def journal_of(out: Path) -> Path:
    return out.with_name(out.name + ".progress")


def data_file(out: Path, fmt: str) -> Path:
    """The file rows are appended to (Parquet stages its rows as JSON lines)."""
    return out.with_name(out.name + ".partial.jsonl") if fmt == "parquet" else out


def journal_entries(out: Path) -> list[dict[str, Any]]:
    text = journal_of(out).read_bytes()
    assert text.endswith(b"\n"), "journal ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]


def read_results(out: Path, fmt: str) -> list[dict[str, Any]]:
    """All rows of a result file; text formats must end in a whole line."""
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.column_names == list(CSV_COLUMNS)
        return table.to_pylist()
    text = out.read_text()
    assert text.endswith("\n"), "torn last line"
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    with out.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == list(ISC_COLUMNS if fmt == "isc" else CSV_COLUMNS)
    return rows


def assert_each_exactly_once(out: Path, fmt: str, queries: Sequence[Path]) -> None:
    """Every query has its rows exactly once, and its best match is its original."""
    rows = read_results(out, fmt)
    if fmt == "isc":
        assert Counter(r["query_id"] for r in rows) == {q.stem: TOP_K for q in queries}
        assert len({(r["query_id"], r["reference_id"]) for r in rows}) == len(rows)
        for query in queries:
            mine = [r for r in rows if r["query_id"] == query.stem]
            best = max(mine, key=lambda r: float(r["score"]))
            assert best["reference_id"] == original_of(query.stem)
        return
    assert Counter(r["path"] for r in rows) == Counter(str(q) for q in queries)
    for row in rows:
        assert row["label"] in LABELS
        assert row["error"] in (None, "")
        assert float(row["score"]) > 0.5
        assert row["top_item_id"] == original_of(row["query_id"])
        matches = json.loads(row["matches"]) if fmt == "csv" else row["matches"]
        assert len(matches) == TOP_K
        assert matches[0]["item_id"] == row["top_item_id"]


def assert_journal_covers_data(out: Path, fmt: str) -> None:
    entries = journal_entries(out)
    assert entries[-1]["size"] == data_file(out, fmt).stat().st_size


# -- resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_rerun_scores_only_new_images(
    detector: Detector, write_images: ImageWriter, tmp_path: Path, fmt: str
) -> None:
    dump = tmp_path / "dump"
    out = tmp_path / f"results{SUFFIXES[fmt]}"
    first = listing_photos(write_images, dump, [0, 2, 4, 6, 8, 10])
    summary = run_score(detector, [dump], out, fmt)
    assert (summary.inputs, summary.skipped_done, summary.scored) == (6, 0, 6)
    assert summary.errors == {}
    assert_each_exactly_once(out, fmt, first)
    before = data_file(out, fmt).read_bytes()

    # New photos sort in between the finished ones: only they are scored, and appended.
    second = listing_photos(write_images, dump, [1, 3, 5, 7])
    summary = run_score(detector, [dump], out, fmt)
    assert (summary.inputs, summary.skipped_done, summary.scored) == (10, 6, 4)
    assert_each_exactly_once(out, fmt, first + second)
    assert data_file(out, fmt).read_bytes().startswith(before)
    assert_journal_covers_data(out, fmt)

    summary = run_score(detector, [dump], out, fmt)
    assert (summary.inputs, summary.skipped_done, summary.scored) == (10, 10, 0)
    assert_each_exactly_once(out, fmt, first + second)


# -- crash safety ------------------------------------------------------------------------------


def crash_at_commit(monkeypatch: pytest.MonkeyPatch, *, after_batches: int) -> None:
    """Make the process 'die' between a batch's data write and its journal line."""
    original = ResumableWriter._commit
    committed = 0

    def commit(self: ResumableWriter, paths: list[str], errors: dict[str, str]) -> None:
        nonlocal committed
        if paths:
            if committed == after_batches:
                raise SimulatedCrash("killed after the data write, before the journal line")
            committed += 1
        original(self, paths, errors)

    monkeypatch.setattr(ResumableWriter, "_commit", commit)


@pytest.mark.parametrize("fmt", FORMATS)
def test_crash_between_data_and_journal_write_is_repaired(
    detector: Detector,
    write_images: ImageWriter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    queries = listing_photos(write_images, tmp_path / "dump", range(10))
    out = tmp_path / f"results{SUFFIXES[fmt]}"
    crash_at_commit(monkeypatch, after_batches=2)
    with pytest.raises(SimulatedCrash):
        run_score(detector, [tmp_path / "dump"], out, fmt, batch_size=2)
    # The third batch's rows are on disk, but the journal does not vouch for them.
    entries = journal_entries(out)
    assert entries[0]["format"] == fmt
    assert [len(e["paths"]) for e in entries if e["paths"]] == [2, 2]
    assert data_file(out, fmt).stat().st_size > journal_entries(out)[-1]["size"]

    monkeypatch.undo()
    summary = run_score(detector, [tmp_path / "dump"], out, fmt, batch_size=2)
    assert (summary.inputs, summary.skipped_done, summary.scored) == (10, 4, 6)
    assert_each_exactly_once(out, fmt, queries)
    assert_journal_covers_data(out, fmt)


def tear_last_batch(out: Path, fmt: str) -> int:
    """Recreate a kill -9 inside the last batch's data write: its journal line is missing
    and its rows end in a partial line. Returns how many inputs that batch held."""
    lines = journal_of(out).read_bytes().splitlines(keepends=True)
    last, kept_size = json.loads(lines[-1]), json.loads(lines[-2])["size"]
    journal_of(out).write_bytes(b"".join(lines[:-1]))
    data = data_file(out, fmt)
    content = data.read_bytes()
    first_row_end = content.index(b"\n", kept_size) + 1
    torn = content[: first_row_end + (content.index(b"\n", first_row_end) - first_row_end) // 2]
    assert not torn.endswith(b"\n")
    data.write_bytes(torn)
    if fmt == "parquet":
        out.unlink()  # the run never reached its close
    return len(last["paths"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_mid_data_write_leaves_no_torn_or_repeated_rows(
    detector: Detector, write_images: ImageWriter, tmp_path: Path, fmt: str
) -> None:
    queries = listing_photos(write_images, tmp_path / "dump", range(10))
    out = tmp_path / f"results{SUFFIXES[fmt]}"
    run_score(detector, [tmp_path / "dump"], out, fmt, batch_size=4)
    assert tear_last_batch(out, fmt) == 2  # batches of 4, 4, 2

    summary = run_score(detector, [tmp_path / "dump"], out, fmt, batch_size=4)
    assert (summary.skipped_done, summary.scored) == (8, 2)
    assert_each_exactly_once(out, fmt, queries)
    assert_journal_covers_data(out, fmt)


@pytest.mark.parametrize("tear", ["half_line", "no_newline"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_torn_last_journal_line_is_ignored_and_its_batch_redone(
    detector: Detector, write_images: ImageWriter, tmp_path: Path, fmt: str, tear: str
) -> None:
    queries = listing_photos(write_images, tmp_path / "dump", range(7))
    out = tmp_path / f"results{SUFFIXES[fmt]}"
    run_score(detector, [tmp_path / "dump"], out, fmt, batch_size=3)
    journal = journal_of(out)
    lines = journal.read_bytes().splitlines(keepends=True)
    last = lines[-1].rstrip(b"\n")
    assert json.loads(last)["paths"] == [str(queries[-1])]  # batches of 3, 3, 1
    journal.write_bytes(
        b"".join(lines[:-1]) + (last[: len(last) // 2] if tear == "half_line" else last)
    )

    summary = run_score(detector, [tmp_path / "dump"], out, fmt, batch_size=3)
    assert (summary.skipped_done, summary.scored) == (6, 1)
    assert_each_exactly_once(out, fmt, queries)
    entries = journal_entries(out)  # whole lines only: the torn one was cut off
    assert [len(e["paths"]) for e in entries if e["paths"]] == [3, 3, 1]
    assert_journal_covers_data(out, fmt)


# -- inputs ----------------------------------------------------------------------------------


def test_symlinked_folders_are_followed_once(
    detector: Detector, write_images: ImageWriter, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    linked = listing_photos(write_images, elsewhere, [1, 2, 3])
    dump = tmp_path / "dump"
    listing_photos(write_images, dump, [4])
    (dump / "linked").symlink_to(elsewhere, target_is_directory=True)
    (dump / "loop").symlink_to(dump, target_is_directory=True)  # must not recurse forever
    (dump / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")  # a broken link is no image
    top = tmp_path / "top"
    top.symlink_to(dump, target_is_directory=True)  # the named input itself is a link

    out = tmp_path / "results.csv"
    summary = run_score(detector, [top], out, "csv")
    expected = [top / "q004.jpg", *(top / "linked" / p.name for p in linked)]
    assert (summary.inputs, summary.scored, summary.errors) == (4, 4, {})
    assert_each_exactly_once(out, "csv", expected)
    assert [row["path"] for row in read_results(out, "csv")] == [str(p) for p in expected]


def test_image_named_twice_is_scored_once(
    detector: Detector, write_images: ImageWriter, tmp_path: Path
) -> None:
    queries = listing_photos(write_images, tmp_path / "dump", [0, 1])
    out = tmp_path / "results.csv"
    run_score(detector, [tmp_path / "dump", queries[0]], out, "csv")
    assert_each_exactly_once(out, "csv", queries)


def test_same_folder_named_relative_then_absolute_is_scored_once(
    detector: Detector, write_images: ImageWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = listing_photos(write_images, tmp_path / "dump", [0, 1, 2])
    out = tmp_path / "results.csv"
    monkeypatch.chdir(tmp_path)
    run_score(detector, [Path("dump")], out, "csv")
    summary = run_score(detector, [tmp_path / "dump"], out, "csv")
    assert summary.skipped_done == 3 and summary.scored == 0
    assert_each_exactly_once(out, "csv", queries)


def test_resuming_with_another_explicit_format_is_refused(
    detector: Detector, write_images: ImageWriter, tmp_path: Path
) -> None:
    listing_photos(write_images, tmp_path / "dump", [0])
    out = tmp_path / "results.csv"
    run_score(detector, [tmp_path / "dump"], out, "isc")
    before = out.read_bytes()
    with pytest.raises(ValueError, match="holds 'isc' rows"):
        run_score(detector, [tmp_path / "dump"], out, "csv")
    assert out.read_bytes() == before


# -- tar shards --------------------------------------------------------------------------------


def listing_jpeg(seed: int) -> bytes:
    """The bytes ``listing_photos`` would write for q{seed}.jpg."""
    buffer = io.BytesIO()
    synthetic_image(seed).save(buffer, "JPEG")
    return buffer.getvalue()


def write_shard(path: Path, members: Sequence[tuple[str, bytes]]) -> Path:
    """A tar shard (gzipped for .tar.gz/.tgz) of ``members`` in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gzipped = path.name.endswith((".tar.gz", ".tgz"))
    with tarfile.open(path, "w:gz") if gzipped else tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def photo_shard(path: Path, seeds: Sequence[int]) -> list[str]:
    """A WebDataset-style shard of listing photos ``s/q{seed}.jpg`` (each with a .json
    sidecar); returns the image members' keys."""
    members = []
    for seed in seeds:
        members += [(f"s/q{seed:03d}.jpg", listing_jpeg(seed)), (f"s/q{seed:03d}.json", b"{}")]
    write_shard(path, members)
    return [f"{path}#s/q{seed:03d}.jpg" for seed in seeds]


def test_shard_with_a_corrupt_member_gives_one_row_per_member(
    detector: Detector, tmp_path: Path
) -> None:
    """Every image member of a shard gets one row, in stored order: the corrupt one an
    error row keyed by the member, the others verdicts matching their originals."""
    good = {seed: listing_jpeg(seed) for seed in (3, 1, 4, 5)}
    members = [
        ("s/q003.jpg", good[3]),
        ("s/q003.json", b"{}"),
        ("s/q001.jpg", good[1]),
        ("s/q009.jpg", listing_jpeg(9)[:400]),  # truncated JPEG
        ("s/q004.jpg", good[4]),
        ("s/q005.jpg", good[5]),
    ]
    shard = write_shard(tmp_path / "dump" / "part-0.tar", members)
    out = tmp_path / "results.jsonl"
    summary = run_score(detector, [tmp_path / "dump"], out, "jsonl", batch_size=4)
    corrupt = f"{shard}#s/q009.jpg"
    assert (summary.inputs, summary.scored) == (5, 4)
    assert list(summary.errors) == [corrupt]

    rows = read_results(out, "jsonl")
    names = ["q003", "q001", "q009", "q004", "q005"]
    assert [row["path"] for row in rows] == [f"{shard}#s/{name}.jpg" for name in names]
    assert [row["query_id"] for row in rows] == names
    for row in rows:
        if row["path"] == corrupt:
            assert row["label"] == "error"
            assert corrupt in row["error"] and "<bytes>" not in row["error"]
            assert (row["score"], row["matches"], row["embed_ms"]) == (None, [], None)
            assert row["decode_ms"] is not None
        else:
            assert row["error"] is None and row["label"] in LABELS
            assert row["top_item_id"] == original_of(row["query_id"])
            assert row["score"] > 0.5
            assert all(row[c] is not None for c in ("decode_ms", "embed_ms", "search_ms"))


def test_mixed_dump_to_parquet_by_default_is_scored_exactly_once(
    detector: Detector, write_images: ImageWriter, tmp_path: Path
) -> None:
    """Files, a nested .tar and a .tar.gz scored into an output with an unknown suffix:
    Parquet (the default), one row per input; a re-run scores nothing and leaves the
    rows as they were; a shard added later is all that the next run scores."""
    dump = tmp_path / "dump"
    files = [str(p) for p in listing_photos(write_images, dump, [0, 1, 2])]
    keys = files + photo_shard(dump / "shards" / "part-0.tar", [3, 4, 5, 6])
    keys += photo_shard(dump / "part-1.tar.gz", [7, 8])
    out = tmp_path / "results.out"
    summary = score_images(detector, [dump], out, top_k=TOP_K, batch_size=3, progress=False)
    assert (summary.inputs, summary.skipped_done, summary.scored, summary.errors) == (
        9,
        0,
        9,
        {},
    )
    assert journal_entries(out)[0]["format"] == "parquet"
    rows = read_results(out, "parquet")
    assert Counter(row["path"] for row in rows) == Counter(keys)
    assert all(row["top_item_id"] == original_of(row["query_id"]) for row in rows)
    assert_journal_covers_data(out, "parquet")

    summary = score_images(detector, [dump], out, top_k=TOP_K, batch_size=3, progress=False)
    assert (summary.inputs, summary.skipped_done, summary.scored) == (9, 9, 0)
    assert read_results(out, "parquet") == rows

    keys += photo_shard(dump / "shards" / "part-2.tgz", [10, 11])
    summary = score_images(detector, [dump], out, top_k=TOP_K, batch_size=3, progress=False)
    assert (summary.inputs, summary.skipped_done, summary.scored) == (11, 9, 2)
    assert Counter(row["path"] for row in read_results(out, "parquet")) == Counter(keys)


# -- a real kill -9 ------------------------------------------------------------------------------

KILL_IMAGES = 200
KILL_AFTER_BATCHES = 3


def lookalike_command() -> list[str]:
    """The ``lookalike`` command, run by this interpreter (cli.py has a __main__ guard)."""
    return [sys.executable, "-m", "lookalike.cli"]


def journalled_batches(journal: Path) -> list[list[str]]:
    """The inputs of each batch the journal records, from its whole lines only (the first
    line records the format, and no inputs)."""
    if not journal.exists():
        return []
    lines = journal.read_bytes().split(b"\n")[:-1]
    return [paths for line in lines if (paths := json.loads(line)["paths"])]


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_scores_every_input_exactly_once(
    detector: Detector, tmp_path: Path
) -> None:
    """``lookalike score`` killed with SIGKILL after a few committed batches, then run
    again to completion: every input has exactly one row, every row is valid JSON, and the
    journal vouches for the whole file."""
    index = tmp_path / "index"
    detector.index.save(index)
    dump = tmp_path / "dump"
    dump.mkdir()
    for seed in range(KILL_IMAGES):
        synthetic_image(seed, size=(96, 96)).save(dump / f"q{seed:03d}.jpg")
    expected = sorted(str(path) for path in dump.iterdir())
    out = tmp_path / "results.jsonl"
    journal = journal_of(out)
    argv = [
        *lookalike_command(),
        "score",
        str(dump),
        "--index",
        str(index),
        "--out",
        str(out),
        *("--batch-size", "4", "--format", "jsonl", "--workers", "1", "--quiet"),
        "--no-tiles",  # re-ranking as the model says, without tiles: this is about resuming
    ]
    started = time.monotonic()
    with (tmp_path / "first.log").open("wb") as log:
        # Its own session: the decoding workers it leaves behind can be cleaned up as a group.
        first = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 40
            while len(journalled_batches(journal)) < KILL_AFTER_BATCHES:
                assert first.poll() is None, (tmp_path / "first.log").read_text()
                assert time.monotonic() < deadline, "no batch committed in time"
                time.sleep(0.02)
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(first.pid, signal.SIGKILL)  # orphaned workers, if any
            first.wait(timeout=10)
    done_at_kill = sum(len(paths) for paths in journalled_batches(journal))
    assert KILL_AFTER_BATCHES * 4 <= done_at_kill < KILL_IMAGES

    second = subprocess.run(argv, capture_output=True, text=True, timeout=45, check=False)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["inputs"] == KILL_IMAGES
    assert summary["already_done"] == done_at_kill
    assert summary["scored"] == KILL_IMAGES - done_at_kill
    assert summary["errors"] == 0

    lines = out.read_text().splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    rows = [json.loads(line) for line in lines]  # valid JSON, not a torn line among them
    assert all(list(row) == list(CSV_COLUMNS) for row in rows)
    assert sorted(row["path"] for row in rows) == expected  # each input exactly once
    assert all(row["error"] is None and row["label"] in LABELS for row in rows)
    assert_journal_covers_data(out, "jsonl")
    assert time.monotonic() - started < 90


def test_shard_damaged_part_way_gives_its_rows_then_one_error_row_once(
    detector: Detector, tmp_path: Path
) -> None:
    """A shard cut inside its 3rd image: rows for the 2 images before the cut, then one
    error row keyed by the shard itself; a re-run adds nothing."""
    shard = tmp_path / "dump" / "part-0.tar"
    keys = photo_shard(shard, [0, 1, 2, 3])
    with tarfile.open(shard) as archive:
        third = archive.getmember("s/q002.jpg")
    shard.write_bytes(shard.read_bytes()[: third.offset_data + third.size // 2])

    out = tmp_path / "results.csv"
    summary = run_score(detector, [tmp_path / "dump"], out, "csv")
    assert (summary.inputs, summary.scored) == (3, 2)
    assert list(summary.errors) == [str(shard)]
    rows = read_results(out, "csv")
    assert [row["path"] for row in rows] == [*keys[:2], str(shard)]
    assert [row["label"] for row in rows][2] == "error"
    assert "tar shard unreadable" in rows[2]["error"]

    summary = run_score(detector, [tmp_path / "dump"], out, "csv")
    assert (summary.inputs, summary.skipped_done, summary.scored) == (3, 3, 0)
    assert len(read_results(out, "csv")) == 3


def test_the_parquet_schema_keeps_every_field_of_a_match() -> None:
    """pyarrow drops dict keys a struct does not name: a new Match field must join the schema."""
    record = CatalogRecord("item", "0" * 64, None, "product", None, None, "")
    match_fields = set(Match.from_record(record, 0.5).to_dict())
    struct = parquet_schema().field("matches").type.value_type
    assert {struct.field(i).name for i in range(struct.num_fields)} == match_fields
