r"""Reading a measurement: a reference drawn the way the samples were, and a difference read against its own noise.

Two rules that every comparison in the course follows (DESIGN §7):

* **Matched floors.** A sample-set metric such as FID is biased at finite N and depends on the label mix, so a
  model's score means nothing alone. `matched_floor` scores *real* digits drawn the way the samples were — the
  same N and the same labels (class-balanced samples get a class-balanced real set) — against the same reference.
* **Paired uncertainty.** "A beats B" is a claim about the difference :math:`\Delta = m(A) - m(B)`. Its noise is
  not the floor's spread: it is the spread of :math:`\Delta` itself, estimated by resampling the samples (and the
  reference) together (`bootstrap_difference`), or over seeds that drive both A and B (`seed_difference`). A
  `Difference` says whether its interval excludes zero, and prints the verdict a lesson may state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from .metrics import feature_stats, frechet_distance

__all__ = ["balanced_labels", "draw_reference", "fid_features", "Floor", "matched_floor", "Difference",
           "bootstrap_difference", "jackknife_difference", "jackknife_variance", "seed_difference", "t_multiplier",
           "new_draw_half_width"]

Metric = Callable[[torch.Tensor, torch.Tensor], float]


def balanced_labels(n: int, num_classes: int = 10) -> torch.Tensor:
    """Labels ``0, 1, …, 9, 0, 1, …`` (length ``n``): the class-balanced mix the guidance benchmarks sample."""
    return torch.arange(n) % num_classes


def fid_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between two sets of features ``(N, d)``: the `frechet_distance` of their fitted Gaussians."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def draw_reference(pool_labels: torch.Tensor, n: int, labels: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``n`` real examples, without replacement, drawn the way the samples were.

    ``labels=None``: uniformly from the whole pool (the data's own label mix, as unconditional samples have).
    Otherwise ``labels`` (length ``n``) is the samples' label list, and the draw holds exactly as many real
    examples of each class as it does (a class-balanced sample set gets a class-balanced real set).
    """
    pool_labels = torch.as_tensor(pool_labels)
    if labels is None:
        if n > len(pool_labels):
            raise ValueError(f"Cannot draw {n} of {len(pool_labels)} examples without replacement: lower n.")
        return torch.randperm(len(pool_labels), generator=generator)[:n]
    labels = torch.as_tensor(labels).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries; give one per sample (n = {n}).")
    picks = []
    for c in labels.unique().tolist():
        members = torch.nonzero(pool_labels == c).flatten()
        k = int((labels == c).sum())
        if k > len(members):
            raise ValueError(f"Class {c}: {k} samples but only {len(members)} real examples to match them.")
        picks.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(picks)


@dataclass
class Floor:
    """Real-vs-reference scores at the samples' N and label mix: the level a perfect model would reach."""

    n: int
    label_mix: str
    draws: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.draws) / len(self.draws)

    @property
    def std(self) -> float:
        k = len(self.draws)
        return math.sqrt(sum((d - self.mean) ** 2 for d in self.draws) / (k - 1)) if k > 1 else float("nan")

    def as_dict(self) -> dict:
        return {"n": self.n, "label_mix": self.label_mix, "mean": self.mean, "std": self.std, "draws": self.draws}


def matched_floor(pool_features: torch.Tensor, pool_labels: torch.Tensor, reference_features: torch.Tensor, n: int,
                  labels: torch.Tensor | None = None, metric: Metric = fid_features, draws: int = 5,
                  seed: int = 0) -> Floor:
    r"""The floor of ``metric`` for ``n`` samples with label list ``labels`` (``None``: the data's own mix).

    Each of ``draws`` draws takes ``n`` real examples from the pool (e.g. the training digits) by
    `draw_reference` and scores their features against ``reference_features`` (e.g. the test digits) — exactly
    what the samples are scored against. The pool must not contain the reference.
    """
    g = torch.Generator().manual_seed(seed)
    mix = "data" if labels is None else ("balanced" if torch.equal(torch.as_tensor(labels).reshape(-1),
                                                                   balanced_labels(n)) else "matched")
    scores = [metric(pool_features[draw_reference(pool_labels, n, labels, g)], reference_features)
              for _ in range(draws)]
    return Floor(n=n, label_mix=mix, draws=[float(s) for s in scores])


@dataclass
class Difference:
    r"""An estimate of :math:`\Delta = m(A) - m(B)` with a two-sided interval at ``level``."""

    name_a: str
    name_b: str
    estimate: float
    low: float
    high: float
    level: float = 0.95
    method: str = ""

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0: the sign of the difference is measured, not noise."""
        return self.low > 0 or self.high < 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def verdict(self, metric: str = "FID", digits: int = 2, lower_is_better: bool = True) -> str:
        """One line for a lesson: which is better and by how much, or that this N does not tell."""
        d, hw = self.estimate, self.half_width
        interval = f"[{self.low:.{digits}f}, {self.high:.{digits}f}], {self.level:.0%} {self.method}"
        if not self.resolved:
            return (f"not resolved at this N: {metric} {self.name_a} − {self.name_b} = {d:+.{digits}f} "
                    f"({interval})")
        a_better = (d < 0) == lower_is_better
        better, worse = (self.name_a, self.name_b) if a_better else (self.name_b, self.name_a)
        low, high = self.margin_interval
        interval = f"[{low:.{digits}f}, {high:.{digits}f}], {self.level:.0%} {self.method}"
        return f"resolved: {better} beats {worse} on {metric} by {abs(d):.{digits}f} ± {hw:.{digits}f} ({interval})"

    @property
    def margin_interval(self) -> tuple[float, float]:
        r"""The interval of the margin :math:`|\Delta|`: of :math:`\Delta` when it is positive, of :math:`-\Delta`
        otherwise — so a resolved verdict prints a positive margin beside a positive interval."""
        return (self.low, self.high) if self.estimate >= 0 else (-self.high, -self.low)

    @classmethod
    def from_dict(cls, d: Mapping, name_a: str | None = None, name_b: str | None = None) -> "Difference":
        """The inverse of `as_dict` (a record in a results file), optionally renamed for a shorter verdict."""
        return cls(name_a or d["a"], name_b or d["b"], d["estimate"], d["low"], d["high"], d.get("level", 0.95),
                   d.get("method", ""))

    def as_dict(self) -> dict:
        return {"a": self.name_a, "b": self.name_b, "estimate": self.estimate, "low": self.low, "high": self.high,
                "level": self.level, "method": self.method, "resolved": self.resolved}


def _basic_interval(estimate: float, values: torch.Tensor, level: float) -> tuple[float, float]:
    r"""The *basic* bootstrap interval :math:`[2\hat\theta - q_{hi},\ 2\hat\theta - q_{lo}]` of the replicates'
    quantiles :math:`q_{lo}, q_{hi}`. It reflects the replicates around the estimate: where resampling shifts the
    statistic (FID changes at the duplicated points of a resample), the shift of the replicates from
    :math:`\hat\theta` is subtracted rather than reported — a first-order bias correction of the bootstrap
    distribution. It holds :math:`\hat\theta` exactly when the percentile interval :math:`[q_{lo}, q_{hi}]` does
    (both need :math:`q_{lo}\le\hat\theta\le q_{hi}`); if every replicate lies above the estimate, the percentile
    interval lies wholly above it and the basic interval wholly below."""
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    q_lo, q_hi = torch.quantile(values.double(), q).tolist()
    return 2 * estimate - q_hi, 2 * estimate - q_lo


def bootstrap_difference(metric: Callable[[torch.Tensor, torch.Tensor | None], float], a: torch.Tensor,
                         b: torch.Tensor, reference: torch.Tensor | None = None, *, paired: bool = True,
                         n_boot: int = 200, level: float = 0.95, seed: int = 0, name_a: str = "A",
                         name_b: str = "B") -> Difference:
    r"""Bootstrap interval of :math:`\Delta = m(A, R) - m(B, R)` for a set metric ``metric(samples, reference)``.

    Each replicate resamples the rows of ``a`` and ``b`` with replacement — with **one** index draw for both
    when ``paired`` (row i of A and of B came from the same noise seed, so their errors are shared) — and
    resamples ``reference`` once for both, so the reference's own noise cancels in :math:`\Delta` as it does
    in the measurement. The estimate is :math:`\Delta` on the full sets; the interval is the basic bootstrap
    interval of the replicates (`_basic_interval`). ``metric`` may ignore the reference (a per-sample rate such
    as the confident share: pass ``reference=None``).
    """
    if paired and len(a) != len(b):
        raise ValueError(f"Paired sets must have equal size ({len(a)} vs {len(b)}): pass paired=False.")
    g = torch.Generator().manual_seed(seed)
    estimate = metric(a, reference) - metric(b, reference)
    deltas = []
    for _ in range(n_boot):
        ia = torch.randint(0, len(a), (len(a),), generator=g)
        ib = ia if paired else torch.randint(0, len(b), (len(b),), generator=g)
        ref = None if reference is None else reference[torch.randint(0, len(reference), (len(reference),),
                                                                      generator=g)]
        deltas.append(metric(a[ia], ref) - metric(b[ib], ref))
    low, high = _basic_interval(float(estimate), torch.tensor(deltas), level)
    return Difference(name_a, name_b, float(estimate), low, high, level,
                      f"bootstrap ({'paired' if paired else 'unpaired'}, {n_boot} resamples)")


def t_multiplier(df: int, level: float = 0.95) -> float:
    r"""Student's :math:`t_{df}` quantile at :math:`(1+\text{level})/2`: a two-sided interval's half-width in
    standard errors (1.96 as ``df`` grows)."""
    from scipy.stats import t as student_t

    return float(student_t.ppf((1 + level) / 2, df))


def new_draw_half_width(sd: float, draws: int, level: float = 0.95) -> float:
    r"""Half-width :math:`t_{M-1}\,\mathrm{sd}\sqrt{1 + 1/M}` of the spread of one new draw about the mean of
    ``draws`` = M earlier ones (a prediction interval): how far a sample set may sit from a band of M real draws
    before it is resolved away from them, if its metric varies as a real draw's does."""
    return t_multiplier(draws - 1, level) * sd * math.sqrt(1 + 1 / draws)


def jackknife_variance(n: int, statistic: Callable[[torch.Tensor], float], groups: int = 50,
                       generator: torch.Generator | None = None) -> tuple[float, int]:
    r"""Delete-a-group jackknife variance of ``statistic(kept_rows)`` over ``n`` rows, and the number of groups G.

    The rows are split at random into G groups; :math:`\theta_{(g)}` is the statistic with group g left out, and
    :math:`\widehat{\mathrm{Var}} = \frac{G-1}{G}\sum_g (\theta_{(g)} - \bar\theta)^2`. No row is ever used
    twice, so a set metric sees a set of the kind it is defined on (resampling with replacement duplicates rows,
    which FID's covariance and KID's "distinct pairs" both misread)."""
    parts = torch.randperm(n, generator=generator).chunk(min(groups, n))
    count = len(parts)
    thetas = torch.tensor([statistic(torch.cat(parts[:i] + parts[i + 1:])) for i in range(count)],
                          dtype=torch.float64)
    return float((count - 1) / count * ((thetas - thetas.mean()) ** 2).sum()), count


def jackknife_difference(metric: Callable[[torch.Tensor, torch.Tensor | None], float], a: torch.Tensor,
                         b: torch.Tensor, reference: torch.Tensor | None = None, *, paired: bool = True,
                         groups: int = 50, level: float = 0.95, seed: int = 0, name_a: str = "A",
                         name_b: str = "B") -> Difference:
    r"""Interval of :math:`\Delta = m(A, R) - m(B, R)` for a set metric, :math:`\Delta \pm t_{G-1}\,\hat\sigma`.

    :math:`\hat\sigma^2` adds independent sources, each by `jackknife_variance`: the samples — one grouping for
    both sets when ``paired`` (row i of A and of B came from the same noise, so their errors cancel in
    :math:`\Delta`), a grouping each otherwise — and, when given, the reference's rows (held out from A and B
    together, so its noise cancels as in the measurement). ``metric`` may ignore the reference (a per-sample rate
    such as the confident share: pass ``reference=None``). The course's interval for every sample-set comparison;
    `bootstrap_difference` is kept to show (chapter 7) why not the bootstrap.
    """
    if paired and len(a) != len(b):
        raise ValueError(f"Paired sets must have equal size ({len(a)} vs {len(b)}): pass paired=False.")
    g = torch.Generator().manual_seed(seed)
    m = lambda x, r=reference: metric(x, r)  # noqa: E731
    estimate = float(m(a) - m(b))
    if paired:
        variance, count = jackknife_variance(len(a), lambda k: m(a[k]) - m(b[k]), groups, g)
    else:
        (va, count), (vb, _) = (jackknife_variance(len(x), lambda k, x=x: m(x[k]), groups, g) for x in (a, b))
        variance = va + vb
    if reference is not None:
        variance += jackknife_variance(len(reference), lambda k: m(a, reference[k]) - m(b, reference[k]),
                                       groups, g)[0]
    hw = t_multiplier(count - 1, level) * math.sqrt(variance)
    return Difference(name_a, name_b, estimate, estimate - hw, estimate + hw, level,
                      f"jackknife ({'paired' if paired else 'unpaired'}, {count} groups)")


def seed_difference(values_a: Sequence[float], values_b: Sequence[float], *, level: float = 0.95,
                    name_a: str = "A", name_b: str = "B") -> Difference:
    r"""Interval of the mean difference over seeds, :math:`\bar\Delta \pm t_{k-1}\, s_\Delta/\sqrt k`, where
    ``values_a[i]`` and ``values_b[i]`` were measured with the same seed i (a paired t-interval)."""
    a, b = torch.as_tensor(values_a, dtype=torch.float64), torch.as_tensor(values_b, dtype=torch.float64)
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError("seed_difference needs two equal-length lists of at least two per-seed values.")
    d = a - b
    k = d.numel()
    hw = t_multiplier(k - 1, level) * float(d.std()) / math.sqrt(k)
    m = float(d.mean())
    return Difference(name_a, name_b, m, m - hw, m + hw, level, f"paired t over {k} seeds")
