"""Logos, listing photos and a logo model made in code, shared by the ``test_logo_*`` files.

Everything is deterministic and offline: logos are drawn with PIL (the font bundled with
Pillow, polygons, seeded shape clusters), the logo network has seeded random weights. With
random weights the descriptor ranks logos arbitrarily, so matcher tests verify every logo
(``candidates`` >= catalogue size, ``min_score=-1``) and rely on the geometric check.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

from lookalike.data.augment import load_font
from lookalike.data.composites import PasteConfig
from lookalike.data.manifest import CatalogEntry
from lookalike.logos.catalog import LogoCatalog
from lookalike.logos.matcher import LogoMatchConfig
from lookalike.logos.network import LogoNet, LogoNetConfig, load_logo_model, save_logo_model
from lookalike.logos.windows import WindowGrid
from lookalike.model import Embedder, ModelSpec, create_embedder
from lookalike.model.registry import register_model

Box = tuple[float, float, float, float]  # x0, y0, x1, y1
Quad = tuple[tuple[float, float], ...]

LOGO_NAMES = ("wordmark", "badge", "shapes")
INK = (20, 30, 90, 255)

# Windows whose context crop (x1.5) always holds a logo pasted in the middle of a square
# photo at 40% of its side, whichever window the (random) descriptor prefers.
WHOLE_PHOTO_GRID = WindowGrid(scales=(0.68, 1.0), stride=0.5, max_side=640, colour_from=None)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for a while. The logo network's batches are tiny: a second
    thread gains nothing, and OpenMP's spinning workers, next to any other busy process on a
    small machine, make each forward pass ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def still_paste(**changes: Any) -> PasteConfig:
    """A PasteConfig with every pixel change besides the logo itself switched off (no plate,
    inversion, recolouring, grey, blur, occlusion, transparency or JPEG); ``changes`` set
    any field, e.g. scale or rotation."""
    plain = PasteConfig(
        p_plate=0.0,
        p_invert=0.0,
        p_recolour=0.0,
        p_gray=0.0,
        p_blur=0.0,
        p_occlude=0.0,
        opacity=(1.0, 1.0),
        p_jpeg=0.0,
    )
    return replace(plain, **changes)


# -- the logo model ------------------------------------------------------------------------------


# Tests need a logo network's shape, not its quality: a fixed, small one, so that what the
# seeded random weights happen to find does not change with the shipped model's defaults.
TEST_LOGO_NETWORK = LogoNetConfig(widths=(16, 32, 64, 128))


def write_logo_model(path: Path, seed: int = 0, channels: int = 1) -> Path:
    """A LogoNet with seeded random weights, saved where ``--logo-model`` can find it."""
    torch.manual_seed(seed)
    return save_logo_model(path, LogoNet(replace(TEST_LOGO_NETWORK, channels=channels)))


# A photo descriptor as small as the registry allows, so detectors are cheap to build: the
# CLI rebuilds it by name from the index's recipe, in this process.
TINY_MODEL = "logo-tests-tiny"


def tiny_embedder() -> Embedder:
    register_model(
        ModelSpec(TINY_MODEL, "resnet18", dim=32, input_size=64, description="tests only"),
        replace=True,
    )
    return create_embedder(TINY_MODEL, precision="fp32")


# -- logos ---------------------------------------------------------------------------------------


def _cropped(image: Image.Image) -> Image.Image:
    """Cropped to its visible pixels, as ``render_logo`` does with a catalogue file."""
    box = image.getchannel("A").getbbox()
    assert box is not None
    return image.crop(box)


def wordmark_logo() -> Image.Image:
    """A word in the bundled truetype font, underlined, on transparency."""
    image = Image.new("RGBA", (420, 170), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.text((14, 8), "KVORAX", font=load_font(96), fill=INK)
    draw.rectangle((14, 132, 330, 146), fill=INK)
    draw.polygon([(350, 120), (404, 120), (377, 160)], fill=INK)
    return _cropped(image)


def badge_logo() -> Image.Image:
    """A star in a ring with a short word: corners and curves at several scales."""
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, 294, 294), outline=INK, width=16)
    star = []
    for k in range(10):
        radius = 104 if k % 2 == 0 else 44
        angle = np.pi / 2 + k * np.pi / 5
        star.append((150 + radius * np.cos(angle), 128 - radius * np.sin(angle)))
    draw.polygon(star, fill=INK)
    draw.text((96, 216), "ZEP", font=load_font(46), fill=INK)
    return _cropped(image)


def shapes_logo(seed: int = 3) -> Image.Image:
    """A seeded cluster of triangles, squares and discs inside a frame."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (320, 240), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, 315, 235), outline=INK, width=10)
    for _ in range(16):
        x, y = rng.uniform(30, 290), rng.uniform(30, 210)
        r = rng.uniform(8, 22)
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=INK)
        elif kind == 1:
            draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=INK)
        else:
            draw.polygon([(x - r, y + r), (x + r, y + r), (x, y - r)], fill=INK)
    return _cropped(image)


def draw_logos() -> dict[str, Image.Image]:
    """Three distinct, keypoint-rich RGBA logos on transparency, keyed by item id."""
    return {"wordmark": wordmark_logo(), "badge": badge_logo(), "shapes": shapes_logo()}


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


SVG_LOGO = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 120" width="200" height="120">
  <rect x="10" y="10" width="180" height="100" fill="none" stroke="#1a237e" stroke-width="8"/>
  <polygon points="40,90 70,30 100,90" fill="#1a237e"/>
  <circle cx="140" cy="60" r="26" fill="#c62828"/>
  <rect x="128" y="48" width="24" height="24" fill="#ffffff"/>
</svg>
"""


def write_logo_files(folder: Path, logos: dict[str, Image.Image] | None = None) -> list[Path]:
    """Each logo as ``folder/<item id>.png`` (RGBA with transparency)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, logo in (logos or draw_logos()).items():
        path = folder / f"{name}.png"
        logo.save(path)
        paths.append(path)
    return paths


def logo_entries(paths: list[Path], brand: str = "acme") -> list[CatalogEntry]:
    return [CatalogEntry(image=p, item_id=p.stem, brand=brand, kind="logo") for p in paths]


def build_catalog(model_path: Path, folder: Path) -> LogoCatalog:
    """A logo catalogue of :func:`draw_logos`, made with the model saved at ``model_path``."""
    catalog = LogoCatalog(load_logo_model(model_path), model_ref=str(model_path))
    report = catalog.add(logo_entries(write_logo_files(folder)))
    assert sorted(report.added) == sorted(LOGO_NAMES), report
    return catalog


def verify_all(
    count: int = len(LOGO_NAMES), grid: WindowGrid = WHOLE_PHOTO_GRID
) -> LogoMatchConfig:
    """Every logo gets verified, whatever the (random) descriptor thinks of it."""
    return LogoMatchConfig(grid=grid, window_k=count, candidates=count, top_k=count, min_score=-1.0)


# -- listing photos ------------------------------------------------------------------------------


def background(size: tuple[int, int], kind: str = "plain", seed: int = 0) -> Image.Image:
    """A plain light card, a dark card, or light grain (no keypoints of its own to speak of)."""
    if kind == "plain":
        return Image.new("RGB", size, (236, 232, 225))
    if kind == "dark":
        return Image.new("RGB", size, (28, 30, 34))
    rng = np.random.default_rng(seed)
    grain = rng.normal(215, 6, (size[1], size[0], 1)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grain, 3, axis=2), "RGB")


def paste_logo(
    logo: Image.Image,
    size: tuple[int, int] = (320, 320),
    *,
    fraction: float = 0.4,
    centre: tuple[float, float] | None = None,
    kind: str = "plain",
    invert: bool = False,
) -> tuple[Image.Image, Box]:
    """``logo`` pasted with its longest side ``fraction`` of the photo's shorter side; returns
    the photo and the pasted box (the logo's visible extent) in photo pixels. ``invert``: a
    light logo on a dark background."""
    photo = background(size, "dark" if invert else kind)
    side = round(fraction * min(size))
    scale = side / max(logo.size)
    shown = logo.resize(
        (round(logo.width * scale), round(logo.height * scale)), Image.Resampling.LANCZOS
    )
    if invert:
        alpha = shown.getchannel("A")
        shown = Image.new("RGBA", shown.size, (245, 245, 240, 255))
        shown.putalpha(alpha)
    cx, cy = centre or (size[0] / 2, size[1] / 2)
    x0, y0 = round(cx - shown.width / 2), round(cy - shown.height / 2)
    photo.paste(shown, (x0, y0), shown)
    return photo, (float(x0), float(y0), float(x0 + shown.width), float(y0 + shown.height))


def box_corners(box: Box) -> Quad:
    x0, y0, x1, y1 = box
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def corner_error(region: Quad, box: Box) -> float:
    """Largest distance between the region's corners and the box's (TL, TR, BR, BL)."""
    found = np.asarray(region, np.float64)
    expected = np.asarray(box_corners(box), np.float64)
    assert found.shape == (4, 2), found
    return float(np.linalg.norm(found - expected, axis=1).max())


def inverted(image: Image.Image) -> Image.Image:
    return ImageOps.invert(image.convert("RGB"))
