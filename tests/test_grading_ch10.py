"""Checks of chapter 10: right code passes, deliberately wrong code is caught with a message that names the mistake.

The correct implementations are written here from the equations (not imported from the package, and written
differently from it), so a check and its reference cannot agree by accident.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from grading_helpers import assert_agrees_with_the_library, assert_passes  # tests/grading_helpers.py
from grading_suite import chapter_tests  # tests/grading_suite.py

pytestmark = pytest.mark.usefixtures("fresh_grading")  # see tests/conftest.py


def _b(t, x):
    return torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


# ============================================================================ correct code, with switches for mistakes
def cfm_loss(model, x0, eps, t, *, backwards=False, sign=1.0, scale=1000.0, reduce="mean", target="v"):
    tb = _b(t, x0)
    x_t = torch.lerp(x0, eps, tb) if not backwards else torch.lerp(eps, x0, tb)
    goal = {"v": sign * (eps - x0), "eps": eps}[target]
    sq = (model(x_t, scale * t) - goal).pow(2)
    return sq.mean() if reduce == "mean" else sq.sum()


def flow_euler(v, x1, steps, *, upwards=False, sign=1.0, evaluate_at_end=False):
    x, dt = x1, 1.0 / steps
    for k in range(steps):
        t = 1.0 - k * dt if not upwards else k * dt
        t_eval = t - dt if evaluate_at_end else t
        x = x - sign * dt * v(x, torch.full((x.shape[0],), t_eval, dtype=torch.float64))
    return x


def eps_to_velocity(eps_hat, x_t, t, *, divide=True, by_t=False, sign=1.0):
    tb = _b(t, x_t)
    x0_hat = (x_t - tb * eps_hat) / ((tb if by_t else 1 - tb) if divide else 1.0)
    return sign * (eps_hat - x0_hat)


def ot_coupling(x0, eps, *, greedy=False, maximise=False, inverse=False, unsquared=False):
    a, b = x0.flatten(1).numpy().astype(np.float64), eps.flatten(1).numpy().astype(np.float64)
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if unsquared:
        cost = np.sqrt(cost)
    if greedy:
        return torch.as_tensor(cost.argmin(1))
    rows, cols = linear_sum_assignment(-cost if maximise else cost)
    perm = np.empty_like(cols)
    perm[rows] = cols
    if inverse:
        perm = np.argsort(perm)
    return torch.as_tensor(perm)


def straightness(v, eps, steps, *, chord_sign=1.0, square=True):
    z, vels = eps, []
    for k in range(steps):
        t = 1.0 - k / steps
        vel = v(z, torch.full((z.shape[0],), t, dtype=torch.float64))
        vels.append(vel.flatten(1))
        z = z - vel / steps
    chord = chord_sign * (eps - z).flatten(1)
    dev = torch.stack([chord - w for w in vels])
    return (dev.pow(2).sum(-1) if square else dev.norm(dim=-1)).mean(0)


def marginal_velocity(means, std, weights, x, t, *, sign=1.0, data_responsibilities=False):
    m, x = means.double(), x.double()
    s2 = (1 - t) ** 2 * std ** 2 + t ** 2
    var = std ** 2 if data_responsibilities else s2
    centre = m if data_responsibilities else (1 - t) * m
    log_w = torch.log(torch.as_tensor(weights, dtype=torch.float64))
    logits = log_w - ((x[:, None] - centre[None]) ** 2).sum(-1) / (2 * var)
    r = torch.softmax(logits, 1)
    d = x[:, None] - (1 - t) * m[None]
    e_eps, e_x0 = t / s2 * d, m[None] + (1 - t) * std ** 2 / s2 * d
    return sign * torch.einsum("nk,nkd->nd", r, e_eps - e_x0)


GOOD = {"cfm_loss": cfm_loss, "flow_euler": flow_euler, "eps_to_velocity": eps_to_velocity,
        "ot_coupling": ot_coupling, "straightness": straightness, "marginal_velocity": marginal_velocity}


def _naive_ot(x0, eps):  # brute force over permutations: only for the tiny sets of the check's first case
    n = x0.shape[0]
    if n > 7:
        return ot_coupling(x0, eps)
    best = min(itertools.permutations(range(n)), key=lambda p: float(((x0 - eps[list(p)]) ** 2).sum()))
    return torch.tensor(best)


WRONG = [
    ("cfm_loss", lambda *a: cfm_loss(*a, backwards=True), "run the path backwards"),
    ("cfm_loss", lambda *a: cfm_loss(*a, sign=-1.0), "regress x0 − eps"),
    ("cfm_loss", lambda *a: cfm_loss(*a, target="eps"), "regress the noise eps"),
    ("cfm_loss", lambda *a: cfm_loss(*a, scale=1.0), "give the network t instead of 1000·t"),
    ("cfm_loss", lambda *a: cfm_loss(*a, reduce="sum"), "sum the squared errors"),
    ("flow_euler", lambda *a: flow_euler(*a, upwards=True), "walk the time grid upwards"),
    ("flow_euler", lambda *a: flow_euler(*a, sign=-1.0), "add |Δt|·v"),
    ("flow_euler", lambda *a: flow_euler(*a, evaluate_at_end=True), "evaluate v at the end of the step"),
    ("eps_to_velocity", lambda *a: eps_to_velocity(*a, divide=False), "without dividing by (1 − t)"),
    ("eps_to_velocity", lambda *a: eps_to_velocity(*a, by_t=True), "divide by t instead of (1 − t) in x̂0"),
    ("eps_to_velocity", lambda *a: eps_to_velocity(*a, sign=-1.0), "flip the sign"),
    ("ot_coupling", lambda *a: ot_coupling(*a, greedy=True), "not a permutation"),
    ("ot_coupling", lambda *a: ot_coupling(*a, maximise=True), "the best pairing reaches"),
    ("ot_coupling", lambda *a: ot_coupling(*a, inverse=True), "inverse permutation"),
    ("ot_coupling", lambda x0, eps: torch.arange(x0.shape[0]), "the independent coupling"),
    ("straightness", lambda *a: straightness(*a, chord_sign=-1.0), "use the chord z_0 − z_1"),
    ("straightness", lambda *a: straightness(*a, square=False), "distance instead of its square"),
    ("marginal_velocity", lambda *a: marginal_velocity(*a, sign=-1.0), "flip the sign"),
    ("marginal_velocity", lambda *a: marginal_velocity(*a, data_responsibilities=True), "responsibilities"),
]


(test_chapter_10_registers_its_exercises_in_order, test_correct_code_passes,
 test_wrong_code_is_caught_with_a_useful_message, test_an_endless_loop_fails_within_the_time_limit,
 test_an_unwritten_stub_says_so) = chapter_tests(
    10, ["cfm_loss", "flow_euler", "eps_to_velocity", "ot_coupling", "straightness", "marginal_velocity"], GOOD, WRONG,
    endless=["flow_euler", "ot_coupling"])


def test_brute_force_ot_passes_too(capsys):
    assert_passes("ot_coupling", _naive_ot, None, capsys)


def test_the_checks_agree_with_the_library():
    from diffcourse import flows
    from diffcourse.data.toy2d import GaussianMixture
    from diffcourse.samplers.flow import flow_sample

    library = {
        "cfm_loss": lambda m, x0, eps, t: flows.cfm_loss(m, x0, eps, t),
        "flow_euler": lambda v, x1, steps: flow_sample(v, x1, steps=steps),
        "eps_to_velocity": lambda e, x, t: flows.convert(e, x, t, "eps", "velocity"),
        "ot_coupling": flows.ot_coupling,
        "straightness": flows.straightness,
        "marginal_velocity": lambda m, s, w, x, t: flows.mixture_marginal_velocity(GaussianMixture(m, s, w), x, t),
    }
    for name, fn in library.items():
        assert_agrees_with_the_library(name, fn)
