"""Model specs: everything needed to rebuild a descriptor network and its preprocessing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """A descriptor model: torchvision backbone -> GeM pooling -> linear projection -> L2 norm.

    Preprocessing lives here so that it travels with the weights: every image is resized
    (whole, no crop: a copy detector must see the full picture) to ``input_size`` squared
    and normalised with ``mean`` / ``std``.
    """

    name: str
    backbone: str
    dim: int = 256
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    gem_p: float = 3.0
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model spec fields: {sorted(unknown)}")
        values = dict(data)
        values["mean"] = _rgb_triple(values.get("mean", IMAGENET_MEAN), "mean")
        values["std"] = _rgb_triple(values.get("std", IMAGENET_STD), "std")
        return cls(**values)


def _rgb_triple(values: Any, what: str) -> tuple[float, float, float]:
    triple = tuple(float(v) for v in values)
    if len(triple) != 3:
        raise ValueError(f"{what} needs 3 values (R, G, B), got {len(triple)}")
    return (triple[0], triple[1], triple[2])
