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
from .common import initial_noise, steps_iter

__all__ = ["ddpm_sample", "ddpm_step", "VARIANCES"]

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


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape_or_x: Sequence[int] | torch.Tensor, *,
                generator: torch.Generator | None = None, variance: str = "beta", clip_x0: float | None = None,
                device: torch.device | str | None = None, progress: bool = False,
                return_trajectory: bool = False, trajectory_every: int = 1):
    r"""Run the reverse chain for all ``schedule.T`` steps; returns :math:`x_0` (and the trajectory).

    ``shape_or_x`` is the shape of the batch, e.g. ``(n, 2)``, or a given :math:`x_T`.
    With ``return_trajectory`` the result is ``(x0, traj)`` where ``traj`` has shape
    ``(K, *shape)`` on the CPU: :math:`x_T` first, then every ``trajectory_every``-th
    step, :math:`x_0` last. ``eps_fn(x_t, t)`` is the noise prediction (see
    `diffcourse.objectives.eps_fn`). Fresh noise :math:`z` is drawn on the CPU
    from ``generator`` at every step.
    """
    x = initial_noise(shape_or_x, generator, device)
    traj = [x.detach().cpu()] if return_trajectory else None
    for t in steps_iter(range(schedule.T - 1, -1, -1), progress, "DDPM", total=schedule.T):
        z = torch.randn(x.shape, generator=generator).to(x.device) if t > 0 else None
        x = ddpm_step(eps_fn, schedule, x, t, z, variance, clip_x0)
        if return_trajectory and (t % trajectory_every == 0):
            traj.append(x.detach().cpu())
    if return_trajectory:
        return x, torch.stack(traj)
    return x
