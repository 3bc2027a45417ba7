"""Checks of chapters 2–4: right code passes, deliberately wrong code is caught with a message that names the mistake.

The correct implementations are written here from the equations (not imported from the package), so a check
and its reference cannot agree by accident. The chapter-2 experiment (train a model) is tested with stand-ins:
fresh data passes, noise and a shifted copy fail — training itself runs in the solution notebook. The schedule
comparison needs real models: two 2D networks (linear and cosine schedule) are trained once per session (a few
seconds each, `toy_models`) and reused by every right and wrong version of it.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from diffcourse import make_schedule
from diffcourse.data import toy2d
from diffcourse.grading import check, checks_for_chapter
from diffcourse.metrics import sliced_wasserstein, sw_floor_ratio
from diffcourse.models import ToyMLP
from diffcourse.objectives import eps_fn
from diffcourse.recipes.toy2d import train_toy_ddpm
from diffcourse.samplers.ddim import ddim_invert, ddim_sample
from grading_helpers import (assert_agrees_with_the_library, assert_caught, assert_passes,  # tests/grading_helpers.py
                             assert_stub_says_so, assert_times_out, skip_if_too_slow)


pytestmark = pytest.mark.usefixtures("fresh_grading")  # see tests/conftest.py


def _b(v, x):
    return v.reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype)


def _full(x, t, dtype=torch.long):
    return torch.full((x.shape[0],), t, dtype=dtype)


# ============================================================================ chapter 2
def loss(model, x0, t, eps, ab, target="eps", *, tshift=0, sqrt=True, goal_override=None, red="mean", feed_x0=False):
    a = _b(ab[t], x0)
    xt = (a.sqrt() * x0 + (1 - a).sqrt() * eps) if sqrt else (a * x0 + (1 - a) * eps)
    goal = {"eps": eps, "x0": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[goal_override or target]
    d = (model(x0 if feed_x0 else xt, t + tshift) - goal) ** 2
    return d.mean() if red == "mean" else d.sum()


def posterior(x0, xt, t, betas, *, swap=False, prev="right", var_kind="tilde", low_precision=False):
    al = 1 - betas
    ab = torch.cumprod(al, 0)
    abp = {"right": torch.cat([torch.ones(1, dtype=betas.dtype), ab[:-1]]), "same": ab, "wrap": ab.roll(1)}[prev]
    b, a, at, ap = (v[t].reshape(-1, *[1] * (x0.ndim - 1)) for v in (betas, al, ab, abp))  # float64
    if low_precision:
        b, a, at, ap = (v.to(x0.dtype) for v in (b, a, at, ap))
    c0, ct = ap.sqrt() * b / (1 - at), a.sqrt() * (1 - ap) / (1 - at)
    if swap:
        c0, ct = ct, c0
    var = {"tilde": (1 - ap) / (1 - at) * b, "beta": b}[var_kind]
    return c0.to(x0.dtype) * x0 + ct.to(x0.dtype) * xt, var.to(x0.dtype)


def dstep(eps_fn, sched, x, t, noise, variance="beta", *, noise_at_0=False, coef_sqrt=True, div_alpha=True,
          var_sqrt=True, tshift=0, other_var=False):
    e = eps_fn(x, _full(x, t + tshift))
    b, al, ab = (float(v[t]) for v in (sched.betas, sched.alphas, sched.alpha_bars))
    coef = b / math.sqrt(1 - ab) if coef_sqrt else b / (1 - ab)
    mean = (x - coef * e) / (math.sqrt(al) if div_alpha else 1.0)
    if t == 0 and not noise_at_0:
        return mean
    use_beta = (variance == "beta") != other_var
    var = b if use_beta else float(sched.posterior_variance[t])
    if var == 0.0:
        var = b
    return mean + (math.sqrt(var) if var_sqrt else var) * noise


def fresh_data(dataset, n, g):
    return toy2d.sample(dataset, n, generator=g)


def unseeded_data(dataset, n, g):
    return toy2d.sample(dataset, n, generator=torch.Generator().manual_seed(int(torch.randint(0, 10**6, ()))))


# ---------------------------------------------------------------------------- chapter 2: comparing schedules
@functools.lru_cache(maxsize=None)
def toy_models(schedule_name: str, seed: int = 0, steps: int = 1000):
    """A 2D DDPM trained on the moons with the named schedule (T = 1000), once per session (a few seconds)."""
    sched = make_schedule(schedule_name, T=1000)
    result, _ = train_toy_ddpm("moons", schedule=sched, steps=steps, batch_size=256, seed=seed, progress=False)
    return result.ema_model.eval(), sched


def compare_good(dataset, x_T, data, other, steps=(10, 50, 100), spacing="leading", *, fresh=False, raw=False,
                 swap_rows=False, nets=None, scheds=None):
    """The solution's way (train_toy_ddpm, ddim_sample, sw_floor_ratio), with switches for the known mistakes;
    ``nets``/``scheds`` map each row to the (trained model's schedule name) and (schedule name) it uses."""
    table, models = {}, {}
    for name in ("linear", "cosine"):
        net_name, sched_name = (nets or {}).get(name, name), (scheds or {}).get(name, name)
        f = eps_fn(toy_models(net_name)[0], make_schedule(sched_name, T=1000))
        key = (net_name, sched_name, spacing, _fingerprint(x_T, *data, *other))
        rows = [_ratio_and_distance(*key, x_T, data, other, S, fresh) for S in steps]
        table[name] = {S: dist if raw else ratio for S, (ratio, dist) in zip(steps, rows)}
        models[name] = (f, make_schedule(sched_name, T=1000))
    if swap_rows:
        table = {"linear": table["cosine"], "cosine": table["linear"]}
    return table, models


def _fingerprint(*tensors: torch.Tensor) -> int:
    return hash(b"".join(t.numpy().tobytes() for t in tensors))


_RATIOS: dict = {}


def _ratio_and_distance(net_name, sched_name, spacing, fingerprint, x_T, data, other, S, fresh):
    """``sw_floor_ratio``'s ratio and distance of DDIM-S samples; the wrong versions share them (a test-time cache:
    every run of the check recomputes its own numbers all the same)."""
    if fresh:  # fresh noise every call: never cached
        sched = make_schedule(sched_name, T=1000)
        f = eps_fn(toy_models(net_name)[0], sched)
        x = ddim_sample(f, sched, torch.randn(x_T.shape), steps=S, spacing=spacing)
        return sw_floor_ratio([x] * len(data), data, other)[:2]
    key = (net_name, sched_name, spacing, fingerprint, S)
    if key not in _RATIOS:
        sched = make_schedule(sched_name, T=1000)
        x = ddim_sample(eps_fn(toy_models(net_name)[0], sched), sched, x_T.clone(), steps=S, spacing=spacing)
        _RATIOS[key] = sw_floor_ratio([x] * len(data), data, other)[:2]
    return _RATIOS[key]


def compare_own_ddim(dataset, x_T, data, other, steps=(10, 50, 100), spacing="leading"):
    """Differently written and still right: the learner's own DDIM loop (chapter 3's update) and SW averaging,
    NumPy numbers in the table, a model called directly."""
    table, models = {}, {}
    floor = sum(sliced_wasserstein(o, d) for o, d in zip(other, data)) / len(data)
    for name in ("linear", "cosine"):
        net, sched = toy_models(name)
        ab = sched.alpha_bars

        def eps(x, t, net=net):
            return net(x, t)

        row = {}
        for S in steps:
            ts = ddim_timesteps_good(sched.T, S, spacing)
            x = x_T.clone()
            with torch.no_grad():
                for t, s in zip(ts[::-1], ts[::-1][1:] + [-1]):
                    a_t, a_s = float(ab[t]), (float(ab[s]) if s >= 0 else 1.0)
                    e = eps(x, torch.full((len(x),), t))
                    x0 = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
                    x = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * e
            dist = sum(sliced_wasserstein(x, d) for d in data) / len(data)
            row[np.int64(S)] = np.float64(dist / floor)
        table[name] = row
        models[name] = [eps, sched]
    return table, models


def compare_cheap(table=None, **models):
    """A learner's function that returns a fixed table and the given (eps_fn, schedule) entries (for the checks
    that stop before any number is recomputed)."""
    def entry(name):
        given = models.get(name)
        if callable(given):  # built when the function runs, not when the test module is collected
            return given()
        return given or (eps_fn(*toy_models(name)), toy_models(name)[1])

    def fn(dataset, x_T, data, other, steps=(10, 50, 100), spacing="leading"):
        rows = table or {name: {S: 1.0 for S in steps} for name in ("linear", "cosine")}
        return rows, {name: entry(name) for name in ("linear", "cosine")}
    return fn


def compare_untrained(dataset, x_T, data, other, steps=(10, 50, 100), spacing="leading"):
    table, models = {}, {}
    for seed, name in enumerate(("linear", "cosine")):
        torch.manual_seed(seed)  # two different untrained networks
        sched = make_schedule(name, T=1000)
        f = eps_fn(ToyMLP(), sched)
        table[name] = {S: sw_floor_ratio([ddim_sample(f, sched, x_T.clone(), steps=S, spacing=spacing)] * len(data),
                                         data, other)[0] for S in steps}
        models[name] = (f, sched)
    return table, models


def compare_in_place(dataset, x_T, data, other, steps=(10, 50, 100), spacing="leading"):
    x_T.clamp_(-1, 1)
    return compare_cheap()(dataset, x_T, data, other, steps, spacing)


# ============================================================================ chapter 3
def ddim_timesteps_good(T, steps, spacing="leading"):
    if spacing == "leading":
        return [i * (T // steps) for i in range(steps)]
    if spacing == "trailing":
        return sorted(int(round(T - k * T / steps)) - 1 for k in range(steps))
    if steps == 1:
        return [0]
    ts = [int((k * math.sqrt(0.8 * T) / (steps - 1)) ** 2) for k in range(steps)]
    for k in range(1, steps):
        ts[k] = max(ts[k], ts[k - 1] + 1)
    return ts


def ddim_good(eps_fn, sched, x, t, s, eta=0.0, noise=None, *, wrap=False, sigma="right", subtract=True,
              eval_at_s=False):
    e = eps_fn(x, _full(x, max(s, 0) if eval_at_s else t))
    at = float(sched.alpha_bars[t])
    as_ = float(sched.alpha_bars[s]) if (s >= 0 or wrap) else 1.0
    x0 = (x - math.sqrt(1 - at) * e) / math.sqrt(at)
    ratio = 1 - at / as_
    sig = {"right": eta * math.sqrt((1 - as_) / (1 - at)) * math.sqrt(ratio) if ratio >= 0 else float("nan"),
           "second": eta * math.sqrt(max(ratio, 0)), "none": 0.0}[sigma]
    d = 1 - as_ - (sig ** 2 if subtract else 0)
    out = math.sqrt(as_) * x0 + math.sqrt(max(d, 0.0)) * e
    return out + sig * noise if sig > 0 else out


def invert_good(eps_fn, sched, x, s, t, *, eps_at_t=False, wrap=False, swap=False):
    e = eps_fn(x, _full(x, t if (s < 0 or eps_at_t) else s))
    a_s = float(sched.alpha_bars[s]) if (s >= 0 or wrap) else 1.0
    a_t = float(sched.alpha_bars[t])
    if swap:
        a_s, a_t = a_t, a_s
    return math.sqrt(a_t) * (x - math.sqrt(1 - a_s) * e) / math.sqrt(a_s) + math.sqrt(1 - a_t) * e


def round_trip_good(eps_fn, sched, x0, steps, *, skip_first=False, spacing_back="leading"):
    ts = ddim_timesteps_good(sched.T, steps)
    x, s = x0, -1
    for t in ts:
        if not (skip_first and s < 0):
            x = invert_good(eps_fn, sched, x, s, t)
        s = t
    return x, ddim_sample(eps_fn, sched, x, steps=steps, eta=0.0, spacing=spacing_back)


def fewest_good(eps_fn, sched, x_T, data, floor, candidates=(10, 20, 50), ratio=1.5, *, last=False, strict=False):
    found = None
    for steps in candidates:
        x = ddim_sample(eps_fn, sched, x_T, steps=steps, eta=0.0)
        if sliced_wasserstein(x, data) <= ratio * floor:
            found = steps
            if not last:
                return steps
    return found if last else (candidates[-1] if strict else None)


# ============================================================================ chapter 4
def score_good(eps_fn, sde, *, sign=-1.0, power=0.5, index="step"):
    def score(x, t):
        var = _b(1 - sde.alpha_bar(t), x)
        idx = {"step": sde.timestep(t), "time": t, "tN": t * sde.N}[index]
        return sign * eps_fn(x, idx) / var ** power
    return score


def dsm_good(score_fn, x0, t, eps, ab, *, sign=1.0, red="norm", power=0.5):
    a = _b(ab[t], x0)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    d = (score_fn(xt, t) + sign * eps / (1 - a) ** power) ** 2
    return d.flatten(1).sum(1).mean() if red == "norm" else d.mean()


def langevin_good(score_fn, x, delta, z, *, half=True, noise="sqrt"):
    nz = {"sqrt": math.sqrt(delta), "lin": delta, "none": 0.0}[noise]
    return x + (delta / 2 if half else delta) * score_fn(x) + nz * z


def rsde_good(score_fn, sde, x, t, dt, z, *, sign=-1.0, forward=False, g2=True, noise="sqrt", half=False):
    tt = _full(x, t, torch.float64)
    beta = _b(sde.beta(tt), x)
    drift = -0.5 * beta * x + sign * (beta if g2 else beta.sqrt()) * (0.5 if half else 1.0) * score_fn(x, tt)
    nz = {"sqrt": math.sqrt(dt), "lin": dt}[noise]
    return x + (dt if forward else -dt) * drift + beta.sqrt() * nz * z


def pf_good(score_fn, sde, x, t, *, half=True, sign=-1.0, with_f=True):
    tt = _full(x, t, torch.float64)
    beta = _b(sde.beta(tt), x)
    return (-0.5 * beta * x if with_f else 0) + sign * (0.5 if half else 1.0) * beta * score_fn(x, tt)


def tweedie_good(score_fn, x_t, alpha_bar, *, root=True, var=True, sign=1.0):
    s = score_fn(x_t)
    coef = (1 - alpha_bar) if var else math.sqrt(1 - alpha_bar)
    return (x_t + sign * coef * s) / (math.sqrt(alpha_bar) if root else alpha_bar)


def tweedie_tensor(score_fn, x_t, alpha_bar):
    """Differently written and still right: ᾱ as a tensor of x_t's dtype, the two terms divided separately."""
    a = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
    return x_t / a.sqrt() + (1 - a) / a.sqrt() * score_fn(x_t.clone())


def npm_good(x, x0s, ab, *, naive=False, sign=1.0, uniform=False, divide=True):
    diff = x[:, None, :] - math.sqrt(ab) * x0s[None]
    logw = -(diff ** 2).sum(-1) / (2 * (1 - ab))
    if uniform:
        w = torch.full_like(logw, 1.0 / logw.shape[1])
    elif naive:
        w = logw.exp() / logw.exp().sum(1, keepdim=True)
    else:
        w = torch.softmax(logw, 1)
    return sign * (w[..., None] * diff).sum(1) / (math.sqrt(1 - ab) if divide else 1.0)


GOOD = {
    "ddpm_loss": loss, "q_posterior": posterior, "ddpm_step": dstep, "train_and_sample": fresh_data,
    "ddim_step": ddim_good, "ddim_timesteps": ddim_timesteps_good, "ddim_invert_step": invert_good,
    "ddim_round_trip": round_trip_good, "fewest_ddim_steps": fewest_good,
    "score_from_eps_fn": score_good, "dsm_loss": dsm_good, "langevin_step": langevin_good,
    "reverse_sde_step": rsde_good, "pf_ode_drift": pf_good, "noise_posterior_mean": npm_good,
    "compare_schedules": compare_good, "tweedie_posterior_mean": tweedie_good,
}


WRONG = [
    # chapter 2 — the loss
    ("ddpm_loss", lambda *a: loss(*a, sqrt=False), "without the square roots"),
    ("ddpm_loss", lambda *a: loss(*a, tshift=-1), "call the network at t − 1"),
    ("ddpm_loss", lambda *a: loss(*a, feed_x0=True), "feed x0 to the network"),
    ("ddpm_loss", lambda *a: loss(*a, red="sum"), "sum the squared errors"),
    ("ddpm_loss", lambda m, x0, t, e, ab, tg: loss(m, x0, t, e, ab, tg, goal_override="x0" if tg == "eps" else "eps"),
     "regress the"),
    ("ddpm_loss", lambda m, x0, t, e, ab, tg: loss(m, x0, t, e, ab, tg).item(), "not a tensor"),
    ("ddpm_loss", lambda m, x0, t, e, ab, tg: loss(m, x0, t, e, ab, tg).detach(), "no gradient"),
    ("ddpm_loss", lambda m, x0, t, e, ab, tg: (m(x0, t) - e) ** 2, "expected a single number"),
    ("ddpm_loss", lambda m, x0, t, e, ab, tg: loss(m, x0, t, e, ab, tg) * float("nan"), "returned nan"),
    # chapter 2 — the posterior
    ("q_posterior", lambda *a: posterior(*a, swap=True), "swap the two coefficients"),
    ("q_posterior", lambda *a: (posterior(*a)[0], posterior(*a)[1].flatten()),
     "one number per example, but shaped to broadcast against x's *last* axis"),
    ("q_posterior", lambda *a: posterior(*a, prev="same"), "use ᾱ_t where the formula has ᾱ_{t−1}"),
    ("q_posterior", lambda *a: posterior(*a, prev="wrap"), "wraps round to the last entry"),
    ("q_posterior", lambda *a: (posterior(*a)[0], posterior(*a, var_kind="beta")[1]), "return β_t"),
    ("q_posterior", lambda *a: posterior(*a)[0], "expected a pair"),
    ("q_posterior", lambda x0, xt, t, b: (posterior(x0, xt, t, b)[0][:, :1], posterior(x0, xt, t, b)[1]),
     "shape differs"),
    ("q_posterior", lambda x0, xt, t, b: (posterior(x0, xt, t, b)[0].double(), posterior(x0, xt, t, b)[1]),
     "dtype differs"),
    # chapter 2 — the ancestral step
    ("ddpm_step", lambda *a: dstep(*a, noise_at_0=True), "add noise at t = 0"),
    ("ddpm_step", lambda *a: dstep(*a, coef_sqrt=False), "no square root"),
    ("ddpm_step", lambda *a: dstep(*a, div_alpha=False), "forget to divide by sqrt(α_t)"),
    ("ddpm_step", lambda *a: dstep(*a, var_sqrt=False), "instead of the standard deviation"),
    ("ddpm_step", lambda *a: dstep(*a, other_var=True), "use the other variance"),
    ("ddpm_step", lambda *a: dstep(*a, tshift=-1), "call eps_fn at t − 1"),
    ("ddpm_step", lambda e, s, x, t, z, v: dstep(e, s, x, t, z, v) * float("nan"), "contains NaN"),
    # chapter 2 — the experiment (stand-ins for a trained model)
    ("train_and_sample", lambda d, n, g: torch.randn(n, 2, generator=g), "look like pure noise"),
    ("train_and_sample", lambda d, n, g: fresh_data(d, n, g) + 0.3, "not yet good enough"),
    ("train_and_sample", lambda d, n, g: fresh_data(d, n - 1, g), "shape differs"),
    ("train_and_sample", lambda d, n, g: fresh_data(d, n, g).numpy(), "not a torch.Tensor"),
    ("train_and_sample", unseeded_data, "ignores the generator"),
    # chapter 2 — comparing schedules (the models are trained once, then reused)
    ("compare_schedules", lambda *a: compare_good(*a, raw=True), "report the distance itself"),
    ("compare_schedules", lambda *a: compare_good(*a, swap_rows=True), "swap the rows"),
    ("compare_schedules", lambda d, x, da, o, st, sp: compare_good(d, x, da, o, st, "trailing"),
     "sample with spacing='trailing'"),
    ("compare_schedules", lambda *a: compare_good(*a, fresh=True), "Is every run started from the given x_T"),
    ("compare_schedules", lambda *a: compare_good(*a, nets={"linear": "cosine", "cosine": "linear"}),
     "does not fit the linear schedule better"),
    ("compare_schedules", compare_untrained, "far from the data"),
    ("compare_schedules", compare_cheap(linear=lambda: (eps_fn(toy_models("cosine")[0], make_schedule("linear", 1000)),
                                                        make_schedule("linear", 1000)),
                                        cosine=lambda: (eps_fn(toy_models("cosine")[0], make_schedule("cosine", 1000)),
                                                        make_schedule("cosine", 1000))), "identical outputs"),
    ("compare_schedules", compare_cheap(cosine=(lambda x, t: x, make_schedule("linear", 1000))),
     "comes with the linear schedule"),
    ("compare_schedules", compare_cheap(linear=(lambda x, t: x, make_schedule("linear", 200)),
                                        cosine=(lambda x, t: -x, make_schedule("cosine", 200))), "x_T is not noise"),
    ("compare_schedules", compare_cheap(linear=(lambda x, t: x, make_schedule("linear", 1000)),
                                        cosine=(lambda x, t: -x, make_schedule("cosine", 500))), "different lengths"),
    ("compare_schedules", compare_cheap(table={"linear": {"10": 1.0}, "cosine": {}}), "the numbers of DDIM steps"),
    ("compare_schedules", lambda *a: compare_cheap()(*a)[0], "expected a pair (table, models)"),
    ("compare_schedules", compare_in_place, "changed its input `x_T` in place"),
    # chapter 3
    ("ddim_step", lambda *a: ddim_good(*a, wrap=True), "NaN at s = −1"),
    ("ddim_step", lambda *a: ddim_good(*a, sigma="second"), "leave out the first factor"),
    ("ddim_step", lambda *a: ddim_good(*a, sigma="none"), "ignore η"),
    ("ddim_step", lambda *a: ddim_good(*a, subtract=False), "take σ² out of the direction"),
    ("ddim_step", lambda *a: ddim_good(*a, eval_at_s=True), "call eps_fn at s instead of t"),
    ("ddim_step", lambda e, s, x, t, ss, eta, z: ddim_good(e, s, x, t, ss, eta, z).double(), "dtype differs"),
    ("ddim_timesteps", lambda *a: ddim_timesteps_good(*a)[::-1], "decreasing order"),
    ("ddim_timesteps", lambda *a: [t + 1 for t in ddim_timesteps_good(*a)], "Off by one"),
    ("ddim_timesteps", lambda T, S, sp: [float(t) for t in ddim_timesteps_good(T, S, sp)], "of an integer type (int)"),
    ("ddim_timesteps", lambda T, S, sp: (sorted({int(T - k * T / S) - 1 for k in range(S)}) if sp == "trailing"
                                         else ddim_timesteps_good(T, S, sp)), "round()"),
    ("ddim_timesteps", lambda T, S, sp: ([int((k * math.sqrt(0.8 * T) / max(S - 1, 1)) ** 2) for k in range(S)]
                                         if sp == "quadratic" else ddim_timesteps_good(T, S, sp)), "nudge"),
    ("ddim_invert_step", lambda *a: invert_good(*a, eps_at_t=True), "predict the noise at t"),
    ("ddim_invert_step", lambda *a: invert_good(*a, swap=True), "swap s and t"),
    ("ddim_invert_step", lambda e, s, x, ss, t: invert_good(e, s, x, ss, t)[0], "shape differs"),
    ("ddim_round_trip", lambda *a: round_trip_good(*a, skip_first=True), "skip the first step"),
    ("ddim_round_trip", lambda *a: round_trip_good(*a, spacing_back="trailing"), "different spacing"),
    ("ddim_round_trip", lambda e, s, x0, n: round_trip_good(e, s, x0, n)[0], "expected a pair"),
    ("fewest_ddim_steps", lambda *a: fewest_good(*a, last=True), "return the *first* candidate"),
    ("fewest_ddim_steps", lambda *a: fewest_good(*a, strict=True), "return None"),
    ("fewest_ddim_steps", lambda e, s, x_T, *a: fewest_good(e, s, torch.randn(x_T.shape), *a),
     "Do you start DDIM from the x_T you are given"),
    ("ddim_timesteps", lambda T, S, sp: ([int(i * T / S) for i in range(S)] if sp == "leading"
                                         else ddim_timesteps_good(T, S, sp)), "spaced them by T/steps"),
    # chapter 4
    ("score_from_eps_fn", lambda e, sde: score_good(e, sde, sign=1.0), "forget the minus sign"),
    ("score_from_eps_fn", lambda e, sde: score_good(e, sde, power=1.0), "divide by 1 − ᾱ(t) instead"),
    ("score_from_eps_fn", lambda e, sde: score_good(e, sde, index="time"), "with the continuous time"),
    ("score_from_eps_fn", lambda e, sde: score_good(e, sde, index="tN"), "off by one"),
    ("score_from_eps_fn", lambda e, sde: score_good(e, sde)(torch.zeros(3, 2), torch.ones(3)), "not a function"),
    ("dsm_loss", lambda *a: dsm_good(*a, sign=-1.0), "subtract ε/sqrt(1 − ᾱ_t)"),
    ("dsm_loss", lambda *a: dsm_good(*a, red="mean"), "average over the coordinates"),
    ("dsm_loss", lambda *a: dsm_good(*a, power=1.0), "instead of its square root"),
    ("dsm_loss", lambda *a: dsm_good(*a).detach().item(), "not a tensor"),
    ("langevin_step", lambda *a: langevin_good(*a, half=False), "forget the ½"),
    ("langevin_step", lambda *a: langevin_good(*a, noise="lin"), "by δ instead of sqrt(δ)"),
    ("langevin_step", lambda *a: langevin_good(*a, noise="none"), "leave out the noise"),
    ("langevin_step", lambda s, x, d, z: langevin_good(s, x, d, z) * float("nan"), "contains NaN"),
    ("reverse_sde_step", lambda *a: rsde_good(*a, sign=1.0), "add g²·s to the drift"),
    ("reverse_sde_step", lambda *a: rsde_good(*a, forward=True), "step forwards in time"),
    ("reverse_sde_step", lambda *a: rsde_good(*a, g2=False), "use g instead of g²"),
    ("reverse_sde_step", lambda *a: rsde_good(*a, noise="lin"), "by dt instead of sqrt(dt)"),
    ("reverse_sde_step", lambda *a: rsde_good(*a, half=True), "halve the score term"),
    ("pf_ode_drift", lambda *a: pf_good(*a, half=False), "forget the ½"),
    ("pf_ode_drift", lambda *a: pf_good(*a, sign=1.0), "add the score term"),
    ("pf_ode_drift", lambda *a: pf_good(*a, with_f=False), "leave out f"),
    ("pf_ode_drift", lambda s, sde, x, t: pf_good(s, sde, x, t).double(), "dtype differs"),
    ("noise_posterior_mean", lambda *a: npm_good(*a, naive=True), "far-out query point"),
    ("noise_posterior_mean", lambda *a: npm_good(*a, sign=-1.0), "flip the sign of ε"),
    ("noise_posterior_mean", lambda *a: npm_good(*a, uniform=True), "equal weights"),
    ("noise_posterior_mean", lambda *a: npm_good(*a, divide=False), "forget to divide by sqrt(1 − ᾱ)"),
    ("tweedie_posterior_mean", lambda *a: tweedie_good(*a, root=False), "divide by ᾱ instead of sqrt(ᾱ)"),
    ("tweedie_posterior_mean", lambda *a: tweedie_good(*a, var=False), "by sqrt(1 − ᾱ) instead of 1 − ᾱ"),
    ("tweedie_posterior_mean", lambda *a: tweedie_good(*a, sign=-1.0), "subtract the score term"),
    ("tweedie_posterior_mean", lambda s, x, a: tweedie_good(s, x, a) * math.sqrt(a), "forget to divide by sqrt(ᾱ)"),
    ("tweedie_posterior_mean", lambda s, x, a: -math.sqrt(1 - a) * s(x), "return the noise"),
    ("tweedie_posterior_mean", lambda s, x, a: tweedie_good(s, x.double(), a), "dtype differs"),
    ("tweedie_posterior_mean", lambda s, x, a: tweedie_good(s, x, a).float(), "dtype differs: yours float32"),
    ("tweedie_posterior_mean", lambda s, x, a: x.add_((1 - a) * s(x)).div_(math.sqrt(a)),
     "changed its input `x` in place"),
]


def test_chapters_register_their_exercises_in_order():
    assert checks_for_chapter(2) == ["ddpm_loss", "q_posterior", "ddpm_step", "train_and_sample", "compare_schedules",
                                     "mnist_ddpm"]
    assert checks_for_chapter(3) == ["ddim_step", "ddim_timesteps", "ddim_invert_step", "ddim_round_trip",
                                     "fewest_ddim_steps"]
    assert checks_for_chapter(4) == ["score_from_eps_fn", "dsm_loss", "langevin_step", "reverse_sde_step",
                                     "pf_ode_drift", "noise_posterior_mean", "tweedie_posterior_mean"]
    # mnist_ddpm trains for minutes: its stage 1 is tested in test_grading_ch02_mnist.py, its training by the grading test
    assert set(GOOD) == set(checks_for_chapter(2) + checks_for_chapter(3) + checks_for_chapter(4)) - {"mnist_ddpm"}


# every check on three seeds, but the schedule comparison (two trainings' worth of sampling per run) on one: its
# second seed is in test_compare_schedules_passes_differently_written_correct_code
@pytest.mark.parametrize("name, seed", [(name, seed) for name in sorted(GOOD) for seed in (None, 1, 2)
                                        if name != "compare_schedules" or seed is None])
def test_correct_code_passes(name, seed, capsys):
    assert_passes(name, GOOD[name], seed, capsys)


def test_the_checks_agree_with_the_library():
    from diffcourse.grading.ch03 import fewest_ddim_steps_reference, invert_step_reference
    from diffcourse.grading.ch04 import dsm_loss_reference, noise_posterior_mean_reference
    from diffcourse.samplers.ddim import ddim_step, ddim_timesteps
    from diffcourse.samplers.ddpm import ddpm_step
    from diffcourse.samplers.sde import score_from_eps_fn

    assert_agrees_with_the_library("ddpm_step", lambda e, s, x, t, z, v: ddpm_step(e, s, x, t, z, v))
    assert_agrees_with_the_library("ddim_step", lambda e, s, x, t, ss, eta, z: ddim_step(e, s, x, t, ss, eta, z))
    assert_agrees_with_the_library("ddim_timesteps", ddim_timesteps)
    assert_agrees_with_the_library("ddim_invert_step", invert_step_reference)
    inverted = lambda e, s, x0, n: ddim_invert(e, s, x0, steps=n, spacing="leading")  # noqa: E731
    assert_agrees_with_the_library("ddim_round_trip", lambda e, s, x0, n: (
        inverted(e, s, x0, n), ddim_sample(e, s, inverted(e, s, x0, n), steps=n, spacing="leading")))
    assert_agrees_with_the_library("fewest_ddim_steps", fewest_ddim_steps_reference)
    assert_agrees_with_the_library("score_from_eps_fn", score_from_eps_fn)
    assert_agrees_with_the_library("dsm_loss", dsm_loss_reference)
    assert_agrees_with_the_library("noise_posterior_mean", noise_posterior_mean_reference)


@pytest.mark.parametrize("name, wrong, words", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_code_is_caught_with_a_useful_message(name, wrong, words, capsys):
    assert_caught(name, wrong, words, capsys)


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_float32_coefficients_of_the_posterior_are_named(seed, capsys):
    """1 − ᾱ_t cancels in float32 at small t: the check names it whatever the seed (a fixed float32 case on the
    linear schedule covers it when the random schedules do not)."""
    result = check("q_posterior", lambda *a: posterior(*a, low_precision=True), seed=seed)
    assert not result.passed and "compute the coefficients in float32" in capsys.readouterr().out


@pytest.mark.parametrize("seed", [None, 1, 2])
def test_fixed_cases_catch_what_random_ones_may_miss(seed):
    """Whatever the seed: T not a multiple of the steps ("leading" spaced by T/steps) and fresh noise instead of the
    given x_T are caught."""
    float_spacing = check("ddim_timesteps", lambda T, S, sp: ([int(i * T / S) for i in range(S)] if sp == "leading"
                                                                else ddim_timesteps_good(T, S, sp)), seed=seed, quiet=True)
    assert not float_spacing.passed and "spaced them by T/steps" in float_spacing.message
    fresh = check("fewest_ddim_steps", lambda e, s, x_T, *a: fewest_good(e, s, torch.randn(x_T.shape), *a),
                  seed=seed, quiet=True)
    assert not fresh.passed and "Do you start DDIM from the x_T you are given" in fresh.message


def test_timesteps_of_any_integer_type_are_accepted():
    assert check("ddim_timesteps", lambda *a: np.array(ddim_timesteps_good(*a)), quiet=True)
    assert check("ddim_timesteps", lambda *a: [np.int64(t) for t in ddim_timesteps_good(*a)], quiet=True)
    assert check("ddim_timesteps", lambda *a: torch.tensor(ddim_timesteps_good(*a)), quiet=True)
    assert check("fewest_ddim_steps", lambda *a: None if fewest_good(*a) is None else np.int64(fewest_good(*a)),
                 quiet=True)
    floats = check("ddim_timesteps", lambda *a: [float(t) for t in ddim_timesteps_good(*a)], quiet=True)
    assert not floats.passed and "(a float)" in floats.message and "integer type" in floats.message


def test_compare_schedules_passes_differently_written_correct_code(capsys):
    result = check("compare_schedules", compare_own_ddim, seed=1)
    skip_if_too_slow(result)
    assert result.passed, capsys.readouterr().out


def test_tweedie_passes_differently_written_correct_code():
    assert check("tweedie_posterior_mean", tweedie_tensor, quiet=True)
    assert check("tweedie_posterior_mean", tweedie_tensor, seed=5, quiet=True)


@pytest.mark.parametrize("name", ["ddpm_step", "ddim_round_trip", "train_and_sample", "noise_posterior_mean",
                                  "compare_schedules", "tweedie_posterior_mean"])
def test_an_endless_loop_fails_within_the_time_limit(name, capsys):
    assert_times_out(name, capsys)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_an_unwritten_stub_says_so(name):
    assert_stub_says_so(name)
