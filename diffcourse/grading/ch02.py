r"""Checks for chapter 2, *DDPM: the reverse process* (``solutions/02_ddpm.ipynb``).

=================  =======================================================  =========================================
exercise           learner's signature                                      reference
=================  =======================================================  =========================================
ddpm_loss          ``ddpm_loss(model, x0, t, eps, alpha_bars, target)``     `diffcourse.objectives.diffusion_loss`
q_posterior        ``q_posterior(x0, xt, t, betas)`` → (mean, var)          `NoiseSchedule.q_posterior`
ddpm_step          ``ddpm_step(eps_fn, schedule, x, t, noise, variance)``   `diffcourse.samplers.ddpm.ddpm_step`
train_and_sample   ``train_and_sample(dataset, n, generator)``              sliced Wasserstein vs the data floor
compare_schedules  ``compare_schedules(dataset, x_T, data, other, steps,   `schedule_ratios` (DDIM from x_T with the
                   spacing)`` → (table, models)                             returned models), `schedule_fit_losses`
mnist_ddpm         ``(train_step, sample_digits)``: ``train_step(model,     stage 1: exact, on a `_StepNet` and a
                   ema_model, optimizer, x0, t, eps, alpha_bars,            `FakeEps`; stage 2: `train_on_budget`,
                   ema_decay)`` → loss; ``sample_digits(eps_fn, schedule,   then `mnist_verdict` (the classifier's
                   x_T, generator)`` → x0                                   confident share) ≥ `MNIST_SHARE`, no
                                                                            digit over `MNIST_MAX_CLASS`
=================  =======================================================  =========================================

The networks the learner's code calls are `diffcourse.grading.fixtures.FakeEps`: cheap,
deterministic functions of ``x`` *and* ``t``, so that calling one on the wrong input or at the
wrong timestep shows.
Timesteps are 0-based, as in `diffcourse.schedules`. ``mnist_ddpm``'s threshold comes from
``benchmarks/mnist_training_exercise.py`` (the solution against broken versions).
"""
from __future__ import annotations

import inspect
import math
import time
from typing import Any

import torch

from ..data import toy2d
from ..metrics import confident_share, sliced_wasserstein, sw_floor_ratio
from ..objectives import diffusion_loss, eps_fn
from ..pretrained import load_pretrained
from ..recipes.mnist_budget import (BUDGET, budget_schedule, reference_sample, reference_train_step, respaced_eps_fn,
                                    train_on_budget)
from ..samplers.ddim import SPACINGS, ddim_sample
from ..samplers.ddpm import VARIANCES, ddpm_sample
from ..samplers.ddpm import ddpm_step as ddpm_step_reference
from ..schedules import NoiseSchedule, make_schedule
from .compare import as_float, as_int, as_pair, describe, expect_close, expect_like, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import (CAST_HINT, FakeEps, FakeNet, Fn, batch, bcast, expect_uses_generator, randint,
                       random_schedule, uniform)
from .progress import machine_threads

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


@register_check("ddpm_loss", chapter=CHAPTER, references=(diffusion_loss,),
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


@register_check("q_posterior", chapter=CHAPTER, references=(NoiseSchedule.q_posterior, NoiseSchedule.__post_init__),
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
        _expect_q_posterior(fn, ctx, sched, x0, xt, t)
    # A fixed case, whatever the seed: float32 data on DDPM's linear schedule at the first steps, where
    # 1 − ᾱ_t ≈ β_t is tiny and coefficients computed in float32 lose their digits.
    g = torch.Generator().manual_seed(ctx.seed)
    x0, xt = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    _expect_q_posterior(fn, ctx, make_schedule("linear", 1000), x0, xt, torch.tensor([0, 1, 2, 3, 10, 999]))
    return ("mean and variance match NoiseSchedule.q_posterior, t = 0 and T−1 included, float32 and float64 "
            "(also float32 at the first steps of the linear schedule).")


def _expect_q_posterior(fn: Fn, ctx: CheckContext, sched: NoiseSchedule, x0: torch.Tensor, xt: torch.Tensor,
                        t: torch.Tensor) -> None:
    """Compare the learner's (mean, var) of q(x_{t−1} | x_t, x0) with `NoiseSchedule.q_posterior` on one batch."""
    what = "q_posterior(x0, xt, t, betas)"
    inputs = (f"x0 {describe(x0)}, xt like x0, t = {t.tolist()}, betas of the {sched.name} schedule "
              f"with T = {sched.T} (float64)")
    out = ctx.call(fn, x0, xt, t, sched.betas, what=what)
    mean, var = _tensor_pair(out, what)
    ref_mean, ref_var = sched.q_posterior(x0, xt, t)
    tol = dict(rtol=1e-4, atol=1e-5) if x0.dtype == torch.float32 else dict(rtol=1e-9, atol=1e-12)
    expect_tensor(mean, ref_mean, what=f"the mean from {what}", inputs=inputs, dtype_hint=CAST_HINT, **tol,
                  mistakes=_posterior_mean_mistakes(sched, x0, xt, t))
    _expect_per_example(var, ref_var, x0, f"the variance from {what}", inputs)
    expect_tensor(var, ref_var.expand(var.shape), what=f"the variance from {what}", inputs=inputs, check_dtype=False,
                  **tol, mistakes={k: v.expand(var.shape) for k, v in _posterior_var_mistakes(sched, x0, t).items()})


def _expect_per_example(out: Any, ref: torch.Tensor, x: torch.Tensor, what: str, inputs: str) -> None:
    """A per-example quantity must broadcast against ``x`` example by example: shape (B, 1, …, 1), or x's own shape.
    A (B,) vector lines up with x's *last* axis instead (a wrong answer when that axis happens to have B entries)."""
    if isinstance(out, torch.Tensor) and out.shape in (ref.shape, x.shape):
        return
    if isinstance(out, torch.Tensor) and out.shape == (x.shape[0],) and x.ndim > 1:
        raise Mismatch(f"{what} has shape {tuple(out.shape)}: one number per example, but shaped to broadcast against "
                       f"x's *last* axis. Multiplied with noise of shape {tuple(x.shape)} it "
                       + ("fails" if x.shape[-1] != x.shape[0] else "scales the wrong entries")
                       + f"; shape it {tuple(ref.shape)}.\n   inputs: {inputs}",
                       hint="Index the table with t, then .reshape(-1, *[1] * (x0.ndim - 1)): (B, 1, …, 1) broadcasts "
                            "over each example whatever x0's shape.")
    expect_like(out, ref, what=what, inputs=inputs)


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


@register_check("ddpm_step", chapter=CHAPTER, references=(ddpm_step_reference,),
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

    def run(g: torch.Generator) -> torch.Tensor:
        out = expect_like(ctx.call(fn, dataset, n, g, what=what), torch.zeros(n, 2), what=what,
                          inputs=f"{n} samples of {dataset!r}")
        return out.detach()

    out = expect_uses_generator(run, torch.equal, what=what, seed=ctx.seed,
                                hint="Draw every random number from the generator you are given: ddpm_sample(..., "
                                     "generator=generator); train_toy_ddpm is made repeatable by its own seed "
                                     "argument.")
    ratio, dist, floor = sw_ratio(out.float(), dataset, n, ctx.seed)
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
            f"{floor:.4f}; goal ≤ {EXPERIMENT_RATIO}×), and a second call with the same seed repeats them exactly.")


# ----------------------------------------------------------------------------------------- (e) comparing schedules
SCHEDULE_NAMES = ("linear", "cosine")
SCHEDULE_STEPS = (10, 50, 100)
SCHEDULE_SPACING = "leading"  # fixed, so that only the schedule differs (trailing meets cosine's clipped last step)
SCHEDULE_DATASET = "moons"
SCHEDULE_N = 2000
SCHEDULE_REFS = 4
SCHEDULE_TRAINED_RATIO = 3.0  # at the most DDIM steps; an untrained network is > 10× the floor
SCHEDULE_FIT_MARGIN = 1.03  # each model's L_simple on its own schedule beats the other model's by at least 3 %


def schedule_ratios(eps_fn: Fn, schedule: NoiseSchedule, x_T: torch.Tensor, data: list[torch.Tensor],
                    other: list[torch.Tensor], steps: tuple[int, ...] = SCHEDULE_STEPS, spacing: str | None = None,
                    floor: float | None = None) -> dict[int, tuple[float, float, float, torch.Tensor]]:
    r"""For every step count S: DDIM (η = 0, ``ddim_sample``'s default spacing unless ``spacing`` is given) from
    ``x_T``, and its ``(ratio, distance, floor, samples)``, with
    :math:`\text{ratio} = \tfrac1K\sum_k SW(x, \text{data}_k) \,/\, \tfrac1K\sum_k SW(\text{other}_k, \text{data}_k)`
    — the numbers of ``sw_floor_ratio([x] * K, data, other)``, with the floor (if not given) computed once."""
    if floor is None:
        floor = sum(sliced_wasserstein(o, d) for o, d in zip(other, data)) / len(data)
    spacing_kw = {} if spacing is None else {"spacing": spacing}
    out = {}
    with torch.no_grad():
        for S in steps:
            x = ddim_sample(eps_fn, schedule, x_T.clone(), steps=S, eta=0.0, **spacing_kw).float()
            dist = sum(sliced_wasserstein(x, d) for d in data) / len(data)
            out[S] = (dist / floor, dist, floor, x)
    return out


def _read_table(table: Any, what: str) -> dict[str, dict[int, float]]:
    """The learner's table as {schedule name: {DDIM steps: ratio}} (ints and floats of any kind accepted)."""
    if not isinstance(table, dict) or set(table) != set(SCHEDULE_NAMES):
        keys = sorted(map(str, table)) if isinstance(table, dict) else type(table).__name__
        raise Mismatch(f"the table from {what} should be a dict with the keys 'linear' and 'cosine'; got {keys}.",
                       hint="table = {'linear': {10: …, 50: …, 100: …}, 'cosine': {…}}; return table, models.")
    read = {}
    for name, row in table.items():
        if not isinstance(row, dict):
            raise Mismatch(f"table[{name!r}] is a {type(row).__name__}; expected a dict {{DDIM steps: ratio}}.")
        try:
            row = {as_int(S, "key", meaning="a number of DDIM steps"): v for S, v in row.items()}
        except Mismatch:
            raise Mismatch(f"table[{name!r}] has the keys {list(row)!r:.80}; the keys are the numbers of DDIM steps "
                           "themselves (ints: 10, 50, 100).", hint="table[name][S] = ratio, with S an int.") from None
        if set(row) != set(SCHEDULE_STEPS):
            raise Mismatch(f"table[{name!r}] has the step counts {sorted(row)}; expected {list(SCHEDULE_STEPS)}.")
        read[name] = {S: as_float(v, f"table[{name!r}][{S}]") for S, v in row.items()}
    return read


def _read_models(models: Any, what: str) -> dict[str, tuple[Fn, NoiseSchedule]]:
    """The learner's models as {name: (eps_fn, schedule)}, each schedule the named one of diffcourse, both with the
    same T, and the linear one reaching noise (ᾱ_{T−1} < 1e-3)."""
    if not isinstance(models, dict) or set(models) != set(SCHEDULE_NAMES):
        raise Mismatch(f"the models from {what} should be a dict with the keys 'linear' and 'cosine'.",
                       hint="models = {'linear': (eps_fn, schedule), 'cosine': (eps_fn, schedule)}.")
    read = {}
    for name, entry in models.items():
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and callable(entry[0])
                and isinstance(getattr(entry[1], "betas", None), torch.Tensor)):
            raise Mismatch(f"models[{name!r}] should be a pair (eps_fn, schedule): a function eps_fn(x, t) and the "
                           "NoiseSchedule it was trained with.",
                           hint="models[name] = (eps_fn(result.ema_model, schedule), schedule).")
        sched = NoiseSchedule(entry[1].betas.detach().double().cpu(), name=name)
        which = next((n for n in SCHEDULE_NAMES
                      if torch.allclose(sched.betas, make_schedule(n, sched.T).betas, rtol=1e-6, atol=0)), None)
        if which != name:
            found = f"the {which} schedule" if which else "neither the linear nor the cosine schedule"
            raise Mismatch(f"models[{name!r}] comes with {found} (T = {sched.T}).",
                           hint=f"Build it with make_schedule({name!r}, T=1000) and train that model with it.")
        read[name] = (entry[0], sched)
    T = {name: s.T for name, (_, s) in read.items()}
    if len(set(T.values())) > 1:
        raise Mismatch(f"the two schedules have different lengths ({T}): compare them at the same T, so that only "
                       "the schedule differs.", hint="Use make_schedule(name, T=1000) for both.")
    end = float(read["linear"][1].alpha_bars[-1])
    if end >= 1e-3:
        raise Mismatch(f"with T = {T['linear']} the linear schedule ends at ᾱ = {end:.3g}: x_T is not noise, so "
                       "sampling from N(0, I) starts where training never was (chapter 1: it needs 683 steps).",
                       hint="Use T = 1000 for both schedules.")
    return read


def _expect_distinct(models: dict[str, tuple[Fn, NoiseSchedule]], ctx: CheckContext) -> None:
    """The two noise predictors must be two networks: identical outputs mean one model was used twice."""
    g = torch.Generator().manual_seed(ctx.seed)
    T = models["linear"][1].T
    x, t = torch.randn(256, 2, generator=g), torch.randint(0, T, (256,), generator=g)
    with torch.no_grad():
        a, b = (ctx.call(models[n][0], x, t, what=f"models[{n!r}][0](x, t)") for n in SCHEDULE_NAMES)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b):
        raise Mismatch("your two noise predictors give identical outputs: one network stands for both schedules.",
                       hint="Train one model per schedule: train_toy_ddpm(dataset, schedule=make_schedule(name, T=1000),"
                            " …). Without schedule= it trains with its default schedule, and with the same seed "
                            "the two runs give the very same network.")


def schedule_fit_losses(models: dict[str, tuple[Fn, NoiseSchedule]], seed: int, n: int = 4096
                        ) -> dict[tuple[str, str], float]:
    r"""``{(model, schedule): L}``: each model's :math:`L_\text{simple} = \mathbb E\|\varepsilon - \hat\varepsilon(x_t, t)\|^2`
    on the noise levels of each schedule, on one fixed batch of data, timesteps and noise."""
    g = torch.Generator().manual_seed(seed)
    x0 = toy2d.sample(SCHEDULE_DATASET, n, generator=g)
    T = models["linear"][1].T
    t, eps = torch.randint(0, T, (n,), generator=g), torch.randn(n, 2, generator=g)
    losses = {}
    with torch.no_grad():
        for m, (eps_fn, _) in models.items():
            for s, (_, sched) in models.items():
                pred = eps_fn(sched.q_sample(x0, t, eps), t)
                losses[m, s] = float(((pred.double() - eps.double()) ** 2).mean())
    return losses


def _fit_problem(losses: dict[tuple[str, str], float], name: str) -> str | None:
    """What is wrong if model ``name`` does not fit its own schedule's noise levels clearly better than the other
    model does (a network learns the noise levels its schedule visits); ``None`` if it does."""
    other = next(n for n in SCHEDULE_NAMES if n != name)
    own, foreign = losses[name, name], losses[other, name]
    if foreign > SCHEDULE_FIT_MARGIN * own:
        return None
    return (f"your {name!r} model does not fit the {name} schedule better than your {other!r} model: on its noise "
            f"levels L_simple is {own:.4f} for the {name!r} model and {foreign:.4f} for the {other!r} one. Was each "
            "model trained with its own schedule?")


FIT_HINT = ("Pass schedule=make_schedule(name, T=1000) to train_toy_ddpm, and sample with that same schedule: a "
            "network only learns the noise levels its schedule visits.")


def _expect_own_schedule(losses: dict[tuple[str, str], float]) -> None:
    """Each model must fit its own schedule's noise levels clearly better than the other model does."""
    for name in SCHEDULE_NAMES:
        problem = _fit_problem(losses, name)
        if problem:
            raise Mismatch(problem, hint=FIT_HINT)


def _guarded(ctx: CheckContext, eps_fn: Fn, name: str) -> Fn:
    """The learner's ε-function, called through ``ctx.call`` and required to return a tensor shaped like x."""
    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = ctx.call(eps_fn, x, t, what=f"models[{name!r}][0](x, t)")
        return expect_like(out, x, what=f"models[{name!r}][0](x, t)").to(x.dtype)
    return f


def _table_mistake(name: str, S: int, got: float, ref: dict[str, dict], data: list[torch.Tensor],
                   other: list[torch.Tensor], models: dict[str, tuple[Fn, NoiseSchedule]], x_T: torch.Tensor
                   ) -> str | None:
    """Name the mistake behind a wrong table entry, if it is a known one."""
    ratio, dist, floor, x = ref[name][S]
    twin = next(n for n in SCHEDULE_NAMES if n != name)

    def near(v: float) -> bool:
        return math.isclose(got, v, rel_tol=1e-3, abs_tol=1e-6)

    candidates = [
        (lambda: dist, "report the distance itself: the table holds distance / floor"),
        (lambda: 1 / ratio, "divide the floor by the distance: the ratio is distance / floor (1 is the floor)"),
        (lambda: ref[twin][S][0], f"swap the rows: that is the {twin} model's number"),
        *[(lambda S2=S2: ref[name][S2][0], f"put the {S2}-step number under {S}")
          for S2 in SCHEDULE_STEPS if S2 != S],
        (lambda: sw_floor_ratio([x], data[:1], other[:1])[0],
         "compare with data[0] only: average the distance and the floor over all K pairs"),
    ]
    default = inspect.signature(ddim_sample).parameters["spacing"].default
    candidates += [(lambda sp=sp: schedule_ratios(*models[name], x_T, data, other, (S,), sp, floor)[S][0],
                    f"sample with spacing={sp!r}" + (" (ddim_sample's default)" if sp == default else "")
                    + f": pass the spacing you are given, spacing={SCHEDULE_SPACING!r}")
                   for sp in SPACINGS if sp != SCHEDULE_SPACING]
    return next((text for value, text in candidates if near(value())), None)


def _expect_table(table: dict[str, dict[int, float]], ref: dict[str, dict], data: list[torch.Tensor],
                  other: list[torch.Tensor], models: dict[str, tuple[Fn, NoiseSchedule]], x_T: torch.Tensor) -> None:
    """Every number of the learner's table must be the ratio recomputed from the returned model and x_T."""
    for name in SCHEDULE_NAMES:
        for S in SCHEDULE_STEPS:
            got, expected = table[name][S], ref[name][S][0]
            if math.isclose(got, expected, rel_tol=1e-3, abs_tol=1e-6):
                continue
            message = (f"table[{name!r}][{S}] is {got:.4g}, but DDIM with {S} steps ({SCHEDULE_SPACING} spacing) from "
                       f"the given x_T, with the {name} model you returned, is {expected:.4g}× the floor.")
            mistake = _table_mistake(name, S, got, ref, data, other, models, x_T)
            message += (f"\n   Your number is exactly what you get if you {mistake}." if mistake else
                        "\n   Is every run started from the given x_T, deterministically (η = 0)? With fresh noise "
                        "a number cannot be checked.")
            raise Mismatch(message, hint="For each S: x = ddim_sample(eps_fn, schedule, x_T.clone(), steps=S, "
                                         "spacing=spacing); table[name][S] = sw_floor_ratio([x] * len(data), data, "
                                         "other)[0].")


def _expect_trained(ref: dict[str, dict], losses: dict[tuple[str, str], float]) -> None:
    """Both models must be trained: within `SCHEDULE_TRAINED_RATIO` × the floor at the most DDIM steps. When a model
    also fits the other schedule better, the message says so: sampling it with its own schedule goes wrong."""
    S = max(SCHEDULE_STEPS)
    for name in SCHEDULE_NAMES:
        ratio = ref[name][S][0]
        if ratio <= SCHEDULE_TRAINED_RATIO:
            continue
        problem = _fit_problem(losses, name)
        raise Mismatch(f"your {name} model's samples are far from the data: even with {S} DDIM steps they are "
                       f"{ratio:.2f}× the data-vs-data floor (it should be ≤ {SCHEDULE_TRAINED_RATIO:g}×)."
                       + (f"\n   And {problem}" if problem else " Is it trained enough?"),
                       hint=FIT_HINT if problem else "Train each model for about 1000 steps (lr 3e-3, batch size "
                                                     "256) and sample from result.ema_model.")


def schedule_inputs(seed: int) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``(x_T, data, other)`` for the schedule comparison: one start noise and two lists of K independent data sets."""
    g = torch.Generator().manual_seed(seed)
    draws = [toy2d.sample(SCHEDULE_DATASET, SCHEDULE_N, generator=g) for _ in range(2 * SCHEDULE_REFS)]
    return torch.randn(SCHEDULE_N, 2, generator=g), draws[0::2], draws[1::2]


@register_check("compare_schedules", chapter=CHAPTER, references=(schedule_ratios,), timeout=300.0,
                hint="For name in ('linear', 'cosine'): schedule = make_schedule(name, T=1000); result, _ = "
                     "train_toy_ddpm(dataset, schedule=schedule, steps=1000, batch_size=256, progress=False); "
                     "f = eps_fn(result.ema_model, schedule); for S in steps: x = ddim_sample(f, schedule, "
                     "x_T.clone(), steps=S, spacing=spacing) and table[name][S] = sw_floor_ratio([x] * len(data), "
                     "data, other)[0]; models[name] = (f, schedule). Return table, models.")
def check_compare_schedules(fn: Fn, ctx: CheckContext) -> str:
    r"""Every ``table[name][S]`` must be :math:`\overline{SW}(\text{DDIM}_S(x_T), \text{data}) /
    \overline{SW}(\text{other}, \text{data})` recomputed with the returned model; both models trained (≤ 3× the floor at
    100 steps), each on its own schedule (lower :math:`L_\text{simple}` on its noise levels than the other model)."""
    x_T, data, other = schedule_inputs(ctx.seed)
    what = f"compare_schedules({SCHEDULE_DATASET!r}, x_T, data, other, {SCHEDULE_STEPS}, {SCHEDULE_SPACING!r})"
    out = ctx.call(fn, SCHEDULE_DATASET, x_T, data, other, SCHEDULE_STEPS, SCHEDULE_SPACING, what=what)
    table, models = as_pair(out, what, ("table", "models"))
    table = _read_table(table, what)
    models = {name: (_guarded(ctx, f, name), sched) for name, (f, sched) in _read_models(models, what).items()}
    _expect_distinct(models, ctx)
    floor = sum(sliced_wasserstein(o, d) for o, d in zip(other, data)) / len(data)
    ref = {name: schedule_ratios(f, sched, x_T, data, other, spacing=SCHEDULE_SPACING, floor=floor)
           for name, (f, sched) in models.items()}
    _expect_table(table, ref, data, other, models, x_T)
    losses = schedule_fit_losses(models, ctx.seed)
    _expect_trained(ref, losses)
    _expect_own_schedule(losses)
    rows = "; ".join(f"{name}: " + " / ".join(f"{ref[name][S][0]:.2f}" for S in SCHEDULE_STEPS)
                     for name in SCHEDULE_NAMES)
    fit = ", ".join(f"{n} {losses[n, n]:.3f} vs {losses[next(o for o in SCHEDULE_NAMES if o != n), n]:.3f}"
                    for n in SCHEDULE_NAMES)
    return (f"every number recomputes from your models and x_T — {rows} (× the data-vs-data floor at "
            f"{' / '.join(map(str, SCHEDULE_STEPS))} DDIM steps); each model fits its own schedule best "
            f"(L_simple on it: {fit}).")


# ----------------------------------------------------------------------------------------- (f) DDPM on MNIST
MNIST_N = 256            # digits the learner's sampler draws …
MNIST_SAMPLE_STEPS = 250  # … on the chain respaced to 250 of its 1000 steps (the cost of 64 digits at 1000 steps)
MNIST_SHARE = 0.4        # pass: at least this share of them read as confident digits (calibrated, see below)
MNIST_MAX_CLASS = 0.3    # … and no digit more than this share of those (noise and smudges all read as one digit)
MNIST_CONFIDENCE = 0.9   # `confident_share`'s threshold on max_y p(y | x)
_LAST_MNIST_RUN: dict[str, Any] = {}


def _unpack_pair(fn: Any) -> tuple[Fn, Fn]:
    """The learner's ``(train_step, sample_digits)``."""
    if isinstance(fn, (tuple, list)) and len(fn) == 2 and all(callable(f) for f in fn):
        return fn[0], fn[1]
    raise Mismatch("expected the pair of your two functions, (train_step, sample_digits).",
                   hint='check("mnist_ddpm", (train_step, sample_digits)) — both names, no parentheses after them.',
                   show_seed=False)


class _StepNet(torch.nn.Module):
    """A `FakeEps` with two trainable numbers, ŷ = s·fake(x, t) + b, so that a training step has gradients to show."""

    def __init__(self, fake: FakeEps, scale: float, shift: float) -> None:
        super().__init__()
        self.fake = fake
        self.scale = torch.nn.Parameter(torch.tensor(scale))
        self.shift = torch.nn.Parameter(torch.tensor(shift))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scale * self.fake(x, t) + self.shift


def _params(net: torch.nn.Module) -> torch.Tensor:
    return torch.stack([p.detach().double() for p in net.parameters()])


def _train_step_case(ctx: CheckContext, tail: tuple[int, ...], sched: NoiseSchedule) -> dict[str, Any]:
    """One fixed training step's inputs: a `_StepNet`, its EMA copy (elsewhere, as after some training), an SGD
    optimiser, a stale gradient left in ``.grad`` (as after the previous step), x0, t (0 and T−1 included), ε, d."""
    fake = FakeEps(ctx)
    net = _StepNet(fake, uniform(ctx, 0.5, 1.5), uniform(ctx, -0.2, 0.2))
    ema = _StepNet(fake, uniform(ctx, 0.5, 1.5), uniform(ctx, -0.2, 0.2)).requires_grad_(False)
    for p in net.parameters():
        p.grad = torch.full((), uniform(ctx, 0.5, 2.0))  # the previous step's gradient: zero_grad must clear it
    x0 = batch(ctx, tail, B=randint(ctx, 6, 10))
    t = torch.randint(0, sched.T, (x0.shape[0],), generator=ctx.gen)
    t[0], t[1] = 0, sched.T - 1
    return dict(net=net, ema=ema, fake=fake, x0=x0, t=t, eps=torch.randn(x0.shape, generator=ctx.gen),
                sched=sched, decay=uniform(ctx, 0.8, 0.95), lr=0.1)


def _loss_and_grad(case: dict[str, Any], params: torch.Tensor, **wrong: Any) -> tuple[float, torch.Tensor]:
    """The loss of the case's network at ``params`` and its gradient; ``wrong`` switches in a known mistake:
    ``goal`` ('x0' or 'v'), ``shift`` (call the network at t + shift), ``no_time``, ``no_sqrt``, ``clean``, ``sum``,
    ``abs``."""
    x0, t, eps, a = case["x0"].double(), case["t"], case["eps"].double(), bcast(case["sched"].alpha_bars[case["t"]],
                                                                                 case["x0"])
    leaf = params.clone().requires_grad_(True)
    s, b = leaf
    xt = a * x0 + (1 - a) * eps if wrong.get("no_sqrt") else a.sqrt() * x0 + (1 - a).sqrt() * eps
    xt = x0 if wrong.get("clean") else xt
    tt = torch.zeros_like(t) if wrong.get("no_time") else t + wrong.get("shift", 0)
    goal = {"eps": eps, "x0": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[wrong.get("goal", "eps")]
    err = s * case["fake"](xt.float(), tt).double() + b - goal
    loss = err.abs().mean() if wrong.get("abs") else (err ** 2).sum() if wrong.get("sum") else (err ** 2).mean()
    loss.backward()
    return float(loss.detach()), leaf.grad


_LOSS_MISTAKES = {
    "regress x0 (the clean image) instead of the noise ε: DDPM's network predicts ε": dict(goal="x0"),
    "regress v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x0 instead of the noise ε": dict(goal="v"),
    "call the network with t = 0 for every example: it must be told each example's noise level t": dict(no_time=True),
    "call the network at t − 1 (t is 0-based: the network is asked about x_t at step t)": dict(shift=-1),
    "call the network at t + 1 (t is 0-based: the network is asked about x_t at step t)": dict(shift=1),
    "form x_t without the square roots (ᾱ_t·x0 + (1 − ᾱ_t)·ε)": dict(no_sqrt=True),
    "feed x0 to the network instead of the noisy x_t": dict(clean=True),
    "sum the squared errors instead of averaging them": dict(sum=True),
    "take the absolute error instead of the squared error": dict(abs=True),
}


def _expect_train_step(fn: Fn, ctx: CheckContext, case: dict[str, Any]) -> None:
    """Stage 1 of the MNIST check on one case: the returned loss, the weights after the optimiser step, the EMA."""
    net, ema, lr, d = case["net"], case["ema"], case["lr"], case["decay"]
    p0, e0, stale = _params(net), _params(ema), torch.stack([p.grad.double() for p in net.parameters()])
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    what = "train_step(model, ema_model, optimizer, x0, t, eps, alpha_bars, ema_decay)"
    inputs = (f"x0 {describe(case['x0'])}, t = {case['t'].tolist()}, the {case['sched'].name} schedule with "
              f"T = {case['sched'].T}, ema_decay = {d:.4f}, optimizer = SGD(lr={lr})")
    out = ctx.call(fn, net, ema, opt, case["x0"], case["t"], case["eps"], case["sched"].alpha_bars, d, what=what)
    loss, grad = _loss_and_grad(case, p0)
    mistakes = {text: _loss_and_grad(case, p0, **wrong)[0] for text, wrong in _LOSS_MISTAKES.items()}
    expect_close(as_float(out, what), loss, what=f"the loss {what} returned", inputs=inputs, rtol=1e-4, atol=1e-6,
                 mistakes=mistakes)
    p1 = _params(net)
    step = {"never call optimizer.step(), or call it before loss.backward() (the weights did not change)": p0,
            "forget optimizer.zero_grad(): the previous step's gradient is still in .grad and adds to this one":
                p0 - lr * (grad + stale),
            "call optimizer.step() before loss.backward() (the step used the previous step's gradient)": p0 - lr * stale}
    _expect_numbers(p1, p0 - lr * grad, "the network's weights after your step", inputs, step)
    if any(p.requires_grad or p.grad_fn is not None for p in ema.parameters()):
        raise Mismatch("after your step ema_model's weights carry a gradient history: each step would chain onto the "
                       "last one, and memory and time grow with every step.",
                       hint="Update the EMA under `with torch.no_grad():` (p_ema.mul_(d).add_((1 − d)·p), or "
                            "p_ema.lerp_(p, 1 − d)).")
    ema_mistakes = {"never update ema_model": e0,
                    "swap d and 1 − d: the EMA keeps d of its old value, θ_EMA ← d·θ_EMA + (1 − d)·θ":
                        (1 - d) * e0 + d * p1,
                    "update the EMA before optimizer.step(): average in the weights after the step": d * e0 + (1 - d) * p0,
                    "copy the weights into ema_model instead of averaging them in": p1,
                    "forget to scale the EMA's old value by d": e0 + (1 - d) * p1}
    _expect_numbers(_params(ema), d * e0 + (1 - d) * p1, "ema_model's weights after your step", inputs, ema_mistakes)


def _expect_numbers(got: torch.Tensor, expected: torch.Tensor, what: str, inputs: str,
                    mistakes: dict[str, torch.Tensor]) -> None:
    if torch.allclose(got, expected, rtol=1e-4, atol=1e-6):
        return
    message = (f"{what} are {[round(v, 6) for v in got.tolist()]}, expected {[round(v, 6) for v in expected.tolist()]}."
               f"\n   inputs: {inputs}")
    mistake = next((text for text, wrong in mistakes.items() if torch.allclose(got, wrong, rtol=1e-4, atol=1e-6)), None)
    raise Mismatch(message + (f"\n   That is exactly what you get if you {mistake}." if mistake else ""))


def _wrong_loop(eps_fn: Fn, sched: NoiseSchedule, x_T: torch.Tensor, seed: int, *, ts: list[int] | None = None,
                noise_at_0: bool = False, noise: str = "fresh") -> torch.Tensor:
    """Ancestral sampling with a known mistake: another order of timesteps ``ts``, noise at t = 0 too,
    ``noise='none'`` (no noise) or ``'once'`` (one z for every step)."""
    g = torch.Generator().manual_seed(seed)
    x, z_once = x_T.clone(), None
    for t in (ts if ts is not None else range(sched.T - 1, -1, -1)):
        z = torch.randn(x.shape, generator=g) if t > 0 or noise_at_0 else torch.zeros_like(x)
        if noise == "once":
            z_once = z if z_once is None else z_once
            z = z_once
        x = ddpm_step_reference(eps_fn, sched, x, t, torch.zeros_like(z) if noise == "none" else z)
        if t == 0 and noise_at_0:
            x = x + float(sched.betas[0]) ** 0.5 * z
    return x


def _sampler_mistakes(eps_fn: Fn, sched: NoiseSchedule, x_T: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    T = sched.T
    return {
        "run the loop forwards, t = 0, 1, …, T−1: sampling goes backwards, from t = T−1 down to 0":
            _wrong_loop(eps_fn, sched, x_T, seed, ts=list(range(T))),
        "stop before t = 0: the last step (t = 0) is needed too, and returns its mean": 
            _wrong_loop(eps_fn, sched, x_T, seed, ts=list(range(T - 1, 0, -1))),
        "start at t = T−2, skipping the first step t = T−1": _wrong_loop(eps_fn, sched, x_T, seed,
                                                                         ts=list(range(T - 2, -1, -1))),
        "add noise at t = 0 too (the last step returns the mean)": _wrong_loop(eps_fn, sched, x_T, seed, noise_at_0=True),
        "leave out the noise σ_t·z: ancestral sampling adds fresh noise at every step but the last":
            _wrong_loop(eps_fn, sched, x_T, seed, noise="none"),
        "draw z once and reuse it at every step: draw a fresh z at every step":
            _wrong_loop(eps_fn, sched, x_T, seed, noise="once"),
        "return x_T unchanged": x_T,
    }


def _expect_sampler(fn: Fn, ctx: CheckContext) -> None:
    """Stage 1 of the MNIST check: the learner's loop against `reference_sample` (either variance) on a `FakeEps`."""
    sched = make_schedule(["linear", "cosine"][randint(ctx, 0, 1)], randint(ctx, 20, 60))
    eps_fn, x_T, seed = FakeEps(ctx), batch(ctx, (1, 4, 4)), randint(ctx, 0, 10**6)
    what = f"sample_digits(eps_fn, schedule, x_T, generator)"
    inputs = f"x_T {describe(x_T)}, the {sched.name} schedule with T = {sched.T}, generator seeded with {seed}"
    out = expect_uses_generator(
        lambda g: expect_like(ctx.call(fn, eps_fn, sched, x_T, g, what=what), x_T, what=what, inputs=inputs),
        torch.equal, what=what, seed=seed,
        hint="Draw every z from the generator you are given: torch.randn(x.shape, generator=generator).")
    refs = [reference_sample(eps_fn, sched, x_T, torch.Generator().manual_seed(seed), v) for v in VARIANCES]
    if any(torch.allclose(out.double(), r.double(), rtol=1e-4, atol=1e-5) for r in refs):
        return
    expect_tensor(out, refs[0], what=what, inputs=inputs, rtol=1e-4, atol=1e-5, check_dtype=False,
                  mistakes=_sampler_mistakes(eps_fn, sched, x_T, seed))


def mnist_verdict(samples: torch.Tensor, classifier: torch.nn.Module) -> dict[str, Any]:
    """What the course classifier reads in ``samples`` (clamped to [−1, 1]): the confident share (max_y p(y | x) ≥
    `MNIST_CONFIDENCE`), how many confident digits of each kind, the share of the most frequent one among them, and
    whether that passes (≥ `MNIST_SHARE` confident, no digit over `MNIST_MAX_CLASS` of the confident ones: the
    classifier reads noise and smudges confidently as one digit, usually an 8)."""
    x = samples.detach().float().clamp(-1, 1)
    with torch.no_grad():
        probs = torch.softmax(classifier(x).float(), 1)
    confident = probs.max(1).values >= MNIST_CONFIDENCE
    counts = torch.bincount(probs.argmax(1)[confident], minlength=10)
    share = float(confident.float().mean())
    top = float(counts.max()) / max(int(confident.sum()), 1)
    return dict(confident_share=share, top_digit=int(counts.argmax()), top_share=top, counts=counts.tolist(),
                passed=share >= MNIST_SHARE and top <= MNIST_MAX_CLASS)


def last_mnist_run() -> dict[str, Any]:
    """The last MNIST check's samples, losses, seconds and verdict (empty before the first run), to look at."""
    return dict(_LAST_MNIST_RUN)


def _counted(fn: Fn, ctx: CheckContext) -> Fn:
    """``fn``, reporting one more of stage 2's steps to ``ctx.progress`` after each call (the check's time limit then
    tells a slow machine from a step that never returns: `diffcourse.grading.progress`)."""
    total, unit = BUDGET["steps"] + MNIST_SAMPLE_STEPS, f"steps ({BUDGET['steps']} training, then " \
                                                        f"{MNIST_SAMPLE_STEPS} sampling)"

    def counted(*args: Any) -> Any:
        out = fn(*args)
        ctx.progress.advance(ctx.progress.done + 1, total, unit)
        return out
    return counted


def _train_and_draw(step_fn: Fn, sample_fn: Fn, ctx: CheckContext) -> dict[str, Any]:
    """Stage 2: `BUDGET`'s steps of the learner's training step, then `MNIST_N` digits from their sampler, run on the
    schedule respaced to `MNIST_SAMPLE_STEPS` steps (any correct loop runs on any `NoiseSchedule`), with as many threads
    as there are free cores."""
    start = time.perf_counter()
    with machine_threads(ctx.progress) as threads:
        run = train_on_budget(_counted(lambda *a: as_float(ctx.call(step_fn, *a, what="train_step(...)"),
                                                           "train_step(...)"), ctx))
        if len(run.losses) < BUDGET["steps"]:
            raise Mismatch(f"the training diverged: the loss your train_step returned was {run.losses[-1]} at step "
                           f"{len(run.losses)}.", hint="Check the loss against Algorithm 1 and the EMA formula.")
        g = torch.Generator().manual_seed(ctx.seed)
        x_T = torch.randn(MNIST_N, 1, 28, 28, generator=g)
        schedule, f = respaced_eps_fn(eps_fn(run.ema_model, budget_schedule()), budget_schedule(), MNIST_SAMPLE_STEPS)
        with torch.no_grad():
            out = ctx.call(sample_fn, _counted(f, ctx), schedule, x_T, g,
                           what="sample_digits(eps_fn, schedule, x_T, generator)")
        out = expect_like(out, x_T, what="sample_digits(eps_fn, schedule, x_T, generator)")
        verdict = mnist_verdict(out, load_pretrained("mnist-classifier"))
    _LAST_MNIST_RUN.update(verdict, samples=out.detach().float().clamp(-1, 1), losses=run.losses,
                           seconds=time.perf_counter() - start, train_seconds=run.seconds, threads=threads)
    return _LAST_MNIST_RUN


@register_check("mnist_ddpm", chapter=CHAPTER, timeout=900.0,
                references=(reference_train_step, reference_sample, ddpm_sample),
                hint="train_step: x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε; loss = mean((model(x_t, t) − ε)²); "
                     "optimizer.zero_grad(); loss.backward(); optimizer.step(); then under torch.no_grad() every "
                     "EMA weight ← d·(EMA weight) + (1 − d)·(weight); return the loss. sample_digits: x = x_T; for t "
                     "from T−1 down to 0: z = torch.randn(x.shape, generator=generator) if t > 0 else None; "
                     "x = ddpm_step(eps_fn, schedule, x, t, z); return x.")
def check_mnist_ddpm(fn: Any, ctx: CheckContext) -> str:
    r"""Stage 1 (a second): the learner's training step on a `_StepNet` (loss, SGD step, EMA) and their sampling
    loop on a `FakeEps`, exactly, naming known mistakes. Stage 2 (the budget, about 3 minutes on a 2-core CPU):
    `train_on_budget` with their step, `MNIST_N` digits from their loop on the chain respaced to
    `MNIST_SAMPLE_STEPS` steps, read by the course classifier."""
    step_fn, sample_fn = _unpack_pair(fn)
    _expect_train_step(step_fn, ctx, _train_step_case(ctx, (1, 5, 5), random_schedule(ctx)))
    _expect_train_step(step_fn, ctx, _train_step_case(ctx, (1, 5, 5), make_schedule("linear", 1000)))
    _expect_sampler(sample_fn, ctx)
    r = _train_and_draw(step_fn, sample_fn, ctx)
    losses = r["losses"]
    end = sum(losses[-100:]) / len(losses[-100:])
    counts = ", ".join(f"{d}: {c}" for d, c in enumerate(r["counts"]))
    report = (f"{BUDGET['steps']} training steps (final loss {end:.3f}) and {MNIST_N} digits ({MNIST_SAMPLE_STEPS} "
              f"sampling steps) took {r['seconds']:.0f} s with {r['threads']} thread(s); "
              f"the classifier reads {r['confident_share']:.0%} of them as confident digits (goal ≥ "
              f"{MNIST_SHARE:.0%}), the most frequent digit {r['top_digit']} makes {r['top_share']:.0%} of those (at "
              f"most {MNIST_MAX_CLASS:.0%}); confident digits read: {counts}.")
    if not r["passed"]:
        odd = r["top_share"] > MNIST_MAX_CLASS
        raise Mismatch("your pieces match the reference on fixed inputs, but the digits they make are not good enough:"
                       f"\n   {report}" + ("\n   The classifier reads noise and smudges as one digit: most of your "
                                           "samples are not digits." if odd else ""),
                       hint="Sample from ema_model (the check does), and compare your loop with ddpm_sample.")
    return f"training step and sampling loop match the reference exactly; {report}"
