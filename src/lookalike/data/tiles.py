"""Query tiles: parts of a listing photo that may each show a whole catalogue photo.

A collage puts a catalogue photo in one cell of a 2x2 grid or a 1x3 strip; a paste or a
screenshot frames it in the middle of something else. The whole-photo descriptor of such a
listing mostly describes the rest. Each tile (grid cells, halves, thirds, the centre) is
embedded like a photo and searched too; a catalogue photo's score is its best over the whole
photo and the tiles, a tile's score lowered by ``penalty`` (a part of a photo resembles
*something* in a large catalogue more easily than a whole photo does). Local verification of
the merged shortlist then checks the whole listing against each candidate.

Torch-free, so decoding workers cut the tiles beside the model input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class TileConfig:
    """``grids``: (rows, cols) grids whose cells are tiles; ``centre``: side fraction of a
    centred tile (None: none); ``penalty``: subtracted from a tile's similarity."""

    grids: tuple[tuple[int, int], ...] = ((2, 2), (1, 2), (2, 1), (1, 3), (3, 1))
    centre: float | None = 0.6
    penalty: float = 0.1

    def __post_init__(self) -> None:
        if any(rows < 1 or cols < 1 or rows * cols < 2 for rows, cols in self.grids):
            raise ValueError(f"each grid needs >= 2 cells, got {self.grids}")
        if self.centre is not None and not 0 < self.centre < 1:
            raise ValueError(f"centre must be in (0, 1), got {self.centre}")
        if not self.grids and self.centre is None:
            raise ValueError("a TileConfig needs grids or a centre tile")

    @property
    def count(self) -> int:
        """Tiles per photo."""
        return sum(rows * cols for rows, cols in self.grids) + (self.centre is not None)

    def boxes(self, width: int, height: int) -> list[Box]:
        """Every tile of a ``width`` x ``height`` photo, each at least one pixel."""
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
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TileConfig:
        grids = tuple((int(rows), int(cols)) for rows, cols in data.get("grids", ()))
        centre = data.get("centre")
        return cls(
            grids=grids,
            centre=None if centre is None else float(centre),
            penalty=float(data.get("penalty", cls.penalty)),
        )


def _box(left: float, top: float, right: float, bottom: float) -> Box:
    x0, y0 = round(left), round(top)
    return (x0, y0, max(x0 + 1, round(right)), max(y0 + 1, round(bottom)))
