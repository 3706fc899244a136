"""Listing-like composites: a catalogue logo pasted into a photo, with its exact location.

A counterfeit listing rarely shows a logo as the catalogue does. It is printed, stitched or
stuck on a product: small, tilted, seen at an angle, in one ink colour, light on a dark
patch, half hidden by a strap, blurred, and the whole photo is recompressed. Logo training
and the logo benchmark both need many such pictures with ground truth, so this module makes
them: :func:`paste_logo` puts one RGBA logo on a background and returns the quadrilateral it
landed on, :func:`make_composite` wraps that into a labelled positive or negative.

Negatives must not be recognisable by anything but the missing logo, hence
:func:`distractor_mark` (words, shapes, price tags pasted exactly like logos) and the same
JPEG finishing for every composite.

Callers pass a ``random.Random``; each call draws one 64-bit seed from it and does all its
sampling with a numpy generator, so that augment.py's fills and fonts can be reused. The same
seed always gives the same picture, and the inputs are never modified.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from lookalike.data import augment

__all__ = [
    "Composite",
    "PasteConfig",
    "Quad",
    "distractor_mark",
    "make_composite",
    "paste_logo",
    "synthetic_background",
]

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]
"""TL, TR, BR, BL corners of the pasted logo's extent, in output-image pixel coordinates.

Coordinates are continuous: pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``, so a pixel
belongs to the logo when its centre ``(x + 0.5, y + 0.5)`` lies inside the quad.
"""
Gen = np.random.Generator
Colour = tuple[int, int, int]

_SQRT2 = math.sqrt(2.0)
# Random positions tried for a logo; the one over the most product pixels is kept.
_PLACEMENT_TRIES = 4
# Syllables of the distractor words: pronounceable, brand-like, but no catalogue name.
_SYLLABLES = ("ka", "lo", "mi", "ve", "tor", "zen", "qua", "rix", "bel", "no", "sa", "dru")


@dataclass(frozen=True)
class PasteConfig:
    """How a logo is pasted. Probabilities are per paste; ranges are ``(low, high)``.

    ``scale`` is the logo's longest side as a fraction of the background's shorter side;
    ``perspective`` moves each corner by up to that fraction of the logo's width and height
    (below 0.25, so the quad stays convex); ``max_occlusion`` is the largest fraction of the
    logo's quad an occluder may cover. JPEG is applied to the whole output.
    """

    scale: tuple[float, float] = (0.12, 0.45)
    max_rotation: float = 25.0
    perspective: float = 0.15
    p_plate: float = 0.35
    p_invert: float = 0.25
    p_recolour: float = 0.5
    p_gray: float = 0.1
    p_blur: float = 0.4
    blur_radius: tuple[float, float] = (0.5, 2.5)
    p_occlude: float = 0.3
    max_occlusion: float = 0.3
    opacity: tuple[float, float] = (0.8, 1.0)
    p_jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (35, 90)

    def __post_init__(self) -> None:
        for name in ("p_plate", "p_invert", "p_recolour", "p_gray", "p_blur", "p_occlude"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        _check_range("p_jpeg", self.p_jpeg, 0.0, 1.0)
        _check_bounds("scale", self.scale, 0.0, 1.0, open_low=True)
        _check_range("max_rotation", self.max_rotation, 0.0, 180.0)
        _check_range("perspective", self.perspective, 0.0, 0.25, open_high=True)
        _check_bounds("blur_radius", self.blur_radius, 0.0, 100.0)
        _check_range("max_occlusion", self.max_occlusion, 0.0, 1.0, open_high=True)
        _check_bounds("opacity", self.opacity, 0.0, 1.0, open_low=True)
        _check_bounds("jpeg_quality", self.jpeg_quality, 1, 100)


def _check_range(
    name: str,
    value: float,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    below = value <= low if open_low else value < low
    above = value >= high if open_high else value > high
    if not math.isfinite(value) or below or above:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value}")


def _check_bounds(
    name: str, bounds: tuple[float, float], low: float, high: float, *, open_low: bool = False
) -> None:
    if len(bounds) != 2 or bounds[0] > bounds[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {bounds}")
    for value in bounds:
        _check_range(name, value, low, high, open_low=open_low)


@dataclass(frozen=True)
class Composite:
    """One listing-like picture; ``quad``, ``item_id`` and ``brand`` are None for negatives."""

    image: Image.Image
    quad: Quad | None
    item_id: str | None
    brand: str | None


# ------------------------------------------------------------------------- small helpers


def _generator(rng: random.Random) -> Gen:
    """A numpy generator seeded from ``rng``: one draw, so callers' streams stay simple."""
    return np.random.default_rng(rng.getrandbits(64))


def _uniform(gen: Gen, bounds: tuple[float, float]) -> float:
    return float(gen.uniform(bounds[0], bounds[1]))


def _randint(gen: Gen, low: int, high: int) -> int:
    return int(gen.integers(low, high + 1))


def _choice(gen: Gen, options: tuple[Any, ...]) -> Any:
    return options[int(gen.integers(len(options)))]


def _colour(gen: Gen, low: int = 0, high: int = 255) -> Colour:
    red, green, blue = gen.integers(low, high + 1, size=3)
    return int(red), int(green), int(blue)


def _luma(colour: Colour) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _visible(logo: Image.Image) -> Image.Image:
    """The logo as RGBA cropped to its non-transparent pixels (the extent the quad frames)."""
    rgba = logo.convert("RGBA")
    box = rgba.getchannel("A").getbbox()
    if box is None:
        raise ValueError("logo has no visible pixels (alpha is 0 everywhere)")
    return rgba.crop(box)


def _mean_luma(logo: Image.Image) -> float:
    pixels = np.asarray(logo, dtype=np.float32)
    alpha = pixels[..., 3]
    luma = pixels[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float((luma * alpha).sum() / max(float(alpha.sum()), 1.0))


# ------------------------------------------------------------------------------- pasting


def paste_logo(
    background: Image.Image,
    logo: Image.Image,
    rng: random.Random,
    config: PasteConfig = PasteConfig(),
) -> tuple[Image.Image, Quad]:
    """Paste ``logo`` (RGBA) into a copy of ``background``; return it (RGB) and the quad.

    The logo is scaled, restyled (recolour, grey, light-on-dark), put on a plate, warped
    (rotation and perspective), blurred, made partly transparent and composited; then an
    occluder may cover part of it and the whole picture may be JPEG'd. The quad is where the
    corners of the logo's visible extent landed; it always lies inside the image.

    Raises:
        ValueError: if ``logo`` has no visible pixel.
    """
    gen = _generator(rng)
    canvas = background.convert("RGB")  # always a new image: the input stays untouched
    logo = _visible(logo)
    width, height = canvas.size
    longest = max(2.0, _uniform(gen, config.scale) * min(width, height))
    factor = longest / max(logo.size)
    small = logo.resize(
        (max(1, round(logo.width * factor)), max(1, round(logo.height * factor))),
        Image.Resampling.LANCZOS,
    )
    small, invert = _restyle(small, gen, config)
    layer, origin = _plated(small, gen, config, invert)
    quad = _place(small.size, canvas, gen, config)
    warped, offset = _warp(layer, origin, small.size, quad, (width, height))
    if warped is not None:
        if gen.random() < config.p_blur:
            radius = _uniform(gen, config.blur_radius)
            warped = _premultiplied(warped, lambda im: im.filter(ImageFilter.GaussianBlur(radius)))
        opacity = _uniform(gen, config.opacity)
        alpha = warped.getchannel("A").point(lambda a: round(a * opacity))
        canvas.paste(warped.convert("RGB"), offset, alpha)
    if gen.random() < config.p_occlude:
        _occlude(canvas, quad, gen, config.max_occlusion)
    return _finish(canvas, gen, config), quad


def _restyle(logo: Image.Image, gen: Gen, config: PasteConfig) -> tuple[Image.Image, bool]:
    """Recolour / grey / light-on-dark: how one ink, embroidery or a dark garment shows it.

    Returns the restyled logo and whether it was made light for a dark surrounding.
    """
    rgb, alpha = logo.convert("RGB"), logo.getchannel("A")
    if gen.random() < config.p_recolour:
        rgb = Image.new("RGB", logo.size, _colour(gen))
    if gen.random() < config.p_gray:
        rgb = rgb.convert("L").convert("RGB")
    invert = bool(gen.random() < config.p_invert)
    if invert:
        rgba = rgb.copy()
        rgba.putalpha(alpha)
        if _mean_luma(rgba) < 128:
            rgb = ImageOps.invert(rgb)
        # A light ink: sometimes pure white, otherwise whatever the inversion gave.
        if gen.random() < 0.5:
            rgb = Image.new("RGB", logo.size, _colour(gen, 215, 255))
    rgb.putalpha(alpha)
    return rgb, invert


def _plated(
    logo: Image.Image, gen: Gen, config: PasteConfig, invert: bool
) -> tuple[Image.Image, tuple[int, int]]:
    """The logo on a plate (label, patch, badge) or alone; returns the layer and the logo's
    top-left corner in it.

    A light-on-dark logo always gets a dark surrounding: a crisp dark plate, or a soft dark
    region (a dark part of the garment) so that the contrast does not depend on the photo.
    """
    if not invert and gen.random() >= config.p_plate:
        return logo, (0, 0)
    width, height = logo.size
    pad = round(_uniform(gen, (0.1, 0.35)) * min(width, height))
    pad += round(_uniform(gen, (0.02, 0.08)) * max(width, height)) + 2
    ellipse = bool(gen.random() < 0.35)
    soft = invert and gen.random() < 0.4
    # A soft region fades out over ``pad`` (two blur sigmas) beyond its shape: the layer
    # leaves room for that, or the fade would end in a hard cut at the layer's border.
    fade = pad if soft else 0
    # An ellipse through the padded box's corners: half-axes grow by sqrt(2).
    half_w, half_h = width / 2 + pad, height / 2 + pad
    if ellipse:
        half_w, half_h = half_w * _SQRT2, half_h * _SQRT2
    pad_x = math.ceil(half_w - width / 2) + fade
    pad_y = math.ceil(half_h - height / 2) + fade
    size = (width + 2 * pad_x, height + 2 * pad_y)
    fill = _colour(gen, 0, 70) if invert else _plate_colour(gen, _mean_luma(logo))
    shape = Image.new("L", size, 0)
    draw = ImageDraw.Draw(shape)
    centre_x, centre_y = size[0] / 2, size[1] / 2
    box = (centre_x - half_w, centre_y - half_h, centre_x + half_w - 1, centre_y + half_h - 1)
    if ellipse:
        draw.ellipse(box, fill=255)
    else:
        radius = round(_uniform(gen, (0.0, 0.5)) * min(half_w, half_h))
        draw.rounded_rectangle(box, radius=radius, fill=255)
    if soft:
        shape = shape.filter(ImageFilter.GaussianBlur(fade / 2))
    layer = Image.new("RGBA", size, (*fill, 0))
    layer.putalpha(shape)
    layer.alpha_composite(logo, (pad_x, pad_y))
    return layer, (pad_x, pad_y)


def _plate_colour(gen: Gen, logo_luma: float) -> Colour:
    """A random plate colour that still lets the logo be seen (luma differs by >= 80)."""
    for _ in range(8):
        colour = _colour(gen)
        if abs(_luma(colour) - logo_luma) >= 80:
            return colour
    return (255, 255, 255) if logo_luma < 128 else (0, 0, 0)


def _place(
    logo_size: tuple[int, int],
    background: Image.Image,
    gen: Gen,
    config: PasteConfig,
) -> Quad:
    """Corners of the logo after rotation and perspective, moved fully inside the image.

    Of a few random positions the one over the most "product" (non-white) pixels wins: on a
    catalogue photo a logo sits on the shirt or the shoe, not in the white studio margin.
    """
    width, height = logo_size
    jitter = gen.uniform(-config.perspective, config.perspective, size=(4, 2))
    jitter *= np.array([width, height], dtype=np.float64)
    signs = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=np.float64)  # TL TR BR BL
    local = signs * np.array([width / 2, height / 2]) + jitter
    angle = math.radians(_uniform(gen, (-config.max_rotation, config.max_rotation)))
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = local @ turn.T
    low, high = corners.min(axis=0), corners.max(axis=0)
    limits = np.array(background.size, dtype=np.float64)
    # A big logo turned by 25 degrees may not fit any more: shrink it about its centre.
    shrink = min(1.0, float(np.min(limits / np.maximum(high - low, 1e-6))))
    corners *= shrink
    low, high = low * shrink, high * shrink
    free_low, free_high = -low, np.maximum(-low, limits - high)
    shifts = gen.uniform(0.0, 1.0, size=(_PLACEMENT_TRIES, 2)) * (free_high - free_low) + free_low
    product = _product_map(background)
    scale = np.array(product.shape[::-1], dtype=np.float64) / limits
    best, best_score = shifts[0], -1.0
    for shift in shifts:
        x0, y0 = np.floor((low + shift) * scale).astype(int)
        x1, y1 = np.ceil((high + shift) * scale).astype(int)
        score = float(product[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean())
        if score > best_score:
            best, best_score = shift, score
    placed = np.clip(corners + best, 0.0, limits)
    tl, tr, br, bl = (tuple(float(v) for v in point) for point in placed)
    return ((tl[0], tl[1]), (tr[0], tr[1]), (br[0], br[1]), (bl[0], bl[1]))


def _product_map(background: Image.Image) -> np.ndarray:
    """A 64-px map, 1 where the background is not near-white (product, not studio margin)."""
    thumb = background.resize(
        (
            max(1, 64 * background.width // max(background.size)),
            max(1, 64 * background.height // max(background.size)),
        ),
        Image.Resampling.BOX,
    )
    pixels = np.asarray(thumb, dtype=np.int16)
    return (np.abs(255 - pixels).max(axis=2) > 24).astype(np.float32)


def _warp(
    layer: Image.Image,
    origin: tuple[int, int],
    logo_size: tuple[int, int],
    quad: Quad,
    image_size: tuple[int, int],
) -> tuple[Image.Image | None, tuple[int, int]]:
    """The layer warped so the logo's corners land on ``quad``; returns it and its offset.

    Only the region the warped layer covers is rendered, which keeps a paste into a big
    photo cheap. The plate around the logo follows the same homography.
    """
    ox, oy = origin
    width, height = logo_size
    source = [(ox, oy), (ox + width, oy), (ox + width, oy + height), (ox, oy + height)]
    forward = augment.perspective_coefficients(source, list(quad))  # layer -> image
    extent = _forward_corners(forward, layer.size) if forward is not None else None
    if extent is None:  # a plate far outside the logo met the horizon: drop the plate
        layer = layer.crop((ox, oy, ox + width, oy + height))
        source = [(0, 0), (width, 0), (width, height), (0, height)]
        extent = np.array(quad, dtype=np.float64)
    x0 = max(0, math.floor(float(extent[:, 0].min())))
    y0 = max(0, math.floor(float(extent[:, 1].min())))
    x1 = min(image_size[0], math.ceil(float(extent[:, 0].max())))
    y1 = min(image_size[1], math.ceil(float(extent[:, 1].max())))
    if x1 <= x0 or y1 <= y0:
        return None, (0, 0)
    target = [(x - x0, y - y0) for x, y in quad]
    backward = augment.perspective_coefficients(target, source)  # region -> layer
    if backward is None:
        return None, (0, 0)
    warped = _premultiplied(
        layer,
        lambda im: im.transform(
            (x1 - x0, y1 - y0),
            Image.Transform.PERSPECTIVE,
            backward,
            Image.Resampling.BILINEAR,
        ),
    )
    return warped, (x0, y0)


def _forward_corners(coefficients: list[float], size: tuple[int, int]) -> np.ndarray | None:
    """Where the layer's corners land, or None if the homography folds or blows them up."""
    a, b, c, d, e, f, g, h = coefficients
    points = []
    for x, y in ((0, 0), (size[0], 0), (size[0], size[1]), (0, size[1])):
        denominator = g * x + h * y + 1.0
        if denominator < 0.2:
            return None
        points.append(((a * x + b * y + c) / denominator, (d * x + e * y + f) / denominator))
    return np.array(points, dtype=np.float64)


def _premultiplied(image: Image.Image, operation: Any) -> Image.Image:
    """Run a resampling ``operation`` on premultiplied alpha, so transparent pixels' colours
    (often black) do not bleed into the edges as a dark fringe."""
    result: Image.Image = operation(image.convert("RGBa"))
    return result.convert("RGBA")


def _occlude(canvas: Image.Image, quad: Quad, gen: Gen, max_occlusion: float) -> None:
    """Cover part of the logo with a strap, a finger-like blob or a sticker, in place.

    The occluder is shrunk until it covers at most ``max_occlusion`` of the quad's area.
    """
    if max_occlusion <= 0:
        return
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    x1, y1 = min(canvas.width, math.ceil(max(xs))), min(canvas.height, math.ceil(max(ys)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    region = (x1 - x0, y1 - y0)
    logo_mask = Image.new("1", region, 0)
    ImageDraw.Draw(logo_mask).polygon([(x - x0, y - y0) for x, y in quad], fill=1)
    logo_area = max(1, int(np.count_nonzero(np.asarray(logo_mask))))
    kind = _randint(gen, 0, 2)
    size = math.sqrt(_uniform(gen, (0.25, 1.0)) * max_occlusion * logo_area)
    centre = (_uniform(gen, (0, region[0])), _uniform(gen, (0, region[1])))
    angle = _uniform(gen, (0, math.pi))
    # Fingers in skin tones, straps and stickers in any colour.
    fill = (_randint(gen, 90, 240), _randint(gen, 60, 200), _randint(gen, 40, 170))
    if kind != 1:
        fill = _colour(gen)
    for _ in range(6):
        mask = _occluder_mask(region, kind, centre, angle, size)
        covered = np.count_nonzero(np.asarray(mask) & np.asarray(logo_mask)) / logo_area
        if covered <= max_occlusion:
            break
        size *= 0.7
    else:
        return
    # Everything the occluder covers is painted: it may stick out of the logo, as a strap does.
    canvas.paste(fill, (x0, y0, x1, y1), mask)


def _occluder_mask(
    region: tuple[int, int], kind: int, centre: Point, angle: float, size: float
) -> Image.Image:
    mask = Image.new("1", region, 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = centre
    ux, uy = math.cos(angle), math.sin(angle)
    if kind == 0:  # a strap: a band across the whole region, ``size`` thick on average
        length = math.hypot(*region)
        thick = max(1.0, size * size / max(length * 0.6, 1.0))
        nx, ny = -uy * thick / 2, ux * thick / 2
        points = [
            (cx - ux * length + nx, cy - uy * length + ny),
            (cx + ux * length + nx, cy + uy * length + ny),
            (cx + ux * length - nx, cy + uy * length - ny),
            (cx - ux * length - nx, cy - uy * length - ny),
        ]
        draw.polygon(points, fill=1)
    elif kind == 1:  # a finger: a long thin blob with a round tip
        half_len, half_w = size * 1.1, size * 0.35
        steps = 24
        points = []
        for k in range(steps):
            t = 2 * math.pi * k / steps
            px, py = half_len * math.cos(t), half_w * math.sin(t)
            points.append((cx + px * ux - py * uy, cy + px * uy + py * ux))
        draw.polygon(points, fill=1)
    else:  # a sticker: a square-ish rounded label
        half = size / 2
        draw.rounded_rectangle(
            (cx - half, cy - half, cx + half, cy + half), radius=max(1, round(half / 3)), fill=1
        )
    return mask


def _finish(image: Image.Image, gen: Gen, config: PasteConfig) -> Image.Image:
    """The marketplace's recompression, identical for positives and negatives."""
    if gen.random() < config.p_jpeg:
        return augment.jpeg(image, gen, quality=config.jpeg_quality)
    return image


# --------------------------------------------------------------------- backgrounds, marks


def synthetic_background(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A generated backdrop of ``size``: gradient, blotchy noise, shapes or woven stripes.

    Lets training and benchmarks see surfaces that are not catalogue product photos (which
    are mostly white), without any download.
    """
    gen = _generator(rng)
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    kind = _randint(gen, 0, 3)
    if kind == 0:
        image = augment.gradient_fill(size, gen)
    elif kind == 1:
        image = augment.noise_fill(size, gen)
    elif kind == 2:
        image = augment.shapes_fill(size, gen)
    else:
        image = _stripes(size, gen)
    if gen.random() < 0.5:  # sensor grain or fabric texture on top
        sigma = np.float32(_uniform(gen, (2.0, 12.0)))
        grain = gen.standard_normal(size=(height, width, 1), dtype=np.float32) * sigma
        pixels = np.asarray(image, dtype=np.float32) + grain
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image


def _stripes(size: tuple[int, int], gen: Gen) -> Image.Image:
    """Fabric-like stripes, sometimes crossed into a plaid."""
    width, height = size
    palette = np.array([_colour(gen) for _ in range(_randint(gen, 2, 4))], dtype=np.float32)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]

    def band(angle: float, period: float) -> np.ndarray:
        t = xs * np.float32(math.cos(angle) / period) + ys * np.float32(math.sin(angle) / period)
        return np.floor(t).astype(np.int32) % len(palette)

    angle = _uniform(gen, (0, math.pi))
    period = _uniform(gen, (3.0, max(4.0, min(size) / 6)))
    pixels = palette[band(angle, period)]
    if gen.random() < 0.4:  # plaid: a second set of stripes across, half see-through
        crossed = palette[band(angle + math.pi / 2, _uniform(gen, (3.0, max(4.0, min(size) / 6))))]
        pixels = 0.5 * pixels + 0.5 * crossed
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def distractor_mark(rng: random.Random, size: int) -> Image.Image:
    """An RGBA mark that is no catalogue logo, longest side ``size``: a hard negative.

    A made-up word in a font, a cluster of geometric shapes, or a price tag; pasted with
    :func:`paste_logo` like a logo, so that "some mark is there" never means "a logo is".
    """
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    gen = _generator(rng)
    kind = _randint(gen, 0, 2)
    if kind == 0:
        mark = _word_mark(gen, size)
    elif kind == 1:
        mark = _shape_mark(gen, size)
    else:
        mark = _price_tag(gen, size)
    mark = _visible(mark)
    factor = size / max(mark.size)
    target = (max(1, round(mark.width * factor)), max(1, round(mark.height * factor)))
    return mark.resize(target, Image.Resampling.LANCZOS)


def _word_mark(gen: Gen, size: int) -> Image.Image:
    word = "".join(_choice(gen, _SYLLABLES) for _ in range(_randint(gen, 2, 3)))
    word = word.upper() if gen.random() < 0.5 else word.capitalize()
    font = augment.load_font(size)
    text_w, text_h = augment.text_size(font, word)
    canvas = Image.new("RGBA", (text_w + size, text_h + size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    ink = (*_colour(gen, 0, 160), 255)
    left, top = size // 2, size // 2
    draw.text((left, top - font.getbbox(word)[1]), word, font=font, fill=ink)
    if gen.random() < 0.4:  # an underline or a frame, as small shop marks have
        line = max(1, text_h // 10)
        if gen.random() < 0.5:
            draw.rectangle((left, top + text_h + line, left + text_w, top + text_h + 2 * line), ink)
        else:
            margin = text_h // 3
            box = (left - margin, top - margin, left + text_w + margin, top + text_h + margin)
            draw.rectangle(box, outline=ink, width=line)
    return canvas


def _shape_mark(gen: Gen, size: int) -> Image.Image:
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    inks = [(*_colour(gen), 255) for _ in range(_randint(gen, 1, 2))]
    for _ in range(_randint(gen, 1, 4)):
        side = _uniform(gen, (0.25, 0.7)) * size
        cx, cy = (
            _uniform(gen, (side / 2, size - side / 2)),
            _uniform(gen, (side / 2, size - side / 2)),
        )
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        ink = _choice(gen, tuple(inks))
        shape = _randint(gen, 0, 4)
        if shape == 0:
            draw.ellipse(box, fill=ink)
        elif shape == 1:
            draw.rectangle(box, fill=ink)
        elif shape == 2:
            draw.polygon([(cx, box[1]), (box[2], box[3]), (box[0], box[3])], fill=ink)
        elif shape == 3:
            draw.ellipse(box, outline=ink, width=max(1, round(side / 8)))
        else:
            points = _randint(gen, 4, 8)
            star = [
                (
                    cx + (side / 2 if k % 2 == 0 else side / 5) * math.cos(math.pi * k / points),
                    cy + (side / 2 if k % 2 == 0 else side / 5) * math.sin(math.pi * k / points),
                )
                for k in range(2 * points)
            ]
            draw.polygon(star, fill=ink)
    return canvas


def _price_tag(gen: Gen, size: int) -> Image.Image:
    """A swing tag: a label with a pointed end, a punched hole and a price on it."""
    label = augment.price_label(gen)
    font = augment.load_font(max(8, size // 4))
    text_w, text_h = augment.text_size(font, label)
    body_h = text_h * 2
    point = body_h // 2
    width = text_w + text_h + point + 8
    canvas = Image.new("RGBA", (width, body_h + 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    fill = (*_colour(gen, 120, 255), 255)
    top, bottom = 2, body_h + 2
    draw.polygon(
        [
            (0, (top + bottom) / 2),
            (point, top),
            (width - 1, top),
            (width - 1, bottom),
            (point, bottom),
        ],
        fill=fill,
    )
    hole = max(2, text_h // 4)
    cy = (top + bottom) / 2
    draw.ellipse((point - hole, cy - hole / 2, point, cy + hole / 2), fill=(0, 0, 0, 0))
    ink = (*_colour(gen, 0, 80), 255)
    draw.text((point + text_h // 2 + 4, cy), label, font=font, fill=ink, anchor="lm")
    return canvas


# ----------------------------------------------------------------------------- composites


def make_composite(
    background: Image.Image,
    logo: Image.Image | None,
    rng: random.Random,
    *,
    item_id: str | None = None,
    brand: str | None = None,
    config: PasteConfig = PasteConfig(),
    p_distractor: float = 0.5,
) -> Composite:
    """A positive (``logo`` pasted) or a negative (``logo`` None) listing-like picture.

    A negative gets a :func:`distractor_mark` with probability ``p_distractor``, pasted with
    the same ``config`` as logos, and goes through the same JPEG finishing, so that it
    differs from a positive only by what is pasted. Its quad is None: a distractor is no
    logo to be found.
    """
    _check_range("p_distractor", p_distractor, 0.0, 1.0)
    gen_rng = random.Random(rng.getrandbits(64))
    if logo is not None:
        image, quad = paste_logo(background, logo, gen_rng, config)
        return Composite(image, quad, item_id, brand)
    if gen_rng.random() < p_distractor:
        mark = distractor_mark(gen_rng, 256)
        image, _ = paste_logo(background, mark, gen_rng, config)
    else:
        image = _finish(background.convert("RGB"), _generator(gen_rng), config)
    return Composite(image, None, None, None)
