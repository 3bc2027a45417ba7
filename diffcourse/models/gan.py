r"""`GAN`: a small DCGAN-style generative adversarial network for 1×28×28 digits (chapter 8's comparison).

A generator :math:`G` maps noise :math:`u\sim\mathcal N(0, I_{64})` to an image in one forward pass; a
discriminator :math:`D` scores images as real or generated. They play a game (Goodfellow et al. 2014),
here with the *non-saturating* generator loss:

.. math:: L_D = -\mathbb E_x \log\sigma(D(x)) - \mathbb E_u \log\big(1-\sigma(D(G(u)))\big),
          \qquad L_G = -\mathbb E_u \log\sigma(D(G(u))) .

`gan_loss` returns :math:`L_D + L_G` arranged so that one backward pass gives the discriminator the
gradient of :math:`L_D` only and the generator the gradient of :math:`L_G` only (the fake images are
detached in :math:`L_D`; :math:`L_G` calls :math:`D` with detached weights). So the course's one training
loop (one optimiser, EMA, checkpoint, resume) trains both players with simultaneous updates.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

__all__ = ["GAN", "gan_loss"]


class GAN(nn.Module):
    """``generator``: noise ``(B, z_dim)`` → images ``(B, 1, 28, 28)`` in [-1, 1]; ``discriminator``: images → logits ``(B,)``.

    ``model(u)`` runs the generator; `GAN.sample` draws the noise itself.
    """

    def __init__(self, z_dim: int = 64, ch: int = 32) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(z_dim=z_dim, ch=ch)
        self.z_dim = z_dim
        self.generator = nn.Sequential(
            nn.Linear(z_dim, 2 * ch * 7 * 7), nn.Unflatten(1, (2 * ch, 7, 7)), nn.BatchNorm2d(2 * ch), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), nn.BatchNorm2d(2 * ch), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
            nn.Conv2d(ch, 1, 3, padding=1), nn.Tanh())
        self.discriminator = nn.Sequential(
            nn.Conv2d(1, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2),          # 14×14
            nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2),     # 7×7
            nn.Flatten(), nn.Linear(2 * ch * 7 * 7, 1), nn.Flatten(0))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.generator(u)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` images from noise drawn (on the CPU) from ``generator``: one network evaluation each."""
        u = torch.randn(n, self.z_dim, generator=generator)
        return self.generator(u.to(device or next(self.parameters()).device))


def gan_loss(gan: GAN, real: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r""":math:`L_D + L_G` (module docstring) on a batch of ``real`` images, noise drawn from ``generator``.

    The generator's term evaluates the discriminator with detached weights, and the discriminator's
    term sees detached fakes, so each player receives the gradient of its own loss only.
    """
    u = torch.randn(real.shape[0], gan.z_dim, generator=generator).to(real.device)
    fake = gan.generator(u)
    d = gan.discriminator
    loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()   # -log σ(D(x)) - log(1-σ(D(G)))
    frozen = {k: v.detach() for k, v in d.named_parameters()}
    loss_g = F.softplus(-functional_call(d, frozen, (fake,))).mean()              # -log σ(D(G(u)))
    return loss_d + loss_g
