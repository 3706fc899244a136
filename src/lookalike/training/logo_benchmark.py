"""The logo benchmark: held-out logos pasted into held-out photos, scored at brand level.

Logos and background photos are split once, by a hash of their ids with a fixed seed
(:data:`BENCHMARK_SPLIT_SEED`). The held-out parts build the benchmark; the rest is all that
training may use (:func:`training_logos`, :func:`training_backgrounds`), so a model is never
scored on a logo or a photo it was trained on, whatever seed the benchmark is built with.

Queries are listing-like composites (:mod:`lookalike.data.composites`): positives carry one
logo, negatives none (half of them a distractor mark instead). Query ids are shuffled so that
they say nothing about the answer. A system is scored by ``(query_id, brand, score)``
predictions with the pooled µAP and recall at precision 0.9 of the copy-detection metrics,
and by top-1 brand accuracy over the positives.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.data.composites import (
    PasteConfig,
    Quad,
    make_composite,
    synthetic_background,
)
from lookalike.data.decode import ImageDecodeError, decode_image
from lookalike.data.logos import (
    LogoRenderError,
    LogoSpec,
    normalise_brand,
    render_logo,
    shared_logo_specs,
    split_by_item,
)
from lookalike.logos.geometry import quad_iou
from lookalike.logos.matcher import LogoMatch, LogoMatcher
from lookalike.logos.windows import Windows
from lookalike.training.metrics import (
    micro_average_precision,
    precision_recall_curve,
    recall_at_precision,
)

__all__ = [
    "BENCHMARK_SPLIT_SEED",
    "HELD_OUT_FRACTION",
    "LogoBenchmark",
    "LogoQuery",
    "benchmark_summary",
    "brand_predictions",
    "build_composite_set",
    "build_logo_benchmark",
    "match_photos",
    "match_queries",
    "region_accuracy",
    "right_best_match",
    "score_brand_predictions",
    "top1_by_logo_size",
    "training_backgrounds",
    "training_logos",
]

# Fixed forever: changing it would move logos between training and the benchmark.
BENCHMARK_SPLIT_SEED = 20_240_917
HELD_OUT_FRACTION = 0.2
PHOTO_SHARE = 0.7
LOGO_SIZE = 256
GROUND_TRUTH_FILE = "ground_truth.jsonl"
MANIFEST_FILE = "manifest.json"
IMAGES_DIR = "images"
_FORMAT_VERSION = 1
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class LogoQuery:
    """One benchmark picture and its truth; ``item_id``, ``brand``, ``quad`` None if negative."""

    query_id: str
    image: Path
    item_id: str | None
    brand: str | None
    quad: Quad | None

    @property
    def is_positive(self) -> bool:
        return self.brand is not None


@dataclass(frozen=True)
class LogoBenchmark:
    """A built benchmark: its folder and its queries (with their ground truth)."""

    root: Path
    queries: tuple[LogoQuery, ...]

    @property
    def ground_truth(self) -> dict[str, LogoQuery]:
        """Queries by id."""
        return {query.query_id: query for query in self.queries}

    @property
    def positives(self) -> tuple[LogoQuery, ...]:
        return tuple(query for query in self.queries if query.is_positive)

    @property
    def negatives(self) -> tuple[LogoQuery, ...]:
        return tuple(query for query in self.queries if not query.is_positive)

    @classmethod
    def load(cls, out_dir: Path) -> LogoBenchmark:
        """Read ``out_dir/ground_truth.jsonl``; image paths come back absolute."""
        root = Path(out_dir)
        queries = []
        with (root / GROUND_TRUTH_FILE).open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = json.loads(line)
                quad = record["quad"]
                queries.append(
                    LogoQuery(
                        query_id=record["query_id"],
                        image=root / record["image"],
                        item_id=record["item_id"],
                        brand=record["brand"],
                        quad=None if quad is None else _as_quad(quad),
                    )
                )
        return cls(root, tuple(queries))


def _as_quad(points: Sequence[Sequence[float]]) -> Quad:
    tl, tr, br, bl = ((float(x), float(y)) for x, y in points)
    return (tl, tr, br, bl)


# --------------------------------------------------------------------------------- splits


def _logo_split(
    shared_data: Path, held_out_fraction: float
) -> tuple[list[LogoSpec], list[LogoSpec]]:
    specs = shared_logo_specs(shared_data)
    return split_by_item(specs, _item_key, held_out_fraction, BENCHMARK_SPLIT_SEED)


def _photo_split(shared_data: Path, held_out_fraction: float) -> tuple[list[Path], list[Path]]:
    folder = Path(shared_data) / "fashion_products_small" / "images"
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in _PHOTO_SUFFIXES)
    return split_by_item(photos, _photo_key, held_out_fraction, BENCHMARK_SPLIT_SEED)


def _item_key(spec: LogoSpec) -> str:
    return spec.item_id


def _photo_key(path: Path) -> str:
    return path.name


def training_logos(
    shared_data: Path, held_out_fraction: float = HELD_OUT_FRACTION
) -> list[LogoSpec]:
    """The catalogue logos training may use: all but the benchmark's, sorted by item_id.

    Use the ``held_out_fraction`` the benchmark was built with. A larger fraction holds out
    a superset, so training with the default never sees a default-built benchmark's logos.
    """
    return _logo_split(shared_data, held_out_fraction)[0]


def training_backgrounds(
    shared_data: Path, held_out_fraction: float = HELD_OUT_FRACTION
) -> list[Path]:
    """The fashion photos training may use as backgrounds: all but the benchmark's."""
    return _photo_split(shared_data, held_out_fraction)[0]


# --------------------------------------------------------------------------------- build


def build_logo_benchmark(
    shared_data: Path,
    out_dir: Path,
    *,
    positives: int = 500,
    seed: int = 0,
    held_out_fraction: float = HELD_OUT_FRACTION,
    side: int = 512,
) -> LogoBenchmark:
    """The benchmark: :func:`build_composite_set` over the held-out logos and photos.

    An ``out_dir`` built with the same arguments from the same data is reused as it is (see
    ``manifest.json``); anything else there is rebuilt.
    """
    _, logos = _logo_split(shared_data, held_out_fraction)
    _, photos = _photo_split(shared_data, held_out_fraction)
    if not logos:
        raise ValueError(f"no held-out logo under {shared_data}; raise held_out_fraction")
    return build_composite_set(
        logos,
        photos,
        out_dir,
        positives=positives,
        seed=seed,
        side=side,
        manifest_extra={
            "held_out_fraction": held_out_fraction,
            "split_seed": BENCHMARK_SPLIT_SEED,
        },
    )


def build_composite_set(
    logos: Sequence[LogoSpec],
    backgrounds: Sequence[Path],
    out_dir: Path,
    *,
    positives: int = 500,
    seed: int = 0,
    side: int = 512,
    manifest_extra: Mapping[str, Any] | None = None,
) -> LogoBenchmark:
    """Write ``positives`` positive and as many negative queries to ``out_dir``; load them.

    The benchmark's builder, open to any logos and background photos (calibration builds
    its own set from training data this way). Positives cycle through ``logos`` in a seeded
    order (each used once before any repeats; an unrenderable one is replaced by the next);
    backgrounds are ``backgrounds`` photos resized so the shorter side is ``side`` (70%) or
    synthetic backdrops (30%). Negatives are half plain backgrounds, half with a distractor
    mark. The set is reused when ``manifest.json`` shows the same arguments, logos and
    photo names (plus ``manifest_extra``) and every image is there.
    """
    if positives < 1:
        raise ValueError(f"positives must be >= 1, got {positives}")
    if side < 32:
        raise ValueError(f"side must be >= 32, got {side}")
    if not logos:
        raise ValueError("no logo to paste")
    out = Path(out_dir)
    manifest = {
        "format": _FORMAT_VERSION,
        "positives": positives,
        "seed": seed,
        "side": side,
        **(manifest_extra or {}),
        "logos": [spec.item_id for spec in logos],
        "photos": [path.name for path in backgrounds],
    }
    if _is_built(out, manifest):
        return LogoBenchmark.load(out)
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)  # a half-written build is never "built"
    for stale in images.glob("*.jpg"):
        stale.unlink()
    records = _make_queries(logos, backgrounds, out, positives=positives, seed=seed, side=side)
    with (out / GROUND_TRUTH_FILE).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return LogoBenchmark.load(out)


def _is_built(out: Path, manifest: Mapping[str, Any]) -> bool:
    try:
        written = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
        benchmark = LogoBenchmark.load(out)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return written == manifest and all(query.image.is_file() for query in benchmark.queries)


def _make_queries(
    logos: Sequence[LogoSpec],
    photos: Sequence[Path],
    out: Path,
    *,
    positives: int,
    seed: int,
    side: int,
) -> list[dict[str, Any]]:
    """Render, composite and save every query; return the ground-truth records in id order.

    Each query has its own ``random.Random`` seeded from (seed, its index): one query's
    content never depends on how many random draws another one took.
    """
    order = list(logos)
    random.Random(f"{seed}:logos").shuffle(order)
    # (logo or None, distractor probability) per query; negatives alternate plain/distractor.
    plan: list[tuple[LogoSpec | None, float]] = []
    plan.extend((order[i % len(order)], 0.0) for i in range(positives))
    plan.extend((None, float(i % 2)) for i in range(positives))
    ids = [f"q{i:05d}" for i in range(len(plan))]
    random.Random(f"{seed}:ids").shuffle(ids)
    records = []
    failed: set[str] = set()
    for index, ((spec, p_distractor), query_id) in enumerate(zip(plan, ids, strict=True)):
        rng = random.Random(f"{seed}:query:{index}")
        logo = None
        if spec is not None:
            spec, logo = _logo_for(spec, order, failed, index)
        background = _background(photos, rng, side)
        composite = make_composite(
            background,
            logo,
            rng,
            item_id=None if spec is None else spec.item_id,
            brand=None if spec is None else spec.brand,
            config=PasteConfig(),
            p_distractor=p_distractor,
        )
        relative = f"{IMAGES_DIR}/{query_id}.jpg"
        composite.image.save(out / relative, quality=95)
        records.append(
            {
                "query_id": query_id,
                "image": relative,
                "item_id": composite.item_id,
                "brand": composite.brand,
                "quad": None if composite.quad is None else [list(p) for p in composite.quad],
            }
        )
    return sorted(records, key=lambda record: str(record["query_id"]))


def _logo_for(
    spec: LogoSpec, order: Sequence[LogoSpec], failed: set[str], index: int
) -> tuple[LogoSpec, Image.Image]:
    """The rendered logo of ``spec``, or of the next logo in ``order`` if it cannot render.

    Not cached: each logo is used about once, and 800 rendered logos would hold 200 MB.
    """
    start = order.index(spec)
    for step in range(len(order)):
        candidate = order[(start + step) % len(order)]
        if candidate.item_id in failed:
            continue
        try:
            return candidate, render_logo(candidate.path, LOGO_SIZE)
        except LogoRenderError:
            failed.add(candidate.item_id)
    raise ValueError(f"query {index}: none of the {len(order)} held-out logos renders")


def _background(photos: Sequence[Path], rng: random.Random, side: int) -> Image.Image:
    """A held-out photo with its shorter side ``side``, or (30%, or no photo) a synthetic one."""
    if photos and rng.random() < PHOTO_SHARE:
        path = photos[rng.randrange(len(photos))]
        try:
            photo = decode_image(path)
        except ImageDecodeError:
            photo = None
        if photo is not None:
            scale = side / min(photo.size)
            size = (max(side, round(photo.width * scale)), max(side, round(photo.height * scale)))
            return photo.resize(size, Image.Resampling.BICUBIC)
    long_side = round(side * rng.uniform(1.0, 1.4))
    size = (side, long_side) if rng.random() < 0.5 else (long_side, side)
    return synthetic_background(size, rng)


# ------------------------------------------------------------------------------- matching

BrandPrediction = tuple[str, str, float]  # query id, brand (or item id), score


def match_photos(
    matcher: LogoMatcher, queries: Sequence[LogoQuery], *, batch: int = 8, threads: int = 1
) -> Iterator[tuple[LogoQuery, list[LogoMatch]]]:
    """Every query photo through ``matcher``, ``batch`` photos per call, with its matches.
    Decoding and window cutting run in ``threads`` threads beside the batch being matched
    (they are torch-free), at most ``threads + 1`` batches ahead, so memory does not grow
    with the number of queries."""

    def load(chunk: Sequence[LogoQuery]) -> list[tuple[Image.Image, Windows]]:
        images = [decode_image(query.image).convert("RGB") for query in chunk]
        return [(image, matcher.windows(image)) for image in images]

    chunks = iter([queries[start : start + batch] for start in range(0, len(queries), batch)])
    with ThreadPoolExecutor(threads) as pool:
        ahead = deque((chunk, pool.submit(load, chunk)) for chunk in islice(chunks, threads + 1))
        while ahead:
            chunk, loading = ahead.popleft()
            following = next(chunks, None)
            if following is not None:
                ahead.append((following, pool.submit(load, following)))
            loaded = loading.result()
            images = [image for image, _ in loaded]
            windows = [cut for _, cut in loaded]
            yield from zip(chunk, matcher.match_many(images, windows), strict=True)


def brand_predictions(
    found: Iterable[tuple[LogoQuery, Sequence[LogoMatch]]],
) -> list[BrandPrediction]:
    """Each query's matches (as :func:`match_photos` yields them) as brand predictions."""
    return [(query.query_id, m.brand, m.score) for query, matches in found for m in matches]


def right_best_match(query: LogoQuery, matches: Sequence[LogoMatch]) -> LogoMatch | None:
    """The query's best-scored match when it names the query's brand, else None."""
    best = max(matches, key=lambda m: m.score, default=None)
    if best is None or query.brand is None:
        return None
    return best if normalise_brand(best.brand) == normalise_brand(query.brand) else None


def match_queries(
    matcher: LogoMatcher, queries: Sequence[LogoQuery], *, batch: int = 8, threads: int = 1
) -> list[BrandPrediction]:
    """:func:`match_photos`, as brand predictions."""
    return brand_predictions(match_photos(matcher, queries, batch=batch, threads=threads))


# -------------------------------------------------------------------------------- scoring


def score_brand_predictions(
    predictions: Iterable[tuple[str, str, float]], truth: LogoBenchmark
) -> dict[str, float | int | None]:
    """Brand-level µAP, recall at precision 0.9 and top-1 accuracy of ``predictions``.

    Brands are compared after :func:`normalise_brand`; several predictions of one brand for
    one query count once, with their best score (so predicting both catalogues' "Audi" logos
    is neither rewarded nor punished). Every prediction for a negative query, and every
    wrong brand for a positive one, is a false positive. Ties rank against the system.

    Returns a dict with ``micro_ap``, ``recall_at_p90`` and ``threshold_at_p90`` (None if
    precision 0.9 is never reached), ``top1_accuracy`` (positives whose best-scored brand is
    right, a tie with a wrong brand counting as wrong), ``positives``, ``negatives`` and
    ``predictions`` (distinct query-brand pairs scored).

    Raises:
        ValueError: on a query id that is not in the benchmark, a NaN score, a brand with no
            letter or digit, or a benchmark without positives.
    """
    by_id = truth.ground_truth
    true_brand = {q.query_id: normalise_brand(q.brand) for q in truth.queries if q.brand}
    if not true_brand:
        raise ValueError("the benchmark has no positive query; recall is undefined")
    best: dict[tuple[str, str], float] = {}
    for query_id, brand, score in predictions:
        if query_id not in by_id:
            raise ValueError(f"prediction for unknown query {query_id!r}")
        key = normalise_brand(brand)
        if not key:
            raise ValueError(f"brand {brand!r} has no letter or digit to compare")
        value = float(score)
        if np.isnan(value):
            raise ValueError(f"NaN score for query {query_id!r}, brand {brand!r}")
        pair = (query_id, key)
        best[pair] = max(best.get(pair, value), value)
    pairs = list(best)
    is_match = np.array([true_brand.get(q) == b for q, b in pairs], dtype=np.bool_)
    scores = np.array([best[pair] for pair in pairs], dtype=np.float64)
    precisions, recalls, thresholds = precision_recall_curve(is_match, scores, len(true_brand))
    recall_p90, threshold_p90 = recall_at_precision(precisions, recalls, thresholds, 0.9)
    return {
        "micro_ap": micro_average_precision(precisions, recalls),
        "recall_at_p90": recall_p90,
        "threshold_at_p90": threshold_p90,
        "top1_accuracy": _top1_accuracy(best, true_brand),
        "positives": len(true_brand),
        "negatives": len(truth.queries) - len(true_brand),
        "predictions": len(pairs),
    }


def _top1_accuracy(best: Mapping[tuple[str, str], float], true_brand: Mapping[str, str]) -> float:
    top: dict[str, tuple[float, bool]] = {}  # query -> (best score, only the right brand has it)
    for (query_id, brand), score in best.items():
        if query_id not in true_brand:
            continue
        right = brand == true_brand[query_id]
        current = top.get(query_id)
        if current is None or score > current[0]:
            top[query_id] = (score, right)
        elif score == current[0]:
            top[query_id] = (score, current[1] and right)  # a tie with a wrong brand loses
    correct = sum(1 for _, right in top.values() if right)
    return correct / len(true_brand)


def region_accuracy(
    found: Iterable[tuple[LogoQuery, Sequence[LogoMatch]]],
) -> dict[str, Any]:
    """How well reported regions outline the logo: for each positive whose best match is its
    brand, the intersection over union of that match's region with the pasted logo's quad.
    Returns ``located`` (such positives), ``median_iou``, ``iou_at_least_0.5`` (share), and
    the same per ``region_source`` ("keypoints", "outline", "window") in ``by_source``."""
    ious: dict[str, list[float]] = {}
    for query, matches in found:
        best = right_best_match(query, matches)
        if best is None or query.quad is None:
            continue
        ious.setdefault(best.region_source, []).append(quad_iou(best.region, query.quad))

    def summary(values: Sequence[float]) -> dict[str, Any]:
        return {
            "located": len(values),
            "median_iou": float(np.median(values)) if values else None,
            "iou_at_least_0.5": float(np.mean(np.array(values) >= 0.5)) if values else None,
        }

    every = [iou for values in ious.values() for iou in values]
    return {**summary(every), "by_source": {k: summary(v) for k, v in sorted(ious.items())}}


LOGO_SIZE_BUCKETS = ((0.0, 0.2), (0.2, 0.35), (0.35, 1.0))  # ascending; the last takes the rest


def top1_by_logo_size(
    found: Iterable[tuple[LogoQuery, Sequence[LogoMatch]]],
) -> dict[str, dict[str, float | int]]:
    """Top-1 accuracy of the positives by the pasted logo's size (its outline's longer extent
    over the photo's shorter side; buckets :data:`LOGO_SIZE_BUCKETS`): where search fails."""
    counts = {bucket: [0, 0] for bucket in LOGO_SIZE_BUCKETS}  # positives, right at top 1
    for query, matches in found:
        if query.brand is None or query.quad is None:
            continue
        with Image.open(query.image) as photo:
            short = min(photo.size)
        xs, ys = [p[0] for p in query.quad], [p[1] for p in query.quad]
        size = max(max(xs) - min(xs), max(ys) - min(ys)) / short
        bucket = next((b for b in LOGO_SIZE_BUCKETS if size < b[1]), LOGO_SIZE_BUCKETS[-1])
        counts[bucket][0] += 1
        counts[bucket][1] += int(right_best_match(query, matches) is not None)
    return {
        f"{low:g}-{high:g}": {"positives": n, "top1_accuracy": right / n}
        for (low, high), (n, right) in counts.items()
        if n
    }


def benchmark_summary(benchmark: LogoBenchmark) -> dict[str, Any]:
    """Counts for a report: queries, positives, negatives, distinct logos and brands."""
    positives = benchmark.positives
    return {
        "queries": len(benchmark.queries),
        "positives": len(positives),
        "negatives": len(benchmark.negatives),
        "logos": len({q.item_id for q in positives}),
        "brands": len({normalise_brand(q.brand or "") for q in positives}),
        "root": str(benchmark.root),
    }
