"""``lookalike score``: check every image of a dump, write one row per input, resumably.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .data.loader import load_batches
from .data.manifest import iter_image_files
from .detect import Detector, Verdict

OUTPUT_FORMATS = ("csv", "jsonl", "parquet", "isc")
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
    "error",
)
ISC_COLUMNS = ("query_id", "reference_id", "score")


@dataclass(frozen=True)
class ScoredImage:
    path: str
    verdict: Verdict | None
    error: str | None

    @property
    def query_id(self) -> str:
        return Path(self.path).stem

    def to_record(self) -> dict[str, Any]:
        verdict, best = self.verdict, self.verdict.best if self.verdict else None
        return {
            "path": self.path,
            "query_id": self.query_id,
            "label": verdict.label if verdict else "error",
            "score": verdict.score if verdict else None,
            "expected_precision": verdict.expected_precision if verdict else None,
            "top_item_id": best.item_id if best else None,
            "top_brand": best.brand if best else None,
            "top_kind": best.kind if best else None,
            "matches": [m.to_dict() for m in verdict.matches] if verdict else [],
            "error": self.error,
        }


@dataclass
class ScoreSummary:
    out: Path
    inputs: int = 0
    skipped_done: int = 0
    scored: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "inputs": self.inputs,
            "already_done": self.skipped_done,
            "scored": self.scored,
            "errors": len(self.errors),
        }


def format_for_suffix(out: Path) -> str:
    by_suffix = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
    return by_suffix.get(out.suffix.lower(), "csv")


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

    def write(self, rows: Sequence[ScoredImage]) -> None:
        self._append_data(self._encode(rows, header=False))
        self._commit([r.path for r in rows], {r.path: r.error for r in rows if r.error})

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

    def _encode(self, rows: Sequence[ScoredImage], *, header: bool) -> bytes:
        if self.fmt in ("jsonl", "parquet"):
            return "".join(json.dumps(r.to_record()) + "\n" for r in rows).encode()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.fmt == "isc":
            if header:
                writer.writerow(ISC_COLUMNS)
            for row in rows:
                for match in row.verdict.matches if row.verdict else ():
                    writer.writerow([row.query_id, match.item_id, f"{match.score:.6f}"])
        else:
            if header:
                writer.writerow(CSV_COLUMNS)
            for row in rows:
                record = row.to_record()
                record["matches"] = json.dumps(
                    [
                        {"item_id": m["item_id"], "score": m["score"], "brand": m["brand"]}
                        for m in record["matches"]
                    ]
                )
                writer.writerow(["" if record[c] is None else record[c] for c in CSV_COLUMNS])
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


def _stage_to_parquet(staging: Path, out: Path) -> None:
    """Rewrite ``out`` from the staged rows (all of them: the staging file is kept, so that a
    later resume can add to it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    match_type = pa.struct(
        [
            ("item_id", pa.string()),
            ("score", pa.float64()),
            ("brand", pa.string()),
            ("kind", pa.string()),
            ("sku", pa.string()),
            ("source", pa.string()),
            ("sha256", pa.string()),
        ]
    )
    schema = pa.schema(
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
            ("error", pa.string()),
        ]
    )
    with open(staging) as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(pa.Table.from_pylist(records, schema=schema), tmp)
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
    progress: bool = True,
) -> ScoreSummary:
    """Score files and folders (recursive, symlinks followed) into ``out``; resumable."""
    out_path = Path(out)
    writer = ResumableWriter(out_path, fmt)
    # One row per file however it was named: twice on the command line, or relative in one
    # run and absolute in the next (the journal keys on absolute paths).
    paths = list(dict.fromkeys(os.path.abspath(p) for p in iter_image_files(map(Path, inputs))))
    todo = [p for p in paths if p not in writer.done]
    summary = ScoreSummary(out_path, inputs=len(paths), skipped_done=len(paths) - len(todo))
    bar = tqdm(
        total=len(paths),
        initial=summary.skipped_done,
        desc="scoring",
        unit="img",
        disable=not progress,
    )
    # Decoding and resizing run in the loader's threads; the model and search in this one.
    for batch in load_batches(todo, detector.prepare, batch_size=batch_size, workers=workers):
        prepared = [loaded.value for loaded in batch if loaded.value is not None]
        verdicts = iter(detector.check_prepared(prepared, top_k=top_k))
        rows = [
            ScoredImage(loaded.source, None if loaded.error else next(verdicts), loaded.error)
            for loaded in batch
        ]
        writer.write(rows)
        summary.scored += sum(1 for row in rows if row.error is None)
        bar.update(len(batch))
    bar.close()
    writer.close()
    summary.errors = dict(writer.errors)
    return summary
