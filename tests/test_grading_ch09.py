"""Checks of chapter 9: right code passes, deliberately wrong code is caught with a message that names the mistake.

The correct implementations are written here from the equations (not imported from the package, and written
differently from it: other pooling calls, other orderings), so a check and its reference cannot agree by accident.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from diffcourse.samplers.ddim import ddim_timesteps, ddim_update
from grading_helpers import assert_agrees_with_the_library  # tests/grading_helpers.py
from grading_suite import chapter_tests  # tests/grading_suite.py


pytestmark = pytest.mark.usefixtures("fresh_grading")  # see tests/conftest.py


def _ab(sched, i, wrap=False):
    return float(sched.alpha_bars[i]) if (i >= 0 or wrap) else 1.0


# ============================================================================ correct code, with switches for mistakes
def replace(x_s, x0, mask, sched, s, noise, *, clean=False, swap=False, sqrt=True, level=0, wrap=False,
            everywhere=False):
    a = _ab(sched, s + level, wrap)
    known = x0 if clean else ((math.sqrt(a) * x0 + math.sqrt(1 - a) * noise) if sqrt else a * x0 + (1 - a) * noise)
    if everywhere:
        return known
    keep = mask.bool().expand_as(x_s)
    if swap:
        keep = ~keep
    return torch.where(keep, known, x_s)


def jump(sched, x_prev, t, noise, *, var="beta", sqrt=True, shrink=True, with_noise=True, shift=0, from_x0=False):
    b = sched.betas[t + shift].item()
    if from_x0:
        a = sched.alpha_bars[t].item()
        return math.sqrt(a) * x_prev + math.sqrt(1 - a) * noise
    v = {"beta": b, "abar": 1 - sched.alpha_bars[t].item()}[var]
    scale = math.sqrt(1 - b) if shrink else 1.0
    if not sqrt:
        return (1 - b) * x_prev + v * noise
    return scale * x_prev + (math.sqrt(v) * noise if with_noise else 0)


def jump_own_noise(sched, x_prev, t, noise):
    return jump(sched, x_prev, t, torch.randn_like(noise))


def start(x, sched, strength, noise, *, shift=0, floor=False, wrap=False, as_variance=False, sqrt=True):
    T = sched.T
    if as_variance:
        return math.sqrt(1 - strength) * x + math.sqrt(strength) * noise
    k = (int(strength * T) if floor else round(strength * T)) - 1 + shift
    if k < 0 and not wrap:
        return x.clone()
    a = sched.alpha_bars[k].to(x.dtype)
    return (a.sqrt() * x + (1 - a).sqrt() * noise) if sqrt else a * x + (1 - a) * noise


def lp(x, factor, *, pool="avg", up="nearest", keep_small=False, only_up=False):
    if only_up:
        return F.interpolate(x, scale_factor=factor, mode="nearest")
    B, C, H, W = x.shape
    blocks = x.reshape(B, C, H // factor, factor, W // factor, factor)
    small = {"avg": blocks.mean((3, 5)), "max": blocks.amax((3, 5)), "sum": blocks.sum((3, 5)),
             "sub": x[..., ::factor, ::factor]}[pool]
    if keep_small:
        return small
    if up == "nearest":
        return F.interpolate(small, scale_factor=factor, mode="nearest")
    return F.interpolate(small, scale_factor=factor, mode=up, align_corners=False)


def ilvr(x_s, ref, sched, s, noise, factor, *, clean=False, subtract=True, keep_details=True, swap=False,
         sqrt=True, wrap=False):
    a = _ab(sched, s, wrap)
    ref_s = ref if clean else ((math.sqrt(a) * ref + math.sqrt(1 - a) * noise) if sqrt else a * ref + (1 - a) * noise)
    if swap:
        x_s, ref_s = ref_s, x_s
    details = (x_s - lp(x_s, factor) if subtract else x_s) if keep_details else 0
    return details + lp(ref_s, factor)


def _cfg(model, y, w):
    def eps(x, t):
        tt = torch.as_tensor(t).long().reshape(-1).expand(x.shape[0])
        e_c = model(x, tt, y)
        if w == 1.0:
            return e_c
        e_u = model(x, tt, torch.full_like(y, model.label.null_label))
        return e_u + w * (e_c - e_u)
    return eps


def relabel(model, sched, x0, y_src, y_new, steps, w, *, y_inv="src", w_inv=1.0, w_dec=None, y_dec="new",
            return_noise=False):
    """Written with the loop by hand (ddim_update), not with ddim_invert/ddim_sample."""
    null = torch.full_like(y_src, model.label.null_label)
    ys = {"src": y_src, "new": y_new, "null": null}
    ts = ddim_timesteps(sched.T, steps, "trailing")  # the samplers' default spacing
    eps_inv = _cfg(model, ys[y_inv], w_inv)
    x, s = x0, -1
    for t in ts:
        x = ddim_update(x, eps_inv(x, s if s >= 0 else t), sched, s, t)
        s = t
    if return_noise:
        return x
    eps_dec = _cfg(model, ys[y_dec], w if w_dec is None else w_dec)
    grid = ts[::-1] + [-1]
    for t, s in zip(grid[:-1], grid[1:]):
        x = ddim_update(x, eps_dec(x, t), sched, t, s)
    return x


GOOD = {"replace_known": replace, "repaint_jump": jump, "sdedit_start": start, "low_pass": lp,
        "ilvr_correct": ilvr, "relabel": relabel}


WRONG = [
    ("replace_known", lambda *a: replace(*a, clean=True), "put the clean x0 in the known region"),
    ("replace_known", lambda *a: replace(*a, swap=True), "swap the roles of the mask"),
    ("replace_known", lambda *a: replace(*a, sqrt=False), "forget the square roots"),
    ("replace_known", lambda *a: replace(*a, everywhere=True), "overwrite every pixel"),
    ("replace_known", lambda x_s, x0, m, sc, s, z: replace(x_s, x0, m, sc, s, z, level=1 if s + 1 < sc.T else 0),
     "level s + 1"),
    ("replace_known", lambda *a: replace(*a, wrap=True), "alpha_bars[s] at s = −1"),
    ("replace_known", lambda x_s, x0, m, sc, s, z: replace(x_s, x0, m, sc, s, z).double(), "dtype differs"),
    ("repaint_jump", lambda *a: jump(*a, var="abar"), "variance 1 − ᾱ_t of the whole chain"),
    ("repaint_jump", lambda *a: jump(*a, from_x0=True), "as if x_prev were x_0"),
    ("repaint_jump", lambda *a: jump(*a, sqrt=False), "forget the square roots"),
    ("repaint_jump", lambda *a: jump(*a, shrink=False), "forget to shrink"),
    ("repaint_jump", lambda *a: jump(*a, with_noise=False), "forget the fresh noise"),
    ("repaint_jump", lambda sc, x, t, z: jump(sc, x, t, z, shift=-1 if t >= 1 else 0), "use β_{t−1}"),
    ("repaint_jump", jump_own_noise, "Use the `noise` argument"),
    ("sdedit_start", lambda *a: start(*a, wrap=True), "at strength 0"),
    ("sdedit_start", lambda x, sc, st, z: start(x, sc, st, z, shift=1 if st < 1 else 0), "instead of round(strength·T) − 1"),
    ("sdedit_start", lambda x, sc, st, z: x.clone() if st == 0 else start(x, sc, st, z, shift=1),
     "not round(strength·T)"),  # strength 0 special-cased: the off-by-one shows as an IndexError at strength 1
    ("sdedit_start", lambda *a: start(*a, floor=True), "round down with int()"),
    ("sdedit_start", lambda *a: start(*a, as_variance=True), "as the noise variance"),
    ("sdedit_start", lambda *a: start(*a, sqrt=False), "forget the square roots"),
    ("low_pass", lambda *a: lp(*a, pool="max"), "max pooling"),
    ("low_pass", lambda *a: lp(*a, pool="sub"), "subsample every factor-th pixel"),
    ("low_pass", lambda *a: lp(*a, up="bilinear"), "upsample bilinearly"),
    ("low_pass", lambda *a: lp(*a, up="bicubic"), "upsample bicubically"),
    ("low_pass", lambda *a: lp(*a, pool="sum"), "sum each block"),
    ("low_pass", lambda *a: lp(*a, keep_small=True), "did not upsample back"),
    ("low_pass", lambda *a: lp(*a, only_up=True), "upsampled without downsampling"),
    ("ilvr_correct", lambda *a: ilvr(*a, clean=True), "clean reference instead of its noised version"),
    ("ilvr_correct", lambda *a: ilvr(*a, subtract=False), "without removing the sample's own"),
    ("ilvr_correct", lambda *a: ilvr(*a, keep_details=False), "return φ(ref_s)"),
    ("ilvr_correct", lambda *a: ilvr(*a, swap=True), "swap the sample and the reference"),
    ("ilvr_correct", lambda *a: ilvr(*a, sqrt=False), "forget the square roots"),
    ("ilvr_correct", lambda *a: ilvr(*a, wrap=True), "alpha_bars[s] at s = −1"),
    ("relabel", lambda *a: relabel(*a, y_inv="new"), "invert with the new label"),
    ("relabel", lambda *a: relabel(*a, y_inv="null"), "invert with the null label"),
    ("relabel", lambda *a: relabel(*a, w_inv=a[-1]), "invert with guidance w"),
    ("relabel", lambda *a: relabel(*a, w_dec=1.0), "decode without guidance"),
    ("relabel", lambda *a: relabel(*a, y_dec="src"), "decode with the source label"),
    ("relabel", lambda *a: relabel(*a, return_noise=True), "return the inverted noise"),
]


(test_chapter_9_registers_its_exercises_in_order, test_correct_code_passes,
 test_wrong_code_is_caught_with_a_useful_message, test_an_endless_loop_fails_within_the_time_limit,
 test_an_unwritten_stub_says_so) = chapter_tests(
    9, ["replace_known", "repaint_jump", "sdedit_start", "low_pass", "ilvr_correct", "relabel"], GOOD, WRONG,
    endless=["repaint_jump", "relabel"])


def test_the_checks_agree_with_the_library():
    from diffcourse import editing

    for name in ("replace_known", "repaint_jump", "sdedit_start", "low_pass", "ilvr_correct", "relabel"):
        assert_agrees_with_the_library(name, getattr(editing, name))
