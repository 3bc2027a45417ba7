r"""What the chapter checks share: random inputs, stand-in networks, exact models of mixture data.

Every random draw comes from the check's seeded generator ``ctx.gen`` (so that a seed repeats
the inputs), in the order the helpers are called:

* `uniform`, `randint`: one number; `random_schedule`: a random `NoiseSchedule`; `random_mixture`: a random
  2D Gaussian mixture (exact density, score, classifier and posterior mean);
  `batch`: a random batch; `bcast`: a per-example vector shaped to broadcast against one.
* `FakeEps` (and `FakeNet`, the same with a trainable scale): a cheap deterministic stand-in
  for a trained noise predictor that depends on ``x`` *and* ``t``, so that calling it on the
  wrong input or at the wrong timestep shows.
* `exact_eps_fn`, `LeakyMixtureModel`: *exact* noise predictors of the 2D Gaussian mixtures,
  for experiments that need a good model and no training.
* `expect_uses_generator`: a function given a generator must draw its randomness from it — and from
  nothing else — so that a seed repeats a run.

This module builds on `diffcourse.grading.core` only; the chapter modules ``chNN`` build on it
and on `diffcourse.grading.compare`, never on one another.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Callable

import torch
from torch import nn

from ..data import toy2d
from ..data.toy2d import GaussianMixture
from ..schedules import NoiseSchedule, make_schedule
from .core import CheckContext, Mismatch

__all__ = [
    "Fn",
    "CAST_HINT",
    "uniform",
    "randint",
    "random_schedule",
    "random_mixture",
    "batch",
    "bcast",
    "FakeEps",
    "FakeNet",
    "exact_eps_fn",
    "LeakyMixtureModel",
    "expect_uses_generator",
]

Fn = Callable[..., Any]
"""The type of a learner's function (and of the references it is compared with)."""

CAST_HINT = ("Cast the schedule's float64 coefficients to the data's dtype (`.to(x.dtype)`): float64 times "
             "float32 data gives float64, which a float32 network will refuse.")
"""The hint for a float64 result from float32 data: the schedule's tables were not cast."""


# ----------------------------------------------------------------------------------------- random inputs
def uniform(ctx: CheckContext, low: float, high: float) -> float:
    """A float drawn uniformly from [low, high) with the check's generator."""
    return low + (high - low) * float(torch.rand((), generator=ctx.gen, dtype=torch.float64))


def randint(ctx: CheckContext, low: int, high: int) -> int:
    """An integer in [low, high] (both included), drawn with the check's generator."""
    return int(torch.randint(low, high + 1, (), generator=ctx.gen))


def random_schedule(ctx: CheckContext) -> NoiseSchedule:
    """A linear, cosine or sigmoid schedule with 50 to 1000 steps."""
    name = ["linear", "cosine", "sigmoid"][randint(ctx, 0, 2)]
    return make_schedule(name, randint(ctx, 50, 1000))


def random_mixture(ctx: CheckContext) -> GaussianMixture:
    """A random isotropic 2D mixture: 3–6 components, spread-out means, std 0.2–0.5, unequal weights."""
    K = randint(ctx, 3, 6)
    means = 2.0 * torch.randn(K, 2, generator=ctx.gen, dtype=torch.float64)
    weights = 0.3 + torch.rand(K, generator=ctx.gen, dtype=torch.float64)
    return GaussianMixture(means, std=uniform(ctx, 0.2, 0.5), weights=weights)


def batch(ctx: CheckContext, tail: tuple[int, ...], dtype: torch.dtype = torch.float32,
          B: int | None = None) -> torch.Tensor:
    """A standard-normal batch of shape ``(B, *tail)``; ``B`` (default: 5 to 9) is drawn first."""
    return torch.randn((B or randint(ctx, 5, 9), *tail), generator=ctx.gen, dtype=dtype)


def bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-example float64 vector shaped (B, 1, …, 1) to broadcast against ``x`` (kept in float64)."""
    return torch.as_tensor(v, dtype=torch.float64).reshape(-1, *([1] * (x.ndim - 1)))


def expect_uses_generator(run: Callable[[torch.Generator], Any], same: Callable[[Any, Any], bool], *, what: str,
                          seed: int, hint: str) -> Any:
    """Call ``run(generator)`` twice with generators seeded with ``seed``, torch's global random numbers in two
    different states; returns the first result. Fails, with ``hint``, when the call drew nothing from the generator it was given
    (it ignores it, e.g. reseeding the global generator itself) or when the two results differ by ``same`` (some of
    its randomness came from the global generator). The global generator's state is restored afterwards."""
    state = torch.get_rng_state()
    try:
        torch.manual_seed(1)
        generator = torch.Generator().manual_seed(seed)
        before = generator.get_state()
        first = run(generator)
        if torch.equal(generator.get_state(), before):
            raise Mismatch(f"{what} drew no random number from the generator it was given: it ignores the generator, "
                           "so a seed cannot repeat the run and two settings cannot share their noise.", hint=hint)
        torch.manual_seed(2)
        again = run(torch.Generator().manual_seed(seed))
    finally:
        torch.set_rng_state(state)
    if not same(first, again):
        raise Mismatch(f"not repeatable: two calls of {what} with generators seeded alike gave different results — "
                       "some of its random numbers come from torch's global generator, not from the one it is given.",
                       hint=hint)
    return first


# ----------------------------------------------------------------------------------------- stand-in networks
class FakeEps:
    r"""A stand-in for a trained noise predictor: :math:`\hat\varepsilon(x, t) = \tanh(a x + \sin(w t + \varphi))`.

    Cheap and deterministic, it depends on ``x`` and on ``t`` (an int, a float, or a tensor of
    shape ``(B,)``; fractional times are fine), so that a call on the wrong input or at
    ``t − 1`` gives a different answer. It returns the dtype of ``x``.
    """

    def __init__(self, ctx: CheckContext) -> None:
        self.a = uniform(ctx, 0.5, 1.5)
        self.w = uniform(ctx, 0.02, 0.06)
        self.phase = uniform(ctx, 0.0, math.pi)

    def __call__(self, x: torch.Tensor, t: torch.Tensor | int | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        tt = t.reshape(-1, *([1] * (x.ndim - 1))).to(x.device)
        return torch.tanh(self.a * x.double() + torch.sin(self.w * tt + self.phase)).to(x.dtype)


class FakeNet(nn.Module):
    """`FakeEps` with one trainable scale, so that a loss built on it has a gradient."""

    def __init__(self, fake: FakeEps) -> None:
        super().__init__()
        self.fake = fake
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scale * self.fake(x, t)


# ----------------------------------------------------------------------------------------- exact mixture models
def exact_eps_fn(schedule: NoiseSchedule, name: str = "8gaussians") -> Callable[[torch.Tensor, Any], torch.Tensor]:
    r"""The exact noise predictor of a Gaussian-mixture dataset: :math:`\varepsilon^* = -\sqrt{1-\bar\alpha_t}\,\nabla\log p_t`.

    ``t`` may be an int or a tensor of timesteps; examples at different timesteps are handled one group at a time.
    """
    gm = toy2d.mixture(name)

    def eps(x: torch.Tensor, t: Any) -> torch.Tensor:
        t = torch.as_tensor(t).long().flatten()
        t = t.expand(x.shape[0]) if t.numel() == 1 else t
        out = torch.empty(x.shape, dtype=torch.float64)
        for tv in t.unique().tolist():
            ab = float(schedule.alpha_bars[tv])
            m = t == tv
            out[m] = -math.sqrt(1 - ab) * gm.noised(ab).score(x[m])
        return out.to(x.dtype)

    return eps


class LeakyMixtureModel(nn.Module):
    r"""An exact noise predictor ``model(x, t, y)`` for the 8 Gaussians with a null label (``self.label.null_label``).

    The null label gives the exact unconditional ε of the mixture; label ``k`` gives the exact ε of a
    *leaky* conditional, the mixture re-weighted to put ``keep`` of its mass on component ``k`` (and the rest
    evenly on the others) — like an under-trained conditional model, so that guidance has something to fix.
    """

    def __init__(self, schedule: NoiseSchedule, keep: float = 0.5, std: float | None = None) -> None:
        super().__init__()
        self.schedule = schedule
        self.gm = toy2d.mixture("8gaussians")
        if std is not None:
            self.gm = GaussianMixture(self.gm.means, std)
        self.K = len(self.gm.means)
        self.keep = keep
        self.label = SimpleNamespace(null_label=self.K, num_classes=self.K)

    def _mixture(self, y: int) -> GaussianMixture:
        if y == self.K:
            return self.gm
        w = torch.full((self.K,), (1 - self.keep) / (self.K - 1), dtype=torch.float64)
        w[y] = self.keep
        return GaussianMixture(self.gm.means, self.gm.std, w)

    def forward(self, x: torch.Tensor, t: Any, y: Any = None) -> torch.Tensor:
        t = torch.as_tensor(t).long().reshape(-1).expand(x.shape[0])
        y = torch.full((x.shape[0],), self.K) if y is None else torch.as_tensor(y).long().reshape(-1).expand(x.shape[0])
        out = torch.empty(x.shape, dtype=torch.float64)
        for tv in t.unique().tolist():
            ab = float(self.schedule.alpha_bars[tv])
            for yv in y.unique().tolist():
                m = (t == tv) & (y == yv)
                if m.any():
                    out[m] = -math.sqrt(1 - ab) * self._mixture(int(yv)).noised(ab).score(x[m])
        return out.to(x.dtype)
