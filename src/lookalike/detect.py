"""Detector: the one place where embedder, index and thresholds meet to give verdicts."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from .data.decode import ImageSource
from .data.preprocess import PreparedImage, Preprocessor
from .embeddings import EmbedderMismatchError, Embeddings
from .index import CatalogIndex, SearchHit
from .model import Embedder, EmbedderRecipe, create_embedder, create_embedder_from_recipe
from .model.embedder import Precision
from .rerank import LocalVerifier, RerankConfig, rescored
from .training.calibration import Calibration

Label = Literal["copy", "review", "clear"]
LABELS: tuple[Label, ...] = ("copy", "review", "clear")


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs: ``score >= copy`` -> copy; ``score >= review`` -> review; else clear.

    Defaults are conservative guesses for an uncalibrated model; a calibrated checkpoint
    carries its own in its metadata (key ``thresholds``), which the Detector uses instead.
    """

    copy: float = 0.90
    review: float = 0.80

    def __post_init__(self) -> None:
        if not self.review <= self.copy:
            raise ValueError(f"review threshold {self.review} is above copy {self.copy}")

    def label(self, score: float) -> Label:
        if score >= self.copy:
            return "copy"
        return "review" if score >= self.review else "clear"

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], key: str = "thresholds") -> Thresholds | None:
        values = metadata.get(key)
        if not isinstance(values, dict):
            return None
        return cls(copy=float(values["copy"]), review=float(values["review"]))


@dataclass(frozen=True)
class Match:
    """A catalogue image the listing photo resembles."""

    item_id: str
    score: float
    brand: str | None
    kind: str
    sku: str | None
    source: str | None
    sha256: str

    @classmethod
    def from_hit(cls, hit: SearchHit) -> Match:
        record = hit.record
        return cls(
            record.item_id,
            round(hit.score, 6),
            record.brand,
            record.kind,
            record.sku,
            record.source,
            record.sha256,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """``score``: the best match's similarity (0.0 with an empty catalogue); ``matches``: best
    first; ``expected_precision``: from calibration, None while the model is uncalibrated."""

    label: Label
    score: float
    matches: tuple[Match, ...]
    expected_precision: float | None = None

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "expected_precision": self.expected_precision,
            "matches": [m.to_dict() for m in self.matches],
        }


class Detector:
    """Checks listing photos against an indexed catalogue.

    With a ``verifier`` the descriptor's shortlist is re-ranked by local-feature verification
    (see :mod:`lookalike.rerank`); scores are then fused scores, which a calibration made
    with the same verifier settings maps to expected precision.
    """

    def __init__(
        self,
        embedder: Embedder,
        index: CatalogIndex,
        thresholds: Thresholds | None = None,
        *,
        calibration: Calibration | None = None,
        verifier: LocalVerifier | None = None,
        top_k: int = 5,
    ) -> None:
        if embedder.fingerprint != index.model:
            raise EmbedderMismatchError(index.model, embedder.fingerprint)
        self.embedder = embedder
        self.index = index
        # A calibrated model carries one calibration per mode: scores with local verification
        # are fused scores, on another scale than descriptor-only ones.
        suffix = "_verified" if verifier is not None else ""
        metadata = embedder.metadata
        self.thresholds = (
            thresholds or Thresholds.from_metadata(metadata, f"thresholds{suffix}") or Thresholds()
        )
        if calibration is None and isinstance(metadata.get(f"calibration{suffix}"), dict):
            calibration = Calibration.from_dict(metadata[f"calibration{suffix}"])
        self.calibration = calibration
        self.verifier = verifier
        self.top_k = top_k

    @property
    def preprocessor(self) -> Preprocessor:
        """What turns a photo into this detector's input; picklable, for worker processes."""
        keep = self.verifier.config.max_side if self.verifier else None
        return Preprocessor(self.embedder.input_size, keep)

    def prepare(self, source: ImageSource) -> PreparedImage:
        """Decode (safely) and preprocess one photo; raises ImageDecodeError on bad input.
        Thread-safe: batch jobs call it from their decoding threads."""
        return self.preprocessor(source)

    def check(self, image: ImageSource) -> Verdict:
        """One image (path, bytes or PIL image); raises ImageDecodeError on bad input."""
        return self.check_many([image])[0]

    def check_many(self, images: Iterable[ImageSource]) -> list[Verdict]:
        """Several images in one batch; raises ImageDecodeError on the first bad one."""
        return self.check_prepared([self.prepare(image) for image in images])

    def check_prepared(
        self, prepared: Sequence[PreparedImage], *, top_k: int | None = None
    ) -> list[Verdict]:
        if not prepared:
            return []
        pixels = torch.from_numpy(np.stack([item.pixels for item in prepared]))
        originals = [item.image for item in prepared]
        return self.check_pixels(pixels, top_k=top_k, originals=originals)

    def check_pixels(
        self,
        pixels: torch.Tensor,
        *,
        top_k: int | None = None,
        originals: Sequence[Image.Image | None] | None = None,
    ) -> list[Verdict]:
        """Preprocessed uint8 (N, 3, S, S) batches; ``originals`` (the photos, for local
        verification) are optional."""
        vectors = self.embedder.embed_pixels(pixels)
        embeddings = Embeddings(vectors, self.embedder.fingerprint)
        return self.check_embeddings(embeddings, top_k=top_k, originals=originals)

    def check_embeddings(
        self,
        embeddings: Embeddings,
        *,
        top_k: int | None = None,
        originals: Sequence[Image.Image | None] | None = None,
    ) -> list[Verdict]:
        top_k = top_k or self.top_k
        shortlist = self.verifier.config.shortlist if self.verifier else 0
        rows = self.index.search(embeddings, max(top_k, shortlist))
        verdicts, verifier = [], self.verifier
        for position, hits in enumerate(rows):
            original = originals[position] if originals is not None else None
            if verifier and original is not None and hits and verifier.wants(hits[0].score):
                hits = rescored(verifier.rerank(original, hits))
            verdicts.append(self.verdict(hits[:top_k]))
        return verdicts

    def verdict(self, hits: Sequence[SearchHit]) -> Verdict:
        matches = tuple(Match.from_hit(hit) for hit in hits)
        score = matches[0].score if matches else 0.0
        expected = None
        if self.calibration is not None and matches:
            expected = round(float(self.calibration.precision_at(score)[0]), 4)
        return Verdict(self.thresholds.label(score), score, matches, expected)


def load_detector(
    index_dir: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | Embedder | None = None,
    thresholds: Thresholds | None = None,
    top_k: int = 5,
    precision: Precision = "auto",
    threads: int | None = None,
    batch_size: int = 32,
    verify: bool | RerankConfig | None = None,
) -> Detector:
    """Load an index and the embedder that built it (or ``model``, which must match it).

    ``verify``: local-feature re-ranking — None follows the model's recommendation (the
    ``rerank`` settings it was calibrated with, if any), True uses those or the defaults,
    False turns it off, a RerankConfig sets it.
    """
    index = CatalogIndex.load(index_dir)
    if isinstance(model, Embedder):
        embedder = model
    elif model is not None:
        embedder = create_embedder(
            model, precision=precision, threads=threads, batch_size=batch_size
        )
    elif index.embedder_recipe:
        recipe = EmbedderRecipe.from_dict(index.embedder_recipe)
        embedder = create_embedder_from_recipe(
            recipe, precision=precision, threads=threads, batch_size=batch_size
        )
    else:
        raise ValueError(f"{index_dir}: the index does not record its model; pass model=")
    return Detector(
        embedder, index, thresholds, verifier=verifier_for(embedder, verify), top_k=top_k
    )


def verifier_for(embedder: Embedder, verify: bool | RerankConfig | None) -> LocalVerifier | None:
    """The local verifier ``verify`` asks for (see :func:`load_detector`), or None."""
    if isinstance(verify, RerankConfig):
        return LocalVerifier(verify)
    recommended = embedder.metadata.get("rerank")
    if verify is False or (verify is None and not isinstance(recommended, dict)):
        return None
    return LocalVerifier(
        RerankConfig.from_dict(recommended) if isinstance(recommended, dict) else RerankConfig()
    )
