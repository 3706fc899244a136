"""Is a quadrilateral a plausible view of a flat picture? Shared by logo keypoint
verification, outline alignment and whole-photo re-ranking, which all end with a homography
that may be a chance fit. And how much two outlines overlap (the logo benchmark's measure of
a reported region), exactly or by bounding boxes (cheap enough to compare every pair of a
photo's matches)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]  # TL, TR, BR, BL

# opposite sides of a logo seen in mild perspective keep similar lengths; a chance homography
# through a few random matches usually does not
MAX_SIDE_RATIO = 2.5
MIN_AREA = 64.0  # square pixels


def _convex(quad: npt.NDArray[np.float64]) -> bool:
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    cross = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    return bool(np.all(cross > 0) or np.all(cross < 0))


def polygon_area(quad: npt.NDArray[np.float64]) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def plausible_view(quad: npt.NDArray[np.float64], min_area: float = MIN_AREA) -> bool:
    """A (4, 2) outline that is finite, convex, not tiny, and whose opposite sides differ
    by at most :data:`MAX_SIDE_RATIO`."""
    if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        return False
    if not _convex(quad) or polygon_area(quad) < min_area:
        return False
    sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)
    for first, second in ((sides[0], sides[2]), (sides[1], sides[3])):
        if min(first, second) <= 0 or max(first, second) / min(first, second) > MAX_SIDE_RATIO:
            return False
    return True


def box_corners(left: float, top: float, right: float, bottom: float) -> npt.NDArray[np.float64]:
    """A box's corners as a (4, 2) quad: TL, TR, BR, BL."""
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)


def covers(quad: npt.NDArray[np.float64], points: npt.NDArray[np.float64]) -> bool:
    """Whether the convex ``quad`` (4, 2) contains every one of ``points`` (n, 2)."""
    edges = np.roll(quad, -1, axis=0) - quad
    for point in points:
        offsets = point - quad
        cross = edges[:, 0] * offsets[:, 1] - edges[:, 1] * offsets[:, 0]
        if not (np.all(cross >= 0) or np.all(cross <= 0)):
            return False
    return True


def project(
    homography: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``points`` (n, 2) through the 3x3 ``homography``; all NaN when one of them goes to
    infinity (which :func:`plausible_view` then refuses)."""
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ homography.T
    depth = homogeneous[:, 2:3]
    if np.any(np.abs(depth) < 1e-9):
        return np.full((len(points), 2), np.nan)
    return np.asarray(homogeneous[:, :2] / depth, dtype=np.float64)


def quad_iou(first: Quad, second: Quad, resolution: int = 512) -> float:
    """Intersection over union of two outlines (any simple polygons), by drawing both on a
    mask whose longer side is ``resolution`` pixels over their joint bounding box (exact to
    about a pixel of that mask; quads from a chance homography need not be convex)."""
    points = np.array([*first, *second], np.float64)
    if not np.all(np.isfinite(points)):
        return 0.0
    low = points.min(axis=0)
    extent = float((points.max(axis=0) - low).max())
    if extent <= 0:
        return 0.0
    scale = (resolution - 1) / extent
    masks = []
    for quad in (first, second):
        mask = Image.new("1", (resolution, resolution), 0)
        corners = [tuple((np.array(p) - low) * scale) for p in quad]
        ImageDraw.Draw(mask).polygon([(float(x), float(y)) for x, y in corners], fill=1)
        masks.append(np.asarray(mask, np.bool_))
    union = int(np.logical_or(*masks).sum())
    return int(np.logical_and(*masks).sum()) / union if union else 0.0


def bounds_overlap(first: Quad, second: Quad) -> tuple[float, float]:
    """How much two outlines' axis-aligned bounding boxes overlap: (intersection over union,
    intersection over the smaller box, which is 1 when one box lies inside the other); (0, 0)
    for non-finite or empty ones. A coarse :func:`quad_iou` at a tiny fraction of its cost."""
    boxes = []
    for quad in (first, second):
        points = np.asarray(quad, np.float64)
        if not np.all(np.isfinite(points)):
            return 0.0, 0.0
        boxes.append((*points.min(axis=0), *points.max(axis=0)))
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    first_area, second_area = (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)
    union = first_area + second_area - inter
    smaller = min(first_area, second_area)
    if union <= 0 or smaller <= 0:
        return 0.0, 0.0
    return float(inter / union), float(inter / smaller)
