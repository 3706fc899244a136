"""Logo training: samples, loss, a few real steps, checkpoint, resume; brand-score helpers
of the logo calibration. Tiny data drawn in code; a few seconds."""

from __future__ import annotations

import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from logo_helpers import draw_logos, one_torch_thread
from lookalike.data.logos import LogoSpec
from lookalike.index import CatalogRecord
from lookalike.logos.matcher import LogoMatch, LogoMatchConfig, RegionSource
from lookalike.logos.network import LogoNetConfig, load_logo_model
from lookalike.model.embedder import Precision
from lookalike.training import logo_calibrate
from lookalike.training.calibration import calibrate
from lookalike.training.logo_benchmark import LogoBenchmark, LogoQuery
from lookalike.training.logo_calibrate import LogoCalibrationResult, brand_scores
from lookalike.training.logo_train import (
    SAVED_FORMAT,
    SAVED_MANIFEST,
    LogoTrainConfig,
    LogoTrainingData,
    WindowSampler,
    _learning_rate,
    embed_in_eval_mode,
    logo_loss,
    mine_negatives,
    split_eval_logos,
    train_logos,
    train_mode,
    training_precision,
)


@pytest.fixture
def data() -> LogoTrainingData:
    logos = list(draw_logos().values())
    specs = [LogoSpec(f"l{i}", f"brand{i}", Path(f"l{i}.png")) for i in range(len(logos))]
    rng = np.random.default_rng(0)
    backgrounds = [rng.integers(0, 255, (192, 256, 3), dtype=np.uint8) for _ in range(2)]
    return LogoTrainingData(specs, logos, backgrounds)


@pytest.mark.parametrize("channels", [1, 3])
def test_samples_are_windows_of_the_network_size(data: LogoTrainingData, channels: int) -> None:
    sampler = WindowSampler(data, 48, channels)
    rng = random.Random(0)
    positive, negative = sampler.positive(0, rng), sampler.negative(rng)
    assert positive.shape == negative.shape == (channels, 48, 48)
    assert positive.dtype == np.uint8 and positive[0].std() > 5  # a logo, not a flat patch


def test_colour_samples_carry_the_colour_views_of_the_same_window(
    data: LogoTrainingData,
) -> None:
    """Grey is the grey sampler's window (same draw), the colour views are their own."""
    grey_window = WindowSampler(data, 48).positive(2, random.Random("same"))
    colour = WindowSampler(data, 48, 3).positive(2, random.Random("same"))
    assert np.abs(colour[0].astype(int) - grey_window[0]).max() <= 1
    assert not (colour[1:] == 128).all()  # random-colour backgrounds show in colour


def test_samples_are_reproducible(data: LogoTrainingData) -> None:
    sampler = WindowSampler(data, 48)
    first = sampler.positive(1, random.Random("seed"))
    again = sampler.positive(1, random.Random("seed"))
    assert np.array_equal(first, again)


def test_loss_is_low_when_queries_match_their_references() -> None:
    torch.manual_seed(0)
    references = F.normalize(torch.randn(8, 16), dim=-1)
    negatives = F.normalize(torch.randn(4, 16), dim=-1)
    matched, _ = logo_loss(references, references, negatives, 0.05, 0.0)
    shuffled, _ = logo_loss(references, references.roll(1, 0), negatives, 0.05, 0.0)
    assert float(matched) < 0.1 < float(shuffled)


def test_loss_against_the_whole_catalogue_takes_each_querys_own_reference() -> None:
    torch.manual_seed(0)
    catalogue = F.normalize(torch.randn(10, 16), dim=-1)
    negatives = F.normalize(torch.randn(4, 16), dim=-1)
    targets = torch.tensor([7, 2, 5])
    matched, _ = logo_loss(catalogue, catalogue[targets], negatives, 0.05, 0.0, targets)
    wrong, _ = logo_loss(catalogue, catalogue[targets], negatives, 0.05, 0.0, targets.roll(1))
    assert float(matched) < 0.1 < float(wrong)
    # without targets, reference i is query i's
    in_order, _ = logo_loss(catalogue[targets], catalogue[targets], negatives, 0.05, 0.0)
    explicit, _ = logo_loss(
        catalogue[targets], catalogue[targets], negatives, 0.05, 0.0, torch.arange(3)
    )
    torch.testing.assert_close(in_order, explicit)


def test_saved_training_data_reads_back_the_same(data: LogoTrainingData, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    assert not LogoTrainingData.is_saved(folder)
    data.save(folder)
    assert LogoTrainingData.is_saved(folder)
    again = LogoTrainingData.read(folder, progress=False)
    assert again.specs == data.specs  # in order: the same logos are held out for the check
    for logo, read in zip(data.logos, again.logos, strict=True):
        assert np.array_equal(np.asarray(logo.convert("RGBA")), np.asarray(read))  # PNG
    for photo, read in zip(data.backgrounds, again.backgrounds, strict=True):
        assert read.shape == photo.shape  # JPEG: close, not exact
        assert abs(float(read.mean()) - float(photo.mean())) < 3


def test_a_folder_not_saved_by_this_version_is_refused(
    data: LogoTrainingData, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="no saved logo training data"):
        LogoTrainingData.read(tmp_path, progress=False)
    data.save(tmp_path)
    manifest = tmp_path / SAVED_MANIFEST
    manifest.write_text(manifest.read_text().replace(SAVED_FORMAT, "other/9"))
    with pytest.raises(ValueError, match="this version reads"):
        LogoTrainingData.read(tmp_path, progress=False)


def test_eval_split_is_disjoint_and_stable() -> None:
    train, held = split_eval_logos(50, 10, seed=3)
    assert len(held) == 10 and not set(train) & set(held) and len(train) + len(held) == 50
    assert (train, held) == split_eval_logos(50, 10, seed=3)


def tiny_config(out_dir: Path, **settings: Any) -> LogoTrainConfig:
    """Two logos a step, a network of a few channels, no worker processes, no bars."""
    base: dict[str, Any] = {
        "batch_size": 2,
        "negatives": 2,
        "warmup_steps": 1,
        "network": LogoNetConfig(widths=(4, 4, 8, 8), dim=8),
        "eval_logos": 1,
        "checkpoint_every": 1,
        "workers": 0,
        "progress": False,
    }
    return LogoTrainConfig(out_dir=out_dir, **{**base, **settings})


def test_training_writes_a_loadable_model_and_resumes(
    data: LogoTrainingData, tmp_path: Path
) -> None:
    config = tiny_config(tmp_path, steps=2, eval_every=2)
    with one_torch_thread():
        model_path = train_logos(config, data)
        model = load_logo_model(model_path)
        assert model.metadata["steps"] == 2 and model.config.dim == 8
        assert "window_recall_at_1" in model.metadata["history"][-1]
        config.steps = 3  # the same run, continued: resumes from last.pt at step 2
        train_logos(config, data)
        assert load_logo_model(model_path).metadata["steps"] == 3
        # --max-minutes budgets each call, as `train` does: a run that has already trained
        # for longer than that in earlier calls still goes on when resumed
        state = torch.load(tmp_path / "last.pt", weights_only=True)
        state["elapsed"] = 3600.0
        torch.save(state, tmp_path / "last.pt")
        config.steps, config.max_minutes = 4, 5.0
        train_logos(config, data)
    assert load_logo_model(model_path).metadata["steps"] == 4


def test_training_against_all_references_leaves_the_held_out_logos_out(
    data: LogoTrainingData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step contrasts the batch's windows with every training logo's reference: as
    many references as training logos, never the held-out ones."""
    seen: list[tuple[int, list[int]]] = []

    def recording_loss(references: torch.Tensor, *args: Any) -> Any:
        targets = args[-1]
        seen.append((len(references), targets.tolist()))
        return logo_loss(references, *args)

    monkeypatch.setattr("lookalike.training.logo_train.logo_loss", recording_loss)
    config = tiny_config(tmp_path, steps=2, all_references=True, eval_logos=1)
    with one_torch_thread():
        load_logo_model(train_logos(config, data))
    training_logos = len(data.logos) - 1
    assert [count for count, _ in seen] == [training_logos, training_logos]
    for _, targets in seen:
        assert len(targets) == config.batch_size
        assert len(set(targets)) == len(targets) and set(targets) <= set(range(training_logos))


def test_a_runs_seed_leaves_the_held_out_logos_as_calibration_takes_them(
    data: LogoTrainingData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calibrate-logos measures on the default split's held-out logos: a run with another
    seed draws other samples, never those logos."""
    splits: list[tuple[list[int], list[int]]] = []

    def recording_split(*args: Any) -> tuple[list[int], list[int]]:
        splits.append(split_eval_logos(*args))
        return splits[-1]

    monkeypatch.setattr("lookalike.training.logo_train.split_eval_logos", recording_split)
    with one_torch_thread():
        train_logos(tiny_config(tmp_path / "a", steps=1, seed=0), data)
        train_logos(tiny_config(tmp_path / "b", steps=1, seed=1), data)
    assert splits[0] == splits[1] == split_eval_logos(len(data.logos), 1, seed=0)


def record_loss_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each logo_loss call's reference, query and target counts, as training makes it."""
    seen: list[dict[str, Any]] = []

    def recording_loss(references: torch.Tensor, queries: torch.Tensor, *args: Any) -> Any:
        targets = args[-1]
        seen.append(
            {"references": len(references), "queries": len(queries), "targets": targets.tolist()}
        )
        return logo_loss(references, queries, *args)

    monkeypatch.setattr("lookalike.training.logo_train.logo_loss", recording_loss)
    return seen


def test_made_up_logos_join_each_batch_with_their_own_references(
    data: LogoTrainingData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_loss_calls(monkeypatch)
    config = tiny_config(tmp_path, steps=2, synthetic_logos=3)
    with one_torch_thread():
        load_logo_model(train_logos(config, data))
    # 2 catalogue logos then 3 made-up ones, each query pointing at its own reference
    assert seen == [{"references": 5, "queries": 5, "targets": [0, 1, 2, 3, 4]}] * 2


def test_mined_negatives_add_the_logos_most_like_the_batchs_windows(
    data: LogoTrainingData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three training logos, two a step: the third is every window's most similar other
    logo, so it joins the references, after the batch's own."""
    seen = record_loss_calls(monkeypatch)
    config = tiny_config(tmp_path, steps=3, eval_logos=0, mined_negatives=1, memory_every=2)
    with one_torch_thread():
        model = load_logo_model(train_logos(config, data))
    assert model.metadata["recipe"]["mined_negatives"] == 1
    assert seen == [{"references": 3, "queries": 2, "targets": [0, 1]}] * 3


def test_mining_with_every_training_logo_in_the_batch_adds_nothing(
    data: LogoTrainingData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = record_loss_calls(monkeypatch)
    config = tiny_config(tmp_path, steps=2, mined_negatives=2)  # 2 training logos, 2 a step
    with one_torch_thread():
        load_logo_model(train_logos(config, data))
    assert seen == [{"references": 2, "queries": 2, "targets": [0, 1]}] * 2


def test_mining_takes_each_querys_most_similar_rows_but_its_own() -> None:
    memory = torch.eye(4)
    queries = torch.tensor([[1.0, 0.9, 0.1, 0.0], [0.0, 0.2, 0.0, 1.0]])
    own_rows = torch.tensor([0, 3])
    assert mine_negatives(memory, queries, own_rows, per_query=1).tolist() == [1]
    assert mine_negatives(memory, queries, own_rows, per_query=2).tolist() == [1, 2]
    # with only the batch's own logos left to take, there is nothing to mine
    assert mine_negatives(memory[[0, 3]], queries, torch.tensor([0, 1]), 2).tolist() == []


def test_mining_refuses_to_go_with_all_references(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to mine"):
        tiny_config(tmp_path, all_references=True, mined_negatives=2)
    with pytest.raises(ValueError, match="0 or more"):
        tiny_config(tmp_path, synthetic_logos=-1)


def test_frozen_batch_norm_keeps_its_statistics_and_embedding_keeps_each_layers_mode() -> None:
    from lookalike.logos.network import LogoNet

    network = LogoNet(LogoNetConfig(widths=(4, 4, 8, 8), dim=8))
    train_mode(network, frozen_norm=True)
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    windows = torch.randint(0, 255, (6, 1, 48, 48), dtype=torch.uint8)
    network(windows).sum().backward()
    assert all(torch.equal(m.running_mean, b) for m, b in zip(norms, before, strict=True))
    vectors = embed_in_eval_mode(network, windows, "fp32")
    assert network.training and not any(m.training for m in norms)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(6), atol=1e-5)


def test_automatic_precision_is_bf16_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lookalike.model.embedder.bf16_is_fast", lambda: False)
    assert training_precision("auto", torch.device("cuda")) == "bf16"
    assert training_precision("auto", torch.device("cpu")) == "fp32"
    assert training_precision("fp32", torch.device("cuda")) == "fp32"


def test_a_misspelt_device_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="device"):
        tiny_config(tmp_path, device="gpu-please")


def test_a_new_run_fine_tunes_from_a_trained_model(data: LogoTrainingData, tmp_path: Path) -> None:
    with one_torch_thread():
        first = load_logo_model(train_logos(tiny_config(tmp_path / "first", steps=2), data))
        # lr 0: the fine-tuned weights can only be the ones it started from
        tuned = tiny_config(
            tmp_path / "tuned", steps=1, lr=0.0, init_from=tmp_path / "first/logo.pt"
        )
        second = load_logo_model(train_logos(tuned, data))
        fresh = load_logo_model(train_logos(tiny_config(tmp_path / "fresh", steps=1, lr=0.0), data))
    assert second.metadata["recipe"]["init_from"] == str(tmp_path / "first/logo.pt")
    weights = dict(first.network.named_parameters())
    for name, value in second.network.named_parameters():
        torch.testing.assert_close(value, weights[name], msg=name)
    assert fresh.fingerprint != first.fingerprint


def test_a_grey_model_fine_tunes_into_a_colour_one(data: LogoTrainingData, tmp_path: Path) -> None:
    with one_torch_thread():
        grey_model = load_logo_model(train_logos(tiny_config(tmp_path / "grey", steps=1), data))
        colour = tiny_config(
            tmp_path / "colour",
            steps=1,
            lr=0.0,
            init_from=tmp_path / "grey/logo.pt",
            network=LogoNetConfig(widths=(4, 4, 8, 8), dim=8, channels=3),
        )
        tuned = load_logo_model(train_logos(colour, data))
    assert tuned.config.channels == 3
    first = "features.0.0.weight"
    weights = tuned.network.state_dict()
    torch.testing.assert_close(weights[first][:, :1], grey_model.network.state_dict()[first])
    assert weights[first][:, 1:].abs().max() == 0  # lr 0: colour weights as they started


def test_fine_tuning_refuses_a_model_of_other_settings(
    data: LogoTrainingData, tmp_path: Path
) -> None:
    with one_torch_thread():
        train_logos(tiny_config(tmp_path / "first", steps=1), data)
        other = tiny_config(
            tmp_path / "other",
            init_from=tmp_path / "first/logo.pt",
            network=LogoNetConfig(widths=(4, 4, 8, 16), dim=8),
        )
        with pytest.raises(ValueError, match="settings"):
            train_logos(other, data)


def test_brand_scores_take_the_right_brand_and_the_best_distractor(tmp_path: Path) -> None:
    bench = LogoBenchmark(
        tmp_path,
        (
            LogoQuery("p1", tmp_path / "p1.jpg", "i1", "Alfa Romeo", None),
            LogoQuery("p2", tmp_path / "p2.jpg", "i2", "Acme", None),
            LogoQuery("n1", tmp_path / "n1.jpg", None, None, None),
        ),
    )
    predictions = [("p1", "alfa-romeo", 0.7), ("p1", "other", 0.9), ("n1", "x", 0.4)]
    positives, negatives = brand_scores(predictions, bench)
    assert positives == [0.7, -math.inf] and negatives == [0.4]


LogoModelStub = SimpleNamespace(background=None)


def found_logo(brand: str, score: float, source: RegionSource) -> LogoMatch:
    record = CatalogRecord(brand, "b" * 64, brand, "logo", None, "l.png", "2024-01-01")
    box = ((0.0, 0.0), (9.0, 0.0), (9.0, 9.0), (0.0, 9.0))
    return LogoMatch(record, score, score, 0, box, region_source=source)


def test_the_review_threshold_keeps_most_logo_free_photos_out_of_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the queries are positives: a review threshold at precision 0.5 would flag nearly
    every photo, so review asks for 0.8. Window-only best matches over the logo threshold
    are counted, with the share of them that named the right brand."""
    rng = np.random.default_rng(0)
    right = np.concatenate([rng.normal(0.75, 0.08, 80), rng.normal(0.45, 0.05, 20)])
    wrong = rng.normal(0.45, 0.06, 100)
    positives = [LogoQuery(f"p{i}", tmp_path / "p.jpg", "i", "Acme", None) for i in range(100)]
    negatives = [LogoQuery(f"n{i}", tmp_path / "n.jpg", None, None, None) for i in range(100)]
    # every third photo's best match was found by its window alone
    source = lambda i: "window" if i % 3 == 0 else "outline"  # noqa: E731
    found = [
        (q, [found_logo("acme", float(s), source(i))])
        for i, (q, s) in enumerate(zip(positives, right, strict=True))
    ]
    found += [
        (q, [found_logo("other", float(s), source(i))])
        for i, (q, s) in enumerate(zip(negatives, wrong, strict=True))
    ]
    monkeypatch.setattr(logo_calibrate, "match_photos", lambda *_: iter(found))
    stub = SimpleNamespace(config=LogoMatchConfig(), catalog=SimpleNamespace(model=LogoModelStub))
    bench = LogoBenchmark(tmp_path, (*positives, *negatives))
    result = logo_calibrate.calibrate_logo_matcher(stub, bench)
    flagged = float(np.mean(wrong >= result.thresholds["review"]))
    at_half = logo_calibrate.calibrate_logo_matcher(stub, bench, review_precision=0.5)
    assert float(np.mean(wrong >= at_half.thresholds["review"])) > 0.5  # what 0.5 did
    assert flagged < 0.25
    assert result.calibration.precision_at(result.thresholds["review"])[0] >= 0.8
    assert result.impostor_weight == 0.0  # a model without a background bank
    logo = result.thresholds["copy"]
    window_only = [
        (q.brand is not None, s)
        for i, (q, s) in enumerate(zip((*positives, *negatives), (*right, *wrong), strict=True))
        if i % 100 % 3 == 0 and s >= logo
    ]
    assert result.window_only_photos == len(window_only) > 0
    assert result.window_only_precision == pytest.approx(
        sum(ok for ok, _ in window_only) / len(window_only)
    )
    assert result.to_metadata()["window_only"]["photos"] == len(window_only)


def test_learning_rate_follows_steps_or_the_budget_whichever_ends_first() -> None:
    config = LogoTrainConfig(out_dir=Path("unused"), steps=101, lr=1.0, warmup_steps=1)
    assert _learning_rate(0, config) == 1.0  # warm-up
    assert _learning_rate(51, config) == pytest.approx(0.5)  # half of the steps
    assert _learning_rate(51, config, budget_share=0.25) == pytest.approx(0.5)
    assert _learning_rate(1, config, budget_share=0.5) == pytest.approx(0.5)
    assert _learning_rate(1, config, budget_share=1.0) == pytest.approx(0.0)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="budget_minutes"):
            LogoTrainConfig(out_dir=Path("unused"), budget_minutes=bad)
    with pytest.raises(ValueError, match="precision"):
        LogoTrainConfig(out_dir=Path("unused"), precision="fp16")  # type: ignore[arg-type]


class MinuteClock:
    """A fake clock for the time budget: each reading is a minute after the previous one."""

    def __init__(self) -> None:
        self.minutes = 0

    def __call__(self) -> float:
        self.minutes += 1
        return 60.0 * self.minutes


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_time_budget_ends_the_run_annealed_and_stays_spent(
    data: LogoTrainingData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    precision: Precision,
) -> None:
    monkeypatch.setattr("lookalike.training.logo_train._now", MinuteClock())
    config = tiny_config(
        tmp_path, steps=1000, eval_every=1000, budget_minutes=10.0, precision=precision
    )
    with one_torch_thread():
        model_path = train_logos(config, data)
        steps = load_logo_model(model_path).metadata["steps"]
        assert 1 <= steps < 10  # the budget, not the 1,000 steps, ended it
        state = torch.load(tmp_path / "last.pt", weights_only=True)
        last_lr = state["optimizer"]["param_groups"][0]["lr"]
        assert last_lr < 0.25 * config.lr  # near the end of the cosine
        assert all(
            torch.isfinite(p).all() for p in load_logo_model(model_path).network.parameters()
        )
        train_logos(config, data)  # resumed with the budget spent: no step more
    assert load_logo_model(model_path).metadata["steps"] == steps


def test_the_calibration_records_the_matcher_settings_its_scores_depend_on() -> None:
    calibration = calibrate(np.array([0.9, 0.8, 0.7]), np.array([0.3, 0.2, 0.75]))
    thresholds = {"copy": 0.8, "review": 0.6}
    result = LogoCalibrationResult(calibration, thresholds, 3, 3, 0.65, 0.4, 0.55, 224, 2)
    config = LogoMatchConfig.calibrated_for(result.to_metadata())
    assert config.alignment_floor == 0.65 and config.grid.colour_from == 0.4
    assert config.colour_min_score == 0.55 and config.region_side == 224
    assert config.window_support == 2
    grey_only = LogoCalibrationResult(calibration, thresholds, 3, 3, 0.7, None, 0.6, 192, 3)
    assert LogoMatchConfig.calibrated_for(grey_only.to_metadata()).grid.colour_from is None
