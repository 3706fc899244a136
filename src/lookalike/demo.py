"""``lookalike demo``: the whole path on a small catalogue, offline, in about a minute.

Catalogue images come from a folder the user names (real photos) or are made in code; the
listing photos are edited copies of some catalogue images plus as many images that are not
in the catalogue. The demo indexes, scores (ISC format), evaluates and shows a verdict.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from PIL import Image

from .data.benchmark import recall_at_1_by_edit
from .data.decode import decode_image
from .data.edits import EDITS
from .data.manifest import iter_image_files, load_catalog
from .data.synthetic import synthetic_image
from .detect import Detector
from .indexing import add_entries, new_index_for
from .model import create_embedder
from .model.embedder import untrained_message
from .scoring import discard_output, score_images
from .training.metrics import (
    evaluate,
    format_report,
    read_ground_truth,
    read_predictions,
)


def _source_images(images: Path | None, count: int) -> list[Image.Image]:
    if images is None:
        return [synthetic_image(seed) for seed in range(count)]
    found: list[Image.Image] = []
    for path in iter_image_files([images]):
        try:
            found.append(decode_image(path))
        except ValueError:
            continue
        if len(found) == count:
            break
    if len(found) < count:
        raise ValueError(f"{images}: found {len(found)} readable images, the demo needs {count}")
    return found


def _prepare(out: Path, images: Path | None, limit: int) -> tuple[Path, Path, Path]:
    """Write catalogue/, queries/ and ground_truth.csv under ``out``."""
    positives = max(1, min(50, limit // 4))
    sources = _source_images(images, limit + positives)
    catalogue, queries = out / "catalogue", out / "queries"
    for folder in (catalogue, queries):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for number, image in enumerate(sources[:limit]):
        image.save(catalogue / f"item{number:05d}.jpg", quality=92)
    edit_names = sorted(EDITS)
    truth = [("query_id", "reference_id", "edit")]
    for number in range(positives):
        edit = edit_names[number % len(edit_names)]
        EDITS[edit](sources[number]).save(queries / f"copy{number:04d}.jpg", quality=85)
        truth.append((f"copy{number:04d}", f"item{number:05d}", edit))
    for number, image in enumerate(sources[limit:]):  # not in the catalogue: must stay clear
        edit = edit_names[number % len(edit_names)]
        EDITS[edit](image).save(queries / f"other{number:04d}.jpg", quality=85)
        truth.append((f"other{number:04d}", "", edit))
    ground_truth = out / "ground_truth.csv"
    with open(ground_truth, "w", newline="") as handle:
        csv.writer(handle).writerows(truth)
    return catalogue, queries, ground_truth


def run_demo(
    out: Path,
    *,
    images: Path | None = None,
    limit: int = 200,
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    origin = f"real photos from {images}" if images else "pictures made in code"
    print(f"[1/4] catalogue of {limit} {origin}, listing photos = edited copies + others")
    catalogue, queries, ground_truth = _prepare(out, images, limit)

    embedder = create_embedder("default", threads=threads)
    if not embedder.trained:
        print("\nNOTE: " + untrained_message(embedder.name) + "\n")
    print(f"[2/4] indexing with model {embedder.fingerprint.short()} ({embedder.active_precision})")
    index = new_index_for(embedder)
    report = add_entries(index, embedder, load_catalog(catalogue), progress=progress)
    index_dir = out / "index"
    index.save(index_dir)

    print("[3/4] scoring listing photos -> ISC predictions")
    predictions_path = out / "predictions.csv"
    discard_output(predictions_path)
    detector = Detector(embedder, index)
    summary = score_images(detector, [queries], predictions_path, fmt="isc", progress=progress)

    print("[4/4] evaluation (ISC 2021 metrics)")
    predictions = read_predictions(predictions_path)
    result = evaluate(read_ground_truth(ground_truth), predictions)
    print(format_report(result))
    by_edit = recall_at_1_by_edit(ground_truth, predictions)
    print("recall@1 by edit: " + ", ".join(f"{k} {v:.2f}" for k, v in by_edit.items()))

    example = queries / "copy0000.jpg"
    print(f"\nverdict for {example}:")
    verdict = detector.check(example).to_dict()
    verdict["matches"] = verdict["matches"][:2]
    print(json.dumps(verdict, indent=2))
    duplicates = f" ({len(report.duplicates)} identical files stored once)" * bool(
        report.duplicates
    )
    print(
        f"\nindexed {len(report.added)} images into {index_dir}{duplicates}; "
        f"scored {summary.scored}. Next:\n"
        f"  lookalike check {example} --index {index_dir}\n"
        f"  lookalike score {queries} --index {index_dir} --out {out}/results.csv"
    )
    return {"metrics": result.to_dict(), "recall_at_1_by_edit": by_edit}
