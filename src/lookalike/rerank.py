"""Re-ranking a descriptor shortlist with local-feature verification (ORB + RANSAC).

The global descriptor and local features fail on different edits: the descriptor misses
strong crops, rotations and screenshots that keep many keypoints; ORB misses mirrors and
heavy colour changes that the descriptor shrugs off. Verifying the descriptor's top
candidates — only where the descriptor is unsure, to keep throughput — combines both:

    fused = descriptor score + weight * n / (n + half_saturation) * agreement

with ``n`` the RANSAC inliers (also tried with the query mirrored, and inverted: ORB's
binary tests flip on a negative) and ``agreement`` how well the aligned pictures agree
(:func:`~lookalike.verify.gradient_agreement`, 0..1): inliers also confirm variants of a
catalogue photo (the same watch with another strap), whose shared parts match point for
point; the pictures as a whole do not. Reference keypoints and grey levels are computed
from the catalogue files on first use and kept in a bounded cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Container, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from .data.decode import ImageDecodeError, decode_image
from .data.sizing import fit, shrink
from .index import CatalogIndex, CatalogRecord, SearchHit
from .keypoint_index import KeypointIndex
from .logos.geometry import Point, box_corners, covers, plausible_view, project
from .siblings import SIBLING_NEIGHBOURS
from .verify import (
    LocalFeatures,
    Verification,
    gradient_agreement,
    laplacian_variance,
    match_and_verify,
    orb_features,
    sift_features,
)


@dataclass(frozen=True)
class RerankConfig:
    """``band``: verify only queries whose best descriptor score lies in [low, high)
    (None: verify every query). ``max_side``: images are shrunk to this longest side
    before keypoint detection (cost grows with pixels; 1000 features need ~300 px).
    ``upscale``: smaller images are enlarged to ``max_side`` too (ORB leaves out a 31-px
    border and needs corners at its own scale: a 150-px listing or a 224-px catalogue photo
    gives few keypoints). ``agreement_side``: the aligned pictures are compared at this
    longest side (kept per reference in the cache; 256 measured as good as 384); None: no
    comparison, the bonus counts inliers alone. Settings stored before ``upscale`` and
    ``agreement_side`` existed load with them off, as they were calibrated.
    ``invert_retry``: a candidate neither the listing nor its mirror image confirms is
    tried against the listing's negative (off in settings stored before it existed).
    ``vote``: this many catalogue photos that share the most keypoints with the listing
    (:mod:`lookalike.keypoint_index`) join the shortlist (0, as in settings stored before it
    existed: none); needs :meth:`LocalVerifier.sync_keypoints`. ``blur_retry``: when no
    candidate is confirmed and the listing is this blurred or more (variance of its
    Laplacian at ``agreement_side`` below this), the ``blur_candidates`` best are matched
    again by SIFT at ``blur_side`` px, which finds corners where ORB's FAST finds none
    (None, as in settings stored before it existed: never). ``sibling_penalty``: fused
    scores are lowered by this times the catalogue photo's similarity to its
    ``sibling_neighbours`` closest other catalogue photos above the catalogue's mean
    (:mod:`lookalike.siblings`; 0, as in settings stored before it existed: not at all)."""

    shortlist: int = 30
    band: tuple[float, float] | None = None
    n_features: int = 1000
    weight: float = 1.0
    half_saturation: float = 12.0
    min_inliers: int = 8
    mirror_retry: bool = True
    invert_retry: bool = True
    max_side: int = 384
    upscale: bool = True
    agreement_side: int | None = 256
    cache_size: int = 20_000
    vote: int = 3
    blur_retry: float | None = 20.0
    blur_candidates: int = 5
    blur_side: int = 224
    sibling_penalty: float = 1.0
    sibling_neighbours: int = SIBLING_NEIGHBOURS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["band"] = list(self.band) if self.band else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankConfig:
        values = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        values.setdefault("upscale", False)
        values.setdefault("agreement_side", None)
        values.setdefault("invert_retry", False)
        values.setdefault("vote", 0)
        values.setdefault("blur_retry", None)
        values.setdefault("sibling_penalty", 0.0)
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
    agreement: float | None = None  # None: not compared (no inliers, or comparison off)
    evidence: CopyEvidence | None = None  # where the confirmed copy lies, for moderators
    inverted: bool = False  # confirmed on the listing's negative

    @property
    def record(self) -> CatalogRecord:
        return self.hit.record


@dataclass(frozen=True)
class CopyEvidence:
    """Where a verified catalogue photo lies in the listing. ``region``: the catalogue
    photo's corners (its TL, TR, BR, BL) in pixels of the listing photo as given to
    :meth:`LocalVerifier.rerank`; None when it fills the whole listing (a crop, a plain
    copy) or the homography is not a plausible view; ``point_pairs``: the inlier keypoints
    as (listing xy, catalogue photo xy), the latter in the catalogue file's pixels."""

    region: tuple[Point, ...] | None
    point_pairs: tuple[tuple[Point, Point], ...]


Grey = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ReferenceView:
    """What verification keeps of a catalogue photo: its keypoints (at ``max_side``) and,
    when the agreement is on, its grey levels (at ``agreement_side``)."""

    features: LocalFeatures
    grey: Grey | None
    source_size: tuple[int, int] = (0, 0)  # the catalogue file's (width, height)


@dataclass(frozen=True)
class QueryView:
    """The same for the listing photo: straight, mirrored or (``inverted``) its negative.
    The negative's grey levels are the listing's own: gradient magnitudes do not change
    when a picture is inverted."""

    mirrored: bool
    features: LocalFeatures
    grey: Grey | None
    inverted: bool = False


ReferenceLoader = Callable[[CatalogRecord], Image.Image]
# Descriptor-scored search hits for catalogue item ids (missing items left out): how the
# caller scores the candidates keypoint voting adds to a shortlist.
HitsFor = Callable[[Sequence[str]], list[SearchHit]]
# The kept keypoint index is rewritten once it lacks more than this share of the catalogue's
# changes: a service adding photos one at a time does not rewrite it for each, and a restart
# describes at most this share again.
KEEP_STALE = 0.05


def _load_keypoints(path: Path) -> KeypointIndex | None:
    """The keypoint index kept at ``path``; None when there is none, or a damaged or older
    one (its photos are described again and it is replaced)."""
    if not path.is_file():
        return None
    try:
        return KeypointIndex.load(path)
    except Exception:
        return None


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
        self._cache: OrderedDict[str, ReferenceView] = OrderedDict()
        self._lock = threading.Lock()
        self._sift_cache: OrderedDict[str, ReferenceView] = OrderedDict()
        self._keypoints = KeypointIndex()
        self._keypoints_revision: tuple[int, int] | None = None
        self._keypoints_from: Path | None = None  # the kept file read, once per file
        self._unkept = 0  # photos added or discarded since the kept file was read or written
        self._sync_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles with its settings only: each process builds its own feature cache."""
        return {"config": self.config, "reference_loader": self._load_reference}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["reference_loader"])  # type: ignore[misc]

    def wants(self, best_score: float) -> bool:
        band = self.config.band
        return band is None or band[0] <= best_score < band[1]

    def keypoint_image(self, image: Image.Image) -> Image.Image:
        """``image`` at the size keypoints are found at."""
        if self.config.upscale:
            return fit(image, self.config.max_side)
        return shrink(image, self.config.max_side)

    def features(self, image: Image.Image) -> LocalFeatures:
        return orb_features(self.keypoint_image(image), self.config.n_features)

    def grey(self, image: Image.Image) -> Grey | None:
        """Grey levels at ``agreement_side``; None when the agreement is off."""
        side = self.config.agreement_side
        if side is None:
            return None
        return np.asarray(shrink(image, side).convert("L"), dtype=np.uint8)

    def reference_view(self, record: CatalogRecord) -> ReferenceView:
        """A catalogue photo's ORB keypoints at ``max_side`` and grey levels (cached)."""
        return self._cached(self._cache, record, self._orb_view)

    def _orb_view(self, source: Image.Image) -> ReferenceView:
        image = self.keypoint_image(source)
        return ReferenceView(self.features(image), self.grey(image), source.size)

    def _sift_view(self, source: Image.Image) -> ReferenceView:
        small = shrink(source, self.config.blur_side)
        return ReferenceView(sift_features(small), self.grey(small), source.size)

    def _cached(
        self,
        cache: OrderedDict[str, ReferenceView],
        record: CatalogRecord,
        describe: Callable[[Image.Image], ReferenceView],
    ) -> ReferenceView:
        """``describe`` of the catalogue photo, kept in ``cache`` (bounded, least recently
        used out first)."""
        key = record.sha256
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        try:
            view = describe(self._load_reference(record))
        except (ImageDecodeError, OSError):
            # A catalogue file moved or broke: no local evidence, the descriptor score stands.
            view = ReferenceView(LocalFeatures.empty((0, 0)), None)
        with self._lock:
            cache[key] = view
            while len(cache) > self.config.cache_size:
                cache.popitem(last=False)
        return view

    def sync_keypoints(self, index: CatalogIndex, *, keep: bool = False) -> None:
        """Bring the keypoint index (for ``vote``) up to date with ``index``: photos removed
        or replaced since are discarded, those added are described (and cached) now.

        The keypoint index is kept in ``index``'s folder (``keypoints-<ORB settings>.npz``,
        per photo its file's sha256), read on the first call and written where the folder
        is writable once it lacks more than ``KEEP_STALE`` of the catalogue, or the file
        is missing: a later process (another index of the same photos, or the same index
        after ``index add``) describes only what changed. ``keep``: write whatever changed
        (what ``lookalike index build`` and ``index add`` do)."""
        if self.config.vote < 1 or (self._keypoints_revision == index.revision and not keep):
            return
        with self._sync_lock:
            revision = index.revision
            if self._keypoints_revision == revision and not keep:
                return
            records = index.records()
            kept = self._keypoint_file(index)
            if kept is not None and kept != self._keypoints_from:
                self._keypoints_from = kept
                loaded = _load_keypoints(kept)
                if loaded is not None:
                    self._keypoints, self._unkept = loaded, 0
            files = {record.item_id: record.sha256 for record in records}
            for item_id, sha256 in self._keypoints.tags().items():
                if files.get(item_id) != sha256:
                    self._keypoints.discard(item_id)
                    self._unkept += 1
            if self._keypoints.discarded > len(self._keypoints):
                # mostly keypoints of photos gone: describing the rest afresh is smaller
                self._keypoints, self._unkept = KeypointIndex(), 1
            new = [record for record in records if record.item_id not in self._keypoints]
            # decoding, resizing and ORB release the GIL: describe photos side by side
            with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
                for record, view in zip(new, pool.map(self.reference_view, new), strict=True):
                    self._keypoints.add(record.item_id, view.features.descriptors, record.sha256)
            self._unkept += len(new)
            stale = self._unkept > KEEP_STALE * max(1, len(self._keypoints))
            if kept is not None and self._unkept and (keep or stale or not kept.is_file()):
                # a read-only index folder keeps none: the next process describes them again
                with contextlib.suppress(OSError):
                    self._keypoints.save(kept)
                    self._unkept = 0
            self._keypoints_revision = revision

    def _keypoint_file(self, index: CatalogIndex) -> Path | None:
        """Where the keypoint index is kept in ``index``'s folder for these ORB settings
        (None: the index was never saved)."""
        folder = index.directory
        if folder is None:
            return None
        config = self.config
        settings = json.dumps([config.n_features, config.max_side, config.upscale])
        return folder / f"keypoints-{hashlib.sha256(settings.encode()).hexdigest()[:12]}.npz"

    def rerank(
        self,
        query: Image.Image,
        hits: Sequence[SearchHit],
        *,
        invert: Container[str] | None = None,
        hits_for: HitsFor | None = None,
    ) -> list[VerifiedHit]:
        """Fused scores for the first ``shortlist`` hits (the rest keep their descriptor
        score), best first. ``invert``: the item ids worth the inverted retry (those the
        listing's negative tile found: the retry costs a third matching per candidate);
        None: any candidate. ``hits_for``: with it, the ``vote`` best-voted catalogue photos
        (of those :meth:`sync_keypoints` indexed) that the shortlist lacks are verified too,
        scored by it."""
        config = self.config
        shortlist = list(hits[: config.shortlist])
        sized = self.keypoint_image(query)
        grey = self.grey(sized)
        views = [QueryView(False, self.features(sized), grey)]
        if config.mirror_retry:
            mirrored = ImageOps.mirror(sized)
            views.append(QueryView(True, self.features(mirrored), self.grey(mirrored)))
        rest = list(hits[config.shortlist :])
        voting = hits_for is not None and config.vote > 0
        retried = [
            config.invert_retry and (invert is None or hit.record.item_id in invert)
            for hit in shortlist
        ]
        negative = None
        if config.invert_retry and (voting or any(retried)):
            inverted = ImageOps.invert(sized.convert("L"))
            negative = QueryView(False, self.features(inverted), grey, inverted=True)
        if voting and hits_for is not None:
            voters = [view.features.descriptors for view in views]
            if negative is not None:  # a photo printed inverted keeps no keypoint otherwise
                voters.append(negative.features.descriptors)
            listed = {hit.record.item_id for hit in shortlist}
            voted = self._keypoints.vote(voters, config.vote, exclude=listed)
            added = hits_for([key for key, _ in voted])
            shortlist += added
            retried += [config.invert_retry] * len(added)
            listed.update(hit.record.item_id for hit in added)
            rest = [hit for hit in rest if hit.record.item_id not in listed]
        results = [
            self._verify(hit, views, negative if retry else None, query.size)
            for hit, retry in zip(shortlist, retried, strict=True)
        ]
        # the sharpness is measured only where ORB confirmed nothing
        if not any(result.inliers for result in results) and self._blurred(sized, grey):
            results = self._blur_retry(query, results)
        results += [VerifiedHit(hit, hit.score, 0, False, None) for hit in rest]
        return sorted(results, key=lambda verified: verified.score, reverse=True)

    def _blurred(self, sized: Image.Image, grey: Grey | None) -> bool:
        """Is the listing blurred past ``blur_retry``? (Sharpness is measured on the grey
        levels the agreement uses, or on the same size of copy when it is off.)"""
        threshold = self.config.blur_retry
        if threshold is None:
            return False
        if grey is None:
            grey = np.asarray(shrink(sized, 256).convert("L"), dtype=np.uint8)
        return laplacian_variance(grey) < threshold

    def _blur_retry(self, query: Image.Image, results: list[VerifiedHit]) -> list[VerifiedHit]:
        """``results`` with the best ``blur_candidates`` (by descriptor score) matched again
        by SIFT, straight and mirrored: nothing was confirmed by ORB."""
        config = self.config
        small = shrink(query, config.blur_side)
        mirrored = ImageOps.mirror(small)
        views = [
            QueryView(False, sift_features(small), self.grey(small)),
            QueryView(True, sift_features(mirrored), self.grey(mirrored)),
        ]
        ranked = sorted(results, key=lambda result: result.hit.score, reverse=True)
        retried = [
            self._verify(
                result.hit,
                views,
                None,
                query.size,
                self._cached(self._sift_cache, result.hit.record, self._sift_view),
            )
            for result in ranked[: config.blur_candidates]
        ]
        return retried + ranked[config.blur_candidates :]

    def _verify(
        self,
        hit: SearchHit,
        views: list[QueryView],
        negative: QueryView | None,
        query_size: tuple[int, int],
        reference: ReferenceView | None = None,
    ) -> VerifiedHit:
        """``reference``: the catalogue photo's view to match ``views`` with (default: its
        ORB keypoints)."""
        if reference is None:
            reference = self.reference_view(hit.record)
        # Fewer than min_inliers count as none, so RANSAC is skipped where they are all
        # that the ratio test leaves (most wrong candidates): the answer is the same.
        fewest = self.config.min_inliers
        best: tuple[int, QueryView | None, Verification | None] = (0, None, None)
        for view in views:
            verification = match_and_verify(view.features, reference.features, min_matches=fewest)
            if verification.inliers > best[0]:
                best = (verification.inliers, view, verification)
            if best[0] >= 3 * self.config.half_saturation:
                break  # already conclusive: skip the mirrored try
        if negative is not None and best[0] < self.config.min_inliers:
            verification = match_and_verify(
                negative.features, reference.features, min_matches=fewest
            )
            if verification.inliers > best[0]:
                best = (verification.inliers, negative, verification)
        inliers, chosen, found = best
        if inliers < self.config.min_inliers or chosen is None or found is None:
            return VerifiedHit(hit, hit.score, 0, False, None)
        agreement = _agreement(chosen, reference, found)
        bonus = self.config.weight * inliers / (inliers + self.config.half_saturation)
        if agreement is not None:
            bonus *= agreement
        evidence = _copy_evidence(chosen, reference, found, query_size)
        return VerifiedHit(
            hit,
            hit.score + bonus,
            inliers,
            chosen.mirrored,
            found,
            agreement,
            evidence,
            chosen.inverted,
        )


def _copy_evidence(
    query: QueryView,
    reference: ReferenceView,
    verification: Verification,
    query_size: tuple[int, int],
) -> CopyEvidence:
    """The verification's homography and inliers, in the pixels a moderator sees: the
    listing as given (keypoints were found on a resized, maybe mirrored copy) and the
    catalogue file (keypoints were found on a resized copy)."""
    keypoint_width = query.features.image_size[0]
    to_listing = _ratio(query_size, query.features.image_size)
    to_catalogue = _ratio(reference.source_size, reference.features.image_size)

    def listing_points(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if query.mirrored:  # back from the mirrored copy the keypoints were found on
            points = np.column_stack([keypoint_width - points[:, 0], points[:, 1]])
        return points * to_listing

    region = None
    if verification.homography is not None:
        corners = box_corners(0, 0, *reference.features.image_size)
        try:
            inverse = np.asarray(np.linalg.inv(verification.homography), dtype=np.float64)
        except np.linalg.LinAlgError:  # a degenerate fit: keypoints, but no view to outline
            inverse = np.full((3, 3), np.nan)
        projected = project(inverse, corners)
        if plausible_view(projected):
            mapped = listing_points(projected)
            if not covers(mapped, _inset_corners(query_size)):
                region = tuple((round(float(x), 1), round(float(y), 1)) for x, y in mapped)
    query_points = listing_points(verification.query_points.astype(np.float64))
    reference_points = verification.reference_points.astype(np.float64) * to_catalogue
    pairs = tuple(
        ((float(qx), float(qy)), (float(rx), float(ry)))
        for (qx, qy), (rx, ry) in zip(query_points, reference_points, strict=True)
    )
    return CopyEvidence(region, pairs)


def _inset_corners(size: tuple[int, int], inset: float = 0.03) -> npt.NDArray[np.float64]:
    """The corners of a ``size`` picture moved inwards by ``inset`` of each side: a copy of
    the whole picture projects to its corners give or take a few pixels."""
    width, height = size
    return box_corners(inset * width, inset * height, (1 - inset) * width, (1 - inset) * height)


def _ratio(to_size: tuple[int, int], from_size: tuple[int, int]) -> npt.NDArray[np.float64]:
    """Per axis (x, y), pixels of a picture of ``to_size`` per pixel of ``from_size``."""
    return np.array(
        [to_size[0] / max(1, from_size[0]), to_size[1] / max(1, from_size[1])], np.float64
    )


def _agreement(
    query: QueryView, reference: ReferenceView, verification: Verification
) -> float | None:
    """The agreement of the aligned pictures, or None when it is off (or not computable).
    The homography maps keypoint pixels; the grey arrays are smaller, so it is rescaled."""
    if query.grey is None or reference.grey is None or verification.homography is None:
        return None
    to_query_grey = _grey_scaling(query.grey, query.features.image_size)
    to_reference_grey = _grey_scaling(reference.grey, reference.features.image_size)
    homography = to_reference_grey @ verification.homography @ np.linalg.inv(to_query_grey)
    return gradient_agreement(query.grey, reference.grey, homography)


def _grey_scaling(grey: Grey, image_size: tuple[int, int]) -> npt.NDArray[np.float64]:
    """The 3x3 scaling from pixels of an image of ``image_size`` to pixels of ``grey``."""
    height, width = grey.shape
    return np.diag([*_ratio((width, height), image_size), 1.0])
