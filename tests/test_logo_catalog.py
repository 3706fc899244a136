"""LogoCatalog (logo vectors + clean renderings) and the index attachments it relies on."""

from __future__ import annotations

import hashlib
import io
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from logo_helpers import (
    SVG_LOGO,
    draw_logos,
    logo_entries,
    one_torch_thread,
    write_logo_files,
    write_logo_model,
)
from lookalike.data.manifest import CatalogEntry
from lookalike.embeddings import EmbedderMismatchError, Embeddings, ModelFingerprint
from lookalike.index import CatalogIndex, CatalogItem
from lookalike.index.catalog import current_snapshot
from lookalike.logos.catalog import (
    REFERENCE_SIDE,
    LogoCatalog,
    embed_windows,
    has_logo_index,
    logo_index_dir,
)
from lookalike.logos.matcher import LogoMatcher
from lookalike.logos.network import load_logo_model
from lookalike.logos.windows import logo_window


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def new_catalog(logo_model_path: Path) -> LogoCatalog:
    return LogoCatalog(load_logo_model(logo_model_path), model_ref=str(logo_model_path))


def search_rows(catalog: LogoCatalog, logo: Image.Image) -> list[tuple[str, float]]:
    """The catalogue's answer to one clean logo window: (item id, score) best first."""
    vectors = embed_windows(catalog.model, logo_window(logo, catalog.model.config.input_size)[None])
    hits = catalog.index.search(Embeddings(vectors, catalog.model.fingerprint), len(catalog))
    return [(hit.record.item_id, round(hit.score, 5)) for hit in hits[0]]


# -- adding --------------------------------------------------------------------------------------


def test_add_png_with_alpha_and_an_svg(logo_model_path: Path, tmp_path: Path) -> None:
    paths = write_logo_files(tmp_path / "logos")
    svg = tmp_path / "mark.svg"
    svg.write_text(SVG_LOGO)
    catalog = new_catalog(logo_model_path)
    report = catalog.add([*logo_entries(paths), CatalogEntry(svg, "mark", "globex", "logo")])
    assert sorted(report.added) == ["badge", "mark", "shapes", "wordmark"]
    assert report.errors == [] and report.duplicates == []
    assert len(catalog) == 4
    assert report.summary() == {"added": 4, "duplicates_skipped": 0, "errors": []}
    record = catalog.index.get("mark")
    assert record is not None
    assert (record.kind, record.brand, record.source) == ("logo", "globex", str(svg))
    assert record.sha256 == hashlib.sha256(svg.read_bytes()).hexdigest()
    for item_id in ("wordmark", "mark"):
        rendering = catalog.rendering(catalog.index.get(item_id))  # type: ignore[arg-type]
        assert rendering.mode == "RGBA" and max(rendering.size) == REFERENCE_SIDE
        alpha = np.asarray(rendering.getchannel("A"))
        assert alpha.min() == 0 and alpha.max() == 255  # transparent around the logo
    # the SVG's red disc survives rendering
    mark = np.asarray(catalog.rendering(catalog.index.get("mark")))  # type: ignore[arg-type]
    assert ((mark[..., 0] > 150) & (mark[..., 1] < 80) & (mark[..., 3] == 255)).any()


def test_duplicate_files_are_skipped(logo_model_path: Path, tmp_path: Path) -> None:
    paths = write_logo_files(tmp_path / "logos")
    copy = tmp_path / "copy_of_badge.png"
    copy.write_bytes(paths[1].read_bytes())
    catalog = new_catalog(logo_model_path)
    report = catalog.add(logo_entries([*paths, copy]))
    assert report.duplicates == [("copy_of_badge", "badge")]
    assert len(catalog) == 3 and catalog.index.get("copy_of_badge") is None
    again = catalog.add(logo_entries(paths[:1]))
    assert again.added == [] and again.duplicates == [("wordmark", "wordmark")]
    assert len(catalog) == 3


def test_unreadable_files_are_reported_not_raised(logo_model_path: Path, tmp_path: Path) -> None:
    paths = write_logo_files(tmp_path / "logos")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    blank = tmp_path / "blank.png"
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(blank)  # nothing visible
    broken_svg = tmp_path / "broken.svg"
    broken_svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'><rect width=")
    missing = tmp_path / "missing.png"
    bad = [corrupt, blank, broken_svg, missing]
    catalog = new_catalog(logo_model_path)
    report = catalog.add(logo_entries([*bad, paths[0]]))
    assert report.added == ["wordmark"]
    assert [error[0] for error in report.errors] == [str(p) for p in bad]
    assert all(reason for _, reason in report.errors)
    assert len(report.summary()["errors"]) == 4  # type: ignore[arg-type]
    only_bad = new_catalog(logo_model_path).add(logo_entries(bad))
    assert only_bad.added == [] and len(only_bad.errors) == 4


def test_an_svg_starting_with_a_comment_is_indexed(logo_model_path: Path, tmp_path: Path) -> None:
    """Many exported SVGs open with a comment (``<!-- Generator: ... -->``). render_logo
    recognises SVG files by their suffix, but LogoCatalog.add hands it the file's bytes, so
    the suffix is lost and the sniffing (``<?xml`` / ``<svg`` at the start) fails."""
    svg = tmp_path / "commented.svg"
    svg.write_text("<!-- Generator: a vector editor -->\n" + SVG_LOGO.split("\n", 1)[1])
    report = new_catalog(logo_model_path).add([CatalogEntry(svg, "commented", None, "logo")])
    assert report.errors == []
    assert report.added == ["commented"]


# -- saving, loading, removing -------------------------------------------------------------------


def test_save_load_round_trip_keeps_renderings_and_vectors(
    logo_model_path: Path, tmp_path: Path
) -> None:
    logo_folder = tmp_path / "logos"
    catalog = new_catalog(logo_model_path)
    catalog.add(logo_entries(write_logo_files(logo_folder)))
    originals = {
        name: np.asarray(catalog.rendering(catalog.index.get(name)))  # type: ignore[arg-type]
        for name in ("wordmark", "badge", "shapes")
    }
    probe = draw_logos()["badge"]
    before = search_rows(catalog, probe)
    catalog.save(tmp_path / "index" / "logos")
    assert has_logo_index(tmp_path / "index")
    assert logo_index_dir(tmp_path / "index") == tmp_path / "index" / "logos"
    # the catalogue files go away: the renderings live in the snapshot
    for path in logo_folder.iterdir():
        path.unlink()
    loaded = LogoCatalog.load(logo_index_dir(tmp_path / "index"))  # rebuilds the recorded model
    assert loaded.model_ref == str(logo_model_path)
    assert loaded.model.fingerprint == catalog.model.fingerprint
    assert len(loaded) == 3
    for name, pixels in originals.items():
        record = loaded.index.get(name)
        assert record is not None
        np.testing.assert_array_equal(np.asarray(loaded.rendering(record)), pixels)
    assert search_rows(loaded, probe) == before


def test_load_with_an_explicit_model(logo_model_path: Path, tmp_path: Path) -> None:
    catalog = new_catalog(logo_model_path)
    catalog.add(logo_entries(write_logo_files(tmp_path / "logos")[:1]))
    catalog.save(tmp_path / "logos_index")
    model = load_logo_model(logo_model_path)
    loaded = LogoCatalog.load(tmp_path / "logos_index", model)
    assert loaded.model is model and len(loaded) == 1


def test_a_catalogue_refuses_another_models_vectors(logo_model_path: Path, tmp_path: Path) -> None:
    catalog = new_catalog(logo_model_path)
    catalog.add(logo_entries(write_logo_files(tmp_path / "logos")[:1]))
    other = ModelFingerprint("lookalike-logo", "0" * 64, 128)
    with pytest.raises(EmbedderMismatchError):
        catalog.index.search(Embeddings(np.zeros((1, 128), np.float32), other), 1)


def test_a_loaded_catalogue_with_another_model_refuses_to_search(
    logo_model_path: Path, tmp_path: Path
) -> None:
    catalog = new_catalog(logo_model_path)
    catalog.add(logo_entries(write_logo_files(tmp_path / "logos")[:2]))
    catalog.save(tmp_path / "logos_index")
    other = load_logo_model(write_logo_model(tmp_path / "other.pt", seed=5))
    with pytest.raises(EmbedderMismatchError):
        LogoMatcher(LogoCatalog.load(tmp_path / "logos_index", other)).match(
            Image.new("RGB", (120, 90), "white")
        )


def test_remove_drops_vector_rendering_and_attachment(
    logo_model_path: Path, tmp_path: Path
) -> None:
    catalog = new_catalog(logo_model_path)
    catalog.add(logo_entries(write_logo_files(tmp_path / "logos")))
    record = catalog.index.get("badge")
    assert record is not None
    catalog.rendering(record)  # cached
    assert catalog.remove(["badge", "nope"]) == ["badge"]
    assert len(catalog) == 2 and catalog.index.get("badge") is None
    assert catalog.index.attachment("badge") is None
    assert "badge" not in catalog._renderings
    catalog.save(tmp_path / "saved")
    reloaded = LogoCatalog.load(tmp_path / "saved")
    assert reloaded.index.attachment("badge") is None
    assert reloaded.index.attachment("shapes") is not None
    assert [r.item_id for r in reloaded.index.records()] == ["wordmark", "shapes"]


def test_rendering_falls_back_to_the_source_file(logo_model_path: Path, tmp_path: Path) -> None:
    """An item indexed by hand without a rendering is drawn from its file."""
    catalog = new_catalog(logo_model_path)
    path = write_logo_files(tmp_path / "logos")[0]
    vector = np.eye(1, 128, dtype=np.float32)
    item = CatalogItem("by-hand", "f" * 64, None, "logo", None, str(path))
    catalog.index.add(Embeddings(vector, catalog.model.fingerprint), [item])
    rendering = catalog.rendering(catalog.index.get("by-hand"))  # type: ignore[arg-type]
    assert rendering.mode == "RGBA" and max(rendering.size) == REFERENCE_SIDE


def test_has_logo_index(tmp_path: Path) -> None:
    assert not has_logo_index(tmp_path)
    (tmp_path / "logos").mkdir()
    assert not has_logo_index(tmp_path)


# -- CatalogIndex attachments --------------------------------------------------------------------

MODEL = ModelFingerprint("test-model", "a" * 64, 4)


def small_index(count: int = 3, *, with_attachments: bool = True) -> CatalogIndex:
    index = CatalogIndex(MODEL)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(count, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [CatalogItem(f"item{n}", f"{n:064x}", "acme", "logo") for n in range(count)]
    attachments = [f"blob {n}".encode() * (n + 1) for n in range(count)]
    index.add(Embeddings(vectors, MODEL), items, attachments if with_attachments else None)
    return index


def one_vector(seed: int) -> Embeddings:
    vector = np.random.default_rng(seed).normal(size=(1, 4)).astype(np.float32)
    return Embeddings(vector / np.linalg.norm(vector), MODEL)


def test_attachments_are_kept_per_item() -> None:
    index = small_index()
    assert index.attachment("item1") == b"blob 1blob 1"
    assert index.attachment("missing") is None
    assert small_index(with_attachments=False).attachment("item1") is None
    with pytest.raises(ValueError, match="attachments"):
        index.add(one_vector(5), [CatalogItem("x", "e" * 64, None, "logo")], [b"a", b"b"])


def test_attachments_of_duplicates_are_not_stored() -> None:
    index = small_index()
    duplicate = CatalogItem("again", f"{0:064x}", None, "logo")  # item0's sha256
    report = index.add(one_vector(5), [duplicate], [b"other bytes"])
    assert report.duplicates == [("again", "item0")]
    assert index.attachment("again") is None and index.attachment("item0") == b"blob 0"


def test_attachments_survive_save_and_load(tmp_path: Path) -> None:
    index = small_index()
    index.save(tmp_path / "idx")
    loaded = CatalogIndex.load(tmp_path / "idx")
    assert [loaded.attachment(f"item{n}") for n in range(3)] == [
        b"blob 0",
        b"blob 1blob 1",
        b"blob 2blob 2blob 2",
    ]
    loaded.remove(["item0"])
    loaded.save(tmp_path / "idx")
    again = CatalogIndex.load(tmp_path / "idx")
    assert again.attachment("item0") is None and again.attachment("item2") is not None


def test_attachments_survive_pickling() -> None:
    index = small_index()
    clone = pickle.loads(pickle.dumps(index))
    assert clone.attachment("item2") == b"blob 2blob 2blob 2"
    clone.add(one_vector(7), [CatalogItem("new", "d" * 64, None, "logo")], [b"new blob"])
    assert clone.attachment("new") == b"new blob"
    assert index.attachment("new") is None  # the original is untouched


def test_snapshot_from_before_attachments_still_loads(tmp_path: Path) -> None:
    index = small_index(with_attachments=False)
    index.save(tmp_path / "idx")
    snapshot = current_snapshot(tmp_path / "idx")
    with sqlite3.connect(snapshot / "catalog.sqlite") as db:
        db.execute("DROP TABLE attachments")
    with sqlite3.connect(snapshot / "catalog.sqlite") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "attachments" not in tables
    old = CatalogIndex.load(tmp_path / "idx")
    assert len(old) == 3 and old.attachment("item0") is None
    hits = old.search(one_vector(1), 3)[0]
    assert len(hits) == 3
    old.add(one_vector(8), [CatalogItem("later", "c" * 64, None, "logo")], [b"later blob"])
    assert old.attachment("later") == b"later blob"
    assert old.remove(["item1"]) == ["item1"]
    old.save(tmp_path / "idx")
    assert CatalogIndex.load(tmp_path / "idx").attachment("later") == b"later blob"
    # and the same through pickling of an index loaded from the old snapshot
    assert pickle.loads(pickle.dumps(old)).attachment("later") == b"later blob"


def test_old_logo_catalogue_without_renderings_renders_from_files(
    logo_model_path: Path, tmp_path: Path
) -> None:
    """A logo catalogue saved before renderings were stored falls back to the logo files."""
    catalog = new_catalog(logo_model_path)
    catalog.add(logo_entries(write_logo_files(tmp_path / "logos")))
    expected = np.asarray(catalog.rendering(catalog.index.get("shapes")))  # type: ignore[arg-type]
    catalog.save(tmp_path / "logos_index")
    with sqlite3.connect(current_snapshot(tmp_path / "logos_index") / "catalog.sqlite") as db:
        db.execute("DROP TABLE attachments")
    loaded = LogoCatalog.load(tmp_path / "logos_index")
    rendering = loaded.rendering(loaded.index.get("shapes"))  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.asarray(rendering), expected)


def test_stored_renderings_are_png(logo_model_path: Path, tmp_path: Path) -> None:
    catalog = new_catalog(logo_model_path)
    catalog.add(logo_entries(write_logo_files(tmp_path / "logos")[:1]))
    data = catalog.index.attachment("wordmark")
    assert data is not None and data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"
