"""LogoMatcher: logos found in listing photos, verified by keypoints, with their region.

The logo model here has random weights, so descriptor scores say nothing: every catalogue
logo is verified (``verify_all``) and the windows are large enough that the verified area
always holds the pasted logo. What is tested is the geometric check and the bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from logo_helpers import (
    LOGO_NAMES,
    WHOLE_PHOTO_GRID,
    background,
    build_catalog,
    corner_error,
    draw_logos,
    logo_entries,
    one_torch_thread,
    paste_logo,
    verify_all,
    write_logo_model,
)
from lookalike.index import CatalogRecord, SearchHit
from lookalike.logos.alignment import Alignment
from lookalike.logos.catalog import LogoCatalog
from lookalike.logos.matcher import (
    LogoMatch,
    LogoMatchConfig,
    LogoMatcher,
    _Candidate,
    one_brand_per_region,
)
from lookalike.logos.network import LogoModel, load_logo_model
from lookalike.logos.windows import WindowGrid, Windows
from lookalike.training.logo_benchmark import LogoQuery, match_queries

MIN_INLIERS = 8


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def catalog(logo_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> LogoCatalog:
    return build_catalog(logo_model_path, tmp_path_factory.mktemp("logos"))


@pytest.fixture(scope="module")
def matcher(catalog: LogoCatalog) -> LogoMatcher:
    return LogoMatcher(catalog, verify_all())


@pytest.fixture(scope="module")
def logos() -> dict[str, Image.Image]:
    return draw_logos()


def by_id(matches: list[LogoMatch]) -> dict[str, LogoMatch]:
    return {m.record.item_id: m for m in matches}


def side_of(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def check_found(
    matches: list[LogoMatch], name: str, box: tuple[float, float, float, float]
) -> LogoMatch:
    """``name`` first and verified, its region on ``box``, every other logo unverified."""
    best = matches[0]
    assert best.record.item_id == name, [m.record.item_id for m in matches]
    assert best.verified and best.inliers >= MIN_INLIERS
    assert best.region_source in ("keypoints", "outline")
    assert corner_error(best.region, box) <= 0.1 * side_of(box)
    for other in matches[1:]:
        assert other.inliers == 0 and not other.verified, other.record.item_id
        assert other.region_source in ("outline", "window")
    return best


# -- finding the right logo ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "noise"])
@pytest.mark.parametrize("name", LOGO_NAMES)
def test_pasted_logo_is_found_verified_and_located(
    matcher: LogoMatcher, logos: dict[str, Image.Image], name: str, kind: str
) -> None:
    photo, box = paste_logo(logos[name], kind=kind)
    matches = matcher.match(photo)
    assert sorted(m.record.item_id for m in matches) == sorted(LOGO_NAMES)
    check_found(matches, name, box)


@pytest.mark.parametrize("name", LOGO_NAMES)
def test_light_logo_on_dark_is_still_verified(
    matcher: LogoMatcher, logos: dict[str, Image.Image], name: str
) -> None:
    photo, box = paste_logo(logos[name], invert=True)
    check_found(matcher.match(photo), name, box)


def test_mildly_rotated_logo_is_verified_with_a_rotated_region(
    matcher: LogoMatcher, logos: dict[str, Image.Image]
) -> None:
    logo, angle = logos["shapes"], 8.0
    side = 128
    scale = side / max(logo.size)
    shown = logo.resize((round(logo.width * scale), round(logo.height * scale)))
    turned = shown.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    photo = background((320, 320))
    x0, y0 = (320 - turned.width) // 2, (320 - turned.height) // 2
    photo.paste(turned, (x0, y0), turned)
    # where the unrotated logo's corners went: PIL turns counter-clockwise on screen
    cx, cy = x0 + turned.width / 2, y0 + turned.height / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    w, h = shown.size
    expected = [
        (cx + dx * cos + dy * sin, cy - dx * sin + dy * cos)
        for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
    ]
    best = matcher.match(photo)[0]
    assert best.record.item_id == "shapes" and best.inliers >= MIN_INLIERS
    errors = np.linalg.norm(np.asarray(best.region) - np.asarray(expected), axis=1)
    assert errors.max() <= 0.1 * side, errors


def test_two_logos_in_one_photo_are_both_verified(
    matcher: LogoMatcher, logos: dict[str, Image.Image]
) -> None:
    photo, left = paste_logo(logos["badge"], (480, 320), fraction=0.4, centre=(130, 160))
    wordmark = logos["wordmark"]
    scale = 170 / max(wordmark.size)
    shown = wordmark.resize((round(wordmark.width * scale), round(wordmark.height * scale)))
    x0, y0 = 290, 160 - shown.height // 2
    photo.paste(shown, (x0, y0), shown)
    right = (float(x0), float(y0), float(x0 + shown.width), float(y0 + shown.height))
    config = verify_all(grid=WindowGrid(scales=(1.0,)))  # every verified area: the whole photo
    found = by_id(LogoMatcher(matcher.catalog, config).match(photo))
    assert found["badge"].inliers >= MIN_INLIERS and found["wordmark"].inliers >= MIN_INLIERS
    assert corner_error(found["badge"].region, left) <= 0.1 * side_of(left)
    assert corner_error(found["wordmark"].region, right) <= 0.1 * side_of(right)
    assert found["shapes"].inliers == 0


# -- nothing to find -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "noise", "dark"])
def test_photo_without_a_logo_has_no_verified_match(matcher: LogoMatcher, kind: str) -> None:
    matches = matcher.match(background((320, 320), kind, seed=4))
    assert all(m.inliers == 0 and not m.verified for m in matches)
    assert all(m.point_pairs == () for m in matches)


def test_match_queries_batches_and_threads_give_each_photos_own_answer(
    matcher: LogoMatcher, logos: dict[str, Image.Image], tmp_path: Path
) -> None:
    photos = [paste_logo(logos[name])[0] for name in LOGO_NAMES]
    photos.append(background((320, 320), "noise", seed=4))
    queries = []
    for number, photo in enumerate(photos):
        path = tmp_path / f"q{number}.png"
        photo.save(path)
        queries.append(LogoQuery(f"q{number}", path, None, None, None))
    one_by_one = [
        (query.query_id, m.brand, m.score)
        for query, photo in zip(queries, photos, strict=True)
        for m in matcher.match(photo)
    ]
    batched = match_queries(matcher, queries, batch=1, threads=2)  # more batches than ahead
    assert [(q, b) for q, b, _ in batched] == [(q, b) for q, b, _ in one_by_one]
    assert [s for *_, s in batched] == pytest.approx([s for *_, s in one_by_one], abs=1e-4)
    assert {q for q, *_ in batched} >= {f"q{n}" for n in range(len(LOGO_NAMES))}


def test_empty_catalogue_finds_nothing(logo_model_path: Path) -> None:
    empty = LogoCatalog(load_logo_model(logo_model_path), model_ref=str(logo_model_path))
    matcher = LogoMatcher(empty, verify_all())
    photo, _ = paste_logo(draw_logos()["badge"])
    assert matcher.match(photo) == []
    assert matcher.match_many([photo, photo, background((50, 80))]) == [[], [], []]
    assert matcher.match_many([]) == []


def test_high_min_score_reports_nothing(
    catalog: LogoCatalog, logos: dict[str, Image.Image]
) -> None:
    photo, _ = paste_logo(logos["badge"])
    strict = LogoMatcher(catalog, LogoMatchConfig(grid=WHOLE_PHOTO_GRID, min_score=2.0))
    assert strict.match(photo) == []


# -- bookkeeping ---------------------------------------------------------------------------------


def test_scores_regions_and_point_pairs(
    matcher: LogoMatcher, logos: dict[str, Image.Image]
) -> None:
    photo, box = paste_logo(logos["wordmark"])
    matches = matcher.match(photo)
    config = matcher.config
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    for match in matches:
        bonus = config.inlier_weight * min(match.inliers, config.max_inlier_bonus)
        bonus += config.alignment_weight * max(0.0, match.agreement - config.alignment_floor)
        assert 0.0 <= match.agreement <= 1.0
        assert match.score == pytest.approx(match.descriptor_score + bonus, abs=1e-5)
        assert len(match.region) == 4
        assert len(match.point_pairs) == match.inliers
    best = matches[0]
    rendering = matcher.catalog.rendering(best.record)
    x0, y0, x1, y1 = box
    margin = 0.05 * side_of(box)
    for (px, py), (rx, ry) in best.point_pairs:
        assert x0 - margin <= px <= x1 + margin and y0 - margin <= py <= y1 + margin
        assert -2 <= rx <= rendering.width + 2 and -2 <= ry <= rendering.height + 2
    # unconfirmed logos keep the square window they were found in, inside the photo
    for other in matches[1:]:
        if other.agreement >= config.region_agreement:
            assert other.region_source == "outline"
            continue  # the aligned outline is their region
        assert other.region_source == "window"
        (ax, ay), (bx, by), (cx, cy), (dx, dy) = other.region
        assert (ay, bx, cy, dx) == (by, cx, dy, ax)  # axis-aligned: TL TR BR BL
        assert bx - ax == pytest.approx(cy - by, rel=1e-4)  # square
        assert ax >= -1 and ay >= -1 and cx <= photo.width + 4 and cy <= photo.height + 4


def test_point_pairs_follow_the_homography(
    matcher: LogoMatcher, logos: dict[str, Image.Image]
) -> None:
    """Each inlier pair maps photo -> rendering with one scale and offset (no rotation was
    applied): a straight line fit explains every pair to a few pixels."""
    photo, box = paste_logo(logos["badge"])
    best = matcher.match(photo)[0]
    pairs = np.asarray(best.point_pairs, np.float64)  # (n, 2 (photo, ref), 2 (x, y))
    photo_xy, ref_xy = pairs[:, 0], pairs[:, 1]
    rendering = matcher.catalog.rendering(best.record)
    scale = rendering.width / (box[2] - box[0])
    predicted = (photo_xy - np.array(box[:2])) * scale
    assert np.abs(predicted - ref_xy).max() < 8.0


def test_top_k_and_candidates_limit_the_answer(
    catalog: LogoCatalog, logos: dict[str, Image.Image]
) -> None:
    photo, _ = paste_logo(logos["shapes"])
    one = LogoMatcher(catalog, verify_all(grid=WHOLE_PHOTO_GRID)).match(photo)
    top = LogoMatcher(
        catalog, LogoMatchConfig(grid=WHOLE_PHOTO_GRID, window_k=3, top_k=1, min_score=-1.0)
    ).match(photo)
    assert len(one) == 3 and len(top) <= 1
    unverified = LogoMatcher(
        catalog,
        LogoMatchConfig(grid=WHOLE_PHOTO_GRID, window_k=3, top_k=3, min_score=-1.0, verify=False),
    ).match(photo)
    assert len(unverified) == 3
    assert all(m.inliers == 0 and m.score == m.descriptor_score for m in unverified)


def test_precut_windows_give_the_same_answer(
    matcher: LogoMatcher, logos: dict[str, Image.Image]
) -> None:
    photos = [paste_logo(logos["badge"])[0], background((200, 260), "noise")]
    windows = [matcher.windows(photo) for photo in photos]
    assert matcher.match_many(photos, windows) == matcher.match_many(photos)


def test_grey_and_rgba_photos_are_accepted(
    matcher: LogoMatcher, logos: dict[str, Image.Image]
) -> None:
    photo, box = paste_logo(logos["wordmark"])
    for variant in (photo.convert("L"), photo.convert("RGBA")):
        check_found(matcher.match(variant), "wordmark", box)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_k": 0},
        {"candidates": 0},
        {"top_k": 0},
        {"context": 0.5},
        {"alignment_floor": -0.1},
        {"alignment_floor": 1.0},
        {"colour_candidates": -1},
        {"window_support": 0},
        {"region_overlap": -0.1},
        {"region_overlap": 1.0},
        {"region_nested": 0.0},
        {"region_nested": 1.5},
    ],
)
def test_bad_match_configs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LogoMatchConfig(**kwargs)  # type: ignore[arg-type]


def test_a_logo_replaced_under_the_same_id_is_verified_against_the_new_one(
    logo_model_path: Path, tmp_path: Path, logos: dict[str, Image.Image]
) -> None:
    """The matcher caches each logo's keypoints by item id: a logo removed and indexed again
    under the same id with new artwork must not be checked against the old keypoints."""
    catalog = LogoCatalog(load_logo_model(logo_model_path), model_ref=str(logo_model_path))
    old = tmp_path / "old" / "brand.png"
    new = tmp_path / "new" / "brand.png"
    for path, logo in ((old, logos["badge"]), (new, logos["shapes"])):
        path.parent.mkdir()
        logo.save(path)
    catalog.add(logo_entries([old]))
    matcher = LogoMatcher(catalog, verify_all(count=1))
    before = matcher.match(paste_logo(logos["badge"])[0])[0]
    assert before.inliers >= MIN_INLIERS
    catalog.remove(["brand"])
    catalog.add(logo_entries([new]))
    photo, box = paste_logo(logos["shapes"])
    check_found(matcher.match(photo), "brand", box)


def test_the_alignment_floor_follows_the_model_calibration(catalog: LogoCatalog) -> None:
    """Thresholds are on the scale of the score they were calibrated with."""
    assert LogoMatchConfig.calibrated_for({}).alignment_floor == LogoMatchConfig().alignment_floor
    calibrated = {"calibration": {}, "thresholds": {"copy": 1.0, "review": 0.8}}
    assert LogoMatchConfig.calibrated_for(calibrated).alignment_floor == 0.0  # before the floor
    assert LogoMatchConfig.calibrated_for(calibrated).grid.colour_from is None  # before colour
    assert LogoMatchConfig.calibrated_for(calibrated).region_side == 256  # before it was 192
    assert LogoMatchConfig.calibrated_for(calibrated).colour_min_score == 0.35
    assert LogoMatchConfig.calibrated_for(calibrated).window_support == 1  # best window alone
    recorded = {
        **calibrated,
        "calibrated_on": {"alignment_floor": 0.6, "colour_from": 0.4, "window_support": 2},
    }
    assert LogoMatchConfig.calibrated_for(recorded).alignment_floor == 0.6
    assert LogoMatchConfig.calibrated_for(recorded).grid.colour_from == 0.4
    assert LogoMatchConfig.calibrated_for(recorded).window_support == 2
    assert LogoMatchConfig.calibrated_for({}).grid == LogoMatchConfig().grid
    assert LogoMatchConfig().grid.colour_from is not None  # colour windows by default
    # a colour network sees colour in every window: no separate colour windows
    assert LogoMatchConfig.calibrated_for({}, channels=3).grid.colour_from is None
    old = LogoCatalog(LogoModel(catalog.model.network, calibrated), catalog.index)
    assert LogoMatcher(old).config.alignment_floor == 0.0
    assert LogoMatcher(old).config.grid.colour_from is None
    assert LogoMatcher(old, LogoMatchConfig()).config.alignment_floor == 0.7  # asked for


@pytest.mark.parametrize(
    ("inliers", "agreement", "source"),
    [
        (6, 0.9, "outline"),  # a homography of a few points is looser than the aligned outline
        (25, 0.9, "keypoints"),  # many points: the homography is the more exact
        (6, 0.5, "keypoints"),  # a poorly agreeing outline is not used
        (0, 0.65, "outline"),
        (0, 0.5, "window"),
    ],
)
def test_the_region_comes_from_the_more_exact_outline(
    catalog: LogoCatalog,
    monkeypatch: pytest.MonkeyPatch,
    inliers: int,
    agreement: float,
    source: str,
) -> None:
    config = LogoMatchConfig(region_agreement=0.6, keypoint_region_inliers=20)
    matcher = LogoMatcher(catalog, config)
    keypoint_quad = ((1.0, 1.0), (9.0, 1.0), (9.0, 9.0), (1.0, 9.0))
    aligned_quad = ((2.0, 2.0), (8.0, 2.0), (8.0, 8.0), (2.0, 8.0))
    found = (inliers, keypoint_quad, ()) if inliers else None
    monkeypatch.setattr(matcher, "_keypoint_match", lambda *_: found)
    monkeypatch.setattr(matcher, "_aligned", lambda *_: Alignment(agreement, aligned_quad))
    record = next(iter(catalog.index.records()))
    candidate = _Candidate(record, 0.5, np.array([0, 0, 10, 10], np.float32))
    match = matcher._verified(Image.new("RGB", (10, 10)), candidate, {}, None)
    assert match.region_source == source and match.inliers == inliers
    expected = {"outline": aligned_quad, "keypoints": keypoint_quad}.get(source)
    assert match.region == (expected or ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)))


def recoloured(logo: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """``logo``'s shape (its alpha) in one flat colour."""
    flat = Image.new("RGBA", logo.size, (*colour, 255))
    flat.putalpha(logo.getchannel("A"))
    return flat


def test_a_logo_differing_from_its_ground_in_hue_only_is_found_in_colour(
    catalog: LogoCatalog, logos: dict[str, Image.Image]
) -> None:
    """Red on a green of the same grey level: grey windows see a flat card; the red-green
    view sees the logo, and keypoints confirm it there."""
    photo = Image.new("RGB", (320, 320), (60, 140, 60))
    shown = recoloured(logos["badge"], (230, 53, 0)).resize((128, 128), Image.Resampling.LANCZOS)
    photo.paste(shown, (96, 96), shown)
    box = (96.0, 96.0, 224.0, 224.0)
    assert np.asarray(photo.convert("L"), int).std() < 3  # nothing to see in grey
    in_colour = replace(verify_all(), grid=replace(WHOLE_PHOTO_GRID, colour_from=0.3))
    colour = LogoMatcher(catalog, in_colour).match(photo)
    best = colour[0]
    assert best.record.item_id == "badge" and best.inliers >= MIN_INLIERS
    assert corner_error(best.region, box) <= 0.1 * side_of(box)
    assert verify_all().grid.colour_from is None  # colour windows are opt-in
    assert all(m.inliers == 0 for m in LogoMatcher(catalog, verify_all()).match(photo))


def test_a_colour_network_finds_a_hue_only_logo_and_verifies_it_in_colour(
    logos: dict[str, Image.Image], tmp_path: Path
) -> None:
    """A 3-channel logo network sees grey and colour in every window; the verifier goes to
    the view where the window shows the most contrast: here red-green."""
    catalog = build_catalog(write_logo_model(tmp_path / "colour.pt", channels=3), tmp_path)
    matcher = LogoMatcher(catalog, verify_all())
    photo = Image.new("RGB", (320, 320), (60, 140, 60))
    shown = recoloured(logos["badge"], (230, 53, 0)).resize((128, 128), Image.Resampling.LANCZOS)
    photo.paste(shown, (96, 96), shown)
    windows = matcher.windows(photo)
    assert windows.pixels.shape[1] == 3 and windows.strongest is not None
    best = matcher.match(photo)[0]
    assert best.record.item_id == "badge" and best.inliers >= MIN_INLIERS
    assert corner_error(best.region, (96.0, 96.0, 224.0, 224.0)) <= 0.1 * 128
    with pytest.raises(ValueError, match="colour_from"):
        LogoMatcher(catalog, replace(verify_all(), grid=WindowGrid(colour_from=0.3)))


def test_colour_windows_add_candidates_but_never_displace_grey_ones(catalog: LogoCatalog) -> None:
    def record(number: int) -> CatalogRecord:
        return CatalogRecord(f"logo{number}", "0" * 64, None, "logo", None, None, "2026-01-01")

    grey_hits = [[SearchHit(record(n), 0.6 - 0.01 * n) for n in range(1, 7)]]
    colour_hits = [[SearchHit(record(n), s) for n, s in ((7, 0.9), (1, 0.85), (8, 0.8), (9, 0.7))]]
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    windows = Windows(np.zeros((2, 1, 48, 48), np.uint8), boxes, np.array([0, 1], np.uint8))
    config = LogoMatchConfig(
        window_k=6, window_support=1, candidates=6, colour_candidates=2, top_k=9
    )
    found = LogoMatcher(catalog, config)._candidates(grey_hits + colour_hits, windows)
    shortlisted = [c.record.item_id for c in found if c.shortlisted]
    # the six of grey, then the two best of colour that grey did not already have
    assert shortlisted == [f"logo{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8)]
    by_id = {c.record.item_id: c for c in found}
    assert by_id["logo1"].view == 1 and by_id["logo1"].score == 0.85  # its best window
    assert not by_id["logo9"].shortlisted  # reported unverified, if at all
    grey_only = replace(config, colour_candidates=0)
    found = LogoMatcher(catalog, grey_only)._candidates(grey_hits + colour_hits, windows)
    assert [c.record.item_id for c in found if c.shortlisted] == [f"logo{n}" for n in range(1, 7)]


def test_colour_hits_count_only_from_their_own_floor(catalog: LogoCatalog) -> None:
    """Most colour windows' hits below ~0.6 are chance look-alikes: they neither take a
    colour candidate's place nor become a logo's best window; grey hits as low still count."""

    def record(number: int) -> CatalogRecord:
        return CatalogRecord(f"logo{number}", "0" * 64, None, "logo", None, None, "2026-01-01")

    grey_hits = [[SearchHit(record(1), 0.5)]]
    colour_hits = [[SearchHit(record(1), 0.58), SearchHit(record(2), 0.55)]]
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    windows = Windows(np.zeros((2, 1, 48, 48), np.uint8), boxes, np.array([0, 1], np.uint8))
    config = LogoMatchConfig(window_k=2, window_support=1, colour_min_score=0.6)
    found = LogoMatcher(catalog, config)._candidates(grey_hits + colour_hits, windows)
    assert [(c.record.item_id, c.view, c.score) for c in found] == [("logo1", 0, 0.5)]
    lower = replace(config, colour_min_score=0.5)
    found = LogoMatcher(catalog, lower)._candidates(grey_hits + colour_hits, windows)
    by_id = {c.record.item_id: c for c in found}
    assert by_id["logo1"].view == 1 and by_id["logo1"].score == 0.58
    assert by_id["logo2"].shortlisted


def test_a_logo_seen_by_several_windows_outranks_a_single_window_look_alike(
    catalog: LogoCatalog,
) -> None:
    """A logo's descriptor score is the mean of its ``window_support`` best windows, a window
    that did not rank it counting as ``min_score``: the overlapping windows around a real logo
    all see it, a chance look-alike fits one."""

    def record(number: int) -> CatalogRecord:
        return CatalogRecord(f"logo{number}", "0" * 64, None, "logo", None, None, "2026-01-01")

    rows = [
        [SearchHit(record(2), 0.9), SearchHit(record(1), 0.8)],
        [SearchHit(record(1), 0.7)],
        [SearchHit(record(1), 0.6), SearchHit(record(3), 0.3)],  # logo3: under min_score
    ]
    boxes = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [0, 5, 10, 15]], np.float32)
    windows = Windows(np.zeros((3, 1, 48, 48), np.uint8), boxes)
    config = LogoMatchConfig(window_k=2, window_support=3, min_score=0.35)
    found = LogoMatcher(catalog, config)._candidates(rows, windows)
    scores = {c.record.item_id: c.score for c in found}
    expected = {"logo1": (0.8 + 0.7 + 0.6) / 3, "logo2": (0.9 + 0.35 + 0.35) / 3}
    assert scores == pytest.approx(expected)
    assert [c.record.item_id for c in found] == ["logo1", "logo2"]
    assert found[0].box.tolist() == [0, 0, 10, 10]  # verified where it scored best
    best_window = LogoMatcher(catalog, replace(config, window_support=1))._candidates(rows, windows)
    assert [(c.record.item_id, c.score) for c in best_window] == [("logo2", 0.9), ("logo1", 0.8)]


# -- one brand per region ------------------------------------------------------------------------


def square_match(
    item_id: str, brand: str | None, score: float, box: tuple[float, ...]
) -> LogoMatch:
    record = CatalogRecord(item_id, "0" * 64, brand, "logo", None, None, "2026-01-01")
    x0, y0, x1, y1 = box
    return LogoMatch(record, score, score, 0, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def test_a_region_keeps_only_its_best_brand() -> None:
    best = square_match("a", "Acme", 0.9, (0, 0, 100, 100))
    rival = square_match("b", "Bolt", 0.8, (10, 10, 110, 110))  # IoU 0.68 with best
    elsewhere = square_match("c", "Bolt", 0.7, (300, 300, 400, 400))  # another logo
    twin = square_match("d", "ACME", 0.6, (5, 5, 105, 105))  # same brand, other catalogue
    nearby = square_match("e", "Crux", 0.5, (90, 90, 190, 190))  # IoU 0.003 with best
    kept = one_brand_per_region([best, rival, elsewhere, twin, nearby], 0.3)
    assert kept == [best, elsewhere, twin, nearby]
    letter = square_match("g", "Dyne", 0.55, (20, 20, 40, 40))  # inside best: IoU 0.04
    window = square_match("h", "Echo", 0.54, (-50, -50, 150, 150))  # around best: IoU 0.25
    assert one_brand_per_region([best, letter, window], 0.3) == [best, letter, window]
    assert one_brand_per_region([best, letter, window], 0.3, 0.9) == [best]
    # a dropped match suppresses nothing; an item without a brand is its own brand
    beside = square_match("i", "Bolt", 0.8, (40, 0, 140, 100))  # IoU 0.43 with best
    further = square_match("j", "Crux", 0.7, (80, 0, 180, 100))  # 0.11 with best, 0.43 beside
    assert one_brand_per_region([best, beside, further], 0.3) == [best, further]
    unbranded = square_match("f", None, 0.85, (0, 0, 100, 100))
    assert one_brand_per_region([best, unbranded], 0.3) == [best]
    assert one_brand_per_region([best, rival], 0.7) == [best, rival]


def test_matcher_drops_rival_brands_from_the_region_of_its_best_match(
    logo_model_path: Path, tmp_path: Path, logos: dict[str, Image.Image]
) -> None:
    """The same drawing indexed under two brands: both claim the same place, one is kept; with
    ``region_overlap=None`` both are reported."""
    badge = logos["badge"]
    copy = badge.copy()
    copy.putpixel((0, 0), (1, 2, 3, 4))  # another file (the index skips duplicate files)
    badge.save(tmp_path / "badge.png")
    copy.save(tmp_path / "badge-copy.png")
    catalog = LogoCatalog(load_logo_model(logo_model_path))
    report = catalog.add(
        [
            *logo_entries([tmp_path / "badge.png"], brand="acme"),
            *logo_entries([tmp_path / "badge-copy.png"], brand="bolt"),
        ]
    )
    assert len(report.added) == 2, report
    photo, _ = paste_logo(logos["badge"])
    suppressed = LogoMatcher(catalog, verify_all(2)).match(photo)
    both = LogoMatcher(catalog, replace(verify_all(2), region_overlap=None)).match(photo)
    assert sorted(m.brand for m in both) == ["acme", "bolt"]
    assert [m.brand for m in suppressed] == [both[0].brand]


def test_blank_photos_have_no_windows_and_no_matches(
    matcher: LogoMatcher, logos: dict[str, Image.Image]
) -> None:
    blank = Image.new("RGB", (300, 200), "white")
    photo, box = paste_logo(logos["wordmark"])
    assert len(matcher.windows(blank)) == 0
    assert matcher.match(blank) == []
    found = matcher.match_many([blank, photo, blank])
    assert found[0] == [] and found[2] == []
    check_found(found[1], "wordmark", box)
