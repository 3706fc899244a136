"""The logo region network: a small window -> a unit-norm descriptor.

Logos in listing photos are small, recoloured, inverted (light on dark), blurred and seen in
perspective, and a photo is searched as a few hundred windows, so the network is small (about
29 M multiply-adds per 48 px window). It sees grey levels (``channels=1``), or grey levels and
the two colour-opponent channels (``channels=3``: a logo recoloured to the lightness of the
product it sits on shows only in colour); each window standardised to zero mean and unit
contrast. A clean catalogue logo and a window around the same logo in a photo
map to nearby descriptors; training (``lookalike.training.logo_train``) makes that so.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..embeddings import ModelFingerprint
from ..model.checkpoint import (
    CheckpointError,
    float_state,
    read_payload,
    state_dict_sha256,
    stored_state,
    write_payload,
)
from ..model.network import GeM
from .background import BackgroundBank

LOGO_CHECKPOINT_FORMAT = "lookalike.logo-checkpoint"
LOGO_CHECKPOINT_VERSION = 1
# A flat window (blank wall, sky) must not have its sensor noise blown up to full contrast.
MIN_CONTRAST = 0.08


@dataclass(frozen=True)
class LogoNetConfig:
    """``input_size``: window side in pixels; ``widths``: channels of the four stages;
    ``channels``: 1 (grey) or 3 (grey, red-green, yellow-blue; see ``windows.VIEWS``)."""

    input_size: int = 48
    widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    dim: int = 128
    gem_p: float = 3.0
    channels: int = 1

    def __post_init__(self) -> None:
        if self.input_size < 16 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {self.input_size}")
        if len(self.widths) != 4 or min(self.widths) < 1 or self.dim < 1:
            raise ValueError(f"bad widths {self.widths} or dim {self.dim}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (grey + colour), got {self.channels}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogoNetConfig:
        widths = tuple(int(w) for w in data["widths"])
        if len(widths) != 4:
            raise ValueError(f"expected 4 stage widths, got {widths}")
        return cls(
            input_size=int(data["input_size"]),
            widths=(widths[0], widths[1], widths[2], widths[3]),
            dim=int(data["dim"]),
            gem_p=float(data["gem_p"]),
            channels=int(data.get("channels", 1)),  # models before colour were grey
        )


def _conv(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


def standardise(windows: torch.Tensor) -> torch.Tensor:
    """uint8 or float (N, C, S, S) windows -> float, per window and channel zero mean, and
    unit contrast per window over all its channels together.

    The same logo printed dark on light or light on dark differs by sign after this, which
    training teaches the network to ignore; brightness and contrast changes vanish here. One
    contrast for all channels keeps their balance: a window whose pattern is all in colour has
    it at full contrast in its colour channels, and a grey window's colour channels stay flat.
    """
    x = windows.float()
    if windows.dtype == torch.uint8:
        x = x / 255.0
    variance, mean = torch.var_mean(x, dim=(-2, -1), keepdim=True)
    # a one-channel window's sample std; over several channels, from their summed variances
    spread = variance.sum(dim=-3, keepdim=True).sqrt().clamp(min=MIN_CONTRAST)
    return (x - mean) / spread


class LogoNet(nn.Module):
    """(N, channels, S, S) windows (uint8 or float in [0, 1]) -> (N, dim) unit vectors."""

    def __init__(self, config: LogoNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or LogoNetConfig()
        w = self.config.widths
        self.features = nn.Sequential(
            _conv(self.config.channels, w[0], stride=2),
            _conv(w[0], w[0]),
            _conv(w[0], w[1], stride=2),
            _conv(w[1], w[1]),
            _conv(w[1], w[2], stride=2),
            _conv(w[2], w[2]),
            _conv(w[2], w[3], stride=2),
            _conv(w[3], w[3]),
        )
        self.pool = GeM(self.config.gem_p)
        self.projection = nn.Linear(w[3], self.config.dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.features(standardise(windows)).float())
        # normalised in fp32 whatever precision the layers ran in (bf16 autocast)
        return F.normalize(self.projection(pooled).float(), dim=-1)


def with_colour_inputs(network: LogoNet) -> LogoNet:
    """A 3-channel copy of a grey network that computes exactly what it did on grey windows:
    the first convolution's colour weights start at zero, so fine-tuning starts from the grey
    model and learns what colour adds."""
    if network.config.channels != 1:
        raise ValueError(f"expected a grey (1-channel) network, got {network.config.channels}")
    widened = LogoNet(replace(network.config, channels=3))
    state = {key: value.clone() for key, value in network.state_dict().items()}
    first = "features.0.0.weight"
    grey_weights = state[first]
    state[first] = torch.cat([grey_weights, torch.zeros_like(grey_weights).repeat(1, 2, 1, 1)], 1)
    widened.load_state_dict(state)
    return widened


def folded_for_inference(network: LogoNet) -> LogoNet:
    """A copy of ``network`` in eval mode with each BatchNorm folded into the convolution
    before it, in channels-last layout: the same function up to float rounding, 2.3x faster
    under bf16 on a CPU with AMX (measured on 300 windows of the 32-256 network: 55 ms
    folded, 24 ms folded and channels-last). Fewer passes over the feature maps, and
    oneDNN's bf16 convolutions want channels last."""
    folded = copy.deepcopy(network).eval()
    for index, block in enumerate(folded.features):
        conv, norm, relu = block.children()  # see _conv
        assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
        folded.features[index] = nn.Sequential(fuse_conv_bn_eval(conv, norm), relu)
    return folded.to(memory_format=torch.channels_last)


@dataclass
class LogoModel:
    """A trained LogoNet with its provenance (``metadata``: recipe, metrics, calibration)
    and, once calibrated, its ``background``: windows of photos without logos, embedded by
    it (see :mod:`.background`). ``inference_network`` is its BatchNorm-folded copy, made on
    first use; ``network`` stays as trained (its weights are the fingerprint)."""

    network: LogoNet
    metadata: dict[str, Any] = field(default_factory=dict)
    background: BackgroundBank | None = None
    _folded: LogoNet | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def inference_network(self) -> LogoNet:
        if self._folded is None:
            self._folded = folded_for_inference(self.network)
        return self._folded

    @property
    def config(self) -> LogoNetConfig:
        return self.network.config

    @property
    def fingerprint(self) -> ModelFingerprint:
        """What an index of this model's vectors records, so it accepts no other model's."""
        weights = state_dict_sha256(self.network.state_dict())
        return ModelFingerprint("lookalike-logo", weights, self.config.dim)


def save_logo_model(
    path: str | os.PathLike[str],
    network: LogoNet,
    metadata: dict[str, Any] | None = None,
    background: BackgroundBank | None = None,
) -> Path:
    """Write atomically; weights stored as fp16 (the network is small either way)."""
    if background is not None and background.dim != network.config.dim:
        raise ValueError(f"a {background.dim}-d background bank for a {network.config.dim}-d model")
    payload = {
        "format": LOGO_CHECKPOINT_FORMAT,
        "version": LOGO_CHECKPOINT_VERSION,
        "config": network.config.to_dict(),
        "state_dict": stored_state(network, half=True),
        "metadata": metadata or {},
    }
    if background is not None:
        payload["background"] = background.to_payload()
    return write_payload(path, payload)


def load_logo_model(path: str | os.PathLike[str]) -> LogoModel:
    """Load a checkpoint written by :func:`save_logo_model` (in eval mode, on the CPU)."""
    payload = read_payload(
        path, LOGO_CHECKPOINT_FORMAT, LOGO_CHECKPOINT_VERSION, "lookalike logo checkpoint"
    )
    network = LogoNet(LogoNetConfig.from_dict(payload["config"]))
    state = float_state(payload["state_dict"])
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the logo network ({exc})") from exc
    network.eval()
    stored = payload.get("background")  # checkpoints before background banks have none
    try:
        background = None if stored is None else BackgroundBank.from_payload(stored)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: unreadable background bank ({exc})") from exc
    if background is not None and background.dim != network.config.dim:
        raise CheckpointError(f"{path}: its background bank does not fit the logo network")
    return LogoModel(network, dict(payload["metadata"]), background)
