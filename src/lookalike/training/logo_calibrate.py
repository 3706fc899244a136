"""Calibrating the logo model: its scores -> expected precision, and its thresholds.

Composites are made like the benchmark's, but from the logos the training run held out for
its own evaluation (never trained on, never in the benchmark) on training backgrounds, and
searched in a catalogue of every shared logo. Each positive contributes the score of its
right brand (or -inf when it was not found), each negative its best score; the calibration
of :mod:`.calibration` turns these into expected precision at a prior, and the ``logo``
(target precision 0.9) and ``review`` (see ``calibration.REVIEW_PRECISION``) thresholds.
Both go into the model's metadata, where the Detector finds them.

Before that, the model's background bank (:mod:`lookalike.logos.background`) is made from
the negatives of another composite set built the same way (its own seed): windows of
training photos showing no logo, half of them with a distractor mark. It goes into the
checkpoint beside the weights.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.decode import decode_image
from ..data.logos import LogoSpec, normalise_brand, shared_logo_specs
from ..data.manifest import CatalogEntry
from ..logos.background import BackgroundBank, make_background_bank
from ..logos.catalog import LogoCatalog, embed_windows, resolve_logo_model
from ..logos.matcher import LogoMatchConfig, LogoMatcher
from ..logos.network import load_logo_model, save_logo_model
from ..logos.windows import GREY_VIEW
from .calibration import REVIEW_PRECISION, Calibration, calibrate, choose_thresholds
from .logo_benchmark import (
    LogoBenchmark,
    brand_predictions,
    build_composite_set,
    match_photos,
    right_best_match,
    training_backgrounds,
    training_logos,
)
from .logo_train import EVAL_SEED, split_eval_logos

CALIBRATION_SEED = 7
BACKGROUND_SEED = 4242
# negatives whose grey windows make the background bank (~190 windows each; 38,000 windows
# measured within 0.001 µAP of 96,000 on the calibration set, 10,000 0.004 lower)
BACKGROUND_PHOTOS = 200


@dataclass(frozen=True)
class LogoCalibrationResult:
    calibration: Calibration
    thresholds: dict[str, float]
    positives: int
    negatives: int
    # the matcher settings the scores (and so the thresholds) depend on
    alignment_floor: float
    colour_from: float | None
    colour_min_score: float
    region_side: int
    window_support: int
    impostor_weight: float = 0.0
    impostor_k: int = 20
    # of the photos whose best match reached the logo threshold with a window for its region
    # only (neither keypoints nor the outline confirmed it): how many, and the share right
    window_only_photos: int = 0
    window_only_precision: float | None = None

    def to_metadata(self) -> dict[str, Any]:
        return {
            "calibration": self.calibration.to_dict(),
            "thresholds": {"copy": self.thresholds["copy"], "review": self.thresholds["review"]},
            "window_only": {
                "photos": self.window_only_photos,
                "precision": self.window_only_precision,
            },
            "calibrated_on": {
                "positives": self.positives,
                "negatives": self.negatives,
                "what": "composites of logos held out of training on training backgrounds",
                "alignment_floor": self.alignment_floor,
                "colour_from": self.colour_from,
                "colour_min_score": self.colour_min_score,
                "region_side": self.region_side,
                "window_support": self.window_support,
                "impostor_weight": self.impostor_weight,
                "impostor_k": self.impostor_k,
            },
        }


def shared_logo_catalog(shared_data: Path, model_ref: str, work: Path) -> LogoCatalog:
    """Every shared logo (simple_icons + car_logos) indexed with the model ``model_ref``;
    cached in ``work`` per model (its weights' hash), so benchmark and calibration share it."""
    model = resolve_logo_model(model_ref)
    folder = Path(work) / f"catalogue-{model.fingerprint.weights_sha256[:12]}"
    if (folder / "CURRENT").is_file():
        return LogoCatalog.load(folder, model)
    entries = [
        CatalogEntry(spec.path, spec.item_id, spec.brand, "logo")
        for spec in shared_logo_specs(shared_data)
    ]
    catalog = LogoCatalog(model, model_ref=model_ref)
    catalog.add(entries, progress=True)
    catalog.save(folder)
    return catalog


def calibration_logos(
    shared_data: Path, eval_logos: int = 200, seed: int = EVAL_SEED
) -> list[LogoSpec]:
    """The logos a default training run kept out for evaluation (same split as training)."""
    from ..data.logos import LogoRenderError, render_logo

    specs = training_logos(shared_data)
    rendered = []
    for spec in specs:  # training skipped logos that fail to render: so must this split
        try:
            render_logo(spec.path, 32)
        except LogoRenderError:
            continue
        rendered.append(spec)
    _, held = split_eval_logos(len(rendered), eval_logos, seed)
    return [rendered[i] for i in held]


def calibration_set(shared_data: Path, work: Path, *, positives: int = 300) -> LogoBenchmark:
    """The calibration composites (built once into ``work/calibration-queries``): logos the
    training run held out on training backgrounds, never the benchmark's. Also the
    development set on which matcher settings are chosen (``benchmarks/logos.py --dev``)."""
    return build_composite_set(
        calibration_logos(shared_data),
        training_backgrounds(shared_data),
        work / "calibration-queries",
        positives=positives,
        seed=CALIBRATION_SEED,
    )


def brand_scores(
    predictions: Iterable[tuple[str, str, float]], bench: LogoBenchmark
) -> tuple[list[float], list[float]]:
    """(score of the right brand per positive, best score per negative); -inf if none."""
    best: dict[str, float] = defaultdict(lambda: -math.inf)
    right: dict[str, float] = defaultdict(lambda: -math.inf)
    truth = {q.query_id: q for q in bench.queries}
    for query_id, brand, score in predictions:
        best[query_id] = max(best[query_id], score)
        query = truth[query_id]
        if query.brand and normalise_brand(query.brand) == normalise_brand(brand):
            right[query_id] = max(right[query_id], score)
    positives = [right[q.query_id] for q in bench.positives]
    negatives = [best[q.query_id] for q in bench.negatives]
    return positives, negatives


def calibrate_logo_matcher(
    matcher: LogoMatcher,
    bench: LogoBenchmark,
    *,
    logo_precision: float = 0.9,
    review_precision: float = REVIEW_PRECISION,
) -> LogoCalibrationResult:
    found = list(match_photos(matcher, bench.queries))
    positives, negatives = brand_scores(brand_predictions(found), bench)
    calibration = calibrate(positives, negatives)
    points = choose_thresholds(
        calibration, copy_precision=logo_precision, review_precision=review_precision
    )
    window_only = [
        (query, matches)
        for query, matches in found
        if matches and matches[0].score >= points.copy and matches[0].region_source == "window"
    ]
    right = sum(right_best_match(query, matches) is not None for query, matches in window_only)
    return LogoCalibrationResult(
        calibration,
        {"copy": points.copy, "review": points.review},
        len(positives),
        len(negatives),
        matcher.config.alignment_floor,
        matcher.config.grid.colour_from,
        matcher.config.colour_min_score,
        matcher.config.region_side,
        matcher.config.window_support,
        # a model without a bank scored with no impostor shift, whatever the weight
        matcher.config.impostor_weight if matcher.catalog.model.background is not None else 0.0,
        matcher.config.impostor_k,
        len(window_only),
        right / len(window_only) if window_only else None,
    )


def background_bank(
    catalog: LogoCatalog, shared_data: Path, work: Path, k: int, *, photos: int = BACKGROUND_PHOTOS
) -> BackgroundBank:
    """The background bank of ``catalog``'s model: the grey windows of ``photos`` composite
    negatives (training photos, built into ``work/background-queries``; the positives the
    builder pairs them with are not used), its typical level measured against ``catalog``."""
    bench = build_composite_set(
        calibration_logos(shared_data),
        training_backgrounds(shared_data),
        work / "background-queries",
        positives=photos,
        seed=BACKGROUND_SEED,
    )
    cutter = LogoMatcher(catalog, LogoMatchConfig.defaults_for(catalog.model.config.channels))
    windows = []
    for query in bench.negatives:
        cut = cutter.windows(decode_image(query.image).convert("RGB"))
        grey = [index for index in range(len(cut)) if cut.view_of(index) == GREY_VIEW]
        windows.append(embed_windows(catalog.model, cut.pixels[grey]))
    ids = [record.item_id for record in catalog.index.records()]
    vectors = catalog.index.vectors(ids)
    logos = np.stack([vectors[item] for item in ids if item in vectors])
    return make_background_bank(windows, logos, k)


def calibrate_logo_model(
    model_path: Path,
    shared_data: Path,
    out: Path,
    work: Path,
    *,
    positives: int = 300,
    background_photos: int = BACKGROUND_PHOTOS,
) -> LogoCalibrationResult:
    """Calibrate the logo model at ``model_path`` (searching every shared logo with the
    default matcher settings, whatever settings an earlier calibration of it recorded) and
    write it with its background bank (made anew from ``background_photos`` photos) and its
    calibration to ``out``."""
    catalog = shared_logo_catalog(shared_data, str(model_path), work)
    config = LogoMatchConfig.defaults_for(catalog.model.config.channels)
    catalog.model.background = background_bank(
        catalog, shared_data, work, config.impostor_k, photos=background_photos
    )
    matcher = LogoMatcher(catalog, config)
    bench = calibration_set(shared_data, work, positives=positives)
    result = calibrate_logo_matcher(matcher, bench)
    model = load_logo_model(model_path)
    metadata = {**model.metadata, **result.to_metadata()}
    save_logo_model(out, model.network, metadata, catalog.model.background)
    return result
