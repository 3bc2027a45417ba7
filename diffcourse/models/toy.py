"""`ToyMLP`: the noise-prediction network for 2D data."""
from __future__ import annotations

import torch
from torch import nn

from .embeddings import LabelEmbedding, TimeEmbedding

__all__ = ["ToyMLP"]


class ToyMLP(nn.Module):
    r"""A residual MLP :math:`\varepsilon_\theta(x_t, t[, y])` for 2D points.

    The time embedding (and, when ``num_classes`` is set, a label embedding
    with a null label for classifier-free guidance) is added to the hidden
    state of every block, so every layer knows the noise level.
    About 34k parameters with the defaults (``hidden=64, depth=3``): trains in seconds on a CPU.
    """

    def __init__(self, dim: int = 2, hidden: int = 64, depth: int = 3, num_classes: int | None = None) -> None:
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        self.inp = nn.Linear(dim, hidden)
        self.time = TimeEmbedding(hidden)
        self.label = LabelEmbedding(num_classes, hidden) if num_classes else None
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth)
        )
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0]) if torch.as_tensor(t).numel() == 1 else t
        cond = self.time(t)
        if self.label is not None:
            cond = cond + self.label(y, x.shape[0], x.device)
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h + cond)
        return self.out(h)


class ToyClassifier(nn.Module):
    r"""A time-conditioned classifier :math:`p_\phi(y\mid x_t, t)` for 2D points: logits ``(B, num_classes)``.

    Trained on noisy inputs :math:`x_t` at random t, it is the noise-aware classifier that
    classifier guidance needs (chapter 5): its gradient :math:`\nabla_x\log p_\phi(y\mid x_t,t)` must be
    meaningful at every noise level, which a classifier of clean points is not.
    """

    def __init__(self, num_classes: int, dim: int = 2, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.inp = nn.Linear(dim, hidden)
        self.time = TimeEmbedding(hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0]) if torch.as_tensor(t).numel() == 1 else t
        h = self.inp(x) + self.time(t)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)
