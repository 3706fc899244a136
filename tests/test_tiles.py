"""Query tiles: boxes, config, preprocessing, merging, and a collage cell found by its tile.

Detectors here run without the sibling penalty (tested in test_siblings / test_rerank):
these tests check the tiles' own score arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lookalike.data import load_catalog
from lookalike.data.preprocess import Preprocessor
from lookalike.data.synthetic import synthetic_image
from lookalike.data.tiles import TileConfig
from lookalike.detect import Detector, _merge_tile_hits, tiles_for
from lookalike.index import CatalogIndex, CatalogRecord, SearchHit
from lookalike.indexing import add_entries, new_index_for
from lookalike.model import Embedder


def test_boxes_cover_each_grid_and_the_centre() -> None:
    config = TileConfig()
    boxes = config.boxes(300, 200)
    assert len(boxes) == 4 + 2 + 2 + 3 + 3 + 9 + 1
    assert boxes[-2] == (200, 133, 300, 200)  # the last 3x3 cell
    assert config.count == len(boxes) + 3 + 2 + 1  # turns, framed regions, the negative
    assert boxes[0] == (0, 0, 150, 100) and boxes[3] == (150, 100, 300, 200)  # 2x2 corners
    assert boxes[-1] == (60, 40, 240, 160)  # the centre, 60% of each side
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= 300 and 0 <= top < bottom <= 200


def test_tiny_photos_still_get_one_pixel_tiles() -> None:
    for left, top, right, bottom in TileConfig().boxes(2, 1):
        assert right > left and bottom > top


@pytest.mark.parametrize(
    "bad",
    [
        {"grids": ((1, 1),)},
        {"grids": ((0, 2),)},
        {"centre": 1.0},
        {"turns": (45,)},
        {"grids": (), "centre": None, "turns": (), "frames": 0, "negative": False},
        {"frames": -1},
    ],
)
def test_config_is_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        TileConfig(**bad)


def test_config_round_trips_through_metadata() -> None:
    config = TileConfig(grids=((1, 3),), centre=None, penalty=0.2)
    assert TileConfig.from_dict(config.to_dict()) == config
    assert TileConfig.from_dict(TileConfig().to_dict()) == TileConfig()
    assert TileConfig(grids=(), centre=None, frames=0, negative=False).count == 3  # turns
    assert TileConfig(grids=(), centre=None, turns=(), frames=0).count == 1  # the negative


def test_settings_stored_before_turns_keep_no_turns() -> None:
    """A model calibrated without turned tiles must be searched without them."""
    stored = TileConfig().to_dict()
    del stored["turns"]
    assert TileConfig.from_dict(stored).turns == ()


def test_settings_stored_before_the_negative_and_frames_keep_neither() -> None:
    stored = TileConfig().to_dict()
    del stored["negative"], stored["frames"]
    old = TileConfig.from_dict(stored)
    assert TileConfig().negative and not old.negative
    assert TileConfig().frames == 2 and old.frames == 0


def test_framed_regions_come_before_the_negative() -> None:
    photo = Image.new("RGB", (300, 240), (40, 90, 160))
    photo.paste(synthetic_image(4, (110, 100)), (97, 71))  # off every grid line
    config = TileConfig(grids=(), centre=None, turns=())
    images = config.images(photo)
    assert len(images) == 2 == config.count - 1  # one region of the two it may give
    assert abs(images[0].width - 110) <= 3 and abs(images[0].height - 100) <= 3
    assert images[1].mode == "RGB" and images[1].size == photo.size  # the negative, last
    bare = Image.new("RGB", (300, 240), (40, 90, 160))
    assert len(config.images(bare)) == 1


def test_tile_images_are_the_crops_the_turned_photo_then_the_negative() -> None:
    photo = synthetic_image(2, (300, 200))
    config = TileConfig(frames=0)  # framed regions: see above
    images = config.images(photo)
    assert len(images) == config.count
    assert images[0].size == (150, 100)  # the first 2x2 cell
    assert [image.size for image in images[-4:-1]] == [(200, 300), (300, 200), (200, 300)]
    assert np.array_equal(np.asarray(images[-3]), np.asarray(photo)[::-1, ::-1])  # 180 degrees
    grey = np.asarray(photo.convert("L"), dtype=np.int16)
    negative = np.asarray(images[-1], dtype=np.int16)
    assert images[-1].mode == "RGB" and negative.shape == (200, 300, 3)
    assert np.array_equal(negative[..., 0], 255 - grey)


def test_preprocessor_cuts_tiles_as_model_inputs() -> None:
    config = TileConfig(frames=0)
    prepared = Preprocessor(64, tiles=config)(synthetic_image(1, (300, 200)))
    assert prepared.tiles is not None
    assert prepared.tiles.shape == (config.count, 3, 64, 64)
    assert prepared.tiles.dtype == np.uint8
    assert Preprocessor(64)(synthetic_image(1)).tiles is None


def _hit(item_id: str, score: float) -> SearchHit:
    record = CatalogRecord(item_id, item_id * 8, None, "product", None, None, "")
    return SearchHit(record, score)


def test_merge_keeps_each_item_once_at_its_best_penalised_score() -> None:
    whole = [_hit("a", 0.6), _hit("b", 0.5)]
    tiles = [[_hit("b", 0.9), _hit("c", 0.55)], [_hit("a", 0.65), _hit("d", 0.3)]]
    merged = _merge_tile_hits(whole, tiles, penalty=0.1, k=3)
    assert [(h.record.item_id, round(h.score, 6)) for h in merged] == [
        ("b", 0.8),  # its tile beats its whole-photo score, penalty included
        ("a", 0.6),  # its tile (0.65 - 0.1) does not beat the whole photo
        ("c", 0.45),
    ]


@pytest.fixture(scope="module")
def collage_index(
    shared_embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> CatalogIndex:
    folder = tmp_path_factory.mktemp("tiles-catalogue")
    for seed in range(12):
        synthetic_image(seed).save(folder / f"item{seed:03d}.png")
    index = new_index_for(shared_embedder)
    add_entries(index, shared_embedder, load_catalog(folder), progress=False)
    return index


def collage(cells: list[Image.Image]) -> Image.Image:
    canvas = Image.new("RGB", (512, 512))
    for position, cell in enumerate(cells):
        canvas.paste(cell.resize((256, 256)), ((position % 2) * 256, (position // 2) * 256))
    return canvas


def test_a_collage_cell_is_found_by_its_tile(
    shared_embedder: Embedder, collage_index: CatalogIndex
) -> None:
    photo = collage([synthetic_image(s) for s in (40, 41, 3, 42)])  # item003 bottom left
    plain = Detector(shared_embedder, collage_index, sibling_penalty=0.0)
    tiled = Detector(shared_embedder, collage_index, tiles=TileConfig(), sibling_penalty=0.0)
    found = tiled.check(photo).matches[0]
    assert found.item_id == "item003"
    assert found.score >= 0.95 - TileConfig().penalty
    whole = {m.item_id: m.score for m in plain.check_many([photo])[0].matches}
    assert found.score > whole.get("item003", -1.0) + 0.05


def test_a_photo_uploaded_sideways_is_found_by_its_turned_tile(
    shared_embedder: Embedder, collage_index: CatalogIndex
) -> None:
    photo = synthetic_image(5).transpose(Image.Transpose.ROTATE_270)  # turned clockwise
    turned = Detector(shared_embedder, collage_index, tiles=TileConfig(), sibling_penalty=0.0)
    unturned = Detector(
        shared_embedder, collage_index, tiles=TileConfig(turns=()), sibling_penalty=0.0
    )
    found = turned.check(photo).matches[0]
    assert found.item_id == "item005"
    assert found.score >= 0.95 - TileConfig().penalty  # the 90-degree tile undoes the turn
    before = {m.item_id: m.score for m in unturned.check(photo).matches}
    assert found.score > before.get("item005", -1.0) + 0.05


def test_a_paste_off_the_grid_is_found_by_its_framed_region(
    shared_embedder: Embedder, collage_index: CatalogIndex
) -> None:
    photo = Image.new("RGB", (512, 512), (230, 200, 120))
    photo.paste(synthetic_image(8).resize((190, 190)), (150, 205))  # across four 3x3 cells
    framed = Detector(shared_embedder, collage_index, tiles=TileConfig(), sibling_penalty=0.0)
    unframed = Detector(
        shared_embedder, collage_index, tiles=TileConfig(frames=0), sibling_penalty=0.0
    )
    found = framed.check(photo).matches[0]
    assert found.item_id == "item008"
    assert found.score >= 0.95 - TileConfig().penalty
    before = {m.item_id: m.score for m in unframed.check(photo).matches}
    assert found.score > before.get("item008", -1.0) + 0.05


def test_a_negative_photo_is_found_by_its_negative_tile(
    shared_embedder: Embedder, tmp_path: Path
) -> None:
    for seed in range(8):  # black-and-white catalogue photos: their negative's grey is exact
        synthetic_image(seed).convert("L").save(tmp_path / f"item{seed:03d}.png")
    index = new_index_for(shared_embedder)
    add_entries(index, shared_embedder, load_catalog(tmp_path), progress=False)
    photo = ImageOps.invert(synthetic_image(6).convert("L")).convert("RGB")
    with_negative = Detector(shared_embedder, index, tiles=TileConfig(), sibling_penalty=0.0)
    without = Detector(
        shared_embedder, index, tiles=TileConfig(negative=False), sibling_penalty=0.0
    )
    found = with_negative.check(photo).matches[0]
    assert found.item_id == "item006"
    assert found.score >= 0.95 - TileConfig().penalty
    before = {m.item_id: m.score for m in without.check(photo).matches}
    assert found.score > before.get("item006", -1.0) + 0.05


class _ModelWith:
    """Just what tiles_for reads of an embedder: its metadata."""

    def __init__(self, metadata: dict) -> None:
        self.metadata = metadata


def test_tiles_follow_the_model_and_the_flags() -> None:
    recommended = TileConfig(grids=((2, 2),), penalty=0.2)
    calibrated = _ModelWith({"tiles": recommended.to_dict()})
    plain = _ModelWith({})
    # None: as the model was calibrated, and only with re-ranking (its calibrated mode)
    assert tiles_for(calibrated, None, verified=True) == recommended  # type: ignore[arg-type]
    assert tiles_for(calibrated, None, verified=False) is None  # type: ignore[arg-type]
    assert tiles_for(plain, None, verified=True) is None  # type: ignore[arg-type]
    # True: the model's settings, else the defaults; False: off; a config: that config
    assert tiles_for(calibrated, True, verified=False) == recommended  # type: ignore[arg-type]
    assert tiles_for(plain, True, verified=False) == TileConfig()  # type: ignore[arg-type]
    assert tiles_for(calibrated, False, verified=True) is None  # type: ignore[arg-type]
    config = TileConfig(centre=None)
    assert tiles_for(plain, config, verified=False) is config  # type: ignore[arg-type]


def test_tiles_travel_with_the_preprocessor(
    shared_embedder: Embedder, collage_index: CatalogIndex, tmp_path: Path
) -> None:
    tiled = Detector(shared_embedder, collage_index, tiles=TileConfig(), sibling_penalty=0.0)
    assert tiled.preprocessor.tiles == TileConfig()
    assert Detector(shared_embedder, collage_index).preprocessor.tiles is None
