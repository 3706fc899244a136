"""Detector verdicts and thresholds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lookalike.data import ImageDecodeError
from lookalike.data.edits import center_crop
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import Detector, Thresholds, load_detector
from lookalike.embeddings import EmbedderMismatchError
from lookalike.index import CatalogIndex, CatalogItem
from lookalike.indexing import new_index_for
from lookalike.model import Embedder, create_embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return create_embedder("default")


@pytest.fixture(scope="module")
def index(embedder: Embedder) -> CatalogIndex:
    images = [synthetic_image(seed) for seed in range(12)]
    index = new_index_for(embedder)
    items = [
        CatalogItem(f"item{n}", hashlib.sha256(bytes([n])).hexdigest(), brand="acme")
        for n in range(12)
    ]
    index.add(embedder.embed(images), items)
    return index


def test_thresholds_label_boundaries() -> None:
    thresholds = Thresholds(copy=0.9, review=0.7)
    assert [thresholds.label(s) for s in (0.95, 0.9, 0.8, 0.7, 0.1)] == [
        "copy",
        "copy",
        "review",
        "review",
        "clear",
    ]
    with pytest.raises(ValueError):
        Thresholds(copy=0.5, review=0.6)
    assert Thresholds.from_metadata({"thresholds": {"copy": 0.8, "review": 0.6}}) == Thresholds(
        0.8, 0.6
    )
    assert Thresholds.from_metadata({}) is None


def test_check_finds_the_original(embedder: Embedder, index: CatalogIndex) -> None:
    detector = Detector(embedder, index, top_k=3)
    verdict = detector.check(center_crop(synthetic_image(4), keep=0.8))
    assert verdict.best is not None and verdict.best.item_id == "item4"
    assert verdict.best.brand == "acme"
    assert len(verdict.matches) == 3
    assert verdict.score == verdict.matches[0].score
    assert [m.score for m in verdict.matches] == sorted(
        (m.score for m in verdict.matches), reverse=True
    )
    assert verdict.label == detector.thresholds.label(verdict.score)
    assert verdict.to_dict()["matches"][0]["item_id"] == "item4"


def test_thresholds_decide_the_label(embedder: Embedder, index: CatalogIndex) -> None:
    image = synthetic_image(2)
    assert Detector(embedder, index, Thresholds(0.0, 0.0)).check(image).label == "copy"
    assert Detector(embedder, index, Thresholds(1.01, 1.01)).check(image).label == "clear"
    assert Detector(embedder, index, Thresholds(1.01, 0.0)).check(image).label == "review"


def test_check_many_keeps_order(embedder: Embedder, index: CatalogIndex) -> None:
    verdicts = Detector(embedder, index).check_many([synthetic_image(s) for s in (7, 1, 9)])
    assert [v.best.item_id for v in verdicts if v.best] == ["item7", "item1", "item9"]


def test_bad_input_raises_the_typed_error(embedder: Embedder, index: CatalogIndex) -> None:
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        Detector(embedder, index).check(b"definitely not an image")


def test_empty_catalogue_gives_clear(embedder: Embedder) -> None:
    verdict = Detector(embedder, new_index_for(embedder)).check(synthetic_image(0))
    assert (verdict.label, verdict.score, verdict.matches) == ("clear", 0.0, ())


def test_detector_refuses_an_index_from_another_model(index: CatalogIndex) -> None:
    with pytest.raises(EmbedderMismatchError):
        Detector(create_embedder("resnet18", seed=7), index)


def test_load_detector_rebuilds_the_recorded_model(
    index: CatalogIndex, embedder: Embedder, tmp_path: Path
) -> None:
    index.save(tmp_path / "idx")
    detector = load_detector(tmp_path / "idx")
    assert detector.embedder.fingerprint == embedder.fingerprint
    assert detector.check(synthetic_image(5)).best.item_id == "item5"  # type: ignore[union-attr]


def test_calibration_fills_expected_precision(embedder: Embedder, index: CatalogIndex) -> None:
    from lookalike.training.calibration import calibrate

    calibration = calibrate([0.99, 0.995, 1.0], [0.0, 0.5, 0.98])
    verdict = Detector(embedder, index, calibration=calibration).check(synthetic_image(3))
    assert verdict.expected_precision == pytest.approx(
        float(calibration.precision_at(verdict.score)[0]), abs=1e-4
    )
    calibrated = "calibration" in embedder.metadata
    plain = Detector(embedder, index).check(synthetic_image(3))
    assert (plain.expected_precision is not None) == calibrated
