"""Embedder: images in, unit-norm descriptors out, batched, without grad, bf16 where it pays."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data.decode import ImageSource, decode_image
from ..data.preprocess import model_input
from ..embeddings import Embeddings, ModelFingerprint

Precision = Literal["auto", "bf16", "fp32"]


def bf16_is_fast() -> bool:
    """True on CPUs with native bf16 matrix units (AVX512-BF16 or AMX), where oneDNN's bf16
    kernels measure 2.5-3.5x faster than fp32; elsewhere bf16 is emulated and slower."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: Precision) -> Literal["bf16", "fp32"]:
    if precision == "auto":
        return "bf16" if bf16_is_fast() else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', not {precision!r}")
    return precision


@dataclass(frozen=True)
class EmbedderRecipe:
    """How to build this embedder again (recorded in each index it builds).

    ``kind``: "registry" (a registered architecture, optionally with ``path`` weights),
    "checkpoint" (a lookalike checkpoint file) or "torchscript" (a whole descriptor model file).
    """

    kind: Literal["registry", "checkpoint", "torchscript"]
    name: str
    path: str | None = None
    input_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "path": self.path,
            "input_size": self.input_size,
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedderRecipe:
        def triple(values: Any) -> tuple[float, float, float] | None:
            return (
                None if values is None else (float(values[0]), float(values[1]), float(values[2]))
            )

        return cls(
            kind=data["kind"],
            name=str(data["name"]),
            path=data.get("path"),
            input_size=data.get("input_size"),
            mean=triple(data.get("mean")),
            std=triple(data.get("std")),
        )


@dataclass
class Embedder:
    """Wraps a descriptor network with its preprocessing.

    ``network`` maps a normalised float batch (N, 3, S, S) to descriptors (N, D); they are
    L2-normalised here again, so external models need not do it themselves.
    """

    network: nn.Module
    fingerprint: ModelFingerprint
    recipe: EmbedderRecipe
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    trained: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    precision: Precision = "auto"
    batch_size: int = 32
    _mean: torch.Tensor = field(init=False, repr=False)
    _std: torch.Tensor = field(init=False, repr=False)
    _precision: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.network.eval()
        self._precision = resolve_precision(self.precision)
        if self._precision == "bf16":
            self.network = self.network.to(memory_format=torch.channels_last)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0

    @property
    def name(self) -> str:
        return self.fingerprint.name

    @property
    def dim(self) -> int:
        return self.fingerprint.dim

    @property
    def active_precision(self) -> str:
        return self._precision

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A decoded RGB image -> uint8 tensor (3, S, S): the whole image, resized, no crop."""
        return torch.from_numpy(model_input(image, self.input_size))

    def load(self, source: ImageSource) -> torch.Tensor:
        """Decode (safely) and preprocess one image; raises ImageDecodeError on bad input."""
        return self.preprocess(decode_image(source, draft_size=self.input_size))

    @torch.inference_mode()
    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """uint8 (N, 3, S, S) -> float32 (N, D) unit-norm descriptors, in batches."""
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected a (N, 3, H, W) batch, got {tuple(pixels.shape)}")
        outputs = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, pixels.shape[0], self.batch_size):
            batch = (pixels[start : start + self.batch_size].float() - self._mean) / self._std
            if self._precision == "bf16":
                batch = batch.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    descriptors = self.network(batch)
            else:
                descriptors = self.network(batch)
            descriptors = F.normalize(descriptors.float(), dim=-1)
            outputs.append(descriptors.numpy())
        return np.concatenate(outputs)

    def embed(self, images: Iterable[ImageSource]) -> Embeddings:
        """Decode, preprocess and embed images (paths, bytes or PIL images).

        Raises ImageDecodeError on the first bad image: batch jobs that must go on past bad
        files decode with ``load`` themselves and embed the good ones with ``embed_pixels``.
        """
        tensors = [self.load(image) for image in images]
        if not tensors:
            return Embeddings(np.zeros((0, self.dim), np.float32), self.fingerprint)
        return Embeddings(self.embed_pixels(torch.stack(tensors)), self.fingerprint)


def untrained_message(name: str) -> str:
    return (
        f"model {name!r} runs with UNTRAINED (randomly initialised, seeded) weights: it finds "
        "exact and lightly edited copies, but its scores and verdicts are not calibrated. "
        "Pass trained weights with --model or --weights."
    )
