"""Keypoint voting: catalogue photos that share many ORB keypoints with a listing photo.

The descriptor's shortlist misses catalogue photos that fill only part of a listing (a
collage cell, a small paste, a photo inside a screenshot) or that were edited several ways
at once: the listing's descriptor then describes something else. Their keypoints still
match. Every catalogue keypoint sits in one FAISS binary index; each listing keypoint looks
up its nearest catalogue keypoints, and a catalogue photo collects one vote per listing
keypoint that finds one of its own within ``max_distance`` bits. The best-voted photos join
the shortlist and are verified like any other candidate: a wrong vote must still pass
RANSAC and the agreement of the aligned pictures, so it mostly costs one verification. On
the calibration set the three best-voted photos of the listing, its mirror image and its
negative (two or three new candidates per listing) brought all 17 copies the 30-photo
shortlist missed to verification.

Small catalogues are searched exhaustively; from ``flat_below`` keypoints on, an inverted
file (``IndexBinaryIVF``) trained once on the keypoints present then, later ones added to it.
Each photo carries a tag (its file's sha256), so a saved index serves any later catalogue that
shares photos with it; a photo removed or replaced is discarded (its keypoints stay in the
FAISS index but vote for no one).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Container, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .files import write_atomically
from .verify import one_openmp_thread

Descriptors = npt.NDArray[Any]  # (n, 32) uint8: ORB's 256-bit descriptors


class KeypointIndex:
    """ORB descriptors of catalogue photos under their keys (item ids), each with a tag
    (what the caller checks them against: the photo's sha256). Thread-safe.

    ``neighbours``: catalogue keypoints looked up per listing keypoint; ``max_distance``:
    the Hamming distance (of 256 bits) under which one counts as found; ``probes``: inverted
    lists searched per keypoint once the index is an inverted file.
    """

    def __init__(
        self,
        *,
        neighbours: int = 5,
        max_distance: int = 50,
        flat_below: int = 50_000,
        probes: int = 8,
    ) -> None:
        if neighbours < 1 or probes < 1 or flat_below < 1:
            raise ValueError("neighbours, probes and flat_below must be >= 1")
        if not 0 <= max_distance <= 256:
            raise ValueError(f"max_distance must be in [0, 256], got {max_distance}")
        self.neighbours = neighbours
        self.max_distance = max_distance
        self.flat_below = flat_below
        self.probes = probes
        self._keys: list[str] = []  # per photo position, discarded ones included
        self._tags: list[str] = []
        self._positions: dict[str, int] = {}  # key -> position, photos not discarded
        self._owners = np.zeros(0, np.int32)  # per indexed keypoint: its photo's position
        self._pending: list[tuple[int, Descriptors]] = []
        self._faiss: Any = None
        self._inverted = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Photos indexed (not discarded)."""
        return len(self._positions)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    @property
    def discarded(self) -> int:
        """Photos discarded whose keypoints still sit in the FAISS index."""
        with self._lock:
            return len(self._keys) - len(self._positions)

    def tags(self) -> dict[str, str]:
        """The tag of each photo indexed, by key."""
        with self._lock:
            return {key: self._tags[position] for key, position in self._positions.items()}

    def add(self, key: str, descriptors: Descriptors, tag: str = "") -> None:
        """Index one photo's keypoint descriptors (a photo without keypoints is remembered
        as indexed, so it is not described again); a key already present is ignored."""
        if descriptors.ndim != 2 or (
            len(descriptors) and (descriptors.dtype != np.uint8 or descriptors.shape[1] != 32)
        ):
            raise ValueError(
                f"expected ORB descriptors (n, 32) uint8, got {descriptors.shape} "
                f"{descriptors.dtype}"
            )
        descriptors = np.ascontiguousarray(descriptors)
        with self._lock:
            if key in self._positions:
                return
            self._positions[key] = len(self._keys)
            self._keys.append(key)
            self._tags.append(tag)
            if len(descriptors):
                self._pending.append((self._positions[key], descriptors))

    def discard(self, key: str) -> None:
        """Stop voting for photo ``key`` (removed from the catalogue, or replaced: it may be
        added again); an absent key is ignored."""
        with self._lock:
            self._positions.pop(key, None)

    def vote(
        self, views: Sequence[Descriptors], count: int, *, exclude: Container[str] = ()
    ) -> list[tuple[str, int]]:
        """The ``count`` photos with the most votes (at least one) from the keypoints of a
        listing's ``views`` (e.g. the photo and its mirror image; votes add up), best first,
        leaving out the keys in ``exclude``."""
        if count < 1:
            return []
        index, owners = self._searchable()
        if index is None:
            return []
        votes = np.zeros(len(self._keys), np.int64)
        for descriptors in views:
            if len(descriptors) == 0:
                continue
            with one_openmp_thread(_faiss()):
                distances, found = index.search(np.ascontiguousarray(descriptors), self.neighbours)
            close = (found >= 0) & (distances <= self.max_distance)
            rows, columns = np.nonzero(close)
            photos = owners[found[rows, columns]]
            # one vote per listing keypoint and photo, however many of its keypoints it found
            pairs = np.unique(rows.astype(np.int64) * len(self._keys) + photos)
            votes += np.bincount(pairs % len(self._keys), minlength=len(self._keys))
        ranked = np.argsort(-votes, kind="stable")
        best: list[tuple[str, int]] = []
        for position in ranked:
            if votes[position] < 1 or len(best) == count:
                break
            key = self._keys[position]
            if self._positions.get(key) == position and key not in exclude:
                best.append((key, int(votes[position])))
        return best

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically (:func:`lookalike.files.write_atomically`)."""
        index, owners = self._searchable()
        with self._lock:
            photos = json.dumps(
                {"keys": self._keys, "tags": self._tags, "live": sorted(self._positions.values())}
            ).encode()
            inverted = self._inverted
        searchable = np.zeros(0, np.uint8)
        if index is not None:
            searchable = np.asarray(_faiss().serialize_index_binary(index), dtype=np.uint8)
        write_atomically(
            Path(path),
            lambda file: np.savez(
                file,
                faiss=searchable,
                owners=owners,
                photos=np.frombuffer(photos, dtype=np.uint8),
                inverted=np.array(inverted),
            ),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], **settings: Any) -> KeypointIndex:
        """An index :meth:`save` wrote, searched with ``settings`` (as for the constructor).
        Raises for a missing or damaged file: OSError, ValueError, or what numpy's reader
        raises for a broken archive."""
        index = cls(**settings)
        with np.load(path, allow_pickle=False) as data:
            if "photos" not in data:  # written before photos carried tags
                raise ValueError(f"{path}: not a keypoint index of this version")
            photos = json.loads(bytes(data["photos"]).decode())
            owners = np.asarray(data["owners"], dtype=np.int32)
            searchable = np.asarray(data["faiss"], dtype=np.uint8)
            inverted = bool(data["inverted"])
        if not isinstance(photos, dict):
            raise ValueError(f"{path}: not a keypoint index")
        keys, tags, live = (photos.get(name) for name in ("keys", "tags", "live"))
        if (
            not isinstance(keys, list)
            or not isinstance(tags, list)
            or not isinstance(live, list)
            or len(tags) != len(keys)
            or any(not 0 <= position < len(keys) for position in live)
            or (len(owners) and owners.max() >= len(keys))
        ):
            raise ValueError(f"{path}: not a keypoint index")
        index._keys = [str(key) for key in keys]
        index._tags = [str(tag) for tag in tags]
        index._positions = {index._keys[position]: position for position in live}
        index._owners = owners
        if searchable.size:
            index._faiss = _faiss().deserialize_index_binary(searchable)
            if index._faiss.ntotal != len(owners):
                raise ValueError(f"{path}: keypoints and owners disagree")
            if inverted:
                index._faiss.nprobe = min(index.probes, index._faiss.nlist)
        index._inverted = inverted
        return index

    def _searchable(self) -> tuple[Any, npt.NDArray[np.int32]]:
        """The FAISS index with every added keypoint in it, and each keypoint's owner."""
        with self._lock:
            if self._pending:
                self._index_pending()
            return self._faiss, self._owners

    def _index_pending(self) -> None:
        faiss = _faiss()
        new = np.concatenate([descriptors for _, descriptors in self._pending])
        new_owners = np.concatenate(
            [np.full(len(descriptors), owner, np.int32) for owner, descriptors in self._pending]
        )
        self._pending = []
        total = len(self._owners) + len(new)
        if self._inverted:
            with one_openmp_thread(faiss):
                self._faiss.add(new)
        elif total < self.flat_below:
            if self._faiss is None:
                self._faiss = faiss.IndexBinaryFlat(256)
            self._faiss.add(new)
        else:
            everything = new if self._faiss is None else np.concatenate([_stored(self._faiss), new])
            self._faiss = _inverted_file(faiss, everything, self.probes)
            self._inverted = True
        self._owners = np.concatenate([self._owners, new_owners])


def _faiss() -> Any:
    import faiss

    return faiss


def _stored(index: Any) -> Descriptors:
    """The descriptors held by a flat binary index, in insertion order."""
    return np.asarray(_faiss().vector_to_array(index.xb), dtype=np.uint8).reshape(-1, 32)


def _inverted_file(faiss: Any, descriptors: Descriptors, probes: int) -> Any:
    """An ``IndexBinaryIVF`` holding ``descriptors``: ~sqrt(n) lists (at most 4,096, with at
    least 39 training points each, as k-means wants), trained on a seeded sample of them."""
    lists = max(1, min(int(math.sqrt(len(descriptors))), 4096, len(descriptors) // 39))
    sample_size = min(len(descriptors), 64 * lists)
    sample = np.random.default_rng(0).choice(len(descriptors), sample_size, replace=False)
    quantizer = faiss.IndexBinaryFlat(256)
    index = faiss.IndexBinaryIVF(quantizer, 256, lists)
    index.train(np.ascontiguousarray(descriptors[np.sort(sample)]))
    index.add(descriptors)
    index.nprobe = min(probes, lists)
    return index
