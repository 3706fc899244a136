"""SSCD training loop: runs, checkpoints, resumes, evaluates, and actually learns."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lookalike.data.augment import AugmentConfig, ListingAugment
from lookalike.data.synthetic import synthetic_image
from lookalike.model import create_embedder, get_spec, load_checkpoint
from lookalike.model.network import DescriptorNet
from lookalike.training.losses import uniform_info_nce
from lookalike.training.train import (
    TrainConfig,
    _Normalise,
    _to_tensor,
    train,
    train_step,
)

SIDE = 64


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("train_images")
    for seed in range(16):
        synthetic_image(seed, size=(96, 96)).save(folder / f"img{seed:02d}.png")
    return folder


def _config(images: Path, out_dir: Path, **overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "images": images,
        "out_dir": out_dir,
        "model": "resnet18",
        "input_size": SIDE,
        "epochs": 3,
        "batch_size": 4,
        "warmup_steps": 1,
        "precision": "fp32",
        "cache_size": 80,
        "eval_every_steps": 0,
        "checkpoint_every_steps": 0,
        "log_every": 1,
        "threads": 2,
        "augment": AugmentConfig(max_edits=2),
    }
    values.update(overrides)
    return TrainConfig(**values)


def _train_losses(history: list[dict[str, Any]]) -> list[float]:
    return [entry["loss"] for entry in history if entry["kind"] == "train"]


def test_train_writes_loadable_checkpoint(image_folder: Path, tmp_path: Path) -> None:
    result = train(_config(image_folder, tmp_path / "run", max_steps=3), progress=False)
    assert result.steps == 3 and result.start_step == 0
    losses = _train_losses(result.history)
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert result.checkpoint == tmp_path / "run" / "last.pt"
    assert (tmp_path / "run" / "state.pt").is_file()
    embedder = create_embedder(result.checkpoint, precision="fp32")
    assert embedder.trained and embedder.input_size == SIDE
    assert embedder.metadata["step"] == 3
    assert embedder.metadata["training_config"]["input_size"] == SIDE
    vectors = embedder.embed([image_folder / "img00.png"]).vectors
    assert vectors.shape == (1, get_spec("resnet18").dim)


def test_resume_continues_and_matches_uninterrupted(image_folder: Path, tmp_path: Path) -> None:
    chunked = tmp_path / "chunked"
    first = train(_config(image_folder, chunked, max_steps=3), progress=False)
    second = train(_config(image_folder, chunked, max_steps=6), progress=False)
    assert (first.steps, second.start_step, second.steps) == (3, 3, 6)
    # The resumed run logged steps 4..6 on top of the first run's history.
    assert [e["step"] for e in second.history if e["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    again = train(_config(image_folder, chunked, max_steps=6), progress=False)
    assert (again.start_step, again.steps) == (6, 6)  # already done: nothing more to run

    whole = train(_config(image_folder, tmp_path / "whole", max_steps=6), progress=False)
    resumed = load_checkpoint(second.checkpoint).state_dict
    straight = load_checkpoint(whole.checkpoint).state_dict
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-4, atol=1e-5, msg=key)

    with pytest.raises(ValueError, match="lr"):
        train(_config(image_folder, chunked, max_steps=7, lr=1e-2), progress=False)
    with pytest.raises(ValueError, match="held_out"):  # the built-in eval would hold images out
        train(_config(image_folder, chunked, max_steps=7, eval_every_steps=5), progress=False)


class TenSecondSteps:
    """A fake clock for the time budget: every reading is 10 s after the previous one, and
    the loop reads it once when it starts and once per step."""

    def __init__(self) -> None:
        self.seconds = -10.0

    def __call__(self) -> float:
        self.seconds += 10.0
        return self.seconds


def _lrs(history: list[dict[str, Any]]) -> list[float]:
    return [entry["lr"] for entry in history if entry["kind"] == "train"]


def test_time_budget_anneals_and_ends_the_run_whatever_the_epochs(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lookalike.training.train._now", TenSecondSteps())
    # 3 epochs of 4 steps would be 12 steps; a 1-minute budget of 10-s steps ends it at 6.
    config = _config(image_folder, tmp_path / "run", budget_minutes=1.0)
    result = train(config, progress=False)
    assert result.steps == 6
    base = config.lr
    # Step 1 warms up; after that the cosine follows the budget spent (10 s per step).
    expected = [base * 0.5] + [base * 0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(1, 6)]
    assert _lrs(result.history) == pytest.approx(expected)
    assert load_checkpoint(result.checkpoint).metadata["train_minutes"] == 1.0

    # In two calls (the budget is summed over them) it is the same run.
    chunked = tmp_path / "chunked"
    first = train(_config(image_folder, chunked, budget_minutes=1.0, max_steps=2), progress=False)
    second = train(_config(image_folder, chunked, budget_minutes=1.0), progress=False)
    assert (first.steps, second.start_step, second.steps) == (2, 2, 6)
    assert _lrs(second.history) == pytest.approx(expected)
    spent = train(_config(image_folder, chunked, budget_minutes=1.0), progress=False)
    assert (spent.start_step, spent.steps) == (6, 6)  # the budget is spent: nothing runs

    with pytest.raises(ValueError, match="budget_minutes"):
        train(_config(image_folder, chunked, budget_minutes=2.0), progress=False)


def test_epochs_end_a_run_before_a_long_budget(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lookalike.training.train._now", TenSecondSteps())
    result = train(_config(image_folder, tmp_path / "run", budget_minutes=60.0), progress=False)
    assert result.steps == 12  # 3 epochs of 4 steps, in 2 of the 60 minutes
    last_lr = _lrs(result.history)[-1]
    assert last_lr == pytest.approx(1.5e-3 * 0.5 * (1 + math.cos(math.pi * 10 / 11)))


def test_a_budget_must_be_positive(image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="budget_minutes"):
        _config(image_folder, tmp_path / "run", budget_minutes=0.0)


def test_eval_hook_runs_every_n_steps(image_folder: Path, tmp_path: Path) -> None:
    calls: list[bool] = []

    def eval_fn(network: nn.Module) -> dict[str, Any]:
        calls.append(network.training)
        return {"micro_ap": 0.1 * len(calls), "custom": torch.tensor(2.0)}

    config = _config(image_folder, tmp_path / "run", max_steps=4, eval_every_steps=2)
    result = train(config, eval_fn=eval_fn, progress=False)
    assert calls == [False, False]  # called in eval mode, at steps 2 and 4
    evals = [entry for entry in result.history if entry["kind"] == "eval"]
    assert [(e["step"], e["custom"]) for e in evals] == [(2, 2.0), (4, 2.0)]
    assert result.best is not None
    assert load_checkpoint(result.best).metadata["step"] == 4


def test_builtin_copy_detection_check(image_folder: Path, tmp_path: Path) -> None:
    config = _config(image_folder, tmp_path / "run", max_steps=2, eval_every_steps=2, num_workers=1)
    result = train(config, progress=False)  # also runs the views in a worker process
    (entry,) = [e for e in result.history if e["kind"] == "eval"]
    assert 0.0 <= entry["micro_ap"] <= 1.0 and 0.0 <= entry["recall_at_1"] <= 1.0
    assert result.best is not None


def test_interrupt_saves_before_reraising(image_folder: Path, tmp_path: Path) -> None:
    def interrupt(network: nn.Module) -> dict[str, Any]:
        raise KeyboardInterrupt

    config = _config(image_folder, tmp_path / "run", max_steps=5, eval_every_steps=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, eval_fn=interrupt, progress=False)
    assert load_checkpoint(tmp_path / "run" / "last.pt").metadata["step"] == 2
    assert (tmp_path / "run" / "state.pt").is_file()


def test_steps_on_a_fixed_batch_lower_its_loss() -> None:
    torch.manual_seed(0)
    spec = get_spec("resnet18")
    network = DescriptorNet(spec)
    augment = ListingAugment(AugmentConfig(output_size=SIDE, max_edits=1))
    rng = np.random.default_rng(0)
    pairs = [augment.pair(synthetic_image(seed, size=(96, 96)), rng) for seed in range(6)]
    light = torch.stack([_to_tensor(a, SIDE) for a, _ in pairs])
    heavy = torch.stack([_to_tensor(b, SIDE) for _, b in pairs])
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    normalise = _Normalise(spec, "fp32")
    losses = [
        train_step(network, optimizer, light, heavy, normalise, koleo_weight=1.0)["info_nce"]
        for _ in range(6)
    ]
    assert losses[-1] < losses[0]
    assert losses[-1] < uniform_info_nce(6)


def test_training_package_import_is_light() -> None:
    code = "import sys, lookalike.training; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_trains_within_a_budget(image_folder: Path, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "run"
    argv = ["train", image_folder, "--split", "all", "--out", out, "--model", "resnet18"]
    argv += ["--input-size", str(SIDE), "--epochs", "1", "--batch-size", "4", "--workers", "0"]
    argv += ["--eval-every", "0", "--precision", "fp32", "--budget-minutes", "5", "--quiet"]
    code, summary = cli(*argv)
    assert code == 0 and summary["steps"] == 4  # one epoch of 16 images ends it first
    metadata = load_checkpoint(out / "last.pt").metadata
    assert metadata["training_config"]["budget_minutes"] == 5.0
    assert 0 <= metadata["train_minutes"] < 5
