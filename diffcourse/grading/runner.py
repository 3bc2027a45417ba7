r"""Running a check: a time limit that knows a slow machine from an endless loop, a verdict that never raises.

`check` is what a notebook calls. It runs the checker in a worker thread with a time limit
(`run_with_limit`), turns *anything* that goes wrong (a stub raising ``NotImplementedError``, an
exception, a wrong shape, NaN, an endless loop) into a printed ❌ with a hint, keeps the result in this
process for `summary`, and never raises. The grader runs the very same `run_check` in a process of its
own (`diffcourse.grading.worker`), so a learner sees in the notebook exactly the verdict the grader gives.

A check that reports its progress (`diffcourse.grading.progress`) and runs out of time while its steps
are still coming gets *too slow here*, not a verdict; one whose steps stop coming gets the endless-loop
verdict as soon as that is clear.

When the grader executes a notebook (``DIFFCOURSE_GRADER`` in the kernel's environment), `check` does
not run the check: it says that the grader will, afterwards, on the learner's functions, in a fresh
process. Nothing the notebook prints or records counts.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
import zlib
from typing import Any, Callable, Mapping

from .core import (STATUSES, TIMEOUT_ENV, Check, CheckContext, CheckResult, CheckTimeout, Mismatch, all_checks,
                   checks_for_chapter, get_check)
from .progress import BUSY_FACTOR, LONG_CHECK_SECONDS, Progress, busy_message, slowdown
from .references import install_hook

__all__ = ["GRADER_ENV", "check", "summary", "results", "reset", "run_check", "run_with_limit", "default_seed",
           "format_result", "format_summary"]

GRADER_ENV = "DIFFCOURSE_GRADER"
"""Environment variable the grader sets in the kernel that executes a notebook: `check` then leaves the check to it."""

_RESULTS: dict[str, CheckResult] = {}


def default_seed(name: str) -> int:
    """The seed of a check's random inputs: fixed per exercise, so the same code gets the same verdict — in the
    notebook and from the grader, which draws the same inputs in its own process."""
    return zlib.crc32(name.encode()) % 100_000


def _async_raise(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Ask ``thread`` to raise ``exc_type`` at its next Python bytecode (stops a pure-Python endless loop)."""
    # only while the ident is still this thread's: a finished thread's ident is reused by the next one started (the
    # learner's next check), which must not receive a stop meant for its predecessor
    if thread.ident is not None and threading._active.get(thread.ident) is thread:  # noqa: SLF001
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


_LEFTOVERS: list[threading.Thread] = []

THREAD_CLOCKS = hasattr(time, "pthread_getcpuclockid")
"""Whether this system can tell a waiting thread from a running one (Linux can; macOS and Windows cannot)."""


def _running(thread: threading.Thread) -> bool:
    """Whether ``thread`` is using the processor — running Python, or computing in C — rather than waiting (a sleep, a
    lock, input): its CPU time advances over 50 ms. ``True`` where the system cannot tell."""
    try:
        clock = time.pthread_getcpuclockid(thread.ident)
        before = time.clock_gettime(clock)
        time.sleep(0.05)
        return time.clock_gettime(clock) > before
    except (AttributeError, OSError, TypeError, ValueError):
        return thread.is_alive()


def _stop(thread: threading.Thread) -> None:
    """Stop a check's thread that ran out of time, by an exception raised at its next Python bytecode.

    The exception is only raised into a thread that is running. One that waits inside C code (``time.sleep(600)``)
    could not take it until it returns, and a pending exception makes every thread that runs with a profile hook stall
    meanwhile (CPython 3.11; the hook watches for references, `diffcourse.grading.references`). Such a thread is left,
    a daemon that cannot keep the process alive, and a background thread stops it once it runs again."""
    if _running(thread):
        _async_raise(thread, CheckTimeout)
        thread.join(0.2)
    if thread.is_alive():
        _LEFTOVERS.append(thread)
        if len(_LEFTOVERS) == 1:
            threading.Thread(target=_reap, name="diffcourse-reaper", daemon=True).start()


def _reap() -> None:
    while _LEFTOVERS:
        time.sleep(0.5)
        for thread in list(_LEFTOVERS):
            if thread.is_alive() and _running(thread):
                _async_raise(thread, CheckTimeout)
                thread.join(0.05)
            if not thread.is_alive():
                _LEFTOVERS.remove(thread)


def run_with_limit(target: Callable[[], str | None], limit: float, progress: Progress | None = None,
                   watch_references: bool = False) -> tuple[str, Any]:
    """Run ``target`` in a daemon thread for at most ``limit`` seconds. Returns ``("ok", note)``,
    ``("error", exc)``, ``("timeout", None)``, ``("stalled", message)`` (its reported progress stopped) or
    ``("too slow", message)`` (out of time while its progress was still coming). With ``watch_references``, the
    thread watches the learner's calls for the check's references (`diffcourse.grading.references`)."""
    box: dict[str, Any] = {}

    def worker() -> None:
        if watch_references and THREAD_CLOCKS:  # without thread clocks, a stuck check could stall the hook: `_stop`
            install_hook()
        try:
            box["ok"] = target()
        except CheckTimeout:
            box["timeout"] = True
        except BaseException as exc:  # noqa: BLE001 — reported to the learner, never re-raised
            box["error"] = exc

    thread = threading.Thread(target=worker, name="diffcourse-check", daemon=True)
    start = time.monotonic()
    thread.start()
    outcome: tuple[str, Any] | None = None
    while outcome is None:
        thread.join(min(1.0, max(0.05, start + limit - time.monotonic())))
        now = time.monotonic()
        if not thread.is_alive():
            break
        if progress is not None and progress.stalled(now):
            outcome = ("stalled", progress.stall_message(now))
        elif now - start >= limit and not _starved(thread, limit, now - start):
            outcome = _out_of_time(limit, progress, thread, now - start)
        if outcome is not None and not thread.is_alive():  # it answered while this was being decided
            outcome = None
            break
    if outcome is not None:
        _stop(thread)
        return outcome
    if "error" in box:
        return "error", box["error"]
    if "timeout" in box:
        return "timeout", None
    return "ok", box.get("ok")


STARVED_STRETCH = 6.0
"""A short check that got less than half its limit in processor time may run this many times its limit on the wall
clock (10 s → 60 s) before it is judged: on a busy machine the wall clock says nothing about the code."""


def _processor_times(thread: threading.Thread) -> tuple[float, float] | None:
    """``(seconds on a processor, seconds ready to run but waiting for one)`` of ``thread`` so far, from Linux's
    ``/proc/self/task/<tid>/schedstat``; ``None`` where the system does not say (macOS, Windows)."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/schedstat", encoding="ascii") as f:
            on_cpu, waiting = f.read().split()[:2]
        return int(on_cpu) / 1e9, int(waiting) / 1e9
    except (OSError, ValueError, TypeError):
        return None


def _starved(thread: threading.Thread, limit: float, wall: float) -> bool:
    """Whether a short check past its limit was kept from the processor by other programs: it wanted a processor for
    at least half of the ``wall`` seconds so far (running, or ready and waiting in the queue — not sleeping), yet ran
    under half of ``limit``. Such a check gets more wall time, up to `STARVED_STRETCH` × ``limit``. Long checks
    (`LONG_CHECK_SECONDS`) read the load through their progress instead."""
    if limit >= LONG_CHECK_SECONDS or wall >= STARVED_STRETCH * limit:
        return False
    times = _processor_times(thread)
    return times is not None and times[0] < 0.5 * limit and sum(times) >= 0.5 * wall


def _out_of_time(limit: float, progress: Progress | None, thread: threading.Thread | None = None,
                 wall: float | None = None) -> tuple[str, Any]:
    """What running out of time means: *too slow here* while reported progress still came, for a long check on a
    busy machine (`diffcourse.grading.progress`), or for a short one still starved of the processor when its stretch
    ran out (`_starved`); otherwise no answer — an endless loop, most likely."""
    if progress is not None and progress.reported:
        return "too slow", progress.too_slow_message(limit)
    if limit >= LONG_CHECK_SECONDS and (factor := slowdown()) >= BUSY_FACTOR:
        return "too slow", busy_message(limit, factor)
    times = _processor_times(thread) if thread is not None and wall is not None else None
    if times is not None and times[0] < 0.5 * limit and sum(times) >= 0.5 * wall >= 0.5 * STARVED_STRETCH * limit:
        return "too slow", (f"no answer within {wall:.1f} s, in which it got only {times[0]:.1f} s of the processor "
                            "(other programs keep the cores busy): too slow here to tell slow work from an endless "
                            "loop, so no verdict. Close other programs and run the check again.")
    return "timeout", None


def _verdict(spec: Check, status: str, value: Any, seed: int, limit: float) -> tuple[str, str]:
    """``(status, message)`` for what `run_with_limit` reported about a run of ``spec``'s checker."""
    if status == "ok":
        return "passed", "passed" + (f": {value}" if value else ".")
    if status == "timeout":
        return "failed", (f"no answer within {limit:g} s — is there an endless loop (a `while` whose condition "
                          f"never turns false), or far more work than the exercise needs?")
    if status in ("stalled", "too slow"):
        return ("failed" if status == "stalled" else "too slow"), value
    if status == "interrupted":
        return "failed", "interrupted before it finished."
    if isinstance(value, Mismatch):
        hint = value.hint if value.hint is not None else spec.hint
        message = value.message
        if value.show_seed:
            message += f"\n(random inputs from seed {seed}: `check({spec.name!r}, ..., seed={seed})` repeats them)"
        if hint:
            message += f"\nHint: {hint}"
        return "failed", message
    return "failed", (f"the check itself failed ({type(value).__name__}: {value}). This is a bug in diffcourse, "
                      f"not in your code — please report it with the seed {seed}.")


def run_check(spec: Check, fn: Any, *, seed: int, limit: float) -> CheckResult:
    """Run ``spec``'s checker on ``fn`` with inputs from ``seed`` and a limit of ``limit`` seconds; never raises."""
    start = time.perf_counter()
    ctx = CheckContext(spec.name, seed, spec.references)
    try:
        status, value = run_with_limit(lambda: spec.checker(fn, ctx), limit, ctx.progress, bool(spec.references))
    except KeyboardInterrupt:
        status, value = "interrupted", None
    verdict, message = _verdict(spec, status, value, seed, limit)
    return CheckResult(spec.name, verdict == "passed", message, spec.chapter, round(time.perf_counter() - start, 3),
                       status=verdict)


def is_function_or_tuple(fn: Any) -> bool:
    """What a check accepts: a function, or a non-empty tuple of functions (chapter 2's
    ``(train_step, sample_digits)``)."""
    return callable(fn) or isinstance(fn, tuple) and bool(fn) and all(map(callable, fn))


def check(name: str, fn: Callable[..., Any] | tuple[Callable[..., Any], ...], *, seed: int | None = None,
          timeout: float | None = None, quiet: bool = False) -> CheckResult:
    """Check the learner's ``fn`` against exercise ``name``; print ✅ or ❌ and keep the result for `summary`.

    ``fn`` is the function the exercise asks for, or a tuple of functions where it asks for several
    (chapter 2's ``check("mnist_ddpm", (train_step, sample_digits))``).

    ``seed`` chooses the random inputs (by default a fixed seed per exercise, so that the
    same code always gets the same verdict; pass other seeds to try more inputs). ``timeout`` (seconds)
    overrides the check's time limit. This function never raises: every problem becomes a ❌.
    """
    spec = get_check(name) if isinstance(name, str) else None
    if spec is None:
        known = ", ".join(all_checks()) or "none"
        result = CheckResult(str(name), False, f"there is no exercise called {name!r}. Known exercises: {known}.")
        return _finish(result, quiet, record=False)
    if os.environ.get(GRADER_ENV):
        result = CheckResult(name, False, "checked by the grader after this notebook has run, in a fresh process on "
                                          "inputs of its own; its table has the verdict.", spec.chapter,
                             status="not checked")
        return _finish(result, quiet)
    if not is_function_or_tuple(fn):
        result = CheckResult(name, False,
                             f"expected a function as the second argument, got {type(fn).__name__}: "
                             f"`check({name!r}, {name})` with the function you wrote above (no parentheses).",
                             spec.chapter)
        return _finish(result, quiet)
    seed = default_seed(name) if seed is None else seed
    limit = float(os.environ.get(TIMEOUT_ENV) or timeout or spec.timeout)
    return _finish(run_check(spec, fn, seed=seed, limit=limit), quiet)


def _indent(text: str) -> str:
    return "\n".join("   " + line.lstrip() if line.strip() else "" for line in text.splitlines())


def format_result(result: CheckResult) -> str:
    """The text `check` prints: the mark, the exercise, the message's first line, the rest indented."""
    head, _, rest = result.message.partition("\n")
    return f"{STATUSES.get(result.status, '❌')} {result.exercise} — {head}" + (f"\n{_indent(rest)}" if rest else "")


def _finish(result: CheckResult, quiet: bool, record: bool = True) -> CheckResult:
    if record:
        _RESULTS[result.exercise] = result
    if not quiet:
        print(format_result(result))
    return result


def results() -> dict[str, CheckResult]:
    """The latest result of every check run in this process, by exercise name."""
    return dict(_RESULTS)


def reset() -> None:
    """Forget the results kept in this process."""
    _RESULTS.clear()


def format_summary(chapter: int, found: Mapping[str, CheckResult]) -> str:
    """A chapter's score from the results ``found`` (by exercise): passed, failed, or not checked yet."""
    names = checks_for_chapter(chapter)
    passed = sum(1 for n in names if n in found and found[n].passed)
    lines = [f"Chapter {chapter}: {passed}/{len(names)} exercises passed"]
    for n in names:
        r = found.get(n)
        if r is None:
            lines.append(f"  ⬜ {n} — not checked yet")
        else:
            mark = STATUSES.get(r.status, "❌")
            lines.append(f"  {mark} {n}" + ("" if r.passed else f" — {r.message.splitlines()[0]}"))
    if passed == len(names):
        lines.append("All done — well done! 🎉")
    return "\n".join(lines)


def summary(chapter: int | None = None) -> None:
    """Print the score: every exercise of ``chapter`` (default: the chapter of the checks run so far),
    passed, failed or not run yet. Returns nothing useful to display; never raises."""
    try:
        if os.environ.get(GRADER_ENV):
            print("The grader checks every exercise itself once the notebook has run: the score is in its table.")
            return None
        if chapter is None:
            chapters = sorted({r.chapter for r in _RESULTS.values() if r.chapter is not None})
        else:
            chapters = [int(chapter)]
        if not chapters:
            print("No exercise has been checked yet: run the `check(...)` cells first.")
            return None
        for ch in chapters:
            print(format_summary(ch, _RESULTS))
    except Exception as exc:  # noqa: BLE001 — a summary must never break the notebook
        print(f"(could not print the summary: {type(exc).__name__}: {exc})")
    return None
