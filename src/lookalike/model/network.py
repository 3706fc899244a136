"""The descriptor network: backbone feature map -> GeM -> linear -> L2 norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .registry import BACKBONE_CHANNELS
from .spec import ModelSpec


class GeM(nn.Module):
    """Generalised-mean pooling (Radenović et al.): p=1 is average, p→∞ is max pooling."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C)."""
        pooled = features.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1))
        return pooled.pow(1.0 / self.p)


class TorchvisionTrunk(nn.Module):
    """A torchvision classifier without its head, returning the last feature map (N, C, h, w).

    The torchvision module is kept whole under ``model`` (head replaced by Identity) so that
    a torchvision state dict loads into it with its own key names.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in BACKBONE_CHANNELS:
            raise ValueError(f"unsupported backbone {name!r}")
        self.name = name
        self.model = getattr(torchvision.models, name)(weights=None)
        if name.startswith("resnet"):
            self.model.fc = nn.Identity()
        else:
            self.model.classifier = nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.name.startswith("resnet"):
            return self.model.features(images)
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(images))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))


class DescriptorNet(nn.Module):
    """Maps a normalised (N, 3, S, S) float batch to (N, dim) unit-norm descriptors."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.backbone = TorchvisionTrunk(spec.backbone)
        self.pool = GeM(spec.gem_p)
        self.projection = nn.Linear(BACKBONE_CHANNELS[spec.backbone], spec.dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.backbone(images).float())
        return F.normalize(self.projection(pooled), dim=-1)
