"""Local-feature verification: does a query show the same picture as a reference, and where?

ORB keypoints (binary descriptors, cheap to compute and to compare by Hamming distance) are
matched with Lowe's ratio test, then a homography is fitted with RANSAC. The number of inlier
correspondences is robust evidence of a copy under crops, rotations, perspective and overlays,
and the homography places the reference inside the query (for evidence pictures).

After the homography, :func:`gradient_agreement` compares the aligned pictures themselves:
inliers alone also confirm a *variant* of a catalogue photo (the same watch with another
strap, the same model in another shirt), whose shared parts match point for point.

Uses: a training-free baseline in the copy-detection benchmark, re-ranking a descriptor
shortlist, and evidence images. ORB descriptors are matched with FAISS (exact Hamming
search), SIFT ones with OpenCV. OpenCV and FAISS are imported inside the functions so that
``import lookalike`` stays light.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = [
    "DESCRIPTOR_BYTES",
    "MIN_MATCHES",
    "LocalFeatures",
    "Verification",
    "gradient_agreement",
    "masked_correlation",
    "match_and_verify",
    "orb_features",
    "sift_features",
]

DESCRIPTOR_BYTES = 32  # ORB: 256-bit binary descriptors
MIN_MATCHES = 4  # a homography has 8 degrees of freedom: 4 point pairs

Points = npt.NDArray[np.float32]


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one image: ``keypoints`` (n, 2) float32 x, y in pixels of the image as
    given; ``descriptors`` row i describes keypoint i: (n, 32) uint8 for ORB (compared by
    Hamming distance) or (n, 128) float32 for SIFT (compared by L2); ``image_size`` is
    (width, height)."""

    keypoints: Points
    descriptors: npt.NDArray[np.uint8] | npt.NDArray[np.float32]
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> LocalFeatures:
        """No keypoints (a blank, tiny or featureless image)."""
        return cls(
            keypoints=np.zeros((0, 2), np.float32),
            descriptors=np.zeros((0, DESCRIPTOR_BYTES), np.uint8),
            image_size=image_size,
        )


@dataclass(frozen=True)
class Verification:
    """The geometric check of a query against a reference.

    ``homography`` (3x3 float64) maps query pixel coordinates to reference pixel coordinates,
    ``None`` when no model was found. ``query_points[i]`` and ``reference_points[i]`` (k, 2)
    float32 are the ``inliers == k`` correspondences that agree with it.
    """

    inliers: int
    homography: npt.NDArray[np.float64] | None
    query_points: Points
    reference_points: Points

    @classmethod
    def none(cls) -> Verification:
        """No evidence: zero inliers and no homography."""
        empty = np.zeros((0, 2), np.float32)
        return cls(inliers=0, homography=None, query_points=empty, reference_points=empty.copy())


def orb_features(image: Image.Image, n_features: int = 1000) -> LocalFeatures:
    """ORB keypoints and descriptors of ``image`` (any mode; matched on its grey levels).

    Never raises for odd images: a blank or tiny one gives empty features.
    """
    import cv2

    if n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features}")
    gray = np.ascontiguousarray(np.asarray(image.convert("L"), dtype=np.uint8))
    try:
        keypoints, descriptors = cv2.ORB.create(nfeatures=n_features).detectAndCompute(gray, None)
    except cv2.error:  # e.g. an image smaller than ORB's border: no usable keypoints
        return LocalFeatures.empty(image.size)
    if descriptors is None or not keypoints:
        return LocalFeatures.empty(image.size)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    return LocalFeatures(points, np.asarray(descriptors, dtype=np.uint8), image.size)


def sift_features(image: Image.Image, n_features: int = 500) -> LocalFeatures:
    """SIFT keypoints of ``image`` (grey levels): slower than ORB but far steadier on blurred,
    small and flat artwork such as logos. Never raises for odd images."""
    import cv2

    if n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features}")
    gray = np.ascontiguousarray(np.asarray(image.convert("L"), dtype=np.uint8))
    try:
        keypoints, descriptors = cv2.SIFT.create(nfeatures=n_features).detectAndCompute(gray, None)
    except cv2.error:
        keypoints, descriptors = (), None
    if descriptors is None or not keypoints:
        return LocalFeatures(
            np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), image.size
        )
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    return LocalFeatures(points, np.asarray(descriptors, dtype=np.float32), image.size)


def match_and_verify(
    query: LocalFeatures,
    reference: LocalFeatures,
    *,
    ratio: float = 0.75,
    ransac_px: float = 5.0,
    min_matches: int = MIN_MATCHES,
) -> Verification:
    """Match ``query`` to ``reference`` and count the matches a homography explains.

    Matches are nearest neighbours (Hamming or L2 distance) kept only when clearly better than the
    second nearest (``distance < ratio * second``), then at most one per reference keypoint.
    RANSAC accepts a match whose reprojection error is below ``ransac_px`` pixels. Fewer than
    ``min_matches`` matches (at least :data:`MIN_MATCHES`), or no model found, gives zero
    inliers; this never raises. A caller that ignores fewer than n inliers passes
    ``min_matches=n``: RANSAC, the costly part, then runs only where n inliers are possible.
    """
    query_idx, reference_idx = _ratio_matches(query, reference, ratio)
    if query_idx.size < max(min_matches, MIN_MATCHES):
        return Verification.none()
    query_points = query.keypoints[query_idx]
    reference_points = reference.keypoints[reference_idx]
    homography, inlier_mask = _fit_homography(query_points, reference_points, ransac_px)
    if homography is None or inlier_mask is None:
        return Verification.none()
    return Verification(
        inliers=int(inlier_mask.sum()),
        homography=homography,
        query_points=query_points[inlier_mask],
        reference_points=reference_points[inlier_mask],
    )


def _ratio_matches(
    query: LocalFeatures, reference: LocalFeatures, ratio: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Indices ``(query, reference)`` of the matches passing the ratio test, one per reference
    keypoint (the closest; the first query keypoint among equals): several query keypoints
    landing on one reference point (ORB finds the same corner at several pyramid levels)
    would otherwise each count as an inlier. Pairs come in the order their reference
    keypoint is first matched, query keypoint by query keypoint (RANSAC's sampling, seeded,
    depends on it).

    Binary (ORB) descriptors are compared by FAISS on one OpenMP thread, ~2x faster than
    OpenCV's BFMatcher on two for 1,000 keypoints; float (SIFT) ones by the BFMatcher, which
    is faster there (``benchmarks/local_matching.py``). Both search exhaustively."""
    none = np.zeros(0, np.intp)
    # The ratio test needs two neighbours in the reference.
    if len(query) == 0 or len(reference) < 2:
        return none, none
    if query.descriptors.dtype != np.uint8:
        return _opencv_ratio_matches(query, reference, ratio)
    import faiss

    with one_openmp_thread(faiss):
        index = faiss.IndexBinaryFlat(reference.descriptors.shape[1] * 8)
        index.add(np.ascontiguousarray(reference.descriptors))
        distances, neighbours = index.search(np.ascontiguousarray(query.descriptors), 2)
    passed = np.flatnonzero(distances[:, 0] < ratio * distances[:, 1])
    if passed.size == 0:
        return none, none
    matched = neighbours[passed, 0]
    # Within each reference keypoint: smallest distance, then earliest query keypoint.
    by_reference = np.lexsort((passed, distances[passed, 0], matched))
    group_starts = np.flatnonzero(np.r_[True, np.diff(matched[by_reference]) != 0])
    closest = by_reference[group_starts]
    _, first_seen = np.unique(matched, return_index=True)  # same (sorted) order as the groups
    order = np.argsort(first_seen, kind="stable")
    return passed[closest[order]].astype(np.intp), matched[closest[order]].astype(np.intp)


def _opencv_ratio_matches(
    query: LocalFeatures, reference: LocalFeatures, ratio: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """:func:`_ratio_matches` by OpenCV's BFMatcher (Hamming for binary descriptors, L2 for
    float ones): what it uses for float descriptors, and the reference the benchmark of the
    FAISS path measures against."""
    import cv2

    best: dict[int, tuple[float, int]] = {}
    binary = query.descriptors.dtype == np.uint8
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING if binary else cv2.NORM_L2)
    for pair in matcher.knnMatch(query.descriptors, reference.descriptors, k=2):
        if len(pair) < 2:
            continue
        first, second = pair
        if first.distance >= ratio * second.distance:
            continue
        kept = best.get(first.trainIdx)
        if kept is None or first.distance < kept[0]:
            best[first.trainIdx] = (first.distance, first.queryIdx)
    reference_idx = np.fromiter(best.keys(), dtype=np.intp, count=len(best))
    query_idx = np.fromiter((q for _, q in best.values()), dtype=np.intp, count=len(best))
    return query_idx, reference_idx


@contextmanager
def one_openmp_thread(faiss: Any) -> Iterator[None]:
    """FAISS on one thread for the duration. With spinning OpenMP threads two would halve
    this search, but the CLI sets ``OMP_WAIT_POLICY=PASSIVE`` (so idle threads do not spin
    against the model), and waking the sleeping pool then costs ~2 ms a call: more than the
    whole search on one thread (~0.5-1.3 ms for ORB's 1,000 x 1,000). OpenMP keeps the
    thread count per calling thread, so other threads are not affected."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _fit_homography(
    query_points: Points, reference_points: Points, ransac_px: float
) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.bool_] | None]:
    """RANSAC homography query -> reference and its inlier mask, or ``(None, None)``."""
    import cv2

    try:
        homography, mask = cv2.findHomography(
            query_points.reshape(-1, 1, 2),
            reference_points.reshape(-1, 1, 2),
            cv2.RANSAC,
            ransac_px,
        )
    except cv2.error:  # degenerate point sets (all collinear, all identical)
        return None, None
    if homography is None or mask is None or not np.all(np.isfinite(homography)):
        return None, None
    return np.asarray(homography, dtype=np.float64), mask.ravel().astype(bool)


def masked_correlation(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]
) -> float:
    """Pearson correlation of ``a`` and ``b`` over ``mask`` in [-1, 1]; 0 when either is
    flat there or the mask holds fewer than 16 pixels."""
    if int(mask.sum()) < 16:
        return 0.0
    x = a[mask] - a[mask].mean()
    y = b[mask] - b[mask].mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    if denominator <= 1e-6:
        return 0.0
    return float((x * y).sum()) / denominator


def gradient_agreement(
    query_grey: npt.NDArray[np.uint8],
    reference_grey: npt.NDArray[np.uint8],
    homography: npt.NDArray[np.float64],
) -> float:
    """How well the reference, pulled into the query's frame through ``homography`` (query
    pixels -> reference pixels, both of these grey arrays), agrees with the query where they
    overlap: the correlation of their gradient magnitudes, in [0, 1].

    Gradients ignore recolouring and grey conversion; an overlay (text, a sticker) lowers the
    agreement only as far as it covers the picture. A variant of the reference (another
    strap, another shirt) agrees on its shared parts only: on the calibration set, half of
    the wrong candidates that RANSAC confirmed agree below 0.4, 90% of the right ones above
    0.6. Never raises: a degenerate homography gives 0.
    """
    import cv2

    height, width = query_grey.shape
    try:
        pulled = cv2.warpPerspective(
            np.asarray(reference_grey, dtype=np.float32),
            homography,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,  # no false edge along the overlap's border
        )
        inside = cv2.warpPerspective(
            np.ones(reference_grey.shape, np.uint8),
            homography,
            (width, height),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        )
    except cv2.error:
        return 0.0
    # the border pixels of the overlap mix in the black outside: leave them out
    overlap = cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool)
    correlation = masked_correlation(
        _gradient_magnitude(np.asarray(query_grey, dtype=np.float32)),
        _gradient_magnitude(np.asarray(pulled, dtype=np.float32)),
        overlap,
    )
    return max(0.0, correlation)


def laplacian_variance(grey: npt.NDArray[np.uint8]) -> float:
    """How sharp a grey picture is: the variance of its Laplacian (a sharp photo gives
    hundreds or more; a blurred one, whose edges are ramps, units to tens)."""
    import cv2

    return float(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var())


def _gradient_magnitude(grey: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    import cv2

    smooth = cv2.GaussianBlur(grey, (0, 0), 1.0)  # JPEG blocks and noise are not structure
    return np.asarray(
        cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1)),
        dtype=np.float32,
    )
