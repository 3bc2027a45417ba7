"""What every chapter's grading tests assert about a check, in one place (imported by tests/test_grading*.py):
right code passes with ✅, wrong code fails with ❌ naming the mistake and a hint, an endless loop fails within the
time limit, and an unwritten stub says so."""
from __future__ import annotations

import time
from typing import Any, Callable

import dataclasses

import pytest

from diffcourse.grading import check, get_check
from diffcourse.grading.runner import STARVED_STRETCH, default_seed, run_check


def hang(*args: Any, **kwargs: Any) -> None:
    """A learner's function that never returns."""
    while True:
        pass


def skip_if_too_slow(result: Any) -> None:
    """A check that says *too slow here* gave no verdict (a machine too busy to finish it in its time, issue 27): the
    test cannot tell either, and says so by skipping — as `python -m diffcourse grade` asks to grade again."""
    if result.status == "too slow":
        pytest.skip(f"too busy a machine to finish {result.exercise}: {result.message}")


def assert_passes(name: str, fn: Callable, seed: int | None, capsys) -> None:
    result = check(name, fn, seed=seed)
    out = capsys.readouterr().out
    skip_if_too_slow(result)
    assert result.passed, out
    assert out.startswith(f"✅ {name} — passed")


def assert_caught(name: str, wrong: Callable, words: str, capsys, seed: int | None = None) -> None:
    result = check(name, wrong, seed=seed)
    out = capsys.readouterr().out
    assert not result.passed
    skip_if_too_slow(result)
    assert out.startswith(f"❌ {name} — ")
    assert words in out, out
    assert "Hint:" in out, "every failure comes with a hint"


def is_endless_loop_verdict(result: Any, limit: float) -> bool:
    """The verdict on code that never returns: the endless-loop one once it has computed for half its limit, or — on
    a machine so busy that it got less processor time than that in `STARVED_STRETCH` × its limit — *too slow here*,
    no verdict (`diffcourse.grading.runner._starved`). Never a pass."""
    if result.status == "too slow":
        return "no verdict" in result.message
    return not result.passed and f"no answer within {limit:g} s" in result.message


def assert_times_out(name: str, capsys, limit: float = 0.5) -> None:
    start = time.perf_counter()
    result = check(name, hang, timeout=limit)
    elapsed = time.perf_counter() - start
    capsys.readouterr()
    assert not result.passed
    assert elapsed < limit * STARVED_STRETCH + 2.5, f"the check took {elapsed:.1f} s despite a {limit} s limit"
    assert is_endless_loop_verdict(result, limit), result.message


def assert_stub_says_so(name: str) -> None:
    def stub(*args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{name}: not written yet. Hint: read the equation.")

    result = check(name, stub, quiet=True)
    assert not result.passed and result.message.startswith("not written yet")
    assert "read the equation" in result.message


def assert_agrees_with_the_library(name: str, fn: Callable) -> None:
    """The package's own function for exercise ``name`` (``fn``, or a call of it) passes the check once the check stops
    looking for it: the check and the reference agree. (Handed in as learner code, it is reported as the reference:
    tests/test_grading.py.)"""
    spec = dataclasses.replace(get_check(name), references=())
    result = run_check(spec, fn, seed=default_seed(name), limit=spec.timeout)
    assert result.passed, f"{name}: {result.message}"
