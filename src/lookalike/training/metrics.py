"""Copy-detection metrics with the semantics of the Image Similarity Challenge 2021.

The ISC 2021 matching track (Douze et al.) scores a system by the predictions it emits: scored
``(query_id, reference_id)`` pairs, any number per query. The metrics here follow that protocol:

* **micro average precision (µAP)**: the predictions of all queries are pooled and ranked by
  decreasing score into a single precision/recall curve, so one global score threshold must
  separate copies from non-copies across queries. Recall is measured against every ground-truth
  pair, so a pair never predicted lowers the AP by its share. Queries without a ground-truth pair
  are negatives: every prediction made for them is a false positive.
* **recall at precision 0.9**: the highest recall reachable with precision >= 0.9, and the score
  threshold that achieves it (the operating point a deployment would pick).
* **recall@k**: per ground-truth pair, whether its reference is among the top ``k`` predictions of
  its query.

Ties are always broken against the system: among equal scores non-matches rank first, so emitting
a constant score cannot earn a good result. All functions are plain numpy over in-memory data;
the readers load the ISC CSV format (and Parquet / JSONL with the same columns).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "EvalResult",
    "GroundTruthPair",
    "Prediction",
    "evaluate",
    "format_report",
    "micro_average_precision",
    "precision_recall_curve",
    "read_ground_truth",
    "read_predictions",
    "recall_at_precision",
    "recall_at_rank",
]

FloatArray = npt.NDArray[np.float64]

PREDICTION_COLUMNS = ("query_id", "reference_id", "score")
GROUND_TRUTH_COLUMNS = ("query_id", "reference_id")


@dataclass(frozen=True)
class Prediction:
    """One scored candidate pair; a higher score means "more likely a copy"."""

    query_id: str
    reference_id: str
    score: float


@dataclass(frozen=True)
class GroundTruthPair:
    """A query image that is a copy of (an edited version of) a reference image."""

    query_id: str
    reference_id: str


@dataclass(frozen=True)
class EvalResult:
    """All metrics of one evaluation run.

    ``recall_at_p90`` / ``threshold_at_p90`` are ``None`` when no score threshold reaches
    precision 0.9. ``num_positives`` counts ground-truth pairs, ``num_queries_with_gt`` the
    distinct queries among them.
    """

    micro_ap: float
    recall_at_p90: float | None
    threshold_at_p90: float | None
    recall_at_1: float
    recall_at_10: float
    num_predictions: int
    num_positives: int
    num_queries_with_gt: int

    def to_dict(self) -> dict[str, float | int | None]:
        """Return the fields as a plain dict (JSON-serialisable)."""
        return asdict(self)


def precision_recall_curve(
    is_match: npt.ArrayLike, scores: npt.ArrayLike, num_positives: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Pool predictions into one precision/recall curve, one point per prediction.

    Args:
        is_match: bool array of shape ``(n,)``; ``True`` where the prediction is a ground-truth
            pair.
        scores: float array of shape ``(n,)``; higher means more confident. NaN is rejected.
        num_positives: number of ground-truth pairs (>= the number of ``True`` in ``is_match``);
            pairs that were never predicted still count in the recall denominator.

    Returns:
        ``(precisions, recalls, thresholds)``, three float64 arrays of shape ``(n,)`` ordered by
        decreasing score. Point ``i`` is the state after accepting the first ``i + 1``
        predictions; ``thresholds[i]`` is the score of the ``i``-th prediction. Among equal
        scores non-matches come first (pessimistic tie-breaking).
    """
    matches = np.asarray(is_match)
    values = np.asarray(scores, dtype=np.float64)
    if matches.dtype != np.bool_:
        raise ValueError(f"is_match must be a boolean array, got dtype {matches.dtype}")
    if matches.ndim != 1 or values.shape != matches.shape:
        raise ValueError(
            f"is_match and scores must be 1-D of equal length, got shapes {matches.shape} "
            f"and {values.shape}"
        )
    if np.isnan(values).any():
        raise ValueError("scores contain NaN, which has no rank")
    num_matches = int(matches.sum())
    if num_positives <= 0:
        raise ValueError(f"num_positives must be > 0 (recall is undefined), got {num_positives}")
    if num_matches > num_positives:
        raise ValueError(f"{num_matches} matches exceed num_positives={num_positives}")

    # np.lexsort orders by its last key first: decreasing score, then within a tie False (non-match)
    # before True, so a match never profits from sharing its score with a non-match.
    order = np.lexsort((matches, -values))
    true_positives = np.cumsum(matches[order], dtype=np.float64)
    accepted = np.arange(1, matches.size + 1, dtype=np.float64)
    return true_positives / accepted, true_positives / num_positives, values[order]


def micro_average_precision(precisions: npt.ArrayLike, recalls: npt.ArrayLike) -> float:
    """Area under a precision/recall curve: ``sum_i (recall_i - recall_{i-1}) * precision_i``.

    Args:
        precisions: float array of shape ``(n,)`` from :func:`precision_recall_curve`.
        recalls: float array of shape ``(n,)``, non-decreasing; ``recall_{-1}`` is 0.

    Returns:
        The average precision in ``[0, 1]``; 0.0 for an empty curve.
    """
    precision_values = np.asarray(precisions, dtype=np.float64)
    recall_values = np.asarray(recalls, dtype=np.float64)
    if precision_values.ndim != 1 or precision_values.shape != recall_values.shape:
        raise ValueError(
            f"precisions and recalls must be 1-D of equal length, got shapes "
            f"{precision_values.shape} and {recall_values.shape}"
        )
    recall_gains = np.diff(recall_values, prepend=0.0)
    return float(np.dot(recall_gains, precision_values))


def recall_at_precision(
    precisions: npt.ArrayLike,
    recalls: npt.ArrayLike,
    thresholds: npt.ArrayLike,
    min_precision: float = 0.9,
) -> tuple[float | None, float | None]:
    """Highest recall among curve points with ``precision >= min_precision``.

    Args:
        precisions, recalls, thresholds: float arrays of shape ``(n,)`` from
            :func:`precision_recall_curve`.
        min_precision: required precision, in ``[0, 1]``.

    Returns:
        ``(recall, threshold)``: accepting every prediction with ``score >= threshold`` gives that
        recall. ``(None, None)`` when no point reaches ``min_precision``.
    """
    if not 0.0 <= min_precision <= 1.0:
        raise ValueError(f"min_precision must be in [0, 1], got {min_precision}")
    precision_values = np.asarray(precisions, dtype=np.float64)
    recall_values = np.asarray(recalls, dtype=np.float64)
    threshold_values = np.asarray(thresholds, dtype=np.float64)
    if not (
        precision_values.ndim == 1
        and precision_values.shape == recall_values.shape == threshold_values.shape
    ):
        raise ValueError(
            f"precisions, recalls and thresholds must be 1-D of equal length, got shapes "
            f"{precision_values.shape}, {recall_values.shape} and {threshold_values.shape}"
        )
    qualifying = np.flatnonzero(precision_values >= min_precision)
    if qualifying.size == 0:
        return None, None
    # argmax takes the first of equal recalls, i.e. the highest threshold reaching that recall.
    # With non-matches first among ties, that point is always the last of its tie group, so the
    # threshold really admits exactly the predictions counted (no half-accepted tie group).
    best = qualifying[np.argmax(recall_values[qualifying])]
    return float(recall_values[best]), float(threshold_values[best])


def recall_at_rank(
    ground_truth: Sequence[GroundTruthPair], predictions: Sequence[Prediction], rank: int
) -> float:
    """Fraction of ground-truth pairs whose reference is in the top ``rank`` of its query.

    The rank of a pair is the number of predictions of its query scoring at least as high as the
    pair's own prediction, minus one (so ties count against it); a pair without a prediction has
    infinite rank.

    Raises:
        ValueError: on empty or duplicated ground truth, duplicate or NaN-scored predictions,
            or ``rank < 1``.
    """
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    _positive_pairs(ground_truth)
    ranks = _ground_truth_ranks(ground_truth, _scores_by_query(predictions))
    return float(np.mean(ranks < rank))


def evaluate(
    ground_truth: Sequence[GroundTruthPair], predictions: Sequence[Prediction]
) -> EvalResult:
    """Compute every ISC 2021 metric for one set of predictions.

    Args:
        ground_truth: the copy pairs; queries absent from it are negatives.
        predictions: scored pairs, each ``(query_id, reference_id)`` at most once.

    Raises:
        ValueError: if the ground truth is empty (recall is undefined) or has a duplicate pair,
            or if a prediction is duplicated (naming the first duplicate) or has a NaN score.
    """
    positives = _positive_pairs(ground_truth)
    by_query = _scores_by_query(predictions)
    is_match = np.fromiter(
        ((p.query_id, p.reference_id) in positives for p in predictions),
        dtype=np.bool_,
        count=len(predictions),
    )
    scores = np.fromiter((p.score for p in predictions), dtype=np.float64, count=len(predictions))
    precisions, recalls, thresholds = precision_recall_curve(is_match, scores, len(ground_truth))
    recall_p90, threshold_p90 = recall_at_precision(precisions, recalls, thresholds, 0.9)
    ranks = _ground_truth_ranks(ground_truth, by_query)
    return EvalResult(
        micro_ap=micro_average_precision(precisions, recalls),
        recall_at_p90=recall_p90,
        threshold_at_p90=threshold_p90,
        recall_at_1=float(np.mean(ranks < 1)),
        recall_at_10=float(np.mean(ranks < 10)),
        num_predictions=len(predictions),
        num_positives=len(ground_truth),
        num_queries_with_gt=len({pair.query_id for pair in ground_truth}),
    )


def format_report(result: EvalResult) -> str:
    """Render ``result`` as aligned ``label  value`` lines for a terminal or log."""
    if result.recall_at_p90 is None or result.threshold_at_p90 is None:
        at_p90 = "n/a (precision 0.9 never reached)"
    else:
        at_p90 = f"{result.recall_at_p90:.4f} (score threshold {result.threshold_at_p90:.6g})"
    rows = [
        ("µAP", f"{result.micro_ap:.4f}"),
        ("recall@P90", at_p90),
        ("recall@1", f"{result.recall_at_1:.4f}"),
        ("recall@10", f"{result.recall_at_10:.4f}"),
        ("predictions", str(result.num_predictions)),
        ("GT pairs", f"{result.num_positives} ({result.num_queries_with_gt} queries)"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def read_predictions(path: str | Path) -> list[Prediction]:
    """Load predictions with columns ``query_id,reference_id,score``.

    The format follows the suffix: ``.csv`` (the ISC format, with a header line), ``.parquet`` /
    ``.pq``, or ``.jsonl`` / ``.ndjson`` (one JSON object per line). Extra columns are ignored.

    Raises:
        ValueError: naming the file and line (row, for Parquet) of the first bad row: missing
            column, empty id, non-numeric or NaN score.
    """
    file = Path(path)
    predictions = []
    for location, record in _read_records(file, PREDICTION_COLUMNS):
        predictions.append(
            Prediction(
                query_id=_parse_id(record["query_id"], "query_id", file, location),
                reference_id=_parse_id(record["reference_id"], "reference_id", file, location),
                score=_parse_score(record["score"], file, location),
            )
        )
    return predictions


def read_ground_truth(path: str | Path) -> list[GroundTruthPair]:
    """Load ground truth with columns ``query_id,reference_id`` (same formats as predictions).

    A row with an empty (or null) ``reference_id`` is a query with no original in the reference
    set, as in the ISC ground-truth file; it yields no pair, and the query acts as a negative.

    Raises:
        ValueError: naming the file and line (row, for Parquet) of the first bad row.
    """
    file = Path(path)
    pairs = []
    for location, record in _read_records(file, GROUND_TRUTH_COLUMNS):
        query_id = _parse_id(record["query_id"], "query_id", file, location)
        if record["reference_id"] in (None, ""):
            continue
        reference_id = _parse_id(record["reference_id"], "reference_id", file, location)
        pairs.append(GroundTruthPair(query_id=query_id, reference_id=reference_id))
    return pairs


def _positive_pairs(ground_truth: Sequence[GroundTruthPair]) -> set[tuple[str, str]]:
    """Validate the ground truth and return its pairs as a set."""
    if not ground_truth:
        raise ValueError("ground truth is empty: recall and AP are undefined without positives")
    pairs: set[tuple[str, str]] = set()
    for pair in ground_truth:
        key = (pair.query_id, pair.reference_id)
        # A repeated pair would count twice in the recall denominator but can only match once.
        if key in pairs:
            raise ValueError(
                f"duplicate ground-truth pair: query {pair.query_id!r}, "
                f"reference {pair.reference_id!r}"
            )
        pairs.add(key)
    return pairs


def _scores_by_query(predictions: Sequence[Prediction]) -> dict[str, dict[str, float]]:
    """Map query -> reference -> score, rejecting duplicate pairs and NaN scores."""
    by_query: dict[str, dict[str, float]] = {}
    for prediction in predictions:
        references = by_query.setdefault(prediction.query_id, {})
        # A second score for the same pair would be a free extra guess at the pooled curve.
        if prediction.reference_id in references:
            raise ValueError(
                f"duplicate prediction: query {prediction.query_id!r}, "
                f"reference {prediction.reference_id!r} appears more than once"
            )
        if math.isnan(prediction.score):
            raise ValueError(
                f"NaN score: query {prediction.query_id!r}, reference {prediction.reference_id!r}"
            )
        references[prediction.reference_id] = float(prediction.score)
    return by_query


def _ground_truth_ranks(
    ground_truth: Sequence[GroundTruthPair], by_query: Mapping[str, Mapping[str, float]]
) -> FloatArray:
    """Rank of each ground-truth pair within its query (float64, shape ``(len(ground_truth),)``).

    ``inf`` for pairs without a prediction.
    """
    ranks = np.full(len(ground_truth), np.inf)
    ascending_scores: dict[str, FloatArray] = {}
    for index, pair in enumerate(ground_truth):
        references = by_query.get(pair.query_id, {})
        if pair.reference_id not in references:
            continue
        if pair.query_id not in ascending_scores:
            ascending_scores[pair.query_id] = np.sort(
                np.fromiter(references.values(), dtype=np.float64, count=len(references))
            )
        query_scores = ascending_scores[pair.query_id]
        # Count predictions scoring >= the true reference (itself included): equal scores are
        # assumed to rank ahead of it.
        at_least = query_scores.size - np.searchsorted(
            query_scores, references[pair.reference_id], side="left"
        )
        ranks[index] = at_least - 1
    return ranks


def _row_error(path: Path, location: str, message: str) -> ValueError:
    return ValueError(f"{path}: {location}: {message}")


def _require_columns(
    present: Collection[str], columns: Sequence[str], path: Path, location: str
) -> None:
    missing = [column for column in columns if column not in present]
    if missing:
        found = ", ".join(present) or "none"
        raise _row_error(path, location, f"missing column(s) {', '.join(missing)} (found: {found})")


def _read_records(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, object]]]:
    """Yield ``(location, record)`` per data row; ``record`` holds at least ``columns``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_records(path, columns)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_records(path, columns)
    if suffix in (".parquet", ".pq"):
        return _parquet_records(path, columns)
    raise ValueError(f"{path}: unsupported suffix {path.suffix!r}; use .csv, .jsonl or .parquet")


def _csv_records(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, object]]]:
    # utf-8-sig: a byte-order mark left by spreadsheet tools would otherwise stick to the first
    # column name and make "query_id" look missing.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise _row_error(path, "line 1", f"empty file, expected header {','.join(columns)}")
        names = [name.strip() for name in header]
        _require_columns(names, columns, path, "line 1 (header)")
        positions = {column: names.index(column) for column in columns}
        for row in reader:
            if not row:
                continue
            location = f"line {reader.line_num}"
            if len(row) != len(names):
                raise _row_error(
                    path,
                    location,
                    f"expected {len(names)} fields ({','.join(names)}), got {len(row)}",
                )
            yield location, {column: row[positions[column]].strip() for column in columns}


def _jsonl_records(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, object]]]:
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"line {line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise _row_error(path, location, f"invalid JSON ({error.msg})") from error
            if not isinstance(record, dict):
                raise _row_error(path, location, "expected a JSON object")
            _require_columns(record.keys(), columns, path, location)
            yield location, record


def _parquet_records(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, object]]]:
    # Imported here: pyarrow is heavy and only this format needs it.
    import pyarrow.parquet as pq

    _require_columns(pq.read_schema(path).names, columns, path, "schema")
    table = pq.read_table(path, columns=list(columns))
    values = {column: table.column(column).to_pylist() for column in columns}
    for index in range(table.num_rows):
        yield f"row {index + 1}", {column: values[column][index] for column in columns}


def _parse_id(value: object, column: str, path: Path, location: str) -> str:
    # Integer ids (as JSON or Parquet may store them) are accepted as their decimal text; bool is
    # excluded because it is an int subclass.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _row_error(path, location, f"{column} must be a string, got {value!r}")
    text = str(value)
    if not text:
        raise _row_error(path, location, f"empty {column}")
    return text


def _parse_score(value: object, path: Path, location: str) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _row_error(path, location, f"score must be a number, got {value!r}")
    try:
        score = float(value)
    except ValueError:
        raise _row_error(path, location, f"score is not a number: {value!r}") from None
    if math.isnan(score):
        raise _row_error(path, location, "score is NaN")
    return score
