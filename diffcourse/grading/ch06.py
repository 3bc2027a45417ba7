r"""Checks for chapter 6, *Classifier-free guidance* (``solutions/06_classifier_free_guidance.ipynb``).

The learner's functions and the references they are compared with:

=================  ===========================================================  ==========================================
exercise           learner's signature                                          reference
=================  ===========================================================  ==========================================
drop_labels        ``drop_labels(y, p_uncond, null_label, generator)``          `diffcourse.objectives.drop_labels`
cfg_combine        ``cfg_combine(eps_c, eps_u, w)``                             `diffcourse.samplers.guidance.cfg_combine`
cfg_combine_paper  ``cfg_combine_paper(eps_c, eps_u, w_prime)``                 `diffcourse.samplers.guidance.cfg_combine_paper`
cfg_mode_stats     ``cfg_mode_stats(model, schedule, k, w, n, steps, gen)``     `cfg_mode_stats_reference`
sweet_spot         ``sweet_spot(model, schedule, k, ws, n, steps, seed,         `sweet_spot_reference`
                   min_fraction, target_spread)``
=================  ===========================================================  ==========================================

The two experiments run on `LeakyMixtureModel`, an *exact* class-conditional noise predictor of the
8 Gaussians whose conditional is deliberately "leaky" (it puts only part of its mass on the asked-for
component, as an under-trained conditional model does), so that guidance has something to fix and the
checks need no training. It lives in `diffcourse.grading.fixtures`; the chapter's notebooks import it
from here (``from diffcourse.grading.ch06 import LeakyMixtureModel``), which keeps working.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from ..data import toy2d
from ..objectives import drop_labels
from ..samplers.ddim import ddim_sample
from ..samplers.guidance import cfg_combine, cfg_combine_paper
from ..schedules import NoiseSchedule, make_schedule
from .compare import as_float, describe, expect_tensor
from .core import CheckContext, Mismatch, register_check
# notebooks import LeakyMixtureModel from here
from .fixtures import Fn, LeakyMixtureModel, expect_uses_generator, randint, uniform

CHAPTER = 6


# ----------------------------------------------------------------------------------------- (a) label dropout
@register_check("drop_labels", chapter=CHAPTER, references=(drop_labels,),
                hint="u = torch.rand(y.shape, generator=generator); return torch.where(u < p_uncond, "
                     "torch.full_like(y, null_label), y) — a new tensor: the caller's y must stay as it was.")
def check_drop_labels(fn: Fn, ctx: CheckContext) -> str:
    cases = [(2000, 10, 0.1), (randint(ctx, 500, 3000), randint(ctx, 2, 9), uniform(ctx, 0.05, 0.5)),
             (randint(ctx, 20, 50), 8, 0.0), (randint(ctx, 20, 50), 8, 1.0)]
    for B, K, p in cases:
        y = torch.randint(0, K, (B,), generator=ctx.gen)
        seed = randint(ctx, 0, 10_000)
        what = f"drop_labels(y, p_uncond={p:.3g}, null_label={K}, generator)"
        inputs = f"y {describe(y)} with labels 0 … {K - 1}, null label {K}"
        out = ctx.call(fn, y, p, K, torch.Generator().manual_seed(seed), what=what)  # y changed in place: a ❌
        ref = drop_labels(y, p, K, torch.Generator().manual_seed(seed))
        if isinstance(out, torch.Tensor) and out.shape == y.shape and out.dtype != y.dtype:
            raise Mismatch(f"dtype differs: yours {out.dtype}, expected {y.dtype} (labels are integers).\n"
                           f"   inputs: {inputs}", hint="torch.full_like(y, null_label) keeps y's dtype.")
        if isinstance(out, torch.Tensor) and out.shape == y.shape and not torch.equal(out, ref):
            null_rate = float((out == K).double().mean())
            kept_ok = bool(((out == y) | (out == K)).all())
            u = torch.rand(y.shape, generator=torch.Generator().manual_seed(seed))
            if torch.equal(out, torch.where(u >= p, torch.full_like(y, K), y)) and 0 < p < 1:
                raise Mismatch(f"values differ: you drop where u ≥ p_uncond, so {null_rate:.0%} of the labels become "
                               f"null instead of {p:.0%}.\n   inputs: {inputs}",
                               hint="Drop where u < p_uncond: then a label is dropped with probability p_uncond.")
            if not kept_ok:
                bad = out[(out != y) & (out != K)]
                raise Mismatch(f"values differ: your output holds labels that are neither the original one nor the "
                               f"null label {K} (e.g. {int(bad[0])}).\n   inputs: {inputs}",
                               hint="A dropped label becomes null_label (= the number of classes), not 0 or −1.")
            expected_rate = float((ref == K).double().mean())
            if abs(null_rate - expected_rate) < 4 * math.sqrt(max(p * (1 - p), 1e-4) / B) + 0.01:
                raise Mismatch(f"values differ: the rate of null labels is right ({null_rate:.3f}), but not which "
                               f"labels were dropped.\n   inputs: {inputs}",
                               hint="The check compares draw by draw: draw u = torch.rand(y.shape, generator=generator) "
                                    "once (no other random call before it) and drop where u < p_uncond.")
            raise Mismatch(f"values differ: {null_rate:.3f} of your labels are null, expected {expected_rate:.3f} "
                           f"(p_uncond = {p:.3g}).\n   inputs: {inputs}")
        expect_tensor(out, ref, what=what, inputs=inputs, rtol=0, atol=0)
    return "drops exactly the labels the reference drops (p_uncond 0.1, random, 0 and 1), leaves y untouched."


# ----------------------------------------------------------------------------------------- (b) the combination
def _eps_pair(ctx: CheckContext, tail: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    B = randint(ctx, 4, 9)
    return torch.randn((B, *tail), generator=ctx.gen), torch.randn((B, *tail), generator=ctx.gen)


@register_check("cfg_combine", chapter=CHAPTER, references=(cfg_combine,),
                hint="ε̂ = ε_u + w·(ε_c − ε_u): start from the unconditional prediction and move w times the "
                     "difference towards (and past) the conditional one; w = 0 gives ε_u, w = 1 gives ε_c.")
def check_cfg_combine(fn: Fn, ctx: CheckContext) -> str:
    ws = [uniform(ctx, 1.5, 8.0), 0.0, 1.0, uniform(ctx, 0.1, 0.9)]  # w > 1 first: there every mistake differs
    for w, tail in zip(ws, [(2,), (1, 4, 4), (2,), (3,)]):
        ec, eu = _eps_pair(ctx, tail)
        what = f"cfg_combine(eps_c, eps_u, w={w:.4g})"
        out = ctx.call(fn, ec.clone(), eu.clone(), w, what=what)
        expect_tensor(out, cfg_combine(ec, eu, w), what=what, inputs=f"eps_c {describe(ec)}, eps_u like eps_c",
                      rtol=1e-5, atol=1e-6, mistakes={
                          "swap ε_c and ε_u (ε_c + w·(ε_u − ε_c))": cfg_combine(eu, ec, w),
                          "use the paper's convention (1 + w)·ε_c − w·ε_u: in this course w = 1 is the plain "
                          "conditional model": cfg_combine_paper(ec, eu, w),
                          "subtract the difference (ε_u − w·(ε_c − ε_u))": eu - w * (ec - eu),
                          "leave out ε_u (only w·(ε_c − ε_u))": w * (ec - eu),
                      })
    return "matches ε_u + w·(ε_c − ε_u) for w = 0, 1, > 1 and in between, on points and images."


@register_check("cfg_combine_paper", chapter=CHAPTER, references=(cfg_combine_paper,),
                hint="The paper's convention: ε̂ = (1 + w')·ε_c − w'·ε_u, so that w' = 0 is the plain conditional "
                     "model; it is this course's ε_u + w·(ε_c − ε_u) with w = 1 + w'.")
def check_cfg_combine_paper(fn: Fn, ctx: CheckContext) -> str:
    ws = [uniform(ctx, 1.5, 8.0), 0.0, 1.0, uniform(ctx, 0.1, 0.9)]  # w > 1 first: there every mistake differs
    for w, tail in zip(ws, [(2,), (1, 4, 4), (2,), (3,)]):
        ec, eu = _eps_pair(ctx, tail)
        what = f"cfg_combine_paper(eps_c, eps_u, w_prime={w:.4g})"
        out = ctx.call(fn, ec.clone(), eu.clone(), w, what=what)
        expect_tensor(out, cfg_combine_paper(ec, eu, w), what=what,
                      inputs=f"eps_c {describe(ec)}, eps_u like eps_c", rtol=1e-5, atol=1e-6, mistakes={
                          "use this course's convention ε_u + w'·(ε_c − ε_u) (that is the paper's w' − 1)":
                              cfg_combine(ec, eu, w),
                          "swap ε_c and ε_u ((1 + w')·ε_u − w'·ε_c)": cfg_combine_paper(eu, ec, w),
                          "use w' − 1 instead of 1 + w' on ε_c": (w - 1) * ec - w * eu,
                      })
    return "matches (1 + w')·ε_c − w'·ε_u, i.e. this course's w = 1 + w', for w' = 0, 1, > 1 and in between."


# ----------------------------------------------------------------------------------------- (c) the experiments
def cfg_mode_stats_reference(model: nn.Module, schedule: NoiseSchedule, k: int, w: float, n: int, steps: int,
                             generator: torch.Generator) -> tuple[float, float]:
    """``(fraction, spread)`` of ``n`` CFG-guided DDIM samples (η = 0) towards class ``k`` at weight ``w``:
    the fraction whose most likely 8-Gaussian component is ``k``, and the per-coordinate standard deviation
    of those samples averaged over the two coordinates (NaN when fewer than two land there)."""
    gm = toy2d.mixture("8gaussians")
    null = model.label.null_label

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        y = torch.full((x.shape[0],), k, dtype=torch.long)
        return cfg_combine(model(x, t, y), model(x, t, torch.full_like(y, null)), w)

    x = ddim_sample(eps_fn, schedule, (n, 2), steps=steps, generator=generator)
    inside = gm.responsibilities(x).argmax(1) == k
    spread = float(x[inside].std(dim=0).mean()) if int(inside.sum()) >= 2 else float("nan")
    return float(inside.double().mean()), spread


def _pair(value: Any, what: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mismatch(f"{what} returned {type(value).__name__} ({value!r:.60}); expected a pair (fraction, spread).",
                       hint="End with `return fraction, spread` (two Python floats).")
    frac, spread = (as_float(v, what) for v in value)
    if not math.isfinite(frac) or not math.isfinite(spread):
        raise Mismatch(f"{what} returned ({frac}, {spread}): not finite.",
                       hint="The spread is x_in.std(dim=0).mean() over the samples *in* mode k (x_in = x[inside]).")
    return frac, spread


def _close(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) <= 0.02 and abs(a[1] - b[1]) <= 0.03 * abs(b[1]) + 1e-3


@register_check("cfg_mode_stats", chapter=CHAPTER, references=(cfg_mode_stats_reference,), timeout=60.0,
                hint="eps_fn(x, t) calls model(x, t, y) with y = torch.full((len(x),), k) for ε_c and with "
                     "y = null_label (model.label.null_label) for ε_u, and returns your cfg_combine(ε_c, ε_u, w); "
                     "x = ddim_sample(eps_fn, schedule, (n, 2), steps=steps, generator=generator); inside = "
                     "gm.responsibilities(x).argmax(1) == k; return inside.float().mean(), x[inside].std(dim=0).mean() "
                     "(as floats).")
def check_cfg_mode_stats(fn: Fn, ctx: CheckContext) -> str:
    sched = make_schedule("linear", 1000)
    model = LeakyMixtureModel(sched, keep=uniform(ctx, 0.35, 0.6))
    n, steps = 500, 20
    k = randint(ctx, 0, 7)
    seed = ctx.seed
    what = f"cfg_mode_stats(model, schedule, k={k}, w, n={n}, steps={steps}, generator)"
    inputs = (f"an exact conditional model of the 8 Gaussians with a leaky conditional ({model.keep:.0%} of p(x|k) "
              f"in component k)")
    run = lambda w: _pair(ctx.call(fn, model, sched, k, w, n, steps, torch.Generator().manual_seed(seed),  # noqa: E731
                                   what=what.replace("w,", f"w={w:g},")), what)
    ref = lambda w: cfg_mode_stats_reference(model, sched, k, w, n, steps,  # noqa: E731
                                             torch.Generator().manual_seed(seed))
    first = expect_uses_generator(
        lambda g: _pair(ctx.call(fn, model, sched, k, 2.0, n, steps, g, what=what.replace("w,", "w=2,")), what),
        lambda a, b: a == b, what=what, seed=seed,
        hint="Pass the generator to the sampler: ddim_sample(..., generator=generator).")
    results = []
    for w in (2.0, 1.0, 0.0, round(uniform(ctx, 3.0, 6.0), 1)):
        got = first if w == 2.0 else run(w)
        expected = ref(w)
        if not _close(got, expected):
            message = (f"values differ at w = {w:g}: yours (fraction {got[0]:.3f}, spread {got[1]:.4f}), expected "
                       f"(fraction {expected[0]:.3f}, spread {expected[1]:.4f}).\n   inputs: {inputs}")
            if _close((got[1], got[0]), expected):
                message += "\n   You returned (spread, fraction): the order is (fraction, spread)."
            else:
                for description, alt in [("the paper's convention (w' = w, i.e. this course's w + 1).", w + 1),
                                         ("no guidance at all (w = 1). Is ε_u computed with the null label "
                                          "(model.label.null_label)?", 1.0),
                                         ("ε_c and ε_u swapped (this course's 1 − w).", 1 - w)]:
                    if alt != w and _close(got, ref(alt)):
                        message += f"\n   Your numbers are those of {description}"
                        break
            raise Mismatch(message)
        results.append(f"w = {w:g}: {expected[0]:.2f}, {expected[1]:.3f}")
    return "fraction in mode k and spread match the reference (" + "; ".join(results) + ")."


class StartNoise(nn.Module):
    """A model that keeps the noise every sampling run starts from: the ``x`` of its calls at the largest ``t`` it has
    seen. A sweep whose settings share a seed must start every run from the same noise (`same_start`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.label = model.label
        self.starts: list[torch.Tensor] = []
        self._first_t = -1

    def forward(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        t_max = int(torch.as_tensor(t).max())
        if t_max > self._first_t:
            self._first_t, self.starts = t_max, []
        if t_max == self._first_t:
            self.starts.append(x.detach().clone())
        return self.model(x, t, y)

    def same_start(self) -> bool:
        """Whether every run started from the very same noise."""
        return all(s.shape == self.starts[0].shape and torch.equal(s, self.starts[0]) for s in self.starts)

    def expect_same_start(self, what: str) -> None:
        """Fail, naming the mistake, when the runs of the sweep ``what`` started from different noise."""
        if not self.same_start():
            raise Mismatch(f"the runs of {what} for the different w started from different noise: one generator was "
                           "used for all of them, so each w saw other draws, and the differences between the ws mix "
                           "the guidance's effect with the noise's.",
                           hint="Seed a fresh torch.Generator().manual_seed(seed) for every w: then every w starts "
                                "from the same noise, and only the guidance differs.")


def sweet_spot_reference(model: nn.Module, schedule: NoiseSchedule, k: int, ws: Sequence[float], n: int, steps: int,
                         seed: int, min_fraction: float = 0.95, target_spread: float = 0.15) -> float | None:
    """Among the guidance weights ``ws`` whose fraction in mode ``k`` reaches ``min_fraction``, the one whose spread is
    closest to ``target_spread`` (the first such in ``ws`` on a tie); ``None`` if none reaches it. Every ``w`` is
    sampled from a generator seeded with ``seed``."""
    best, best_gap = None, math.inf
    for w in ws:
        frac, spread = cfg_mode_stats_reference(model, schedule, k, w, n, steps, torch.Generator().manual_seed(seed))
        if frac >= min_fraction and abs(spread - target_spread) < best_gap:
            best, best_gap = w, abs(spread - target_spread)
    return best


@register_check("sweet_spot", chapter=CHAPTER, timeout=90.0,
                references=(sweet_spot_reference, cfg_mode_stats_reference),
                hint="For each w in ws: frac, spread = cfg_mode_stats(model, schedule, k, w, n, steps, "
                     "torch.Generator().manual_seed(seed)); keep the w with frac >= min_fraction whose "
                     "|spread − target_spread| is smallest (the first on a tie); return None if no w qualifies.")
def check_sweet_spot(fn: Fn, ctx: CheckContext) -> str:
    sched = make_schedule("linear", 1000)
    n, steps = 397, 15  # a prime n: no fraction k/n falls exactly on a two-decimal min_fraction
    found = []
    cases = [(0.5, [0.0, 1.0, 2.0, 3.0, 5.0, 8.0], 0.95, 0.15),
             (round(uniform(ctx, 0.3, 0.6), 2), [1.0, 1.5, 2.0, 3.0, 4.0], round(uniform(ctx, 0.8, 0.95), 2), 0.15),
             (0.5, [3.0, 5.0, 8.0], 0.95, 0.08),
             (0.3, [0.0, 0.5, 1.0], 0.99, 0.15)]
    for keep, ws, min_fraction, target in cases:
        model = LeakyMixtureModel(sched, keep=keep)
        k, seed = randint(ctx, 0, 7), randint(ctx, 0, 10_000)
        what = (f"sweet_spot(model, schedule, k={k}, ws={ws}, n={n}, steps={steps}, seed={seed}, "
                f"min_fraction={min_fraction}, target_spread={target})")
        recorder = StartNoise(model)
        got = ctx.call(fn, recorder, sched, k, list(ws), n, steps, seed, min_fraction, target, what=what)
        recorder.expect_same_start(what)
        if got is not None:  # a NumPy or torch number is fine too
            got = as_float(got, what)
        expected = sweet_spot_reference(model, sched, k, ws, n, steps, seed, min_fraction, target)
        same = (got is None and expected is None) or (
            isinstance(got, (int, float)) and not isinstance(got, bool) and expected is not None
            and float(got) == float(expected))
        if not same:
            message = f"value differs: {what} gave {got!r}, expected {expected!r}.\n   inputs: a leaky exact model " \
                      f"({keep:.0%} of p(x|k) in component k)"
            if expected is None:
                message += "\n   No w reaches min_fraction here: return None."
            elif isinstance(got, (int, float)) and got in ws and ws.index(got) == len(ws) - 1:
                message += ("\n   You picked the largest w: the sweet spot is the w that reaches min_fraction with the "
                            "spread *closest to target_spread* — large w over-sharpens.")
            elif isinstance(got, (int, float)) and got in ws:
                message += ("\n   Is every w sampled from a fresh torch.Generator().manual_seed(seed), and is the "
                            "criterion frac >= min_fraction, then the smallest |spread − target_spread|?")
            raise Mismatch(message)
        found.append(f"{expected}")
    return "picks the same w as the reference in every case (" + ", ".join(found) + ")."
