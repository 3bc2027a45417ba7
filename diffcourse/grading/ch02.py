r"""Checks for chapter 2, *DDPM: the reverse process* (``solutions/02_ddpm.ipynb``).

=================  =====================================================  ==========================================
exercise           learner's signature                                    reference
=================  =====================================================  ==========================================
ddpm_loss          ``ddpm_loss(model, x0, t, eps, alpha_bars, target)``   `diffcourse.objectives.diffusion_loss`
q_posterior        ``q_posterior(x0, xt, t, betas)`` → (mean, var)        `NoiseSchedule.q_posterior`
ddpm_step          ``ddpm_step(eps_fn, schedule, x, t, noise, variance)`` `diffcourse.samplers.ddpm.ddpm_step`
train_and_sample   ``train_and_sample(dataset, n, generator)``            sliced Wasserstein vs the data floor
=================  =====================================================  ==========================================

The networks the learner's code calls are `diffcourse.grading.fixtures.FakeEps`: cheap,
deterministic functions of ``x`` *and* ``t``, so that calling one on the wrong input or at the
wrong timestep shows.
Timesteps are 0-based, as in `diffcourse.schedules`.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..data import toy2d
from ..metrics import sw_floor_ratio
from ..objectives import diffusion_loss
from ..samplers.ddpm import ddpm_step as ddpm_step_reference
from ..schedules import NoiseSchedule
from .compare import describe, expect_close, expect_like, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import CAST_HINT, FakeEps, FakeNet, Fn, batch, bcast, randint, random_schedule

CHAPTER = 2


def _tensor_pair(out: Any, what: str) -> tuple[Any, Any]:
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    if out is None:
        raise Mismatch(f"{what} returned None.", hint="Did you forget the `return mean, var` statement?")
    raise Mismatch(f"{what} returned a {type(out).__name__}; expected a pair (mean, var).",
                   hint="End with `return mean, var` (a tuple of two tensors).")


# ----------------------------------------------------------------------------------------- (a) the loss
def _expect_scalar_loss(out: Any, what: str) -> torch.Tensor:
    """Require a learner's loss to be a one-element tensor still attached to the network's graph."""
    if not isinstance(out, torch.Tensor):
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            raise Mismatch(f"{what} returned a Python {type(out).__name__}, not a tensor.",
                           hint="Return the loss tensor itself (no .item()): training calls loss.backward().")
        expect_like(out, torch.zeros(()), what=what)
    if out.numel() != 1:
        raise Mismatch(f"{what} returned a tensor of shape {tuple(out.shape)}; expected a single number "
                       "(a 0-dimensional tensor).", hint="Average the squared errors over everything: .mean().")
    if out.grad_fn is None:
        raise Mismatch(f"{what} returned a tensor with no gradient: it is cut off from the network "
                       "(.item(), .detach(), torch.no_grad() or a conversion to a new tensor).",
                       hint="Compute the loss with torch operations on the model's output and return it as is.")
    return out


def _ddpm_loss_mistakes(net: FakeNet, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                        alpha_bars: torch.Tensor, target: str) -> dict[str, float]:
    """The known mistakes in the DDPM loss, each with the loss it gives."""
    a = bcast(alpha_bars[t], x0)
    x, e = x0.double(), eps.double()
    xt = (a.sqrt() * x + (1 - a).sqrt() * e).float()
    goals = {"eps": e, "x0": x, "v": a.sqrt() * e - (1 - a).sqrt() * x}
    goal = goals[target]

    def mse(pred: torch.Tensor, goal: torch.Tensor = goal) -> float:
        return float(((pred.double() - goal) ** 2).mean())

    pred = net(xt, t)
    mistakes = {
        "form x_t without the square roots (ᾱ_t·x0 + (1 − ᾱ_t)·ε)": mse(net((a * x + (1 - a) * e).float(), t)),
        "feed x0 to the network instead of the noisy x_t": mse(net(x0, t)),
        "call the network at t − 1 (t is 0-based: the network is asked about x_t at step t)": mse(net(xt, t - 1)),
        "sum the squared errors instead of averaging them": float(((pred.double() - goal) ** 2).sum()),
        "take the absolute error instead of the squared error": float((pred.double() - goal).abs().mean()),
    }
    mistakes |= {f"regress the {name!r} target instead of {target!r}": mse(pred, other)
                 for name, other in goals.items() if name != target}
    if target == "v":
        mistakes["flip the sign of v (it is sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x0)"] = mse(pred, -goal)
        mistakes["swap ε and x0 in v"] = mse(pred, a.sqrt() * x - (1 - a).sqrt() * e)
    return mistakes


@register_check("ddpm_loss", chapter=CHAPTER,
                hint="x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε (ᾱ_t = alpha_bars[t] reshaped to (B, 1, …)); "
                     "pred = model(x_t, t); the goal is ε, x0 or v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x0; "
                     "return ((pred − goal)**2).mean() as a tensor.")
def check_ddpm_loss(fn: Fn, ctx: CheckContext) -> str:
    cases = [("eps", (2,)), ("eps", (1, 4, 4)), ("x0", (2,)), ("v", (3,))]
    for target, tail in cases:
        sched = random_schedule(ctx)
        net = FakeNet(FakeEps(ctx))
        x0 = batch(ctx, tail, B=randint(ctx, 16, 32))
        # Draw t and ε exactly as the reference does, then let it draw them again from the same state.
        g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=ctx.gen)))
        state = g.get_state()
        t = torch.randint(0, sched.T, (x0.shape[0],), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        g.set_state(state)
        expected = float(diffusion_loss(net, sched, x0, g, target=target).detach())
        what = f"ddpm_loss(model, x0, t, eps, alpha_bars, target={target!r})"
        inputs = (f"x0 {describe(x0)}, t = {t.tolist()[:6]}…, eps like x0, alpha_bars of the {sched.name} schedule "
                  f"with T = {sched.T}")
        out = ctx.call(fn, net, x0.clone(), t.clone(), eps.clone(), sched.alpha_bars.clone(), target, what=what)
        out = _expect_scalar_loss(out, what)
        with torch.no_grad():
            mistakes = _ddpm_loss_mistakes(net, x0, t, eps, sched.alpha_bars, target)
        expect_close(out.detach(), expected, what=what, inputs=inputs, rtol=1e-4, atol=1e-6, mistakes=mistakes)
    return "the loss matches diffusion_loss for the ε, x0 and v targets, on 2-D points and 4×4 images, with a gradient."


# ----------------------------------------------------------------------------------------- (b) the posterior
_WRAP = ("take ᾱ_{t−1} as alpha_bars[t − 1], which at t = 0 wraps round to the last entry "
        "(ᾱ_{−1} must be 1)")


def _posterior_tables(sched: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """β_t, α_t, ᾱ_t, ᾱ_{t−1} and alpha_bars[t − 1] (wrapping round at t = 0), float64, shaped to broadcast."""
    b = bcast(sched.betas[t], x0)
    abw = bcast(sched.alpha_bars[t - 1], x0)  # t − 1 = −1 wraps round to the last entry
    return b, 1 - b, bcast(sched.alpha_bars[t], x0), bcast(sched.alpha_bars_prev[t], x0), abw


def _posterior_mean_mistakes(sched: NoiseSchedule, x0: torch.Tensor, xt: torch.Tensor,
                             t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes in the posterior mean c0·x0 + ct·x_t, each with the mean it gives."""
    b, al, ab, abp, abw = _posterior_tables(sched, x0, t)
    x, y = x0.double(), xt.double()

    def mean_of(c0: torch.Tensor, ct: torch.Tensor) -> torch.Tensor:
        return c0 * x + ct * y

    c0, ct = abp.sqrt() * b / (1 - ab), al.sqrt() * (1 - abp) / (1 - ab)
    # the same formula with the tables cast to the data's dtype first: 1 − ᾱ_t cancels in float32 at small t
    lo = [bcast(v[t], x0).to(x0.dtype) for v in (sched.betas, sched.alphas, sched.alpha_bars, sched.alpha_bars_prev)]
    lo_mean = (lo[3].sqrt() * lo[0] / (1 - lo[2]) * x0 + lo[1].sqrt() * (1 - lo[3]) / (1 - lo[2]) * xt).double()
    return {
        "swap the two coefficients (the x0 one on x_t and the x_t one on x0)": mean_of(ct, c0),
        "forget the square root on ᾱ_{t−1} in the coefficient of x0": mean_of(abp * b / (1 - ab), ct),
        "forget the square root on α_t in the coefficient of x_t": mean_of(c0, al * (1 - abp) / (1 - ab)),
        "use ᾱ_t where the formula has ᾱ_{t−1} (off by one)":
            mean_of(ab.sqrt() * b / (1 - ab), al.sqrt() * (1 - ab) / (1 - ab)),
        _WRAP: mean_of(abw.sqrt() * b / (1 - ab), al.sqrt() * (1 - abw) / (1 - ab)),
        "compute the coefficients in float32: at small t, 1 − ᾱ_t ≈ β_t is a difference of two "
        "numbers close to 1 and loses digits — compute them in float64, then cast to x0.dtype": lo_mean,
    }


def _posterior_var_mistakes(sched: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes in the posterior variance (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t, each with the variance it gives."""
    b, _, ab, abp, abw = _posterior_tables(sched, x0, t)
    return {
        "return β_t: that is the other choice of the sampler's variance, not the posterior's": b,
        "use ᾱ_t where the formula has ᾱ_{t−1} (off by one)": (1 - ab) / (1 - ab) * b,
        "turn the ratio upside down ((1 − ᾱ_t)/(1 − ᾱ_{t−1})·β_t)": (1 - ab) / (1 - abp) * b,
        _WRAP: (1 - abw) / (1 - ab) * b,
        "return the standard deviation instead of the variance": ((1 - abp) / (1 - ab) * b).sqrt(),
    }


@register_check("q_posterior", chapter=CHAPTER,
                hint="ᾱ = cumprod(1 − β); ᾱ_{t−1} is 1 at t = 0 (concatenate a 1 in front, don't index t − 1); "
                     "mean = sqrt(ᾱ_{t−1})·β_t/(1 − ᾱ_t)·x0 + sqrt(α_t)·(1 − ᾱ_{t−1})/(1 − ᾱ_t)·x_t, "
                     "var = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t.")
def check_q_posterior(fn: Fn, ctx: CheckContext) -> str:
    for tail, dtype in [((2,), torch.float32), ((1, 4, 4), torch.float32), ((3,), torch.float64)]:
        sched = random_schedule(ctx)
        x0 = batch(ctx, tail, dtype)
        xt = batch(ctx, tail, dtype, B=x0.shape[0])
        t = torch.randint(0, sched.T, (x0.shape[0],), generator=ctx.gen)
        t[0], t[1] = 0, sched.T - 1
        what = "q_posterior(x0, xt, t, betas)"
        inputs = (f"x0 {describe(x0)}, xt like x0, t = {t.tolist()}, betas of the {sched.name} schedule "
                  f"with T = {sched.T} (float64)")
        out = ctx.call(fn, x0.clone(), xt.clone(), t.clone(), sched.betas.clone(), what=what)
        mean, var = _tensor_pair(out, what)
        ref_mean, ref_var = sched.q_posterior(x0, xt, t)
        tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-12)
        expect_tensor(mean, ref_mean, what=f"the mean from {what}", inputs=inputs, dtype_hint=CAST_HINT, **tol,
                      mistakes=_posterior_mean_mistakes(sched, x0, xt, t))
        if not isinstance(var, torch.Tensor):
            expect_like(var, ref_var, what=f"the variance from {what}")
        if var.shape != ref_var.shape and var.numel() == ref_var.numel() and var.ndim == 1:
            var = var.reshape(ref_var.shape)  # (B,) is fine too
        expect_tensor(var, ref_var, what=f"the variance from {what}", inputs=inputs, check_dtype=False, **tol,
                      mistakes=_posterior_var_mistakes(sched, x0, t))
    return "mean and variance match NoiseSchedule.q_posterior, t = 0 and T−1 included, float32 and float64."


# ----------------------------------------------------------------------------------------- (c) one ancestral step
def _ddpm_step_mistakes(eps_fn: FakeEps, sched: NoiseSchedule, x: torch.Tensor, z: torch.Tensor, t: int,
                        variance: str) -> dict[str, torch.Tensor]:
    """The known mistakes in x_{t−1} = (x − β_t/sqrt(1 − ᾱ_t)·ε̂)/sqrt(α_t) + σ·noise (no noise at t = 0),
    each with the x_{t−1} it gives."""
    b, al, ab = (float(v[t]) for v in (sched.betas, sched.alphas, sched.alpha_bars))
    pv = float(sched.posterior_variance[t])
    var, other = (b, pv) if variance == "beta" else (pv, b)
    xd, zd = x.double(), z.double()
    e, e_prev = eps_fn(x, t).double(), eps_fn(x, t - 1).double()
    c = b / math.sqrt(1 - ab)  # the coefficient of ε̂

    def noisy(mean: torch.Tensor, v: float = var) -> torch.Tensor:
        return mean + (math.sqrt(v) * zd if t > 0 else 0)

    mean = (xd - c * e) / math.sqrt(al)
    mistakes = {} if t > 0 else {
        "add noise at t = 0 too (the last step returns the mean: no noise)": mean + math.sqrt(pv if pv > 0 else b) * zd}
    return mistakes | {
        "forget to divide by sqrt(α_t)": noisy(xd - c * e),
        "use β_t/(1 − ᾱ_t) as the coefficient of ε̂ (no square root)": noisy((xd - b / (1 - ab) * e) / math.sqrt(al)),
        "divide by α_t instead of sqrt(α_t)": noisy((xd - c * e) / al),
        "add ε̂ instead of subtracting it": noisy((xd + c * e) / math.sqrt(al)),
        "scale the noise by the variance σ² instead of the standard deviation σ": mean + (var * zd if t > 0 else 0),
        "use the other variance (variance='beta' is β_t, 'beta_tilde' is β̃_t)": noisy(mean, other),
        "subtract the noise instead of adding it": mean - (math.sqrt(var) * zd if t > 0 else 0),
        "call eps_fn at t − 1 (x is x_t: ask the network about step t)": noisy((xd - c * e_prev) / math.sqrt(al)),
    }


@register_check("ddpm_step", chapter=CHAPTER,
                hint="ε̂ = eps_fn(x, t); mean = (x − β_t/sqrt(1 − ᾱ_t)·ε̂)/sqrt(α_t); at t = 0 return the mean; "
                     "otherwise add sqrt(σ²)·noise with σ² = β_t ('beta') or β̃_t = schedule.posterior_variance[t] "
                     "('beta_tilde').")
def check_ddpm_step(fn: Fn, ctx: CheckContext) -> str:
    n = 0
    for tail in [(2,), (1, 4, 4)]:
        sched = random_schedule(ctx)
        eps_fn = FakeEps(ctx)
        for t in (0, sched.T - 1, randint(ctx, 1, sched.T - 2)):
            for variance in ("beta", "beta_tilde"):
                x = batch(ctx, tail)
                z = torch.randn(x.shape, generator=ctx.gen)
                what = f"ddpm_step(eps_fn, schedule, x, {t}, noise, variance={variance!r})"
                inputs = f"x {describe(x)}, t = {t}, the {sched.name} schedule with T = {sched.T}"
                out = ctx.call(fn, eps_fn, sched, x.clone(), t, z.clone(), variance, what=what)
                ref = ddpm_step_reference(eps_fn, sched, x, t, z, variance)
                expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-5, dtype_hint=CAST_HINT,
                              mistakes=_ddpm_step_mistakes(eps_fn, sched, x, z, t, variance))
                n += 1
    return f"{n} steps (t = 0, T−1 and in between; variance 'beta' and 'beta_tilde'; 2-D points and 4×4 images) match."


# ----------------------------------------------------------------------------------------- (d) the experiment
EXPERIMENT_DATASET = "moons"
EXPERIMENT_N = 2000
EXPERIMENT_RATIO = 1.5
EXPERIMENT_REFS = 4


def sw_ratio(samples: torch.Tensor, dataset: str, n: int, seed: int, refs: int = EXPERIMENT_REFS
             ) -> tuple[float, float, float]:
    """``(ratio, distance, floor)``: the mean sliced Wasserstein distance of ``samples`` to ``refs`` fresh draws of
    ``dataset``, the mean distance between two fresh draws (the floor), and their ratio."""
    draw = [toy2d.sample(dataset, n, generator=torch.Generator().manual_seed(seed * 1000 + j)) for j in range(2 * refs)]
    return sw_floor_ratio([samples] * refs, draw[0::2], draw[1::2])


@register_check("train_and_sample", chapter=CHAPTER, timeout=180.0,
                hint="Train with train_toy_ddpm(dataset, steps=…, lr=…, progress=False) (try about 1000 steps, "
                     "lr 2e-3 – 3e-3), then return ddpm_sample(eps_fn(result.ema_model, schedule), schedule, "
                     "(n, 2), generator=generator).")
def check_train_and_sample(fn: Fn, ctx: CheckContext) -> str:
    dataset, n = EXPERIMENT_DATASET, EXPERIMENT_N
    what = f"train_and_sample({dataset!r}, {n}, generator)"
    out = ctx.call(fn, dataset, n, torch.Generator().manual_seed(ctx.seed), what=what)
    expect_like(out, torch.zeros(n, 2), what=what, inputs=f"{n} samples of {dataset!r}")
    ratio, dist, floor = sw_ratio(out.detach().float(), dataset, n, ctx.seed)
    if ratio > EXPERIMENT_RATIO:
        x = out.detach().double()
        note = ""
        m, c = x.mean(0), torch.cov(x.T)
        if m.abs().max() < 0.15 and (c - torch.eye(2, dtype=torch.float64)).abs().max() < 0.15:
            note = ("\n   Your samples look like pure noise N(0, I): did you return x_T, sample with an untrained "
                    "model, or skip the reverse loop?")
        elif float(c.trace()) > 2 * float(torch.cov(toy2d.sample(dataset, n).double().T).trace()):
            note = "\n   Your samples are far more spread out than the data: train longer, or check the sampler."
        raise Mismatch(f"not yet good enough: the sliced Wasserstein distance of your {n} samples to fresh data is "
                       f"{dist:.4f}, {ratio:.2f}× the data-vs-data floor {floor:.4f}; the goal is ≤ "
                       f"{EXPERIMENT_RATIO}× the floor.{note}",
                       hint="Train for more steps (1000–2000) or tune lr (2e-3 – 3e-3); sample from the EMA model "
                            "(result.ema_model) with the schedule train_toy_ddpm returned.")
    return (f"your samples are {ratio:.2f}× the data-vs-data floor from fresh data (sliced Wasserstein {dist:.4f} vs "
            f"{floor:.4f}; goal ≤ {EXPERIMENT_RATIO}×).")
