"""Catalogue entries -> vectors -> CatalogIndex, going on past unreadable files."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .data.decode import decode_image, read_image_bytes
from .data.loader import load_batches
from .data.manifest import CatalogEntry
from .embeddings import Embeddings
from .index import CatalogIndex, CatalogItem
from .model import Embedder


@dataclass
class IndexingReport:
    added: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (item id, kept item id)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (image path, reason)

    def summary(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "duplicates_skipped": len(self.duplicates),
            "errors": [{"image": image, "error": error} for image, error in self.errors],
        }


@dataclass(frozen=True)
class _Prepared:
    pixels: torch.Tensor
    sha256: str


def new_index_for(embedder: Embedder, factory: str = "Flat") -> CatalogIndex:
    """An empty index bound to ``embedder`` (it records how to rebuild that embedder)."""
    return CatalogIndex(
        embedder.fingerprint, factory=factory, embedder_recipe=embedder.recipe.to_dict()
    )


def add_entries(
    index: CatalogIndex,
    embedder: Embedder,
    entries: Sequence[CatalogEntry],
    *,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
) -> IndexingReport:
    """Embed and add catalogue entries; bad images are reported, not fatal."""
    report = IndexingReport()

    def prepare(entry: CatalogEntry) -> _Prepared:
        data = read_image_bytes(entry.image)
        image = decode_image(data, draft_size=embedder.input_size)
        return _Prepared(embedder.preprocess(image), hashlib.sha256(data).hexdigest())

    bar = tqdm(total=len(entries), desc="indexing", unit="img", disable=not progress)
    for batch in load_batches(entries, prepare, batch_size=batch_size, workers=workers):
        good = [(loaded.source, loaded.value) for loaded in batch if loaded.value is not None]
        report.errors.extend((str(x.source.image), x.error) for x in batch if x.error)
        if good:
            vectors = embedder.embed_pixels(torch.stack([p.pixels for _, p in good]))
            items = [
                CatalogItem(e.item_id, p.sha256, e.brand, e.kind, e.sku, str(e.image))
                for e, p in good
            ]
            added = index.add(Embeddings(vectors, embedder.fingerprint), items)
            report.added.extend(added.added)
            report.duplicates.extend(added.duplicates)
        bar.update(len(batch))
    bar.close()
    return report
