"""Catalogue records: what the index knows about each authentic image besides its vector."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CatalogItem:
    """An image to add: its identity and provenance. ``sha256`` is of the file's bytes."""

    item_id: str
    sha256: str
    brand: str | None = None
    kind: str = "product"
    sku: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class CatalogRecord:
    """An indexed image, as stored (``added_at``: ISO-8601 UTC)."""

    item_id: str
    sha256: str
    brand: str | None
    kind: str
    sku: str | None
    source: str | None
    added_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchHit:
    record: CatalogRecord
    score: float  # inner product of unit vectors: cosine similarity in [-1, 1]


@dataclass
class AddReport:
    """``added``: item ids stored; ``duplicates``: (item_id, existing item id) pairs skipped
    because the identical file is already indexed."""

    added: list[str]
    duplicates: list[tuple[str, str]]
