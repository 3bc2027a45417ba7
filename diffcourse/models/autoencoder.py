r"""`Autoencoder`: the KL-regularised autoencoder (a VAE) of latent diffusion, 1×28×28 ↔ ``latent_ch``×7×7.

Stable Diffusion's autoencoder shrinks a 3×512×512 image to a 4×64×64 latent (factor f = 8 per side).
Here f = 4: 28×28 pixels become a 7×7 grid of ``latent_ch`` = 4 numbers (196 numbers for 784 pixels)::

    x 1×28×28 ─conv─ 28×28 ─stride 2─ 14×14 ─stride 2─ 7×7 ─1×1 conv─▶ mean, log-variance (2 × 4×7×7)
    z 4×7×7  ─conv─ 7×7 ─nearest ×2, conv─ 14×14 ─nearest ×2, conv─ 28×28 ─conv, tanh─▶ x̂ 1×28×28

With ``latent_dim = d`` the 7×7 grid is flattened into a *dense* latent of d numbers instead (a linear layer each
way): the classic VAE, whose prior :math:`\mathcal N(0, I_d)` is sampled directly (chapter 8's σ-VAE baseline).

The encoder gives a *distribution* :math:`q(z\mid x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))`, a sample is
drawn with the reparameterisation :math:`z = \mu + \sigma\odot\varepsilon` (`diffcourse.latent.reparameterize`),
and the decoder maps it back (tanh keeps pixels in [-1, 1]). `vae_loss` is the training objective.
Each block is ``conv → GroupNorm → SiLU`` with a residual connection where the shape allows.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..latent import gaussian_kl, reparameterize
from ..likelihood import discretised_gaussian_log_likelihood

__all__ = ["Autoencoder", "vae_loss", "sigma_vae_loss", "decoder_sigma", "vae_elbo_bpd"]


class _Block(nn.Module):
    """``x + SiLU(GN(conv(x)))`` (the residual only when the channel count is kept)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, out_ch), out_ch)
        self.residual = in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm(self.conv(x)))
        return x + h if self.residual else h


class _Up(nn.Module):
    """Nearest-neighbour upsampling ×2, then a 3×3 convolution (no checkerboard artefacts)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Autoencoder(nn.Module):
    r"""Encoder :math:`x \mapsto (\mu, \log\sigma^2)` and decoder :math:`z \mapsto \hat x` for 1×28×28 digits in [-1, 1].

    ``latent_ch`` channels at 7×7 (or, with ``latent_dim``, a dense latent of that many numbers); ``ch`` base
    channels (``2·ch`` at 14×14 and 7×7). ``config`` rebuilds it; ``latent_shape`` is one latent's shape.
    """

    def __init__(self, latent_ch: int = 4, ch: int = 32, latent_dim: int | None = None) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(latent_ch=latent_ch, ch=ch, latent_dim=latent_dim)
        self.latent_ch, self.latent_dim = latent_ch, latent_dim
        self.latent_shape: tuple[int, ...] = (latent_dim,) if latent_dim else (latent_ch, 7, 7)
        grid = 2 * ch * 7 * 7
        self.encoder = nn.Sequential(
            nn.Conv2d(1, ch, 3, padding=1), _Block(ch, ch),                              # 28×28
            nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), _Block(2 * ch, 2 * ch),       # 14×14
            nn.Conv2d(2 * ch, 2 * ch, 3, stride=2, padding=1), _Block(2 * ch, 2 * ch),   # 7×7
            nn.Sequential(nn.Flatten(), nn.Linear(grid, 2 * latent_dim)) if latent_dim   # mean and log-variance
            else nn.Conv2d(2 * ch, 2 * latent_ch, 1))
        self.decoder = nn.Sequential(
            nn.Sequential(nn.Linear(latent_dim, grid), nn.Unflatten(1, (2 * ch, 7, 7))) if latent_dim
            else nn.Conv2d(latent_ch, 2 * ch, 3, padding=1), _Block(2 * ch, 2 * ch),     # 7×7
            _Up(2 * ch, 2 * ch), _Block(2 * ch, 2 * ch),                                 # 14×14
            _Up(2 * ch, ch), _Block(ch, ch),                                              # 28×28
            nn.Conv2d(ch, 1, 3, padding=1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The posterior's mean :math:`\mu` and log-variance :math:`\log\sigma^2`, each ``(B, *latent_shape)``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"Expected digits of shape (B, 1, 28, 28) in [-1, 1], got {tuple(x.shape)}.")
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)  # as Stable Diffusion: keeps exp(logvar) finite

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""The reconstruction :math:`\hat x = \tanh(\mathrm{dec}(z))` in [-1, 1], ``(B, 1, 28, 28)``."""
        if tuple(z.shape[1:]) != self.latent_shape:
            shape = ", ".join(map(str, self.latent_shape))
            raise ValueError(f"Expected latents of shape (B, {shape}), got {tuple(z.shape)}.")
        return torch.tanh(self.decoder(z))

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""``(x̂, μ, log σ²)``: encode, sample :math:`z = \mu + \sigma\varepsilon` (``eps=None``: the mean), decode."""
        mean, logvar = self.encode(x)
        z = mean if eps is None else reparameterize(mean, logvar, eps)
        return self.decode(z), mean, logvar


def vae_loss(model: Autoencoder, x: torch.Tensor, beta: float, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The β-VAE objective on a batch, averaged over images; returns ``(loss, reconstruction, kl)``:

    .. math:: L = \mathbb E_x\Big[\underbrace{\|x - \mathrm{dec}(\mu + \sigma\varepsilon)\|^2}_{\text{reconstruction}}
              + \beta\,\underbrace{\mathrm{KL}\big(\mathcal N(\mu,\sigma^2)\,\|\,\mathcal N(0, I)\big)}_{\text{to the prior}}\Big]

    The squared error is summed over the 784 pixels and the KL over the 196 latent numbers, so β compares
    the two per image. With β = 1 this is the negative ELBO of a VAE whose decoder is a Gaussian of
    variance 1/2 per pixel (up to a constant); Stable Diffusion's autoencoder uses a tiny β (10⁻⁶ in its units).
    ``eps`` is drawn from ``generator``.
    """
    mean, logvar = model.encode(x)
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    recon = model.decode(reparameterize(mean, logvar, eps))
    rec = (recon.float() - x.float()).pow(2).flatten(1).sum(1).mean()
    kl = gaussian_kl(mean.float(), logvar.float()).mean()
    return rec + beta * kl, rec.detach(), kl.detach()


def sigma_vae_loss(model: Autoencoder, x: torch.Tensor, generator: torch.Generator | None = None,
                   min_log_sigma: float = -6.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The σ-VAE objective (Rybkin et al. 2021): the negative ELBO with a *calibrated* Gaussian decoder
    :math:`p(x\mid z) = \mathcal N(\mathrm{dec}(z), \sigma^2 I)`, σ set to its optimum on the batch; returns
    ``(loss, reconstruction, kl, log_sigma)``, averaged over images.

    For D pixels with squared errors :math:`e_i`, :math:`-\log p(x\mid z) = \frac1{2\sigma^2}\sum_i e_i + D\log\sigma
    + \frac D2\log 2\pi`, minimised by :math:`\sigma^{*2} = \frac1D\sum_i e_i` (the mean squared error, here over the
    batch). With a fixed σ the KL's weight relative to the reconstruction is arbitrary — a blur knob (β-VAE);
    with σ* it is the true ELBO's. ``log σ`` is kept above ``min_log_sigma`` (σ ≥ 0.0025 in [-1, 1] units).
    """
    mean, logvar = model.encode(x)
    eps = torch.randn(mean.shape, generator=generator).to(mean.device)
    sq = (model.decode(reparameterize(mean, logvar, eps)).float() - x.float()).pow(2).flatten(1)
    log_sigma = (0.5 * sq.mean().log()).clamp(min=min_log_sigma)
    d = sq.shape[1]
    nll = sq.sum(1) / (2 * torch.exp(2 * log_sigma)) + d * (log_sigma + 0.5 * math.log(2 * math.pi))
    kl = gaussian_kl(mean.float(), logvar.float())
    return (nll + kl).mean(), sq.sum(1).mean().detach(), kl.mean().detach(), log_sigma.detach()


@torch.no_grad()
def decoder_sigma(model: Autoencoder, x: torch.Tensor, generator: torch.Generator | None = None) -> float:
    r"""The maximum-likelihood standard deviation of a Gaussian decoder :math:`p(x\mid z) = \mathcal N(\mathrm{dec}(z), \sigma^2 I)`
    on images ``x`` (training digits): :math:`\sigma^2` = the mean squared reconstruction error, z drawn from q(z|x)."""
    mean, logvar = model.encode(x)
    z = reparameterize(mean, logvar, torch.randn(mean.shape, generator=generator).to(mean.device))
    return float((model.decode(z) - x).pow(2).mean().sqrt())


@torch.no_grad()
def vae_elbo_bpd(model: Autoencoder, x: torch.Tensor, sigma: float, generator: torch.Generator | None = None,
                 bins: int = 256) -> torch.Tensor:
    r"""The VAE's bound on :math:`-\log p(x)` in bits per dimension, per image ``(B,)``, one sample :math:`z\sim q(z\mid x)`:

    .. math:: -\log p(x) \le \mathbb E_{q(z\mid x)}\big[-\log p(x\mid z)\big] + \mathrm{KL}\big(q(z\mid x)\,\|\,\mathcal N(0, I)\big),

    with the decoder a Gaussian :math:`\mathcal N(\mathrm{dec}(z), \sigma^2)` integrated over each pixel's grey level
    (``bins`` levels in [-1, 1]), as the DDPM bound's :math:`L_0` (`diffcourse.metrics.ddpm_elbo_bpd`), so the two
    bound the same discrete data and compare. Divided by :math:`784\,\ln 2`.
    """
    mean, logvar = model.encode(x)
    z = reparameterize(mean, logvar, torch.randn(mean.shape, generator=generator).to(mean.device))
    nll = -discretised_gaussian_log_likelihood(x.double(), model.decode(z).double(), sigma, bins).flatten(1).sum(1)
    return (nll + gaussian_kl(mean.double(), logvar.double())) / (x[0].numel() * math.log(2))
