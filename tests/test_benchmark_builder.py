"""Tests for the copy-detection benchmark builder and the local-feature verifier (offline)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.data.augment import EDIT_KINDS
from lookalike.data.benchmark import (
    BenchmarkPaths,
    build_copy_benchmark,
    read_edit_labels,
    recall_at_1_by_edit,
    split_images,
)
from lookalike.data.synthetic import synthetic_image
from lookalike.model import create_embedder
from lookalike.training.evaluate import evaluate_on_benchmark
from lookalike.training.metrics import Prediction, read_ground_truth
from lookalike.verify import match_and_verify, orb_features

PER_KIND = 2
NUM_IMAGES = 60

# ------------------------------------------------------------------------------- split


def test_split_is_deterministic_disjoint_and_covering() -> None:
    names = [Path(f"photos/p{i:05d}.jpg") for i in range(4000)]
    split = split_images(names)
    again = split_images(reversed(names))  # input order must not matter
    assert split == again
    parts = [set(split.train), set(split.reference), set(split.distractor)]
    assert sum(len(p) for p in parts) == len(names)
    assert set().union(*parts) == set(names)
    assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1 :])
    assert len(split.train) / len(names) == pytest.approx(0.70, abs=0.03)
    assert len(split.reference) / len(names) == pytest.approx(0.15, abs=0.03)
    assert len(split.distractor) / len(names) == pytest.approx(0.15, abs=0.03)


def test_split_depends_on_the_name_only() -> None:
    here = split_images([Path("a/x/p00001.jpg"), Path("a/x/p00002.jpg")])
    there = split_images(["/elsewhere/p00001.jpg", "/elsewhere/p00002.jpg"])
    for mine, theirs in zip(
        (here.train, here.reference, here.distractor),
        (there.train, there.reference, there.distractor),
        strict=True,
    ):
        assert [p.name for p in mine] == [p.name for p in theirs]


@pytest.mark.parametrize(("train", "reference"), [(0.9, 0.2), (-0.1, 0.5), (0.5, 1.5)])
def test_split_rejects_bad_fractions(train: float, reference: float) -> None:
    with pytest.raises(ValueError):
        split_images(["a.jpg"], train=train, reference=reference)


# ------------------------------------------------------------------------------- build


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("catalogue")
    for seed in range(NUM_IMAGES):
        synthetic_image(seed, (128, 128)).save(folder / f"img{seed:03d}.jpg", quality=90)
    # A byte-identical pair: whichever parts the two land in, neither may be used.
    synthetic_image(999, (128, 128)).save(folder / "dup_a.jpg", quality=90)
    shutil.copyfile(folder / "dup_a.jpg", folder / "dup_b.jpg")
    return folder


@pytest.fixture(scope="module")
def built(images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> BenchmarkPaths:
    out = tmp_path_factory.mktemp("bench")
    return build_copy_benchmark(images_dir, out, seed=3, queries_per_kind=PER_KIND)


def _manifest(paths: BenchmarkPaths) -> dict:
    return json.loads(paths.manifest_json.read_text(encoding="utf-8"))


def test_build_counts_and_opaque_names(built: BenchmarkPaths) -> None:
    labels = read_edit_labels(built.ground_truth_csv)
    positives = [label for label in labels if label.reference_id is not None]
    negatives = [label for label in labels if label.reference_id is None]
    assert len(positives) == len(EDIT_KINDS) * PER_KIND
    assert len(negatives) == len(positives)
    for kind in EDIT_KINDS:
        assert sum(label.edit == kind for label in positives) == PER_KIND
        assert sum(label.edit == kind for label in negatives) == PER_KIND
    queries = sorted(p.name for p in built.queries_dir.iterdir())
    assert queries == sorted(f"{label.query_id}.jpg" for label in labels)
    assert all(re.fullmatch(r"q\d{5}\.jpg", name) for name in queries)
    # Shuffled: positives are not simply the first half of the ids.
    first_half = [label.reference_id is not None for label in labels[: len(labels) // 2]]
    assert 0 < sum(first_half) < len(first_half)
    with Image.open(built.queries_dir / queries[0]) as image:
        assert image.format == "JPEG"


def test_references_are_byte_identical_copies(built: BenchmarkPaths, images_dir: Path) -> None:
    references = sorted(built.references_dir.iterdir())
    assert references
    split = split_images(sorted(images_dir.iterdir()))
    assert {p.name for p in references} <= {p.name for p in split.reference}
    for copy in references:
        assert copy.read_bytes() == (images_dir / copy.name).read_bytes()


def test_ground_truth_is_isc_readable_and_points_at_references(built: BenchmarkPaths) -> None:
    pairs = read_ground_truth(built.ground_truth_csv)  # the extra edit column is ignored
    assert len(pairs) == len(EDIT_KINDS) * PER_KIND
    reference_ids = {p.stem for p in built.references_dir.iterdir()}
    assert {pair.reference_id for pair in pairs} <= reference_ids


def test_negatives_never_come_from_references(built: BenchmarkPaths, images_dir: Path) -> None:
    manifest = _manifest(built)
    split = split_images(sorted(images_dir.iterdir()))
    distractors = {p.name for p in split.distractor}
    references = set(manifest["references"])
    for query in manifest["queries"]:
        if query["reference_id"] is None:
            assert query["source"] in distractors
            assert query["source"] not in references
            assert query["source"] not in manifest["others_pool"]
        else:
            assert query["source"] == f"{query['reference_id']}.jpg"
            assert query["source"] in references
    assert set(manifest["others_pool"]) <= distractors


def test_byte_duplicates_are_left_out(built: BenchmarkPaths) -> None:
    manifest = _manifest(built)
    assert manifest["excluded_duplicates"] == 2
    used = {*manifest["references"], *manifest["others_pool"]}
    used |= {query["source"] for query in manifest["queries"]}
    assert not used & {"dup_a.jpg", "dup_b.jpg"}


def test_build_reuses_a_complete_benchmark(images_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    first = build_copy_benchmark(images_dir, out, seed=1, queries_per_kind=1)
    stamps = {p: p.stat().st_mtime_ns for p in first.queries_dir.iterdir()}
    manifest_stamp = first.manifest_json.stat().st_mtime_ns
    again = build_copy_benchmark(images_dir, out, seed=1, queries_per_kind=1)
    assert again == first
    assert first.manifest_json.stat().st_mtime_ns == manifest_stamp
    assert {p: p.stat().st_mtime_ns for p in first.queries_dir.iterdir()} == stamps

    # A lost query file means incomplete: rebuilt, with the same content (same seed).
    lost = sorted(stamps)[0]
    lost_bytes = lost.read_bytes()
    lost.unlink()
    build_copy_benchmark(images_dir, out, seed=1, queries_per_kind=1)
    assert lost.read_bytes() == lost_bytes

    # Other parameters: rebuilt.
    build_copy_benchmark(images_dir, out, seed=2, queries_per_kind=1)
    assert _manifest(first)["params"]["seed"] == 2


def test_build_rejects_bad_parameters(images_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_copy_benchmark(images_dir, tmp_path, queries_per_kind=0)
    with pytest.raises(ValueError):
        build_copy_benchmark(images_dir, tmp_path, max_references=0)


# -------------------------------------------------------------------------- evaluation


def test_recall_at_1_by_edit_hand_case(tmp_path: Path) -> None:
    ground_truth = tmp_path / "gt.csv"
    ground_truth.write_text(
        "query_id,reference_id,edit\n"
        "q1,r1,crop\n"  # top-1 alone: hit
        "q2,r2,crop\n"  # tied with a wrong reference: pessimistic, miss
        "q3,r3,blur\n"  # second: miss
        "q4,,blur\n"  # negative: not counted
        "q5,r5,blur\n"  # hit
        "q6,r6,gray\n",  # no prediction at all: miss
        encoding="utf-8",
    )
    predictions = [
        Prediction("q1", "r1", 0.9),
        Prediction("q1", "x", 0.5),
        Prediction("q2", "r2", 0.5),
        Prediction("q2", "y", 0.5),
        Prediction("q3", "z", 0.8),
        Prediction("q3", "r3", 0.7),
        Prediction("q4", "r1", 0.99),
        Prediction("q5", "r5", 0.3),
    ]
    recalls = recall_at_1_by_edit(ground_truth, predictions)
    assert recalls == {"crop": 0.5, "gray": 0.0, "blur": 0.5}
    assert list(recalls) == ["crop", "gray", "blur"]  # EDIT_KINDS order


# ---------------------------------------------------------------------------- verify


def _textured(seed: int, side: int = 320) -> Image.Image:
    """Shapes over a blocky random pattern: plenty of corners for ORB."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(side // 16, side // 16, 3), dtype=np.uint8)
    pattern = Image.fromarray(blocks, "RGB").resize((side, side), Image.Resampling.NEAREST)
    return Image.blend(pattern, synthetic_image(seed, (side, side)), 0.5)


def test_verify_finds_a_rotated_scaled_copy() -> None:
    reference = _textured(7)
    angle, scale = math.radians(20.0), 0.8
    # PIL's AFFINE takes the map from output (query) pixels to input (reference) pixels,
    # which is exactly the homography query -> reference that the verifier estimates.
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    true = np.array([[cos, -sin, 40.0], [sin, cos, -30.0], [0.0, 0.0, 1.0]])
    query = reference.transform(
        (300, 300), Image.Transform.AFFINE, tuple(true[:2].ravel()), Image.Resampling.BILINEAR
    )
    result = match_and_verify(orb_features(query), orb_features(reference))
    assert result.inliers >= 50
    assert result.homography is not None
    assert result.query_points.shape == result.reference_points.shape == (result.inliers, 2)
    grid = np.array([[x, y, 1.0] for x in (60, 150, 240) for y in (60, 150, 240)])
    estimated = grid @ result.homography.T
    expected = grid @ true.T
    error = np.linalg.norm(estimated[:, :2] / estimated[:, 2:] - expected[:, :2], axis=1)
    assert error.max() < 3.0


def test_verify_rejects_an_unrelated_image() -> None:
    result = match_and_verify(orb_features(_textured(1)), orb_features(_textured(2)))
    assert result.inliers < 10


@pytest.mark.parametrize("size", [(200, 200), (5, 5), (1, 1)])
def test_verify_blank_and_tiny_images_give_zero(size: tuple[int, int]) -> None:
    blank = orb_features(Image.new("RGB", size, (255, 255, 255)))
    assert len(blank) == 0
    assert blank.descriptors.shape == (0, 32)
    textured = orb_features(_textured(3))
    for query, reference in ((blank, textured), (textured, blank), (blank, blank)):
        result = match_and_verify(query, reference)
        assert result.inliers == 0
        assert result.homography is None


def test_models_are_evaluated_on_the_same_terms_whatever_penalty_they_recorded(
    built: BenchmarkPaths, tmp_path: Path
) -> None:
    """A freshly trained model records no sibling penalty, the shipped one does: before and
    after fine-tuning must still be scored alike."""
    shipped = create_embedder("default")
    unrecorded = dataclasses.replace(
        shipped, metadata={k: v for k, v in shipped.metadata.items() if k != "sibling_penalty"}
    )
    first = evaluate_on_benchmark(shipped, built, tmp_path / "a", progress=False)
    second = evaluate_on_benchmark(unrecorded, built, tmp_path / "b", progress=False)
    assert first.predictions.read_text() == second.predictions.read_text()
