"""The catalogue index: FAISS vectors + SQLite metadata, saved as atomic snapshots."""

from .catalog import (
    DEFAULT_FACTORY,
    CatalogIndex,
    CatalogIndexError,
    DuplicateItemError,
    IndexNotFoundError,
)
from .records import AddReport, CatalogItem, CatalogRecord, SearchHit

__all__ = [
    "DEFAULT_FACTORY",
    "AddReport",
    "CatalogIndex",
    "CatalogIndexError",
    "CatalogItem",
    "CatalogRecord",
    "DuplicateItemError",
    "IndexNotFoundError",
    "SearchHit",
]
