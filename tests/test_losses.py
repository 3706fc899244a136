"""SSCD losses: InfoNCE over two views and the KoLeo spreading regulariser."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lookalike.training.losses import info_nce, koleo, sscd_loss, uniform_info_nce


def _aligned_pairs(n: int, dim: int = 16) -> torch.Tensor:
    """Two identical views of n orthogonal images: (2n, dim)."""
    images = torch.eye(dim)[:n]
    return torch.cat([images, images])


def test_info_nce_near_zero_for_aligned_distinct_pairs() -> None:
    loss = info_nce(_aligned_pairs(4), temperature=0.05)
    assert float(loss) < 1e-6
    assert float(loss) < 0.01 * math.log(2 * 4 - 1)


def test_info_nce_is_log_2n_minus_1_when_collapsed() -> None:
    collapsed = F.normalize(torch.ones(8, 5), dim=1)
    loss = info_nce(collapsed, temperature=0.05)
    assert float(loss) == pytest.approx(math.log(7), rel=1e-5)
    assert uniform_info_nce(4) == pytest.approx(math.log(7))


def test_info_nce_hand_checked_case() -> None:
    # N=1: the only candidate of each view is its positive, whatever the similarity.
    pair = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    assert float(info_nce(pair, 1.0)) == pytest.approx(0.0, abs=1e-6)
    # N=2, positives orthogonal (cos 0), negatives at cos 1 and -1... worked out by hand:
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    views = torch.stack([a, b, b, -a])  # positives: (a, b) and (b, -a)
    # view 0 (a): candidates b (pos, 0), b (0), -a (-1) -> -log(1 / (1 + 1 + e^-1))
    # view 1 (b): a (0), b (1), -a (pos, 0)            -> -log(1 / (1 + e + 1))
    # view 2 (b): a (pos, 0), b (1), -a (0)            -> same as view 1
    # view 3 (-a): a (-1), b (pos, 0), b (0)           -> same as view 0
    e = math.e
    expected = 0.5 * (math.log(2 + 1 / e) + math.log(2 + e))
    assert float(info_nce(views, 1.0)) == pytest.approx(expected, rel=1e-6)


def test_info_nce_gradient_flows_and_rejects_odd_batches() -> None:
    raw = torch.randn(6, 8, requires_grad=True)
    info_nce(F.normalize(raw, dim=1), 0.1).backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()
    assert float(raw.grad.abs().sum()) > 0
    with pytest.raises(ValueError):
        info_nce(torch.randn(5, 8), 0.1)


def test_koleo_prefers_spread_points() -> None:
    generator = torch.Generator().manual_seed(0)
    centre = F.normalize(torch.randn(1, 32, generator=generator), dim=1)
    clustered = F.normalize(centre + 0.01 * torch.randn(16, 32, generator=generator), dim=1)
    spread = F.normalize(torch.randn(16, 32, generator=generator), dim=1)
    assert float(koleo(clustered)) > float(koleo(spread)) + 1.0


def test_koleo_hand_checked_case() -> None:
    # Points 0, 1 and 3 on a line: nearest distances 1, 1, 2.
    points = torch.tensor([[0.0], [1.0], [3.0]])
    expected = -(0 + 0 + math.log(2)) / 3
    assert float(koleo(points)) == pytest.approx(expected, abs=1e-6)


def test_koleo_gradient_pushes_neighbours_apart() -> None:
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]], requires_grad=True)
    koleo(points).backward()
    assert points.grad is not None
    # Descending the gradient moves point 0 left and point 1 right: away from each other.
    assert float(points.grad[0, 0]) > 0 > float(points.grad[1, 0])


def test_sscd_loss_combines_terms() -> None:
    embeddings = F.normalize(torch.randn(8, 16), dim=1)
    total, parts = sscd_loss(embeddings, temperature=0.05, koleo_weight=2.0)
    assert set(parts) == {"info_nce", "koleo"}
    expected = parts["info_nce"] + 2.0 * parts["koleo"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    plain, parts_plain = sscd_loss(embeddings, koleo_weight=0.0)
    assert float(plain) == pytest.approx(float(parts_plain["info_nce"]))
