"""How much a catalogue logo looks like photos that show no logo at all.

Simple logos (a disc, a triangle, a bar, a star) resemble shapes that many listing photos
hold: price tags, stickers, a strap, a leg. The logo network finds such a logo, and outline
alignment confirms its shape, in photos that show no logo; a detailed wordmark it finds only
where it is. A logo's *impostor level* is the mean of its ``k`` best similarities with a
bank of windows cut from photos without any catalogue logo; the matcher lowers a logo's
score by its level above the bank's typical level (the mean term of Z-norm in speaker
verification; the hubness term of CSLS, Conneau et al. 2018).

The bank is made with the logo model that embeds it (:func:`make_background_bank`, when the
model is calibrated) and travels in its checkpoint, as int8 vectors (32,768 x 128 dims:
4 MB).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

MAX_BANK_WINDOWS = 32_768
_INT8_SCALE = 127.0
_CHUNK = 512  # logo vectors scored against the bank at a time (512 x 32,768 floats: 64 MB)


@dataclass(frozen=True, eq=False)
class BackgroundBank:
    """``vectors``: (N, dim) unit vectors of windows that show no catalogue logo;
    ``typical_level``: the median impostor level of the logos it was made against, the level
    at which a logo's score is left as it is."""

    vectors: npt.NDArray[np.float32]
    typical_level: float

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.vectors) == 0:
            raise ValueError(f"a background bank needs (N, dim) vectors, got {self.vectors.shape}")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def levels(self, vectors: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.float32]:
        """(M, dim) logo vectors -> (M,) the mean of each one's ``k`` best similarities with
        the bank's windows."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        k = min(k, len(self.vectors))
        out = np.empty(len(vectors), np.float32)
        for start in range(0, len(vectors), _CHUNK):
            similarity = vectors[start : start + _CHUNK] @ self.vectors.T
            best = np.partition(similarity, -k, axis=1)[:, -k:]
            out[start : start + _CHUNK] = best.mean(axis=1)
        return out

    def to_payload(self) -> dict[str, Any]:
        """For a checkpoint: int8 vectors (cosines move by < 0.01) and the typical level."""
        quantised = np.clip(np.rint(self.vectors * _INT8_SCALE), -127, 127).astype(np.int8)
        return {"vectors": torch.from_numpy(quantised), "typical_level": self.typical_level}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> BackgroundBank:
        vectors = payload["vectors"].numpy().astype(np.float32) / _INT8_SCALE
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return cls(vectors / np.maximum(norms, 1e-12), float(payload["typical_level"]))


def make_background_bank(
    windows: Iterable[npt.NDArray[np.float32]],
    logo_vectors: npt.NDArray[np.float32],
    k: int,
    *,
    max_windows: int = MAX_BANK_WINDOWS,
    seed: int = 0,
) -> BackgroundBank:
    """A bank of at most ``max_windows`` window vectors (a seeded sample when there are more),
    whose typical level is the median level of ``logo_vectors`` (the catalogue it is made
    against) with ``k`` best windows."""
    vectors = np.concatenate([np.asarray(w, np.float32) for w in windows])
    if len(vectors) > max_windows:
        keep = np.random.default_rng(seed).choice(len(vectors), max_windows, replace=False)
        vectors = vectors[np.sort(keep)]
    # stored as int8: measure the typical level on the vectors as they will be loaded
    bank = BackgroundBank.from_payload(BackgroundBank(vectors, 0.0).to_payload())
    typical = float(np.median(bank.levels(logo_vectors, k))) if len(logo_vectors) else 0.0
    return BackgroundBank(bank.vectors, typical)
