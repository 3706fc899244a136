"""Embed-only vs end-to-end ``lookalike score`` throughput, and the Ray engine's overhead.

    python benchmarks/throughput.py                      # 1000-px JPEGs made in code
    python benchmarks/throughput.py --engine ray         # + the Ray engine at the same CPUs
    python benchmarks/throughput.py --images DIR         # your own photos

Embed-only: preprocessed uint8 batches straight into the network (decode and resize excluded).
End to end: ``score_images`` over the files (decode in worker processes, resize, embed, FAISS
search, write Parquet rows) — what ``lookalike score`` does; also with decoding threads, for
comparison. Ray: ``score_images_ray`` on a local Ray with ``--threads`` CPUs, ``ray.init``
excluded (reported apart). All in one run, so the ratios are measured under the same load.

Decoding a JPEG costs CPU that the model cannot use: the script also measures decode-only
time on one core and prints the ratio that perfect overlap could reach on these cores,
``model CPU time / (model + decode CPU time)``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from PIL import Image

from lookalike.data.manifest import iter_image_files, load_catalog
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import Detector, tiles_for, verifier_for
from lookalike.indexing import add_entries, new_index_for
from lookalike.model import create_embedder
from lookalike.scoring import ScoreSummary, discard_output, score_images


def make_photos(folder: Path, count: int, side: int, noise: float) -> list[Path]:
    """JPEGs of ``side`` px with sensor-like noise (sigma ``noise``), so they decode like
    photos, not flat art: the noisier, the bigger the file and the slower the decode."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for number in range(count):
        base = np.asarray(synthetic_image(number, (side, side)), dtype=np.int16)
        noisy = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo{number:05d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
    return paths


def images_per_s(run: Any, count: int) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of photos (default: made in code)")
    parser.add_argument("--count", type=int, default=1024, help="images to score")
    parser.add_argument("--side", type=int, default=1000, help="side of generated JPEGs")
    parser.add_argument("--noise", type=float, default=12.0, help="noise of generated JPEGs")
    parser.add_argument("--catalogue", type=int, default=64, help="images indexed first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads / Ray CPUs")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="default")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="local-feature re-ranking in the end-to-end runs (default: as the model says)",
    )
    parser.add_argument(
        "--tiles",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="query tiles in the end-to-end runs (default: as the model says, with re-ranking)",
    )
    args = parser.parse_args()

    embedder = create_embedder(args.model, threads=args.threads, batch_size=args.batch_size)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.images:
            paths = list(iter_image_files([args.images]))[: args.count]
        else:
            paths = make_photos(work / "photos", args.count, args.side, args.noise)
        catalogue = work / "catalogue"
        catalogue.mkdir()
        for path in paths[: args.catalogue]:
            (catalogue / path.name).symlink_to(path.resolve())
        index = new_index_for(embedder)
        add_entries(index, embedder, load_catalog(catalogue), progress=False)
        verifier = verifier_for(embedder, args.verify)
        tiles = tiles_for(embedder, args.tiles, verified=verifier is not None)
        detector = Detector(embedder, index, verifier=verifier, tiles=tiles)
        queries = work / "queries"
        queries.mkdir()
        for path in paths:
            (queries / path.name).symlink_to(path.resolve())
        count = len(paths)

        prepare = detector.preprocessor
        start = time.process_time()
        pixels = torch.stack([torch.from_numpy(prepare(path).pixels) for path in paths])
        decode_cpu_ms = (time.process_time() - start) * 1000 / count
        embedder.embed_pixels(pixels[: args.batch_size])  # warm-up (oneDNN kernel selection)
        embed_only = images_per_s(lambda: embedder.embed_pixels(pixels), count)

        def local(processes: bool) -> ScoreSummary:
            out = work / "scores.parquet"
            discard_output(out)
            return score_images(
                detector,
                [queries],
                out,
                batch_size=args.batch_size,
                workers=args.workers,
                processes=processes,
                progress=False,
            )

        warm = work / "warm-up"  # first-use costs (imports, kernels) are not the steady rate
        warm.mkdir()
        for path in paths[: args.batch_size]:
            (warm / path.name).symlink_to(path.resolve())
        score_images(detector, [warm], work / "warm.parquet", progress=False)

        processes = local(processes=True)
        threads = local(processes=False)
        end_to_end, with_threads = count / processes.elapsed_s, count / threads.elapsed_s
        if args.engine == "ray":
            result["ray"] = measure_ray(detector, queries, work, count, args)

        sizes = sorted({Image.open(p).size for p in paths[:5]})
        mean_kb = float(np.mean([p.stat().st_size for p in paths])) / 1024

    model_cpu_ms = args.threads * 1000 / embed_only
    ceiling = model_cpu_ms / (model_cpu_ms + decode_cpu_ms)
    result = {
        "model": embedder.fingerprint.short(),
        "precision": embedder.active_precision,
        "local_verification": detector.verifier.config.to_dict() if detector.verifier else None,
        "query_tiles": detector.tiles.to_dict() if detector.tiles else None,
        "input_size": embedder.input_size,
        "images": count,
        "image_sizes": sizes,
        "mean_file_kb": round(mean_kb, 1),
        "threads": args.threads,
        "decode_workers": args.workers,
        "batch_size": args.batch_size,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "decode_cpu_ms_per_image": round(decode_cpu_ms, 2),
        "model_cpu_ms_per_image": round(model_cpu_ms, 2),
        "embed_only_images_per_s": round(embed_only, 1),
        "end_to_end_images_per_s": round(end_to_end, 1),
        "end_to_end_after_first_batch_images_per_s": _rounded(processes.steady_images_per_s),
        "end_to_end_decode_threads_images_per_s": round(with_threads, 1),
        "ratio_end_to_end_over_embed_only": round(end_to_end / embed_only, 3),
        "ratio_ceiling_with_perfect_overlap": round(ceiling, 3),
        **result,
    }
    print(f"embed only          : {embed_only:8.1f} images/s")
    print(f"end to end          : {end_to_end:8.1f} images/s (decode processes)")
    print(f"end to end, threads : {with_threads:8.1f} images/s (decode threads)")
    print(f"ratio               : {end_to_end / embed_only:8.3f}")
    print(f"ceiling             : {ceiling:8.3f} (decode {decode_cpu_ms:.2f} CPU-ms/img, ", end="")
    print(f"model {model_cpu_ms:.2f} CPU-ms/img)")
    if "ray" in result:
        ray_result = result["ray"]
        ray_result["time_over_local"] = round(end_to_end / ray_result["images_per_s"], 3)
        print(f"ray engine          : {ray_result['images_per_s']:8.1f} images/s, ", end="")
        print(f"{ray_result['time_over_local']:.2f}x the local engine's time ", end="")
        print(f"(ray.init {ray_result['init_s']:.1f} s apart; start-up to first rows ", end="")
        print(f"{ray_result['startup_s']:.1f} s vs {processes.startup_s or 0:.1f} s locally)")
    json.dump(result, sys.stdout, indent=2)
    print()


def measure_ray(
    detector: Detector, queries: Path, work: Path, count: int, args: argparse.Namespace
) -> dict[str, Any]:
    import ray

    from lookalike.ray_engine import score_images_ray

    start = time.perf_counter()
    ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    out = work / "ray.parquet"
    summary = score_images_ray(detector, [queries], out, batch_size=args.batch_size, progress=False)
    ray.shutdown()
    return {
        "cpus": args.threads,
        "init_s": round(init_s, 2),
        "images_per_s": round(count / summary.elapsed_s, 1),
        "startup_s": round(summary.startup_s or 0.0, 2),
        "after_first_batch_images_per_s": _rounded(summary.steady_images_per_s),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


if __name__ == "__main__":
    main()
