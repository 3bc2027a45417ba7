"""Checks of chapter 8: right code passes, deliberately wrong code is caught with a message that names the mistake.

The correct implementations are written here from the equations, differently from `diffcourse.latent`
(einsum, a large negative number for padding, the biased standard deviation, DDIM's update by hand), so a
check and its reference cannot agree by accident. Each has switches that turn on one known mistake.
"""
from __future__ import annotations

import math
import time

import pytest
import torch

from diffcourse.grading import check, checks_for_chapter
from diffcourse.samplers import ddpm_sample
from diffcourse.samplers.ddim import ddim_timesteps
from grading_helpers import assert_agrees_with_the_library, assert_stub_says_so, assert_times_out  # tests/grading_helpers.py

pytestmark = pytest.mark.usefixtures("fresh_grading")  # tests/conftest.py


# ============================================================================ correct code, with switches for mistakes
def reparam(mean, logvar, eps, *, std="right", with_mean=True, with_noise=True, own_noise=False):
    sigma = {"right": torch.sqrt(torch.exp(logvar)), "var": torch.exp(logvar), "logvar": logvar,
             "inverse": 1 / torch.sqrt(torch.exp(logvar)), "no_exp": 0.5 * logvar}[std]
    noise = torch.randn_like(eps) if own_noise else eps
    return (mean if with_mean else 0) + (sigma * noise if with_noise else 0 * mean)


def kl(mean, logvar, *, half=0.5, sign=1.0, minus_one=True, reduce="sum", var="right", log_sign=-1.0, log_half=False,
       mu=True):
    v = {"right": logvar.exp(), "std": (logvar / 2).exp()}[var]
    terms = (mean * mean if mu else 0) + v - (1 if minus_one else 0) + log_sign * (logvar / 2 if log_half else logvar)
    dims = tuple(range(1, mean.ndim))
    out = {"sum": lambda: terms.sum(dims), "mean": lambda: terms.mean(dims), "all": lambda: terms.sum(),
           "none": lambda: terms, "last": lambda: terms.sum(-1)}[reduce]()
    return sign * half * out


def scale_factor(z, *, how="right"):
    zd = z.double()
    centred = zd - zd.mean()
    values = {"right": lambda: 1 / centred.pow(2).mean().sqrt(),  # the biased std: a hair off 1/z.std(), still right
              "std": lambda: centred.pow(2).mean().sqrt(), "var": lambda: 1 / zd.var(),
              "rms": lambda: 1 / zd.pow(2).mean().sqrt(), "channels": lambda: 1 / zd.std(dim=(0, 2, 3)).mean(),
              "max": lambda: 1 / zd.abs().max(), "first": lambda: 1 / zd[0].std(),
              "per_channel": lambda: 1 / zd.std(dim=(0, 2, 3))}
    out = values[how]()
    return out if how == "per_channel" else float(out)


def attention(x, context, w_q, w_k, w_v, mask=None, *, swap_kv=False, axis=-1, scale="sqrt_d", mask_mode="right",
              order="out_attn", project_values=True):
    if swap_kv:
        w_k, w_v = w_v, w_k
    q = torch.einsum("bnx,xd->bnd", x, w_q)
    k = torch.einsum("bmc,cd->bmd", context, w_k)
    v = torch.einsum("bmc,cd->bmd", context, w_v) if project_values else context
    d = w_q.shape[1]
    div = {"sqrt_d": math.sqrt(d), "none": 1.0, "d": d, "sqrt_dx": math.sqrt(x.shape[-1])}[scale]
    scores = torch.einsum("bnd,bmd->bnm", q, k) / div
    if mask is not None and mask_mode in ("right", "inverted", "zero"):
        keep = mask[:, None, :] if mask_mode != "inverted" else ~mask[:, None, :]
        scores = torch.where(keep, scores, torch.tensor(0.0 if mask_mode == "zero" else -1e9, dtype=scores.dtype))
    attn = torch.softmax(scores, dim=axis)
    if mask is not None and mask_mode == "after":
        attn = attn * mask[:, None, :]
    out = torch.einsum("bnm,bmd->bnd", attn, v)
    return (attn, out) if order == "attn_out" else (out, attn)


def sample(eps_fn, schedule, decode, shape, *, scale, steps=50, eta=0.0, generator=None, unscale="divide",
           start_scale=False, use_eta=True, use_steps=True, decode_it=True, own_noise=False, ddpm=False):
    """DDIM written out: trailing timesteps, x0-prediction, then the step to the next (smaller) timestep."""
    steps, eta = (steps if use_steps else 50), (eta if use_eta else 0.0)
    draw = (lambda s: torch.randn(s)) if own_noise else (lambda s: torch.randn(s, generator=generator))
    if ddpm:
        x = ddpm_sample(eps_fn, schedule, shape, generator=generator)
    else:
        x = draw(shape) / (scale if start_scale else 1.0)
        ts = ddim_timesteps(schedule.T, steps)[::-1] + [-1]
        for t, s in zip(ts[:-1], ts[1:]):
            a_t, a_s = float(schedule.alpha_bars[t]), (float(schedule.alpha_bars[s]) if s >= 0 else 1.0)
            e = eps_fn(x, torch.full((shape[0],), t))
            x0 = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
            sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
            x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma ** 2, 0.0)) * e
            if eta > 0 and s >= 0:
                x = x + sigma * draw(x.shape)
    if decode_it != True:  # noqa: E712 — "but_return_z0": decoded, and the images thrown away
        _ = decode(x / scale) if decode_it else None
        return x
    return {"divide": lambda: decode(x / scale), "multiply": lambda: decode(x * scale), "none": lambda: decode(x),
            "after": lambda: decode(x) / scale}[unscale]()


def per_item(fn, n_items, repeats=3, *, pick=min, divide=True, calls=None):
    times = []
    for _ in range(repeats if calls is None else calls):
        start = time.monotonic()
        fn()
        times.append(time.monotonic() - start)
    return pick(times) / (n_items if divide else 1)


GOOD = {"reparameterize": reparam, "gaussian_kl": kl, "latent_scale_factor": scale_factor,
        "cross_attention": attention, "latent_sample": sample, "time_per_item": per_item}

WRONG = [
    ("reparameterize", lambda *a: reparam(*a, std="var"), "use exp(logvar), the variance σ², as the standard deviation"),
    ("reparameterize", lambda *a: reparam(*a, std="logvar"), "use logvar itself as the standard deviation"),
    ("reparameterize", lambda *a: reparam(*a, std="inverse"), "the sign of the exponent"),
    ("reparameterize", lambda *a: reparam(*a, std="no_exp"), "forget the exp"),
    ("reparameterize", lambda *a: reparam(*a, with_noise=False), "return the mean"),
    ("reparameterize", lambda *a: reparam(*a, with_mean=False), "forget the mean"),
    ("reparameterize", lambda *a: reparam(*a, own_noise=True), "use the `eps` argument"),
    ("gaussian_kl", lambda *a: kl(*a, half=1.0), "forget the ½"),
    ("gaussian_kl", lambda *a: kl(*a, sign=-1.0), "flip the sign"),
    ("gaussian_kl", lambda *a: kl(*a, minus_one=False), "forget the −1"),
    ("gaussian_kl", lambda *a: kl(*a, reduce="mean"), "average over the latent's elements instead of summing"),
    ("gaussian_kl", lambda *a: kl(*a, var="std"), "use σ = exp(logvar / 2) where the variance"),
    ("gaussian_kl", lambda *a: kl(*a, log_sign=1.0), "add log σ² instead of subtracting it"),
    ("gaussian_kl", lambda *a: kl(*a, log_half=True), "subtract log σ = logvar / 2"),
    ("gaussian_kl", lambda *a: kl(*a, mu=False), "forget the μ² term"),
    ("gaussian_kl", lambda *a: kl(*a, reduce="all"), "one number for the whole batch"),
    ("gaussian_kl", lambda *a: kl(*a, reduce="none"), "one term per element"),
    ("gaussian_kl", lambda *a: kl(*a, reduce="last"), "summed over some dimensions but not all"),
    ("latent_scale_factor", lambda z: scale_factor(z, how="std"), "return std(z) itself"),
    ("latent_scale_factor", lambda z: scale_factor(z, how="var"), "divide by the variance"),
    ("latent_scale_factor", lambda z: scale_factor(z, how="rms"), "the root mean square"),
    ("latent_scale_factor", lambda z: scale_factor(z, how="channels"), "average the channels' standard deviations"),
    ("latent_scale_factor", lambda z: scale_factor(z, how="max"), "1/max|z|"),
    ("latent_scale_factor", lambda z: scale_factor(z, how="first"), "measure the first latent only"),
    ("latent_scale_factor", lambda z: scale_factor(z, how="per_channel"), "expected one number for all latents"),
    ("cross_attention", lambda *a: attention(*a, swap_kv=True), "swap keys and values"),
    ("cross_attention", lambda *a: attention(*a, axis=-2), "take the softmax over the queries"),
    ("cross_attention", lambda *a: attention(*a, scale="none"), "forget the 1/sqrt(d) scaling"),
    ("cross_attention", lambda *a: attention(*a, scale="d"), "divide the scores by d instead of sqrt(d)"),
    ("cross_attention", lambda *a: attention(*a, scale="sqrt_dx"), "1/sqrt(d_x)"),
    ("cross_attention", lambda *a: attention(*a, mask_mode="ignored"), "ignore the mask"),
    ("cross_attention", lambda *a: attention(*a, mask_mode="inverted"), "invert the mask"),
    ("cross_attention", lambda *a: attention(*a, mask_mode="after"), "mask after the softmax"),
    ("cross_attention", lambda *a: attention(*a, mask_mode="zero"), "set the padding scores to 0 instead of −inf"),
    ("cross_attention", lambda *a: attention(*a, order="attn_out"), "you returned (attn, out)"),
    ("cross_attention", lambda *a: attention(*a, project_values=False), "the width of the context"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, unscale="multiply"), "multiply by scale before decoding"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, unscale="none"), "forget to undo the scale"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, unscale="after"), "decode first and un-scale afterwards"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, start_scale=True), "scale the starting noise"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, use_eta=False), "ignore eta"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, use_steps=False), "ignore `steps`"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, ddpm=True), "use DDPM's ancestral sampler"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, decode_it=False), "never called `decode`"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, decode_it="but_return_z0"), "you returned the latent z0"),
    ("latent_sample", lambda e, sc, dec, shape, **k: sample(e, sc, dec, (shape[0], 1, 28, 28), **k),
     "not the images' shape"),
    ("latent_sample", lambda e, sc, dec, shape, **k: sample(e, sc, dec, (shape[0], shape[1], shape[3] + 1, shape[2]), **k),
     "`decode` was given a tensor of shape"),
    ("latent_sample", lambda *a, **k: sample(*a, **k, own_noise=True), "ignores the generator"),
    ("time_per_item", lambda *a: per_item(*a, pick=lambda t: sum(t) / len(t)), "average the repeats"),
    ("time_per_item", lambda *a: per_item(*a, divide=False), "not per item"),
    ("time_per_item", lambda *a: per_item(*a, pick=sum), "add up the repeats"),
    ("time_per_item", lambda *a: per_item(*a, pick=max), "keep the slowest call"),
    ("time_per_item", lambda *a: per_item(*a, calls=1), "called fn 1 times"),
    ("time_per_item", lambda fn, n, r: per_item(fn, n, r, calls=r + 1), "expected exactly repeats"),
]


def test_chapter_8_registers_its_exercises_in_order():
    assert checks_for_chapter(8) == ["reparameterize", "gaussian_kl", "latent_scale_factor", "cross_attention",
                                     "latent_sample", "time_per_item"]
    assert set(GOOD) == set(checks_for_chapter(8))


@pytest.mark.parametrize("seed", [None, 1, 2])
@pytest.mark.parametrize("name", sorted(GOOD))
def test_correct_code_passes(name, seed, run_check):
    result, out = run_check(name, GOOD[name], seed=seed)
    assert result.passed and out.startswith(f"✅ {name} — passed"), out


def test_the_checks_agree_with_the_library():
    from diffcourse import latent

    for name in checks_for_chapter(8):
        assert_agrees_with_the_library(name, getattr(latent, name))


@pytest.mark.parametrize("name, wrong, words", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_code_is_caught_with_a_useful_message(name, wrong, words, run_check):
    result, out = run_check(name, wrong)
    assert not result.passed and out.startswith(f"❌ {name} — ") and words in out, out
    assert "Hint:" in out or "That is what you get if you" in out, "every failure says what to do"


@pytest.mark.parametrize("name", ["latent_sample", "time_per_item"])
def test_an_endless_loop_or_an_unwritten_stub_fails_and_says_why(name, capsys):
    assert_times_out(name, capsys)
    assert_stub_says_so(name)
