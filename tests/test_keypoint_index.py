"""Keypoint voting: the catalogue photos sharing the most keypoints with a listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.keypoint_index import KeypointIndex


def descriptors(seed: int, count: int = 300) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 32), dtype=np.uint8)


def noisy(source: np.ndarray, flipped_bits: int, seed: int) -> np.ndarray:
    """``source`` with ``flipped_bits`` random bits of each descriptor flipped."""
    rng = np.random.default_rng(seed)
    bits = np.unpackbits(source, axis=1)
    for row in bits:
        row[rng.choice(256, flipped_bits, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def catalogue(index: KeypointIndex, photos: int = 6) -> KeypointIndex:
    for seed in range(photos):
        index.add(f"photo{seed}", descriptors(seed))
    return index


def test_the_photo_whose_keypoints_a_listing_shows_gets_the_votes() -> None:
    index = catalogue(KeypointIndex())
    listing = np.concatenate([noisy(descriptors(3)[:120], 20, 0), descriptors(99, 200)])
    voted = index.vote([listing], 3)
    assert voted[0][0] == "photo3"
    assert 100 <= voted[0][1] <= 120  # about one vote per listing keypoint it shows
    assert all(votes < 10 for _, votes in voted[1:])  # chance neighbours within 50 bits


def test_excluded_photos_and_photos_without_votes_are_left_out() -> None:
    index = catalogue(KeypointIndex(max_distance=20))
    listing = noisy(descriptors(2)[:50], 5, 1)
    assert [key for key, _ in index.vote([listing], 5)] == ["photo2"]
    assert index.vote([listing], 5, exclude={"photo2"}) == []
    assert index.vote([listing], 0) == []


def test_votes_of_several_views_add_up() -> None:
    index = catalogue(KeypointIndex())
    first, second = noisy(descriptors(4)[:40], 10, 2), noisy(descriptors(4)[100:160], 10, 3)
    assert index.vote([first, second], 1) == [("photo4", 100)]


def test_an_inverted_file_finds_the_same_photo_and_takes_later_additions() -> None:
    index = catalogue(KeypointIndex(flat_below=1_000), photos=8)  # 2,400 keypoints: inverted
    listing = noisy(descriptors(5)[:150], 15, 4)
    assert index.vote([listing], 1)[0][0] == "photo5"
    index.add("late", descriptors(42))
    late = noisy(descriptors(42)[:150], 15, 5)
    assert index.vote([late], 1)[0][0] == "late"
    assert len(index) == 9 and "late" in index


def test_a_photo_is_indexed_once_and_one_without_keypoints_is_remembered() -> None:
    index = KeypointIndex()
    index.add("blank", np.zeros((0, 32), np.uint8))
    assert index.vote([descriptors(1)], 3) == []  # nothing searchable yet
    index.add("photo", descriptors(1))
    index.add("photo", descriptors(2))  # already there: ignored
    assert index.vote([descriptors(1)[:30]], 3) == [("photo", 30)]
    assert len(index) == 2 and "blank" in index


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 16), np.uint8), np.zeros((4, 32), np.float32), np.zeros(32, np.uint8)]
)
def test_anything_but_orb_descriptors_is_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="ORB descriptors"):
        KeypointIndex().add("photo", bad)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        KeypointIndex(neighbours=0)
    with pytest.raises(ValueError):
        KeypointIndex(max_distance=300)


@pytest.mark.parametrize("flat_below", [50_000, 1_000])  # exhaustive, inverted file
def test_a_saved_index_votes_as_the_original(flat_below: int, tmp_path: Path) -> None:
    index = catalogue(KeypointIndex(flat_below=flat_below), photos=8)
    listing = noisy(descriptors(5)[:150], 15, 4)
    index.save(tmp_path / "keypoints.npz")
    loaded = KeypointIndex.load(tmp_path / "keypoints.npz", flat_below=flat_below)
    assert loaded.vote([listing], 3) == index.vote([listing], 3)
    assert len(loaded) == 8 and "photo7" in loaded
    loaded.add("late", descriptors(42))  # it goes on taking photos
    assert loaded.vote([noisy(descriptors(42)[:100], 10, 5)], 1)[0][0] == "late"
    assert list(tmp_path.iterdir()) == [tmp_path / "keypoints.npz"]  # no staging file left


def test_a_discarded_photo_gets_no_votes_and_may_come_back_with_other_keypoints() -> None:
    index = KeypointIndex()
    for seed in range(4):
        index.add(f"photo{seed}", descriptors(seed), tag=f"sha{seed}")
    listing = noisy(descriptors(2)[:120], 10, 6)
    assert index.vote([listing], 1)[0][0] == "photo2"
    index.discard("photo2")
    index.discard("nobody")  # ignored
    assert "photo2" not in index and len(index) == 3 and index.discarded == 1
    assert all(key != "photo2" for key, _ in index.vote([listing], 3))
    index.add("photo2", descriptors(77), tag="sha77")  # the item's file was replaced
    assert index.vote([noisy(descriptors(77)[:120], 10, 7)], 1)[0][0] == "photo2"
    assert all(key != "photo2" for key, _ in index.vote([listing], 3))  # old keypoints: none
    assert index.tags() == {"photo0": "sha0", "photo1": "sha1", "photo3": "sha3", "photo2": "sha77"}


def test_tags_and_discarded_photos_survive_saving(tmp_path: Path) -> None:
    index = KeypointIndex()
    for seed in range(4):
        index.add(f"photo{seed}", descriptors(seed), tag=f"sha{seed}")
    index.discard("photo1")
    index.save(tmp_path / "keypoints.npz")
    loaded = KeypointIndex.load(tmp_path / "keypoints.npz")
    assert loaded.tags() == index.tags() and loaded.discarded == 1
    listing = noisy(descriptors(1)[:120], 10, 8)
    assert all(key != "photo1" for key, _ in loaded.vote([listing], 3))


def test_a_file_written_before_tags_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keypoints.npz"
    np.savez(path, faiss=np.zeros(0, np.uint8), owners=np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="this version"):
        KeypointIndex.load(path)


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keypoints.npz"
    catalogue(KeypointIndex()).save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(Exception):  # noqa: B017 - whatever numpy or zipfile raise for it
        KeypointIndex.load(path)
