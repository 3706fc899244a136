"""Keypoint matching for local verification: lookalike's vs OpenCV's BFMatcher alone.

    python benchmarks/local_matching.py              # 40 photo pairs made in code
    python benchmarks/local_matching.py --images DIR # pairs of your own photos

Both find each query descriptor's two nearest reference descriptors by exhaustive search
(Hamming for ORB, L2 for SIFT), then apply the same ratio test and one-pair-per-reference
rule. lookalike (``verify._ratio_matches``) searches ORB descriptors with FAISS on one
OpenMP thread and vectorises the rule; it keeps OpenCV's BFMatcher for SIFT. Both run in
this one process, on the same pairs, with the same threads (OpenCV's; FAISS uses one), so
their ratio is measured under one load. The script checks that both give the same pairs in the same
order (RANSAC's seeded sampling depends on it) and prints ms per pair for each.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2
import faiss
import numpy as np
import numpy.typing as npt
from PIL import Image

from lookalike.data.manifest import iter_image_files
from lookalike.data.synthetic import synthetic_image
from lookalike.verify import (
    LocalFeatures,
    _opencv_ratio_matches,
    _ratio_matches,
    orb_features,
    sift_features,
)

Pairs = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]
RATIO = 0.75


def photo_pairs(images: Path | None, count: int) -> list[tuple[Image.Image, Image.Image]]:
    """(listing, catalogue) pairs at 384 px, as re-ranking sees them: every other pair a
    copy (the catalogue photo turned and cropped), the others two different photos."""
    if images is None:
        photos = [synthetic_image(seed, (384, 384)) for seed in range(count + 1)]
    else:
        files = sorted(iter_image_files([images]))[: count + 1]
        photos = [Image.open(path).convert("RGB").resize((384, 384)) for path in files]
    pairs = []
    for number in range(min(count, len(photos) - 1)):
        catalogue = photos[number]
        if number % 2 == 0:
            listing = catalogue.rotate(8).crop((20, 20, 364, 364)).resize((384, 384))
        else:
            listing = photos[number + 1]
        pairs.append((listing, catalogue))
    return pairs


def ms_per_pair(
    match: Callable[[LocalFeatures, LocalFeatures], Pairs],
    features: Sequence[tuple[LocalFeatures, LocalFeatures]],
    repeats: int,
) -> float:
    for query, reference in features:  # warm-up
        match(query, reference)
    start = time.perf_counter()
    for _ in range(repeats):
        for query, reference in features:
            match(query, reference)
    return (time.perf_counter() - start) / (repeats * len(features)) * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="a folder of photos (default: made in code)")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    pairs = photo_pairs(args.images, args.pairs)
    print(f"{len(pairs)} photo pairs at 384 px, {args.threads} threads")
    print("| features | keypoints (mean) | OpenCV BFMatcher ms/pair | lookalike ms/pair | ratio |")
    print("|---|---|---|---|---|")
    for name, describe in (("ORB 1000", orb_features), ("SIFT 500", sift_features)):
        features = [(describe(listing), describe(catalogue)) for listing, catalogue in pairs]
        for query, reference in features:
            expected = _opencv_ratio_matches(query, reference, RATIO)
            found = _ratio_matches(query, reference, RATIO)
            if not all(np.array_equal(a, b) for a, b in zip(expected, found, strict=True)):
                raise SystemExit(f"{name}: lookalike and OpenCV disagree on a pair")
        keypoints = np.mean([len(query) for query, _ in features])
        opencv = ms_per_pair(
            lambda q, r: _opencv_ratio_matches(q, r, RATIO), features, args.repeats
        )
        ours = ms_per_pair(lambda q, r: _ratio_matches(q, r, RATIO), features, args.repeats)
        print(f"| {name} | {keypoints:.0f} | {opencv:.2f} | {ours:.2f} | {opencv / ours:.1f}x |")
    print("same pairs, same order: yes (checked on every pair)")


if __name__ == "__main__":
    main()
