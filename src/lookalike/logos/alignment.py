"""Outline alignment: does a candidate logo's shape line up with the photo where it was found?

Keypoint verification (SIFT, ratio test, RANSAC) fails on most flat glyphs: a clover, three
bars, one bold letter have few corners, and those look alike, so the ratio test drops them.
Here the clean logo is aligned with the area around its best window as one picture instead:

1. normalised cross-correlation of the logo at a few sizes and rotations, in both polarities
   (a white print on a dark bag), over the window's surroundings gives a starting pose;
2. ECC (Evangelidis & Psarakis, PAMI 2008) refines it to a homography (perspective);
3. the agreement is the correlation of the aligned logo with the photo in a band around the
   logo's edges. Correlation ignores gain and offset, so recoloured prints still agree;
   background far from the edges, which says nothing about the logo, is left out.

Agreement is in [0, 1]. On the logo calibration set, 90% of the wrong shortlisted logos
agree below 0.75 and half of the right ones above 0.9; a wrong logo with a simple outer
shape (a round badge) can still align with any disc in the photo (see docs/benchmarks.md).
OpenCV is imported inside the functions so that ``import lookalike`` stays light.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..verify import masked_correlation
from .geometry import Quad, box_corners, plausible_view, project
from .windows import grey

Grey = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AlignmentConfig:
    """``window_px``: the candidate window is resampled to this side (the work is cut to that
    resolution); ``context``: the searched area is the window grown by this factor;
    ``sizes``: the logo's longest side as fractions of the window side, tried as starts;
    ``rotations``: degrees tried as starts; ``iterations``: ECC's limit;
    ``max_side``: the photo is shrunk to this longest side first (as for its windows)."""

    window_px: int = 64
    context: float = 1.6
    sizes: tuple[float, ...] = (0.5, 0.7, 0.9)
    rotations: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0)
    iterations: int = 40
    max_side: int = 640

    def __post_init__(self) -> None:
        if self.window_px < 16:
            raise ValueError(f"window_px must be >= 16, got {self.window_px}")
        if self.context < 1.0:
            raise ValueError(f"context must be >= 1, got {self.context}")
        if not self.sizes or min(self.sizes) <= 0 or max(self.sizes) >= self.context:
            raise ValueError(f"sizes must be in (0, context), got {self.sizes}")
        if not self.rotations or self.iterations < 1:
            raise ValueError("rotations must not be empty and iterations must be >= 1")


@dataclass(frozen=True)
class Alignment:
    """``agreement``: correlation of the aligned logo with the photo near the logo's edges,
    0 (none, or no plausible pose) to 1; ``quad``: the logo's rendering corners (TL, TR, BR,
    BL) in photo pixels, None when no plausible pose was found."""

    agreement: float
    quad: Quad | None

    @classmethod
    def none(cls) -> Alignment:
        return cls(0.0, None)


@dataclass(frozen=True)
class LogoTemplates:
    """A logo's grey rendering at each start size (dark-on-light as rendered, with a light
    margin so that its outline has background around it), and how the rendering maps in."""

    rendering_size: tuple[int, int]
    templates: tuple[Grey, ...]  # one per AlignmentConfig.sizes
    scales: tuple[float, ...]  # template pixels per rendering pixel
    margins: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.templates)


@dataclass(frozen=True)
class PhotoGrey:
    """A photo's grey levels, shrunk to ``AlignmentConfig.max_side``: computed once per photo
    and shared by all its candidates. ``scale``: shrunk pixels per photo pixel."""

    pixels: Grey
    scale: float

    @classmethod
    def of(cls, image: Image.Image, max_side: int) -> PhotoGrey:
        flat = grey(image)
        scale = min(1.0, max_side / max(1, max(flat.size)))
        if scale < 1.0:
            size = (max(1, round(flat.width * scale)), max(1, round(flat.height * scale)))
            flat = flat.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            scale = flat.width / max(1, image.width)
        return cls(np.asarray(flat, dtype=np.float32), scale)


def logo_templates(rendering: Image.Image, config: AlignmentConfig) -> LogoTemplates:
    """The logo's templates for each start size of ``config``."""
    import cv2

    flat = np.asarray(grey(rendering), dtype=np.float32)
    height, width = flat.shape
    templates, scales, margins = [], [], []
    for size in config.sizes:
        side = max(8, round(config.window_px * size))
        scale = side / max(1, width, height)
        resized = cv2.resize(
            flat,
            (max(4, round(width * scale)), max(4, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        margin = max(3, side // 10)
        # renderings are flattened on white: the margin continues that background
        framed = cv2.copyMakeBorder(
            resized, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255.0
        )
        templates.append(np.asarray(framed, dtype=np.float32))
        scales.append(resized.shape[1] / max(1, width))
        margins.append(margin)
    return LogoTemplates((width, height), tuple(templates), tuple(scales), tuple(margins))


def align_logo(
    photo: PhotoGrey,
    box: tuple[float, float, float, float],
    logo: LogoTemplates,
    config: AlignmentConfig,
) -> Alignment:
    """Align ``logo`` with the area around ``box`` (x0, y0, x1, y1 in photo pixels)."""
    import cv2

    x0, y0, x1, y1 = (v * photo.scale for v in box)
    side = max(x1 - x0, y1 - y0, 1.0)
    half = side * config.context / 2
    zoom = config.window_px / side  # crop pixels per shrunk-photo pixel
    crop_side = max(8, round(2 * half * zoom))
    left, top = (x0 + x1) / 2 - half, (y0 + y1) / 2 - half
    to_crop = np.array([[zoom, 0, -left * zoom], [0, zoom, -top * zoom]], np.float32)
    warped = cv2.warpAffine(
        photo.pixels, to_crop, (crop_side, crop_side), borderMode=cv2.BORDER_REPLICATE
    )
    crop: Grey = np.asarray(cv2.GaussianBlur(warped, (3, 3), 0), dtype=np.float32)
    start = _coarse_pose(crop, logo, config)
    if start is None:
        return Alignment.none()
    index, template, warp = start
    with contextlib.suppress(cv2.error):  # ECC diverged: the coarse pose is all there is
        _, warp = cv2.findTransformECC(  # type: ignore[call-overload]  # stubs lack this form
            template,
            crop,
            warp,
            cv2.MOTION_HOMOGRAPHY,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, config.iterations, 1e-4),
            None,
            3,
        )
    quad = _rendering_quad(warp, logo, index)
    # template -> crop -> shrunk photo -> photo
    photo_quad = (quad / zoom + np.array([left, top])) / photo.scale
    if not plausible_view(photo_quad):
        return Alignment.none()
    agreement = _edge_agreement(template, crop, warp)
    corners = tuple((float(x), float(y)) for x, y in photo_quad)
    return Alignment(round(agreement, 6), (corners[0], corners[1], corners[2], corners[3]))


def _coarse_pose(
    crop: Grey, logo: LogoTemplates, config: AlignmentConfig
) -> tuple[int, Grey, npt.NDArray[np.float32]] | None:
    """The best (size index, polarity-corrected template, 3x3 template -> crop warp) over sizes,
    rotations and both polarities, by normalised cross-correlation; None if none fits."""
    import cv2

    best_value = -np.inf
    best: tuple[int, Grey, npt.NDArray[np.float32]] | None = None
    for index, template in enumerate(logo.templates):
        height, width = template.shape
        if height >= crop.shape[0] or width >= crop.shape[1]:
            continue
        light = float(np.median(template[:2]))  # the margin's level fills rotated corners
        for degrees in config.rotations:
            rotation = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
            rotated = cv2.warpAffine(template, rotation, (width, height), borderValue=light)
            response = cv2.matchTemplate(crop, rotated, cv2.TM_CCOEFF_NORMED)
            low, high, low_at, high_at = cv2.minMaxLoc(response)
            for value, at, sign in ((high, high_at, 1.0), (-low, low_at, -1.0)):
                if value > best_value:
                    best_value = value
                    shift = np.array([[1, 0, at[0]], [0, 1, at[1]], [0, 0, 1]], np.float64)
                    warp = shift @ np.vstack([rotation, [0.0, 0.0, 1.0]])
                    polarised = template if sign > 0 else 255.0 - template
                    best = (index, polarised, warp.astype(np.float32))
    return best


def _rendering_quad(
    warp: npt.NDArray[np.float32], logo: LogoTemplates, index: int
) -> npt.NDArray[np.float64]:
    """The rendering's corners in crop pixels under the template -> crop ``warp``."""
    width, height = logo.rendering_size
    scale, margin = logo.scales[index], logo.margins[index]
    corners = box_corners(0, 0, width, height)
    return project(warp.astype(np.float64), corners * scale + margin)


def _edge_agreement(template: Grey, crop: Grey, warp: npt.NDArray[np.float32]) -> float:
    """Correlation of ``template`` with the crop pulled back through ``warp``, over a band
    around the template's edges; in [0, 1] (an anti-correlation is no agreement)."""
    import cv2

    height, width = template.shape
    patch = cv2.warpPerspective(
        crop,
        warp,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    gradient = np.hypot(
        cv2.Sobel(template, cv2.CV_32F, 1, 0), cv2.Sobel(template, cv2.CV_32F, 0, 1)
    )
    if float(gradient.max()) <= 0:
        return 0.0  # a blank logo has no outline to agree with
    edges = (gradient > 0.25 * gradient.max()).astype(np.uint8)
    band = cv2.dilate(edges, np.ones((5, 5), np.uint8)).astype(bool)
    return max(0.0, masked_correlation(template, np.asarray(patch, dtype=np.float32), band))
