"""Service settings: the one place where environment variables (``LOOKALIKE_*``) are read.

pydantic-settings lives here, at the service edge only; the core library takes plain
arguments. ``lookalike serve`` builds a ``Settings`` from its flags; tests build one directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything ``create_app`` needs; each field can come from ``LOOKALIKE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", frozen=True, extra="forbid")

    # -- where things live -------------------------------------------------------------------
    index_dir: Path = Field(description="Catalogue index folder (as written by `index build`).")
    keys_file: Path = Field(description="API keys file (`lookalike keys create` writes it).")
    catalogue_dir: Path | None = Field(
        default=None,
        description="Where images added through the API are stored (content-addressed); "
        "default: INDEX_DIR/catalogue-images.",
    )
    create_index: bool = Field(
        default=False, description="Start with an empty index when INDEX_DIR has none."
    )
    model: str | None = Field(
        default=None,
        description="Model to load instead of the one the index records (must match it); "
        "with create_index, the model of the new index (default: `default`).",
    )

    # -- inference ----------------------------------------------------------------------------
    top_k: int = Field(default=5, ge=1, le=100, description="Matches returned per verdict.")
    copy_threshold: float | None = Field(
        default=None, description="Override the model's copy threshold (with review_threshold)."
    )
    review_threshold: float | None = Field(
        default=None, description="Override the model's review threshold (with copy_threshold)."
    )
    threads: PositiveInt | None = Field(
        default=None, description="torch threads (default: one per core)."
    )
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    verify: bool = Field(
        default=False,
        description="Re-rank each shortlist with local features and query tiles, as the "
        "model recommends: far better verdicts and located pastes, at ~0.25 s of 2 cores a "
        "photo; off: descriptor only (~100 photos/s), with that mode's calibration.",
    )
    micro_batching: bool = Field(
        default=True,
        description="Gather concurrent requests into one forward pass; off = batches of 1.",
    )
    max_batch: int = Field(default=16, ge=1, le=256, description="Largest forward pass.")
    max_wait_ms: float = Field(
        default=4.0, ge=0, le=1000, description="How long a batch waits to fill up."
    )
    decode_workers: PositiveInt = Field(default=2, description="Image decoding threads.")

    # -- limits -------------------------------------------------------------------------------
    max_request_bytes: PositiveInt = Field(default=64 * MiB, description="Whole request body.")
    max_image_bytes: PositiveInt = Field(default=16 * MiB, description="One uploaded image.")
    max_image_pixels: PositiveInt = Field(
        default=40_000_000, description="Width x height; larger images (pixel bombs) get 422."
    )
    max_batch_images: int = Field(
        default=16, ge=1, le=256, description="Images in one /v1/check/batch."
    )
    request_timeout_s: PositiveFloat = Field(
        default=10.0, description="A check that takes longer answers 504."
    )
    rate_limit_per_s: float = Field(
        default=20.0, ge=0, description="Images per second per key (0: no limit)."
    )
    rate_limit_burst: PositiveInt = Field(
        default=40, description="Token bucket size: images a key may send at once."
    )

    # -- evidence and keys -----------------------------------------------------------------
    evidence_cache_items: int = Field(
        default=1000, ge=0, description="Recent verdicts kept for their evidence image."
    )
    evidence_cache_bytes: PositiveInt = Field(
        default=256 * MiB, description="Bound on the listing bytes those verdicts keep."
    )
    evidence_matches: int = Field(
        default=3, ge=1, le=10, description="Catalogue images in an evidence image."
    )
    keys_reload_s: float = Field(
        default=1.0, ge=0, description="How often the keys file is checked for changes."
    )

    @model_validator(mode="after")
    def _thresholds_together(self) -> Settings:
        if (self.copy_threshold is None) != (self.review_threshold is None):
            raise ValueError("give copy_threshold and review_threshold together")
        copy, review = self.copy_threshold, self.review_threshold
        if copy is not None and review is not None and review > copy:
            raise ValueError("review_threshold must not be above copy_threshold")
        return self

    @property
    def resolved_catalogue_dir(self) -> Path:
        return self.catalogue_dir or self.index_dir / "catalogue-images"

    @property
    def effective_max_batch(self) -> int:
        return self.max_batch if self.micro_batching else 1
