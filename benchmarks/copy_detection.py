"""Copy-detection benchmark: lookalike (through its CLI) against training-free baselines.

    python benchmarks/copy_detection.py                        # the shared catalogue photos
    python benchmarks/copy_detection.py --model resnet50 --orb-queries 320

1. Builds (or reuses) the benchmark of ``lookalike.data.benchmark`` from ``--data`` into
   ``--work``: reference photos, edited positive and negative queries, ground truth.
2. Runs ``lookalike index build`` and ``lookalike score --format isc`` as subprocesses,
   exactly as a user would.
3. Runs the baselines on the same queries and references: pHash (64 bits, imagehash), PDQ
   (256 bits, pdqhash), both scored ``1 - hamming / bits`` by exhaustive comparison; ORB +
   ratio test + RANSAC (``lookalike.verify``) exhaustive over the references, scored by inliers.
4. Every method writes ISC predictions (top ``--top-k`` per query) to ``WORK/<method>/preds.csv``
   and is scored by the same code as ``lookalike eval``: µAP, recall@P90 and its threshold,
   recall@1, plus recall@1 per edit kind. Results go to ``WORK/results.json``.

Needs the ``bench`` extra (``pip install -e '.[bench]'``) for the hash baselines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.data.augment import EDIT_KINDS
from lookalike.data.benchmark import (
    BenchmarkPaths,
    EditLabel,
    build_copy_benchmark,
    read_edit_labels,
    recall_at_1_by_edit,
)
from lookalike.data.decode import decode_image
from lookalike.data.manifest import iter_image_files
from lookalike.training.metrics import GroundTruthPair, evaluate, read_predictions
from lookalike.verify import LocalFeatures, match_and_verify, orb_features

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fashion_products_small" / "images"
DEFAULT_WORK = REPO / "runs" / "copy-bench"
# "lookalike": the CLI as a user runs it (local verification as the model recommends);
# "lookalike-descriptor": the same with --no-verify, the global descriptor alone.
METHODS = ("lookalike", "lookalike-descriptor", "phash", "pdq", "orb")
# Bits set in each byte value: Hamming distance of packed hashes by table look-up (works on
# every numpy, unlike np.bitwise_count which needs numpy 2).
POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)

Ranked = list[tuple[str, float]]  # (reference id, score), best first


@dataclass
class MethodRun:
    """One method's predictions file and how long it took."""

    name: str
    predictions: Path
    queries: list[str]  # the query ids it scored
    seconds: float  # wall time of the query side (embedding/hashing/matching + search)
    setup_seconds: float  # reference side: index build, hashing or feature extraction
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def queries_per_s(self) -> float:
        return len(self.queries) / self.seconds if self.seconds > 0 else float("nan")


# ------------------------------------------------------------------------- lookalike CLI


def lookalike_command() -> list[str]:
    """The installed ``lookalike`` script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("lookalike")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lookalike.cli"]


def run_cli(args: Sequence[str]) -> tuple[float, dict[str, Any]]:
    """Run one ``lookalike`` command; return its wall time and the JSON it printed."""
    command = [*lookalike_command(), *args]
    print("  $", shlex.join(command), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"lookalike failed with exit code {done.returncode}: {done.stdout}")
    return seconds, json.loads(done.stdout)


def run_lookalike(
    bench: BenchmarkPaths,
    work: Path,
    model: str | None,
    top_k: int,
    *,
    name: str = "lookalike",
    score_flags: Sequence[str] = (),
) -> MethodRun:
    folder = fresh_folder(work / name)
    index, predictions = folder / "index", folder / "preds.csv"
    model_args = ["--model", model] if model else []
    catalogue = [str(bench.references_dir), "--index", str(index), "--quiet", *model_args]
    build_s, built = run_cli(["index", "build", *catalogue])
    queries = [str(bench.queries_dir), "--index", str(index), "--out", str(predictions)]
    score_options = ["--format", "isc", "--top-k", str(top_k), "--quiet", *model_args, *score_flags]
    score_s, scored = run_cli(["score", *queries, *score_options])
    if built.get("errors") or scored.get("errors"):
        print(f"  WARNING: errors while indexing/scoring: {built} {scored}", flush=True)
    return MethodRun(
        name=name + (f" ({model})" if model else ""),
        predictions=predictions,
        queries=[p.stem for p in iter_image_files([bench.queries_dir])],
        seconds=score_s,
        setup_seconds=build_s,
        note="CLI wall time, model load included",
        extra={"model": built.get("model")},
    )


# ---------------------------------------------------------------------------- hashing


def phash_bits(image: Image.Image) -> npt.NDArray[np.bool_]:
    import imagehash

    return np.asarray(imagehash.phash(image, hash_size=8).hash, dtype=bool).ravel()


def pdq_bits(image: Image.Image) -> npt.NDArray[np.bool_]:
    import pdqhash

    bits, _quality = pdqhash.compute(np.ascontiguousarray(np.asarray(image)))
    return np.asarray(bits, dtype=bool).ravel()


def hash_all(
    paths: Sequence[Path], hasher: Callable[[Image.Image], npt.NDArray[np.bool_]]
) -> npt.NDArray[np.uint8]:
    """Packed hashes ``(len(paths), bits / 8)`` uint8 of the decoded images."""
    return np.stack([np.packbits(hasher(decode_image(path))) for path in paths])


def hamming_top_k(
    queries: npt.NDArray[np.uint8], references: npt.NDArray[np.uint8], k: int, chunk: int = 64
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int32]]:
    """Exhaustive Hamming search: the ``k`` closest references of each query, closest first."""
    k = min(k, len(references))
    order_rows, distance_rows = [], []
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk]
        distances = POPCOUNT[block[:, None, :] ^ references[None, :, :]].sum(-1, dtype=np.int32)
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        near_distances = np.take_along_axis(distances, nearest, axis=1)
        ranked = np.argsort(near_distances, axis=1, kind="stable")
        order_rows.append(np.take_along_axis(nearest, ranked, axis=1))
        distance_rows.append(np.take_along_axis(near_distances, ranked, axis=1))
    return np.concatenate(order_rows), np.concatenate(distance_rows)


def run_hash(
    name: str,
    hasher: Callable[[Image.Image], npt.NDArray[np.bool_]],
    references: Sequence[Path],
    queries: Sequence[Path],
    work: Path,
    top_k: int,
) -> MethodRun:
    folder = fresh_folder(work / name)
    start = time.perf_counter()
    reference_hashes = hash_all(references, hasher)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    query_hashes = hash_all(queries, hasher)
    nearest, distances = hamming_top_k(query_hashes, reference_hashes, top_k)
    seconds = time.perf_counter() - start
    bits = reference_hashes.shape[1] * 8
    ranked = {
        query.stem: [
            (references[r].stem, 1.0 - d / bits) for r, d in zip(row, dist_row, strict=True)
        ]
        for query, row, dist_row in zip(queries, nearest, distances, strict=True)
    }
    predictions = folder / "preds.csv"
    write_isc(predictions, ranked)
    return MethodRun(name, predictions, [q.stem for q in queries], seconds, setup, f"{bits} bits")


# -------------------------------------------------------------------------------- ORB

_WORKER_REFERENCES: list[tuple[str, LocalFeatures]] = []


def _init_orb_worker(references: list[tuple[str, LocalFeatures]]) -> None:
    import cv2

    # One OpenCV thread per process: the processes already use the cores.
    cv2.setNumThreads(1)
    _WORKER_REFERENCES[:] = references


def _orb_rank(job: tuple[str, int, int]) -> tuple[str, Ranked]:
    """Verify one query against every reference; the ``top_k`` by inlier count."""
    path, n_features, top_k = job
    query = orb_features(decode_image(path), n_features)
    scores = [
        (ref_id, float(match_and_verify(query, features).inliers))
        for ref_id, features in _WORKER_REFERENCES
    ]
    scores.sort(key=lambda item: -item[1])
    return Path(path).stem, scores[:top_k]


def run_orb(
    references: Sequence[Path],
    queries: Sequence[Path],
    work: Path,
    *,
    top_k: int,
    n_features: int,
    jobs: int,
) -> MethodRun:
    folder = fresh_folder(work / "orb")
    start = time.perf_counter()
    features = [(path.stem, orb_features(decode_image(path), n_features)) for path in references]
    setup = time.perf_counter() - start
    jobs_list = [(str(path), n_features, top_k) for path in queries]
    start = time.perf_counter()
    # spawn, not fork: OpenCV's thread pool does not survive a fork safely.
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=get_context("spawn"),
        initializer=_init_orb_worker,
        initargs=(features,),
    ) as pool:
        ranked = dict(pool.map(_orb_rank, jobs_list, chunksize=4))
    seconds = time.perf_counter() - start
    predictions = folder / "preds.csv"
    write_isc(predictions, ranked)
    keypoints = float(np.mean([len(f) for _, f in features]))
    return MethodRun(
        "orb",
        predictions,
        [q.stem for q in queries],
        seconds,
        setup,
        f"{jobs} process(es), {keypoints:.0f} keypoints/reference",
    )


def orb_query_subset(labels: Sequence[EditLabel], count: int | None, seed: int) -> set[str]:
    """``count`` query ids spread evenly over (edit kind, positive/negative) cells."""
    if count is None or count >= len(labels):
        return {label.query_id for label in labels}
    rng = np.random.default_rng(seed)
    shuffled = [labels[i] for i in rng.permutation(len(labels))]
    seen: dict[tuple[str, bool], int] = {}
    turn = []  # position of each query within its cell: take round-robin across cells
    for label in shuffled:
        cell = (label.edit, label.reference_id is not None)
        turn.append(seen.get(cell, 0))
        seen[cell] = turn[-1] + 1
    order = sorted(range(len(shuffled)), key=lambda i: turn[i])
    return {shuffled[i].query_id for i in order[:count]}


# ------------------------------------------------------------------------- evaluation


def write_isc(path: Path, ranked: dict[str, Ranked]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_id", "reference_id", "score"])
        for query_id in sorted(ranked):
            for reference_id, score in ranked[query_id]:
                writer.writerow([query_id, reference_id, f"{score:.6f}"])


def write_subset_ground_truth(path: Path, labels: Iterable[EditLabel], keep: set[str]) -> Path:
    """The ground truth restricted to the queries ``keep`` (for subsampled methods)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_id", "reference_id", "edit"])
        for label in labels:
            if label.query_id in keep:
                writer.writerow([label.query_id, label.reference_id or "", label.edit])
    return path


def score_run(run: MethodRun, ground_truth_csv: Path) -> dict[str, Any]:
    """The ``lookalike eval`` metrics and per-edit recall@1 of one method."""
    labels = read_edit_labels(ground_truth_csv)
    pairs = [
        GroundTruthPair(label.query_id, label.reference_id)
        for label in labels
        if label.reference_id is not None
    ]
    predictions = read_predictions(run.predictions)
    keep = {label.query_id for label in labels}
    predictions = [p for p in predictions if p.query_id in keep]
    return {
        "method": run.name,
        "metrics": evaluate(pairs, predictions).to_dict(),
        "recall_at_1_by_edit": recall_at_1_by_edit(ground_truth_csv, predictions),
        "queries": len(keep),
        "query_seconds": run.seconds,
        "queries_per_s": run.queries_per_s,
        "setup_seconds": run.setup_seconds,
        "note": run.note,
        "predictions": str(run.predictions),
        **run.extra,
    }


# ---------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_threshold(value: float | None) -> str:
    # Significant digits, not decimals: cosine thresholds of an untrained model sit at 0.9998.
    return "n/a" if value is None else f"{value:.6g}"


def print_tables(title: str, results: Sequence[dict[str, Any]]) -> None:
    print(f"\n{title}")
    header = f"{'method':<22} {'queries':>7} {'µAP':>7} {'R@P90':>7} {'thresh':>8} {'R@1':>7}"
    print(header + f" {'queries/s':>10} {'setup s':>8}  note")
    for result in results:
        m = result["metrics"]
        print(
            f"{result['method']:<22} {result['queries']:>7} {fmt(m['micro_ap']):>7} "
            f"{fmt(m['recall_at_p90']):>7} {fmt_threshold(m['threshold_at_p90']):>8} "
            f"{fmt(m['recall_at_1']):>7} {result['queries_per_s']:>10.1f} "
            f"{result['setup_seconds']:>8.1f}  {result['note']}"
        )
    names = [r["method"] for r in results]
    width = max(10, *(len(n) for n in names))
    print(f"\nrecall@1 per edit ({title})")
    print(f"{'edit':<12}" + "".join(f" {n:>{width}}" for n in names))
    for kind in EDIT_KINDS:
        cells = [r["recall_at_1_by_edit"].get(kind) for r in results]
        print(f"{kind:<12}" + "".join(f" {fmt(c, 3):>{width}}" for c in cells))


def fresh_folder(folder: Path) -> Path:
    """An empty ``folder``: a method's outputs from an earlier run must never be resumed."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="catalogue photos")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="benchmark + outputs")
    parser.add_argument("--model", default=None, help="lookalike --model (default: package's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries-per-kind", type=int, default=40)
    parser.add_argument("--max-references", type=int, default=None)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}"
    )
    parser.add_argument("--orb-queries", type=int, default=None, help="ORB on N queries only")
    parser.add_argument("--orb-features", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="ORB")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    return args


def run_methods(args: argparse.Namespace, bench: BenchmarkPaths) -> list[MethodRun]:
    references = sorted(iter_image_files([bench.references_dir]))
    queries = sorted(iter_image_files([bench.queries_dir]))
    runs = []
    for method in args.methods:
        print(f"\n[{method}]", flush=True)
        if method == "lookalike":
            runs.append(run_lookalike(bench, args.work, args.model, args.top_k))
        elif method == "lookalike-descriptor":
            runs.append(
                run_lookalike(
                    bench,
                    args.work,
                    args.model,
                    args.top_k,
                    name=method,
                    score_flags=["--no-verify"],
                )
            )
        elif method in ("phash", "pdq"):
            hasher = phash_bits if method == "phash" else pdq_bits
            runs.append(run_hash(method, hasher, references, queries, args.work, args.top_k))
        else:
            labels = read_edit_labels(bench.ground_truth_csv)
            subset = orb_query_subset(labels, args.orb_queries, args.seed)
            chosen = [q for q in queries if q.stem in subset]
            runs.append(
                run_orb(
                    references,
                    chosen,
                    args.work,
                    top_k=args.top_k,
                    n_features=args.orb_features,
                    jobs=args.jobs,
                )
            )
        print(f"  {runs[-1].name}: {len(runs[-1].queries)} queries in {runs[-1].seconds:.1f} s")
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    command = shlex.join(sys.orig_argv if argv is None else [sys.argv[0], *argv])
    print(f"command: {command}", flush=True)
    args = parse_args(argv)
    started = time.perf_counter()
    bench = build_copy_benchmark(
        args.data,
        args.work,
        seed=args.seed,
        queries_per_kind=args.queries_per_kind,
        max_references=args.max_references,
    )
    build_s = time.perf_counter() - started
    labels = read_edit_labels(bench.ground_truth_csv)
    references = sum(1 for _ in iter_image_files([bench.references_dir]))
    print(
        f"benchmark: {bench.manifest_json.parent} ({references} references, {len(labels)} "
        f"queries, {sum(lb.reference_id is not None for lb in labels)} positive) "
        f"ready in {build_s:.1f} s",
        flush=True,
    )
    runs = run_methods(args, bench)

    full = [
        score_run(run, bench.ground_truth_csv) for run in runs if len(run.queries) == len(labels)
    ]
    report: dict[str, Any] = {
        "command": command,
        "benchmark": str(bench.manifest_json),
        "benchmark_seconds": build_s,
    }
    report["all_queries"] = full
    print_tables(f"all {len(labels)} queries, {references} references", full)
    subsampled = [run for run in runs if len(run.queries) != len(labels)]
    for run in subsampled:
        # Every method again on the subsampled queries, so the comparison stays like for like.
        keep = set(run.queries)
        subset_gt = write_subset_ground_truth(
            run.predictions.with_name("ground_truth_subset.csv"), labels, keep
        )
        on_subset = [score_run(other, subset_gt) for other in runs if set(other.queries) >= keep]
        report[f"{run.name}_query_subset"] = on_subset
        print_tables(f"the {len(keep)} queries {run.name} ran on (stratified by edit)", on_subset)
    report["total_seconds"] = time.perf_counter() - started
    (args.work / "results.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\ntotal {report['total_seconds']:.0f} s; results in {args.work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
