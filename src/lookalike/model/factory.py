"""``create_embedder``: one entry point for built-in, checkpoint and external (local) weights.

Nothing is ever downloaded: weights come from the package (the shipped default model) or
from a local file the user names.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from importlib import resources
from pathlib import Path

import torch

from ..embeddings import ModelFingerprint
from .checkpoint import (
    CheckpointError,
    file_sha256,
    load_checkpoint,
    state_dict_sha256,
)
from .embedder import Embedder, EmbedderRecipe, Precision
from .network import DescriptorNet
from .registry import DEFAULT_MODEL, get_spec, list_models
from .spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec

PathLike = str | os.PathLike[str]


def bundled_default_weights() -> Path | None:
    """The checkpoint shipped inside the package, if this build has one."""
    candidate = resources.files("lookalike").joinpath("weights", "default.pt")
    path = Path(str(candidate))
    return path if path.is_file() else None


def create_embedder(
    model: PathLike = DEFAULT_MODEL,
    weights: PathLike | None = None,
    *,
    input_size: int | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    precision: Precision = "auto",
    threads: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
) -> Embedder:
    """Build an embedder.

    ``model``: a registered name (``list_models()``), a lookalike checkpoint file, or a
    TorchScript descriptor file (e.g. SSCD's released models; give ``input_size`` and, if not
    ImageNet's, ``mean`` / ``std``). ``weights`` (with a registered name): a lookalike
    checkpoint, or a torchvision state dict for the backbone. Without weights a registered
    model starts from a seeded random init (``embedder.trained`` is False), except ``default``
    which uses the shipped checkpoint when the package has one.
    """
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    options = {"precision": precision, "batch_size": batch_size}
    name = os.fspath(model)
    if name in list_models():
        return _from_registry(name, weights, seed=seed, **options)  # type: ignore[arg-type]
    path = Path(name)
    if not path.is_file():
        raise ValueError(
            f"{name!r} is neither a known model ({', '.join(list_models())}) nor a file"
        )
    if weights is not None:
        raise ValueError("weights= goes with a registered model name, not with a model file")
    if _is_torchscript(path):
        if input_size is None:
            raise ValueError(
                f"{path} is a TorchScript model: give its input size (and mean/std if they "
                "are not ImageNet's)"
            )
        return _from_torchscript(path, input_size, mean, std, **options)  # type: ignore[arg-type]
    return _from_checkpoint_file(path, **options)  # type: ignore[arg-type]


def _from_registry(
    name: str, weights: PathLike | None, *, seed: int, precision: Precision, batch_size: int
) -> Embedder:
    if weights is None and name == DEFAULT_MODEL and (bundled := bundled_default_weights()):
        embedder = _from_checkpoint_file(bundled, precision=precision, batch_size=batch_size)
        embedder.recipe = EmbedderRecipe(kind="registry", name=name)
        return embedder
    spec = get_spec(name)
    torch.manual_seed(seed)
    network = DescriptorNet(spec)
    trained = weights is not None
    metadata: dict[str, object] = {}
    recipe = EmbedderRecipe(
        kind="registry", name=name, path=None if weights is None else os.fspath(weights)
    )
    if weights is not None:
        metadata = _load_weights_into(network, spec, Path(weights))
    return _wrap(network, spec, recipe, trained, metadata, precision, batch_size)


def _load_weights_into(network: DescriptorNet, spec: ModelSpec, path: Path) -> dict[str, object]:
    """A lookalike checkpoint of the same architecture, or a torchvision backbone state dict."""
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        checkpoint = None
    if checkpoint is not None:
        if (checkpoint.spec.backbone, checkpoint.spec.dim) != (spec.backbone, spec.dim):
            raise ValueError(
                f"{path} holds a {checkpoint.spec.backbone}/{checkpoint.spec.dim}-d model, "
                f"not {spec.backbone}/{spec.dim}-d"
            )
        network.load_state_dict(checkpoint.state_dict)
        return checkpoint.metadata
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a checkpoint nor a state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    result = network.backbone.model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ValueError(
            f"{path} is not a {spec.backbone} state dict: missing {result.missing_keys[:5]}"
        )
    return {"backbone_weights": str(path), "backbone_weights_sha256": file_sha256(path)}


def _from_checkpoint_file(path: Path, *, precision: Precision, batch_size: int) -> Embedder:
    checkpoint = load_checkpoint(path)
    network = DescriptorNet(checkpoint.spec)
    network.load_state_dict(checkpoint.state_dict)
    recipe = EmbedderRecipe(kind="checkpoint", name=checkpoint.spec.name, path=os.fspath(path))
    trained = bool(checkpoint.metadata.get("trained", True))
    return _wrap(
        network, checkpoint.spec, recipe, trained, checkpoint.metadata, precision, batch_size
    )


def _wrap(
    network: DescriptorNet,
    spec: ModelSpec,
    recipe: EmbedderRecipe,
    trained: bool,
    metadata: dict[str, object],
    precision: Precision,
    batch_size: int,
) -> Embedder:
    fingerprint = ModelFingerprint(spec.name, state_dict_sha256(network.state_dict()), spec.dim)
    return Embedder(
        network=network,
        fingerprint=fingerprint,
        recipe=recipe,
        input_size=spec.input_size,
        mean=spec.mean,
        std=spec.std,
        trained=trained,
        metadata=dict(metadata),
        precision=precision,
        batch_size=batch_size,
    )


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zips with a code/ folder (plain state dicts have none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in entry or entry.startswith("code/") for entry in archive.namelist())


def _from_torchscript(
    path: Path,
    input_size: int,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
    *,
    precision: Precision,
    batch_size: int,
) -> Embedder:
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream, but it is the format SSCD's models ship in.
        warnings.simplefilter("ignore", FutureWarning)
        network = torch.jit.load(str(path), map_location="cpu")
    network.eval()
    with torch.inference_mode():
        probe = network(torch.zeros(1, 3, input_size, input_size))
    if probe.ndim != 2:
        raise ValueError(f"{path}: expected (N, D) descriptors, got shape {tuple(probe.shape)}")
    fingerprint = ModelFingerprint(path.stem, file_sha256(path), int(probe.shape[1]))
    mean = mean or IMAGENET_MEAN
    std = std or IMAGENET_STD
    recipe = EmbedderRecipe("torchscript", path.stem, os.fspath(path), input_size, mean, std)
    return Embedder(
        network=network,
        fingerprint=fingerprint,
        recipe=recipe,
        input_size=input_size,
        mean=mean,
        std=std,
        trained=True,
        precision=precision,
        batch_size=batch_size,
    )


def create_embedder_from_recipe(
    recipe: EmbedderRecipe,
    *,
    precision: Precision = "auto",
    threads: int | None = None,
    batch_size: int = 32,
) -> Embedder:
    """Rebuild the embedder an index recorded (its fingerprint is checked by the caller)."""
    model = recipe.path if recipe.kind != "registry" else recipe.name
    weights = recipe.path if recipe.kind == "registry" else None
    assert model is not None
    return create_embedder(
        model,
        weights,
        input_size=recipe.input_size,
        mean=recipe.mean,
        std=recipe.std,
        precision=precision,
        threads=threads,
        batch_size=batch_size,
    )
