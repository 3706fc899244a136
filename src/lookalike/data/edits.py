"""Listing-style edits of a catalogue photo (the ways sellers reuse official pictures)."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageOps

Edit = Callable[[Image.Image], Image.Image]


def resize(image: Image.Image, scale: float = 0.6) -> Image.Image:
    width, height = image.size
    return image.resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BICUBIC
    )


def center_crop(image: Image.Image, keep: float = 0.8) -> Image.Image:
    width, height = image.size
    new_w, new_h = round(width * keep), round(height * keep)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return image.crop((left, top, left + new_w, top + new_h))


def jpeg(image: Image.Image, quality: int = 30) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def mirror(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def caption(image: Image.Image, text: str = "SALE -70% $19.99") -> Image.Image:
    edited = image.convert("RGB").copy()
    draw = ImageDraw.Draw(edited)
    width, height = edited.size
    band = max(12, height // 8)
    draw.rectangle((0, height - band, width, height), fill=(255, 255, 255))
    draw.text((4, height - band + 2), text, fill=(200, 0, 0))
    return edited


EDITS: dict[str, Edit] = {
    "resize": resize,
    "crop": center_crop,
    "jpeg": jpeg,
    "mirror": mirror,
    "caption": caption,
}
