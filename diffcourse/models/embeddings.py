r"""Telling a network *which* timestep (and which class) it is looking at."""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["sinusoidal_embedding", "TimeEmbedding", "LabelEmbedding"]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    r"""Transformer-style embedding of (possibly fractional) timesteps ``t``, shape ``(B, dim)``:

    .. math::

        \mathrm{emb}(t)_{i} = \sin(t\,\omega_i),\quad \mathrm{emb}(t)_{i + d/2} = \cos(t\,\omega_i),\quad
        \omega_i = \mathrm{max\_period}^{-i/(d/2)},\ i = 0 … d/2-1 .

    Nearby timesteps get nearby vectors at every scale, so the network can tell
    t=10 from t=900 and interpolate between them.
    """
    if dim % 2:
        raise ValueError(f"Embedding dimension must be even, got {dim}.")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float().reshape(-1, 1) * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of ``t`` followed by a two-layer MLP: ``(B,) -> (B, out_dim)``."""

    def __init__(self, out_dim: int, sin_dim: int | None = None) -> None:
        super().__init__()
        self.sin_dim = sin_dim or out_dim
        self.mlp = nn.Sequential(nn.Linear(self.sin_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.sin_dim))


class LabelEmbedding(nn.Module):
    """A learned vector per class plus one for the *null* label (index ``num_classes``).

    The null label means "no class given": classifier-free guidance trains with a
    fraction of labels replaced by it, so the same network is both conditional
    and unconditional. ``y=None`` in ``forward`` means the whole batch is null.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.null_label = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:
            y = torch.full((batch,), self.null_label, dtype=torch.long, device=device)
        y = torch.as_tensor(y, device=device).long().reshape(-1)
        if y.numel() == 1 and batch > 1:
            y = y.expand(batch)
        if int(y.min()) < 0 or int(y.max()) > self.null_label:
            raise ValueError(f"Labels must be in 0 … {self.num_classes - 1}, or {self.null_label} for 'no label'.")
        return self.table(y)
