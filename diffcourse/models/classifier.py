r"""MNIST classifiers: `Classifier` (clean digits) and `NoisyClassifier` (noisy :math:`x_t`, for guidance).

`Classifier` is a small CNN, :math:`p_\phi(y\mid x_0)`. Its penultimate layer (``features``,
128 numbers per image) is the feature space in which chapter 7 computes FID: Inception
features mean little for 28×28 digits, a network trained on MNIST knows what matters.

`NoisyClassifier` is :math:`p_\phi(y\mid x_t, t)`: the same kind of CNN with the time
embedding added after every convolution, trained on :math:`x_t = \sqrt{\bar\alpha_t}x_0 +
\sqrt{1-\bar\alpha_t}\varepsilon` at random :math:`t`. Classifier guidance (chapter 5) adds
:math:`s\,\nabla_{x_t}\log p_\phi(y\mid x_t, t)` to the score, so the classifier must work
on noisy inputs and be differentiable in :math:`x_t`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import TimeEmbedding

__all__ = ["Classifier", "NoisyClassifier"]


class Classifier(nn.Module):
    """CNN for clean MNIST: ``logits = model(x)``; ``model.features(x)`` gives the penultimate (FID) features.

    conv32 → conv32 → pool → conv64 → conv64 → pool → conv128 → global average → fc(``feature_dim``) → fc(10).
    About 0.16M parameters.
    """

    def __init__(self, ch: int = 32, feature_dim: int = 128, num_classes: int = 10, dropout: float = 0.2) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(ch=ch, feature_dim=feature_dim, num_classes=num_classes, dropout=dropout)
        self.net = nn.Sequential(
            nn.Conv2d(1, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(ch, 2 * ch, 3, padding=1), nn.ReLU(), nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * ch, 4 * ch, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * ch, feature_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, shape ``(B, feature_dim)``: the FID feature space."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


class NoisyClassifier(nn.Module):
    r"""Time-conditioned CNN :math:`p_\phi(y\mid x_t, t)`: ``logits = model(x_t, t)``.

    Each conv stage is ``conv → GroupNorm → + W e(t) → SiLU``, so every layer knows how
    much noise to expect. About 0.2M parameters.
    """

    def __init__(self, ch: int = 32, num_classes: int = 10, emb_dim: int = 128) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(ch=ch, num_classes=num_classes, emb_dim=emb_dim)
        self.time = TimeEmbedding(emb_dim, sin_dim=ch)
        chans = [(1, ch), (ch, ch), (ch, 2 * ch), (2 * ch, 2 * ch), (2 * ch, 4 * ch)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in chans)
        self.norms = nn.ModuleList(nn.GroupNorm(8, o) for _, o in chans)
        self.embs = nn.ModuleList(nn.Linear(emb_dim, o) for _, o in chans)
        self.pool_after = {1, 3}
        self.head = nn.Sequential(nn.Linear(4 * ch, 128), nn.SiLU(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.numel() == 1:
            t = t.reshape(1).expand(x.shape[0])
        e = F.silu(self.time(t))
        h = x
        for i, (conv, norm, emb) in enumerate(zip(self.convs, self.norms, self.embs)):
            h = F.silu(norm(conv(h)) + emb(e)[:, :, None, None])
            if i in self.pool_after:
                h = F.max_pool2d(h, 2)
        return self.head(h.mean(dim=(2, 3)))
