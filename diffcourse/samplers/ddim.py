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
ancestral step. Which S of the T steps to visit is the *spacing* (`ddim_timesteps`): ``"leading"``
``0, c, 2c, …`` with ``c = T // S`` (the original DDIM code's default), ``"trailing"`` which always
includes the last step ``T-1`` (so sampling starts from true noise; Lin et al. 2024), and
``"quadratic"`` which crowds the steps at low noise (the DDIM paper's choice for CIFAR-10).

The package's default is ``"trailing"``. Sampling starts from :math:`x_T\sim\mathcal N(0, I)`, which is
the distribution of :math:`x_{T-1}` (code index) only; leading spacing never visits ``T-1`` when S < T,
so it hands pure noise to the network labelled as a less noisy step whose real inputs still carry
:math:`\sqrt{\bar\alpha_{\tau_S}}` of signal (with 10 of 1000 steps it starts at ``t = 900``), and leaves the
network's training at the noisiest levels unused. Trailing spacing starts where the forward process
ends. Pass ``spacing="leading"`` to reproduce results made with the old default.

`ddim_invert` runs the deterministic update the other way, :math:`x_0 \to x_T`, giving the
latent noise from which DDIM with :math:`\eta = 0` reproduces an image.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..objectives import EpsFn
from ..schedules import NoiseSchedule
from .loop import sample_loop

__all__ = ["ddim_sample", "ddim_timesteps", "ddim_grid", "ddim_step", "ddim_update", "ddim_invert", "SPACINGS"]

SPACINGS = ("leading", "trailing", "quadratic")


def ddim_timesteps(T: int, steps: int, spacing: str = "trailing") -> list[int]:
    """The ``steps`` timesteps DDIM visits, increasing (default ``"trailing"``: see the module docstring).

    * ``"leading"``: ``[0, c, 2c, …, (S-1)c]``, ``c = T // S`` — never visits ``T-1`` when S < T;
    * ``"trailing"``: ``round(T - k T/S) - 1`` for ``k = S-1 … 0`` — always ends at ``T-1``;
    * ``"quadratic"``: ``floor((k · sqrt(0.8 T)/(S-1))²)`` — dense at low noise (nudged to stay
      strictly increasing where the squares are closer than one step).
    """
    if not 1 <= steps <= T:
        raise ValueError(f"DDIM needs 1 <= steps <= T = {T}, got steps={steps}.")
    if spacing == "leading":
        c = T // steps
        ts = [i * c for i in range(steps)]
    elif spacing == "trailing":
        ts = sorted({int(round(T - k * T / steps)) - 1 for k in range(steps)})
    elif spacing == "quadratic":
        if steps == 1:
            return [0]
        top = math.sqrt(0.8 * T)
        ts = [int((k * top / (steps - 1)) ** 2) for k in range(steps)]
        for k in range(1, steps):  # where squares crowd closer than one step, keep them one step apart
            ts[k] = max(ts[k], ts[k - 1] + 1)
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}.")
    if len(set(ts)) != len(ts):
        raise ValueError(f"{spacing!r} spacing with {steps} steps repeats a timestep; use fewer steps or another spacing.")
    return ts


def ddim_grid(T: int, steps: int, spacing: str = "trailing") -> list[int]:
    """The decreasing grid DDIM walks: `ddim_timesteps` reversed, then ``-1`` (the data)."""
    return ddim_timesteps(T, steps, spacing)[::-1] + [-1]


def ddim_update(x: torch.Tensor, eps: torch.Tensor, schedule: NoiseSchedule, t: int, s: int, eta: float = 0.0,
                noise: torch.Tensor | None = None, clip_x0: float | None = None) -> torch.Tensor:
    r"""The DDIM update :math:`x_t \to x_s` for a given :math:`\hat\varepsilon` (see the module docstring).

    ``s`` may be ``-1`` (the data: :math:`\bar\alpha_{-1} = 1`) or, for inversion, larger than ``t``.
    """
    abar_t, abar_s = schedule.alpha_bar_at(t, x), schedule.alpha_bar_at(s, x)
    x0 = (x - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        eps = (x - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()
    sigma = eta * ((1 - abar_s) / (1 - abar_t)).sqrt() * (1 - abar_t / abar_s).sqrt() if eta > 0 else 0.0
    x_s = abar_s.sqrt() * x0 + (1 - abar_s - sigma ** 2).clamp(min=0).sqrt() * eps
    if eta > 0 and s >= 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise for the stochastic part of the step.")
        x_s = x_s + sigma * noise
    return x_s


def ddim_step(eps_fn: EpsFn, schedule: NoiseSchedule, x: torch.Tensor, t: int, s: int, eta: float = 0.0,
              noise: torch.Tensor | None = None, clip_x0: float | None = None) -> torch.Tensor:
    r"""One DDIM step :math:`x_t \to x_s` (``s < t``; ``s = -1`` is the data): predict
    :math:`\hat\varepsilon = \varepsilon_\theta(x_t, t)`, then `ddim_update`."""
    eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
    return ddim_update(x, eps, schedule, t, s, eta, noise, clip_x0)


def ddim_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape_or_x: Sequence[int] | torch.Tensor, *, steps: int = 50,
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                progress: bool = False, return_trajectory: bool = False, trajectory_every: int = 1,
                eta: float = 0.0, spacing: str = "trailing", clip_x0: float | None = None):
    r"""DDIM with ``steps`` network evaluations on `ddim_grid`; returns :math:`x_0` (and the trajectory).

    The shared arguments are `sample_loop`'s. Noise (the start, and :math:`z` when ``eta > 0``,
    on every step but the last) is drawn on the CPU from ``generator``. ``spacing`` defaults to
    ``"trailing"``, which starts at ``T-1``, where :math:`x_T\sim\mathcal N(0, I)` is true.
    """
    if not (math.isfinite(eta) and 0 <= eta <= 1):
        raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like), got {eta}.")

    def step(x: torch.Tensor, t: int, s: int, g: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(x.shape, generator=g).to(x.device) if eta > 0 and s >= 0 else None
        return ddim_step(eps_fn, schedule, x, t, s, eta, z, clip_x0)

    return sample_loop(step, ddim_grid(schedule.T, steps, spacing), shape_or_x, generator=generator, device=device,
                       progress=progress, return_trajectory=return_trajectory, trajectory_every=trajectory_every,
                       desc=f"DDIM-{steps}")


def ddim_invert(eps_fn: EpsFn, schedule: NoiseSchedule, x0: torch.Tensor, *, steps: int = 50,
                spacing: str = "trailing", progress: bool = False, return_trajectory: bool = False):
    r"""DDIM inversion: the :math:`\eta = 0` update run *upwards* on the grid ``-1, τ_1, …, τ_S``.

    Each step uses the noise predicted at the current point, :math:`\hat\varepsilon = \varepsilon_\theta(x_s, s)`
    (at the very first step, from the clean image, the prediction at :math:`\tau_1`):

    .. math:: x_t = \sqrt{\bar\alpha_t}\,\frac{x_s - \sqrt{1-\bar\alpha_s}\,\hat\varepsilon}{\sqrt{\bar\alpha_s}}
              + \sqrt{1-\bar\alpha_t}\,\hat\varepsilon .

    ``ddim_sample(..., eta=0, steps, spacing)`` started from the result reconstructs :math:`x_0`
    up to the error of that approximation (small when steps are many or the model smooth).
    """
    def step(x: torch.Tensor, s: int, t: int, g: torch.Generator | None) -> torch.Tensor:
        t_eval = s if s >= 0 else t
        eps = eps_fn(x, torch.full((x.shape[0],), t_eval, device=x.device, dtype=torch.long))
        return ddim_update(x, eps, schedule, s, t)

    return sample_loop(step, ddim_grid(schedule.T, steps, spacing)[::-1], x0, progress=progress,
                       return_trajectory=return_trajectory, desc=f"DDIM inversion-{steps}")
