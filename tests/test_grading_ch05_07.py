"""The exercise checks of chapters 5–7 (guidance, classifier-free guidance, evaluation).

Right code passes (over several seeds); deliberately wrong code — a missing square root, a wrong
sign, swapped arguments, the other convention, a shape error, NaN, a hang — is caught with a
message that names the mistake. (The solution and exercise notebooks themselves are graded in
``tests/test_exercises.py``.)
"""
from __future__ import annotations

import math
import time

import pytest
import torch

from diffcourse.data import toy2d
from diffcourse.grading import check, checks_for_chapter
from diffcourse.samplers.ddim import ddim_sample
from grading_helpers import (assert_agrees_with_the_library, assert_caught, assert_passes,  # tests/grading_helpers.py
                             assert_stub_says_so, assert_times_out)


# ============================================================================ chapter 5: classifier guidance
def good_grad(log_prob_fn, x):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob_fn(x).sum(), x)
    return g


def _a(alpha_bar_t, eps):
    a = torch.as_tensor(alpha_bar_t, dtype=eps.dtype)
    return a.reshape(-1, *[1] * (eps.ndim - 1)) if a.ndim == 1 else a


def good_guided_eps(eps, grad, alpha_bar_t, scale):
    return eps - scale * (1 - _a(alpha_bar_t, eps)).sqrt() * grad


def good_mixture_eps(gm, x, alpha_bar, k, scale):
    gt = gm.noised(alpha_bar)
    eps = -math.sqrt(1 - alpha_bar) * gt.score(x)
    grad = good_grad(lambda z: torch.log_softmax(gt.component_log_probs(z), dim=1)[:, k], x)
    return good_guided_eps(eps, grad, alpha_bar, scale)


def _mode_fraction(mixture_eps):
    def fraction(scale, k, schedule, n, steps, generator):
        gm = toy2d.mixture("8gaussians")

        def eps_fn(x, t):
            return mixture_eps(gm, x, float(schedule.alpha_bars[int(t[0])]), k, scale).to(x.dtype)

        x = ddim_sample(eps_fn, schedule, (n, 2), steps=steps, generator=generator)
        return float((gm.responsibilities(x).argmax(1) == k).float().mean())

    return fraction


good_mode_fraction = _mode_fraction(good_mixture_eps)


def grad_no_enable(log_prob_fn, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(log_prob_fn(x).sum(), x)
    return g


def grad_mean(log_prob_fn, x):
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob_fn(x).mean(), x)
    return g


def grad_of_prob(log_prob_fn, x):
    return good_grad(lambda z: log_prob_fn(z).exp(), x)


def mix_clean(gm, x, alpha_bar, k, scale):
    eps = -math.sqrt(1 - alpha_bar) * gm.score(x)
    grad = good_grad(lambda z: torch.log_softmax(gm.component_log_probs(z), dim=1)[:, k], x)
    return good_guided_eps(eps, grad, alpha_bar, scale)


def mix_joint(gm, x, alpha_bar, k, scale):
    gt = gm.noised(alpha_bar)
    eps = -math.sqrt(1 - alpha_bar) * gt.score(x)
    grad = good_grad(lambda z: gt.component_log_probs(z)[:, k], x)
    return good_guided_eps(eps, grad, alpha_bar, scale)


def mix_plus(gm, x, alpha_bar, k, scale):
    return good_mixture_eps(gm, x, alpha_bar, k, -scale)


def mix_score_as_eps(gm, x, alpha_bar, k, scale):
    gt = gm.noised(alpha_bar)
    grad = good_grad(lambda z: torch.log_softmax(gt.component_log_probs(z), dim=1)[:, k], x)
    return good_guided_eps(-gt.score(x), grad, alpha_bar, scale)


_calls = iter(range(10**6))


def fraction_no_generator(scale, k, schedule, n, steps, generator):
    return good_mode_fraction(scale, k, schedule, n, steps, torch.Generator().manual_seed(next(_calls)))


def fraction_reseeds_the_global_generator(scale, k, schedule, n, steps, generator):
    """Repeatable, but its noise comes from torch's global generator: the one it is given is never used."""
    torch.manual_seed(0)
    return good_mode_fraction(scale, k, schedule, n, steps, None)


GOOD = {
    "classifier_log_prob_grad": good_grad,
    "classifier_guided_eps": good_guided_eps,
    "mixture_guided_eps": good_mixture_eps,
    "guided_mode_fraction": good_mode_fraction,
}

WRONG = [
    ("classifier_log_prob_grad", lambda f, x: -good_grad(f, x), "flip the sign"),
    ("classifier_log_prob_grad", grad_mean, "average the log-probabilities with .mean()"),
    ("classifier_log_prob_grad", grad_of_prob, "gradient of p(y|x) instead of log p(y|x)"),
    ("classifier_log_prob_grad", grad_no_enable, "torch.enable_grad()"),
    ("classifier_log_prob_grad", lambda f, x: good_grad(f, x).sum(0), "shape differs"),
    ("classifier_log_prob_grad", lambda f, x: good_grad(f, x) / 0 * 0, "contains NaN"),
    ("classifier_guided_eps", lambda e, g, a, s: good_guided_eps(e, g, a, -s), "add the guidance term"),
    ("classifier_guided_eps", lambda e, g, a, s: e - s * (1 - _a(a, e)) * g, "forget the square root"),
    ("classifier_guided_eps", lambda e, g, a, s: e - s * _a(a, e).sqrt() * g, "sqrt(ᾱ_t) instead of sqrt(1 − ᾱ_t)"),
    ("classifier_guided_eps", lambda e, g, a, s: good_guided_eps(g, e, a, s), "values differ"),  # swapped arguments
    ("classifier_guided_eps", lambda e, g, a, s: e - s * (1 - torch.as_tensor(a)).sqrt() * g, "RuntimeError"),
    ("classifier_guided_eps", lambda e, g, a, s: e - s * (1 - _a(a, e).double()).sqrt() * g, "dtype differs"),
    ("mixture_guided_eps", mix_clean, "use the clean mixture gm instead of the noised one"),
    ("mixture_guided_eps", mix_joint, "joint log p(x, k)"),
    ("mixture_guided_eps", mix_plus, "add the guidance term"),
    ("mixture_guided_eps", mix_score_as_eps, "forget the factor sqrt(1 − ᾱ)"),
    ("guided_mode_fraction", _mode_fraction(mix_plus), "*away* from component k"),
    ("guided_mode_fraction", _mode_fraction(lambda gm, x, ab, k, s: good_mixture_eps(gm, x, ab, k, 0.0)),
     "does not change with the scale"),
    ("guided_mode_fraction", fraction_no_generator, "ignores the generator"),
    ("guided_mode_fraction", fraction_reseeds_the_global_generator, "ignores the generator"),
    ("guided_mode_fraction", lambda *a: good_mode_fraction(*a) * a[3], "not a fraction"),
]


# ============================================================================ chapter 6: classifier-free guidance
def good_drop_labels(y, p_uncond, null_label, generator):
    u = torch.rand(y.shape, generator=generator)
    return torch.where(u < p_uncond, torch.full_like(y, null_label), y)


def drop_in_place(y, p_uncond, null_label, generator):
    y[torch.rand(y.shape, generator=generator) < p_uncond] = null_label
    return y


def drop_where_u_above(y, p_uncond, null_label, generator):
    u = torch.rand(y.shape, generator=generator)
    return torch.where(u >= p_uncond, torch.full_like(y, null_label), y)


def drop_to_zero(y, p_uncond, null_label, generator):
    return good_drop_labels(y, p_uncond, 0, generator)


def drop_bernoulli_other_order(y, p_uncond, null_label, generator):
    u = 1 - torch.rand(y.shape, generator=generator)  # same rate, other draws
    return torch.where(u < p_uncond, torch.full_like(y, null_label), y)


def good_cfg(eps_c, eps_u, w):
    return eps_u + w * (eps_c - eps_u)


def good_cfg_paper(eps_c, eps_u, w_prime):
    return (1 + w_prime) * eps_c - w_prime * eps_u


def _mode_stats(combine, *, null=True, swap_out=False):
    def stats(model, schedule, k, w, n, steps, generator):
        gm = toy2d.mixture("8gaussians")

        def eps_fn(x, t):
            y = torch.full((x.shape[0],), k)
            yu = torch.full_like(y, model.label.null_label) if null else y
            return combine(model(x, t, y), model(x, t, yu), w)

        x = ddim_sample(eps_fn, schedule, (n, 2), steps=steps, generator=generator)
        inside = gm.responsibilities(x).argmax(1) == k
        frac, spread = float(inside.float().mean()), float(x[inside].std(dim=0).mean())
        return (spread, frac) if swap_out else (frac, spread)

    return stats


good_mode_stats = _mode_stats(good_cfg)


def _sweet_spot(stats, *, pick="closest", fresh=True, need_fraction=True):
    def sweet(model, schedule, k, ws, n, steps, seed, min_fraction=0.95, target_spread=0.15):
        best, gap = None, math.inf
        g = torch.Generator().manual_seed(seed)
        for w in ws:
            frac, spread = stats(model, schedule, k, w, n, steps, torch.Generator().manual_seed(seed) if fresh else g)
            if frac >= min_fraction or not need_fraction:
                if pick == "largest":
                    best = w
                elif abs(spread - target_spread) < gap:
                    best, gap = w, abs(spread - target_spread)
        return best

    return sweet


good_sweet_spot = _sweet_spot(good_mode_stats)

GOOD.update({
    "drop_labels": good_drop_labels,
    "cfg_combine": good_cfg,
    "cfg_combine_paper": good_cfg_paper,
    "cfg_mode_stats": good_mode_stats,
    "sweet_spot": good_sweet_spot,
})

WRONG += [
    ("drop_labels", drop_in_place, "changed its input `y` in place"),
    ("drop_labels", drop_where_u_above, "u ≥ p_uncond"),
    ("drop_labels", drop_to_zero, "neither the original one nor the null label"),
    ("drop_labels", drop_bernoulli_other_order, "the rate of null labels is right"),
    ("drop_labels", lambda y, p, n, g: good_drop_labels(y, p, n, g).float(), "dtype differs"),
    ("drop_labels", lambda y, p, n, g: y, "values differ"),
    ("cfg_combine", lambda c, u, w: good_cfg(u, c, w), "swap ε_c and ε_u"),
    ("cfg_combine", good_cfg_paper, "the paper's convention"),
    ("cfg_combine", lambda c, u, w: u - w * (c - u), "subtract the difference"),
    ("cfg_combine", lambda c, u, w: w * (c - u), "leave out ε_u"),
    ("cfg_combine", lambda c, u, w: good_cfg(c, u, w)[:, :1], "shape differs"),
    ("cfg_combine_paper", good_cfg, "this course's convention"),
    ("cfg_combine_paper", lambda c, u, w: good_cfg_paper(u, c, w), "swap ε_c and ε_u"),
    ("cfg_combine_paper", lambda c, u, w: (w - 1) * c - w * u, "w' − 1 instead of 1 + w'"),
    ("cfg_mode_stats", _mode_stats(good_cfg_paper), "the paper's convention"),
    ("cfg_mode_stats", _mode_stats(good_cfg, null=False), "no guidance at all (w = 1). Is ε_u computed with the null label"),
    ("cfg_mode_stats", _mode_stats(lambda c, u, w: good_cfg(u, c, w)), "ε_c and ε_u swapped"),
    ("cfg_mode_stats", _mode_stats(good_cfg, swap_out=True), "the order is (fraction, spread)"),
    ("cfg_mode_stats", lambda *a: good_mode_stats(*a)[0], "expected a pair"),
    ("sweet_spot", _sweet_spot(good_mode_stats, pick="largest"), "You picked the largest w"),
    ("sweet_spot", _sweet_spot(good_mode_stats, fresh=False), "for the different w started from different noise"),
    ("cfg_mode_stats", lambda m, s, k, w, n, st, g: (torch.manual_seed(0), good_mode_stats(m, s, k, w, n, st, None))[1],
     "ignores the generator"),
    ("sweet_spot", _sweet_spot(good_mode_stats, need_fraction=False), "return None"),
    ("sweet_spot", lambda *a: str(good_sweet_spot(*a)), "expected a number"),
]


# ============================================================================ chapter 7: evaluation
def good_sqrtm(S):
    w, V = torch.linalg.eigh(S)
    return (V * w.clamp(min=0).sqrt()) @ V.T


def sqrtm_unclamped(S):
    w, V = torch.linalg.eigh(S)
    return (V * w.sqrt()) @ V.T


def good_fd(mu1, S1, mu2, S2):
    r = good_sqrtm(S1)
    tr = torch.trace(good_sqrtm(r @ S2 @ r))
    return float(((mu1 - mu2) ** 2).sum() + S1.trace() + S2.trace() - 2 * tr)


def fd_unclamped(mu1, S1, mu2, S2):
    r = sqrtm_unclamped(S1)
    tr = torch.trace(sqrtm_unclamped(r @ S2 @ r))
    return float(((mu1 - mu2) ** 2).sum() + S1.trace() + S2.trace() - 2 * tr)


def fd_trace_sqrt(mu1, S1, mu2, S2):
    return float(((mu1 - mu2) ** 2).sum() + S1.trace() + S2.trace() - 2 * torch.trace(S1 @ S2).sqrt())


def good_pr(real, fake, k):
    rr = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    fr = torch.cdist(fake, fake).kthvalue(k + 1, dim=1).values
    d = torch.cdist(fake, real)
    return float((d <= rr[None]).any(1).float().mean()), float((d.T <= fr[None]).any(1).float().mean())


def pr_self_neighbour(real, fake, k):
    return good_pr(real, fake, k - 1)  # kthvalue(k): the point itself is the first "neighbour"


def pr_own_radii(real, fake, k):
    rr = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    fr = torch.cdist(fake, fake).kthvalue(k + 1, dim=1).values
    d = torch.cdist(fake, real)
    return float((d <= fr[:, None]).any(1).float().mean()), float((d.T <= rr[:, None]).any(1).float().mean())


def good_mmd(x, y, h):
    k = lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / (2 * h * h))  # noqa: E731
    n, m = len(x), len(y)
    return float((k(x, x).sum() - n) / (n * (n - 1)) + (k(y, y).sum() - m) / (m * (m - 1)) - 2 * k(x, y).mean())


def mmd_biased(x, y, h):
    k = lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / (2 * h * h))  # noqa: E731
    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


def _floor(fd, *, same=False, order="ab", root=False):
    def floor(sample_fn, n, repeats, generator):
        if order == "ab":
            pairs = [(sample_fn(n, generator), sample_fn(n, generator)) for _ in range(repeats)]
        else:  # all a's first, then all b's: another estimate of the same floor
            a_s = [sample_fn(n, generator) for _ in range(repeats)]
            pairs = list(zip(a_s, [sample_fn(n, generator) for _ in range(repeats)]))
        vals = []
        for a, b in pairs:
            b = a if same else b
            a, b = a.double(), b.double()
            v = fd(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
            vals.append(math.sqrt(max(v, 0)) if root else v)
        return sum(vals) / len(vals)

    return floor


good_floor = _floor(good_fd)

GOOD.update({
    "sqrtm_psd": good_sqrtm,
    "frechet_distance": good_fd,
    "precision_recall": good_pr,
    "mmd_rbf": good_mmd,
    "fd_floor": good_floor,
})

WRONG += [
    ("sqrtm_psd", sqrtm_unclamped, "clamp the eigenvalues at 0"),
    ("sqrtm_psd", lambda S: S.sqrt(), "take the square root of every entry"),
    ("sqrtm_psd", lambda S: torch.linalg.cholesky(S), "Cholesky factor"),
    ("sqrtm_psd", lambda S: (lambda w, V: V * w.clamp(min=0).sqrt())(*torch.linalg.eigh(S)), "forget the Vᵀ"),
    ("sqrtm_psd", lambda S: S, "forget the square root of the eigenvalues"),
    ("sqrtm_psd", lambda S: good_sqrtm(S)[0], "shape differs"),
    ("frechet_distance", lambda *a: math.sqrt(good_fd(*a)), "return the distance d instead of its square"),
    ("frechet_distance", fd_trace_sqrt, "the square root of a trace is not the trace of a square root"),
    ("frechet_distance", lambda m1, S1, m2, S2: good_fd(m1, S1, m2, S2) - float(((m1 - m2) ** 2).sum()),
     "leave out the means' term"),
    ("frechet_distance", lambda m1, S1, m2, S2: good_fd(m1, S1, m2, S2) + float(torch.trace(good_sqrtm(
        good_sqrtm(S1) @ S2 @ good_sqrtm(S1)))), "forget the factor 2"),
    ("frechet_distance", fd_unclamped, "clamp the eigenvalues at 0"),
    ("frechet_distance", lambda *a: torch.tensor([good_fd(*a)] * 2), "expected a single number"),
    ("precision_recall", lambda r, f, k: good_pr(r, f, k)[::-1], "the order is (precision, recall)"),
    ("precision_recall", pr_self_neighbour, "its own nearest neighbour"),
    ("precision_recall", pr_own_radii, "*its own* k-NN radius"),
    ("precision_recall", lambda r, f, k: good_pr(r, f, k)[0], "expected a pair"),
    ("precision_recall", lambda r, f, k: tuple(v * len(r) for v in good_pr(r, f, k)), "not a fraction"),
    ("mmd_rbf", mmd_biased, "the biased estimate"),
    ("mmd_rbf", lambda x, y, h: good_mmd(x, y, h / math.sqrt(2)), "exp(−‖a − b‖²/h²)"),
    ("mmd_rbf", lambda x, y, h: math.sqrt(max(good_mmd(x, y, h), 0)), "return MMD instead of MMD²"),
    ("mmd_rbf", lambda x, y, h: good_mmd(x, y, h) + float(
        torch.exp(-torch.cdist(x, y) ** 2 / (2 * h * h)).mean()), "forget the factor 2 on the cross term"),
    ("fd_floor", _floor(good_fd, same=True), "compare each sample with itself"),
    ("fd_floor", _floor(good_fd, root=True), "return the distance instead of its square"),
    ("fd_floor", lambda *a: good_floor(*a) * a[2], "sum over the rounds"),
    ("fd_floor", _floor(good_fd, order="ba"), "in each round draw a, then b"),
    ("fd_floor", _floor(lambda m1, S1, m2, S2: good_fd(m1, S1 * 0.99, m2, S2 * 0.99)), "value differs"),
    ("fd_floor", lambda s, n, r, g: good_floor(s, n, r, torch.Generator().manual_seed(next(_calls))), "not repeatable"),
]


# ============================================================================ the tests
pytestmark = pytest.mark.usefixtures("fresh_grading")  # see tests/conftest.py


def test_chapters_register_their_exercises_in_order():
    assert checks_for_chapter(5) == ["classifier_log_prob_grad", "classifier_guided_eps", "mixture_guided_eps",
                                     "guided_mode_fraction"]
    assert checks_for_chapter(6) == ["drop_labels", "cfg_combine", "cfg_combine_paper", "cfg_mode_stats",
                                     "sweet_spot"]
    assert checks_for_chapter(7) == ["sqrtm_psd", "frechet_distance", "precision_recall", "mmd_rbf", "fd_floor"]
    assert set(GOOD) == set(checks_for_chapter(5) + checks_for_chapter(6) + checks_for_chapter(7))


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("name", sorted(GOOD))
def test_correct_code_passes(name, seed, capsys):
    assert_passes(name, GOOD[name], seed, capsys)


def test_the_checks_agree_with_the_library():
    from diffcourse import metrics
    from diffcourse.grading.ch05 import guided_mode_fraction_reference, mixture_guided_eps_reference
    from diffcourse.grading.ch06 import cfg_mode_stats_reference, sweet_spot_reference
    from diffcourse.grading.ch07 import fd_floor_reference
    from diffcourse.objectives import drop_labels
    from diffcourse.samplers import guidance

    assert_agrees_with_the_library("classifier_log_prob_grad", guidance.classifier_log_prob_grad)
    assert_agrees_with_the_library("classifier_guided_eps", guidance.classifier_guided_eps)
    assert_agrees_with_the_library("mixture_guided_eps", mixture_guided_eps_reference)
    assert_agrees_with_the_library("guided_mode_fraction", guided_mode_fraction_reference)
    assert_agrees_with_the_library("drop_labels", drop_labels)
    assert_agrees_with_the_library("cfg_combine", guidance.cfg_combine)
    assert_agrees_with_the_library("cfg_combine_paper", guidance.cfg_combine_paper)
    assert_agrees_with_the_library("cfg_mode_stats", cfg_mode_stats_reference)
    assert_agrees_with_the_library("sweet_spot", sweet_spot_reference)
    assert_agrees_with_the_library("sqrtm_psd", metrics._sqrtm_psd)
    assert_agrees_with_the_library("frechet_distance", metrics.frechet_distance)
    assert_agrees_with_the_library("precision_recall", metrics.precision_recall)
    assert_agrees_with_the_library("mmd_rbf", metrics.mmd_rbf)
    assert_agrees_with_the_library("fd_floor", fd_floor_reference)


def test_the_two_cfg_conventions_map_by_w_equals_one_plus_w_prime():
    from diffcourse.samplers.guidance import w_from_paper

    ec, eu = torch.randn(5, 2), torch.randn(5, 2)
    for w_prime in (0.0, 0.5, 3.0):
        assert torch.allclose(good_cfg_paper(ec, eu, w_prime), good_cfg(ec, eu, w_from_paper(w_prime)), atol=1e-6)


def test_exact_bayes_rule_at_scale_one_gives_the_component_alone():
    gm = toy2d.mixture("8gaussians")
    x = 2 * torch.randn(200, 2, dtype=torch.float64)
    gt = gm.noised(0.3)
    alone = -math.sqrt(0.7) * (gt.means[3] - x) / gt.std ** 2
    assert torch.allclose(good_mixture_eps(gm, x, 0.3, 3, 1.0), alone, atol=1e-10)


@pytest.mark.parametrize("name, wrong, words", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_code_is_caught_with_a_useful_message(name, wrong, words, capsys):
    assert_caught(name, wrong, words, capsys)



@pytest.mark.parametrize("name", ["mixture_guided_eps", "guided_mode_fraction", "cfg_mode_stats", "sweet_spot",
                                  "frechet_distance", "fd_floor"])
def test_an_endless_loop_fails_within_the_time_limit(name, capsys):
    assert_times_out(name, capsys)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_an_unwritten_stub_says_so(name):
    assert_stub_says_so(name)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_nonsense_returns_fail_without_raising(name):
    for value in (None, float("nan"), "0.5", torch.full((3,), float("nan"))):
        result = check(name, lambda *a, v=value: v, quiet=True)
        assert not result.passed and result.message


@pytest.mark.parametrize("name", ["guided_mode_fraction", "cfg_mode_stats", "sweet_spot", "fd_floor"])
def test_experiment_checks_are_quick(name):
    start = time.perf_counter()
    assert check(name, GOOD[name], quiet=True)
    assert time.perf_counter() - start < 20, "an experiment check must stay well within its time limit"

# The chapter 5–7 solution and exercise notebooks are graded in tests/test_exercises.py (one `grade` run
# over every chapter: full marks for the solutions, zero for the untouched exercises, which run to their summary).


def test_numbers_of_any_kind_are_accepted():
    """A NumPy or torch number is as good as a Python float where a single number is asked for."""
    import numpy as np

    def as_numpy(*a):
        w = good_sweet_spot(*a)
        return None if w is None else np.float32(w)

    assert check("sweet_spot", as_numpy, quiet=True)
    assert check("fd_floor", lambda *a: np.float64(good_floor(*a)), quiet=True)
