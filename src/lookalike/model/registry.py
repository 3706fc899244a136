"""A small registry of descriptor architectures: ``list_models()`` and ``get_spec(name)``."""

from __future__ import annotations

from .spec import ModelSpec

# Feature channels of each supported torchvision backbone's last feature map.
BACKBONE_CHANNELS: dict[str, int] = {
    "resnet18": 512,
    "resnet50": 2048,
    "mobilenet_v3_large": 960,
    "efficientnet_b0": 1280,
}

DEFAULT_MODEL = "default"

_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Make ``spec`` available to ``create_embedder(spec.name)``."""
    if spec.backbone not in BACKBONE_CHANNELS:
        raise ValueError(
            f"unsupported backbone {spec.backbone!r}; choose one of {sorted(BACKBONE_CHANNELS)}"
        )
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    """Names accepted by ``create_embedder``."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None


for _backbone in BACKBONE_CHANNELS:
    register_model(ModelSpec(name=_backbone, backbone=_backbone, description=f"{_backbone} + GeM"))

register_model(
    ModelSpec(
        name=DEFAULT_MODEL,
        backbone="resnet18",
        dim=256,
        input_size=224,
        description="lookalike's own copy-detection descriptor (resnet18 + GeM + 256-d projection)",
    )
)
