r"""Checks for chapter 4, *Score-based models and SDEs* (``solutions/04_score_sde.ipynb``).

======================  ====================================================  ==============================================
exercise                learner's signature                                   reference
======================  ====================================================  ==============================================
score_from_eps_fn       ``score_from_eps_fn(eps_fn, sde)`` → score(x, t)      `diffcourse.samplers.sde.score_from_eps_fn`
dsm_loss                ``dsm_loss(score_fn, x0, t, eps, alpha_bars)``         E‖s(x_t, t) + ε/sqrt(1 − ᾱ_t)‖² (`dsm_loss_reference`)
langevin_step           ``langevin_step(score_fn, x, delta, z)``              x + (δ/2)·s(x) + sqrt(δ)·z
reverse_sde_step        ``reverse_sde_step(score_fn, sde, x, t, dt, z)``      one step of `euler_maruyama` on the reverse VP SDE
pf_ode_drift            ``pf_ode_drift(score_fn, sde, x, t)``                 f − ½g²·s (the velocity of `probability_flow_ode_sample`)
noise_posterior_mean    ``noise_posterior_mean(x, x0_samples, alpha_bar)``    E[ε | x_t = x] by self-normalised weights
tweedie_posterior_mean  ``tweedie_posterior_mean(score_fn, x_t, alpha_bar)``  exact E[x0 | x_t] (`GaussianMixture.posterior_mean`)
======================  ====================================================  ==============================================

Continuous times ``t`` lie in (0, 1]; `VPSDE` maps them to the discrete steps of a `NoiseSchedule`.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..data import toy2d
from ..data.toy2d import GaussianMixture
from ..samplers.sde import VPSDE, euler_maruyama, pf_ode_velocity, reverse_drift
from ..samplers.sde import score_from_eps_fn as score_from_eps_fn_reference
from .compare import describe, expect_close, expect_like, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import (CAST_HINT, FakeEps, FakeNet, Fn, batch, bcast, randint, random_mixture, random_schedule,
                       uniform)

CHAPTER = 4


class FakeScore:
    """A smooth stand-in for a score network s(x, t), t continuous in [0, 1] (or None for a fixed target)."""

    def __init__(self, ctx: CheckContext) -> None:
        self.fake = FakeEps(ctx)

    def __call__(self, x: torch.Tensor, t: Any = None) -> torch.Tensor:
        if t is None:
            t = 0.0
        t = torch.as_tensor(t, dtype=torch.float64)
        return -2.0 * self.fake(x, 60.0 * t)  # 60·t: a change of t by 1/T shows


def _times(ctx: CheckContext, B: int) -> torch.Tensor:
    t = torch.rand(B, generator=ctx.gen, dtype=torch.float64) * 0.95 + 0.03
    t[0] = 1.0
    return t


# ----------------------------------------------------------------------------------------- (a) score from ε
@register_check("score_from_eps_fn", chapter=CHAPTER, references=(score_from_eps_fn_reference,),
                hint="Return a function score(x, t): idx = sde.timestep(t) (= t·N − 1, the step the network knows), "
                     "then −eps_fn(x, idx)/sqrt(1 − ᾱ(t)) with sqrt(1 − ᾱ(t)) = sde.marginal_std(t) reshaped to "
                     "(B, 1, …) and cast to x.dtype.")
def check_score_from_eps_fn(fn: Fn, ctx: CheckContext) -> str:
    for tail in [(2,), (1, 4, 4)]:
        sde = VPSDE(random_schedule(ctx))
        eps_fn = FakeEps(ctx)
        what = "score_from_eps_fn(eps_fn, sde)"
        score = ctx.call(fn, eps_fn, sde, what=what)
        if not callable(score):
            raise Mismatch(f"{what} returned {type(score).__name__}, not a function.",
                           hint="Define `def score(x, t): …` inside and `return score` (the function, no parentheses).")
        x = batch(ctx, tail)
        t = _times(ctx, x.shape[0])
        out = ctx.call(score, x.clone(), t.clone(), what="score(x, t)")
        ref = score_from_eps_fn_reference(eps_fn, sde)(x, t)
        std = bcast(sde.marginal_std(t), x)
        idx = sde.timestep(t)
        e = eps_fn(x, idx).double()
        expect_tensor(out, ref, what="score(x, t), the function your score_from_eps_fn returned",
                      inputs=f"x {describe(x)}, t = {[round(v, 3) for v in t.tolist()]}, the VP SDE of the "
                             f"{sde.schedule.name} schedule with N = {sde.N}",
                      rtol=1e-4, atol=1e-5, dtype_hint=CAST_HINT, mistakes={
                          "forget the minus sign (the score points *against* the noise)": e / std,
                          "divide by 1 − ᾱ(t) instead of its square root": -e / std ** 2,
                          "multiply by sqrt(1 − ᾱ(t)) instead of dividing": -e * std,
                          "call eps_fn with the continuous time t instead of the step index sde.timestep(t) = t·N − 1":
                              -eps_fn(x, t).double() / std,
                          "use t·N as the step index (off by one: steps are 0-based, sde.timestep(t) = t·N − 1)":
                              -eps_fn(x, t * sde.N).double() / std,
                      })
    return "the score matches −ε̂(x, tN − 1)/sqrt(1 − ᾱ(t)) from score_from_eps_fn, on points and 4×4 images."


# ----------------------------------------------------------------------------------------- (b) DSM loss
def dsm_loss_reference(score_fn: Fn, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                       alpha_bars: torch.Tensor) -> torch.Tensor:
    r"""Denoising score matching: the batch mean of :math:`\|s(x_t,t) + \varepsilon/\sqrt{1-\bar\alpha_t}\|^2` (norm over
    all the dimensions of one example)."""
    a = bcast(alpha_bars[t], x0)  # float64: at small t, 1 − ᾱ_t loses digits in float32
    xt = (a.sqrt() * x0 + (1 - a).sqrt() * eps).to(x0.dtype)
    return ((score_fn(xt, t) + (eps / (1 - a).sqrt()).to(x0.dtype)) ** 2).flatten(1).sum(1).mean()


def _dsm_mistakes(net: FakeNet, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                  alpha_bars: torch.Tensor) -> dict[str, float]:
    """The known mistakes in the DSM loss E‖s(x_t, t) + ε/sqrt(1 − ᾱ_t)‖², each with the loss it gives."""
    a, a1 = bcast(alpha_bars[t], x0), bcast(alpha_bars[t - 1], x0)
    x, e = x0.double(), eps.double()
    xt = (a.sqrt() * x + (1 - a).sqrt() * e).float()

    def loss(s: torch.Tensor, target: torch.Tensor) -> float:  # the squared norm per example, averaged
        return float(((s.double() - target) ** 2).flatten(1).sum(1).mean())

    s, target = net(xt, t), -e / (1 - a).sqrt()  # the score of q(x_t | x0)
    return {
        "average over the coordinates as well (torch.mean of the squares): the norm sums over each "
        "example's dimensions": float(((s.double() - target) ** 2).mean()),
        "subtract ε/sqrt(1 − ᾱ_t) instead of adding it (the target score is −ε/sqrt(1 − ᾱ_t))":
            loss(s, e / (1 - a).sqrt()),
        "divide ε by 1 − ᾱ_t instead of its square root": loss(s, -e / (1 - a)),
        "forget to divide ε by sqrt(1 − ᾱ_t)": loss(s, -e),
        "evaluate the score at x0 instead of the noisy x_t": loss(net(x0, t), target),
        "use t − 1 for the step (t is 0-based: alpha_bars[t] belongs to x_t)":
            loss(net((a1.sqrt() * x + (1 - a1).sqrt() * e).float(), t - 1), -e / (1 - a1).sqrt()),
    }


@register_check("dsm_loss", chapter=CHAPTER, references=(dsm_loss_reference,),
                hint="a = alpha_bars[t] reshaped to (B, 1, …); x_t = sqrt(a)·x0 + sqrt(1 − a)·eps; "
                     "r = score_fn(x_t, t) + eps/sqrt(1 − a); return (r**2).flatten(1).sum(1).mean() — the squared "
                     "norm of each example, averaged over the batch.")
def check_dsm_loss(fn: Fn, ctx: CheckContext) -> str:
    for tail in [(2,), (1, 4, 4), (3,)]:
        sched = random_schedule(ctx)
        net = FakeNet(FakeEps(ctx))
        x0 = batch(ctx, tail, B=randint(ctx, 12, 24))
        t = torch.randint(0, sched.T, (x0.shape[0],), generator=ctx.gen)
        t[0], t[1] = 0, sched.T - 1
        eps = torch.randn(x0.shape, generator=ctx.gen)
        ab = sched.alpha_bars
        what = "dsm_loss(score_fn, x0, t, eps, alpha_bars)"
        inputs = f"x0 {describe(x0)}, t = {t.tolist()[:6]}…, eps like x0, the {sched.name} schedule with T = {sched.T}"
        out = ctx.call(fn, net, x0.clone(), t.clone(), eps.clone(), ab.clone(), what=what)
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            raise Mismatch(f"{what} returned a Python {type(out).__name__}, not a tensor.",
                           hint="Return the loss tensor itself (no .item()): training calls loss.backward().")
        if not isinstance(out, torch.Tensor):
            expect_like(out, torch.zeros(()), what=what)
        if out.numel() != 1:
            raise Mismatch(f"{what} returned a tensor of shape {tuple(out.shape)}; expected a single number.",
                           hint="Sum the squares over each example's dimensions, then average over the batch.")
        with torch.no_grad():
            expected = float(dsm_loss_reference(net, x0, t, eps, ab))
            mistakes = _dsm_mistakes(net, x0, t, eps, ab)
        # rtol 2e-3: the weight 1/(1 − ᾱ_t) is ~1e4 at t = 0, where float32 and float64 coefficients differ slightly
        expect_close(out.detach(), expected, what=what, inputs=inputs, rtol=2e-3, atol=1e-6, mistakes=mistakes)
    return "matches E‖s(x_t, t) + ε/sqrt(1 − ᾱ_t)‖² on points, 4×4 images and 3-D vectors."


# ----------------------------------------------------------------------------------------- (c) Langevin
@register_check("langevin_step", chapter=CHAPTER,
                hint="x + (delta/2)·score_fn(x) + sqrt(delta)·z: half the step size on the score, "
                     "the square root of the step size on the noise.")
def check_langevin_step(fn: Fn, ctx: CheckContext) -> str:
    gm = toy2d.mixture("8gaussians")
    fakes = [lambda x: gm.score(x).to(x.dtype), FakeScore(ctx)]
    for tail, score_fn in [((2,), fakes[0]), ((1, 4, 4), fakes[1]), ((2,), fakes[1])]:
        x = batch(ctx, tail) * 2
        z = torch.randn(x.shape, generator=ctx.gen)
        delta = uniform(ctx, 1e-3, 5e-2)
        what = f"langevin_step(score_fn, x, delta={delta:.4g}, z)"
        out = ctx.call(fn, score_fn, x.clone(), delta, z.clone(), what=what)
        xd, zd, s = x.double(), z.double(), score_fn(x).double()
        ref = (xd + delta / 2 * s + math.sqrt(delta) * zd).to(x.dtype)
        expect_tensor(out, ref, what=what, inputs=f"x {describe(x)}, z like x", rtol=1e-4, atol=1e-5,
                      dtype_hint=CAST_HINT, mistakes={
                          "forget the ½ on the score term": xd + delta * s + math.sqrt(delta) * zd,
                          "scale the noise by δ instead of sqrt(δ)": xd + delta / 2 * s + delta * zd,
                          "subtract the score (it points uphill, towards higher density: add it)":
                              xd - delta / 2 * s + math.sqrt(delta) * zd,
                          "use the convention x + δ·s + sqrt(2δ)·z (a step size twice as large)":
                              xd + delta * s + math.sqrt(2 * delta) * zd,
                          "leave out the noise (that is gradient ascent, which collapses onto the modes)":
                              xd + delta / 2 * s,
                      })
    return "matches x + (δ/2)·s(x) + sqrt(δ)·z for the 8-Gaussian score and a score on 4×4 images."


# ----------------------------------------------------------------------------------------- (d) reverse SDE step
def _sde_case(ctx: CheckContext, tail: tuple[int, ...]):
    sde = VPSDE(random_schedule(ctx))
    x = batch(ctx, tail)
    t = uniform(ctx, 0.05, 1.0)
    dt = uniform(ctx, 0.002, 0.04)
    return sde, x, t, dt


@register_check("reverse_sde_step", chapter=CHAPTER, references=(euler_maruyama, reverse_drift),
                hint="tt = torch.full((B,), t); β = sde.beta(tt) reshaped to (B, 1, …) (g² = β, f = −½·β·x); "
                     "x_new = x − (f − g²·score_fn(x, tt))·dt + sqrt(β)·sqrt(dt)·z (time runs backwards: t → t − dt).")
def check_reverse_sde_step(fn: Fn, ctx: CheckContext) -> str:
    for tail in [(2,), (1, 4, 4), (2,)]:
        sde, x, t, dt = _sde_case(ctx, tail)
        score_fn = FakeScore(ctx)
        g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=ctx.gen)))
        state = g.get_state()
        z = torch.randn(x.shape, generator=g)
        g.set_state(state)
        B = x.shape[0]

        def rdrift(x, tt):
            return sde.drift(x, tt) - bcast(sde.diffusion(tt) ** 2, x).to(x.dtype) * score_fn(x, tt)

        ref = euler_maruyama(rdrift, sde.diffusion, x, torch.tensor([t, t - dt], dtype=torch.float64), g)
        what = f"reverse_sde_step(score_fn, sde, x, t={t:.4f}, dt={dt:.4f}, z)"
        inputs = f"x {describe(x)}, z like x, the VP SDE of the {sde.schedule.name} schedule (β(t) = {float(sde.beta(t)):.3g})"
        out = ctx.call(fn, score_fn, sde, x.clone(), t, dt, z.clone(), what=what)
        tt = torch.full((B,), t, dtype=torch.float64)
        beta = float(sde.beta(t))
        xd, zd, s = x.double(), z.double(), score_fn(x, tt).double()
        f = -0.5 * beta * xd
        noise = math.sqrt(beta) * math.sqrt(dt) * zd
        expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-5, dtype_hint=CAST_HINT, mistakes={
            "add g²·s to the drift instead of subtracting it (the reverse drift is f − g²·s)":
                xd - (f + beta * s) * dt + noise,
            "step forwards in time (x + (f − g²s)·dt): the reverse SDE runs from t to t − dt, so dt enters with "
            "a minus sign": xd + (f - beta * s) * dt + noise,
            "use g instead of g² = β(t) on the score": xd - (f - math.sqrt(beta) * s) * dt + noise,
            "scale the noise by dt instead of sqrt(dt)": xd - (f - beta * s) * dt + math.sqrt(beta) * dt * zd,
            "halve the score term (½g²·s belongs to the probability-flow ODE, not the reverse SDE)":
                xd - (f - 0.5 * beta * s) * dt + noise,
            "leave out the noise": xd - (f - beta * s) * dt,
            "leave out the drift f = −½β(t)·x": xd + beta * s * dt + noise,
        })
    return "matches one reverse Euler–Maruyama step of the VP SDE (euler_maruyama on f − g²·s), on points and images."


# ----------------------------------------------------------------------------------------- (e) probability-flow drift
@register_check("pf_ode_drift", chapter=CHAPTER, references=(pf_ode_velocity,),
                hint="tt = torch.full((B,), t); f = sde.drift(x, tt) (= −½β(t)·x); g² = sde.diffusion(tt)**2 (= β(t)) "
                     "reshaped to (B, 1, …); return f − ½·g²·score_fn(x, tt).")
def check_pf_ode_drift(fn: Fn, ctx: CheckContext) -> str:
    for tail in [(2,), (1, 4, 4)]:
        sde, x, t, _ = _sde_case(ctx, tail)
        score_fn = FakeScore(ctx)
        B = x.shape[0]
        tt = torch.full((B,), t, dtype=torch.float64)
        ref = sde.drift(x, tt) - 0.5 * bcast(sde.diffusion(tt) ** 2, x).to(x.dtype) * score_fn(x, tt)
        what = f"pf_ode_drift(score_fn, sde, x, t={t:.4f})"
        out = ctx.call(fn, score_fn, sde, x.clone(), t, what=what)
        beta = float(sde.beta(t))
        xd, s = x.double(), score_fn(x, tt).double()
        f = -0.5 * beta * xd
        expect_tensor(out, ref, what=what, inputs=f"x {describe(x)}, the VP SDE of the {sde.schedule.name} schedule",
                      rtol=1e-4, atol=1e-5, dtype_hint=CAST_HINT, mistakes={
                          "forget the ½ on g²·s (f − g²·s is the reverse SDE's drift, not the ODE's)": f - beta * s,
                          "add the score term instead of subtracting it": f + 0.5 * beta * s,
                          "use g instead of g² = β(t)": f - 0.5 * math.sqrt(beta) * s,
                          "leave out f = −½β(t)·x": -0.5 * beta * s,
                          "flip the sign of f (it is −½β(t)·x: the forward process shrinks x)": -f - 0.5 * beta * s,
                      })
    return "matches f − ½g²·s, the velocity of probability_flow_ode_sample, on points and images."


# ----------------------------------------------------------------------------------------- (f) the experiment
def noise_posterior_mean_reference(x: torch.Tensor, x0_samples: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    r""":math:`\mathbb E[\varepsilon\mid x_t = x]` from samples :math:`x_0^{(j)}` of the data, weighted by
    :math:`q(x\mid x_0^{(j)})` (self-normalised, in log space), float64."""
    a = float(alpha_bar)
    x, x0 = x.double(), x0_samples.double()
    diff = x[:, None, :] - math.sqrt(a) * x0[None]           # (m, n, d)
    logw = -(diff ** 2).sum(-1) / (2 * (1 - a))               # log N(x; sqrt(a) x0_j, (1 − a) I) + const
    w = torch.softmax(logw, dim=1)
    return (w[..., None] * diff).sum(1) / math.sqrt(1 - a)


@register_check("noise_posterior_mean", chapter=CHAPTER, references=(noise_posterior_mean_reference,), timeout=20.0,
                hint="ε_j = (x − sqrt(ᾱ)·x0_j)/sqrt(1 − ᾱ) for every pair (query, sample); log-weights "
                     "−‖x − sqrt(ᾱ)·x0_j‖²/(2(1 − ᾱ)); w = torch.softmax(log-weights, dim=1) (never exp then divide: "
                     "far points underflow to 0/0); return Σ_j w_j·ε_j.")
def check_noise_posterior_mean(fn: Fn, ctx: CheckContext) -> str:
    gm = toy2d.mixture("8gaussians")
    n = 4000
    x0s = gm.sample(n, torch.Generator().manual_seed(ctx.seed))
    worst = 0.0
    for _ in range(2):
        ab = uniform(ctx, 0.2, 0.8)
        m = randint(ctx, 5, 8)
        x = gm.noised(ab).sample(m, torch.Generator().manual_seed(int(torch.randint(0, 10**6, (), generator=ctx.gen))))
        x[0] = torch.tensor([25.0, -25.0])  # far out: naive exp() underflows to 0/0
        what = f"noise_posterior_mean(x, x0_samples, alpha_bar={ab:.3f})"
        inputs = f"x {describe(x)} (x[0] far out at (25, −25)), {n} samples x0 of the 8-Gaussian mixture"
        out = ctx.call(fn, x.clone(), x0s.clone(), ab, what=what)
        ref = noise_posterior_mean_reference(x, x0s, ab)
        if isinstance(out, torch.Tensor) and out.shape == ref.shape and out.is_floating_point() \
                and torch.isnan(out[0]).any() and torch.isfinite(out[1:]).all():
            raise Mismatch(f"NaN at the far-out query point x[0] = (25, −25) only.\n   inputs: {inputs}",
                           hint="There every weight exp(−‖…‖²/(2(1 − ᾱ))) underflows to 0, and 0/0 is NaN. Work with "
                                "log-weights and normalise them with torch.softmax(logw, dim=1) (it subtracts the "
                                "largest first).")
        a = ab
        xd, x0d = x.double(), x0s.double()
        diff = xd[:, None, :] - math.sqrt(a) * x0d[None]
        w = torch.softmax(-(diff ** 2).sum(-1) / (2 * (1 - a)), 1)[..., None]
        diff_nosqrt = xd[:, None, :] - a * x0d[None]
        w_nosqrt = torch.softmax(-(diff_nosqrt ** 2).sum(-1) / (2 * (1 - a)), 1)[..., None]
        expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-3, atol=1e-4, check_dtype=False, mistakes={
            "flip the sign of ε (it is (x − sqrt(ᾱ)·x0)/sqrt(1 − ᾱ))": -ref,
            "average ε over all the samples with equal weights (the weights q(x | x0_j) are the point)":
                diff.mean(1) / math.sqrt(1 - a),
            "forget the square root on ᾱ (x_t = sqrt(ᾱ)·x0 + …)": (w_nosqrt * diff_nosqrt).sum(1) / math.sqrt(1 - a),
            "forget to divide by sqrt(1 − ᾱ)": (w * diff).sum(1),
        })
        exact = -math.sqrt(1 - a) * gm.noised(a).score(x[1:])
        worst = max(worst, float((ref[1:] - exact).norm(dim=1).max()))
    return (f"matches the weighted estimate of E[ε | x_t] (far-out points included); it agrees with "
            f"−sqrt(1 − ᾱ)·∇log p_t(x) to within {worst:.3f}: the score–noise equivalence.")


# ----------------------------------------------------------------------------------------- (g) Tweedie's formula
def _tweedie_mistakes(x: torch.Tensor, s: torch.Tensor, a: float) -> dict[str, torch.Tensor]:
    """The known mistakes in E[x0 | x_t] = (x_t + (1 − ᾱ)·∇log p_t(x_t))/sqrt(ᾱ), each with the value it gives."""
    x, s = x.double(), s.double()
    return {
        "divide by ᾱ instead of sqrt(ᾱ) (x_t = sqrt(ᾱ)·x0 + …: undo the square root)": (x + (1 - a) * s) / a,
        "scale the score by sqrt(1 − ᾱ) instead of 1 − ᾱ (sqrt(1 − ᾱ) is the noise's standard deviation; the "
        "score term needs its variance)": (x + math.sqrt(1 - a) * s) / math.sqrt(a),
        "subtract the score term (the score points towards the data: move along it, x_t + (1 − ᾱ)·score)":
            (x - (1 - a) * s) / math.sqrt(a),
        "forget to divide by sqrt(ᾱ) (that is E[sqrt(ᾱ)·x0 | x_t], still at the scale of x_t)": x + (1 - a) * s,
        "multiply by sqrt(ᾱ) instead of dividing": math.sqrt(a) * (x + (1 - a) * s),
        "use ᾱ where the formula has 1 − ᾱ": (x + a * s) / math.sqrt(a),
        "leave out the score term (x_t/sqrt(ᾱ) undoes the scaling but not the noise)": x / math.sqrt(a),
        "return the noise −sqrt(1 − ᾱ)·score instead of the denoised x0": -math.sqrt(1 - a) * s,
    }


TWEEDIE_DTYPE_HINT = ("Return the dtype of x_t: with ᾱ a Python float (math.sqrt(alpha_bar)) the arithmetic stays "
                      "in x_t's dtype; a float64 tensor made from ᾱ would turn float32 data into float64.")


def _tweedie_cases(ctx: CheckContext) -> list[tuple[GaussianMixture, float, torch.dtype]]:
    """Mixtures, noise levels and dtypes: ᾱ stays away from 0.5, where ᾱ and 1 − ᾱ would coincide."""
    return [(toy2d.mixture("8gaussians"), 0.3, torch.float32),
            (random_mixture(ctx), uniform(ctx, 0.6, 0.9), torch.float32),
            (random_mixture(ctx), uniform(ctx, 0.05, 0.2), torch.float64)]


@register_check("tweedie_posterior_mean", chapter=CHAPTER, references=(GaussianMixture.posterior_mean,),
                hint="Tweedie: E[x0 | x_t] = (x_t + (1 − ᾱ)·score_fn(x_t))/sqrt(ᾱ) — add the score scaled by the "
                     "noise *variance* 1 − ᾱ (that denoises x_t), then undo the scaling sqrt(ᾱ) of x0. ᾱ is a float: "
                     "use math.sqrt.")
def check_tweedie_posterior_mean(fn: Fn, ctx: CheckContext) -> str:
    r"""Tweedie: :math:`\mathbb E[x_0\mid x_t] = (x_t + (1-\bar\alpha)\nabla\log p_t(x_t))/\sqrt{\bar\alpha}` against the
    exact posterior mean of Gaussian mixtures (`GaussianMixture.posterior_mean`, computed without the score)."""
    worst = 0.0
    for gm, ab, dtype in _tweedie_cases(ctx):
        noisy = gm.noised(ab)
        x = noisy.sample(randint(ctx, 6, 12), torch.Generator().manual_seed(randint(ctx, 0, 10**6))).to(dtype)

        def score_fn(z: torch.Tensor, noisy: GaussianMixture = noisy) -> torch.Tensor:
            return noisy.score(z).to(z.dtype)

        what = f"tweedie_posterior_mean(score_fn, x_t, alpha_bar={ab:.3f})"
        inputs = f"x_t {describe(x)} from a mixture of {len(gm.means)} Gaussians (std {gm.std:.3g}) noised to ᾱ = {ab:.3f}"
        out = ctx.call(fn, score_fn, x, ab, what=what)
        ref = gm.posterior_mean(x, ab)  # exact, from responsibilities and per-component posteriors: no score
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)
        expect_tensor(out, ref.to(dtype), what=what, inputs=inputs, dtype_hint=TWEEDIE_DTYPE_HINT, **tol,
                      mistakes=_tweedie_mistakes(x, score_fn(x), ab))
        eps = (x.double() - math.sqrt(ab) * out.detach().double()) / math.sqrt(1 - ab)
        worst = max(worst, float((eps + math.sqrt(1 - ab) * noisy.score(x)).abs().max()))
    return ("matches the exact posterior mean Σ_k p(k | x_t)·E[x0 | x_t, k] of three mixtures (ᾱ from 0.05 to 0.9, "
            "float32 and float64); the noise it implies, (x_t − sqrt(ᾱ)·x̂0)/sqrt(1 − ᾱ), equals "
            f"−sqrt(1 − ᾱ)·∇log p_t(x_t) to {worst:.1e}: predicting the noise is predicting the score.")
