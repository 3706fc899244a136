"""Calibration: from scores of known copies and of distractors to expected precision.

Precision depends on how common copies are among the photos checked (the prior), so the
calibration stores the two score distributions' tails — the true-positive rate TPR(t) of
copies and the false-positive rate FPR(t) of distractors at each threshold t — and computes

    precision(t) = TPR(t) * prior / (TPR(t) * prior + FPR(t) * (1 - prior))

for the prior the user states (default 0.5: as many copies as clean photos, the benchmark's
mix). ``copy`` and ``review`` thresholds are the lowest scores reaching the target precisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .metrics import GroundTruthPair, Prediction


@dataclass(frozen=True)
class Calibration:
    """``scores``: increasing thresholds (K,); ``tpr`` / ``fpr``: non-increasing (K,)."""

    scores: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    prior: float = 0.5

    def precision_at(self, score: float | npt.ArrayLike) -> np.ndarray:
        """Expected precision of flagging every photo scoring at least ``score``."""
        values = np.atleast_1d(np.asarray(score, dtype=np.float64))
        tpr = _step_lookup(self.scores, self.tpr, values)
        fpr = _step_lookup(self.scores, self.fpr, values)
        flagged = tpr * self.prior + fpr * (1.0 - self.prior)
        # Above every calibration score nothing was flagged: report the last measured point.
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(flagged > 0, tpr * self.prior / flagged, np.nan)
        return _fill_from_below(precision, self.max_precision())

    def max_precision(self) -> float:
        flagged = self.tpr * self.prior + self.fpr * (1.0 - self.prior)
        valid = flagged > 0
        if not valid.any():
            return 0.0
        return float(np.max(self.tpr[valid] * self.prior / flagged[valid]))

    def threshold_for(self, target_precision: float) -> float | None:
        """The lowest score whose expected precision reaches ``target_precision``."""
        precision = self.precision_at(self.scores)
        reached = np.flatnonzero(precision >= target_precision)
        # Precision is not monotone in general: take the lowest threshold from which it
        # stays at or above the target, so every score above it is at least that precise.
        below = np.flatnonzero(precision < target_precision)
        if reached.size == 0:
            return None
        start = reached[0] if below.size == 0 else below[-1] + 1
        return None if start >= len(self.scores) else float(self.scores[start])

    def with_prior(self, prior: float) -> Calibration:
        return Calibration(self.scores, self.tpr, self.fpr, prior)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": [round(float(s), 6) for s in self.scores],
            "tpr": [round(float(v), 6) for v in self.tpr],
            "fpr": [round(float(v), 6) for v in self.fpr],
            "prior": self.prior,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            np.asarray(data["scores"], np.float64),
            np.asarray(data["tpr"], np.float64),
            np.asarray(data["fpr"], np.float64),
            float(data.get("prior", 0.5)),
        )


def calibrate(
    copy_scores: npt.ArrayLike,
    distractor_scores: npt.ArrayLike,
    *,
    prior: float = 0.5,
    points: int = 200,
) -> Calibration:
    """Build a calibration from top-1 scores.

    ``copy_scores``: the score of the correct catalogue item for each known copy (a copy
    whose original was not retrieved counts with -inf: it can never be flagged correctly).
    ``distractor_scores``: the best score of each photo that is not in the catalogue.
    """
    positives = np.sort(np.asarray(copy_scores, np.float64))
    negatives = np.sort(np.asarray(distractor_scores, np.float64))
    if positives.size == 0 or negatives.size == 0:
        raise ValueError("calibration needs scores of both copies and distractors")
    finite = np.concatenate([positives, negatives])
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ValueError("calibration needs at least one finite score")
    grid = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, points)))
    tpr = 1.0 - np.searchsorted(positives, grid, side="left") / positives.size
    fpr = 1.0 - np.searchsorted(negatives, grid, side="left") / negatives.size
    return Calibration(grid, tpr, fpr, prior)


def _step_lookup(grid: np.ndarray, rates: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rate at the largest grid point <= value (rates are 'score >= t' tails); beyond the
    grid's top the last rate, below its bottom the first."""
    positions = np.searchsorted(grid, values, side="right") - 1
    return rates[np.clip(positions, 0, len(grid) - 1)]


def _fill_from_below(precision: np.ndarray, fallback: float) -> np.ndarray:
    return np.where(np.isnan(precision), fallback, precision)


def calibrate_predictions(
    ground_truth: Sequence[GroundTruthPair],
    predictions: Sequence[Prediction],
    query_ids: Iterable[str],
    *,
    prior: float = 0.5,
) -> Calibration:
    """Calibrate from ISC-style results: ``query_ids`` are all queries that were scored;
    those with a ground-truth pair are copies, the others distractors."""
    truth = {(pair.query_id, pair.reference_id) for pair in ground_truth}
    copies = {pair.query_id for pair in ground_truth}
    correct: dict[str, float] = {}
    best: dict[str, float] = {}
    for prediction in predictions:
        if (prediction.query_id, prediction.reference_id) in truth:
            correct[prediction.query_id] = max(
                correct.get(prediction.query_id, -np.inf), prediction.score
            )
        best[prediction.query_id] = max(best.get(prediction.query_id, -np.inf), prediction.score)
    queries = list(dict.fromkeys(query_ids))
    copy_scores = [correct.get(q, -np.inf) for q in queries if q in copies]
    distractor_scores = [best.get(q, -np.inf) for q in queries if q not in copies]
    return calibrate(copy_scores, distractor_scores, prior=prior)


# The review threshold's expected precision (copy and logo thresholds aim at 0.9). Not 0.5:
# at the calibrations' prior of 0.5 (as many clean queries as copies), a precision of 0.5 is
# what flagging every query reaches. At 0.5, the default model's re-ranked review threshold
# let 99% of its calibration set's distractors into review (for 99.4% of its copies), the
# logo model's 84% of logo-free photos (for 84% of its positives); at 0.8, 24% (97.9%) and
# 20% (82%).
REVIEW_PRECISION = 0.8


@dataclass(frozen=True)
class OperatingPoints:
    """Verdict thresholds chosen from a calibration, and the precisions they aim at."""

    copy: float
    review: float
    copy_precision: float
    review_precision: float

    def to_dict(self) -> dict[str, float]:
        return {
            "copy": self.copy,
            "review": self.review,
            "copy_precision": self.copy_precision,
            "review_precision": self.review_precision,
        }


def choose_thresholds(
    calibration: Calibration,
    *,
    copy_precision: float = 0.9,
    review_precision: float = REVIEW_PRECISION,
) -> OperatingPoints:
    """``copy``: the lowest score at ``copy_precision``; ``review``: at ``review_precision``.
    Where a target is never reached the threshold is put above every calibration score."""
    ceiling = float(calibration.scores[-1]) + 1e-6
    copy = calibration.threshold_for(copy_precision)
    review = calibration.threshold_for(review_precision)
    copy_value = ceiling if copy is None else copy
    review_value = min(copy_value, ceiling if review is None else review)
    return OperatingPoints(copy_value, review_value, copy_precision, review_precision)
