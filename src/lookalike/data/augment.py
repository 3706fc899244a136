"""Counterfeit-listing augmentations: what a seller does to a catalogue photo before posting it.

Two users share this module. Training (an SSCD-style copy-detection descriptor: two views of
each image, InfoNCE + KoLeo) draws random chains of edits through :class:`ListingAugment`.
The benchmark builds queries with :func:`random_listing_edit`, which also returns the edit
kind so that results can be broken down per kind; the kind names in :data:`EDIT_KINDS` are
therefore public vocabulary and must stay stable.

Every edit has the signature ``edit(image, rng, **strength) -> Image`` and is a pure function
of the input pixels and the state of ``rng``: the same seed gives the same picture, and the
input is never modified. Edits accept any size (down to 1x1, or 600x40 strips) and always
return RGB. Only PIL and numpy are used, so the module imports fast in data-loader workers.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from lookalike.data import edits as simple_edits

Rng = np.random.Generator
Colour = tuple[int, int, int]
Box = tuple[int, int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Others = Sequence[Image.Image]
# Callable[..., Image] rather than a Protocol: each edit has its own keyword strengths.
EditFn = Callable[..., Image.Image]

BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "noise", "photo")
COLLAGE_LAYOUTS: dict[str, tuple[int, int]] = {"2x2": (2, 2), "1x3": (1, 3), "3x3": (3, 3)}

# Words a reseller overlays. ASCII only: the default font has no glyphs for currency signs
# such as the euro, which would render as empty boxes.
_OVERLAY_WORDS = (
    "SALE",
    "NEW",
    "HOT",
    "ORIGINAL",
    "AUTHENTIC",
    "FREE SHIPPING",
    "BEST PRICE",
    "LIMITED",
    "TOP QUALITY",
    "100% GENUINE",
    "IN STOCK",
    "LAST ONE",
)
_SHOP_SYLLABLES = ("lux", "mart", "deal", "best", "shop", "style", "trend", "store", "go", "top")
_TEXT_INKS: tuple[Colour, ...] = ((255, 255, 255), (0, 0, 0), (230, 20, 20), (255, 220, 0))
_UI_WORDS = ("Shop", "Details", "Product", "Store", "Item", "Deals", "Market")
_BUTTON_WORDS = ("Add to cart", "Buy now", "Add to bag", "Order", "Chat")


# ----------------------------------------------------------------------------- small helpers


def _rgb(image: Image.Image) -> Image.Image:
    """The image in RGB; a grey, palette or alpha input is converted, an RGB one returned as is."""
    return image if image.mode == "RGB" else image.convert("RGB")


def _uniform(rng: Rng, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _randint(rng: Rng, low: int, high: int) -> int:
    """A random integer in ``[low, high]``, both ends included."""
    return int(rng.integers(low, high + 1))


def _choice(rng: Rng, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _colour(rng: Rng, low: int = 0, high: int = 255) -> Colour:
    red, green, blue = rng.integers(low, high + 1, size=3)
    return int(red), int(green), int(blue)


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


@functools.lru_cache(maxsize=64)
def load_font(size: int) -> Font:
    """The bundled default font at ``size`` pixels; the fixed bitmap font on old Pillow."""
    try:
        return ImageFont.load_default(size=max(1, size))
    except (TypeError, OSError, ImportError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def text_size(font: Font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return max(1, int(right - left)), max(1, int(bottom - top))


def price_label(rng: Rng) -> str:
    """A price or discount as sellers write it ("$49.99", "12,50 EUR", "-30%")."""
    whole = _randint(rng, 3, 299)
    style = _randint(rng, 0, 3)
    if style == 0:
        return f"${whole}.99"
    if style == 1:
        return f"{whole},{_randint(rng, 0, 99):02d} EUR"
    if style == 2:
        return f"ONLY ${whole}"
    return f"-{_randint(rng, 2, 9)}0%"


def _shop_name(rng: Rng) -> str:
    return "".join(_choice(rng, _SHOP_SYLLABLES) for _ in range(2)).capitalize()


# ------------------------------------------------------------------------- backgrounds/fills


def gradient_fill(size: tuple[int, int], rng: Rng) -> Image.Image:
    """A linear ramp between two random colours at a random angle (a studio backdrop)."""
    width, height = size
    angle = _uniform(rng, (0.0, 2 * math.pi))
    xs = np.arange(width, dtype=np.float32)[None, :] * math.cos(angle)
    ys = np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
    ramp = xs + ys
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    start = np.array(_colour(rng), dtype=np.float32)
    end = np.array(_colour(rng), dtype=np.float32)
    pixels = start + ramp[..., None] * (end - start)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def noise_fill(size: tuple[int, int], rng: Rng) -> Image.Image:
    """Smooth blotches plus grain: a cheap stand-in for fabric, wood or a cluttered table."""
    width, height = size
    cell = _randint(rng, 4, 32)
    coarse = rng.integers(0, 256, size=(max(1, height // cell) + 1, max(1, width // cell) + 1, 3))
    texture = Image.fromarray(coarse.astype(np.uint8), "RGB").resize(size, Image.Resampling.BICUBIC)
    grain = rng.normal(0.0, _uniform(rng, (0.0, 25.0)), size=(height, width, 1))
    pixels = np.asarray(texture, dtype=np.float32) + grain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def shapes_fill(size: tuple[int, int], rng: Rng) -> Image.Image:
    """A plain card with a few blobs: looks like some other product photo in a grid."""
    card = Image.new("RGB", size, _colour(rng, 150, 255))
    draw = ImageDraw.Draw(card)
    width, height = size
    for _ in range(_randint(rng, 1, 3)):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width + 1, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height + 1, size=2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=_colour(rng))
    return card


def _fit_cover(photo: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale ``photo`` to fill ``size`` and centre-crop the overflow (how grid cells show it)."""
    return ImageOps.fit(_rgb(photo), size, Image.Resampling.BILINEAR)


def _background(
    size: tuple[int, int], rng: Rng, kind: str | None = None, others: Others = ()
) -> Image.Image:
    """A backdrop of ``kind`` (random among those possible when None) at ``size``."""
    if kind is None:
        kinds = BACKGROUNDS if others else BACKGROUNDS[:-1]
        kind = str(_choice(rng, kinds))
    if kind == "plain":
        return Image.new("RGB", size, _colour(rng))
    if kind == "gradient":
        return gradient_fill(size, rng)
    if kind == "noise":
        return noise_fill(size, rng)
    if kind == "photo":
        if not others:  # asked for a photo with an empty pool: still a backdrop, never an error
            return shapes_fill(size, rng)
        return _fit_cover(_choice(rng, others), size)
    raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")


def _filler(size: tuple[int, int], rng: Rng, others: Others) -> Image.Image:
    """Content for a collage cell that is not the query photo."""
    if others and rng.random() < 0.85:
        return _fit_cover(_choice(rng, others), size)
    if rng.random() < 0.5:
        return shapes_fill(size, rng)
    return _background(size, rng)


# ------------------------------------------------------------------------------ geometric


def crop(
    image: Image.Image,
    rng: Rng,
    *,
    area: tuple[float, float] = (0.25, 0.9),
    max_aspect: float = 2.0,
) -> Image.Image:
    """Keep a random window holding ``area`` of the pixels, aspect ratio up to ``max_aspect``."""
    image = _rgb(image)
    width, height = image.size
    target = _uniform(rng, area) * width * height
    # Log-uniform aspect so that 1:2 and 2:1 are equally likely.
    aspect = math.exp(_uniform(rng, (-math.log(max_aspect), math.log(max_aspect))))
    # Clamp one side first, then give the other side the remaining area: on thin strips this
    # keeps the requested fraction instead of collapsing the crop.
    new_h = min(height, max(1, round(math.sqrt(target / aspect))))
    new_w = min(width, max(1, round(target / new_h)))
    left = _randint(rng, 0, width - new_w)
    top = _randint(rng, 0, height - new_h)
    return image.crop((left, top, left + new_w, top + new_h))


def rotate(
    image: Image.Image,
    rng: Rng,
    *,
    angle: tuple[float, float] = (5.0, 30.0),
    p_quarter: float = 0.35,
    p_expand: float = 0.5,
) -> Image.Image:
    """A quarter turn (90/180/270) and/or a tilt of ``angle`` degrees either way, with fill."""
    image = _rgb(image)
    quarter = rng.random() < p_quarter
    if quarter:
        turn = _choice(
            rng,
            (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270),
        )
        image = image.transpose(turn)
    # A quarter turn alone is a common edit; otherwise always tilt so the edit is never a no-op.
    if quarter and rng.random() < 0.5:
        return image
    degrees = _uniform(rng, angle) * (1 if rng.random() < 0.5 else -1)
    fill = _choice(rng, ((255, 255, 255), (0, 0, 0), _colour(rng)))
    # expand=True keeps the corners (photo on a canvas), False cuts them (a phone-camera tilt).
    return image.rotate(
        degrees,
        resample=Image.Resampling.BILINEAR,
        expand=bool(rng.random() < p_expand),
        fillcolor=fill,
    )


def perspective_coefficients(
    target: Sequence[tuple[float, float]], source: Sequence[tuple[float, float]]
) -> list[float] | None:
    """The 8 PIL PERSPECTIVE coefficients mapping output points ``target`` to input ``source``.

    PIL samples the input at ``((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (...))``
    for each output pixel (x, y); each point pair gives two equations linear in a..h.
    """
    rows: list[list[float]] = []
    values: list[float] = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        values.extend((u, v))
    try:
        solution = np.linalg.solve(np.array(rows), np.array(values))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(solution)):
        return None
    return [float(c) for c in solution]


def perspective(
    image: Image.Image, rng: Rng, *, distortion: tuple[float, float] = (0.05, 0.3)
) -> Image.Image:
    """Warp the photo onto a random quadrilateral, as if shot at an angle off a screen."""
    image = _rgb(image)
    width, height = image.size
    corners = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    strength = _uniform(rng, distortion)
    # Each corner moves inward (mostly) or slightly outward, by under half a side: the quad
    # stays convex and in order, so the linear system is never degenerate for real images.
    inward = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
    shifts = rng.uniform(-0.3, 1.0, size=(4, 2)) * strength
    target = [
        (x + sx * dx * width, y + sy * dy * height)
        for (x, y), (sx, sy), (dx, dy) in zip(corners, inward, shifts, strict=True)
    ]
    coefficients = perspective_coefficients(target, corners)
    if coefficients is None:
        return image.copy()
    fill = _choice(rng, ((255, 255, 255), (0, 0, 0), _colour(rng)))
    return image.transform(
        image.size,
        Image.Transform.PERSPECTIVE,
        coefficients,
        Image.Resampling.BILINEAR,
        fillcolor=fill,
    )


def mirror(image: Image.Image, rng: Rng) -> Image.Image:
    """Left-right flip; ``rng`` is unused but kept so every edit has the same signature."""
    del rng
    return simple_edits.mirror(_rgb(image))


# ---------------------------------------------------------------------------- photometric


_CHANNEL_ORDERS = tuple(p for p in itertools.permutations(range(3)) if p != (0, 1, 2))


def colour(
    image: Image.Image,
    rng: Rng,
    *,
    brightness: tuple[float, float] = (0.6, 1.4),
    contrast: tuple[float, float] = (0.6, 1.4),
    saturation: tuple[float, float] = (0.0, 2.0),
    p_hue: float = 0.5,
    p_swap: float = 0.2,
    p_invert: float = 0.1,
) -> Image.Image:
    """Brightness/contrast/saturation jitter, sometimes a hue turn, channel swap or inversion."""
    image = _rgb(image)
    image = ImageEnhance.Brightness(image).enhance(_uniform(rng, brightness))
    image = ImageEnhance.Contrast(image).enhance(_uniform(rng, contrast))
    image = ImageEnhance.Color(image).enhance(_uniform(rng, saturation))
    if rng.random() < p_hue:
        hsv = np.array(image.convert("HSV"))
        # uint8 addition wraps around, which is exactly a rotation of the hue circle.
        hsv[..., 0] += np.uint8(_randint(rng, 1, 255))
        image = Image.fromarray(hsv, "HSV").convert("RGB")
    if rng.random() < p_swap:
        bands = image.split()
        order = _choice(rng, _CHANNEL_ORDERS)
        image = Image.merge("RGB", [bands[i] for i in order])
    if rng.random() < p_invert:
        image = ImageOps.invert(image)
    return image


_LUMA = np.array([0.299, 0.587, 0.114])


def gray(image: Image.Image, rng: Rng, *, weight_jitter: float = 0.1) -> Image.Image:
    """Greyscale with jittered channel weights (tools differ), returned as 3 equal channels."""
    image = _rgb(image)
    weights = np.clip(_LUMA + rng.uniform(-weight_jitter, weight_jitter, size=3), 0.0, None)
    weights = weights / max(float(weights.sum()), 1e-6)
    # Image.convert with a 12-tuple matrix writes the same mix into each output channel.
    matrix = (*(float(w) for w in weights), 0.0)
    return image.convert("RGB", matrix * 3)


def blur(image: Image.Image, rng: Rng, *, radius: tuple[float, float] = (1.0, 4.0)) -> Image.Image:
    """Gaussian blur: a re-photographed or heavily smoothed listing picture."""
    return _rgb(image).filter(ImageFilter.GaussianBlur(_uniform(rng, radius)))


def jpeg(image: Image.Image, rng: Rng, *, quality: tuple[int, int] = (10, 60)) -> Image.Image:
    """JPEG round trip at a low ``quality``: marketplaces recompress every upload."""
    return simple_edits.jpeg(_rgb(image), quality=_randint(rng, quality[0], quality[1]))


_RESAMPLERS = (
    Image.Resampling.NEAREST,
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.BOX,
)


def downscale(
    image: Image.Image,
    rng: Rng,
    *,
    scale: tuple[float, float] = (0.15, 0.5),
    p_restore: float = 0.5,
) -> Image.Image:
    """Shrink to ``scale`` of each side; sometimes blow it back up (a thumbnail re-upload)."""
    image = _rgb(image)
    small = image.resize(_scaled(image.size, _uniform(rng, scale)), _choice(rng, _RESAMPLERS))
    if rng.random() < p_restore:
        return small.resize(image.size, _choice(rng, _RESAMPLERS))
    return small


# ------------------------------------------------------------------------------- overlays


def _overlay_text(rng: Rng) -> str:
    pick = _randint(rng, 0, 3)
    if pick == 0:
        return price_label(rng)
    if pick == 1:
        return f"SALE {price_label(rng)}" if rng.random() < 0.5 else "SALE"
    words = [_choice(rng, _OVERLAY_WORDS) for _ in range(_randint(rng, 1, 2))]
    return " ".join(words)


def text(
    image: Image.Image,
    rng: Rng,
    *,
    size: tuple[float, float] = (0.08, 0.22),
    p_band: float = 0.4,
    p_stroke: float = 0.3,
) -> Image.Image:
    """A price, "SALE" or sales words in a random font size, colour and place.

    ``size`` is the font height as a fraction of the shorter side. Sometimes the text sits on
    a semi-transparent band across the picture, sometimes it has an outline.
    """
    base = _rgb(image).convert("RGBA")
    width, height = base.size
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font_px = max(6, round(_uniform(rng, size) * min(width, height) + 2))
    words = _overlay_text(rng)
    text_w, text_h = text_size(load_font(font_px), words)
    if text_w > width:  # long phrases shrink to fit the width, as a sticker editor does
        font_px = max(6, font_px * width // text_w)
    font = load_font(font_px)
    text_w, text_h = text_size(font, words)
    # Anywhere, at most a sliver off the edge: sellers want the price read, not cropped.
    slack_x = slack_y = text_h // 5
    x = _randint(rng, -slack_x, max(-slack_x, width - text_w + slack_x))
    y = _randint(rng, -slack_y, max(-slack_y, height - text_h + slack_y))
    if rng.random() < p_band:
        pad = max(1, text_h // 3)
        band = (*_colour(rng), _randint(rng, 120, 230))
        draw.rectangle((0, y - pad, width, y + text_h + pad), fill=band)
    # Mostly loud stock colours, sometimes anything.
    ink = _choice(rng, _TEXT_INKS) if rng.random() < 0.6 else _colour(rng)
    stroke = max(1, text_h // 12) if rng.random() < p_stroke else 0
    draw.text(
        (x, y - font.getbbox(words)[1]),
        words,
        font=font,
        fill=(*ink, _randint(rng, 180, 255)),
        stroke_width=stroke,
        stroke_fill=_colour(rng),
    )
    return Image.alpha_composite(base, layer).convert("RGB")


def watermark(
    image: Image.Image,
    rng: Rng,
    *,
    opacity: tuple[int, int] = (50, 120),
    size: tuple[float, float] = (0.06, 0.14),
) -> Image.Image:
    """A shop name tiled diagonally over the picture, semi-transparent (claimed as their own)."""
    base = _rgb(image).convert("RGBA")
    width, height = base.size
    font = load_font(max(6, round(_uniform(rng, size) * max(width, height))))
    label = _shop_name(rng) if rng.random() < 0.7 else "SAMPLE"
    label = f"(c) {label}" if rng.random() < 0.3 else label
    text_w, text_h = text_size(font, label)
    # Draw one tile and repeat it with numpy: far cheaper than drawing the text many times.
    tile = Image.new("LA", (text_w + text_w // 2 + 2, 3 * text_h + 2), (0, 0))
    alpha = _randint(rng, opacity[0], opacity[1])
    ImageDraw.Draw(tile).text((1, -font.getbbox(label)[1] + 1), label, font=font, fill=(0, alpha))
    side = math.ceil(math.hypot(width, height)) + 2
    reps = (side // tile.height + 1, side // tile.width + 1)
    mask = Image.fromarray(np.tile(np.asarray(tile.getchannel("A")), reps)[:side, :side], "L")
    mask = mask.rotate(_uniform(rng, (-45.0, 45.0)), resample=Image.Resampling.BILINEAR)
    left, top = (side - width) // 2, (side - height) // 2
    mask = mask.crop((left, top, left + width, top + height))
    ink = Image.new("RGBA", base.size, _choice(rng, ((255, 255, 255), (0, 0, 0), _colour(rng))))
    ink.putalpha(mask)
    return Image.alpha_composite(base, ink).convert("RGB")


def _star(box: Box, points: int, inner: float) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    cx, cy, radius = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    vertices = []
    for k in range(2 * points):
        r = radius if k % 2 == 0 else radius * inner
        theta = math.pi * k / points - math.pi / 2
        vertices.append((cx + r * math.cos(theta), cy + r * math.sin(theta)))
    return vertices


def _draw_sticker(draw: ImageDraw.ImageDraw, box: Box, rng: Rng) -> None:
    """One sticker in ``box``: a smiley, a star, a price burst, a badge or a plain dot."""
    x0, y0, x1, y1 = box
    side = x1 - x0
    kind = _randint(rng, 0, 4)
    fill = _colour(rng)
    if kind == 0:  # emoji-like face: yellow disc, two eyes, a smile
        draw.ellipse(box, fill=(255, 204, 0), outline=(120, 80, 0))
        eye = max(1, side // 10)
        for ex in (x0 + side * 0.33, x0 + side * 0.67):
            ey = y0 + side * 0.38
            draw.ellipse((ex - eye, ey - eye, ex + eye, ey + eye), fill=(60, 40, 0))
        mouth = (x0 + side * 0.25, y0 + side * 0.3, x1 - side * 0.25, y1 - side * 0.2)
        draw.arc(mouth, 20, 160, fill=(60, 40, 0), width=max(1, side // 16))
    elif kind == 1:
        draw.polygon(_star(box, 5, 0.45), fill=fill)
    elif kind == 2:  # price burst with a discount written on it
        draw.polygon(_star(box, 12, 0.8), fill=fill)
        label = f"-{_randint(rng, 1, 9)}0%"
        font = load_font(max(6, side // 4))
        draw.text(
            ((x0 + x1) / 2, (y0 + y1) / 2), label, font=font, fill=(255, 255, 255), anchor="mm"
        )
    elif kind == 3:
        label = str(_choice(rng, ("NEW", "HOT", "TOP", "OK")))
        band = (x0, y0 + side // 4, x1, y1 - side // 4)
        draw.rounded_rectangle(band, radius=max(1, side // 8), fill=fill)
        font = load_font(max(6, side // 4))
        draw.text(
            ((x0 + x1) / 2, (y0 + y1) / 2), label, font=font, fill=(255, 255, 255), anchor="mm"
        )
    else:
        draw.ellipse(box, fill=fill)


def sticker(
    image: Image.Image,
    rng: Rng,
    *,
    cover: tuple[float, float] = (0.03, 0.15),
    count: tuple[int, int] = (1, 4),
) -> Image.Image:
    """Coloured shapes and emoji-like faces hiding, in total, up to ``cover`` of the area."""
    edited = _rgb(image).copy()
    width, height = edited.size
    draw = ImageDraw.Draw(edited)
    stickers = _randint(rng, count[0], count[1])
    budget = _uniform(rng, cover) * width * height
    for _ in range(stickers):
        # Bounding squares share the area budget; the shapes inside cover a bit less.
        side = max(2, min(width, height, round(math.sqrt(budget / stickers))))
        left = _randint(rng, 0, max(0, width - side))
        top = _randint(rng, 0, max(0, height - side))
        _draw_sticker(draw, (left, top, left + side, top + side), rng)
    return edited


# ------------------------------------------------------------------------------- framing


def paste(
    image: Image.Image,
    rng: Rng,
    *,
    others: Others = (),
    scale: tuple[float, float] = (0.3, 0.8),
    background: str | None = None,
) -> Image.Image:
    """The photo shrunk to ``scale`` of each side on a backdrop the size of the original.

    ``background`` is one of :data:`BACKGROUNDS` or None for a random one; "photo" takes a
    picture from ``others`` (and is only drawn at random when ``others`` is not empty).
    """
    image = _rgb(image)
    canvas = _background(image.size, rng, background, others)
    photo = image.resize(_scaled(image.size, _uniform(rng, scale)), Image.Resampling.BILINEAR)
    left = _randint(rng, 0, canvas.width - photo.width)
    top = _randint(rng, 0, canvas.height - photo.height)
    canvas.paste(photo, (left, top))
    return canvas


def _ui_theme(rng: Rng, p_dark: float) -> dict[str, Colour]:
    if rng.random() < p_dark:
        return {"page": (18, 18, 18), "panel": (36, 36, 36), "ink": (235, 235, 235)}
    page = _randint(rng, 240, 255)
    return {"page": (page,) * 3, "panel": (page - 12,) * 3, "ink": (25, 25, 25)}


def _status_bar(draw: ImageDraw.ImageDraw, width: int, bar: int, ink: Colour, rng: Rng) -> None:
    font = load_font(max(6, bar * 2 // 3))
    clock = f"{_randint(rng, 1, 12)}:{_randint(rng, 0, 59):02d}"
    draw.text((bar // 2, bar // 2), clock, font=font, fill=ink, anchor="lm")
    # Signal bars and a battery on the right, like every phone screenshot has.
    step = max(1, bar // 5)
    right = width - bar // 2
    battery = (right - 2 * bar, bar // 4, right, bar * 3 // 4)
    draw.rectangle(battery, outline=ink, width=max(1, bar // 12))
    level = battery[0] + int((battery[2] - battery[0]) * _uniform(rng, (0.2, 1.0)))
    draw.rectangle((battery[0], battery[1], level, battery[3]), fill=ink)
    for k in range(4):
        x = battery[0] - bar // 2 - (4 - k) * step * 2
        draw.rectangle(
            (x, bar * 3 // 4 - (k + 1) * step // 2 - 1, x + step, bar * 3 // 4), fill=ink
        )


def _header(draw: ImageDraw.ImageDraw, box: Box, colour_: Colour, ink: Colour, rng: Rng) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, fill=colour_)
    mid = (y0 + y1) // 2
    unit = max(2, (y1 - y0) // 3)
    draw.line(
        (x0 + 2 * unit, mid - unit, x0 + unit, mid, x0 + 2 * unit, mid + unit), fill=ink, width=2
    )
    title = str(_choice(rng, _UI_WORDS))
    draw.text(
        ((x0 + x1) // 2, mid), title, font=load_font(max(6, unit * 3 // 2)), fill=ink, anchor="mm"
    )
    for k in range(_randint(rng, 1, 2)):  # share / cart icons
        cx, r = x1 - unit * (2 + 3 * k), max(1, unit * 2 // 3)
        draw.ellipse((cx - r, mid - r, cx + r, mid + r), outline=ink, width=max(1, unit // 4))


def _listing_details(
    draw: ImageDraw.ImageDraw, box: Box, theme: dict[str, Colour], rng: Rng
) -> None:
    """Carousel dots, price, a title, grey skeleton lines and the buy buttons below the photo."""
    x0, y0, x1, y1 = box
    width = x1 - x0
    unit = max(4, width // 24)
    y = y0 + unit
    for k in range(_randint(rng, 3, 5)):  # carousel dots
        cx = (x0 + x1) // 2 + (k - 2) * unit
        fill = theme["ink"] if k == 0 else theme["panel"]
        draw.ellipse((cx - unit // 4, y - unit // 4, cx + unit // 4, y + unit // 4), fill=fill)
    y += unit
    price_colour = _choice(rng, ((220, 30, 30), (255, 80, 0), theme["ink"]))
    draw.text((x0 + unit, y), price_label(rng), font=load_font(unit * 2), fill=price_colour)
    y += unit * 3
    name = " ".join(_choice(rng, _OVERLAY_WORDS).title() for _ in range(3))
    draw.text((x0 + unit, y), name, font=load_font(max(6, unit)), fill=theme["ink"])
    y += unit * 2
    buttons_top = y1 - unit * 3
    while y + unit < buttons_top - unit:  # skeleton text lines for the description
        line_end = x0 + unit + int((width - 2 * unit) * _uniform(rng, (0.4, 1.0)))
        draw.rounded_rectangle(
            (x0 + unit, y, line_end, y + unit // 2), unit // 4, fill=theme["panel"]
        )
        y += unit
    _buttons(draw, (x0, buttons_top, x1, y1), unit, rng)


def _buttons(draw: ImageDraw.ImageDraw, box: Box, unit: int, rng: Rng) -> None:
    x0, y0, x1, y1 = box
    middle = (x0 + x1) // 2
    labels = [_choice(rng, _BUTTON_WORDS) for _ in range(2)]
    # Random button colours stay dark enough for the white labels to be legible.
    fills = [(255, 153, 0), (230, 40, 40)]
    if rng.random() < 0.5:
        fills = [_colour(rng, 0, 190), _colour(rng, 0, 190)]
    spans = ((x0 + unit // 2, middle - unit // 4), (middle + unit // 4, x1 - unit // 2))
    for (left, right), label, fill in zip(spans, labels, fills, strict=True):
        draw.rounded_rectangle((left, y0 + unit // 2, right, y1 - unit // 2), unit, fill=fill)
        centre = ((left + right) // 2, (y0 + y1) // 2)
        draw.text(centre, label, font=load_font(max(6, unit)), fill=(255, 255, 255), anchor="mm")


def screenshot(
    image: Image.Image,
    rng: Rng,
    *,
    aspect: tuple[float, float] = (1.8, 2.2),
    p_dark: float = 0.2,
) -> Image.Image:
    """The photo inside a fake shopping-app page: status bar, header, price, buttons.

    The page has a phone aspect (height / width in ``aspect``) and is at least 96 px wide, so
    the photo is always a strict sub-region of a bigger canvas.
    """
    image = _rgb(image)
    page_w = int(np.clip(image.width * _uniform(rng, (1.0, 1.15)), 96, 1440))
    page_h = round(page_w * _uniform(rng, aspect))
    theme = _ui_theme(rng, p_dark)
    page = Image.new("RGB", (page_w, page_h), theme["page"])
    draw = ImageDraw.Draw(page)
    bar = max(6, page_w // 18)
    _status_bar(draw, page_w, bar, theme["ink"], rng)
    header_colour = theme["page"] if rng.random() < 0.5 else _colour(rng, 60, 230)
    _header(draw, (0, bar, page_w, bar + 2 * bar), header_colour, theme["ink"], rng)
    photo_top = 3 * bar + _randint(rng, 0, bar)
    # Full-bleed or with side margins; never taller than about half the page.
    margin = 0 if rng.random() < 0.5 else _randint(rng, 2, max(2, page_w // 12))
    scale = min((page_w - 2 * margin) / image.width, 0.5 * page_h / image.height)
    photo = image.resize(_scaled(image.size, scale), Image.Resampling.BILINEAR)
    page.paste(photo, ((page_w - photo.width) // 2, photo_top))
    details = (0, photo_top + photo.height, page_w, page_h)
    _listing_details(draw, details, theme, rng)
    return page


def collage(
    image: Image.Image,
    rng: Rng,
    *,
    others: Others = (),
    layout: str | None = None,
) -> Image.Image:
    """The photo as one cell of a grid (``layout`` in :data:`COLLAGE_LAYOUTS`, random if None).

    The other cells show pictures from ``others`` or generated fills; a 1x3 strip is turned
    upright half of the time.
    """
    image = _rgb(image)
    name = layout if layout is not None else str(_choice(rng, tuple(COLLAGE_LAYOUTS)))
    rows, cols = COLLAGE_LAYOUTS[name]
    if rows == 1 and rng.random() < 0.5:
        rows, cols = cols, rows
    base = int(np.clip(max(image.size), 96, 1440))
    gap = _randint(rng, 0, max(0, base // 40))
    cell = max(1, (base - gap * (max(rows, cols) + 1)) // max(rows, cols))
    size = (cols * cell + (cols + 1) * gap, rows * cell + (rows + 1) * gap)
    canvas = Image.new("RGB", size, _choice(rng, ((255, 255, 255), (0, 0, 0), _colour(rng))))
    mine = _randint(rng, 0, rows * cols - 1)
    for index in range(rows * cols):
        if index == mine:
            # Shown whole (padded) or cropped to fill the cell, as collage apps offer both.
            if rng.random() < 0.5:
                tile = _fit_cover(image, (cell, cell))
            else:
                tile = ImageOps.pad(image, (cell, cell), color=_colour(rng, 200, 255))
        else:
            tile = _filler((cell, cell), rng, others)
        row, col = divmod(index, cols)
        canvas.paste(tile, (gap + col * (cell + gap), gap + row * (cell + gap)))
    return canvas


# ------------------------------------------------------------------------------- chaining

# The order a seller works in: fix the geometry, adjust colours, frame the photo, decorate
# it, capture the page, and finally the marketplace recompresses the upload.
_PIPELINE_ORDER = (
    "crop",
    "perspective",
    "rotate",
    "mirror",
    "gray",
    "colour",
    "blur",
    "downscale",
    "paste",
    "collage",
    "sticker",
    "text",
    "watermark",
    "screenshot",
    "jpeg",
)
# A photo is framed once: stacking a collage inside a screenshot inside a paste is unlikely
# and multiplies the canvas size.
_FRAMING = frozenset({"paste", "collage", "screenshot"})
_USES_OTHERS = frozenset({"paste", "collage", "combined"})


def _sample_chain(
    rng: Rng, pool: Sequence[str], count: int, weights: Mapping[str, float] | None = None
) -> list[str]:
    """Up to ``count`` distinct kinds from ``pool``, at most one framing kind, pipeline order."""
    remaining = [k for k in pool if k in _PIPELINE_ORDER]
    chosen: list[str] = []
    while remaining and len(chosen) < count:
        p = np.array([weights.get(k, 1.0) if weights else 1.0 for k in remaining], dtype=float)
        if p.sum() <= 0:
            break
        kind = remaining[int(rng.choice(len(remaining), p=p / p.sum()))]
        chosen.append(kind)
        framing = kind in _FRAMING
        remaining = [k for k in remaining if k != kind and not (framing and k in _FRAMING)]
    return sorted(chosen, key=_PIPELINE_ORDER.index)


def _run_chain(
    image: Image.Image,
    rng: Rng,
    kinds: Sequence[str],
    others: Others,
    params: Mapping[str, Mapping[str, Any]],
) -> Image.Image:
    for kind in kinds:
        image = apply_edit(kind, image, rng, others, **params.get(kind, {}))
    return image


def combined(
    image: Image.Image,
    rng: Rng,
    *,
    others: Others = (),
    count: tuple[int, int] = (2, 4),
    kinds: Sequence[str] | None = None,
) -> Image.Image:
    """``count`` different edits chained in the order a seller would apply them."""
    pool = _PIPELINE_ORDER if kinds is None else tuple(kinds)
    chain = _sample_chain(rng, pool, _randint(rng, count[0], count[1]))
    return _run_chain(_rgb(image), rng, chain, others, {})


# ------------------------------------------------------------------------------ public API

EDIT_KINDS: tuple[str, ...] = (
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

EDITS: dict[str, EditFn] = {
    "crop": crop,
    "paste": paste,
    "rotate": rotate,
    "perspective": perspective,
    "mirror": mirror,
    "colour": colour,
    "gray": gray,
    "blur": blur,
    "jpeg": jpeg,
    "downscale": downscale,
    "text": text,
    "watermark": watermark,
    "sticker": sticker,
    "screenshot": screenshot,
    "collage": collage,
    "combined": combined,
}


def apply_edit(
    kind: str, image: Image.Image, rng: Rng, others: Others = (), **params: Any
) -> Image.Image:
    """Apply edit ``kind`` with strength ``params``; ``others`` feeds paste/collage/combined."""
    try:
        edit = EDITS[kind]
    except KeyError:
        raise ValueError(f"unknown edit kind {kind!r}; expected one of {EDIT_KINDS}") from None
    if kind in _USES_OTHERS:
        params = {"others": others, **params}
    return _rgb(edit(image, rng, **params))


def random_listing_edit(
    image: Image.Image, rng: Rng, others: Others = (), kinds: Sequence[str] = EDIT_KINDS
) -> tuple[Image.Image, str]:
    """One kind drawn uniformly from ``kinds`` and applied: ``(edited, kind)`` for benchmarks."""
    if not kinds:
        raise ValueError("kinds must not be empty")
    kind = str(kinds[int(rng.integers(len(kinds)))])
    return apply_edit(kind, image, rng, others), kind


RESIZE_MODES = ("stretch", "pad")


@dataclass
class AugmentConfig:
    """What a training run tunes: how hard the positive view is, how mild the anchor view is.

    The positive view chains ``min_edits``..``max_edits`` kinds drawn from ``kinds`` with
    relative ``kind_weights`` (missing kinds weigh 1) and per-kind strength overrides
    ``edit_params`` (keyword arguments of the edit functions). The light (anchor) view applies
    a crop keeping ``light_area`` of the pixels, then mild colour jitter and a JPEG round
    trip, each with its probability. Both views end as ``output_size`` squares, stretched or
    padded per ``resize_mode``.
    """

    output_size: int = 160
    kinds: tuple[str, ...] = tuple(k for k in EDIT_KINDS if k != "combined")
    kind_weights: dict[str, float] = field(default_factory=dict)
    edit_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    min_edits: int = 1
    max_edits: int = 3
    p_light_crop: float = 1.0
    light_area: tuple[float, float] = (0.6, 1.0)
    p_light_colour: float = 0.5
    light_colour_strength: float = 0.2
    p_light_jpeg: float = 0.5
    light_jpeg_quality: tuple[int, int] = (60, 95)
    resize_mode: str = "stretch"

    def __post_init__(self) -> None:
        if self.output_size < 1:
            raise ValueError(f"output_size must be positive, got {self.output_size}")
        if not 0 <= self.min_edits <= self.max_edits:
            raise ValueError(
                f"need 0 <= min_edits <= max_edits, got {self.min_edits}, {self.max_edits}"
            )
        unknown = set(self.kinds) | set(self.kind_weights) | set(self.edit_params)
        unknown -= set(EDIT_KINDS)
        if unknown:
            raise ValueError(f"unknown edit kinds {sorted(unknown)}; expected {EDIT_KINDS}")
        if any(weight < 0 for weight in self.kind_weights.values()):
            raise ValueError(f"kind_weights must not be negative, got {self.kind_weights}")
        if "combined" in self.kinds:
            # The positive view is already a chain; nesting one would double-apply edits.
            raise ValueError("'combined' cannot be a training kind; raise max_edits instead")
        if not self.kinds and self.max_edits > 0:
            raise ValueError("kinds must not be empty when max_edits > 0")
        for name in ("p_light_crop", "p_light_colour", "p_light_jpeg"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")


class ListingAugment:
    """Training views of catalogue photos: a heavy listing-like view and a light anchor view.

    ``others`` is a pool of other catalogue photos used as paste backgrounds and collage cells
    (keep it small, e.g. a few dozen decoded images per worker).
    """

    def __init__(self, config: AugmentConfig | None = None, others: Others = ()) -> None:
        self.config = config if config is not None else AugmentConfig()
        self.others = tuple(others)

    def __call__(self, image: Image.Image, rng: Rng) -> Image.Image:
        """The positive view: a chain of listing edits, then the square output resize."""
        config = self.config
        count = _randint(rng, config.min_edits, config.max_edits)
        chain = _sample_chain(rng, config.kinds, count, config.kind_weights)
        edited = _run_chain(_rgb(image), rng, chain, self.others, config.edit_params)
        return self._finish(edited)

    def light_view(self, image: Image.Image, rng: Rng) -> Image.Image:
        """The anchor view: a mild crop, slight colour jitter and a light JPEG, then resize."""
        config = self.config
        view = _rgb(image)
        if rng.random() < config.p_light_crop:
            view = crop(view, rng, area=config.light_area, max_aspect=4 / 3)
        if rng.random() < config.p_light_colour:
            jitter = (1 - config.light_colour_strength, 1 + config.light_colour_strength)
            view = colour(
                view,
                rng,
                brightness=jitter,
                contrast=jitter,
                saturation=jitter,
                p_hue=0.0,
                p_swap=0.0,
                p_invert=0.0,
            )
        view = self._finish(view)
        if rng.random() < config.p_light_jpeg:
            view = jpeg(view, rng, quality=config.light_jpeg_quality)
        return view

    def pair(self, image: Image.Image, rng: Rng) -> tuple[Image.Image, Image.Image]:
        """``(light_view, heavy view)``: one SSCD-style asymmetric training pair."""
        return self.light_view(image, rng), self(image, rng)

    def _finish(self, image: Image.Image) -> Image.Image:
        side = self.config.output_size
        if self.config.resize_mode == "pad":
            return ImageOps.pad(image, (side, side), Image.Resampling.BILINEAR, color=(0, 0, 0))
        return image.resize((side, side), Image.Resampling.BILINEAR)


# Old private names of the helpers above, kept as aliases since logo composites
# (lookalike.data.composites) made them public; behaviour is unchanged.
_font = load_font
_text_size = text_size
_price = price_label
_gradient = gradient_fill
_noise = noise_fill
_shapes = shapes_fill
_perspective_coefficients = perspective_coefficients
