"""Framed regions: the rectangles a listing photo shows another photo in.

A seller pastes a catalogue photo onto a backdrop, into another photo or into an app page: the
pasted photo keeps its straight, axis-aligned border, wherever it lies. Fixed tiles (grid
cells, the centre) cut such a paste in two unless it happens to sit on their lines; finding
the border does not depend on where it lies. A border shows as two horizontal edge segments
(top and bottom) of about the same extent, joined at both ends by vertical edges, or by the
photo's own border when the paste touches it. Torch-free and cheap (one 160-px copy), so
decoding workers find the regions beside the other tiles.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from .sizing import shrink

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels
Segment = tuple[int, int, int]  # position across, start, end (along) in work pixels
Edges = npt.NDArray[np.bool_]

_ON_BORDER = 0.9  # the support a side on the photo's own border counts for


@dataclass(frozen=True)
class FrameConfig:
    """``side``: the working copy's longest side; ``contrast``: the colour step (0-255, in
    any channel) that counts as an edge; ``min_fraction``: a region's smallest side, as a
    fraction of the photo's; ``max_area``: larger regions are left out (the whole photo is
    searched anyway); ``support``: the fraction of each side's length that must be edge;
    ``tolerance``: work pixels by which two sides' ends may differ; ``max_segments``: only
    the longest horizontal segments are paired (bounds the work on striped pictures)."""

    side: int = 160
    contrast: float = 24.0
    min_fraction: float = 0.2
    max_area: float = 0.8
    support: float = 0.75
    tolerance: int = 3
    max_segments: int = 48


def framed_regions(photo: Image.Image, limit: int, config: FrameConfig | None = None) -> list[Box]:
    """Up to ``limit`` framed regions of ``photo``, best supported first, in its pixels."""
    config = config or FrameConfig()
    if limit < 1:
        return []
    small = np.asarray(shrink(photo, config.side).convert("RGB"), dtype=np.float32)
    height, width = small.shape[:2]
    if min(height, width) < 8:
        return []
    # Steps across two pixels (resampling spreads a sharp border over two rows), the largest
    # of the three colour channels (a paste may be as bright as its backdrop, not as red).
    rows = _edges(np.abs(small[2:] - small[:-2]).max(axis=2), config.contrast)  # at row y+1
    cols = _edges(np.abs(small[:, 2:] - small[:, :-2]).max(axis=2).T, config.contrast)
    horizontal = _segments(rows, round(config.min_fraction * width), offset=1)
    horizontal = sorted(horizontal, key=lambda seg: seg[1] - seg[2])[: config.max_segments]
    # the photo's own top and bottom stand in for a paste's border where it touches them
    horizontal += [(0, 0, width), (height, 0, width)]
    found: list[tuple[float, Box]] = []
    for top in horizontal:
        for bottom in horizontal:
            box = _box_between(top, bottom, width, height, config)
            if box is None:
                continue
            left, upper, right, lower = box
            sides = [
                _side_support(cols, x, upper, lower, width, config.tolerance) for x in (left, right)
            ]
            # a side on the photo's own border proves less than a drawn one: a region
            # bounded by drawn borders ranks first
            if upper == 0 or lower == height:
                sides.append(None)
            score = min(_ON_BORDER if side is None else side for side in sides)
            if score >= config.support:
                found.append((score, box))
    scale = (photo.width / width, photo.height / height)
    return [_to_photo(box, scale) for box in _distinct(found, limit)]


def _edges(steps: npt.NDArray[np.float32], contrast: float) -> Edges:
    """Steps above ``contrast`` that are also the strongest of their neighbours across the
    line (a resampled border spreads over two or three pixels: keep its peak)."""
    peak = steps >= contrast
    peak[1:] &= steps[1:] >= steps[:-1]
    peak[:-1] &= steps[:-1] >= steps[1:]
    return peak


def _segments(edges: Edges, min_length: int, offset: int) -> list[Segment]:
    """Runs of edge pixels along each line, at least ``min_length`` long, as (line + offset,
    start, end). A run may step to a neighbouring line and skip 2 pixels (resampling and
    JPEG do not keep a border on one row), but half of it must lie on its own line."""
    found = []
    for line, flags in enumerate(edges):
        if not flags.any():
            continue
        near = flags.copy()
        if line > 0:
            near |= edges[line - 1]
        if line + 1 < len(edges):
            near |= edges[line + 1]
        padded = np.concatenate([[False], _bridge(near, 2), [False]])
        changes = np.flatnonzero(padded[1:] != padded[:-1])
        for start, end in zip(changes[::2], changes[1::2], strict=True):
            if end - start >= min_length and flags[start:end].mean() >= 0.5:
                found.append((line + offset, int(start), int(end)))
    return found


def _bridge(flags: Edges, gap: int) -> Edges:
    """``flags`` with runs of at most ``gap`` False between two Trues filled."""
    bridged = flags.copy()
    true = np.flatnonzero(flags)
    for left, right in itertools.pairwise(true):
        if 1 < right - left <= gap + 1:
            bridged[left:right] = True
    return bridged


def _box_between(
    top: Segment, bottom: Segment, width: int, height: int, config: FrameConfig
) -> Box | None:
    """The region a top and a bottom segment bound, if they line up and it is of a size
    worth searching."""
    upper, top_start, top_end = top
    lower, bottom_start, bottom_end = bottom
    if lower - upper < config.min_fraction * height:
        return None
    # a border of the photo stands for any extent; two segments must agree on theirs
    top_is_border = upper == 0
    bottom_is_border = lower == height
    if top_is_border and bottom_is_border:
        return None
    if top_is_border:
        left, right = bottom_start, bottom_end
    elif bottom_is_border:
        left, right = top_start, top_end
    else:
        if abs(top_start - bottom_start) > config.tolerance:
            return None
        if abs(top_end - bottom_end) > config.tolerance:
            return None
        left, right = (top_start + bottom_start) // 2, (top_end + bottom_end + 1) // 2
    if right - left < config.min_fraction * width:
        return None
    if (right - left) * (lower - upper) > config.max_area * width * height:
        return None
    return (left, upper, right, lower)


def _side_support(
    cols: Edges, x: int, upper: int, lower: int, width: int, tolerance: int
) -> float | None:
    """The fraction of rows [upper, lower) with an edge on the vertical border before column
    ``x`` (the best of the lines within ``tolerance``, each counted with its two neighbours:
    a resampled border wanders between them); None where ``x`` is the photo's own border."""
    if x <= tolerance or x >= width - tolerance:
        return None
    best = 0.0
    for line in range(max(1, x - 1 - tolerance), min(len(cols) - 1, x + tolerance)):
        near = cols[line - 1 : line + 2, upper:lower].any(axis=0)
        best = max(best, float(near.mean()) if near.size else 0.0)
    return best


def _distinct(found: list[tuple[float, Box]], limit: int) -> list[Box]:
    """The best-supported boxes, larger first among equals, none overlapping a kept one by
    more than half."""
    kept: list[Box] = []
    for _, box in sorted(found, key=lambda item: (-item[0], -_area(item[1]))):
        if all(_overlap(box, other) <= 0.5 for other in kept):
            kept.append(box)
            if len(kept) == limit:
                break
    return kept


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _overlap(first: Box, second: Box) -> float:
    """Intersection over union."""
    left, top = max(first[0], second[0]), max(first[1], second[1])
    right, bottom = min(first[2], second[2]), min(first[3], second[3])
    inter = _area((left, top, right, bottom)) if right > left and bottom > top else 0
    union = _area(first) + _area(second) - inter
    return inter / union if union else 0.0


def _to_photo(box: Box, scale: tuple[float, float]) -> Box:
    left, top, right, bottom = box
    return (
        round(left * scale[0]),
        round(top * scale[1]),
        max(round(left * scale[0]) + 1, round(right * scale[0])),
        max(round(top * scale[1]) + 1, round(bottom * scale[1])),
    )
