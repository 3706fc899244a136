"""Outline alignment: flat glyphs (few keypoints) found again under rotation, perspective,
recolouring and inversion; the wrong glyph agrees less; the region lands on the logo."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from logo_helpers import one_torch_thread, still_paste, write_logo_model
from lookalike.data.composites import PasteConfig, paste_logo
from lookalike.data.manifest import CatalogEntry
from lookalike.logos.alignment import (
    Alignment,
    AlignmentConfig,
    PhotoGrey,
    align_logo,
    logo_templates,
)
from lookalike.logos.catalog import LogoCatalog
from lookalike.logos.geometry import bounds_overlap, plausible_view, quad_iou
from lookalike.logos.matcher import LogoMatchConfig, LogoMatcher
from lookalike.logos.network import load_logo_model
from lookalike.logos.windows import WindowGrid

INK = (25, 25, 25, 255)
CONFIG = AlignmentConfig()


def clover() -> Image.Image:
    """Three discs and a stem: smooth curves, almost no corners for keypoints."""
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for cx, cy in ((100, 55), (55, 115), (145, 115)):
        draw.ellipse((cx - 45, cy - 45, cx + 45, cy + 45), fill=INK)
    draw.rectangle((92, 120, 108, 198), fill=INK)
    return image


def bars() -> Image.Image:
    """Three slanted bars of rising height: a few identical corners."""
    image = Image.new("RGBA", (220, 180), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for k in range(3):
        x = 10 + 70 * k
        draw.polygon(
            [(x, 178), (x + 50, 178), (x + 70, 120 - 50 * k), (x + 20, 120 - 50 * k)], fill=INK
        )
    return image


def bolt() -> Image.Image:
    """A lightning bolt."""
    image = Image.new("RGBA", (160, 220), (0, 0, 0, 0))
    ImageDraw.Draw(image).polygon(
        [(90, 0), (10, 125), (70, 125), (45, 219), (150, 85), (88, 85), (120, 0)], fill=INK
    )
    return image


def textured(size: int = 480, seed: int = 0) -> Image.Image:
    """A warm, softly varying background with grain, like a fabric photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([200 + 30 * x, 170 + 40 * y, 150 + 20 * x * y], axis=-1)
    noise = rng.normal(0, 6, (size, size, 1))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def pasted(
    logo: Image.Image, *, seed: int = 1, invert: bool = False, recolour: bool = False
) -> tuple[Image.Image, np.ndarray]:
    config = still_paste(
        scale=(0.32, 0.32),
        max_rotation=15.0,
        perspective=0.1,
        p_invert=float(invert),
        p_recolour=float(recolour),
        opacity=PasteConfig().opacity,  # the default's slight transparency
    )
    photo, quad = paste_logo(textured(seed=seed), logo, random.Random(seed), config)
    return photo, np.asarray(quad, np.float64)


def window_around(quad: np.ndarray, fill: float = 0.75) -> tuple[float, float, float, float]:
    """The square window a grid would find the logo in: centred, the logo filling ``fill``."""
    (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / fill / 2
    return (cx - half, cy - half, cx + half, cy + half)


def visible_box(logo: Image.Image) -> tuple[int, int, int, int]:
    box = logo.getchannel("A").getbbox()
    assert box is not None
    return box


def align(photo: Image.Image, quad: np.ndarray, logo: Image.Image) -> Alignment:
    clean = logo.crop(visible_box(logo))  # renderings are cropped to their visible pixels
    return align_logo(
        PhotoGrey.of(photo, CONFIG.max_side),
        window_around(quad),
        logo_templates(clean, CONFIG),
        CONFIG,
    )


def side(quad: np.ndarray) -> float:
    return float(np.ptp(quad, axis=0).max())


def quad_error(found: tuple[tuple[float, float], ...], truth: np.ndarray) -> float:
    """Largest distance between matching corners (TL, TR, BR, BL)."""
    return float(np.linalg.norm(np.asarray(found, np.float64) - truth, axis=1).max())


@pytest.mark.parametrize("make", [clover, bars, bolt])
@pytest.mark.parametrize(("invert", "recolour"), [(False, False), (True, False), (False, True)])
def test_the_right_glyph_aligns_with_its_print(make, invert: bool, recolour: bool) -> None:
    logo = make()
    photo, truth = pasted(logo, invert=invert, recolour=recolour)
    found = align(photo, truth, logo)
    assert found.agreement >= 0.8, found
    assert found.quad is not None
    assert quad_error(found.quad, truth) <= 0.15 * side(truth), (found.quad, truth)


@pytest.mark.parametrize(("shown", "other"), [(clover, bolt), (bars, clover), (bolt, bars)])
def test_a_wrong_glyph_agrees_less_than_the_right_one(shown, other) -> None:
    photo, truth = pasted(shown(), seed=2)
    right = align(photo, truth, shown())
    wrong = align(photo, truth, other())
    assert right.agreement - wrong.agreement >= 0.15, (right, wrong)


def test_no_logo_no_agreement() -> None:
    photo = textured(seed=4)
    quad = np.array([[180, 180], [300, 180], [300, 300], [180, 300]], np.float64)
    assert align(photo, quad, clover()).agreement < 0.5


def test_the_region_is_in_the_full_photo_pixels() -> None:
    """Alignment works on the photo shrunk to max_side; the quad comes back at full size."""
    logo = bolt()
    photo, truth = pasted(logo, seed=5)
    big = photo.resize((photo.width * 3, photo.height * 3), Image.Resampling.BICUBIC)
    found = align(big, truth * 3, logo)
    assert found.agreement >= 0.8 and found.quad is not None
    assert quad_error(found.quad, truth * 3) <= 0.15 * side(truth * 3)
    assert plausible_view(np.asarray(found.quad))


def test_a_blank_logo_never_agrees() -> None:
    photo, truth = pasted(bolt(), seed=6)
    blank = Image.new("RGBA", (80, 40), (255, 255, 255, 255))
    found = align_logo(
        PhotoGrey.of(photo, CONFIG.max_side),
        window_around(truth),
        logo_templates(blank, CONFIG),
        CONFIG,
    )
    assert found.agreement == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        {"window_px": 8},
        {"context": 0.9},
        {"sizes": ()},
        {"sizes": (0.5, 1.7)},
        {"rotations": ()},
        {"iterations": 0},
    ],
)
def test_config_is_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        AlignmentConfig(**bad)


# -- in the matcher ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glyph_catalog(tmp_path_factory: pytest.TempPathFactory) -> LogoCatalog:
    folder = tmp_path_factory.mktemp("glyphs")
    entries = []
    for name, make in (("clover", clover), ("bars", bars), ("bolt", bolt)):
        path = folder / f"{name}.png"
        make().save(path)
        entries.append(CatalogEntry(image=path, item_id=name, brand=name, kind="logo"))
    model = load_logo_model(write_logo_model(folder / "logo.pt"))
    catalog = LogoCatalog(model, model_ref=str(folder / "logo.pt"))
    catalog.add(entries)
    return catalog


def test_the_matcher_scores_and_outlines_a_flat_glyph(glyph_catalog: LogoCatalog) -> None:
    """Random descriptor weights: every glyph is a candidate; alignment tells them apart and
    gives the region when keypoints find none (every candidate is reported here, also those
    that compete for the clover's place)."""
    config = LogoMatchConfig(
        grid=WindowGrid(scales=(0.48,), stride=0.25),
        window_k=3,
        candidates=3,
        top_k=3,
        min_score=-1.0,
        region_overlap=None,
    )
    photo, truth = pasted(clover(), seed=7)
    with one_torch_thread():
        matches = LogoMatcher(glyph_catalog, config).match(photo)
    by_id = {m.record.item_id: m for m in matches}
    clover_match = by_id["clover"]
    assert clover_match.agreement >= 0.8
    assert clover_match.agreement > max(by_id[k].agreement for k in ("bars", "bolt"))
    bonus = config.inlier_weight * min(clover_match.inliers, config.max_inlier_bonus)
    above_floor = clover_match.agreement - config.alignment_floor
    expected = clover_match.descriptor_score + bonus + config.alignment_weight * above_floor
    assert clover_match.score == pytest.approx(expected, abs=1e-5)
    assert quad_error(clover_match.region, truth) <= 0.15 * side(truth)
    # agreement >= 0.8: the aligned outline traces the region unless keypoints are many
    many = clover_match.inliers >= config.keypoint_region_inliers
    assert clover_match.region_source == ("keypoints" if many else "outline")


def test_alignment_can_be_switched_off(glyph_catalog: LogoCatalog) -> None:
    config = LogoMatchConfig(
        grid=WindowGrid(scales=(0.48,)),
        window_k=3,
        candidates=3,
        top_k=3,
        min_score=-1.0,
        alignment=None,
    )
    photo, _ = pasted(clover(), seed=7)
    with one_torch_thread():
        matches = LogoMatcher(glyph_catalog, config).match(photo)
    assert matches and all(m.agreement == 0.0 for m in matches)


def test_quad_iou_measures_the_overlap_of_two_outlines() -> None:
    square = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
    shifted = ((5.0, 0.0), (15.0, 0.0), (15.0, 10.0), (5.0, 10.0))
    diamond = ((5.0, 0.0), (10.0, 5.0), (5.0, 10.0), (0.0, 5.0))  # half the square's area
    far = ((100.0, 100.0), (110.0, 100.0), (110.0, 110.0), (100.0, 110.0))
    assert quad_iou(square, square) == pytest.approx(1.0)
    assert quad_iou(square, shifted) == pytest.approx(1 / 3, abs=0.01)
    assert quad_iou(square, diamond) == pytest.approx(0.5, abs=0.01)
    assert quad_iou(diamond, square) == pytest.approx(quad_iou(square, diamond))
    assert quad_iou(square, far) == 0.0
    nan = ((float("nan"), 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert quad_iou(square, nan) == 0.0
    point = ((3.0, 3.0),) * 4
    assert quad_iou(point, point) == 0.0


def test_bounds_overlap_compares_bounding_boxes() -> None:
    square = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
    shifted = ((5.0, 0.0), (15.0, 0.0), (15.0, 10.0), (5.0, 10.0))
    diamond = ((5.0, 0.0), (10.0, 5.0), (5.0, 10.0), (0.0, 5.0))  # the square's bounds
    inner = ((2.0, 2.0), (4.0, 2.0), (4.0, 4.0), (2.0, 4.0))
    far = ((100.0, 100.0), (110.0, 100.0), (110.0, 110.0), (100.0, 110.0))
    assert bounds_overlap(square, shifted) == pytest.approx((1 / 3, 0.5))
    assert bounds_overlap(square, diamond) == pytest.approx((1.0, 1.0))  # quad_iou: 0.5
    assert bounds_overlap(square, inner) == pytest.approx((0.04, 1.0))
    assert bounds_overlap(inner, square) == pytest.approx((0.04, 1.0))
    assert bounds_overlap(square, far) == (0.0, 0.0)
    nan = ((float("nan"), 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert bounds_overlap(square, nan) == (0.0, 0.0)
    point = ((3.0, 3.0),) * 4
    assert bounds_overlap(point, point) == (0.0, 0.0)
    assert bounds_overlap(square, point) == (0.0, 0.0)  # an empty box is inside nothing
