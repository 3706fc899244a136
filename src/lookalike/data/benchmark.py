"""The copy-detection benchmark: which photos are for training, which form the catalogue, and
which edited listing photos query it.

A folder of catalogue photos is split by a hash of each file *name* into three disjoint parts
(:func:`split_images`): ``train`` (the only part a model may learn from), ``reference`` (the
catalogue the benchmark indexes) and ``distractor`` (photos that are in no catalogue). The split
depends on nothing but the name, so every machine and every run puts a photo in the same part.

:func:`build_copy_benchmark` then writes, under one folder:

* ``references/``: the reference photos, byte-for-byte copies (the ids are the file stems,
  as ``lookalike index build`` names them);
* ``queries/``: for each kind in :data:`~lookalike.data.augment.EDIT_KINDS`, edited copies of
  randomly picked references (positives) and as many edited distractor photos (negatives),
  under opaque shuffled names ``q00000.jpg``...;
* ``ground_truth.csv``: ``query_id,reference_id,edit``, an empty reference for negatives (the
  ISC 2021 format plus one column, which :func:`~lookalike.training.metrics.read_ground_truth`
  ignores);
* ``benchmark.json``: the parameters, a hash of the inputs and each query's source photo.
  It is written last, so its presence with matching parameters means a complete benchmark,
  which a second call reuses instead of rebuilding.

No torch here: the builder runs wherever PIL and numpy do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.data.augment import EDIT_KINDS, apply_edit
from lookalike.data.decode import decode_image
from lookalike.data.manifest import iter_image_files
from lookalike.training.metrics import GroundTruthPair, Prediction, recall_at_rank

__all__ = [
    "BENCHMARK_VERSION",
    "BenchmarkPaths",
    "EditLabel",
    "ImageSplit",
    "QueryRecord",
    "build_copy_benchmark",
    "name_fraction",
    "read_edit_labels",
    "recall_at_1_by_edit",
    "split_images",
]

# Bump when the way queries are made changes, so that stale benchmarks are rebuilt, not reused.
BENCHMARK_VERSION = 1
# JPEG at 90, not PNG: marketplaces re-encode every upload, so a lossless query would keep the
# edit's exact pixels and flatter pixel-exact methods (hashes) beyond what they meet in practice.
# 90 is a light, common upload quality; the "jpeg" edit kind covers hard recompression.
JPEG_QUALITY = 90
# Distractor photos decoded as fill material for paste backgrounds and collage cells; they are
# kept out of the negative queries' sources, so each photo has exactly one role.
OTHERS_POOL_SIZE = 64
MANIFEST_NAME = "benchmark.json"
GROUND_TRUTH_COLUMNS = ("query_id", "reference_id", "edit")


@dataclass(frozen=True)
class ImageSplit:
    """Disjoint parts of one set of photos, each sorted by file name."""

    train: tuple[Path, ...]
    reference: tuple[Path, ...]
    distractor: tuple[Path, ...]


@dataclass(frozen=True)
class BenchmarkPaths:
    """Where a built benchmark lies."""

    references_dir: Path
    queries_dir: Path
    ground_truth_csv: Path
    manifest_json: Path


@dataclass(frozen=True)
class QueryRecord:
    """How one query was made: its ``edit`` applied to the photo named ``source``.

    ``reference_id`` is the reference it copies, ``None`` for a negative (distractor) query.
    """

    query_id: str
    edit: str
    source: str
    reference_id: str | None


@dataclass(frozen=True)
class EditLabel:
    """One row of ``ground_truth.csv``; ``reference_id`` is ``None`` for a negative query."""

    query_id: str
    reference_id: str | None
    edit: str


# --------------------------------------------------------------------------------- split


def name_fraction(name: str) -> float:
    """A fixed number in ``[0, 1)`` for a file name: the first 8 bytes of its sha1."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_images(
    paths: Iterable[str | os.PathLike[str]], *, train: float = 0.70, reference: float = 0.15
) -> ImageSplit:
    """Split photos into train / reference / distractor parts by a hash of each file name.

    A photo goes to ``train`` when :func:`name_fraction` of its name is below ``train``, to
    ``reference`` when below ``train + reference``, else to ``distractor``. Only the name
    counts (not the folder), so copies of a dataset in different places split identically.
    """
    if not (0.0 <= train <= 1.0 and 0.0 <= reference <= 1.0 and train + reference <= 1.0):
        raise ValueError(
            f"need fractions in [0, 1] with train + reference <= 1, got {train}, {reference}"
        )
    parts: tuple[list[Path], list[Path], list[Path]] = ([], [], [])
    for raw in paths:
        path = Path(raw)
        fraction = name_fraction(path.name)
        part = 0 if fraction < train else 1 if fraction < train + reference else 2
        parts[part].append(path)
    ordered = [tuple(sorted(part, key=lambda p: (p.name, str(p)))) for part in parts]
    return ImageSplit(train=ordered[0], reference=ordered[1], distractor=ordered[2])


# --------------------------------------------------------------------------------- build


def build_copy_benchmark(
    images_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    queries_per_kind: int = 40,
    max_references: int | None = None,
) -> BenchmarkPaths:
    """Build (or reuse) the copy-detection benchmark of the photos under ``images_dir``.

    Positives: ``queries_per_kind`` references per edit kind, edited with that kind. Negatives:
    as many distractor photos, edited with the same kinds. ``max_references`` caps the
    catalogue (a fixed, seed-independent subset of the reference part). Photos whose bytes
    occur more than once in the inputs are left out: a duplicate in the distractor part would
    make a "negative" a true copy, and the index stores identical files once.

    Raises:
        ValueError: on bad parameters, no usable reference or distractor photo, or reference
            photos that share a file stem (their ids would collide).
    """
    if queries_per_kind < 1:
        raise ValueError(f"queries_per_kind must be >= 1, got {queries_per_kind}")
    if max_references is not None and max_references < 1:
        raise ValueError(f"max_references must be >= 1 or None, got {max_references}")
    paths = _layout(Path(out_dir))
    inputs = sorted(iter_image_files([Path(images_dir)]), key=lambda p: (p.name, str(p)))
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in inputs}
    params = _params(seed, queries_per_kind, max_references)
    inputs_hash = _inputs_hash(digests)
    if _is_complete(paths, params, inputs_hash):
        return paths

    references, distractors, duplicates = _benchmark_parts(inputs, digests, max_references)
    rng = np.random.default_rng(seed)
    pool, negative_sources = _others_pool(distractors, rng)
    records = _plan_queries(references, negative_sources, queries_per_kind, rng)

    _clear(paths)
    _copy_references(references, paths.references_dir)
    others = [decode_image(path) for path in pool]
    by_name = {path.name: path for path in [*references, *negative_sources]}
    for number, record in enumerate(records):
        query = _make_query(record, by_name[record.source], others, seed, number)
        query.save(paths.queries_dir / f"{record.query_id}.jpg", "JPEG", quality=JPEG_QUALITY)
    _write_ground_truth(paths.ground_truth_csv, records)
    manifest = {
        "version": BENCHMARK_VERSION,
        "params": params,
        "inputs": {"count": len(inputs), "sha256": inputs_hash},
        "excluded_duplicates": duplicates,
        "counts": {
            "references": len(references),
            "positives": sum(r.reference_id is not None for r in records),
            "negatives": sum(r.reference_id is None for r in records),
        },
        "references": [path.name for path in references],
        "others_pool": [path.name for path in pool],
        "queries": [asdict(record) for record in records],
    }
    _write_json_atomic(paths.manifest_json, manifest)
    return paths


def _layout(out_dir: Path) -> BenchmarkPaths:
    return BenchmarkPaths(
        references_dir=out_dir / "references",
        queries_dir=out_dir / "queries",
        ground_truth_csv=out_dir / "ground_truth.csv",
        manifest_json=out_dir / MANIFEST_NAME,
    )


def _params(seed: int, queries_per_kind: int, max_references: int | None) -> dict[str, Any]:
    """Everything that changes the benchmark's content (besides the inputs)."""
    return {
        "seed": seed,
        "queries_per_kind": queries_per_kind,
        "max_references": max_references,
        "edit_kinds": list(EDIT_KINDS),
        "jpeg_quality": JPEG_QUALITY,
        "others_pool_size": OTHERS_POOL_SIZE,
    }


def _inputs_hash(digests: dict[Path, str]) -> str:
    """sha256 over every input's name and content digest, in name order."""
    lines = sorted(f"{path.name}\t{digest}\n" for path, digest in digests.items())
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _is_complete(paths: BenchmarkPaths, params: dict[str, Any], inputs_hash: str) -> bool:
    """Whether ``paths`` holds a finished benchmark of exactly these parameters and inputs."""
    try:
        manifest = json.loads(paths.manifest_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if (
        manifest.get("version") != BENCHMARK_VERSION
        or manifest.get("params") != params
        or manifest.get("inputs", {}).get("sha256") != inputs_hash
        or not paths.ground_truth_csv.is_file()
    ):
        return False
    # Extra or missing files would silently change what the index or the scorer sees.
    expected_queries = {f"{q['query_id']}.jpg" for q in manifest.get("queries", [])}
    return _file_names(paths.references_dir) == set(
        manifest.get("references", [])
    ) and expected_queries == _file_names(paths.queries_dir)


def _file_names(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir()} if folder.is_dir() else set()


def _benchmark_parts(
    inputs: Sequence[Path], digests: dict[Path, str], max_references: int | None
) -> tuple[list[Path], list[Path], int]:
    """``(references, distractors, number of photos left out as byte duplicates)``."""
    counts = Counter(digests.values())
    unique = {path for path in inputs if counts[digests[path]] == 1}
    split = split_images(inputs)
    references = [path for path in split.reference if path in unique]
    distractors = [path for path in split.distractor if path in unique]
    if max_references is not None and len(references) > max_references:
        # The lowest name hashes: a subset that depends on the data only, never on the seed.
        chosen = sorted(references, key=lambda p: name_fraction(p.name))[:max_references]
        references = sorted(chosen, key=lambda p: (p.name, str(p)))
    if not references or not distractors:
        raise ValueError(
            f"need at least one reference and one distractor photo, got {len(references)} and "
            f"{len(distractors)} from {len(inputs)} images"
        )
    _require_unique(path.stem for path in references)
    _require_unique(path.name for path in [*references, *distractors])
    return references, distractors, len(inputs) - len(unique)


def _require_unique(names: Iterable[str]) -> None:
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"benchmark photos must have unique names; repeated: {repeated[:5]}")


def _others_pool(
    distractors: Sequence[Path], rng: np.random.Generator
) -> tuple[list[Path], list[Path]]:
    """``(pool, negative sources)``: disjoint, the pool at most half of the distractors."""
    shuffled = [distractors[i] for i in rng.permutation(len(distractors))]
    size = min(OTHERS_POOL_SIZE, len(shuffled) // 2)
    return sorted(shuffled[:size]), sorted(shuffled[size:])


def _pick(rng: np.random.Generator, population: int, count: int) -> list[int]:
    """``count`` indices below ``population``, distinct while the population allows."""
    return [int(i) for i in rng.choice(population, size=count, replace=count > population)]


def _plan_queries(
    references: Sequence[Path],
    negative_sources: Sequence[Path],
    per_kind: int,
    rng: np.random.Generator,
) -> list[QueryRecord]:
    """Every query to make, in query-id order; ids are shuffled so they reveal nothing."""
    planned: list[tuple[str, str, str | None]] = []
    for kind in EDIT_KINDS:
        for index in _pick(rng, len(references), per_kind):
            planned.append((kind, references[index].name, references[index].stem))
        for index in _pick(rng, len(negative_sources), per_kind):
            planned.append((kind, negative_sources[index].name, None))
    order = rng.permutation(len(planned))
    width = max(5, len(str(len(planned) - 1)))
    return [
        QueryRecord(query_id=f"q{number:0{width}d}", edit=kind, source=source, reference_id=ref)
        for number, (kind, source, ref) in enumerate(planned[i] for i in order)
    ]


def _clear(paths: BenchmarkPaths) -> None:
    """Remove a stale or partial benchmark; the manifest first, so a crash reads as partial."""
    paths.manifest_json.unlink(missing_ok=True)
    paths.ground_truth_csv.unlink(missing_ok=True)
    for folder in (paths.references_dir, paths.queries_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)


def _copy_references(references: Sequence[Path], folder: Path) -> None:
    for path in references:
        shutil.copyfile(path, folder / path.name)


def _make_query(
    record: QueryRecord, source: Path, others: Sequence[Image.Image], seed: int, number: int
) -> Image.Image:
    # One generator per query, keyed by (seed, query number): a query's pixels do not depend
    # on how many random numbers the queries before it consumed.
    rng = np.random.default_rng([seed, number])
    return apply_edit(record.edit, decode_image(source), rng, others)


def _write_ground_truth(path: Path, records: Sequence[QueryRecord]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(GROUND_TRUTH_COLUMNS)
        for record in records:
            writer.writerow([record.query_id, record.reference_id or "", record.edit])


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)


# ------------------------------------------------------------------------------ evaluate


def read_edit_labels(ground_truth_csv: str | os.PathLike[str]) -> list[EditLabel]:
    """Read a benchmark ``ground_truth.csv`` (``query_id,reference_id,edit``)."""
    path = Path(ground_truth_csv)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(GROUND_TRUTH_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        return [
            EditLabel(
                query_id=row["query_id"],
                reference_id=row["reference_id"] or None,
                edit=row["edit"],
            )
            for row in reader
        ]


def recall_at_1_by_edit(
    ground_truth_csv: str | os.PathLike[str], predictions: Sequence[Prediction]
) -> dict[str, float]:
    """Recall@1 of the positive queries of each edit kind, in :data:`EDIT_KINDS` order.

    Uses :func:`~lookalike.training.metrics.recall_at_rank`, so ties are pessimistic exactly as
    in :func:`~lookalike.training.metrics.evaluate`: a reference sharing its score with another
    candidate is not at rank 1. Kinds without positive queries are left out.
    """
    pairs_by_edit: dict[str, list[GroundTruthPair]] = defaultdict(list)
    for label in read_edit_labels(ground_truth_csv):
        if label.reference_id is not None:
            pairs_by_edit[label.edit].append(GroundTruthPair(label.query_id, label.reference_id))
    by_query: dict[str, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        by_query[prediction.query_id].append(prediction)
    known = [kind for kind in EDIT_KINDS if kind in pairs_by_edit]
    kinds = known + sorted(set(pairs_by_edit) - set(known))
    result = {}
    for kind in kinds:
        pairs = pairs_by_edit[kind]
        queries = {pair.query_id for pair in pairs}
        mine = [p for query in sorted(queries) for p in by_query.get(query, ())]
        result[kind] = recall_at_rank(pairs, mine, 1)
    return result
