"""A long check on a slow or busy machine: *too slow here* while its steps keep coming, the endless-loop verdict only
when they stop, and no more threads than the cores that are free."""
from __future__ import annotations

import time

import pytest
import torch

from diffcourse import grading
from diffcourse.grading import CheckContext, check, progress, register_check
from diffcourse.grading.progress import Progress, free_cores, machine_threads

from grading_helpers import is_endless_loop_verdict

pytestmark = pytest.mark.usefixtures("fresh_grading")


@pytest.fixture
def stepping_check():
    """A check (chapter 99) that calls the learner's ``step(i)`` 100 times, 20 ms apart, reporting each as progress."""
    @register_check("stepping_for_test", chapter=99, hint="step(i) returns i", timeout=1.0)
    def _check(fn, ctx: CheckContext):
        for i in range(100):
            ctx.call(fn, i)
            time.sleep(0.02)
            ctx.progress.advance(i + 1, 100, "training steps")
    yield "stepping_for_test"
    grading.core._CHECKS.pop("stepping_for_test", None)


def test_steps_that_keep_coming_past_the_limit_are_too_slow_here_not_an_endless_loop(stepping_check):
    result = check(stepping_check, lambda i: i, quiet=True)
    assert not result.passed and result.status == "too slow"
    assert result.message.startswith("too slow here to give a verdict: your machine did ")
    assert " of 100 training steps in " in result.message and "says nothing about your code" in result.message
    assert "endless loop" not in result.message


def test_a_step_that_never_returns_is_an_endless_loop_without_waiting_for_the_whole_limit(stepping_check, monkeypatch):
    monkeypatch.setattr(progress, "STALL_SECONDS", 0.5)

    def stuck_at_five(i):
        while i == 5:
            pass

    start = time.perf_counter()
    result = check(stepping_check, stuck_at_five, timeout=60, quiet=True)
    assert time.perf_counter() - start < 10
    assert result.status == "failed" and "after 5 of 100 training steps" in result.message
    assert "endless loop" in result.message


def test_a_check_without_progress_keeps_the_plain_time_limit(stepping_check):
    """Before the first reported step, running out of time is the endless-loop verdict, as for every short check."""
    def never_returns(i):
        while True:
            pass

    result = check(stepping_check, never_returns, timeout=0.5, quiet=True)
    assert is_endless_loop_verdict(result, 0.5), result.message  # (or no verdict, if starved of the processor)
    assert "training steps" not in result.message


def test_the_too_slow_message_gives_the_rate_and_the_time_the_run_would_need():
    p = Progress()
    p.advance(1, 1150, "steps")
    p.started, p.last, p.done, p.threads = 0.0, 900.0, 300, 1
    message = p.too_slow_message(900)
    assert "did 300 of 1150 steps in 15 minutes with 1 thread (20 a minute" in message
    assert "about 58 minutes" in message and "torch.set_num_threads(1)" in message


@pytest.mark.parametrize("runnable, loadavg, expected", [
    (1.0, None, 2),   # only this reading runs: both cores are free
    (2.0, None, 1),   # one other program
    (4.0, None, 1),   # three others on two cores: still one thread, never none
    (None, 0.4, 2),   # no /proc (macOS): the load average stands in
    (None, 1.6, 1),
])
def test_free_cores_are_the_cores_less_the_other_programs(monkeypatch, runnable, loadavg, expected):
    monkeypatch.setattr(progress, "usable_cores", lambda: 2)
    monkeypatch.setattr(progress, "_runnable_tasks", lambda: runnable)
    monkeypatch.setattr(progress.os, "getloadavg", lambda: (loadavg, 0.0, 0.0))
    assert free_cores() == expected


def test_a_long_check_trains_with_the_free_cores_capped_by_omp_and_restores_the_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(progress, "free_cores", lambda: 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    p = Progress()
    with machine_threads(p) as threads:
        assert threads == 2 == torch.get_num_threads() == p.threads
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(progress, "free_cores", lambda: 1)
    with machine_threads() as threads:
        assert threads == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_mnist_stage_two_reports_every_training_and_sampling_step():
    from diffcourse.grading import ch02

    ctx = CheckContext("mnist_ddpm", 0)
    counted = ch02._counted(lambda x: 2 * x, ctx)
    assert [counted(1), counted(2)] == [2, 4]
    assert ctx.progress.done == 2 and ctx.progress.total == 900 + ch02.MNIST_SAMPLE_STEPS
    assert ctx.progress.unit.startswith("steps (900 training")


@pytest.mark.parametrize("factor, status, words", [(3.0, "too slow", "about 3.0× slower than idle"),
                                                   (1.0, "failed", "no answer within 1 s — is there an endless loop")])
def test_a_long_check_without_progress_gives_no_verdict_on_a_busy_machine(stepping_check, monkeypatch, factor,
                                                                           status, words):
    """A learner's function that trains inside itself reports no steps; out of time on a machine several programs
    share, that is *too slow here* — on an idle one, the endless-loop verdict."""
    from diffcourse.grading import runner

    monkeypatch.setattr(runner, "LONG_CHECK_SECONDS", 1.0)
    monkeypatch.setattr(runner, "slowdown", lambda: factor)

    def never_returns(i):
        while True:
            pass

    result = check(stepping_check, never_returns, timeout=1, quiet=True)
    assert result.status == status and words in result.message, result.message


def test_a_short_check_starved_of_the_processor_waits_for_it_instead_of_calling_an_endless_loop(monkeypatch):
    """On a busy machine a correct short check can pass its limit on the wall clock with little processor time: it
    gets up to STARVED_STRETCH × its limit while it waits for the processor (here: never on one, always in the queue)."""
    from diffcourse.grading import runner

    monkeypatch.setattr(runner, "_processor_times", lambda thread: (0.0, 1e9))  # all the time waiting

    def computes_for_a_second():
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
        return "done"

    start = time.monotonic()
    assert runner.run_with_limit(computes_for_a_second, 0.5) == ("ok", "done")
    assert 1.0 <= time.monotonic() - start < 0.5 * runner.STARVED_STRETCH


def test_a_short_check_that_never_gets_the_processor_is_too_slow_here(monkeypatch):
    from diffcourse.grading import runner

    monkeypatch.setattr(runner, "_processor_times", lambda thread: (0.1, 1e9))

    def never_returns():
        while True:
            pass

    status, message = runner.run_with_limit(never_returns, 0.4)
    assert status == "too slow" and "got only 0.1 s of the processor" in message and "no verdict" in message


def test_a_short_check_that_computed_for_its_limit_is_still_the_endless_loop_verdict(monkeypatch):
    from diffcourse.grading import runner

    monkeypatch.setattr(runner, "_processor_times", lambda thread: (10.0, 0.0))
    start = time.monotonic()
    status, _ = runner.run_with_limit(lambda: time.sleep(3.0), 0.5)
    assert status == "timeout" and time.monotonic() - start < 2.0


def test_a_thread_kept_from_the_processor_is_seen_waiting_for_it():
    """Where Linux says (schedstat), a computing thread's time on the processor plus its time in the queue covers the
    wall clock, and a sleeping thread's does not: the reading `_starved` rests on."""
    import threading

    from diffcourse.grading import runner

    def computes():
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            pass

    for target, wants_the_processor in ((computes, True), (lambda: time.sleep(0.5), False)):
        thread = threading.Thread(target=target)
        start = time.monotonic()
        thread.start()
        time.sleep(0.4)
        times, wall = runner._processor_times(thread), time.monotonic() - start
        thread.join()
        if times is None:
            pytest.skip("this system does not report per-thread scheduler times")
        assert (sum(times) >= 0.5 * wall) is wants_the_processor, (times, wall)
