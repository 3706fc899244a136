"""Evidence of recent verdicts: a bounded LRU of listing photos, rendered to PNG on demand.

Each check keeps its listing's uploaded bytes (not decoded pixels: a few hundred KB instead of
megabytes each) under a fresh verdict id. The cache is bounded by count and by total bytes;
the oldest verdicts go first. Rendering happens only when someone asks for the evidence.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from ..data.decode import ImageDecodeError, decode_image, read_image_bytes
from ..detect import Detector, Match, Verdict

TILE = 320  # each picture is fitted into a TILE x TILE box
CAPTION = 64  # caption band under each tile
HEADER = 40
PAD = 12
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
LABEL_COLOURS = {"copy": (200, 30, 30), "review": (220, 140, 0), "clear": (30, 140, 60)}


@dataclass(frozen=True)
class Region:
    """A box in listing-image pixels. For whole-photo copies it is the whole listing; for
    logos, the box around the logo's outline."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class EvidenceEntry:
    verdict: Verdict
    listing: bytes
    listing_size: tuple[int, int]
    listing_id: str | None
    regions: tuple[Region | None, ...]  # one per match


class EvidenceStore:
    """Thread-safe LRU of ``EvidenceEntry`` by verdict id."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, EvidenceEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def put(self, verdict_id: str, entry: EvidenceEntry) -> None:
        if self.max_items == 0 or len(entry.listing) > self.max_bytes:
            return
        with self._lock:
            self._entries[verdict_id] = entry
            self._bytes += len(entry.listing)
            while len(self._entries) > self.max_items or self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.listing)

    def get(self, verdict_id: str) -> EvidenceEntry | None:
        with self._lock:
            entry = self._entries.get(verdict_id)
            if entry is not None:
                self._entries.move_to_end(verdict_id)
            return entry


def whole_image_region(size: tuple[int, int]) -> Region:
    return Region(0, 0, size[0], size[1])


def outline_box(outline: Sequence[tuple[float, float]], size: tuple[int, int]) -> Region | None:
    """The box around a logo's outline (listing pixels), clipped to the listing."""
    if not outline:
        return None
    xs = [min(max(x, 0.0), float(size[0])) for x, _ in outline]
    ys = [min(max(y, 0.0), float(size[1])) for _, y in outline]
    left, top = int(min(xs)), int(min(ys))
    return Region(left, top, max(0, round(max(xs)) - left), max(0, round(max(ys)) - top))


def render_logo_evidence(
    entry: EvidenceEntry, detector: Detector, *, max_pixels: int
) -> bytes | None:
    """PNG of a verdict with logos worth showing (at or above the logo review threshold):
    the library's evidence picture, with each logo's outline and matched keypoints; None
    when no logo qualifies (or the listing cannot be decoded again)."""
    from ..evidence import render_evidence as render_panels
    from ..verdict_evidence import evidence_panels

    panels = evidence_panels(detector, entry.verdict)
    if not any(panel.region is not None for panel in panels):
        return None
    try:
        listing = decode_image(entry.listing, max_pixels=max_pixels)
    except ImageDecodeError:
        return None
    out = io.BytesIO()
    render_panels(listing, panels).save(out, format="PNG", optimize=False)
    return out.getvalue()


def render_evidence(entry: EvidenceEntry, *, max_matches: int, max_pixels: int) -> bytes:
    """PNG: the listing (region outlined) beside its top matched catalogue images, captioned."""
    matches = entry.verdict.matches[:max_matches]
    columns = 1 + max(1, len(matches))
    width = PAD + columns * (TILE + PAD)
    height = HEADER + TILE + CAPTION + PAD
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    big = ImageFont.load_default(size=20)

    verdict = entry.verdict
    colour = LABEL_COLOURS.get(verdict.label, (0, 0, 0))
    precision = ""
    if verdict.expected_precision is not None:
        precision = f"  precision {verdict.expected_precision:.2f}"
    draw.text(
        (PAD, 10), f"{verdict.label.upper()}  score {verdict.score:.3f}{precision}", colour, big
    )

    listing = _decode_or_none(entry.listing, max_pixels)
    # The best match's region; none for a clear verdict, where nothing was found to outline.
    region = entry.regions[0] if entry.regions and verdict.label != "clear" else None
    box = _paste_fitted(canvas, listing, PAD, HEADER)
    if listing is not None and region is not None and box is not None:
        _outline(draw, region, entry.listing_size, box, colour)
    listing_caption = ["listing " + (entry.listing_id or ""), _size_text(entry.listing_size)]
    _caption(draw, PAD, listing_caption, font)

    if not matches:
        _paste_fitted(canvas, None, PAD + TILE + PAD, HEADER, note="no catalogue match")
    for column, match in enumerate(matches, start=1):
        left = PAD + column * (TILE + PAD)
        _paste_fitted(canvas, _load_catalogue_image(match, max_pixels), left, HEADER)
        _caption(draw, left, _match_lines(match), font)

    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _decode_or_none(data: bytes, max_pixels: int) -> Image.Image | None:
    try:
        return decode_image(data, max_pixels=max_pixels, draft_size=TILE)
    except ImageDecodeError:
        return None


def _load_catalogue_image(match: Match, max_pixels: int) -> Image.Image | None:
    if not match.source:
        return None
    try:
        return _decode_or_none(read_image_bytes(match.source), max_pixels)
    except ImageDecodeError:
        return None  # the catalogue file moved or vanished: the evidence says so, no error


def _paste_fitted(
    canvas: Image.Image,
    image: Image.Image | None,
    left: int,
    top: int,
    *,
    note: str = "image unavailable",
) -> tuple[int, int, int, int] | None:
    """Fit ``image`` into the tile at (left, top); returns where it landed (x, y, w, h)."""
    draw = ImageDraw.Draw(canvas)
    if image is None:
        draw.rectangle((left, top, left + TILE - 1, top + TILE - 1), fill=(235, 235, 235))
        draw.text((left + 10, top + TILE // 2), note, (90, 90, 90), ImageFont.load_default(14))
        return None
    scale = min(TILE / image.width, TILE / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    fitted = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    x = left + (TILE - size[0]) // 2
    y = top + (TILE - size[1]) // 2
    canvas.paste(fitted, (x, y))
    return x, y, size[0], size[1]


def _outline(
    draw: ImageDraw.ImageDraw,
    region: Region,
    listing_size: tuple[int, int],
    box: tuple[int, int, int, int],
    colour: tuple[int, int, int],
) -> None:
    """Draw ``region`` (full-size listing pixels) onto the tile ``box`` showing the listing;
    the tile may come from a draft-decoded copy, so scale from the full size."""
    x, y, w, h = box
    scale_x = w / max(1, listing_size[0])
    scale_y = h / max(1, listing_size[1])
    left = x + round(region.x * scale_x)
    top = y + round(region.y * scale_y)
    right = min(x + w, left + round(region.width * scale_x)) - 1
    bottom = min(y + h, top + round(region.height * scale_y)) - 1
    draw.rectangle((left, top, right, bottom), outline=colour, width=4)


def _caption(draw: ImageDraw.ImageDraw, left: int, lines: Sequence[str], font: Font) -> None:
    top = HEADER + TILE + 6
    for number, line in enumerate(lines[:3]):
        draw.text((left, top + 18 * number), line[:44], (20, 20, 20), font)


def _match_lines(match: Match) -> list[str]:
    return [
        f"{match.item_id}  score {match.score:.3f}",
        f"brand {match.brand or '-'}  kind {match.kind}",
        f"sku {match.sku or '-'}",
    ]


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]} x {size[1]} px"
