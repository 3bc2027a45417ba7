r"""Checks for chapter 9, *Editing with a trained diffusion model* (``solutions/09_editing.ipynb``).

=============  ============================================================  ====================================================
exercise       learner's signature                                           reference
=============  ============================================================  ====================================================
replace_known  ``replace_known(x_s, x0, mask, schedule, s, noise)``          `diffcourse.editing.replace_known`
repaint_jump   ``repaint_jump(schedule, x_prev, t, noise)``                  `diffcourse.editing.repaint_jump`
sdedit_start   ``sdedit_start(x_guide, schedule, strength, noise)``          `diffcourse.editing.sdedit_start`
low_pass       ``low_pass(x, factor)``                                       `diffcourse.editing.low_pass`
ilvr_correct   ``ilvr_correct(x_s, ref, schedule, s, noise, factor)``        `diffcourse.editing.ilvr_correct`
relabel        ``relabel(cfg_model, schedule, x0, y_src, y_new, steps, w)``  `relabel_reference` (= `diffcourse.editing.relabel`)
=============  ============================================================  ====================================================

Code timesteps are 0-based and ``s = -1`` stands for the data (ᾱ_{−1} = 1), as in `diffcourse.samplers`.
Masks are 1 where a pixel is known. Each check names the usual mistakes with the output each one gives.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..editing import ilvr_correct as ilvr_correct_reference
from ..editing import relabel as relabel_library
from ..editing import low_pass as low_pass_reference
from ..editing import repaint_jump as repaint_jump_reference
from ..editing import replace_known as replace_known_reference
from ..editing import sdedit_start as sdedit_start_reference
from ..samplers.ddim import ddim_invert, ddim_sample
from ..samplers.guidance import cfg_eps_fn
from ..schedules import NoiseSchedule, make_schedule
from .compare import describe, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import CAST_HINT, Fn, LeakyMixtureModel, batch, randint, random_schedule, uniform

CHAPTER = 9


def _abar(schedule: NoiseSchedule, i: int) -> float:
    return 1.0 if i < 0 else float(schedule.alpha_bars[i])


def _noised(x0: torch.Tensor, a: float, z: torch.Tensor) -> torch.Tensor:
    """sqrt(a)·x0 + sqrt(1 − a)·z in float64."""
    return math.sqrt(a) * x0.double() + math.sqrt(max(1 - a, 0.0)) * z.double()


def _random_mask(ctx: CheckContext, shape: tuple[int, ...]) -> torch.Tensor:
    return (torch.rand(shape, generator=ctx.gen) < 0.5).float()


# ----------------------------------------------------------------------------------------- (a) replacement
def _replace_known_mistakes(x_s: torch.Tensor, x0: torch.Tensor, m: torch.Tensor, sched: NoiseSchedule, s: int,
                            z: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes in x_s ← m·(sqrt(ᾱ_s)·x0 + sqrt(1 − ᾱ_s)·z) + (1 − m)·x_s, each with its output."""
    a = _abar(sched, s)
    xs, x0d, md, zd = x_s.double(), x0.double(), m.double(), z.double()
    known = _noised(x0, a, z)
    mistakes = {
        "put the clean x0 in the known region: the sample at level s is noisy, so the known pixels must be "
        "re-noised to level s too": md * x0d + (1 - md) * xs,
        "swap the roles of the mask (1 = known: take the noised original where the mask is 1)":
            (1 - md) * known + md * xs,
        "forget the square roots (ᾱ_s·x0 + (1 − ᾱ_s)·noise)": md * (a * x0d + (1 - a) * zd) + (1 - md) * xs,
        "overwrite every pixel with the noised original (keep the model's sample where the mask is 0)": known + 0 * xs,
    }
    if s + 1 < sched.T:
        mistakes["noise the known region to level s + 1 (where the step started) instead of s (where it ends)"] = \
            md * _noised(x0, _abar(sched, s + 1), z) + (1 - md) * xs
    if s >= 1:
        mistakes["noise the known region to level s − 1 instead of s"] = md * _noised(x0, _abar(sched, s - 1), z) + (1 - md) * xs
    if s < 0:
        mistakes["take ᾱ_s = alpha_bars[s] at s = −1: that is the *last* entry, but s = −1 means x_0 (ᾱ_{−1} = 1)"] = \
            md * _noised(x0, float(sched.alpha_bars[-1]), z) + (1 - md) * xs
    return mistakes


@register_check("replace_known", chapter=CHAPTER, references=(replace_known_reference,),
                hint="a = 1.0 if s < 0 else float(schedule.alpha_bars[s]); known = sqrt(a)·x0 + sqrt(1 − a)·noise; "
                     "return mask·known + (1 − mask)·x_s (mask = 1 where the pixel is known).")
def check_replace_known(fn: Fn, ctx: CheckContext) -> str:
    n = 0
    for mask_batch in (False, True):
        sched = random_schedule(ctx)
        T = sched.T
        for s in (-1, 0, randint(ctx, 1, T - 2), T - 1):
            x_s = batch(ctx, (1, 6, 6))
            x0, z = torch.randn(x_s.shape, generator=ctx.gen), torch.randn(x_s.shape, generator=ctx.gen)
            mask = _random_mask(ctx, (x_s.shape[0] if mask_batch else 1, 1, 6, 6))
            what = f"replace_known(x_s, x0, mask, schedule, s={s}, noise)"
            inputs = f"x_s {describe(x_s)}, mask {describe(mask)} of 0/1, the {sched.name} schedule with T = {T}"
            out = ctx.call(fn, x_s.clone(), x0.clone(), mask.clone(), sched, s, z.clone(), what=what)
            expect_tensor(out, replace_known_reference(x_s, x0, mask, sched, s, z), what=what, inputs=inputs,
                          rtol=1e-4, atol=1e-5, dtype_hint=CAST_HINT,
                          mistakes=_replace_known_mistakes(x_s, x0, mask.expand_as(x_s), sched, s, z))
            n += 1
    return f"{n} replacements (s = −1, 0, in the middle, T − 1; one mask for the batch and one per image) match."


# ----------------------------------------------------------------------------------------- (b) RePaint's jump
def _repaint_jump_mistakes(sched: NoiseSchedule, x: torch.Tensor, t: int, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes in x_t = sqrt(α_t)·x_{t−1} + sqrt(β_t)·z, each with its output."""
    beta, abar = float(sched.betas[t]), float(sched.alpha_bars[t])
    xd, zd = x.double(), z.double()
    mistakes = {
        "use the variance 1 − ᾱ_t of the whole chain q(x_t | x_0): one step up adds only β_t":
            math.sqrt(1 - beta) * xd + math.sqrt(1 - abar) * zd,
        "jump as if x_prev were x_0 (sqrt(ᾱ_t)·x + sqrt(1 − ᾱ_t)·z is q_sample; the jump starts at x_{t−1})":
            math.sqrt(abar) * xd + math.sqrt(1 - abar) * zd,
        "forget the square roots (α_t·x + β_t·z)": (1 - beta) * xd + beta * zd,
        "scale the noise by β_t instead of sqrt(β_t)": math.sqrt(1 - beta) * xd + beta * zd,
        "forget to shrink x_{t−1} by sqrt(α_t) (the variance then grows at every jump)": xd + math.sqrt(beta) * zd,
        "forget the fresh noise (re-noising is the point of the jump)": math.sqrt(1 - beta) * xd,
    }
    if t >= 1:
        b1 = float(sched.betas[t - 1])
        mistakes["use β_{t−1} (the level you jump from) instead of β_t (the level you jump to)"] = \
            math.sqrt(1 - b1) * xd + math.sqrt(b1) * zd
    return mistakes


@register_check("repaint_jump", chapter=CHAPTER, references=(repaint_jump_reference,),
                hint="beta = float(schedule.betas[t]); return sqrt(1 − beta)·x_prev + sqrt(beta)·noise — one forward "
                     "step from level t − 1 up to level t, with the noise you are given.")
def check_repaint_jump(fn: Fn, ctx: CheckContext) -> str:
    n = 0
    for tail in [(2,), (1, 4, 4)]:
        sched = random_schedule(ctx)
        T = sched.T
        for t in (0, randint(ctx, 1, T // 2), randint(ctx, T // 2 + 1, T - 1)):
            x = batch(ctx, tail)
            z = torch.randn(x.shape, generator=ctx.gen)
            what = f"repaint_jump(schedule, x_prev, t={t}, noise)"
            inputs = f"x_prev {describe(x)}, the {sched.name} schedule with T = {T}"
            out = ctx.call(fn, sched, x.clone(), t, z.clone(), what=what)
            again = ctx.call(fn, sched, x.clone(), t, z.clone(), what=what)
            if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and out.shape == again.shape \
                    and not torch.equal(out, again):
                raise Mismatch(f"{what} gave different results for the same inputs.\n   inputs: {inputs}",
                               hint="Use the `noise` argument instead of drawing your own (torch.randn…): the "
                                    "caller draws it from its generator so that the edit is reproducible.")
            expect_tensor(out, repaint_jump_reference(sched, x, t, z), what=what, inputs=inputs, rtol=1e-4, atol=1e-5,
                          dtype_hint=CAST_HINT, mistakes=_repaint_jump_mistakes(sched, x, t, z))
            n += 1
    return f"{n} jumps (t = 0, low and high noise; points and 4×4 images) match sqrt(α_t)·x + sqrt(β_t)·z."


# ----------------------------------------------------------------------------------------- (c) SDEdit's start
def _sdedit_mistakes(x: torch.Tensor, sched: NoiseSchedule, strength: float, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes in x_k = sqrt(ᾱ_k)·x + sqrt(1 − ᾱ_k)·z with k = round(strength·T) − 1, each with its output."""
    T = sched.T
    k = int(round(strength * T)) - 1
    mistakes = {}
    if k < 0:
        mistakes["take ᾱ = alpha_bars[-1] at strength 0: index −1 means the data itself (ᾱ_{−1} = 1), so "
                 "strength 0 returns the input"] = _noised(x, float(sched.alpha_bars[-1]), z)
    if k + 1 <= T - 1:
        mistakes["noise to index round(strength·T) instead of round(strength·T) − 1 (code index k is the paper's "
                 "t = k + 1)"] = _noised(x, _abar(sched, k + 1), z)
    k_floor = int(strength * T) - 1
    if k_floor != k:
        mistakes["round down with int() instead of round() (t0 = round(strength·T))"] = _noised(x, _abar(sched, k_floor), z)
    mistakes["treat the strength as the noise variance 1 − ᾱ: the strength is the fraction of the T timesteps, "
             "t0 = strength·T"] = _noised(x, 1 - strength, z)
    mistakes["forget the square roots"] = _abar(sched, k) * x.double() + (1 - _abar(sched, k)) * z.double()
    return mistakes


@register_check("sdedit_start", chapter=CHAPTER, references=(sdedit_start_reference,),
                hint="k = round(strength · schedule.T) − 1 (strength 0 → k = −1, the input; strength 1 → T − 1); "
                     "a = 1.0 if k < 0 else float(schedule.alpha_bars[k]); return sqrt(a)·x_guide + sqrt(1 − a)·noise.")
def check_sdedit_start(fn: Fn, ctx: CheckContext) -> str:
    sched = random_schedule(ctx)
    T = sched.T
    k = randint(ctx, 2, T - 3)
    strengths = [0.0, 1.0, round((k + 0.7) / T, 6), round(uniform(ctx, 0.05, 0.95), 3)]
    for tail in [(1, 4, 4), (2,)]:
        for strength in strengths:
            x = batch(ctx, tail)
            z = torch.randn(x.shape, generator=ctx.gen)
            what = f"sdedit_start(x_guide, schedule, strength={strength}, noise)"
            inputs = f"x_guide {describe(x)}, the {sched.name} schedule with T = {T}"
            try:
                out = ctx.call(fn, x.clone(), sched, strength, z.clone(), what=what)
            except Mismatch as e:
                if strength == 1.0 and "IndexError" in e.message:
                    raise Mismatch(e.message + "\n   At strength 1 the start is index T − 1: round(strength·T) − 1, "
                                   "not round(strength·T) (0-based code indices).") from None
                raise
            expect_tensor(out, sdedit_start_reference(x, sched, strength, z), what=what, inputs=inputs, rtol=1e-4,
                          atol=1e-5, dtype_hint=CAST_HINT, mistakes=_sdedit_mistakes(x, sched, strength, z))
    return (f"strengths {', '.join(f'{s:g}' for s in strengths)} (0: the input itself; 1: index T − 1) "
            "on images and points match.")


# ----------------------------------------------------------------------------------------- (d) the low-pass filter
def _low_pass_mistakes(x: torch.Tensor, f: int) -> dict[str, torch.Tensor]:
    """Same-shape mistakes in avg_pool2d(x, f) followed by nearest upsampling, each with its output."""
    def up(small: torch.Tensor) -> torch.Tensor:
        return small.repeat_interleave(f, -2).repeat_interleave(f, -1)

    xd = x.double()
    avg = F.avg_pool2d(xd, f)
    return {
        "use max pooling instead of average pooling (the low-pass must keep the block means)": up(F.max_pool2d(xd, f)),
        "subsample every factor-th pixel instead of averaging each block": up(xd[..., ::f, ::f]),
        "upsample bilinearly: smoother, but not a projection (low_pass(low_pass(x)) ≠ low_pass(x)); use nearest":
            F.interpolate(avg, scale_factor=f, mode="bilinear", align_corners=False),
        "upsample bicubically: not a projection; use nearest": F.interpolate(avg, scale_factor=f, mode="bicubic",
                                                                             align_corners=False),
        "sum each block instead of averaging it (divide by factor²)": up(avg * f * f),
    }


@register_check("low_pass", chapter=CHAPTER, references=(low_pass_reference,),
                hint="small = F.avg_pool2d(x, factor) (block means); return "
                     "small.repeat_interleave(factor, -2).repeat_interleave(factor, -1) — or "
                     "F.interpolate(small, scale_factor=factor, mode='nearest'): the input's size again.")
def check_low_pass(fn: Fn, ctx: CheckContext) -> str:
    cases = [(28, 4), (28, 2), (28, 7), (12, 3), (8, 1), (randint(ctx, 2, 5) * 4, 4)]
    for size, f in cases:
        x = batch(ctx, (randint(ctx, 1, 2), size, size))
        what = f"low_pass(x, factor={f})"
        inputs = f"x {describe(x)}"
        out = ctx.call(fn, x.clone(), f, what=what)
        ref = low_pass_reference(x, f)
        if isinstance(out, torch.Tensor) and out.shape != ref.shape and out.ndim == 4:
            if tuple(out.shape[-2:]) == (size // f, size // f):
                raise Mismatch(f"shape differs: yours {tuple(out.shape)}, expected {tuple(ref.shape)}: you downsampled "
                               f"but did not upsample back.\n   inputs: {inputs}",
                               hint="The low-pass image has the input's size: repeat each block mean over its "
                                    "factor × factor block (repeat_interleave, or F.interpolate(..., mode='nearest')).")
            if tuple(out.shape[-2:]) == (size * f, size * f):
                raise Mismatch(f"shape differs: yours {tuple(out.shape)}, expected {tuple(ref.shape)}: you upsampled "
                               f"without downsampling first.\n   inputs: {inputs}",
                               hint="First average each factor × factor block (F.avg_pool2d(x, factor)), then upsample.")
        expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-5, mistakes=_low_pass_mistakes(x, f))
    return "factors 1 to 7 on 8×8 to 28×28 images match block averaging with nearest upsampling (a projection)."


# ----------------------------------------------------------------------------------------- (e) the ILVR correction
def _ilvr_mistakes(x: torch.Tensor, ref: torch.Tensor, sched: NoiseSchedule, s: int, z: torch.Tensor,
                   f: int) -> dict[str, torch.Tensor]:
    """The known mistakes in x_s − φ(x_s) + φ(sqrt(ᾱ_s)·ref + sqrt(1 − ᾱ_s)·z), each with its output."""
    def lp(v: torch.Tensor) -> torch.Tensor:
        return low_pass_reference(v, f)

    a = _abar(sched, s)
    xd, ref_s = x.double(), _noised(ref, a, z)
    mistakes = {
        "use the clean reference instead of its noised version (the sample x_s is noisy: noise ref to level s)":
            xd - lp(xd) + lp(ref.double()),
        "add the reference's low frequencies without removing the sample's own (x_s − φ(x_s) + φ(ref_s))":
            xd + lp(ref_s),
        "return φ(ref_s): keep the sample's details, x_s − φ(x_s)": lp(ref_s),
        "swap the sample and the reference (keep x_s's low frequencies, ref's details)": ref_s - lp(ref_s) + lp(xd),
        "forget the square roots when noising the reference": xd - lp(xd) + lp(a * ref.double() + (1 - a) * z.double()),
    }
    if s < 0:
        mistakes["take ᾱ_s = alpha_bars[s] at s = −1: that is the *last* entry, but s = −1 means x_0 (ᾱ_{−1} = 1)"] = \
            xd - lp(xd) + lp(_noised(ref, float(sched.alpha_bars[-1]), z))
    return mistakes


@register_check("ilvr_correct", chapter=CHAPTER, references=(ilvr_correct_reference,),
                hint="a = 1.0 if s < 0 else float(schedule.alpha_bars[s]); ref_s = sqrt(a)·ref + sqrt(1 − a)·noise; "
                     "return x_s − low_pass(x_s, factor) + low_pass(ref_s, factor).")
def check_ilvr_correct(fn: Fn, ctx: CheckContext) -> str:
    n = 0
    for size, f in ((8, 2), (12, 4)):
        sched = random_schedule(ctx)
        T = sched.T
        for s in (-1, randint(ctx, 0, T - 1), T - 1):
            x = batch(ctx, (1, size, size))
            ref, z = torch.randn(x.shape, generator=ctx.gen), torch.randn(x.shape, generator=ctx.gen)
            what = f"ilvr_correct(x_s, ref, schedule, s={s}, noise, factor={f})"
            inputs = f"x_s {describe(x)}, the {sched.name} schedule with T = {T}"
            out = ctx.call(fn, x.clone(), ref.clone(), sched, s, z.clone(), f, what=what)
            expect_tensor(out, ilvr_correct_reference(x, ref, sched, s, z, f), what=what, inputs=inputs, rtol=1e-4,
                          atol=1e-5, dtype_hint=CAST_HINT, mistakes=_ilvr_mistakes(x, ref, sched, s, z, f))
            n += 1
    return f"{n} corrections (s = −1, in the middle, T − 1; factors 2 and 4) match."


# ----------------------------------------------------------------------------------------- (f) relabel
def relabel_reference(cfg_model: LeakyMixtureModel, schedule: NoiseSchedule, x0: torch.Tensor, y_src: torch.Tensor,
                      y_new: torch.Tensor, steps: int, w: float) -> torch.Tensor:
    """`diffcourse.editing.relabel` as a learner writes it: `ddim_invert` at ``y_src`` (w = 1), then `ddim_sample`
    (η = 0) at ``y_new`` with guidance ``w``, both with the samplers' default spacing."""
    x_T = ddim_invert(cfg_eps_fn(cfg_model, y_src, 1.0), schedule, x0, steps=steps)
    return ddim_sample(cfg_eps_fn(cfg_model, y_new, w), schedule, x_T, steps=steps, eta=0.0)


def _relabel_mistakes(model: LeakyMixtureModel, sched: NoiseSchedule, x0: torch.Tensor, y_src: torch.Tensor,
                      y_new: torch.Tensor, steps: int, w: float) -> dict[str, torch.Tensor]:
    """Wrong ways to invert and decode, each with the points it gives."""
    def edit(y_inv, w_inv: float, y_dec, w_dec: float) -> torch.Tensor:
        x_T = ddim_invert(cfg_eps_fn(model, y_inv, w_inv), sched, x0, steps=steps)
        return ddim_sample(cfg_eps_fn(model, y_dec, w_dec), sched, x_T, steps=steps, eta=0.0)

    null = torch.full_like(y_src, model.label.null_label)
    return {
        "invert with the new label: invert with the image's own label y_src, decode with y_new":
            edit(y_new, 1.0, y_new, w),
        "invert with the null label (unconditional); this exercise inverts with the image's own label":
            edit(null, 1.0, y_new, w),
        "invert with guidance w: invert with the plain conditional model (w = 1), guide only the decoding":
            edit(y_src, w, y_new, w),
        "decode without guidance (w = 1) instead of with w": edit(y_src, 1.0, y_new, 1.0),
        "decode with the source label (that is the round trip, not the edit)": edit(y_src, 1.0, y_src, w),
        "return the inverted noise x_T instead of decoding it":
            ddim_invert(cfg_eps_fn(model, y_src, 1.0), sched, x0, steps=steps),
    }


@register_check("relabel", chapter=CHAPTER, references=(relabel_reference, relabel_library), timeout=30.0,
                hint="x_T = ddim_invert(cfg_eps_fn(cfg_model, y_src, 1.0), schedule, x0, steps=steps); return "
                     "ddim_sample(cfg_eps_fn(cfg_model, y_new, w), schedule, x_T, steps=steps, eta=0.0).")
def check_relabel(fn: Fn, ctx: CheckContext) -> str:
    for steps, w in ((randint(ctx, 5, 12), round(uniform(ctx, 1.5, 3.0), 2)), (randint(ctx, 3, 8), 1.0)):
        sched = make_schedule(["linear", "cosine"][randint(ctx, 0, 1)], randint(ctx, 100, 400))
        model = LeakyMixtureModel(sched, keep=0.6)
        n = randint(ctx, 20, 40)
        x0 = (torch.randn(n, 2, generator=ctx.gen) * 1.5).float()
        y_src = torch.randint(0, 8, (n,), generator=ctx.gen)
        y_new = (y_src + torch.randint(1, 8, (n,), generator=ctx.gen)) % 8
        what = f"relabel(cfg_model, schedule, x0, y_src, y_new, steps={steps}, w={w})"
        inputs = f"x0 {describe(x0)}, the exact 8-Gaussian model with a null label, the {sched.name} schedule, T = {sched.T}"
        out = ctx.call(fn, model, sched, x0.clone(), y_src.clone(), y_new.clone(), steps, w, what=what)
        ref = relabel_reference(model, sched, x0, y_src, y_new, steps, w)
        expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-4,
                      mistakes=_relabel_mistakes(model, sched, x0, y_src, y_new, steps, w))
    return "inverting at the source label and decoding at the new one with guidance w matches, with and without guidance."
