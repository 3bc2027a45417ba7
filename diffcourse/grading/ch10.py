r"""Checks for chapter 10, *Flow matching* (``solutions/10_flow_matching.ipynb``).

Convention as in `diffcourse.flows`: :math:`x_0` is data, :math:`t = 0` data and :math:`t = 1` noise,
:math:`x_t = (1-t)x_0 + t\varepsilon`, velocity :math:`v = \varepsilon - x_0`, networks see :math:`1000\,t`.

====================  =================================================  =========================================
exercise              learner's signature                                reference
====================  =================================================  =========================================
cfm_loss              ``cfm_loss(model, x0, eps, t)``                    `diffcourse.flows.cfm_loss` (velocity)
flow_euler            ``flow_euler(v, x1, steps)``                       `diffcourse.samplers.flow.flow_sample`
eps_to_velocity       ``eps_to_velocity(eps_hat, x_t, t)``               `diffcourse.flows.convert`
ot_coupling           ``ot_coupling(x0, eps)``                           `diffcourse.flows.ot_coupling` (its cost)
straightness          ``straightness(v, eps, steps)``                    `diffcourse.flows.straightness`
marginal_velocity     ``marginal_velocity(means, std, weights, x, t)``   `diffcourse.flows.mixture_marginal_velocity`
====================  =================================================  =========================================
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..data.toy2d import GaussianMixture
from ..flows import TIME_SCALE, convert, mixture_marginal_velocity
from ..flows import cfm_loss as cfm_loss_reference
from ..flows import ot_coupling as ot_coupling_reference
from ..flows import straightness as straightness_reference
from ..samplers.flow import flow_sample
from .compare import as_int_list, describe, expect_close, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import Fn, batch, random_mixture, randint, uniform

CHAPTER = 10


class FakeVelocity(nn.Module):
    r"""A stand-in network :math:`f(x, \tau) = \tanh(a x + \sin(w \tau + \varphi))` of the network time
    :math:`\tau = 1000\,t` (so a call with :math:`t` instead of :math:`1000\,t`, or at the wrong time, shows)."""

    def __init__(self, ctx: CheckContext) -> None:
        super().__init__()
        self.a, self.w, self.phase = uniform(ctx, 0.5, 1.5), uniform(ctx, 0.002, 0.006), uniform(ctx, 0.0, math.pi)

    def forward(self, x: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
        tau = torch.as_tensor(tau, dtype=torch.float64)
        tau = tau.expand(x.shape[0]) if tau.ndim == 0 else tau
        return torch.tanh(self.a * x.double() + torch.sin(self.w * tau.reshape(-1, *([1] * (x.ndim - 1)))
                                                            + self.phase)).to(x.dtype)


def _velocity_of(net: FakeVelocity):
    """The velocity field v(x, t) of a `FakeVelocity` (continuous t, of shape (B,) or a number)."""
    return lambda x, t: net(x, TIME_SCALE * torch.as_tensor(t, dtype=torch.float64))


def _bt(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


# ----------------------------------------------------------------------------------------- (a) the CFM loss
def _cfm(model, x0, eps, t, *, reverse=False, target="v", scale=TIME_SCALE, reduce="mean"):
    tb = _bt(t, x0)
    xt = tb * x0 + (1 - tb) * eps if reverse else (1 - tb) * x0 + tb * eps
    goal = {"v": eps - x0, "-v": x0 - eps, "eps": eps, "x0": x0}[target]
    err = (model(xt, scale * t) - goal) ** 2
    return {"mean": err.mean(), "sum": err.sum(), "per-example": err.flatten(1).sum(1).mean()}[reduce]


@register_check("cfm_loss", chapter=CHAPTER, references=(cfm_loss_reference,),
                hint="x_t = (1 − t)·x0 + t·eps (t reshaped to (B, 1, …)); pred = model(x_t, 1000 * t); "
                     "return ((pred − (eps − x0))**2).mean().")
def check_cfm_loss(fn: Fn, ctx: CheckContext) -> str:
    for tail in [(2,), (1, 4, 4)]:
        model = FakeVelocity(ctx)
        x0, eps = batch(ctx, tail), None
        eps = torch.randn(x0.shape, generator=ctx.gen)
        t = torch.rand(x0.shape[0], generator=ctx.gen)
        what = "cfm_loss(model, x0, eps, t)"
        inputs = f"x0 {describe(x0)}, t {describe(t)}"
        out = ctx.call(fn, model, x0.clone(), eps.clone(), t.clone(), what=what)
        ref = _cfm(model, x0, eps, t)
        expect_close(out, float(ref), what=what, inputs=inputs, rtol=1e-4, atol=1e-6, mistakes={
            "run the path backwards (x_t = t·x0 + (1 − t)·eps: in this course t = 0 is data, t = 1 noise)":
                float(_cfm(model, x0, eps, t, reverse=True)),
            "regress x0 − eps (the velocity points from data to noise: eps − x0)": float(_cfm(model, x0, eps, t,
                                                                                               target="-v")),
            "regress the noise eps instead of the velocity": float(_cfm(model, x0, eps, t, target="eps")),
            "regress x0 instead of the velocity": float(_cfm(model, x0, eps, t, target="x0")),
            "give the network t instead of 1000·t": float(_cfm(model, x0, eps, t, scale=1.0)),
            "sum the squared errors instead of averaging them": float(_cfm(model, x0, eps, t, reduce="sum")),
            "sum over each example's dimensions, then average over the batch (use the mean over every element)":
                float(_cfm(model, x0, eps, t, reduce="per-example")),
        })
    return "the loss matches on 2D points and 4×4 images (random t per example, the network at 1000·t)."


# ----------------------------------------------------------------------------------------- (b) Euler sampler
def _euler(v, x1, steps, *, increasing=False, sign=1.0, at_next=False, n=None):
    times = torch.linspace(0.0, 1.0, steps + 1) if increasing else torch.linspace(1.0, 0.0, steps + 1)
    x = x1
    for k in range(steps if n is None else n):
        t, s = float(times[k]), float(times[k + 1])
        h = (s - t) if not increasing else -(s - t)
        x = x + sign * h * v(x, torch.full((x.shape[0],), s if at_next else t, dtype=torch.float64))
    return x


@register_check("flow_euler", chapter=CHAPTER, references=(flow_sample,),
                hint="times = torch.linspace(1, 0, steps + 1); for k in range(steps): x = x + (times[k+1] − times[k]) "
                     "* v(x, times[k] for every example); return x. The steps are negative: you walk from noise to "
                     "data.")
def check_flow_euler(fn: Fn, ctx: CheckContext) -> str:
    for tail, steps in [((2,), randint(ctx, 3, 8)), ((1, 4, 4), randint(ctx, 2, 5)), ((2,), 1)]:
        v = _velocity_of(FakeVelocity(ctx))
        x1 = batch(ctx, tail)
        what = f"flow_euler(v, x1, steps={steps})"
        out = ctx.call(fn, v, x1.clone(), steps, what=what)
        ref = flow_sample(v, x1, steps=steps, method="euler")
        expect_tensor(out, ref, what=what, inputs=f"x1 {describe(x1)}", rtol=1e-4, atol=1e-5, mistakes={
            "walk the time grid upwards from t = 0 (sampling starts at t = 1, noise, and ends at t = 0, data)":
                _euler(v, x1, steps, increasing=True),
            "add |Δt|·v instead of (t_{k+1} − t_k)·v (the velocity points towards noise; walking to data the "
            "steps are negative)": _euler(v, x1, steps, sign=-1.0),
            "evaluate v at the end of the step (Euler uses the start, t_k)": _euler(v, x1, steps, at_next=True),
            "take one step fewer": _euler(v, x1, steps, n=steps - 1),
        })
    return "matches Euler from t = 1 to 0 on points and images, with 1 to 8 steps."


# ----------------------------------------------------------------------------------------- (c) ε → velocity
@register_check("eps_to_velocity", chapter=CHAPTER, references=(convert,),
                hint="x̂0 = (x_t − t·ε̂)/(1 − t), and v = ε̂ − x̂0, which simplifies to (ε̂ − x_t)/(1 − t) "
                     "(t reshaped to broadcast).")
def check_eps_to_velocity(fn: Fn, ctx: CheckContext) -> str:
    for tail in [(2,), (1, 4, 4)]:
        x_t, eps_hat = batch(ctx, tail), None
        eps_hat = torch.randn(x_t.shape, generator=ctx.gen)
        t = 0.05 + 0.9 * torch.rand(x_t.shape[0], generator=ctx.gen)
        what = "eps_to_velocity(eps_hat, x_t, t)"
        out = ctx.call(fn, eps_hat.clone(), x_t.clone(), t.clone(), what=what)
        ref = convert(eps_hat, x_t, t, "eps", "velocity")
        tb = _bt(t, x_t)
        expect_tensor(out, ref, what=what, inputs=f"x_t {describe(x_t)}, t {describe(t)}", rtol=1e-4, atol=1e-5,
                      mistakes={
                          "forget to divide by (1 − t)": eps_hat - x_t,
                          "divide by t instead of (1 − t)": (eps_hat - x_t) / tb,
                          "divide by t instead of (1 − t) in x̂0 = (x_t − t·ε̂)/(1 − t)":
                              eps_hat - (x_t - tb * eps_hat) / tb,
                          "flip the sign (v = x̂0 − ε̂)": (x_t - eps_hat) / (1 - tb),
                          "take x̂0 = x_t − t·ε̂ without dividing by (1 − t)": eps_hat - (x_t - tb * eps_hat),
                      })
    return "v = ε̂ − x̂0 = (ε̂ − x_t)/(1 − t) on points and images, t from 0.05 to 0.95."


# ----------------------------------------------------------------------------------------- (d) minibatch OT
def _cost(x0: torch.Tensor, eps: torch.Tensor, perm: torch.Tensor) -> float:
    return float(((x0.double() - eps.double()[perm]) ** 2).flatten(1).sum(1).sum())


@register_check("ot_coupling", chapter=CHAPTER, references=(ot_coupling_reference,),
                hint="cost[i, j] = squared distance between x0[i] and eps[j] (torch.cdist(...)**2); rows, cols = "
                     "scipy.optimize.linear_sum_assignment(cost.numpy()); return torch.as_tensor(cols)[argsort(rows)] "
                     "(rows come back sorted, so cols itself), a LongTensor: eps[perm[i]] is x0[i]'s partner.")
def check_ot_coupling(fn: Fn, ctx: CheckContext) -> str:
    for n, tail in [(randint(ctx, 5, 9), (2,)), (randint(ctx, 20, 40), (2,)), (randint(ctx, 6, 12), (1, 3, 3))]:
        x0 = torch.randn(n, *tail, generator=ctx.gen) + torch.tensor(2.0)
        eps = torch.randn(n, *tail, generator=ctx.gen)
        what = f"ot_coupling(x0, eps) with {n} points"
        perm = as_int_list(ctx.call(fn, x0.clone(), eps.clone(), what=what), what, meaning="indices of eps")
        best = ot_coupling_reference(x0, eps)
        if sorted(perm) != list(range(n)):
            repeated = len(set(perm)) < len(perm)
            raise Mismatch(f"{what} returned {perm[:12]}{' …' if n > 12 else ''}: not a permutation of 0 … {n - 1}"
                           + (" (some noises are used twice and others never: each x0 picked its own nearest eps?)"
                              if repeated else "") + ".",
                           hint="A coupling pairs every data point with a *different* noise: solve the assignment "
                                "problem (linear_sum_assignment), not a nearest-neighbour search.")
        got, opt = _cost(x0, eps, torch.tensor(perm)), _cost(x0, eps, best)
        if got > opt * (1 + 1e-6) + 1e-9:
            inverse = torch.empty_like(best)
            inverse[best] = torch.arange(n)
            message = f"{what}: total squared distance {got:.4g}, but the best pairing reaches {opt:.4g}."
            if perm == inverse.tolist():
                message += " Yours is the inverse permutation: return perm with eps[perm[i]] paired with x0[i]."
            elif perm == list(range(n)):
                message += " Yours is the identity: the independent coupling, not the optimal one."
            raise Mismatch(message)
    return ("every answer is a permutation with the smallest total squared distance (checked against the Hungarian "
            "solution).")


# ----------------------------------------------------------------------------------------- (e) straightness
def _straight(v, eps, steps, *, chord_sign=1.0, square=True, chord_start=False):
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    z, vels = eps, []
    for k in range(steps):
        vel = v(z, times[k].expand(z.shape[0]))
        vels.append(vel)
        z = z + float(times[k + 1] - times[k]) * vel
    chord = chord_sign * (eps - z).flatten(1) if not chord_start else eps.flatten(1)
    dev = [(chord - vel.flatten(1)) for vel in vels]
    return torch.stack([(d ** 2).sum(1) if square else d.norm(dim=1) for d in dev]).mean(0)


@register_check("straightness", chapter=CHAPTER, references=(straightness_reference,),
                hint="Euler from z = eps over times = linspace(1, 0, steps + 1), keeping each step's velocity v_k; "
                     "chord = z_1 − z_0 = eps − (the end point); return the mean over k of |chord − v_k|² "
                     "(summed over the dimensions), one value per path.")
def check_straightness(fn: Fn, ctx: CheckContext) -> str:
    for tail, steps in [((2,), randint(ctx, 4, 10)), ((1, 3, 3), randint(ctx, 3, 6))]:
        v = _velocity_of(FakeVelocity(ctx))
        eps = batch(ctx, tail, dtype=torch.float64)
        what = f"straightness(v, eps, steps={steps})"
        out = ctx.call(fn, v, eps.clone(), steps, what=what)
        ref = straightness_reference(v, eps, steps=steps)
        expect_tensor(out, ref, what=what, inputs=f"eps {describe(eps)}", rtol=1e-5, atol=1e-8, check_dtype=False,
                      mistakes={
                          "use the chord z_0 − z_1 (the velocity points from data to noise: z_1 − z_0)":
                              _straight(v, eps, steps, chord_sign=-1.0),
                          "take the distance instead of its square": _straight(v, eps, steps, square=False),
                          "compare the velocity with z_1 instead of with the chord z_1 − z_0":
                              _straight(v, eps, steps, chord_start=True),
                      })
    return "per-path straightness matches on points and images."


# ----------------------------------------------------------------------------------------- (f) marginal velocity
@register_check("marginal_velocity", chapter=CHAPTER, references=(mixture_marginal_velocity,),
                hint="s² = (1 − t)²σ² + t²; responsibilities r_k ∝ w_k·N(x; (1 − t)μ_k, s²I); "
                     "with d_k = x − (1 − t)μ_k: "
                     "E[eps | x, k] = (t/s²)·d_k and E[x0 | x, k] = μ_k + ((1 − t)σ²/s²)·d_k; "
                     "v = Σ_k r_k (E[eps | x, k] − E[x0 | x, k]).")
def check_marginal_velocity(fn: Fn, ctx: CheckContext) -> str:
    for t in (0.0, round(uniform(ctx, 0.1, 0.4), 3), round(uniform(ctx, 0.6, 0.95), 3), 1.0):
        gm = random_mixture(ctx)
        x = 2 * torch.randn(randint(ctx, 5, 9), 2, generator=ctx.gen, dtype=torch.float64)
        what = f"marginal_velocity(means, std, weights, x, t={t})"
        out = ctx.call(fn, gm.means.clone(), gm.std, gm.weights.clone(), x.clone(), t, what=what)
        ref = mixture_marginal_velocity(gm, x, t)
        s2 = (1 - t) ** 2 * gm.std ** 2 + t ** 2
        unnoised = GaussianMixture(gm.means, gm.std, gm.weights)
        d = x[:, None] - (1 - t) * gm.means[None]
        r_wrong = unnoised.responsibilities(x)[..., None]
        wrong_r = (r_wrong * ((t / s2) * d - (gm.means[None] + ((1 - t) * gm.std ** 2 / s2) * d))).sum(1)
        expect_tensor(out, ref, what=what, inputs=f"{len(gm.means)} components, std {gm.std:.3f}", rtol=1e-6,
                      atol=1e-8, mistakes={
                          "flip the sign (v = E[x0 | x] − E[eps | x])": -ref,
                          "weight the components by the data's responsibilities p(k | x) at t = 0 instead of those "
                          "of the path's marginal at t": wrong_r,
                      })
    return "matches the closed form at t = 0, 1 and in between, on random mixtures."
