"""Helpers for the service tests (a module of its own: ``conftest`` names clash across
folders, so tests import from here)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # the client starlette's TestClient uses: httpx2 where installed, else httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.data.synthetic import synthetic_image
from lookalike.model import Embedder
from lookalike.service import Settings

# item_id -> (seed, brand); folder scans give brand = first subfolder, kind "product".
CATALOGUE = {
    "item000": (0, "acme"),
    "item001": (1, "acme"),
    "item002": (2, "acme"),
    "item003": (3, "zeta"),
    "item004": (4, "zeta"),
}
# Fixed thresholds keep the label tests independent of the shipped model's calibration
# (made on real photos). The default model scores re-encoded copies of these pictures
# >= 0.74 and unrelated ones <= 0.47.
STRICT_THRESHOLDS = {"copy_threshold": 0.65, "review_threshold": 0.55}


def encode(image: Image.Image, fmt: str = "JPEG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def listing_jpeg(seed: int, size: tuple[int, int] = (256, 256)) -> bytes:
    """A listing photo: ``synthetic_image(seed)`` re-encoded as JPEG."""
    return encode(synthetic_image(seed, size), quality=90)


@dataclass
class ServiceEnv:
    index_dir: Path
    keys_file: Path
    catalogue_dir: Path
    source_dir: Path
    admin_key: str
    moderator_key: str
    embedder: Embedder

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "index_dir": self.index_dir,
            "keys_file": self.keys_file,
            "catalogue_dir": self.catalogue_dir,
            "keys_reload_s": 0.0,
            "rate_limit_per_s": 0.0,
            "max_wait_ms": 2.0,
        }
        values.update(overrides)
        return Settings(**values)

    @property
    def admin(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}

    @property
    def moderator(self) -> dict[str, str]:
        return {"X-API-Key": self.moderator_key}


AppClient = Callable[..., TestClient]
Response = httpx.Response


def post_image(
    client: TestClient, data: bytes, headers: dict[str, str], **form: str
) -> httpx.Response:
    """POST /v1/check as a multipart upload (file field ``image``)."""
    files = {"image": ("listing.jpg", data, "image/jpeg")}
    return client.post("/v1/check", files=files, data=form, headers=headers)


def post_raw(
    client: TestClient, data: bytes, headers: dict[str, str], content_type: str = "image/jpeg"
) -> httpx.Response:
    """POST /v1/check with the image as the raw body."""
    return client.post("/v1/check", content=data, headers={**headers, "Content-Type": content_type})
