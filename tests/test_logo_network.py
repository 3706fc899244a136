"""The logo region network: descriptors, window standardisation and checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from logo_helpers import one_torch_thread
from lookalike.logos.catalog import embed_windows, resolve_logo_model
from lookalike.logos.network import (
    MIN_CONTRAST,
    LogoModel,
    LogoNet,
    LogoNetConfig,
    load_logo_model,
    save_logo_model,
    standardise,
    with_colour_inputs,
)
from lookalike.model.checkpoint import CheckpointError


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def network() -> LogoNet:
    torch.manual_seed(0)
    return LogoNet().eval()


def windows(count: int = 6, side: int = 48, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 1, side, side), generator=generator, dtype=torch.uint8)


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_size": 40},
        {"input_size": 8},
        {"widths": (8, 8, 8)},
        {"widths": (0, 8, 8, 8)},
        {"channels": 2},
    ],
)
def test_bad_configs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LogoNetConfig(**kwargs)  # type: ignore[arg-type]


def test_config_dict_round_trip() -> None:
    config = LogoNetConfig(input_size=64, widths=(8, 16, 24, 32), dim=40, gem_p=2.5, channels=3)
    assert LogoNetConfig.from_dict(config.to_dict()) == config
    before_colour = {k: v for k, v in config.to_dict().items() if k != "channels"}
    assert LogoNetConfig.from_dict(before_colour).channels == 1  # older models were grey
    with pytest.raises(ValueError):
        LogoNetConfig.from_dict({**config.to_dict(), "widths": [8, 16, 24]})


# -- forward -------------------------------------------------------------------------------------


def test_output_shape_and_unit_norm(network: LogoNet) -> None:
    with torch.no_grad():
        vectors = network(windows())
    assert vectors.shape == (6, 128) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(6), atol=1e-5, rtol=0)


def test_other_sizes_and_dims() -> None:
    torch.manual_seed(1)
    small = LogoNet(LogoNetConfig(input_size=32, widths=(4, 8, 8, 16), dim=24)).eval()
    with torch.no_grad():
        vectors = small(windows(3, side=32))
    assert vectors.shape == (3, 24)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)


def test_uint8_and_float_inputs_agree(network: LogoNet) -> None:
    pixels = windows()
    with torch.no_grad():
        from_uint8 = network(pixels)
        from_float = network(pixels.float() / 255.0)
    torch.testing.assert_close(from_uint8, from_float, atol=1e-5, rtol=0)


def test_descriptor_ignores_brightness_and_contrast(network: LogoNet) -> None:
    """Windows are standardised first: a linear change of grey levels changes nothing."""
    pixels = windows().float() / 255.0
    with torch.no_grad():
        torch.testing.assert_close(network(pixels), network(0.2 + 0.5 * pixels), atol=1e-4, rtol=0)


def test_batch_composition_does_not_change_a_window(network: LogoNet) -> None:
    pixels = windows(8)
    with torch.no_grad():
        together = network(pixels)
        alone = torch.cat([network(pixels[i : i + 1]) for i in range(8)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


# -- standardise ---------------------------------------------------------------------------------


def test_standardise_gives_zero_mean_unit_contrast() -> None:
    x = standardise(windows())
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.mean(dim=(-2, -1)), torch.zeros(6, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(-2, -1)), torch.ones(6, 1), atol=1e-4, rtol=0)


def test_standardise_shares_one_contrast_over_channels() -> None:
    """Each channel is centred; the contrast is that of all channels together, so a window
    whose pattern is in colour only gets it at full contrast, and flat colour stays flat."""
    pattern = windows(2).float() / 255
    flat = torch.full_like(pattern, 0.5)
    grey_window = standardise(torch.cat([pattern, flat, flat], 1))
    torch.testing.assert_close(grey_window[:, :1], standardise(pattern))
    assert grey_window[:, 1:].abs().max() == 0
    colour_only = standardise(torch.cat([flat, pattern, flat], 1))
    torch.testing.assert_close(colour_only[:, 1:2], standardise(pattern))
    both = standardise(torch.cat([pattern, pattern, flat], 1))
    torch.testing.assert_close(both[:, 0], standardise(pattern)[:, 0] / 2**0.5)


def test_a_grey_network_widened_for_colour_computes_what_it_did() -> None:
    torch.manual_seed(1)
    grey_network = LogoNet(LogoNetConfig(widths=(8, 8, 16, 16), dim=16)).eval()
    colour_network = with_colour_inputs(grey_network).eval()
    assert colour_network.config.channels == 3
    pixels = windows(4, side=48)
    flat = torch.full_like(pixels, 128)
    with torch.no_grad():
        expected = grey_network(pixels)
        torch.testing.assert_close(colour_network(torch.cat([pixels, flat, flat], 1)), expected)
        # the colour weights start at zero, but colour still counts in the shared contrast
        noisy = torch.cat([pixels, windows(4, seed=1), windows(4, seed=2)], 1)
        assert not torch.allclose(colour_network(noisy), expected)
    with pytest.raises(ValueError, match="grey"):
        with_colour_inputs(colour_network)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_windows_stay_finite(network: LogoNet, value: int) -> None:
    flat = torch.full((2, 1, 48, 48), value, dtype=torch.uint8)
    x = standardise(flat)
    assert torch.isfinite(x).all() and x.abs().max() == 0
    with torch.no_grad():
        vectors = network(flat)
    assert torch.isfinite(vectors).all()
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)


def test_faint_noise_is_not_blown_up_to_full_contrast() -> None:
    """Sensor noise on a blank wall (std ~0.004) stays small: the contrast floor applies."""
    generator = torch.Generator().manual_seed(2)
    noise = 0.5 + 0.004 * torch.randn((1, 1, 48, 48), generator=generator)
    x = standardise(noise)
    assert float(x.std()) < 0.004 / MIN_CONTRAST * 1.1
    assert float(x.std()) < 0.1


# -- checkpoints ---------------------------------------------------------------------------------


def test_save_load_round_trip(network: LogoNet, tmp_path: Path) -> None:
    path = save_logo_model(tmp_path / "nested" / "logo.pt", network, {"steps": 7})
    model = load_logo_model(path)
    assert isinstance(model, LogoModel)
    assert model.metadata == {"steps": 7}
    assert model.config == network.config
    assert not model.network.training  # loaded in eval mode
    pixels = windows()
    with torch.no_grad():
        expected = network(pixels)
        loaded = model.network(pixels)
    # weights are stored as fp16: descriptors agree to about three decimals
    torch.testing.assert_close(loaded, expected, atol=5e-3, rtol=0)
    assert (loaded * expected).sum(dim=1).min() > 0.999


def test_fingerprint_is_stable(network: LogoNet, tmp_path: Path) -> None:
    path = save_logo_model(tmp_path / "logo.pt", network)
    first, second = load_logo_model(path), load_logo_model(path)
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint.dim == 128
    # saved again (already fp16-exact) and reloaded: the same model, the same fingerprint
    again = load_logo_model(save_logo_model(tmp_path / "again.pt", first.network))
    assert again.fingerprint == first.fingerprint
    torch.manual_seed(99)
    other = load_logo_model(save_logo_model(tmp_path / "other.pt", LogoNet()))
    assert other.fingerprint != first.fingerprint


def test_resolve_logo_model_takes_a_path(network: LogoNet, tmp_path: Path) -> None:
    path = save_logo_model(tmp_path / "logo.pt", network)
    assert resolve_logo_model(path).fingerprint == load_logo_model(path).fingerprint
    assert resolve_logo_model(str(path)).fingerprint == load_logo_model(path).fingerprint
    with pytest.raises(FileNotFoundError):
        resolve_logo_model(tmp_path / "missing.pt")


def test_bad_files_raise_checkpoint_error(network: LogoNet, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_logo_model(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "something.else", "state_dict": {}}, foreign)
    with pytest.raises(CheckpointError):
        load_logo_model(foreign)
    plain_state = tmp_path / "state.pt"
    torch.save(network.state_dict(), plain_state)
    with pytest.raises(CheckpointError):
        load_logo_model(plain_state)
    with pytest.raises(FileNotFoundError):
        load_logo_model(tmp_path / "missing.pt")


def test_future_versions_and_misfitting_weights_are_refused(
    network: LogoNet, tmp_path: Path
) -> None:
    path = save_logo_model(tmp_path / "logo.pt", network)
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version"):
        load_logo_model(tmp_path / "future.pt")
    wrong = {**payload, "config": {**payload["config"], "dim": 64}}
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_logo_model(tmp_path / "wrong.pt")


def test_checkpoints_cannot_smuggle_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "lookalike.logo-checkpoint", "payload": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(CheckpointError):
        load_logo_model(path)


# -- embedding windows ---------------------------------------------------------------------------


def test_embed_windows_batches_and_empty_input(network: LogoNet) -> None:
    model = LogoModel(network)
    pixels = windows(7).numpy()
    vectors = embed_windows(model, pixels, batch_size=3)
    assert vectors.shape == (7, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)
    whole = embed_windows(model, pixels)
    np.testing.assert_allclose(vectors, whole, atol=2e-2)
    empty = embed_windows(model, np.zeros((0, 1, 48, 48), np.uint8))
    assert empty.shape == (0, 128)


def test_folded_inference_network_computes_the_same_descriptors(tmp_path: Path) -> None:
    torch.manual_seed(3)
    trained = LogoNet(LogoNetConfig(widths=(8, 16, 16, 32), dim=16))
    for module in trained.modules():  # BatchNorm statistics as after training, not 0 / 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model = load_logo_model(save_logo_model(tmp_path / "logo.pt", trained))
    pixels = windows(16)
    folded = model.inference_network
    assert folded is model.inference_network  # made once
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(pixels), model.network(pixels), atol=1e-5, rtol=0)
    embedded = embed_windows(model, pixels.numpy())
    with torch.no_grad():
        plain = model.network(pixels).numpy()
    assert (embedded * plain).sum(axis=1).min() > 0.999  # bf16 where the CPU has it
