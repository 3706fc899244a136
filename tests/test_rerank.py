"""Local-feature re-ranking of the descriptor shortlist."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter, ImageOps

from lookalike import rerank
from lookalike.data.synthetic import synthetic_image
from lookalike.data.tiles import TileConfig
from lookalike.detect import Detector, load_detector
from lookalike.index import CatalogIndex, CatalogItem, CatalogRecord, SearchHit
from lookalike.indexing import new_index_for
from lookalike.keypoint_index import KeypointIndex
from lookalike.model import Embedder, create_embedder
from lookalike.rerank import (
    HitsFor,
    LocalVerifier,
    ReferenceLoader,
    RerankConfig,
    load_reference_image,
)
from lookalike.siblings import SiblingSimilarity
from lookalike.verdict_evidence import evidence_panels


def textured(seed: int) -> Image.Image:
    """A synthetic picture with fine noise: ORB needs texture to find corners."""
    base = np.asarray(synthetic_image(seed, (320, 320)), dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-40, 40, size=base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Embedder, Path]:
    folder = tmp_path_factory.mktemp("catalogue")
    embedder = create_embedder("default")
    index = new_index_for(embedder)
    images = []
    for seed in range(8):
        path = folder / f"item{seed}.png"
        textured(seed).save(path)
        images.append(path)
    items = [
        CatalogItem(p.stem, hashlib.sha256(p.read_bytes()).hexdigest(), source=str(p))
        for p in images
    ]
    index.add(embedder.embed(images), items)
    index.save(folder / "index")
    return embedder, folder


def rotated_crop(image: Image.Image) -> Image.Image:
    cropped = image.crop((40, 30, 300, 290))
    return cropped.rotate(20, expand=True, fillcolor=(255, 255, 255))


def test_verification_boosts_the_true_original(catalogue: tuple[Embedder, Path]) -> None:
    embedder, folder = catalogue
    detector = load_detector(folder / "index", model=embedder, verify=False, top_k=8)
    verified = load_detector(
        folder / "index", model=embedder, verify=RerankConfig(shortlist=8), top_k=8
    )
    query = rotated_crop(textured(3))
    plain = detector.check(query)
    boosted = verified.check(query)
    assert boosted.best is not None and boosted.best.item_id == "item3"
    original = {m.item_id: m.score for m in plain.matches}["item3"]
    assert boosted.best.score > original + 0.3  # many inliers: a large bonus
    others = [m.score for m in boosted.matches[1:]]
    assert max(others) < boosted.best.score - 0.3


def test_mirrored_copy_is_verified_through_the_mirror_retry(
    catalogue: tuple[Embedder, Path],
) -> None:
    embedder, folder = catalogue
    query = ImageOps.mirror(textured(5))
    with_retry = load_detector(folder / "index", model=embedder, verify=RerankConfig(shortlist=8))
    without = load_detector(
        folder / "index", model=embedder, verify=RerankConfig(shortlist=8, mirror_retry=False)
    )
    assert with_retry.check(query).best.item_id == "item5"  # type: ignore[union-attr]
    verifier = with_retry.verifier
    assert verifier is not None
    hits = with_retry.index.search(embedder.embed([query]), 8)[0]
    by_id = {v.hit.record.item_id: v for v in verifier.rerank(query, hits)}
    assert by_id["item5"].mirrored and by_id["item5"].inliers >= 12
    plain_ids = {v.hit.record.item_id: v for v in without.verifier.rerank(query, hits)}  # type: ignore[union-attr]
    assert plain_ids["item5"].inliers < by_id["item5"].inliers


def test_a_negative_copy_is_verified_through_the_invert_retry(
    catalogue: tuple[Embedder, Path],
) -> None:
    """ORB's binary tests flip on a negative: only the inverted listing matches point for point."""
    embedder, folder = catalogue
    query = ImageOps.invert(textured(6))
    detector = load_detector(folder / "index", model=embedder, verify=RerankConfig(shortlist=8))
    hits = detector.index.search(embedder.embed([query]), 8)[0]
    by_id = {v.hit.record.item_id: v for v in LocalVerifier().rerank(query, hits)}
    assert by_id["item6"].inverted and by_id["item6"].inliers >= 12
    assert by_id["item6"].agreement is not None and by_id["item6"].agreement > 0.8
    assert not any(v.inliers for key, v in by_id.items() if key != "item6")
    plain = LocalVerifier(RerankConfig(invert_retry=False)).rerank(query, hits)
    assert {v.hit.record.item_id: v.inliers for v in plain}["item6"] < 8
    # the detector retries only what the negative tile found
    others = LocalVerifier().rerank(query, hits, invert={"item1", "item2"})
    assert {v.hit.record.item_id: v.inliers for v in others}["item6"] < 8
    chosen = LocalVerifier().rerank(query, hits, invert={"item6"})
    assert {v.hit.record.item_id: v.inverted for v in chosen}["item6"]


def test_the_tiled_detector_confirms_a_negative_copy(catalogue: tuple[Embedder, Path]) -> None:
    embedder, folder = catalogue
    detector = load_detector(
        folder / "index", model=embedder, verify=RerankConfig(shortlist=8), tiles=TileConfig()
    )
    verdict = detector.check(ImageOps.invert(textured(6)))
    best = verdict.best
    assert best is not None and best.item_id == "item6"
    assert best.inliers is not None and best.inliers >= 12
    assert best.agreement is not None and best.agreement > 0.8
    # the moderator is told why the colours differ
    assert best.transform == "inverted" and best.to_dict()["transform"] == "inverted"
    details = evidence_panels(detector, verdict)[0].details
    assert "the listing is its negative (colours inverted)" in details


def test_band_limits_which_queries_are_verified() -> None:
    verifier = LocalVerifier(RerankConfig(band=(0.5, 0.9)))
    assert [verifier.wants(s) for s in (0.4, 0.5, 0.89, 0.9)] == [False, True, True, False]
    assert LocalVerifier().wants(-1.0)


def test_missing_reference_file_keeps_the_descriptor_score(
    catalogue: tuple[Embedder, Path], tmp_path: Path
) -> None:
    embedder, _ = catalogue
    index = new_index_for(embedder)
    ghost = CatalogItem("ghost", "0" * 64, source=str(tmp_path / "gone.png"))
    index.add(embedder.embed([textured(1)]), [ghost])
    detector = Detector(embedder, index, verifier=LocalVerifier(), top_k=1)
    plain = Detector(embedder, index, top_k=1)
    assert detector.check(textured(1)).score == pytest.approx(plain.check(textured(1)).score)


def test_config_round_trip_and_model_recommendation(catalogue: tuple[Embedder, Path]) -> None:
    config = RerankConfig(shortlist=5, band=(0.2, 0.8))
    assert RerankConfig.from_dict(config.to_dict()) == config
    embedder, folder = catalogue
    embedder.metadata["rerank"] = config.to_dict()
    try:
        recommended = load_detector(folder / "index", model=embedder)
        assert recommended.verifier is not None and recommended.verifier.config == config
        assert load_detector(folder / "index", model=embedder, verify=False).verifier is None
    finally:
        del embedder.metadata["rerank"]
    assert load_detector(folder / "index", model=embedder).verifier is None


def test_a_variant_earns_less_than_a_copy_though_both_have_inliers(
    catalogue: tuple[Embedder, Path],
) -> None:
    """Half the picture replaced (the same watch, another strap): keypoints on the shared
    half still match, but the aligned pictures as a whole disagree."""
    embedder, folder = catalogue
    detector = load_detector(folder / "index", model=embedder, verify=RerankConfig(shortlist=8))
    verifier = detector.verifier
    assert verifier is not None
    original = textured(2)
    variant = original.copy()
    variant.paste(textured(7).crop((160, 0, 320, 320)), (160, 0))
    results = {}
    for name, query in (("copy", original), ("variant", variant)):
        hits = detector.index.search(embedder.embed([query]), 8)[0]
        results[name] = {v.hit.record.item_id: v for v in verifier.rerank(query, hits)}["item2"]
    copy, variant_hit = results["copy"], results["variant"]
    assert copy.inliers >= 12 and variant_hit.inliers >= 12
    assert copy.agreement is not None and copy.agreement > 0.9
    assert variant_hit.agreement is not None and variant_hit.agreement < copy.agreement - 0.2
    bonus = {name: v.score - v.hit.score for name, v in results.items()}
    assert bonus["variant"] < bonus["copy"] - 0.15


def test_settings_stored_before_the_agreement_keep_inliers_only() -> None:
    """A model calibrated on inlier-only fused scores must be scored the same way."""
    assert RerankConfig().agreement_side == 256
    stored = RerankConfig().to_dict()
    del stored["agreement_side"]
    assert RerankConfig.from_dict(stored).agreement_side is None
    assert RerankConfig.from_dict(RerankConfig().to_dict()).agreement_side == 256
    del stored["upscale"]
    assert RerankConfig().upscale and not RerankConfig.from_dict(stored).upscale
    del stored["invert_retry"]
    assert RerankConfig().invert_retry and not RerankConfig.from_dict(stored).invert_retry


def _pairs_offset(pairs: tuple) -> np.ndarray:
    """Per keypoint pair, catalogue xy minus listing xy."""
    return np.array([(rx - qx, ry - qy) for (qx, qy), (rx, ry) in pairs])


def test_a_verified_crop_carries_its_keypoints_in_listing_pixels(
    catalogue: tuple[Embedder, Path],
) -> None:
    """A crop of item4: listing (x, y) is catalogue (x + 40, y + 30). The catalogue photo
    fills the whole listing, so there is no region to outline."""
    embedder, folder = catalogue
    detector = load_detector(folder / "index", model=embedder, verify=RerankConfig(shortlist=8))
    query = textured(4).crop((40, 30, 300, 290))
    best = detector.check(query).best
    assert best is not None and best.item_id == "item4"
    assert best.inliers is not None and best.inliers >= 12
    assert len(best.point_pairs) == best.inliers
    assert np.allclose(np.median(_pairs_offset(best.point_pairs), axis=0), (40, 30), atol=2)
    assert best.region is None and best.transform is None  # matched as it is
    assert best.agreement is not None and best.agreement > 0.9


def test_a_mirrored_copy_maps_back_through_the_mirror(catalogue: tuple[Embedder, Path]) -> None:
    embedder, folder = catalogue
    detector = load_detector(folder / "index", model=embedder, verify=RerankConfig(shortlist=8))
    query = ImageOps.mirror(textured(6))
    verdict = detector.check(query)
    best = verdict.best
    assert best is not None and best.item_id == "item6" and best.inliers
    assert best.transform == "mirrored"
    assert "the listing is a mirror image of it" in evidence_panels(detector, verdict)[0].details
    # a mirror: listing x is catalogue 320 - x, y unchanged
    listing = np.array([pair[0] for pair in best.point_pairs])
    reference = np.array([pair[1] for pair in best.point_pairs])
    assert np.abs(np.median(listing[:, 0] + reference[:, 0]) - 320) < 2
    assert np.abs(np.median(listing[:, 1] - reference[:, 1])) < 2


def test_evidence_is_given_in_the_full_size_listing_pixels(
    catalogue: tuple[Embedder, Path],
) -> None:
    """Keypoints are found on a copy shrunk to max_side; the evidence comes back in the
    listing's own pixels. item1 (320 px) pasted at 480 px into a 960 px listing at (240, 160)
    (the descriptor alone would miss it: tiles and re-ranking find it)."""
    embedder, folder = catalogue
    detector = load_detector(
        folder / "index", model=embedder, verify=RerankConfig(shortlist=8), tiles=True
    )
    listing_photo = Image.fromarray(
        np.random.default_rng(9).integers(0, 255, (720, 960, 3), dtype=np.uint8)
    )
    listing_photo.paste(textured(1).resize((480, 480)), (240, 160))
    verdict = detector.check(listing_photo)
    best = verdict.best
    assert best is not None and best.item_id == "item1" and best.region is not None
    expected = np.array([(240, 160), (720, 160), (720, 640), (240, 640)], dtype=float)
    assert np.abs(np.array(best.region) - expected).max() < 12
    listing = np.array([pair[0] for pair in best.point_pairs])
    reference = np.array([pair[1] for pair in best.point_pairs])
    mapped = reference * 1.5 + (240, 160)
    assert np.median(np.linalg.norm(listing - mapped, axis=1)) < 4
    # the evidence picture outlines it and says why
    panel = evidence_panels(detector, verdict)[0]
    assert panel.region == best.region and len(panel.point_pairs) == best.inliers
    assert f"aligned pictures agree {best.agreement:.0%}" in panel.details
    assert any("keypoints agree" in line for line in panel.details)


def test_unverified_matches_carry_no_evidence(catalogue: tuple[Embedder, Path]) -> None:
    embedder, folder = catalogue
    detector = load_detector(folder / "index", model=embedder, verify=RerankConfig(shortlist=8))
    others = [m for m in detector.check(textured(3)).matches if m.item_id != "item3"]
    assert others and all(m.inliers is None and m.region is None for m in others)
    assert all(m.point_pairs == () for m in others)


def test_small_photos_are_enlarged_for_keypoints() -> None:
    """ORB leaves out a 31-px border: a 120-px listing keeps few keypoints at its own size."""
    small = textured(3).resize((224, 224)).crop((60, 50, 180, 170))
    enlarged = LocalVerifier(RerankConfig(upscale=True))
    as_is = LocalVerifier(RerankConfig(upscale=False))
    assert enlarged.keypoint_image(small).size == (384, 384)
    assert as_is.keypoint_image(small).size == (120, 120)
    assert len(enlarged.features(small)) > 3 * len(as_is.features(small))
    assert enlarged.keypoint_image(textured(1).resize((960, 480))).size == (384, 192)


def collage_with(picture: Image.Image) -> Image.Image:
    """``picture`` shrunk into one cell of a 2x2 grid of unrelated textures."""
    canvas = Image.new("RGB", (640, 640), "white")
    cells = [picture, textured(101), textured(102), textured(103)]
    for position, cell in enumerate(cells):
        canvas.paste(cell.resize((300, 300)), (330 * (position % 2), 330 * (position // 2)))
    return canvas


def test_keypoint_voting_brings_in_the_photo_the_shortlist_missed(
    catalogue: tuple[Embedder, Path],
) -> None:
    _, folder = catalogue
    index = CatalogIndex.load(folder / "index")
    wrong = SearchHit(_record(index, "item0"), 0.5)
    hits_for = _scored(index, 0.1)
    verifier = LocalVerifier(RerankConfig(shortlist=1, vote=3))
    verifier.sync_keypoints(index)
    query = collage_with(textured(5))
    found = verifier.rerank(query, [wrong], hits_for=hits_for)
    assert found[0].hit.record.item_id == "item5" and found[0].inliers >= 20
    assert found[0].score > 0.1 + 0.5  # the descriptor score it was given, plus the bonus
    assert len(found) <= 4  # the shortlist and at most three voted photos
    # without a way to score them, or with voting off, nothing is added
    assert [v.hit.record.item_id for v in verifier.rerank(query, [wrong])] == ["item0"]
    silent = LocalVerifier(RerankConfig(shortlist=1, vote=0))
    silent.sync_keypoints(index)
    assert len(silent.rerank(query, [wrong], hits_for=hits_for)) == 1


def test_the_listing_negative_votes_for_a_photo_printed_inverted(
    catalogue: tuple[Embedder, Path],
) -> None:
    _, folder = catalogue
    index = CatalogIndex.load(folder / "index")
    verifier = LocalVerifier(RerankConfig(shortlist=1, vote=3))
    verifier.sync_keypoints(index)
    query = collage_with(ImageOps.invert(textured(6)))
    found = verifier.rerank(
        query,
        [SearchHit(_record(index, "item0"), 0.5)],
        invert=frozenset(),  # the negative tile found nothing: only voted photos are retried
        hits_for=_scored(index, 0.1),
    )
    assert found[0].hit.record.item_id == "item6" and found[0].inverted


def test_the_detector_scores_voted_photos_and_forgets_removed_ones(
    catalogue: tuple[Embedder, Path],
) -> None:
    embedder, folder = catalogue
    index = CatalogIndex.load(folder / "index")
    config = RerankConfig(shortlist=1, vote=3)
    detector = Detector(embedder, index, verifier=LocalVerifier(config), top_k=3)
    query = collage_with(textured(5))
    best = detector.check(query).best
    assert best is not None and best.item_id == "item5" and (best.inliers or 0) >= 20
    index.remove(["item5"])
    assert all(match.item_id != "item5" for match in detector.check(query).matches)


def _record(index: CatalogIndex, item_id: str) -> CatalogRecord:
    record = index.get(item_id)
    assert record is not None
    return record


def _scored(index: CatalogIndex, score: float) -> HitsFor:
    """Scores every voted photo ``score``, as the detector scores them by their descriptor."""

    def hits_for(item_ids: Sequence[str]) -> list[SearchHit]:
        return [SearchHit(_record(index, item_id), score) for item_id in item_ids]

    return hits_for


def test_a_blurred_copy_orb_cannot_confirm_is_confirmed_by_sift(
    catalogue: tuple[Embedder, Path],
) -> None:
    _, folder = catalogue
    index = CatalogIndex.load(folder / "index")
    blurred = textured(4).resize((224, 224)).filter(ImageFilter.GaussianBlur(3))
    hits = [SearchHit(_record(index, "item1"), 0.35), SearchHit(_record(index, "item4"), 0.3)]
    plain = LocalVerifier(RerankConfig(blur_retry=None)).rerank(blurred, hits)
    assert all(result.inliers == 0 for result in plain)  # ORB finds no corners in it
    found = LocalVerifier(RerankConfig(blur_retry=20.0)).rerank(blurred, hits)
    assert found[0].hit.record.item_id == "item4" and found[0].inliers >= 8
    assert found[0].score > 0.3 + 0.2 and found[1].inliers == 0
    # a listing sharper than the setting (its Laplacian varies by ~3) is not retried
    stricter = LocalVerifier(RerankConfig(blur_retry=2.0)).rerank(blurred, hits)
    assert all(result.inliers == 0 for result in stricter)


def test_settings_stored_before_voting_and_the_blur_retry_keep_them_off() -> None:
    stored = RerankConfig().to_dict()
    for key in ("vote", "blur_retry"):
        del stored[key]
    restored = RerankConfig.from_dict(stored)
    assert restored.vote == 0 and restored.blur_retry is None


def _unreadable(record: CatalogRecord) -> Image.Image:
    raise OSError(f"{record.source}: gone")


def _copy_index(folder: Path, tmp_path: Path) -> None:
    """The catalogue's index in ``tmp_path / "index"``, without the keypoints that other
    tests' checks kept in it."""
    shutil.copytree(
        folder / "index", tmp_path / "index", ignore=shutil.ignore_patterns("keypoints-*")
    )


def _voted(verifier: LocalVerifier, index: CatalogIndex) -> list[str]:
    """The photos a collage showing item5 is verified against (item0 shortlisted)."""
    verifier.sync_keypoints(index)
    wrong = [SearchHit(_record(index, "item0"), 0.5)]
    found = verifier.rerank(collage_with(textured(5)), wrong, hits_for=_scored(index, 0.1))
    return [v.hit.record.item_id for v in found]


def _kept(folder: Path) -> KeypointIndex:
    [kept] = folder.glob("keypoints-*.npz")
    return KeypointIndex.load(kept)


def _describing(described: list[str]) -> ReferenceLoader:
    """Loads catalogue photos as usual, noting which ones were described."""

    def loader(record: CatalogRecord) -> Image.Image:
        described.append(record.item_id)
        return load_reference_image(record)

    return loader


def _add_photo(index: CatalogIndex, embedder: Embedder, item_id: str, path: Path) -> None:
    item = CatalogItem(item_id, hashlib.sha256(path.read_bytes()).hexdigest(), source=str(path))
    index.add(embedder.embed([path]), [item])


def test_the_keypoint_index_is_kept_in_the_index_folder_for_the_next_process(
    catalogue: tuple[Embedder, Path], tmp_path: Path
) -> None:
    _, folder = catalogue
    _copy_index(folder, tmp_path)
    config = RerankConfig(shortlist=1, vote=3)
    assert "item5" in _voted(LocalVerifier(config), CatalogIndex.load(tmp_path / "index"))
    assert len(_kept(tmp_path / "index")) == 8
    # a process that cannot read the catalogue files still votes, from the kept copy
    unable = LocalVerifier(config, _unreadable)
    assert "item5" in _voted(unable, CatalogIndex.load(tmp_path / "index"))
    # a photo another process removed gets no vote, with nothing described again
    changed = CatalogIndex.load(tmp_path / "index")
    changed.remove(["item5"])
    changed.save(tmp_path / "index")
    assert "item5" not in _voted(unable, CatalogIndex.load(tmp_path / "index"))


def test_only_photos_added_or_replaced_since_the_kept_keypoints_are_described(
    catalogue: tuple[Embedder, Path], tmp_path: Path
) -> None:
    embedder, folder = catalogue
    _copy_index(folder, tmp_path)
    config = RerankConfig(shortlist=1, vote=3)
    LocalVerifier(config).sync_keypoints(CatalogIndex.load(tmp_path / "index"), keep=True)
    index = CatalogIndex.load(tmp_path / "index")
    textured(9).save(tmp_path / "item9.png")
    _add_photo(index, embedder, "item9", tmp_path / "item9.png")
    index.remove(["item5"])  # the same item id, now another photo
    collage_with(textured(5)).save(tmp_path / "item5.png")
    _add_photo(index, embedder, "item5", tmp_path / "item5.png")
    index.save(tmp_path / "index")
    described: list[str] = []
    LocalVerifier(config, _describing(described)).sync_keypoints(
        CatalogIndex.load(tmp_path / "index"), keep=True
    )
    assert sorted(described) == ["item5", "item9"]
    kept = _kept(tmp_path / "index")
    assert len(kept) == 9 and kept.tags()["item5"] == _record(index, "item5").sha256
    listing = LocalVerifier(config).features(textured(9)).descriptors
    assert kept.vote([listing], 1)[0][0] == "item9"


def test_the_kept_keypoints_are_rewritten_once_enough_changed(
    catalogue: tuple[Embedder, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service adds photos one at a time; the kept file is rewritten once it lacks more
    than KEEP_STALE of the catalogue (0.2 here: the third photo added to eight)."""
    embedder, folder = catalogue
    _copy_index(folder, tmp_path)
    monkeypatch.setattr(rerank, "KEEP_STALE", 0.2)
    index = CatalogIndex.load(tmp_path / "index")
    verifier = LocalVerifier(RerankConfig(vote=3))
    verifier.sync_keypoints(index)  # no file yet: written
    kept_sizes = [len(_kept(tmp_path / "index"))]
    for seed in (10, 11, 12):
        textured(seed).save(tmp_path / f"item{seed}.png")
        _add_photo(index, embedder, f"item{seed}", tmp_path / f"item{seed}.png")
        verifier.sync_keypoints(index)
        kept_sizes.append(len(_kept(tmp_path / "index")))
    assert kept_sizes == [8, 8, 8, 11]


def test_a_damaged_kept_keypoint_index_is_described_again_and_replaced(
    catalogue: tuple[Embedder, Path], tmp_path: Path
) -> None:
    _, folder = catalogue
    _copy_index(folder, tmp_path)
    index = CatalogIndex.load(tmp_path / "index")
    LocalVerifier(RerankConfig(vote=3)).sync_keypoints(index)
    [kept] = (tmp_path / "index").glob("keypoints-*.npz")
    kept.write_bytes(b"not an index")
    LocalVerifier(RerankConfig(vote=3)).sync_keypoints(index)
    assert len(KeypointIndex.load(kept)) == len(index)


def test_a_batch_is_re_ranked_on_several_threads_with_the_same_verdicts(
    catalogue: tuple[Embedder, Path],
) -> None:
    embedder, folder = catalogue
    detector = load_detector(
        folder / "index", model=embedder, verify=RerankConfig(shortlist=4, vote=3), top_k=3
    )
    queries = [rotated_crop(textured(seed)) for seed in range(4)]
    queries += [collage_with(textured(5)), ImageOps.mirror(textured(6)), textured(90)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = detector.check_many(queries)
        torch.set_num_threads(2)
        side_by_side = detector.check_many(queries)
    finally:
        torch.set_num_threads(threads)
    assert [v.to_dict() for v in side_by_side] == [v.to_dict() for v in alone]
    found = [v.best.item_id if v.best else None for v in alone[:6]]
    assert found == ["item0", "item1", "item2", "item3", "item5", "item6"]


def test_re_ranked_scores_are_lowered_by_the_sibling_penalty(
    catalogue: tuple[Embedder, Path],
) -> None:
    embedder, folder = catalogue
    query = rotated_crop(textured(3))
    scores = {}
    for penalty in (0.0, 1.0):
        detector = load_detector(
            folder / "index",
            model=embedder,
            verify=RerankConfig(shortlist=8, sibling_penalty=penalty),
            top_k=8,
        )
        scores[penalty] = {m.item_id: m.score for m in detector.check(query).matches}
    index = CatalogIndex.load(folder / "index")
    relative = SiblingSimilarity(index, RerankConfig().sibling_neighbours).relative(scores[1.0])
    assert any(abs(value) > 0.01 for value in relative.values())
    for item_id, score in scores[1.0].items():
        assert score == pytest.approx(scores[0.0][item_id] - relative[item_id], abs=1e-4)


def test_settings_stored_before_the_sibling_penalty_keep_it_off() -> None:
    stored = RerankConfig().to_dict()
    del stored["sibling_penalty"]
    assert RerankConfig.from_dict(stored).sibling_penalty == 0.0


def test_descriptor_only_scores_take_the_penalty_the_model_was_calibrated_with(
    catalogue: tuple[Embedder, Path],
) -> None:
    embedder, folder = catalogue
    query = rotated_crop(textured(3))
    index = CatalogIndex.load(folder / "index")
    recorded = float(embedder.metadata.get("sibling_penalty", 0.0))  # 0: calibrated before
    assert Detector(embedder, index).sibling_penalty == recorded
    plain = Detector(embedder, index, top_k=8, sibling_penalty=0.0)
    penalised = Detector(embedder, index, top_k=8, sibling_penalty=0.5)
    before = {m.item_id: m.score for m in plain.check(query).matches}
    after = {m.item_id: m.score for m in penalised.check(query).matches}
    relative = SiblingSimilarity(index).relative(after)
    assert any(abs(value) > 0.01 for value in relative.values())
    for item_id, score in after.items():
        assert score == pytest.approx(before[item_id] - 0.5 * relative[item_id], abs=1e-4)
    assert list(after.values()) == sorted(after.values(), reverse=True)
