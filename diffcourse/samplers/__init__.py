r"""Samplers: turn noise into data with a trained noise-prediction function.

Every sampler is a grid plus a step run by the one loop `sample_loop` (see `loop`), and every
sampler has the same signature::

    x0 = SAMPLER(eps_fn, schedule, shape_or_x, *, steps=…, generator=None, device=None,
                 progress=False, return_trajectory=False, trajectory_every=1, **its own options)

``eps_fn(x_t, t)`` is the course's noise predictor (`diffcourse.objectives.eps_fn`) and ``schedule``
its `NoiseSchedule`; the continuous-time samplers build the VP SDE and the score from them.
`SAMPLERS` registers each by name with its network evaluations (NFE) per step.

=========  ==================================  ===========================  ==================
name       function                            its own options              NFE per sample
=========  ==================================  ===========================  ==================
``ddpm``   `ddpm_sample` (`ddpm_step`)          variance, clip_x0            T
``ddim``   `ddim_sample` (`ddim_step`)          eta, spacing, clip_x0        steps
``sde``    `reverse_sde_sample` (`pc_step`)     t_eps                        steps
``pc``     `predictor_corrector_sample`         n_corrector, snr, t_eps      2·steps − 1
``ode``    `probability_flow_ode_sample`        method, t_eps                2·steps (Heun)
=========  ==================================  ===========================  ==================

Chapter 10's flow samplers solve :math:`dx/dt = v(x, t)` instead (`flow`): their first argument is a velocity
field with continuous :math:`t\in[0,1]` (``input = "velocity"`` in the registry), not an ε-function.

==============  ==========================  ======================  ==================
name            function                    its own options         NFE per sample
==============  ==========================  ======================  ==================
``flow_euler``  `flow_euler_sample`         times                   steps
``flow_heun``   `flow_heun_sample`          times                   2·steps
==============  ==========================  ======================  ==================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .ddim import SPACINGS, ddim_grid, ddim_invert, ddim_sample, ddim_step, ddim_timesteps, ddim_update
from .ddpm import VARIANCES, ddpm_grid, ddpm_sample, ddpm_step
from .flow import flow_euler_sample, flow_euler_step, flow_grid, flow_heun_sample, flow_heun_step, flow_sample
from .guidance import cfg_eps_fn, classifier_guided_eps_fn
from .loop import Step, initial_noise, sample_loop
from .sde import (VESDE, VPSDE, langevin_correct, ode_likelihood, ode_step, pc_step, pf_ode_step,
                  predictor_corrector_sample, probability_flow_ode_sample, reverse_sde_sample, score_from_eps_fn,
                  time_grid)

__all__ = ["Sampler", "SAMPLERS", "sample_loop", "Step", "initial_noise",
           "ddpm_sample", "ddpm_step", "ddpm_grid", "VARIANCES",
           "ddim_sample", "ddim_step", "ddim_update", "ddim_grid", "ddim_timesteps", "ddim_invert", "SPACINGS",
           "reverse_sde_sample", "predictor_corrector_sample", "probability_flow_ode_sample", "pc_step", "pf_ode_step",
           "langevin_correct", "ode_step", "time_grid", "score_from_eps_fn", "ode_likelihood", "VPSDE", "VESDE",
           "cfg_eps_fn", "classifier_guided_eps_fn",
           "flow_sample", "flow_euler_sample", "flow_heun_sample", "flow_euler_step", "flow_heun_step", "flow_grid"]


@dataclass(frozen=True)
class Sampler:
    """A registered sampler: its function, network evaluations per step, a name for tables, and what its first
    argument is (``"eps"``: a noise predictor ε(x_t, t) on the schedule's timesteps; ``"velocity"``: a velocity
    field v(x, t) with continuous t in [0, 1], chapter 10)."""

    run: Callable
    nfe_per_step: int
    label: str
    input: str = "eps"

    def nfe(self, steps: int) -> int:
        """Network evaluations per sample for ``steps`` steps (the last PC step has no corrector)."""
        return self.nfe_per_step * steps - (1 if self.run is predictor_corrector_sample else 0)


SAMPLERS: dict[str, Sampler] = {
    "ddpm": Sampler(ddpm_sample, 1, "DDPM (ancestral, all T steps)"),
    "ddim": Sampler(ddim_sample, 1, "DDIM"),
    "sde": Sampler(reverse_sde_sample, 1, "reverse SDE (Euler-Maruyama)"),
    "pc": Sampler(predictor_corrector_sample, 2, "predictor-corrector"),
    "ode": Sampler(probability_flow_ode_sample, 2, "probability-flow ODE (Heun)"),
    "flow_euler": Sampler(flow_euler_sample, 1, "flow ODE (Euler)", input="velocity"),
    "flow_heun": Sampler(flow_heun_sample, 2, "flow ODE (Heun)", input="velocity"),
}
