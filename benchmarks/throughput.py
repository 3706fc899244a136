"""Embed-only vs end-to-end ``lookalike score`` throughput of the default model, in one run.

    python benchmarks/throughput.py                      # 1000-px JPEGs made in code
    python benchmarks/throughput.py --images DIR         # your own photos

Embed-only: preprocessed uint8 batches straight into the network (decode and resize excluded).
End to end: ``score_images`` over the files (decode in threads, resize, embed, FAISS search,
write CSV rows) — what ``lookalike score`` does. Both use the same threads and batch size.
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from PIL import Image

from lookalike.data.manifest import iter_image_files, load_catalog
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import Detector, verifier_for
from lookalike.indexing import add_entries, new_index_for
from lookalike.model import create_embedder
from lookalike.scoring import score_images


def make_photos(folder: Path, count: int, side: int) -> list[Path]:
    """JPEGs of ``side`` px with sensor-like noise, so they decode like photos, not flat art."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for number in range(count):
        base = np.asarray(synthetic_image(number, (side, side)), dtype=np.int16)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo{number:05d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of photos (default: made in code)")
    parser.add_argument("--count", type=int, default=384, help="images to score")
    parser.add_argument("--side", type=int, default=1000, help="side of generated JPEGs")
    parser.add_argument("--catalogue", type=int, default=64, help="images indexed first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="decoding threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="local-feature re-ranking in the end-to-end run (default: as the model recommends)",
    )
    args = parser.parse_args()

    embedder = create_embedder(args.model, threads=args.threads, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.images:
            paths = list(iter_image_files([args.images]))[: args.count]
        else:
            paths = make_photos(work / "photos", args.count, args.side)
        catalogue = work / "catalogue"
        catalogue.mkdir()
        for path in paths[: args.catalogue]:
            (catalogue / path.name).symlink_to(path.resolve())
        index = new_index_for(embedder)
        add_entries(index, embedder, load_catalog(catalogue), progress=False)
        verifier = verifier_for(embedder, args.verify)
        detector = Detector(embedder, index, verifier=verifier)

        pixels = torch.stack([embedder.load(path) for path in paths])
        embedder.embed_pixels(pixels[: args.batch_size])  # warm-up (oneDNN kernel selection)
        start = time.perf_counter()
        embedder.embed_pixels(pixels)
        embed_only = len(paths) / (time.perf_counter() - start)

        queries = work / "queries"
        queries.mkdir()
        for path in paths:
            (queries / path.name).symlink_to(path.resolve())
        start = time.perf_counter()
        summary = score_images(
            detector,
            [queries],
            work / "scores.csv",
            batch_size=args.batch_size,
            workers=args.workers,
            progress=False,
        )
        end_to_end = summary.scored / (time.perf_counter() - start)
        sizes = {Image.open(p).size for p in paths[:5]}

    result = {
        "model": embedder.fingerprint.short(),
        "precision": embedder.active_precision,
        "local_verification": detector.verifier.config.to_dict() if detector.verifier else None,
        "input_size": embedder.input_size,
        "images": len(paths),
        "image_sizes": sorted(sizes),
        "threads": args.threads,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "embed_only_images_per_s": round(embed_only, 1),
        "end_to_end_images_per_s": round(end_to_end, 1),
        "ratio_end_to_end_over_embed_only": round(end_to_end / embed_only, 3),
    }
    print(f"embed only : {embed_only:8.1f} images/s")
    print(f"end to end : {end_to_end:8.1f} images/s (decode+embed+search+write)")
    print(f"ratio      : {end_to_end / embed_only:8.3f}")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
