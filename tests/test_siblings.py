"""Sibling similarity: how much a catalogue photo looks like others of the same catalogue."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from lookalike.embeddings import Embeddings, ModelFingerprint
from lookalike.index import CatalogIndex, CatalogItem
from lookalike.siblings import SiblingSimilarity

DIM = 32
MODEL = ModelFingerprint("test-model", "a" * 64, DIM)


def normalised(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def catalogue(vectors: np.ndarray, start: int = 0) -> list[CatalogItem]:
    return [CatalogItem(f"item{start + n}", f"{start + n:064x}") for n in range(len(vectors))]


def shoot_and_singles(rng: np.random.Generator) -> np.ndarray:
    """Photos 0-3: one shoot (a shared vector plus a little noise); 4-39: unrelated."""
    shoot = rng.standard_normal(DIM)
    siblings = shoot + 0.2 * rng.standard_normal((4, DIM))
    return normalised(np.concatenate([siblings, rng.standard_normal((36, DIM))]))


def test_photos_of_one_shoot_sit_above_the_catalogue_mean_and_singles_below() -> None:
    vectors = shoot_and_singles(np.random.default_rng(0))
    index = CatalogIndex(MODEL)
    index.add(Embeddings(vectors, MODEL), catalogue(vectors))
    relative = SiblingSimilarity(index, neighbours=2).relative(["item0", "item3", "item20"])
    assert relative["item0"] > 0.3 and relative["item3"] > 0.3
    assert relative["item20"] < 0
    # by definition: the mean of each photo's 2 most similar others, minus the mean of that
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    own = np.sort(similarity, axis=1)[:, -2:].mean(axis=1)
    assert relative["item0"] == pytest.approx(own[0] - own.mean(), abs=1e-5)


def test_it_follows_the_index_as_photos_come_and_go() -> None:
    rng = np.random.default_rng(1)
    vectors = normalised(rng.standard_normal((30, DIM)))
    index = CatalogIndex(MODEL)
    index.add(Embeddings(vectors, MODEL), catalogue(vectors))
    siblings = SiblingSimilarity(index, neighbours=1)
    alone = siblings.relative(["item5"])["item5"]
    twin = normalised(vectors[5:6] + 0.05 * rng.standard_normal((1, DIM)))
    index.add(Embeddings(twin, MODEL), catalogue(twin, start=30))
    assert siblings.relative(["item5"])["item5"] > alone + 0.3  # a near twin joined it
    index.remove(["item30"])
    assert siblings.relative(["item5"])["item5"] == pytest.approx(alone, abs=0.05)
    assert siblings.relative(["item30", "nobody"]) == {}  # gone, or never there


def test_a_catalogue_of_one_photo_has_no_siblings() -> None:
    index = CatalogIndex(MODEL)
    one = normalised(np.ones((1, DIM)))
    index.add(Embeddings(one, MODEL), catalogue(one))
    assert SiblingSimilarity(index).relative(["item0"]) == {}
    with pytest.raises(ValueError):
        SiblingSimilarity(index, neighbours=0)


def test_it_pickles_without_its_cache() -> None:
    """Ray sends the detector, and so this, to each of its actors."""
    vectors = shoot_and_singles(np.random.default_rng(2))
    index = CatalogIndex(MODEL)
    index.add(Embeddings(vectors, MODEL), catalogue(vectors))
    siblings = SiblingSimilarity(index, neighbours=2)
    before = siblings.relative(["item0", "item9"])
    copied = pickle.loads(pickle.dumps(siblings))
    assert copied.neighbours == 2 and copied.relative(["item0", "item9"]) == pytest.approx(before)


def test_the_catalogue_mean_is_estimated_again_only_once_the_size_has_drifted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One photo added to 200 changes each photo's own value at once, not the mean (whose
    estimate costs ~1,000 searches); a 2.5% change re-estimates it."""
    rng = np.random.default_rng(3)
    vectors = normalised(rng.standard_normal((200, DIM)))
    index = CatalogIndex(MODEL)
    index.add(Embeddings(vectors, MODEL), catalogue(vectors))
    siblings = SiblingSimilarity(index, neighbours=1)
    estimates = []
    estimate = siblings._typical_similarity
    monkeypatch.setattr(siblings, "_typical_similarity", lambda: estimates.append(1) or estimate())
    alone = siblings.relative(["item5"])["item5"]
    twin = normalised(vectors[5:6] + 0.05 * rng.standard_normal((1, DIM)))
    index.add(Embeddings(twin, MODEL), catalogue(twin, start=200))
    assert siblings.relative(["item5"])["item5"] > alone + 0.3  # its own value followed
    assert len(estimates) == 1
    more = normalised(rng.standard_normal((4, DIM)))
    index.add(Embeddings(more, MODEL), catalogue(more, start=201))
    siblings.relative(["item5"])
    assert len(estimates) == 2
