"""Catalogue administration through the API: add, read, page, remove, stats.

Changes go into the same ``CatalogIndex`` the Detector searches (thread-safe), so the next
check sees them at once, and each change is saved as a new atomic snapshot before the request
returns, so it survives a restart. One lock serialises the writers; checks keep running, held
up only while the snapshot is written. Uploaded images are kept under ``images_dir`` by
content (sha256), so each record's ``source`` stays valid for evidence and the review page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..embeddings import Embeddings
from ..index import CatalogIndex, CatalogItem, CatalogRecord
from ..model import Embedder
from .batcher import MicroBatcher
from .checking import CheckService
from .errors import ApiError

_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class NewItem:
    item_id: str | None
    brand: str | None
    kind: str
    sku: str | None


class IndexVersion:
    """The snapshot the served index matches on disk; changes with every saved change."""

    def __init__(self, snapshot: str) -> None:
        self.snapshot = snapshot


class CatalogueService:
    def __init__(
        self,
        index: CatalogIndex,
        embedder: Embedder,
        checks: CheckService,
        batcher: MicroBatcher,
        *,
        index_dir: Path,
        images_dir: Path,
        version: IndexVersion,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.checks = checks
        self.batcher = batcher
        self.index_dir = index_dir
        self.images_dir = images_dir
        self.version = version
        self._write_lock = threading.Lock()

    # -- reads ------------------------------------------------------------------------------------

    def get(self, item_id: str) -> CatalogRecord:
        record = self.index.get(item_id)
        if record is None:
            raise ApiError(404, "item_not_found", f"no catalogue item {item_id!r}")
        return record

    def page(
        self, *, brand: str | None, kind: str | None, limit: int, offset: int
    ) -> tuple[list[CatalogRecord], int | None]:
        """One page and the offset of the next (None on the last page)."""
        # One extra row tells whether another page follows, without counting them all.
        rows = self.index.records(brand=brand, kind=kind, limit=limit + 1, offset=offset)
        next_offset = offset + limit if len(rows) > limit else None
        return rows[:limit], next_offset

    def stats(self) -> dict[str, Any]:
        return {**self.index.stats(), "snapshot": self.version.snapshot}

    def image_path(self, item_id: str) -> Path:
        record = self.get(item_id)
        path = Path(record.source) if record.source else None
        if path is None or not path.is_file():
            message = f"the image file of {item_id!r} is not available"
            raise ApiError(404, "image_not_found", message)
        return path

    # -- writes -----------------------------------------------------------------------------------

    async def add(self, data: bytes, new: NewItem) -> CatalogRecord:
        decoded = await self.checks.decode(data)  # the same safe decoder and limits as checks
        sha256 = hashlib.sha256(data).hexdigest()
        self._refuse_duplicates(sha256, new.item_id)
        # Embedding waits its turn in the one inference thread, between check batches.
        vectors = await self.batcher.run_in_inference_thread(
            self.embedder.embed_pixels, decoded.pixels.unsqueeze(0)
        )
        item_id = new.item_id or sha256[:16]
        extension = _EXTENSIONS.get(decoded.format or "", (decoded.format or "img").lower())
        return await asyncio.to_thread(
            self._commit_add, data, sha256, extension, vectors, item_id, new
        )

    async def remove(self, item_id: str) -> CatalogRecord:
        return await asyncio.to_thread(self._commit_remove, item_id)

    def _refuse_duplicates(self, sha256: str, item_id: str | None) -> None:
        holder = self.index.find_sha256(sha256)
        if holder is not None:
            raise ApiError(
                409, "duplicate_image", f"this image is already in the catalogue as {holder!r}"
            )
        if item_id is not None and self.index.get(item_id) is not None:
            raise ApiError(
                409,
                "duplicate_item_id",
                f"item id {item_id!r} is already in the catalogue; remove it first",
            )

    def _commit_add(
        self,
        data: bytes,
        sha256: str,
        extension: str,
        vectors: np.ndarray,
        item_id: str,
        new: NewItem,
    ) -> CatalogRecord:
        with self._write_lock:
            # Checked again under the lock: another add may have won the race.
            self._refuse_duplicates(sha256, item_id)
            path, created = self._store_image(sha256, extension, data)
            item = CatalogItem(item_id, sha256, new.brand, new.kind, new.sku, str(path))
            try:
                self.index.add(Embeddings(vectors, self.embedder.fingerprint), [item])
                try:
                    self.version.snapshot = self.index.save(self.index_dir).name
                except BaseException:
                    self.index.remove([item_id])  # not saved: not served either
                    raise
            except BaseException:
                if created:
                    path.unlink(missing_ok=True)
                raise
            return self.get(item_id)

    def _commit_remove(self, item_id: str) -> CatalogRecord:
        with self._write_lock:
            record = self.get(item_id)
            self.index.remove([item_id])
            self.version.snapshot = self.index.save(self.index_dir).name
            # Only files this service stored go; catalogue folders indexed by the CLI stay.
            # After the save: a crash in between leaves a stray file, never a dangling record.
            if record.source and self._owns(Path(record.source)):
                Path(record.source).unlink(missing_ok=True)
            return record

    def _owns(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.images_dir.resolve())

    def _store_image(self, sha256: str, extension: str, data: bytes) -> tuple[Path, bool]:
        """Write ``images_dir/ab/abcdef....ext`` atomically; (path, whether it is new)."""
        folder = self.images_dir / sha256[:2]
        path = (folder / f"{sha256}.{extension}").resolve()
        if path.is_file():
            return path, False
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path, True
