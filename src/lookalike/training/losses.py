"""Losses of SSCD-style copy-detection training (Pizzi et al., CVPR 2022).

The descriptor is trained with InfoNCE over two views of each image (the views of the same image
are positives, every other view in the batch a negative) plus the KoLeo differential-entropy
regulariser (Sablayrolles et al., "Spreading vectors for similarity search", ICLR 2019), which
spreads descriptors over the sphere so that one global score threshold separates copies from
non-copies.

Default weight of the regulariser: SSCD uses ``lambda = 30`` with exactly this estimator's
normalisation (mean over the batch of ``-log`` nearest-neighbour distance, unit-norm
descriptors) next to a mean-reduced InfoNCE at temperature 0.05, so the same value keeps the
same balance here. The balance barely depends on batch size: in 256+ dimensions the
nearest-neighbour distance of unit vectors stays near sqrt(2) whether the batch holds 64 or
4096 images, and both terms are means over the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_TEMPERATURE = 0.05
DEFAULT_KOLEO_WEIGHT = 30.0


def info_nce(embeddings: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """Normalised-temperature cross entropy (SimCLR's NT-Xent) over two views per image.

    Args:
        embeddings: ``(2N, D)`` unit-norm descriptors; rows ``i`` and ``i + N`` are the two views
            of image ``i``.
        temperature: divides the cosine similarities; SSCD uses 0.05.

    Returns:
        A scalar: the mean over the ``2N`` views of ``-log softmax`` of the positive among the
        ``2N - 1`` other views. ``log(2N - 1)`` when all descriptors are equal, near 0 when each
        view is much closer to its positive than to anything else.
    """
    count = _even_rows(embeddings)
    half = count // 2
    vectors = embeddings.float()
    logits = vectors @ vectors.T / temperature
    # A view is never its own candidate: -inf on the diagonal removes it from the softmax.
    eye = torch.eye(count, dtype=torch.bool, device=vectors.device)
    logits = logits.masked_fill(eye, float("-inf"))
    targets = (torch.arange(count, device=vectors.device) + half) % count
    return F.cross_entropy(logits, targets)


def koleo(embeddings: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko differential-entropy regulariser (lower is more spread out).

    Args:
        embeddings: ``(M, D)`` descriptors, ``M >= 2`` (unit-norm in training).
        eps: keeps ``log`` finite for duplicate rows.

    Returns:
        A scalar: ``-mean_i log(||x_i - x_nn(i)|| + eps)`` where ``nn(i)`` is the nearest other
        row. Up to constants this is minus the entropy estimate, so minimising it spreads points.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"koleo needs an (M >= 2, D) matrix, got {tuple(embeddings.shape)}")
    vectors = embeddings.float()
    with torch.no_grad():
        # The neighbour choice is not differentiable anyway; only the distance carries gradient.
        distances = torch.cdist(vectors, vectors)
        distances.fill_diagonal_(float("inf"))
        neighbours = distances.argmin(dim=1)
    nearest = torch.linalg.vector_norm(vectors - vectors[neighbours], dim=1)
    return -torch.log(nearest + eps).mean()


def sscd_loss(
    embeddings: torch.Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    koleo_weight: float = DEFAULT_KOLEO_WEIGHT,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SSCD's objective: ``info_nce + koleo_weight * koleo``.

    Args:
        embeddings: ``(2N, D)`` unit-norm descriptors laid out as for :func:`info_nce`.
        temperature: InfoNCE temperature.
        koleo_weight: weight of the entropy regulariser (0 disables it).

    Returns:
        ``(total, parts)``: the scalar loss to back-propagate and the detached terms
        ``{"info_nce", "koleo"}`` for logging.

    KoLeo runs on each set of views separately and is averaged: over the whole batch the nearest
    neighbour of a view is usually its own positive, and spreading those apart would fight the
    InfoNCE term that pulls them together.
    """
    half = _even_rows(embeddings) // 2
    contrastive = info_nce(embeddings, temperature)
    if koleo_weight and half >= 2:
        spread = 0.5 * (koleo(embeddings[:half]) + koleo(embeddings[half:]))
    else:
        spread = contrastive.new_zeros(())
    total = contrastive + koleo_weight * spread
    return total, {"info_nce": contrastive.detach(), "koleo": spread.detach()}


def uniform_info_nce(batch_pairs: int) -> float:
    """InfoNCE of a collapsed model (all descriptors equal): ``log(2N - 1)``, a useful baseline."""
    return math.log(2 * batch_pairs - 1)


def _even_rows(embeddings: torch.Tensor) -> int:
    if embeddings.ndim != 2 or embeddings.shape[0] < 2 or embeddings.shape[0] % 2:
        raise ValueError(
            f"expected (2N, D) embeddings of N >= 1 image pairs, got {tuple(embeddings.shape)}"
        )
    return int(embeddings.shape[0])
