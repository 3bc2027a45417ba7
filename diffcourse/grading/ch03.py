r"""Checks for chapter 3, *DDIM: fast, deterministic sampling* (``solutions/03_ddim.ipynb``).

==================  ========================================================  =========================================
exercise            learner's signature                                       reference
==================  ========================================================  =========================================
ddim_step           ``ddim_step(eps_fn, schedule, x, t, s, eta, noise)``      `diffcourse.samplers.ddim.ddim_step`
ddim_timesteps      ``ddim_timesteps(T, steps, spacing)``                     `diffcourse.samplers.ddim.ddim_timesteps`
ddim_invert_step    ``ddim_invert_step(eps_fn, schedule, x, s, t)``           one step of `ddim_invert`
ddim_round_trip     ``ddim_round_trip(eps_fn, schedule, x0, steps)``          `ddim_invert`, then `ddim_sample` (η = 0)
fewest_ddim_steps   ``fewest_ddim_steps(eps_fn, schedule, x_T, data, floor,   `fewest_ddim_steps_reference`
                    candidates, ratio)``
==================  ========================================================  =========================================

``s = -1`` stands for "x_0" (ᾱ_{−1} = 1), as in `diffcourse.samplers.ddim`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..data import toy2d
from ..metrics import sliced_wasserstein
from ..samplers.ddim import ddim_grid, ddim_invert, ddim_sample, ddim_update
from ..samplers.ddim import ddim_step as ddim_step_reference
from ..samplers.ddim import ddim_timesteps as ddim_timesteps_reference
from ..schedules import NoiseSchedule, make_schedule
from .compare import as_int, as_int_list, describe, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import CAST_HINT, FakeEps, Fn, batch, exact_eps_fn, randint, random_schedule, uniform

CHAPTER = 3


def _abar(schedule: NoiseSchedule, i: int) -> float:
    return 1.0 if i < 0 else float(schedule.alpha_bars[i])


# ----------------------------------------------------------------------------------------- (a) the DDIM step
def _ddim_formula(x: torch.Tensor, e: torch.Tensor, z: torch.Tensor, at: float, as_: float, eta: float,
                  add_noise: bool) -> torch.Tensor:
    """The DDIM update x_t → x_s written out in float64: the reference's formula, on the given ε̂ and ᾱs."""
    sigma = eta * math.sqrt((1 - as_) / (1 - at)) * math.sqrt(max(1 - at / as_, 0.0))
    x0 = (x - math.sqrt(1 - at) * e) / math.sqrt(at)
    out = math.sqrt(as_) * x0 + math.sqrt(max(1 - as_ - sigma ** 2, 0.0)) * e
    return out + sigma * z if add_noise else out


def _ddim_step_mistakes(eps_fn: FakeEps, sched: NoiseSchedule, x: torch.Tensor, z: torch.Tensor, t: int, s: int,
                        eta: float) -> dict[str, torch.Tensor]:
    """The known mistakes in x_s = sqrt(ᾱ_s)·x̂0 + sqrt(1 − ᾱ_s − σ²)·ε̂ + σ·noise, σ = η·f1·f2 with
    f1 = sqrt((1 − ᾱ_s)/(1 − ᾱ_t)) and f2 = sqrt(1 − ᾱ_t/ᾱ_s), each with the x_s it gives."""
    at, as_ = _abar(sched, t), _abar(sched, s)
    xd, zd, e = x.double(), z.double(), eps_fn(x, t).double()
    noisy = eta > 0 and s >= 0  # no noise on the last step, to x_0
    f1, f2 = math.sqrt((1 - as_) / (1 - at)), math.sqrt(max(1 - at / as_, 0.0))
    sigma = eta * f1 * f2
    x0 = (xd - math.sqrt(1 - at) * e) / math.sqrt(at)

    def step(sig: float = sigma, x0_hat: torch.Tensor = x0, dir_sig: float | None = None,
             noise: float | None = None) -> torch.Tensor:  # σ, and what the direction and the noise use for it
        dir_sig = sig if dir_sig is None else dir_sig
        out = math.sqrt(as_) * x0_hat + math.sqrt(max(1 - as_ - dir_sig ** 2, 0.0)) * e
        return out + (sig if noise is None else noise) * zd if noisy else out

    mistakes = {
        "call eps_fn at s instead of t (the network is asked about the x you have, x_t)":
            _ddim_formula(xd, eps_fn(x, max(s, 0)).double(), zd, at, as_, eta, noisy),
        "leave out the first factor sqrt((1 − ᾱ_s)/(1 − ᾱ_t)) of σ": step(sig=eta * f2),
        "leave out the second factor sqrt(1 − ᾱ_t/ᾱ_s) of σ": step(sig=eta * f1),
        "ignore η (no noise, and 1 − ᾱ_s for the direction, whatever η)": step(sig=0.0),
        "forget to take σ² out of the direction term (sqrt(1 − ᾱ_s) instead of sqrt(1 − ᾱ_s − σ²))":
            step(dir_sig=0.0),
        "forget the square roots in x̂0 ((x − (1 − ᾱ_t)·ε̂)/ᾱ_t)": step(x0_hat=(xd - (1 - at) * e) / at),
        "scale the noise by σ² instead of σ": step(noise=sigma ** 2),
    }
    if s < 0:
        mistakes["take ᾱ_s = alpha_bars[s] at s = −1: that is the *last* entry, but s = −1 means x_0, ᾱ_{−1} = 1"] = \
            _ddim_formula(xd, e, zd, at, float(sched.alpha_bars[-1]), eta, eta > 0)
    return mistakes


@register_check("ddim_step", chapter=CHAPTER, references=(ddim_step_reference, ddim_update),
                hint="x̂0 = (x − sqrt(1 − ᾱ_t)·ε̂)/sqrt(ᾱ_t) with ε̂ = eps_fn(x, t); ᾱ_s = 1 when s = −1 (not "
                     "alpha_bars[-1]!); σ = η·sqrt((1 − ᾱ_s)/(1 − ᾱ_t))·sqrt(1 − ᾱ_t/ᾱ_s); "
                     "x_s = sqrt(ᾱ_s)·x̂0 + sqrt(1 − ᾱ_s − σ²)·ε̂ + σ·noise.")
def check_ddim_step(fn: Fn, ctx: CheckContext) -> str:
    n = 0
    for tail in [(2,), (1, 4, 4)]:
        sched = random_schedule(ctx)
        eps_fn = FakeEps(ctx)
        T = sched.T
        pairs = [(T - 1, randint(ctx, T // 2, T - 2)), (randint(ctx, 5, T - 1), -1), (randint(ctx, 2, T // 2), 0)]
        for t, s in pairs:
            for eta in (0.0, 1.0, round(uniform(ctx, 0.2, 0.8), 3)):
                x = batch(ctx, tail)
                z = torch.randn(x.shape, generator=ctx.gen)
                what = f"ddim_step(eps_fn, schedule, x, t={t}, s={s}, eta={eta}, noise)"
                inputs = f"x {describe(x)}, the {sched.name} schedule with T = {T}"
                out = ctx.call(fn, eps_fn, sched, x.clone(), t, s, eta, z.clone(), what=what)
                ref = ddim_step_reference(eps_fn, sched, x, t, s, eta, z)
                if s < 0 and isinstance(out, torch.Tensor) and out.is_floating_point() and out.isnan().any():
                    raise Mismatch(f"your output contains NaN at s = −1 (the step to x_0).\n   inputs: {inputs}",
                                   hint="s = −1 means x_0, where ᾱ_s = 1; alpha_bars[-1] is the *last* entry, so "
                                        "1 − ᾱ_t/ᾱ_s turns negative and its square root NaN. Use "
                                        "`1.0 if s < 0 else alpha_bars[s]`.")
                expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-5, dtype_hint=CAST_HINT,
                              mistakes=_ddim_step_mistakes(eps_fn, sched, x, z, t, s, eta))
                n += 1
    return f"{n} steps (η = 0, 1 and in between; to x_0 with s = −1 included; points and 4×4 images) match."


# ----------------------------------------------------------------------------------------- (b) the spacing
@register_check("ddim_timesteps", chapter=CHAPTER, references=(ddim_timesteps_reference, ddim_grid),
                hint="leading: [i·c for i in range(steps)] with c = T // steps; trailing: sorted(round(T − k·T/steps) − 1 "
                     "for k in range(steps)); quadratic: int((k·sqrt(0.8·T)/(steps − 1))²), then "
                     "ts[k] = max(ts[k], ts[k−1] + 1); [0] when steps == 1. Increasing order.")
def check_ddim_timesteps(fn: Fn, ctx: CheckContext) -> str:
    cases = [(1000, 10, "leading"), (1000, 30, "leading"), (1000, 10, "trailing"), (1000, 20, "quadratic"),
             (100, 40, "quadratic"),
             (randint(ctx, 50, 999), randint(ctx, 3, 30), "leading"),
             (randint(ctx, 50, 999), randint(ctx, 3, 30), "trailing"),
             (randint(ctx, 50, 999), randint(ctx, 3, 30), "quadratic"), (randint(ctx, 10, 99), 1, "quadratic")]
    for T, steps, spacing in cases:
        what = f"ddim_timesteps({T}, {steps}, {spacing!r})"
        got = as_int_list(ctx.call(fn, T, steps, spacing, what=what), what, meaning="timesteps (indices 0 … T−1)")
        expected = ddim_timesteps_reference(T, steps, spacing)
        if got == expected:
            continue
        message = f"value differs: {what} gave {_short(got)}, expected {_short(expected)}."
        if got == expected[::-1] or got == sorted(got, reverse=True) and sorted(got) == expected:
            message += "\n   Yours is in decreasing order; return the timesteps increasing (the sampler reverses them)."
        elif len(got) == len(expected) and all(g == e + 1 for g, e in zip(got, expected)):
            message += ("\n   Off by one: every timestep is one too large — with 0-based timesteps the last step is "
                        "T − 1 (trailing: round(T − k·T/steps) − 1).")
        elif spacing == "leading" and got == [int(i * T / steps) for i in range(steps)]:
            message += "\n   You spaced them by T/steps (a float); the reference uses c = T // steps (whole steps)."
        elif spacing == "trailing" and got == sorted({int(T - k * T / steps) - 1 for k in range(steps)}):
            message += "\n   You rounded down with int(); the reference rounds to the nearest with round()."
        elif spacing == "quadratic" and len(got) == len(expected) and got == [
                int((k * math.sqrt(0.8 * T) / max(steps - 1, 1)) ** 2) for k in range(steps)]:
            message += ("\n   Where the squares are closer than one step apart they repeat a timestep: "
                        "nudge each to at least the previous one + 1.")
        elif len(got) != len(expected):
            message += f"\n   You returned {len(got)} timesteps; there should be steps = {steps}."
        raise Mismatch(message)
    return ("leading, trailing and quadratic spacings (T = 1000 and random T, steps = 1 … 40, T not always a "
            "multiple of steps) match.")


def _short(ts: Sequence[int]) -> str:
    ts = list(ts)
    return str(ts) if len(ts) <= 12 else f"[{', '.join(map(str, ts[:6]))}, …, {', '.join(map(str, ts[-3:]))}] ({len(ts)} values)"


# ----------------------------------------------------------------------------------------- (c) inversion
def invert_step_reference(eps_fn: Fn, schedule: NoiseSchedule, x: torch.Tensor, s: int, t: int) -> torch.Tensor:
    r"""One step of `diffcourse.samplers.ddim.ddim_invert`, :math:`x_s \to x_t` (``s = -1``: from :math:`x_0`;
    the noise is predicted at ``s``, or at ``t`` when ``s = -1``)."""
    e = eps_fn(x, torch.full((x.shape[0],), s if s >= 0 else t, dtype=torch.long))
    a_s = schedule.extract(schedule.alpha_bars, s, x) if s >= 0 else torch.ones((), dtype=x.dtype)
    a_t = schedule.extract(schedule.alpha_bars, t, x)
    return a_t.sqrt() * (x - (1 - a_s).sqrt() * e) / a_s.sqrt() + (1 - a_t).sqrt() * e


def _invert_step_mistakes(eps_fn: FakeEps, sched: NoiseSchedule, x: torch.Tensor, s: int,
                          t: int) -> dict[str, torch.Tensor]:
    """The known mistakes in x_t = sqrt(ᾱ_t)·(x − sqrt(1 − ᾱ_s)·ε̂)/sqrt(ᾱ_s) + sqrt(1 − ᾱ_t)·ε̂,
    each with the x_t it gives."""
    a_s, a_t = _abar(sched, s), _abar(sched, t)
    xd = x.double()

    def up(e: torch.Tensor, a_s: float = a_s, a_t: float = a_t) -> torch.Tensor:
        return math.sqrt(a_t) * (xd - math.sqrt(1 - a_s) * e) / math.sqrt(a_s) + math.sqrt(1 - a_t) * e

    e_s, e_t = eps_fn(x, s if s >= 0 else t).double(), eps_fn(x, t).double()
    mistakes = {
        "forget the square roots": a_t * (xd - (1 - a_s) * e_s) / a_s + (1 - a_t) * e_s,
        "swap s and t (that is a DDIM sampling step, downwards)": up(e_s, a_s=a_t, a_t=a_s),
    }
    if s >= 0:
        mistakes["predict the noise at t, which you do not have yet (use eps_fn(x, s): x is x_s)"] = up(e_t)
    else:
        mistakes["take ᾱ_s = alpha_bars[s] at s = −1: that is the *last* entry, but s = −1 means x_0, "
                 "ᾱ_{−1} = 1"] = up(e_s, a_s=float(sched.alpha_bars[-1]))
    return mistakes


@register_check("ddim_invert_step", chapter=CHAPTER, references=(invert_step_reference, ddim_invert),
                hint="ε̂ = eps_fn(x, s) (at s = −1, where x is x_0, use eps_fn(x, t)); ᾱ_s = 1 when s = −1; "
                     "x_t = sqrt(ᾱ_t)·(x − sqrt(1 − ᾱ_s)·ε̂)/sqrt(ᾱ_s) + sqrt(1 − ᾱ_t)·ε̂.")
def check_ddim_invert_step(fn: Fn, ctx: CheckContext) -> str:
    n = 0
    for tail in [(2,), (1, 4, 4)]:
        sched = random_schedule(ctx)
        eps_fn = FakeEps(ctx)
        T = sched.T
        for s, t in [(-1, randint(ctx, 0, T // 4)), (randint(ctx, 0, T // 2), randint(ctx, T // 2 + 1, T - 1)),
                     (T - 2, T - 1)]:
            x = batch(ctx, tail)
            what = f"ddim_invert_step(eps_fn, schedule, x, s={s}, t={t})"
            inputs = f"x {describe(x)}, the {sched.name} schedule with T = {T}"
            out = ctx.call(fn, eps_fn, sched, x.clone(), s, t, what=what)
            ref = invert_step_reference(eps_fn, sched, x, s, t)
            expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-5, dtype_hint=CAST_HINT,
                          mistakes=_invert_step_mistakes(eps_fn, sched, x, s, t))
            n += 1
    return f"{n} inversion steps (from x_0 with s = −1, in the middle, at the end) match ddim_invert's update."


@register_check("ddim_round_trip", chapter=CHAPTER, references=(ddim_invert,), timeout=30.0,
                hint="ts = ddim_timesteps(schedule.T, steps) (leading); from x = x0 and s = −1 apply "
                     "x = ddim_invert_step(eps_fn, schedule, x, s, t) for t in ts (increasing), s = t; then "
                     "x0_rec = ddim_sample(eps_fn, schedule, x_T, steps=steps, eta=0.0, spacing='leading') (the same timesteps "
                     "both ways; the package's default is 'trailing'). Return (x_T, x0_rec).")
def check_ddim_round_trip(fn: Fn, ctx: CheckContext) -> str:
    for tail, steps in [((2,), randint(ctx, 5, 20)), ((1, 4, 4), randint(ctx, 3, 10))]:
        sched = make_schedule(["linear", "cosine"][randint(ctx, 0, 1)], randint(ctx, 100, 400))
        eps_fn = FakeEps(ctx)
        x0 = batch(ctx, tail)
        what = f"ddim_round_trip(eps_fn, schedule, x0, steps={steps})"
        inputs = f"x0 {describe(x0)}, the {sched.name} schedule with T = {sched.T}"
        out = ctx.call(fn, eps_fn, sched, x0.clone(), steps, what=what)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise Mismatch(f"{what} returned a {type(out).__name__}; expected a pair (x_T, x0_rec).",
                           hint="End with `return x_T, x0_rec`.")
        xT, rec = out
        ref_xT = ddim_invert(eps_fn, sched, x0, steps=steps, spacing="leading")
        ts = ddim_timesteps_reference(sched.T, steps, "leading")
        wrong = {}
        # the loop started at the first timestep instead of from x_0 (s = -1): one step fewer
        x = x0
        for s, t in zip(ts[:-1], ts[1:]):
            x = invert_step_reference(eps_fn, sched, x, s, t)
        wrong["skip the first step from x_0 (start the loop with s = −1, ᾱ_{−1} = 1)"] = x
        x = x0
        for s, t in zip([-1] + ts[:-1], ts):
            e = eps_fn(x, t)
            a_s = _abar(sched, s)
            a_t = float(sched.alpha_bars[t])
            x = math.sqrt(a_t) * (x - math.sqrt(1 - a_s) * e) / math.sqrt(a_s) + math.sqrt(1 - a_t) * e
        wrong["predict the noise at t instead of s in every step"] = x
        expect_tensor(xT, ref_xT, what=f"x_T from {what}", inputs=inputs, rtol=1e-4, atol=1e-4, mistakes=wrong)
        ref_rec = ddim_sample(eps_fn, sched, xT.detach().clone(), steps=steps, eta=0.0, spacing="leading")
        expect_tensor(rec, ref_rec, what=f"x0_rec from {what}", inputs=inputs, rtol=1e-4, atol=1e-4, mistakes={
            "decode with a different spacing (use the same timesteps both ways: pass spacing='leading' to ddim_sample, "
            "whose default is 'trailing')":
                ddim_sample(eps_fn, sched, xT.detach().clone(), steps=steps, eta=0.0, spacing="trailing"),
            "return x0 itself instead of decoding x_T": x0,
        })
    return "x_T matches ddim_invert and the reconstruction matches ddim_sample with η = 0, on points and images."


# ----------------------------------------------------------------------------------------- (d) the experiment
def fewest_ddim_steps_reference(eps_fn: Fn, schedule: NoiseSchedule, x_T: torch.Tensor, data: torch.Tensor,
                                floor: float, candidates: Sequence[int] = (10, 20, 50), ratio: float = 1.5
                                ) -> int | None:
    """The first of ``candidates`` (increasing) whose DDIM samples (η = 0, from ``x_T``) are within ``ratio × floor``
    of ``data`` in sliced Wasserstein distance; ``None`` if none is."""
    for steps in candidates:
        x = ddim_sample(eps_fn, schedule, x_T.clone(), steps=steps, eta=0.0)
        if sliced_wasserstein(x, data) <= ratio * floor:
            return steps
    return None


@register_check("fewest_ddim_steps", chapter=CHAPTER, references=(fewest_ddim_steps_reference,), timeout=60.0,
                hint="for steps in candidates: x = ddim_sample(eps_fn, schedule, x_T, steps=steps, eta=0.0); "
                     "if sliced_wasserstein(x, data) <= ratio * floor: return steps. After the loop: return None.")
def check_fewest_ddim_steps(fn: Fn, ctx: CheckContext) -> str:
    n = 1000
    sched = make_schedule("linear", 1000)
    eps_fn = exact_eps_fn(sched)
    data = toy2d.sample("8gaussians", n, generator=torch.Generator().manual_seed(ctx.seed))
    other = toy2d.sample("8gaussians", n, generator=torch.Generator().manual_seed(ctx.seed + 1))
    floor = sliced_wasserstein(data, other)
    x_T = torch.randn(n, 2, generator=ctx.gen)
    found = []
    # first a start that is not N(0, I) (shrunk: worse samples), whose answer only code that uses x_T gets right
    for candidates, ratio, start in [((10, 20, 50), _shrunk_ratio(eps_fn, sched, x_T, data, floor), 0.25 * x_T),
                                     ((10, 20, 50), 1.5, x_T),
                                     ((5, 10, 20), round(uniform(ctx, 2.0, 4.0), 2), x_T),
                                     ((2, 3), 1.2, x_T), ((50, 100), round(uniform(ctx, 1.3, 1.8), 2), x_T)]:
        what = f"fewest_ddim_steps(eps_fn, schedule, x_T, data, floor, candidates={candidates}, ratio={ratio})"
        got = as_int(ctx.call(fn, eps_fn, sched, start.clone(), data, floor, candidates, ratio, what=what), what,
                     allow_none=True, meaning="a number of steps (or None)")
        expected = fewest_ddim_steps_reference(eps_fn, sched, start, data, floor, candidates, ratio)
        if got != expected:
            _fewest_mismatch(what, got, expected, candidates, shrunk=start is not x_T)
        found.append(f"{candidates} at {ratio}× → {expected}")
    return (f"the same answers as the reference: from a shrunken x_T (0.25·N(0, I)) {found[0]}; then "
            + "; ".join(found[1:]) + ".")


def _shrunk_ratio(eps_fn: Fn, schedule: NoiseSchedule, x_T: torch.Tensor, data: torch.Tensor, floor: float) -> float:
    """A ratio that 10 DDIM steps from ``x_T`` reach but no candidate (10, 20, 50) from ``0.25·x_T`` does: halfway
    between the two (the gap is about 0.6× the floor, far more than a fresh draw of the start noise moves it)."""
    def ratio(start: torch.Tensor, steps: int) -> float:
        return sliced_wasserstein(ddim_sample(eps_fn, schedule, start.clone(), steps=steps, eta=0.0), data) / floor

    return round((ratio(x_T, 10) + min(ratio(0.25 * x_T, S) for S in (10, 20, 50))) / 2, 2)


def _fewest_mismatch(what: str, got: int | None, expected: int | None, candidates: Sequence[int],
                     shrunk: bool) -> None:
    """Raise the `Mismatch` that explains a wrong answer of ``fewest_ddim_steps`` (``shrunk``: the case whose x_T is
    0.25·N(0, I), from which no candidate passes)."""
    message = f"value differs: {what} gave {got!r}, expected {expected!r}."
    if shrunk and expected is None:
        message += ("\n   Here x_T is 0.25·N(0, I), a start that is not pure noise, and from it no candidate reaches "
                    "the ratio. Do you start DDIM from the x_T you are given (ddim_sample(eps_fn, schedule, "
                    "x_T.clone(), steps=steps, eta=0.0)), not from fresh noise — and return None when no candidate "
                    "passes?")
    elif expected is None:
        message += "\n   None of the candidates is good enough here: return None after the loop."
    elif got is not None and got in candidates and candidates.index(got) > candidates.index(expected):
        message += "\n   A smaller number of steps already passes: return the *first* candidate that does."
    elif got is not None and got in candidates:
        message += ("\n   Yours stops too early: is the test `sliced_wasserstein(samples, data) <= ratio * floor`"
                    " with η = 0 (deterministic) samples started from the given x_T?")
    raise Mismatch(message)
