r"""`GAN`: a DCGAN (Radford et al. 2016) for 1×28×28 digits — chapter 8's adversarial baseline.

A generator :math:`G` maps noise :math:`u\sim\mathcal N(0, I_{z})` to an image in one forward pass; a
discriminator :math:`D` gives each image a logit, "real" (high) or "generated" (low). They play a game
(Goodfellow et al. 2014); with the *non-saturating* generator loss the two players minimise

.. math:: L_D = -\mathbb E_x \log\sigma(D(x)) - \mathbb E_u \log\big(1-\sigma(D(G(u)))\big),
          \qquad L_G = -\mathbb E_u \log\sigma(D(G(u))) ,

each with its own optimiser, in alternation (`diffcourse.adversarial.train_gan`). The architecture follows
DCGAN's rules: no pooling (strided convolutions in :math:`D`, transposed convolutions in :math:`G`), batch
normalisation in both players (not on :math:`D`'s input layer nor :math:`G`'s output), ReLU in :math:`G` with a
tanh output, LeakyReLU(0.2) in :math:`D`, weights initialised from :math:`\mathcal N(0, 0.02^2)`::

    G: u (z) ─ConvT 7×7─ 2ch×7×7 ─ConvT 4, s2─ ch×14×14 ─ConvT 4, s2─ 1×28×28, tanh
    D: x 1×28×28 ─Conv 4, s2─ ch×14×14 ─Conv 4, s2─ 2ch×7×7 ─Conv 7×7─ logit

``discriminator=False`` builds the generator alone: the shipped checkpoint holds only what samples.
(``discriminator=None`` rebuilds the small GAN shipped before chapter 8 moved to this DCGAN — upsampling +
convolution, no batch norm in D — so that its checkpoint loads until ``latent-gan`` is re-exported; `_legacy_layers`.)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["GAN", "discriminator_loss", "generator_loss", "dcgan_init"]


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolution weights from N(0, 0.02²); batch-norm scales from N(1, 0.02²), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class GAN(nn.Module):
    """``generator``: noise ``(B, z_dim)`` → images ``(B, 1, 28, 28)`` in [-1, 1]; ``discriminator``: images → logits.

    ``model(u)`` runs the generator; `GAN.sample` draws the noise itself.
    """

    # discriminator=None only while the old checkpoint is shipped (its config has no such key): then True
    def __init__(self, z_dim: int = 64, ch: int = 48, discriminator: bool | None = None) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(z_dim=z_dim, ch=ch, discriminator=discriminator)
        self.z_dim = z_dim
        if discriminator is None:
            self.config.pop("discriminator")
            self.generator, self.discriminator = _legacy_layers(z_dim, ch)
            return
        self.generator = nn.Sequential(
            nn.Unflatten(1, (z_dim, 1, 1)),
            nn.ConvTranspose2d(z_dim, 2 * ch, 7, bias=False), nn.BatchNorm2d(2 * ch), nn.ReLU(),           # 7×7
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),            # 14×14
            nn.ConvTranspose2d(ch, 1, 4, 2, 1), nn.Tanh())                                                 # 28×28
        self.discriminator = nn.Sequential(
            nn.Conv2d(1, ch, 4, 2, 1), nn.LeakyReLU(0.2),                                                  # 14×14
            nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ch), nn.LeakyReLU(0.2),         # 7×7
            nn.Conv2d(2 * ch, 1, 7), nn.Flatten(0)) if discriminator else None
        self.apply(dcgan_init)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.generator(u)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` images from noise drawn (on the CPU) from ``generator``: one network evaluation each."""
        u = torch.randn(n, self.z_dim, generator=generator)
        return self.generator(u.to(device or next(self.parameters()).device))


def _legacy_layers(z_dim: int, ch: int) -> tuple[nn.Module, nn.Module]:
    """The layers of the GAN checkpoint shipped before the DCGAN (its config has no ``discriminator`` key)."""
    generator = nn.Sequential(
        nn.Linear(z_dim, 2 * ch * 7 * 7), nn.Unflatten(1, (2 * ch, 7, 7)), nn.BatchNorm2d(2 * ch), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), nn.BatchNorm2d(2 * ch), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv2d(2 * ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
        nn.Conv2d(ch, 1, 3, padding=1), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(1, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * ch * 7 * 7, 1), nn.Flatten(0))
    return generator, discriminator


def discriminator_loss(gan: GAN, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    r""":math:`L_D = -\log\sigma(D(x)) - \log(1-\sigma(D(G(u))))`, batch means; ``fake`` is detached, so only
    :math:`D` gets a gradient. (:math:`-\log\sigma(a)` = softplus(−a), :math:`-\log(1-\sigma(a))` = softplus(a).)"""
    if gan.discriminator is None:
        raise ValueError("This GAN was built with discriminator=False (a shipped generator): it cannot be trained.")
    return F.softplus(-gan.discriminator(real)).mean() + F.softplus(gan.discriminator(fake.detach())).mean()


def generator_loss(gan: GAN, fake: torch.Tensor) -> torch.Tensor:
    r"""The non-saturating :math:`L_G = -\log\sigma(D(G(u)))`: strong gradients exactly when :math:`D` rejects the
    fakes (the minimax :math:`\log(1-\sigma(D))` saturates there). Its gradient also reaches :math:`D`'s weights:
    the training loop steps only the generator's optimiser on it."""
    if gan.discriminator is None:
        raise ValueError("This GAN was built with discriminator=False (a shipped generator): it cannot be trained.")
    return F.softplus(-gan.discriminator(fake)).mean()
