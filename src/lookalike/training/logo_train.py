"""Training the logo region network on synthetic composites (plain PyTorch, CPU-friendly).

Each step draws a batch of distinct catalogue logos. For each logo, the *reference* is its
clean rendering on a window canvas (exactly what the catalogue indexes) and the *query* is a
window around the same logo pasted onto a photo or texture with perspective, recolouring,
inversion, blur, occlusion and JPEG, framed as the matcher's window grid frames logos (the
logo fills 50-100% of the window, off-centre by up to a quarter). Windows of backgrounds
without a catalogue logo (some with a distractor mark) are extra negatives, so that plain
photo texture learns to stay far from every logo.

Loss: symmetric InfoNCE between queries and references (temperature 0.05) + KoLeo on the
references, which spreads the catalogue over the sphere (one score threshold for all logos).
With ``all_references`` each query is contrasted with every training logo's reference, not
only the batch's: the loss is then the search itself (find this logo among all of them), at
the cost of embedding the whole catalogue each step, which is for a GPU (``device``). On a
CPU, ``mined_negatives`` approaches it at a fraction of the cost: a memory of every training
logo's reference vector (re-embedded every ``memory_every`` steps) picks, for each query,
the other logos it is most similar to, and only those join the batch's references, embedded
afresh with gradient. Softmax puts almost all of the loss's weight on them. (Contrasting
with the remembered vectors themselves, as a cross-batch memory does, was unstable here:
with no gradient through them, every step drew all vectors together, away from the
remembered ones.) Batch norm then keeps its running statistics, so that vectors embedded in
separate passes are computed alike.

``synthetic_logos`` made-up logos (``data.synthetic_logos``) join each batch, each a new
identity with its own reference: the network recognises windows of its training logos
better than those of logos it never saw, and a catalogue of 2,851 is few identities.

Rendering thousands of logos needs cairosvg and minutes; ``LogoTrainingData.save`` writes
what training reads (renderings, backgrounds, specs) to a folder that ``LogoTrainingData.read``
loads in seconds, for runs on another machine (a GPU one) or many runs on one.

``train_logos(config)`` works from a notebook (tqdm.auto bars) and from ``lookalike
train-logos``; it checkpoints to ``out_dir/last.pt`` and resumes from it.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from ..data.composites import PasteConfig, distractor_mark, paste_logo, synthetic_background
from ..data.decode import decode_image
from ..data.logos import LogoRenderError, LogoSpec, render_logo
from ..data.synthetic_logos import synthetic_logo
from ..logos.network import (
    LogoNet,
    LogoNetConfig,
    load_logo_model,
    save_logo_model,
    with_colour_inputs,
)
from ..logos.windows import colour_views, grey, logo_window
from ..model.checkpoint import atomic_torch_save
from ..model.embedder import Precision, resolve_precision
from .losses import koleo

RENDER_SIDE = 128  # logos are rendered once at this size, then pasted at up to this size
BACKGROUND_SIDE = 192  # photos are decoded once to this shorter side
SAVED_MANIFEST = "logo-training.json"  # marks a folder written by LogoTrainingData.save
SAVED_FORMAT = "lookalike-logo-training/1"
# The held-out logos and the check's windows do not follow a run's seed: calibrate-logos
# takes its logos from this split, so a run with another seed must not train on them, and
# the in-training checks of all runs stay comparable.
EVAL_SEED = 0


@dataclass
class LogoTrainConfig:
    """``steps`` of ``batch_size`` logos each (+ ``negatives`` background windows), or
    ``budget_minutes`` of the run's time if that ends first: the cosine decay then follows the
    share of the budget spent (summed over resumed calls), so the run ends annealed whatever
    the machine's speed; this call stops early after ``max_minutes`` (of its own, as ``train``
    does: a resumed run gets that again); ``eval_every`` steps, window-to-logo recall@1 is
    measured on ``eval_logos`` logos never trained on. ``precision``: "auto" trains under
    bf16 autocast where the CPU has native bf16 units (2x faster for the wider networks).
    ``init_from``: a logo model (``logo.pt``) whose weights a new run starts from, to fine-tune
    it (on one's own logos, or longer) under a fresh schedule; its network settings must be
    ``network``'s. A run that resumes from its ``last.pt`` ignores it. ``device``: where the
    network trains ("cpu", "cuda", "cuda:1", ...; samples are always drawn on the CPU, by
    ``workers`` processes); bf16 precision there is autocast on that device.
    ``all_references``: contrast each query with every training logo's reference each step,
    not only the ``batch_size`` of the batch; ``mined_negatives``: for each query, that many
    other logos it is most similar to (by a memory re-embedded every ``memory_every`` steps)
    join the batch's references, which costs far less on a CPU;
    ``synthetic_logos``: made-up logos added to each batch (see the module's docstring).
    ``seed``: the samples drawn and the initial weights; the held-out logos are the same
    whatever it is (``EVAL_SEED``)."""

    out_dir: Path
    steps: int = 3000
    batch_size: int = 128
    negatives: int = 48
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    temperature: float = 0.05
    koleo_weight: float = 1.0
    network: LogoNetConfig = field(default_factory=LogoNetConfig)
    eval_logos: int = 200
    eval_every: int = 250
    checkpoint_every: int = 100
    max_minutes: float | None = None
    budget_minutes: float | None = None
    precision: Precision = "auto"
    init_from: Path | None = None
    workers: int = 1
    threads: int | None = None
    device: str = "cpu"
    all_references: bool = False
    mined_negatives: int = 0
    memory_every: int = 100
    synthetic_logos: int = 0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise ValueError(f"budget_minutes must be positive, got {self.budget_minutes}")
        resolve_precision(self.precision)  # fail now, not after rendering every logo
        try:  # likewise for a misspelt device
            torch.device(self.device)
        except RuntimeError as error:
            raise ValueError(f"device: {error}") from None
        if self.mined_negatives < 0 or self.synthetic_logos < 0 or self.memory_every < 1:
            raise ValueError(
                "mined_negatives and synthetic_logos must be 0 or more, memory_every 1 or more"
            )
        if self.all_references and self.mined_negatives:
            raise ValueError("all_references already contrasts every logo: nothing to mine")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["init_from"] = None if self.init_from is None else str(self.init_from)
        return data


@dataclass
class LogoTrainingData:
    """Logos (RGBA renderings, with their specs) and background photos (RGB arrays)."""

    specs: list[LogoSpec]
    logos: list[Image.Image]
    backgrounds: list[npt.NDArray[np.uint8]]

    @classmethod
    def load(
        cls,
        specs: Sequence[LogoSpec],
        background_paths: Sequence[Path],
        *,
        progress: bool = True,
    ) -> LogoTrainingData:
        """Render every logo and decode every background once (logos that fail to render are
        skipped with a warning count in the bar)."""
        kept_specs, logos = [], []
        for spec in tqdm(specs, desc="rendering logos", disable=not progress):
            try:
                logos.append(render_logo(spec.path, RENDER_SIDE))
                kept_specs.append(spec)
            except LogoRenderError:
                continue
        backgrounds = []
        for path in tqdm(background_paths, desc="decoding backgrounds", disable=not progress):
            try:
                image = decode_image(path, draft_size=BACKGROUND_SIDE).convert("RGB")
            except ValueError:
                continue
            scale = BACKGROUND_SIDE / min(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            backgrounds.append(np.asarray(image.resize(size, Image.Resampling.BILINEAR)))
        return cls(kept_specs, logos, backgrounds)

    def save(self, folder: Path, *, background_quality: int = 90) -> None:
        """Write the renderings (PNG), backgrounds (JPEG) and specs to ``folder``, for
        ``read``. The manifest is written last: a folder whose save broke off is not taken
        for a complete one."""
        folder = Path(folder)
        (folder / "logos").mkdir(parents=True, exist_ok=True)
        (folder / "backgrounds").mkdir(exist_ok=True)
        for number, logo in enumerate(self.logos):
            logo.save(folder / "logos" / f"{number:05d}.png", optimize=True)
        for number, photo in enumerate(self.backgrounds):
            Image.fromarray(photo).save(
                folder / "backgrounds" / f"{number:05d}.jpg", quality=background_quality
            )
        manifest = {
            "format": SAVED_FORMAT,
            "specs": [
                {"item_id": spec.item_id, "brand": spec.brand, "path": str(spec.path)}
                for spec in self.specs
            ],
            "backgrounds": len(self.backgrounds),
        }
        (folder / SAVED_MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")

    @staticmethod
    def is_saved(folder: Path) -> bool:
        return (Path(folder) / SAVED_MANIFEST).is_file()

    @classmethod
    def read(cls, folder: Path, *, progress: bool = True) -> LogoTrainingData:
        """Load what ``save`` wrote (the logos in the order they were saved, so the same
        logos are held out for the in-training check)."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / SAVED_MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{folder} holds no saved logo training data") from None
        if manifest.get("format") != SAVED_FORMAT:
            raise ValueError(
                f"{folder}: saved as {manifest.get('format')!r}, this version reads "
                f"{SAVED_FORMAT!r}"
            )
        specs = [
            LogoSpec(row["item_id"], row["brand"], Path(row["path"])) for row in manifest["specs"]
        ]
        logos = []
        for number in tqdm(range(len(specs)), desc="reading logos", disable=not progress):
            with Image.open(folder / "logos" / f"{number:05d}.png") as logo:
                logos.append(logo.convert("RGBA"))
        backgrounds = []
        for number in range(int(manifest["backgrounds"])):
            with Image.open(folder / "backgrounds" / f"{number:05d}.jpg") as photo:
                backgrounds.append(np.asarray(photo.convert("RGB")))
        return cls(specs, logos, backgrounds)


class WindowSampler:
    """Draws query windows of given logos and background-only windows, as uint8 (C, S, S):
    grey (``channels=1``), or grey and both colour-opponent views (``channels=3``)."""

    def __init__(self, data: LogoTrainingData, input_size: int, channels: int = 1) -> None:
        self.data = data
        self.size = input_size
        self.channels = channels

    def _background(self, side: int, rng: random.Random) -> Image.Image:
        if not self.data.backgrounds or rng.random() < 0.3:
            return synthetic_background((side, side), rng)
        photo = self.data.backgrounds[rng.randrange(len(self.data.backgrounds))]
        height, width = photo.shape[:2]
        crop = min(height, width, max(16, round(side * rng.uniform(0.5, 1.2))))
        top, left = rng.randint(0, height - crop), rng.randint(0, width - crop)
        patch = Image.fromarray(photo[top : top + crop, left : left + crop])
        return patch.resize((side, side), Image.Resampling.BILINEAR)

    def _window(
        self, image: Image.Image, centre: tuple[float, float], side: float
    ) -> npt.NDArray[np.uint8]:
        half = side / 2
        cx = min(max(centre[0], half), image.width - half)
        cy = min(max(centre[1], half), image.height - half)
        box = (cx - half, cy - half, cx + half, cy + half)
        if self.channels == 1:
            window = grey(image).resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
            return np.asarray(window, np.uint8)[None]
        window = image.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
        return np.stack([np.asarray(view, np.uint8) for view in colour_views(window)])

    def positive(self, logo_index: int, rng: random.Random) -> npt.NDArray[np.uint8]:
        return self.positive_of(self.data.logos[logo_index], rng)

    def positive_of(self, logo: Image.Image, rng: random.Random) -> npt.NDArray[np.uint8]:
        """A query window around ``logo`` (RGBA) pasted onto a background."""
        window = self.size * rng.uniform(1.0, 2.5)  # windows are downsampled, as in photos
        fill = rng.uniform(0.5, 1.0)
        side = round(window * 1.6)
        config = PasteConfig(scale=(fill / 1.6 * 0.95, fill / 1.6 * 1.05))
        image, quad = paste_logo(self._background(side, rng), logo, rng, config)
        xs, ys = [p[0] for p in quad], [p[1] for p in quad]
        span = max(max(xs) - min(xs), max(ys) - min(ys))
        window = min(span / fill, side)
        centre = (
            (min(xs) + max(xs)) / 2 + rng.uniform(-0.25, 0.25) * window,
            (min(ys) + max(ys)) / 2 + rng.uniform(-0.25, 0.25) * window,
        )
        return self._window(image, centre, window)

    def negative(self, rng: random.Random) -> npt.NDArray[np.uint8]:
        side = round(self.size * rng.uniform(1.0, 2.5) * 1.6)
        image = self._background(side, rng)
        if rng.random() < 0.4:
            mark = distractor_mark(rng, round(side * 0.5))
            image, _ = paste_logo(image, mark, rng, PasteConfig(scale=(0.35, 0.6)))
        window = side / 1.6
        return self._window(image, (side / 2, side / 2), window)


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class _Batches(IterableDataset[Batch]):
    """Endless batches (logo ids, query windows, negative windows, made-up logos' reference
    windows), seeded per step so a resumed run draws what the interrupted one would have.
    The query windows of the made-up logos follow those of the catalogue logos, in order."""

    def __init__(
        self,
        sampler: WindowSampler,
        logo_ids: Sequence[int],
        config: LogoTrainConfig,
        first_step: int,
    ) -> None:
        self.sampler = sampler
        self.logo_ids = list(logo_ids)
        self.config = config
        self.first_step = first_step

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        step = self.first_step + worker
        while True:
            rng = random.Random(f"{self.config.seed}:{step}")
            ids = rng.sample(self.logo_ids, min(self.config.batch_size, len(self.logo_ids)))
            queries = [self.sampler.positive(i, rng) for i in ids]
            made_up = [synthetic_logo(rng, RENDER_SIDE) for _ in range(self.config.synthetic_logos)]
            queries += [self.sampler.positive_of(logo, rng) for logo in made_up]
            negatives = np.stack([self.sampler.negative(rng) for _ in range(self.config.negatives)])
            shape = (0, self.sampler.channels, self.sampler.size, self.sampler.size)
            references = (
                np.stack(
                    [
                        logo_window(logo, self.sampler.size, self.sampler.channels)
                        for logo in made_up
                    ]
                )
                if made_up
                else np.zeros(shape, np.uint8)
            )
            yield (
                torch.tensor(ids),
                torch.from_numpy(np.stack(queries)),
                torch.from_numpy(negatives),
                torch.from_numpy(references),
            )
            step += workers


def logo_loss(
    references: torch.Tensor,
    queries: torch.Tensor,
    negatives: torch.Tensor,
    temperature: float,
    koleo_weight: float,
    targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Symmetric InfoNCE: query i -> its reference among all references, and that reference
    -> query i among all queries and the background windows; + KoLeo on the references.

    ``targets[i]``: the row of query i's reference (default ``i``: one reference per query,
    in order; more references than queries are extra negatives)."""
    in_order = torch.arange(len(queries), device=queries.device)
    if targets is None:
        targets = in_order
    to_refs = queries @ references.T / temperature
    to_queries = references[targets] @ torch.cat([queries, negatives]).T / temperature
    nce = (F.cross_entropy(to_refs, targets) + F.cross_entropy(to_queries, in_order)) / 2
    spread = koleo(references) if koleo_weight else torch.zeros((), device=queries.device)
    loss = nce + koleo_weight * spread
    return loss, {"nce": float(nce.detach()), "koleo": float(spread.detach())}


@torch.inference_mode()
def window_recall(
    network: LogoNet,
    references: torch.Tensor,
    sampler: WindowSampler,
    eval_ids: Sequence[int],
    seed: int,
) -> dict[str, float]:
    """Recall@1 of query windows of ``eval_ids`` logos against every logo's reference
    (``references``: each logo's reference window, on the network's device), and the share
    of background windows scoring below the median positive score (a separation proxy)."""
    if not eval_ids:  # a run that holds no logo out has nothing to measure
        return {}
    network.eval()
    device = next(network.parameters()).device
    rng = random.Random(f"eval:{seed}")
    ref_vectors = network(references)
    queries = torch.from_numpy(np.stack([sampler.positive(i, rng) for i in eval_ids]))
    backgrounds = torch.from_numpy(np.stack([sampler.negative(rng) for _ in eval_ids]))
    scores = (network(queries.to(device)) @ ref_vectors.T).cpu()
    own = torch.tensor(list(eval_ids))
    recall = float((scores.argmax(dim=1) == own).float().mean())
    positive = scores[torch.arange(len(eval_ids)), own]
    background_best = (network(backgrounds.to(device)) @ ref_vectors.T).max(dim=1).values.cpu()
    separated = float((background_best < positive.median()).float().mean())
    network.train()
    return {"window_recall_at_1": recall, "background_below_median_positive": separated}


def train_mode(network: nn.Module, frozen_norm: bool) -> None:
    """``network`` in training mode, its batch norm layers in inference mode if
    ``frozen_norm`` (their scale and shift still learn)."""
    network.train()
    if frozen_norm:
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


@torch.no_grad()
def mine_negatives(
    memory: torch.Tensor, queries: torch.Tensor, own_rows: torch.Tensor, per_query: int
) -> torch.Tensor:
    """Rows of ``memory`` (reference vectors) among the ``per_query`` most similar to each of
    ``queries``, none of ``own_rows`` (the batch's own logos), each row once."""
    similarity = queries @ memory.T
    similarity[:, own_rows] = -math.inf
    best = similarity.topk(min(per_query, memory.shape[0]), dim=1)
    return best.indices[best.values > -math.inf].unique()  # fewer when few logos are left


@torch.no_grad()
def embed_in_eval_mode(network: LogoNet, windows: torch.Tensor, precision: str) -> torch.Tensor:
    """``windows``' unit vectors (float32) from ``network`` in inference mode (running batch
    norm statistics), in chunks; every layer is then put back in the mode it was in."""
    modes = [(module, module.training) for module in network.modules()]
    network.eval()
    device = windows.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        vectors = torch.cat([network(chunk).float() for chunk in windows.split(512)])
    for module, training in modes:
        module.train(training)
    return vectors


def _learning_rate(step: int, config: LogoTrainConfig, budget_share: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 0 at ``config.steps`` or when ``budget_share``
    (of ``budget_minutes`` spent, 0..1) reaches 1, whichever comes first."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    progress = max(progress, budget_share)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def training_precision(precision: Precision, device: torch.device) -> Literal["bf16", "fp32"]:
    """``precision`` resolved for ``device``: "auto" is bf16 on a GPU (native there), and on
    a CPU where it has native bf16 units."""
    if precision == "auto" and device.type == "cuda":
        return "bf16"
    return resolve_precision(precision)


def _now() -> float:
    """The clock the run's time and budget are counted on (a function, so tests can replace
    it)."""
    return time.monotonic()


def split_eval_logos(count: int, eval_logos: int, seed: int) -> tuple[list[int], list[int]]:
    """(train ids, eval ids): a fixed random subset of logos kept out of training."""
    ids = list(range(count))
    random.Random(f"logo-eval:{seed}").shuffle(ids)
    held = min(eval_logos, max(0, count - 2))
    return sorted(ids[held:]), sorted(ids[:held])


def _start_from(network: LogoNet, path: Path) -> None:
    """Copy a trained logo model's weights into ``network`` (which must have its settings,
    or be its colour version: a grey model's colour inputs start at zero weight)."""
    trained = load_logo_model(path)
    if trained.config == replace(network.config, channels=1) and network.config.channels == 3:
        trained.network = with_colour_inputs(trained.network)
    if trained.config != network.config:
        raise ValueError(
            f"{path} is a logo network with settings {trained.config.to_dict()}, "
            f"the run is set for {network.config.to_dict()}"
        )
    network.load_state_dict(trained.network.state_dict())


def train_logos(config: LogoTrainConfig, data: LogoTrainingData) -> Path:
    """Train (or resume) and write ``out_dir/logo.pt``; returns its path."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    precision = training_precision(config.precision, device)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    network = LogoNet(config.network)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    train_ids, eval_ids = split_eval_logos(len(data.logos), config.eval_logos, EVAL_SEED)
    step, elapsed, history = 0, 0.0, []
    resume = out_dir / "last.pt"
    if resume.exists():
        state = torch.load(resume, map_location="cpu", weights_only=True)
        network.load_state_dict(state["network"])
        network.to(device)  # before the optimizer's state, which follows its parameters
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        history = json.loads(state["history"])
    elif config.init_from is not None:
        _start_from(network, Path(config.init_from))
    network.to(device)
    sampler = WindowSampler(data, config.network.input_size, config.network.channels)
    batches = DataLoader(
        _Batches(sampler, train_ids, config, step),
        batch_size=None,
        num_workers=config.workers,
        prefetch_factor=4 if config.workers else None,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    size, channels = config.network.input_size, config.network.channels
    reference_windows = torch.from_numpy(
        np.stack([logo_window(logo, size, channels) for logo in data.logos])
    ).to(device)
    # with all_references or mining: every training logo's reference, and each logo id's row
    # among them
    catalogue = torch.tensor(train_ids, device=device)
    catalogue_row = torch.full((len(data.logos),), -1, dtype=torch.long, device=device)
    catalogue_row[catalogue] = torch.arange(len(train_ids), device=device)
    network.train()
    started = _now() - elapsed  # the run's clock, across resumes
    deadline = None if config.max_minutes is None else _now() + 60 * config.max_minutes
    bar = tqdm(total=config.steps, initial=step, desc="logo training", disable=not config.progress)

    def save(final: bool = False) -> None:
        state = {
            "network": {name: value.cpu() for name, value in network.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "step": step,
            "elapsed": _now() - started,
            "history": json.dumps(history),
        }
        atomic_torch_save(state, resume)
        if final:
            metadata = {
                "recipe": config.to_dict(),
                "history": history,
                "steps": step,
                "train_logos": len(train_ids),
                "backgrounds": len(data.backgrounds),
            }
            save_logo_model(out_dir / "logo.pt", copy.deepcopy(network).cpu(), metadata)

    def budget_share() -> float:
        budget = config.budget_minutes
        return 0.0 if budget is None else (_now() - started) / (60 * budget)

    memory: torch.Tensor | None = None  # the training logos' reference vectors, for mining
    for ids, queries, negatives, made_up in batches:
        train_mode(network, frozen_norm=config.mined_negatives > 0)
        spent = budget_share()
        if step >= config.steps or spent >= 1.0:
            break
        if deadline is not None and _now() > deadline:
            break
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config, spent)
        ids = ids.to(device)
        queries = queries.to(device, non_blocking=True)
        negatives = negatives.to(device, non_blocking=True)
        made_up = made_up.to(device, non_blocking=True)
        if config.mined_negatives and (memory is None or step % config.memory_every == 0):
            memory = embed_in_eval_mode(network, reference_windows[catalogue], precision)
        if config.all_references:
            references, targets = reference_windows[catalogue], catalogue_row[ids]
        else:
            references, targets = reference_windows[ids], torch.arange(len(ids), device=device)
        # a made-up logo's reference follows the catalogue's references
        targets = torch.cat([targets, torch.arange(len(made_up), device=device) + len(references)])
        references = torch.cat([references, made_up])
        count, queried = len(references), len(queries)
        # under bf16 only the forward runs in bf16; weights, grads and the loss stay fp32
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            vectors = network(torch.cat([references, queries, negatives])).float()
        reference_vectors = vectors[:count]
        if memory is not None:  # the logos most like this batch's windows join its references
            mined = mine_negatives(
                memory,
                vectors[count : count + queried].detach(),
                catalogue_row[ids],
                config.mined_negatives,
            )
            memory[catalogue_row[ids]] = vectors[: len(ids)].detach()  # the freshest there is
            if len(mined):  # none when the batch holds every training logo
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    mined_vectors = network(reference_windows[catalogue[mined]]).float()
                reference_vectors = torch.cat([reference_vectors, mined_vectors])
                memory[mined] = mined_vectors.detach()
        loss, parts = logo_loss(
            reference_vectors,
            vectors[count : count + queried],
            vectors[count + queried :],
            config.temperature,
            config.koleo_weight,
            targets,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", nce=f"{parts['nce']:.3f}")
        if step % config.eval_every == 0 or step == config.steps:
            metrics = window_recall(network, reference_windows, sampler, eval_ids, EVAL_SEED)
            history.append(
                {
                    "step": step,
                    "loss": float(loss.detach()),
                    **parts,
                    **metrics,
                    "minutes": (_now() - started) / 60,
                }
            )
            bar.write(json.dumps(history[-1]))
        if step % config.checkpoint_every == 0:
            save()
    bar.close()
    if not history or history[-1]["step"] != step:  # stopped early: measure where it stands
        metrics = window_recall(network, reference_windows, sampler, eval_ids, EVAL_SEED)
        history.append({"step": step, **metrics, "minutes": (_now() - started) / 60})
    save(final=True)
    return out_dir / "logo.pt"
