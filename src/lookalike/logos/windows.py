"""Where a logo may be in a listing photo: square windows on a multi-scale grid.

A photo is converted to grey once, then for each window scale it is resized so that a window
is exactly ``input_size`` pixels, and the windows are cut from that resized copy (no per-window
resampling). Scales are spaced by about sqrt(2) and windows overlap by half, so any logo whose
longest side is within the covered range fills 50-100% of some window, off-centre by at most a
quarter window: the training samples (``logo_train``) are drawn from that same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..data.logos import logo_on_background
from ..data.sizing import shrink

Boxes = npt.NDArray[np.float32]  # (n, 4): x0, y0, x1, y1 in photo pixels
# Clean logos are drawn into a square canvas at this fraction of its side, like a logo that
# fills about three quarters of the window it is found in.
LOGO_FILL = 0.75
MIN_WINDOW = 24  # pixels of the (shrunk) photo


# What a window shows: the photo's grey levels, or one of its two colour-opponent channels
# (a red logo on a green shirt of the same lightness vanishes in grey, not in red-green).
VIEWS = ("grey", "red-green", "yellow-blue")
GREY_VIEW = 0
# A colour window flatter than this (std of grey levels) shows no colour pattern, only
# chroma noise: it is not searched (a grey photo saved as RGB has only such windows).
MIN_COLOUR_STD = 4.0


@dataclass(frozen=True)
class WindowGrid:
    """``scales``: window sides as fractions of the photo's shorter side; ``stride``: window
    step as a fraction of the window side; ``max_side``: the photo is first shrunk to this
    longest side (windows are then cut from at most this much detail); ``max_windows``:
    smaller scales are dropped beyond this many windows (extreme panoramas);
    ``colour_from``: windows of at least this scale are also cut from the colour-opponent
    views of a colour photo (None: grey only). They find logos recoloured to their ground's
    lightness: on the calibration set µAP 0.648 -> 0.690 with the matcher's default colour
    settings. Only the larger scales: on the calibration set colour windows at every scale
    found the right logo less often than at these alone. ``min_std``: a window whose grey
    levels vary less than this (standard deviation, 0-255) is not searched (0: every window
    is): a blank studio background or sky shows no logo, yet every flat window lands on the
    same few catalogue logos, which would then look seen by many windows (see
    ``LogoMatchConfig.window_support``), and skipping them saves their embedding.
    """

    scales: tuple[float, ...] = (0.17, 0.24, 0.34, 0.48, 0.68)
    stride: float = 0.5
    max_side: int = 640
    max_windows: int = 1500
    colour_from: float | None = 0.3
    min_std: float = 2.0

    def __post_init__(self) -> None:
        if not self.scales or min(self.scales) <= 0 or max(self.scales) > 1:
            raise ValueError(f"window scales must be in (0, 1], got {self.scales}")
        if not 0 < self.stride <= 1:
            raise ValueError(f"stride must be in (0, 1], got {self.stride}")
        if self.colour_from is not None and not 0 < self.colour_from <= 1:
            raise ValueError(f"colour_from must be in (0, 1] or None, got {self.colour_from}")
        if self.min_std < 0:
            raise ValueError(f"min_std must be >= 0, got {self.min_std}")


@dataclass(frozen=True)
class Windows:
    """``pixels``: uint8 (n, C, S, S) windows (C = 1, or 3 for a colour network: grey and
    both colour-opponent views of the same area); ``boxes``: where each is in the photo;
    ``views``: (n,) which view of the photo each one-channel window shows (an index into
    :data:`VIEWS`; None: all grey); ``strongest``: (n,) for 3-channel windows, the view where
    each shows the most contrast, to verify a logo found there on."""

    pixels: npt.NDArray[np.uint8]
    boxes: Boxes
    views: npt.NDArray[np.uint8] | None = None
    strongest: npt.NDArray[np.uint8] | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def view_of(self, index: int) -> int:
        """The view a window was searched as (the shortlist's grey or colour quota)."""
        return GREY_VIEW if self.views is None else int(self.views[index])

    def verify_view_of(self, index: int) -> int:
        """The view of the photo a logo found in this window is best verified on."""
        if self.strongest is not None:
            return int(self.strongest[index])
        return self.view_of(index)


def _positions(length: int, window: int, step: float) -> list[int]:
    """Window starts covering ``[0, length)`` evenly, the last one flush with the end."""
    if window >= length:
        return [0]
    count = int(np.ceil((length - window) / step)) + 1
    return [round(i * (length - window) / (count - 1)) for i in range(count)]


def _on_white(image: Image.Image) -> Image.Image:
    """``image`` with its transparent parts flattened on white (unchanged without alpha)."""
    return logo_on_background(image) if image.mode in ("RGBA", "LA", "P") else image


def grey(image: Image.Image) -> Image.Image:
    """Grey levels of any image; transparent parts are flattened on white."""
    return _on_white(image).convert("L")


def has_colour(image: Image.Image) -> bool:
    """Whether the photo is stored in colour (a grey photo has no colour-opponent views)."""
    return image.mode not in ("1", "L", "LA", "I", "I;16", "F")


def opponent_views(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The red-green ((R - G) / 2) and yellow-blue (((R + G) / 2 - B) / 2) channels of a
    colour photo as grey images centred on 128 (transparent parts flattened on white)."""
    rgb = np.asarray(_on_white(image).convert("RGB"), np.int16)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red_green = (red - green) // 2 + 128
    yellow_blue = ((red + green) // 2 - blue) // 2 + 128
    return (
        Image.fromarray(red_green.astype(np.uint8), "L"),
        Image.fromarray(yellow_blue.astype(np.uint8), "L"),
    )


_Level = tuple[float, int, int, list[int], list[int]]  # scale, level size, window positions


def _plan(size: tuple[int, int], grid: WindowGrid, input_size: int) -> list[_Level]:
    """Per window scale: the size the (shrunk) photo is resized to and the window positions."""
    width0, height0 = size
    short = min(size)
    step = grid.stride * input_size
    plan: list[_Level] = []
    seen: set[int] = set()
    for fraction in sorted(grid.scales):
        # A banner's short side is tiny: never cut windows below MIN_WINDOW pixels (nor the
        # same window size twice), or a 4000x40 photo would give tens of thousands of them.
        window = max(float(MIN_WINDOW), fraction * short)
        if round(window) in seen:
            continue
        seen.add(round(window))
        factor = input_size / window  # resize so one window is input_size pixels
        width = max(input_size, round(width0 * factor))
        height = max(input_size, round(height0 * factor))
        plan.append(
            (
                fraction,
                width,
                height,
                _positions(height, input_size, step),
                _positions(width, input_size, step),
            )
        )
    # beyond max_windows (extreme panoramas), drop the smallest windows first
    while len(plan) > 1 and sum(len(ts) * len(ls) for *_, ts, ls in plan) > grid.max_windows:
        plan.pop(0)
    return plan


def _level(picture: Image.Image, width: int, height: int) -> Image.Image:
    """The photo resized so that one window is ``input_size`` pixels (see :func:`_plan`)."""
    return picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)


_Box = tuple[float, float, float, float]


def _box(left: int, top: int, side: int, to_x: float, to_y: float) -> _Box:
    """A window at (left, top) of a level, in the caller's pixels (``to_x``/``to_y``: per
    axis, from level pixels to the caller's; absorbs both resizes' rounding)."""
    return (left * to_x, top * to_y, (left + side) * to_x, (top + side) * to_y)


def require_grid_fits(grid: WindowGrid, channels: int) -> None:
    """A grey network (1 channel) may add colour-opponent windows; a colour network (3)
    sees colour in every window, so its grid must not."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if channels == 3 and grid.colour_from is not None:
        raise ValueError("a colour network sees colour in every window: colour_from must be None")


def _cut_stacked(image: Image.Image, grid: WindowGrid, input_size: int) -> Windows:
    """Windows holding the grey and both colour-opponent views of one area as channels."""
    coloured = has_colour(image)
    photo = shrink(_on_white(image).convert("RGB") if coloured else grey(image), grid.max_side)
    plan = _plan(photo.size, grid, input_size)
    pixels: list[npt.NDArray[np.uint8]] = []
    boxes: list[_Box] = []
    for _fraction, width, height, tops, lefts in plan:
        # one resize in colour, then that level's views: as training samples are made
        views = colour_views(_level(photo, width, height))
        level = np.stack([np.asarray(view, np.uint8) for view in views])
        to_x, to_y = image.width / width, image.height / height
        for top in tops:
            for left in lefts:
                pixels.append(level[:, top : top + input_size, left : left + input_size])
                boxes.append(_box(left, top, input_size, to_x, to_y))
    stacked = np.stack(pixels)
    # searched unless flat in grey and in both colour views
    varied = _varied(stacked, np.array([[grid.min_std, MIN_COLOUR_STD, MIN_COLOUR_STD]]))
    stacked = np.ascontiguousarray(stacked[varied])
    return Windows(stacked, _boxes(boxes)[varied], None, strongest_views(stacked))


def _varied(
    pixels: npt.NDArray[np.uint8], min_std: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Which of the (n, C, S, S) windows vary enough to be searched: in some channel c, a
    standard deviation of at least ``min_std[i, c]`` (broadcast over windows i); one numpy
    pass over all windows rather than one call per window."""
    spread = pixels.reshape(len(pixels), pixels.shape[1], -1).std(axis=2)
    return np.asarray((spread >= min_std).any(axis=1))


def _boxes(boxes: list[_Box]) -> Boxes:
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def colour_views(image: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Grey, red-green and yellow-blue views of a photo (a grey photo's colour views are
    flat), the three channels of a colour network's windows."""
    if not has_colour(image):
        flat = Image.new("L", image.size, 128)
        return grey(image), flat, flat
    red_green, yellow_blue = opponent_views(image)
    return grey(image), red_green, yellow_blue


def strongest_views(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """For (n, 3, S, S) windows, the view with the most contrast in each: grey unless a
    colour channel varies more (its values are halved differences, so a colour edge at
    grey's contrast shows there at about half of it: colour wins only where grey is flatter
    still)."""
    if len(pixels) == 0:
        return np.zeros(0, np.uint8)
    # every other pixel each way: the same answer for a quarter of the work
    sample = pixels[:, :, ::2, ::2].reshape(len(pixels), pixels.shape[1], -1)
    return np.argmax(sample.astype(np.float32).std(axis=2), axis=1).astype(np.uint8)


def cut_windows(
    image: Image.Image, grid: WindowGrid, input_size: int, channels: int = 1
) -> Windows:
    """Every window of ``grid`` over ``image``, resized to ``input_size`` pixels: grey ones
    at every scale, and for a colour photo both colour-opponent views' at the scales from
    ``grid.colour_from`` up. With ``channels=3`` (a colour network), each window instead
    holds its grey and both colour-opponent views as three channels (a grey photo's colour
    channels are flat), and ``grid.colour_from`` must be None."""
    require_grid_fits(grid, channels)
    if channels == 3:
        return _cut_stacked(image, grid, input_size)
    original = grey(image)
    photo = shrink(original, grid.max_side)
    plan = _plan(photo.size, grid, input_size)
    views = [(GREY_VIEW, photo, plan)]
    colour_plan = [p for p in plan if grid.colour_from is not None and p[0] >= grid.colour_from]
    if colour_plan and has_colour(image):
        red_green, yellow_blue = opponent_views(image)
        views += [
            (number, shrink(channel, grid.max_side), colour_plan)
            for number, channel in ((1, red_green), (2, yellow_blue))
        ]
    pixels: list[npt.NDArray[np.uint8]] = []
    boxes: list[_Box] = []
    view_of: list[int] = []
    for view, picture, levels in views:
        for _fraction, width, height, tops, lefts in levels:
            level = np.asarray(_level(picture, width, height), np.uint8)
            to_x, to_y = original.width / width, original.height / height
            for top in tops:
                for left in lefts:
                    pixels.append(level[None, top : top + input_size, left : left + input_size])
                    boxes.append(_box(left, top, input_size, to_x, to_y))
                    view_of.append(view)
    stacked, seen_as = np.stack(pixels), np.asarray(view_of, np.uint8)
    min_std = np.where(seen_as == GREY_VIEW, grid.min_std, MIN_COLOUR_STD)[:, None]
    varied = _varied(stacked, min_std)
    return Windows(np.ascontiguousarray(stacked[varied]), _boxes(boxes)[varied], seen_as[varied])


def logo_canvas(logo: Image.Image, input_size: int, *, fill: float = LOGO_FILL) -> Image.Image:
    """A clean logo (RGBA on transparent, or on a plain background) centred on a white square
    canvas, its longest side ``fill`` of the canvas: what a window around it looks like."""
    flat = grey(logo)
    side = max(1, round(input_size * fill))
    scale = side / max(flat.size)
    size = (max(1, round(flat.width * scale)), max(1, round(flat.height * scale)))
    flat = flat.resize(size, Image.Resampling.LANCZOS)
    canvas = Image.new("L", (input_size, input_size), 255)
    canvas.paste(flat, ((input_size - size[0]) // 2, (input_size - size[1]) // 2))
    return canvas


def logo_window(logo: Image.Image, input_size: int, channels: int = 1) -> npt.NDArray[np.uint8]:
    """:func:`logo_canvas` as a uint8 (channels, S, S) array, the reference side of the
    search. A catalogue logo's colour says nothing (listings recolour it): its colour
    channels are flat."""
    canvas = np.asarray(logo_canvas(logo, input_size), np.uint8)[None, :, :]
    if channels == 1:
        return canvas.copy()
    return np.concatenate([canvas, np.full((channels - 1, input_size, input_size), 128, np.uint8)])
