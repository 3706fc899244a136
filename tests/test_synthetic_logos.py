"""Made-up training logos: reproducible, logo-like (ink on transparency), varied."""

from __future__ import annotations

import random

import numpy as np
import pytest

from lookalike.data.synthetic_logos import synthetic_logo


def test_the_same_seed_draws_the_same_logo() -> None:
    first = synthetic_logo(random.Random(7), 64)
    again = synthetic_logo(random.Random(7), 64)
    assert np.array_equal(np.asarray(first), np.asarray(again))


def test_logos_are_ink_on_transparency_at_the_asked_size() -> None:
    rng = random.Random(0)
    for _ in range(40):
        logo = synthetic_logo(rng, 64)
        alpha = np.asarray(logo)[:, :, 3]
        assert logo.mode == "RGBA" and max(logo.size) == 64
        assert alpha.max() == 255  # some solid ink
        assert alpha.min() == 0  # and some transparency around or inside it
        # tightly cropped: ink touches both the top and the bottom rows' neighbourhood
        rows = np.flatnonzero(alpha.max(axis=1) > 0)
        assert rows[0] <= 2 and rows[-1] >= alpha.shape[0] - 3


def test_logos_differ_from_each_other() -> None:
    rng = random.Random(1)
    sizes = {synthetic_logo(rng, 64).size for _ in range(30)}
    assert len(sizes) > 5  # icons, badges, monograms, words and icon-with-word layouts


def test_a_tiny_side_is_refused() -> None:
    with pytest.raises(ValueError, match="side"):
        synthetic_logo(random.Random(0), 8)
