r"""Checks for chapter 8, *Latent diffusion* (``solutions/08_latent_diffusion.ipynb``).

===================  ========================================================================  ==========================================
exercise             learner's signature                                                       reference
===================  ========================================================================  ==========================================
reparameterize       ``reparameterize(mean, logvar, eps)``                                     `diffcourse.latent.reparameterize`
gaussian_kl          ``gaussian_kl(mean, logvar)`` → ``(B,)``                                  `diffcourse.latent.gaussian_kl`
latent_scale_factor  ``latent_scale_factor(z)`` → a float                                      `diffcourse.latent.latent_scale_factor`
cross_attention      ``cross_attention(x, context, w_q, w_k, w_v, mask=None)`` → (out, attn)   `diffcourse.latent.cross_attention`
latent_sample        ``latent_sample(eps_fn, schedule, decode, shape, *, scale, steps, eta,    `diffcourse.latent.latent_sample`
                     generator)``
time_per_item        ``time_per_item(fn, n_items, repeats)`` → seconds per item                `diffcourse.latent.time_per_item`
===================  ========================================================================  ==========================================

Each check names the usual mistakes with the output each one gives: the variance used as the standard
deviation, a KL without its ½ or its −1, a scale multiplied where it should divide, keys and values swapped,
the softmax over the wrong axis, a mask applied after the softmax, decoding before un-scaling …
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..latent import cross_attention as cross_attention_reference
from ..latent import gaussian_kl as gaussian_kl_reference
from ..latent import latent_sample as latent_sample_reference
from ..latent import latent_scale_factor as latent_scale_factor_reference
from ..latent import reparameterize as reparameterize_reference
from ..latent import time_per_item as time_per_item_reference
from ..samplers.ddim import ddim_sample
from ..samplers.ddpm import ddpm_sample
from ..schedules import make_schedule
from .compare import as_float, as_pair, describe, expect_close, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import FakeEps, Fn, batch, expect_uses_generator, randint, uniform

CHAPTER = 8


def _same_tensors(a: Any, b: Any) -> bool:
    """Whether two results are equal tensors (anything else counts as the same: the shape check speaks about it)."""
    return not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape) or torch.equal(a, b)


def _same_twice(out: Any, again: Any, what: str, inputs: str, argument: str) -> None:
    """Fail when two calls with the same inputs (and the same ``argument``: noise or generator) disagree."""
    if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and out.shape == again.shape \
            and not torch.equal(out, again):
        raise Mismatch(f"{what} gave different results for the same inputs.\n   inputs: {inputs}",
                       hint=f"Draw no noise of your own (torch.randn…): use the `{argument}` argument, so that the "
                            "caller decides the randomness and a run can be repeated.")


# ----------------------------------------------------------------------------------------- (a) reparameterisation
def _reparameterize_mistakes(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes in z = mean + exp(logvar / 2)·eps, each with its output."""
    m, lv, e = mean.double(), logvar.double(), eps.double()
    return {
        "use exp(logvar), the variance σ², as the standard deviation: σ = exp(logvar / 2)": m + lv.exp() * e,
        "use logvar itself as the standard deviation (it is log σ², so σ = exp(logvar / 2))": m + lv * e,
        "use exp(−logvar / 2) = 1/σ (the sign of the exponent)": m + (-0.5 * lv).exp() * e,
        "forget the exp (mean + ½·logvar·ε)": m + 0.5 * lv * e,
        "return the mean: the noise ε·σ is what makes z a sample": m,
        "forget the mean (return σ·ε)": (0.5 * lv).exp() * e,
    }


@register_check("reparameterize", chapter=CHAPTER, references=(reparameterize_reference,),
                hint="logvar is log σ², so σ = exp(logvar / 2) = torch.exp(0.5 * logvar); return mean + σ * eps.")
def check_reparameterize(fn: Fn, ctx: CheckContext) -> str:
    for tail, dtype in (((4, 7, 7), torch.float32), ((8,), torch.float64), ((3, 5, 5), torch.float32)):
        mean = 2 * batch(ctx, tail, dtype)
        logvar = (torch.rand(mean.shape, generator=ctx.gen, dtype=dtype) * 5 - 3)  # σ from 0.22 to 2.7
        eps = torch.randn(mean.shape, generator=ctx.gen, dtype=dtype)
        what = "reparameterize(mean, logvar, eps)"
        inputs = f"mean {describe(mean)}, logvar in [−3, 2], eps like mean"
        out = ctx.call(fn, mean.clone(), logvar.clone(), eps.clone(), what=what)
        _same_twice(out, ctx.call(fn, mean.clone(), logvar.clone(), eps.clone(), what=what), what, inputs, "eps")
        expect_tensor(out, reparameterize_reference(mean, logvar, eps), what=what, inputs=inputs, rtol=1e-5,
                      atol=1e-5, mistakes=_reparameterize_mistakes(mean, logvar, eps))
    return "latents of shape (B, 4, 7, 7), (B, 8) and (B, 3, 5, 5), float32 and float64, match mean + exp(logvar/2)·eps."


# ----------------------------------------------------------------------------------------- (b) the KL term
def _kl_mistakes(mean: torch.Tensor, logvar: torch.Tensor) -> dict[str, torch.Tensor]:
    """The known mistakes in ½·Σ(μ² + σ² − 1 − log σ²) per item, each with its output."""
    m, lv = mean.double().flatten(1), logvar.double().flatten(1)
    right = m ** 2 + lv.exp() - 1 - lv
    return {
        "forget the ½": right.sum(1),
        "flip the sign: KL ≥ 0, and ½·Σ(μ² + σ² − 1 − log σ²) is already the positive form": -0.5 * right.sum(1),
        "forget the −1 (then the prior itself, μ = 0 and σ = 1, gets a KL of D/2 instead of 0)":
            0.5 * (m ** 2 + lv.exp() - lv).sum(1),
        "average over the latent's elements instead of summing (the KL of independent coordinates is their sum)":
            0.5 * right.mean(1),
        "use σ = exp(logvar / 2) where the variance σ² = exp(logvar) belongs": 0.5 * (m ** 2 + (0.5 * lv).exp() - 1 - lv).sum(1),
        "add log σ² instead of subtracting it": 0.5 * (m ** 2 + lv.exp() - 1 + lv).sum(1),
        "subtract log σ = logvar / 2 instead of log σ² = logvar": 0.5 * (m ** 2 + lv.exp() - 1 - 0.5 * lv).sum(1),
        "forget the μ² term": 0.5 * (lv.exp() - 1 - lv).sum(1),
    }


def _kl_shape_problem(out: Any, mean: torch.Tensor, inputs: str) -> None:
    """A clear message for the shapes a KL comes back in when the sum runs over the wrong dimensions."""
    if not isinstance(out, torch.Tensor) or out.shape == (mean.shape[0],):
        return
    if out.numel() == 1:
        raise Mismatch(f"your KL is one number for the whole batch (shape {tuple(out.shape)}); expected one KL per "
                       f"item, shape ({mean.shape[0]},).\n   inputs: {inputs}",
                       hint="Sum over every dimension but the batch: terms.flatten(1).sum(dim=1) (the loss averages "
                            "over the batch later).")
    if out.shape == mean.shape:
        raise Mismatch(f"your KL has the shape of the latent {tuple(out.shape)}: one term per element; expected one KL "
                       f"per item, shape ({mean.shape[0]},).\n   inputs: {inputs}",
                       hint="Sum the elementwise terms over every non-batch dimension: terms.flatten(1).sum(dim=1).")
    if out.ndim > 1 and out.shape[0] == mean.shape[0]:
        raise Mismatch(f"your KL has shape {tuple(out.shape)}: summed over some dimensions but not all; expected "
                       f"({mean.shape[0]},).\n   inputs: {inputs}",
                       hint="terms.flatten(1).sum(dim=1) sums channels and positions alike.")


@register_check("gaussian_kl", chapter=CHAPTER, references=(gaussian_kl_reference,),
                hint="terms = mean**2 + torch.exp(logvar) - 1 - logvar (elementwise); return "
                     "0.5 * terms.flatten(1).sum(dim=1): one KL per item, summed over channels and positions.")
def check_gaussian_kl(fn: Fn, ctx: CheckContext) -> str:
    cases = [((4, 7, 7), torch.float32), ((16,), torch.float64), ((2, 3, 3), torch.float64)]
    for tail, dtype in cases:
        mean = batch(ctx, tail, dtype)
        logvar = torch.rand(mean.shape, generator=ctx.gen, dtype=dtype) * 3 - 2
        what = "gaussian_kl(mean, logvar)"
        inputs = f"mean {describe(mean)}, logvar in [−2, 1]"
        out = ctx.call(fn, mean.clone(), logvar.clone(), what=what)
        _kl_shape_problem(out, mean, inputs)
        expect_tensor(out, gaussian_kl_reference(mean, logvar), what=what, inputs=inputs, rtol=1e-4, atol=1e-4,
                      mistakes=_kl_mistakes(mean, logvar))
    prior = torch.zeros(3, 4, 2, 2, dtype=torch.float64)
    out = ctx.call(fn, prior.clone(), prior.clone(), what="gaussian_kl(zeros, zeros)")
    expect_tensor(out, torch.zeros(3, dtype=torch.float64), what="gaussian_kl(mean = 0, logvar = 0)",
                  inputs="the prior itself: its KL to N(0, I) is 0", atol=1e-12,
                  mistakes={"forget the −1 (the prior then gets a KL of D/2 instead of 0)": torch.full((3,), 8.0),
                            "forget the ½ and the −1": torch.full((3,), 16.0)})
    return "one KL per item, summed over all latent elements, for (B, 4, 7, 7), (B, 16) and (B, 2, 3, 3); 0 at the prior."


# ----------------------------------------------------------------------------------------- (c) the scale factor
def _scale_mistakes(z: torch.Tensor) -> dict[str, float]:
    """Wrong scale factors, each with its value."""
    zd = z.double()
    return {
        "return std(z) itself: the factor multiplies the latents to give unit variance, so it is 1/std(z)":
            float(zd.std()),
        "divide by the variance instead of the standard deviation": 1 / float(zd.var()),
        "use 1/sqrt(mean(z²)), the root mean square, which counts the latents' mean as spread: use z.std()":
            1 / float(zd.pow(2).mean().sqrt()),
        "average the channels' standard deviations: the std over all elements also counts the differences "
        "between the channels' means": 1 / float(zd.transpose(0, 1).flatten(1).std(1).mean()),
        "use the largest value 1/max|z| instead of the standard deviation": 1 / float(zd.abs().max()),
        "measure the first latent only (use the whole batch)": 1 / float(zd[0].std()),
    }


@register_check("latent_scale_factor", chapter=CHAPTER, references=(latent_scale_factor_reference,),
                hint="One number for all latents: return 1.0 / z.std().item() (the std over every element of the batch).")
def check_latent_scale_factor(fn: Fn, ctx: CheckContext) -> str:
    found = []
    for C, dtype in ((4, torch.float32), (3, torch.float64)):
        spread = (2 + 6 * torch.rand(C, generator=ctx.gen, dtype=dtype)).reshape(1, C, 1, 1)
        offset = (2 + 2 * torch.rand(C, generator=ctx.gen, dtype=dtype)).reshape(1, C, 1, 1)  # latents' means are not 0
        z = batch(ctx, (C, 7, 7), dtype, B=randint(ctx, 24, 40)) * spread + offset
        what = "latent_scale_factor(z)"
        inputs = f"z {describe(z)} with channels of std {', '.join(f'{s:.2f}' for s in spread.flatten().tolist())}"
        out = ctx.call(fn, z.clone(), what=what)
        if isinstance(out, torch.Tensor) and out.numel() > 1:
            raise Mismatch(f"{what} returned a tensor of shape {tuple(out.shape)}; expected one number for all "
                           f"latents.\n   inputs: {inputs}",
                           hint="Stable Diffusion uses one constant for every channel: 1 / z.std() over all elements.")
        expected = latent_scale_factor_reference(z)
        found.append(expect_close(out, expected, what=what, inputs=inputs, rtol=2e-3, mistakes=_scale_mistakes(z)))
    return f"1/std(z) over all elements matches ({', '.join(f'{c:.4f}' for c in found)})."


# ----------------------------------------------------------------------------------------- (d) cross-attention
def _attention_variant(x: torch.Tensor, c: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, w_v: torch.Tensor,
                       mask: torch.Tensor | None, *, swap_kv: bool = False, axis: int = -1, divide: float | None = None,
                       mask_mode: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-attention with one mistake switched on (in float64): the output of that mistake."""
    x, c, w_q, w_k, w_v = (t.double() for t in (x, c, w_q, w_k, w_v))
    if swap_kv:
        w_k, w_v = w_v, w_k
    q, k, v = x @ w_q, c @ w_k, c @ w_v
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if divide is None else divide)
    pad = None if mask is None else ~mask.bool()[:, None, :].expand_as(scores)
    if pad is not None and mask_mode in ("right", "inverted", "zero"):
        chosen = {"right": pad, "inverted": ~pad, "zero": pad}[mask_mode]
        scores = scores.masked_fill(chosen, 0.0 if mask_mode == "zero" else float("-inf"))
    attn = scores.softmax(dim=axis)
    if pad is not None and mask_mode == "after":
        attn = attn.masked_fill(pad, 0.0)
    return attn @ v, attn


def _attention_mistakes(args: tuple, d_x: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The known mistakes in softmax(QKᵀ/√d)·V with padding masked before the softmax, each with (out, attn)."""
    d = args[2].shape[1]
    mistakes = {
        "swap keys and values (K = context @ w_v, V = context @ w_k): keys decide where to look, values what is carried":
            dict(swap_kv=True),
        "take the softmax over the queries (dim −2, the image positions) instead of over the keys (dim −1, the "
        "tokens): each image position's weights over the tokens must sum to 1": dict(axis=-2),
        "forget the 1/sqrt(d) scaling of the scores": dict(divide=1.0),
        "divide the scores by d instead of sqrt(d)": dict(divide=float(d)),
        "scale by 1/sqrt(d_x), the image features' width, instead of 1/sqrt(d), the queries' and keys' width":
            dict(divide=math.sqrt(d_x)),
    }
    if args[-1] is not None:
        mistakes.update({
            "ignore the mask: padding tokens then get attention": dict(mask_mode="ignored"),
            "invert the mask: True marks a real token, so fill −inf where the mask is False": dict(mask_mode="inverted"),
            "mask after the softmax: the zeroed padding weights leave the rest summing to less than 1; fill the "
            "scores with −inf *before* the softmax": dict(mask_mode="after"),
            "set the padding scores to 0 instead of −inf (exp(0) = 1 still gives them weight)": dict(mask_mode="zero"),
        })
    return {k: _attention_variant(*args, **v) for k, v in mistakes.items()}


def _attention_shape_problem(out: Any, attn: Any, B: int, N: int, M: int, d: int, d_c: int, inputs: str) -> None:
    """Clear messages for the shapes that give a mistake away."""
    if isinstance(out, torch.Tensor) and isinstance(attn, torch.Tensor) and out.shape == (B, N, M) \
            and attn.shape == (B, N, d):
        raise Mismatch(f"you returned (attn, out); expected (out, attn).\n   inputs: {inputs}",
                       hint="End with `return attn @ v, attn`.")
    if isinstance(out, torch.Tensor) and out.shape == (B, N, d_c):
        raise Mismatch(f"out has shape {tuple(out.shape)}: the width of the context, not of the values "
                       f"({d}).\n   inputs: {inputs}",
                       hint="Project the context to values first, v = context @ w_v, then out = attn @ v.")
    if isinstance(attn, torch.Tensor) and attn.shape == (B, M, N):
        raise Mismatch(f"attn has shape {tuple(attn.shape)} = (B, M, N); expected (B, N, M): one row of token "
                       f"weights per image position.\n   inputs: {inputs}",
                       hint="scores = q @ k.transpose(-2, -1) with q = x @ w_q (B, N, d) and k = context @ w_k (B, M, d).")


@register_check("cross_attention", chapter=CHAPTER, references=(cross_attention_reference,),
                hint="q, k, v = x @ w_q, context @ w_k, context @ w_v; scores = q @ k.transpose(-2, -1) / sqrt(d); "
                     "with a mask, scores.masked_fill(~mask[:, None, :], -inf); attn = scores.softmax(dim=-1); "
                     "return attn @ v, attn.")
def check_cross_attention(fn: Fn, ctx: CheckContext) -> str:
    d_x, d_c, d = 6, 5, 3
    for with_mask, dtype in ((False, torch.float32), (True, torch.float32), (True, torch.float64)):
        B, N, M = randint(ctx, 2, 4), randint(ctx, 8, 12), randint(ctx, 4, 7)  # M ≠ d: shapes tell out from attn
        x, c = batch(ctx, (N, d_x), dtype, B=B), batch(ctx, (M, d_c), dtype, B=B)
        w_q, w_k, w_v = (torch.randn(a, d, generator=ctx.gen, dtype=dtype) for a in (d_x, d_c, d_c))
        mask = None
        if with_mask:  # every prompt has at least one real token and at least one padding token
            lengths = torch.randint(1, M, (B,), generator=ctx.gen)
            mask = torch.arange(M)[None, :] < lengths[:, None]
        what = f"cross_attention(x, context, w_q, w_k, w_v, mask={'mask' if with_mask else 'None'})"
        inputs = (f"x {describe(x)}, context {describe(c)}, d = {d}"
                  + (f", prompt lengths {lengths.tolist()} of M = {M}" if with_mask else ""))
        args = (x, c, w_q, w_k, w_v, mask)
        res = ctx.call(fn, *(a.clone() if a is not None else None for a in args), what=what)
        out, attn = as_pair(res, what, names=("out", "attn"))
        _attention_shape_problem(out, attn, B, N, M, d, d_c, inputs)
        ref_out, ref_attn = cross_attention_reference(*args)
        mistakes = _attention_mistakes(args, d_x)
        expect_tensor(attn, ref_attn, what=f"attn of {what}", inputs=inputs, rtol=1e-4, atol=1e-5,
                      mistakes={k: v[1] for k, v in mistakes.items()})
        expect_tensor(out, ref_out, what=f"out of {what}", inputs=inputs, rtol=1e-4, atol=1e-5,
                      mistakes={k: v[0] for k, v in mistakes.items()})
    return "out and attn match without a mask and with padded prompts (float32 and float64); padding gets weight 0."


# ----------------------------------------------------------------------------------------- (e) sampling in the latent
class FakeDecoder:
    r"""A stand-in decoder: :math:`(B, C, h, w) \to (B, 1, 2h, 2w)`, :math:`\tanh(\sum_c a_c z_c + b)` upsampled.

    Nonlinear, so decoding before or after un-scaling differs; it records the shape of every latent it decodes.
    """

    def __init__(self, ctx: CheckContext, channels: int) -> None:
        self.a = torch.rand(channels, generator=ctx.gen, dtype=torch.float64) + 0.5
        self.b = uniform(ctx, -0.3, 0.3)
        self.seen: list[tuple[int, ...]] = []

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(z.shape))
        if z.ndim != 4 or z.shape[1] != len(self.a):
            raise ValueError(f"decode takes latents of shape (B, {len(self.a)}, h, w), got {tuple(z.shape)}: sample z_T "
                             "in the latent's `shape`, not the images' shape")
        y = torch.tanh((z.double() * self.a.reshape(1, -1, 1, 1)).sum(1, keepdim=True) / len(self.a) + self.b)
        return y.repeat_interleave(2, -2).repeat_interleave(2, -1).to(z.dtype)


def _latent_sample_mistakes(eps: FakeEps, sched, decode: FakeDecoder, shape: tuple[int, ...], scale: float,
                            steps: int, eta: float, seed: int) -> dict[str, torch.Tensor]:
    """Wrong ways to sample and decode, each with its images (the decoder's record is left as it was)."""
    def z0(*, eta_: float = eta, steps_: int = steps, start_scale: float = 1.0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        start = torch.randn(shape, generator=g) * start_scale
        return ddim_sample(eps, sched, start, steps=steps_, eta=eta_, generator=g)

    seen, z = list(decode.seen), z0()
    mistakes = {
        "multiply by scale before decoding instead of dividing: the model's latents are scale·z, so decode(z0 / scale)":
            decode(z * scale),
        "forget to undo the scale: decode(z0 / scale), not decode(z0)": decode(z),
        "decode first and un-scale afterwards (decode(z0) / scale): the decoder expects the unscaled latent":
            decode(z) / scale,
        "scale the starting noise instead of the result: z_T ~ N(0, I) as it is, and decode(z0 / scale)":
            decode(z0(start_scale=1 / scale) / scale),
    }
    if eta > 0:
        mistakes["ignore eta (always the deterministic DDIM)"] = decode(z0(eta_=0.0) / scale)
    if steps != 50 and sched.T >= 50:
        mistakes["ignore `steps` (ddim_sample's default is 50)"] = decode(z0(steps_=50) / scale)
    g = torch.Generator().manual_seed(seed)
    mistakes["use DDPM's ancestral sampler over all T steps instead of DDIM with `steps` steps"] = \
        decode(ddpm_sample(eps, sched, shape, generator=g) / scale)
    decode.seen[:] = seen
    return mistakes


def _decoded_shape_problem(out: Any, decode: FakeDecoder, shape: tuple[int, ...], inputs: str) -> None:
    """Clear messages when the decoder was skipped, or given something other than one latent of ``shape``."""
    if not decode.seen:
        raise Mismatch(f"your function never called `decode`.\n   inputs: {inputs}",
                       hint="The sampler runs in the latent; end with `return decode(z0 / scale)`.")
    wrong = [s for s in decode.seen if s != shape]
    if wrong:
        raise Mismatch(f"`decode` was given a tensor of shape {wrong[0]}, but the latents have shape {shape}.\n"
                       f"   inputs: {inputs}",
                       hint="Start from noise of the latent's shape: ddim_sample(eps_fn, schedule, shape, ...), then "
                            "decode the result once.")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == shape:
        raise Mismatch(f"you returned the latent z0 (shape {shape}), not the decoded images.\n   inputs: {inputs}",
                       hint="return decode(z0 / scale)")


@register_check("latent_sample", chapter=CHAPTER, references=(latent_sample_reference,),
                hint="z0 = ddim_sample(eps_fn, schedule, shape, steps=steps, eta=eta, generator=generator); "
                     "return decode(z0 / scale).")
def check_latent_sample(fn: Fn, ctx: CheckContext) -> str:
    for eta in (0.0, round(uniform(ctx, 0.3, 1.0), 2)):
        sched = make_schedule(["linear", "cosine"][randint(ctx, 0, 1)], randint(ctx, 60, 300))
        C = randint(ctx, 2, 4)
        shape = (randint(ctx, 2, 4), C, randint(ctx, 3, 5), randint(ctx, 3, 5))
        eps, decode = FakeEps(ctx), FakeDecoder(ctx, C)
        scale, steps, seed = round(uniform(ctx, 0.15, 0.6), 4), randint(ctx, 4, 12), randint(ctx, 0, 9999)
        what = f"latent_sample(eps_fn, schedule, decode, shape={shape}, scale={scale}, steps={steps}, eta={eta}, generator)"
        inputs = f"a fake ε network, the {sched.name} schedule with T = {sched.T}, a fake decoder (B, C, h, w) → (B, 1, 2h, 2w)"

        def run(g: torch.Generator) -> Any:
            out = ctx.call(fn, eps, sched, decode, shape, scale=scale, steps=steps, eta=eta, generator=g, what=what)
            _decoded_shape_problem(out, decode, shape, inputs)
            return out

        out = expect_uses_generator(run, lambda a, b: _same_tensors(a, b), what=what, seed=seed,
                                    hint="Draw the start noise (and, for η > 0, every step's noise) from the generator "
                                         "you are given: pass generator=generator to the sampler.")
        ref = latent_sample_reference(eps, sched, decode, shape, scale=scale, steps=steps, eta=eta,
                                      generator=torch.Generator().manual_seed(seed))
        expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-4,
                      mistakes=_latent_sample_mistakes(eps, sched, decode, shape, scale, steps, eta, seed))
    return "DDIM in the latent (η = 0 and η > 0) from the generator's noise, decoded once after dividing by the scale."


# ----------------------------------------------------------------------------------------- (f) a measured speed
class SleepyWork:
    """A callable whose calls take known times (it sleeps ``durations[k]`` on its k-th call, cycling); counts calls."""

    def __init__(self, durations: tuple[float, ...]) -> None:
        self.durations = durations
        self.calls = 0

    def __call__(self) -> None:
        time.sleep(self.durations[self.calls % len(self.durations)])
        self.calls += 1


@register_check("time_per_item", chapter=CHAPTER, references=(time_per_item_reference,), timeout=20.0,
                hint="Call fn() exactly `repeats` times, timing each call with time.perf_counter(); return "
                     "min(times) / n_items (the fastest call is the least disturbed by other work).")
def check_time_per_item(fn: Fn, ctx: CheckContext) -> str:
    for durations in ((0.06, 0.02, 0.15, 0.09), (0.08, 0.03)):
        n, work = randint(ctx, 25, 40), SleepyWork(durations)  # many items: a total never passes for a sum per item
        repeats = len(durations)
        what = f"time_per_item(fn, n_items={n}, repeats={repeats})"
        inputs = f"an fn whose calls take {', '.join(f'{s:g}' for s in durations)} s in turn"
        got = as_float(ctx.call(fn, work, n, repeats, what=what), what)
        if work.calls != repeats:
            raise Mismatch(f"{what} called fn {work.calls} times; expected exactly repeats = {repeats}.\n   inputs: {inputs}",
                           hint="Time each of the `repeats` calls and keep the fastest; do not call fn outside the loop.")
        best, slack = min(durations), 0.02  # a sleep overruns a little on a busy machine, never underruns
        if not best / n <= got <= (best + slack) / n:
            mistakes = {  # what each returns, before a busy machine's overrun
                "return the time of all items, not per item (divide by n_items)": (best, slack),
                "average the repeats: the minimum is the least disturbed by other work": (sum(durations) / repeats / n,
                                                                                           slack / n),
                "add up the repeats": (sum(durations) / n, repeats * slack / n),
                "keep the slowest call instead of the fastest": (max(durations) / n, slack / n)}
            named = next((k for k, (v, over) in mistakes.items() if v <= got <= v + over), None)
            raise Mismatch(f"{what} gave {got:.4g} s per item; the fastest call took {best:g} s for {n} items, "
                           f"{best / n:.4g} s per item (a little more on a busy machine).\n   inputs: {inputs}"
                           + (f"\n   That is what you get if you {named}." if named else ""))
    return "the fastest of the repeats, per item, on calls of known length."
