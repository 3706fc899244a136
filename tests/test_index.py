"""CatalogIndex against a numpy brute-force oracle, persistence, and crash safety."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from lookalike.embeddings import EmbedderMismatchError, Embeddings, ModelFingerprint
from lookalike.index import CatalogIndex, CatalogIndexError, CatalogItem, DuplicateItemError
from lookalike.index import catalog as catalog_module

DIM = 32
MODEL = ModelFingerprint("test-model", "a" * 64, DIM)


def unit_vectors(count: int, seed: int, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def items(count: int, start: int = 0, brand: str = "acme") -> list[CatalogItem]:
    return [
        CatalogItem(
            f"item{n}",
            sha256=f"{n:064x}",
            brand=brand,
            kind="product",
            sku=f"sku-{n}",
            source=f"/catalogue/{n}.jpg",
        )
        for n in range(start, start + count)
    ]


def filled_index(count: int = 200, factory: str = "Flat") -> tuple[CatalogIndex, np.ndarray]:
    vectors = unit_vectors(count, seed=1)
    index = CatalogIndex(MODEL, factory=factory)
    index.add(Embeddings(vectors, MODEL), items(count))
    return index, vectors


def brute_force(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("num_queries", [1, 50, 300])
def test_flat_search_equals_brute_force(num_queries: int) -> None:
    index, vectors = filled_index()
    queries = unit_vectors(num_queries, seed=2)
    expected_rows, expected_scores = brute_force(queries, vectors, k=7)
    results = index.search(Embeddings(queries, MODEL), k=7)
    for hits, rows, scores in zip(results, expected_rows, expected_scores, strict=True):
        assert [hit.record.item_id for hit in hits] == [f"item{r}" for r in rows]
        np.testing.assert_allclose([hit.score for hit in hits], scores, rtol=0, atol=1e-5)


def test_hnsw_finds_the_exact_neighbour_of_indexed_vectors() -> None:
    index, vectors = filled_index(factory="HNSW32")
    results = index.search(Embeddings(vectors[:20], MODEL), k=1)
    assert [hits[0].record.item_id for hits in results] == [f"item{n}" for n in range(20)]


def test_search_returns_metadata_and_respects_k() -> None:
    index, vectors = filled_index(count=5)
    hits = index.search(Embeddings(vectors[3:4], MODEL), k=10)[0]
    assert len(hits) == 5
    best = hits[0].record
    assert (best.item_id, best.brand, best.kind, best.sku, best.source) == (
        "item3",
        "acme",
        "product",
        "sku-3",
        "/catalogue/3.jpg",
    )
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_empty_index_and_empty_query() -> None:
    index = CatalogIndex(MODEL)
    assert index.search(Embeddings(unit_vectors(2, 0), MODEL), k=3) == [[], []]
    filled, _ = filled_index(count=3)
    assert filled.search(Embeddings(np.zeros((0, DIM), np.float32), MODEL), k=3) == []


def test_save_load_keeps_ids_metadata_and_results(tmp_path: Path) -> None:
    index, vectors = filled_index(count=50)
    index.save(tmp_path / "idx")
    loaded = CatalogIndex.load(tmp_path / "idx")
    assert len(loaded) == 50
    assert loaded.model == MODEL
    assert loaded.get("item7") == index.get("item7")
    queries = Embeddings(unit_vectors(10, seed=5), MODEL)
    before = [[(h.record, h.score) for h in hits] for hits in index.search(queries, 5)]
    after = [[(h.record, h.score) for h in hits] for hits in loaded.search(queries, 5)]
    assert before == after
    # Row ids keep counting after a reload: new items never reuse an old vector slot.
    loaded.add(Embeddings(unit_vectors(1, seed=9), MODEL), items(1, start=50))
    assert loaded.search(Embeddings(vectors[7:8], MODEL), 1)[0][0].record.item_id == "item7"


def test_mismatched_embedder_is_refused() -> None:
    index, _ = filled_index(count=5)
    other = ModelFingerprint("test-model", "b" * 64, DIM)
    with pytest.raises(EmbedderMismatchError, match="built with"):
        index.search(Embeddings(unit_vectors(1, 0), other), k=1)
    with pytest.raises(EmbedderMismatchError):
        index.add(Embeddings(unit_vectors(1, 0), other), items(1, start=99))
    assert len(index) == 5


def test_identical_file_is_stored_once() -> None:
    index, _ = filled_index(count=3)
    twin = CatalogItem("copy-of-item1", sha256=f"{1:064x}")
    report = index.add(Embeddings(unit_vectors(1, 3), MODEL), [twin])
    assert report.added == [] and report.duplicates == [("copy-of-item1", "item1")]
    # ... also within one batch
    pair = [CatalogItem("x", sha256="f" * 64), CatalogItem("y", sha256="f" * 64)]
    report = index.add(Embeddings(unit_vectors(2, 4), MODEL), pair)
    assert report.added == ["x"] and report.duplicates == [("y", "x")]
    assert len(index) == 4


def test_reused_item_id_with_other_content_is_refused() -> None:
    index, _ = filled_index(count=3)
    with pytest.raises(DuplicateItemError, match="item1"):
        index.add(Embeddings(unit_vectors(1, 3), MODEL), [CatalogItem("item1", "e" * 64)])
    assert len(index) == 3


@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_remove(factory: str, tmp_path: Path) -> None:
    index, vectors = filled_index(count=30, factory=factory)
    assert index.remove(["item4", "nope"]) == ["item4"]
    assert index.get("item4") is None and len(index) == 29
    hits = index.search(Embeddings(vectors[4:5], MODEL), k=29)[0]
    assert "item4" not in {hit.record.item_id for hit in hits}
    assert len(hits) == 29
    index.save(tmp_path / "idx")
    reloaded = CatalogIndex.load(tmp_path / "idx")
    hits = reloaded.search(Embeddings(vectors[4:5], MODEL), k=3)[0]
    assert "item4" not in {hit.record.item_id for hit in hits}


def test_ivf_trains_on_first_add_and_explains_too_few_vectors() -> None:
    index = CatalogIndex(MODEL, factory="IVF4,Flat")
    index.add(Embeddings(unit_vectors(200, 1), MODEL), items(200))
    assert (
        index.search(Embeddings(unit_vectors(200, 1)[:1], MODEL), 1)[0][0].record.item_id == "item0"
    )
    too_small = CatalogIndex(MODEL, factory="IVF64,Flat")
    with pytest.raises(CatalogIndexError, match="must be trained"):
        too_small.add(Embeddings(unit_vectors(10, 1), MODEL), items(10))


def test_bad_factory_string() -> None:
    with pytest.raises(ValueError, match="factory"):
        CatalogIndex(MODEL, factory="NotAnIndex")


def test_records_paging_and_filters() -> None:
    index = CatalogIndex(MODEL)
    index.add(Embeddings(unit_vectors(6, 1), MODEL), items(3, brand="acme") + items(3, 3, "zeta"))
    assert [r.item_id for r in index.records(brand="zeta")] == ["item3", "item4", "item5"]
    assert [r.item_id for r in index.records(limit=2, offset=1)] == ["item1", "item2"]
    assert index.stats()["brands"] == 2


def test_crash_before_publish_keeps_previous_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = filled_index(count=10)
    index.save(tmp_path / "idx")
    index.add(Embeddings(unit_vectors(5, 7), MODEL), items(5, start=10))

    def crash(root: Path, name: str) -> None:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(catalog_module, "_publish_snapshot", crash)
    with pytest.raises(KeyboardInterrupt):
        index.save(tmp_path / "idx")
    monkeypatch.undo()
    assert len(CatalogIndex.load(tmp_path / "idx")) == 10
    index.save(tmp_path / "idx")  # the next save succeeds and cleans up
    assert len(CatalogIndex.load(tmp_path / "idx")) == 15
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["CURRENT", "snapshot-000003"]


def test_crash_while_writing_vectors_keeps_previous_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = filled_index(count=10)
    index.save(tmp_path / "idx")
    index.add(Embeddings(unit_vectors(5, 7), MODEL), items(5, start=10))
    real_write = faiss.write_index

    def half_write(faiss_index: faiss.Index, path: str) -> None:
        real_write(faiss_index, path)
        with open(path, "r+b") as handle:  # leave a torn file behind, as a crash would
            handle.truncate(100)
        raise OSError("disk full")

    monkeypatch.setattr(catalog_module.faiss, "write_index", half_write)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "idx")
    monkeypatch.undo()
    loaded = CatalogIndex.load(tmp_path / "idx")
    assert len(loaded) == 10 and loaded.get("item12") is None


def test_load_of_a_folder_without_index(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no lookalike index"):
        CatalogIndex.load(tmp_path)


@pytest.mark.parametrize("factory", ["Flat", "HNSW16"])
def test_stored_vectors_come_back_by_item_id(factory: str) -> None:
    index, vectors = filled_index(factory=factory)
    found = index.vectors(["item3", "item150", "nobody"])
    assert sorted(found) == ["item150", "item3"]
    np.testing.assert_allclose(found["item3"], vectors[3], atol=1e-6)
    index.remove(["item3"])
    assert "item3" not in index.vectors(["item3"])


@pytest.mark.parametrize("factory", ["IVF4,Flat", "IVF4,SQ8", "PCA32,IVF4,Flat"])
def test_an_inverted_file_gives_its_vectors_back(factory: str, tmp_path: Path) -> None:
    vectors = unit_vectors(400, seed=3)
    index = CatalogIndex(MODEL, factory=factory)
    index.add(Embeddings(vectors, MODEL), items(400))
    found = index.vectors(["item1"])["item1"]
    assert float(found @ vectors[1]) > 0.9  # exact for Flat, close for SQ8
    index.save(tmp_path / "index")
    reloaded = CatalogIndex.load(tmp_path / "index")
    assert float(reloaded.vectors(["item7"])["item7"] @ vectors[7]) > 0.9


def test_an_index_that_cannot_give_vectors_back_gives_none() -> None:
    index = CatalogIndex(MODEL, factory="IVF4,Flat")
    index.add(Embeddings(unit_vectors(400, seed=3), MODEL), items(400))
    inverted = faiss.extract_index_ivf(index._faiss.index)  # as an index kind without one
    inverted.set_direct_map_type(faiss.DirectMap.NoMap)
    assert index.vectors(["item1"]) == {}


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat", "HNSW16", "SQ8"])
def test_removing_items_leaves_every_other_item_under_its_own_id(
    factory: str, tmp_path: Path
) -> None:
    """An inverted file keeps its positions on removal, where FAISS's id map assumes that
    later vectors move down: without tombstones every later item came back as another."""
    index, vectors = filled_index(count=200, factory=factory)
    index.remove(["item4", "item7", "item120"])
    index.save(tmp_path / "index")
    for searched in (index, CatalogIndex.load(tmp_path / "index")):
        kept = [n for n in range(200) if n not in (4, 7, 120)]
        results = searched.search(Embeddings(vectors[kept], MODEL), k=1)
        assert [hits[0].record.item_id for hits in results] == [f"item{n}" for n in kept]


def test_revision_changes_with_every_change_and_between_indexes(tmp_path: Path) -> None:
    index, _ = filled_index(count=10)
    before = index.revision
    index.add(Embeddings(unit_vectors(1, seed=9), MODEL), items(1, start=10))
    after_add = index.revision
    index.remove(["nobody"])  # nothing removed: nothing changed
    assert index.revision == after_add
    index.remove(["item0"])
    assert len({before, after_add, index.revision}) == 3
    index.save(tmp_path / "index")
    assert CatalogIndex.load(tmp_path / "index").revision != index.revision


def test_directory_names_the_folder_it_was_loaded_from_or_saved_to(tmp_path: Path) -> None:
    index, _ = filled_index(count=10)
    assert index.directory is None  # never saved
    index.save(tmp_path / "index")
    assert index.directory == tmp_path / "index"
    assert CatalogIndex.load(tmp_path / "index").directory == tmp_path / "index"
    index.save(tmp_path / "elsewhere")
    assert index.directory == tmp_path / "elsewhere"
