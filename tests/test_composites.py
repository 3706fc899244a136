"""Listing-like composites: the quad frames the pasted logo, runs repeat, configs are checked."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from logo_helpers import still_paste
from lookalike.data.composites import (
    Composite,
    PasteConfig,
    Quad,
    distractor_mark,
    make_composite,
    paste_logo,
    synthetic_background,
)

GREY = (128, 128, 128)
# Everything that changes pixels besides the logo itself switched off.
PLAIN = still_paste()


def solid_logo(size: tuple[int, int] = (90, 40)) -> Image.Image:
    """A fully opaque red rectangle inside a transparent margin (the margin is no logo)."""
    logo = Image.new("RGBA", (size[0] + 20, size[1] + 20), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rectangle((10, 10, 9 + size[0], 9 + size[1]), fill=(230, 10, 10, 255))
    return logo


def quad_mask(quad: Quad, size: tuple[int, int]) -> np.ndarray:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon(list(quad), fill=255)
    return np.asarray(mask) > 0


def changed(before: Image.Image, after: Image.Image) -> np.ndarray:
    diff = np.abs(np.asarray(before, dtype=int) - np.asarray(after, dtype=int)).max(axis=2)
    return diff > 0


def grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.filter(ImageFilter.MaxFilter(2 * pixels + 1))) > 0


def shrunk(mask: np.ndarray, pixels: int) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.filter(ImageFilter.MinFilter(2 * pixels + 1))) > 0


def inset(quad: Quad, size: tuple[int, int]) -> np.ndarray:
    """Per pixel, how far its centre lies inside the quad (px; negative outside)."""
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]] + 0.5
    distances = []
    for (x0, y0), (x1, y1) in zip(quad, quad[1:] + quad[:1], strict=True):
        length = np.hypot(x1 - x0, y1 - y0)
        # Corners run clockwise on screen (y down): the inside is to the right of each edge.
        distances.append(((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)) / length)
    return np.min(distances, axis=0)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("size", [(200, 160), (96, 300)])
def test_quad_frames_the_pasted_logo_exactly(seed: int, size: tuple[int, int]) -> None:
    background = Image.new("RGB", size, GREY)
    image, quad = paste_logo(background, solid_logo(), random.Random(seed), PLAIN)
    assert image.mode == "RGB" and image.size == size
    depth = inset(quad, size)
    touched = changed(background, image)
    # Every painted pixel's centre is in the quad, give or take the bilinear half pixel ...
    assert depth[touched].min() >= -0.5
    # ... and an opaque rectangular logo paints everything a pixel inside the outline.
    assert touched[depth >= 1.0].all()
    assert (depth >= 1.0).sum() > 20


def test_quad_check_notices_a_one_pixel_shift() -> None:
    background = Image.new("RGB", (200, 160), GREY)
    for seed in range(8):
        image, quad = paste_logo(background, solid_logo(), random.Random(seed), PLAIN)
        shifted = tuple((x + 1.0, y) for x, y in quad)
        depth = inset(shifted, background.size)  # type: ignore[arg-type]
        touched = changed(background, image)
        assert depth[touched].min() < -0.5 or not touched[depth >= 1.0].all()


@pytest.mark.parametrize("seed", range(30))
def test_logo_stays_inside_the_image_with_every_effect(seed: int) -> None:
    config = PasteConfig(scale=(0.4, 1.0), max_rotation=45.0, perspective=0.24, p_plate=1.0)
    size = (64 + 7 * seed, 40 + 11 * seed)
    image, quad = paste_logo(
        Image.new("RGB", size, GREY), solid_logo((300, 30)), random.Random(seed), config
    )
    assert image.size == size
    for x, y in quad:
        assert 0.0 <= x <= size[0] and 0.0 <= y <= size[1]


def test_same_seed_same_picture_and_the_input_is_untouched() -> None:
    background = synthetic_background((160, 120), random.Random(5))
    before = background.tobytes()
    logo = solid_logo()
    first = paste_logo(background, logo, random.Random(3))
    second = paste_logo(background, logo, random.Random(3))
    third = paste_logo(background, logo, random.Random(4))
    assert first[1] == second[1] and first[0].tobytes() == second[0].tobytes()
    assert third[0].tobytes() != first[0].tobytes()
    assert background.tobytes() == before


def test_occluder_covers_at_most_its_share_of_the_logo() -> None:
    background = Image.new("RGB", (240, 240), GREY)
    for seed in range(12):
        bare, quad = paste_logo(background, solid_logo(), random.Random(seed), PLAIN)
        config = PasteConfig(**{**PLAIN.__dict__, "p_occlude": 1.0, "max_occlusion": 0.2})
        covered, same_quad = paste_logo(background, solid_logo(), random.Random(seed), config)
        assert same_quad == quad  # the occluder changes no draw before it
        inside = quad_mask(quad, background.size)
        share = (changed(bare, covered) & inside).sum() / inside.sum()
        assert share <= 0.2 + 0.03


def test_light_on_dark_logo_is_light_on_a_darker_surrounding() -> None:
    config = PasteConfig(**{**PLAIN.__dict__, "p_invert": 1.0})
    dark_logo = solid_logo()
    dark_logo.paste((20, 20, 20, 255), (10, 10, 100, 50))
    white = Image.new("RGB", (300, 300), (255, 255, 255))
    for seed in range(6):
        image, quad = paste_logo(white, dark_logo, random.Random(seed), config)
        pixels = np.asarray(image.convert("L"), dtype=float)
        inside = shrunk(quad_mask(quad, image.size), 3)
        ring = grown(quad_mask(quad, image.size), 4) & ~grown(quad_mask(quad, image.size), 1)
        assert pixels[inside].mean() > 150
        assert pixels[ring].mean() < pixels[inside].mean()


@pytest.mark.parametrize(
    "changes",
    [
        {"scale": (0.5, 0.2)},
        {"scale": (0.0, 0.5)},
        {"scale": (0.1, 1.5)},
        {"max_rotation": -1.0},
        {"perspective": 0.25},
        {"p_plate": 1.5},
        {"p_jpeg": -0.1},
        {"blur_radius": (3.0, 1.0)},
        {"max_occlusion": 1.0},
        {"opacity": (0.0, 1.0)},
        {"jpeg_quality": (0, 90)},
        {"p_blur": float("nan")},
    ],
)
def test_config_rejects_invalid_values(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PasteConfig(**changes)  # type: ignore[arg-type]


def test_transparent_logo_is_refused() -> None:
    with pytest.raises(ValueError, match="no visible pixels"):
        paste_logo(Image.new("RGB", (50, 50)), Image.new("RGBA", (10, 10)), random.Random(0))


def test_make_composite_positive_carries_its_labels() -> None:
    background = Image.new("RGB", (128, 128), GREY)
    composite = make_composite(
        background, solid_logo(), random.Random(1), item_id="cars/x", brand="X", config=PLAIN
    )
    assert composite.item_id == "cars/x" and composite.brand == "X"
    assert composite.quad is not None
    assert changed(background, composite.image).any()


def test_negatives_have_no_labels_and_distractors_change_the_picture() -> None:
    background = Image.new("RGB", (128, 128), GREY)
    plain = make_composite(background, None, random.Random(1), config=PLAIN, p_distractor=0.0)
    assert plain == Composite(plain.image, None, None, None)
    assert not changed(background, plain.image).any()
    marked = make_composite(background, None, random.Random(1), config=PLAIN, p_distractor=1.0)
    assert marked.quad is None and marked.brand is None
    assert changed(background, marked.image).any()


def test_negatives_are_jpeg_finished_like_positives() -> None:
    rng = random.Random(0)
    background = synthetic_background((96, 96), rng)
    config = PasteConfig(p_jpeg=1.0, jpeg_quality=(40, 40))
    plain = make_composite(background, None, random.Random(2), config=config, p_distractor=0.0)
    assert changed(background, plain.image).any()  # JPEG artefacts, though nothing pasted


def test_make_composite_is_deterministic() -> None:
    background = synthetic_background((128, 96), random.Random(9))
    for logo in (solid_logo(), None):
        first = make_composite(background, logo, random.Random(6))
        second = make_composite(background, logo, random.Random(6))
        assert first.quad == second.quad
        assert first.image.tobytes() == second.image.tobytes()


@pytest.mark.parametrize("seed", range(12))
def test_distractor_mark_is_a_visible_rgba_mark(seed: int) -> None:
    mark = distractor_mark(random.Random(seed), 96)
    assert mark.mode == "RGBA"
    assert max(mark.size) == 96
    alpha = np.asarray(mark)[..., 3]
    assert alpha.max() == 255 and (alpha > 0).mean() > 0.02
    assert distractor_mark(random.Random(seed), 96).tobytes() == mark.tobytes()
    image, _ = paste_logo(Image.new("RGB", (200, 200)), mark, random.Random(seed))
    assert image.size == (200, 200)


def test_synthetic_background_size_mode_and_variety() -> None:
    pictures = [synthetic_background((90, 70), random.Random(seed)) for seed in range(16)]
    assert all(p.mode == "RGB" and p.size == (90, 70) for p in pictures)
    assert len({p.tobytes() for p in pictures}) == 16
    assert synthetic_background((90, 70), random.Random(3)).tobytes() == pictures[3].tobytes()
    with pytest.raises(ValueError):
        synthetic_background((0, 10), random.Random(0))
