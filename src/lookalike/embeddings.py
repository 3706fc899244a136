"""Descriptor vectors tagged with the model that made them (no torch needed here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelFingerprint:
    """Identifies the embedder behind a set of vectors; an index accepts only its own."""

    name: str
    weights_sha256: str
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFingerprint:
        return cls(
            name=str(data["name"]), weights_sha256=str(data["weights_sha256"]), dim=int(data["dim"])
        )

    def short(self) -> str:
        return f"{self.name}@{self.weights_sha256[:12]} (dim {self.dim})"


class EmbedderMismatchError(ValueError):
    """Vectors or queries from one embedder were offered to an index built by another."""

    def __init__(self, expected: ModelFingerprint, got: ModelFingerprint) -> None:
        super().__init__(
            f"the index was built with {expected.short()}, but these vectors come from "
            f"{got.short()}; rebuild the index with this model or query it with its own"
        )
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class Embeddings:
    """``vectors``: (n, dim) float32, unit L2 norm, C-contiguous; ``model``: who made them."""

    vectors: np.ndarray
    model: ModelFingerprint

    def __post_init__(self) -> None:
        vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.model.dim:
            raise ValueError(
                f"expected vectors of shape (n, {self.model.dim}), got {self.vectors.shape}"
            )
        object.__setattr__(self, "vectors", vectors)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def __getitem__(self, rows: slice | list[int] | np.ndarray) -> Embeddings:
        return Embeddings(self.vectors[rows], self.model)
