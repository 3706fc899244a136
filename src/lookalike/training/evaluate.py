"""Evaluate a model on a copy-detection benchmark folder (references, queries, ground truth)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.benchmark import BenchmarkPaths, recall_at_1_by_edit
from ..data.manifest import load_catalog
from ..detect import Detector
from ..index import CatalogIndex
from ..indexing import add_entries, new_index_for
from ..model import Embedder, create_embedder
from ..rerank import LocalVerifier, RerankConfig
from ..scoring import discard_output, score_images
from ..siblings import DESCRIPTOR_SIBLING_PENALTY
from .metrics import EvalResult, Prediction, evaluate, read_ground_truth, read_predictions


@dataclass(frozen=True)
class BenchmarkResult:
    metrics: EvalResult
    recall_at_1_by_edit: dict[str, float]
    predictions: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.metrics.to_dict(),
            "recall_at_1_by_edit": self.recall_at_1_by_edit,
            "predictions": str(self.predictions),
        }


def evaluate_on_benchmark(
    model: str | os.PathLike[str] | Embedder,
    bench: BenchmarkPaths,
    work: str | os.PathLike[str],
    *,
    rerank: RerankConfig | None = None,
    sibling_penalty: float = DESCRIPTOR_SIBLING_PENALTY,
    top_k: int = 10,
    progress: bool = True,
) -> BenchmarkResult:
    """Index the references, score the queries (ISC rows), and evaluate like `lookalike eval`.

    ``rerank`` turns on local-feature re-ranking with those settings (its sibling penalty
    included); without it, descriptor scores take ``sibling_penalty`` (:mod:`..siblings`),
    whatever the model recorded, so that two models (before and after fine-tuning) are
    compared on the same terms.
    """
    embedder = model if isinstance(model, Embedder) else create_embedder(model)
    verifier = LocalVerifier(rerank) if rerank is not None else None
    detector = Detector(
        embedder,
        index_references(embedder, bench, progress),
        verifier=verifier,
        sibling_penalty=None if verifier is not None else sibling_penalty,
    )
    predictions_path = Path(work) / "predictions.csv"
    predictions = score_queries(detector, bench, predictions_path, top_k=top_k, progress=progress)
    metrics = evaluate(read_ground_truth(bench.ground_truth_csv), predictions)
    by_edit = recall_at_1_by_edit(bench.ground_truth_csv, predictions)
    return BenchmarkResult(metrics, by_edit, predictions_path)


def index_references(embedder: Embedder, bench: BenchmarkPaths, progress: bool) -> CatalogIndex:
    """An in-memory index of the benchmark's references."""
    index = new_index_for(embedder)
    add_entries(index, embedder, load_catalog(bench.references_dir), progress=progress)
    return index


def score_queries(
    detector: Detector,
    bench: BenchmarkPaths,
    predictions_path: Path,
    *,
    top_k: int = 10,
    progress: bool = True,
) -> list[Prediction]:
    """Score every benchmark query afresh into ``predictions_path`` (ISC rows) and read them."""
    discard_output(predictions_path)
    score_images(
        detector, [bench.queries_dir], predictions_path, fmt="isc", top_k=top_k, progress=progress
    )
    return read_predictions(predictions_path)
