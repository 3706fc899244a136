"""``lookalike score``: check every image of a dump, write one row per input, resumably.

Inputs are files, folders and tar shards (see :mod:`lookalike.data.sources`). Decoding runs
in worker processes a few batches ahead of the model; embedding and FAISS search run batched
in this process; rows go to Parquet (the default), CSV, JSONL or ISC's CSV.

Exactly-once output: each batch's rows are appended to the output and fsynced, then a line
recording the output's new size and the batch's inputs is appended to a journal
(``OUT.progress``). A re-run truncates the output to the last journalled size and skips the
journalled inputs, so a crash at any point neither loses nor repeats a row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .data.loader import Loaded, load_batches
from .data.preprocess import PreparedImage
from .data.sources import ImageInput, is_shard, iter_inputs, list_sources
from .detect import Detector, Verdict

OUTPUT_FORMATS = ("parquet", "csv", "jsonl", "isc")
DEFAULT_FORMAT = "parquet"
TIMING_COLUMNS = ("decode_ms", "embed_ms", "search_ms", "logo_ms")
CSV_COLUMNS = (
    "path",
    "query_id",
    "label",
    "score",
    "expected_precision",
    "top_item_id",
    "top_brand",
    "top_kind",
    "matches",
    "logos",
    "error",
    *TIMING_COLUMNS,
)
ISC_COLUMNS = ("query_id", "reference_id", "score")

Record = dict[str, Any]


def result_record(
    item: ImageInput,
    verdict: Verdict | None,
    error: str | None,
    timings: dict[str, float | None] | None = None,
) -> Record:
    """One input's row: its verdict (or error), best match and timings (ms, this input's
    share of its batch's model and search time)."""
    best = verdict.best if verdict else None
    record = {
        "path": item.key,
        "query_id": item.query_id,
        "label": verdict.label if verdict else "error",
        "score": verdict.score if verdict else None,
        "expected_precision": verdict.expected_precision if verdict else None,
        "top_item_id": best.item_id if best else None,
        "top_brand": best.brand if best else None,
        "top_kind": best.kind if best else None,
        "matches": [m.to_dict() for m in verdict.matches] if verdict else [],
        "logos": [m.to_dict() for m in verdict.logos] if verdict else [],
        "error": error,
    }
    for column in TIMING_COLUMNS:
        value = (timings or {}).get(column)
        record[column] = None if value is None else round(value, 3)
    return record


def score_batch(
    detector: Detector,
    batch: Sequence[Loaded[ImageInput, PreparedImage]],
    *,
    top_k: int | None = None,
) -> list[Record]:
    """Rows for one decoded batch: one forward pass and one FAISS search for its good images,
    an error row for each bad one. Both engines (local and Ray) score through here."""
    prepared = [loaded.value for loaded in batch if loaded.value is not None]
    verdicts: Iterator[Verdict] = iter(())
    embed_ms = search_ms = 0.0
    logo_ms: float | None = None
    if prepared:
        # Embedding and search are timed apart, so this does check_prepared's work itself.
        start = time.perf_counter()
        whole, tiles = detector.embed_prepared(prepared)
        embedded = time.perf_counter()
        found = detector.check_vectors(whole, tiles, top_k=top_k, prepared=prepared)
        searched = time.perf_counter()
        embed_ms = (embedded - start) * 1000 / len(prepared)
        search_ms = (searched - embedded) * 1000 / len(prepared)
        if detector.logo_matcher is not None:
            found = detector.with_logos(found, prepared)
            logo_ms = (time.perf_counter() - searched) * 1000 / len(prepared)
        verdicts = iter(found)
    records = []
    for loaded in batch:
        decode_ms = loaded.seconds * 1000
        if loaded.value is None:
            timings: dict[str, float | None] = {"decode_ms": decode_ms}
            records.append(result_record(loaded.source, None, loaded.error, timings))
        else:
            timings = {
                "decode_ms": decode_ms,
                "embed_ms": embed_ms,
                "search_ms": search_ms,
                "logo_ms": logo_ms,
            }
            records.append(result_record(loaded.source, next(verdicts), None, timings))
    return records


@dataclass
class ScoreSummary:
    """What a scoring run did. ``startup_s``: from the call to the first rows written (pool
    and model start-up, first batch); ``elapsed_s``: the whole call."""

    out: Path
    inputs: int = 0
    skipped_done: int = 0
    scored: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    rows_written: int = 0
    startup_s: float | None = None
    elapsed_s: float = 0.0
    _started: float = field(default_factory=time.perf_counter, repr=False)

    def wrote(self, records: Sequence[Record]) -> None:
        """Count one batch of rows as written."""
        if self.startup_s is None:
            self.startup_s = time.perf_counter() - self._started
        self.rows_written += len(records)
        self.scored += sum(1 for record in records if record["error"] is None)

    def finish(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        self.elapsed_s = time.perf_counter() - self._started

    @property
    def steady_images_per_s(self) -> float | None:
        """Rows per second after the first batch: the rate a long run settles at."""
        if self.startup_s is None or self.elapsed_s <= self.startup_s:
            return None
        return self.rows_written / (self.elapsed_s - self.startup_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "inputs": self.inputs,
            "already_done": self.skipped_done,
            "scored": self.scored,
            "errors": len(self.errors),
            "startup_s": None if self.startup_s is None else round(self.startup_s, 2),
            "elapsed_s": round(self.elapsed_s, 2),
        }


def format_for_suffix(out: Path) -> str:
    by_suffix = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
    return by_suffix.get(out.suffix.lower(), DEFAULT_FORMAT)


class ResumableWriter:
    """Appends rows in one of OUTPUT_FORMATS with an exactly-once journal (see module doc).

    ``fmt`` None means: the format the journal recorded when resuming, else from the
    extension of ``out``. The journal's first line records the format, so that a resume can
    never append rows of another format to the file.
    """

    def __init__(self, out: Path, fmt: str | None = None) -> None:
        if fmt is not None and fmt not in OUTPUT_FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
        self.out = out
        self.journal = out.with_name(out.name + ".progress")
        self.done: set[str] = set()
        self.errors: dict[str, str] = {}
        self._size = 0  # output bytes covered by the journal
        self.fmt = self._open_journal(fmt)
        # Parquet cannot be appended to: rows are staged as JSON lines, converted at close.
        self.data = out.with_name(out.name + ".partial.jsonl") if self.fmt == "parquet" else out
        self._recover_data()

    def _open_journal(self, fmt: str | None) -> str:
        """Start a journal (before any output byte exists), or replay the one there."""
        if not self.journal.exists():
            staging = self.out.with_name(self.out.name + ".partial.jsonl")
            if self.out.exists() or staging.exists():
                raise FileExistsError(
                    f"{self.out} exists but has no {self.journal.name} journal: it is not a "
                    "resumable lookalike output; move it away or choose another --out"
                )
            self.out.parent.mkdir(parents=True, exist_ok=True)
            chosen = fmt or format_for_suffix(self.out)
            self._append_journal({"format": chosen, "size": 0, "paths": []})
            return chosen
        recorded, valid_bytes = None, 0
        with open(self.journal, "rb") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    break  # a torn last line from a crash: everything after it is void
                if not line.endswith(b"\n"):
                    break
                valid_bytes += len(line)
                recorded = entry.get("format", recorded)
                self._size = int(entry["size"])
                self.done.update(entry["paths"])
                self.errors.update(entry.get("errors", {}))
        _truncate(self.journal, valid_bytes)
        if recorded is None:
            raise ValueError(
                f"{self.journal}: journal without a format line; remove it and "
                f"{self.out} to start over"
            )
        if fmt is not None and fmt != recorded:
            raise ValueError(
                f"{self.out} holds {recorded!r} rows; resume it with --format "
                f"{recorded} or write {fmt!r} rows to another --out"
            )
        return str(recorded)

    def _recover_data(self) -> None:
        if not self.data.exists():
            self.data.touch()
        _truncate(self.data, self._size)
        header = self._encode([], header=True)
        if self._size == 0 and header:
            self._append_data(header)
            self._commit([], {})

    def write(self, records: Sequence[Record]) -> None:
        """Append rows (see :func:`result_record`) and journal their inputs as done."""
        self._append_data(self._encode(records, header=False))
        errors = {r["path"]: r["error"] for r in records if r["error"]}
        self._commit([r["path"] for r in records], errors)

    def _commit(self, paths: list[str], errors: dict[str, str]) -> None:
        entry: dict[str, Any] = {"size": self.data.stat().st_size, "paths": paths}
        if errors:
            entry["errors"] = errors
        self._append_journal(entry)
        self.done.update(paths)
        self.errors.update(errors)

    def _append_data(self, payload: bytes) -> None:
        with open(self.data, "ab") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())

    def _append_journal(self, entry: dict[str, Any]) -> None:
        with open(self.journal, "ab") as handle:
            handle.write(json.dumps(entry).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _encode(self, records: Sequence[Record], *, header: bool) -> bytes:
        if self.fmt in ("jsonl", "parquet"):
            return "".join(json.dumps(record) + "\n" for record in records).encode()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.fmt == "isc":
            if header:
                writer.writerow(ISC_COLUMNS)
            for record in records:
                for match in record["matches"]:
                    writer.writerow([record["query_id"], match["item_id"], f"{match['score']:.6f}"])
        else:
            if header:
                writer.writerow(CSV_COLUMNS)
            for record in records:
                flat = dict(record)
                flat["matches"] = json.dumps(
                    [
                        {"item_id": m["item_id"], "score": m["score"], "brand": m["brand"]}
                        for m in record["matches"]
                    ]
                )
                flat["logos"] = json.dumps(
                    [
                        {key: m[key] for key in ("item_id", "score", "brand", "region")}
                        for m in record.get("logos", [])
                    ]
                )
                writer.writerow(["" if flat[c] is None else flat[c] for c in CSV_COLUMNS])
        return buffer.getvalue().encode()

    def close(self) -> None:
        if self.fmt == "parquet":
            _stage_to_parquet(self.data, self.out)


def discard_output(out: str | os.PathLike[str]) -> None:
    """Delete a results file with its journal and staging, so the next run starts afresh."""
    path = Path(out)
    for name in (path.name, path.name + ".progress", path.name + ".partial.jsonl"):
        path.with_name(name).unlink(missing_ok=True)


def _truncate(path: Path, size: int) -> None:
    if path.stat().st_size > size:
        with open(path, "r+b") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())


PARQUET_ROWS_PER_GROUP = 50_000


def parquet_schema() -> Any:
    import pyarrow as pa

    match_type = pa.struct(
        [
            ("item_id", pa.string()),
            ("score", pa.float64()),
            ("brand", pa.string()),
            ("kind", pa.string()),
            ("sku", pa.string()),
            ("source", pa.string()),
            ("sha256", pa.string()),
            ("region", pa.list_(pa.list_(pa.float64()))),
            ("inliers", pa.int64()),
            ("expected_precision", pa.float64()),
            ("agreement", pa.float64()),
            ("transform", pa.string()),
            ("region_source", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("path", pa.string()),
            ("query_id", pa.string()),
            ("label", pa.string()),
            ("score", pa.float64()),
            ("expected_precision", pa.float64()),
            ("top_item_id", pa.string()),
            ("top_brand", pa.string()),
            ("top_kind", pa.string()),
            ("matches", pa.list_(match_type)),
            ("logos", pa.list_(match_type)),
            ("error", pa.string()),
            *((column, pa.float64()) for column in TIMING_COLUMNS),
        ]
    )


def _stage_to_parquet(staging: Path, out: Path) -> None:
    """Rewrite ``out`` from all the staged rows, a row group at a time so that memory stays
    flat however big the dump (the staging file is kept: a later resume adds to it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    tmp = out.with_name(f".{out.name}.tmp")
    with open(staging) as handle, pq.ParquetWriter(tmp, schema) as writer:
        records: list[Record] = []
        written = 0
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
            if len(records) == PARQUET_ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(records, schema=schema))
                written, records = written + len(records), []
        if records or not written:  # an empty dump still gets a file with the schema
            writer.write_table(pa.Table.from_pylist(records, schema=schema))
    os.replace(tmp, out)


def score_images(
    detector: Detector,
    inputs: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    top_k: int | None = None,
    batch_size: int = 32,
    workers: int = 2,
    processes: bool = True,
    progress: bool = True,
) -> ScoreSummary:
    """Score files, folders (recursive, symlinks followed) and tar shards into ``out``;
    resumable. Decoding runs in ``workers`` processes (threads unless ``processes``)."""
    out_path = Path(out)
    summary = ScoreSummary(out_path)
    writer = ResumableWriter(out_path, fmt)
    sources = list_sources(inputs)
    # Shards are counted as they are read; folders of plain files are known up front.
    known_total = None if any(is_shard(s) for s in sources) else len(sources)
    bar = tqdm(total=known_total, desc="scoring", unit="img", disable=not progress)

    def todo() -> Iterator[ImageInput]:
        seen: set[str] = set()
        for item in iter_inputs(sources):
            if item.key in seen:
                continue  # the same member twice in one shard
            seen.add(item.key)
            summary.inputs += 1
            if item.key in writer.done:
                summary.skipped_done += 1
                bar.update(1)
                continue
            yield item

    batches = load_batches(
        todo(),
        detector.preprocessor,
        batch_size=batch_size,
        workers=workers,
        processes=processes,
    )
    for batch in batches:
        records = score_batch(detector, batch, top_k=top_k)
        writer.write(records)
        summary.wrote(records)
        bar.update(len(batch))
    bar.close()
    writer.close()
    summary.finish(writer.errors)
    return summary
