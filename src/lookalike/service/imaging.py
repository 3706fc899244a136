"""Uploaded bytes -> the detector's prepared input, through the project's one safe decoder."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import torch
from PIL import Image

from ..data.preprocess import PreparedImage, Preprocessor

_EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the picture 90 degrees


@dataclass(frozen=True)
class DecodedImage:
    """``prepared``: what the detector checks (model input; with logo search, a kept copy of
    the photo and its windows); ``size``: the upright full-size (w, h), which is what the
    client sees and what regions are measured in."""

    prepared: PreparedImage
    size: tuple[int, int]
    format: str | None

    @property
    def pixels(self) -> torch.Tensor:
        """uint8 (3, S, S) model input."""
        return torch.from_numpy(self.prepared.pixels)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int

    def apply(self, preprocessor: Preprocessor) -> Preprocessor:
        """``preprocessor`` refusing uploads over these limits."""
        return replace(preprocessor, max_pixels=self.max_pixels, max_bytes=self.max_bytes)


def decode_for_model(data: bytes, preprocessor: Preprocessor) -> DecodedImage:
    """Raises ImageDecodeError (mapped to 413/415/422) for anything that is not a safe image
    (``preprocessor`` carries the service's limits: :meth:`ImageLimits.apply`)."""
    # JPEGs decode at reduced scale (draft) near the sizes needed: several times cheaper.
    prepared = preprocessor(data)
    decoded_size = prepared.source_size or (prepared.pixels.shape[2], prepared.pixels.shape[1])
    size, image_format = _upright_size(data, decoded_size)
    return DecodedImage(prepared, size, image_format)


def _upright_size(data: bytes, fallback: tuple[int, int]) -> tuple[tuple[int, int], str | None]:
    """The full size as displayed (EXIF rotation applied), read from the header only; the
    decoded image may be a draft at a fraction of it."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            orientation = header.getexif().get(_EXIF_ORIENTATION)
            image_format = header.format
    except Exception:  # the decoder already accepted these bytes; the size is a nicety
        return fallback, None
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    return (width, height), image_format
