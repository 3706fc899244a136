"""Calibration: expected precision from copy and distractor scores, thresholds, priors."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.training.calibration import (
    Calibration,
    calibrate,
    calibrate_predictions,
    choose_thresholds,
)
from lookalike.training.metrics import GroundTruthPair, Prediction


def test_separable_scores_give_full_precision_above_the_gap() -> None:
    calibration = calibrate([0.8, 0.85, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4])
    assert calibration.precision_at(0.8)[0] == pytest.approx(1.0)
    # At 0.3 two distractors (0.3, 0.4) and all four copies are flagged: 4/(4+2) at prior 0.5.
    assert calibration.precision_at(0.3)[0] == pytest.approx(4 / 6)
    assert calibration.precision_at(0.0)[0] == pytest.approx(0.5)
    points = choose_thresholds(calibration, copy_precision=0.9, review_precision=0.6)
    assert 0.4 < points.copy <= 0.8
    assert points.review <= 0.3 + 1e-9


def test_prior_changes_precision_as_bayes_says() -> None:
    calibration = calibrate([0.9, 0.9, 0.5, 0.5], [0.6, 0.4, 0.4, 0.4])
    # At t=0.5: TPR 1.0, FPR 0.25.
    rare = calibration.with_prior(0.01)
    expected = 1.0 * 0.01 / (1.0 * 0.01 + 0.25 * 0.99)
    assert rare.precision_at(0.5)[0] == pytest.approx(expected)
    assert calibration.precision_at(0.5)[0] == pytest.approx(1.0 / 1.25)


def test_threshold_keeps_precision_above_target_for_every_higher_score() -> None:
    rng = np.random.default_rng(0)
    copies = rng.normal(0.8, 0.08, 500)
    distractors = rng.normal(0.5, 0.1, 500)
    calibration = calibrate(copies, distractors)
    threshold = calibration.threshold_for(0.9)
    assert threshold is not None
    above = calibration.scores[calibration.scores >= threshold]
    assert np.all(calibration.precision_at(above) >= 0.9)
    # empirical check on the raw data
    flagged_copies = np.sum(copies >= threshold)
    flagged_distractors = np.sum(distractors >= threshold)
    assert flagged_copies / (flagged_copies + flagged_distractors) >= 0.88


def test_unreachable_target_puts_copy_above_every_score() -> None:
    calibration = calibrate([0.5, 0.5], [0.5, 0.5])
    assert calibration.threshold_for(0.9) is None
    points = choose_thresholds(calibration)
    assert points.copy > 0.5 and points.review <= points.copy


def test_round_trip_and_missed_copies_count_against_recall() -> None:
    truth = [GroundTruthPair("q1", "r1"), GroundTruthPair("q2", "r2")]
    predictions = [
        Prediction("q1", "r1", 0.9),
        Prediction("q2", "r9", 0.95),
        Prediction("q3", "r1", 0.3),
    ]
    calibration = calibrate_predictions(truth, predictions, ["q1", "q2", "q3", "q4"])
    # q2's original was never retrieved: TPR tops out at 1/2.
    assert calibration.tpr.max() == pytest.approx(0.5)
    again = Calibration.from_dict(calibration.to_dict())
    np.testing.assert_allclose(again.precision_at([0.2, 0.9]), calibration.precision_at([0.2, 0.9]))


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        calibrate([], [0.1])
