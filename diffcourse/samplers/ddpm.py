r"""Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2).

From :math:`x_T\sim\mathcal N(0,I)`, for :math:`t = T-1, …, 0`:

.. math::

    x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
    \varepsilon_\theta(x_t,t)\Big) + \sigma_t z,\qquad z\sim\mathcal N(0,I),

with no noise added at the last step (t = 0). Two choices of variance are
both valid (the DDPM paper found them to give similar samples):
:math:`\sigma_t^2=\beta_t` (optimal when :math:`x_0\sim\mathcal N(0,I)`) and
:math:`\sigma_t^2=\tilde\beta_t=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t`
(optimal when :math:`x_0` is a single point, the true posterior variance).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..objectives import EpsFn
from ..schedules import NoiseSchedule
from .loop import sample_loop

__all__ = ["ddpm_sample", "ddpm_step", "ddpm_grid", "VARIANCES"]

VARIANCES = ("beta", "beta_tilde")


def ddpm_step(eps_fn: EpsFn, schedule: NoiseSchedule, x: torch.Tensor, t: int, noise: torch.Tensor,
              variance: str = "beta", clip_x0: float | None = None) -> torch.Tensor:
    r"""One reverse step :math:`x_t \to x_{t-1}` (see the module docstring); ``noise`` is :math:`z`.

    With ``clip_x0`` the predicted :math:`\hat x_0` is clipped to ``[-clip_x0, clip_x0]``
    and the mean is the posterior mean :math:`\tilde\mu_t(x_t, \hat x_0)`, which
    equals the formula above when nothing is clipped.
    """
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}.")
    tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    eps = eps_fn(x, tt)
    if clip_x0 is None:
        beta, alpha, abar = (schedule.extract(v, t, x) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
        mean = (x - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()
    else:
        x0 = schedule.predict_x0(x, t, eps).clamp(-clip_x0, clip_x0)
        mean, _ = schedule.q_posterior(x0, x, t)
    if t == 0:
        return mean
    var = schedule.extract(schedule.betas if variance == "beta" else schedule.posterior_variance, t, x)
    return mean + var.sqrt() * noise


def ddpm_grid(T: int) -> list[int]:
    """Every step, from pure noise to the data: ``[T-1, T-2, …, 0, -1]`` (``-1`` is :math:`x_0`)."""
    return list(range(T - 1, -2, -1))


def ddpm_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape_or_x: Sequence[int] | torch.Tensor, *,
                steps: int | None = None, generator: torch.Generator | None = None, device: torch.device | str | None = None,
                progress: bool = False, return_trajectory: bool = False, trajectory_every: int = 1,
                variance: str = "beta", clip_x0: float | None = None):
    r"""Run the reverse chain for all ``schedule.T`` steps (`ddpm_grid`, `ddpm_step`); returns :math:`x_0`.

    The shared arguments are `sample_loop`'s (start shape or :math:`x_T`, generator, device, progress,
    trajectory). ``steps`` may only be ``T``: ancestral DDPM visits every step (for fewer, use
    `ddim_sample` with ``eta=1``). Fresh noise :math:`z` is drawn on the CPU from ``generator``
    at every step but the last.
    """
    if steps is not None and steps != schedule.T:
        raise ValueError(f"DDPM runs all T = {schedule.T} steps (got steps={steps}); "
                         "for fewer steps use DDIM (ddim_sample, eta=1 for a DDPM-like stochastic sampler).")
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}.")

    def step(x: torch.Tensor, t: int, s: int, g: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(x.shape, generator=g).to(x.device) if t > 0 else None
        return ddpm_step(eps_fn, schedule, x, t, z, variance, clip_x0)

    return sample_loop(step, ddpm_grid(schedule.T), shape_or_x, generator=generator, device=device,
                       progress=progress, return_trajectory=return_trajectory, trajectory_every=trajectory_every,
                       desc="DDPM")
