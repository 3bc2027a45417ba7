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

    conv(``ch``) → conv(``ch``) → max-pool → conv(2·``ch``) → conv(2·``ch``) → max-pool → conv(4·``ch``) →
    global average → fc(``feature_dim``) → dropout → fc(``num_classes``); 3×3 convolutions, ReLU after each
    conv and after the first fc. The parameter count depends on ``ch`` and ``feature_dim``; the shipped
    network's config and count are in ``checkpoints/manifest.json``.
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
    much noise to expect. The head reads the last stage averaged over the image, or, with ``spatial_head``,
    its 7×7 layout (squeezed to 32 channels by a 1×1 conv). With ``linear_bases = K > 0`` the logits also get
    a linear discriminant on the raw pixels whose weights move with the noise level,
    :math:`\sum_{k=1}^K g_k(t)\,W_k x_t` (gates :math:`g(t)` = softmax of a linear map of the time
    embedding): at high noise the best classifier is nearly linear (a linear discriminant on :math:`x_t`),
    so the network holds that family exactly. The parameter count depends on the config; the
    shipped network's config and count are in ``checkpoints/manifest.json``.
    """

    def __init__(self, ch: int = 32, num_classes: int = 10, emb_dim: int = 128, spatial_head: bool = False,
                 linear_bases: int = 0) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(ch=ch, num_classes=num_classes, emb_dim=emb_dim, spatial_head=spatial_head,
                                           linear_bases=linear_bases)
        self.num_classes, self.linear_bases = num_classes, linear_bases
        self.linear = nn.Linear(28 * 28, num_classes * linear_bases) if linear_bases else None
        self.gates = nn.Linear(emb_dim, linear_bases) if linear_bases else None
        self.time = TimeEmbedding(emb_dim, sin_dim=ch)
        chans = [(1, ch), (ch, ch), (ch, 2 * ch), (2 * ch, 2 * ch), (2 * ch, 4 * ch)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in chans)
        self.norms = nn.ModuleList(nn.GroupNorm(8, o) for _, o in chans)
        self.embs = nn.ModuleList(nn.Linear(emb_dim, o) for _, o in chans)
        self.pool_after = {1, 3}
        # spatial_head: keep *where* the 7x7 features are (a 1x1 conv to 32 channels, then flatten), as a
        # linear discriminant on the pixels does; without it, features are averaged over the image.
        self.squeeze = nn.Conv2d(4 * ch, 32, 1) if spatial_head else None
        self.head = nn.Sequential(nn.Linear(32 * 49 if spatial_head else 4 * ch, 128), nn.SiLU(),
                                  nn.Linear(128, num_classes))

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
        logits = self.head(self.squeeze(h).flatten(1) if self.squeeze is not None else h.mean(dim=(2, 3)))
        if self.linear is not None:  # sum_k g_k(t) W_k x_t
            per_basis = self.linear(x.flatten(1)).reshape(x.shape[0], self.linear_bases, self.num_classes)
            logits = logits + (torch.softmax(self.gates(e), dim=1)[:, :, None] * per_basis).sum(1)
        return logits
