r"""The likelihood of discrete data under a Gaussian: the decoder term that the DDPM bound (`diffcourse.metrics`),
the VAE bound (`diffcourse.models.autoencoder`) and the decoder's floor (`diffcourse.samplers.sde`) share.

Images on ``bins`` grey levels in [-1, 1] are discrete, so a Gaussian decoder :math:`\mathcal N(\mu, \sigma^2)` is
given a probability, not a density: its mass over the bin around each level (Ho et al. 2020, section 3.3),

.. math:: P(x) = \Phi\Big(\frac{x + \delta - \mu}{\sigma}\Big) - \Phi\Big(\frac{x - \delta - \mu}{\sigma}\Big),
          \qquad \delta = \frac{1}{\text{bins} - 1},

with the two extreme bins stretched to :math:`-\infty` and :math:`+\infty`, so that the probabilities of all levels
sum to 1. This module sits below the networks and the metrics, and imports neither.
"""
from __future__ import annotations

import math

import torch

__all__ = ["normal_cdf", "discretised_gaussian_log_likelihood"]


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    r"""The standard normal CDF, :math:`\Phi(x) = \tfrac12\big(1 + \operatorname{erf}(x/\sqrt2)\big)`."""
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def discretised_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, std: float, bins: int = 256
                                        ) -> torch.Tensor:
    """log P(x0) per element for data on ``bins`` levels in [-1, 1] under N(mean, std^2), integrated over each level's
    bin (half-width 1/(bins-1)); the two extreme bins extend to -inf and +inf (Ho et al. 2020, section 3.3)."""
    half = 1.0 / (bins - 1)
    upper = torch.where(x0 > 1 - 1e-6, torch.ones_like(x0), normal_cdf((x0 + half - mean) / std))
    lower = torch.where(x0 < -1 + 1e-6, torch.zeros_like(x0), normal_cdf((x0 - half - mean) / std))
    return (upper - lower).clamp_min(1e-12).log()
