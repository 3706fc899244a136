"""Model registry, embedder, checkpoints and external weights (random-init models, offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from lookalike.data.synthetic import synthetic_image
from lookalike.model import (
    CheckpointError,
    create_embedder,
    create_embedder_from_recipe,
    get_spec,
    list_models,
    load_checkpoint,
    save_checkpoint,
)
from lookalike.model.network import DescriptorNet

IMAGES = [synthetic_image(seed) for seed in range(3)]


def test_registry_lists_the_supported_backbones() -> None:
    assert {"resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0", "default"} <= set(
        list_models()
    )
    with pytest.raises(KeyError, match="known models"):
        get_spec("vgg_nonexistent")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_b0"])
def test_each_backbone_gives_unit_norm_descriptors(name: str) -> None:
    embedder = create_embedder(name, precision="fp32")
    embeddings = embedder.embed(IMAGES)
    assert embeddings.vectors.shape == (3, get_spec(name).dim)
    assert embeddings.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings.vectors, axis=1), 1.0, atol=1e-5)
    assert embeddings.model == embedder.fingerprint
    assert not embedder.trained


def test_seeded_init_is_deterministic_and_fingerprinted() -> None:
    first, second = create_embedder("resnet18"), create_embedder("resnet18")
    other = create_embedder("resnet18", seed=1)
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint.weights_sha256 != other.fingerprint.weights_sha256
    np.testing.assert_array_equal(first.embed(IMAGES).vectors, second.embed(IMAGES).vectors)


def test_bf16_and_fp32_agree() -> None:
    fp32 = create_embedder("default", precision="fp32").embed(IMAGES).vectors
    bf16 = create_embedder("default", precision="bf16").embed(IMAGES).vectors
    assert np.min(np.sum(fp32 * bf16, axis=1)) > 0.99


def test_batching_does_not_change_results() -> None:
    whole = create_embedder("default", precision="fp32", batch_size=8).embed(IMAGES).vectors
    split = create_embedder("default", precision="fp32", batch_size=1).embed(IMAGES).vectors
    np.testing.assert_allclose(whole, split, atol=1e-5)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    spec = get_spec("resnet18")
    torch.manual_seed(3)
    network = DescriptorNet(spec)
    path = save_checkpoint(
        tmp_path / "model.pt", network, spec, {"trained": True, "epochs": 2}, half=True
    )
    checkpoint = load_checkpoint(path)
    assert checkpoint.spec == spec and checkpoint.metadata["epochs"] == 2
    embedder = create_embedder(path, precision="fp32")
    assert embedder.trained and embedder.recipe.kind == "checkpoint"
    network.eval()
    pixels = torch.stack([embedder.preprocess(image) for image in IMAGES])
    normalised = (pixels.float() - embedder._mean) / embedder._std
    with torch.no_grad():
        expected = network(normalised).numpy()
    # fp16 storage: descriptors agree to about three decimals
    np.testing.assert_allclose(embedder.embed_pixels(pixels), expected, atol=5e-3)
    rebuilt = create_embedder_from_recipe(embedder.recipe)
    assert rebuilt.fingerprint == embedder.fingerprint


def test_registered_name_with_checkpoint_weights(tmp_path: Path) -> None:
    spec = get_spec("resnet18")
    path = save_checkpoint(tmp_path / "r18.pt", DescriptorNet(spec), spec, {"trained": True})
    embedder = create_embedder("resnet18", weights=path)
    assert embedder.trained and embedder.recipe.path == str(path)
    with pytest.raises(ValueError, match="resnet18/256-d"):
        create_embedder("resnet50", weights=path)


def test_checkpoint_loading_refuses_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "lookalike.checkpoint", "payload": nn.Linear(2, 2)}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")


def test_torchvision_state_dict_loads_into_backbone(tmp_path: Path) -> None:
    torch.manual_seed(5)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(reference.state_dict(), path)
    embedder = create_embedder("resnet18", weights=path)
    loaded = embedder.network.backbone.model.state_dict()  # type: ignore[union-attr]
    assert torch.equal(
        loaded["layer4.1.conv2.weight"], reference.state_dict()["layer4.1.conv2.weight"]
    )
    assert embedder.trained
    mobilenet = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), mobilenet)
    with pytest.raises(ValueError, match="not a resnet18 state dict"):
        create_embedder("resnet18", weights=mobilenet)


class _TinyDescriptor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.head = nn.Linear(8, 64)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(images).mean(dim=(2, 3)))


def test_torchscript_descriptor_file(tmp_path: Path) -> None:
    path = tmp_path / "sscd_like.torchscript.pt"
    torch.jit.script(_TinyDescriptor()).save(str(path))
    with pytest.raises(ValueError, match="input size"):
        create_embedder(path)
    embedder = create_embedder(path, input_size=96, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    vectors = embedder.embed(IMAGES).vectors
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.recipe.kind == "torchscript" and embedder.input_size == 96
    assert create_embedder_from_recipe(embedder.recipe).fingerprint == embedder.fingerprint


def test_unknown_model_or_missing_file() -> None:
    with pytest.raises(ValueError, match="neither a known model"):
        create_embedder("no-such-model-or-file")


def test_nothing_is_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for name in ("resnet18", "mobilenet_v3_large"):
        create_embedder(name)
    assert list(tmp_path.iterdir()) == []
