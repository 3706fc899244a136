"""CatalogIndex: a FAISS index of catalogue descriptors + SQLite for ids and metadata.

FAISS holds vectors under our own int64 row ids (``vid``); everything else — item ids,
brands, provenance — lives in SQLite. Both are saved together as one snapshot folder; a
``CURRENT`` pointer file, replaced atomically, names the live snapshot, so a crash mid-save
leaves the previous snapshot loadable.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..embeddings import EmbedderMismatchError, Embeddings, ModelFingerprint
from .records import AddReport, CatalogItem, CatalogRecord, SearchHit

INDEX_FORMAT = "lookalike.index"
INDEX_VERSION = 1
DEFAULT_FACTORY = "Flat"
_INSTANCES = itertools.count()  # tells index objects apart in ``revision``
CURRENT_FILE = "CURRENT"
SNAPSHOT_PREFIX = "snapshot-"

# Query batches of ~20-200 otherwise take FAISS's non-BLAS path, ~10x slower per query.
faiss.cvar.distance_compute_blas_threshold = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    vid INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL UNIQUE,
    brand TEXT,
    kind TEXT NOT NULL,
    sku TEXT,
    source TEXT,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_brand ON items (brand);
CREATE TABLE IF NOT EXISTS tombstones (vid INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (item_id TEXT PRIMARY KEY, data BLOB NOT NULL);
"""
_RECORD_COLUMNS = "item_id, sha256, brand, kind, sku, source, added_at"


class CatalogIndexError(Exception):
    """Base class of the index's own errors."""


class IndexNotFoundError(CatalogIndexError, FileNotFoundError):
    pass


class DuplicateItemError(CatalogIndexError, ValueError):
    pass


class CatalogIndex:
    """Add / remove / search / save / load catalogue descriptors. Thread-safe."""

    def __init__(
        self,
        model: ModelFingerprint,
        *,
        factory: str = DEFAULT_FACTORY,
        embedder_recipe: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.factory = factory
        self.embedder_recipe = dict(embedder_recipe or {})
        self._faiss = _new_faiss_index(model.dim, factory)
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._instance = next(_INSTANCES)
        self._changes = 0
        self._directory: Path | None = None  # loaded from or last saved to

    # -- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def get(self, item_id: str) -> CatalogRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM items WHERE item_id = ?", (item_id,)
            ).fetchone()
        return CatalogRecord(*row) if row else None

    @property
    def revision(self) -> tuple[int, int]:
        """Changes whenever items are added or removed (and differs between index objects):
        what caches derived from the catalogue compare to know they are stale."""
        return (self._instance, self._changes)

    @property
    def directory(self) -> Path | None:
        """The index folder (of snapshots) this index was loaded from or last saved to; None
        before either. Caches derived from catalogue files, keyed by their sha256, live there."""
        with self._lock:
            return self._directory

    def vectors(self, item_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these items, by item id (approximate for compressed index
        types). Items not in the catalogue are left out, and so are all items of an index
        type that cannot give a vector back."""
        with self._lock:
            found: dict[str, np.ndarray] = {}
            for item_id in item_ids:
                row = self._db.execute("SELECT vid FROM items WHERE item_id = ?", (item_id,))
                hit = row.fetchone()
                if hit is None:
                    continue
                try:
                    found[item_id] = np.asarray(self._faiss.reconstruct(int(hit[0])), np.float32)
                except RuntimeError:
                    return {}
            return found

    def find_sha256(self, sha256: str) -> str | None:
        """The item id already holding a file with these bytes, if any."""
        with self._lock:
            row = self._db.execute("SELECT item_id FROM items WHERE sha256 = ?", (sha256,))
            found = row.fetchone()
        return found[0] if found else None

    def attachment(self, item_id: str) -> bytes | None:
        """The bytes stored with an item (e.g. a logo's clean rendering), if any."""
        with self._lock:
            row = self._db.execute("SELECT data FROM attachments WHERE item_id = ?", (item_id,))
            found = row.fetchone()
        return bytes(found[0]) if found else None

    def records(
        self,
        *,
        brand: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[CatalogRecord]:
        """Records in insertion order, optionally filtered and paged."""
        clauses, params = [], []
        for column, value in (("brand", brand), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_RECORD_COLUMNS} FROM items {where} ORDER BY vid LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(sql, [*params, -1 if limit is None else limit, offset])
            return [CatalogRecord(*row) for row in rows.fetchall()]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            by_kind = dict(self._db.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind"))
            brands = self._db.execute("SELECT COUNT(DISTINCT brand) FROM items").fetchone()[0]
            tombstones = self._db.execute("SELECT COUNT(*) FROM tombstones").fetchone()[0]
        return {
            "items": len(self),
            "by_kind": by_kind,
            "brands": brands,
            "model": self.model.to_dict(),
            "factory": self.factory,
            "faiss_vectors": int(self._faiss.ntotal),
            "tombstones": tombstones,
        }

    def search(self, queries: Embeddings, k: int = 10) -> list[list[SearchHit]]:
        """Top-``k`` catalogue hits per query, best first."""
        self._check_model(queries.model)
        if k < 1:
            raise ValueError("k must be >= 1")
        with self._lock:
            if len(queries) == 0 or self._faiss.ntotal == 0:
                return [[] for _ in range(len(queries))]
            tombstones = self._tombstones()
            fetch = min(k + len(tombstones), int(self._faiss.ntotal))
            scores, vids = self._faiss.search(queries.vectors, fetch)
            wanted = {int(v) for v in vids.ravel() if v >= 0 and int(v) not in tombstones}
            records = self._records_by_vid(wanted)
        results: list[list[SearchHit]] = []
        for row_scores, row_vids in zip(scores, vids, strict=True):
            hits = [
                SearchHit(records[int(vid)], float(score))
                for score, vid in zip(row_scores, row_vids, strict=True)
                if int(vid) in records
            ]
            results.append(hits[:k])
        return results

    # -- changes -------------------------------------------------------------------------

    def add(
        self,
        embeddings: Embeddings,
        items: Sequence[CatalogItem],
        attachments: Sequence[bytes] | None = None,
    ) -> AddReport:
        """Store ``items`` with their vectors; an identical file (same sha256) is stored once.

        ``attachments``: bytes to keep with each item, saved in the same snapshot (so they
        can never disagree with the vectors). A new item id that already exists with other
        content raises DuplicateItemError and nothing is added.
        """
        self._check_model(embeddings.model)
        if len(embeddings) != len(items):
            raise ValueError(f"{len(embeddings)} vectors for {len(items)} items")
        if attachments is not None and len(attachments) != len(items):
            raise ValueError(f"{len(attachments)} attachments for {len(items)} items")
        report = AddReport(added=[], duplicates=[])
        with self._lock:
            keep: list[int] = []
            seen_ids: set[str] = set()
            seen_sha: dict[str, str] = {}
            for row, item in enumerate(items):
                holder = seen_sha.get(item.sha256) or self.find_sha256(item.sha256)
                if holder is not None:
                    report.duplicates.append((item.item_id, holder))
                    continue
                if item.item_id in seen_ids or self.get(item.item_id) is not None:
                    raise DuplicateItemError(
                        f"item id {item.item_id!r} is already in the catalogue with other "
                        "content; remove it first or give the new image another id"
                    )
                seen_ids.add(item.item_id)
                seen_sha[item.sha256] = item.item_id
                keep.append(row)
            if not keep:
                return report
            vectors = embeddings.vectors[keep]
            first_vid = self._next_vid()
            vids = np.arange(first_vid, first_vid + len(keep), dtype=np.int64)
            self._train_if_needed(vectors)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            rows = [
                (int(vid), it.item_id, it.sha256, it.brand, it.kind, it.sku, it.source, now)
                for vid, it in zip(vids, (items[r] for r in keep), strict=True)
            ]
            with self._db:
                self._db.executemany(f"INSERT INTO items VALUES (?, ?, {', '.join('?' * 6)})", rows)
                self._set_setting("next_vid", str(first_vid + len(keep)))
                if attachments is not None:
                    self._db.executemany(
                        "INSERT INTO attachments VALUES (?, ?)",
                        [(items[r].item_id, attachments[r]) for r in keep],
                    )
            self._faiss.add_with_ids(vectors, vids)
            self._changes += 1
            report.added.extend(items[r].item_id for r in keep)
        return report

    def remove(self, item_ids: Iterable[str]) -> list[str]:
        """Remove items by id; returns the ids that were present."""
        with self._lock:
            found: list[tuple[int, str]] = []
            for item_id in item_ids:
                row = self._db.execute("SELECT vid FROM items WHERE item_id = ?", (item_id,))
                hit = row.fetchone()
                if hit:
                    found.append((int(hit[0]), item_id))
            if not found:
                return []
            vids = np.array([vid for vid, _ in found], dtype=np.int64)
            tombstoned: list[int] = vids.tolist()
            if _removal_keeps_ids(self._faiss):
                self._faiss.remove_ids(faiss.IDSelectorBatch(vids))
                tombstoned = []
            with self._db:
                self._db.executemany("DELETE FROM items WHERE vid = ?", [(int(v),) for v in vids])
                self._db.executemany(
                    "DELETE FROM attachments WHERE item_id = ?", [(i,) for _, i in found]
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO tombstones VALUES (?)", [(v,) for v in tombstoned]
                )
            self._changes += 1
            return [item_id for _, item_id in found]

    # -- persistence ---------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (e.g. to ship the index to Ray workers once): vectors and metadata as
        bytes, the same content a snapshot holds."""
        with self._lock:
            return {
                "model": self.model.to_dict(),
                "factory": self.factory,
                "embedder_recipe": self.embedder_recipe,
                "faiss": faiss.serialize_index(self._faiss),
                "sqlite": self._db.serialize(),
            }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            ModelFingerprint.from_dict(state["model"]),
            factory=state["factory"],
            embedder_recipe=state["embedder_recipe"],
        )
        self._faiss = faiss.deserialize_index(state["faiss"])
        _allow_reconstruct(self._faiss)
        self._db.deserialize(state["sqlite"])
        self._db.executescript(_SCHEMA)  # tables added since the state was made

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write a new snapshot, then switch ``CURRENT`` to it atomically."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
            try:
                self._write_snapshot(staging)
                name = f"{SNAPSHOT_PREFIX}{_next_snapshot_number(root):06d}"
                os.rename(staging, root / name)
                _fsync_dir(root)
                _publish_snapshot(root, name)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._directory = root
        _remove_stale_snapshots(root, keep=name)
        return root / name

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CatalogIndex:
        snapshot = current_snapshot(Path(directory))
        meta = json.loads((snapshot / "index.json").read_text())
        if meta.get("format") != INDEX_FORMAT or meta.get("version") != INDEX_VERSION:
            raise CatalogIndexError(
                f"{snapshot}: unsupported index format {meta.get('format')!r} "
                f"version {meta.get('version')!r}"
            )
        index = cls(
            ModelFingerprint.from_dict(meta["model"]),
            factory=meta["factory"],
            embedder_recipe=meta.get("embedder_recipe"),
        )
        index._faiss = faiss.read_index(str(snapshot / "vectors.faiss"))
        _allow_reconstruct(index._faiss)  # snapshots written before inverted files had one
        source = sqlite3.connect(snapshot / "catalog.sqlite")
        try:
            source.backup(index._db)
        finally:
            source.close()
        index._db.executescript(_SCHEMA)  # snapshots written before a table was added
        index._directory = Path(directory)
        return index

    def _write_snapshot(self, folder: Path) -> None:
        faiss.write_index(self._faiss, str(folder / "vectors.faiss"))
        target = sqlite3.connect(folder / "catalog.sqlite")
        try:
            self._db.backup(target)
        finally:
            target.close()
        meta = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "model": self.model.to_dict(),
            "embedder_recipe": self.embedder_recipe,
            "factory": self.factory,
            "items": len(self),
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (folder / "index.json").write_text(json.dumps(meta, indent=2) + "\n")
        for path in folder.iterdir():
            _fsync_file(path)

    # -- internals -----------------------------------------------------------------------

    def _check_model(self, model: ModelFingerprint) -> None:
        if model != self.model:
            raise EmbedderMismatchError(self.model, model)

    def _tombstones(self) -> set[int]:
        return {int(v) for (v,) in self._db.execute("SELECT vid FROM tombstones")}

    def _records_by_vid(self, vids: set[int]) -> dict[int, CatalogRecord]:
        found: dict[int, CatalogRecord] = {}
        ordered = sorted(vids)
        for start in range(0, len(ordered), 500):  # stay under SQLite's host-parameter limit
            chunk = ordered[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT vid, {_RECORD_COLUMNS} FROM items WHERE vid IN ({marks})"
            for vid, *fields in self._db.execute(sql, chunk):
                found[int(vid)] = CatalogRecord(*fields)
        return found

    def _next_vid(self) -> int:
        row = self._db.execute("SELECT value FROM settings WHERE key = 'next_vid'").fetchone()
        return int(row[0]) if row else 0

    def _set_setting(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))

    def _train_if_needed(self, vectors: np.ndarray) -> None:
        if self._faiss.is_trained:
            return
        try:
            self._faiss.train(vectors)
        except RuntimeError as exc:
            raise CatalogIndexError(
                f"index type {self.factory!r} must be trained first and {len(vectors)} vectors "
                f"are not enough ({exc}); add more images at once or use 'Flat' / 'HNSW32'"
            ) from exc


def _new_faiss_index(dim: int, factory: str) -> faiss.Index:
    try:
        inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"bad FAISS factory string {factory!r}: {exc}") from exc
    index = faiss.IndexIDMap2(inner)
    _allow_reconstruct(index)
    return index


def _inner(index: Any) -> Any:
    """The index under the id map and any pre-transforms (PCA, OPQ)."""
    inner = faiss.downcast_index(index.index)
    while isinstance(inner, faiss.IndexPreTransform):
        inner = faiss.downcast_index(inner.index)
    return inner


def _removal_keeps_ids(index: faiss.Index) -> bool:
    """Whether ``remove_ids`` leaves the id map right: the id map assumes the vectors after
    a removed one move down a place, which flat storage (Flat, SQ, PQ) does; an inverted
    file (IVF) keeps its positions, so every later item would be reported under another
    item's id, and a graph (HNSW) cannot remove at all. Those get tombstones instead."""
    return isinstance(_inner(index), faiss.IndexFlatCodes)


def _allow_reconstruct(index: faiss.Index) -> None:
    """Give an inverted file a direct map, so stored vectors can be read back by id (for
    scoring keypoint voting's candidates); nothing is ever removed from one (tombstones),
    so its positions stay consecutive, as the map needs."""
    ivf = faiss.try_extract_index_ivf(_inner(index))
    no_map = faiss.DirectMap.NoMap  # type: ignore[attr-defined]
    if ivf is not None and ivf.direct_map.type == no_map:
        with contextlib.suppress(RuntimeError):  # a kind without one: vectors() gives none
            ivf.make_direct_map()


def current_snapshot(root: Path) -> Path:
    """The snapshot folder that ``CURRENT`` names; IndexNotFoundError if there is none."""
    pointer = root / CURRENT_FILE
    if not pointer.is_file():
        raise IndexNotFoundError(f"{root}: no lookalike index here (no {CURRENT_FILE} file)")
    snapshot = root / pointer.read_text().strip()
    if not (snapshot / "index.json").is_file():
        raise IndexNotFoundError(f"{root}: {CURRENT_FILE} names a missing snapshot {snapshot}")
    return snapshot


def _publish_snapshot(root: Path, name: str) -> None:
    """The commit point of a save: replace CURRENT in one atomic rename."""
    tmp = root / f".{CURRENT_FILE}.tmp"
    with open(tmp, "w") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, root / CURRENT_FILE)
    _fsync_dir(root)


def _next_snapshot_number(root: Path) -> int:
    numbers = [
        int(path.name[len(SNAPSHOT_PREFIX) :])
        for path in root.glob(f"{SNAPSHOT_PREFIX}*")
        if path.name[len(SNAPSHOT_PREFIX) :].isdigit()
    ]
    return max(numbers, default=0) + 1


def _remove_stale_snapshots(root: Path, keep: str) -> None:
    for path in root.iterdir():
        stale = path.name.startswith((SNAPSHOT_PREFIX, ".staging-")) and path.name != keep
        if stale and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
