"""Logo matching on composites: brand-level µAP, recall at precision 0.9, top-1, speed.

    python benchmarks/logos.py ../shared/data                      # shipped logo model
    python benchmarks/logos.py ../shared/data --model runs/logo/logo.pt --orb-queries 100
    python benchmarks/logos.py ../shared/data --dev --orb-queries 0 --alignment-floor 0.6

``--dev`` runs on the calibration composites instead (logos held out of training on training
backgrounds): the set on which matcher settings are chosen, so the benchmark's queries never
are. ``--candidates``, ``--alignment-floor`` and ``--colour-from`` try matcher settings there.

The catalogue holds every shared logo (simple_icons + car_logos, 3,867). Queries are the
benchmark's composites (``lookalike.training.logo_benchmark``): logos and photos held out of
training, pasted with perspective, recolouring, inversion, blur, occlusion and JPEG, plus as
many negatives (no catalogue logo; half of them with a distractor mark). ORB + RANSAC
(training-free) is measured in the same run on a balanced subset of the same queries, and
our matcher is scored on that subset too, side by side.

Regions: for each positive whose best match is the right brand, the intersection over union
of the reported region with the pasted logo's outline (median, share >= 0.5; per region
source: keypoint homography, outline alignment, or the window it was found in).

Top-1 accuracy is also given by logo size (its longer extent over the photo's shorter side).

Speed: photos/s of ``LogoMatcher`` (decode, windows, embedding, FAISS, verification) on
this machine's cores, once every catalogue logo has been described (``warm_up``: keypoints
and outline templates, timed apart; a batch job's steady state). The cold first 40 photos,
describing logos as they come, are timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from lookalike.data.logos import shared_logo_specs
from lookalike.logos.matcher import LogoMatch, LogoMatchConfig, LogoMatcher
from lookalike.training.logo_baselines import OrbLogoMatcher
from lookalike.training.logo_benchmark import (
    LogoBenchmark,
    LogoQuery,
    brand_predictions,
    build_logo_benchmark,
    match_photos,
    region_accuracy,
    score_brand_predictions,
    top1_by_logo_size,
)
from lookalike.training.logo_calibrate import calibration_set, shared_logo_catalog

Prediction = tuple[str, str, float]


def run_matcher(
    matcher: LogoMatcher, queries: Sequence[LogoQuery], batch: int, threads: int
) -> tuple[list[tuple[LogoQuery, list[LogoMatch]]], float]:
    """All queries through the matcher; returns each query's matches and photos/s."""
    start = time.perf_counter()
    found = list(match_photos(matcher, queries, batch=batch, threads=threads))
    return found, len(queries) / (time.perf_counter() - start)


def run_orb(orb: OrbLogoMatcher, queries: Sequence[LogoQuery]) -> tuple[list[Prediction], float]:
    predictions: list[Prediction] = []
    start = time.perf_counter()
    for query in queries:
        for _item_id, brand, score in orb.match(query.image):
            predictions.append((query.query_id, brand, score))
    return predictions, len(queries) / (time.perf_counter() - start)


def subset(bench: LogoBenchmark, count: int) -> LogoBenchmark:
    """A balanced subset: the first ``count / 2`` positives and negatives."""
    half = max(1, count // 2)
    chosen = bench.positives[:half] + bench.negatives[:half]
    return LogoBenchmark(bench.root, chosen)


def row(name: str, metrics: Mapping[str, float | int | None], speed: float) -> str:
    def fmt(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{float(value):.3f}"

    return (
        f"| {name} | {fmt('micro_ap')} | {fmt('recall_at_p90')} | {fmt('top1_accuracy')} "
        f"| {speed:.3g} photos/s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shared_data", type=Path)
    parser.add_argument("--model", default="default", help="logo model: 'default' or a file")
    parser.add_argument("--work", type=Path, default=Path("runs/logo-benchmark"))
    parser.add_argument("--positives", type=int, default=500)
    parser.add_argument("--orb-queries", type=int, default=100, help="balanced subset for ORB")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch", type=int, default=8, help="photos per matcher batch")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--no-alignment", action="store_true", help="keypoint verification only (ablation)"
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="the calibration composites (300 + 300, where settings are chosen) instead",
    )
    defaults = LogoMatchConfig()
    parser.add_argument("--candidates", type=int, default=defaults.candidates)
    parser.add_argument("--window-k", type=int, default=defaults.window_k)
    parser.add_argument("--window-support", type=int, default=defaults.window_support)
    parser.add_argument("--alignment-floor", type=float, default=defaults.alignment_floor)
    parser.add_argument(
        "--colour-from",
        type=float,
        default=None,
        help="colour-opponent windows from this window scale up (e.g. 0.3); 0: grey only "
        f"(default: {defaults.grid.colour_from} for a grey logo network, none for a colour one)",
    )
    parser.add_argument(
        "--colour-min-score",
        type=float,
        default=defaults.colour_min_score,
        help="colour windows' hits count from this descriptor score up",
    )
    parser.add_argument("--region-side", type=int, default=defaults.region_side)
    parser.add_argument(
        "--min-std",
        type=float,
        default=defaults.grid.min_std,
        help="windows flatter than this (grey-level std) are not searched; 0: every window",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.dev:
        bench = calibration_set(args.shared_data, args.work)
    else:
        bench = build_logo_benchmark(
            args.shared_data, args.work / "queries", positives=args.positives
        )
    catalog = shared_logo_catalog(args.shared_data, args.model, args.work)
    defaults = LogoMatchConfig.defaults_for(catalog.model.config.channels)
    if args.colour_from is None:
        args.colour_from = defaults.grid.colour_from
    config = replace(
        defaults,
        candidates=args.candidates,
        window_k=args.window_k,
        window_support=args.window_support,
        colour_min_score=args.colour_min_score,
        region_side=args.region_side,
        alignment_floor=args.alignment_floor,
        alignment=None if args.no_alignment else defaults.alignment,
        grid=replace(defaults.grid, colour_from=args.colour_from or None, min_std=args.min_std),
    )
    matcher = LogoMatcher(catalog, config)
    print("| matcher | brand µAP | recall@P90 | top-1 | speed |\n|---|---|---|---|---|")
    print(
        f"catalogue: {len(catalog)} logos; queries: {len(bench.positives)} positives, "
        f"{len(bench.negatives)} negatives; {platform.processor() or platform.machine()}, "
        f"{args.threads} threads"
    )

    first = subset(bench, 40)
    _, cold_speed = run_matcher(matcher, first.queries, args.batch, args.threads)
    started = time.perf_counter()
    matcher.warm_up()
    warm_up_s = time.perf_counter() - started
    found, speed = run_matcher(matcher, bench.queries, args.batch, args.threads)
    predictions = brand_predictions(found)
    ours = score_brand_predictions(predictions, bench)
    regions = region_accuracy(found)
    by_size = top1_by_logo_size(found)

    print("\nall queries:")
    print(row("lookalike logo search", ours, speed), flush=True)
    if regions["located"]:
        print(
            f"regions of the {regions['located']} positives whose best match is the right "
            f"brand: median IoU {regions['median_iou']:.3f}, IoU >= 0.5 for "
            f"{regions['iou_at_least_0.5']:.1%}"
        )
    sizes = ", ".join(
        f"{bucket}: {v['top1_accuracy']:.3f} (n={v['positives']})" for bucket, v in by_size.items()
    )
    print(f"top-1 by logo size (longer extent / photo's shorter side): {sizes}")
    figures: dict[str, object] = {
        "catalogue_logos": len(catalog),
        "queries": len(bench.queries),
        "ours": ours,
        "ours_regions": regions,
        "ours_top1_by_logo_size": by_size,
        "ours_photos_per_s": speed,
        "ours_cold_photos_per_s": cold_speed,
        "warm_up_s": warm_up_s,
        "model": args.model,
        "alignment": not args.no_alignment,
        "queries_set": "calibration (dev)" if args.dev else "benchmark",
        "candidates": args.candidates,
        "window_k": args.window_k,
        "window_support": args.window_support,
        "alignment_floor": args.alignment_floor,
        "colour_from": args.colour_from or None,
        "colour_min_score": args.colour_min_score,
        "region_side": args.region_side,
        "min_std": args.min_std,
        "threads": args.threads,
    }
    if args.orb_queries > 0:
        figures.update(side_by_side(args, bench, predictions, speed))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


def side_by_side(
    args: argparse.Namespace,
    bench: LogoBenchmark,
    predictions: list[Prediction],
    speed: float,
) -> dict[str, object]:
    """ORB + RANSAC on a balanced subset (it takes ~25 s per photo against 3,867 logos),
    and our figures on the same subset."""
    small = subset(bench, args.orb_queries)
    ours_small = score_brand_predictions(
        [p for p in predictions if p[0] in small.ground_truth], small
    )
    orb = OrbLogoMatcher.from_specs(shared_logo_specs(args.shared_data))
    orb_predictions, orb_speed = run_orb(orb, small.queries)
    orb_metrics = score_brand_predictions(orb_predictions, small)

    print(f"\nbalanced subset of {len(small.queries)} queries, side by side:")
    print("| matcher | brand µAP | recall@P90 | top-1 | speed |\n|---|---|---|---|---|")
    print(row("lookalike logo search", ours_small, speed))
    print(row("ORB + RANSAC (training-free)", orb_metrics, orb_speed))
    return {
        "subset_queries": len(small.queries),
        "ours_subset": ours_small,
        "orb_subset": orb_metrics,
        "orb_photos_per_s": orb_speed,
    }


if __name__ == "__main__":
    main()
