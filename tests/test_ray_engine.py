"""The Ray engine (`lookalike score --engine ray`) against the local engine, on a local Ray
with 2 CPUs: the same rows for the same dump, errors included, and the same exactly-once
resume."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lookalike.data.manifest import load_catalog
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import Detector
from lookalike.indexing import add_entries, new_index_for
from lookalike.model import Embedder
from lookalike.rerank import LocalVerifier, RerankConfig
from lookalike.scoring import score_images

ray = pytest.importorskip("ray")
from lookalike.ray_engine import score_images_ray  # noqa: E402  (needs ray)

pytestmark = pytest.mark.slow

ImageWriter = Callable[..., list[Path]]
TOP_K = 3
# Columns that must agree between engines; timings differ by nature.
COMPARED = ("path", "query_id", "label", "score", "expected_precision", "matches", "error")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def catalogue(write_images: ImageWriter, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("catalogue")
    write_images(folder, range(12))
    return folder


def make_detector(embedder: Embedder, catalogue: Path, *, verify: bool) -> Detector:
    index = new_index_for(embedder)
    add_entries(index, embedder, load_catalog(catalogue), progress=False)
    verifier = LocalVerifier(RerankConfig()) if verify else None
    return Detector(embedder, index, verifier=verifier, top_k=TOP_K)


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_image(seed).rotate(7, expand=True).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def make_dump(folder: Path) -> Path:
    """Loose JPEGs, a corrupt file, and a shard with an image, a sidecar and a bad member."""
    folder.mkdir(parents=True)
    for seed in range(6):
        (folder / f"q{seed:03d}.jpg").write_bytes(jpeg(seed))
    (folder / "broken.jpg").write_bytes(jpeg(1)[:300])
    with tarfile.open(folder / "part-000.tar", "w") as shard:
        members = [
            ("s/q007.jpg", jpeg(7)),
            ("s/q007.json", b"{}"),
            ("s/q008.jpg", b"not an image"),
            ("s/q009.jpg", jpeg(9)),
        ]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            shard.addfile(info, io.BytesIO(data))
    return folder


def rows_by_path(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_path = {row["path"]: {column: row[column] for column in COMPARED} for row in rows}
    assert len(by_path) == len(rows), "an input was written twice"
    return by_path


@pytest.mark.parametrize("verify", [False, True], ids=["descriptor", "re-ranked"])
def test_ray_and_local_engines_write_the_same_rows(
    local_ray: None, shared_embedder: Embedder, catalogue: Path, tmp_path: Path, verify: bool
) -> None:
    detector = make_detector(shared_embedder, catalogue, verify=verify)
    dump = make_dump(tmp_path / "dump")
    local_out, ray_out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local = score_images(detector, [dump], local_out, batch_size=4, workers=2, progress=False)
    remote = score_images_ray(detector, [dump], ray_out, batch_size=4, progress=False)

    counts = ("inputs", "already_done", "scored", "errors")
    assert [local.to_dict()[c] for c in counts] == [remote.to_dict()[c] for c in counts]
    assert (remote.inputs, remote.scored, len(remote.errors)) == (10, 8, 2)
    expected, got = rows_by_path(local_out), rows_by_path(ray_out)
    assert got == expected
    errors = {path for path, row in got.items() if row["label"] == "error"}
    assert errors == {str(dump / "broken.jpg"), f"{dump / 'part-000.tar'}#s/q008.jpg"}


def test_ray_engine_resumes_exactly_once(
    local_ray: None, shared_embedder: Embedder, catalogue: Path, tmp_path: Path
) -> None:
    """A run that stopped part-way (here: half the dump scored) is finished by the Ray engine
    with each input written once, the shard's done members not decoded again."""
    detector = make_detector(shared_embedder, catalogue, verify=False)
    dump = make_dump(tmp_path / "dump")
    out = tmp_path / "results.jsonl"
    first = [dump / f"q{seed:03d}.jpg" for seed in range(3)] + [dump / "part-000.tar"]
    score_images(detector, first, out, batch_size=2, workers=1, progress=False)
    done_before = set(rows_by_path(out))

    summary = score_images_ray(detector, [dump], out, batch_size=2, progress=False)
    assert summary.skipped_done == len(done_before) == 6
    assert summary.inputs == 10
    rows = rows_by_path(out)
    assert len(rows) == 10
    assert done_before < set(rows)
