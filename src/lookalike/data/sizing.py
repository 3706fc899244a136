"""Resizing to a longest side: shared by preprocessing, tiles and verification."""

from __future__ import annotations

from PIL import Image


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` scaled down (never up) to ``max_side`` pixels on its longest side."""
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def fit(image: Image.Image, side: int) -> Image.Image:
    """``image`` scaled up or down to ``side`` pixels on its longest side."""
    if max(image.size) == side:
        return image
    if max(image.size) > side:
        return shrink(image, side)
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)
