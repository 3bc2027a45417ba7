"""The exercise checks: right answers pass, wrong ones are caught with a useful message, nothing ever raises.

Every chapter-1 check is run on a correct implementation (over several seeds, so the
statistical checks are not flaky) and on deliberately wrong ones — a missing square
root, a wrong sign, swapped arguments, a shape error, NaN, a hang — and the ❌ message
must name what went wrong.
"""
from __future__ import annotations

import ast
import json
import math
import re
import time
from pathlib import Path

import pytest
import torch

from diffcourse import grading
from diffcourse.grading import RESULTS_ENV, check, checks_for_chapter, summary
from diffcourse.grading.ch01 import steps_to_noise_reference
from diffcourse.schedules import NoiseSchedule, cosine_betas, linear_betas, make_schedule


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
    "snr": good_snr,
    "steps_to_noise": good_steps_to_noise,
}


# ----------------------------------------------------------------------------- wrong learner code
def hang(*args):
    while True:
        pass


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


def chain_same_noise(x0, betas, generator):
    eps = torch.randn(x0.shape, generator=generator)
    x = x0
    for t in range(len(betas)):
        x = good_q_step(x, t, eps, betas)
    return x


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
    ("run_chain", chain_no_generator, "not repeatable"),
    ("run_chain", chain_same_noise, "statistic differs"),
    ("run_chain", lambda x0, betas, g: x0, "not random"),
    ("run_chain", lambda x0, betas, g: good_run_chain(x0, betas, g)[0], "shape differs"),
    ("snr", lambda ab: (1 - ab) / ab, "invert it"),
    ("snr", lambda ab: (ab / (1 - ab)).sqrt(), "take the square root"),
    ("snr", lambda ab: (ab - ab) / (ab - ab), "contains NaN"),
    ("snr", lambda ab: ab / (ab - ab), "contains inf"),
    ("snr", lambda ab: torch.stack([ab, ab / (1 - ab)]), "shape differs"),
    ("steps_to_noise", stn_off_by_one, "Off by one"),
    ("steps_to_noise", stn_never_none, "return None"),
    ("steps_to_noise", lambda name, thr, T_max: 3.5, "expected a whole number of steps"),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The checks work on tiny tensors. With intra-op threads on a busy 2-core machine every tiny op can
    # stall for milliseconds (OpenMP workers spinning for a core), and the 1000-schedule searches of
    # `steps_to_noise` then take many seconds; a notebook kernel (one thread of work) does not suffer this.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _fresh_results(monkeypatch):
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    monkeypatch.delenv(grading.TIMEOUT_ENV, raising=False)
    grading.reset()
    yield
    grading.reset()


def test_chapter_1_registers_its_exercises_in_order():
    assert checks_for_chapter(1) == ["linear_betas", "cosine_betas", "q_sample", "q_step", "run_chain", "snr",
                                     "steps_to_noise"]
    assert set(GOOD) == set(checks_for_chapter(1))


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
@pytest.mark.parametrize("name", sorted(GOOD))
def test_correct_code_passes(name, seed, capsys):
    result = check(name, GOOD[name], seed=seed)
    out = capsys.readouterr().out
    assert result.passed, out
    assert out.startswith(f"✅ {name} — passed")


def test_the_library_itself_passes():
    """The reference functions, used as learner code, pass their own checks (the checks agree with them)."""
    assert check("linear_betas", linear_betas, quiet=True)
    assert check("cosine_betas", cosine_betas, quiet=True)
    assert check("q_sample", lambda x0, t, eps, ab: NoiseSchedule(1 - ab / torch.cat([ab.new_ones(1), ab[:-1]]))
                 .q_sample(x0, t, eps), quiet=True)
    assert check("steps_to_noise", steps_to_noise_reference, quiet=True)


@pytest.mark.parametrize("seed", [None, 11])
@pytest.mark.parametrize("name, wrong, words", WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_wrong_code_is_caught_with_a_useful_message(name, wrong, words, seed, capsys):
    result = check(name, wrong, seed=seed)
    out = capsys.readouterr().out
    assert not result.passed
    assert out.startswith(f"❌ {name} — ")
    assert words in out, out
    assert "Hint:" in out, "every failure comes with a hint"


@pytest.mark.parametrize("name", ["linear_betas", "run_chain", "steps_to_noise"])
def test_an_endless_loop_fails_within_the_time_limit(name, capsys):
    start = time.perf_counter()
    result = check(name, hang, timeout=0.5)
    elapsed = time.perf_counter() - start
    assert not result.passed
    assert elapsed < 3, f"the check took {elapsed:.1f} s despite a 0.5 s limit"
    assert "no answer within 0.5 s" in capsys.readouterr().out


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


def test_results_are_recorded_in_process_and_in_the_results_file(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    check("snr", good_snr, quiet=True)
    check("q_step", step_swapped, quiet=True)
    check("q_step", good_q_step, quiet=True)  # the latest result counts
    assert grading.results()["q_step"].passed and grading.results()["snr"].passed
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["exercise"], r["passed"]) for r in lines] == [("snr", True), ("q_step", False), ("q_step", True)]
    assert lines[1]["chapter"] == 1 and "swap α_t and β_t" in lines[1]["message"]


def test_summary_prints_the_chapter_score(capsys):
    summary()
    assert "No exercise has been checked yet" in capsys.readouterr().out
    check("snr", good_snr, quiet=True)
    check("q_sample", qs_minus, quiet=True)
    assert summary() is None
    out = capsys.readouterr().out
    assert "Chapter 1: 1/7 exercises passed" in out
    assert "✅ snr" in out and "❌ q_sample — values differ" in out and "⬜ linear_betas — not checked yet" in out
    for name, fn in GOOD.items():
        check(name, fn, quiet=True)
    summary(chapter=1)
    assert "7/7" in capsys.readouterr().out


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
# core ← compare ← fixtures ← chNN: each module may import only the ones to its left
LOWER_LAYERS = {"core": set(), "compare": {"core"}, "fixtures": {"core", "compare"}}


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


def test_chapter_modules_import_only_core_compare_and_fixtures_and_no_private_names():
    chapters = sorted(p.stem for p in GRADING_DIR.glob("ch*.py") if CHAPTER_MODULE.match(p.stem))
    assert len(chapters) >= 7
    for chapter in chapters:
        imports = _sibling_imports(chapter)
        assert {m for m, _ in imports} <= {"core", "compare", "fixtures"}, (chapter, imports)
        assert not [n for _, n in imports if n and n.startswith("_")], (chapter, imports)


def test_no_module_of_the_package_imports_a_chapter_or_a_private_name():
    for path in sorted(GRADING_DIR.glob("*.py")):
        imports = _sibling_imports(path.stem)
        assert not [m for m, _ in imports if CHAPTER_MODULE.match(m)], (path.name, imports)
        assert not [n for _, n in imports if n and n.startswith("_")], (path.name, imports)
