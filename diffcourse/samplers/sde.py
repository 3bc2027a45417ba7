r"""Score-based diffusion in continuous time (Song et al. 2021): SDEs, their reversal, and the ODE.

Forward SDE :math:`dx = f(x,t)\,dt + g(t)\,dw` on :math:`t\in[0,1]`, and its reverse in time

.. math::

    dx = \big[f(x,t) - g(t)^2\,\nabla_x\log p_t(x)\big]\,dt + g(t)\,d\bar w ,

which needs only the **score** :math:`\nabla_x\log p_t`. Dropping the noise and halving the
score term gives the **probability-flow ODE**, whose solutions have the same marginals:

.. math::

    \frac{dx}{dt} = f(x,t) - \tfrac12 g(t)^2\,\nabla_x\log p_t(x) .

DDPM is a discretised **VP SDE** (`VPSDE`): :math:`f = -\tfrac12\beta(t)x`, :math:`g=\sqrt{\beta(t)}`,
with :math:`\bar\alpha(t) = \exp(-\int_0^t\beta)`. A network trained on the discrete schedule
gives the score by :math:`\nabla\log p_t(x) = -\varepsilon_\theta(x, t)/\sqrt{1-\bar\alpha(t)}`.
All score functions here take ``(x, t)`` with ``t`` a float tensor of continuous times, shape ``(B,)``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from ..likelihood import discretised_gaussian_log_likelihood
from ..objectives import EpsFn
from ..schedules import NoiseSchedule
from .loop import Step, sample_loop, steps_iter

__all__ = ["VPSDE", "VESDE", "score_from_eps_fn", "time_grid", "euler_maruyama", "reverse_drift", "pf_ode_velocity",
           "langevin_correct", "ode_step", "pc_step", "pf_ode_step", "reverse_sde_sample", "predictor_corrector_sample",
           "probability_flow_ode_sample", "ode_likelihood", "bits_per_dim", "NFE_PER_STEP", "ScoreFn",
           "probability_flow_ode_encode", "grey_levels", "ode_bpd_floor", "decoder_bpd_floor"]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


class VPSDE:
    r"""The variance-preserving SDE behind a discrete `NoiseSchedule`.

    Step :math:`i` of the discrete chain sits at continuous time :math:`t_i=(i+1)/T`. Each step
    contributes :math:`-\log\alpha_i = -\log(1-\beta_i)` to :math:`-\log\bar\alpha`, so we put
    :math:`\beta(t) = -T\log\alpha_i` at the middle of step :math:`i` and interpolate linearly
    between those knots: :math:`\beta(t)` is continuous (ODE solvers need that for their accuracy) and

    .. math:: \bar\alpha(t) = \exp\Big(-\int_0^t \beta(s)\,ds\Big)

    agrees with the discrete :math:`\bar\alpha_i` at :math:`t_i` to about :math:`10^{-4}`.
    For the DDPM linear schedule :math:`\beta(t)` runs from 0.1 to 20, the values of Song et al. (2021).
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self.N = schedule.T
        self.knots = (torch.arange(self.N, dtype=torch.float64) + 0.5) / self.N
        self.beta_knots = -self.N * schedule.alphas.log()
        # integral of beta from 0 up to each knot: b_0 * knot_0, then trapezoids
        steps = 0.5 * (self.beta_knots[1:] + self.beta_knots[:-1]) / self.N
        self.int_knots = torch.cat([self.beta_knots[:1] * self.knots[0], self.beta_knots[0] * self.knots[0] + steps.cumsum(0)])

    def _locate(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, 1)
        k = (t * self.N - 0.5).floor().long().clamp(0, self.N - 1)
        return t, k

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\beta(t)`, linear between the knots (constant before the first and after the last)."""
        t, k = self._locate(t)
        k1 = (k + 1).clamp(max=self.N - 1)
        w = ((t - self.knots[k]) * self.N).clamp(0, 1)
        return (1 - w) * self.beta_knots[k] + w * self.beta_knots[k1]

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\log\bar\alpha(t) = -\int_0^t\beta`, exact for the piecewise-linear :math:`\beta` (float64)."""
        t, k = self._locate(t)
        before = t < self.knots[0]
        d = (t - self.knots[k]).clamp(min=0)
        # integral = I(k) + area under the linear piece from knot k to t
        integral = self.int_knots[k] + 0.5 * (self.beta_knots[k] + self.beta(t)) * d
        integral = torch.where(before, self.beta_knots[0] * t, integral)
        return -integral

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        return self.log_alpha_bar(t).exp()

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * _bcast(self.beta(t), x) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta(t).sqrt()

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\sqrt{1-\bar\alpha(t)}`, the std of :math:`x_t` given :math:`x_0`."""
        return (1 - self.alpha_bar(t)).sqrt()

    def timestep(self, t: torch.Tensor) -> torch.Tensor:
        r"""The (fractional) discrete index a network trained on the schedule expects: :math:`tT - 1`."""
        return torch.as_tensor(t, dtype=torch.float64) * self.N - 1

    def prior_sample(self, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=generator)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d = x[0].numel()
        return -0.5 * (x.flatten(1) ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi)


class VESDE:
    r"""The variance-exploding SDE (SMLD / NCSN): :math:`f=0`, :math:`\sigma(t)=\sigma_\min(\sigma_\max/\sigma_\min)^t`,
    :math:`g(t)=\sigma(t)\sqrt{2\log(\sigma_\max/\sigma_\min)}`; :math:`x_t = x_0 + \sigma(t)\,\varepsilon`
    (up to the tiny :math:`\sigma_\min^2` at t=0). Its prior is :math:`\mathcal N(0,\sigma_\max^2 I)`."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0) -> None:
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** torch.as_tensor(t, dtype=torch.float64)

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t)

    def prior_sample(self, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sigma_max * torch.randn(tuple(shape), generator=generator)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d = x[0].numel()
        return -0.5 * (x.flatten(1) ** 2).sum(1) / self.sigma_max**2 - 0.5 * d * math.log(2 * math.pi * self.sigma_max**2)


def score_from_eps_fn(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sde: VPSDE) -> ScoreFn:
    r"""Turn a noise predictor into a score: :math:`s(x,t) = -\hat\varepsilon(x, tT-1)/\sqrt{1-\bar\alpha(t)}`."""

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        idx = sde.timestep(t).to(device=x.device, dtype=torch.float32)
        return -eps_fn(x, idx) / _bcast(sde.marginal_std(t), x)

    return score


def time_grid(steps: int, t_eps: float, t_start: float = 1.0, spacing: str = "uniform") -> torch.Tensor:
    r"""``steps + 1`` times from ``t_start`` to ``t_eps``: evenly spaced, or (``spacing="log"``) evenly spaced in
    :math:`\log t`, i.e. geometric, which puts as many steps in :math:`[10^{-3}, 10^{-2}]` as in :math:`[0.1, 1]`."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    if spacing == "uniform":
        return torch.linspace(t_start, t_eps, steps + 1, dtype=torch.float64)
    if spacing == "log":
        return torch.logspace(math.log10(t_start), math.log10(t_eps), steps + 1, dtype=torch.float64)
    raise ValueError(f"spacing must be 'uniform' or 'log', got {spacing!r}.")


def euler_maruyama(drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], diffusion: Callable[[torch.Tensor], torch.Tensor],
                   x: torch.Tensor, times: torch.Tensor, generator: torch.Generator | None = None,
                   noise_last: bool = True) -> torch.Tensor:
    r"""Integrate :math:`dx = a(x,t)\,dt + b(t)\,dw` over the time grid ``times`` (increasing or decreasing):

    .. math:: x_{k+1} = x_k + a(x_k, t_k)\,\Delta t + b(t_k)\sqrt{|\Delta t|}\,z_k,\qquad z_k\sim\mathcal N(0, I).

    With ``noise_last=False`` the last step adds no noise (the usual final denoising step).
    """
    n = len(times) - 1
    for k in range(n):
        t = times[k].expand(x.shape[0])
        dt = float(times[k + 1] - times[k])
        x = x + drift(x, t) * dt
        if noise_last or k < n - 1:
            z = torch.randn(x.shape, generator=generator).to(x.device)
            x = x + _bcast(diffusion(t), x) * math.sqrt(abs(dt)) * z
    return x


def reverse_drift(score_fn: ScoreFn, sde: VPSDE | VESDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""The drift of the reverse SDE, :math:`f(x,t) - g(t)^2\,s(x,t)`."""
    def drift(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return sde.drift(x, t) - _bcast(sde.diffusion(t) ** 2, x) * score_fn(x, t)
    return drift


def pf_ode_velocity(score_fn: ScoreFn, sde: VPSDE | VESDE) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""The probability-flow ODE's velocity, :math:`f(x,t) - \tfrac12 g(t)^2\,s(x,t)`."""
    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return sde.drift(x, t) - 0.5 * _bcast(sde.diffusion(t) ** 2, x) * score_fn(x, t)
    return v


def langevin_correct(score_fn: ScoreFn, x: torch.Tensor, t: torch.Tensor, snr: float,
                     generator: torch.Generator | None) -> torch.Tensor:
    r"""One Langevin **corrector** step at time ``t`` (Song et al. 2021, Alg. 1):

    .. math:: x \leftarrow x + \epsilon\, s(x,t) + \sqrt{2\epsilon}\,z,\qquad
              \epsilon = 2\Big(r\,\frac{\lVert z\rVert}{\lVert s(x,t)\rVert}\Big)^2

    with the target signal-to-noise ratio :math:`r` = ``snr``.
    """
    s = score_fn(x, t.expand(x.shape[0]))
    z = torch.randn(x.shape, generator=generator).to(x.device)
    s_norm = s.flatten(1).norm(dim=1).mean()
    z_norm = z.flatten(1).norm(dim=1).mean()
    eps = 2 * (snr * z_norm / s_norm.clamp_min(1e-12)) ** 2
    return x + eps * s + (2 * eps).sqrt() * z


def _comb(x, terms):
    """``x + sum(c * k)`` for a state that is a tensor or a tuple of tensors (e.g. (x, log-det))."""
    if isinstance(x, tuple):
        return tuple(xi + sum(c * k[i] for c, k in terms) for i, xi in enumerate(x))
    return x + sum(c * k for c, k in terms)


def ode_step(v, x, t0: torch.Tensor, t1: torch.Tensor, method: str):
    r"""One fixed step of :math:`dx/dt = v(x, t)` from ``t0`` to ``t1``: Euler, Heun (2nd order) or RK4 (4th order).
    ``x`` may be a tuple of tensors, with ``v`` returning a tuple alike."""
    B = (x[0] if isinstance(x, tuple) else x).shape[0]
    h = float(t1 - t0)
    if method == "euler":
        return _comb(x, [(h, v(x, t0.expand(B)))])
    if method == "heun":
        k1 = v(x, t0.expand(B))
        k2 = v(_comb(x, [(h, k1)]), t1.expand(B))
        return _comb(x, [(h / 2, k1), (h / 2, k2)])
    if method == "rk4":
        tm = (t0 + t1) / 2
        k1 = v(x, t0.expand(B))
        k2 = v(_comb(x, [(h / 2, k1)]), tm.expand(B))
        k3 = v(_comb(x, [(h / 2, k2)]), tm.expand(B))
        k4 = v(_comb(x, [(h, k3)]), t1.expand(B))
        return _comb(x, [(h / 6, k1), (h / 3, k2), (h / 3, k3), (h / 6, k4)])
    raise ValueError(f"method must be 'euler', 'heun' or 'rk4', got {method!r}.")


NFE_PER_STEP = {"euler": 1, "heun": 2, "rk4": 4}


def pc_step(score_fn: ScoreFn, sde: VPSDE | VESDE, t_end: torch.Tensor, n_corrector: int = 1,
            snr: float = 0.16) -> Step:
    r"""The predictor–corrector step :math:`x_t \to x_s`: one reverse Euler–Maruyama **predictor** step
    (`euler_maruyama` on `reverse_drift`), then ``n_corrector`` `langevin_correct` steps at :math:`s`.
    The step that ends at ``t_end`` only denoises: no noise, no corrector."""
    drift = reverse_drift(score_fn, sde)

    def step(x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        final = bool(s == t_end)
        x = euler_maruyama(drift, sde.diffusion, x, torch.stack([t, s]), g, noise_last=not final)
        for _ in range(0 if final else n_corrector):
            x = langevin_correct(score_fn, x, s, snr, g)
        return x
    return step


def _vp_loop(eps_fn: EpsFn, schedule: NoiseSchedule, make_step: Callable[[ScoreFn, VPSDE, torch.Tensor], Step],
             shape_or_x, steps: int, t_eps: float, desc: str, **loop) -> Any:
    """Build the VP SDE and score of ``(eps_fn, schedule)``, the grid 1 → ``t_eps``, and run `sample_loop`."""
    sde = VPSDE(schedule)
    grid = time_grid(steps, t_eps)
    return sample_loop(make_step(score_from_eps_fn(eps_fn, sde), sde, grid[-1]), grid, shape_or_x, desc=desc, **loop)


def reverse_sde_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape_or_x: Sequence[int] | torch.Tensor, *,
                       steps: int = 500, t_eps: float = 1e-3, **loop: Any):
    r"""Euler–Maruyama on the reverse VP SDE from :math:`t=1` to ``t_eps`` (NFE = ``steps``); no noise on the
    last step. This is predictor–corrector sampling without a corrector. ``loop``: `sample_loop`'s arguments."""
    return _vp_loop(eps_fn, schedule, lambda sc, sde, end: pc_step(sc, sde, end, n_corrector=0),
                    shape_or_x, steps, t_eps, "reverse SDE", **loop)


def predictor_corrector_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape_or_x: Sequence[int] | torch.Tensor, *,
                               steps: int = 250, n_corrector: int = 1, snr: float = 0.16, t_eps: float = 1e-3,
                               **loop: Any):
    r"""Predictor–corrector sampling (Song et al. 2021, Alg. 1) with `pc_step` on the VP SDE of ``schedule``.
    The last step has no corrector, so NFE = ``steps × (1 + n_corrector) − n_corrector``."""
    return _vp_loop(eps_fn, schedule, lambda sc, sde, end: pc_step(sc, sde, end, n_corrector, snr),
                    shape_or_x, steps, t_eps, "predictor-corrector" if n_corrector else "reverse SDE", **loop)


def pf_ode_step(score_fn: ScoreFn, sde: VPSDE | VESDE, method: str = "heun") -> Step:
    """One `ode_step` of the probability-flow ODE (`pf_ode_velocity`); deterministic."""
    if method not in NFE_PER_STEP:
        raise ValueError(f"method must be 'euler', 'heun' or 'rk4', got {method!r}.")
    v = pf_ode_velocity(score_fn, sde)
    return lambda x, t, s, g: ode_step(v, x, t, s, method)


def probability_flow_ode_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape_or_x: Sequence[int] | torch.Tensor, *,
                                steps: int = 50, method: str = "heun", t_eps: float = 1e-3, **loop: Any):
    r"""Solve the probability-flow ODE of the VP SDE from :math:`t=1` to ``t_eps`` with fixed steps (`pf_ode_step`).

    Deterministic: the only randomness is :math:`x_1`, so the same noise gives the same sample.
    NFE = ``steps × {euler: 1, heun: 2, rk4: 4}``.
    """
    return _vp_loop(eps_fn, schedule, lambda sc, sde, end: pf_ode_step(sc, sde, method),
                    shape_or_x, steps, t_eps, f"ODE ({method})", **loop)


def _divergence(v, x: torch.Tensor, t: torch.Tensor, probe: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity and its divergence at x: exact (one backward pass per dimension) or Hutchinson's z^T J z."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = v(x, t)
        if probe is None:
            div = torch.zeros(x.shape[0], dtype=out.dtype, device=x.device)
            flat_out = out.flatten(1)
            for d in range(flat_out.shape[1]):
                (g,) = torch.autograd.grad(flat_out[:, d].sum(), x, retain_graph=True)
                div = div + g.flatten(1)[:, d]
        else:
            (g,) = torch.autograd.grad((out * probe).sum(), x)
            div = (g * probe).flatten(1).sum(1)
    return out.detach(), div.detach()


def ode_likelihood(score_fn: ScoreFn, sde: VPSDE | VESDE, x0: torch.Tensor, *, steps: int = 100, method: str = "rk4",
                   t_eps: float = 1e-3, exact_trace: bool = False, generator: torch.Generator | None = None,
                   spacing: str = "log", progress: bool = False) -> torch.Tensor:
    r"""Log-likelihood :math:`\log p_0(x_0)` in nats per example, by the instantaneous change of variables:

    .. math::

        \log p_0(x(0)) = \log p_1(x(1)) + \int_0^1 \nabla\!\cdot v(x(t), t)\,dt,\qquad \frac{dx}{dt} = v(x,t),

    integrating the probability-flow ODE *forwards* from ``t_eps`` to 1 together with the divergence.
    The divergence is exact (``exact_trace=True``, one backward pass per dimension — fine in 2D) or
    Hutchinson's unbiased estimate :math:`\mathbb E_z[z^\top (\partial v/\partial x)\,z]` with one
    Rademacher probe per example, fixed along the path.

    The time grid is geometric by default (``spacing="log"``): near :math:`t=0` the marginal variance
    :math:`\sigma^2(t)` is tiny and the divergence grows like :math:`D/t`, so even steps in :math:`t`
    overshoot the log-determinant badly in high dimension (on MNIST: impossible, negative bits/dim);
    even steps in :math:`\log t` integrate that :math:`1/t` accurately.
    """
    if method not in NFE_PER_STEP:
        raise ValueError(f"method must be 'euler', 'heun' or 'rk4', got {method!r}.")
    v = pf_ode_velocity(score_fn, sde)
    probe = None if exact_trace else (torch.randint(0, 2, x0.shape, generator=generator).to(x0) * 2 - 1)
    times = time_grid(steps, 1.0, t_start=t_eps, spacing=spacing)

    def augmented(state, t):  # d/dt (x, log-det) = (v, div v)
        vel, div = _divergence(v, state[0], t, probe)
        return vel, div.double()

    state = (x0.detach().clone(), torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device))
    for k in steps_iter(range(steps), progress, "likelihood ODE"):
        state = ode_step(augmented, state, times[k], times[k + 1], method)
    x, logdet = state
    return sde.prior_log_prob(x).double() + logdet


def bits_per_dim(log_likelihood: torch.Tensor, dims: int, bins: int = 256, data_range: float = 2.0) -> torch.Tensor:
    r"""Convert a continuous log-likelihood of data scaled to a range of width ``data_range``
    (e.g. [-1, 1]) into bits per dimension of the discrete ``bins``-level data, under uniform
    dequantisation: :math:`\mathrm{bpd} = -\big(\log p(x) + D\log(\text{range}/\text{bins})\big)/(D\ln 2)`."""
    return -(log_likelihood + dims * math.log(data_range / bins)) / (dims * math.log(2))


def probability_flow_ode_encode(eps_fn: EpsFn, schedule: NoiseSchedule, x0: torch.Tensor, *, steps: int = 50,
                                method: str = "heun", t_eps: float = 1e-3, **loop: Any) -> torch.Tensor:
    r"""Run the probability-flow ODE *forwards*, from data at ``t_eps`` to noise at :math:`t=1`, on the reverse of
    `probability_flow_ode_sample`'s grid: the encoder whose inverse is that sampler. With exact integration,
    ``probability_flow_ode_sample(eps_fn, schedule, probability_flow_ode_encode(eps_fn, schedule, x0))``
    returns ``x0``; with finite steps the round trip is off by the two solvers' errors."""
    sde = VPSDE(schedule)
    grid = time_grid(steps, t_eps).flip(0)
    return sample_loop(pf_ode_step(score_from_eps_fn(eps_fn, sde), sde, method), grid, x0, desc=f"ODE encode ({method})",
                       **loop)


def grey_levels(bins: int = 256, data_range: float = 2.0) -> torch.Tensor:
    """The ``bins`` grey levels of the data scaled to ``[-range/2, range/2]`` (MNIST: ``k/127.5 - 1``), float64."""
    return torch.linspace(-data_range / 2, data_range / 2, bins, dtype=torch.float64)


def ode_bpd_floor(x: torch.Tensor, sde: VPSDE, t_eps: float, bins: int = 256, data_range: float = 2.0) -> torch.Tensor:
    r"""The fewest bits/dim that `ode_likelihood` (started at ``t_eps``) and `bits_per_dim` can report for the
    dequantised images ``x``, **whatever the data and even with the exact score**. Per example, shape ``(B,)``.

    The ODE measures :math:`\log p_{t_\varepsilon}(x)`, the density of the data *seen through the noise of*
    :math:`t_\varepsilon`. Data on the grey levels :math:`c_k` give :math:`p_{t_\varepsilon}(x)=\sum_k P(k)\,
    \mathcal N(x;\sqrt{\bar\alpha}\,c_k,\sigma^2I)` with :math:`\sigma^2 = 1-\bar\alpha(t_\varepsilon)`; since the
    :math:`P(k)` sum to one, :math:`p_{t_\varepsilon}(x)\le\prod_d\max_k\mathcal N(x_d;\sqrt{\bar\alpha}\,c_k,\sigma^2)`, so

    .. math:: \text{bpd}\;\ge\;\frac{1}{D\ln 2}\sum_d\Big[\tfrac12\log(2\pi\sigma^2)+\frac{\delta_d^2}{2\sigma^2}
              -\log\frac{\text{range}}{\text{bins}}\Big],

    :math:`\delta_d` the distance from :math:`x_d` to the nearest :math:`\sqrt{\bar\alpha}\,c_k`. When :math:`\sigma`
    is wider than a bin (:math:`\text{range}/\text{bins}`) this floor is well above zero: the protocol, not the
    network, sets it.
    """
    t = torch.tensor([t_eps], dtype=torch.float64)
    ab = float(sde.alpha_bar(t))
    sigma2 = 1 - ab
    levels = math.sqrt(ab) * grey_levels(bins, data_range)
    flat = x.detach().double().cpu().flatten(1)
    idx = torch.bucketize(flat, levels).clamp(1, bins - 1)
    delta = torch.minimum((flat - levels[idx - 1]).abs(), (flat - levels[idx]).abs())
    log_density = (-0.5 * math.log(2 * math.pi * sigma2) - delta**2 / (2 * sigma2)).sum(1)
    return bits_per_dim(log_density, flat.shape[1], bins, data_range)


def decoder_bpd_floor(x0: torch.Tensor, std: float, bins: int = 256) -> torch.Tensor:
    r"""Bits/dim of DDPM's discretised Gaussian decoder :math:`L_0` (`diffcourse.metrics.ddpm_elbo_bpd`, std
    :math:`\sigma_1=\sqrt{\beta_1}`) when its mean sits exactly on each pixel's grey level — what an exact
    denoiser gives where the neighbouring levels are unlikely. Per example, ``(B,)``; ``x0`` on the ``bins`` levels.

    An interior level keeps only the mass :math:`2\Phi(1/((\text{bins}-1)\sigma))-1` of the Gaussian (0.31 for
    :math:`\sigma=0.01`: 1.7 bits); the two extreme levels keep :math:`\Phi(\cdot)` (0.65: 0.6 bits). The ELBO adds
    this to KL terms that are :math:`\ge 0`, so it sits above it."""
    x0 = x0.detach().double().cpu()
    log_p = discretised_gaussian_log_likelihood(x0, x0, std, bins).flatten(1).sum(1)
    return -log_p / (x0[0].numel() * math.log(2))
