"""The logo benchmark: held-out splits, balanced queries, reuse, brand scoring, ORB baseline."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from logo_helpers import one_torch_thread, still_paste
from lookalike.cli import main
from lookalike.data.augment import load_font
from lookalike.data.composites import paste_logo
from lookalike.data.logos import shared_logo_specs, split_by_item
from lookalike.data.synthetic import synthetic_image
from lookalike.index import CatalogRecord
from lookalike.logos.geometry import Quad
from lookalike.logos.matcher import LogoMatch, LogoMatchConfig, RegionSource
from lookalike.logos.network import load_logo_model
from lookalike.training.logo_baselines import OrbLogoMatcher
from lookalike.training.logo_benchmark import (
    BENCHMARK_SPLIT_SEED,
    LogoBenchmark,
    LogoQuery,
    build_composite_set,
    build_logo_benchmark,
    region_accuracy,
    score_brand_predictions,
    top1_by_logo_size,
    training_backgrounds,
    training_logos,
)
from lookalike.training.logo_calibrate import calibrate_logo_model, shared_logo_catalog
from lookalike.training.logo_train import LogoTrainingData

HELD_OUT = 0.5  # a big share, so that a dozen fake logos leave several for the benchmark
BROKEN = "simple_icons/broken1"
SVG_SHAPES = (
    '<circle cx="12" cy="12" r="9"/>',
    '<rect x="3" y="6" width="18" height="12"/>',
    '<path d="M2 20 L12 3 L22 20 Z"/>',
    '<path d="M3 3h18v4H7v4h10v4H7v6H3z"/>',
    '<circle cx="8" cy="12" r="5"/><circle cx="16" cy="12" r="5"/>',
    '<rect x="2" y="2" width="8" height="20"/><rect x="14" y="8" width="8" height="14"/>',
)


def write_fake_shared(root: Path) -> Path:
    """simple_icons (SVGs), car_logos (palette PNGs, one without a name) and 12 photos."""
    icons = root / "simple_icons"
    (icons / "svg").mkdir(parents=True)
    rows = ["svg,png,slug,title,hex,png_background,aliases"]
    for index, shape in enumerate(SVG_SHAPES):
        svg = f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">{shape}</svg>'
        (icons / "svg" / f"icon{index}.svg").write_text(svg, encoding="utf-8")
        rows.append(
            f"svg/icon{index}.svg,png/icon{index}.png,icon{index},Icon {index},000000,white,"
        )
    # Held out by the fixed split seed, and unrenderable: the build must skip it.
    (icons / "svg" / "broken1.svg").write_text("<svg><path d=", encoding="utf-8")
    rows.append("svg/broken1.svg,png/broken1.png,broken1,Broken,000000,white,")
    (icons / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cars = root / "car_logos"
    (cars / "images").mkdir(parents=True)
    rows = ["image,slug,name,width,height"]
    for index in range(6):
        logo = Image.new("RGBA", (80, 40), (0, 0, 0, 0))
        draw = ImageDraw.Draw(logo)
        draw.ellipse((2, 2, 77, 37), fill=(20 * index, 60, 200, 255))
        draw.text((20, 12), f"C{index}", fill=(255, 255, 255, 255))
        logo.convert("P").save(cars / "images" / f"car-{index}.png")
        rows.append(
            f"images/car-{index}.png,car-{index},{'' if index == 0 else f'Car {index}'},80,40"
        )
    (cars / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    photos = root / "fashion_products_small" / "images"
    photos.mkdir(parents=True)
    for index in range(12):
        synthetic_image(index, (48, 56)).save(photos / f"{10000 + index}.jpg")
    return root


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_shared(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def built(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> LogoBenchmark:
    out = tmp_path_factory.mktemp("bench")
    return build_logo_benchmark(
        shared, out, positives=6, seed=1, held_out_fraction=HELD_OUT, side=64
    )


def test_training_and_benchmark_logos_and_photos_are_disjoint(
    shared: Path, built: LogoBenchmark
) -> None:
    train_ids = {spec.item_id for spec in training_logos(shared, HELD_OUT)}
    all_ids = {spec.item_id for spec in shared_logo_specs(shared)}
    used = {query.item_id for query in built.positives}
    assert used and used <= all_ids - train_ids
    assert train_ids and train_ids < all_ids
    photos = sorted((shared / "fashion_products_small" / "images").iterdir())
    train_photos = training_backgrounds(shared, HELD_OUT)
    held_out = split_by_item(photos, lambda p: p.name, HELD_OUT, BENCHMARK_SPLIT_SEED)[1]
    assert train_photos and held_out
    assert set(train_photos).isdisjoint(held_out)
    assert sorted(train_photos + held_out) == photos


def test_queries_are_balanced_and_written(shared: Path, built: LogoBenchmark) -> None:
    assert len(built.positives) == 6 and len(built.negatives) == 6
    ids = [query.query_id for query in built.queries]
    assert ids == sorted(ids) and len(set(ids)) == 12
    for query in built.queries:
        with Image.open(query.image) as image:
            assert image.format == "JPEG" and min(image.size) == 64
        if query.is_positive:
            assert query.quad is not None and query.brand and query.item_id
            for x, y in query.quad:
                assert 0 <= x <= image.width and 0 <= y <= image.height
        else:
            assert query.quad is None and query.item_id is None
    # Positives cycle through the held-out logos before repeating one.
    held_out = split_by_item(
        shared_logo_specs(shared), lambda spec: spec.item_id, HELD_OUT, BENCHMARK_SPLIT_SEED
    )[1]
    renderable = [spec for spec in held_out if spec.item_id != BROKEN]
    assert len({query.item_id for query in built.positives}) == min(6, len(renderable))
    # Ids are shuffled: positives do not simply come first.
    assert [query.is_positive for query in built.queries] != [True] * 6 + [False] * 6


def test_unrenderable_held_out_logo_is_replaced(shared: Path, tmp_path: Path) -> None:
    held_out = split_by_item(
        shared_logo_specs(shared), lambda spec: spec.item_id, HELD_OUT, BENCHMARK_SPLIT_SEED
    )[1]
    assert BROKEN in {spec.item_id for spec in held_out}
    benchmark = build_logo_benchmark(
        shared, tmp_path, positives=len(held_out), held_out_fraction=HELD_OUT, side=48
    )
    used = [query.item_id for query in benchmark.positives]
    assert len(used) == len(held_out) and BROKEN not in used
    assert set(used) == {spec.item_id for spec in held_out} - {BROKEN}


def test_composite_set_from_training_data_uses_only_training_logos(
    shared: Path, tmp_path: Path
) -> None:
    logos = training_logos(shared, HELD_OUT)
    built = build_composite_set(
        logos, training_backgrounds(shared, HELD_OUT), tmp_path, positives=4, seed=5, side=40
    )
    assert len(built.positives) == len(built.negatives) == 4
    assert {q.item_id for q in built.positives} <= {spec.item_id for spec in logos}
    with pytest.raises(ValueError, match="no logo"):
        build_composite_set([], [], tmp_path / "empty", positives=1)


def test_saved_training_data_is_the_training_split_and_trains(shared: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    argv = ["save-logo-training", str(shared), "--out", str(saved), "--max-backgrounds", "3"]
    assert main([*argv, "--quiet"]) == 0
    data = LogoTrainingData.read(saved, progress=False)
    assert [spec.item_id for spec in data.specs] == [
        spec.item_id for spec in training_logos(shared)
    ]
    assert len(data.backgrounds) == 3
    run = tmp_path / "run"
    tiny = ["--widths", "4,4,8,8", "--steps", "1", "--batch-size", "2", "--negatives", "1"]
    argv = ["train-logos", str(saved), "--out", str(run), *tiny, "--workers", "0", "--quiet"]
    assert main([*argv, "--all-references", "--eval-every", "1"]) == 0
    assert (run / "logo.pt").is_file()


@pytest.mark.parametrize("option", [("--quality", "0"), ("--max-backgrounds", "-1")])
def test_save_logo_training_refuses_bad_settings(
    shared: Path, tmp_path: Path, option: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["save-logo-training", str(shared), "--out", str(tmp_path / "saved"), *option]
    assert main([*argv, "--quiet"]) == 2
    assert option[0] in capsys.readouterr().err
    assert not (tmp_path / "saved").exists()


def test_car_logo_without_a_name_uses_its_slug(shared: Path) -> None:
    specs = {spec.item_id: spec for spec in shared_logo_specs(shared)}
    assert specs["car_logos/car-0"].brand == "car-0"
    assert specs["car_logos/car-1"].brand == "Car 1"


def test_load_round_trips(built: LogoBenchmark) -> None:
    loaded = LogoBenchmark.load(built.root)
    assert loaded == built
    query = loaded.positives[0]
    assert isinstance(query.quad, tuple) and isinstance(query.quad[0], tuple)


def test_rebuild_with_same_arguments_reuses_the_files(shared: Path, tmp_path: Path) -> None:
    first = build_logo_benchmark(
        shared, tmp_path, positives=3, seed=2, held_out_fraction=HELD_OUT, side=48
    )
    stamps = {q.query_id: q.image.stat().st_mtime_ns for q in first.queries}
    again = build_logo_benchmark(
        shared, tmp_path, positives=3, seed=2, held_out_fraction=HELD_OUT, side=48
    )
    assert again == first
    assert {q.query_id: q.image.stat().st_mtime_ns for q in again.queries} == stamps
    # Same arguments give the same pictures even when built from scratch.
    other = tmp_path / "other"
    fresh = build_logo_benchmark(
        shared, other, positives=3, seed=2, held_out_fraction=HELD_OUT, side=48
    )
    for a, b in zip(first.queries, fresh.queries, strict=True):
        assert a.quad == b.quad and a.image.read_bytes() == b.image.read_bytes()
    # Other arguments, or a lost image, rebuild.
    changed = build_logo_benchmark(
        shared, tmp_path, positives=4, seed=2, held_out_fraction=HELD_OUT, side=48
    )
    assert len(changed.queries) == 8
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 8
    changed.queries[0].image.unlink()
    repaired = build_logo_benchmark(
        shared, tmp_path, positives=4, seed=2, held_out_fraction=HELD_OUT, side=48
    )
    assert all(q.image.is_file() for q in repaired.queries)


# ------------------------------------------------------------------------------- scoring


def hand_made() -> LogoBenchmark:
    def query(query_id: str, brand: str | None) -> LogoQuery:
        quad = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)) if brand else None
        return LogoQuery(query_id, Path(f"{query_id}.jpg"), brand and f"x/{brand}", brand, quad)

    queries = (query("q1", "Alfa Romeo"), query("q2", "Bmw"), query("q3", "Citroën"))
    return LogoBenchmark(Path("."), (*queries, query("n1", None), query("n2", None)))


def test_scoring_matches_a_hand_computation() -> None:
    predictions = [
        ("q1", "alfa-romeo", 0.9),
        ("q1", "ALFA ROMEO", 0.5),  # same brand again: counts once, with its best score
        ("q1", "Bmw", 0.3),
        ("q2", "Citroen", 0.8),
        ("q2", "BMW", 0.6),
        ("n1", "Alfa Romeo", 0.7),  # anything on a negative is a false positive
    ]
    result = score_brand_predictions(predictions, hand_made())
    # Ranked: 0.9 right, 0.8 wrong, 0.7 wrong, 0.6 right, 0.3 wrong; 3 positives.
    # AP = 1/3 * 1/1 + 1/3 * 2/4 = 0.5; only the first point reaches precision 0.9.
    assert result["micro_ap"] == pytest.approx(0.5)
    assert result["recall_at_p90"] == pytest.approx(1 / 3)
    assert result["threshold_at_p90"] == pytest.approx(0.9)
    # q1 right, q2's best is Citroen (wrong), q3 has no prediction.
    assert result["top1_accuracy"] == pytest.approx(1 / 3)
    assert (result["positives"], result["negatives"], result["predictions"]) == (3, 2, 5)


def test_scoring_counts_ties_against_the_system() -> None:
    predictions = [("q1", "Bmw", 0.5), ("q1", "Alfa Romeo", 0.5), ("q2", "BMW", 1.0)]
    result = score_brand_predictions(predictions, hand_made())
    assert result["top1_accuracy"] == pytest.approx(1 / 3)  # q1 tied with a wrong brand
    perfect = [("q1", "Alfa Romeo", 3.0), ("q2", "BMW", 2.0), ("q3", "citroen", 1.0)]
    result = score_brand_predictions(perfect, hand_made())
    assert result["micro_ap"] == pytest.approx(1.0)
    assert result["recall_at_p90"] == pytest.approx(1.0)
    assert result["top1_accuracy"] == pytest.approx(1.0)
    assert score_brand_predictions([], hand_made())["micro_ap"] == 0.0


def test_region_accuracy_measures_the_best_right_match_only() -> None:
    bench = hand_made()  # positives' logos are the unit square
    q1, q2, q3, n1, _ = bench.queries

    def found(brand: str, score: float, region: Quad, source: RegionSource) -> LogoMatch:
        record = CatalogRecord(f"x/{brand}", "0" * 64, brand, "logo", None, None, "2026-01-01")
        return LogoMatch(record, score, score, 0, region, region_source=source)

    exact = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    half = ((0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (0.0, 1.0))  # twice the logo: IoU 0.5
    result = region_accuracy(
        [
            (q1, [found("Alfa Romeo", 0.9, exact, "keypoints"), found("Bmw", 0.2, half, "window")]),
            (q2, [found("BMW", 0.8, half, "outline")]),
            (q3, [found("Bmw", 0.9, exact, "keypoints"), found("Citroen", 0.5, exact, "window")]),
            (n1, [found("Bmw", 0.9, exact, "keypoints")]),  # a negative has no region to find
        ]
    )
    # q3's best match is the wrong brand: its region is not measured
    assert result["located"] == 2
    assert result["median_iou"] == pytest.approx(0.75, abs=0.01)
    assert result["iou_at_least_0.5"] == pytest.approx(1.0)
    assert result["by_source"]["keypoints"]["median_iou"] == pytest.approx(1.0, abs=0.01)
    assert result["by_source"]["outline"]["located"] == 1
    assert region_accuracy([])["median_iou"] is None


def test_top1_by_logo_size_buckets_positives_by_their_logo(tmp_path: Path) -> None:
    def query(query_id: str, brand: str | None, logo_side: float) -> LogoQuery:
        path = tmp_path / f"{query_id}.png"
        Image.new("RGB", (400, 200)).save(path)  # shorter side 200
        quad = ((0.0, 0.0), (logo_side, 0.0), (logo_side, 10.0), (0.0, 10.0)) if brand else None
        return LogoQuery(query_id, path, brand and f"x/{brand}", brand, quad)

    def found(brand: str, score: float) -> LogoMatch:
        record = CatalogRecord(f"x/{brand}", "0" * 64, brand, "logo", None, None, "2026-01-01")
        square = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
        return LogoMatch(record, score, score, 0, square)

    small, small2 = query("s1", "Bmw", 20.0), query("s2", "Bmw", 39.0)  # 0.1, 0.195
    middle, large = query("m", "Audi", 40.0), query("l", "Audi", 150.0)  # 0.2, 0.75
    result = top1_by_logo_size(
        [
            (small, [found("BMW", 0.9), found("Audi", 0.5)]),
            (small2, [found("Audi", 0.9), found("Bmw", 0.5)]),  # the wrong brand first
            (middle, [found("audi", 0.7)]),
            (large, []),  # nothing found
            (query("n", None, 0.0), [found("Bmw", 0.9)]),  # negatives are not counted
        ]
    )
    assert result == {
        "0-0.2": {"positives": 2, "top1_accuracy": 0.5},
        "0.2-0.35": {"positives": 1, "top1_accuracy": 1.0},
        "0.35-1": {"positives": 1, "top1_accuracy": 0.0},
    }


def test_scoring_rejects_bad_predictions() -> None:
    with pytest.raises(ValueError, match="unknown query"):
        score_brand_predictions([("q9", "Bmw", 1.0)], hand_made())
    with pytest.raises(ValueError, match="NaN"):
        score_brand_predictions([("q1", "Bmw", float("nan"))], hand_made())
    with pytest.raises(ValueError, match="no letter or digit"):
        score_brand_predictions([("q1", "--", 1.0)], hand_made())


# ---------------------------------------------------------------------------- baseline


def textured_logo(seed: int) -> Image.Image:
    """A logo with plenty of corners: letters and a few shapes on transparency."""
    rng = random.Random(seed)
    logo = Image.new("RGBA", (256, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    for _ in range(6):
        x, y = rng.randrange(0, 200), rng.randrange(0, 110)
        box = (x, y, x + rng.randrange(20, 56), y + rng.randrange(20, 50))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=(20, 20, 20, 255))
    word = "".join(rng.choice("AKMRTXZ") for _ in range(4))
    draw.text((10, 100), word, font=load_font(48), fill=(200, 20, 20, 255))
    return logo


def test_orb_baseline_finds_a_logo_pasted_large() -> None:
    logos = [(f"test/{i}", f"Brand {i}", textured_logo(i)) for i in range(4)]
    matcher = OrbLogoMatcher(logos)
    assert len(matcher) == 4 and matcher.skipped == []
    config = still_paste(scale=(0.7, 0.7), max_rotation=0.0, perspective=0.0)
    background = synthetic_image(3, (400, 300))
    image, _ = paste_logo(background, logos[2][2], random.Random(0), config)
    results = matcher.match(image)
    assert results[0][:2] == ("test/2", "Brand 2")
    assert results[0][2] >= 15
    assert all(score < results[0][2] for _, _, score in results[1:])
    without = matcher.match(background)
    assert not without or without[0][2] < results[0][2] / 2


def test_orb_baseline_skips_logos_without_keypoints() -> None:
    blank = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    blank.putpixel((3, 3), (0, 0, 0, 255))
    matcher = OrbLogoMatcher([("a/blank", "Blank", blank), ("a/tex", "Tex", textured_logo(1))])
    assert matcher.skipped == ["a/blank"] and len(matcher) == 1
    flat = np.full((100, 100, 3), 200, dtype=np.uint8)
    assert matcher.match(Image.fromarray(flat)) == []
    with pytest.raises(ValueError, match="min_matches"):
        OrbLogoMatcher([], min_matches=3)


def test_calibrating_a_logo_model_stores_its_background_bank_and_thresholds(
    shared: Path, logo_model_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "calibrated.pt"
    with one_torch_thread():
        result = calibrate_logo_model(
            logo_model_path, shared, out, tmp_path / "work", positives=3, background_photos=2
        )
    model = load_logo_model(out)
    assert model.background is not None and model.background.dim == model.config.dim
    assert len(model.background.vectors) > 20  # two photos' grey windows
    assert model.metadata["thresholds"] == result.thresholds
    assert model.metadata["calibrated_on"]["impostor_weight"] == LogoMatchConfig().impostor_weight
    assert model.metadata["window_only"]["photos"] == result.window_only_photos
    catalog = shared_logo_catalog(shared, str(out), tmp_path / "work")
    records = list(catalog.index.records())
    shifts = catalog.impostor_shifts(records, LogoMatchConfig().impostor_k)
    assert min(shifts.values()) <= 0.0 <= max(shifts.values())  # centred on the typical logo
