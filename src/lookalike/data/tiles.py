"""Query tiles: parts of a listing photo that may each show a whole catalogue photo.

A collage puts a catalogue photo in one cell of a 2x2 or 3x3 grid or a 1x3 strip; a paste or a
screenshot frames it in the middle of something else. The whole-photo descriptor of such a
listing mostly describes the rest. A photo uploaded sideways or upside down is a quarter
turn away from its catalogue original; a recoloured one may be its negative (white on black).
A paste lies wherever the seller put it, but keeps its straight border: framed regions
(:mod:`.frames`) find it. Each tile (grid cells, halves, thirds, the centre, the whole photo
turned by 90, 180 and 270 degrees, framed regions, the grey negative) is embedded like a
photo and searched too; a catalogue photo's score is its best over the whole photo and the
tiles, a tile's score lowered by ``penalty`` (a part of a photo resembles *something* in a
large catalogue more easily than a whole photo does). Local verification of the merged
shortlist then checks the whole listing against each candidate (ORB keypoints do not mind
turns; the verifier retries a negative listing inverted).

Torch-free, so decoding workers cut the tiles beside the model input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image, ImageOps

from .frames import framed_regions

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class TileConfig:
    """``grids``: (rows, cols) grids whose cells are tiles; ``centre``: side fraction of a
    centred tile (None: none); ``turns``: the whole photo turned counter-clockwise by these
    quarter turns (degrees: 90, 180, 270); ``frames``: at most this many framed regions
    (rectangles the photo shows another photo in, see :mod:`.frames`); ``negative``: the
    whole photo's grey negative (the descriptor does not see through an inverted photo);
    ``penalty``: subtracted from a tile's similarity."""

    grids: tuple[tuple[int, int], ...] = ((2, 2), (1, 2), (2, 1), (1, 3), (3, 1), (3, 3))
    centre: float | None = 0.6
    turns: tuple[int, ...] = (90, 180, 270)
    frames: int = 2
    negative: bool = True
    penalty: float = 0.1

    def __post_init__(self) -> None:
        if any(rows < 1 or cols < 1 or rows * cols < 2 for rows, cols in self.grids):
            raise ValueError(f"each grid needs >= 2 cells, got {self.grids}")
        if self.centre is not None and not 0 < self.centre < 1:
            raise ValueError(f"centre must be in (0, 1), got {self.centre}")
        if any(turn not in _TRANSPOSES for turn in self.turns):
            raise ValueError(f"turns must be among 90, 180, 270, got {self.turns}")
        if self.frames < 0:
            raise ValueError(f"frames must be >= 0, got {self.frames}")
        kinds = (self.grids, self.centre is not None, self.turns, self.frames, self.negative)
        if not any(kinds):
            raise ValueError("a TileConfig needs grids, a centre, turns, frames or the negative")

    @property
    def count(self) -> int:
        """Tiles per photo at most (a photo may show fewer framed regions)."""
        cells = sum(rows * cols for rows, cols in self.grids)
        fixed = cells + (self.centre is not None) + len(self.turns) + self.negative
        return fixed + self.frames

    def images(self, photo: Image.Image) -> list[Image.Image]:
        """Every tile of ``photo``: the cropped boxes, the turned photos, the framed regions,
        then the negative (always last: the detector retries what it finds inverted)."""
        tiles = [photo.crop(box) for box in self.boxes(photo.width, photo.height)]
        tiles += [photo.transpose(_TRANSPOSES[turn]) for turn in self.turns]
        tiles += [photo.crop(box) for box in framed_regions(photo, self.frames)]
        if self.negative:
            tiles.append(ImageOps.invert(photo.convert("L")).convert("RGB"))
        return tiles

    def boxes(self, width: int, height: int) -> list[Box]:
        """The cropped tiles of a ``width`` x ``height`` photo, each at least one pixel."""
        boxes = []
        for rows, cols in self.grids:
            for row in range(rows):
                for col in range(cols):
                    boxes.append(
                        _box(
                            col * width / cols,
                            row * height / rows,
                            (col + 1) * width / cols,
                            (row + 1) * height / rows,
                        )
                    )
        if self.centre is not None:
            margin = (1 - self.centre) / 2
            boxes.append(
                _box(margin * width, margin * height, (1 - margin) * width, (1 - margin) * height)
            )
        return boxes

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grids"] = [list(grid) for grid in self.grids]
        data["turns"] = list(self.turns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TileConfig:
        grids = tuple((int(rows), int(cols)) for rows, cols in data.get("grids", ()))
        centre = data.get("centre")
        return cls(
            grids=grids,
            centre=None if centre is None else float(centre),
            # settings stored before turns, frames or the negative were calibrated without them
            turns=tuple(int(turn) for turn in data.get("turns", ())),
            frames=int(data.get("frames", 0)),
            negative=bool(data.get("negative", False)),
            penalty=float(data.get("penalty", cls.penalty)),
        )


_TRANSPOSES = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def _box(left: float, top: float, right: float, bottom: float) -> Box:
    x0, y0 = round(left), round(top)
    return (x0, y0, max(x0 + 1, round(right)), max(y0 + 1, round(bottom)))
