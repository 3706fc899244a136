"""Counterfeit-listing augmentations: contracts every edit keeps, and what the special ones do."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image, ImageFont, ImageOps

from lookalike.data import augment
from lookalike.data.augment import (
    EDIT_KINDS,
    EDITS,
    AugmentConfig,
    ListingAugment,
    apply_edit,
    random_listing_edit,
)
from lookalike.data.synthetic import synthetic_image

MAGENTA = (255, 0, 255)
GREEN = (0, 255, 0)
# Kinds whose output does not depend on the rng at all.
DETERMINISTIC_KINDS = {"mirror"}


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return synthetic_image(3, (96, 96))


@pytest.fixture(scope="module")
def others() -> list[Image.Image]:
    return [synthetic_image(seed, (80, 60)) for seed in (11, 12, 13)]


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def fraction_of(image: Image.Image, colour: tuple[int, int, int]) -> float:
    return float(np.all(pixels(image) == colour, axis=-1).mean())


def test_vocabulary_is_stable_and_complete() -> None:
    assert EDIT_KINDS == (
        "crop",
        "paste",
        "rotate",
        "perspective",
        "mirror",
        "colour",
        "gray",
        "blur",
        "jpeg",
        "downscale",
        "text",
        "watermark",
        "sticker",
        "screenshot",
        "collage",
        "combined",
    )
    assert list(EDITS) == list(EDIT_KINDS)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_edit_returns_rgb_and_leaves_input_alone(
    kind: str, photo: Image.Image, others: list[Image.Image]
) -> None:
    before = photo.tobytes()
    edited = apply_edit(kind, photo, rng(0), others)
    assert isinstance(edited, Image.Image)
    assert edited.mode == "RGB"
    assert edited.width > 0 and edited.height > 0
    assert photo.tobytes() == before
    assert all(other.mode == "RGB" for other in others)


@pytest.mark.parametrize("kind", EDIT_KINDS)
def test_edit_is_deterministic_for_a_seed(
    kind: str, photo: Image.Image, others: list[Image.Image]
) -> None:
    first = apply_edit(kind, photo, rng(42), others)
    second = apply_edit(kind, photo, rng(42), others)
    assert first.size == second.size
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("kind", sorted(set(EDIT_KINDS) - DETERMINISTIC_KINDS))
def test_edit_varies_with_the_seed(
    kind: str, photo: Image.Image, others: list[Image.Image]
) -> None:
    outputs = {apply_edit(kind, photo, rng(seed), others).tobytes() for seed in range(5)}
    assert len(outputs) >= 3


@pytest.mark.parametrize("kind", EDIT_KINDS)
@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda: synthetic_image(5, (8, 8)), id="tiny-8x8"),
        pytest.param(lambda: solid((90, 90, 90), (1, 1)), id="single-pixel"),
        pytest.param(lambda: synthetic_image(6, (600, 40)), id="wide-600x40"),
        pytest.param(lambda: synthetic_image(7, (3, 120)), id="tall-3x120"),
        pytest.param(lambda: synthetic_image(8, (64, 48)).convert("L").convert("RGB"), id="grey"),
        pytest.param(lambda: synthetic_image(9, (40, 40)).convert("L"), id="mode-L"),
        pytest.param(lambda: synthetic_image(9, (40, 40)).convert("RGBA"), id="mode-RGBA"),
    ],
)
def test_edit_survives_odd_inputs(
    kind: str, shape: Callable[[], Image.Image], others: list[Image.Image]
) -> None:
    image = shape()
    for seed in range(4):
        pool = others if seed % 2 else ()
        edited = apply_edit(kind, image, rng(seed), pool)
        assert edited.mode == "RGB"
        assert edited.width >= 1 and edited.height >= 1


def test_mirror_is_a_plain_left_right_flip(photo: Image.Image) -> None:
    assert augment.mirror(photo, rng(0)).tobytes() == ImageOps.mirror(photo).tobytes()


def test_gray_has_three_equal_channels(photo: Image.Image) -> None:
    for seed in range(3):
        grey = pixels(augment.gray(photo, rng(seed)))
        assert np.array_equal(grey[..., 0], grey[..., 1])
        assert np.array_equal(grey[..., 1], grey[..., 2])
        assert grey.std() > 5  # the picture is still there, not a flat fill


def test_crop_keeps_the_requested_share_of_pixels(photo: Image.Image) -> None:
    for seed in range(5):
        cropped = augment.crop(photo, rng(seed), area=(0.5, 0.5))
        kept = cropped.width * cropped.height / (photo.width * photo.height)
        assert 0.4 < kept < 0.6


def test_paste_shows_the_background_around_the_photo(photo: Image.Image) -> None:
    backdrop = solid(MAGENTA)
    for seed in range(4):
        pasted = augment.paste(photo, rng(seed), others=[backdrop], background="photo")
        assert pasted.size == photo.size
        # The photo covers at most 0.8 x 0.8 of the canvas: at least 36% is background.
        assert fraction_of(pasted, MAGENTA) >= 0.3
        assert fraction_of(pasted, MAGENTA) < 0.95


def test_paste_plain_background_is_one_colour(photo: Image.Image) -> None:
    pasted = pixels(augment.paste(photo, rng(1), background="plain")).reshape(-1, 3)
    _, counts = np.unique(pasted, axis=0, return_counts=True)
    assert counts.max() / len(pasted) >= 0.3


def test_paste_rejects_unknown_background(photo: Image.Image) -> None:
    with pytest.raises(ValueError, match="background"):
        augment.paste(photo, rng(0), background="carpet")


def test_screenshot_frames_the_photo_in_a_bigger_phone_page() -> None:
    product = solid(GREEN, (120, 120))
    for seed in range(4):
        page = augment.screenshot(product, rng(seed))
        assert page.width >= product.width
        assert 1.7 <= page.height / page.width <= 2.3
        photo_share = fraction_of(page, GREEN)
        assert 0.05 < photo_share < 0.6  # the photo is there, and the UI is most of the page


def test_collage_contains_the_other_photos(photo: Image.Image) -> None:
    other = solid(MAGENTA)
    for seed in range(4):
        grid = augment.collage(photo, rng(seed), others=[other], layout="3x3")
        plain = photo.resize(grid.size)
        assert np.abs(pixels(grid) - pixels(plain)).mean() > 30
        assert fraction_of(grid, MAGENTA) > 0.1


@pytest.mark.parametrize("layout", sorted(augment.COLLAGE_LAYOUTS))
def test_collage_without_others_still_fills_the_grid(photo: Image.Image, layout: str) -> None:
    grid = augment.collage(photo, rng(3), layout=layout)
    rows, cols = augment.COLLAGE_LAYOUTS[layout]
    assert max(grid.size) >= 0.9 * max(photo.size)
    plain = photo.resize(grid.size)
    assert np.abs(pixels(grid) - pixels(plain)).mean() > 30  # generated cells, not the photo
    if rows != cols:
        assert max(grid.size) > 2 * min(grid.size)  # a strip, upright or lying


def test_combined_only_chains_the_allowed_kinds(photo: Image.Image) -> None:
    edited = pixels(augment.combined(photo, rng(0), kinds=("gray", "mirror"), count=(2, 2)))
    assert np.array_equal(edited[..., 0], edited[..., 2])


def test_apply_edit_passes_strengths_and_rejects_unknown_kinds(photo: Image.Image) -> None:
    strong = apply_edit("downscale", photo, rng(0), scale=(0.25, 0.25), p_restore=0.0)
    assert strong.size == (24, 24)
    with pytest.raises(ValueError, match="unknown edit kind"):
        apply_edit("posterize", photo, rng(0))


def test_random_listing_edit_reports_its_kind_and_covers_all_kinds() -> None:
    small = synthetic_image(1, (24, 24))
    seen = set()
    for seed in range(300):
        edited, kind = random_listing_edit(small, rng(seed))
        assert kind in EDIT_KINDS
        assert edited.mode == "RGB"
        seen.add(kind)
    assert seen == set(EDIT_KINDS)


def test_random_listing_edit_is_reproducible_and_honours_kinds(photo: Image.Image) -> None:
    first = random_listing_edit(photo, rng(9))
    second = random_listing_edit(photo, rng(9))
    assert first[1] == second[1] and first[0].tobytes() == second[0].tobytes()
    kinds = ("blur", "jpeg")
    assert {random_listing_edit(photo, rng(s), kinds=kinds)[1] for s in range(20)} == set(kinds)
    with pytest.raises(ValueError):
        random_listing_edit(photo, rng(0), kinds=())


@pytest.mark.parametrize(
    "config", [AugmentConfig(), AugmentConfig(output_size=64, resize_mode="pad")]
)
def test_listing_augment_views_have_the_configured_size(
    config: AugmentConfig, photo: Image.Image, others: list[Image.Image]
) -> None:
    views = ListingAugment(config, others)
    side = config.output_size
    for seed in range(6):
        heavy = views(photo, rng(seed))
        light = views.light_view(photo, rng(seed))
        assert heavy.size == light.size == (side, side)
        assert heavy.mode == light.mode == "RGB"
    anchor, positive = views.pair(photo, rng(1))
    assert anchor.size == positive.size == (side, side)


def test_listing_augment_is_reproducible_and_light_view_is_mild(photo: Image.Image) -> None:
    views = ListingAugment(AugmentConfig(output_size=96))
    assert views(photo, rng(5)).tobytes() == views(photo, rng(5)).tobytes()
    light = pixels(views.light_view(photo, rng(5)))
    assert np.abs(light.mean(axis=(0, 1)) - pixels(photo).mean(axis=(0, 1))).max() < 40


def test_listing_augment_with_no_edits_is_a_resize(photo: Image.Image) -> None:
    views = ListingAugment(AugmentConfig(output_size=48, min_edits=0, max_edits=0))
    expected = photo.resize((48, 48), Image.Resampling.BILINEAR)
    assert views(photo, rng(0)).tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"output_size": 0},
        {"min_edits": 3, "max_edits": 1},
        {"kinds": ("crop", "posterize")},
        {"kinds": ("crop", "combined")},
        {"kind_weights": {"nope": 1.0}},
        {"kind_weights": {"crop": -1.0}},
        {"p_light_jpeg": 1.5},
        {"resize_mode": "squash"},
    ],
)
def test_augment_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)


@pytest.fixture
def no_sized_fonts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pretend to be an old Pillow whose load_default() takes no size."""
    original = ImageFont.load_default

    def load_default(*args: object, **kwargs: object) -> augment.Font:
        if args or kwargs:
            raise TypeError("load_default() takes no arguments")
        return original()

    monkeypatch.setattr(ImageFont, "load_default", load_default)
    augment._font.cache_clear()
    yield
    augment._font.cache_clear()


@pytest.mark.parametrize("kind", ["text", "watermark", "sticker", "screenshot"])
def test_text_edits_fall_back_to_the_fixed_font(
    kind: str, photo: Image.Image, no_sized_fonts: None
) -> None:
    assert apply_edit(kind, photo, rng(2)).mode == "RGB"
