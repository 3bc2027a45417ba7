r"""Checks for chapter 5, *Classifier guidance* (``solutions/05_classifier_guidance.ipynb``).

The learner's functions and the references they are compared with:

=======================  ===================================================  ==========================================
exercise                 learner's signature                                  reference
=======================  ===================================================  ==========================================
classifier_log_prob_grad ``classifier_log_prob_grad(log_prob_fn, x)``         `diffcourse.samplers.guidance.classifier_log_prob_grad`
classifier_guided_eps    ``classifier_guided_eps(eps, grad, alpha_bar, s)``   `diffcourse.samplers.guidance.classifier_guided_eps`
mixture_guided_eps       ``mixture_guided_eps(gm, x, alpha_bar, k, scale)``   `mixture_guided_eps_reference` (closed form)
guided_mode_fraction     ``guided_mode_fraction(scale, k, schedule, n,        `guided_mode_fraction_reference`
                         steps, generator)``
=======================  ===================================================  ==========================================

The mixture exercises use Bayes' rule on scores with the *exact* classifier of a Gaussian mixture,
:math:`p_t(k\mid x) = r_k(x)` of the noised mixture, whose gradient has a closed form:

.. math:: \nabla_x\log r_k(x) = \frac{\mu'_k - x}{\sigma'^2} - \nabla_x\log p_t(x) = \frac{\mu'_k - \sum_j r_j\mu'_j}{\sigma'^2},

so at scale 1 the guided ε equals the exact ε of component k alone.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..data import toy2d
from ..data.toy2d import GaussianMixture
from ..samplers.ddim import ddim_sample
from ..samplers.guidance import classifier_guided_eps, classifier_log_prob_grad
from ..schedules import NoiseSchedule, make_schedule
from .compare import as_float, describe, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import Fn, expect_uses_generator, randint, random_mixture, uniform  # random_mixture: once defined here

CHAPTER = 5

# chapter 5's own wording (ᾱ_t comes as a number or a tensor here), not `fixtures.CAST_HINT`
CAST_HINT = ("Cast ᾱ_t to the dtype of eps (`torch.as_tensor(alpha_bar_t, dtype=eps.dtype)`): a float64 ᾱ times "
             "float32 noise gives float64, which the sampler then mixes with float32 images.")


def _mixture_text(gm: GaussianMixture) -> str:
    return f"a mixture of {len(gm.means)} Gaussians (std {gm.std:.3g})"


# ----------------------------------------------------------------------------------------- (a) ∇ log p(y|x)
def _linear_classifier(ctx: CheckContext, D: int, K: int, B: int, dtype: torch.dtype):
    W = torch.randn(D, K, generator=ctx.gen, dtype=dtype)
    b = torch.randn(K, generator=ctx.gen, dtype=dtype)
    y = torch.randint(0, K, (B,), generator=ctx.gen)

    def log_prob_fn(x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(x.flatten(1) @ W + b, dim=1).gather(1, y[:, None])[:, 0]

    return log_prob_fn


NO_GRAD_HINT = ("The samplers run under torch.no_grad(), where autograd records nothing. Wrap the body in "
                "`with torch.enable_grad():`, take `x = x.detach().requires_grad_(True)`, then "
                "`torch.autograd.grad(log_prob_fn(x).sum(), x)`.")


@register_check("classifier_log_prob_grad", chapter=CHAPTER, references=(classifier_log_prob_grad,),
                hint="Inside `with torch.enable_grad():` make a leaf x = x.detach().requires_grad_(True) and return "
                     "torch.autograd.grad(log_prob_fn(x).sum(), x)[0]: the sum over the batch gives every example "
                     "its own gradient, since example i's log-probability depends on x_i only.")
def check_classifier_log_prob_grad(fn: Fn, ctx: CheckContext) -> str:
    cases = []
    for tail, dtype in [((2,), torch.float32), ((1, 4, 4), torch.float32), ((3,), torch.float64)]:
        B = randint(ctx, 5, 9)
        D = math.prod(tail)
        x = torch.randn((B, *tail), generator=ctx.gen, dtype=dtype)
        cases.append((x, _linear_classifier(ctx, D, randint(ctx, 3, 10), B, dtype),
                      f"x {describe(x)}, log_prob_fn = log_softmax of a random linear classifier at random labels"))
    gm = random_mixture(ctx)
    x = 2 * torch.randn(randint(ctx, 5, 9), 2, generator=ctx.gen, dtype=torch.float64)
    k = randint(ctx, 0, len(gm.means) - 1)
    cases.append((x, lambda z: torch.log_softmax(gm.component_log_probs(z), dim=1)[:, k],
                  f"x {describe(x)}, log_prob_fn = log r_{k}(x) of {_mixture_text(gm)}"))
    what = "classifier_log_prob_grad(log_prob_fn, x)"
    for i, (x, f, inputs) in enumerate(cases):
        ref = classifier_log_prob_grad(f, x)
        p = f(x.detach()).exp().reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype)
        if i == 0:  # first in the open, as a learner would call it in the notebook
            out = ctx.call(fn, f, x.clone(), what=what)
        else:  # then as the sampler calls it: under torch.no_grad()
            try:
                with torch.no_grad():
                    out = ctx.call(fn, f, x.clone(), what=what + " under torch.no_grad()")
            except Mismatch as exc:
                if "does not require grad" in exc.message or "does not have a grad_fn" in exc.message:
                    raise Mismatch(exc.message + "\n   The check called it under torch.no_grad(), as the samplers "
                                   "do.", hint=NO_GRAD_HINT) from None
                raise
            if isinstance(out, torch.Tensor) and out.dtype.is_floating_point and out.shape == x.shape \
                    and torch.count_nonzero(out) == 0:
                raise Mismatch(f"{what} returned zeros under torch.no_grad() (as the samplers call it).\n"
                               f"   inputs: {inputs}", hint=NO_GRAD_HINT)
        expect_tensor(out, ref, what=what, inputs=inputs, rtol=1e-4, atol=1e-6, mistakes={
            "flip the sign (that is the gradient of −log p(y|x), pointing away from class y)": -ref,
            "take the gradient of p(y|x) instead of log p(y|x) (it is p(y|x) times too small)": p * ref,
            "average the log-probabilities with .mean() instead of .sum() (each gradient is divided by the "
            "batch size)": ref / x.shape[0],
        })
    return ("gradients of linear-softmax classifiers on (B, 2), (B, 1, 4, 4) and float64 inputs, and of a mixture's "
            "exact log r_k(x), match autograd — also under torch.no_grad().")


# ----------------------------------------------------------------------------------------- (b) the guided ε
@register_check("classifier_guided_eps", chapter=CHAPTER, references=(classifier_guided_eps,),
                hint="ε̂ = ε − s·sqrt(1 − ᾱ_t)·∇log p(y|x_t). When alpha_bar_t is a tensor of shape (B,), reshape it "
                     "to (B, 1, …, 1) so that it broadcasts over each example; cast it to eps.dtype.")
def check_classifier_guided_eps(fn: Fn, ctx: CheckContext) -> str:
    kinds = []
    for tail, kind in [((2,), "float"), ((1, 4, 4), "batch"), ((2,), "batch"), ((3,), "0-d")]:
        B = randint(ctx, 5, 9)
        eps = torch.randn((B, *tail), generator=ctx.gen)
        grad = 3 * torch.randn((B, *tail), generator=ctx.gen)
        s = [0.0, 1.0, uniform(ctx, 0.5, 8.0)][randint(ctx, 1, 2)] if kind != "0-d" else uniform(ctx, 0.5, 8.0)
        if kind == "float":
            ab: Any = uniform(ctx, 0.01, 0.99)
            a = torch.tensor(ab, dtype=torch.float64)
        elif kind == "0-d":
            a = torch.tensor(uniform(ctx, 0.01, 0.99), dtype=torch.float64)
            ab = a.clone()
        else:
            a = torch.rand(B, generator=ctx.gen, dtype=torch.float64) * 0.98 + 0.01
            ab = a.clone()
        a_b = a.reshape(-1, *[1] * (eps.ndim - 1)) if a.ndim == 1 else a
        e, g = eps.double(), grad.double()
        what = "classifier_guided_eps(eps, grad_log_py, alpha_bar_t, scale)"
        inputs = (f"eps {describe(eps)}, grad_log_py like eps, alpha_bar_t = "
                  f"{describe(ab) if isinstance(ab, torch.Tensor) else f'{ab:.4g}'}, scale = {s:.4g}")
        out = ctx.call(fn, eps.clone(), grad.clone(), ab.clone() if isinstance(ab, torch.Tensor) else ab, s, what=what)
        expect_tensor(out, classifier_guided_eps(eps, grad, ab, s), what=what, inputs=inputs, rtol=1e-4, atol=1e-5,
                      dtype_hint=CAST_HINT, mistakes={
                          "add the guidance term instead of subtracting it (ε points *away* from the data: "
                          "ε = −sqrt(1 − ᾱ)·score)": e + s * (1 - a_b).sqrt() * g,
                          "forget the square root (s·(1 − ᾱ_t) instead of s·sqrt(1 − ᾱ_t))": e - s * (1 - a_b) * g,
                          "use sqrt(ᾱ_t) instead of sqrt(1 − ᾱ_t)": e - s * a_b.sqrt() * g,
                          "divide by sqrt(1 − ᾱ_t) instead of multiplying (that turns ε into a score, the other "
                          "way round)": e - s * g / (1 - a_b).sqrt(),
                          "forget the scale s": e - (1 - a_b).sqrt() * g,
                      })
        kinds.append(kind)
    return "matches for ᾱ_t given as a float, a 0-d tensor and a (B,) tensor, on points and images."


# ----------------------------------------------------------------------------------------- (c) Bayes' rule, exactly
def _log_rk_grad(gm: GaussianMixture, x: torch.Tensor, k: int) -> torch.Tensor:
    r"""The exact classifier's gradient :math:`\nabla_x\log r_k(x) = (\mu_k - \sum_j r_j\mu_j)/\sigma^2` of an isotropic
    mixture (``x`` in float64)."""
    return (gm.means[k] - gm.responsibilities(x) @ gm.means) / gm.std ** 2


def _guided_eps(score: torch.Tensor, grad: torch.Tensor, alpha_bar: float, scale: float) -> torch.Tensor:
    """ε̂ = ε − s·sqrt(1 − ᾱ)·∇log p(k|x) with ε = −sqrt(1 − ᾱ)·score."""
    c = math.sqrt(1 - alpha_bar)
    return -c * score - scale * c * grad


def mixture_guided_eps_reference(gm: GaussianMixture, x: torch.Tensor, alpha_bar: float, k: int,
                                 scale: float) -> torch.Tensor:
    r"""The classifier-guided ε of the mixture's noised marginal at ᾱ towards component ``k``, in closed form (float64)."""
    gt = gm.noised(alpha_bar)
    x = x.to(torch.float64)
    return _guided_eps(gt.score(x), _log_rk_grad(gt, x, k), float(alpha_bar), scale)


def _mixture_guided_mistakes(gm: GaussianMixture, x: torch.Tensor, ab: float, k: int,
                             s: float) -> dict[str, torch.Tensor]:
    """The known mistakes in the guided ε of a mixture, each with the ε̂ it gives."""
    gt = gm.noised(ab)
    x = x.to(torch.float64)
    c = math.sqrt(1 - ab)
    score, grad = gt.score(x), _log_rk_grad(gt, x, k)
    return {
        "use the clean mixture gm instead of the noised one gm.noised(alpha_bar) (the score and the "
        "classifier must be those of x_t, not of x_0)": _guided_eps(gm.score(x), _log_rk_grad(gm, x, k), ab, s),
        "use the noised mixture for the score but the clean one for the classifier":
            _guided_eps(score, _log_rk_grad(gm, x, k), ab, s),
        "use the joint log p(x, k) (component_log_probs) instead of log p(k | x) (its log_softmax)":
            _guided_eps(score, (gt.means[k] - x) / gt.std ** 2, ab, s),
        "take the gradient of p(k|x) instead of log p(k|x)":
            _guided_eps(score, gt.responsibilities(x)[:, k:k + 1] * grad, ab, s),
        "add the guidance term instead of subtracting it": -c * score + s * c * grad,
        "forget the factor sqrt(1 − ᾱ) when turning the score into ε (ε = −sqrt(1 − ᾱ)·score)":
            -score - s * c * grad,
    }


@register_check("mixture_guided_eps", chapter=CHAPTER, references=(mixture_guided_eps_reference,),
                hint="Work with the *noised* mixture gt = gm.noised(alpha_bar): ε = −sqrt(1 − ᾱ)·gt.score(x); the exact "
                     "classifier is log p(k|x) = torch.log_softmax(gt.component_log_probs(x), dim=1)[:, k]; take its "
                     "gradient with your classifier_log_prob_grad and combine with your classifier_guided_eps.")
def check_mixture_guided_eps(fn: Fn, ctx: CheckContext) -> str:
    cases = [(toy2d.mixture("8gaussians"), 1.0), (random_mixture(ctx), 1.0), (random_mixture(ctx), 0.0),
             (random_mixture(ctx), uniform(ctx, 1.5, 6.0)), (toy2d.mixture("8gaussians"), uniform(ctx, 0.2, 0.8))]
    for gm, s in cases:
        n = randint(ctx, 6, 12)
        ab = uniform(ctx, 0.05, 0.95)
        k = randint(ctx, 0, len(gm.means) - 1)
        x = math.sqrt(ab) * gm.sample(n, ctx.gen).double() + math.sqrt(1 - ab) * torch.randn(n, 2, generator=ctx.gen,
                                                                                           dtype=torch.float64)
        what = f"mixture_guided_eps(gm, x, alpha_bar={ab:.4g}, k={k}, scale={s:.4g})"
        inputs = f"gm = {_mixture_text(gm)}, x {describe(x)}"
        out = ctx.call(fn, gm, x.clone(), ab, k, s, what=what)
        expect_tensor(out, mixture_guided_eps_reference(gm, x, ab, k, s), what=what, inputs=inputs, rtol=1e-5,
                      atol=1e-7, check_dtype=False, mistakes=_mixture_guided_mistakes(gm, x, ab, k, s))
    return ("matches the closed form on the 8 Gaussians and random mixtures, scales 0 to 6 — at scale 1 that is "
            "exactly the ε of component k alone (Bayes' rule on scores).")


# ----------------------------------------------------------------------------------------- (d) the experiment
def guided_mode_fraction_reference(scale: float, k: int, schedule: NoiseSchedule, n: int, steps: int,
                                   generator: torch.Generator) -> float:
    """Fraction of ``n`` DDIM samples (η = 0) of the 8 Gaussians, guided towards component ``k`` with the exact
    classifier at ``scale``, whose most likely component is ``k``."""
    gm = toy2d.mixture("8gaussians")

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = float(schedule.alpha_bars[int(t[0])])
        return mixture_guided_eps_reference(gm, x, ab, k, scale).to(x.dtype)

    x = ddim_sample(eps_fn, schedule, (n, 2), steps=steps, generator=generator)
    return float((gm.responsibilities(x).argmax(1) == k).double().mean())


def _fraction(value: Any, what: str) -> float:
    """A learner's fraction as a float in [0, 1], or a `Mismatch` that says what is wrong with it."""
    got = as_float(value, what)
    if not (0.0 <= got <= 1.0):
        raise Mismatch(f"{what} returned {got:.4g}, which is not a fraction between 0 and 1.",
                       hint="Return the *mean* of the boolean mask (sample in component k) as a float, not the count.")
    return got


@register_check("guided_mode_fraction", chapter=CHAPTER, references=(guided_mode_fraction_reference,), timeout=60.0,
                hint="gm = toy2d.mixture('8gaussians'); eps_fn(x, t) reads ᾱ = schedule.alpha_bars[t[0]] and returns "
                     "your mixture_guided_eps(gm, x, ᾱ, k, scale) (cast to x.dtype); x = ddim_sample(eps_fn, schedule, "
                     "(n, 2), steps=steps, generator=generator); return the fraction of x with "
                     "gm.responsibilities(x).argmax(1) == k, as a float.")
def check_guided_mode_fraction(fn: Fn, ctx: CheckContext) -> str:
    sched = make_schedule("linear", 1000)
    n, steps = 600, 20
    k = randint(ctx, 0, 7)
    what = f"guided_mode_fraction(scale, k={k}, schedule, n={n}, steps={steps}, generator)"
    seed = ctx.seed
    # the generator given, and only it, at scale 0, where the fraction (about 1/8) depends on the draws
    first = expect_uses_generator(lambda g: _fraction(ctx.call(fn, 0.0, k, sched, n, steps, g, what=what), what),
                                  lambda a, b: a == b, what=what, seed=seed,
                                  hint="Pass the generator to the sampler: ddim_sample(..., generator=generator).")
    got, ref = {}, {}
    for s in (0.0, 1.0, 3.0, round(uniform(ctx, 0.1, 0.6), 2)):
        g = torch.Generator().manual_seed(seed)
        got[s] = first if s == 0.0 else _fraction(ctx.call(fn, s, k, sched, n, steps, g, what=what), what)
        ref[s] = guided_mode_fraction_reference(s, k, sched, n, steps, torch.Generator().manual_seed(seed))
    bad = [s for s in got if abs(got[s] - ref[s]) > 0.02]
    if bad:
        table = ", ".join(f"scale {s:g}: yours {got[s]:.3f}, expected {ref[s]:.3f}" for s in got)
        message = f"fractions differ: {table}.\n   inputs: {n} samples, {steps} DDIM steps, towards component k = {k}"
        spread = max(got.values()) - min(got.values())
        if spread < 0.03 and abs(got[0.0] - ref[0.0]) < 0.03:
            message += ("\n   Your fraction does not change with the scale: is the scale passed on to your "
                        "mixture_guided_eps?")
        elif got[3.0] < 0.05 and ref[3.0] > 0.5:
            message += ("\n   Guidance pushes your samples *away* from component k: check the sign "
                        "(ε̂ = ε − s·sqrt(1 − ᾱ)·∇log p(k|x)).")
        raise Mismatch(message)
    return ("same fractions as the reference: " + ", ".join(f"scale {s:g} → {ref[s]:.2f}" for s in sorted(ref))
            + f" of {n} samples in component {k}.")
