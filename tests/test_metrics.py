"""Tests for the ISC 2021 copy-detection metrics (lookalike.training.metrics)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lookalike.training.metrics import (
    EvalResult,
    GroundTruthPair,
    Prediction,
    evaluate,
    format_report,
    micro_average_precision,
    precision_recall_curve,
    read_ground_truth,
    read_predictions,
    recall_at_precision,
    recall_at_rank,
)


def ap(is_match: list[bool], scores: list[float], num_positives: int) -> float:
    precisions, recalls, _ = precision_recall_curve(
        np.array(is_match, dtype=bool), np.array(scores, dtype=np.float64), num_positives
    )
    return micro_average_precision(precisions, recalls)


# --- micro average precision on hand-computed cases ------------------------------------------


def test_ap_three_positives_five_predictions() -> None:
    # Ranked by score: M N M N M, 3 positives in total.
    # rank 1: M  precision 1/1, recall 1/3  -> gain 1/3 * 1
    # rank 2: N  precision 1/2, recall 1/3  -> gain 0
    # rank 3: M  precision 2/3, recall 2/3  -> gain 1/3 * 2/3
    # rank 4: N  precision 2/4, recall 2/3  -> gain 0
    # rank 5: M  precision 3/5, recall 3/3  -> gain 1/3 * 3/5
    # AP = 1/3 * (1 + 2/3 + 3/5) = 1/3 * 34/15 = 34/45
    expected = Fraction(1, 3) * (1 + Fraction(2, 3) + Fraction(3, 5))
    assert expected == Fraction(34, 45)
    # Input order is shuffled on purpose: only the scores decide the ranking.
    result = ap([False, True, True, False, True], [0.6, 0.7, 0.9, 0.8, 0.5], 3)
    assert result == pytest.approx(float(expected), abs=1e-12)


def test_curve_points_match_the_hand_computation() -> None:
    precisions, recalls, thresholds = precision_recall_curve(
        np.array([False, True, True, False, True]), np.array([0.6, 0.7, 0.9, 0.8, 0.5]), 3
    )
    np.testing.assert_allclose(precisions, [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(recalls, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(thresholds, [0.9, 0.8, 0.7, 0.6, 0.5])
    assert precisions.dtype == recalls.dtype == thresholds.dtype == np.float64


def test_ap_perfect_ranking_is_one() -> None:
    # M M M N N: every match is found before any non-match -> precision 1 at each recall step.
    assert ap([True, True, True, False, False], [5, 4, 3, 2, 1], 3) == 1.0


def test_ap_all_negatives_is_zero() -> None:
    # No match anywhere: recall never increases, so no term contributes.
    assert ap([False, False, False], [3, 2, 1], 2) == 0.0


def test_ap_missed_positive_lowers_ap_by_its_share() -> None:
    # Perfect ranking of 3 found matches, but 4 positives exist: the unpredicted one
    # contributes precision 0 for its 1/4 of recall -> AP = 3 * (1/4 * 1) = 3/4.
    assert ap([True, True, True, False], [4, 3, 2, 1], 4) == pytest.approx(0.75)
    # Same for the M N M N M case: each found match now weighs 1/4 instead of 1/3,
    # so AP = 34/45 * 3/4 = 17/30.
    assert ap([True, False, True, False, True], [5, 4, 3, 2, 1], 4) == pytest.approx(17 / 30)


@pytest.mark.parametrize("order", [[True, False], [False, True]])
def test_ap_tie_is_broken_pessimistically(order: list[bool]) -> None:
    # One match and one non-match with the same score, 1 positive. Pessimistic order: N then M,
    # so the match is found at rank 2 with precision 1/2 -> AP = 1/2 (optimistic would be 1).
    # The input order must not matter.
    assert ap(order, [0.5, 0.5], 1) == pytest.approx(0.5)


def test_constant_score_does_not_buy_a_good_ap() -> None:
    # 4 predictions, all with score 1.0, 2 of them matches, 2 positives. Pessimistic order is
    # N N M M: precision 1/3 at recall 1/2, 2/4 at recall 1 -> AP = 1/2 * (1/3 + 1/2) = 5/12.
    result = ap([True, False, True, False], [1.0, 1.0, 1.0, 1.0], 2)
    assert result == pytest.approx(5 / 12)
    assert result < 1.0


def test_empty_curve_has_zero_ap() -> None:
    precisions, recalls, thresholds = precision_recall_curve(
        np.array([], dtype=bool), np.array([]), 1
    )
    assert precisions.shape == recalls.shape == thresholds.shape == (0,)
    assert micro_average_precision(precisions, recalls) == 0.0
    assert recall_at_precision(precisions, recalls, thresholds) == (None, None)


@pytest.mark.parametrize(
    ("is_match", "scores", "num_positives", "message"),
    [
        (np.array([1, 0]), np.array([0.5, 0.4]), 1, "boolean"),
        (np.array([True, False]), np.array([0.5]), 1, "equal length"),
        (np.array([True, True]), np.array([0.5, 0.4]), 1, "exceed"),
        (np.array([False]), np.array([0.5]), 0, "num_positives"),
        (np.array([True]), np.array([np.nan]), 1, "NaN"),
    ],
)
def test_precision_recall_curve_rejects_bad_input(
    is_match: np.ndarray, scores: np.ndarray, num_positives: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        precision_recall_curve(is_match, scores, num_positives)


# --- recall at precision 0.9 -----------------------------------------------------------------


def test_recall_at_p90_hand_case() -> None:
    # 10 positives; 12 predictions with scores 12, 11, ..., 1 in this match pattern:
    # rank   1  2  3  4  5  6    7    8    9    10   11    12
    # match  M  M  M  M  M  N    M    M    M    M    N     M
    # prec   1  1  1  1  1  5/6  6/7  7/8  8/9  9/10 9/11  10/12
    # recall .1 .2 .3 .4 .5 .5   .6   .7   .8   .9   .9    1.0
    # Precision >= 0.9 holds at ranks 1-5 and again at rank 10 (exactly 9/10); the highest
    # recall among those is 0.9, reached by accepting scores >= 3 (the 10th score).
    is_match = np.array([True] * 5 + [False] + [True] * 4 + [False, True])
    scores = np.arange(12, 0, -1, dtype=np.float64)
    curve = precision_recall_curve(is_match, scores, 10)
    recall, threshold = recall_at_precision(*curve, min_precision=0.9)
    assert recall == pytest.approx(0.9)
    assert threshold == 3.0
    # Asking for a little more precision leaves only the first five points.
    assert recall_at_precision(*curve, min_precision=0.95) == (pytest.approx(0.5), 8.0)


def test_recall_at_p90_never_reached() -> None:
    # N M: precision 0 then 1/2, never 0.9.
    curve = precision_recall_curve(np.array([False, True]), np.array([2.0, 1.0]), 1)
    assert recall_at_precision(*curve) == (None, None)


def test_recall_at_p90_does_not_split_a_tie_group() -> None:
    # Scores: M 1.0, then M and N tied at 0.5; 2 positives. Pessimistic order M N M:
    # precision 1, 1/2, 2/3. Only the first point reaches 0.9, so recall 1/2 at threshold 1.0.
    # (An optimistic M M N order would claim recall 1.0 at precision 1 with threshold 0.5, which
    # no threshold achieves: accepting scores >= 0.5 also admits the non-match.)
    curve = precision_recall_curve(np.array([True, True, False]), np.array([1.0, 0.5, 0.5]), 2)
    assert recall_at_precision(*curve) == (0.5, 1.0)


def test_recall_at_precision_rejects_out_of_range_precision() -> None:
    curve = precision_recall_curve(np.array([True]), np.array([1.0]), 1)
    with pytest.raises(ValueError, match="min_precision"):
        recall_at_precision(*curve, min_precision=1.5)


# --- recall@k --------------------------------------------------------------------------------


def test_recall_at_rank_with_pessimistic_tie() -> None:
    ground_truth = [
        GroundTruthPair("Q1", "R1"),
        GroundTruthPair("Q2", "R3"),
        GroundTruthPair("Q3", "R9"),
    ]
    predictions = [
        # Q1: R1 tied with R2 -> 2 predictions score >= 0.8 -> rank 1 (not top-1).
        Prediction("Q1", "R1", 0.8),
        Prediction("Q1", "R2", 0.8),
        Prediction("Q1", "R4", 0.1),
        # Q2: R3 strictly best -> rank 0.
        Prediction("Q2", "R3", 0.9),
        Prediction("Q2", "R1", 0.3),
        # Q3: R9 never predicted -> infinite rank.
        Prediction("Q3", "R1", 0.99),
    ]
    assert recall_at_rank(ground_truth, predictions, 1) == pytest.approx(1 / 3)
    assert recall_at_rank(ground_truth, predictions, 2) == pytest.approx(2 / 3)
    assert recall_at_rank(ground_truth, predictions, 10) == pytest.approx(2 / 3)


def test_recall_at_rank_rejects_rank_below_one() -> None:
    with pytest.raises(ValueError, match="rank"):
        recall_at_rank([GroundTruthPair("Q1", "R1")], [], 0)


# --- evaluate --------------------------------------------------------------------------------


def test_evaluate_hand_case() -> None:
    ground_truth = [
        GroundTruthPair("Q1", "R1"),
        GroundTruthPair("Q2", "R2"),
        GroundTruthPair("Q3", "R3"),
    ]
    # Pooled order by score: M N M N M (Q4 has no ground truth, so its prediction is a false
    # positive) -> same curve as test_ap_three_positives_five_predictions: AP = 34/45,
    # precision >= 0.9 only at rank 1 (recall 1/3, score 0.9). Every true reference is the top
    # prediction of its query -> recall@1 = recall@10 = 1.
    predictions = [
        Prediction("Q1", "R1", 0.9),
        Prediction("Q1", "R5", 0.8),
        Prediction("Q2", "R2", 0.7),
        Prediction("Q4", "R4", 0.6),
        Prediction("Q3", "R3", 0.5),
    ]
    result = evaluate(ground_truth, predictions)
    assert result.micro_ap == pytest.approx(34 / 45)
    assert result.recall_at_p90 == pytest.approx(1 / 3)
    assert result.threshold_at_p90 == 0.9
    assert result.recall_at_1 == 1.0
    assert result.recall_at_10 == 1.0
    assert (result.num_predictions, result.num_positives, result.num_queries_with_gt) == (5, 3, 3)
    assert result.to_dict() == {
        "micro_ap": result.micro_ap,
        "recall_at_p90": result.recall_at_p90,
        "threshold_at_p90": 0.9,
        "recall_at_1": 1.0,
        "recall_at_10": 1.0,
        "num_predictions": 5,
        "num_positives": 3,
        "num_queries_with_gt": 3,
    }


def test_queries_without_ground_truth_are_negatives() -> None:
    ground_truth = [GroundTruthPair("Q1", "R1")]
    alone = [Prediction("Q1", "R1", 0.5)]
    assert evaluate(ground_truth, alone).micro_ap == 1.0
    # Q9 has no ground-truth pair: its confident prediction is a false positive ranked first,
    # so the match comes at rank 2 -> AP 1/2. Recall@1 is per query and does not change.
    with_negative = [*alone, Prediction("Q9", "R1", 0.9)]
    result = evaluate(ground_truth, with_negative)
    assert result.micro_ap == pytest.approx(0.5)
    assert result.recall_at_1 == 1.0
    assert result.num_queries_with_gt == 1


def test_query_with_several_ground_truth_pairs() -> None:
    # Q1 copies both R1 and R2: two positives, and R2 ranks second within Q1.
    ground_truth = [GroundTruthPair("Q1", "R1"), GroundTruthPair("Q1", "R2")]
    predictions = [Prediction("Q1", "R1", 0.9), Prediction("Q1", "R2", 0.8)]
    result = evaluate(ground_truth, predictions)
    assert result.micro_ap == 1.0
    assert result.recall_at_1 == pytest.approx(0.5)
    assert result.recall_at_10 == 1.0
    assert (result.num_positives, result.num_queries_with_gt) == (2, 1)


def test_evaluate_without_predictions() -> None:
    result = evaluate([GroundTruthPair("Q1", "R1")], [])
    assert result == EvalResult(
        micro_ap=0.0,
        recall_at_p90=None,
        threshold_at_p90=None,
        recall_at_1=0.0,
        recall_at_10=0.0,
        num_predictions=0,
        num_positives=1,
        num_queries_with_gt=1,
    )


def test_evaluate_rejects_empty_ground_truth() -> None:
    with pytest.raises(ValueError, match="ground truth is empty"):
        evaluate([], [Prediction("Q1", "R1", 1.0)])


def test_evaluate_names_first_duplicate_prediction() -> None:
    predictions = [
        Prediction("Q1", "R1", 0.9),
        Prediction("Q1", "R2", 0.8),
        Prediction("Q2", "R2", 0.7),
        Prediction("Q1", "R1", 0.1),
        Prediction("Q2", "R2", 0.6),
    ]
    with pytest.raises(ValueError, match="duplicate prediction: query 'Q1', reference 'R1'"):
        evaluate([GroundTruthPair("Q1", "R1")], predictions)
    with pytest.raises(ValueError, match="duplicate prediction"):
        recall_at_rank([GroundTruthPair("Q1", "R1")], predictions, 1)


def test_evaluate_rejects_duplicate_ground_truth_pair() -> None:
    ground_truth = [GroundTruthPair("Q1", "R1"), GroundTruthPair("Q1", "R1")]
    with pytest.raises(ValueError, match="duplicate ground-truth pair"):
        evaluate(ground_truth, [])


def test_evaluate_rejects_nan_score() -> None:
    with pytest.raises(ValueError, match="NaN"):
        evaluate([GroundTruthPair("Q1", "R1")], [Prediction("Q1", "R1", float("nan"))])


# --- format_report ---------------------------------------------------------------------------


def test_format_report_is_aligned() -> None:
    result = evaluate(
        [GroundTruthPair("Q1", "R1"), GroundTruthPair("Q2", "R2")],
        [Prediction("Q1", "R1", 0.75), Prediction("Q2", "R7", 0.5)],
    )
    report = format_report(result)
    lines = report.splitlines()
    assert [line.split()[0] for line in lines] == [
        "µAP",
        "recall@P90",
        "recall@1",
        "recall@10",
        "predictions",
        "GT",
    ]
    # Values start in one column: two spaces after the longest label ("predictions", 11 chars).
    assert all(line[11:13] == "  " and line[13] != " " for line in lines)
    assert "µAP          0.5000" in report
    assert "recall@P90   0.5000 (score threshold 0.75)" in report
    assert "GT pairs     2 (2 queries)" in report


def test_format_report_when_precision_never_reached() -> None:
    result = evaluate([GroundTruthPair("Q1", "R1")], [Prediction("Q1", "R2", 1.0)])
    assert "precision 0.9 never reached" in format_report(result)


# --- readers ---------------------------------------------------------------------------------


def test_read_predictions_csv(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("query_id,reference_id,score\nQ00001,R000042,0.93\n\nQ00002,R000007,-1.5e-3\n")
    assert read_predictions(path) == [
        Prediction("Q00001", "R000042", 0.93),
        Prediction("Q00002", "R000007", -0.0015),
    ]


def test_read_predictions_csv_with_reordered_extra_columns_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("\ufeffscore,rank,reference_id,query_id\n0.5,1,R1,Q1\n", encoding="utf-8")
    assert read_predictions(str(path)) == [Prediction("Q1", "R1", 0.5)]


def test_read_ground_truth_csv_skips_queries_without_match(tmp_path: Path) -> None:
    # ISC style: a query with no original in the reference set has an empty reference_id.
    path = tmp_path / "ground_truth.csv"
    path.write_text("query_id,reference_id\nQ00000,R011218\nQ00001,\nQ00002,R000512\n")
    assert read_ground_truth(path) == [
        GroundTruthPair("Q00000", "R011218"),
        GroundTruthPair("Q00002", "R000512"),
    ]


def test_read_jsonl(tmp_path: Path) -> None:
    predictions_path = tmp_path / "predictions.jsonl"
    predictions_path.write_text(
        '{"query_id": "Q1", "reference_id": "R1", "score": 0.25}\n'
        "\n"
        '{"query_id": 2, "reference_id": "R2", "score": 1, "extra": true}\n'
    )
    assert read_predictions(predictions_path) == [
        Prediction("Q1", "R1", 0.25),
        Prediction("2", "R2", 1.0),
    ]
    ground_truth_path = tmp_path / "ground_truth.ndjson"
    ground_truth_path.write_text(
        '{"query_id": "Q1", "reference_id": "R1"}\n'
        '{"query_id": "Q2", "reference_id": null}\n'
        '{"query_id": "Q3", "reference_id": ""}\n'
    )
    assert read_ground_truth(ground_truth_path) == [GroundTruthPair("Q1", "R1")]


def test_read_parquet(tmp_path: Path) -> None:
    predictions_path = tmp_path / "predictions.parquet"
    pq.write_table(
        pa.table(
            {
                "query_id": ["Q1", "Q2"],
                "reference_id": ["R1", "R2"],
                "score": pa.array([0.5, 0.25], type=pa.float32()),
                "unused": [1, 2],
            }
        ),
        predictions_path,
    )
    assert read_predictions(predictions_path) == [
        Prediction("Q1", "R1", 0.5),
        Prediction("Q2", "R2", 0.25),
    ]
    ground_truth_path = tmp_path / "ground_truth.pq"
    pq.write_table(
        pa.table({"query_id": ["Q1", "Q2"], "reference_id": ["R1", None]}), ground_truth_path
    )
    assert read_ground_truth(ground_truth_path) == [GroundTruthPair("Q1", "R1")]


def test_files_round_trip_through_evaluate(tmp_path: Path) -> None:
    ground_truth_path = tmp_path / "gt.csv"
    ground_truth_path.write_text("query_id,reference_id\nQ1,R1\nQ2,\n")
    predictions_path = tmp_path / "pred.csv"
    predictions_path.write_text("query_id,reference_id,score\nQ2,R1,0.9\nQ1,R1,0.8\n")
    result = evaluate(read_ground_truth(ground_truth_path), read_predictions(predictions_path))
    # Q2 is a listed negative: its prediction ranks first and is false -> AP 1/2.
    assert result.micro_ap == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "p.csv",
            "query_id,reference_id,score\nQ1,R1,0.5\nQ2,R2,abc\n",
            r"p\.csv: line 3: score is not a number: 'abc'",
        ),
        ("p.csv", "query_id,reference_id,score\nQ1,R1,nan\n", r"p\.csv: line 2: score is NaN"),
        ("p.csv", "query_id,reference_id,score\nQ1,R1,\n", r"line 2: score is not a number"),
        ("p.csv", "query_id,reference_id,score\nQ1,R1,1\nQ2,R2\n", r"line 3: expected 3 fields"),
        (
            "p.csv",
            "query_id,reference_id\nQ1,R1\n",
            r"line 1 \(header\): missing column\(s\) score",
        ),
        ("p.csv", "query_id,reference_id,score\n,R1,1\n", r"line 2: empty query_id"),
        ("p.csv", "", r"line 1: empty file"),
        (
            "p.jsonl",
            '{"query_id": "Q1", "reference_id": "R1", "score": 1}\n'
            '{"query_id": "Q2", "score": 1}\n',
            r"p\.jsonl: line 2: missing column\(s\) reference_id",
        ),
        ("p.jsonl", '{"query_id": "Q1", "reference_id": "R1", "score": NaN}\n', r"line 1: .*NaN"),
        ("p.jsonl", '{"query_id": "Q1", "reference_id": "R1", "score": null}\n', r"line 1: score"),
        ("p.jsonl", '{"query_id": "Q1", "reference_id": "R1", "score": true}\n', r"line 1: score"),
        ("p.jsonl", '{"query_id": "Q1"\n', r"line 1: invalid JSON"),
        ("p.jsonl", '["Q1", "R1", 1.0]\n', r"line 1: expected a JSON object"),
        ("p.txt", "query_id,reference_id,score\n", r"unsupported suffix '\.txt'"),
    ],
)
def test_read_predictions_bad_rows_name_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_predictions(path)


def test_read_predictions_parquet_bad_rows(tmp_path: Path) -> None:
    null_score = tmp_path / "null.parquet"
    pq.write_table(
        pa.table({"query_id": ["Q1", "Q2"], "reference_id": ["R1", "R2"], "score": [0.5, None]}),
        null_score,
    )
    with pytest.raises(ValueError, match=r"null\.parquet: row 2: score must be a number, got None"):
        read_predictions(null_score)
    missing_column = tmp_path / "missing.parquet"
    pq.write_table(pa.table({"query_id": ["Q1"], "score": [0.5]}), missing_column)
    with pytest.raises(ValueError, match=r"schema: missing column\(s\) reference_id"):
        read_predictions(missing_column)


def test_read_ground_truth_bad_rows_name_line(tmp_path: Path) -> None:
    path = tmp_path / "gt.csv"
    path.write_text("query_id,reference_id\nQ1,R1\nQ2,R2,R3\n")
    with pytest.raises(ValueError, match=r"gt\.csv: line 3: expected 2 fields"):
        read_ground_truth(path)
    path.write_text("query,reference_id\nQ1,R1\n")
    with pytest.raises(ValueError, match=r"line 1 \(header\): missing column\(s\) query_id"):
        read_ground_truth(path)


# --- property tests against a slow reference ---------------------------------------------------


def reference_micro_ap(is_match: list[bool], scores: list[float], num_positives: int) -> float:
    """AP as the mean over all positives of the precision at which each one is retrieved.

    Written without sorting: a match with score ``s`` that is the ``k``-th of the matches tied at
    ``s`` is retrieved, pessimistically, after every prediction scoring above ``s``, every
    non-match tied at ``s`` and the ``k - 1`` tied matches before it. Positives never predicted
    contribute precision 0.
    """
    pairs = list(zip(scores, is_match, strict=True))
    total = 0.0
    for s in set(score for score, match in pairs if match):
        higher = [match for score, match in pairs if score > s]
        tied_non_matches = sum(1 for score, match in pairs if score == s and not match)
        tied_matches = sum(1 for score, match in pairs if score == s and match)
        for k in range(1, tied_matches + 1):
            retrieved = len(higher) + tied_non_matches + k
            hits = sum(higher) + k
            total += hits / retrieved
    return total / num_positives


def reference_recall_at_precision(
    is_match: list[bool], scores: list[float], num_positives: int, min_precision: float
) -> tuple[float | None, float | None]:
    """Try every distinct score as a threshold (accept all predictions scoring >= it)."""
    best: tuple[float | None, float | None] = (None, None)
    for threshold in sorted(set(scores), reverse=True):
        accepted = [
            match for score, match in zip(scores, is_match, strict=True) if score >= threshold
        ]
        hits = sum(accepted)
        recall = hits / num_positives
        # Strictly greater: at equal recall the higher (earlier) threshold is kept.
        if hits / len(accepted) >= min_precision and (best[0] is None or recall > best[0]):
            best = (recall, threshold)
    return best


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 120))
    # Few distinct score values so that ties are common; a high match rate on some seeds so that
    # precision 0.9 is sometimes reachable.
    scores = rng.integers(0, 15, size).astype(np.float64) / 4
    is_match = rng.random(size) < rng.choice([0.2, 0.6, 0.95])
    num_positives = max(1, int(is_match.sum()) + int(rng.integers(0, 4)))
    return is_match, scores, num_positives


@pytest.mark.parametrize("seed", range(40))
def test_micro_ap_matches_slow_reference(seed: int) -> None:
    is_match, scores, num_positives = random_case(seed)
    precisions, recalls, _ = precision_recall_curve(is_match, scores, num_positives)
    expected = reference_micro_ap(is_match.tolist(), scores.tolist(), num_positives)
    assert micro_average_precision(precisions, recalls) == pytest.approx(expected, abs=1e-12)
    # Shuffling the input must not change anything: ties are resolved by the rule, not by order.
    permutation = np.random.default_rng(seed + 1000).permutation(is_match.size)
    shuffled = precision_recall_curve(is_match[permutation], scores[permutation], num_positives)
    assert micro_average_precision(shuffled[0], shuffled[1]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("min_precision", [0.5, 0.9])
def test_recall_at_precision_matches_threshold_sweep(seed: int, min_precision: float) -> None:
    is_match, scores, num_positives = random_case(seed)
    curve = precision_recall_curve(is_match, scores, num_positives)
    expected = reference_recall_at_precision(
        is_match.tolist(), scores.tolist(), num_positives, min_precision
    )
    assert recall_at_precision(*curve, min_precision=min_precision) == expected
