r"""Flow samplers (chapter 10): solve :math:`dx/dt = v(x, t)` from noise at :math:`t = 1` to data at :math:`t = 0`.

Like every sampler in the package, a flow sampler is a decreasing **grid** plus a **step**, run by the one loop
`sample_loop`. The grid is uniform in :math:`t` by default, :math:`1 = t_0 > t_1 > … > t_K = 0` (`flow_grid`), or any
decreasing grid passed as ``times`` (e.g. `diffcourse.flows.ddim_linear_times`, DDIM's timesteps as linear-path
times). With :math:`h = t_{k+1} - t_k < 0`:

.. math::

    \text{Euler:}\quad x_{k+1} = x_k + h\,v(x_k, t_k) ;\qquad
    \text{Heun:}\quad \tilde x = x_k + h\,v(x_k, t_k),\quad
    x_{k+1} = x_k + \tfrac h2\big(v(x_k, t_k) + v(\tilde x, t_{k+1})\big) .

Euler costs one network evaluation per step, Heun two (second order: its error shrinks like :math:`h^2`).
The first argument is a velocity field ``v(x, t)`` with continuous ``t`` of shape ``(B,)``
(`diffcourse.flows.velocity_fn` wraps a flow network, `diffcourse.flows.diffusion_velocity_fn` a diffusion model's
noise predictor); the schedule argument of the common signature is not used (pass ``None``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from .loop import Step, initial_noise, sample_loop

__all__ = ["FLOW_METHODS", "flow_grid", "flow_euler_step", "flow_heun_step", "flow_sample", "flow_euler_sample",
           "flow_heun_sample"]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def flow_grid(steps: int, t_start: float = 1.0) -> torch.Tensor:
    """``steps + 1`` evenly spaced times from ``t_start`` (noise) down to 0 (data), float64."""
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}.")
    return torch.linspace(t_start, 0.0, int(steps) + 1, dtype=torch.float64)


def _times(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])


def flow_euler_step(v: VelocityFn) -> Step:
    r"""The Euler step :math:`x_s = x_t + (s - t)\,v(x_t, t)` (one evaluation; :math:`s < t`)."""
    def step(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        return x + float(s - t) * v(x, _times(t, x))
    return step


def flow_heun_step(v: VelocityFn) -> Step:
    r"""Heun's step: an Euler predictor :math:`\tilde x = x_t + (s-t)\,v(x_t, t)`, then the trapezoid
    :math:`x_s = x_t + \tfrac{s-t}{2}\big(v(x_t, t) + v(\tilde x, s)\big)` (two evaluations)."""
    def step(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        h = float(s - t)
        k1 = v(x, _times(t, x))
        k2 = v(x + h * k1, _times(s, x))
        return x + 0.5 * h * (k1 + k2)
    return step


FLOW_METHODS = {"euler": (flow_euler_step, 1), "heun": (flow_heun_step, 2)}
"""Step builder and network evaluations per step of each method."""


def flow_sample(v: VelocityFn, shape_or_x: Sequence[int] | torch.Tensor, *, steps: int = 50, method: str = "euler",
                times: torch.Tensor | Sequence[float] | None = None, **loop: Any):
    r"""Solve the flow's ODE from :math:`t = 1` (``shape_or_x``: a shape, for :math:`\mathcal N(0, I)` noise drawn
    from the loop's generator, or the noise itself) to :math:`t = 0` with ``steps`` steps of ``method``; or on the
    decreasing grid ``times`` (then ``steps`` is ignored; a grid starting at :math:`t_0 < 1` starts from
    :math:`t_0\,\varepsilon`, the path's noise there). ``loop``: `sample_loop`'s arguments."""
    if method not in FLOW_METHODS:
        raise ValueError(f"method must be one of {list(FLOW_METHODS)}, got {method!r}.")
    grid = flow_grid(steps) if times is None else torch.as_tensor(times, dtype=torch.float64)
    if len(grid) < 2 or not bool((grid[1:] < grid[:-1]).all()):
        raise ValueError("A flow sampler walks a strictly decreasing grid of times, from noise (t = 1) to data "
                         "(t = 0): pass times in decreasing order.")
    if not isinstance(shape_or_x, torch.Tensor) and float(grid[0]) != 1.0:
        # a grid that starts below t = 1: the path's noise there is t_0·ε (its data part (1 - t_0)·x_0 is dropped,
        # as DDIM drops sqrt(ᾱ_T)·x_0 when it starts from N(0, I))
        shape_or_x = float(grid[0]) * initial_noise(shape_or_x, loop.get("generator"), loop.get("device"))
    loop.setdefault("desc", f"flow {method}-{len(grid) - 1}")
    return sample_loop(FLOW_METHODS[method][0](v), grid, shape_or_x, **loop)


def flow_euler_sample(v: VelocityFn, schedule: Any, shape_or_x: Sequence[int] | torch.Tensor, *, steps: int = 50,
                      times: torch.Tensor | Sequence[float] | None = None, **loop: Any):
    """Euler on the flow's ODE (NFE = ``steps``), in the registered samplers' signature (``schedule`` unused)."""
    return flow_sample(v, shape_or_x, steps=steps, method="euler", times=times, **loop)


def flow_heun_sample(v: VelocityFn, schedule: Any, shape_or_x: Sequence[int] | torch.Tensor, *, steps: int = 25,
                     times: torch.Tensor | Sequence[float] | None = None, **loop: Any):
    """Heun on the flow's ODE (NFE = 2 × ``steps``), in the registered samplers' signature (``schedule`` unused)."""
    return flow_sample(v, shape_or_x, steps=steps, method="heun", times=times, **loop)
