"""Tests for lookalike.scoring: resumable result files with exactly one row per input."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lookalike.data.manifest import load_catalog
from lookalike.detect import LABELS, Detector
from lookalike.indexing import add_entries, new_index_for
from lookalike.model import Embedder
from lookalike.scoring import CSV_COLUMNS, ISC_COLUMNS, ResumableWriter, ScoreSummary, score_images

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
