"""``lookalike score --engine ray``: the local engine's scoring as a Ray Data pipeline.

    work items (chunks of files, and one per tar shard, listed by the driver)
      -> an actor pool; each actor reads, decodes, embeds, searches (and re-ranks) its items
         in batches, with the same Preprocessor and ``score_batch`` as the local engine
      -> rows streamed back to the driver, which writes them with the local engine's journal

Decoding runs in the actors rather than in tasks of its own: on CPU nodes, an actor that
decodes then embeds with one thread per core keeps every core busy without handing pixels
between processes, and no task ever waits for a CPU that the actor pool holds.

The detector (model weights, FAISS vectors and catalogue records) is put in Ray's object store
once; each actor fetches it from there when it starts. Rows come back to the driver rather than
being written by the workers, so that both engines share one exactly-once journal: a run killed
at any point resumes where it stopped, in Parquet, CSV, JSONL or ISC alike.

``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` when it is set, else starts Ray on
this machine. Inputs, and the catalogue files that re-ranking reads, are opened by their
paths on the workers: on a cluster those paths must be shared storage, mounted alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .data.loader import load_one
from .data.sources import ImageInput, is_shard, iter_shard, list_sources, split_member_key
from .detect import Detector
from .scoring import Record, ResumableWriter, ScoreSummary, score_batch

__all__ = ["score_images_ray"]

Batch = dict[str, np.ndarray]


def score_images_ray(
    detector: Detector,
    inputs: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    top_k: int | None = None,
    batch_size: int = 32,
    actors: int | None = None,
    threads_per_actor: int = 1,
    num_cpus: int | None = None,
    progress: bool = True,
) -> ScoreSummary:
    """Score like :func:`lookalike.scoring.score_images`, on Ray.

    ``actors``: model replicas, each decoding and embedding with ``threads_per_actor``
    threads (default: as many as the cluster's CPUs allow). ``num_cpus``: CPUs of a Ray
    started here (ignored when joining a cluster).
    """
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(num_cpus=None if os.environ.get("RAY_ADDRESS") else num_cpus)
    out_path = Path(out)
    summary = ScoreSummary(out_path)
    writer = ResumableWriter(out_path, fmt)
    sources = list_sources(inputs)
    work, already_done = _read_tasks(sources, writer.done, files_per_task=batch_size)
    summary.skipped_done = already_done
    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    pool_size = actors or max(1, cluster_cpus // threads_per_actor)
    detector_ref = ray.put(detector)  # shipped once; actors fetch it from the object store

    dataset = ray.data.from_items(work, override_num_blocks=max(1, len(work))).map_batches(
        _ScoringActor,
        batch_size=1,  # one work item per call; the actor batches its images itself
        batch_format="numpy",
        fn_constructor_kwargs={
            "detector_ref": detector_ref,
            "top_k": top_k,
            "threads": threads_per_actor,
            "batch_size": batch_size,
        },
        compute=ray.data.ActorPoolStrategy(size=pool_size),
        num_cpus=threads_per_actor,
    )
    bar = tqdm(desc="scoring (ray)", unit="img", disable=not progress)
    for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
        records: dict[str, Record] = {}  # the same member twice in a shard: one row
        for text in batch["record"]:
            record = json.loads(text)
            if record["path"] not in writer.done:
                records.setdefault(record["path"], record)
        fresh = list(records.values())
        writer.write(fresh)
        summary.wrote(fresh)
        summary.inputs += len(fresh)
        bar.update(len(fresh))
    bar.close()
    writer.close()
    summary.inputs += summary.skipped_done
    summary.finish(writer.errors)
    return summary


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:  # an optional extra
        raise RuntimeError("the Ray engine needs Ray Data: pip install 'lookalike[ray]'") from exc
    return ray


def _read_tasks(
    sources: list[str], done: set[str], files_per_task: int
) -> tuple[list[dict[str, Any]], int]:
    """Work items: chunks of the plain files still to score, and one per shard with the
    members of it already scored (so a resumed run does not decode them again); and how many
    of the inputs are done already."""
    shards: dict[str, list[str]] = {source: [] for source in sources if is_shard(source)}
    for key in done:
        split = split_member_key(key, shards)
        if split is not None:
            shards[split[0]].append(key)
    tasks: list[dict[str, Any]] = []
    already_done = sum(len(members) for members in shards.values())
    files = []
    for source in sources:
        if source in shards:
            tasks.append({"sources": [source], "skip": shards[source]})
        elif source in done:
            already_done += 1
        else:
            files.append(source)
    for start in range(0, len(files), files_per_task):
        tasks.append({"sources": files[start : start + files_per_task], "skip": []})
    return tasks, already_done


def _inputs_of(task: dict[str, Any]) -> Iterator[ImageInput]:
    skip = {str(key) for key in task["skip"]}
    for source in (str(path) for path in task["sources"]):
        if is_shard(source):
            yield from iter_shard(source, skip=skip)
        else:
            yield ImageInput(source)


class _ScoringActor:
    """One model replica: reads, decodes, embeds and searches its work items in batches."""

    def __init__(self, detector_ref: Any, top_k: int | None, threads: int, batch_size: int) -> None:
        import ray
        import torch

        torch.set_num_threads(max(1, threads))
        self.detector: Detector = ray.get(detector_ref)
        self.preprocessor = self.detector.preprocessor
        self.top_k, self.batch_size = top_k, batch_size

    def __call__(self, batch: Batch) -> Iterator[Batch]:
        for row in range(len(batch["sources"])):
            task = {"sources": batch["sources"][row], "skip": batch["skip"][row]}
            inputs = _inputs_of(task)
            while chunk := list(islice(inputs, self.batch_size)):
                loaded = [load_one(self.preprocessor, item) for item in chunk]
                records = score_batch(self.detector, loaded, top_k=self.top_k)
                yield {"record": np.array([json.dumps(r) for r in records], dtype=object)}
