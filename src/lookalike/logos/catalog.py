"""LogoCatalog: the catalogue's logos as region descriptors, with their clean renderings.

Each logo is rendered once (PNG, or SVG through cairosvg), drawn on a window-like canvas and
embedded by the logo network. The vectors live in a :class:`~lookalike.index.CatalogIndex`
(snapshots, atomic saves, a model fingerprint that refuses other models' queries); each
item's clean rendering is stored beside its vector in the same snapshot, because
verification and evidence images need the logo itself and catalogue files move or vanish.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.decode import ImageDecodeError, read_image_bytes
from ..data.logos import render_logo
from ..data.manifest import CatalogEntry
from ..embeddings import Embeddings
from ..index import CatalogIndex, CatalogItem, CatalogRecord
from ..model.embedder import bf16_is_fast
from .network import LogoModel, load_logo_model
from .windows import logo_window

# Stored renderings: big enough for keypoints and evidence, small enough for 4,000 logos.
REFERENCE_SIDE = 256
LOGO_INDEX_FOLDER = "logos"  # inside a catalogue index folder
DEFAULT_LOGO_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "logo.pt"


def resolve_logo_model(ref: str | os.PathLike[str] = "default") -> LogoModel:
    """ "default" -> the shipped logo model; anything else is a checkpoint file."""
    path = DEFAULT_LOGO_WEIGHTS if str(ref) == "default" else Path(ref)
    return load_logo_model(path)


def logo_index_dir(index_dir: str | os.PathLike[str]) -> Path:
    return Path(index_dir) / LOGO_INDEX_FOLDER


def has_logo_index(index_dir: str | os.PathLike[str]) -> bool:
    return (logo_index_dir(index_dir) / "CURRENT").is_file()


@dataclass
class LogoIndexingReport:
    added: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def summary(self) -> dict[str, object]:
        return {
            "added": len(self.added),
            "duplicates_skipped": len(self.duplicates),
            "errors": [{"image": image, "error": error} for image, error in self.errors],
        }


@torch.inference_mode()
def embed_windows(
    model: LogoModel, pixels: npt.NDArray[np.uint8], batch_size: int = 256
) -> npt.NDArray[np.float32]:
    """uint8 (N, C, S, S) windows -> float32 (N, dim) unit vectors."""
    outputs = [np.zeros((0, model.config.dim), np.float32)]
    use_bf16 = bf16_is_fast()
    for start in range(0, len(pixels), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(pixels[start : start + batch_size]))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            vectors = model.inference_network(batch)
        outputs.append(vectors.float().numpy())
    return np.concatenate(outputs)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


class LogoCatalog:
    """Logo vectors + clean renderings; ``model_ref`` records which logo model made them
    ("default" for the shipped one, else a file path) so a loaded catalogue rebuilds it."""

    def __init__(
        self, model: LogoModel, index: CatalogIndex | None = None, *, model_ref: str = "default"
    ) -> None:
        self.model = model
        self.index = index or CatalogIndex(
            model.fingerprint, embedder_recipe={"logo_model": model_ref}
        )
        self.model_ref = str(self.index.embedder_recipe.get("logo_model", model_ref))
        self._renderings: dict[str, Image.Image] = {}
        # keyed by (item id, file sha256, k): a logo replaced under the same id is measured anew
        self._impostor_shifts: dict[tuple[str, str, int], float] = {}

    def __len__(self) -> int:
        return len(self.index)

    def add(self, entries: Sequence[CatalogEntry], *, progress: bool = False) -> LogoIndexingReport:
        """Render, embed and store logo entries; unreadable files are reported, not fatal."""
        report = LogoIndexingReport()
        items: list[CatalogItem] = []
        windows: list[npt.NDArray[np.uint8]] = []
        renderings: list[bytes] = []
        for entry in tqdm(entries, desc="indexing logos", unit="logo", disable=not progress):
            try:
                data = read_image_bytes(entry.image)
                # SVGs by path: the suffix tells an SVG whatever its first bytes are
                svg = entry.image.suffix.lower() == ".svg"
                logo = render_logo(entry.image if svg else data, REFERENCE_SIDE)
            except ImageDecodeError as exc:  # LogoRenderError included
                report.errors.append((str(entry.image), str(exc)))
                continue
            sha = hashlib.sha256(data).hexdigest()
            source = str(entry.image)
            items.append(CatalogItem(entry.item_id, sha, entry.brand, "logo", entry.sku, source))
            windows.append(
                logo_window(logo, self.model.config.input_size, self.model.config.channels)
            )
            renderings.append(_png(logo))
        if items:
            vectors = embed_windows(self.model, np.stack(windows))
            added = self.index.add(Embeddings(vectors, self.model.fingerprint), items, renderings)
            report.added.extend(added.added)
            report.duplicates.extend(added.duplicates)
        return report

    def remove(self, item_ids: Sequence[str]) -> list[str]:
        for item_id in item_ids:
            self._renderings.pop(item_id, None)
        return self.index.remove(item_ids)

    def rendering(self, record: CatalogRecord) -> Image.Image:
        """The logo as indexed (RGBA, transparent around it), cached in memory."""
        cached = self._renderings.get(record.item_id)
        if cached is None:
            data = self.index.attachment(record.item_id)
            if data is None:  # indexed by hand without a rendering: fall back to the file
                cached = render_logo(Path(record.source or ""), REFERENCE_SIDE)
            else:
                cached = Image.open(io.BytesIO(data))
                cached.load()
            self._renderings[record.item_id] = cached
        return cached

    def impostor_shifts(self, records: Sequence[CatalogRecord], k: int) -> dict[str, float]:
        """By item id, how far each logo's impostor level (the mean of its ``k`` best
        similarities with the model's background bank) lies above the bank's typical level;
        0 for every logo when the model has no bank or the index cannot give vectors back.
        Measured once per logo (~0.3 ms), then cached."""
        bank = self.model.background
        if bank is None:
            return {record.item_id: 0.0 for record in records}
        missing = [r for r in records if (r.item_id, r.sha256, k) not in self._impostor_shifts]
        if missing:
            vectors = self.index.vectors(record.item_id for record in missing)
            found = [record for record in missing if record.item_id in vectors]
            levels: dict[str, float] = {}
            if found:
                measured = bank.levels(np.stack([vectors[r.item_id] for r in found]), k)
                levels = {r.item_id: float(v) for r, v in zip(found, measured, strict=True)}
            for record in missing:
                level = levels.get(record.item_id)
                shift = 0.0 if level is None else level - bank.typical_level
                self._impostor_shifts[(record.item_id, record.sha256, k)] = shift
        return {
            record.item_id: self._impostor_shifts.get((record.item_id, record.sha256, k), 0.0)
            for record in records
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        return self.index.save(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], model: LogoModel | None = None) -> LogoCatalog:
        """Load a saved catalogue with ``model``, by default the one it records."""
        index = CatalogIndex.load(directory)
        ref = str(index.embedder_recipe.get("logo_model", "default"))
        return cls(model or resolve_logo_model(ref), index, model_ref=ref)
