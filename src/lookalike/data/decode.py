"""The one safe decoder for every way an image arrives: path, raw bytes or PIL image.

Every image leaves here fully loaded as 8-bit RGB, with EXIF orientation applied and any
transparency flattened onto white. Anything that cannot be decoded safely (empty, truncated,
not an image, an unsupported format, too many bytes or pixels) raises `ImageDecodeError`.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ImageDecodeError",
    "ImageSource",
    "decode_image",
    "read_image_bytes",
]

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image

# Raster formats met in catalogues and listings. Everything else PIL can open stays off: EPS
# would run Ghostscript, and the rarer plugins are a larger attack surface for no benefit.
_WANTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "ICO", "AVIF")
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})  # MPO: multi-picture JPEG written by many cameras

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
# Modes whose `transparency` info (a PNG tRNS colour) PIL can turn into an alpha channel.
_KEYED_TRANSPARENCY_MODES = frozenset({"1", "L", "RGB"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

# What PIL's plugins raise on corrupt input; every one means "this file cannot be decoded".
_PIL_DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
)


class ImageDecodeError(ValueError):
    """An image that cannot be read or decoded; `source` says which, `reason` says why."""

    def __init__(self, source: str, reason: str) -> None:
        # Both go to the base class so the error pickles (process pools) with its fields intact.
        super().__init__(source, reason)
        self.source = source
        self.reason = reason

    def __str__(self) -> str:
        shown = self.source if self.source.startswith("<") else repr(self.source)
        return f"cannot decode image {shown}: {self.reason}"


def read_image_bytes(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a whole image file, refusing missing, non-regular, empty and oversized files."""
    source = os.fspath(path)
    info = _stat(source)
    if stat.S_ISDIR(info.st_mode):
        raise ImageDecodeError(source, "is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device could block forever or never end.
        raise ImageDecodeError(source, "not a regular file")
    _check_byte_count(source, info.st_size, max_bytes)
    try:
        with open(source, "rb") as file:
            # Read one byte past the limit: the file may have grown since the stat.
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise ImageDecodeError(source, _os_reason(exc)) from exc
    _check_byte_count(source, len(data), max_bytes)
    return data


def decode_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode `source` into a new, fully loaded 8-bit RGB image.

    `draft_size` lets a JPEG decode at a reduced scale that is still at least that many
    pixels on each side; other formats ignore it, as do PIL-image inputs (already decoded).
    PIL's global `Image.MAX_IMAGE_PIXELS` still caps `max_pixels`: its decompression-bomb
    warning is raised as an error here.
    """
    if draft_size is not None and draft_size <= 0:
        raise ValueError(f"draft_size must be positive, got {draft_size}")
    if isinstance(source, Image.Image):
        return _normalise_pil(source, max_pixels)
    if isinstance(source, bytes | bytearray | memoryview):
        _check_byte_count("<bytes>", memoryview(source).nbytes, max_bytes)
        return _decode_bytes(bytes(source), "<bytes>", max_pixels, draft_size)
    data = read_image_bytes(source, max_bytes=max_bytes)
    return _decode_bytes(data, os.fspath(source), max_pixels, draft_size)


def _stat(source: str) -> os.stat_result:
    try:
        return os.stat(source)
    except OSError as exc:
        raise ImageDecodeError(source, _os_reason(exc)) from exc


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    return f"cannot read file: {exc.strerror or exc}"


def _check_byte_count(source: str, size: int, max_bytes: int) -> None:
    if size == 0:
        what = "data" if source == "<bytes>" else "file"
        raise ImageDecodeError(source, f"{what} is empty (0 bytes)")
    if size > max_bytes:
        raise ImageDecodeError(source, f"too large ({size:,} bytes; the limit is {max_bytes:,})")


def _check_pixel_count(source: str, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageDecodeError(
            source,
            f"too many pixels ({width}x{height} = {width * height:,}; the limit is {max_pixels:,})",
        )


@functools.cache
def _allowed_formats() -> tuple[str, ...]:
    # Registering every plugin first lets the filter keep exactly what this Pillow build opens
    # (AVIF, for one, only exists in newer Pillows).
    Image.init()
    return tuple(name for name in _WANTED_FORMATS if name in Image.OPEN)


@contextmanager
def _pil_errors(source: str) -> Iterator[None]:
    """Turn everything PIL raises on bad input into `ImageDecodeError`."""
    with warnings.catch_warnings():
        # Locally only: the global MAX_IMAGE_PIXELS and warning filters stay untouched.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # PIL's UserWarnings are metadata notices ("Corrupt EXIF data"): noise for each bad
        # upload, while the pixels still decode.
        warnings.simplefilter("ignore", UserWarning)
        try:
            yield
        except ImageDecodeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageDecodeError(source, f"too many pixels: {exc}") from exc
        except UnidentifiedImageError as exc:
            reason = "not a supported image (unrecognised or unsupported format)"
            raise ImageDecodeError(source, reason) from exc
        except _PIL_DECODE_ERRORS as exc:
            reason = f"corrupt or truncated image data ({type(exc).__name__}: {exc})"
            raise ImageDecodeError(source, reason) from exc


FULL_SIZE_KEY = "lookalike_full_size"


def full_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the photo ``image`` was decoded from: larger than ``image.size``
    when :func:`decode_image` decoded a JPEG at reduced scale (``draft_size``)."""
    recorded = image.info.get(FULL_SIZE_KEY)
    # PIL copies .info into crops and resizes: trust it only for the image as decoded
    if recorded and tuple(recorded[2:]) == image.size:
        return (int(recorded[0]), int(recorded[1]))
    return image.size


def _decode_bytes(data: bytes, source: str, max_pixels: int, draft_size: int | None) -> Image.Image:
    with _pil_errors(source), Image.open(io.BytesIO(data), formats=_allowed_formats()) as image:
        # Only the header has been read so far: refuse bombs before allocating pixels.
        _check_pixel_count(source, image.size, max_pixels)
        full_size = image.size
        if draft_size is not None and image.format in _JPEG_FORMATS:
            image.draft("RGB", (draft_size, draft_size))
        # A freshly opened animation sits on its first frame: loading decodes just that.
        image.load()
        drafted = image.size
        upright = _to_rgb(_apply_exif_orientation(image))
        if upright.size != drafted:  # EXIF turned it a quarter turn
            full_size = (full_size[1], full_size[0])
        # The photo's real size, for coordinates (a JPEG draft decodes at 1/2, 1/4 or 1/8).
        upright.info[FULL_SIZE_KEY] = (*full_size, *upright.size)
        return upright


def _normalise_pil(image: Image.Image, max_pixels: int) -> Image.Image:
    source = "<PIL image>"
    _check_pixel_count(source, image.size, max_pixels)
    with _pil_errors(source):
        # A lazily opened caller image may still be truncated; loading surfaces that here.
        # The current frame is kept: seeking would change the caller's image.
        image.load()
        return _to_rgb(_apply_exif_orientation(image))


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Return a new image turned upright; never the input object itself."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # EXIF is optional metadata and broken EXIF is common; the pixels are still good.
        return image.copy()


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _HIGH_DEPTH_MODES:
        image = _to_8bit_gray(image)
    if _has_transparency(image):
        return _flatten_on_white(image)
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _has_transparency(image: Image.Image) -> bool:
    # Palettes always go through RGBA: their alpha may live in the palette itself.
    return (
        image.mode in _ALPHA_MODES
        or image.mode == "P"
        or (image.mode in _KEYED_TRANSPARENCY_MODES and "transparency" in image.info)
    )


def _flatten_on_white(image: Image.Image) -> Image.Image:
    if image.mode == "La":
        image = image.convert("LA")  # PIL has no direct La -> RGBA conversion
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer or float grayscale image to 8 bits by its bit depth."""
    pixels = np.asarray(image).astype(np.float32)
    pixels[~np.isfinite(pixels)] = 0.0
    full_scale = _full_scale(image.mode, float(pixels.max()))
    np.clip(pixels, 0.0, full_scale, out=pixels)
    pixels *= 255.0 / full_scale
    np.rint(pixels, out=pixels)
    return Image.fromarray(pixels.astype(np.uint8))


def _full_scale(mode: str, peak: float) -> float:
    """The value that maps to white: the maximum of the image's real bit depth."""
    if mode.startswith("I;16"):
        return 65535.0
    # 'I' and 'F' do not record a bit depth; infer it from the smallest one holding the data.
    if mode == "F" and peak <= 1.0:
        return 1.0  # float images conventionally hold 0..1
    for depth_max in (255.0, 65535.0):
        if peak <= depth_max:
            return depth_max
    return peak  # deeper than 16 bits: no common depth, so stretch to the data's maximum
