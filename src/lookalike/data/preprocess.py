"""From a decoded photo to model input: the one resize every path shares.

Kept free of torch and FAISS so that decoding worker processes (``lookalike score``, Ray
tasks) start fast and small; the embedder turns these uint8 arrays into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..logos.windows import WindowGrid, Windows, cut_windows
from .decode import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    ImageSource,
    decode_image,
    full_size,
)
from .sizing import shrink
from .sources import ImageInput
from .tiles import TileConfig

__all__ = ["PreparedImage", "Preprocessor", "model_input", "shrink"]


def model_input(image: Image.Image, side: int) -> np.ndarray:
    """A decoded RGB image -> uint8 array (3, side, side): the whole image, resized, no crop."""
    size = (side, side)
    if image.size != size:
        # reducing_gap: PIL first shrinks by an integer factor (cheap), then filters.
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


@dataclass(frozen=True)
class PreparedImage:
    """A decoded listing photo ready for checking: model input (uint8, (3, S, S)); when
    local verification or logo search is on, a small copy of the photo for keypoints; when
    logo search is on, its grey windows (cut here, in the decoding worker); with query tiles,
    each tile as model input (uint8, (T, 3, S, S))."""

    pixels: np.ndarray
    image: Image.Image | None = None
    windows: Windows | None = None
    source_size: tuple[int, int] | None = None  # (width, height) of the photo at full size
    tiles: np.ndarray | None = None


@dataclass(frozen=True)
class Preprocessor:
    """Decode (safely) and prepare one photo. Picklable, so worker processes can run it.

    ``keep_side``: also keep the photo scaled to this longest side (for local verification);
    ``logo_grid`` / ``logo_input_size`` / ``logo_channels``: also cut the windows logo search
    embeds;
    ``tiles``: also cut the query tiles (see :mod:`.tiles`).
    """

    input_size: int
    keep_side: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    logo_grid: WindowGrid | None = None
    logo_input_size: int = 48
    logo_channels: int = 1
    tiles: TileConfig | None = None

    def __call__(self, source: ImageSource | ImageInput) -> PreparedImage:
        """Raises ImageDecodeError (naming the input) when it cannot be decoded."""
        if isinstance(source, ImageInput):
            if source.error is not None:
                raise ImageDecodeError(source.key, source.error)
            try:
                return self._prepare(source.source)
            except ImageDecodeError as exc:
                raise ImageDecodeError(source.key, exc.reason) from None
        return self._prepare(source)

    def _prepare(self, source: ImageSource) -> PreparedImage:
        draft = max(self.input_size, self.keep_side or 0)
        if self.tiles is not None:
            draft = max(draft, 2 * self.input_size)  # a half-photo tile keeps its detail
        image = decode_image(
            source, max_pixels=self.max_pixels, max_bytes=self.max_bytes, draft_size=draft
        )
        kept = shrink(image, self.keep_side) if self.keep_side else None
        windows = None
        if self.logo_grid is not None:
            windows = cut_windows(
                kept or image, self.logo_grid, self.logo_input_size, self.logo_channels
            )
        tiles = None
        if self.tiles is not None:
            tiles = np.stack(
                [model_input(tile, self.input_size) for tile in self.tiles.images(image)]
            )
        size = full_size(image)
        return PreparedImage(model_input(image, self.input_size), kept, windows, size, tiles)
