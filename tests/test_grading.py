"""The exercise checks: right answers pass, wrong ones are caught with a useful message, nothing ever raises.

Every chapter-1 check is run on a correct implementation (over several seeds, so the
statistical checks are not flaky) and on deliberately wrong ones — a missing square
root, a wrong sign, swapped arguments, a shape error, NaN, a hang — and the ❌ message
must name what went wrong.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import math
import re
import time
from pathlib import Path

import pytest
import torch

from diffcourse import grading
from diffcourse.grading import GRADER_ENV, check, checks_for_chapter, summary
from diffcourse.grading.ch01 import steps_to_noise_reference
from diffcourse.grading.runner import default_seed, run_check
from diffcourse.schedules import NoiseSchedule, cosine_betas, linear_betas, make_schedule
from grading_helpers import assert_caught, assert_passes, assert_times_out  # tests/grading_helpers.py


# ----------------------------------------------------------------------------- correct learner code
def good_linear(T, b0, b1):
    return torch.linspace(b0, b1, T, dtype=torch.float64)


def good_cosine(T, s, m):
    tau = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((tau / T + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    return (1 - ab[1:] / ab[:-1]).clamp(max=m)


def _coef(alpha_bars, t, x0):
    return alpha_bars[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)


def good_q_sample(x0, t, eps, alpha_bars):
    a = _coef(alpha_bars, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def good_q_step(x, t, eps, betas):
    b = float(betas[t])
    return math.sqrt(1 - b) * x + math.sqrt(b) * eps


def good_run_chain(x0, betas, generator):
    x = x0
    for t in range(len(betas)):
        x = good_q_step(x, t, torch.randn(x.shape, generator=generator), betas)
    return x


def good_derive_closed_form(betas):
    """The derivation as a loop: compose N(sqrt(α_t)·x_{t−1}, β_t) with N(m·x0, v): m ← sqrt(α_t)·m, v ← α_t·v + β_t."""
    m, v, ms, vs = 1.0, 0.0, [], []
    for b in betas.tolist():
        m, v = math.sqrt(1 - b) * m, (1 - b) * v + b
        ms.append(m)
        vs.append(v)
    return torch.tensor(ms, dtype=torch.float64), torch.tensor(vs, dtype=torch.float64)


def closed_form_vectorised(betas):
    """Differently written and still right: the closed form itself, by a cumulative product."""
    alpha_bars = torch.cumprod(1 - betas, dim=0)
    return alpha_bars.sqrt(), 1 - alpha_bars


def closed_form_tensor_loop(betas):
    """Differently written and still right: 0-d float64 tensors, written into preallocated outputs, as a list pair."""
    mean, var = torch.empty_like(betas), torch.empty_like(betas)
    m, v = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    for t in range(len(betas)):
        m, v = (1 - betas[t]).sqrt() * m, (1 - betas[t]) * v + betas[t]
        mean[t], var[t] = m, v
    return [mean, var]


def good_snr(ab):
    return ab / (1 - ab)


def good_steps_to_noise(name, threshold=1e-3, T_max=5000):
    for T in range(1, T_max + 1):
        if make_schedule(name, T).alpha_bars[-1] < threshold:
            return T
    return None


GOOD = {
    "linear_betas": good_linear,
    "cosine_betas": good_cosine,
    "q_sample": good_q_sample,
    "q_step": good_q_step,
    "run_chain": good_run_chain,
    "derive_closed_form": good_derive_closed_form,
    "snr": good_snr,
    "steps_to_noise": good_steps_to_noise,
}


# ----------------------------------------------------------------------------- wrong learner code
def stub(*args):
    raise NotImplementedError("q_sample: not written yet. Hint: read the equation.")


def cos_no_square(T, s, m):
    tau = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((tau / T + s) / (1 + s) * math.pi / 2)
    ab = f / f[0]
    return (1 - ab[1:] / ab[:-1]).clamp(max=m)


def cos_flipped(T, s, m):
    tau = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((tau / T + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    return (1 - ab[:-1] / ab[1:]).clamp(max=m)


def qs_no_sqrt(x0, t, eps, ab):
    a = _coef(ab, t, x0)
    return a * x0 + (1 - a) * eps


def qs_minus(x0, t, eps, ab):
    a = _coef(ab, t, x0)
    return a.sqrt() * x0 - (1 - a).sqrt() * eps


def qs_swapped(x0, t, eps, ab):
    a = _coef(ab, t, x0)
    return a.sqrt() * eps + (1 - a).sqrt() * x0


def qs_off_by_one(x0, t, eps, ab):
    return good_q_sample(x0, t - 1, eps, ab)


def qs_no_reshape(x0, t, eps, ab):
    a = ab[t].to(x0.dtype)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def qs_float64(x0, t, eps, ab):
    a = ab[t].reshape(-1, *[1] * (x0.ndim - 1))
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def qs_nan(x0, t, eps, ab):
    return good_q_sample(x0, t, eps, ab) * float("nan")


def step_beta_no_sqrt(x, t, eps, betas):
    b = float(betas[t])
    return math.sqrt(1 - b) * x + b * eps


def step_swapped(x, t, eps, betas):
    b = float(betas[t])
    return math.sqrt(b) * x + math.sqrt(1 - b) * eps


def step_unscaled(x, t, eps, betas):
    return x + math.sqrt(float(betas[t])) * eps


def chain_skips_last(x0, betas, generator):
    return good_run_chain(x0, betas[:-1], generator)


def chain_no_generator(x0, betas, generator):
    x = x0
    for t in range(len(betas)):
        x = good_q_step(x, t, torch.randn(x.shape), betas)
    return x


def chain_beta_no_sqrt(x0, betas, generator):
    x = x0
    for t in range(len(betas)):
        x = step_beta_no_sqrt(x, t, torch.randn(x.shape, generator=generator), betas)
    return x


def chain_one_jump(x0, betas, generator):
    """The closed form in one draw: the chain's mean and variance, but no chain."""
    ab = float(torch.prod(1 - betas))
    return math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(x0.shape, generator=generator)


def chain_reseeds_the_global_generator(x0, betas, generator):
    """Repeatable, but not by the generator it is given."""
    torch.manual_seed(0)
    return chain_no_generator(x0, betas, generator)


def chain_same_noise(x0, betas, generator):
    eps = torch.randn(x0.shape, generator=generator)
    x = x0
    for t in range(len(betas)):
        x = good_q_step(x, t, eps, betas)
    return x


def closed_form_with(mean_factor, var_step, betas, *, dtype=torch.float64, keep_start=False, before=False):
    """A composition loop with a deliberate mistake: m ← mean_factor(β)·m, v ← var_step(β, v), in ``dtype``."""
    m, v = torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype)
    ms, vs = ([m], [v]) if keep_start else ([], [])
    for b in betas.to(dtype):
        if before:
            ms.append(m)
            vs.append(v)
        m, v = mean_factor(b) * m, var_step(b, v)
        if not before:
            ms.append(m)
            vs.append(v)
    return torch.stack(ms), torch.stack(vs)


def cf(**kw):
    """`closed_form_with` with the right steps unless overridden: mean factor sqrt(1 − β), variance (1 − β)·v + β."""
    mean_factor = kw.pop("mean_factor", lambda b: (1 - b).sqrt())
    var_step = kw.pop("var_step", lambda b, v: (1 - b) * v + b)
    return lambda betas: closed_form_with(mean_factor, var_step, betas, **kw)


def closed_form_in_place(betas):
    alphas = betas.neg_().add_(1)  # turns the caller's betas into alphas
    return torch.cumprod(alphas, 0).sqrt(), 1 - torch.cumprod(alphas, 0)


def stn_off_by_one(name, threshold=1e-3, T_max=5000):
    T = good_steps_to_noise(name, threshold, T_max)
    return None if T is None else T + 1


def stn_never_none(name, threshold=1e-3, T_max=5000):
    return good_steps_to_noise(name, threshold, T_max) or T_max


WRONG = [
    # (exercise, wrong function, words the message must contain)
    ("linear_betas", lambda T, a, b: torch.linspace(a, b, T), "dtype differs: yours float32"),
    ("linear_betas", lambda T, a, b: good_linear(T, b, a), "swap beta_start and beta_end"),
    ("linear_betas", lambda T, a, b: good_linear(T + 1, a, b), "shape differs"),
    ("linear_betas", lambda T, a, b: good_linear(T, a, b)[:, None], "shape differs"),
    ("linear_betas", lambda T, a, b: good_linear(T, a, b).tolist(), "returned a list"),
    ("linear_betas", lambda T, a, b: None, "returned None"),
    ("cosine_betas", lambda T, s, m: good_cosine(T, s, 1.0), "forget to clip"),
    ("cosine_betas", cos_no_square, "forget to square the cosine"),
    ("cosine_betas", cos_flipped, "divide ᾱ(t) by ᾱ(t+1)"),
    ("cosine_betas", lambda T, s, m: good_cosine(T, 0.0, m), "leave out the offset s"),
    ("cosine_betas", lambda T, m, s: good_cosine(T, s, m), "values differ"),  # swapped arguments
    ("q_sample", qs_no_sqrt, "forget the square roots"),
    ("q_sample", qs_minus, "subtract the noise"),
    ("q_sample", qs_swapped, "swap x0 and ε"),
    ("q_sample", qs_off_by_one, "index ᾱ with t − 1"),
    ("q_sample", qs_no_reshape, "raised RuntimeError"),
    ("q_sample", qs_float64, "dtype differs: yours float64, expected float32"),
    ("q_sample", qs_nan, "contains NaN"),
    ("q_sample", stub, "not written yet"),
    ("q_step", step_beta_no_sqrt, "forget the square root on β_t"),
    ("q_step", step_swapped, "swap α_t and β_t"),
    ("q_step", step_unscaled, "do not scale x_{t−1}"),
    ("q_step", lambda x, t, eps, betas: good_q_step(x, t - 1, eps, betas), "use betas[t − 1]"),
    ("run_chain", chain_skips_last, "skipped the last step"),
    ("run_chain", chain_beta_no_sqrt, "forgot the square root on β_t"),
    ("run_chain", chain_no_generator, "ignores the generator"),
    ("run_chain", chain_same_noise, "statistic differs"),
    ("run_chain", chain_one_jump, "not a chain: putting a first step with β ≈ 0 in front"),
    ("run_chain", chain_reseeds_the_global_generator, "ignores the generator"),
    ("run_chain", lambda x0, betas, g: x0, "ignores the generator"),
    ("run_chain", lambda x0, betas, g: good_run_chain(x0, betas, g)[0], "shape differs"),
    ("derive_closed_form", cf(mean_factor=lambda b: b.sqrt(), var_step=lambda b, v: b * v + b),
     "multiply by sqrt(β_t) instead of sqrt(α_t)"),
    ("derive_closed_form", cf(var_step=lambda b, v: v + b), "forget to scale the previous variance"),
    ("derive_closed_form", cf(var_step=lambda b, v: (1 - b).sqrt() * v + b), "by sqrt(α_t) instead of α_t"),
    ("derive_closed_form", cf(var_step=lambda b, v: (1 - b) * v + b.sqrt()), "add sqrt(β_t) instead of β_t"),
    ("derive_closed_form", cf(mean_factor=lambda b: 1 - b), "forget the square root"),
    ("derive_closed_form", cf(before=True), "before each step instead of after it (off by one"),
    ("derive_closed_form", cf(keep_start=True), "Leave out the starting values"),
    ("derive_closed_form", cf(dtype=torch.float32), "dtype differs: yours float32, expected float64"),
    ("derive_closed_form", lambda betas: tuple(v.double() for v in cf(dtype=torch.float32)(betas)),
     "only to about float32 precision"),
    ("derive_closed_form", lambda betas: (cf()(betas)[0], cf()(betas)[1].sqrt()), "standard deviation"),
    ("derive_closed_form", lambda betas: torch.stack(cf()(betas)), "expected a pair (mean_coefs, variances)"),
    ("derive_closed_form", closed_form_in_place, "changed its input `betas` in place"),
    ("snr", lambda ab: (1 - ab) / ab, "invert it"),
    ("snr", lambda ab: (ab / (1 - ab)).sqrt(), "take the square root"),
    ("snr", lambda ab: (ab - ab) / (ab - ab), "contains NaN"),
    ("snr", lambda ab: ab / (ab - ab), "contains inf"),
    ("snr", lambda ab: torch.stack([ab, ab / (1 - ab)]), "shape differs"),
    ("steps_to_noise", stn_off_by_one, "Off by one"),
    ("steps_to_noise", stn_never_none, "return None"),
    ("steps_to_noise", lambda name, thr, T_max: 3.5, "expected a whole number of steps"),
]


pytestmark = pytest.mark.usefixtures("fresh_grading")  # see tests/conftest.py


def test_chapter_1_registers_its_exercises_in_order():
    assert checks_for_chapter(1) == ["linear_betas", "cosine_betas", "q_sample", "q_step", "run_chain",
                                     "derive_closed_form", "snr", "steps_to_noise"]
    assert set(GOOD) == set(checks_for_chapter(1))


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("name", sorted(GOOD))
def test_correct_code_passes(name, seed, capsys):
    assert_passes(name, GOOD[name], seed, capsys)


def _without_references(name):
    return dataclasses.replace(grading.get_check(name), references=())


def test_the_checks_agree_with_the_library():
    """The reference functions, used as learner code, pass their own checks once those stop looking for them."""
    schedule = lambda ab: NoiseSchedule(1 - ab / torch.cat([ab.new_ones(1), ab[:-1]]))  # noqa: E731
    for name, fn in [("linear_betas", linear_betas), ("cosine_betas", cosine_betas),
                     ("q_sample", lambda x0, t, eps, ab: schedule(ab).q_sample(x0, t, eps)),
                     ("steps_to_noise", steps_to_noise_reference)]:
        result = run_check(_without_references(name), fn, seed=default_seed(name), limit=30)
        assert result.passed, result.message


@pytest.mark.parametrize("name, fn, used", [
    ("linear_betas", linear_betas, "diffcourse.schedules.linear_betas"),  # handed in as it is
    ("linear_betas", functools.partial(linear_betas), "diffcourse.schedules.linear_betas"),
    ("cosine_betas", lambda T, s, m: make_schedule("cosine", T, s=s, max_beta=m).betas,
     "diffcourse.schedules.make_schedule"),
    ("q_sample", lambda x0, t, eps, ab: NoiseSchedule(1 - ab / torch.cat([ab.new_ones(1), ab[:-1]]))
     .q_sample(x0, t, eps), "NoiseSchedule.q_sample"),  # wraps the schedule's method
    ("steps_to_noise", lambda name, threshold, T_max: steps_to_noise_reference(name, threshold, T_max),
     "steps_to_noise_reference"),
])
def test_a_function_that_calls_the_reference_is_reported_as_such(name, fn, used):
    result = check(name, fn, quiet=True)
    assert not result.passed and "the course's own answer to this exercise" in result.message, result.message
    assert used in result.message.splitlines()[0]


def test_calling_other_parts_of_the_package_is_fine():
    """steps_to_noise may build schedules with make_schedule: only the exercise's own references are looked for."""
    def steps(name, threshold=1e-3, T_max=5000):
        return next((T for T in range(1, T_max + 1) if float(make_schedule(name, T).alpha_bars[-1]) < threshold), None)

    assert check("steps_to_noise", steps, quiet=True).passed


@pytest.mark.parametrize("seed", [None, 11])
@pytest.mark.parametrize("name, wrong, words", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_code_is_caught_with_a_useful_message(name, wrong, words, seed, capsys):
    assert_caught(name, wrong, words, capsys, seed=seed)


@pytest.mark.parametrize("fn", [closed_form_vectorised, closed_form_tensor_loop])
def test_differently_written_closed_forms_pass(fn, capsys):
    assert check("derive_closed_form", fn).passed, capsys.readouterr().out


def test_a_float32_result_is_a_dtype_mistake_before_a_value_mistake(capsys):
    """Values right to float32 precision only: the ❌ names the dtype, not a difference in the 7th digit."""
    result = check("derive_closed_form", cf(dtype=torch.float32))
    out = capsys.readouterr().out
    assert not result.passed and out.splitlines()[0].endswith("float32 keeps only about 7 significant digits, too few here.")
    assert "values differ" not in out and "Keep m and v in float64" in out


def test_integer_results_of_any_integer_type_are_accepted():
    import numpy as np

    assert check("steps_to_noise", lambda *a: np.int64(good_steps_to_noise(*a) or -1) if good_steps_to_noise(*a)
                 else None, quiet=True)
    assert check("steps_to_noise", lambda *a: torch.tensor(good_steps_to_noise(*a)) if good_steps_to_noise(*a)
                 else None, quiet=True)
    bad = check("steps_to_noise", lambda *a: float(good_steps_to_noise(*a) or 0), quiet=True)
    assert not bad.passed and "expected a whole number of steps" in bad.message and "(a float)" in bad.message


def in_place_q_sample(x0, t, eps, alpha_bars):
    a = alpha_bars[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    return x0.mul_(a.sqrt()).add_((1 - a).sqrt() * eps)  # the right values, but x0 is overwritten


@pytest.mark.parametrize("name, fn, arg", [
    ("q_sample", in_place_q_sample, "x0"),
    ("snr", lambda ab: ab.div_(1 - ab), "ab"),
    ("q_step", lambda x, t, eps, betas: good_q_step(x, t, eps, betas.clamp_(max=float(betas.median()))), "betas"),
    ("run_chain", lambda x0, betas, g: good_run_chain(x0.zero_(), betas, g), "x0"),
])
def test_a_function_that_changes_its_input_in_place_fails_naming_the_input(name, fn, arg, capsys):
    result = check(name, fn)
    out = capsys.readouterr().out
    assert not result.passed and f"changed its input `{arg}` in place" in out, out
    assert f"({arg} = {arg}.clone())" in out and "Hint:" in out


def test_in_place_changes_are_found_inside_lists_and_objects_and_named_by_position_without_a_signature():
    from diffcourse.grading import CheckContext, Mismatch

    ctx = CheckContext("any", 0)
    sched = make_schedule("linear", 10)
    with pytest.raises(Mismatch, match=r"input `data\[1\]` in place"):
        ctx.call(lambda data: data[1].add_(1), [torch.zeros(2), torch.zeros(2)])
    with pytest.raises(Mismatch, match=r"input `schedule.betas` in place"):
        ctx.call(lambda schedule: schedule.betas.mul_(2), sched)
    with pytest.raises(Mismatch, match="input `argument 1` in place"):
        ctx.call(torch.Tensor.add_, torch.zeros(2), 1.0)
    nan = torch.tensor([float("nan"), 1.0])
    assert ctx.call(lambda x: x.sum(), nan).isnan()  # NaN in an untouched input is not a change


@pytest.mark.parametrize("name", ["linear_betas", "run_chain", "steps_to_noise"])
def test_an_endless_loop_fails_within_the_time_limit(name, capsys):
    assert_times_out(name, capsys)


def test_a_blocking_call_also_times_out_and_the_environment_variable_sets_the_limit(monkeypatch):
    monkeypatch.setenv(grading.TIMEOUT_ENV, "0.3")
    start = time.perf_counter()
    result = check("snr", lambda ab: time.sleep(60), quiet=True)
    assert not result.passed and "no answer within 0.3 s" in result.message
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("fn", [None, 3, "snr"])
def test_a_non_function_is_a_failure_not_an_exception(fn):
    result = check("snr", fn, quiet=True)
    assert not result.passed and "expected a function" in result.message


def test_learner_exceptions_of_any_kind_are_reported():
    def exits(ab):
        raise SystemExit(3)

    def divides(ab):
        return 1 / 0

    assert "raised SystemExit" in check("snr", exits, quiet=True).message
    msg = check("snr", divides, quiet=True).message
    assert "ZeroDivisionError: division by zero" in msg and "line" in msg  # points at the learner's line


def test_unknown_exercise_lists_the_known_ones():
    result = check("q_samp1e", good_q_sample, quiet=True)
    assert not result.passed and "no exercise called 'q_samp1e'" in result.message and "q_sample" in result.message
    assert "q_samp1e" not in grading.results()


def test_same_seed_same_verdict_and_the_message_says_how_to_repeat():
    a = check("q_sample", qs_no_sqrt, quiet=True)
    b = check("q_sample", qs_no_sqrt, quiet=True)
    assert a.message == b.message
    assert "seed=" in a.message


def test_results_are_kept_in_process_and_the_latest_counts():
    check("snr", good_snr, quiet=True)
    check("q_step", step_swapped, quiet=True)
    check("q_step", good_q_step, quiet=True)  # the latest result counts
    assert grading.results()["q_step"].passed and grading.results()["snr"].passed
    assert grading.results()["q_step"].status == "passed"
    wrong = check("q_step", step_swapped, quiet=True)
    assert wrong.status == "failed" and wrong.chapter == 1 and "swap α_t and β_t" in wrong.message


def test_in_the_graders_kernel_check_leaves_the_check_to_the_grader(monkeypatch, capsys):
    """When the grader executes a notebook, `check` runs nothing and records no pass: whatever the notebook does there,
    the grade comes from the grader's own run of the checks."""
    monkeypatch.setenv(GRADER_ENV, "1")
    result = check("snr", good_snr)
    out = capsys.readouterr().out
    assert not result.passed and result.status == "not checked" and "checked by the grader" in out
    summary(chapter=1)
    assert "the score is in its table" in capsys.readouterr().out


def test_summary_prints_the_chapter_score(capsys):
    summary()
    assert "No exercise has been checked yet" in capsys.readouterr().out
    check("snr", good_snr, quiet=True)
    check("q_sample", qs_minus, quiet=True)
    assert summary() is None
    out = capsys.readouterr().out
    assert "Chapter 1: 1/8 exercises passed" in out
    assert "✅ snr" in out and "❌ q_sample — values differ" in out and "⬜ linear_betas — not checked yet" in out
    for name, fn in GOOD.items():
        check(name, fn, quiet=True)
    summary(chapter=1)
    assert "8/8" in capsys.readouterr().out


def test_a_new_chapter_registers_checks_without_touching_the_core():
    from diffcourse.grading import CheckContext, register_check
    from diffcourse.grading.compare import expect_tensor

    @register_check("double_for_test", chapter=99, hint="return 2 * x")
    def _check(fn, ctx: CheckContext):
        x = torch.randn(4, generator=ctx.gen)
        expect_tensor(ctx.call(fn, x), 2 * x, what="double(x)")

    try:
        assert checks_for_chapter(99) == ["double_for_test"]
        assert check("double_for_test", lambda x: 2 * x, quiet=True).passed
        bad = check("double_for_test", lambda x: 3 * x, quiet=True)
        assert not bad.passed and "Hint: return 2 * x" in bad.message
        with pytest.raises(ValueError, match="already registered"):
            register_check("double_for_test", chapter=99, hint="")(lambda fn, ctx: None)
    finally:
        grading.core._CHECKS.pop("double_for_test", None)


# ----------------------------------------------------------------------------- the layering of diffcourse.grading
GRADING_DIR = Path(grading.__file__).parent
CHAPTER_MODULE = re.compile(r"^ch\d\d$")
# references, progress ← core ← compare ← fixtures ← chNN: each module may import only the ones to its left
LOWER_LAYERS = {"references": set(), "progress": set(), "core": {"references", "progress"},
                "compare": {"core", "references", "progress"}, "fixtures": {"core", "compare", "references", "progress"}}


def _sibling_imports(module: str) -> list[tuple[str, str | None]]:
    """``(sibling, name)`` for every import in ``diffcourse/grading/<module>.py`` of another module of the package
    (``name``: what is imported from it, None for the module itself; ``__init__`` stands for the package)."""
    siblings = {p.stem for p in GRADING_DIR.glob("*.py")}
    found = []
    for node in ast.walk(ast.parse((GRADING_DIR / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[2], None) for a in node.names if a.name.startswith("diffcourse.grading.")]
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        base = ["diffcourse", "grading"][:3 - node.level] if node.level else []  # level 1: the package itself
        target = ".".join(base + ([node.module] if node.module else []))
        if target == "diffcourse.grading":  # `from . import x`: a sibling module, or a name of the package
            found += [(a.name, None) if a.name in siblings else ("__init__", a.name) for a in node.names]
        elif target.startswith("diffcourse.grading."):
            found += [(target.split(".")[2], a.name) for a in node.names]
    return found


def test_the_parser_sees_the_imports():
    assert ("core", "Mismatch") in _sibling_imports("compare")
    assert {"core", "compare", "fixtures"} <= {m for m, _ in _sibling_imports("ch02")}


@pytest.mark.parametrize("module", sorted(LOWER_LAYERS))
def test_core_compare_and_fixtures_import_only_lower_layers(module):
    imported = {m for m, _ in _sibling_imports(module)}
    assert imported <= LOWER_LAYERS[module], f"{module} imports {sorted(imported - LOWER_LAYERS[module])} (upwards)"


def test_chapter_modules_import_only_core_compare_fixtures_and_progress_and_no_private_names():
    chapters = sorted(p.stem for p in GRADING_DIR.glob("ch*.py") if CHAPTER_MODULE.match(p.stem))
    assert len(chapters) >= 7
    for chapter in chapters:
        imports = _sibling_imports(chapter)
        assert {m for m, _ in imports} <= {"core", "compare", "fixtures", "progress"}, (chapter, imports)
        assert not [n for _, n in imports if n and n.startswith("_")], (chapter, imports)


def test_no_module_of_the_package_imports_a_chapter_or_a_private_name():
    for path in sorted(GRADING_DIR.glob("*.py")):
        imports = _sibling_imports(path.stem)
        assert not [m for m, _ in imports if CHAPTER_MODULE.match(m)], (path.name, imports)
        assert not [n for _, n in imports if n and n.startswith("_")], (path.name, imports)
