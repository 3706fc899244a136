"""The background bank: how much a catalogue logo looks like photos without logos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from logo_helpers import build_catalog, draw_logos, one_torch_thread, verify_all
from lookalike.logos.background import BackgroundBank, make_background_bank
from lookalike.logos.catalog import LogoCatalog
from lookalike.logos.matcher import LogoMatchConfig, LogoMatcher, _Candidate
from lookalike.logos.network import load_logo_model, save_logo_model
from lookalike.model.checkpoint import CheckpointError


def unit_vectors(count: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_level_is_the_mean_of_the_k_best_similarities_with_the_bank() -> None:
    bank = BackgroundBank(unit_vectors(50), 0.0)
    logos = unit_vectors(7, seed=1)
    brute = np.sort(logos @ bank.vectors.T, axis=1)[:, -5:].mean(axis=1)
    np.testing.assert_allclose(bank.levels(logos, 5), brute, rtol=1e-5)
    # k beyond the bank: every window counts
    np.testing.assert_allclose(bank.levels(logos, 80), (logos @ bank.vectors.T).mean(axis=1), 1e-5)
    with pytest.raises(ValueError, match="k must be"):
        bank.levels(logos, 0)


def test_a_logo_like_the_background_has_a_higher_level() -> None:
    background = unit_vectors(40, dim=128)
    like_it = background[:3].mean(axis=0)
    bank = BackgroundBank(background, 0.0)
    other = unit_vectors(1, dim=128, seed=5)[0]
    levels = bank.levels(np.stack([like_it / np.linalg.norm(like_it), other]), 3)
    assert levels[0] > levels[1] + 0.2


def test_the_bank_survives_its_int8_storage() -> None:
    bank = BackgroundBank(unit_vectors(100, dim=128), 0.42)
    back = BackgroundBank.from_payload(bank.to_payload())
    assert back.typical_level == 0.42 and back.vectors.shape == (100, 128)
    cosines = (bank.vectors * back.vectors).sum(axis=1)
    assert cosines.min() > 0.99
    logos = unit_vectors(10, dim=128, seed=3)
    assert np.abs(back.levels(logos, 4) - bank.levels(logos, 4)).max() < 0.01


def test_a_made_bank_is_capped_seeded_and_centred_on_its_catalogue() -> None:
    windows = [unit_vectors(30, seed=s) for s in range(4)]
    logos = unit_vectors(9, seed=9)
    bank = make_background_bank(windows, logos, 5, max_windows=64, seed=1)
    assert bank.vectors.shape == (64, 16)
    again = make_background_bank(windows, logos, 5, max_windows=64, seed=1)
    np.testing.assert_array_equal(bank.vectors, again.vectors)
    assert bank.typical_level == pytest.approx(float(np.median(bank.levels(logos, 5))))
    with pytest.raises(ValueError, match="needs"):
        BackgroundBank(np.zeros((0, 16), np.float32), 0.0)


def test_a_logo_checkpoint_carries_its_bank(logo_model_path: Path, tmp_path: Path) -> None:
    model = load_logo_model(logo_model_path)
    assert model.background is None  # saved without one
    bank = BackgroundBank(unit_vectors(20, dim=model.config.dim), 0.3)
    path = save_logo_model(tmp_path / "with-bank.pt", model.network, model.metadata, bank)
    loaded = load_logo_model(path)
    assert loaded.background is not None and loaded.background.typical_level == 0.3
    np.testing.assert_allclose(loaded.background.vectors, bank.vectors, atol=0.01)
    with pytest.raises(ValueError, match="background bank"):
        save_logo_model(tmp_path / "bad.pt", model.network, {}, BackgroundBank(unit_vectors(3), 0))


def test_a_checkpoint_whose_bank_does_not_fit_is_refused(
    logo_model_path: Path, tmp_path: Path
) -> None:
    model = load_logo_model(logo_model_path)
    bank = BackgroundBank(unit_vectors(4, dim=model.config.dim), 0.0)
    path = save_logo_model(tmp_path / "wrong.pt", model.network, {}, bank)
    payload = torch.load(path, weights_only=True)
    payload["background"] = BackgroundBank(unit_vectors(4, dim=3), 0.0).to_payload()
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_logo_model(path)
    payload["background"] = {"vectors": torch.zeros(0, 3, dtype=torch.int8)}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="unreadable background bank"):
        load_logo_model(path)


@pytest.fixture
def catalog(logo_model_path: Path, tmp_path: Path) -> LogoCatalog:
    return build_catalog(logo_model_path, tmp_path / "logos")


def logo_vector(catalog: LogoCatalog, item_id: str) -> np.ndarray:
    return catalog.index.vectors([item_id])[item_id]


def test_impostor_shifts_are_levels_above_the_typical_one_and_cached(
    catalog: LogoCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = list(catalog.index.records())
    assert set(catalog.impostor_shifts(records, 3).values()) == {0.0}  # no bank: no shift
    badge = logo_vector(catalog, "badge")
    catalog.model.background = BackgroundBank(np.stack([badge] * 3), 0.2)
    shifts = catalog.impostor_shifts(records, 3)
    assert shifts["badge"] == pytest.approx(1.0 - 0.2, abs=1e-5)
    for record in records:
        own = catalog.model.background.levels(logo_vector(catalog, record.item_id), 3)[0]
        assert shifts[record.item_id] == pytest.approx(own - 0.2, abs=1e-5)
    monkeypatch.setattr(catalog.index, "vectors", lambda *_: pytest.fail("not cached"))
    assert catalog.impostor_shifts(records, 3) == shifts


def test_a_logo_like_the_background_scores_lower_by_the_weighted_shift(
    catalog: LogoCatalog,
) -> None:
    """The same photo and evidence; only the badge looks like the bank's windows."""
    photo = Image.new("RGB", (320, 320), "white")
    badge = draw_logos()["badge"].resize((160, 160), Image.Resampling.LANCZOS)
    photo.paste(badge, (80, 80), badge)
    badge_vector = logo_vector(catalog, "badge")
    catalog.model.background = BackgroundBank(np.stack([badge_vector] * 4), 0.1)
    weighted = verify_all()
    unweighted = replace(weighted, impostor_weight=0.0)
    with one_torch_thread():
        before = {m.record.item_id: m for m in LogoMatcher(catalog, unweighted).match(photo)}
        after = {m.record.item_id: m for m in LogoMatcher(catalog, weighted).match(photo)}
    shifts = catalog.impostor_shifts(list(catalog.index.records()), weighted.impostor_k)
    assert shifts["badge"] > 0.5
    for item, match in after.items():
        expected = before[item].score - weighted.impostor_weight * shifts[item]
        assert match.score == pytest.approx(expected, abs=1e-5)
        assert match.descriptor_score == before[item].descriptor_score  # the network's own


def test_a_place_goes_to_the_better_evidence_whatever_the_shifts(
    catalog: LogoCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which logo a place shows is decided before shifts: the badge fits the place better
    (0.9 against 0.7) and takes it from the wordmark, then scores 0.9 less its shift."""
    # the test catalogue gives every logo one brand; here they are two brands' logos
    records = {r.item_id: replace(r, brand=r.item_id) for r in catalog.index.records()}
    place = np.array([0, 0, 100, 100], np.float32)
    candidates = [
        _Candidate(records["badge"], 0.9, place, shortlisted=True, shift=0.5),
        _Candidate(records["wordmark"], 0.7, place, shortlisted=True),
    ]
    matcher = LogoMatcher(catalog, replace(verify_all(), alignment=None))
    monkeypatch.setattr(
        matcher, "_verified", lambda _, candidate, *__: matcher._unverified(candidate)
    )
    found = matcher._finish(Image.new("RGB", (100, 100)), candidates)
    assert [(m.record.item_id, m.score, m.descriptor_score) for m in found] == [("badge", 0.4, 0.9)]


def test_the_calibration_says_whether_scores_were_shifted() -> None:
    recorded = {"calibration": {}, "calibrated_on": {"impostor_weight": 0.5, "impostor_k": 7}}
    config = LogoMatchConfig.calibrated_for(recorded)
    assert (config.impostor_weight, config.impostor_k) == (0.5, 7)
    before_banks = LogoMatchConfig.calibrated_for({"calibration": {}, "calibrated_on": {}})
    assert before_banks.impostor_weight == 0.0
    assert LogoMatchConfig().impostor_weight > 0  # on by default for a new calibration
    with pytest.raises(ValueError, match="impostor"):
        LogoMatchConfig(impostor_k=0)
