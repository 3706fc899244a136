"""Self-supervised copy-detection training (SSCD recipe, plain PyTorch, CPU friendly).

Each training image gives two views, a light anchor and a heavy listing-like edit
(:class:`~lookalike.data.augment.ListingAugment`); the descriptor learns to match them with
InfoNCE + KoLeo (:mod:`lookalike.training.losses`). Usable from a notebook::

    from lookalike.training.train import TrainConfig, train
    result = train(TrainConfig(images="catalogue/", out_dir="runs/a", init_weights="r18.pth"))
    embedder = create_embedder(result.checkpoint)

``out_dir`` holds ``last.pt`` (a lookalike checkpoint), ``best.pt`` (best held-out µAP) and
``state.pt`` (optimiser, schedule and position, for resuming). Running ``train`` again with the
same config and an existing ``out_dir`` resumes where it stopped; the data order and the views
are functions of (seed, epoch, image), so a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.augment import AugmentConfig, ListingAugment, random_listing_edit
from ..data.decode import ImageDecodeError, decode_image
from ..data.manifest import iter_image_files
from ..model.checkpoint import atomic_torch_save, save_checkpoint
from ..model.embedder import Precision, resolve_precision

# Private but shared on purpose: init weights load exactly as create_embedder(weights=) does.
from ..model.factory import _load_weights_into
from ..model.network import DescriptorNet
from ..model.registry import DEFAULT_MODEL, get_spec
from ..model.spec import ModelSpec
from .losses import DEFAULT_KOLEO_WEIGHT, DEFAULT_TEMPERATURE, sscd_loss
from .metrics import GroundTruthPair, Prediction, evaluate

__all__ = ["CopyDetectionCheck", "TrainConfig", "TrainResult", "train", "train_step"]

log = logging.getLogger(__name__)

EvalFn = Callable[[nn.Module], dict[str, Any]]
PathLike = str | os.PathLike[str]

LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
STATE_NAME = "state.pt"

# Fields that may change between a run and its resumption: they set how long or how verbosely
# it runs, not what it learns.
_RESUMABLE_CHANGES = frozenset(
    {
        "out_dir",
        "max_steps",
        "max_minutes",
        "threads",
        "num_workers",
        "log_every",
        "eval_every_steps",
        "checkpoint_every_steps",
    }
)


@dataclass
class TrainConfig:
    """A training run. ``augment.output_size`` is ignored: views are made at ``input_size``.

    The learning-rate schedule (linear warmup, cosine decay to 0) spans ``epochs``, or
    ``budget_minutes`` of training time if that ends first: the decay then follows the share
    of the budget spent (the training loop's wall time, summed over resumed calls; decoding
    the images before it is not counted), and training ends when it is spent, annealed
    whatever the machine's speed. A budgeted run's step count depends on that speed; its
    checkpoints record it. ``max_steps`` and ``max_minutes`` only stop early, so a long run
    can be done in resumable chunks. ``eval_every_steps = 0`` disables evaluation,
    ``checkpoint_every_steps = 0`` saves only at the end. The built-in evaluation holds out
    ``eval_fraction`` of the images (at least ``eval_min_references``, at most
    ``eval_max_references``) as references.
    """

    images: PathLike | Sequence[PathLike]
    out_dir: PathLike
    model: str = DEFAULT_MODEL
    init_weights: PathLike | None = None
    input_size: int = 160
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    temperature: float = DEFAULT_TEMPERATURE
    koleo_weight: float = DEFAULT_KOLEO_WEIGHT
    threads: int | None = None
    seed: int = 0
    precision: Precision = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    eval_every_steps: int = 200
    eval_fraction: float = 0.05
    eval_min_references: int = 4
    eval_max_references: int = 256
    checkpoint_every_steps: int = 200
    max_steps: int | None = None
    max_minutes: float | None = None
    budget_minutes: float | None = None
    cache_size: int = 192
    others_pool: int = 32
    num_workers: int = 0
    log_every: int = 10
    half_checkpoint: bool = False

    def __post_init__(self) -> None:
        positive = ("input_size", "epochs", "batch_size", "cache_size", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2: InfoNCE needs negatives")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise ValueError(f"budget_minutes must be positive, got {self.budget_minutes}")
        resolve_precision(self.precision)  # fail now, not after decoding every image

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (paths as strings, tuples as lists), stored in checkpoints."""
        data = dataclasses.asdict(self)
        images = self.images
        if isinstance(images, str | os.PathLike):
            data["images"] = os.fspath(images)
        else:
            data["images"] = [os.fspath(path) for path in images]
        return json.loads(json.dumps(data, default=os.fspath))


@dataclass
class TrainResult:
    """Where the run left its files, how far it got, and what it logged."""

    checkpoint: Path
    best: Path | None
    steps: int
    start_step: int
    history: list[dict[str, Any]]


# ------------------------------------------------------------------------------------ data


def _load_cache(paths: Sequence[Path], side: int, progress: bool) -> list[np.ndarray]:
    """Decode every image once, shrunk so its longer side is at most ``side``: on two cores
    decoding full-size photos costs more than the model, so it must not happen per epoch."""
    arrays = []
    for path in tqdm(paths, desc="decoding", unit="img", disable=not progress, leave=False):
        try:
            image = decode_image(path, draft_size=side)
        except ImageDecodeError as exc:
            log.warning("skipping %s", exc)
            continue
        image.thumbnail((side, side), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.uint8).copy())
    return arrays


def _image_paths(images: PathLike | Sequence[PathLike]) -> list[Path]:
    named = [images] if isinstance(images, str | os.PathLike) else list(images)
    return sorted(set(iter_image_files(Path(item) for item in named)))


def _to_tensor(image: Image.Image, side: int) -> torch.Tensor:
    """PIL image -> uint8 (3, side, side), resized whole like the Embedder does."""
    if image.size != (side, side):
        image = image.resize((side, side), Image.Resampling.BILINEAR)
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class _PairDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Items are keyed by ``(epoch, index)``: the views depend on nothing else (not on the
    worker or on what ran before), which makes runs reproducible and resumable."""

    def __init__(
        self, arrays: Sequence[np.ndarray], augment: ListingAugment, side: int, seed: int
    ) -> None:
        self.arrays = arrays
        self.augment = augment
        self.side = side
        self.seed = seed

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, key: Any) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, 1, int(epoch), int(index)])
        light, heavy = self.augment.pair(Image.fromarray(self.arrays[index]), rng)
        return _to_tensor(light, self.side), _to_tensor(heavy, self.side)


def _epoch_keys(count: int, seed: int, epoch: int, batch_size: int) -> list[tuple[int, int]]:
    """This epoch's shuffled order, trimmed to whole batches (InfoNCE wants full batches)."""
    order = np.random.default_rng([seed, 0, epoch]).permutation(count)
    usable = (count // batch_size) * batch_size
    return [(epoch, int(index)) for index in order[:usable]]


def _split(count: int, config: TrainConfig, builtin_eval: bool) -> tuple[list[int], list[int]]:
    """(train indices, held-out reference indices), a fixed function of the seed."""
    if not builtin_eval:
        return list(range(count)), []
    wanted = round(count * config.eval_fraction)
    held = min(max(wanted, config.eval_min_references), config.eval_max_references)
    if count - held < config.batch_size:
        raise ValueError(
            f"{count} images: too few to hold out {held} for evaluation and still fill a batch "
            f"of {config.batch_size}; add images, lower batch_size or pass eval_fn"
        )
    order = np.random.default_rng([config.seed, 2]).permutation(count)
    return sorted(int(i) for i in order[held:]), sorted(int(i) for i in order[:held])


# ------------------------------------------------------------------------------ evaluation


class CopyDetectionCheck:
    """A small held-out copy-detection benchmark, built once so evaluations are comparable.

    References are held-out catalogue images; queries are one listing edit of each reference
    (the positives) plus as many edited training images (distractors, whose predictions are
    all false positives). Reports ISC µAP, recall@1 and recall@10 of a top-10 search.
    """

    def __init__(
        self,
        references: Sequence[np.ndarray],
        distractors: Sequence[np.ndarray],
        others: Sequence[Image.Image],
        side: int,
        seed: int,
    ) -> None:
        rng = np.random.default_rng([seed, 3])
        sources = [Image.fromarray(array) for array in references]
        self.references = torch.stack([_to_tensor(image, side) for image in sources])
        queries = sources + [Image.fromarray(array) for array in distractors]
        edited = [random_listing_edit(image, rng, others)[0] for image in queries]
        self.queries = torch.stack([_to_tensor(image, side) for image in edited])
        self.ground_truth = [GroundTruthPair(f"q{i}", f"r{i}") for i in range(len(sources))]

    def __call__(self, embed: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
        references = embed(self.references).numpy()
        queries = embed(self.queries).numpy()
        scores = queries @ references.T
        top = min(10, references.shape[0])
        best = np.argsort(-scores, axis=1)[:, :top]
        predictions = [
            Prediction(f"q{q}", f"r{r}", float(scores[q, r]))
            for q in range(scores.shape[0])
            for r in best[q]
        ]
        result = evaluate(self.ground_truth, predictions)
        return {
            "micro_ap": result.micro_ap,
            "recall_at_1": result.recall_at_1,
            "recall_at_10": result.recall_at_10,
            "recall_at_p90": result.recall_at_p90,
        }


# ---------------------------------------------------------------------------------- model


class _Normalise:
    """uint8 (N, 3, S, S) -> the network's float input, laid out for the chosen precision."""

    def __init__(self, spec: ModelSpec, precision: str) -> None:
        self.mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0
        self.precision = precision

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        batch = (pixels.float() - self.mean) / self.std
        if self.precision == "bf16":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch


def _forward(network: nn.Module, batch: torch.Tensor, precision: str) -> torch.Tensor:
    """Descriptors in fp32; under bf16 only the forward runs in bf16 (weights and grads stay
    fp32, so AdamW needs no loss scaling)."""
    if precision == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return network(batch).float()
    return network(batch).float()


def train_step(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    light: torch.Tensor,
    heavy: torch.Tensor,
    normalise: Callable[[torch.Tensor], torch.Tensor],
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    koleo_weight: float = DEFAULT_KOLEO_WEIGHT,
    precision: str = "fp32",
) -> dict[str, float]:
    """One optimisation step on ``N`` pairs: uint8 ``light`` and ``heavy`` views (N, 3, S, S).

    Returns the float loss terms ``{"loss", "info_nce", "koleo"}`` (before the update).
    """
    network.train()
    batch = normalise(torch.cat([light, heavy]))
    embeddings = _forward(network, batch, precision)
    total, parts = sscd_loss(embeddings, temperature, koleo_weight)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {"loss": float(total.detach()), **{k: float(v) for k, v in parts.items()}}


def _build_network(config: TrainConfig) -> tuple[DescriptorNet, ModelSpec]:
    spec = dataclasses.replace(get_spec(config.model), input_size=config.input_size)
    torch.manual_seed(config.seed)
    network = DescriptorNet(spec)
    if config.init_weights is not None:
        _load_weights_into(network, spec, Path(config.init_weights))
    return network, spec


def _optimizer(network: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW without weight decay on biases, norm scales and GeM's p (decay would only shrink
    them towards 0, which is not a prior anyone wants for those)."""
    decay = [p for p in network.parameters() if p.ndim >= 2]
    no_decay = [p for p in network.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def _schedule(
    optimizer: torch.optim.Optimizer,
    warmup: int,
    total: int,
    budget_spent: Callable[[], float] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over ``warmup`` steps, then cosine decay to 0 at step ``total`` or when
    ``budget_spent()`` (the share of a time budget used, 0..1) reaches 1, whichever is
    first."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        if budget_spent is not None:
            progress = max(progress, budget_spent())
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _now() -> float:
    """The clock a time budget is counted on (a function, so tests can replace it)."""
    return time.monotonic()


# ---------------------------------------------------------------------------- persistence


@dataclass
class _Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_map: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0  # the training loop's wall time, over every call


def _config_conflicts(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = (set(saved) | set(current)) - _RESUMABLE_CHANGES
    return sorted(key for key in keys if saved.get(key) != current.get(key))


class _Run:
    """The mutable state of one training run and the files that persist it."""

    def __init__(self, config: TrainConfig, network: DescriptorNet, spec: ModelSpec) -> None:
        self.config = config
        self.network = network
        self.spec = spec
        self.out_dir = Path(config.out_dir)
        self.config_dict = config.to_dict()
        self.optimizer = _optimizer(network, config)
        self.progress = _Progress()
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        # How many images trained and how many were held out: set by the trainer, checked on
        # resume because the split also depends on whether the built-in evaluation runs.
        self.data: dict[str, int] = {}

    def start_schedule(self, total_steps: int) -> None:
        spent = None if self.config.budget_minutes is None else self.budget_share
        self.scheduler = _schedule(self.optimizer, self.config.warmup_steps, total_steps, spent)

    def budget_share(self) -> float:
        """The share of ``budget_minutes`` spent so far (0 without a budget)."""
        budget = self.config.budget_minutes
        return 0.0 if budget is None else self.progress.train_seconds / (60 * budget)

    def budget_spent(self) -> bool:
        return self.budget_share() >= 1.0

    def resume(self) -> bool:
        """Load ``state.pt`` if the out_dir has one; True when resumed."""
        path = self.out_dir / STATE_NAME
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        conflicts = _config_conflicts(state["config"], self.config_dict)
        if state.get("data") != self.data:
            # e.g. eval_fn given now but not before: the held-out split, so the data, differs.
            conflicts.append(f"data {state.get('data')} -> {self.data}")
        if conflicts:
            raise ValueError(
                f"{self.out_dir} holds a run with a different config ({', '.join(conflicts)}); "
                "use another out_dir or the same settings"
            )
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        assert self.scheduler is not None
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.progress = _Progress(
            step=int(state["step"]),
            epoch=int(state["epoch"]),
            batch_in_epoch=int(state["batch_in_epoch"]),
            best_map=state["best_map"],
            history=list(state["history"]),
            train_seconds=float(state.get("train_seconds", 0.0)),
        )
        return True

    def metadata(self) -> dict[str, Any]:
        progress = self.progress
        evals = [entry for entry in progress.history if entry.get("kind") == "eval"]
        return {
            "trained": True,
            "training_config": self.config_dict,
            "step": progress.step,
            "epoch": progress.epoch,
            "train_minutes": round(progress.train_seconds / 60, 2),
            "history": progress.history,
            "metrics": evals[-1] if evals else None,
        }

    def save(self) -> Path:
        """``last.pt`` then ``state.pt``; resuming reads only ``state.pt`` (which carries the
        weights too), so a crash between the two writes cannot mix steps."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        last = save_checkpoint(
            self.out_dir / LAST_NAME,
            self.network,
            self.spec,
            self.metadata(),
            half=self.config.half_checkpoint,
        )
        assert self.scheduler is not None
        progress = self.progress
        state = {
            "config": self.config_dict,
            "data": self.data,
            "model": {k: v.detach().clone() for k, v in self.network.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": progress.step,
            "epoch": progress.epoch,
            "batch_in_epoch": progress.batch_in_epoch,
            "best_map": progress.best_map,
            "history": progress.history,
            "train_seconds": progress.train_seconds,
        }
        atomic_torch_save(state, self.out_dir / STATE_NAME)
        return last

    def save_best(self, metrics: dict[str, Any]) -> None:
        score = metrics.get("micro_ap")
        if not isinstance(score, int | float) or math.isnan(score):
            return
        best = self.progress.best_map
        if best is None or score > best:
            self.progress.best_map = float(score)
            save_checkpoint(
                self.out_dir / BEST_NAME,
                self.network,
                self.spec,
                self.metadata(),
                half=self.config.half_checkpoint,
            )


# ----------------------------------------------------------------------------------- loop


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint metadata only takes plain values: numbers and tensors become floats."""
    clean: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor | np.generic):
            value = value.item()
        if not isinstance(value, str | int | float | bool | type(None) | list | dict):
            value = repr(value)
        clean[str(key)] = value
    return clean


class _Trainer:
    def __init__(self, config: TrainConfig, eval_fn: EvalFn | None, progress: bool) -> None:
        self.config = config
        self.show = progress
        self.precision = resolve_precision(config.precision)
        network, spec = _build_network(config)
        if self.precision == "bf16":
            network = network.to(memory_format=torch.channels_last)
        self.normalise = _Normalise(spec, self.precision)
        self.run = _Run(config, network, spec)
        self.eval_fn = eval_fn
        self.postfix: dict[str, str] = {}  # shown on the bar: latest loss and latest µAP
        self._tick = 0.0  # the clock at the end of the last step (see TrainConfig)
        self._prepare_data()

    def _prepare_data(self) -> None:
        config = self.config
        paths = _image_paths(config.images)
        arrays = _load_cache(paths, config.cache_size, self.show)
        builtin = self.eval_fn is None and config.eval_every_steps > 0
        train_ids, held_ids = _split(len(arrays), config, builtin)
        self.train_arrays = [arrays[i] for i in train_ids]
        self.run.data = {"train_images": len(train_ids), "held_out": len(held_ids)}
        if len(self.train_arrays) < config.batch_size:
            raise ValueError(
                f"{len(self.train_arrays)} training images cannot fill a batch of "
                f"{config.batch_size} pairs"
            )
        pool_rng = np.random.default_rng([config.seed, 4])
        pool_size = min(config.others_pool, len(self.train_arrays))
        pool_ids = pool_rng.choice(len(self.train_arrays), size=pool_size, replace=False)
        others = [Image.fromarray(self.train_arrays[int(i)]) for i in pool_ids]
        augment_config = dataclasses.replace(config.augment, output_size=config.input_size)
        augment = ListingAugment(augment_config, others)
        self.dataset = _PairDataset(self.train_arrays, augment, config.input_size, config.seed)
        self.steps_per_epoch = len(self.train_arrays) // config.batch_size
        self.check: CopyDetectionCheck | None = None
        if held_ids:
            distractor_ids = pool_rng.choice(len(train_ids), size=len(held_ids), replace=False)
            self.check = CopyDetectionCheck(
                [arrays[i] for i in held_ids],
                [self.train_arrays[int(i)] for i in distractor_ids],
                others,
                config.input_size,
                config.seed,
            )

    # -- evaluation

    @torch.inference_mode()
    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        chunks = [
            _forward(self.run.network, self.normalise(pixels[start : start + 64]), self.precision)
            for start in range(0, pixels.shape[0], 64)
        ]
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    def evaluate(self) -> dict[str, Any] | None:
        network = self.run.network
        network.eval()
        try:
            if self.eval_fn is not None:
                metrics = self.eval_fn(network)
            elif self.check is not None:
                metrics = self.check(self._embed)
            else:
                return None
        finally:
            network.train()
        return _jsonable(dict(metrics))

    # -- loop

    def _batches(self, epoch: int, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        config = self.config
        keys = _epoch_keys(len(self.train_arrays), config.seed, epoch, config.batch_size)
        loader = DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=keys[skip * config.batch_size :],
            num_workers=config.num_workers,
            drop_last=True,
        )
        yield from loader

    def fit(self) -> TrainResult:
        config, run = self.config, self.run
        total = config.epochs * self.steps_per_epoch
        run.start_schedule(total)
        resumed = run.resume()
        start_step = run.progress.step
        stop_at = total if config.max_steps is None else min(total, config.max_steps)
        if resumed:
            log.info("resuming %s at step %d", run.out_dir, start_step)
        if config.threads is not None:
            torch.set_num_threads(max(1, config.threads))
        last = run.out_dir / LAST_NAME
        try:
            if (run.progress.step < stop_at and not run.budget_spent()) or not last.is_file():
                self._loop(stop_at)
                last = run.save()
        except KeyboardInterrupt:
            log.warning("interrupted at step %d: saving %s", run.progress.step, run.out_dir)
            run.save()
            raise
        best = run.out_dir / BEST_NAME
        return TrainResult(
            checkpoint=last,
            best=best if best.is_file() else None,
            steps=run.progress.step,
            start_step=start_step,
            history=run.progress.history,
        )

    def _loop(self, stop_at: int) -> None:
        config, run, progress = self.config, self.run, self.run.progress
        deadline = (
            None if config.max_minutes is None else time.monotonic() + 60 * config.max_minutes
        )
        bar = tqdm(
            total=stop_at,
            initial=progress.step,
            desc="training",
            unit="step",
            disable=not self.show,
        )
        run.network.train()
        self._tick = _now()
        try:
            while progress.step < stop_at and not run.budget_spent():
                for light, heavy in self._batches(progress.epoch, progress.batch_in_epoch):
                    self._step(light, heavy, bar)
                    if progress.step >= stop_at or run.budget_spent():
                        break
                    if deadline and time.monotonic() > deadline:
                        break
                if progress.batch_in_epoch >= self.steps_per_epoch:
                    progress.epoch += 1
                    progress.batch_in_epoch = 0
                if deadline and time.monotonic() > deadline:
                    log.info("this call's %s minutes are spent", config.max_minutes)
                    break
            if run.budget_spent():
                log.info("training budget of %s minutes spent", config.budget_minutes)
        finally:
            bar.close()

    def _step(self, light: torch.Tensor, heavy: torch.Tensor, bar: tqdm) -> None:
        config, run, progress = self.config, self.run, self.run.progress
        assert run.scheduler is not None
        lr = run.scheduler.get_last_lr()[0]
        terms = train_step(
            run.network,
            run.optimizer,
            light,
            heavy,
            self.normalise,
            temperature=config.temperature,
            koleo_weight=config.koleo_weight,
            precision=self.precision,
        )
        now = _now()
        progress.train_seconds += now - self._tick
        self._tick = now
        run.scheduler.step()
        progress.step += 1
        progress.batch_in_epoch += 1
        bar.update(1)
        if not math.isfinite(terms["loss"]):
            raise FloatingPointError(f"loss is {terms['loss']} at step {progress.step}")
        if progress.step % config.log_every == 0 or progress.step == 1:
            entry = {"kind": "train", "step": progress.step, "epoch": progress.epoch, "lr": lr}
            progress.history.append({**entry, **terms})
            self.postfix["loss"] = f"{terms['loss']:.3f}"
            bar.set_postfix(self.postfix)
        if config.eval_every_steps and progress.step % config.eval_every_steps == 0:
            self._evaluate(bar)
        if config.checkpoint_every_steps and progress.step % config.checkpoint_every_steps == 0:
            run.save()

    def _evaluate(self, bar: tqdm) -> None:
        metrics = self.evaluate()
        if metrics is None:
            return
        progress = self.run.progress
        progress.history.append({"kind": "eval", "step": progress.step, **metrics})
        if "micro_ap" in metrics:
            self.postfix["uAP"] = f"{metrics['micro_ap']:.3f}"
            bar.set_postfix(self.postfix)
        self.run.save_best(metrics)


def train(
    config: TrainConfig, *, eval_fn: EvalFn | None = None, progress: bool = True
) -> TrainResult:
    """Train (or resume training) a descriptor; see :class:`TrainConfig`.

    ``eval_fn(network) -> dict`` replaces the built-in held-out check: it gets the network in
    eval mode (input: normalised float (N, 3, S, S); output: unit-norm (N, D)) every
    ``eval_every_steps``; its dict goes into the history and, if it has ``micro_ap``, picks
    ``best.pt``. Ctrl-C saves ``last.pt`` and ``state.pt`` before re-raising.
    """
    return _Trainer(config, eval_fn, progress).fit()
