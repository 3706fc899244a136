"""Clean brand logos: render any catalogue logo file to one canonical RGBA picture.

Logo matching compares listing photos against a catalogue of protected logos that arrive in
several shapes: SVGs (simple-icons), palette PNGs with transparency (car logos), and opaque
PNG/JPEG renders on a plain white or black card. :func:`render_logo` turns each of them into
the same thing, the logo alone on a transparent background, cropped to its visible pixels and
scaled to a fixed longest side, so that composites, training and indexing never need to know
where a logo came from.

The module also holds the small catalogue plumbing shared by training and benchmarks: the
shared-data logo list (:func:`shared_logo_specs`), brand-name normalisation for brand-level
scoring, and a deterministic hash split that keeps benchmark logos and backgrounds out of
training.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import numpy as np
from PIL import Image

# decode.py's private helpers are reused on purpose: logo files must pass exactly the same
# format allow-list, byte and pixel limits as every other image, only the alpha is kept here.
from lookalike.data.decode import (
    _HIGH_DEPTH_MODES,
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    _allowed_formats,
    _apply_exif_orientation,
    _check_pixel_count,
    _has_transparency,
    _pil_errors,
    _to_8bit_gray,
    read_image_bytes,
)

__all__ = [
    "LogoRenderError",
    "LogoSource",
    "LogoSpec",
    "logo_on_background",
    "normalise_brand",
    "render_logo",
    "shared_logo_specs",
    "split_by_item",
]

T = TypeVar("T")
LogoSource = str | os.PathLike[str] | bytes
Colour = tuple[int, int, int]

# Alpha at or below this counts as background when cropping to the visible extent: a faint
# halo (JPEG ringing, soft shadows) must not stretch the box the quad is measured on.
_VISIBLE_ALPHA = 8
# Colour distance (largest channel difference) to the estimated background below which a
# pixel is background: absorbs JPEG noise and near-white paper tints.
_BACKGROUND_TOLERANCE = 10.0
# A border agreeing on one colour for less than this share is not a plain card: the picture
# itself is the logo (a badge photographed edge to edge) and is kept fully opaque.
_MIN_BORDER_AGREEMENT = 0.5
# SVGs are rasterised at this multiple of the target size before cropping, so that thin
# strokes survive the final downscale and the crop box is sub-pixel accurate.
_SVG_OVERSAMPLE = 2
_SVG_MAX_SIDE = 4096


class LogoRenderError(ImageDecodeError):
    """A logo file that cannot be rendered; ``source`` says which, ``reason`` says why.
    An ImageDecodeError, so whoever handles unreadable images handles these too."""

    def __str__(self) -> str:
        shown = self.source if self.source.startswith("<") else repr(self.source)
        return f"cannot render logo {shown}: {self.reason}"


# ------------------------------------------------------------------------------ rendering


def render_logo(source: LogoSource, size: int = 256) -> Image.Image:
    """The logo in ``source`` as RGBA on transparency, cropped, longest side ``size`` pixels.

    Rasters with real transparency keep their alpha. Opaque rasters (a logo on a white or
    black card) get a soft alpha from each pixel's colour distance to the background, which
    is estimated from the border; a picture whose border has no dominant colour is the logo
    edge to edge and stays opaque. SVGs (suffix ``.svg``, or bytes starting with ``<?xml`` or
    ``<svg``) are rasterised with cairosvg, without fetching any external resource.

    Raises:
        LogoRenderError: for anything that cannot be read, decoded or rendered, or that has
            no visible pixel; never another exception type for bad input.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    name, data = _read(source)
    if _is_svg(source, data):
        rgba = _render_svg(data, name, size)
    else:
        rgba = _with_alpha(_decode_rgba(data, name))
    return _crop_and_scale(rgba, size, name)


def logo_on_background(logo_rgba: Image.Image, background: Colour = (255, 255, 255)) -> Image.Image:
    """The logo flattened onto a solid ``background`` colour, as RGB (thumbnails, ORB)."""
    rgba = logo_rgba.convert("RGBA")
    card = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(card, rgba).convert("RGB")


def _read(source: LogoSource) -> tuple[str, bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise LogoRenderError("<bytes>", "data is empty (0 bytes)")
        return "<bytes>", data
    name = os.fspath(source)
    try:
        return name, read_image_bytes(name)
    except ImageDecodeError as error:
        raise LogoRenderError(name, error.reason) from error


def _is_svg(source: LogoSource, data: bytes) -> bool:
    if isinstance(source, str | os.PathLike) and os.fspath(source).lower().endswith(".svg"):
        return True
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype svg"))


def _decode_rgba(data: bytes, name: str) -> Image.Image:
    """Decode a raster with decode.py's limits and allow-list, keeping any transparency."""
    try:
        with (
            _pil_errors(name),
            Image.open(io.BytesIO(data), formats=_allowed_formats()) as image,
        ):
            _check_pixel_count(name, image.size, DEFAULT_MAX_PIXELS)
            image.load()
            upright = _apply_exif_orientation(image)
            if upright.mode in _HIGH_DEPTH_MODES:
                upright = _to_8bit_gray(upright)
            if upright.mode == "La":
                upright = upright.convert("LA")  # PIL has no direct La -> RGBA conversion
            if _has_transparency(upright):
                return upright.convert("RGBA")
            return upright.convert("RGB").convert("RGBA")
    except ImageDecodeError as error:
        raise LogoRenderError(name, error.reason) from error


def _with_alpha(rgba: Image.Image) -> Image.Image:
    """Keep a real alpha channel; derive one from the background colour otherwise."""
    pixels = np.asarray(rgba)
    if int(pixels[..., 3].min()) < 255:
        return rgba
    colours = pixels[..., :3].astype(np.float32)
    background = _border_background(colours)
    if background is None:
        return rgba  # no plain card around it: the whole picture is the logo
    return Image.fromarray(_unmix(colours, background), "RGBA")


def _border_background(colours: np.ndarray) -> np.ndarray | None:
    """The colour most of the 2-pixel border agrees on, or None when there is no such colour.

    The dominant colour is found on a coarse grid (32 levels a channel) rather than by a
    median, which lands between two colours when a logo touches half the border.
    """
    ring = 2 if min(colours.shape[:2]) > 4 else 1
    border = np.concatenate(
        [
            colours[:ring].reshape(-1, 3),
            colours[-ring:].reshape(-1, 3),
            colours[:, :ring].reshape(-1, 3),
            colours[:, -ring:].reshape(-1, 3),
        ]
    )
    bins = (border // 32).astype(np.int64)
    keys = bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2]
    dominant = np.bincount(keys).argmax()
    background = np.median(border[keys == dominant], axis=0)
    distance = np.abs(border - background).max(axis=1)
    if float((distance <= 3 * _BACKGROUND_TOLERANCE).mean()) < _MIN_BORDER_AGREEMENT:
        return None
    return np.asarray(background, dtype=np.float32)


def _unmix(colours: np.ndarray, background: np.ndarray) -> np.ndarray:
    """RGBA whose alpha ramps with the distance to ``background``, colours un-blended.

    Anti-aliased edges are a blend of logo and card; dividing the card's share back out
    keeps a dark fringe from turning into a light halo when the logo lands on a dark photo.
    The ramp ends at half the typical logo distance so solid logo areas are fully opaque.
    """
    distance = np.abs(colours - background).max(axis=2)
    foreground = distance[distance > _BACKGROUND_TOLERANCE]
    typical = float(np.percentile(foreground, 95)) if foreground.size else 255.0
    full = max(_BACKGROUND_TOLERANCE + 16.0, min(96.0, 0.5 * typical))
    alpha = np.clip((distance - _BACKGROUND_TOLERANCE) / (full - _BACKGROUND_TOLERANCE), 0, 1)
    share = alpha[..., None]
    unmixed = (colours - (1.0 - share) * background) / np.maximum(share, 1e-3)
    rgb = np.where(share > 0, np.clip(unmixed, 0, 255), colours)
    out = np.concatenate([rgb, alpha[..., None] * 255.0], axis=2)
    return np.rint(out).astype(np.uint8)


def _render_svg(data: bytes, name: str, size: int) -> Image.Image:
    """Rasterise an SVG to RGBA at about ``size`` pixels for its visible content."""
    try:
        import cairosvg
    except (ImportError, OSError) as error:  # OSError: cairocffi finds no libcairo
        raise LogoRenderError(name, f"SVG needs cairosvg and libcairo ({error})") from error
    side = min(_SVG_MAX_SIDE, _SVG_OVERSAMPLE * size)
    image = _svg_to_rgba(cairosvg, data, name, side)
    box = _visible_box(image)
    if box is not None:
        # Content far smaller than the viewBox (a mark in a big blank page): render again at
        # a scale that gives the visible part the resolution the first pass assumed.
        extent = max(box[2] - box[0], box[3] - box[1])
        if extent < size and side < _SVG_MAX_SIDE:
            side = min(_SVG_MAX_SIDE, int(side * _SVG_OVERSAMPLE * size / max(extent, 1)))
            image = _svg_to_rgba(cairosvg, data, name, side)
    return image


def _svg_to_rgba(cairosvg: ModuleType, data: bytes, name: str, side: int) -> Image.Image:
    try:
        # Width and height both given: cairosvg fits the drawing inside the square keeping
        # its aspect, transparent around it. unsafe=False (the default) forbids XML entities
        # and external files.
        png = cairosvg.svg2png(bytestring=data, output_width=side, output_height=side, unsafe=False)
        with Image.open(io.BytesIO(png)) as rendered:
            return rendered.convert("RGBA")
    except Exception as error:
        # cairosvg raises whatever its XML, CSS and path parsers raise on a malformed file.
        reason = f"SVG rendering failed ({type(error).__name__}: {error})"
        raise LogoRenderError(name, reason) from error


def _visible_box(rgba: Image.Image) -> tuple[int, int, int, int] | None:
    alpha = rgba.getchannel("A").point(lambda a: 255 if a > _VISIBLE_ALPHA else 0)
    return alpha.getbbox()


def _crop_and_scale(rgba: Image.Image, size: int, name: str) -> Image.Image:
    box = _visible_box(rgba)
    if box is None:
        raise LogoRenderError(name, "no visible pixels (fully transparent or a blank card)")
    cropped = rgba.crop(box)
    scale = size / max(cropped.size)
    target = (max(1, round(cropped.width * scale)), max(1, round(cropped.height * scale)))
    if target == cropped.size:
        return cropped
    # PIL premultiplies alpha when resizing RGBA, so transparent pixels' colours never bleed.
    return cropped.resize(target, Image.Resampling.LANCZOS)


# ------------------------------------------------------------------------------ catalogue


@dataclass(frozen=True)
class LogoSpec:
    """One catalogue logo: a stable id (``<dataset>/<slug>``), its brand and its file."""

    item_id: str
    brand: str
    path: Path


def shared_logo_specs(shared_data: Path) -> list[LogoSpec]:
    """Every logo of the shared simple-icons and car-logos sets, sorted by item_id.

    simple-icons contributes its SVGs (the clean vector masters, not the PNG renders); car
    logos their PNGs. 19 car logos have no name upstream: their slug stands in as the brand.
    """
    root = Path(shared_data)
    specs = [
        LogoSpec(f"simple_icons/{row['slug']}", row["title"], root / "simple_icons" / row["svg"])
        for row in _csv_rows(root / "simple_icons" / "labels.csv")
    ]
    specs.extend(
        LogoSpec(
            f"car_logos/{row['slug']}",
            row["name"] or row["slug"],
            root / "car_logos" / row["image"],
        )
        for row in _csv_rows(root / "car_logos" / "labels.csv")
    )
    return sorted(specs, key=lambda spec: spec.item_id)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def normalise_brand(name: str) -> str:
    """The brand name casefolded, accents dropped, letters and digits only.

    Brand-level scoring compares these, so that 'Alfa Romeo', 'alfa-romeo' and 'ALFA ROMEO'
    from different catalogues count as one brand, as do 'Citroën' and 'Citroen'.
    """
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def split_by_item(
    items: Sequence[T], key: Callable[[T], str], held_out_fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """Split ``items`` into ``(train, held_out)`` by a hash of ``key(item)`` and ``seed``.

    SHA-256 rather than ``hash()``, which is salted per process: the split must be identical
    in every run and every worker, or benchmark logos would leak into training. An item's
    side depends only on its key, so adding items never moves existing ones, equal keys stay
    together, and a larger fraction holds out a superset of a smaller one (same seed).
    Input order is kept within each part.
    """
    if not 0.0 <= held_out_fraction <= 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1], got {held_out_fraction}")
    train: list[T] = []
    held_out: list[T] = []
    for item in items:
        digest = hashlib.sha256(f"{seed}\x00{key(item)}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2.0**64
        (held_out if position < held_out_fraction else train).append(item)
    return train, held_out
