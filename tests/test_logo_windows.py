"""The logo search's window grid (torch-free): where windows are, what they hold, how many."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike.logos.windows import (
    GREY_VIEW,
    LOGO_FILL,
    VIEWS,
    WindowGrid,
    cut_windows,
    grey,
    logo_canvas,
    logo_window,
    opponent_views,
)

S = 48  # the logo network's default window side


def smooth_photo(size: tuple[int, int]) -> Image.Image:
    """Low-frequency grey levels: resampling differences stay small on it."""
    w, h = size
    xs, ys = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    values = 128 + 60 * np.sin(3 * xs + 1) * np.cos(2 * ys) + 40 * xs
    grey_levels = values.clip(0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey_levels] * 3, axis=2), "RGB")


def grain(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Fine random texture: no window of it is flat."""
    rng = np.random.default_rng(seed)
    w, h = size
    return Image.fromarray(rng.integers(60, 200, (h, w), dtype=np.uint8), "L").convert("RGB")


def covered(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A per-pixel mask of the photo: True where some box covers the pixel's centre."""
    w, h = size
    mask = np.zeros((h, w), bool)
    centres_x, centres_y = np.arange(w) + 0.5, np.arange(h) + 0.5
    for x0, y0, x1, y1 in boxes:
        cols = (centres_x >= x0) & (centres_x <= x1)
        rows = (centres_y >= y0) & (centres_y <= y1)
        mask |= rows[:, None] & cols[None, :]
    return mask


# -- grid settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scales": ()},
        {"scales": (0.0, 0.5)},
        {"scales": (1.2,)},
        {"stride": 0.0},
        {"stride": 1.5},
        {"colour_from": 0.0},
        {"colour_from": 1.5},
        {"min_std": -1.0},
    ],
)
def test_bad_grids_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WindowGrid(**kwargs)  # type: ignore[arg-type]


# -- counts and exact positions ------------------------------------------------------------------


def test_known_size_gives_known_windows() -> None:
    """400x200, scales 0.5 and 1.0 of the short side, half overlap: levels 192x96 (7x3
    windows of 100 px) and 96x48 (3x1 windows of 200 px); 24 windows in all."""
    windows = cut_windows(smooth_photo((400, 200)), WindowGrid(scales=(0.5, 1.0)), S)
    assert len(windows) == 24
    assert windows.pixels.shape == (24, 1, S, S) and windows.pixels.dtype == np.uint8
    assert windows.boxes.shape == (24, 4) and windows.boxes.dtype == np.float32
    small, large = windows.boxes[:21], windows.boxes[21:]
    np.testing.assert_allclose(small[:, 2] - small[:, 0], 100, atol=1e-3)
    np.testing.assert_allclose(small[:, 3] - small[:, 1], 100, atol=1e-3)
    assert sorted(set(np.round(small[:, 0], 3))) == [0, 50, 100, 150, 200, 250, 300]
    assert sorted(set(np.round(small[:, 1], 3))) == [0, 50, 100]
    np.testing.assert_allclose(
        large, [[0, 0, 200, 200], [100, 0, 300, 200], [200, 0, 400, 200]], atol=1e-3
    )


def test_window_count_of_the_default_grid_is_stable() -> None:
    """A regression guard on the default grid's cost: 314 windows for a 640x480 photo."""
    windows = cut_windows(grain((640, 480)), WindowGrid(), S)
    assert len(windows) == 314


def test_flat_windows_are_not_searched() -> None:
    """A blank studio background shows no logo: only the windows over the mark are cut, and a
    blank photo has none (in both layouts)."""
    photo = Image.new("RGB", (400, 300), (250, 250, 250))
    ImageDraw.Draw(photo).ellipse((20, 20, 80, 80), fill=(40, 40, 40))
    windows = cut_windows(photo, WindowGrid(), S)
    everything = cut_windows(grain((400, 300)), WindowGrid(), S)
    assert 0 < len(windows) < len(everything) / 3
    assert (windows.boxes[:, 0] < 80).all() and (windows.boxes[:, 1] < 80).all()
    for channels in (1, 3):
        grid = WindowGrid(colour_from=None) if channels == 3 else WindowGrid()
        blank = cut_windows(Image.new("RGB", (400, 300), "white"), grid, S, channels)
        assert blank.pixels.shape == (0, channels, S, S) and blank.boxes.shape == (0, 4)
    every = cut_windows(photo, WindowGrid(min_std=0.0), S)
    assert len(every) == len(everything)


def test_a_colour_pattern_flat_in_grey_is_still_searched_in_colour() -> None:
    photo = isoluminant_photo()
    grid = WindowGrid(scales=(0.5, 1.0), colour_from=0.3)
    windows = cut_windows(photo, grid, S)
    assert windows.views is not None
    assert (windows.views == GREY_VIEW).sum() < 12  # of 24: flat in grey but at the edges
    over = (windows.boxes[:, 0] < 20) & (windows.boxes[:, 2] > 120) & (windows.views == 1)
    assert over.any()
    stacked = cut_windows(photo, replace(grid, colour_from=None), S, channels=3)
    assert 0 < len(stacked) < 24  # kept where the square shows in colour


def test_windows_hold_the_resized_crops_of_their_boxes() -> None:
    photo = smooth_photo((400, 200))
    windows = cut_windows(photo, WindowGrid(scales=(0.5, 1.0)), S)
    flat = photo.convert("L")
    for pixels, box in zip(windows.pixels, windows.boxes, strict=True):
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        crop = flat.crop((x0, y0, x1, y1)).resize((S, S), Image.Resampling.BOX)
        difference = np.abs(pixels[0].astype(int) - np.asarray(crop, int))
        assert difference.mean() < 2.0, box


def test_window_content_follows_the_photo() -> None:
    """A black square in the top-left corner shows up in the windows over it, only there."""
    photo = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(photo).rectangle((0, 0, 49, 49), fill="black")
    windows = cut_windows(photo, WindowGrid(scales=(0.5,)), S)
    darkness = 255 - windows.pixels.reshape(len(windows), -1).mean(axis=1)
    over_square = (windows.boxes[:, 0] < 50) & (windows.boxes[:, 1] < 50)
    assert darkness[over_square].min() > 30
    assert darkness[~over_square].max() < 1


def test_big_photos_are_shrunk_first_but_boxes_stay_in_photo_pixels() -> None:
    photo = smooth_photo((1280, 640))
    grid = WindowGrid(scales=(0.5, 1.0), max_side=640)
    shrunk = cut_windows(photo, grid, S)
    same_detail = cut_windows(photo.resize((640, 320), Image.Resampling.BILINEAR), grid, S)
    assert len(shrunk) == len(same_detail)
    np.testing.assert_allclose(shrunk.boxes, same_detail.boxes * 2, atol=0.01)
    assert shrunk.boxes[:, 2].max() == pytest.approx(1280, abs=0.5)
    assert shrunk.boxes[:, 3].max() == pytest.approx(640, abs=0.5)


@pytest.mark.parametrize("size", [(400, 200), (200, 400), (333, 250), (20, 10)])
def test_small_sizes_still_give_full_windows(size: tuple[int, int]) -> None:
    windows = cut_windows(smooth_photo(size), WindowGrid(), S)
    assert windows.pixels.shape[1:] == (1, S, S)
    assert np.isfinite(windows.boxes).all()
    assert (windows.boxes[:, 2] > windows.boxes[:, 0]).all()


# Odd sizes: level sizes are rounded to whole pixels, and so is the first shrink.
@pytest.mark.parametrize("size", [(640, 480), (400, 200), (333, 250), (1000, 750), (2000, 100)])
def test_boxes_lie_inside_the_photo_and_cover_it(size: tuple[int, int]) -> None:
    """Every box inside the photo (to half a pixel), and each scale's boxes cover it."""
    w, h = size
    grid = WindowGrid(min_std=0.0)  # every window, flat or not
    boxes = cut_windows(smooth_photo(size), grid, S).boxes
    assert boxes[:, :2].min() >= -0.5
    assert boxes[:, 2].max() <= w + 0.5, f"a box ends at x={boxes[:, 2].max():.2f} > {w}"
    assert boxes[:, 3].max() <= h + 0.5, f"a box ends at y={boxes[:, 3].max():.2f} > {h}"
    widths = np.round(boxes[:, 2] - boxes[:, 0], 2)
    for side in np.unique(widths):  # one window size per scale
        level_boxes = boxes[widths == side]
        assert covered(level_boxes, size).all(), f"{side:.1f} px windows leave pixels uncovered"


def test_banner_photos_do_not_explode_the_window_count() -> None:
    """A 100:1 banner (4000x40) must not cost much more than an ordinary photo: the grid is
    sized by the short side, so today it gives ~60x the windows of a 640x480 photo (about
    40,000 windows, 93 MB of pixels, ~35 s of logo search on 2 cores)."""
    ordinary = len(cut_windows(grain((640, 480)), WindowGrid(), S))
    banner = len(cut_windows(grain((4000, 40)), WindowGrid(), S))
    assert banner <= 4 * ordinary, f"{banner} windows for a banner, {ordinary} for a photo"


# -- grey levels and the clean-logo window ---------------------------------------------------------


def test_grey_flattens_transparency_on_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 0, 255))
    flat = grey(rgba)
    assert flat.mode == "L"
    assert flat.getpixel((0, 0)) == 255 and flat.getpixel((1, 1)) == 0
    palette = rgba.convert("P")
    assert grey(palette).mode == "L"
    assert grey(Image.new("RGB", (2, 2), (255, 0, 0))).getpixel((0, 0)) == 76  # ITU-R 601
    half = Image.new("LA", (2, 2), (0, 128))
    assert 120 <= np.asarray(grey(half))[0, 0] <= 135


@pytest.mark.parametrize("logo_size", [(200, 100), (100, 200), (64, 64), (500, 20)])
def test_logo_window_centres_the_logo_at_three_quarters(logo_size: tuple[int, int]) -> None:
    logo = Image.new("RGBA", logo_size, (10, 10, 10, 255))
    window = logo_window(logo, S)
    assert window.shape == (1, S, S) and window.dtype == np.uint8
    ys, xs = np.nonzero(window[0] < 128)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    assert max(x1 - x0, y1 - y0) == round(S * LOGO_FILL)
    assert abs(x0 - (S - x1)) <= 1 and abs(y0 - (S - y1)) <= 1  # centred
    assert window[0, 0, 0] == 255  # white canvas


def test_logo_canvas_of_a_transparent_logo_is_on_white() -> None:
    logo = Image.new("RGBA", (80, 40), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rectangle((0, 0, 79, 39), outline=(0, 0, 0, 255), width=4)
    canvas = np.asarray(logo_canvas(logo, 64))
    assert canvas[32, 32] == 255  # the transparent middle of the frame
    assert canvas.min() < 60


# -- colour-opponent views -------------------------------------------------------------------------


def isoluminant_photo(size: tuple[int, int] = (400, 200)) -> Image.Image:
    """A red square on a green card of the same grey level: invisible in grey."""
    photo = Image.new("RGB", size, (60, 140, 60))  # grey level 0.299*60+0.587*140+0.114*60 = 107
    ImageDraw.Draw(photo).rectangle((20, 20, 120, 120), fill=(230, 53, 0))  # grey 107 too
    assert len(set(np.asarray(grey(photo)).ravel().tolist())) <= 3
    return photo


def test_opponent_views_show_what_grey_loses() -> None:
    red_green, yellow_blue = opponent_views(isoluminant_photo())
    assert red_green.mode == "L" and yellow_blue.mode == "L"
    channel = np.asarray(red_green, int)
    assert channel[70, 70] - channel[150, 300] > 100  # (230-53)/2 against (60-140)/2
    assert np.asarray(yellow_blue, int)[70, 70] != np.asarray(yellow_blue, int)[150, 300]
    white = np.asarray(opponent_views(Image.new("RGBA", (4, 4), (0, 0, 0, 0)))[0])
    assert (white == 128).all()  # transparency is flattened on white: no colour


def test_colour_windows_are_cut_at_the_large_scales_of_colour_photos() -> None:
    photo = isoluminant_photo()
    grid = WindowGrid(scales=(0.5, 1.0), colour_from=0.6, min_std=0.0)  # grey is flat
    windows = cut_windows(photo, grid, S)
    assert windows.views is not None and len(windows.views) == len(windows)
    grey_boxes = windows.boxes[windows.views == GREY_VIEW]
    assert len(grey_boxes) == 24  # as for any photo of this size
    for view in (1, 2):
        boxes = windows.boxes[windows.views == view]
        assert len(boxes) > 0 and (boxes[:, 2] - boxes[:, 0] > 150).all()  # 200-px windows
        # each colour window lies where a grey window of its scale lies
        assert {tuple(b) for b in boxes.tolist()} <= {tuple(b) for b in grey_boxes.tolist()}
    # the red square shows in the red-green windows over it, not in the grey ones
    over = (windows.boxes[:, 0] < 20) & (windows.boxes[:, 2] > 120)
    contrast = windows.pixels.reshape(len(windows), -1).std(axis=1)
    assert contrast[over & (windows.views == 1)].min() > 20
    assert contrast[windows.views == GREY_VIEW].max() < 5
    assert len(VIEWS) == 3


@pytest.mark.parametrize(
    "photo",
    [
        Image.new("L", (400, 200), 128),  # stored grey: no colour views
        smooth_photo((400, 200)),  # RGB with no colour: flat colour windows are dropped
    ],
)
def test_photos_without_colour_get_grey_windows_only(photo: Image.Image) -> None:
    grid = WindowGrid(scales=(0.5, 1.0), colour_from=0.3, min_std=0.0)
    windows = cut_windows(photo, grid, S)
    assert windows.views is not None and (windows.views == GREY_VIEW).all()
    assert len(windows) == 24


def test_colour_windows_can_be_switched_off() -> None:
    grid = WindowGrid(scales=(0.5, 1.0), colour_from=None, min_std=0.0)
    windows = cut_windows(isoluminant_photo(), grid, S)
    assert len(windows) == 24 and windows.view_of(0) == GREY_VIEW


# -- windows of a colour network (3 channels) ----------------------------------------------------


def test_colour_network_windows_stack_grey_and_both_colour_views() -> None:
    photo = isoluminant_photo()
    grid = WindowGrid(scales=(0.5, 1.0), colour_from=None, min_std=0.0)
    stacked = cut_windows(photo, grid, S, channels=3)
    grey_only = cut_windows(photo, grid, S)
    assert stacked.pixels.shape == (24, 3, S, S) and stacked.views is None
    np.testing.assert_allclose(stacked.boxes, grey_only.boxes, atol=1e-3)
    # the same areas: grey as the grey network's windows (up to shrinking in colour first)
    assert np.abs(stacked.pixels[:, 0].astype(int) - grey_only.pixels[:, 0]).max() <= 2
    # the red square is flat in grey, plain in red-green; the verifier is sent there
    over = (stacked.boxes[:, 0] < 20) & (stacked.boxes[:, 2] > 120)
    assert stacked.strongest is not None
    assert (stacked.strongest[over] != GREY_VIEW).all()
    assert stacked.verify_view_of(int(np.flatnonzero(over)[0])) in (1, 2)


@pytest.mark.parametrize(
    "photo", [Image.new("L", (400, 200), 90), Image.new("RGBA", (400, 200), (0, 0, 0, 0))]
)
def test_colour_network_windows_of_photos_without_colour_have_flat_colour(
    photo: Image.Image,
) -> None:
    grid = WindowGrid(scales=(0.5, 1.0), colour_from=None, min_std=0.0)
    windows = cut_windows(photo, grid, S, channels=3)
    assert windows.pixels.shape == (24, 3, S, S)
    assert (windows.pixels[:, 1:] == 128).all()
    assert windows.strongest is not None and (windows.strongest == GREY_VIEW).all()


def test_colour_network_windows_refuse_separate_colour_windows_and_odd_channels() -> None:
    with pytest.raises(ValueError, match="colour_from"):
        cut_windows(isoluminant_photo(), WindowGrid(colour_from=0.3), S, channels=3)
    with pytest.raises(ValueError, match="channels"):
        cut_windows(isoluminant_photo(), WindowGrid(colour_from=None), S, channels=2)


def test_colour_network_references_have_flat_colour() -> None:
    logo = Image.new("RGBA", (60, 30), (200, 20, 20, 255))
    reference = logo_window(logo, S, channels=3)
    assert reference.shape == (3, S, S)
    np.testing.assert_array_equal(reference[:1], logo_window(logo, S))
    assert (reference[1:] == 128).all()  # a catalogue logo's colour says nothing
