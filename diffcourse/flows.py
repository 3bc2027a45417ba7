r"""Flow matching (chapter 10): a path from data to noise, and the velocity that walks it.

The course keeps the DDPM convention: :math:`x_0` is **data** and :math:`t` runs from 0 (data) to 1 (noise), so
sampling walks a *decreasing* time grid like every other sampler in the package. (Lipman et al. 2023 and TorchCFM
write it the other way round, :math:`t = 0` noise and :math:`t = 1` data; Stable Diffusion 3 writes it this way.)

The linear (rectified-flow, conditional-OT) path between a data point :math:`x_0` and a noise draw
:math:`\varepsilon` is

.. math::  x_t = (1-t)\,x_0 + t\,\varepsilon, \qquad
           u_t(x_t \mid x_0, \varepsilon) = \frac{dx_t}{dt} = \varepsilon - x_0 ,

and conditional flow matching regresses a network on that conditional velocity,

.. math::  L_\text{CFM} = \mathbb E_{t\sim\mathcal U(0,1),\,x_0,\,\varepsilon}\,
           \big\| v_\theta(x_t, t) - (\varepsilon - x_0) \big\|^2 ,

whose minimiser is the *marginal* velocity :math:`v(x, t) = \mathbb E[\varepsilon - x_0 \mid x_t = x]`.

The module holds the pieces of chapter 10, one idea per function:

* paths: `linear_path`, `conditional_velocity`, `GaussianPath` (`LINEAR_PATH`, `vp_path`);
* objectives: `flow_matching_loss` (the training recipe's, with its own draws) and `cfm_loss` (given draws, with a
  choice of target: velocity, :math:`\varepsilon` or :math:`x_0`);
* predictions: `to_x0_eps`, `from_x0_eps`, `convert` between velocity, :math:`\varepsilon`, :math:`\hat x_0`
  and score; `velocity_fn` wraps a network into :math:`v(x, t)`;
* diffusion as a flow: `linear_time_of`, `alpha_bar_of`, `fractional_timestep`, `diffusion_velocity_fn`,
  `ddim_linear_times`;
* couplings: `ot_coupling` (minibatch OT), `reflow_pairs`, and the `straightness` of the ODE's paths;
* ground truth: `mixture_marginal_velocity`, the exact marginal velocity of a Gaussian mixture.

The samplers (Euler and Heun on a decreasing grid, run by the one sampling loop) are in
`diffcourse.samplers.flow`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .data.toy2d import GaussianMixture
from .objectives import drop_labels
from .schedules import NoiseSchedule

__all__ = ["TIME_SCALE", "VelocityFn", "linear_path", "conditional_velocity", "flow_matching_loss", "GaussianPath",
           "LINEAR_PATH", "vp_path", "PREDICTIONS", "to_x0_eps", "from_x0_eps", "convert", "cfm_loss", "is_flow_model",
           "velocity_fn",
           "linear_time_of", "alpha_bar_of", "fractional_timestep", "diffusion_velocity_fn", "ddim_linear_times",
           "ot_coupling", "reflow_pairs", "straightness", "mixture_marginal_velocity"]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A velocity field :math:`v(x, t)`: points ``(B, …)`` and continuous times ``(B,)`` in [0, 1] (1 = noise)."""

TIME_SCALE = 1000.0
"""The network sees :math:`1000\\,t`: the same range of time inputs as a diffusion U-Net's integer steps."""


def linear_path(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`x_t = (1-t)\,x_0 + t\,\varepsilon`, with ``t`` of shape ``(B,)`` broadcast over the other axes."""
    tb = t.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - tb) * x0 + tb * eps


def conditional_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r""":math:`u_t(x_t\mid x_0,\varepsilon) = \varepsilon - x_0`: the same at every :math:`t` on a straight line."""
    return eps - x0


def flow_matching_loss(model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None,
                       y: torch.Tensor | None = None, p_uncond: float = 0.0,
                       eps: torch.Tensor | None = None) -> torch.Tensor:
    r"""Monte-Carlo estimate of :math:`L_\text{CFM}` on a batch ``x0`` (mean squared error per element).

    One :math:`t \sim \mathcal U(0, 1)` and one :math:`\varepsilon \sim \mathcal N(0, I)` per example, drawn on the
    CPU from ``generator`` so runs repeat on any device; the network is called as ``model(x_t, 1000 t[, y])``.
    ``eps`` replaces the noise draw by given partners (a minibatch-OT or reflow coupling); labels are dropped to
    the null label with probability ``p_uncond`` (classifier-free guidance), as in `diffusion_loss`.
    """
    B = x0.shape[0]
    t = torch.rand(B, generator=generator).to(x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    xt = linear_path(x0, eps, t)
    if y is not None:
        null = getattr(getattr(model, "label", None), "null_label", None)
        if p_uncond > 0 and null is None:
            raise ValueError("p_uncond > 0 needs a class-conditional model (built with num_classes).")
        y = drop_labels(y, p_uncond, null, generator) if p_uncond > 0 else y
        pred = model(xt, TIME_SCALE * t, y)
    else:
        pred = model(xt, TIME_SCALE * t)
    return torch.mean((pred.float() - conditional_velocity(x0, eps)) ** 2)


# ============================================================================ Gaussian paths and their velocities
@dataclass(frozen=True)
class GaussianPath:
    r"""A Gaussian probability path :math:`x_t = a(t)\,x_0 + b(t)\,\varepsilon` with :math:`a(0)=1, b(0)=0`
    (data) and :math:`b(1) \gg a(1)` (noise). Its conditional velocity is the time derivative of the path,

    .. math::  u_t(x_t\mid x_0,\varepsilon) = a'(t)\,x_0 + b'(t)\,\varepsilon .

    ``a``, ``b``, ``da``, ``db`` map a float64 tensor of times to float64 tensors. The linear path is
    `LINEAR_PATH` (:math:`a = 1-t`, :math:`b = t`); `vp_path` gives the VP diffusion's path
    (:math:`a = \sqrt{\bar\alpha(t)}`, :math:`b = \sqrt{1-\bar\alpha(t)}`).
    """

    name: str
    a: Callable[[torch.Tensor], torch.Tensor]
    b: Callable[[torch.Tensor], torch.Tensor]
    da: Callable[[torch.Tensor], torch.Tensor]
    db: Callable[[torch.Tensor], torch.Tensor]

    def sample(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """:math:`x_t = a(t)\\,x_0 + b(t)\\,\\varepsilon` (``t`` of shape ``(B,)``)."""
        t64 = torch.as_tensor(t, dtype=torch.float64)
        return _per_example(self.a(t64), x0) * x0 + _per_example(self.b(t64), x0) * eps

    def velocity(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """:math:`u_t = a'(t)\\,x_0 + b'(t)\\,\\varepsilon`."""
        t64 = torch.as_tensor(t, dtype=torch.float64)
        return _per_example(self.da(t64), x0) * x0 + _per_example(self.db(t64), x0) * eps


def _per_example(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-example vector (or a scalar) shaped ``(B, 1, …, 1)`` to broadcast against ``x``, in ``x``'s dtype."""
    v = torch.as_tensor(v, device=x.device)
    if v.ndim == 0:
        v = v.expand(x.shape[0])
    return v.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


LINEAR_PATH = GaussianPath("linear (rectified flow / conditional OT)", a=lambda t: 1 - t, b=lambda t: t,
                           da=lambda t: -torch.ones_like(t), db=lambda t: torch.ones_like(t))


def vp_path(sde) -> GaussianPath:
    r"""The VP diffusion's path as a `GaussianPath`: :math:`a = \sqrt{\bar\alpha(t)}`,
    :math:`b = \sqrt{1-\bar\alpha(t)}`,
    with :math:`\tfrac{d}{dt}\bar\alpha = -\beta(t)\,\bar\alpha`, so :math:`a' = -\tfrac12\beta a` and
    :math:`b' = \tfrac12\beta\bar\alpha/b`. ``sde`` is a `diffcourse.samplers.sde.VPSDE`."""
    def a(t):
        return sde.alpha_bar(t).sqrt()

    def b(t):
        return (1 - sde.alpha_bar(t)).sqrt()

    return GaussianPath("VP (DDPM's, as continuous time)", a=a, b=b, da=lambda t: -0.5 * sde.beta(t) * a(t),
                        db=lambda t: 0.5 * sde.beta(t) * sde.alpha_bar(t) / b(t).clamp_min(1e-12))


# ============================================================================ predictions and the velocity
PREDICTIONS = ("velocity", "eps", "x0", "score")


def to_x0_eps(pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The pair :math:`(\hat x_0, \hat\varepsilon)` implied by a prediction of ``kind`` at :math:`x_t` (linear path).

    Every prediction is a linear function of the pair, since :math:`x_t = (1-t)\hat x_0 + t\hat\varepsilon`:

    .. math::
        v = \hat\varepsilon - \hat x_0 \;\Rightarrow\; \hat x_0 = x_t - t v,\ \hat\varepsilon = x_t + (1-t) v ;\qquad
        \hat x_0 = \frac{x_t - t\hat\varepsilon}{1-t} ;\qquad
        \hat\varepsilon = \frac{x_t - (1-t)\hat x_0}{t} ;\qquad
        \nabla\log p_t = -\frac{\hat\varepsilon}{t} .

    The divisions show where each parameterisation is ill-posed: :math:`\varepsilon` at :math:`t \to 1` (pure
    noise: the error of :math:`\hat\varepsilon` reaches :math:`\hat x_0` times :math:`t/(1-t)` and the velocity
    times :math:`1/(1-t)`), :math:`x_0` and the score at :math:`t \to 0` (the error of :math:`\hat x_0` reaches
    :math:`\hat\varepsilon` times :math:`(1-t)/t` and the velocity times :math:`1/t`).
    """
    tb = _per_example(t, x_t)
    if kind == "velocity":
        return x_t - tb * pred, x_t + (1 - tb) * pred
    if kind == "eps":
        return (x_t - tb * pred) / (1 - tb), pred
    if kind == "x0":
        return pred, (x_t - (1 - tb) * pred) / tb
    if kind == "score":
        eps = -tb * pred
        return (x_t - tb * eps) / (1 - tb), eps
    raise ValueError(f"kind must be one of {PREDICTIONS}, got {kind!r}.")


def from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    r"""The prediction of ``kind`` made from :math:`(\hat x_0, \hat\varepsilon)`:
    :math:`v = \hat\varepsilon - \hat x_0`,
    :math:`\hat\varepsilon`, :math:`\hat x_0`, or the score :math:`-\hat\varepsilon/t` (the inverse of `to_x0_eps`)."""
    if kind == "velocity":
        return eps - x0
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "score":
        return -eps / _per_example(t, eps)
    raise ValueError(f"kind must be one of {PREDICTIONS}, got {kind!r}.")


def convert(pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, source: str, target: str) -> torch.Tensor:
    """Turn a prediction of kind ``source`` at :math:`x_t` (linear path, time ``t``) into one of kind ``target``,
    through :math:`(\\hat x_0, \\hat\\varepsilon)` (`to_x0_eps`, `from_x0_eps`)."""
    return from_x0_eps(*to_x0_eps(pred, x_t, t, source), t, target)


def cfm_loss(model: nn.Module | Callable, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor,
             target: str = "velocity") -> torch.Tensor:
    r"""Conditional flow matching on the linear path for given draws, with a choice of what the network predicts:

    .. math::  L = \mathbb E\,\big\| f_\theta(x_t, 1000\,t) - y \big\|^2,\qquad
               y = \varepsilon - x_0\ (\text{velocity}),\ \varepsilon,\ \text{or}\ x_0 .

    All three have the same minimiser up to the conversion `convert` (each is the conditional mean of its target
    given :math:`x_t`), but weight the times differently: an error :math:`\delta` in :math:`\hat\varepsilon` is an
    error :math:`\delta/(1-t)` in the velocity. `flow_matching_loss` is the velocity case with its own draws.
    """
    if target not in ("velocity", "eps", "x0"):
        raise ValueError(f"target must be 'velocity', 'eps' or 'x0', got {target!r}.")
    x_t = linear_path(x0, eps, t)
    goal = {"velocity": conditional_velocity(x0, eps), "eps": eps, "x0": x0}[target]
    return torch.mean((model(x_t, TIME_SCALE * t).float() - goal) ** 2)


def is_flow_model(model: nn.Module) -> bool:
    """Whether a loaded network was trained by flow matching (its recipe's kind, recorded in the manifest or export)."""
    info = getattr(model, "pretrained_info", None) or {}
    return (info.get("settings") or {}).get("kind") == "flow"


def velocity_fn(model: nn.Module, target: str = "velocity", y: torch.Tensor | None = None) -> VelocityFn:
    r"""Wrap a network trained on the linear path into :math:`v(x, t)` with continuous :math:`t\in[0,1]`
    (the network sees :math:`1000\,t`); a network that predicts ``"eps"`` or ``"x0"`` is converted (`convert`)."""
    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        tt = (TIME_SCALE * t).to(device=x.device, dtype=torch.float32)
        pred = model(x, tt) if y is None else model(x, tt, y)
        return pred if target == "velocity" else convert(pred, x, t.to(x.device), target, "velocity")

    return v



# ============================================================================ diffusion is a flow
def linear_time_of(alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""The linear-path time of a VP noise level: dividing
    :math:`x = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\varepsilon`
    by :math:`c = \sqrt{\bar\alpha} + \sqrt{1-\bar\alpha}` gives :math:`z = (1-t)\,x_0 + t\,\varepsilon` with

    .. math::  t = \frac{\sqrt{1-\bar\alpha}}{\sqrt{\bar\alpha} + \sqrt{1-\bar\alpha}}
               = \frac{\sigma}{1+\sigma},\qquad \sigma = \sqrt{(1-\bar\alpha)/\bar\alpha} .
    """
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    return (1 - ab).sqrt() / (ab.sqrt() + (1 - ab).sqrt())


def alpha_bar_of(t: torch.Tensor) -> torch.Tensor:
    r"""The inverse of `linear_time_of`: :math:`\sigma = t/(1-t)`, :math:`\bar\alpha = 1/(1+\sigma^2)`."""
    sigma = torch.as_tensor(t, dtype=torch.float64) / (1 - torch.as_tensor(t, dtype=torch.float64))
    return 1 / (1 + sigma ** 2)


def fractional_timestep(schedule: NoiseSchedule, alpha_bar: torch.Tensor) -> torch.Tensor:
    r"""The (fractional) code timestep at which the discrete schedule reaches ``alpha_bar``: linear interpolation of
    :math:`\log\bar\alpha` over the table ``-1, 0, …, T-1`` (:math:`\bar\alpha_{-1} = 1`); exact at the table's
    entries, clamped to ``[-1, T-1]`` outside it."""
    table = torch.cat([torch.zeros(1, dtype=torch.float64), schedule.alpha_bars.log()])  # decreasing
    la = torch.as_tensor(alpha_bar, dtype=torch.float64).log().clamp(float(table[-1]), 0.0)
    k = (torch.searchsorted(-table, -la, right=True) - 1).clamp(0, len(table) - 2)
    w = (la - table[k]) / (table[k + 1] - table[k])
    return k.double() + w - 1


def diffusion_velocity_fn(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                          kind: str = "eps") -> VelocityFn:
    r"""A diffusion network on a discrete VP schedule, read as a velocity field on the linear path (no training).

    ``predict(x, τ)`` returns the network's :math:`\hat\varepsilon` (``kind="eps"``, e.g.
    `diffcourse.objectives.eps_fn`)
    or :math:`\hat x_0` (``kind="x0"``) at a (fractional) timestep τ. At linear time :math:`t` (`alpha_bar_of`,
    `fractional_timestep`) the VP point is :math:`x = c\,z`, :math:`c = \sqrt{\bar\alpha} + \sqrt{1-\bar\alpha}`, and
    :math:`\hat x_0`, :math:`\hat\varepsilon` are the same in both coordinates, so (`convert`)

    .. math::  v(z, t) = \hat\varepsilon - \hat x_0 = \frac{\hat\varepsilon - z}{1-t} = \frac{z - \hat x_0}{t} .

    Euler steps on this field between the linear times of DDIM's timesteps (`ddim_linear_times`) *are* DDIM with
    :math:`\eta = 0` (divided by :math:`c`): both move to :math:`(1-s)\hat x_0 + s\hat\varepsilon`.
    """
    if kind not in ("eps", "x0"):
        raise ValueError(f"kind must be 'eps' or 'x0' (what the diffusion network predicts), got {kind!r}.")

    def v(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(z.shape[0])
        ab = alpha_bar_of(t)
        c = _per_example(ab.sqrt() + (1 - ab).sqrt(), z)
        tau = fractional_timestep(schedule, ab).to(device=z.device, dtype=torch.float32)
        return convert(predict(c * z, tau), z, t.to(z.device), kind, "velocity")

    return v


def ddim_linear_times(schedule: NoiseSchedule, steps: int, spacing: str = "trailing") -> torch.Tensor:
    """The decreasing grid of linear-path times at DDIM's timesteps (`ddim_grid`), ending at 0 (the data)."""
    from .samplers.ddim import ddim_grid

    grid = torch.tensor(ddim_grid(schedule.T, steps, spacing))
    ab = torch.where(grid >= 0, schedule.alpha_bars[grid.clamp(min=0)], torch.ones((), dtype=torch.float64))
    return linear_time_of(ab)


# ============================================================================ couplings
def ot_coupling(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r"""Minibatch optimal-transport coupling (OT-CFM, Tong et al. 2024; Pooladian et al. 2023): the permutation
    :math:`\pi` of the noise that minimises the total squared distance within the batch,

    .. math::  \pi = \arg\min_{\pi\in S_B} \sum_i \|x_0^{(i)} - \varepsilon^{(\pi(i))}\|^2 ,

    solved exactly by the Hungarian-type algorithm of ``scipy.optimize.linear_sum_assignment``. Returns the index
    tensor ``perm`` (a permutation of ``0 … B-1``): pair ``x0[i]`` with ``eps[perm[i]]``.
    """
    from scipy.optimize import linear_sum_assignment

    if x0.shape[0] != eps.shape[0]:
        raise ValueError(f"A coupling pairs equal batches: {x0.shape[0]} data points and {eps.shape[0]} noises.")
    cost = torch.cdist(x0.flatten(1).double(), eps.flatten(1).double()) ** 2
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    perm = torch.empty(len(rows), dtype=torch.long)
    perm[torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perm.to(x0.device)


@torch.no_grad()
def reflow_pairs(v: VelocityFn, eps: torch.Tensor, steps: int = 50, method: str = "heun") -> torch.Tensor:
    r"""Reflow (Liu et al. 2022): the data ends of the trained flow's ODE from the noises ``eps`` — solved from
    :math:`t = 1` to 0 with ``steps`` `flow_sample` steps — as the new coupling :math:`(\hat x_0, \varepsilon)`.

    Training a flow on these *deterministic* pairs (the 2-rectified flow) gives paths that cross less and are
    straighter, so fewer steps suffice; the price is the ODE solves to make the pairs and a second training run.
    """
    from .samplers.flow import flow_sample

    return flow_sample(v, eps, steps=steps, method=method)


@torch.no_grad()
def straightness(v: VelocityFn, eps: torch.Tensor, steps: int = 100,
                 times: torch.Tensor | None = None) -> torch.Tensor:
    r"""Straightness of the flow's ODE paths from the noises ``eps`` (Liu et al. 2022, eq. 6), per path:

    .. math::  S = \int_0^1 \big\| (Z_1 - Z_0) - \dot Z_t \big\|^2\,dt ,\qquad \dot Z_t = v(Z_t, t),

    0 exactly when the path is a straight line walked at constant speed (one Euler step is then exact). The ODE is
    solved from :math:`Z_1 = \varepsilon` to :math:`Z_0` by ``steps`` Euler steps; the integral is the mean over the
    steps. On another decreasing grid ``times`` from :math:`t_0` to :math:`t_K` (a diffusion model's flow starts
    below 1, at DDIM's first time) the chord velocity is :math:`(Z_{t_0} - Z_{t_K})/(t_0 - t_K)` and the integral
    is the :math:`|\Delta t|`-weighted mean. Returns a tensor of one value per path (``mean()`` for the flow's).
    """
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64) if times is None else \
        torch.as_tensor(times, dtype=torch.float64)
    z, velocities = eps, []
    for k in range(len(times) - 1):
        vel = v(z, times[k].expand(z.shape[0]))
        velocities.append(vel)
        z = z + float(times[k + 1] - times[k]) * vel
    span = float(times[0] - times[-1])
    chord = ((eps - z) / span).flatten(1)  # (Z_{t_0} - Z_{t_K}) / (t_0 - t_K): Z_1 - Z_0 on [1, 0]
    weights = (times[:-1] - times[1:]) / span
    return sum(float(w) * ((chord - vel.flatten(1)) ** 2).sum(1) for w, vel in zip(weights, velocities))


# ============================================================================ the exact answer on a Gaussian mixture
def mixture_marginal_velocity(gm: GaussianMixture, x: torch.Tensor, t: float) -> torch.Tensor:
    r"""The exact marginal velocity :math:`v(x,t) = \mathbb E[\varepsilon - x_0 \mid x_t = x]` of the linear path
    when :math:`x_0` follows the mixture ``gm`` (:math:`\sum_k w_k\mathcal N(\mu_k,\sigma^2 I)`), float64.

    Given component :math:`k`, :math:`(x_0, x_t)` is jointly Gaussian, with :math:`x_t \sim
    \mathcal N((1-t)\mu_k, s^2 I)`, :math:`s^2 = (1-t)^2\sigma^2 + t^2`, and

    .. math::  \mathbb E[x_0\mid x_t,k] = \mu_k + \frac{(1-t)\sigma^2}{s^2}\,(x_t - (1-t)\mu_k),\qquad
               \mathbb E[\varepsilon\mid x_t,k] = \frac{t}{s^2}\,(x_t - (1-t)\mu_k) ;

    the marginal velocity averages their difference with the responsibilities :math:`p(k\mid x_t)` of the path's
    marginal mixture (as chapter 4 does for the score, which is :math:`-\mathbb E[\varepsilon\mid x_t]/t` here).
    """
    x = x.to(torch.float64)
    s2 = (1 - t) ** 2 * gm.std ** 2 + t ** 2
    marginal = GaussianMixture(gm.means * (1 - t), math.sqrt(s2), gm.weights)
    r = marginal.responsibilities(x)                                # (n, K)
    centred = x[:, None, :] - (1 - t) * gm.means[None]              # (n, K, d)
    per_component = (t / s2) * centred - (gm.means[None] + ((1 - t) * gm.std ** 2 / s2) * centred)
    return (r[..., None] * per_component).sum(1)
