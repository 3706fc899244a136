"""Detector with logo search: labels from both searches, regions in listing pixels, JPEG
draft decoding, load_detector's logo options, and logo columns in ``score`` results."""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from logo_helpers import (
    TEST_LOGO_NETWORK,
    WHOLE_PHOTO_GRID,
    Box,
    build_catalog,
    corner_error,
    draw_logos,
    one_torch_thread,
    paste_logo,
    tiny_embedder,
    verify_all,
    write_logo_model,
)
from lookalike.data.decode import decode_image, full_size
from lookalike.data.manifest import load_catalog
from lookalike.data.preprocess import PreparedImage
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import Detector, Match, Thresholds, load_detector
from lookalike.index import CatalogIndex, CatalogRecord
from lookalike.indexing import add_entries, new_index_for
from lookalike.logos.catalog import LogoCatalog, logo_index_dir
from lookalike.logos.matcher import LogoMatch, LogoMatchConfig, LogoMatcher, RegionSource
from lookalike.logos.network import LogoModel, LogoNet
from lookalike.model import Embedder
from lookalike.scoring import CSV_COLUMNS, TIMING_COLUMNS, score_images
from lookalike.training.calibration import calibrate

PHOTO_THRESHOLDS = Thresholds(copy=0.9, review=0.8)
LOGO_METADATA = {
    "thresholds": {"copy": 1.2, "review": 0.8},
    "calibration": calibrate([1.3, 1.4, 1.5, 1.6], [0.5, 0.9, 1.0, 1.25]).to_dict(),
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return tiny_embedder()


@pytest.fixture(scope="module")
def photo_index(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogIndex:
    """Six synthetic catalogue photos, indexed through lookalike.indexing."""
    folder = tmp_path_factory.mktemp("catalogue")
    for seed in range(6):
        synthetic_image(seed, (96, 96)).save(folder / f"item{seed}.png")
    index = new_index_for(embedder)
    report = add_entries(index, embedder, load_catalog(folder), workers=1, progress=False)
    assert len(report.added) == 6
    return index


@pytest.fixture(scope="module")
def catalog(logo_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> LogoCatalog:
    return build_catalog(logo_model_path, tmp_path_factory.mktemp("logos"))


@pytest.fixture(scope="module")
def detector(embedder: Embedder, photo_index: CatalogIndex, catalog: LogoCatalog) -> Detector:
    return Detector(
        embedder, photo_index, PHOTO_THRESHOLDS, logo_matcher=LogoMatcher(catalog, verify_all())
    )


@pytest.fixture(scope="module")
def rules(embedder: Embedder) -> Detector:
    """An empty detector whose logo model carries thresholds and a calibration."""
    torch.manual_seed(0)
    catalog = LogoCatalog(LogoModel(LogoNet(TEST_LOGO_NETWORK).eval(), dict(LOGO_METADATA)))
    photo_calibration = calibrate([0.9, 0.95, 1.0], [0.5, 0.7, 0.85])
    return Detector(
        embedder,
        new_index_for(embedder),
        PHOTO_THRESHOLDS,
        calibration=photo_calibration,
        logo_matcher=LogoMatcher(catalog),
    )


def photo_match(score: float, item_id: str = "photo1") -> Match:
    return Match(item_id, score, "acme", "product", None, f"{item_id}.jpg", "a" * 64)


def logo_match(score: float, item_id: str = "logo1", *, inliers: int = 12) -> LogoMatch:
    """A verified logo on the box (10, 20)-(110, 60), with two of its keypoint pairs (with no
    inliers: found only, the box is its window)."""
    record = CatalogRecord(item_id, "b" * 64, "acme", "logo", None, "l.png", "2024-01-01")
    region = ((10.0, 20.0), (110.0, 20.0), (110.0, 60.0), (10.0, 60.0))
    pairs = (((15.0, 25.0), (5.0, 5.0)), ((100.0, 50.0), (230.0, 76.0))) if inliers else ()
    source: RegionSource = "keypoints" if inliers else "window"
    return LogoMatch(
        record, score, score - 0.02 * inliers, inliers, region, pairs, region_source=source
    )


# -- labels from both searches -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("photo", "logo", "label", "basis"),
    [
        (0.95, 1.5, "copy", "photo"),  # a reused photo beats a logo
        (0.95, 0.9, "copy", "photo"),
        (0.85, 1.5, "logo", "logo"),  # a logo beats a photo that is only worth a review
        (0.50, 1.5, "logo", "logo"),
        (None, 1.5, "logo", "logo"),
        (0.85, 0.9, "review", "photo"),  # both only worth a review: the photo decides
        (0.50, 0.9, "review", "logo"),  # a logo worth a review beats a clear photo
        (0.50, 0.5, "clear", "photo"),
        (0.95, None, "copy", "photo"),
        (0.85, None, "review", "photo"),
        (0.50, None, "clear", "photo"),
        (None, None, "clear", "photo"),
    ],
)
def test_label_precedence(
    rules: Detector, photo: float | None, logo: float | None, label: str, basis: str
) -> None:
    matches = [photo_match(photo)] if photo is not None else []
    logos = [logo_match(logo)] if logo is not None else []
    verdict = rules.verdict_from(matches, logos)
    assert (verdict.label, verdict.basis) == (label, basis)
    assert len(verdict.logos) == len(logos) and len(verdict.matches) == len(matches)
    if basis == "logo":
        assert verdict.best is verdict.logos[0]
        assert verdict.score == logo
        assert verdict.expected_precision == verdict.logos[0].expected_precision
        assert verdict.expected_precision is not None
    else:
        assert verdict.best == (verdict.matches[0] if matches else None)
        assert verdict.score == (photo if photo is not None else 0.0)
        if photo is not None:
            assert rules.calibration is not None
            expected = float(rules.calibration.precision_at(photo)[0])
            assert verdict.expected_precision == pytest.approx(expected, abs=1e-4)
        else:
            assert verdict.expected_precision is None


def test_logo_matches_keep_their_evidence(rules: Detector) -> None:
    verdict = rules.verdict_from([photo_match(0.5)], [logo_match(1.5), logo_match(0.9, "logo2")])
    best = verdict.logos[0]
    assert (best.item_id, best.kind, best.brand, best.inliers) == ("logo1", "logo", "acme", 12)
    assert best.region == ((10.0, 20.0), (110.0, 20.0), (110.0, 60.0), (10.0, 60.0))
    assert rules.logo_calibration is not None
    precision = float(rules.logo_calibration.precision_at(1.5)[0])
    assert best.expected_precision == pytest.approx(precision, abs=1e-4)
    assert [m.item_id for m in verdict.logos] == ["logo1", "logo2"]
    data = verdict.to_dict()
    assert data["basis"] == "logo" and data["label"] == "logo"
    assert data["logos"][0]["region"] == [[10.0, 20.0], [110.0, 20.0], [110.0, 60.0], [10.0, 60.0]]
    assert data["logos"][0]["inliers"] == 12
    assert data["logos"][0]["region_source"] == "keypoints"
    assert data["matches"][0]["region_source"] is None
    assert "point_pairs" not in data["logos"][0]
    assert data["matches"][0]["region"] is None and data["matches"][0]["inliers"] is None
    json.dumps(data)  # plain JSON


def test_regions_and_point_pairs_are_scaled_into_listing_pixels(rules: Detector) -> None:
    found = logo_match(1.5)
    verdict = rules.verdict_from([], [found], scale=2.5)
    match = verdict.logos[0]
    assert match.region == ((25.0, 50.0), (275.0, 50.0), (275.0, 150.0), (25.0, 150.0))
    assert match.point_pairs == (((37.5, 62.5), (5.0, 5.0)), ((250.0, 125.0), (230.0, 76.0)))
    assert match.inliers == found.inliers and match.score == found.score


def test_a_logo_label_needs_a_confirmed_region(rules: Detector) -> None:
    """Found by its window alone, a logo over the logo threshold asks for review; a lower
    one that keypoints confirmed, also over the threshold, decides the label instead."""
    window_only = logo_match(1.5, "seen", inliers=0)
    verdict = rules.verdict_from([photo_match(0.5)], [window_only])
    assert (verdict.label, verdict.basis, verdict.score) == ("review", "logo", 1.5)
    confirmed = logo_match(1.3, "confirmed")
    verdict = rules.verdict_from([photo_match(0.5)], [window_only, confirmed])
    assert (verdict.label, verdict.score) == ("logo", 1.3)
    assert verdict.best is verdict.logos[0]  # the logo the label rests on comes first
    assert [m.item_id for m in verdict.logos] == ["confirmed", "seen"]
    outline = replace(window_only, region_source="outline")
    assert rules.verdict_from([], [outline]).label == "logo"
    assert rules.verdict_from([photo_match(0.95)], [window_only]).label == "copy"


def test_a_window_only_logo_is_as_precise_as_the_calibration_found_them(embedder: Embedder) -> None:
    metadata = {**LOGO_METADATA, "window_only": {"photos": 20, "precision": 0.55}}
    catalog = LogoCatalog(LogoModel(LogoNet(TEST_LOGO_NETWORK).eval(), metadata))
    rules = Detector(embedder, new_index_for(embedder), logo_matcher=LogoMatcher(catalog))
    assert rules.logo_calibration is not None
    curve = float(rules.logo_calibration.precision_at(1.5)[0])
    assert curve > 0.9
    window_only, confirmed = logo_match(1.5, inliers=0), logo_match(1.5)
    verdict = rules.verdict_from([], [window_only, confirmed])
    assert [m.region_source for m in verdict.logos] == ["keypoints", "window"]
    assert [m.expected_precision for m in verdict.logos] == [pytest.approx(curve, abs=1e-4), 0.55]
    assert verdict.expected_precision == verdict.logos[0].expected_precision


def test_default_logo_thresholds_without_model_metadata(detector: Detector) -> None:
    """An uncalibrated logo model: 1.2 to report a logo, 0.8 for a review; no precision."""
    assert detector.logo_thresholds == Thresholds(1.2, 0.8)
    assert detector.logo_calibration is None
    verdict = detector.verdict_from([], [logo_match(1.25)])
    assert verdict.label == "logo" and verdict.expected_precision is None


# -- preprocessing and checking -------------------------------------------------------------------


def test_preprocessor_keeps_a_photo_copy_and_cuts_windows(detector: Detector) -> None:
    preprocessor = detector.preprocessor
    assert preprocessor.logo_grid == WHOLE_PHOTO_GRID
    assert preprocessor.keep_side is not None and preprocessor.keep_side >= 640
    assert pickle.loads(pickle.dumps(preprocessor)) == preprocessor  # for worker processes
    photo, _ = paste_logo(draw_logos()["badge"], (900, 600))
    prepared = detector.prepare(photo)
    assert prepared.pixels.shape == (3, 64, 64)
    assert prepared.image is not None and max(prepared.image.size) == 640
    assert prepared.windows is not None and len(prepared.windows) > 0
    assert prepared.source_size == (900, 600)


def test_a_colour_logo_model_gets_colour_windows_from_the_preprocessor(
    embedder: Embedder, photo_index: CatalogIndex, tmp_path: Path
) -> None:
    catalog = build_catalog(write_logo_model(tmp_path / "colour.pt", channels=3), tmp_path)
    colour = Detector(
        embedder, photo_index, PHOTO_THRESHOLDS, logo_matcher=LogoMatcher(catalog, verify_all())
    )
    assert colour.preprocessor.logo_channels == 3
    photo, box = paste_logo(draw_logos()["shapes"])
    prepared = colour.prepare(photo)
    assert prepared.windows is not None and prepared.windows.pixels.shape[1] == 3
    best = colour.check(photo).logos[0]
    assert best.item_id == "shapes" and best.region is not None
    assert corner_error(best.region, box) <= 0.1 * 128


def test_check_reports_the_logo(detector: Detector) -> None:
    photo, box = paste_logo(draw_logos()["shapes"])
    verdict = detector.check(photo)
    best = verdict.logos[0]
    assert best.item_id == "shapes" and best.kind == "logo"
    assert best.inliers is not None and best.inliers >= 8
    assert best.region is not None and corner_error(best.region, box) <= 0.1 * 128
    assert len(verdict.matches) > 0  # the photo search ran too
    if verdict.basis == "logo":
        assert verdict.best is best and verdict.label in {"logo", "review"}
    else:
        assert verdict.label == detector.thresholds.label(verdict.matches[0].score)


def test_without_a_logo_matcher_verdicts_have_no_logos(
    embedder: Embedder, photo_index: CatalogIndex
) -> None:
    plain = Detector(embedder, photo_index, PHOTO_THRESHOLDS)
    assert plain.preprocessor.logo_grid is None
    verdict = plain.check(paste_logo(draw_logos()["badge"])[0])
    assert verdict.logos == () and verdict.basis == "photo"
    assert plain.with_logos([verdict], []) == [verdict]


def test_with_logos_needs_the_kept_photos(detector: Detector) -> None:
    bare = PreparedImage(np.zeros((3, 64, 64), np.uint8))
    verdict = detector.verdict_from([], [])
    with pytest.raises(ValueError, match="photos"):
        detector.with_logos([verdict], [bare])


def jpeg_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, **options)
    return buffer.getvalue()


def test_full_size_reports_the_size_before_a_jpeg_draft() -> None:
    data = jpeg_bytes(Image.new("RGB", (2000, 1600), (200, 190, 180)))
    drafted = decode_image(data, draft_size=640)
    assert drafted.size == (1000, 800)  # JPEG decoded at 1/2 scale
    assert full_size(drafted) == (2000, 1600)
    assert full_size(decode_image(data)) == (2000, 1600)
    png = io.BytesIO()
    Image.new("RGB", (300, 200)).save(png, "PNG")
    assert full_size(decode_image(png.getvalue(), draft_size=64)) == (300, 200)  # not JPEG
    assert full_size(Image.new("RGB", (30, 20))) == (30, 20)  # never decoded here


def test_full_size_follows_exif_rotation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees to show
    data = jpeg_bytes(Image.new("RGB", (2000, 1600), (90, 90, 90)), exif=exif.tobytes())
    drafted = decode_image(data, draft_size=640)
    assert drafted.size == (800, 1000)
    assert full_size(drafted) == (1600, 2000)


def test_region_found_on_a_drafted_jpeg_maps_back_to_full_size(
    detector: Detector, tmp_path: Path
) -> None:
    """A 2000x1600 JPEG is decoded at 1000x800 (draft), shrunk to 640x512 for logo search;
    the logo's region comes back in the 2000x1600 photo's pixels. Keypoint regions of
    256 px: at the default 192 this wordmark gets fewer than ``keypoint_region_inliers``, and
    its region then comes from outline alignment, which slides along its repeated letters."""
    photo, box = paste_logo(draw_logos()["wordmark"], (2000, 1600))
    path = tmp_path / "listing.jpg"
    path.write_bytes(jpeg_bytes(photo))
    assert detector.logo_matcher is not None
    matcher = LogoMatcher(detector.logo_matcher.catalog, replace(verify_all(), region_side=256))
    detector = Detector(detector.embedder, detector.index, PHOTO_THRESHOLDS, logo_matcher=matcher)
    prepared = detector.prepare(path)
    assert prepared.source_size == (2000, 1600)
    assert prepared.image is not None and prepared.image.size == (640, 512)
    verdict = detector.check_prepared([prepared])[0]
    best = verdict.logos[0]
    assert best.item_id == "wordmark" and best.inliers is not None and best.inliers >= 8
    assert best.region is not None
    side = box[2] - box[0]  # 640 px
    assert corner_error(best.region, box) <= 0.1 * side, best.region
    # the keypoints too are in full-size pixels
    xs = [pair[0][0] for pair in best.point_pairs]
    assert min(xs) >= box[0] - 0.05 * side and max(xs) <= box[2] + 0.05 * side


def test_region_of_a_photo_cut_from_a_decoded_one(detector: Detector) -> None:
    """decode_image records the decoded photo's full size in ``info``; PIL copies ``info``
    into every crop or resize, so a crop of a decoded photo still claims the whole photo's
    size and its logo regions come back scaled by (full width / crop width)."""
    photo, _ = paste_logo(draw_logos()["badge"], (640, 640))
    decoded = decode_image(jpeg_bytes(photo))
    crop = decoded.crop((160, 160, 480, 480))  # the logo, 256 px, is in the middle
    box = (32.0, 32.0, 288.0, 288.0)
    prepared = detector.prepare(crop)
    assert prepared.source_size == (320, 320)
    best = detector.check_prepared([prepared])[0].logos[0]
    assert best.region is not None and corner_error(best.region, box) <= 0.1 * 256


# -- load_detector ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_index(
    photo_index: CatalogIndex, catalog: LogoCatalog, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "index"
    photo_index.save(folder)
    catalog.save(logo_index_dir(folder))
    return folder


def test_load_detector_picks_up_the_logo_catalogue(saved_index: Path, embedder: Embedder) -> None:
    detector = load_detector(saved_index, model=embedder)
    assert detector.logo_matcher is not None
    assert len(detector.logo_matcher.catalog) == 3
    assert detector.logo_matcher.config == LogoMatchConfig()
    config = verify_all()
    configured = load_detector(saved_index, model=embedder, logos=config)
    assert configured.logo_matcher is not None and configured.logo_matcher.config == config
    assert load_detector(saved_index, model=embedder, logos=True).logo_matcher is not None
    assert load_detector(saved_index, model=embedder, logos=False).logo_matcher is None


def test_load_detector_rebuilds_both_models_from_the_index(saved_index: Path) -> None:
    detector = load_detector(saved_index)  # photo model from its recipe, logo model from its ref
    assert detector.logo_matcher is not None
    photo, _ = paste_logo(draw_logos()["badge"])
    detector.logo_matcher = LogoMatcher(detector.logo_matcher.catalog, verify_all())
    best = detector.check(photo).logos[0]
    assert best.item_id == "badge" and best.inliers is not None and best.inliers >= 8


def test_load_detector_without_a_logo_catalogue(
    photo_index: CatalogIndex, embedder: Embedder, tmp_path: Path
) -> None:
    photo_index.save(tmp_path / "index")
    assert load_detector(tmp_path / "index", model=embedder).logo_matcher is None
    with pytest.raises(ValueError, match="logo"):
        load_detector(tmp_path / "index", model=embedder, logos=True)
    with pytest.raises(ValueError, match="logo"):
        load_detector(tmp_path / "index", model=embedder, logos=LogoMatchConfig())


# -- score results ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Box]:
    """A photo showing the badge, one without a logo and one unreadable file."""
    folder = tmp_path_factory.mktemp("listings")
    photo, box = paste_logo(draw_logos()["badge"])
    photo.save(folder / "a_badge.png")
    synthetic_image(50, (120, 90)).save(folder / "b_plain.png")
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder, box


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_score_rows_carry_logos_and_logo_time(
    detector: Detector, listings: tuple[Path, Box], tmp_path: Path, fmt: str
) -> None:
    folder, box = listings
    out = tmp_path / f"results.{fmt}"
    summary = score_images(
        detector, [folder], out, batch_size=4, workers=1, processes=False, progress=False
    )
    assert summary.to_dict()["errors"] == 1
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.column_names == list(CSV_COLUMNS)
        assert "logos" in CSV_COLUMNS and "logo_ms" in TIMING_COLUMNS
        rows = {Path(row["path"]).name: row for row in table.to_pylist()}
    else:
        lines = out.read_text().splitlines()
        rows = {Path(row["path"]).name: row for row in map(json.loads, lines)}
    badge, plain, broken = rows["a_badge.png"], rows["b_plain.png"], rows["c_broken.jpg"]
    best = badge["logos"][0]
    assert best["item_id"] == "badge" and best["inliers"] >= 8
    region = best["region"]
    assert isinstance(region, list) and all(isinstance(p, list) and len(p) == 2 for p in region)
    assert corner_error(tuple((p[0], p[1]) for p in region), box) <= 0.1 * 128
    assert badge["logo_ms"] is not None and badge["logo_ms"] > 0
    assert plain["logo_ms"] is not None
    assert all(m["inliers"] == 0 for m in plain["logos"])
    assert badge["matches"] and badge["matches"][0]["region"] is None
    assert broken["label"] == "error" and broken["logos"] == [] and broken["logo_ms"] is None


def test_score_csv_has_a_logos_column(
    detector: Detector, listings: tuple[Path, Box], tmp_path: Path
) -> None:
    folder, _ = listings
    out = tmp_path / "results.csv"
    score_images(detector, [folder], out, workers=1, processes=False, progress=False)
    import csv

    with out.open(newline="") as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    logos = json.loads(rows["a_badge.png"]["logos"])
    assert logos[0]["item_id"] == "badge" and len(logos[0]["region"]) == 4
    assert rows["a_badge.png"]["logo_ms"] != ""


def test_score_without_logo_search_leaves_the_columns_empty(
    embedder: Embedder,
    photo_index: CatalogIndex,
    listings: tuple[Path, Box],
    tmp_path: Path,
) -> None:
    plain = Detector(embedder, photo_index, PHOTO_THRESHOLDS)
    out = tmp_path / "results.parquet"
    score_images(plain, [listings[0]], out, workers=1, processes=False, progress=False)
    rows = pq.read_table(out).to_pylist()
    assert all(row["logos"] == [] and row["logo_ms"] is None for row in rows)


def test_evidence_shows_logos_above_the_review_threshold_only(
    rules: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lookalike import verdict_evidence

    monkeypatch.setattr(verdict_evidence, "_reference", lambda _d, _m: Image.new("RGB", (8, 8)))
    strong, weak, faint = logo_match(1.5), logo_match(0.9, "logo2"), logo_match(0.5, "logo3")
    verdict = rules.verdict_from([photo_match(0.5)], [strong, weak, faint])
    panels = verdict_evidence.evidence_panels(rules, verdict)
    assert [(p.label, p.region is not None) for p in panels] == [("logo", True), ("review", True)]
    assert panels[0].point_pairs == verdict.logos[0].point_pairs
    assert not any("approximate" in line for line in panels[0].details)
    # a logo found but not traced says its outline is only the window it was found in
    unconfirmed = rules.verdict_from([photo_match(0.5)], [logo_match(1.5, inliers=0)])
    (panel,) = verdict_evidence.evidence_panels(rules, unconfirmed)
    assert "outline approximate: the area it was found in" in panel.details
