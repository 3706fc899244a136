"""The API's request and response bodies. Kept apart from the domain types (``Verdict``,
``CatalogRecord``): these are a public contract, the domain is free to change behind it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SHA = "9f2c5be1d0a4c3e8b7f6a5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918"


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `undecodable_image`.")
    message: str = Field(description="What went wrong and what to do, for people.")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer has this shape."""

    model_config = _examples(
        {"error": {"code": "unsupported_image_type", "message": "not a supported image: ..."}}
    )
    error: ErrorDetail


class Region(BaseModel):
    """A box in the listing image's pixels (upright, full size). For whole-photo copies it is
    the whole listing; for logos, the box around the logo's outline."""

    x: int
    y: int
    width: int
    height: int


class Size(BaseModel):
    width: int
    height: int


class MatchOut(BaseModel):
    item_id: str
    score: float = Field(
        description="Cosine similarity of the descriptors (-1..1), plus up to 1 when "
        "keypoints confirmed the match (re-ranking on)."
    )
    brand: str | None
    kind: str = Field(description="`product` or `logo`.")
    sku: str | None
    sha256: str = Field(description="SHA-256 of the catalogue image file.")
    region: Region | None = Field(
        default=None,
        description="Where in the listing the match is: the pasted part when keypoints "
        "located it, else the whole listing.",
    )
    inliers: int | None = Field(
        default=None, description="Keypoints that confirm the match; null: not confirmed."
    )
    agreement: float | None = Field(
        default=None,
        description="How well the aligned pictures agree, 0..1; null: not confirmed.",
    )
    transform: str | None = Field(
        default=None,
        description="`mirrored` or `inverted` when the keypoints matched only on the "
        "listing's mirror image or negative; null otherwise.",
    )
    image_url: str = Field(description="The catalogue image (moderator key needed).")


class LogoOut(BaseModel):
    """A catalogue logo seen in the listing photo."""

    item_id: str
    brand: str | None
    score: float = Field(
        description="Logo score: descriptor similarity (averaged over the logo's best "
        "windows) + keypoint and outline-alignment bonuses, lowered for a logo that looks "
        "like many things (a disc, a bar) and raised for a distinctive one; compare it with "
        "the logo thresholds, not the photo ones."
    )
    expected_precision: float | None = Field(
        description="Share of logo finds with this score that are right, from the logo "
        "model's calibration; null while uncalibrated."
    )
    inliers: int = Field(description="Keypoints that agree with one perspective view (0: none).")
    agreement: float = Field(
        description="How well the logo's aligned outline agrees with the photo, 0..1."
    )
    region: Region | None = Field(description="Box around the logo in the listing, clipped to it.")
    outline: list[tuple[float, float]] = Field(
        description="The logo's corners in the listing (TL, TR, BR, BL): a perspective view."
    )
    outline_from: str | None = Field(
        default=None,
        description="What traced the outline: `keypoints` (a homography of matched points), "
        "`outline` (the logo's edges aligned to the photo) or `window` (only the square "
        "area the logo was found in: approximate).",
    )


class ModelInfo(BaseModel):
    name: str
    weights_sha256: str
    dim: int
    trained: bool = Field(description="False: seeded random weights, scores uncalibrated.")
    precision: str


class IndexInfo(BaseModel):
    snapshot: str = Field(description="Index snapshot on disk; changes with each catalogue edit.")
    items: int
    factory: str


class Timing(BaseModel):
    decode_ms: float
    queue_ms: float = Field(description="Waiting for a batch to form and for its turn.")
    inference_ms: float = Field(description="The whole batch's forward pass and search.")
    total_ms: float
    batch_size: int = Field(description="Images in the forward pass this one shared.")


VERDICT_EXAMPLE: dict[str, Any] = {
    "verdict_id": "3b1f8f0a9c7e4d2b8a6f5e4d3c2b1a09",
    "label": "copy",
    "score": 0.9731,
    "expected_precision": None,
    "listing_id": "L-1001",
    "seller_id": "S-77",
    "basis": "photo",
    "listing_size": {"width": 800, "height": 800},
    "matches": [
        {
            "item_id": "item00042",
            "score": 0.9731,
            "brand": "acme",
            "kind": "product",
            "sku": "SKU-42",
            "sha256": SHA,
            "region": {"x": 0, "y": 0, "width": 800, "height": 800},
            "image_url": "/v1/catalogue/items/item00042/image",
        }
    ],
    "model": {
        "name": "default",
        "weights_sha256": SHA,
        "dim": 256,
        "trained": False,
        "precision": "bf16",
    },
    "index": {"snapshot": "snapshot-000004", "items": 1200, "factory": "Flat"},
    "timing": {
        "decode_ms": 2.1,
        "queue_ms": 6.3,
        "inference_ms": 71.0,
        "total_ms": 80.4,
        "batch_size": 8,
    },
    "evidence_url": "/v1/verdicts/3b1f8f0a9c7e4d2b8a6f5e4d3c2b1a09/evidence.png",
}


class CheckResponse(BaseModel):
    """The verdict on one listing photo."""

    model_config = _examples(VERDICT_EXAMPLE)

    verdict_id: str = Field(description="Names this verdict's evidence image for a while.")
    label: Literal["copy", "logo", "review", "clear"] = Field(
        description="copy (reuses a catalogue photo) > logo (shows a catalogue logo) > review "
        "> clear, each from its score against its thresholds; a logo found only by the "
        "window it was seen in (no keypoints, no aligned outline) is worth a review at most. "
        "Logo search runs when the index has logos."
    )
    basis: Literal["photo", "logo"] = Field(
        description="Which search decided the label: `matches` (photo) or `logos` (logo)."
    )
    score: float = Field(description="The best match's similarity (0 with an empty catalogue).")
    expected_precision: float | None = Field(
        description="Share of listings with this score that are copies, from the model's "
        "calibration; null while the model is uncalibrated."
    )
    listing_id: str | None
    seller_id: str | None
    listing_size: Size
    matches: list[MatchOut] = Field(description="Best first; at most top_k.")
    logos: list[LogoOut] = Field(
        default_factory=list, description="Logos found in the photo, best first."
    )
    model: ModelInfo
    index: IndexInfo
    timing: Timing
    evidence_url: str


class BatchItem(BaseModel):
    position: int = Field(description="0-based position of the image in the request.")
    filename: str | None
    status: int = Field(description="200, or the status this image alone would have got.")
    result: CheckResponse | None = None
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    model_config = _examples(
        {
            "count": 2,
            "errors": 1,
            "results": [
                {"position": 0, "filename": "a.jpg", "status": 200, "result": VERDICT_EXAMPLE},
                {
                    "position": 1,
                    "filename": "b.txt",
                    "status": 415,
                    "error": {"code": "unsupported_image_type", "message": "not a supported..."},
                },
            ],
        }
    )
    count: int
    errors: int
    results: list[BatchItem]


ITEM_EXAMPLE: dict[str, Any] = {
    "item_id": "item00042",
    "sha256": SHA,
    "brand": "acme",
    "kind": "product",
    "sku": "SKU-42",
    "added_at": "2026-11-29T12:00:00+00:00",
    "image_url": "/v1/catalogue/items/item00042/image",
}


class CatalogItemOut(BaseModel):
    model_config = _examples(ITEM_EXAMPLE)

    item_id: str
    sha256: str
    brand: str | None
    kind: str
    sku: str | None
    added_at: str = Field(description="ISO-8601 UTC.")
    image_url: str


class CatalogPage(BaseModel):
    model_config = _examples(
        {"items": [ITEM_EXAMPLE], "limit": 50, "offset": 0, "next_offset": None}
    )

    items: list[CatalogItemOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Pass as offset for the next page; null: last.")


class DeletedItem(BaseModel):
    model_config = _examples({"removed": ITEM_EXAMPLE, "snapshot": "snapshot-000005"})

    removed: CatalogItemOut
    snapshot: str


class IndexStats(BaseModel):
    model_config = _examples(
        {
            "items": 1200,
            "by_kind": {"product": 1150, "logo": 50},
            "brands": 3,
            "model": {"name": "default", "weights_sha256": SHA, "dim": 256},
            "factory": "Flat",
            "faiss_vectors": 1200,
            "tombstones": 0,
            "snapshot": "snapshot-000004",
        }
    )

    items: int
    by_kind: dict[str, int]
    brands: int
    model: dict[str, Any]
    factory: str
    faiss_vectors: int
    tombstones: int
    snapshot: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = _examples(
        {"status": "ready", "model": "default", "index_items": 1200, "snapshot": "snapshot-000004"}
    )

    status: Literal["ready"] = "ready"
    model: str
    index_items: int
    snapshot: str
