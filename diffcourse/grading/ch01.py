r"""Checks for chapter 1, *Fundamentals: the forward process* (``solutions/01_fundamentals.ipynb``).

The learner's functions and the references they are compared with:

==================  =======================================================  ===================================
exercise            learner's signature                                      reference
==================  =======================================================  ===================================
linear_betas        ``linear_betas(T, beta_start, beta_end)``                `diffcourse.schedules.linear_betas`
cosine_betas        ``cosine_betas(T, s, max_beta)``                         `diffcourse.schedules.cosine_betas`
q_sample            ``q_sample(x0, t, eps, alpha_bars)``                     `NoiseSchedule.q_sample`
q_step              ``q_step(x_prev, t, eps, betas)``                        `NoiseSchedule.q_step`
run_chain           ``run_chain(x0, betas, generator)``                      the closed form's mean and variance
derive_closed_form  ``derive_closed_form(betas)`` → (mean_coefs, variances)  sqrt(ᾱ_t) and 1 − ᾱ_t
snr                 ``snr(alpha_bars)``                                      `NoiseSchedule.snr`
steps_to_noise      ``steps_to_noise(name, threshold, T_max)``               `steps_to_noise_reference`
==================  =======================================================  ===================================

Timesteps are 0-based throughout, as in `diffcourse.schedules`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..schedules import NoiseSchedule, cosine_betas, linear_betas, make_schedule
from .compare import as_int, as_pair, describe, expect_like, expect_statistic, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import Fn, batch, bcast, expect_uses_generator, randint, random_schedule, uniform

CHAPTER = 1

FLOAT64_HINT = ("Build the schedule in float64 (e.g. `torch.linspace(..., dtype=torch.float64)`): ᾱ_t is a "
                "product of up to a thousand numbers close to 1, and float32 loses its small values.")
# chapter 1's own wording (the learner's data is x0 here); chapters 2–4 use `fixtures.CAST_HINT`
COMPOSE_FLOAT64_HINT = ("Keep m and v in float64 (start from torch.tensor(1.0, dtype=torch.float64), or Python floats, "
                        "and build the result with dtype=torch.float64): after a thousand steps float32 has lost "
                        "the small values at the end.")
CAST_HINT = ("Cast the coefficients to the data's dtype (`.to(x0.dtype)`): a float64 schedule times float32 data "
             "gives float64, which a float32 network will refuse.")


# ----------------------------------------------------------------------------------------- (a) schedules
@register_check("linear_betas", chapter=CHAPTER, references=(linear_betas, make_schedule),
                hint="β_t runs evenly from beta_start (t = 0) to beta_end (t = T−1), both included: "
                     "torch.linspace(beta_start, beta_end, T, dtype=torch.float64).")
def check_linear_betas(fn: Fn, ctx: CheckContext) -> str:
    cases = [(1000, 1e-4, 0.02), (randint(ctx, 2, 300), uniform(ctx, 1e-5, 1e-3), uniform(ctx, 0.01, 0.05)),
             (randint(ctx, 2, 50), uniform(ctx, 1e-4, 1e-2), uniform(ctx, 0.1, 0.3))]
    for T, b0, b1 in cases:
        what = f"linear_betas({T}, {b0:.4g}, {b1:.4g})"
        out = ctx.call(fn, T, b0, b1, what=what)
        expect_tensor(out, linear_betas(T, b0, b1), what=what, rtol=1e-6, atol=1e-12, dtype_hint=FLOAT64_HINT,
                      mistakes={
                          "swap beta_start and beta_end": torch.linspace(b1, b0, T, dtype=torch.float64),
                          "space the points by (beta_end − beta_start)/T, so the last one falls short of beta_end":
                              b0 + (b1 - b0) * torch.arange(T, dtype=torch.float64) / T,
                      })
    return f"{len(cases)} schedules (T = {', '.join(str(c[0]) for c in cases)}) match the reference."


def _cosine_mistakes(T: int, s: float, max_beta: float) -> dict[str, torch.Tensor]:
    """The known mistakes in the cosine schedule, each with the β_t it gives: f(τ) = cos²(((τ/T + s)/(1 + s))·π/2),
    ᾱ(τ) = f(τ)/f(0), β_t = min(1 − ᾱ(t+1)/ᾱ(t), max_beta)."""
    tau = torch.arange(T + 1, dtype=torch.float64) / T

    def clipped_betas(f: torch.Tensor) -> torch.Tensor:
        ab = f / f[0]
        return (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)

    f = torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    return {
        "forget to clip β_t at max_beta (the last step would be β ≈ 1)": 1 - ab[1:] / ab[:-1],
        "forget to square the cosine": clipped_betas(torch.cos((tau + s) / (1 + s) * math.pi / 2)),
        "divide ᾱ(t) by ᾱ(t+1) instead of ᾱ(t+1) by ᾱ(t)": (1 - ab[:-1] / ab[1:]).clamp(max=max_beta),
        "leave out the offset s": clipped_betas(torch.cos(tau * math.pi / 2) ** 2),
        "leave out the division by (1 + s)": clipped_betas(torch.cos((tau + s) * math.pi / 2) ** 2),
    }


@register_check("cosine_betas", chapter=CHAPTER, references=(cosine_betas, make_schedule),
                hint="f(τ) = cos²(((τ/T + s)/(1 + s))·π/2) for τ = 0 … T; ᾱ(τ) = f(τ)/f(0); "
                     "β_t = min(1 − ᾱ(t+1)/ᾱ(t), max_beta) for t = 0 … T−1.")
def check_cosine_betas(fn: Fn, ctx: CheckContext) -> str:
    cases = [(1000, 0.008, 0.999), (randint(ctx, 5, 200), 0.008, 0.999),
             (randint(ctx, 5, 200), uniform(ctx, 0.001, 0.02), uniform(ctx, 0.5, 0.99))]
    for T, s, max_beta in cases:
        what = f"cosine_betas({T}, s={s:.4g}, max_beta={max_beta:.4g})"
        out = ctx.call(fn, T, s, max_beta, what=what)
        expect_tensor(out, cosine_betas(T, s, max_beta), what=what, rtol=1e-6, atol=1e-10, dtype_hint=FLOAT64_HINT,
                      mistakes=_cosine_mistakes(T, s, max_beta))
    return f"{len(cases)} schedules (T = {', '.join(str(c[0]) for c in cases)}, varied s and max_beta) match."


# ----------------------------------------------------------------------------------------- (b) q_sample
def _timesteps(ctx: CheckContext, B: int, T: int) -> torch.Tensor:
    t = torch.randint(0, T, (B,), generator=ctx.gen)
    t[0], t[1] = 0, T - 1  # the ends are where off-by-one mistakes show
    return t


@register_check("q_sample", chapter=CHAPTER, references=(NoiseSchedule.q_sample,),
                hint="x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε with ᾱ_t = alpha_bars[t]; reshape alpha_bars[t] "
                     "(shape (B,)) to (B, 1, …, 1) so it broadcasts over each example, whatever x0's shape.")
def check_q_sample(fn: Fn, ctx: CheckContext) -> str:
    shapes = [(2,), (1, 4, 4), (3,)]
    dtypes = [torch.float32, torch.float32, torch.float64]
    for tail, dtype in zip(shapes, dtypes):
        sched = random_schedule(ctx)
        x0 = batch(ctx, tail, dtype)
        eps = torch.randn(x0.shape, generator=ctx.gen, dtype=dtype)
        t = _timesteps(ctx, x0.shape[0], sched.T)
        ab = sched.alpha_bars
        what = "q_sample(x0, t, eps, alpha_bars)"
        inputs = (f"x0 {describe(x0)}, t = {t.tolist()}, eps like x0, alpha_bars of the {sched.name} schedule "
                  f"with T = {sched.T} (float64)")
        out = ctx.call(fn, x0.clone(), t.clone(), eps.clone(), ab.clone(), what=what)
        a, x, e = bcast(ab[t], x0), x0.double(), eps.double()
        a_prev = bcast(ab[t - 1], x0)
        expect_tensor(out, sched.q_sample(x0, t, eps), what=what, inputs=inputs, dtype_hint=CAST_HINT,
                      rtol=1e-4 if dtype == torch.float32 else 1e-9, atol=1e-5 if dtype == torch.float32 else 1e-12,
                      mistakes={
                          "forget the square roots (ᾱ_t·x0 + (1 − ᾱ_t)·ε)": a * x + (1 - a) * e,
                          "swap x0 and ε (sqrt(ᾱ_t)·ε + sqrt(1 − ᾱ_t)·x0)": a.sqrt() * e + (1 - a).sqrt() * x,
                          "subtract the noise instead of adding it": a.sqrt() * x - (1 - a).sqrt() * e,
                          "index ᾱ with t − 1 (t is 0-based: alpha_bars[t] belongs to x_t)":
                              a_prev.sqrt() * x + (1 - a_prev).sqrt() * e,
                          "use sqrt(ᾱ_t) on the noise as well": a.sqrt() * x + a.sqrt() * e,
                      })
    return "batches of shape (B, 2), (B, 1, 4, 4) and (B, 3), float32 and float64, t from 0 to T−1, all match."


# ----------------------------------------------------------------------------------------- (c) the chain
@register_check("q_step", chapter=CHAPTER, references=(NoiseSchedule.q_step,),
                hint="x_t = sqrt(α_t)·x_{t−1} + sqrt(β_t)·ε with β_t = betas[t] and α_t = 1 − β_t; "
                     "β_t is a variance, so the noise is scaled by its square root.")
def check_q_step(fn: Fn, ctx: CheckContext) -> str:
    for tail in [(2,), (1, 4, 4)]:
        sched = random_schedule(ctx)
        for t in (0, sched.T - 1, randint(ctx, 1, sched.T - 2)):
            x = batch(ctx, tail)
            eps = torch.randn(x.shape, generator=ctx.gen)
            what = f"q_step(x_prev, {t}, eps, betas)"
            inputs = f"x_prev {describe(x)}, t = {t}, betas of the {sched.name} schedule with T = {sched.T}"
            out = ctx.call(fn, x.clone(), t, eps.clone(), sched.betas.clone(), what=what)
            b = float(sched.betas[t])
            b_prev = float(sched.betas[t - 1])
            xd, ed = x.double(), eps.double()
            expect_tensor(out, sched.q_step(x, t, eps), what=what, inputs=inputs, rtol=1e-4, atol=1e-5,
                          dtype_hint=CAST_HINT.replace("x0", "x_prev"),
                          mistakes={
                              "forget the square root on β_t (noise scaled by β_t)": math.sqrt(1 - b) * xd + b * ed,
                              "forget the square root on α_t (x_{t−1} scaled by α_t)": (1 - b) * xd + math.sqrt(b) * ed,
                              "do not scale x_{t−1} at all (the variance then grows at every step)":
                                  xd + math.sqrt(b) * ed,
                              "swap α_t and β_t": math.sqrt(b) * xd + math.sqrt(1 - b) * ed,
                              "use betas[t − 1] (t is 0-based: betas[t] is the step that makes x_t)":
                                  math.sqrt(1 - b_prev) * xd + math.sqrt(b_prev) * ed,
                          })
    return "steps at t = 0, T−1 and in between, on batches of shape (B, 2) and (B, 1, 4, 4), all match."


def _chain_moments(c: torch.Tensor, betas: torch.Tensor,
                   scale: Callable[[float], tuple[float, float]]) -> tuple[torch.Tensor, float]:
    """Exact mean and variance after iterating x ← a·x + b·ε with (a, b) = scale(β_t), starting from x = c."""
    mean, var = c.double().clone(), 0.0
    for beta in betas.tolist():
        a, b = scale(beta)
        mean, var = a * mean, a * a * var + b * b
    return mean, var


def _chain_mistakes(c: torch.Tensor, betas: torch.Tensor) -> dict[str, tuple[torch.Tensor, float]]:
    """The known mistakes in a chain of q_steps, each with the mean and variance of x_T it gives."""
    def right(b: float) -> tuple[float, float]:
        return math.sqrt(1 - b), math.sqrt(b)

    return {
        "forgot the square root on α_t": _chain_moments(c, betas, lambda b: (1 - b, math.sqrt(b))),
        "forgot the square root on β_t": _chain_moments(c, betas, lambda b: (math.sqrt(1 - b), b)),
        "did not scale x_{t−1} by sqrt(α_t)": _chain_moments(c, betas, lambda b: (1.0, math.sqrt(b))),
        "skipped the last step (T−1 steps instead of T)": _chain_moments(c, betas[:-1], right),
        "skipped the first step (started at t = 1)": _chain_moments(c, betas[1:], right),
    }


GENERATOR_HINT = "Draw the noise with the generator you are given: torch.randn(x.shape, generator=generator)."


def _small_chain(fn: Fn, ctx: CheckContext, small: torch.Tensor, what: str) -> Callable[..., torch.Tensor]:
    """``chain(betas, generator)``: the learner's x_T for the small batch ``small`` (finite, shaped like it)."""
    def chain(b: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        out = ctx.call(fn, small.clone(), b.clone(), g, what=what)
        return expect_like(out, small, what=what, inputs=f"x0 {describe(small)}, T = {len(b)} steps")
    return chain


def _expect_repeatable_chain(fn: Fn, ctx: CheckContext, small: torch.Tensor, betas: torch.Tensor, what: str) -> None:
    """Shape, dtype and finiteness of x_T on a small batch; the noise drawn from the generator given, and only from
    it."""
    chain = _small_chain(fn, ctx, small, what)
    first = expect_uses_generator(lambda g: chain(betas, g), torch.equal, what=what, seed=7, hint=GENERATOR_HINT)
    if torch.equal(first, chain(betas, torch.Generator().manual_seed(8))):
        raise Mismatch("not random: generators with different seeds gave the same x_T.",
                       hint="Each step adds fresh noise: draw eps inside the loop with the generator.")
    if first.dtype != small.dtype:
        raise Mismatch(f"dtype differs: yours {first.dtype}, expected {small.dtype} (the dtype of x0).",
                       hint=CAST_HINT)


def _expect_a_chain(fn: Fn, ctx: CheckContext, small: torch.Tensor, betas: torch.Tensor, what: str) -> None:
    """One jump x_T = sqrt(ᾱ_T)·x0 + sqrt(1 − ᾱ_T)·ε has the chain's marginal, so statistics cannot tell them apart.
    A first step with β ≈ 0 can: it leaves x as it is but uses up a draw, which shifts every later step's noise and so
    changes a chain's x_T, while a jump (ᾱ_T unchanged, one draw) gives the same x_T again."""
    chain = _small_chain(fn, ctx, small, what)
    first = chain(betas, torch.Generator().manual_seed(7))
    idle_first = torch.cat([torch.full((1,), 1e-12, dtype=betas.dtype), betas])
    if torch.allclose(chain(idle_first, torch.Generator().manual_seed(7)).double(), first.double(), rtol=1e-6,
                      atol=1e-7):
        raise Mismatch("not a chain: putting a first step with β ≈ 0 in front (it leaves x as it is but draws its own "
                       "noise) did not change your x_T. One closed-form jump sqrt(ᾱ_T)·x0 + sqrt(1 − ᾱ_T)·ε behaves "
                       "so: it has the chain's mean and variance, but it is not the chain the exercise asks for.",
                       hint="Loop over t = 0 … T−1, each step drawing its own eps = torch.randn(x.shape, "
                            "generator=generator) and applying your q_step.")


@register_check("run_chain", chapter=CHAPTER, references=(NoiseSchedule.q_sample,), timeout=20.0,
                hint="Start from x = x0 and, for t = 0, 1, …, T−1 in turn, draw "
                     "eps = torch.randn(x.shape, generator=generator) and apply your q_step; return the last x.")
def check_run_chain(fn: Fn, ctx: CheckContext) -> str:
    T = randint(ctx, 10, 30)
    betas = torch.linspace(0.01, 0.03, T, dtype=torch.float64)
    betas[0], betas[-1] = uniform(ctx, 0.2, 0.3), uniform(ctx, 0.3, 0.4)  # big ends: a skipped step shows
    n = 16_000  # 2-D: 32 000 numbers, under PyTorch's threshold for multithreading tiny elementwise ops
    c = torch.tensor([uniform(ctx, 1.5, 3.0), -uniform(ctx, 1.5, 3.0)])
    x0 = c.expand(n, 2).clone()
    what = "run_chain(x0, betas, generator)"
    inputs = f"{n} copies of x0 = {describe(c)}, T = {T} steps"
    _expect_repeatable_chain(fn, ctx, x0[:5], betas, what)

    # the statistics of x_T against the closed form q(x_T | x0) = N(sqrt(ᾱ_T) x0, (1 − ᾱ_T) I)
    xT = ctx.call(fn, x0.clone(), betas.clone(), torch.Generator().manual_seed(ctx.seed), what=what).double()
    mean, var = xT.mean(0), xT.var(0)
    ab = float(torch.prod(1 - betas))
    exp_mean, exp_var = math.sqrt(ab) * c.double(), 1 - ab
    tol_mean = 6 * math.sqrt(exp_var / n) + 1e-3
    tol_var = 6 * exp_var * math.sqrt(2 / (n - 1)) + 1e-3
    note = ""
    for description, (m, v) in _chain_mistakes(c, betas).items():
        if (mean - m).abs().max() <= tol_mean and abs(float(var.mean()) - v) <= tol_var:
            note = f"Your mean and variance are those of a chain that {description}."
            break
    for d in range(2):
        expect_statistic(f"mean (coordinate {d})", float(mean[d]), float(exp_mean[d]), tol_mean, what="x_T",
                         inputs=inputs, note=note)
        expect_statistic(f"variance (coordinate {d})", float(var[d]), exp_var, tol_var, what="x_T",
                         inputs=inputs, note=note)
    _expect_a_chain(fn, ctx, x0[:5], betas, what)
    return (f"over {n} chains of {T} steps, mean and variance of x_T match the closed form "
            f"N(sqrt(ᾱ_T)·x0, (1 − ᾱ_T)·I), ᾱ_T = {ab:.3f}.")


# ----------------------------------------------------------------------------------------- (c') the derivation
def _compose(betas: torch.Tensor, mean_factor: Callable[[float], float],
             var_step: Callable[[float, float], float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Run m ← mean_factor(β_t)·m, v ← var_step(β_t, v) from m = 1, v = 0; return m and v after every step (float64)."""
    m, v, ms, vs = 1.0, 0.0, [], []
    for b in betas.tolist():
        m, v = mean_factor(b) * m, var_step(b, v)
        ms.append(m)
        vs.append(v)
    return torch.tensor(ms, dtype=torch.float64), torch.tensor(vs, dtype=torch.float64)


def _closed_form_mistakes(betas: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The known mistakes in composing q(x_t | x_{t−1}) = N(sqrt(α_t)·x_{t−1}, β_t·I) step by step:
    (mistakes in the mean coefficients, mistakes in the variances), each with the values it gives."""
    ab = torch.cumprod(1 - betas, 0)
    before = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])  # ᾱ_{t−1}: the state *before* step t
    mean = {
        "multiply by sqrt(β_t) instead of sqrt(α_t) = sqrt(1 − β_t) (the product runs over the α's)":
            torch.cumprod(betas, 0).sqrt(),
        "forget the square root (m_t = α_t·m_{t−1} gives ᾱ_t, the factor of the variance, not of the mean)": ab,
        "return the coefficient before each step instead of after it (off by one: start from m = 1, then append "
        "after the update)": before.sqrt(),
    }
    var = {
        "forget to scale the previous variance (v_t = v_{t−1} + β_t): scaling x_{t−1} by sqrt(α_t) scales its "
        "variance by α_t": torch.cumsum(betas, 0),
        "scale the previous variance by sqrt(α_t) instead of α_t (a variance scales with the *square* of the factor)":
            _compose(betas, lambda b: 1.0, lambda b, v: math.sqrt(1 - b) * v + b)[1],
        "add sqrt(β_t) instead of β_t (β_t already is a variance)":
            _compose(betas, lambda b: 1.0, lambda b, v: (1 - b) * v + math.sqrt(b))[1],
        "scale the previous variance by β_t instead of α_t": _compose(betas, lambda b: 1.0, lambda b, v: b * v + b)[1],
        "return the variance before each step instead of after it (off by one)": 1 - before,
        "return the standard deviation sqrt(1 − ᾱ_t) instead of the variance": (1 - ab).sqrt(),
        "return ᾱ_t instead of 1 − ᾱ_t": ab,
    }
    return mean, var


def _closed_form_cases(ctx: CheckContext) -> list[tuple[str, torch.Tensor]]:
    """Schedules to compose: DDPM's, a cosine one (with its clipped last β = 0.999), random betas, one step."""
    T = randint(ctx, 5, 300)
    rand = torch.rand(randint(ctx, 2, 60), generator=ctx.gen, dtype=torch.float64) * 0.5 + 1e-3
    return [("the linear schedule, T = 1000", linear_betas(1000)), (f"a cosine schedule, T = {T}", cosine_betas(T)),
            (f"{len(rand)} random betas in (0.001, 0.5)", rand),
            ("a single step", torch.tensor([uniform(ctx, 0.01, 0.9)], dtype=torch.float64))]


@register_check("derive_closed_form", chapter=CHAPTER, references=(NoiseSchedule.__post_init__,),
                hint="Start from x_0 itself: m = 1, v = 0. For each β_t (t = 0 … T−1), with α_t = 1 − β_t: "
                     "m ← sqrt(α_t)·m and v ← α_t·v + β_t; record m and v after each step. Return two float64 "
                     "tensors of shape (T,).")
def check_derive_closed_form(fn: Fn, ctx: CheckContext) -> str:
    r"""The recursion :math:`m_t = \sqrt{\alpha_t}\,m_{t-1}`, :math:`v_t = \alpha_t v_{t-1} + \beta_t` from
    :math:`m = 1, v = 0` must give :math:`m_t = \sqrt{\bar\alpha_t}` and :math:`v_t = 1 - \bar\alpha_t` (float64)."""
    for description, betas in _closed_form_cases(ctx):
        what = "derive_closed_form(betas)"
        inputs = f"betas: {description} (float64)"
        mean, var = as_pair(ctx.call(fn, betas, what=what), what, ("mean_coefs", "variances"))
        ab = torch.cumprod(1 - betas, 0)
        for name, out in (("mean coefficients", mean), ("variances", var)):
            if isinstance(out, torch.Tensor) and out.shape == (len(betas) + 1,):
                raise Mismatch(f"shape differs: your {name} have shape {tuple(out.shape)}, expected "
                               f"({len(betas)},): one value per step.\n   inputs: {inputs}",
                               hint="Leave out the starting values m = 1, v = 0 (that is x_0 itself, before any "
                                    "step): record m and v after each update.")
        mean_mistakes, var_mistakes = _closed_form_mistakes(betas)
        expect_tensor(mean, ab.sqrt(), what=f"the mean coefficients from {what}", inputs=inputs, rtol=1e-9,
                      atol=1e-12, dtype_hint=COMPOSE_FLOAT64_HINT, mistakes=mean_mistakes)
        expect_tensor(var, 1 - ab, what=f"the variances from {what}", inputs=inputs, rtol=1e-9, atol=1e-12,
                      dtype_hint=COMPOSE_FLOAT64_HINT, mistakes=var_mistakes)
    return ("composing the one-step Gaussians gives mean coefficient sqrt(ᾱ_t) and variance 1 − ᾱ_t after every "
            "step (linear and cosine schedules, random betas, a single step): q(x_t | x0) = "
            "N(sqrt(ᾱ_t)·x0, (1 − ᾱ_t)·I).")


# ----------------------------------------------------------------------------------------- (d) SNR
@register_check("snr", chapter=CHAPTER, references=(NoiseSchedule.__post_init__,),
                hint="SNR(t) = ᾱ_t / (1 − ᾱ_t): the variance of the signal part sqrt(ᾱ_t)·x0 (for unit-variance "
                     "data) divided by the variance of the noise part.")
def check_snr(fn: Fn, ctx: CheckContext) -> str:
    scheds = [make_schedule("linear", 1000), make_schedule("cosine", randint(ctx, 50, 1000)), random_schedule(ctx)]
    for sched in scheds:
        ab = sched.alpha_bars
        what = "snr(alpha_bars)"
        out = ctx.call(fn, ab.clone(), what=what)
        expect_tensor(out, sched.snr, what=what, inputs=f"alpha_bars of the {sched.name} schedule, T = {sched.T}",
                      rtol=1e-8, atol=1e-12,
                      mistakes={
                          "invert it: (1 − ᾱ)/ᾱ is the noise-to-signal ratio": (1 - ab) / ab,
                          "take the square root: a ratio of standard deviations, not of variances":
                              (ab / (1 - ab)).sqrt(),
                          "take the logarithm (that is log-SNR, a useful but different quantity)":
                              (ab / (1 - ab)).log(),
                          "use sqrt(ᾱ) for the signal but (1 − ᾱ) for the noise": ab.sqrt() / (1 - ab),
                      })
    return "matches ᾱ/(1 − ᾱ) for the linear, cosine and a random schedule."


# ----------------------------------------------------------------------------------------- (e) the experiment
def _final_alpha_bar(name: str, T: int) -> float:
    return float(make_schedule(name, T).alpha_bars[-1])


def steps_to_noise_reference(name: str, threshold: float = 1e-3, T_max: int = 5000) -> int | None:
    """The smallest ``T`` (1 ≤ T ≤ T_max) for which ``make_schedule(name, T)`` ends at ᾱ_{T−1} < ``threshold``; else None.

    ᾱ_{T−1} falls as T grows for every schedule here, so a bisection finds the same T
    as the plain loop the exercise asks for, with a dozen schedules instead of hundreds.
    """
    if _final_alpha_bar(name, T_max) >= threshold:
        return None
    lo, hi = 0, T_max  # invariant: T = lo does not reach the threshold (T = 0 stands for "no steps"), T = hi does
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _final_alpha_bar(name, mid) < threshold:
            hi = mid
        else:
            lo = mid
    return hi


@register_check("steps_to_noise", chapter=CHAPTER, references=(steps_to_noise_reference,), timeout=30.0,
                hint="Loop T = 1, 2, …, T_max; build make_schedule(name, T) and return the first T whose last "
                     "ᾱ (alpha_bars[-1]) is below threshold; return None after the loop.")
def check_steps_to_noise(fn: Fn, ctx: CheckContext) -> str:
    cases = [("linear", 1e-3, 5000), ("cosine", 1e-3, 5000),
             ("sigmoid", 10 ** -uniform(ctx, 2, 3), 5000), ("linear", 10 ** -uniform(ctx, 2, 3.5), 5000),
             ("linear", 1e-3, randint(ctx, 50, 300))]
    found = []
    for name, thr, T_max in cases:
        what = f"steps_to_noise({name!r}, threshold={thr:.3g}, T_max={T_max})"
        got = as_int(ctx.call(fn, name, thr, T_max, what=what), what, allow_none=True,
                     meaning="a whole number of steps (or None when no T up to T_max is enough)")
        expected = steps_to_noise_reference(name, thr, T_max)
        if got != expected:
            message = f"value differs: {what} gave {got}, expected {expected}."
            if got is not None and expected is not None and abs(got - expected) == 1:
                message += ("\n   Off by one: T is the number of steps, and the schedule with T steps ends at "
                            "alpha_bars[T−1] = alpha_bars[-1]; return the first T that is below the threshold.")
            elif expected is None:
                message += "\n   No T up to T_max reaches the threshold here: return None after the loop."
            elif got is not None and got > expected:
                message += "\n   Yours is too large: is the comparison `<` against alpha_bars[-1] (the last step)?"
            raise Mismatch(message)
        found.append(f"{name}: {expected}" if thr == 1e-3 and expected else None)
    return "finds the first T that reaches noise (" + ", ".join(f for f in found if f) + " at ᾱ_T < 1e-3)."
