"""Load test of the HTTP service: latency and throughput with and without micro-batching.

    python benchmarks/service_load.py                    # 16 clients, 60 s per phase
    python benchmarks/service_load.py --seconds 20 --clients 8 --index brand.idx

Starts ``python -m lookalike.service serve`` in a subprocess on 127.0.0.1 (a tiny catalogue
made in code, or ``--index``), then drives it from this process with ``--clients`` threads,
each posting pre-encoded listing JPEGs (raw body, keep-alive) one after another for
``--seconds``. Prints p50 / p95 / p99 latency, throughput and errors; then restarts the
server with ``--no-micro-batching`` (one image per forward pass) and repeats, and prints the
throughput ratio. Loopback only; every loop is bounded by time and by a request cap.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from PIL import Image

from lookalike.data.edits import center_crop
from lookalike.data.synthetic import synthetic_image
from lookalike.service.keys import KeyStore, Role

HOST = "127.0.0.1"  # loopback only: this benchmark never targets another machine
MAX_REQUESTS_PER_CLIENT = 100_000  # a hard bound besides the clock


@dataclass
class PhaseResult:
    name: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    mean_batch: float | None = None

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def to_dict(self) -> dict[str, object]:
        return {
            "phase": self.name,
            "requests_ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 1),
            "p95_ms": round(self.percentile(95), 1),
            "p99_ms": round(self.percentile(99), 1),
            "mean_batch": None if self.mean_batch is None else round(self.mean_batch, 2),
        }


def listing_jpegs(count: int, side: int, catalogue: int) -> list[bytes]:
    """Listing-like JPEGs: half are cropped copies of catalogue pictures, half are unrelated;
    sensor-like noise makes them decode like photos."""
    rng = np.random.default_rng(1)
    photos = []
    for number in range(count):
        if number % 2 == 0:
            picture = center_crop(synthetic_image(number % catalogue, (side, side)), keep=0.85)
        else:
            picture = synthetic_image(10_000 + number, (side, side))
        base = np.asarray(picture.convert("RGB"), dtype=np.int16)
        noisy = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noisy).save(buffer, format="JPEG", quality=88)
        photos.append(buffer.getvalue())
    return photos


def build_catalogue_index(folder: Path, count: int, side: int) -> Path:
    from lookalike.data import load_catalog
    from lookalike.indexing import add_entries, new_index_for
    from lookalike.model import create_embedder

    images = folder / "catalogue" / "acme"
    images.mkdir(parents=True)
    for number in range(count):
        synthetic_image(number, (side, side)).save(images / f"item{number:04d}.jpg", quality=92)
    embedder = create_embedder("default")
    index = new_index_for(embedder)
    add_entries(index, embedder, load_catalog(folder / "catalogue"), progress=False)
    index.save(folder / "index")
    return folder / "index"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m lookalike.service serve`` in a subprocess, logs to a file."""

    def __init__(self, args: argparse.Namespace, index: Path, keys: Path, log: Path) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "lookalike.service",
            "serve",
            "--index",
            str(index),
            "--keys-file",
            str(keys),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--rate-limit",
            "0",
            "--max-batch",
            str(args.max_batch),
            "--max-wait-ms",
            str(args.max_wait_ms),
            "--log-level",
            "info",
        ]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if not args.batched:
            command.append("--no-micro-batching")
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see its log")
            try:
                status, _ = get(self.port, "/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server not ready in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def mean_batch_size(port: int) -> float | None:
    """From the server's Prometheus histogram."""
    _, body = get(port, "/metrics")
    total = count = None
    for line in body.decode().splitlines():
        if line.startswith("lookalike_inference_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("lookalike_inference_batch_size_count"):
            count = float(line.split()[-1])
    return total / count if total is not None and count else None


def drive(port: int, key: str, photos: list[bytes], clients: int, seconds: float) -> PhaseResult:
    """``clients`` threads, each one request at a time, for ``seconds``."""
    result = PhaseResult("", seconds)
    lock = threading.Lock()
    start = time.perf_counter() + 0.2  # every client starts together
    deadline = start + seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        latencies: list[float] = []
        errors: list[str] = []
        while time.perf_counter() < start:
            time.sleep(0.001)
        for sent in range(MAX_REQUESTS_PER_CLIENT):
            if time.perf_counter() >= deadline:
                break
            photo = photos[(number * 7919 + sent) % len(photos)]
            began = time.perf_counter()
            try:
                connection.request(
                    "POST",
                    f"/v1/check?listing_id=bench-{number}-{sent}",
                    body=photo,
                    headers={"Content-Type": "image/jpeg", "X-API-Key": key},
                )
                response = connection.getresponse()
                body = response.read()
                if response.status == 200:
                    latencies.append((time.perf_counter() - began) * 1000)
                else:
                    errors.append(f"{response.status} {body[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                errors.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=30)
        connection.close()
        with lock:
            result.latencies_ms.extend(latencies)
            result.errors += len(errors)
            result.error_samples.extend(errors[:3])

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return result


def run_phase(
    args: argparse.Namespace,
    name: str,
    index: Path,
    keys: Path,
    key: str,
    photos: list[bytes],
    workdir: Path,
) -> PhaseResult:
    args.batched = name == "micro-batching"
    server = Server(args, index, keys, workdir / f"server-{name}.log")
    try:
        server.wait_ready()
        drive(server.port, key, photos, args.clients, args.warmup)  # kernels, caches, pools
        result = drive(server.port, key, photos, args.clients, args.seconds)
        result.name = name
        result.mean_batch = mean_batch_size(server.port)
    finally:
        server.stop()
    return result


def print_result(result: PhaseResult) -> None:
    row = result.to_dict()
    print(
        f"{result.name:>16}: p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  "
        f"p99 {row['p99_ms']:7.1f} ms  {row['throughput_rps']:6.1f} req/s  "
        f"errors {result.errors}  mean batch {row['mean_batch']}",
        flush=True,
    )
    for sample in result.error_samples[:3]:
        print(f"{'':>18}error: {sample}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured load first")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--index", type=Path, help="an existing index (default: made in code)")
    parser.add_argument("--catalogue", type=int, default=64, help="catalogue size if made")
    parser.add_argument("--photos", type=int, default=48, help="distinct listing JPEGs")
    parser.add_argument("--side", type=int, default=800, help="listing JPEG side, px")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=None, help="server torch threads")
    parser.add_argument("--only-batched", action="store_true", help="skip the comparison")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.seconds <= 0 or args.seconds > 3600 or not 1 <= args.clients <= 256:
        parser.error("--seconds must be in (0, 3600] and --clients in [1, 256]")

    with tempfile.TemporaryDirectory(prefix="lookalike-load-") as tmp:
        workdir = Path(tmp)
        index = args.index or build_catalogue_index(workdir, args.catalogue, 512)
        keys = workdir / "keys.json"
        _, key = KeyStore(keys).create("load-test", Role.MODERATOR)
        photos = listing_jpegs(args.photos, args.side, args.catalogue)
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            f"{args.clients} clients x {args.seconds:g} s (+{args.warmup:g} s warm-up); "
            f"{len(photos)} listing JPEGs of {args.side}px "
            f"(~{sum(map(len, photos)) // len(photos) // 1024} KB); "
            f"max batch {args.max_batch}, max wait {args.max_wait_ms:g} ms",
            flush=True,
        )
        phases = ["micro-batching"] + ([] if args.only_batched else ["one-by-one"])
        results = [run_phase(args, name, index, keys, key, photos, workdir) for name in phases]
        for result in results:
            print_result(result)
        batched = results[0]
        summary: dict[str, object] = {"phases": [r.to_dict() for r in results]}
        checks = {
            "p99 <= 250 ms": batched.percentile(99) <= 250,
            "no errors": all(r.errors == 0 for r in results),
        }
        if len(results) == 2 and results[1].throughput > 0:
            ratio = batched.throughput / results[1].throughput
            summary["throughput_ratio"] = round(ratio, 2)
            checks["ratio >= 1.5"] = ratio >= 1.5
            print(f"throughput ratio, micro-batching / one-by-one: {ratio:.2f}")
        for name, passed in checks.items():
            print(f"target {name}: {'met' if passed else 'MISSED'}")
        summary["targets"] = checks
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
