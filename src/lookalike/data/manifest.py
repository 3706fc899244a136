"""Catalogue listing: which reference images exist, and what each one is.

A catalogue is a folder of images (brand and kind read from its layout), a CSV or JSONL
manifest, a folder holding such a manifest, or a single image file.
"""

from __future__ import annotations

import csv
import errno
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

__all__ = [
    "ENTRY_KINDS",
    "IMAGE_EXTENSIONS",
    "LOGO_ONLY_EXTENSIONS",
    "CatalogEntry",
    "ManifestError",
    "is_vector_logo",
    "iter_image_files",
    "load_catalog",
    "read_manifest",
    "scan_catalog_folder",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
# Vector logos: indexed for logo search only (rendered), never decoded as photos.
LOGO_ONLY_EXTENSIONS = (".svg",)
ENTRY_KINDS = ("product", "logo")

_MANIFEST_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson"})
_FOLDER_MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
_LOGO_FOLDER_NAMES = frozenset({"logo", "logos"})

_Row = tuple[int, dict[str, object]]  # (1-based line number, column -> value)


@dataclass(frozen=True)
class CatalogEntry:
    """One reference image in the catalogue."""

    image: Path
    item_id: str
    brand: str | None = None
    kind: str = "product"
    sku: str | None = None


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and, if known, the line."""

    def __init__(self, path: str | os.PathLike[str], reason: str, line: int | None = None) -> None:
        # All fields go to the base class so the error pickles with them intact.
        super().__init__(path, reason, line)
        self.path = Path(path)
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        where = f"manifest '{self.path}'"
        if self.line is not None:
            where += f", line {self.line}"
        return f"{where}: {self.reason}"


def is_vector_logo(entry: CatalogEntry) -> bool:
    """An SVG logo: rendered for logo search, never decoded as a photo."""
    return entry.image.suffix.lower() in LOGO_ONLY_EXTENSIONS


def iter_image_files(paths: Iterable[str | Path], *, also: Iterable[str] = ()) -> Iterator[Path]:
    """Yield named files as they are, and the images found (recursively) in named folders;
    ``also``: more file-name endings to collect from folders (e.g. ``.tar`` shards)."""
    endings = tuple(IMAGE_EXTENSIONS) + tuple(ending.lower() for ending in also)
    for raw in paths:
        path = Path(raw)
        _require_exists(path)
        if path.is_dir():
            yield from _walk_images(path, endings)
        else:
            yield path  # named explicitly, so taken whatever its extension


def read_manifest(path: Path, *, root: Path | None = None) -> list[CatalogEntry]:
    """Read a CSV (header row required) or JSONL manifest, chosen by extension.

    Relative `image` paths are resolved against `root`, by default the manifest's folder.
    """
    path = Path(path)
    base = path.parent if root is None else Path(root)
    first_line: dict[str, int] = {}
    entries = []
    for line, row in _read_rows(path):
        entry = _entry_from_row(row, base, path, line)
        if entry.item_id in first_line:
            first = first_line[entry.item_id]
            reason = f"duplicate item_id {entry.item_id!r} (first used on line {first})"
            raise ManifestError(path, reason, line)
        first_line[entry.item_id] = line
        entries.append(entry)
    return entries


def scan_catalog_folder(folder: Path) -> list[CatalogEntry]:
    """List every image under `folder`, reading brand and kind from the folder layout.

    The brand is the first folder below `folder` not named logo/logos; an image is a logo
    if any folder on its way is named logo or logos. Item ids are file stems, except that
    files sharing a stem all use their relative path without extension instead.
    """
    folder = Path(folder)
    _require_exists(folder)
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "catalogue folder is not a directory", str(folder))
    files = list(iter_image_files([folder], also=LOGO_ONLY_EXTENSIONS))
    relatives = [file.relative_to(folder) for file in files]
    return [
        CatalogEntry(image=file, item_id=item_id, brand=_brand(rel), kind=_kind(rel))
        for file, rel, item_id in zip(files, relatives, _unique_item_ids(relatives), strict=True)
    ]


def load_catalog(catalogue: Path, manifest: Path | None = None) -> list[CatalogEntry]:
    """List a catalogue given as a folder, a manifest file, or a single image.

    An explicit `manifest` wins (its relative paths resolved against a folder `catalogue`);
    then a manifest named as the catalogue; then `manifest.csv` / `manifest.jsonl` at the top
    of a folder; then a scan of the folder.
    """
    catalogue = Path(catalogue)
    _require_exists(catalogue)
    if manifest is not None:
        return read_manifest(Path(manifest), root=catalogue if catalogue.is_dir() else None)
    if catalogue.is_dir():
        found = _folder_manifest(catalogue)
        return read_manifest(found) if found is not None else scan_catalog_folder(catalogue)
    if catalogue.suffix.lower() in _MANIFEST_SUFFIXES:
        return read_manifest(catalogue)
    return [CatalogEntry(image=catalogue, item_id=catalogue.stem)]


def _require_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file or directory", str(path))


def _raise(exc: OSError) -> None:
    raise exc


def _walk_images(root: Path, endings: tuple[str, ...] = tuple(IMAGE_EXTENSIONS)) -> Iterator[Path]:
    visited: set[str] = set()
    # Raise on unreadable folders rather than silently listing a partial catalogue.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=_raise):
        real = os.path.realpath(dirpath)
        if real in visited:
            # Reached again through a symlink (possibly a loop): never walk a folder twice.
            dirnames.clear()
            continue
        visited.add(real)
        # Sorting in place also fixes the order os.walk descends in.
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            # isfile also drops broken or looping symlinks, which os.walk lists as files.
            if _has_ending(name, endings) and os.path.isfile(os.path.join(dirpath, name)):
                yield Path(dirpath, name)


def _has_ending(name: str, endings: tuple[str, ...]) -> bool:
    return not name.startswith(".") and name.lower().endswith(endings)


def _folders(relative: PurePath) -> tuple[str, ...]:
    return relative.parts[:-1]


def _brand(relative: PurePath) -> str | None:
    brands = (name for name in _folders(relative) if name.lower() not in _LOGO_FOLDER_NAMES)
    return next(brands, None)


def _kind(relative: PurePath) -> str:
    is_logo = any(name.lower() in _LOGO_FOLDER_NAMES for name in _folders(relative))
    is_logo = is_logo or relative.suffix.lower() in LOGO_ONLY_EXTENSIONS
    return "logo" if is_logo else "product"


def _unique_item_ids(relatives: list[Path]) -> list[str]:
    """File stems where unique, else the relative path without (or, failing that, with) suffix."""
    stems = Counter(rel.stem for rel in relatives)
    no_suffix = Counter(rel.with_suffix("").as_posix() for rel in relatives)

    def item_id(rel: Path) -> str:
        if stems[rel.stem] == 1:
            return rel.stem
        if no_suffix[rel.with_suffix("").as_posix()] == 1:
            return rel.with_suffix("").as_posix()
        return rel.as_posix()  # e.g. shoe.jpg next to shoe.png

    return [item_id(rel) for rel in relatives]


def _folder_manifest(folder: Path) -> Path | None:
    found = [folder / name for name in _FOLDER_MANIFEST_NAMES if (folder / name).is_file()]
    if len(found) > 1:
        raise ManifestError(folder, "both manifest.csv and manifest.jsonl found; keep only one")
    return found[0] if found else None


def _read_rows(path: Path) -> list[_Row]:
    suffix = path.suffix.lower()
    if suffix not in _MANIFEST_SUFFIXES:
        raise ManifestError(path, f"unsupported manifest type {suffix!r} (use .csv or .jsonl)")
    try:
        return _read_csv_rows(path) if suffix == ".csv" else _read_jsonl_rows(path)
    except UnicodeDecodeError as exc:
        raise ManifestError(path, f"not valid UTF-8 text ({exc.reason})") from exc


def _read_csv_rows(path: Path) -> list[_Row]:
    # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        try:
            header = next(reader, None)
            if header is None:
                raise ManifestError(path, "file is empty; a header row is required")
            columns = [_column_name(name) for name in header]
            if "image" not in columns:
                reason = "missing required column 'image' (the first row must be a header)"
                raise ManifestError(path, reason, reader.line_num)
            rows: list[_Row] = []
            for values in reader:
                if any(value.strip() for value in values):
                    # Short rows leave columns unset; extra values are ignored.
                    row: dict[str, object] = dict(zip(columns, values, strict=False))
                    rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise ManifestError(path, f"invalid CSV: {exc}", reader.line_num) from exc
    return rows


def _read_jsonl_rows(path: Path) -> list[_Row]:
    rows: list[_Row] = []
    with path.open(encoding="utf-8-sig") as file:
        for line, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ManifestError(path, f"invalid JSON: {exc.msg}", line) from exc
            if not isinstance(value, dict):
                raise ManifestError(path, "expected a JSON object", line)
            rows.append((line, {_column_name(key): item for key, item in value.items()}))
    return rows


def _column_name(name: str) -> str:
    return name.strip().lower()


def _entry_from_row(row: dict[str, object], base: Path, path: Path, line: int) -> CatalogEntry:
    image = _text(row, "image", path, line)
    if image is None:
        raise ManifestError(path, "missing or empty 'image'", line)
    image_path = Path(image)
    if not image_path.is_absolute():
        image_path = base / image_path
    kind = (_text(row, "kind", path, line) or "product").lower()
    if kind not in ENTRY_KINDS:
        raise ManifestError(path, f"invalid kind {kind!r} (expected 'product' or 'logo')", line)
    return CatalogEntry(
        image=image_path,
        item_id=_text(row, "item_id", path, line) or image_path.stem,
        brand=_text(row, "brand", path, line),
        kind=kind,
        sku=_text(row, "sku", path, line),
    )


def _text(row: dict[str, object], column: str, path: Path, line: int) -> str | None:
    """A stripped text value; None when absent or blank. Integers (ids, SKUs) become text."""
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ManifestError(path, f"{column!r} must be text, not {type(value).__name__}", line)
    return str(value).strip() or None
