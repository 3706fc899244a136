"""One checkpoint file format: model spec + weights + metadata, loadable with weights_only=True."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .spec import ModelSpec

CHECKPOINT_FORMAT = "lookalike.checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file is not a lookalike checkpoint, or does not fit its model."""


@dataclass
class Checkpoint:
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    # JSON-like values only (str, int, float, bool, lists, dicts): training recipe, metrics,
    # calibration thresholds. weights_only loading refuses anything richer, by design.
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str],
    network: nn.Module,
    spec: ModelSpec,
    metadata: dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> Path:
    """Write atomically (temp file + rename). ``half`` stores float weights as fp16 (half size)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "spec": spec.to_dict(),
        "state_dict": stored_state(network, half=half),
        "metadata": metadata or {},
    }
    return write_payload(path, payload)


def stored_state(network: nn.Module, *, half: bool) -> dict[str, torch.Tensor]:
    """The network's weights on the CPU, float ones as fp16 when ``half``."""
    return {
        key: (value.half() if half and value.is_floating_point() else value).detach().cpu()
        for key, value in network.state_dict().items()
    }


def write_payload(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Save a checkpoint dict atomically, creating the folder; the twin of read_payload."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(payload, target)
    return target


def atomic_torch_save(payload: dict[str, Any], target: Path) -> None:
    """``torch.save`` to a temp file, fsync, then rename: a crash never leaves half a file."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_payload(
    path: str | os.PathLike[str], fmt: str, version: int, what: str = "lookalike checkpoint"
) -> dict[str, Any]:
    """A checkpoint file's dict, checked for its ``format`` tag and ``version``; any file
    that is not one raises CheckpointError (a missing file: FileNotFoundError)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a {what} ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not a {what} (no '{fmt}' tag)")
    if payload.get("version") != version:
        raise CheckpointError(f"{path}: unsupported {what} version {payload.get('version')}")
    return payload


def float_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights stored as fp16 back to fp32 (integer buffers unchanged)."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    payload = read_payload(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)
    state = float_state(payload["state_dict"])
    return Checkpoint(ModelSpec.from_dict(payload["spec"]), state, dict(payload["metadata"]))


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """A content hash of weights (names, shapes, values), independent of how they were saved."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(
            tensor.float().numpy().tobytes()
            if tensor.is_floating_point()
            else tensor.numpy().tobytes()
        )
    return digest.hexdigest()
