"""Agreement of aligned pictures after the ORB homography (verify.gradient_agreement)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from lookalike.data.synthetic import synthetic_image
from lookalike.verify import gradient_agreement, masked_correlation

IDENTITY = np.eye(3)


def picture(seed: int, size: tuple[int, int] = (200, 160)) -> np.ndarray:
    return np.asarray(synthetic_image(seed, size).convert("L"), dtype=np.uint8)


def test_a_picture_agrees_with_itself_and_not_with_another() -> None:
    assert gradient_agreement(picture(1), picture(1), IDENTITY) > 0.99
    assert gradient_agreement(picture(1), picture(2), IDENTITY) < 0.5


def test_recolouring_keeps_the_agreement() -> None:
    colour = synthetic_image(3, (200, 160))
    inverted = np.asarray(ImageOps.invert(colour).convert("L"), dtype=np.uint8)
    darker = (np.asarray(colour.convert("L"), dtype=np.float32) * 0.6 + 20).astype(np.uint8)
    original = picture(3)
    assert gradient_agreement(inverted, original, IDENTITY) > 0.9  # edges keep their strength
    assert gradient_agreement(darker, original, IDENTITY) > 0.95


def test_the_homography_pulls_the_reference_into_the_query_frame() -> None:
    reference = picture(4, (240, 240))
    # the query is the reference's centre, shown twice as large
    crop = Image.fromarray(reference).crop((60, 60, 180, 180)).resize((240, 240))
    query = np.asarray(crop, dtype=np.uint8)
    to_reference = np.array([[0.5, 0.0, 60.0], [0.0, 0.5, 60.0], [0.0, 0.0, 1.0]])
    assert gradient_agreement(query, reference, to_reference) > 0.85
    assert gradient_agreement(query, reference, IDENTITY) < 0.5  # misaligned


def test_a_variant_agrees_only_on_its_shared_part() -> None:
    """The same picture with half of it changed (another strap, another shirt)."""
    reference = picture(5)
    variant = reference.copy()
    variant[:, 100:] = picture(6)[:, 100:]
    copy_agreement = gradient_agreement(reference, reference, IDENTITY)
    variant_agreement = gradient_agreement(variant, reference, IDENTITY)
    assert 0.2 < variant_agreement < copy_agreement - 0.3


def test_degenerate_homographies_and_flat_pictures_give_zero() -> None:
    flat = np.full((50, 50), 128, np.uint8)
    assert gradient_agreement(flat, flat, IDENTITY) == 0.0
    assert gradient_agreement(picture(1), picture(1), np.zeros((3, 3))) == 0.0
    away = np.array([[1.0, 0.0, 5000.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert gradient_agreement(picture(1), picture(1), away) == 0.0  # no overlap


def test_masked_correlation() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 20)).astype(np.float32)
    everywhere = np.ones((20, 20), bool)
    assert masked_correlation(a, 3 * a + 1, everywhere) > 0.999
    assert masked_correlation(a, -a, everywhere) < -0.999
    assert masked_correlation(a, a, np.zeros((20, 20), bool)) == 0.0
