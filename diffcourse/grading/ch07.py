r"""Checks for chapter 7, *Evaluating diffusion models* (``solutions/07_evaluation.ipynb``).

The learner's functions and the references they are compared with:

=================  =====================================================  ==============================================
exercise           learner's signature                                    reference
=================  =====================================================  ==============================================
sqrtm_psd          ``sqrtm_psd(S)``                                       the symmetric square root (`diffcourse.metrics._sqrtm_psd`)
frechet_distance   ``frechet_distance(mu1, S1, mu2, S2)``                 `diffcourse.metrics.frechet_distance`
precision_recall   ``precision_recall(real, fake, k)``                    `diffcourse.metrics.precision_recall`
mmd_rbf            ``mmd_rbf(x, y, bandwidth)``                           `diffcourse.metrics.mmd_rbf`
fd_floor           ``fd_floor(sample_fn, n, repeats, generator)``         `fd_floor_reference` (real vs real)
=================  =====================================================  ==============================================

Everything runs on small synthetic point sets (2D mixtures, Gaussians in a few dimensions): the same
formulas give FID when the points are a classifier's features of images.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ..data import toy2d
from ..data.toy2d import GaussianMixture
from ..metrics import _sqrtm_psd, feature_stats
from ..metrics import frechet_distance as frechet_reference
from ..metrics import mmd_rbf as mmd_reference
from ..metrics import precision_recall as pr_reference
from .compare import as_float, describe, expect_close, expect_tensor
from .core import CheckContext, Mismatch, register_check
from .fixtures import Fn, randint, uniform

CHAPTER = 7


def _rotation(ctx: CheckContext, d: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=ctx.gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def random_psd(ctx: CheckContext, d: int, *, rank: int | None = None, roundoff: bool = False) -> torch.Tensor:
    """A random symmetric PSD matrix ``V diag(w) Vᵀ``; ``rank`` < d zeroes eigenvalues, and ``roundoff`` makes one of
    them −1e−13, as a covariance estimate in floating point can (PSD up to round-off)."""
    w = torch.rand(d, generator=ctx.gen, dtype=torch.float64) * 2.0 + 0.05
    if rank is not None:
        w[rank:] = 0.0
        if roundoff:
            w[-1] = -1e-13
    V = _rotation(ctx, d)
    S = (V * w) @ V.T
    return (S + S.T) / 2


CLAMP_HINT = ("Where the exact eigenvalue is 0, floating point gives ±1e−16 or so (a covariance estimate of "
              "rank < d has such eigenvalues), and sqrt(−1e−16) is NaN: clamp the eigenvalues at 0 first "
              "(w.clamp(min=0)) before every square root.")


# ----------------------------------------------------------------------------------------- (a) the square root
@register_check("sqrtm_psd", chapter=CHAPTER, references=(_sqrtm_psd,),
                hint="w, V = torch.linalg.eigh(S) (S symmetric: real eigenvalues, orthonormal V); clamp w at 0 "
                     "(round-off makes some slightly negative), then return V @ diag(sqrt(w)) @ Vᵀ, i.e. "
                     "(V * w.clamp(min=0).sqrt()) @ V.T.")
def check_sqrtm_psd(fn: Fn, ctx: CheckContext) -> str:
    cases = [(2, None, False), (randint(ctx, 3, 6), None, False), (5, 3, False), (4, 2, True)]
    what = "sqrtm_psd(S)"
    for i, (d, rank, roundoff) in enumerate(cases):
        if i == 0:  # positive entries: the entrywise square root is finite, and named below
            a, b, c = uniform(ctx, 1.0, 2.0), uniform(ctx, 1.0, 2.0), uniform(ctx, 0.1, 0.5)
            S = torch.tensor([[a, c], [c, b]], dtype=torch.float64)
        else:
            S = random_psd(ctx, d, rank=rank, roundoff=roundoff)
        kind = (f"a {d}×{d} PSD matrix" + (f" of rank {rank}" if rank else "")
                + (" with an eigenvalue of −1e−13 (round-off)" if roundoff else ""))
        out = ctx.call(fn, S.clone(), what=what)
        ref = _sqrtm_psd(S)
        if rank is not None and isinstance(out, torch.Tensor) and out.shape == ref.shape \
                and out.is_floating_point() and torch.isnan(out).any():
            raise Mismatch(f"NaN for {kind}.\n   inputs: S {describe(S)}",
                           hint=CLAMP_HINT)
        w, V = torch.linalg.eigh(S)
        L = torch.linalg.cholesky(S + 1e-9 * torch.eye(d, dtype=S.dtype)) if rank is None else None
        mistakes = {
            "take the square root of every entry (S.sqrt() is not a matrix square root)": S.sqrt(),
            "forget the Vᵀ on the right (V·diag(sqrt(w)) is *a* factor, but not the symmetric root)":
                V * w.clamp(min=0).sqrt(),
            "forget the square root of the eigenvalues (V·diag(w)·Vᵀ gives S back)": S,
        }
        if L is not None:
            mistakes["use the Cholesky factor L (L·Lᵀ = S, but L is triangular, not the symmetric root)"] = L
        expect_tensor(out, ref, what=what, inputs=f"S = {kind}", rtol=1e-6, atol=1e-7, check_dtype=False,
                      mistakes=mistakes)
    return "symmetric square roots of full-rank and rank-deficient PSD matrices (round-off negatives included) match."


# ----------------------------------------------------------------------------------------- (b) Fréchet distance
def _fd_mistakes(mu1: torch.Tensor, S1: torch.Tensor, mu2: torch.Tensor, S2: torch.Tensor) -> dict[str, float]:
    """The known mistakes in d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·tr((Σ1^½ Σ2 Σ1^½)^½), each with the value it gives."""
    r1 = _sqrtm_psd(S1)
    cross = float(torch.linalg.eigvalsh(r1 @ S2 @ r1).clamp(min=0).sqrt().sum())  # tr((Σ1^½ Σ2 Σ1^½)^½)
    m2 = float((mu1 - mu2).pow(2).sum())
    trs = float(S1.trace() + S2.trace())
    S12 = S1 @ S2
    return {
        "forget the factor 2 on the trace term": m2 + trs - cross,
        "replace tr((Σ1^½ Σ2 Σ1^½)^½) by sqrt(tr(Σ1 Σ2)) (the square root of a trace is not the trace of a "
        "square root)": m2 + trs - 2 * math.sqrt(max(float(torch.trace(S12)), 0.0)),
        "forget the matrix square root in the cross term (tr(Σ1 Σ2) instead of tr((Σ1 Σ2)^½))":
            m2 + trs - 2 * float(torch.trace(S12)),
        "take the square root of each entry of Σ1 Σ2 instead of a matrix square root":
            m2 + trs - 2 * float(torch.trace(S12.abs().sqrt())),
        "return the distance d instead of its square d² (FID is the squared distance)":
            math.sqrt(max(m2 + trs - 2 * cross, 0.0)),
        "leave out the means' term ‖μ1 − μ2‖²": trs - 2 * cross,
        "use ‖μ1 − μ2‖ instead of its square": math.sqrt(m2) + trs - 2 * cross,
    }


def _gaussian(ctx: CheckContext, d: int, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(d, generator=ctx.gen, dtype=torch.float64), random_psd(ctx, d, **kw)


@register_check("frechet_distance", chapter=CHAPTER, references=(frechet_reference,),
                hint="d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·tr( (Σ1^½ Σ2 Σ1^½)^½ ): with r = sqrtm_psd(Σ1), the last "
                     "trace is the sum of the square roots of the eigenvalues of the symmetric r @ Σ2 @ r (clamped at "
                     "0) — or tr(sqrtm_psd(r @ Σ2 @ r)). Return d², a number (not its square root).")
def check_frechet_distance(fn: Fn, ctx: CheckContext) -> str:
    d = randint(ctx, 3, 6)
    m, S = _gaussian(ctx, d)
    diag1 = torch.rand(4, generator=ctx.gen, dtype=torch.float64) + 0.1
    diag2 = torch.rand(4, generator=ctx.gen, dtype=torch.float64) + 0.1
    cases = [
        ("two Gaussians in 2D", *_gaussian(ctx, 2), *_gaussian(ctx, 2)),
        (f"two Gaussians in {d}D", *_gaussian(ctx, d), *_gaussian(ctx, d)),
        ("two diagonal covariances (then the trace term is Σ sqrt(σ1ᵢ²σ2ᵢ²))",
         torch.zeros(4, dtype=torch.float64), torch.diag(diag1), torch.ones(4, dtype=torch.float64), torch.diag(diag2)),
        (f"the same Gaussian twice in {d}D (distance 0)", m, S, m.clone(), S.clone()),
        ("rank-deficient covariances (eigenvalues 0 and −1e−13 from round-off)", *_gaussian(ctx, 4, rank=2, roundoff=True),
         *_gaussian(ctx, 4, rank=3)),
    ]
    for kind, mu1, S1, mu2, S2 in cases:
        what = "frechet_distance(mu1, S1, mu2, S2)"
        inputs = f"{kind}: mu1 {describe(mu1)}, S1 {tuple(S1.shape)}, mu2 like mu1, S2 like S1 (float64)"
        singular = "rank" in kind
        try:
            out = ctx.call(fn, mu1.clone(), S1.clone(), mu2.clone(), S2.clone(), what=what)
        except Mismatch as exc:
            if singular and not exc.message.startswith("not written yet"):
                raise Mismatch(exc.message + f"\n   inputs: {inputs}\n   A NaN from the square root of a slightly "
                               "negative eigenvalue, passed on to the next decomposition, gives errors like this.",
                               hint=CLAMP_HINT) from None
            raise
        got = as_float(out.detach() if isinstance(out, torch.Tensor) else out, what)
        if math.isnan(got):
            raise Mismatch(f"{what} returned NaN.\n   inputs: {inputs}", hint=CLAMP_HINT if singular else None)
        expect_close(got, frechet_reference(mu1, S1, mu2, S2), what=what, inputs=inputs, rtol=1e-6, atol=1e-8,
                     mistakes=_fd_mistakes(mu1, S1, mu2, S2))
    return ("matches the closed form in 2D to 6D — diagonal, identical (0) and rank-deficient covariances with "
            "round-off included.")


# ----------------------------------------------------------------------------------------- (c) precision / recall
def _pr_mistakes(real: torch.Tensor, fake: torch.Tensor, k: int,
                 ref: tuple[float, float]) -> list[tuple[str, tuple[float, float]]]:
    """The known mistakes in precision and recall, each with the (precision, recall) it gives: precision is the
    fraction of fake points inside some real point's ball (radius: distance to its k-th nearest real neighbour),
    recall the other way round."""
    r, f = real.double(), fake.double()
    d = torch.cdist(f, r)

    def radii(x: torch.Tensor, kk: int) -> torch.Tensor:  # each point's distance to its kk-th nearest in its own set
        return torch.cdist(x, x).kthvalue(kk, dim=1).values

    def inside(dist: torch.Tensor, rad: torch.Tensor) -> float:
        return float((dist <= rad).any(1).double().mean())

    r_self, f_self = radii(r, k), radii(f, k)
    r_rad, f_rad = radii(r, k + 1), radii(f, k + 1)
    return [
        ("return (recall, precision): the order is (precision, recall)", (ref[1], ref[0])),
        ("count each point as its own nearest neighbour (kthvalue(k) on the distances to its own set, whose "
         "smallest is the 0 to itself: use k + 1)", (inside(d, r_self[None, :]), inside(d.T, f_self[None, :]))),
        ("measure each point's distance to the other set against *its own* k-NN radius: the balls sit around "
         "the real points with the real points' radii for precision (and around the fake points, with theirs, "
         "for recall)", (inside(d, f_rad[:, None]), inside(d.T, r_rad[:, None]))),
    ]


def _pr_cases(ctx: CheckContext) -> list[tuple[str, torch.Tensor, torch.Tensor, int]]:
    gm = toy2d.mixture("8gaussians")
    g = torch.Generator().manual_seed(ctx.seed)
    n_r, n_f = randint(ctx, 200, 320), randint(ctx, 150, 260)
    real = gm.sample(n_r, g).double()
    dropped = GaussianMixture(gm.means[:4], gm.std)
    wide = GaussianMixture(gm.means, gm.std * 3.0)
    return [
        ("fake = a fresh sample of the same 8 Gaussians", real, gm.sample(n_f, g).double(), 3),
        ("fake drops 4 of the 8 modes", real, dropped.sample(n_f, g).double(), randint(ctx, 2, 5)),
        ("fake is 3× too wide", real, wide.sample(n_f, g).double(), randint(ctx, 2, 5)),
        ("points in 5D", torch.randn(n_r, 5, generator=g, dtype=torch.float64),
         1.3 * torch.randn(n_f, 5, generator=g, dtype=torch.float64) + 0.5, 4),
    ]


def _pair_of_fractions(value: Any, what: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mismatch(f"{what} returned {type(value).__name__} ({value!r:.60}); expected a pair (precision, recall).",
                       hint="End with `return precision, recall` (two numbers between 0 and 1).")
    p, r = (as_float(v.detach() if isinstance(v, torch.Tensor) else v, what) for v in value)
    for name, v in (("precision", p), ("recall", r)):
        if not (0.0 <= v <= 1.0):
            raise Mismatch(f"{what} returned a {name} of {v:.4g}, not a fraction between 0 and 1.",
                           hint="Take the *mean* of the boolean masks (point inside some ball), not their sum.")
    return p, r


@register_check("precision_recall", chapter=CHAPTER, references=(pr_reference,),
                hint="radius of each point = distance to its k-th nearest neighbour *in its own set*: "
                     "torch.cdist(x, x).kthvalue(k + 1, dim=1).values (k + 1: the nearest point to x is x itself). "
                     "d = torch.cdist(fake, real); precision = mean over fake of (d <= r_real[None, :]).any(1); "
                     "recall = mean over real of (d.T <= r_fake[None, :]).any(1).")
def check_precision_recall(fn: Fn, ctx: CheckContext) -> str:
    seen = []
    for kind, real, fake, k in _pr_cases(ctx):
        what = f"precision_recall(real, fake, k={k})"
        inputs = f"{kind}: real {describe(real)}, fake {describe(fake)}"
        got = _pair_of_fractions(ctx.call(fn, real.clone(), fake.clone(), k, what=what), what)
        ref = pr_reference(real, fake, k)
        if max(abs(got[0] - ref[0]), abs(got[1] - ref[1])) <= 1e-6:  # fractions k/n, n < 400: 1e-6 tells them apart
            seen.append(f"{ref[0]:.2f}/{ref[1]:.2f}")
            continue
        message = (f"values differ: yours (precision {got[0]:.4f}, recall {got[1]:.4f}), expected "
                   f"(precision {ref[0]:.4f}, recall {ref[1]:.4f}).\n   inputs: {inputs}")
        for description, alt in _pr_mistakes(real, fake, k, ref):
            if max(abs(got[0] - alt[0]), abs(got[1] - alt[1])) <= 1e-6:
                message += f"\n   Your numbers are exactly what you get if you {description}."
                break
        raise Mismatch(message)
    return ("matches on matching, mode-dropping (precision high, recall low) and too-wide (precision low) samples, "
            "in 2D and 5D: " + ", ".join(seen) + ".")


# ----------------------------------------------------------------------------------------- (d) MMD
def _mmd_mistakes(x: torch.Tensor, y: torch.Tensor, h: float) -> dict[str, float]:
    """The known mistakes in the unbiased MMD² with the kernel k(a, b) = exp(−‖a − b‖²/(2h²)),
    each with the value it gives."""
    x, y = x.double(), y.double()
    n, m = len(x), len(y)

    def rbf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * h ** 2))

    def unbiased(kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = rbf, cross: float = 2) -> float:
        kxx, kyy = (kernel(x, x).sum() - n) / (n * (n - 1)), (kernel(y, y).sum() - m) / (m * (m - 1))
        return float(kxx + kyy - cross * kernel(x, y).mean())

    kxx, kyy, kxy = rbf(x, x), rbf(y, y), rbf(x, y)
    return {
        "keep the diagonal terms k(x_i, x_i) = 1 in E k(x, x') (that is the biased estimate, always > 0)":
            float(kxx.mean() + kyy.mean() - 2 * kxy.mean()),
        "divide by n² instead of n(n − 1) after leaving out the diagonal":
            float((kxx.sum() - n) / n ** 2 + (kyy.sum() - m) / m ** 2 - 2 * kxy.mean()),
        "use exp(−‖a − b‖²/h²) (the kernel has 2h² in the denominator)":
            unbiased(lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / h ** 2)),
        "use the distance instead of its square in the kernel":
            unbiased(lambda a, b: torch.exp(-torch.cdist(a, b) / (2 * h ** 2))),
        "forget the factor 2 on the cross term E k(x, y)": unbiased(cross=1),
        "return MMD instead of MMD² (the estimate is of the square, and may be negative)":
            math.sqrt(max(unbiased(), 0.0)),
    }


@register_check("mmd_rbf", chapter=CHAPTER, references=(mmd_reference,),
                hint="k(a, b) = exp(−‖a − b‖²/(2h²)) for all pairs (torch.cdist(a, b) ** 2); E k(x, x') leaves out the "
                     "n diagonal terms (each k(x_i, x_i) = 1): (Kxx.sum() − n)/(n(n − 1)), the same for y with m; "
                     "return E k(x, x') + E k(y, y') − 2·Kxy.mean() (MMD², which can be slightly negative).")
def check_mmd_rbf(fn: Fn, ctx: CheckContext) -> str:
    gm = toy2d.mixture("8gaussians")
    g = torch.Generator().manual_seed(ctx.seed)
    n, m = randint(ctx, 80, 160), randint(ctx, 60, 140)
    cases = [
        ("two samples of the 8 Gaussians (MMD² ≈ 0, maybe below)", gm.sample(n, g).double(), gm.sample(m, g).double(),
         uniform(ctx, 0.5, 2.0)),
        ("the 8 Gaussians vs a standard normal", gm.sample(n, g).double(), torch.randn(m, 2, generator=g,
                                                                                    dtype=torch.float64), 1.0),
        ("points in 4D, shifted", torch.randn(n, 4, generator=g, dtype=torch.float64),
         torch.randn(m, 4, generator=g, dtype=torch.float64) + 0.7, uniform(ctx, 1.0, 3.0)),
    ]
    for kind, x, y, h in cases:
        what = f"mmd_rbf(x, y, bandwidth={h:.4g})"
        inputs = f"{kind}: x {describe(x)}, y {describe(y)}"
        out = ctx.call(fn, x.clone(), y.clone(), h, what=what)
        got = as_float(out.detach() if isinstance(out, torch.Tensor) else out, what)
        expect_close(got, mmd_reference(x, y, h), what=what, inputs=inputs, rtol=1e-6, atol=1e-9,
                     mistakes=_mmd_mistakes(x, y, h))
    return "the unbiased MMD² matches for samples of different sizes, equal and different distributions, 2D and 4D."


# ----------------------------------------------------------------------------------------- (e) the floor
def fd_floor_reference(sample_fn: Callable[[int, torch.Generator], torch.Tensor], n: int, repeats: int,
                       generator: torch.Generator) -> float:
    """Mean over ``repeats`` of the Fréchet distance between Gaussians fitted (mean, unbiased covariance) to two
    independent samples of size ``n`` from ``sample_fn(n, generator)`` — drawn as a, b, a, b, …"""
    vals = []
    for _ in range(repeats):
        a, b = sample_fn(n, generator), sample_fn(n, generator)
        vals.append(frechet_reference(*feature_stats(a), *feature_stats(b)))
    return sum(vals) / len(vals)


def _floor_draws(sample_fn: Callable[[int, torch.Generator], torch.Tensor], n: int, repeats: int,
                 seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The reference's ``repeats`` pairs of samples, drawn a, b, a, b, … from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return [(sample_fn(n, g).double(), sample_fn(n, g).double()) for _ in range(repeats)]


def _fitted(x: torch.Tensor, ddof: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the points ``x`` (divided by n − ddof: unbiased by default)."""
    mu = x.mean(0)
    c = x - mu
    return mu, c.T @ c / (len(x) - ddof)


def _fd(a: torch.Tensor, b: torch.Tensor, ddof: int = 1) -> float:
    """The Fréchet distance between Gaussians fitted to two samples."""
    return frechet_reference(*_fitted(a, ddof), *_fitted(b, ddof))


def _mean_over(f: Callable[[torch.Tensor, torch.Tensor], float],
               draws: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The mean of ``f(a, b)`` over the pairs of samples ``draws``."""
    return sum(f(a, b) for a, b in draws) / len(draws)


def _floor_mistakes(sample_fn: Callable[[int, torch.Generator], torch.Tensor], n: int, repeats: int, seed: int,
                    draws: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[str, float]]:
    """The known mistakes in the real-vs-real floor, each with the value it gives."""
    g = torch.Generator().manual_seed(seed)
    firsts = [sample_fn(n, g).double() for _ in range(repeats)]
    other_order = list(zip(firsts, [sample_fn(n, g).double() for _ in range(repeats)]))
    return [
        ("compare each sample with itself (a vs a gives 0): the floor needs two *independent* samples", 0.0),
        ("return the distance instead of its square (the square root of the Fréchet distance)",
         _mean_over(lambda a, b: math.sqrt(_fd(a, b)), draws)),
        ("sum over the rounds instead of averaging", _mean_over(_fd, draws) * repeats),
        ("use the biased covariance (divide by n; torch.cov and the reference divide by n − 1)",
         _mean_over(lambda a, b: _fd(a, b, ddof=0), draws)),
        ("draw all the first samples, then all the second ones: a fair estimate of the same floor, but the "
         "check repeats the draws exactly — in each round draw a, then b", _mean_over(_fd, other_order)),
    ]


def _floor_mismatch(got: float, sample_fn: Callable[[int, torch.Generator], torch.Tensor], n: int, repeats: int,
                    seed: int, draws: list[tuple[torch.Tensor, torch.Tensor]], message: str) -> Mismatch:
    """The `Mismatch` for a wrong floor ``got``, naming the mistake it matches, if any."""
    for description, alt in _floor_mistakes(sample_fn, n, repeats, seed, draws):
        if math.isclose(got, alt, rel_tol=1e-5, abs_tol=1e-9):
            return Mismatch(message + f"\n   That is exactly what you get if you {description}.")
    truth = feature_stats(sample_fn(20000, torch.Generator().manual_seed(seed + 1)))
    versus_truth = _mean_over(lambda a, b: frechet_reference(*feature_stats(a), *truth), draws)
    if abs(got - versus_truth) < 0.25 * versus_truth:
        message += ("\n   That is about the distance between one sample and the *true* distribution (half "
                    "the floor): the floor compares two independent samples of the same size n.")
    return Mismatch(message)


@register_check("fd_floor", chapter=CHAPTER, references=(fd_floor_reference,), timeout=30.0,
                hint="For each of `repeats` rounds: a = sample_fn(n, generator), b = sample_fn(n, generator) (two "
                     "*independent* samples of the real data); mean and unbiased covariance of each "
                     "(x.mean(0), torch.cov(x.T)); your frechet_distance between them. Return the mean over the rounds, "
                     "a float.")
def check_fd_floor(fn: Fn, ctx: CheckContext) -> str:
    gm = toy2d.mixture("8gaussians")
    A = torch.randn(3, 3, generator=ctx.gen, dtype=torch.float64)

    def mixture_fn(n: int, g: torch.Generator) -> torch.Tensor:
        return gm.sample(n, g)

    def gauss3_fn(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(n, 3, generator=g, dtype=torch.float64) @ A.T + 1.0

    found = []
    for name, sample_fn, d in (("the 8 Gaussians", mixture_fn, 2), ("a correlated Gaussian in 3D", gauss3_fn, 3)):
        n, repeats = randint(ctx, 100, 300), randint(ctx, 6, 10)
        seed = randint(ctx, 0, 10_000)
        what = f"fd_floor(sample_fn, n={n}, repeats={repeats}, generator)"
        inputs = f"sample_fn draws (n, {d}) points of {name}"
        got = as_float(ctx.call(fn, sample_fn, n, repeats, torch.Generator().manual_seed(seed), what=what), what)
        again = as_float(ctx.call(fn, sample_fn, n, repeats, torch.Generator().manual_seed(seed), what=what), what)
        if got != again:
            raise Mismatch(f"not repeatable: two calls with generators seeded alike gave {got:.6g} and {again:.6g}.",
                           hint="Draw every sample with sample_fn(n, generator): the generator you were given.")
        draws = _floor_draws(sample_fn, n, repeats, seed)
        ref = _mean_over(_fd, draws)
        if not math.isclose(got, ref, rel_tol=1e-5, abs_tol=1e-9):
            raise _floor_mismatch(got, sample_fn, n, repeats, seed, draws,
                                  f"value differs: {what} gave {got:.5g}, expected {ref:.5g}.\n   inputs: {inputs}")
        found.append(f"{name}, n = {n}: {ref:.4f}")
    return "the real-vs-real floor matches (" + "; ".join(found) + ")."
