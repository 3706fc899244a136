"""Images made in code: catalogue-like pictures for tests and the offline demo."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def synthetic_image(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A deterministic RGB picture: a colour gradient with a dozen random shapes.

    Different seeds give clearly different pictures (layout, colours, shapes), which is what
    a near-duplicate test needs; nothing here imitates real photos.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    start, end = rng.integers(0, 256, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, width)[None, :, None]
    angle_mix = np.linspace(0.0, 1.0, height)[:, None, None] * rng.uniform(-0.5, 0.5)
    weights = np.clip(ramp + angle_mix, 0.0, 1.0)
    pixels = (start * (1 - weights) + end * weights).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 15))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, x1 = sorted(rng.integers(0, width, size=2))
        y0, y1 = sorted(rng.integers(0, height, size=2))
        box = (int(x0), int(y0), int(max(x1, x0 + 8)), int(max(y1, y0 + 8)))
        shape = rng.integers(0, 4)
        if shape == 0:
            draw.rectangle(box, fill=colour)
        elif shape == 1:
            draw.ellipse(box, fill=colour)
        elif shape == 2:
            points = [(int(x), int(y)) for x, y in rng.integers(0, min(size), size=(5, 2))]
            draw.polygon(points, fill=colour)
        else:
            draw.line(box, fill=colour, width=int(rng.integers(3, 12)))
    return image
