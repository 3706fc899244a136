"""Tests for the ``lookalike`` command, driven in-process through ``lookalike.cli.main``."""

from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import zlib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from PIL import Image

from lookalike.data import edits
from lookalike.data.manifest import load_catalog
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import LABELS
from lookalike.index import CatalogIndex
from lookalike.indexing import add_entries, new_index_for
from lookalike.keypoint_index import KeypointIndex
from lookalike.model import Embedder
from lookalike.scoring import CSV_COLUMNS, ISC_COLUMNS

ImageWriter = Callable[..., list[Path]]  # conftest's write_images fixture
Cli = Callable[..., tuple[int, Any]]

RUNTIME = ("--quiet", "--workers", "1")
COPY_SOURCES = range(10)  # catalogue items the listing copies are made from
EDITED_COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resized": lambda image: edits.resize(image, 0.5),
    "cropped": lambda image: edits.center_crop(image, 0.8),
}


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue(write_images: ImageWriter, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 pictures: acme/item000-014 (+ acme/logos/item015-016), globex/item017-029."""
    root = tmp_path_factory.mktemp("catalogue")
    write_images(root / "acme", range(15))
    write_images(root / "acme" / "logos", range(15, 17))
    write_images(root / "globex", range(17, 30))
    return root


@pytest.fixture(scope="module")
def shared_index(
    catalogue: Path, shared_embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The catalogue indexed through the library (read-only: copy it before changing it)."""
    index = new_index_for(shared_embedder)
    add_entries(index, shared_embedder, load_catalog(catalogue), progress=False)
    directory = tmp_path_factory.mktemp("shared") / "index"
    index.save(directory)
    return directory


@pytest.fixture
def index_copy(shared_index: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shared_index, tmp_path / "index"))


@pytest.fixture(scope="module")
def listings(catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Resized, cropped and JPEG-q30 copies of item000-009 plus three pictures not in the
    catalogue; returns (folder, ground-truth CSV)."""
    folder = tmp_path_factory.mktemp("listings")
    truth: list[tuple[str, str]] = []
    for seed in COPY_SOURCES:
        original = next(catalogue.rglob(f"item{seed:03d}.png"))
        with Image.open(original) as image:
            for name, edit in EDITED_COPIES.items():
                edit(image).save(folder / f"{name}{seed:03d}.png")
                truth.append((f"{name}{seed:03d}", original.stem))
            image.convert("RGB").save(folder / f"jpeg{seed:03d}.jpg", quality=30)
            truth.append((f"jpeg{seed:03d}", original.stem))
    for seed in (900, 901, 902):
        synthetic_image(seed).save(folder / f"unrelated{seed}.png")
        truth.append((f"unrelated{seed}", ""))
    ground_truth = folder.parent / f"{folder.name}-truth.csv"
    with ground_truth.open("w", newline="") as handle:
        csv.writer(handle).writerows([("query_id", "reference_id"), *truth])
    return folder, ground_truth


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    return list(reader.fieldnames or []), rows


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    """Rows of a ``score`` output, matches parsed, columns checked."""
    if fmt == "parquet":
        table = pq.read_table(path)
        assert table.column_names == list(CSV_COLUMNS)
        return table.to_pylist()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert all(list(row) == list(CSV_COLUMNS) for row in rows)
        return rows
    columns, rows = read_csv_rows(path)
    assert columns == list(CSV_COLUMNS)
    for row in rows:
        row["matches"] = json.loads(row["matches"])
    return rows


def stats(cli: Cli, index: Path) -> dict[str, Any]:
    code, data = cli("index", "stats", "--index", index)
    assert code == 0
    return dict(data)


def png_claiming_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR is rewritten to claim another size, with a valid CRC."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    # 8-byte signature, then IHDR: length (4), type (4), 13 data bytes, CRC of type + data.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_image(seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def first_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def ppm_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_image(seed).save(buffer, "PPM")  # PIL reads it, lookalike refuses the format
    return buffer.getvalue()


# name -> (file content, words its error message must hold); sorted names = scoring order.
BAD_INPUTS: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "b_empty.jpg": (lambda: b"", ("empty",)),
    "c_truncated.jpg": (lambda: first_half(jpeg_bytes(3)), ("truncated",)),
    "d_text.jpg": (lambda: b"this is a text file, not a picture\n" * 20, ("not a supported",)),
    "e_garbage.png": (lambda: bytes(range(256)) * 8, ("not a supported",)),
    "f_netpbm.png": (lambda: ppm_bytes(4), ("not a supported",)),
    "g_bomb.png": (lambda: png_claiming_size(30_000, 30_000), ("too many pixels",)),
}


# -- index -------------------------------------------------------------------------------------


def test_index_build_reads_brand_and_kind_from_folders(
    cli: Cli, catalogue: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    code, built = cli("index", "build", catalogue, "--index", index, *RUNTIME)
    assert code == 0
    assert (built["added"], built["duplicates_skipped"], built["errors"]) == (30, 0, [])
    assert built["model"]["name"] == "default"
    assert built["model"]["dim"] == 256
    assert (index / "CURRENT").read_text().strip() == built["snapshot"]
    # re-ranking's keypoint voting is ready: the first check does not describe the catalogue
    [kept] = index.glob("keypoints-*.npz")
    assert len(KeypointIndex.load(kept)) == 30  # every item of the photo index

    info = stats(cli, index)
    assert info["items"] == 30
    assert info["by_kind"] == {"product": 28, "logo": 2}
    assert info["brands"] == 2
    assert info["model"] == built["model"]
    assert (info["faiss_vectors"], info["tombstones"]) == (30, 0)

    records = {r.item_id: r for r in CatalogIndex.load(index).records()}
    assert sorted(records) == [f"item{seed:03d}" for seed in range(30)]
    assert (records["item003"].brand, records["item003"].kind) == ("acme", "product")
    assert (records["item016"].brand, records["item016"].kind) == ("acme", "logo")
    assert (records["item020"].brand, records["item020"].kind) == ("globex", "product")


def test_index_build_from_manifest(cli: Cli, catalogue: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "elsewhere" / "list.csv"
    manifest.parent.mkdir()
    rows = [
        ("image", "item_id", "brand", "kind", "sku"),
        ("acme/item000.png", "shoe-1", "Acme", "product", "SKU-1"),
        ("acme/item001.png", "shoe-2", "Acme", "product", "SKU-2"),
        ("acme/logos/item015.png", "acme-logo", "Acme", "logo", ""),
        ("globex/item017.png", "bag-1", "Globex", "product", "SKU-9"),
    ]
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    index = tmp_path / "index"
    code, built = cli(
        "index", "build", catalogue, "--manifest", manifest, "--index", index, *RUNTIME
    )
    assert code == 0
    assert built["added"] == 4

    info = stats(cli, index)
    assert (info["items"], info["brands"]) == (4, 2)
    assert info["by_kind"] == {"product": 3, "logo": 1}
    records = {r.item_id: r for r in CatalogIndex.load(index).records()}
    assert {k: (r.brand, r.kind, r.sku) for k, r in records.items()} == {
        "shoe-1": ("Acme", "product", "SKU-1"),
        "shoe-2": ("Acme", "product", "SKU-2"),
        "acme-logo": ("Acme", "logo", None),
        "bag-1": ("Globex", "product", "SKU-9"),
    }
    assert records["bag-1"].source == str(catalogue / "globex" / "item017.png")


def test_index_add_grows_and_stores_identical_files_once(
    cli: Cli, index_copy: Path, catalogue: Path, write_images: ImageWriter, tmp_path: Path
) -> None:
    new = tmp_path / "new"
    write_images(new, [100, 101, 102], prefix="new")
    shutil.copyfile(new / "new102.png", new / "new102_again.png")  # same bytes, other name
    shutil.copyfile(catalogue / "globex" / "item020.png", new / "reupload.png")  # indexed

    code, report = cli("index", "add", new, "--index", index_copy, *RUNTIME)
    assert code == 0
    assert (report["added"], report["duplicates_skipped"], report["errors"]) == (3, 2, [])
    info = stats(cli, index_copy)
    assert (info["items"], info["faiss_vectors"]) == (33, 33)
    assert info["by_kind"] == {"product": 31, "logo": 2}
    grown = CatalogIndex.load(index_copy)
    assert {r.item_id for r in grown.records()} >= {"new100", "new101", "new102"}
    [kept] = index_copy.glob("keypoints-*.npz")
    assert {"new100", "new101", "new102"} <= set(KeypointIndex.load(kept).tags())

    code, report = cli("index", "add", new, "--index", index_copy, *RUNTIME)
    assert code == 0
    assert (report["added"], report["duplicates_skipped"]) == (0, 5)
    assert stats(cli, index_copy)["items"] == 33


@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_removed_item_is_never_matched_again(
    cli: Cli, catalogue: Path, tmp_path: Path, factory: str
) -> None:
    index = tmp_path / "index"
    code, _ = cli("index", "build", catalogue, "--index", index, "--factory", factory, *RUNTIME)
    assert code == 0
    removed = catalogue / "acme" / "item003.png"
    code, data = cli("check", removed, "--index", index, *RUNTIME)
    assert code == 0
    assert data[0]["matches"][0]["item_id"] == "item003"  # before: its own best match

    code, data = cli("index", "remove", "item003", "--index", index)
    assert (code, data) == (0, {"removed": ["item003"], "not_found": []})
    info = stats(cli, index)
    assert info["items"] == 29
    assert info["faiss_vectors"] - info["tombstones"] == 29
    assert CatalogIndex.load(index).get("item003") is None

    # Asking for more neighbours than there are items returns every remaining item.
    code, data = cli("check", removed, "--index", index, "--top-k", "40", *RUNTIME)
    assert code == 0
    ids = [match["item_id"] for match in data[0]["matches"]]
    assert len(ids) == 29
    assert "item003" not in ids
    out = tmp_path / "scores.csv"
    code, _ = cli(
        "score",
        catalogue,
        "--index",
        index,
        "--out",
        out,
        "--format",
        "isc",
        "--top-k",
        "40",
        *RUNTIME,
    )
    assert code == 0
    references = {row["reference_id"] for row in read_csv_rows(out)[1]}
    assert len(references) == 29
    assert "item003" not in references


def test_remove_unknown_id_fails_and_reports_it(cli: Cli, index_copy: Path) -> None:
    code, data = cli("index", "remove", "no-such-item", "--index", index_copy)
    assert (code, data) == (1, {"removed": [], "not_found": ["no-such-item"]})
    assert stats(cli, index_copy)["items"] == 30

    code, data = cli("index", "remove", "item005", "no-such-item", "--index", index_copy)
    assert (code, data) == (1, {"removed": ["item005"], "not_found": ["no-such-item"]})
    assert stats(cli, index_copy)["items"] == 29


# -- check -----------------------------------------------------------------------------------


def test_check_prints_verdicts_with_matches(
    cli: Cli, shared_index: Path, catalogue: Path, listings: tuple[Path, Path]
) -> None:
    images = [
        catalogue / "acme" / "item002.png",
        catalogue / "acme" / "logos" / "item016.png",
        listings[0] / "jpeg007.jpg",
    ]
    code, data = cli("check", *images, "--index", shared_index, "--top-k", "3", *RUNTIME)
    assert code == 0
    assert [entry["image"] for entry in data] == [str(image) for image in images]
    for entry, expected in zip(data, ["item002", "item016", "item007"], strict=True):
        assert entry["label"] in LABELS
        assert len(entry["matches"]) == 3
        assert entry["matches"][0]["item_id"] == expected
        assert entry["score"] == entry["matches"][0]["score"]
        scores = [match["score"] for match in entry["matches"]]
        assert scores == sorted(scores, reverse=True)
    # The catalogue file itself: cosine 1.0, plus a verification bonus when re-ranking is on.
    assert data[0]["score"] >= 1.0 - 1e-4
    assert data[0]["label"] == "copy"
    assert (data[0]["matches"][0]["brand"], data[0]["matches"][0]["kind"]) == ("acme", "product")
    assert (data[1]["matches"][0]["brand"], data[1]["matches"][0]["kind"]) == ("acme", "logo")


def test_check_reports_undecodable_file_and_checks_the_rest(
    cli: Cli, shared_index: Path, catalogue: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture at all\n")
    images = [catalogue / "acme" / "item001.png", broken, catalogue / "globex" / "item021.png"]
    code, data = cli("check", *images, "--index", shared_index, *RUNTIME)
    assert code == 1
    assert len(data) == 3
    assert data[1]["label"] == "error"
    assert data[0]["label"] in LABELS
    assert data[2]["label"] in LABELS
    assert str(broken) in data[1]["error"]
    assert "cannot decode image" in data[1]["error"]
    assert [data[0]["matches"][0]["item_id"], data[2]["matches"][0]["item_id"]] == [
        "item001",
        "item021",
    ]


# -- score + eval ----------------------------------------------------------------------------


def score_isc(cli: Cli, index: Path, listings: Path, out: Path, top_k: int = 5) -> None:
    code, summary = cli(
        "score",
        listings,
        "--index",
        index,
        "--out",
        out,
        "--format",
        "isc",
        "--top-k",
        str(top_k),
        *RUNTIME,
    )
    assert code == 0
    assert (summary["inputs"], summary["scored"], summary["errors"]) == (33, 33, 0)


def test_score_isc_ranks_the_original_first_for_every_copy(
    cli: Cli, shared_index: Path, listings: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "predictions.csv"
    score_isc(cli, shared_index, listings[0], out, top_k=5)
    columns, rows = read_csv_rows(out)
    assert columns == list(ISC_COLUMNS)
    by_query: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for row in rows:
        by_query[row["query_id"]].append((float(row["score"]), row["reference_id"]))
    assert len(by_query) == 33
    assert all(len(hits) == 5 for hits in by_query.values())
    best = {query: max(hits)[1] for query, hits in by_query.items()}
    for seed in COPY_SOURCES:
        for edit in ("resized", "cropped", "jpeg"):
            assert best[f"{edit}{seed:03d}"] == f"item{seed:03d}", edit


def test_eval_of_isc_predictions(
    cli: Cli, shared_index: Path, listings: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "predictions.csv"
    score_isc(cli, shared_index, listings[0], out)
    code, result = cli("eval", out, listings[1], "--json")
    assert code == 0
    assert {"micro_ap", "recall_at_1", "recall_at_10", "recall_at_p90"} <= set(result)
    assert result["recall_at_1"] == 1.0
    assert result["recall_at_10"] == 1.0
    assert 0.8 < result["micro_ap"] <= 1.0
    assert result["num_positives"] == result["num_queries_with_gt"] == 30
    assert result["num_predictions"] == 33 * 5


# -- score: bad inputs, formats, refusal -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_score_turns_each_bad_input_into_an_error_row(
    cli: Cli, shared_index: Path, catalogue: Path, tmp_path: Path, fmt: str
) -> None:
    dump = tmp_path / "dump"
    dump.mkdir()
    shutil.copyfile(catalogue / "acme" / "item001.png", dump / "a_good.png")
    for name, (content, _) in BAD_INPUTS.items():
        (dump / name).write_bytes(content())
    (dump / "h_good.jpg").write_bytes(jpeg_bytes(22))
    last = tmp_path / "z_named.png"  # named on its own, after the folder
    shutil.copyfile(catalogue / "globex" / "item025.png", last)

    out = tmp_path / f"results.{fmt}"
    code, summary = cli(
        "score", dump, last, "--index", shared_index, "--out", out, "--batch-size", "3", *RUNTIME
    )
    assert code == 0
    assert (summary["inputs"], summary["scored"], summary["errors"]) == (9, 3, 6)
    rows = read_rows(out, fmt)
    assert [Path(row["path"]).name for row in rows] == [
        "a_good.png",
        *BAD_INPUTS,
        "h_good.jpg",
        "z_named.png",
    ]
    good = [rows[0], rows[-2], rows[-1]]
    for row, expected in zip(good, ["item001", "item022", "item025"], strict=True):
        assert row["label"] in LABELS
        assert row["error"] in (None, "")
        assert float(row["score"]) > 0.5
        assert row["top_item_id"] == expected
        assert row["matches"][0]["item_id"] == expected
    for row, (_, words) in zip(rows[1:-2], BAD_INPUTS.values(), strict=True):
        assert row["label"] == "error"
        assert row["score"] in (None, "")
        assert row["matches"] == []
        for word in words:
            assert word in row["error"], row["error"]


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [
        ("out.csv", None, "csv"),
        ("out.jsonl", None, "jsonl"),
        ("out.parquet", None, "parquet"),
        ("out.results", None, "parquet"),
        ("out.jsonl", "csv", "csv"),
    ],
)
def test_score_format_follows_the_out_extension(
    cli: Cli,
    shared_index: Path,
    catalogue: Path,
    tmp_path: Path,
    name: str,
    explicit: str | None,
    expected: str,
) -> None:
    images = [catalogue / "acme" / "item004.png", catalogue / "globex" / "item018.png"]
    out = tmp_path / name
    chosen = ("--format", explicit) if explicit else ()
    code, _ = cli(
        "score", *images, "--index", shared_index, "--out", out, "--top-k", "2", *chosen, *RUNTIME
    )
    assert code == 0
    rows = read_rows(out, expected)
    assert [row["top_item_id"] for row in rows] == ["item004", "item018"]
    for row in rows:
        assert row["label"] in LABELS
        assert row["matches"][0]["item_id"] == row["top_item_id"]
        assert len(row["matches"]) == 2
        assert isinstance(row["matches"][0]["score"], float)
    if expected != "csv":
        assert set(rows[0]["matches"][0]) >= {"item_id", "score", "brand", "kind", "sku"}
    assert rows[0]["top_brand"] == "acme"


@pytest.mark.parametrize("name", ["results.csv", "results.parquet"])
def test_score_refuses_to_overwrite_a_file_without_journal(
    cli: Cli, shared_index: Path, catalogue: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    out.write_bytes(b"somebody's precious results\n")
    code, printed = cli(
        "score", catalogue / "acme" / "item000.png", "--index", shared_index, "--out", out, *RUNTIME
    )
    assert (code, printed) == (2, None)
    assert out.read_bytes() == b"somebody's precious results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_resume_without_format_keeps_an_isc_file_isc(
    cli: Cli, shared_index: Path, catalogue: Path, tmp_path: Path
) -> None:
    out = tmp_path / "predictions.csv"
    first, second = catalogue / "acme" / "item000.png", catalogue / "acme" / "item001.png"
    cli("score", first, "--index", shared_index, "--out", out, "--format", "isc", *RUNTIME)
    cli("score", first, second, "--index", shared_index, "--out", out, *RUNTIME)  # no --format
    with out.open(newline="") as handle:
        assert all(len(row) == len(ISC_COLUMNS) for row in csv.reader(handle))


def test_score_files_from_a_list_then_report(
    cli: Cli, shared_index: Path, catalogue: Path, tmp_path: Path
) -> None:
    """`score --files-from` reads a list (relative to its folder, comments skipped); `report`
    turns the results into one self-contained HTML page."""
    listing = catalogue / "files.txt"
    listing.write_text("# tonight's dump\nacme/item004.png\n\nglobex/item018.png\n")
    out = tmp_path / "scores.parquet"
    code, summary = cli(
        "score", "--files-from", listing, "--index", shared_index, "--out", out, *RUNTIME
    )
    assert code == 0
    assert (summary["inputs"], summary["scored"], summary["errors"]) == (2, 2, 0)
    assert [row["top_item_id"] for row in read_rows(out, "parquet")] == ["item004", "item018"]

    page = tmp_path / "report.html"
    code, report = cli("report", out, "--out", page, "--top", "5")
    assert code == 0
    assert report["rows"] == 2 and report["out"] == str(page)
    html = page.read_text()
    assert "data:image/jpeg;base64," in html and "item004" in html


def test_score_without_inputs_is_refused(cli: Cli, shared_index: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="name inputs"):
        cli("score", "--index", shared_index, "--out", tmp_path / "x.parquet", *RUNTIME)
