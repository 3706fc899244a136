"""Detector: the one place where embedder, index and thresholds meet to give verdicts."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from PIL import Image

from .data.decode import ImageSource
from .data.preprocess import PreparedImage, Preprocessor
from .data.tiles import TileConfig
from .embeddings import EmbedderMismatchError, Embeddings
from .index import CatalogIndex, CatalogRecord, SearchHit
from .logos.catalog import LogoCatalog, has_logo_index, logo_index_dir
from .logos.matcher import LogoMatch, LogoMatchConfig, LogoMatcher
from .model import Embedder, EmbedderRecipe, create_embedder, create_embedder_from_recipe
from .model.embedder import Precision
from .rerank import HitsFor, LocalVerifier, RerankConfig, VerifiedHit
from .siblings import SIBLING_NEIGHBOURS, SiblingSimilarity
from .training.calibration import Calibration

Label = Literal["copy", "logo", "review", "clear"]
LABELS: tuple[Label, ...] = ("copy", "logo", "review", "clear")
Point = tuple[float, float]
Scored = TypeVar("Scored", SearchHit, VerifiedHit)  # a search hit, or a re-ranked one


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs: ``score >= copy`` -> copy; ``score >= review`` -> review; else clear.

    Defaults are conservative guesses for an uncalibrated model; a calibrated checkpoint
    carries its own in its metadata (key ``thresholds``), which the Detector uses instead.
    """

    copy: float = 0.90
    review: float = 0.80

    def __post_init__(self) -> None:
        if not self.review <= self.copy:
            raise ValueError(f"review threshold {self.review} is above copy {self.copy}")

    def label(self, score: float) -> Label:
        if score >= self.copy:
            return "copy"
        return "review" if score >= self.review else "clear"

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], key: str = "thresholds") -> Thresholds | None:
        values = metadata.get(key)
        if not isinstance(values, dict):
            return None
        return cls(copy=float(values["copy"]), review=float(values["review"]))


@dataclass(frozen=True)
class Match:
    """A catalogue image the listing photo resembles, or (``kind`` "logo") a catalogue logo
    it shows: then ``region`` outlines the logo in listing pixels (TL, TR, BR, BL), traced by
    ``region_source`` ("keypoints", "outline" alignment, or "window": only the area the
    logo was found in), ``inliers`` counts the keypoints that confirm it (0: none did),
    ``agreement`` says how well the logo's aligned outline agrees with the photo (0..1) and
    ``expected_precision`` comes from the logo calibration. A whole-photo match that local
    verification confirmed carries the same evidence: the catalogue photo's corners in
    listing pixels (None when it fills the whole listing), its keypoint inliers, how well
    the aligned pictures agree and ``transform`` ("mirrored", "inverted": the listing had
    to be mirrored or inverted for its keypoints to match); unconfirmed ones carry None."""

    item_id: str
    score: float
    brand: str | None
    kind: str
    sku: str | None
    source: str | None
    sha256: str
    region: tuple[Point, ...] | None = None
    inliers: int | None = None
    expected_precision: float | None = None
    agreement: float | None = None
    # how the listing had to be changed for its keypoints to match: "mirrored", "inverted"
    # (its negative) or None (as it is)
    transform: str | None = None
    region_source: str | None = None
    # (listing xy, reference xy) keypoint pairs behind ``inliers``, for evidence pictures;
    # left out of to_dict (too bulky for every result row).
    point_pairs: tuple[tuple[Point, Point], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_record(cls, record: CatalogRecord, score: float, **details: Any) -> Match:
        """A match on ``record`` at ``score``; ``details``: region, inliers, ... (logos)."""
        return cls(
            record.item_id,
            round(score, 6),
            record.brand,
            record.kind,
            record.sku,
            record.source,
            record.sha256,
            **details,
        )

    @classmethod
    def from_hit(cls, hit: SearchHit) -> Match:
        return cls.from_record(hit.record, hit.score)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["point_pairs"]
        if self.region is not None:
            data["region"] = [list(point) for point in self.region]
        return data


@dataclass(frozen=True)
class Verdict:
    """``label``: copy (reuses a catalogue photo) > logo (shows a catalogue logo) > review >
    clear. ``score`` and ``expected_precision`` are those of the match that decided the label
    (``best``); ``matches``: whole-photo matches, best first; ``logos``: logos found in the
    photo, best first, but for a logo label resting on a lower-scored confirmed logo, which
    comes first (empty when logo search is off)."""

    label: Label
    score: float
    matches: tuple[Match, ...]
    expected_precision: float | None = None
    logos: tuple[Match, ...] = ()
    basis: Literal["photo", "logo"] = "photo"  # which of the two decided the label

    @property
    def best(self) -> Match | None:
        if self.basis == "logo" and self.logos:
            return self.logos[0]
        return self.matches[0] if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "expected_precision": self.expected_precision,
            "basis": self.basis,
            "matches": [m.to_dict() for m in self.matches],
            "logos": [m.to_dict() for m in self.logos],
        }


class Detector:
    """Checks listing photos against an indexed catalogue.

    With a ``verifier`` the descriptor's shortlist is re-ranked by local-feature verification
    (see :mod:`lookalike.rerank`); scores are then fused scores, which a calibration made
    with the same verifier settings maps to expected precision. With ``tiles`` the parts of
    each photo are searched too (collages, pastes; see :mod:`lookalike.data.tiles`): photos
    prepared by :attr:`preprocessor` carry them.
    """

    def __init__(
        self,
        embedder: Embedder,
        index: CatalogIndex,
        thresholds: Thresholds | None = None,
        *,
        calibration: Calibration | None = None,
        verifier: LocalVerifier | None = None,
        top_k: int = 5,
        logo_matcher: LogoMatcher | None = None,
        tiles: TileConfig | None = None,
        sibling_penalty: float | None = None,
    ) -> None:
        """``sibling_penalty``: scores lowered by this times each catalogue photo's sibling
        similarity above the catalogue's mean (:mod:`.siblings`); None: the model's setting
        for the mode (``RerankConfig.sibling_penalty`` when re-ranking, else the
        ``sibling_penalty`` its calibration recorded; 0 for a model calibrated before)."""
        if embedder.fingerprint != index.model:
            raise EmbedderMismatchError(index.model, embedder.fingerprint)
        self.embedder = embedder
        self.index = index
        # A calibrated model carries one calibration per mode: scores with local verification
        # are fused scores, on another scale than descriptor-only ones.
        suffix = "_verified" if verifier is not None else ""
        metadata = embedder.metadata
        self.thresholds = (
            thresholds or Thresholds.from_metadata(metadata, f"thresholds{suffix}") or Thresholds()
        )
        if calibration is None and isinstance(metadata.get(f"calibration{suffix}"), dict):
            calibration = Calibration.from_dict(metadata[f"calibration{suffix}"])
        self.calibration = calibration
        self.verifier = verifier
        if sibling_penalty is None:
            stored = metadata.get("sibling_penalty", 0.0)
            sibling_penalty = verifier.config.sibling_penalty if verifier else float(stored)
        self.sibling_penalty = sibling_penalty
        neighbours = verifier.config.sibling_neighbours if verifier else SIBLING_NEIGHBOURS
        self._siblings = SiblingSimilarity(index, neighbours) if sibling_penalty else None
        self.top_k = top_k
        self.tiles = tiles
        self.logo_matcher = logo_matcher
        logo_metadata = logo_matcher.catalog.model.metadata if logo_matcher else {}
        # Logo scores live on their own scale: their own thresholds ("copy" = report a logo)
        # and calibration, made by the logo model's calibration run.
        self.logo_thresholds = Thresholds.from_metadata(logo_metadata) or Thresholds(1.2, 0.8)
        logo_calibration = logo_metadata.get("calibration")
        self.logo_calibration = (
            Calibration.from_dict(logo_calibration) if isinstance(logo_calibration, dict) else None
        )
        # how often a logo found with no confirmed region was right, above the logo threshold
        window_only = (logo_metadata.get("window_only") or {}).get("precision")
        self.window_only_precision = None if window_only is None else float(window_only)

    @property
    def preprocessor(self) -> Preprocessor:
        """What turns a photo into this detector's input; picklable, for worker processes."""
        keep = self.verifier.config.max_side if self.verifier else None
        if self.logo_matcher is None:
            return Preprocessor(self.embedder.input_size, keep, tiles=self.tiles)
        grid = self.logo_matcher.config.grid
        logo_network = self.logo_matcher.catalog.model.config
        return Preprocessor(
            self.embedder.input_size,
            max(keep or 0, grid.max_side),
            logo_grid=grid,
            logo_input_size=logo_network.input_size,
            logo_channels=logo_network.channels,
            tiles=self.tiles,
        )

    def warm_up(self) -> None:
        """Do now the one-time work the first check would: describe the catalogue photos'
        keypoints for keypoint voting (about ten seconds per thousand photos on 2 cores, or
        a moment where an earlier run kept them in the index's folder). Later additions
        are described by the check after them."""
        if self.verifier is not None:
            self.verifier.sync_keypoints(self.index)

    def prepare(self, source: ImageSource) -> PreparedImage:
        """Decode (safely) and preprocess one photo; raises ImageDecodeError on bad input.
        Thread-safe: batch jobs call it from their decoding threads."""
        return self.preprocessor(source)

    def check(self, image: ImageSource) -> Verdict:
        """One image (path, bytes or PIL image); raises ImageDecodeError on bad input."""
        return self.check_many([image])[0]

    def check_many(self, images: Iterable[ImageSource]) -> list[Verdict]:
        """Several images in one batch; raises ImageDecodeError on the first bad one."""
        return self.check_prepared([self.prepare(image) for image in images])

    def check_prepared(
        self, prepared: Sequence[PreparedImage], *, top_k: int | None = None
    ) -> list[Verdict]:
        if not prepared:
            return []
        whole, tiles = self.embed_prepared(prepared)
        verdicts = self.check_vectors(whole, tiles, top_k=top_k, prepared=prepared)
        if self.logo_matcher is None:
            return verdicts
        return self.with_logos(verdicts, prepared)

    def with_logos(
        self, verdicts: Sequence[Verdict], prepared: Sequence[PreparedImage]
    ) -> list[Verdict]:
        """``verdicts`` completed with the logos found in their photos (needs the kept photo
        copies: prepare with :attr:`preprocessor`)."""
        matcher = self.logo_matcher
        if matcher is None:
            return list(verdicts)
        images = [item.image for item in prepared]
        if any(image is None for image in images):
            raise ValueError("logo search needs the photos: prepare them with .preprocessor")
        windows = [item.windows for item in prepared]
        found = matcher.match_many(
            [image for image in images if image is not None],
            None if any(w is None for w in windows) else [w for w in windows if w is not None],
        )
        verdicts_out = []
        for verdict, item, logo_matches in zip(verdicts, prepared, found, strict=True):
            # regions were found on the kept copy: give them in the decoded photo's pixels
            scale = _listing_scale(item)
            verdicts_out.append(self.verdict_from(verdict.matches, logo_matches, scale=scale))
        return verdicts_out

    def embed_prepared(
        self, prepared: Sequence[PreparedImage]
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Descriptors of the photos (N, D) and, when this detector searches tiles and the
        photos carry them, of each photo's tiles ((T, D) each), in one pass of the model."""
        pixels = [item.pixels[None] for item in prepared]
        use_tiles = self.tiles is not None and all(item.tiles is not None for item in prepared)
        counts = [len(item.tiles) for item in prepared if item.tiles is not None]
        if use_tiles:
            pixels += [item.tiles for item in prepared if item.tiles is not None]
        vectors = self.embedder.embed_pixels(torch.from_numpy(np.concatenate(pixels)))
        whole = vectors[: len(prepared)]
        if not use_tiles:
            return whole, None
        bounds = np.cumsum([len(prepared), *counts])
        return whole, [vectors[start:end] for start, end in itertools.pairwise(bounds)]

    def check_vectors(
        self,
        whole: np.ndarray,
        tiles: Sequence[np.ndarray] | None = None,
        *,
        top_k: int | None = None,
        prepared: Sequence[PreparedImage] | None = None,
    ) -> list[Verdict]:
        """Verdicts from :meth:`embed_prepared`'s descriptors of the ``prepared`` photos
        (their kept copies serve local verification): a catalogue photo scores its best over
        the whole photo and its tiles (a tile's score lowered by the penalty)."""
        originals = [item.image for item in prepared] if prepared is not None else None
        scales = [_listing_scale(item) for item in prepared] if prepared is not None else None
        k = self._search_depth(top_k)
        rows = self.index.search(Embeddings(whole, self.embedder.fingerprint), k)
        if tiles is None or self.tiles is None:
            return self._verdicts(rows, top_k, originals, scales, vectors=whole[:, None])
        flat = np.concatenate(list(tiles)) if len(tiles) else whole[:0]
        tile_rows = self.index.search(Embeddings(flat, self.embedder.fingerprint), k)
        merged, negatives, start = [], [], 0
        for hits, photo_tiles in zip(rows, tiles, strict=True):
            parts = tile_rows[start : start + len(photo_tiles)]
            start += len(photo_tiles)
            merged.append(_merge_tile_hits(hits, parts, self.tiles.penalty, k))
            # the negative is the last tile: its finds alone are worth an inverted retry
            found = parts[-1] if self.tiles.negative else []
            negatives.append(frozenset(hit.record.item_id for hit in found))
        vectors = [
            np.concatenate([one[None], photo_tiles])
            for one, photo_tiles in zip(whole, tiles, strict=True)
        ]
        return self._verdicts(merged, top_k, originals, scales, negatives, vectors)

    def check_pixels(
        self,
        pixels: torch.Tensor,
        *,
        top_k: int | None = None,
        originals: Sequence[Image.Image | None] | None = None,
    ) -> list[Verdict]:
        """Preprocessed uint8 (N, 3, S, S) batches; ``originals`` (the photos, for local
        verification) are optional."""
        vectors = self.embedder.embed_pixels(pixels)
        embeddings = Embeddings(vectors, self.embedder.fingerprint)
        return self.check_embeddings(embeddings, top_k=top_k, originals=originals)

    def check_embeddings(
        self,
        embeddings: Embeddings,
        *,
        top_k: int | None = None,
        originals: Sequence[Image.Image | None] | None = None,
    ) -> list[Verdict]:
        rows = self.index.search(embeddings, self._search_depth(top_k))
        return self._verdicts(rows, top_k, originals, vectors=embeddings.vectors[:, None])

    def _search_depth(self, top_k: int | None) -> int:
        shortlist = self.verifier.config.shortlist if self.verifier else 0
        wanted = top_k or self.top_k
        # the sibling penalty may lift a hit from below the first top_k
        return max(2 * wanted if self._siblings else wanted, shortlist)

    def _verdicts(
        self,
        rows: Sequence[Sequence[SearchHit]],
        top_k: int | None,
        originals: Sequence[Image.Image | None] | None,
        scales: Sequence[float] | None = None,
        negatives: Sequence[frozenset[str]] | None = None,
        vectors: Sequence[np.ndarray] | np.ndarray | None = None,
    ) -> list[Verdict]:
        """``scales``: listing pixels per pixel of each original (a kept, shrunk copy), for
        the evidence of verified matches; ``negatives``: per photo, the item ids its
        negative tile found (the only ones retried inverted; None: any); ``vectors``: per
        photo, its descriptor then its tiles' ((1 + T, D)), to score the candidates keypoint
        voting adds."""
        top_k = top_k or self.top_k
        verifier = self.verifier
        if verifier is not None and vectors is not None:
            verifier.sync_keypoints(self.index)

        def verdict_at(position: int) -> Verdict:
            hits = rows[position]
            original = originals[position] if originals is not None else None
            if verifier and original is not None and hits and verifier.wants(hits[0].score):
                scale = scales[position] if scales is not None else 1.0
                invert = negatives[position] if negatives is not None else None
                hits_for = self._hits_for(vectors[position]) if vectors is not None else None
                verified = verifier.rerank(original, hits, invert=invert, hits_for=hits_for)
                verified = self._with_sibling_penalty(verified)
                return self.verdict_from([_verified_match(v, scale) for v in verified[:top_k]])
            return self.verdict(self._with_sibling_penalty(list(hits))[:top_k])

        # ORB, FAISS and RANSAC release the GIL: the batch's photos are re-ranked side by
        # side on as many threads as torch may use (~20% more photos/s on 2 cores).
        workers = min(torch.get_num_threads(), len(rows))
        if verifier is None or originals is None or workers < 2:
            return [verdict_at(position) for position in range(len(rows))]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(verdict_at, range(len(rows))))

    def _with_sibling_penalty(self, found: list[Scored]) -> list[Scored]:
        """Scores (fused, or descriptor-only) lowered for catalogue photos with close
        siblings in the catalogue (raised for distinctive ones), best first again
        (:mod:`.siblings`)."""
        if self._siblings is None or not found:
            return found
        relative = self._siblings.relative(each.record.item_id for each in found)
        adjusted = [
            replace(
                each,
                score=each.score - self.sibling_penalty * relative.get(each.record.item_id, 0.0),
            )
            for each in found
        ]
        return sorted(adjusted, key=lambda each: each.score, reverse=True)

    def _hits_for(self, vectors: np.ndarray) -> HitsFor:
        """Scores catalogue items as the tile search would have: the best similarity to the
        photo (``vectors[0]``) or, lowered by the penalty, to one of its tiles. An index
        type that cannot give its vectors back (IVF) scores them 0."""
        penalty = self.tiles.penalty if self.tiles is not None else 0.0

        def hits_for(item_ids: Sequence[str]) -> list[SearchHit]:
            stored = self.index.vectors(item_ids)
            hits = []
            for item_id in item_ids:
                record = self.index.get(item_id)
                if record is None:  # removed since the keypoints were indexed
                    continue
                score = 0.0
                if item_id in stored:
                    similarity = vectors @ stored[item_id]
                    score = float(similarity[0])
                    if len(similarity) > 1:
                        score = max(score, float(similarity[1:].max()) - penalty)
                hits.append(SearchHit(record, score))
            return hits

        return hits_for

    def verdict(self, hits: Sequence[SearchHit]) -> Verdict:
        return self.verdict_from(tuple(Match.from_hit(hit) for hit in hits))

    def verdict_from(
        self,
        matches: Sequence[Match],
        logo_matches: Sequence[LogoMatch] = (),
        *,
        scale: float = 1.0,
    ) -> Verdict:
        """The label from both searches: copy > logo > review > clear. ``scale``: listing
        pixels per pixel of the photo the logos were found in."""
        photo_score = matches[0].score if matches else 0.0
        photo_precision = None
        if self.calibration is not None and matches:
            photo_precision = round(float(self.calibration.precision_at(photo_score)[0]), 4)
        logos = tuple(self._logo_match(found, scale) for found in logo_matches)
        photo_label = self.thresholds.label(photo_score)
        best, logo_label = self._logo_verdict(logos)
        if best is not None and best is not logos[0]:  # the logo the label rests on first
            logos = (best, *(found for found in logos if found is not best))
        on_logo = logo_label == "copy" and photo_label != "copy"
        on_logo = on_logo or (logo_label == "review" and photo_label == "clear")
        on_logo = on_logo or (not matches and bool(logos))
        if on_logo and best is not None:
            label: Label = "logo" if logo_label == "copy" else logo_label
            return Verdict(
                label, best.score, tuple(matches), best.expected_precision, logos, "logo"
            )
        return Verdict(photo_label, photo_score, tuple(matches), photo_precision, logos)

    def _logo_verdict(self, logos: Sequence[Match]) -> tuple[Match | None, Label]:
        """The logo that decides the label, and the label the logo thresholds give it
        ("copy" = a logo is shown). A logo label needs a confirmed region (keypoints or the
        aligned outline): one found by its window alone, whatever its score, asks for review
        (on the calibration set, such best matches above the logo threshold named the right
        brand about half the time, the confirmed ones 9 in 10)."""
        if not logos:
            return None, "clear"
        for found in logos:  # best first
            if (
                found.region_source != "window"
                and self.logo_thresholds.label(found.score) == "copy"
            ):
                return found, "copy"
        label = self.logo_thresholds.label(logos[0].score)
        return logos[0], "review" if label == "copy" else label

    def _logo_match(self, found: LogoMatch, scale: float = 1.0) -> Match:
        expected = None
        if self.logo_calibration is not None:
            precision = float(self.logo_calibration.precision_at(found.score)[0])
            if found.region_source == "window" and self.window_only_precision is not None:
                precision = min(precision, self.window_only_precision)  # nothing confirmed it
            expected = round(precision, 4)
        region, pairs = _in_listing_pixels(found.region, found.point_pairs, scale)
        return Match.from_record(
            found.record,
            found.score,
            region=region,
            inliers=found.inliers,
            expected_precision=expected,
            agreement=round(found.agreement, 4),
            region_source=found.region_source,
            point_pairs=pairs,
        )


def _listing_scale(item: PreparedImage) -> float:
    """Listing pixels per pixel of the prepared photo's kept copy."""
    if item.image is None or item.source_size is None:
        return 1.0
    return item.source_size[0] / max(1, item.image.width)


def _in_listing_pixels(
    region: Sequence[Point] | None,
    pairs: Sequence[tuple[Point, Point]],
    scale: float,
) -> tuple[tuple[Point, ...] | None, tuple[tuple[Point, Point], ...]]:
    """A region and keypoint pairs found on a kept copy, in the listing's pixels (``scale``:
    listing pixels per kept pixel); the pairs' reference side stays as it is."""
    scaled = None
    if region is not None:
        scaled = tuple((round(x * scale, 1), round(y * scale, 1)) for x, y in region)
    return scaled, tuple(((x * scale, y * scale), ref) for (x, y), ref in pairs)


def _verified_match(verified: VerifiedHit, scale: float) -> Match:
    """A whole-photo match at its fused score, with its verification's evidence (region and
    keypoint pairs in listing pixels) when keypoints confirmed it."""
    evidence = verified.evidence
    if not verified.inliers or evidence is None:
        return Match.from_record(verified.hit.record, verified.score)
    region, pairs = _in_listing_pixels(evidence.region, evidence.point_pairs, scale)
    agreement = round(verified.agreement, 4) if verified.agreement is not None else None
    transform = "mirrored" if verified.mirrored else "inverted" if verified.inverted else None
    return Match.from_record(
        verified.hit.record,
        verified.score,
        region=region,
        inliers=verified.inliers,
        agreement=agreement,
        transform=transform,
        point_pairs=pairs,
    )


def _merge_tile_hits(
    whole: Sequence[SearchHit], tiles: Sequence[Sequence[SearchHit]], penalty: float, k: int
) -> list[SearchHit]:
    """The ``k`` best catalogue photos over the whole photo and its tiles, each once at its
    best score (a tile's lowered by ``penalty``)."""
    best: dict[str, SearchHit] = {hit.record.item_id: hit for hit in whole}
    for hits in tiles:
        for hit in hits:
            score = hit.score - penalty
            kept = best.get(hit.record.item_id)
            if kept is None or score > kept.score:
                best[hit.record.item_id] = replace(hit, score=score)
    return sorted(best.values(), key=lambda hit: hit.score, reverse=True)[:k]


def load_detector(
    index_dir: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | Embedder | None = None,
    thresholds: Thresholds | None = None,
    top_k: int = 5,
    precision: Precision = "auto",
    threads: int | None = None,
    batch_size: int = 32,
    verify: bool | RerankConfig | None = None,
    logos: bool | LogoMatchConfig | None = None,
    tiles: bool | TileConfig | None = None,
) -> Detector:
    """Load an index and the embedder that built it (or ``model``, which must match it).

    ``verify``: local-feature re-ranking — None follows the model's recommendation (the
    ``rerank`` settings it was calibrated with, if any), True uses those or the defaults,
    False turns it off, a RerankConfig sets it. ``logos``: logo search — None or True use
    the index's logo catalogue when it has one, False turns it off, a LogoMatchConfig sets it.
    ``tiles``: query tiles — None follows the model's recommendation (the ``tiles`` settings
    its re-ranking mode was calibrated with, used when re-ranking is on), True uses those or
    the defaults, False turns them off, a TileConfig sets them.
    """
    index = CatalogIndex.load(index_dir)
    logo_matcher = None
    if logos is not False and has_logo_index(index_dir):
        config = logos if isinstance(logos, LogoMatchConfig) else None
        logo_matcher = LogoMatcher(LogoCatalog.load(logo_index_dir(index_dir)), config)
    elif logos is True or isinstance(logos, LogoMatchConfig):
        raise ValueError(f"{index_dir}: the index has no logo catalogue (index some logos)")
    if isinstance(model, Embedder):
        embedder = model
    elif model is not None:
        embedder = create_embedder(
            model, precision=precision, threads=threads, batch_size=batch_size
        )
    elif index.embedder_recipe:
        recipe = EmbedderRecipe.from_dict(index.embedder_recipe)
        embedder = create_embedder_from_recipe(
            recipe, precision=precision, threads=threads, batch_size=batch_size
        )
    else:
        raise ValueError(f"{index_dir}: the index does not record its model; pass model=")
    verifier = verifier_for(embedder, verify)
    return Detector(
        embedder,
        index,
        thresholds,
        verifier=verifier,
        top_k=top_k,
        logo_matcher=logo_matcher,
        tiles=tiles_for(embedder, tiles, verified=verifier is not None),
    )


def tiles_for(
    embedder: Embedder, tiles: bool | TileConfig | None, *, verified: bool
) -> TileConfig | None:
    """The query tiles ``tiles`` asks for (see :func:`load_detector`), or None."""
    if isinstance(tiles, TileConfig):
        return tiles
    recommended = embedder.metadata.get("tiles")
    if tiles is True:
        return TileConfig.from_dict(recommended) if isinstance(recommended, dict) else TileConfig()
    if tiles is None and verified and isinstance(recommended, dict):
        return TileConfig.from_dict(recommended)
    return None


def verifier_for(embedder: Embedder, verify: bool | RerankConfig | None) -> LocalVerifier | None:
    """The local verifier ``verify`` asks for (see :func:`load_detector`), or None."""
    if isinstance(verify, RerankConfig):
        return LocalVerifier(verify)
    recommended = embedder.metadata.get("rerank")
    if verify is False or (verify is None and not isinstance(recommended, dict)):
        return None
    return LocalVerifier(
        RerankConfig.from_dict(recommended) if isinstance(recommended, dict) else RerankConfig()
    )
