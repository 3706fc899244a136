"""Tests for lookalike.evidence: evidence pictures of logo and copy matches, and their saving.

Geometry is checked on the rendered pixels, without knowing the layout: each test paints its
listing and reference in flat colours no decoration uses, finds where they landed in the output
(their bounding boxes), and derives the tile scale from that.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike import evidence, files
from lookalike.evidence import EvidencePanel, Point, render_evidence, save_evidence

GREEN = (40, 160, 60)
RED = (220, 30, 30)
LISTING_PURPLE = (128, 64, 160)  # no text or decoration has these colours
REFERENCE_TEAL = (60, 120, 140)
LOGO_BLUE = evidence.LABEL_COLOURS["logo"]
REVIEW_ORANGE = evidence.LABEL_COLOURS["review"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(np.int16)


def _near(pixels: np.ndarray, colour: Sequence[int], tolerance: int) -> np.ndarray:
    return np.all(np.abs(pixels - np.array(colour)) <= tolerance, axis=-1)


def _bbox(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    assert len(xs), "colour not found in the output"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _greenish(pixels: np.ndarray) -> np.ndarray:
    """The listing's green, dimmed or not."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return (g > r + 40) & (g > b + 40)


def _panel(**kwargs: object) -> EvidencePanel:
    reference = kwargs.pop("reference", Image.new("RGB", (300, 200), REFERENCE_TEAL))
    return EvidencePanel(reference, "logo · Test", ("score 0.91",), **kwargs)  # type: ignore[arg-type]


def _listing_with_square(size: tuple[int, int]) -> tuple[Image.Image, list[Point]]:
    """A green listing with a red square; returns it and the square's corners (TL TR BR BL)."""
    w, h = size
    x0, x1 = round(0.3 * w), round(0.6 * w)
    y0, y1 = round(0.25 * h), round(0.75 * h)
    listing = Image.new("RGB", size, GREEN)
    ImageDraw.Draw(listing).rectangle((x0, y0, x1 - 1, y1 - 1), fill=RED)
    return listing, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _scale(box: Box, size: tuple[int, int]) -> tuple[float, float]:
    return (box[2] - box[0] + 1) / size[0], (box[3] - box[1] + 1) / size[1]


# -- the region ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [(1000, 500), (300, 900), (24, 16), (5000, 3000)],
    ids=["wide", "tall", "tiny-upscaled", "huge"],
)
def test_region_outline_lies_on_the_scaled_border(size: tuple[int, int]) -> None:
    listing, square = _listing_with_square(size)
    out = _pixels(render_evidence(listing, [_panel(region=square)]))

    photo = _bbox(_greenish(out))  # the fitted listing: the outline stays inside the green
    sx, sy = _scale(photo, size)
    assert sx == pytest.approx(sy, rel=0.02)  # fitted without distortion
    assert max(photo[2] - photo[0], photo[3] - photo[1]) + 1 > 0.9 * evidence.TILE
    ex0, ey0 = photo[0] + square[0][0] * sx, photo[1] + square[0][1] * sy
    ex1, ey1 = photo[0] + square[2][0] * sx, photo[1] + square[2][1] * sy

    # Every accent pixel on the listing lies in a band just outside the scaled square.
    near = np.zeros(out.shape[:2], bool)
    near[photo[1] : photo[3] + 1, photo[0] : photo[2] + 1] = True
    ys, xs = np.nonzero(_near(out, LOGO_BLUE, 40) & near)
    assert len(xs) > 0
    cx, cy = xs + 0.5, ys + 0.5
    outside = np.maximum.reduce([ex0 - cx, cx - ex1, ey0 - cy, cy - ey1])
    assert outside.min() >= -1.5
    assert outside.max() <= evidence.OUTLINE_WIDTH + 1.5

    # ... and it runs along all four sides.
    for along, across, lo, hi, at in (
        (cx, cy, ex0, ex1, ey0),  # top
        (cx, cy, ex0, ex1, ey1),  # bottom
        (cy, cx, ey0, ey1, ex0),  # left
        (cy, cx, ey0, ey1, ex1),  # right
    ):
        side = np.abs(across - at) <= evidence.OUTLINE_WIDTH + 1.5
        covered = np.unique(np.floor(along[side & (along >= lo) & (along <= hi)]))
        assert len(covered) >= 0.9 * (hi - lo)

    # Inside: the square, neither dimmed nor covered by the outline.
    inside = _bbox(_near(out, RED, 30))
    for got, expected in zip(inside, (ex0, ey0, ex1 - 1, ey1 - 1), strict=True):
        assert got == pytest.approx(expected, abs=2.5)
    # Outside: the same green, dimmed.
    corner = out[photo[1] + 1, photo[0] + 1]
    assert corner.tolist() == pytest.approx([c * (1 - evidence.DIM) for c in GREEN], abs=3)


def test_polygon_region_is_outlined_along_its_edges() -> None:
    size = (800, 600)
    quad = [(200.0, 150.0), (600.0, 200.0), (560.0, 450.0), (180.0, 400.0)]
    listing = Image.new("RGB", size, GREEN)
    out = _pixels(render_evidence(listing, [_panel(region=quad)]))
    photo = _bbox(_greenish(out))
    sx, sy = _scale(photo, size)
    corners = np.array([(photo[0] + x * sx, photo[1] + y * sy) for x, y in quad])

    ys, xs = np.nonzero(_near(out, LOGO_BLUE, 40))
    keep = (xs >= photo[0]) & (xs <= photo[2]) & (ys >= photo[1]) & (ys <= photo[3])
    points = np.stack([xs[keep] + 0.5, ys[keep] + 0.5], axis=1)
    assert len(points) > 100
    distances = np.min([_segment_distance(points, a, b) for a, b in _edges(corners)], axis=0)
    assert distances.max() <= evidence.OUTLINE_WIDTH + 1.5
    # Outside the quadrilateral (the outline hides none of the region), near each corner.
    assert not np.any(_inside_convex(points, corners, margin=1.5))
    for corner in corners:
        assert np.min(np.hypot(*(points - corner).T)) <= evidence.OUTLINE_WIDTH + 1.5


def test_two_point_region_is_a_box() -> None:
    listing, square = _listing_with_square((640, 480))
    as_box = render_evidence(listing, [_panel(region=[square[0], square[2]])])
    as_quad = render_evidence(listing, [_panel(region=square)])
    assert np.array_equal(np.asarray(as_box), np.asarray(as_quad))


def test_no_region_means_whole_photo_undimmed() -> None:
    listing = Image.new("RGB", (640, 480), GREEN)
    out = _pixels(render_evidence(listing, [_panel()]))
    photo = _bbox(_greenish(out))
    assert out[photo[1] + 1, photo[0] + 1].tolist() == list(GREEN)
    area = out[photo[1] : photo[3] + 1, photo[0] : photo[2] + 1]
    assert not _near(area, LOGO_BLUE, 40).any()


def _edges(corners: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(corners[i], corners[(i + 1) % len(corners)]) for i in range(len(corners))]


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.hypot(*(points - (a + t[:, None] * ab)).T)


def _inside_convex(points: np.ndarray, corners: np.ndarray, margin: float) -> np.ndarray:
    """Points more than ``margin`` inside a convex polygon given clockwise on screen."""
    inside = np.ones(len(points), bool)
    for a, b in _edges(corners):
        edge = b - a
        cross = edge[0] * (points[:, 1] - a[1]) - edge[1] * (points[:, 0] - a[0])
        inside &= cross / np.hypot(*edge) > margin
    return inside


# -- the match lines -----------------------------------------------------------------------


def _tiles(out: np.ndarray) -> tuple[Box, Box]:
    return _bbox(_near(out, LISTING_PURPLE, 0)), _bbox(_near(out, REFERENCE_TEAL, 0))


def _coloured(out: np.ndarray, xy: tuple[float, float], radius: int = 1) -> bool:
    """Whether something is drawn within ``radius`` of ``xy``: a pixel of none of the plain
    colours there (the flat pictures, the tiles' and the canvas's backgrounds)."""
    x, y = round(xy[0]), round(xy[1])
    patch = out[y - radius : y + radius + 1, x - radius : x + radius + 1]
    plain = (LISTING_PURPLE, REFERENCE_TEAL, evidence.CANVAS, evidence.TILE_BACKGROUND)
    return bool(np.any(~_is_any(patch, plain)))


def _is_any(patch: np.ndarray, colours: Sequence[Sequence[int]]) -> np.ndarray:
    return np.any([_near(patch, colour, 0) for colour in colours], axis=0)


def test_point_lines_join_the_scaled_keypoints() -> None:
    listing = Image.new("RGB", (800, 600), LISTING_PURPLE)
    reference = Image.new("RGB", (300, 900), REFERENCE_TEAL)
    pair = ((200.0, 150.0), (100.0, 700.0))
    panel = EvidencePanel(reference, "copy · sku 1", point_pairs=[pair], label="review")
    out = _pixels(render_evidence(listing, [panel]))

    left, right = _tiles(out)
    lsx, lsy = _scale(left, listing.size)
    rsx, rsy = _scale(right, reference.size)
    start = np.array([left[0] + pair[0][0] * lsx, left[1] + pair[0][1] * lsy])
    end = np.array([right[0] + pair[1][0] * rsx, right[1] + pair[1][1] * rsy])

    # The endpoints carry a dot in the accent colour, right on the scaled keypoints ...
    for point in (start, end):
        x, y = np.round(point).astype(int)
        assert out[y, x].tolist() == pytest.approx(list(REVIEW_ORANGE), abs=30)
    # ... and the line stops there: 10 px further on, the photos are untouched.
    direction = (end - start) / np.hypot(*(end - start))
    beyond_start = np.round(start - 10 * direction).astype(int)
    beyond_end = np.round(end + 10 * direction).astype(int)
    assert out[beyond_start[1], beyond_start[0]].tolist() == list(LISTING_PURPLE)
    assert out[beyond_end[1], beyond_end[0]].tolist() == list(REFERENCE_TEAL)
    # A straight line between them, across the gap between the tiles.
    for t in np.linspace(0.05, 0.95, 19):
        assert _coloured(out, tuple(start + t * (end - start)))
    # Semi-transparent: in the gap, the white canvas shows through.
    gap_x = (left[2] + right[0]) // 2
    t = (gap_x + 0.5 - start[0]) / (end[0] - start[0])
    y = round(start[1] + t * (end[1] - start[1]))
    column = out[y - 3 : y + 4, gap_x]
    line_pixel = column[np.argmin(column[:, 2])]
    assert 40 < line_pixel[2] < 220  # blue: 0 in opaque orange, 255 in white


def _column_pairs(count: int) -> list[tuple[Point, Point]]:
    """Pairs whose lines run right and never pass over another pair's keypoints."""
    return [((100.0, 15.0 + 30 * i), (50.0, 15.0 + 30 * i)) for i in range(count)]


@pytest.mark.parametrize(
    ("max_points", "drawn"),
    [(4, [0, 5, 10, 15]), (1, [0]), (0, []), (20, list(range(20))), (50, list(range(20)))],
)
def test_at_most_max_points_lines_evenly_sampled(max_points: int, drawn: list[int]) -> None:
    listing = Image.new("RGB", (600, 600), LISTING_PURPLE)
    reference = Image.new("RGB", (300, 600), REFERENCE_TEAL)
    pairs = _column_pairs(20)
    panel = EvidencePanel(reference, "t", point_pairs=pairs, label="review")
    out = _pixels(render_evidence(listing, [panel], max_points=max_points))
    left, _ = _tiles(out)
    sx, sy = _scale(left, listing.size)
    marked = [
        i
        for i, ((x, y), _) in enumerate(pairs)
        if _coloured(out, (left[0] + x * sx, left[1] + y * sy), radius=0)
    ]
    assert marked == drawn


def test_pairs_off_either_picture_are_not_drawn() -> None:
    listing = Image.new("RGB", (400, 300), LISTING_PURPLE)
    reference = Image.new("RGB", (200, 200), REFERENCE_TEAL)
    off = [((-5.0, 10.0), (10.0, 10.0)), ((10.0, 10.0), (10.0, 201.0)), ((401.0, 0.0), (0, 0))]
    with_off = EvidencePanel(reference, "t", point_pairs=off)
    without = EvidencePanel(reference, "t")
    assert np.array_equal(
        np.asarray(render_evidence(listing, [with_off])),
        np.asarray(render_evidence(listing, [without])),
    )


def test_each_panel_is_a_row_with_its_own_lines() -> None:
    listing = Image.new("RGB", (600, 600), LISTING_PURPLE)
    reference = Image.new("RGB", (300, 600), REFERENCE_TEAL)
    pairs = _column_pairs(3)
    panels = [
        EvidencePanel(reference, "a", point_pairs=pairs[:1], label="review"),
        EvidencePanel(reference, "b", point_pairs=pairs[1:], label="review"),
    ]
    image = render_evidence(listing, panels)
    single = render_evidence(listing, panels[:1])
    assert image.width == single.width
    assert image.height > 2 * evidence.TILE
    out = _pixels(image)
    rows = [out[: single.height - evidence.MARGIN], out[single.height - evidence.MARGIN :]]
    for row, expected in zip(rows, ([0], [1, 2]), strict=True):
        left, _ = _tiles(row)
        sx, sy = _scale(left, listing.size)
        marked = [
            i
            for i, ((x, y), _) in enumerate(pairs)
            if _coloured(row, (left[0] + x * sx, left[1] + y * sy), radius=0)
        ]
        assert marked == expected


# -- pictures of every kind ----------------------------------------------------------------


def test_rgba_reference_is_drawn_on_a_light_plain_background() -> None:
    # Transparent pixels hide a green that must never show; half-transparent ones, black.
    logo = Image.new("RGBA", (200, 100), (*GREEN, 0))
    draw = ImageDraw.Draw(logo)
    draw.ellipse((60, 10, 140, 90), fill=(*RED, 255))
    draw.rectangle((0, 0, 30, 30), fill=(0, 0, 0, 128))
    listing = Image.new("RGB", (400, 300), LISTING_PURPLE)
    out = _pixels(render_evidence(listing, [_panel(reference=logo)]))

    assert not _greenish(out).any()
    disc = _bbox(_near(out, RED, 30))
    scale = (disc[2] - disc[0] + 1) / 80
    picture_left = disc[0] - 60 * scale
    picture_top = disc[1] - 10 * scale
    # Fully transparent: plain and light, with no checkerboard.
    clear = out[
        round(picture_top + 50 * scale) : round(picture_top + 90 * scale),
        round(picture_left + 160 * scale) : round(picture_left + 195 * scale),
    ]
    assert clear.min() >= 230
    assert np.ptp(clear.reshape(-1, 3), axis=0).max() == 0
    # Half transparent black: mid grey.
    half = out[round(picture_top + 10 * scale), round(picture_left + 10 * scale)]
    assert 100 <= half.min() <= half.max() <= 155


@pytest.mark.parametrize("mode", ["L", "P", "1", "LA", "La", "RGBA", "CMYK", "I;16", "I", "F"])
def test_any_image_mode(mode: str) -> None:
    listing = _in_mode(Image.new("RGB", (320, 240), (200, 100, 50)), mode)
    reference = _in_mode(Image.new("RGB", (100, 160), (20, 90, 200)), mode)
    panel = _panel(
        reference=reference, region=[(10, 10), (100, 80)], point_pairs=[((5, 5), (5, 5))]
    )
    out = render_evidence(listing, [panel])
    assert out.mode == "RGB"
    assert out.size == render_evidence(Image.new("RGB", listing.size), [panel]).size


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "La":  # PIL converts nothing to La, but accepts its raw bytes
        return Image.frombytes("La", image.size, image.convert("LA").tobytes())
    return image.convert(mode)


@pytest.mark.parametrize(
    "size",
    [(1, 1), (3, 2), (4000, 3), (3, 4000), (20000, 2)],
    ids=["1x1", "3x2", "wide-strip", "tall-strip", "extreme-strip"],
)
def test_tiny_and_extreme_aspect_pictures(size: tuple[int, int]) -> None:
    w, h = size
    picture = Image.new("RGB", size, LISTING_PURPLE)
    panel = _panel(
        reference=picture,
        region=[(0, 0), (w, 0), (w, h), (0, h)],
        point_pairs=[((w / 2, h / 2), (w / 2, h / 2)), ((0, 0), (w, h))],
    )
    out = render_evidence(picture, [panel])
    normal = render_evidence(Image.new("RGB", (640, 480), LISTING_PURPLE), [panel])
    assert out.mode == "RGB"
    assert out.size == normal.size  # the picture's size never changes the layout
    assert _near(_pixels(out), LISTING_PURPLE, 0).any()  # the picture is there, however thin


def test_huge_pictures_keep_the_layout_size() -> None:
    huge = Image.new("RGB", (8000, 6000), LISTING_PURPLE)
    small = Image.new("RGB", (80, 60), LISTING_PURPLE)
    panel = EvidencePanel(huge, "copy", ("x",), point_pairs=[((4000, 3000), (10, 10))])
    small_panel = EvidencePanel(small, "copy", ("x",), point_pairs=[((40, 30), (0.1, 0.1))])
    assert render_evidence(huge, [panel]).size == render_evidence(small, [small_panel]).size


def test_empty_picture_does_not_fail() -> None:
    empty = Image.new("RGB", (0, 0))
    out = render_evidence(empty, [_panel(reference=empty, point_pairs=[((0, 0), (0, 0))])])
    assert out.mode == "RGB"
    assert render_evidence(empty, []).mode == "RGB"


# -- header and captions -------------------------------------------------------------------


def test_no_panels_is_the_listing_under_a_no_match_header() -> None:
    listing = Image.new("RGB", (640, 480), GREEN)
    out = render_evidence(listing, [])
    assert out.mode == "RGB"
    assert np.array_equal(
        np.asarray(out), np.asarray(render_evidence(listing, [], header="no match"))
    )
    assert not np.array_equal(np.asarray(out), np.asarray(render_evidence(listing, [], header="x")))
    assert out.width < render_evidence(listing, [_panel()]).width
    photo = _bbox(_greenish(_pixels(out)))
    assert max(photo[2] - photo[0], photo[3] - photo[1]) + 1 > 0.9 * evidence.TILE
    assert _near(_pixels(out), GREEN, 0).any()  # undimmed: there is no region


@pytest.mark.parametrize(
    ("label", "title", "count", "expected"),
    [
        ("logo", "logo · Nike", 1, "logo · Nike"),
        ("copy", "sku 1234", 1, "COPY · sku 1234"),
        ("review", "sku 1234", 3, "REVIEW · sku 1234   (+2 more matches)"),
    ],
)
def test_default_header_names_the_first_match(
    label: str, title: str, count: int, expected: str
) -> None:
    listing = Image.new("RGB", (64, 48), GREEN)
    panels = [EvidencePanel(listing, title, label=label)] * count
    default = render_evidence(listing, panels)
    named = render_evidence(listing, panels, header=expected)
    assert np.array_equal(np.asarray(default), np.asarray(named))


def test_characters_the_font_lacks_get_readable_stand_ins() -> None:
    listing = Image.new("RGB", (64, 48), GREEN)

    def with_details(*details: str) -> np.ndarray:
        return np.asarray(render_evidence(listing, [EvidencePanel(listing, "t", details)]))

    assert np.array_equal(with_details("precision ≈ 0.97"), with_details("precision ~ 0.97"))
    assert np.array_equal(with_details("a\tb\nc"), with_details("a b c"))


def test_long_texts_and_many_details_fit_the_layout() -> None:
    listing = Image.new("RGB", (64, 48), GREEN)
    short = render_evidence(listing, [EvidencePanel(listing, "t", ("d",) * 6)])
    long = render_evidence(
        listing,
        [EvidencePanel(listing, "t" * 500, ("d" * 500,) * 40)],
        header="h" * 500,
    )
    assert long.size == short.size  # cut with an ellipsis; extra details folded into one line


def test_label_colours_match_the_service() -> None:
    from lookalike.service.evidence import LABEL_COLOURS as SERVICE_COLOURS

    for label, colour in SERVICE_COLOURS.items():
        assert evidence.LABEL_COLOURS[label] == colour
    assert evidence.LABEL_COLOURS["logo"] not in SERVICE_COLOURS.values()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"region": [(1.0, 2.0)]},
        {"region": [(0.0, 0.0), (math.nan, 1.0)]},
        {"region": [(0.0, 0.0), (1.0, 1.0, 1.0)]},
        {"point_pairs": [((0.0, math.inf), (1.0, 1.0))]},
    ],
)
def test_invalid_geometry_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _panel(**kwargs)


def test_panel_geometry_is_stored_immutably() -> None:
    region = [[1, 2], [3, 4], [5, 6]]
    panel = _panel(region=region, point_pairs=[[[1, 2], [3, 4]]])
    region.append([7, 8])
    assert panel.region == ((1.0, 2.0), (3.0, 4.0), (5.0, 6.0))
    assert panel.point_pairs == (((1.0, 2.0), (3.0, 4.0)),)


# -- saving --------------------------------------------------------------------------------


def _listing_dir(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_save_writes_a_png_and_creates_folders(tmp_path: Path) -> None:
    image = render_evidence(Image.new("RGB", (64, 48), GREEN), [_panel()])
    path = tmp_path / "out" / "evidence.png"
    assert save_evidence(image, path) == path
    with Image.open(path) as saved:
        assert saved.format == "PNG"
        assert np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(image))
    assert _listing_dir(path.parent) == ["evidence.png"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_replaces_an_existing_file_keeping_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "evidence.png"
    path.write_bytes(b"old contents")
    path.chmod(0o640)
    image = Image.new("RGB", (10, 10), RED)
    save_evidence(image, path)
    with Image.open(path) as saved:
        assert saved.convert("RGB").getpixel((5, 5)) == RED
    assert _listing_dir(tmp_path) == ["evidence.png"]
    assert path.stat().st_mode & 0o777 == 0o640


def test_failed_save_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evidence.png"
    path.write_bytes(b"old contents")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)  # the atomic writer evidence uses
    with pytest.raises(OSError, match="disk full"):
        save_evidence(Image.new("RGB", (10, 10), RED), path)
    assert path.read_bytes() == b"old contents"
    assert _listing_dir(tmp_path) == ["evidence.png"]


def test_caption_says_how_the_match_was_located() -> None:
    """Outlined, matched whole by keypoints, or only resembling (a descriptor match)."""
    reference = Image.new("RGB", (100, 100), REFERENCE_TEAL)
    pairs = [((10.0, 10.0), (20.0, 20.0))]
    panels = {
        "matched region outlined": EvidencePanel(reference, "t", region=[(0, 0), (50, 50)]),
        "whole photo matched": EvidencePanel(reference, "t", point_pairs=pairs),
        "matched by resemblance, not located": EvidencePanel(reference, "t"),
    }
    for expected, panel in panels.items():
        left, _ = evidence._caption_lines((100, 100), panel, max_points=40)
        assert left[-1].text == expected
