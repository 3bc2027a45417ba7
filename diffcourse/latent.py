r"""The maths of latent diffusion (chapter 8): a VAE's two terms, the latent scale, cross-attention, and sampling.

Stable Diffusion (Rombach et al. 2022) runs diffusion not on pixels but on the latent of a
KL-regularised autoencoder. The pieces, each a short function here:

* **the reparameterised sample** (`reparameterize`): the encoder gives a mean :math:`\mu` and a
  log-variance :math:`\log\sigma^2` per latent element, and
  :math:`z = \mu + \sigma\odot\varepsilon = \mu + e^{\frac12\log\sigma^2}\odot\varepsilon`,
  :math:`\varepsilon\sim\mathcal N(0, I)`, so gradients flow through :math:`\mu` and :math:`\sigma`;
* **the KL term** (`gaussian_kl`):
  :math:`\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, I)\big) = \tfrac12\sum(\mu^2 + \sigma^2 - 1 - \log\sigma^2)`,
  summed over every latent element of an image; the VAE loss is reconstruction :math:`+\ \beta\cdot` KL;
* **the scale factor** (`latent_scale_factor`): diffusion's schedule assumes data of about unit
  variance, so latents are multiplied by :math:`c = 1/\mathrm{std}(z)` before diffusion and divided by
  it before decoding (Stable Diffusion's 0.18215 is this number, measured once on its VAE);
* **cross-attention** (`cross_attention`): queries from the image, keys and values from the prompt's tokens,
  :math:`\mathrm{softmax}(QK^\top/\sqrt d)\,V`, padding tokens masked out before the softmax;
* **latent sampling** (`latent_sample`): :math:`z_T\sim\mathcal N(0, I)` in the latent's shape, DDIM down
  to :math:`z_0`, then :math:`x = \mathrm{decode}(z_0 / c)`.

`time_per_item` measures what latent diffusion buys: seconds per image of any callable.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch

from .objectives import EpsFn
from .samplers.ddim import ddim_sample
from .schedules import NoiseSchedule

__all__ = ["reparameterize", "gaussian_kl", "latent_scale_factor", "cross_attention", "latent_sample",
           "time_per_item"]


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""The reparameterised sample :math:`z = \mu + e^{\frac12\log\sigma^2}\odot\varepsilon` (so :math:`z\sim\mathcal N(\mu,\sigma^2)`).

    ``logvar`` is :math:`\log\sigma^2`; its half is :math:`\log\sigma`. ``eps`` is the standard
    normal noise, passed in so the sample is reproducible (and a test can fix it).
    """
    return mean + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Per-item :math:`\mathrm{KL}(\mathcal N(\mu, e^{\log\sigma^2})\,\|\,\mathcal N(0, I))`, shape ``(B,)``.

    .. math:: \mathrm{KL} = \tfrac12 \sum_{j} \big(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\big)

    summed over every non-batch dimension (channels and positions of the latent): the KL of a
    diagonal Gaussian is the sum of its coordinates' KLs. It is zero exactly at :math:`\mu = 0, \sigma = 1`.
    """
    terms = mean ** 2 + torch.exp(logvar) - 1.0 - logvar
    return 0.5 * terms.flatten(1).sum(dim=1)


def latent_scale_factor(z: torch.Tensor) -> float:
    r"""The constant :math:`c = 1/\mathrm{std}(z)` over all elements of a batch of latents ``z``.

    Diffusion then runs on :math:`c\,z` (unit variance, as the noise schedule assumes) and decoding
    undoes it, :math:`\mathrm{decode}(z_0/c)`. Stable Diffusion's 0.18215 is this number for its VAE.
    """
    std = float(z.detach().double().std())
    if not math.isfinite(std) or std <= 0:
        raise ValueError(f"The latents' standard deviation is {std}; pass a batch of several non-constant latents.")
    return 1.0 / std


def cross_attention(x: torch.Tensor, context: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor,
                    w_v: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Single-head cross-attention: image positions attend to prompt tokens. Returns ``(out, attn)``.

    ``x`` (B, N, d_x) are the N image positions, ``context`` (B, M, d_c) the M token embeddings;
    ``w_q`` (d_x, d), ``w_k`` (d_c, d), ``w_v`` (d_c, d). With :math:`Q = xW_q`, :math:`K = cW_k`, :math:`V = cW_v`:

    .. math:: A = \mathrm{softmax}_M\!\Big(\frac{QK^\top}{\sqrt d}\Big) \in \mathbb R^{B\times N\times M},
              \qquad \mathrm{out} = A V \in \mathbb R^{B\times N\times d}

    Each query's weights over the M tokens sum to 1. ``mask`` (B, M), ``True`` for a real token,
    sets the scores of padding tokens to :math:`-\infty` *before* the softmax, so they get weight 0.
    """
    q, k, v = x @ w_q, context @ w_k, context @ w_v
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        if not bool(mask.any(dim=-1).all()):
            raise ValueError("Every item's mask needs at least one real token (True); an all-padding prompt has nothing to attend to.")
        scores = scores.masked_fill(~mask.bool()[:, None, :], float("-inf"))
    attn = scores.softmax(dim=-1)
    return attn @ v, attn


def latent_sample(eps_fn: EpsFn, schedule: NoiseSchedule, decode: Callable[[torch.Tensor], torch.Tensor],
                  shape: Sequence[int], *, scale: float, steps: int = 50, eta: float = 0.0,
                  generator: torch.Generator | None = None, device: torch.device | str | None = None,
                  progress: bool = False) -> torch.Tensor:
    r"""Sample images by latent diffusion: :math:`z_T\sim\mathcal N(0, I)`, DDIM to :math:`z_0`, :math:`x = \mathrm{decode}(z_0/c)`.

    ``shape`` is the *latent* batch shape, e.g. ``(B, 4, 7, 7)``; ``eps_fn`` was trained on scaled
    latents :math:`c\,z`, with ``scale`` :math:`= c` (`latent_scale_factor`), so the sample is divided
    by ``scale`` before the decoder sees it. Noise comes from ``generator`` (see `ddim_sample`).
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be the positive factor the latents were multiplied by (1/std), got {scale!r}.")
    z0 = ddim_sample(eps_fn, schedule, tuple(shape), steps=steps, eta=eta, generator=generator, device=device,
                     progress=progress)
    with torch.no_grad():
        return decode(z0 / scale)


def time_per_item(fn: Callable[[], object], n_items: int, repeats: int = 3) -> float:
    """Seconds per item of ``fn()`` (which makes ``n_items`` items): the best of ``repeats`` timed calls.

    The minimum over repeats is the least disturbed by other work on the machine.
    """
    if n_items < 1 or repeats < 1:
        raise ValueError(f"n_items and repeats must be positive, got {n_items} and {repeats}.")
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / n_items
