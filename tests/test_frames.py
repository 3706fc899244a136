"""Framed regions: the rectangles a listing photo shows another photo in."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lookalike.data.frames import FrameConfig, framed_regions
from lookalike.data.synthetic import synthetic_image


def backdrop(size: tuple[int, int]) -> Image.Image:
    """A smooth diagonal ramp between two colours: a studio backdrop with no edges."""
    width, height = size
    ramp = np.add.outer(np.arange(height) / height, np.arange(width) / width)[..., None] / 2
    start, end = np.array([200, 120, 220]), np.array([60, 180, 230])
    return Image.fromarray((start + (end - start) * ramp).astype(np.uint8))


def pasted(
    size: tuple[int, int], boxes: list[tuple[int, int, int, int]], seed: int = 3
) -> Image.Image:
    canvas = backdrop(size)
    for offset, (left, top, right, bottom) in enumerate(boxes):
        photo = synthetic_image(seed + offset, (right - left, bottom - top))
        canvas.paste(photo, (left, top))
    return canvas


def close(found: tuple[int, ...], expected: tuple[int, ...], pixels: int) -> bool:
    return all(abs(a - b) <= pixels for a, b in zip(found, expected, strict=True))


def test_a_paste_off_every_grid_line_is_found() -> None:
    box = (61, 47, 171, 152)
    regions = framed_regions(pasted((224, 224), [box]), limit=2)
    assert regions and close(regions[0], box, 3)


def test_regions_are_given_in_the_photo_pixels() -> None:
    box = (300, 180, 700, 560)  # found on a 160-px copy, returned at 900 x 600
    regions = framed_regions(pasted((900, 600), [box]), limit=1)
    assert len(regions) == 1 and close(regions[0], box, 12)


def test_a_paste_against_the_photo_border_uses_the_border_as_its_side() -> None:
    box = (0, 40, 120, 200)
    regions = framed_regions(pasted((240, 240), [box]), limit=2)
    assert regions and close(regions[0], box, 3)


def test_two_pastes_give_two_regions_and_the_limit_holds() -> None:
    boxes = [(10, 20, 100, 110), (130, 120, 225, 215)]
    photo = pasted((240, 240), boxes)
    regions = framed_regions(photo, limit=2)
    assert len(regions) == 2
    assert all(any(close(found, box, 3) for found in regions) for box in boxes)
    assert len(framed_regions(photo, limit=1)) == 1
    assert framed_regions(photo, limit=0) == []


def test_a_photo_with_no_frame_gives_no_region() -> None:
    assert framed_regions(backdrop((300, 200)), limit=2) == []


def test_regions_too_small_or_nearly_the_whole_photo_are_left_out() -> None:
    small = (100, 100, 130, 130)
    assert not any(close(r, small, 3) for r in framed_regions(pasted((240, 240), [small]), 2))
    large = (12, 12, 228, 228)  # the whole photo is searched anyway
    photo = pasted((240, 240), [large])
    assert not any(close(r, large, 3) for r in framed_regions(photo, 2))
    wider = FrameConfig(max_area=0.95)
    assert any(close(r, large, 3) for r in framed_regions(photo, 2, config=wider))


@pytest.mark.parametrize("size", [(1, 1), (5, 300), (300, 4)])
def test_tiny_photos_give_no_region(size: tuple[int, int]) -> None:
    assert framed_regions(Image.new("RGB", size, "white"), limit=2) == []


def test_a_striped_block_is_one_region_not_a_pile_of_bands() -> None:
    stripes = np.full((480, 480, 3), 200, dtype=np.uint8)
    for top in range(60, 420, 6):  # 60 dark bands, each edge a full-width segment
        stripes[top : top + 3, 100:380] = 30
    regions = framed_regions(Image.fromarray(stripes), limit=2)
    assert regions and close(regions[0], (100, 60, 380, 417), 6)
