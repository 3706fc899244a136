"""``lookalike report``: one self-contained HTML page to review a scoring batch's top suspects.

The page is meant to be opened by a moderator the morning after an overnight batch: counts by
label and brand, a score histogram, then the highest-scoring copy/review rows, each listing
photo beside its matched catalogue pictures. Everything is inline (CSS, SVG, JPEG thumbnails
as ``data:`` URIs) so the file can be mailed or attached to a ticket; a Content-Security-Policy
forbids any network fetch or script, so a forged value in the results cannot phone home.

Result files can hold millions of rows: they are read as a stream (Parquet: only the few
columns the counts need), only the ``top`` suspects are kept, and only their images are
decoded.
"""

from __future__ import annotations

import base64
import csv
import heapq
import html
import io
import json
import math
import os
import tarfile
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from .data.decode import ImageDecodeError, decode_image
from .data.sources import read_inputs_bytes
from .files import write_atomically

if TYPE_CHECKING:
    from .index import CatalogIndex

__all__ = ["ReportSummary", "read_results", "write_report"]

Row = dict[str, Any]
Point = tuple[float, float]

LABEL_ORDER = ("copy", "logo", "review", "clear", "error")
SUSPECT_LABELS = frozenset({"copy", "logo", "review"})
LABEL_COLOURS = {
    "copy": (200, 30, 30),
    "logo": (37, 99, 235),
    "review": (220, 140, 0),
    "clear": (30, 140, 60),
    "error": (107, 114, 128),
}
MAX_MATCHES_SHOWN = 3
MAX_ERRORS_SHOWN = 20
MAX_BRANDS_SHOWN = 20
HISTOGRAM_BINS = 20
NO_BRAND = "(no brand)"
JPEG_QUALITY = 85

_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_TEXT_FIELDS = ("path", "query_id", "label", "top_item_id", "top_brand", "top_kind", "error")
_FLOAT_FIELDS = ("score", "expected_precision", "decode_ms", "embed_ms", "search_ms")
_REQUIRED_COLUMNS = ("path", "label")
# What counting needs; Parquet reads just these on the first pass, the rest only for suspects.
_COUNT_COLUMNS = ("path", "query_id", "label", "score", "expected_precision", "top_brand", "error")
_MATCH_TEXT_FIELDS = ("item_id", "brand", "kind", "sku", "source", "sha256")
# Everything that reading a listing or catalogue file can raise on bad or missing input.
_UNREADABLE = (ImageDecodeError, OSError, tarfile.TarError, EOFError, ValueError)
_EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the picture 90 degrees


@dataclass
class ReportSummary:
    """What a report covered: ``counts_by_brand`` counts the best match's brand over the
    copy and review rows, most frequent first."""

    rows: int
    errors: int
    suspects_shown: int
    counts_by_label: dict[str, int] = field(default_factory=dict)
    counts_by_brand: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading results ---------------------------------------------------------------------------


def read_results(path: str | os.PathLike[str]) -> list[Row]:
    """All rows of a results file (format by extension: .parquet, .jsonl/.ndjson, .csv),
    normalised: every known column present, numbers as float or None, ``matches`` a list of
    dicts (CSV's JSON string parsed), ``region`` a list of (x, y) points or None."""
    fmt = _format_of(path)
    return [_normalise_row(raw) for raw in _iter_raw_rows(Path(path), fmt, columns=None)]


def _format_of(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        known = ", ".join(sorted(_FORMATS))
        raise ValueError(f"{os.fspath(path)}: unknown results format {suffix!r} (use {known})")
    return _FORMATS[suffix]


def _iter_raw_rows(path: Path, fmt: str, columns: Sequence[str] | None) -> Iterator[Row]:
    """Rows as stored; ``columns`` narrows what Parquet reads (text formats read it all)."""
    if fmt == "parquet":
        return _iter_parquet(path, columns)
    if fmt == "jsonl":
        return _iter_jsonl(path)
    return _iter_csv(path)


def _iter_parquet(path: Path, columns: Sequence[str] | None) -> Iterator[Row]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    _check_columns(path, names)
    wanted = None if columns is None else [c for c in columns if c in names]
    for batch in parquet.iter_batches(batch_size=16_384, columns=wanted):
        yield from batch.to_pylist()


def _iter_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):
                    return  # a torn last line: the batch is still being written, or crashed
                raise ValueError(f"{path}:{number}: not a JSON line ({exc})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object per line")
            yield row


def _iter_csv(path: Path) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        _check_columns(path, reader.fieldnames or [])
        yield from reader


def _check_columns(path: Path, names: Sequence[str]) -> None:
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        # ISC-format CSVs (query_id, reference_id, score) land here: they hold no verdicts.
        raise ValueError(
            f"{path}: not a 'lookalike score' results file (no {', '.join(missing)} column); "
            "ISC-format files cannot be reported on"
        )


def _normalise_row(raw: Row) -> Row:
    row = _normalise_scalars(raw)
    row["matches"] = _parse_matches(raw.get("matches"))
    row["logos"] = _parse_matches(raw.get("logos"))  # absent in files from before logo search
    return row


def _normalise_scalars(raw: Row) -> Row:
    """Everything but ``matches``: all that counting needs, and cheap (CSV's matches are a
    JSON string to parse)."""
    row = dict(raw)
    for name in _TEXT_FIELDS:
        row[name] = _text(raw.get(name))
    for name in _FLOAT_FIELDS:
        row[name] = _number(raw.get(name))
    if row["label"] is None:
        row["label"] = "error" if row["error"] else "unlabelled"
    return row


def _text(value: Any) -> str | None:
    """CSV writes None as ''; treat both alike."""
    if value is None or value == "":
        return None
    return str(value)


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _parse_matches(value: Any) -> list[Row]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            return []
    if not isinstance(value, list):
        return []
    return [_normalise_match(m) for m in value if isinstance(m, dict)]


def _normalise_match(raw: Row) -> Row:
    match = dict(raw)
    for name in _MATCH_TEXT_FIELDS:
        match[name] = _text(raw.get(name))
    match["score"] = _number(raw.get("score"))
    match["region"] = _parse_region(raw.get("region"))
    return match


def _parse_region(value: Any) -> list[Point] | None:
    """A list of [x, y] points (or {x, y} dicts); an {x, y, width, height} box becomes its
    four corners. Anything else (absent, malformed) is no region."""
    if isinstance(value, dict) and {"x", "y", "width", "height"} <= value.keys():
        x, y, w, h = (_number(value[k]) for k in ("x", "y", "width", "height"))
        if x is None or y is None or w is None or h is None:
            return None
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    if not isinstance(value, list | tuple) or len(value) < 2:
        return None
    points = [_parse_point(p) for p in value]
    if any(p is None for p in points):
        return None
    return [p for p in points if p is not None]


def _parse_point(value: Any) -> Point | None:
    if isinstance(value, dict):
        value = [value.get("x"), value.get("y")]
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    x, y = _number(value[0]), _number(value[1])
    return None if x is None or y is None else (x, y)


# -- one pass over the rows ----------------------------------------------------------------


@dataclass
class _Tally:
    """Counts, scores and the best ``top`` suspects, gathered in one pass over the rows."""

    top: int
    rows: int = 0
    by_label: Counter[str] = field(default_factory=Counter)
    by_brand: Counter[str] = field(default_factory=Counter)
    # Compact per-label score arrays: a million floats cost 8 MB, not 30+ as Python objects.
    scores: dict[str, array[float]] = field(default_factory=dict)
    first_errors: list[Row] = field(default_factory=list)
    suspects_total: int = 0
    # Min-heap of (score, -ordinal, ordinal, row): the weakest kept suspect is popped first,
    # and the earlier row wins a tie.
    _heap: list[tuple[tuple[float, float], int, int, Row]] = field(default_factory=list)

    def add(self, ordinal: int, raw: Row) -> None:
        """Count one row as stored; only the suspects kept are normalised in full, later."""
        row = _normalise_scalars(raw)
        self.rows += 1
        label = row["label"]
        self.by_label[label] += 1
        if row["score"] is not None:
            self.scores.setdefault(label, array("d")).append(row["score"])
        if label == "error" and len(self.first_errors) < MAX_ERRORS_SHOWN:
            self.first_errors.append(row)
        if label in SUSPECT_LABELS:
            self._add_suspect(ordinal, row, raw)

    def _add_suspect(self, ordinal: int, row: Row, raw: Row) -> None:
        self.suspects_total += 1
        self.by_brand[row["top_brand"] or NO_BRAND] += 1
        if self.top <= 0:
            return
        # Expected precision first: logo and photo scores live on different scales, their
        # calibrated precisions do not.
        precision = row["expected_precision"]
        score = row["score"] if row["score"] is not None else -math.inf
        entry = ((-math.inf if precision is None else precision, score), -ordinal, ordinal, raw)
        if len(self._heap) < self.top:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heappushpop(self._heap, entry)

    def suspects(self) -> list[tuple[int, Row]]:
        """(ordinal, stored row) of the kept suspects, highest score first."""
        return [(ordinal, row) for _, _, ordinal, row in sorted(self._heap, reverse=True)]

    def counts_by_label(self) -> dict[str, int]:
        counts = {label: self.by_label.get(label, 0) for label in LABEL_ORDER}
        counts.update(sorted((k, v) for k, v in self.by_label.items() if k not in counts))
        return counts

    def counts_by_brand(self) -> dict[str, int]:
        return dict(sorted(self.by_brand.items(), key=lambda kv: (-kv[1], kv[0])))


def _tally_rows(path: Path, fmt: str, top: int) -> _Tally:
    tally = _Tally(top)
    for ordinal, raw in enumerate(_iter_raw_rows(path, fmt, columns=_COUNT_COLUMNS)):
        tally.add(ordinal, raw)
    return tally


def _full_suspect_rows(path: Path, fmt: str, picked: list[tuple[int, Row]]) -> list[Row]:
    """The suspects' whole rows, normalised: Parquet's first pass read only the counting
    columns, so its suspects are read again by position."""
    if fmt != "parquet":
        return [_normalise_row(raw) for _, raw in picked]
    found = _parquet_rows_at(path, {ordinal for ordinal, _ in picked})
    return [found[ordinal] for ordinal, _ in picked]


def _parquet_rows_at(path: Path, ordinals: set[int]) -> dict[int, Row]:
    """Rows by position, streamed batch by batch so a large file is never held whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found: dict[int, Row] = {}
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=16_384):
        local = sorted(o - start for o in ordinals if start <= o < start + batch.num_rows)
        if local:
            taken = batch.take(pa.array(local, type=pa.int64())).to_pylist()
            for offset, raw in zip(local, taken, strict=True):
                found[start + offset] = _normalise_row(raw)
        start += batch.num_rows
        if len(found) == len(ordinals):
            break
    return found


# -- catalogue lookups -------------------------------------------------------------------------


class _CatalogueLookup:
    """Fills in a match's missing catalogue file (CSV results never carry one) and its
    brand/kind/sku from the index, when one was given."""

    def __init__(self, index: CatalogIndex | None) -> None:
        self._index = index

    def complete(self, match: Row) -> Row:
        if self._index is None or match["source"] or not match["item_id"]:
            return match
        record = self._index.get(match["item_id"])
        if record is None:
            return match
        return {
            **match,
            "source": record.source,
            "brand": match["brand"] or record.brand,
            "kind": match.get("kind") or record.kind,
            "sku": match.get("sku") or record.sku,
        }


def _load_index(index_dir: str | os.PathLike[str] | None) -> CatalogIndex | None:
    if index_dir is None:
        return None
    from .index import CatalogIndex  # FAISS is only needed when an index is given

    return CatalogIndex.load(index_dir)


# -- pictures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Picture:
    """A thumbnail as a data URI, or ``problem``: why there is none."""

    data_uri: str | None = None
    size: tuple[int, int] = (0, 0)
    problem: str | None = None
    outlined: bool = False


def _listing_picture(
    fetched: bytes | ImageDecodeError | None,
    region: list[Point] | None,
    side: int,
    colour: tuple[int, int, int],
) -> _Picture:
    """``fetched``: the listing's bytes, why they could not be read, or None (no path)."""
    if fetched is None:
        return _Picture(problem="no input path recorded")
    if isinstance(fetched, ImageDecodeError):
        return _Picture(problem=_reason(fetched))
    data = fetched
    try:
        image = decode_image(data, draft_size=side)
    except _UNREADABLE as exc:
        return _Picture(problem=_reason(exc))
    # Regions are in full-size upright pixels; a JPEG may have decoded as a smaller draft.
    full_size = _upright_size(data, image.size)
    thumb = _thumbnail(image, side)
    outlined = region is not None and _outline(thumb, region, full_size, colour)
    return _Picture(_data_uri(thumb), thumb.size, outlined=outlined)


def _catalogue_picture(source: str | None, side: int, cache: dict[str, _Picture]) -> _Picture:
    """Cached by file: a few catalogue items often explain many suspects."""
    if not source:
        return _Picture(problem="no catalogue file recorded (give the index to look it up)")
    if source not in cache:
        try:
            thumb = _thumbnail(decode_image(source, draft_size=side), side)
        except _UNREADABLE as exc:
            cache[source] = _Picture(problem=_reason(exc))
        else:
            cache[source] = _Picture(_data_uri(thumb), thumb.size)
    return cache[source]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ImageDecodeError):
        return exc.reason
    return str(exc) or type(exc).__name__


def _upright_size(data: bytes, fallback: tuple[int, int]) -> tuple[int, int]:
    """The full size as displayed (EXIF rotation applied), from the header alone."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            orientation = header.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # the decoder already accepted these bytes; the size is a nicety
        return fallback
    return (height, width) if orientation in _SWAPS_SIDES else (width, height)


def _thumbnail(image: Image.Image, side: int) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return thumb


def _outline(
    thumb: Image.Image,
    region: list[Point],
    full_size: tuple[int, int],
    colour: tuple[int, int, int],
) -> bool:
    """Draw ``region`` (full-size pixels) on ``thumb``: two points are a box's opposite
    corners, more are a polygon."""
    scale_x = thumb.width / max(1, full_size[0])
    scale_y = thumb.height / max(1, full_size[1])
    points = [(x * scale_x, y * scale_y) for x, y in region]
    if len(points) == 2:
        (x0, y0), (x1, y1) = points
        points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    width = max(3, round(min(thumb.size) / 60))
    ImageDraw.Draw(thumb).line([*points, points[0]], fill=colour, width=width, joint="curve")
    return True


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    # No chroma subsampling: it would smear thin coloured outlines into the grey around them.
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# -- HTML --------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Every value from the results is untrusted text: paths can hold <, & and quotes."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt_score(score: float | None) -> str:
    return "—" if score is None else f"{score:.3f}"


def _fmt_precision(precision: float | None) -> str:
    return "uncalibrated" if precision is None else f"{precision * 100:.1f}%"


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _badge(label: str) -> str:
    css = label if label in LABEL_COLOURS else "other"
    return f'<span class="badge {css}">{_e(label)}</span>'


def _render_picture(picture: _Picture, alt: str) -> str:
    if picture.data_uri is None:
        return f'<div class="thumb missing">image unavailable: {_e(picture.problem)}</div>'
    width, height = picture.size
    return (
        f'<img class="thumb" src="{picture.data_uri}" width="{width}" height="{height}" '
        f'alt="{_e(alt)}">'
    )


def _render_label_counts(counts: dict[str, int], rows: int) -> str:
    items = []
    for label, count in counts.items():
        share = f"{count / rows * 100:.1f}%" if rows else "—"
        items.append(f"<tr><td>{_badge(label)}</td><td>{count:,}</td><td>{share}</td></tr>")
    return (
        '<table class="counts"><thead><tr><th>label</th><th>rows</th><th>share</th></tr>'
        f"</thead><tbody>{''.join(items)}</tbody></table>"
    )


def _render_brand_counts(counts: dict[str, int]) -> str:
    if not counts:
        return '<p class="muted">No copy or review rows.</p>'
    shown = list(counts.items())[:MAX_BRANDS_SHOWN]
    most = shown[0][1]
    items = [
        f'<tr><td>{_e(brand)}</td><td>{count:,}</td><td><span class="bar" '
        f'style="width:{count / most * 100:.1f}%"></span></td></tr>'
        for brand, count in shown
    ]
    more = len(counts) - len(shown)
    tail = f'<p class="muted">and {more:,} more brands</p>' if more > 0 else ""
    return (
        '<table class="counts brands"><thead><tr><th>brand (best match)</th><th>rows</th>'
        f"<th></th></tr></thead><tbody>{''.join(items)}</tbody></table>{tail}"
    )


def _render_histogram(scores: dict[str, array[float]]) -> str:
    """Inline SVG: stacked bars per label over ``HISTOGRAM_BINS`` bins of [min, max]."""
    filled = {label: np.frombuffer(values, dtype=np.float64) for label, values in scores.items()}
    filled = {label: values for label, values in filled.items() if values.size}
    if not filled:
        return '<p class="muted">No scores to plot.</p>'
    low = min(float(v.min()) for v in filled.values())
    high = max(float(v.max()) for v in filled.values())
    if high - low < 1e-9:  # one distinct score: give the single bar some width
        low, high = low - 0.05, high + 0.05
    stack_order: list[str] = [label for label in ("clear", "review", "copy") if label in filled]
    stack_order += sorted(label for label in filled if label not in stack_order)
    counts = {
        label: np.histogram(filled[label], bins=HISTOGRAM_BINS, range=(low, high))[0]
        for label in stack_order
    }
    tallest = int(np.stack(list(counts.values())).sum(axis=0).max())
    return _histogram_svg(stack_order, counts, tallest, low, high)


def _histogram_svg(
    stack_order: list[str],
    counts: dict[str, np.ndarray],
    tallest: int,
    low: float,
    high: float,
) -> str:
    width, height, left, right, top, bottom = 560, 230, 56, 28, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    bin_w = plot_w / HISTOGRAM_BINS
    step = (high - low) / HISTOGRAM_BINS
    parts = [
        f'<svg class="histogram" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="score histogram">'
    ]
    for index in range(HISTOGRAM_BINS):
        base = 0
        for label in stack_order:
            count = int(counts[label][index])
            if not count:
                continue
            bar_h = count / tallest * plot_h
            y = top + plot_h - (base + count) / tallest * plot_h
            span = f"{low + index * step:.3f} to {low + (index + 1) * step:.3f}"
            colour = _hex(LABEL_COLOURS.get(label, (80, 80, 80)))
            parts.append(
                f'<rect x="{left + index * bin_w + 1:.1f}" y="{y:.1f}" '
                f'width="{bin_w - 2:.1f}" height="{bar_h:.1f}" fill="{colour}">'
                f"<title>{span}: {count:,} {_e(label)}</title></rect>"
            )
            base += count
    axis_y = top + plot_h
    parts.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" class="axis"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" class="axis"/>'
    )
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + fraction * plot_w
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">'
            f"{low + fraction * (high - low):.3f}</text>"
        )
    for count in sorted({0, tallest // 2, tallest}):
        y = axis_y - count / tallest * plot_h
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{count:,}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">score</text>'
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">rows</text></svg>'
    )
    legend = "".join(
        f'<span class="legend"><span class="swatch" style="background:'
        f'{_hex(LABEL_COLOURS.get(label, (80, 80, 80)))}"></span>{_e(label)}</span>'
        for label in reversed(stack_order)
    )
    return "".join(parts) + f'<div class="legends">{legend}</div>'


@dataclass
class _SuspectRenderer:
    """Decodes and renders one suspect at a time; catalogue thumbnails are shared."""

    side: int
    lookup: _CatalogueLookup
    listings: dict[str, bytes | ImageDecodeError]  # by input key, read before rendering
    catalogue_cache: dict[str, _Picture] = field(default_factory=dict)

    def render(self, rank: int, row: Row) -> str:
        label = row["label"]
        colour = LABEL_COLOURS.get(label, (0, 0, 0))
        # a logo verdict shows its logos first: their regions are what the moderator checks
        logos_first = row["label"] == "logo" or (row["top_kind"] == "logo" and row["logos"])
        shown = row["logos"] + row["matches"] if logos_first else row["matches"] + row["logos"]
        matches = [self.lookup.complete(m) for m in shown[:MAX_MATCHES_SHOWN]]
        region = matches[0]["region"] if matches else None
        fetched = self.listings.get(row["path"]) if row["path"] else None
        listing = _listing_picture(fetched, region, self.side, colour)
        caption = "listing photo" + (" (matched region outlined)" if listing.outlined else "")
        figures = [
            f'<figure class="listing">{_render_picture(listing, "listing photo")}'
            f"<figcaption>{caption}</figcaption></figure>"
        ]
        figures += [self._render_match(match) for match in matches]
        if not matches:
            figures.append('<p class="muted">no catalogue matches recorded</p>')
        css = label if label in LABEL_COLOURS else "other"
        return (
            f'<article class="suspect {css}" id="suspect-{rank}">'
            f'<div class="verdict"><span class="rank">#{rank}</span> {_badge(label)} '
            f"<span>score <b>{_fmt_score(row['score'])}</b></span> "
            f"<span>expected precision <b>{_fmt_precision(row['expected_precision'])}</b></span> "
            f"<span>query <code>{_e(row['query_id'])}</code></span></div>"
            f'<div class="key"><code>{_e(row["path"])}</code></div>'
            f'<div class="pictures">{"".join(figures)}</div></article>'
        )

    def _render_match(self, match: Row) -> str:
        picture = _catalogue_picture(match["source"], self.side, self.catalogue_cache)
        details = [
            f"score <b>{_fmt_score(match['score'])}</b>",
            f"brand {_e(match['brand'] or '—')}",
            f"kind {_e(match.get('kind') or '—')}",
            f"item <code>{_e(match['item_id'] or '—')}</code>",
            f"sku {_e(match.get('sku') or '—')}",
        ]
        alt = f"catalogue image {match['item_id'] or ''}"
        return (
            f'<figure class="match">{_render_picture(picture, alt)}'
            f"<figcaption>{'<br>'.join(details)}</figcaption></figure>"
        )


def _render_errors(tally: _Tally) -> str:
    count = tally.by_label.get("error", 0)
    if not count:
        return '<section id="errors"><h2>Errors (0)</h2><p class="muted">None.</p></section>'
    rows = "".join(
        f"<tr><td><code>{_e(row['path'])}</code></td><td>{_e(row['error'] or '—')}</td></tr>"
        for row in tally.first_errors
    )
    shown = len(tally.first_errors)
    note = f"first {shown} of {count:,}" if count > shown else ""
    return (
        f'<section id="errors"><h2>Errors ({count:,})</h2>'
        f"{f'<p class=muted>{note}</p>' if note else ''}"
        f'<table class="errors"><thead><tr><th>input</th><th>error</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1f2328;background:#f6f7f9}
main{max-width:1400px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:28px 0 8px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.muted{color:#6b7280}
.summary{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}
.panel{background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:12px 14px}
.panel h2{margin-top:0}
table.counts,table.errors{border-collapse:collapse}
table.counts td,table.counts th,table.errors td,table.errors th{padding:3px 10px;
 text-align:left;border-bottom:1px solid #eef0f2;vertical-align:top}
table.brands td:last-child{width:140px}
.bar{display:inline-block;height:10px;background:#8a94a6;border-radius:2px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;
 background:#555}
.badge.copy{background:#c81e1e}.badge.review{background:#dc8c00}
.badge.clear{background:#1e8c3c}.badge.error{background:#6b7280}
svg.histogram text{font-size:11px;fill:#444}svg.histogram .axis{stroke:#444;stroke-width:1}
.legends{margin-top:4px}.legend{margin-right:14px;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.suspect{background:#fff;border:1px solid #d8dde3;border-left:6px solid #999;
 border-radius:8px;padding:10px 14px;margin:12px 0}
.suspect.copy{border-left-color:#c81e1e}.suspect.review{border-left-color:#dc8c00}
.verdict{display:flex;flex-wrap:wrap;gap:14px;align-items:center}
.rank{font-weight:700;color:#6b7280}.key{margin:4px 0 8px}
.pictures{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;width:THUMBpx}figcaption{font-size:12px;margin-top:4px}
figure.listing{padding-right:14px;border-right:1px dashed #c9ced6}
.thumb{display:block;max-width:THUMBpx;max-height:THUMBpx}
.thumb.missing{width:THUMBpx;height:THUMBpx;box-sizing:border-box;padding:10px;
 display:flex;align-items:center;justify-content:center;text-align:center;
 background:#eceef1;border:1px dashed #a0a7b3;color:#4b5563;font-size:12px;overflow-wrap:anywhere}
"""

# No network, no scripts: the page only needs its own styles and data: images.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _render_page(
    results: Path, tally: _Tally, suspects_html: list[str], top: int, thumb_side: int
) -> str:
    counts = tally.counts_by_label()
    written = datetime.fromtimestamp(results.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
    shown = len(suspects_html)
    if shown:
        suspects_note = (
            f"showing {shown:,} of {tally.suspects_total:,} copy/review rows, highest score "
            f"first (limit {top:,})"
        )
    else:
        suspects_note = f"{tally.suspects_total:,} copy/review rows; none shown (limit {top:,})"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>lookalike report: {_e(results.name)}</title>"
        f"<style>{_CSS.replace('THUMB', str(thumb_side))}</style></head><body><main>"
        f"<header><h1>Counterfeit review: {_e(results.name)}</h1>"
        f'<p class="muted"><code>{_e(results)}</code> · written {written} · '
        f"{tally.rows:,} rows</p></header>"
        '<section class="summary">'
        f'<div class="panel"><h2>By label</h2>{_render_label_counts(counts, tally.rows)}</div>'
        f'<div class="panel"><h2>By brand</h2>{_render_brand_counts(tally.counts_by_brand())}'
        "</div>"
        f'<div class="panel"><h2>Scores</h2>{_render_histogram(tally.scores)}</div>'
        "</section>"
        f'<section id="suspects"><h2>Top suspects</h2><p class="muted">{suspects_note}</p>'
        f"{''.join(suspects_html)}</section>"
        f"{_render_errors(tally)}"
        "</main></body></html>\n"
    )


# -- entry point -------------------------------------------------------------------------------


def write_report(
    results: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    top: int = 100,
    index_dir: str | os.PathLike[str] | None = None,
    thumb_side: int = 224,
) -> ReportSummary:
    """Write the HTML review page for ``results`` to ``out`` (atomically).

    ``top``: how many copy/review rows to show, highest score first; only their images are
    read. ``index_dir``: the catalogue index, to find catalogue pictures that the results do
    not name (CSV results never do). Unreadable pictures become placeholders, never errors.
    """
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    if thumb_side < 16:
        raise ValueError(f"thumb_side must be at least 16 pixels, got {thumb_side}")
    path = Path(results)
    fmt = _format_of(path)
    lookup = _CatalogueLookup(_load_index(index_dir))  # a bad index fails before any work
    tally = _tally_rows(path, fmt, top)
    suspects = _full_suspect_rows(path, fmt, tally.suspects())
    # All suspects' listings in one go: a shard is then read once, not once per suspect.
    listings = read_inputs_bytes([row["path"] for row in suspects if row["path"]])
    renderer = _SuspectRenderer(thumb_side, lookup, listings)
    cards = [renderer.render(rank, row) for rank, row in enumerate(suspects, start=1)]
    _write_atomically(Path(out), _render_page(path, tally, cards, top, thumb_side))
    return ReportSummary(
        rows=tally.rows,
        errors=tally.by_label.get("error", 0),
        suspects_shown=len(cards),
        counts_by_label=tally.counts_by_label(),
        counts_by_brand=tally.counts_by_brand(),
    )


def _write_atomically(out: Path, text: str) -> None:
    """A reader (or a browser reloading) sees the old page or the new one, never half; the
    page keeps the mode of the one it replaces."""
    write_atomically(out, lambda handle: handle.write(text.encode("utf-8")))
