"""Calibrate a trained checkpoint on held-out photos and write the model that ships.

The calibration set is built like the copy-detection benchmark (same name-hash split, so
never from training photos) but with another seed, so its edited queries differ from the
benchmark's. Both modes are calibrated — descriptor only, and with local-feature
re-ranking — because their scores live on different scales.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.benchmark import BenchmarkPaths, build_copy_benchmark
from ..data.manifest import iter_image_files
from ..data.tiles import TileConfig
from ..detect import Detector
from ..model import create_embedder, load_checkpoint, save_checkpoint
from ..model.network import DescriptorNet
from ..rerank import LocalVerifier, RerankConfig
from ..siblings import DESCRIPTOR_SIBLING_PENALTY
from .calibration import (
    REVIEW_PRECISION,
    Calibration,
    calibrate_predictions,
    choose_thresholds,
)
from .evaluate import index_references, score_queries
from .metrics import read_ground_truth

CALIBRATION_SEED = 1  # the benchmark uses seed 0: different edited queries

DEFAULT_TILES = TileConfig()


@dataclass(frozen=True)
class ModeCalibration:
    calibration: Calibration
    thresholds: dict[str, float]


def calibrate_model(
    checkpoint: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    work: str | os.PathLike[str],
    rerank: RerankConfig | None = None,
    tiles: TileConfig | None = DEFAULT_TILES,
    sibling_penalty: float = DESCRIPTOR_SIBLING_PENALTY,
    queries_per_kind: int = 30,
    copy_precision: float = 0.9,
    review_precision: float = REVIEW_PRECISION,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``out``: the checkpoint's weights (fp16) with calibrations and thresholds for
    both modes and the re-ranking settings they assume: descriptor only (its scores lowered
    by ``sibling_penalty`` times each catalogue photo's sibling similarity, see
    :mod:`lookalike.siblings`), and re-ranking of a shortlist that query ``tiles`` (None:
    none) widen (its own penalty in ``rerank``). Returns the added metadata."""
    work_dir = Path(work)
    bench = build_copy_benchmark(
        images,
        work_dir / "calibration-set",
        seed=CALIBRATION_SEED,
        queries_per_kind=queries_per_kind,
    )
    embedder = create_embedder(checkpoint)
    index = index_references(embedder, bench, progress)
    rerank = rerank or RerankConfig()
    modes = {
        "": Detector(embedder, index, sibling_penalty=sibling_penalty),
        "_verified": Detector(embedder, index, verifier=LocalVerifier(rerank), tiles=tiles),
    }
    added: dict[str, Any] = {"rerank": rerank.to_dict(), "sibling_penalty": sibling_penalty}
    if tiles is not None:
        added["tiles"] = tiles.to_dict()
    for suffix, detector in modes.items():
        result = _calibrate_mode(
            detector,
            bench,
            work_dir / f"scores{suffix}.csv",
            copy_precision,
            review_precision,
            progress,
        )
        added[f"calibration{suffix}"] = result.calibration.to_dict()
        added[f"thresholds{suffix}"] = result.thresholds
    added["calibrated_on"] = {
        "images": os.fspath(images),
        "references": sum(1 for _ in iter_image_files([bench.references_dir])),
        "seed": CALIBRATION_SEED,
        "prior": 0.5,
    }
    source = load_checkpoint(checkpoint)
    network = DescriptorNet(source.spec)
    network.load_state_dict(source.state_dict)
    metadata = {**source.metadata, **added}
    if tiles is None:
        metadata.pop("tiles", None)  # a recalibration without tiles must not inherit them
    metadata.pop("history", None)  # training curves stay in the run folder, not in the package
    save_checkpoint(out, network, source.spec, metadata, half=True)
    return added


def _calibrate_mode(
    detector: Detector,
    bench: BenchmarkPaths,
    predictions_path: Path,
    copy_precision: float,
    review_precision: float,
    progress: bool,
) -> ModeCalibration:
    predictions = score_queries(detector, bench, predictions_path, progress=progress)
    query_ids = [path.stem for path in iter_image_files([bench.queries_dir])]
    calibration = calibrate_predictions(
        read_ground_truth(bench.ground_truth_csv), predictions, query_ids
    )
    points = choose_thresholds(
        calibration, copy_precision=copy_precision, review_precision=review_precision
    )
    return ModeCalibration(calibration, {"copy": points.copy, "review": points.review})
