"""Re-ranking a descriptor shortlist with local-feature verification (ORB + RANSAC).

The global descriptor and local features fail on different edits: the descriptor misses
strong crops, rotations and screenshots that keep many keypoints; ORB misses mirrors and
heavy colour changes that the descriptor shrugs off. Verifying the descriptor's top
candidates — only where the descriptor is unsure, to keep throughput — combines both:

    fused = descriptor score + weight * n / (n + half_saturation)

with ``n`` the RANSAC inliers (also tried with the query mirrored). Reference keypoints are
computed from the catalogue files on first use and kept in a bounded cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from PIL import Image, ImageOps

from .data.decode import ImageDecodeError, decode_image
from .data.preprocess import shrink
from .index import CatalogRecord, SearchHit
from .verify import LocalFeatures, Verification, match_and_verify, orb_features


@dataclass(frozen=True)
class RerankConfig:
    """``band``: verify only queries whose best descriptor score lies in [low, high)
    (None: verify every query). ``max_side``: images are shrunk to this longest side
    before keypoint detection (cost grows with pixels; 1000 features need ~300 px)."""

    shortlist: int = 10
    band: tuple[float, float] | None = None
    n_features: int = 1000
    weight: float = 1.0
    half_saturation: float = 12.0
    min_inliers: int = 8
    mirror_retry: bool = True
    max_side: int = 384
    cache_size: int = 20_000

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["band"] = list(self.band) if self.band else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankConfig:
        values = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        if values.get("band") is not None:
            values["band"] = (float(values["band"][0]), float(values["band"][1]))
        return cls(**values)


@dataclass(frozen=True)
class VerifiedHit:
    hit: SearchHit
    score: float  # fused score
    inliers: int
    mirrored: bool
    verification: Verification | None


ReferenceLoader = Callable[[CatalogRecord], Image.Image]


def load_reference_image(record: CatalogRecord) -> Image.Image:
    if not record.source:
        raise ImageDecodeError(record.item_id, "catalogue record has no source file")
    return decode_image(record.source)


class LocalVerifier:
    """Re-ranks search hits of one query with ORB + RANSAC. Thread-safe cache."""

    def __init__(
        self,
        config: RerankConfig | None = None,
        reference_loader: ReferenceLoader = load_reference_image,
    ) -> None:
        self.config = config or RerankConfig()
        self._load_reference = reference_loader
        self._cache: OrderedDict[str, LocalFeatures] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles with its settings only: each process builds its own feature cache."""
        return {"config": self.config, "reference_loader": self._load_reference}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["reference_loader"])  # type: ignore[misc]

    def wants(self, best_score: float) -> bool:
        band = self.config.band
        return band is None or band[0] <= best_score < band[1]

    def features(self, image: Image.Image) -> LocalFeatures:
        return orb_features(shrink(image, self.config.max_side), self.config.n_features)

    def reference_features(self, record: CatalogRecord) -> LocalFeatures:
        key = record.sha256
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            features = self.features(self._load_reference(record))
        except (ImageDecodeError, OSError):
            # A catalogue file moved or broke: no local evidence, the descriptor score stands.
            features = LocalFeatures.empty((0, 0))
        with self._lock:
            self._cache[key] = features
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return features

    def rerank(self, query: Image.Image, hits: Sequence[SearchHit]) -> list[VerifiedHit]:
        """Fused scores for the first ``shortlist`` hits (the rest keep their descriptor
        score), best first."""
        config = self.config
        shortlist = list(hits[: config.shortlist])
        small = shrink(query, config.max_side)
        views = [(False, self.features(small))]
        if config.mirror_retry:
            views.append((True, self.features(ImageOps.mirror(small))))
        results = [self._verify(hit, views) for hit in shortlist]
        results += [VerifiedHit(hit, hit.score, 0, False, None) for hit in hits[config.shortlist :]]
        return sorted(results, key=lambda verified: verified.score, reverse=True)

    def _verify(self, hit: SearchHit, views: list[tuple[bool, LocalFeatures]]) -> VerifiedHit:
        reference = self.reference_features(hit.record)
        best: tuple[int, bool, Verification | None] = (0, False, None)
        for mirrored, features in views:
            verification = match_and_verify(features, reference)
            if verification.inliers > best[0]:
                best = (verification.inliers, mirrored, verification)
            if best[0] >= 3 * self.config.half_saturation:
                break  # already conclusive: skip the mirrored try
        inliers = best[0] if best[0] >= self.config.min_inliers else 0
        bonus = self.config.weight * inliers / (inliers + self.config.half_saturation)
        return VerifiedHit(hit, hit.score + bonus, inliers, best[1], best[2] if inliers else None)


def rescored(hits: Sequence[VerifiedHit]) -> list[SearchHit]:
    """Search hits carrying their fused scores, in fused order."""
    return [replace(verified.hit, score=verified.score) for verified in hits]
