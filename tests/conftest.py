"""Shared fixtures: one embedder and one logo model per test session, and catalogue pictures
made in code."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from logo_helpers import write_logo_model
from lookalike.cli import main
from lookalike.data.synthetic import synthetic_image
from lookalike.model import Embedder, create_embedder

ImageWriter = Callable[..., list[Path]]


def write_synthetic_images(
    folder: Path, seeds: Iterable[int], *, prefix: str = "item", suffix: str = ".png"
) -> list[Path]:
    """Save ``synthetic_image(seed)`` as ``folder/{prefix}{seed:03d}{suffix}`` for each seed."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = folder / f"{prefix}{seed:03d}{suffix}"
        synthetic_image(seed).save(path)  # the format follows the suffix
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def shared_embedder() -> Embedder:
    """The default (untrained, seeded) model, built once: the same one the CLI rebuilds."""
    return create_embedder("default")


@pytest.fixture(scope="session")
def logo_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained logo region model, written once for every logo test module."""
    return write_logo_model(tmp_path_factory.mktemp("logo-model") / "logo.pt")


@pytest.fixture(scope="session")
def write_images() -> ImageWriter:
    """``write_images(folder, seeds, prefix="item", suffix=".png") -> list[Path]``."""
    return write_synthetic_images


Cli = Callable[..., tuple[int, Any]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli(*argv) -> (exit code, parsed JSON stdout or None)``: the lookalike command run
    in-process, its JSON output parsed."""

    def run(*argv: str | Path) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([str(arg) for arg in argv])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    return run
