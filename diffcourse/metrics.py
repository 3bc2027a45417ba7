r"""How good are the samples? Distances between sets of points.

Chapter 7 builds the full set; the 2D distances live here from the start
because every chapter checks its 2D samples with them.
"""
from __future__ import annotations

import torch

__all__ = ["sliced_wasserstein"]


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seed: int = 0) -> float:
    r"""Sliced 2-Wasserstein distance between two equal-size point sets.

    .. math::

        SW_2(x, y) = \Big(\mathbb E_{\theta\sim U(S^{d-1})}\ W_2^2\big(\theta^\top x,\ \theta^\top y\big)\Big)^{1/2},

    where in 1D :math:`W_2^2` between two sets of :math:`n` points is the mean squared
    difference of their *sorted* values. Directions come from a fixed ``seed``, so
    the number is repeatable. Two samples of the same distribution do not score 0:
    compare with the *floor*, the distance between two independent data samples of
    the same size.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"Expected two (n, d) point sets of the same d, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"Sliced Wasserstein here compares sets of equal size; got {x.shape[0]} and {y.shape[0]} points.")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = (x.detach().cpu().double() @ theta).sort(dim=0).values
    py = (y.detach().cpu().double() @ theta).sort(dim=0).values
    return float(((px - py) ** 2).mean().sqrt())
