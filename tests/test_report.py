"""Tests for lookalike.report: the self-contained HTML review page of a scoring batch."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from lookalike import report
from lookalike.embeddings import Embeddings, ModelFingerprint
from lookalike.index import CatalogIndex, CatalogItem
from lookalike.report import ReportSummary, read_results, write_report
from lookalike.scoring import parquet_schema

Row = dict[str, Any]
SCALAR_COLUMNS = (
    "path",
    "query_id",
    "label",
    "score",
    "expected_precision",
    "top_item_id",
    "top_brand",
    "top_kind",
    "error",
    "decode_ms",
    "embed_ms",
    "search_ms",
)
GREY = (128, 128, 128)
# A logo region in the 400x300 listing: its outline lands on x=50..150, y=37..112 at 200 px.
BOX = [[100.0, 75.0], [300.0, 75.0], [300.0, 225.0], [100.0, 225.0]]

# The schema `lookalike score` writes: a report must read what scoring writes.
PARQUET_SCHEMA = parquet_schema()


# -- building inputs ---------------------------------------------------------------------------


def save_picture(
    path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (400, 300)
) -> Path:
    """A flat background with a white disc: enough to tell pictures apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((10, 10, size[0] // 3, size[1] // 3), fill=(255, 255, 255))
    image.save(path)
    return path


def match(
    item_id: str,
    score: float,
    *,
    brand: str | None = "Acme",
    source: Path | str | None = None,
    region: list[list[float]] | None = None,
) -> Row:
    return {
        "item_id": item_id,
        "score": score,
        "brand": brand,
        "kind": "logo" if region else "product",
        "sku": f"sku-{item_id}",
        "source": None if source is None else str(source),
        "sha256": "0" * 64,
        "region": region,
    }


def result(
    path: Path | str,
    label: str,
    score: float | None,
    matches: Sequence[Row] = (),
    *,
    error: str | None = None,
    precision: float | None = 0.9,
) -> Row:
    best = matches[0] if matches else None
    key = str(path)
    return {
        "path": key,
        "query_id": Path(key.rsplit("#", 1)[-1]).stem,
        "label": label,
        "score": score,
        "expected_precision": precision if score is not None else None,
        "top_item_id": best["item_id"] if best else None,
        "top_brand": best["brand"] if best else None,
        "top_kind": best["kind"] if best else None,
        "matches": list(matches),
        "error": error,
        "decode_ms": 1.5,
        "embed_ms": None if error else 3.0,
        "search_ms": None if error else 0.5,
    }


def write_jsonl(path: Path, rows: Sequence[Row]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_parquet(path: Path, rows: Sequence[Row]) -> Path:
    pq.write_table(pa.Table.from_pylist(list(rows), schema=PARQUET_SCHEMA), path)
    return path


def write_csv(path: Path, rows: Sequence[Row]) -> Path:
    """As ``lookalike score`` writes CSV: matches are a JSON string of id, score and brand."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*SCALAR_COLUMNS, "matches"])
        for row in rows:
            slim = [{k: m[k] for k in ("item_id", "score", "brand")} for m in row["matches"]]
            values = ["" if row[c] is None else row[c] for c in SCALAR_COLUMNS]
            writer.writerow([*values, json.dumps(slim)])
    return path


WRITERS: dict[str, Callable[[Path, Sequence[Row]], Path]] = {
    "jsonl": write_jsonl,
    "parquet": write_parquet,
    "csv": write_csv,
}


@pytest.fixture
def batch(tmp_path: Path) -> list[Row]:
    """Six rows: two copies, one review (with a logo region), one clear, two errors."""
    listings = tmp_path / "listings"
    catalogue = tmp_path / "catalogue"
    shoe = save_picture(catalogue / "shoe.png", (200, 40, 40))
    bag = save_picture(catalogue / "bag.png", (40, 40, 200))
    logo = save_picture(catalogue / "logo.png", (40, 160, 40), (120, 120))
    return [
        result(save_picture(listings / "a.jpg", GREY), "review", 0.71,
               [match("logo1", 0.71, brand="Zeta & Co", source=logo, region=BOX)]),
        result(save_picture(listings / "b.jpg", (90, 90, 90)), "copy", 0.97,
               [match("shoe1", 0.97, source=shoe), match("bag1", 0.60, source=bag)]),
        result(save_picture(listings / "c.jpg", (60, 60, 60)), "clear", 0.20,
               [match("bag1", 0.20, source=bag)]),
        result(listings / "broken.jpg", "error", None, error="cannot decode image: truncated"),
        result(save_picture(listings / "d.jpg", (30, 30, 30)), "copy", 0.88,
               [match("bag1", 0.88, source=bag)], precision=None),
        result(listings / "gone.jpg", "error", None, error="file not found"),
    ]  # fmt: skip


def html_of(out: Path) -> str:
    return out.read_text(encoding="utf-8")


def suspect_order(page: str) -> list[str]:
    """Query ids of the suspect cards, in page order."""
    return re.findall(r'<article class="suspect[^"]*".*?query <code>([^<]*)</code>', page)


def listing_thumbnail(page: str, rank: int = 1) -> Image.Image:
    card = page.split(f'id="suspect-{rank}"', 1)[1]
    found = re.search(r'<figure class="listing"><img class="thumb" src="data:image/jpeg;base64,'
                      r'([^"]+)"', card)  # fmt: skip
    assert found, "the listing has no thumbnail"
    return Image.open(io.BytesIO(base64.b64decode(found.group(1)))).convert("RGB")


def small_index(folder: Path, items: Sequence[tuple[str, str, Path]]) -> Path:
    """A real saved index of (item_id, brand, source) with stand-in vectors: no model needed."""
    fingerprint = ModelFingerprint("test-model", "f" * 64, 8)
    index = CatalogIndex(fingerprint)
    vectors = np.eye(8, dtype=np.float32)[: len(items)]
    catalogue = [
        CatalogItem(item_id, f"{n:064x}", brand, "product", f"SKU-{item_id}", str(source))
        for n, (item_id, brand, source) in enumerate(items)
    ]
    index.add(Embeddings(vectors, fingerprint), catalogue)
    index.save(folder)
    return folder


# -- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_each_format_gives_the_same_counts_and_order(
    fmt: str, batch: list[Row], tmp_path: Path
) -> None:
    results = WRITERS[fmt](tmp_path / f"results.{fmt}", batch)
    out = tmp_path / "report.html"

    summary = write_report(results, out)

    assert summary == ReportSummary(
        rows=6,
        errors=2,
        suspects_shown=3,
        counts_by_label={"copy": 2, "logo": 0, "review": 1, "clear": 1, "error": 2},
        counts_by_brand={"Acme": 2, "Zeta & Co": 1},
    )
    assert summary.to_dict()["counts_by_brand"] == {"Acme": 2, "Zeta & Co": 1}
    page = html_of(out)
    # calibrated suspects (expected precision) first, then by score
    assert suspect_order(page) == ["b", "a", "d"]
    assert f"results.{fmt}" in page
    assert "90.0%" in page and "uncalibrated" in page  # expected precision
    assert "Zeta &amp; Co" in page


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_read_results_normalises_every_format(fmt: str, batch: list[Row], tmp_path: Path) -> None:
    rows = read_results(WRITERS[fmt](tmp_path / f"results.{fmt}", batch))

    assert [r["label"] for r in rows] == [r["label"] for r in batch]
    assert rows[0]["score"] == pytest.approx(0.71)
    assert rows[3]["score"] is None and rows[3]["error"] == "cannot decode image: truncated"
    assert rows[0]["matches"][0]["item_id"] == "logo1"
    assert rows[0]["matches"][0]["brand"] == "Zeta & Co"
    assert rows[0]["decode_ms"] == pytest.approx(1.5)
    assert rows[3]["embed_ms"] is None
    if fmt != "csv":  # CSV keeps only id, score and brand per match
        assert rows[0]["matches"][0]["region"] == [tuple(p) for p in BOX]
        assert rows[1]["matches"][0]["source"].endswith("shoe.png")


def test_unknown_extension_and_isc_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown results format"):
        write_report(tmp_path / "results.txt", tmp_path / "r.html")
    isc = tmp_path / "isc.csv"
    isc.write_text("query_id,reference_id,score\nq1,item1,0.9\n")
    with pytest.raises(ValueError, match="ISC"):
        write_report(isc, tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_a_torn_last_jsonl_line_is_ignored(batch: list[Row], tmp_path: Path) -> None:
    results = write_jsonl(tmp_path / "results.jsonl", batch)
    with results.open("a") as handle:
        handle.write('{"path": "/half/writ')  # the batch is still running
    summary = write_report(results, tmp_path / "report.html")
    assert summary.rows == len(batch)


def test_a_results_file_without_rows_still_renders(tmp_path: Path) -> None:
    results = write_jsonl(tmp_path / "results.jsonl", [])
    summary = write_report(results, tmp_path / "report.html")
    assert summary.rows == 0 and summary.suspects_shown == 0
    assert "No scores to plot" in html_of(tmp_path / "report.html")


# -- pictures ----------------------------------------------------------------------------------


def test_a_listing_inside_a_tar_shard_is_shown(tmp_path: Path) -> None:
    picture = save_picture(tmp_path / "x.jpg", (10, 120, 200))
    catalogue = save_picture(tmp_path / "cat.png", (10, 120, 200))
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as archive:
        archive.add(save_picture(tmp_path / "other.jpg", GREY), arcname="dir/other.jpg")
        archive.add(picture, arcname="dir/x.jpg")
    key = f"{shard}#dir/x.jpg"
    results = write_jsonl(
        tmp_path / "results.jsonl", [result(key, "copy", 0.9, [match("i1", 0.9, source=catalogue)])]
    )

    write_report(results, tmp_path / "report.html")

    page = html_of(tmp_path / "report.html")
    assert "image unavailable" not in page
    assert page.count('src="data:image/jpeg;base64,') == 2  # listing + catalogue
    assert f"<code>{key}</code>" in page
    assert listing_thumbnail(page).getpixel((150, 100))[2] > 150  # the blue picture


def test_missing_pictures_become_placeholders(tmp_path: Path) -> None:
    listing = save_picture(tmp_path / "listing.jpg", GREY)
    corrupt = save_picture(tmp_path / "corrupt.png", (200, 40, 40))
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated mid-pixels
    rows = [
        result(tmp_path / "no-such-listing.jpg", "copy", 0.9,
               [match("i1", 0.9, source=tmp_path / "no-such-catalogue.png")]),
        result(listing, "review", 0.8, [match("i2", 0.8, source=corrupt)]),
        result(f"{tmp_path / 'missing.tar'}#dir/x.jpg", "review", 0.7, [match("i3", 0.7)]),
    ]  # fmt: skip

    summary = write_report(write_jsonl(tmp_path / "r.jsonl", rows), tmp_path / "report.html")

    page = html_of(tmp_path / "report.html")
    assert summary.suspects_shown == 3
    assert page.count("image unavailable: file not found") == 3  # 2 listings + 1 catalogue
    assert "image unavailable: corrupt or truncated image data" in page
    assert "image unavailable: no catalogue file recorded" in page  # i3 has no source
    assert page.count('src="data:image/jpeg;base64,') == 1  # only the good listing


def test_the_best_matchs_region_is_outlined(tmp_path: Path) -> None:
    listing = save_picture(tmp_path / "listing.png", GREY)
    rows = [
        result(listing, "copy", 0.9, [match("logo1", 0.9, region=BOX)]),
        result(listing, "review", 0.8, [match("shoe1", 0.8)]),
        # Two points are a box's opposite corners; the same box as BOX.
        result(listing, "review", 0.7, [match("logo2", 0.7, region=[BOX[0], BOX[2]])]),
    ]
    results = write_parquet(tmp_path / "r.parquet", rows)

    write_report(results, tmp_path / "report.html", thumb_side=200)

    page = html_of(tmp_path / "report.html")
    boxed, plain, corners = (listing_thumbnail(page, rank) for rank in (1, 2, 3))
    assert boxed.size == (200, 150)
    red, green, _ = boxed.getpixel((50, 75))  # on the box's left edge
    assert red > 150 and green < 100
    assert _is_grey(boxed.getpixel((100, 75)))  # the inside is untouched
    assert _is_grey(plain.getpixel((50, 75)))
    assert corners.getpixel((50, 75))[0] > 150  # review: drawn in orange
    assert page.count("(matched region outlined)") == 2


def _is_grey(pixel: tuple[int, int, int]) -> bool:
    return all(abs(channel - GREY[0]) < 20 for channel in pixel)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_catalogue_pictures_come_from_the_index(fmt: str, tmp_path: Path) -> None:
    shoe = save_picture(tmp_path / "catalogue" / "shoe.png", (200, 40, 40))
    index = small_index(tmp_path / "index", [("shoe1", "Acme", shoe)])
    listing = save_picture(tmp_path / "listing.jpg", GREY)
    unknown = match("not-indexed", 0.5, brand=None)
    rows = [result(listing, "copy", 0.9, [match("shoe1", 0.9, brand=None), unknown])]
    results = WRITERS[fmt](tmp_path / f"r.{fmt}", rows)

    write_report(results, tmp_path / "without.html")
    write_report(results, tmp_path / "with.html", index_dir=index)

    without, with_index = html_of(tmp_path / "without.html"), html_of(tmp_path / "with.html")
    assert without.count("no catalogue file recorded") == 2
    assert with_index.count("no catalogue file recorded") == 1  # the unindexed match
    assert with_index.count('src="data:image/jpeg;base64,') == 2
    assert "brand Acme" in with_index  # what the results lack comes from the index
    # ... but what they hold wins: only CSV lacks the sku.
    assert ("sku SKU-shoe1" in with_index) == (fmt == "csv")


def test_only_the_top_suspects_are_read_and_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = save_picture(tmp_path / "listing.jpg", GREY)
    catalogue = save_picture(tmp_path / "cat.png", (200, 40, 40))
    scores = [0.55, 0.93, 0.61, 0.99, 0.75, 0.80, 0.93]
    rows = [
        result(str(listing).replace("listing", f"q{n}-listing"), "copy" if s > 0.9 else "review",
               s, [match(f"i{n}", s, source=catalogue)])
        for n, s in enumerate(scores)
    ]  # fmt: skip
    rows += [result(listing, "clear", 0.999, [match("i9", 0.999, source=catalogue)])] * 50
    reads: list[str] = []
    monkeypatch.setattr(
        report, "read_inputs_bytes", lambda keys: {k: reads.append(k) or b"" for k in keys}
    )
    results = write_parquet(tmp_path / "r.parquet", rows)

    summary = write_report(results, tmp_path / "report.html", top=3)

    # Highest score first; of the two 0.93s, the earlier row first.
    assert suspect_order(html_of(tmp_path / "report.html")) == [
        "q3-listing", "q1-listing", "q6-listing"
    ]  # fmt: skip
    assert len(reads) == 3
    assert summary.suspects_shown == 3
    assert summary.counts_by_label["clear"] == 50
    assert "showing 3 of 7 copy/review rows" in html_of(tmp_path / "report.html")


def test_top_zero_shows_no_suspects(batch: list[Row], tmp_path: Path) -> None:
    summary = write_report(write_jsonl(tmp_path / "r.jsonl", batch), tmp_path / "o.html", top=0)
    assert summary.suspects_shown == 0
    assert suspect_order(html_of(tmp_path / "o.html")) == []


# -- the page ----------------------------------------------------------------------------------


def test_header_shows_counts_and_a_histogram(batch: list[Row], tmp_path: Path) -> None:
    write_report(write_jsonl(tmp_path / "r.jsonl", batch), tmp_path / "report.html")
    page = html_of(tmp_path / "report.html")
    label_rows = dict(re.findall(r'<span class="badge (\w+)">\1</span></td><td>([\d,]+)<', page))
    assert label_rows == {"copy": "2", "logo": "0", "review": "1", "clear": "1", "error": "2"}
    assert "<td>Acme</td><td>2</td>" in page
    assert '<svg class="histogram"' in page and ">score</text>" in page
    assert page.count("<rect ") == 4  # one bar per occupied bin and label
    assert "Errors (2)" in page and "cannot decode image: truncated" in page


def test_errors_list_only_the_first_twenty(tmp_path: Path) -> None:
    rows = [result(f"/data/bad{n:02d}.jpg", "error", None, error=f"oops {n}") for n in range(25)]
    summary = write_report(write_jsonl(tmp_path / "r.jsonl", rows), tmp_path / "report.html")
    page = html_of(tmp_path / "report.html")
    assert summary.errors == 25
    assert "Errors (25)" in page and "first 20 of 25" in page
    assert "/data/bad19.jpg" in page and "/data/bad20.jpg" not in page


def test_every_value_is_escaped(tmp_path: Path) -> None:
    hostile = f"{tmp_path}/<script>alert('x')</script>&\"q\".jpg"
    rows = [
        result(
            hostile, "copy", 0.9, [match("<img src=x onerror=alert(1)>", 0.9, brand="<b>B</b>")]
        ),
        result(hostile, "error", None, error="<script>bad()</script>"),
    ]
    write_report(write_jsonl(tmp_path / "r.jsonl", rows), tmp_path / "report.html")
    page = html_of(tmp_path / "report.html")
    assert "<script" not in page
    assert "<img src=x" not in page and "<b>B</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;q&quot;.jpg" in page


def test_the_page_fetches_nothing(batch: list[Row], tmp_path: Path) -> None:
    write_report(write_jsonl(tmp_path / "r.jsonl", batch), tmp_path / "report.html")
    page = html_of(tmp_path / "report.html")
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "Content-Security-Policy" in page and "<script" not in page


def test_the_output_is_replaced_atomically(
    batch: list[Row], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = write_jsonl(tmp_path / "r.jsonl", batch)
    out_dir = tmp_path / "out"
    out = out_dir / "report.html"
    out_dir.mkdir()
    out.write_text("old page")

    write_report(results, out)
    assert html_of(out).startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.html"]

    out.write_text("old page")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(results, out)
    assert html_of(out) == "old page"
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.html"]
