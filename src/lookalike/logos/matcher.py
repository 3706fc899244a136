"""LogoMatcher: which catalogue logos a listing photo shows, where, and how sure we are.

1. The photo is cut into windows on a multi-scale grid (:mod:`.windows`), each embedded by
   the logo network; FAISS finds the nearest catalogue logos of every window. With
   ``WindowGrid.colour_from`` set (the default for a grey network), the larger windows are
   also cut from the photo's colour-opponent channels (red-green, yellow-blue), where a logo
   recoloured to its ground's lightness still shows.
2. Per logo, its descriptor score is its support over its few best windows (a real logo is
   seen by the overlapping windows around it, a chance look-alike by one); the best-scoring
   logos are verified geometrically in two complementary ways, on the view (grey or colour
   channel) of their best window: SIFT keypoints of the area around the window against the
   clean logo (both polarities, so a light-on-dark print matches a dark-on-light file), ratio
   test, RANSAC homography -- strong on detailed logos; and outline alignment
   (:mod:`.alignment`) -- strong on flat glyphs whose few corners all look alike.
3. The score is the descriptor score + ``inlier_weight`` per keypoint inlier +
   ``alignment_weight`` x the outline agreement above ``alignment_floor``. The region is the
   aligned outline when it agrees well (unless many keypoints agree), else the keypoint
   homography's outline, else the window.
4. One place shows one logo: a match overlapping a better one of another brand is dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from ..data.logos import normalise_brand
from ..embeddings import Embeddings
from ..index import CatalogRecord
from ..verify import LocalFeatures, Verification, match_and_verify, sift_features
from .alignment import (
    Alignment,
    AlignmentConfig,
    LogoTemplates,
    PhotoGrey,
    align_logo,
    logo_templates,
)
from .catalog import LogoCatalog, embed_windows
from .geometry import Point, Quad, bounds_overlap, plausible_view
from .windows import (
    GREY_VIEW,
    WindowGrid,
    Windows,
    cut_windows,
    grey,
    opponent_views,
    require_grid_fits,
)

REFERENCE_MIN_SHORT_SIDE = 128
REFERENCE_MARGIN = 16
REFERENCE_FEATURES = 300
# What the matcher did before calibrations recorded these settings.
UNRECORDED_MIN_SCORE = 0.35
UNRECORDED_REGION_SIDE = 256


def _rescaled(features: LocalFeatures, factor: float, margin: int) -> LocalFeatures:
    """Keypoints found on an enlarged, framed rendering, in the rendering's own pixels."""
    points = (features.keypoints - margin) / max(factor, 1.0)
    # SIFT values are integers in 0..255 stored as float: kept as uint8, a quarter the memory
    compact = np.clip(np.rint(features.descriptors), 0, 255).astype(np.uint8)
    return LocalFeatures(points.astype(np.float32), compact, features.image_size)


def _as_float(features: LocalFeatures) -> LocalFeatures:
    """uint8 SIFT back to float32, so that matching uses L2 (uint8 would mean Hamming)."""
    return LocalFeatures(
        features.keypoints, features.descriptors.astype(np.float32), features.image_size
    )


@dataclass(frozen=True)
class LogoMatchConfig:
    """``window_k``: logos kept per window; ``window_support``: a logo's descriptor score is
    the mean of its similarity in its this many best windows, a window that did not keep it
    counting as the floor (``min_score``, or ``colour_min_score`` for colour windows): the
    overlapping windows around a real logo all see it, a chance look-alike fits one window
    (calibration set: µAP 0.768 -> 0.785, top-1 0.780 -> 0.797 with 3; 2: 0.788 / 0.803, 4:
    0.779 / 0.790; the right logo first among the descriptor's in 66% of positives with 1
    window, 72% with 3); ``candidates``: logos verified per photo, the
    best of its grey windows (verification is most of a photo's time: with logo model v3, 4
    instead of 6 measured ~10% faster at µAP -0.005 on the calibration set, -0.018 on the
    benchmark), and ``colour_candidates`` more of its colour windows (see
    ``WindowGrid.colour_from``), whose hits count from ``colour_min_score`` up (on the
    calibration set, 80 of the 82 right logos the colour windows shortlisted scored above
    0.55 and 70 above 0.6, against half and an eighth of the wrong ones);
    ``min_score``: a window's descriptor similarity below which it does not count a logo;
    ``context``: the verified area is the best window grown by this factor;
    ``region_side``: ... resized to this longest side for keypoints (192 rather than 256: on
    the calibration set µAP 0.693 -> 0.690, 9.5 -> 10.5 photos/s); ``min_inliers``: fewer
    RANSAC inliers count as no verification; ``inlier_weight``: score added per inlier;
    ``alignment``: outline alignment settings, None to skip it; ``alignment_weight``: score
    added per unit of outline agreement above ``alignment_floor``, the agreement any logo
    reaches with some area of an unrelated photo (the best logo of a photo without one: median
    0.65; the floor was chosen on the calibration set, where 0.7-0.75 measured best for both
    logo models); ``region_agreement``: from this agreement up, the aligned outline traces
    the region, unless keypoints confirmed the logo with at least ``keypoint_region_inliers``
    inliers. Both from the calibration set's right matches: a homography of a few points is
    loose (5-7 inliers: keypoint outline IoU with the logo 0.69 median, aligned outline 0.95;
    from 20 inliers keypoints were the more exact), and outlines aligned at an agreement of
    0.6-0.8 overlapped the logo far better than the window it was found in;
    ``region_overlap``, ``region_nested``: a match whose region overlaps a better match of
    another brand by more than ``region_overlap`` (IoU of their bounding boxes), or lies in it
    or around it (more than ``region_nested`` of the smaller box inside the other), is
    dropped: one place in a photo shows one logo, and the look-alikes that compete for it are
    not evidence of theirs (None keeps them all). On the calibration set, overlap alone: µAP
    0.749 -> 0.768, recall at precision 0.9 0.613 -> 0.673 (0.1 to 0.7 all within 0.003);
    with window support, nesting from 0.9 added 0.785 -> 0.795, 0.683 -> 0.710 (0.5: 0.783,
    0.8: 0.791). ``impostor_weight``: a logo's score is lowered by this much per unit of its
    impostor level above the typical one (the mean of its ``impostor_k`` best similarities
    with the logo model's background bank, see :mod:`.background`; 0, or a model without a
    bank, leaves scores as they are): a disc or a triangle scores high in many photos without
    logos, and lower now. On the calibration set: µAP 0.795 -> 0.811, recall at precision
    0.9 0.710 -> 0.750, top-1 0.797 -> 0.813 (offline, weights 0.5-1 and k 5-50 all within
    0.005 of it). ``threads``: photos of a batch verified in parallel."""

    grid: WindowGrid = field(default_factory=WindowGrid)
    window_k: int = 3
    window_support: int = 3
    candidates: int = 6
    colour_candidates: int = 2
    colour_min_score: float = 0.6
    min_score: float = 0.35
    verify: bool = True
    context: float = 1.5
    region_side: int = 192
    min_inliers: int = 5
    inlier_weight: float = 0.02
    max_inlier_bonus: int = 40
    alignment: AlignmentConfig | None = field(default_factory=AlignmentConfig)
    alignment_weight: float = 0.5
    alignment_floor: float = 0.7
    region_agreement: float = 0.6
    keypoint_region_inliers: int = 20
    region_overlap: float | None = 0.3
    region_nested: float = 0.9
    impostor_weight: float = 0.75
    impostor_k: int = 20
    top_k: int = 5
    threads: int = 2

    def __post_init__(self) -> None:
        if min(self.window_k, self.window_support, self.candidates, self.top_k) < 1:
            raise ValueError("window_k, window_support, candidates and top_k must be >= 1")
        if self.impostor_weight < 0 or self.impostor_k < 1:
            raise ValueError(
                f"impostor_weight must be >= 0 and impostor_k >= 1, "
                f"got {self.impostor_weight} and {self.impostor_k}"
            )
        if self.colour_candidates < 0:
            raise ValueError(f"colour_candidates must be >= 0, got {self.colour_candidates}")
        if self.context < 1.0:
            raise ValueError(f"context must be >= 1, got {self.context}")
        if not 0.0 <= self.alignment_floor < 1.0:
            raise ValueError(f"alignment_floor must be in [0, 1), got {self.alignment_floor}")
        if self.region_overlap is not None and not 0.0 <= self.region_overlap < 1.0:
            raise ValueError(f"region_overlap must be in [0, 1) or None, got {self.region_overlap}")
        if not 0.0 < self.region_nested <= 1.0:
            raise ValueError(f"region_nested must be in (0, 1], got {self.region_nested}")

    @classmethod
    def defaults_for(cls, channels: int = 1) -> LogoMatchConfig:
        """The default settings for a logo network of ``channels`` inputs: a colour network
        (3) sees colour in every window, so it gets no separate colour windows."""
        defaults = cls()
        if channels == 1:
            return defaults
        return replace(defaults, grid=replace(defaults.grid, colour_from=None))

    @classmethod
    def calibrated_for(cls, metadata: Mapping[str, Any], channels: int = 1) -> LogoMatchConfig:
        """The default settings, scoring as the logo model's calibration did: its thresholds
        are on the scale of the score they were measured with. The calibration records the
        settings scores depend on (``alignment_floor``, the grid's ``colour_from``,
        ``colour_min_score``, ``region_side``, ``window_support``, ``impostor_weight`` and
        ``impostor_k``); a model calibrated before one was recorded scored as the matcher
        then did (agreement from 0, grey windows only, 256-px keypoint regions, a logo's best
        window alone, no impostor shift). An uncalibrated model gets
        :meth:`defaults_for` its ``channels``."""
        if "calibration" not in metadata:
            return cls.defaults_for(channels)
        calibrated_on = metadata.get("calibrated_on") or {}
        colour_from = calibrated_on.get("colour_from")
        grid = WindowGrid(colour_from=None if colour_from is None else float(colour_from))
        return cls(
            alignment_floor=float(calibrated_on.get("alignment_floor", 0.0)),
            grid=grid,
            colour_min_score=float(calibrated_on.get("colour_min_score", UNRECORDED_MIN_SCORE)),
            region_side=int(calibrated_on.get("region_side", UNRECORDED_REGION_SIDE)),
            window_support=int(calibrated_on.get("window_support", 1)),
            impostor_weight=float(calibrated_on.get("impostor_weight", 0.0)),
            impostor_k=int(calibrated_on.get("impostor_k", cls.impostor_k)),
        )


RegionSource = Literal["keypoints", "outline", "window"]


@dataclass(frozen=True)
class LogoMatch:
    """A catalogue logo seen in a listing photo.

    ``score``: ``descriptor_score`` + the keypoint and alignment bonuses, less the logo's
    impostor shift (``LogoMatchConfig.impostor_weight``); ``region``: the logo's outline in
    photo pixels (TL, TR, BR, BL), from outline alignment
    when ``agreement`` reaches the config's ``region_agreement`` (and keypoints are fewer than
    its ``keypoint_region_inliers``), else from the keypoints' homography when ``inliers`` >
    0, else the window it was found in (``region_source``: "outline", "keypoints" or
    "window"); ``descriptor_score``: the logo network's similarity, averaged over the logo's
    best windows (``LogoMatchConfig.window_support``); ``agreement``: how well the logo's
    aligned outline agrees with the photo (0..1, 0 when not aligned); ``point_pairs``: the
    inlier keypoints as (photo xy, xy in the logo's rendering), for evidence images.
    """

    record: CatalogRecord
    score: float
    descriptor_score: float
    inliers: int
    region: Quad
    point_pairs: tuple[tuple[Point, Point], ...] = ()
    agreement: float = 0.0
    region_source: RegionSource = "window"

    @property
    def verified(self) -> bool:
        return self.inliers > 0

    @property
    def brand(self) -> str:
        """The brand this match says the photo shows: its logo's (its item id without one)."""
        return self.record.brand or self.record.item_id


@dataclass(frozen=True)
class _Candidate:
    record: CatalogRecord
    # the logo network's: its best window's, then its support over its best windows
    similarity: float
    box: npt.NDArray[np.float32]  # x0, y0, x1, y1 of its best window
    view: int = GREY_VIEW  # the view of the photo to verify it on (an index into windows.VIEWS)
    shortlisted: bool = False  # to be verified
    shift: float = 0.0  # its impostor shift (see ``LogoMatchConfig.impostor_weight``)

    @property
    def score(self) -> float:
        """Its descriptor score: its similarity less its impostor shift."""
        return self.similarity - self.shift


def _box_corners(box: Sequence[float] | npt.NDArray[np.float32]) -> Quad:
    x0, y0, x1, y1 = (float(v) for v in box)
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def one_brand_per_region(
    matches: Sequence[LogoMatch], max_overlap: float, max_nested: float = 1.0
) -> list[LogoMatch]:
    """``matches`` (best first) without those in the place of a better match of another brand:
    their bounding boxes overlap by more than ``max_overlap`` (IoU), or more than
    ``max_nested`` of the smaller box lies inside the other (a letter of a logo matched as
    another logo, or a window around it). Non-maximum suppression across brands: matches of
    one brand (a catalogue that holds a logo twice) never suppress each other, nor do matches
    in separate places (a photo may show several logos)."""

    def same_place(first: LogoMatch, second: LogoMatch) -> bool:
        iou, nested = bounds_overlap(first.region, second.region)
        return iou > max_overlap or nested > max_nested

    kept: list[tuple[LogoMatch, str]] = []
    for match in matches:
        # one brand: "Alfa Romeo" of one catalogue and "alfa-romeo" of another
        brand = normalise_brand(match.brand)
        if not any(other != brand and same_place(better, match) for better, other in kept):
            kept.append((match, brand))
    return [match for match, _ in kept]


class LogoMatcher:
    """Finds catalogue logos in photos. Call it from one thread at a time; inside a call the
    photos of a batch are verified in parallel threads, which its keypoint cache tolerates
    (dict reads and writes are atomic; a race only describes a logo twice). The cache keeps
    every logo described so far: up to ~80 KB per logo, ~300 MB for 3,867 logos."""

    def __init__(self, catalog: LogoCatalog, config: LogoMatchConfig | None = None) -> None:
        self.catalog = catalog
        model = catalog.model
        self.config = config or LogoMatchConfig.calibrated_for(
            model.metadata, model.config.channels
        )
        require_grid_fits(self.config.grid, model.config.channels)  # now, not on a photo
        # keyed by (item id, file sha256): a logo replaced under the same id is described anew
        self._reference_features: dict[tuple[str, str], tuple[LocalFeatures, LocalFeatures]] = {}
        self._templates: dict[tuple[str, str], LogoTemplates] = {}

    def windows(self, image: Image.Image) -> Windows:
        """The photo's windows: cheap, torch-free, so decoding workers can cut them."""
        model = self.catalog.model.config
        return cut_windows(image, self.config.grid, model.input_size, model.channels)

    def match(self, image: Image.Image) -> list[LogoMatch]:
        return self.match_many([image])[0]

    def match_many(
        self, images: Sequence[Image.Image], windows: Sequence[Windows] | None = None
    ) -> list[list[LogoMatch]]:
        """Logos found in each photo, best first (empty with an empty logo catalogue)."""
        if not images:
            return []
        if len(self.catalog) == 0:
            return [[] for _ in images]
        cut = list(windows) if windows is not None else [self.windows(im) for im in images]
        pixels = np.concatenate([w.pixels for w in cut])
        vectors = embed_windows(self.catalog.model, pixels)
        hits = self.catalog.index.search(
            Embeddings(vectors, self.catalog.model.fingerprint), self.config.window_k
        )
        candidates, start = [], 0
        for photo_windows in cut:
            rows = hits[start : start + len(photo_windows)]
            start += len(photo_windows)
            candidates.append(self._candidates(rows, photo_windows))
        if self.config.threads > 1 and len(images) > 1:
            # OpenCV releases the GIL: photos of a batch are verified side by side
            with ThreadPoolExecutor(self.config.threads) as pool:
                return list(pool.map(self._finish, images, candidates))
        return [self._finish(image, found) for image, found in zip(images, candidates, strict=True)]

    def _candidates(self, rows: list[list], windows: Windows) -> list[_Candidate]:
        """Each logo with its descriptor score (its support over its best windows, see
        ``window_support``, less its impostor shift, see ``impostor_weight``) and its best
        window; shortlisted for verification by support alone (by the shifted score, the
        calibration set measured the same): the ``candidates`` best logos of the grey
        windows, and up to ``colour_candidates`` more of
        the colour windows (colour adds candidates, never displaces grey ones: its chance
        look-alikes would push out small logos that only grey windows see)."""
        best: dict[str, _Candidate] = {}
        grey_hits: dict[str, list[float]] = defaultdict(list)
        colour_hits: dict[str, list[float]] = defaultdict(list)
        grey_floor = self.config.min_score
        colour_floor = max(grey_floor, self.config.colour_min_score)
        for index, (row, box) in enumerate(zip(rows, windows.boxes, strict=True)):
            grey_window = windows.view_of(index) == GREY_VIEW
            hits, floor = (grey_hits, grey_floor) if grey_window else (colour_hits, colour_floor)
            for hit in row:
                if hit.score < floor:
                    break
                item = hit.record.item_id
                hits[item].append(hit.score)
                kept = best.get(item)
                if kept is None or hit.score > kept.similarity:
                    best[item] = _Candidate(
                        hit.record, hit.score, box, windows.verify_view_of(index)
                    )
        grey = {item: self._support(found, grey_floor) for item, found in grey_hits.items()}
        colour = {item: self._support(found, colour_floor) for item, found in colour_hits.items()}
        shifts = self._impostor_shifts([candidate.record for candidate in best.values()])
        for item, candidate in best.items():
            similarity = max(grey.get(item, -1.0), colour.get(item, -1.0))
            best[item] = replace(candidate, similarity=similarity, shift=shifts[item])
        shortlist = sorted(grey, key=lambda item: -grey[item])[: self.config.candidates]
        in_colour = sorted(colour, key=lambda item: -colour[item])
        shortlist += [item for item in in_colour if item not in shortlist][
            : self.config.colour_candidates
        ]
        chosen = [replace(best[item], shortlisted=True) for item in shortlist]
        rest = sorted(
            (c for item, c in best.items() if item not in shortlist), key=lambda c: -c.score
        )
        return chosen + rest[: max(0, self.config.top_k - len(chosen))]

    def _impostor_shifts(self, records: Sequence[CatalogRecord]) -> dict[str, float]:
        """By item id: how much each logo's score is lowered (see ``impostor_weight``)."""
        weight = self.config.impostor_weight
        if weight == 0.0:
            return {record.item_id: 0.0 for record in records}
        levels = self.catalog.impostor_shifts(records, self.config.impostor_k)
        return {item: weight * level for item, level in levels.items()}

    def _support(self, scores: list[float], floor: float) -> float:
        """The mean of a logo's ``window_support`` best window scores; a window that did not
        rank it among its ``window_k`` best logos counts as ``floor``."""
        count = self.config.window_support
        best = sorted(scores, reverse=True)[:count]
        return (sum(best) + floor * (count - len(best))) / count

    def warm_up(self, *, progress: bool = False) -> None:
        """Describe every catalogue logo now rather than on first use (a batch job's steady
        state): impostor levels, keypoints and alignment templates, ~30 ms per logo on
        ``threads`` threads (OpenCV releases the GIL), up to ~90 KB each in memory."""
        from tqdm.auto import tqdm

        def describe(record: CatalogRecord) -> None:
            rendering = self.catalog.rendering(record)
            self._features_of(record, rendering)
            if self.config.alignment is not None:
                self._templates_of(record, rendering)

        records = list(self.catalog.index.records())
        self._impostor_shifts(records)
        with ThreadPoolExecutor(max(1, self.config.threads)) as pool:
            for _ in tqdm(
                pool.map(describe, records),
                total=len(records),
                desc="logo keypoints",
                disable=not progress,
            ):
                pass

    def _finish(self, image: Image.Image, candidates: list[_Candidate]) -> list[LogoMatch]:
        """Verify the best candidates, each on the view of the photo it was found in (grey,
        or a colour-opponent channel where the logo differs from its ground in hue only)."""
        matches = []
        crops: dict[tuple[float, ...], tuple[LocalFeatures, tuple[float, float], float]] = {}
        alignment = self.config.alignment
        views: dict[int, tuple[Image.Image, PhotoGrey | None]] = {}
        opponents: tuple[Image.Image, Image.Image] | None = None
        for candidate in candidates:
            if self.config.verify and candidate.shortlisted:
                if candidate.view not in views:
                    picture = image
                    if candidate.view != GREY_VIEW:
                        opponents = opponents or opponent_views(image)
                        picture = opponents[candidate.view - 1]
                    photo = PhotoGrey.of(picture, alignment.max_side) if alignment else None
                    views[candidate.view] = (picture, photo)
                picture, photo = views[candidate.view]
                matches.append(self._verified(picture, candidate, crops, photo))
            else:
                matches.append(self._unverified(candidate))
        if self.config.region_overlap is not None:
            # which logo a place shows is decided on the evidence alone: the impostor shift
            # says how often a logo is seen where there is none, not which of two fits better
            shifts = {candidate.record.item_id: candidate.shift for candidate in candidates}
            matches.sort(key=lambda m: -(m.score + shifts[m.record.item_id]))
            matches = one_brand_per_region(
                matches, self.config.region_overlap, self.config.region_nested
            )
        matches.sort(key=lambda m: -m.score)
        return matches[: self.config.top_k]

    def _unverified(self, candidate: _Candidate) -> LogoMatch:
        return LogoMatch(
            candidate.record,
            round(candidate.score, 6),
            round(candidate.similarity, 6),
            0,
            _box_corners(candidate.box),
        )

    def _verified(
        self,
        image: Image.Image,
        candidate: _Candidate,
        crops: dict[tuple[float, ...], tuple[LocalFeatures, tuple[float, float], float]],
        photo: PhotoGrey | None,
    ) -> LogoMatch:
        aligned = self._aligned(photo, candidate)
        keypoints = self._keypoint_match(image, candidate, crops)
        above_chance = max(0.0, aligned.agreement - self.config.alignment_floor)
        score = candidate.score + self.config.alignment_weight * above_chance
        outline = aligned.quad if aligned.agreement >= self.config.region_agreement else None
        source: RegionSource
        if keypoints is not None:
            inliers, region, pairs = keypoints
            bonus = self.config.inlier_weight * min(inliers, self.config.max_inlier_bonus)
            score += bonus
            source = "keypoints"
            if outline is not None and inliers < self.config.keypoint_region_inliers:
                region, source = outline, "outline"
        elif outline is not None:
            inliers, region, pairs, source = 0, outline, (), "outline"
        else:
            inliers, region, pairs, source = 0, _box_corners(candidate.box), (), "window"
        return LogoMatch(
            candidate.record,
            round(score, 6),
            round(candidate.similarity, 6),
            inliers,
            region,
            pairs,
            aligned.agreement,
            source,
        )

    def _aligned(self, photo: PhotoGrey | None, candidate: _Candidate) -> Alignment:
        config = self.config.alignment
        if photo is None or config is None:
            return Alignment.none()
        templates = self._templates_of(candidate.record, self.catalog.rendering(candidate.record))
        x0, y0, x1, y1 = (float(v) for v in candidate.box)
        return align_logo(photo, (x0, y0, x1, y1), templates, config)

    def _keypoint_match(
        self,
        image: Image.Image,
        candidate: _Candidate,
        crops: dict[tuple[float, ...], tuple[LocalFeatures, tuple[float, float], float]],
    ) -> tuple[int, Quad, tuple[tuple[Point, Point], ...]] | None:
        """(inliers, region, point pairs) when keypoints confirm the candidate, else None."""
        key = (*(float(v) for v in candidate.box), float(candidate.view))
        if key not in crops:  # candidates often share their best window: describe it once
            crop, origin, scale = self._context_crop(image, candidate.box)
            crops[key] = (sift_features(crop), origin, scale)
        query, origin, scale = crops[key]
        reference = self.catalog.rendering(candidate.record)
        best = Verification.none()
        for features in self._features_of(candidate.record, reference):
            found = match_and_verify(query, _as_float(features), ratio=0.8, ransac_px=4.0)
            if found.inliers > best.inliers:
                best = found
        if best.inliers < self.config.min_inliers or best.homography is None:
            return None
        outline = self._outline(best.homography, reference.size)
        if outline is None:
            return None
        to_photo = lambda xy: (float(origin[0] + xy[0] / scale), float(origin[1] + xy[1] / scale))  # noqa: E731
        region = tuple(to_photo(xy) for xy in outline)
        pairs = tuple(
            (to_photo(q), (float(r[0]), float(r[1])))
            for q, r in zip(best.query_points, best.reference_points, strict=True)
        )
        return best.inliers, (region[0], region[1], region[2], region[3]), pairs

    def _context_crop(
        self, image: Image.Image, box: npt.NDArray[np.float32]
    ) -> tuple[Image.Image, tuple[float, float], float]:
        """The area around a window, resized for keypoints; returns (crop, its top-left in
        the photo, crop pixels per photo pixel)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = max(x1 - x0, y1 - y0) * self.config.context / 2
        left, top = max(0.0, cx - half), max(0.0, cy - half)
        right, bottom = min(float(image.width), cx + half), min(float(image.height), cy + half)
        region = image.crop((round(left), round(top), round(right), round(bottom)))
        scale = self.config.region_side / max(1, max(region.size))
        size = (max(1, round(region.width * scale)), max(1, round(region.height * scale)))
        crop = grey(region).resize(size, Image.Resampling.BILINEAR)
        # rounding of the crop box: recompute the exact scale and origin actually used
        return crop, (float(round(left)), float(round(top))), size[0] / max(1, region.width)

    def _templates_of(self, record: CatalogRecord, rendering: Image.Image) -> LogoTemplates:
        assert self.config.alignment is not None
        key = (record.item_id, record.sha256)
        cached = self._templates.get(key)
        if cached is None:
            cached = logo_templates(rendering, self.config.alignment)
            self._templates[key] = cached
        return cached

    def _features_of(
        self, record: CatalogRecord, rendering: Image.Image
    ) -> tuple[LocalFeatures, LocalFeatures]:
        key = (record.item_id, record.sha256)
        cached = self._reference_features.get(key)
        if cached is None:
            flat = grey(rendering)
            # A wide wordmark rendered 256 px long is only ~40 px high: too few keypoints.
            # Enlarge so the short side has detail, then bring the points back.
            factor = min(REFERENCE_MIN_SHORT_SIDE / max(1, min(flat.size)), 3.0)
            if factor > 1.0:
                size = (round(flat.width * factor), round(flat.height * factor))
                flat = flat.resize(size, Image.Resampling.BICUBIC)
            # a white margin: SIFT finds no keypoints within a few pixels of the border
            framed = ImageOps.expand(flat, border=REFERENCE_MARGIN, fill=255)
            normal, inverted = (
                _rescaled(sift_features(view, REFERENCE_FEATURES), factor, REFERENCE_MARGIN)
                for view in (framed, ImageOps.invert(framed))
            )
            cached = (normal, inverted)
            self._reference_features[key] = cached
        return cached

    @staticmethod
    def _outline(
        homography: npt.NDArray[np.float64], size: tuple[int, int]
    ) -> npt.NDArray[np.float64] | None:
        """The rendering's corners mapped into the crop (homography maps crop -> rendering),
        or None when the mapped shape is not a plausible view of the logo."""
        try:
            inverse = np.linalg.inv(homography)
        except np.linalg.LinAlgError:
            return None
        w, h = size
        corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], np.float64).T
        mapped = inverse @ corners
        if np.any(mapped[2] <= 1e-9):
            return None
        quad = (mapped[:2] / mapped[2]).T
        return quad if plausible_view(quad) else None
