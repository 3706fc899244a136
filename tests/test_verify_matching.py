"""The ratio-test matching under local verification: which keypoint pairs go to RANSAC.

Checked against a plain Python reading of the rule (nearest two by brute force, Lowe's
ratio, one pair per reference keypoint: the closest, the earliest query keypoint among
equals, pairs in the order their reference keypoint is first matched), on hand-made
descriptors where the answer is known and on random ones where ties and repeats abound.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from lookalike.verify import LocalFeatures, _opencv_ratio_matches, _ratio_matches, match_and_verify

RATIO = 0.75


def features(descriptors: npt.NDArray[np.generic]) -> LocalFeatures:
    points = np.zeros((len(descriptors), 2), np.float32)
    return LocalFeatures(points, descriptors, (64, 64))  # type: ignore[arg-type]


def distances(query: npt.NDArray[np.generic], reference: npt.NDArray[np.generic]) -> np.ndarray:
    if query.dtype == np.uint8:
        differing = np.bitwise_xor(query[:, None, :], reference[None, :, :])
        return np.unpackbits(differing, axis=-1).sum(axis=-1).astype(np.float64)
    diff = query[:, None, :].astype(np.float64) - reference[None, :, :].astype(np.float64)
    return np.sqrt((diff**2).sum(axis=-1))


def expected_pairs(
    query: npt.NDArray[np.generic], reference: npt.NDArray[np.generic]
) -> list[tuple[int, int]]:
    table = distances(query, reference)
    best: dict[int, tuple[float, int]] = {}
    for query_index, row in enumerate(table):
        first, second = np.sort(row)[:2]
        if first >= RATIO * second:
            continue
        reference_index = int(np.argmin(row))
        kept = best.get(reference_index)
        if kept is None or first < kept[0]:
            best[reference_index] = (float(first), query_index)
    return [(query_index, ref) for ref, (_, query_index) in best.items()]


def found_pairs(
    query: npt.NDArray[np.generic], reference: npt.NDArray[np.generic]
) -> list[tuple[int, int]]:
    query_idx, reference_idx = _ratio_matches(features(query), features(reference), RATIO)
    assert query_idx.dtype == np.intp and reference_idx.dtype == np.intp
    return list(zip(query_idx.tolist(), reference_idx.tolist(), strict=True))


def flip_bits(descriptor: npt.NDArray[np.uint8], count: int) -> npt.NDArray[np.uint8]:
    bits = np.unpackbits(descriptor.copy())
    bits[:count] ^= 1
    return np.packbits(bits)


def test_closest_query_keypoint_wins_and_ambiguous_ones_are_dropped() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    between = reference[1].copy()
    between[16:] = reference[2][16:]  # as far from reference 1 as from reference 2
    query = np.stack(
        [
            flip_bits(reference[0], 3),  # matches 0 ...
            reference[0],  # ... and this one matches it closer: it replaces the first
            flip_bits(reference[2], 2),  # matches 2
            between,  # fails the ratio test
            flip_bits(reference[2], 2),  # ties with query 2: the earlier one stays
        ]
    )
    assert found_pairs(query, reference) == [(1, 0), (2, 2)]
    assert found_pairs(query, reference) == expected_pairs(query, reference)


@pytest.mark.parametrize("seed", range(5))
def test_binary_descriptors_match_the_plain_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 256, (120, 32), dtype=np.uint8)
    # Noisy copies of some reference rows, repeats included, among random rows.
    picks = rng.integers(0, 40, 150)
    flips = np.where(rng.random((150, 32)) < 0.05, 1 << rng.integers(0, 8, (150, 32)), 0)
    copies = reference[picks] ^ flips.astype(np.uint8)
    query = np.concatenate([copies, rng.integers(0, 256, (100, 32), dtype=np.uint8)])
    query = query[rng.permutation(len(query))]
    pairs = found_pairs(query, reference)
    assert len(pairs) >= 30
    assert pairs == expected_pairs(query, reference)


@pytest.mark.parametrize("seed", range(3))
def test_float_descriptors_match_the_plain_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Integer-valued floats keep the distances exact, so no pair sits on a rounding edge.
    reference = rng.integers(0, 50, (80, 128)).astype(np.float32)
    picks = rng.integers(0, 30, 90)
    query = reference[picks] + rng.integers(-1, 2, (90, 128)).astype(np.float32)
    query = np.concatenate([query, rng.integers(0, 50, (60, 128)).astype(np.float32)])
    pairs = found_pairs(query, reference)
    assert len(pairs) >= 20
    assert pairs == expected_pairs(query, reference)


def test_too_few_reference_keypoints_give_no_pairs() -> None:
    one = np.zeros((1, 32), np.uint8)
    assert found_pairs(np.zeros((4, 32), np.uint8), one) == []
    assert found_pairs(np.zeros((0, 32), np.uint8), np.zeros((5, 32), np.uint8)) == []


def test_min_matches_skips_ransac_only_below_it() -> None:
    rng = np.random.default_rng(3)
    descriptors = rng.integers(0, 256, (12, 32), dtype=np.uint8)
    spots = np.array([[x, y] for x in (10, 30, 50, 70) for y in (15, 40, 65)], np.float32)
    reference = LocalFeatures(spots, descriptors, (96, 96))
    query = LocalFeatures(spots + np.float32(5), descriptors, (96, 96))  # a shifted copy
    assert match_and_verify(query, reference).inliers == 12
    assert match_and_verify(query, reference, min_matches=12).inliers == 12
    skipped = match_and_verify(query, reference, min_matches=13)
    assert skipped.inliers == 0 and skipped.homography is None


def test_the_opencv_path_follows_the_same_rule_for_binary_descriptors() -> None:
    # The benchmark measures the FAISS path against it: both must give the same pairs.
    rng = np.random.default_rng(11)
    reference = rng.integers(0, 256, (60, 32), dtype=np.uint8)
    query = reference[rng.integers(0, 20, 40)].copy()
    query[:, 0] ^= 1  # near copies, with repeats
    found = _opencv_ratio_matches(features(query), features(reference), RATIO)
    pairs = list(zip(found[0].tolist(), found[1].tolist(), strict=True))
    assert pairs == expected_pairs(query, reference) == found_pairs(query, reference)
