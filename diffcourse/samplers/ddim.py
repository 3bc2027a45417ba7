r"""DDIM sampling (Song, Meng & Ermon 2021): few steps, deterministic at :math:`\eta = 0`.

On a decreasing subsequence :math:`\tau_S > … > \tau_1` of the training steps, with
:math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}` and
:math:`s` the next (smaller) step in the subsequence:

.. math::

    x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma_t^2}\;\hat\varepsilon + \sigma_t z,
    \qquad
    \sigma_t = \eta\,\sqrt{\frac{1-\bar\alpha_s}{1-\bar\alpha_t}}\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_s}},

with :math:`\bar\alpha_s = 1` after the last step (so the result is :math:`\hat x_0`).
:math:`\eta = 0` is the deterministic DDIM; :math:`\eta = 1` has the variance of DDPM's
ancestral step. Timesteps use the "leading" spacing ``0, T/S, 2T/S, …`` (as in the DDIM code).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..objectives import EpsFn
from ..schedules import NoiseSchedule
from .common import initial_noise, steps_iter

__all__ = ["ddim_sample", "ddim_timesteps", "ddim_step"]


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The ``steps`` timesteps DDIM visits, increasing, with leading spacing: ``[0, c, 2c, …]``, ``c = T // steps``."""
    if not 1 <= steps <= T:
        raise ValueError(f"DDIM needs 1 <= steps <= T = {T}, got steps={steps}.")
    c = T // steps
    return [i * c for i in range(steps)]


def ddim_step(eps_fn: EpsFn, schedule: NoiseSchedule, x: torch.Tensor, t: int, s: int, eta: float = 0.0,
              noise: torch.Tensor | None = None, clip_x0: float | None = None) -> torch.Tensor:
    r"""One DDIM update :math:`x_t \to x_s` (``s < t``; ``s = -1`` means "to :math:`x_0`"); see the module docstring."""
    tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
    eps = eps_fn(x, tt)
    abar_t = schedule.extract(schedule.alpha_bars, t, x)
    abar_s = schedule.extract(schedule.alpha_bars, s, x) if s >= 0 else torch.ones_like(abar_t)
    x0 = (x - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        eps = (x - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()
    sigma = eta * ((1 - abar_s) / (1 - abar_t)).sqrt() * (1 - abar_t / abar_s).sqrt()
    x_s = abar_s.sqrt() * x0 + (1 - abar_s - sigma ** 2).clamp(min=0).sqrt() * eps
    if eta > 0 and s >= 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise for the stochastic part of the step.")
        x_s = x_s + sigma * noise
    return x_s


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape_or_x: Sequence[int] | torch.Tensor, *, steps: int,
                eta: float = 0.0, generator: torch.Generator | None = None, device: torch.device | str | None = None,
                progress: bool = False, return_trajectory: bool = False, clip_x0: float | None = None):
    r"""DDIM with ``steps`` network evaluations; returns :math:`x_0` (and with ``return_trajectory``
    the stacked states ``(steps + 1, *shape)`` on the CPU, :math:`x_T` first).

    Noise (the start, and :math:`z` when ``eta > 0``) is drawn on the CPU from ``generator``.
    """
    x = initial_noise(shape_or_x, generator, device)
    ts = ddim_timesteps(schedule.T, steps)
    prev = [-1] + ts[:-1]
    traj = [x.detach().cpu()] if return_trajectory else None
    for i in steps_iter(range(len(ts) - 1, -1, -1), progress, f"DDIM-{steps}", total=len(ts)):
        z = torch.randn(x.shape, generator=generator).to(x.device) if eta > 0 and prev[i] >= 0 else None
        x = ddim_step(eps_fn, schedule, x, ts[i], prev[i], eta, z, clip_x0)
        if return_trajectory:
            traj.append(x.detach().cpu())
    if return_trajectory:
        return x, torch.stack(traj)
    return x
