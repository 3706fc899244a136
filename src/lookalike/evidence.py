"""Evidence images a moderator understands at a glance: the listing beside what it matched.

``render_evidence(listing, panels)`` draws one row per match (a logo or a catalogue photo):
on the left the listing photo with the matched region outlined and the rest slightly dimmed;
on the right the matched reference; between them thin lines join the matched keypoints; under
both a caption band says what matched and how strongly. ``save_evidence`` writes it as PNG.

The look follows :mod:`lookalike.service.evidence` (label colours, PIL's default font, light
tiles on white), at a larger tile size. Everything is pure PIL, and the module stays light: it
imports no torch, so a report or a notebook can draw evidence without loading a model.

Coordinates (``region``, ``point_pairs``) are in the pixels of the images exactly as passed
here: give the same images the matcher saw (e.g. ``decode_image``'s output), not files whose
EXIF orientation would still turn them.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .data.decode import _to_rgb
from .files import write_atomically

__all__ = ["LABEL_COLOURS", "EvidencePanel", "Point", "render_evidence", "save_evidence"]

Point = tuple[float, float]
Colour = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# The service's colours (lookalike.service.evidence.LABEL_COLOURS, kept equal by a test; not
# imported, as that module pulls in torch) plus one for logos.
LABEL_COLOURS: dict[str, Colour] = {
    "copy": (200, 30, 30),
    "review": (220, 140, 0),
    "clear": (30, 140, 60),
    "logo": (37, 99, 235),
}
OTHER_COLOUR: Colour = (80, 80, 80)

TILE = 480  # each picture is fitted into a TILE x TILE box ...
INSET = 8  # ... less this margin on each side, so an outline at the photo's edge shows whole
GAP = 72  # between the listing and the reference tiles: the match lines cross it
MARGIN = 20  # left and right of the canvas; the accent bar of each row lies in the left one
BAR = 6
HEADER = 56
ROW_GAP = 28  # between one row's caption and the next row's tiles
CAPTION_TOP = 10  # from the tiles down to the caption's first line
TITLE_LINE = 26
TEXT_LINE = 20
MAX_DETAILS = 6

CANVAS: Colour = (255, 255, 255)
TILE_BACKGROUND: Colour = (238, 238, 238)
INK: Colour = (20, 20, 20)
MUTED: Colour = (95, 95, 95)
RULE: Colour = (215, 215, 215)
# The outline runs just outside the region, so it hides none of what matched: an accent band
# OUTLINE_WIDTH px wide, then a dark edge OUTLINE_EDGE px wide, so it shows on any background.
OUTLINE_WIDTH = 4
OUTLINE_EDGE = 2
OUTLINE_DARK: Colour = (15, 15, 15)
DIM = 0.35  # outside the region, the listing is mixed this much towards black
LINE_WIDTH = 2
LINE_ALPHA = 130
DOT_RADIUS = 2

# Stand-ins for characters PIL's default font cannot draw (it would draw an empty box).
_GLYPH_FALLBACKS = {
    "\u2248": "~",  # almost equal to
    "\u00d7": "x",  # multiplication sign
    "\u2192": "->",
    "\u2190": "<-",
    "\u2265": ">=",
    "\u2264": "<=",
    "\u2014": "-",  # em dash
    "\u2013": "-",  # en dash
    "\u2212": "-",  # minus sign
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2022": "\u00b7",  # bullet -> middle dot
}


@dataclass(frozen=True)
class EvidencePanel:
    """One match of the listing, drawn as one row.

    ``reference``: the matched catalogue photo or clean logo, any mode (transparency is drawn on
    a light plain background). ``region``: where in the listing it was found, in listing pixels:
    a quadrilateral (TL, TR, BR, BL), any polygon, or two points as a box's opposite corners;
    None means the whole photo (or, with no point pairs either, that nothing located the
    match: a descriptor's resemblance). ``point_pairs``: matched keypoints as (listing xy,
    reference xy), each in its own image's pixels. ``label`` picks the accent colour
    (``LABEL_COLOURS``).
    """

    reference: Image.Image
    title: str
    details: tuple[str, ...] = ()
    region: Sequence[Point] | None = None
    point_pairs: Sequence[tuple[Point, Point]] = ()
    label: str = "logo"

    def __post_init__(self) -> None:
        if self.region is not None:
            region = tuple(_point(p, "region") for p in self.region)
            if len(region) < 2:
                raise ValueError(f"a region needs at least 2 points, got {len(region)}")
            object.__setattr__(self, "region", region)
        pairs = tuple(
            (_point(a, "point pair"), _point(b, "point pair")) for a, b in self.point_pairs
        )
        object.__setattr__(self, "point_pairs", pairs)
        object.__setattr__(self, "details", tuple(self.details))

    @property
    def colour(self) -> Colour:
        return LABEL_COLOURS.get(self.label, OTHER_COLOUR)


def render_evidence(
    listing: Image.Image,
    panels: Sequence[EvidencePanel],
    *,
    header: str | None = None,
    max_points: int = 40,
) -> Image.Image:
    """An RGB picture: the listing beside each panel's reference, one row per panel.

    ``header``: the line on top; by default the first panel's label and title, or "no match"
    when there are no panels (the caption then says so, whatever the header). At most
    ``max_points`` match lines per row, evenly sampled. The picture's size depends only on the
    number of panels and of caption lines, never on the size of the images.
    """
    flat_listing = _flatten(listing)
    if not panels:
        return _render_no_match(listing.size, flat_listing, header)

    rows = [_Row(panel, _caption_lines(listing.size, panel, max_points)) for panel in panels]
    width = MARGIN + TILE + GAP + TILE + MARGIN
    height = HEADER + sum(TILE + row.caption_height for row in rows) + ROW_GAP * (len(rows) - 1)
    canvas = Image.new("RGBA", (width, height + MARGIN), CANVAS)
    draw = ImageDraw.Draw(canvas)
    first = panels[0]
    _draw_header(draw, _default_header(panels) if header is None else header, first.colour, width)

    top = HEADER
    flat_references: dict[int, Image.Image | None] = {}
    for number, row in enumerate(rows):
        panel = row.panel
        if number:
            rule_y = top - ROW_GAP // 2
            draw.line((MARGIN, rule_y, width - MARGIN, rule_y), fill=RULE, width=1)
        draw.rectangle((0, top, BAR - 1, top + TILE + row.caption_height - 1), fill=panel.colour)
        left = _place(canvas, flat_listing, listing.size, MARGIN, top, panel.region, panel.colour)
        # The same reference object is often shown in several rows: flatten it once.
        if id(panel.reference) not in flat_references:
            flat_references[id(panel.reference)] = _flatten(panel.reference)
        flat = flat_references[id(panel.reference)]
        right_x = MARGIN + TILE + GAP
        right = _place(canvas, flat, panel.reference.size, right_x, top, None, panel.colour)
        if left is not None and right is not None:
            pairs = _sampled(
                _inside(panel.point_pairs, listing.size, panel.reference.size), max_points
            )
            _draw_match_lines(canvas, pairs, left, right, panel.colour)
        _draw_caption(draw, row, MARGIN, right_x, top + TILE + CAPTION_TOP)
        top += TILE + row.caption_height + ROW_GAP
    return canvas.convert("RGB")


def _default_header(panels: Sequence[EvidencePanel]) -> str:
    """The first match's title, led by its label unless the title starts with it already."""
    first = panels[0]
    text = first.title
    if not text.lower().startswith(first.label.lower()):
        text = f"{first.label.upper()} · {text}"
    if len(panels) > 1:
        more = len(panels) - 1
        text += f"   (+{more} more match{'es' if more > 1 else ''})"
    return text


def save_evidence(image: Image.Image, path: Path) -> Path:
    """Write ``image`` as PNG at ``path``, atomically: a reader sees the old file or the new
    one, never half of one. A replaced file keeps its permissions. Returns ``path``."""
    return write_atomically(Path(path), lambda handle: image.save(handle, format="PNG"))


# -- layout --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    """Where a picture landed on the canvas, and how its pixels map there."""

    left: int
    top: int
    scale_x: float
    scale_y: float

    def map(self, point: Point) -> tuple[float, float]:
        return self.left + point[0] * self.scale_x, self.top + point[1] * self.scale_y


@dataclass(frozen=True)
class _Line:
    text: str
    colour: Colour
    size: int


@dataclass(frozen=True)
class _Row:
    panel: EvidencePanel
    lines: tuple[tuple[_Line, ...], tuple[_Line, ...]]  # under the listing, under the reference

    @property
    def caption_height(self) -> int:
        return CAPTION_TOP + max(_lines_height(side) for side in self.lines) + 6


def _lines_height(lines: Sequence[_Line]) -> int:
    return sum(TITLE_LINE if line.size > 14 else TEXT_LINE for line in lines)


def _caption_lines(
    listing_size: tuple[int, int], panel: EvidencePanel, max_points: int
) -> tuple[tuple[_Line, ...], tuple[_Line, ...]]:
    drawn_pairs = _inside(panel.point_pairs, listing_size, panel.reference.size)
    if panel.region is not None:
        where = "matched region outlined"
    elif drawn_pairs:
        where = "whole photo matched"
    else:
        where = "matched by resemblance, not located"  # a descriptor match: no keypoints
    left = (
        _Line("listing photo", INK, 18),
        _Line(_size_text(listing_size), MUTED, 14),
        _Line(where, MUTED, 14),
    )
    details = list(panel.details)
    if len(details) > MAX_DETAILS:
        details[MAX_DETAILS - 1 :] = [f"(+{len(details) - MAX_DETAILS + 1} more lines)"]
    right = [_Line(panel.title, INK, 18), *(_Line(d, INK, 14) for d in details)]
    total = len(drawn_pairs)
    shown = min(total, max(0, max_points))
    if shown < total:
        right.append(_Line(f"lines show {shown} of {total} matched points", MUTED, 14))
    right.append(_Line(_size_text(panel.reference.size), MUTED, 14))
    return left, tuple(right)


def _render_no_match(
    size: tuple[int, int], flat_listing: Image.Image | None, header: str | None
) -> Image.Image:
    lines = (
        _Line("listing photo", INK, 18),
        _Line(_size_text(size), MUTED, 14),
        _Line("no catalogue photo or logo matched", MUTED, 14),
    )
    caption = CAPTION_TOP + _lines_height(lines) + 6
    width = MARGIN + TILE + MARGIN
    canvas = Image.new("RGBA", (width, HEADER + TILE + caption + MARGIN), CANVAS)
    draw = ImageDraw.Draw(canvas)
    _draw_header(draw, "no match" if header is None else header, MUTED, width)
    _place(canvas, flat_listing, size, MARGIN, HEADER, None, MUTED)
    _draw_lines(draw, lines, MARGIN, HEADER + TILE + CAPTION_TOP)
    return canvas.convert("RGB")


# -- pictures ------------------------------------------------------------------------------


def _flatten(image: Image.Image) -> Image.Image | None:
    """8-bit RGB, transparency on white, as lookalike.data.decode does; None for no pixels."""
    if image.width == 0 or image.height == 0:
        return None
    return _to_rgb(image)


def _place(
    canvas: Image.Image,
    image: Image.Image | None,
    size: tuple[int, int],
    left: int,
    top: int,
    region: Sequence[Point] | None,
    colour: Colour,
) -> _Placement | None:
    """Fit ``image`` (original ``size``) into the tile at (left, top), dim it outside
    ``region`` and outline the region. Returns how image pixels map onto the canvas."""
    tile = Image.new("RGB", (TILE, TILE), TILE_BACKGROUND)
    if image is None:
        ImageDraw.Draw(tile).text((16, TILE // 2 - 8), "empty image", MUTED, _font(14))
        canvas.paste(tile, (left, top))
        return None
    fit = TILE - 2 * INSET
    scale = min(fit / size[0], fit / size[1])
    fitted_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    # The scale actually used on each axis, after rounding to whole pixels.
    scale_x, scale_y = fitted_size[0] / size[0], fitted_size[1] / size[1]
    upscaling = scale >= 3.0  # tiny pictures: keep their pixels crisp instead of a blur
    resample = Image.Resampling.NEAREST if upscaling else Image.Resampling.LANCZOS
    fitted = image.resize(fitted_size, resample, reducing_gap=None if upscaling else 2.0)
    x = (TILE - fitted_size[0]) // 2
    y = (TILE - fitted_size[1]) // 2
    tile.paste(fitted, (x, y))
    if region is not None:
        points = [(px * scale_x, py * scale_y) for px, py in region]
        if len(points) == 2:
            (x0, y0), (x1, y1) = points
            points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        inside = Image.new("L", fitted_size, 0)
        ImageDraw.Draw(inside).polygon(points, fill=255)
        dimmed = Image.blend(fitted, Image.new("RGB", fitted_size, (0, 0, 0)), DIM)
        tile.paste(dimmed, (x, y), ImageOps.invert(inside))
        # Both lines are centred on the region's border; pasting the region back over them
        # leaves only their outer halves. Drawn on the tile, so a region reaching outside the
        # photo is cut at the tile's edge.
        closed = [(x + px, y + py) for px, py in [*points, points[0]]]
        draw = ImageDraw.Draw(tile)
        dark_width = 2 * (OUTLINE_WIDTH + OUTLINE_EDGE)
        draw.line(closed, fill=OUTLINE_DARK, width=dark_width, joint="curve")
        draw.line(closed, fill=colour, width=2 * OUTLINE_WIDTH, joint="curve")
        tile.paste(fitted, (x, y), inside)
    canvas.paste(tile, (left, top))
    return _Placement(left + x, top + y, scale_x, scale_y)


def _inside(
    pairs: Sequence[tuple[Point, Point]], listing: tuple[int, int], reference: tuple[int, int]
) -> list[tuple[Point, Point]]:
    """The pairs whose both ends lie on their pictures; others cannot be drawn truthfully."""
    return [(a, b) for a, b in pairs if _on(a, listing) and _on(b, reference)]


def _on(point: Point, size: tuple[int, int]) -> bool:
    return 0 <= point[0] <= size[0] and 0 <= point[1] <= size[1]


def _sampled(pairs: list[tuple[Point, Point]], limit: int) -> list[tuple[Point, Point]]:
    """At most ``limit`` of ``pairs``, evenly spread over the list (the first one included)."""
    if limit <= 0:
        return []
    if len(pairs) <= limit:
        return pairs
    return [pairs[(i * len(pairs)) // limit] for i in range(limit)]


def _draw_match_lines(
    canvas: Image.Image,
    pairs: Sequence[tuple[Point, Point]],
    left: _Placement,
    right: _Placement,
    colour: Colour,
) -> None:
    if not pairs:
        return
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    ends = [(left.map(a), right.map(b)) for a, b in pairs]
    for start, end in ends:
        draw.line((start, end), fill=(*colour, LINE_ALPHA), width=LINE_WIDTH)
    for start, end in ends:
        for cx, cy in (start, end):
            r = DOT_RADIUS
            draw.ellipse(
                (cx - r, cy - r, cx + r, cy + r),
                fill=(*colour, 255),
                outline=(255, 255, 255, 220),
                width=1,
            )
    canvas.alpha_composite(overlay)


# -- text ----------------------------------------------------------------------------------


def _draw_header(draw: ImageDraw.ImageDraw, text: str, colour: Colour, width: int) -> None:
    font = _font(22)
    draw.text((MARGIN, 16), _fitted_text(text, 22, width - 2 * MARGIN), colour, font)
    draw.line((MARGIN, HEADER - 8, width - MARGIN, HEADER - 8), fill=RULE, width=1)


def _draw_caption(draw: ImageDraw.ImageDraw, row: _Row, left_x: int, right_x: int, y: int) -> None:
    left_lines, right_lines = row.lines
    _draw_lines(draw, left_lines, left_x, y)
    # The reference's title starts with a chip in the accent colour: "LOGO", "COPY", ...
    title, *rest = right_lines
    chip_font = _font(13)
    chip = _displayable(row.panel.label.upper()[:12], 13)
    chip_width = round(chip_font.getlength(chip)) + 12
    draw.rounded_rectangle(
        (right_x, y + 1, right_x + chip_width, y + 21), radius=4, fill=row.panel.colour
    )
    draw.text((right_x + 6, y + 4), chip, (255, 255, 255), chip_font)
    title_x = right_x + chip_width + 8
    text = _fitted_text(title.text, title.size, right_x + TILE - title_x)
    draw.text((title_x, y), text, title.colour, _font(title.size))
    _draw_lines(draw, rest, right_x, y + TITLE_LINE)


def _draw_lines(draw: ImageDraw.ImageDraw, lines: Sequence[_Line], x: int, y: int) -> None:
    for line in lines:
        draw.text((x, y), _fitted_text(line.text, line.size, TILE), line.colour, _font(line.size))
        y += TITLE_LINE if line.size > 14 else TEXT_LINE


def _fitted_text(text: str, size: int, width: int) -> str:
    """``text`` made drawable, cut with an ellipsis to fit in ``width`` pixels."""
    text = _displayable(text, size)
    font = _font(size)
    if font.getlength(text) <= width:
        return text
    # The longest prefix that fits with the ellipsis, found by bisection: texts can be long.
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle] + "…") <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


def _displayable(text: str, size: int) -> str:
    """One line, with every character the font lacks replaced by a readable stand-in."""
    out = []
    for char in text:
        if unicodedata.category(char)[0] in "CZ" and char != " ":
            out.append(" ")  # newlines, tabs, other separators and controls
        elif char.isascii() or _has_glyph(size, char):
            out.append(char)
        else:
            out.append(_stand_in(char, size))
    return "".join(out)


def _stand_in(char: str, size: int) -> str:
    if char in _GLYPH_FALLBACKS:
        return _GLYPH_FALLBACKS[char]
    plain = unicodedata.normalize("NFKD", char)
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    if plain and all(c.isascii() or _has_glyph(size, c) for c in plain):
        return plain
    return "?"


@lru_cache(maxsize=8)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=2048)
def _has_glyph(size: int, char: str) -> bool:
    font = _font(size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        return ord(char) < 256  # PIL's bitmap fallback font: Latin-1
    return _glyph_pixels(size, char) != _glyph_pixels(size, "\uffff")  # U+FFFF: never a glyph


@lru_cache(maxsize=2048)
def _glyph_pixels(size: int, char: str) -> bytes:
    image = Image.new("L", (2 * size, 2 * size), 0)
    ImageDraw.Draw(image).text((0, 0), char, 255, _font(size))
    return image.tobytes()


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]} x {size[1]} px"


def _point(value: Sequence[float], what: str) -> Point:
    if len(value) != 2:
        raise ValueError(f"a {what} point needs 2 coordinates, got {len(value)}")
    x, y = float(value[0]), float(value[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"a {what} point must be finite, got ({x}, {y})")
    return x, y
