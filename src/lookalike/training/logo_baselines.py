"""Training-free logo matching baseline: ORB keypoints, ratio test, RANSAC homography.

The learned logo matcher is only worth its training if it beats the classic recipe, so the
logo benchmark scores this baseline in the same run. Each catalogue logo is described once;
a query photo is matched against every logo separately (the ratio test only makes sense
among one logo's descriptors) and scored by the number of RANSAC inliers of a homography,
i.e. by how many keypoints agree on one geometric placement of the logo.

It is slow by nature, linear in the catalogue size (one brute-force Hamming match per logo);
the only shortcuts taken are those that cannot change a result: matchers built once, and
logos with too few keypoints to ever give a homography skipped up front.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from lookalike.data.decode import ImageSource, decode_image
from lookalike.data.logos import LogoRenderError, LogoSpec, logo_on_background, render_logo

__all__ = ["OrbLogoMatcher"]

Match = tuple[str, str, float]


@dataclass(frozen=True)
class _LogoFeatures:
    item_id: str
    brand: str
    size: tuple[int, int]  # the logo picture's (width, height)
    points: np.ndarray  # (n, 2) float32 keypoint positions in the logo picture
    matcher: Any  # cv2.BFMatcher holding this logo's descriptors


class OrbLogoMatcher:
    """ORB + ratio test + RANSAC against every catalogue logo; score = inlier count.

    Each logo is rendered at ``logo_size`` pixels and described in both polarities: on the
    card that contrasts most with it (white for a dark logo), and that picture inverted. ORB
    compares intensities, so a dark-on-light reference can never match a light-on-dark
    listing otherwise. (Flattening literally on white and on black would not do: a black SVG
    on black is a blank picture.)
    """

    def __init__(
        self,
        logos: Iterable[tuple[str, str, Image.Image]],
        *,
        logo_size: int = 256,
        logo_features: int = 500,
        query_features: int = 1500,
        max_query_side: int = 640,
        ratio: float = 0.8,
        ransac_threshold: float = 5.0,
        ransac_max_iters: int = 2000,
        min_matches: int = 4,
        min_logo_keypoints: int = 8,
        top_k: int = 5,
    ) -> None:
        """Describe ``logos``, given as ``(item_id, brand, RGBA image)``.

        ``ransac_max_iters`` (OpenCV's default) and ``min_matches`` (ratio-test matches a
        logo needs before RANSAC runs; 4 is the least a homography needs) are the knobs that
        trade the baseline's time against its low-score tail; the defaults change nothing.
        """
        if min_matches < 4:
            raise ValueError(f"min_matches must be >= 4 (a homography needs 4), got {min_matches}")
        import cv2  # lazily: OpenCV is heavy and only the baseline needs it here

        self._cv2 = cv2
        self.logo_size = logo_size
        self.max_query_side = max_query_side
        self.ratio = ratio
        self.ransac_threshold = ransac_threshold
        self.ransac_max_iters = ransac_max_iters
        self.min_matches = min_matches
        self.min_logo_keypoints = min_logo_keypoints
        self.top_k = top_k
        self._logo_orb = cv2.ORB_create(nfeatures=logo_features)  # type: ignore[attr-defined]
        self._query_orb = cv2.ORB_create(nfeatures=query_features)  # type: ignore[attr-defined]
        self._logos: list[_LogoFeatures] = []
        self.skipped: list[str] = []
        """Item ids left out: too few keypoints (or, via from_specs, not renderable)."""
        for item_id, brand, image in logos:
            features = self._describe_logo(item_id, brand, image)
            if features is None:
                self.skipped.append(item_id)
            else:
                self._logos.append(features)

    @classmethod
    def from_specs(cls, specs: Sequence[LogoSpec], **options: Any) -> OrbLogoMatcher:
        """Render each spec with :func:`render_logo`; unrenderable ones go to ``skipped``."""
        size = int(options.get("logo_size", 256))
        failed: list[str] = []

        def rendered() -> Iterable[tuple[str, str, Image.Image]]:
            for spec in specs:
                try:
                    yield spec.item_id, spec.brand, render_logo(spec.path, size)
                except LogoRenderError:
                    failed.append(spec.item_id)

        matcher = cls(rendered(), **options)
        matcher.skipped.extend(failed)
        return matcher

    def __len__(self) -> int:
        """Logos that can be matched (those not skipped)."""
        return len(self._logos)

    def _describe_logo(self, item_id: str, brand: str, image: Image.Image) -> _LogoFeatures | None:
        logo = image.convert("RGBA")
        if max(logo.size) != self.logo_size:
            factor = self.logo_size / max(logo.size)
            size = (max(1, round(logo.width * factor)), max(1, round(logo.height * factor)))
            logo = logo.resize(size, Image.Resampling.LANCZOS)
        card = _contrasting_card(logo)
        gray = np.asarray(logo_on_background(logo, card).convert("L"))
        # A margin of card colour: ORB finds no keypoint within its patch radius of a border,
        # and a logo cropped to its visible extent touches all four.
        margin = 32
        padded = np.pad(gray, margin, mode="constant", constant_values=card[0])
        points: list[np.ndarray] = []
        descriptors: list[np.ndarray] = []
        for view in (padded, 255 - padded):
            keypoints, found = self._logo_orb.detectAndCompute(view, None)
            if found is None or not keypoints:
                continue
            points.append(np.array([kp.pt for kp in keypoints], dtype=np.float32) - margin)
            descriptors.append(found)
        if not descriptors or sum(len(d) for d in descriptors) < self.min_logo_keypoints:
            return None
        matcher = self._cv2.BFMatcher(self._cv2.NORM_HAMMING)
        matcher.add([np.concatenate(descriptors)])
        return _LogoFeatures(item_id, brand, logo.size, np.concatenate(points), matcher)

    def match(self, image: ImageSource) -> list[Match]:
        """The ``top_k`` best logos for ``image`` as ``(item_id, brand, score)``, best first.

        Score is the RANSAC inlier count (at least 4: fewer cannot define a homography);
        logos without a homography are not listed. Equal scores are ordered by item_id.
        """
        photo = decode_image(image).convert("L")
        if max(photo.size) > self.max_query_side:
            photo.thumbnail((self.max_query_side, self.max_query_side), Image.Resampling.BILINEAR)
        keypoints, descriptors = self._query_orb.detectAndCompute(np.asarray(photo), None)
        if descriptors is None or len(keypoints) < 4:
            return []
        query_points = np.array([kp.pt for kp in keypoints], dtype=np.float32)
        candidates = []
        for logo in self._logos:
            good = _ratio_matches(logo.matcher.knnMatch(descriptors, k=2), self.ratio)
            if len(good) >= self.min_matches:
                candidates.append((len(good), logo, good))
        # Inliers never exceed matches: visiting logos by decreasing match count, RANSAC can
        # stop once no remaining logo could enter the top k. The result is the same as
        # running RANSAC on every logo, several times faster.
        candidates.sort(key=lambda candidate: (-candidate[0], candidate[1].item_id))
        scored: list[tuple[float, str, str]] = []
        for count, logo, good in candidates:
            if len(scored) >= self.top_k:
                scored = heapq.nsmallest(self.top_k, scored, key=lambda s: (-s[0], s[1]))
                if count < scored[-1][0]:
                    break
            inliers = self._inliers(logo, good, query_points)
            if inliers >= 4:
                scored.append((float(inliers), logo.item_id, logo.brand))
        best = heapq.nsmallest(self.top_k, scored, key=lambda s: (-s[0], s[1]))
        return [(item_id, brand, score) for score, item_id, brand in best]

    def _inliers(self, logo: _LogoFeatures, good: Sequence[Any], query_points: np.ndarray) -> int:
        """RANSAC inliers of the logo-to-photo homography; 0 if it is no plausible placement.

        A homography through a handful of chance matches often squashes the logo to a sliver
        or mirrors it; counting its inliers would reward noise, so such fits score 0.
        """
        cv2 = self._cv2
        source = logo.points[[m.trainIdx for m in good]]
        target = query_points[[m.queryIdx for m in good]]
        homography, mask = cv2.findHomography(
            source, target, cv2.RANSAC, self.ransac_threshold, maxIters=self.ransac_max_iters
        )
        if homography is None or mask is None:
            return 0
        width, height = logo.size
        corners = np.array([[[0, 0]], [[width, 0]], [[width, height]], [[0, height]]], np.float32)
        if not _plausible(cv2.perspectiveTransform(corners, homography).reshape(4, 2)):
            return 0
        return int(mask.sum())


def _ratio_matches(pairs: Sequence[Sequence[Any]], ratio: float) -> list[Any]:
    """Lowe's ratio test, then one match per logo keypoint (the closest).

    Without the second step many photo keypoints can pile onto one logo keypoint, and RANSAC
    "explains" them all with a degenerate homography.
    """
    best: dict[int, Any] = {}
    for pair in pairs:
        if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
            match = pair[0]
            kept = best.get(match.trainIdx)
            if kept is None or match.distance < kept.distance:
                best[match.trainIdx] = match
    return list(best.values())


def _plausible(quad: np.ndarray, min_area: float = 100.0) -> bool:
    """The projected logo is a convex, unmirrored quadrilateral of at least ``min_area`` px²."""
    edges = np.roll(quad, -1, axis=0) - quad
    turns = (
        edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
        - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    )
    if not np.all(turns > 0):  # image y points down: clockwise corners turn positive
        return False
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return area >= min_area


def _contrasting_card(logo: Image.Image) -> tuple[int, int, int]:
    """White behind a dark logo, black behind a light one (alpha-weighted mean luma)."""
    pixels = np.asarray(logo, dtype=np.float32)
    alpha = pixels[..., 3]
    luma = pixels[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mean = float((luma * alpha).sum() / max(float(alpha.sum()), 1.0))
    return (255, 255, 255) if mean < 128 else (0, 0, 0)
