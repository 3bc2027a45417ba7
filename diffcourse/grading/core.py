r"""The check registry, the time-limited runner, and the record of results.

A *check* is a function ``checker(fn, ctx)`` that calls the learner's ``fn``
(always through ``ctx.call``) on randomised inputs, compares with the reference
implementation in `diffcourse`, and either returns a short success note or
raises `Mismatch` saying what differed. Chapters register their checks with
`register_check` in their own module (``diffcourse/grading/ch01.py`` …); the
modules are found and imported the first time a check is asked for.

Imports inside ``diffcourse.grading`` go one way only: ``core`` (this module: the
registry and the runner, importing no sibling) ← ``compare`` (the comparisons) ←
``fixtures`` (random inputs, stand-in networks, exact models shared by the chapters)
← ``ch01`` … ``ch07`` (the checks; no chapter imports another). Finding the chapter
modules by name at run time (`_load_chapter_modules`) is the one way down, and it is
not an import of any of their names.

`check` is what a notebook calls. It runs the checker in a worker thread with a
time limit, turns *anything* that goes wrong (a stub raising
``NotImplementedError``, an exception, a wrong shape, NaN, an endless loop) into
a printed ❌ with a hint, records the result, and never raises.

Results are kept in this process (`results`, `summary`) and, when the
environment variable ``DIFFCOURSE_GRADING_RESULTS`` names a file, appended to
it as one JSON object per line: that is how ``python -m diffcourse grade``
collects them from the kernel it started.
"""
from __future__ import annotations

import ctypes
import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import threading
import time
import traceback
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

__all__ = [
    "Check",
    "CheckResult",
    "CheckContext",
    "Mismatch",
    "register_check",
    "get_check",
    "all_checks",
    "checks_for_chapter",
    "check",
    "summary",
    "results",
    "reset",
    "RESULTS_ENV",
    "TIMEOUT_ENV",
]

RESULTS_ENV = "DIFFCOURSE_GRADING_RESULTS"
"""Environment variable: a file to which every check appends its result as a JSON line."""

TIMEOUT_ENV = "DIFFCOURSE_CHECK_TIMEOUT"
"""Environment variable: overrides every check's time limit, in seconds."""

DEFAULT_TIMEOUT = 10.0


class Mismatch(Exception):
    """Raised by a checker when the learner's function disagrees with the reference.

    ``message`` says what differed (first line: the headline; following lines:
    details such as the inputs and the offending values); ``hint`` overrides the
    check's general hint when the checker knows something more specific;
    ``show_seed=False`` leaves out the line on reproducing the random inputs
    (pointless when, say, the function is not written yet).
    """

    def __init__(self, message: str, hint: str | None = None, *, show_seed: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.show_seed = show_seed


class _CheckTimeout(BaseException):
    """Injected into a worker thread that ran past its time limit (BaseException: ``except Exception`` won't swallow it)."""


@dataclass(frozen=True)
class Check:
    """One exercise check: its ``name`` (what ``check(name, fn)`` uses), the ``chapter`` it
    belongs to, the ``checker`` function, a general ``hint``, and a time limit in seconds."""

    name: str
    chapter: int
    checker: Callable[[Callable[..., Any], "CheckContext"], str | None]
    hint: str
    timeout: float = DEFAULT_TIMEOUT
    order: int = 0


@dataclass
class CheckResult:
    """What one run of a check found. ``message`` is the full text printed under ✅/❌."""

    exercise: str
    passed: bool
    message: str
    chapter: int | None = None
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        # `check(...)` already printed the verdict; as the last expression of a cell, show nothing more.
        pass


# --------------------------------------------------------------------------- registry
_CHECKS: dict[str, Check] = {}
_loaded = False
_CHAPTER_MODULE = re.compile(r"^ch(\d\d)$")


def register_check(name: str, *, chapter: int, hint: str, timeout: float = DEFAULT_TIMEOUT):
    """Decorator that registers ``checker`` as the check called ``name``.

    >>> from diffcourse.grading.compare import expect_tensor                # doctest: +SKIP
    >>> @register_check("double", chapter=0, hint="return 2 * x")   # doctest: +SKIP
    ... def _check_double(fn, ctx):
    ...     x = torch.randn(3, generator=ctx.gen)
    ...     expect_tensor(ctx.call(fn, x), 2 * x, what="double(x)")

    Names are global across chapters; registering one twice is a programming error.
    """

    def decorator(checker: Callable[[Callable[..., Any], CheckContext], str | None]):
        if name in _CHECKS and _CHECKS[name].checker is not checker:
            raise ValueError(f"A check called {name!r} is already registered (chapter {_CHECKS[name].chapter}).")
        _CHECKS[name] = Check(name, chapter, checker, hint, timeout, order=len(_CHECKS))
        return checker

    return decorator


def _load_chapter_modules() -> None:
    """Import every ``diffcourse.grading.chNN`` module once, so that their checks register."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__name__.rpartition(".")[0])
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if _CHAPTER_MODULE.match(info.name):
            importlib.import_module(f"{package.__name__}.{info.name}")
    _loaded = True


def all_checks() -> dict[str, Check]:
    """Every registered check, by name, in chapter order."""
    _load_chapter_modules()
    return dict(sorted(_CHECKS.items(), key=lambda kv: (kv[1].chapter, kv[1].order)))


def get_check(name: str) -> Check | None:
    """The check called ``name``, or ``None`` if there is none."""
    return all_checks().get(name)


def checks_for_chapter(chapter: int) -> list[str]:
    """Names of chapter ``chapter``'s checks, in the order the chapter's module defines them."""
    return [name for name, c in all_checks().items() if c.chapter == int(chapter)]


# --------------------------------------------------------------------------- the context a checker gets
class CheckContext:
    """What a checker gets: the exercise's ``name``, the ``seed`` and a generator ``gen`` seeded with it
    (draw every random input from it), and `call`, the guarded call of the learner's function.

    The comparisons live in `diffcourse.grading.compare` (``expect_tensor``, ``expect_close`` …),
    which builds on this module; a checker imports them from there.
    """

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)

    def call(self, fn: Callable[..., Any], *args: Any, what: str | None = None, **kwargs: Any) -> Any:
        """Call the learner's ``fn``; turn any exception into a `Mismatch` that explains it.

        Every tensor argument (also inside a list, tuple or dict, and the tensor attributes of a plain
        object such as a `NoiseSchedule`) is copied before the call and compared afterwards: a function
        that changed its input in place fails, naming the input.
        """
        snapshots = _snapshot_inputs(fn, args, kwargs)
        try:
            out = fn(*args, **kwargs)
        except NotImplementedError as exc:
            hint = "Replace the `raise NotImplementedError(...)` line with your code, run that cell, then this one."
            text = str(exc)
            if "Hint:" in text:  # the stub's own hint, from the solution's `### HINT:` lines
                hint = text.split("Hint:", 1)[1].strip() + " (" + hint[0].lower() + hint[1:-1] + ".)"
            raise Mismatch(f"not written yet: `{_fn_name(fn)}` still raises NotImplementedError.",
                           hint=hint, show_seed=False) from None
        except _CheckTimeout:
            raise
        except BaseException as exc:  # the learner's bug (even SystemExit): report it, never raise it
            where = _learner_frame(exc)
            call = what or f"{_fn_name(fn)}(...)"
            raise Mismatch(
                f"your function raised {type(exc).__name__} when called as {call}:\n"
                f"   {type(exc).__name__}: {exc}" + (f"\n   at {where}" if where else "")
            ) from None
        _expect_inputs_unchanged(snapshots, what or f"{_fn_name(fn)}(...)")
        return out


def _named_inputs(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    """``(name, value)`` for every argument of a call of ``fn``, named by its parameter where the signature says."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):  # no signature (a builtin), or a call the signature does not accept
        return [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
    named: list[tuple[str, Any]] = []
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named += [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named += list(value.items())
        else:
            named.append((name, value))
    return named


def _tensors_in(name: str, value: Any) -> list[tuple[str, torch.Tensor]]:
    """The tensors an argument holds: itself, the items of a list/tuple/dict, or a plain object's tensor attributes
    (one level; networks and generators are left alone)."""
    if isinstance(value, torch.Tensor):
        return [(name, value)]
    if isinstance(value, (list, tuple)):
        return [(f"{name}[{i}]", v) for i, v in enumerate(value) if isinstance(v, torch.Tensor)]
    if isinstance(value, dict):
        return [(f"{name}[{k!r}]", v) for k, v in value.items() if isinstance(v, torch.Tensor)]
    if isinstance(value, (torch.nn.Module, torch.Generator, type)) or not hasattr(value, "__dict__"):
        return []
    return [(f"{name}.{k}", v) for k, v in vars(value).items() if isinstance(v, torch.Tensor)]


def _snapshot_inputs(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, tensor, copy)`` for every tensor among the arguments of a call of ``fn``."""
    return [(name, t, t.detach().clone()) for arg_name, value in _named_inputs(fn, args, kwargs)
            for name, t in _tensors_in(arg_name, value)]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a = a.detach()
    same = a == b
    if a.is_floating_point() or a.is_complex():
        same |= torch.isnan(a) & torch.isnan(b)
    return bool(same.all())


def _expect_inputs_unchanged(snapshots: list[tuple[str, torch.Tensor, torch.Tensor]], call: str) -> None:
    """Raise `Mismatch` naming the first input tensor that a call changed in place."""
    for name, tensor, copy in snapshots:
        if _same(tensor, copy):
            continue
        var = name if name.isidentifier() else "x"
        if tensor.shape == copy.shape:
            changed = int((tensor.detach() != copy).sum()) if tensor.dtype == copy.dtype else tensor.numel()
            detail = f" ({changed} of {tensor.numel()} entries overwritten)"
        else:
            detail = f" (its shape went from {tuple(copy.shape)} to {tuple(tensor.shape)})"
        raise Mismatch(f"your function changed its input `{name}` in place{detail} when called as {call}; "
                       f"work on a copy ({var} = {var}.clone()): the caller still needs the original.",
                       hint="Operations that end in an underscore (x.mul_(…), x.add_(…), x.clamp_(…)), assignments "
                            "into a tensor (x[i] = …) and x += … change the caller's tensor. Write x = x * … "
                            "instead, or start with x = x.clone().")


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _learner_frame(exc: BaseException) -> str | None:
    """The innermost traceback frame outside the diffcourse package and torch: the learner's line."""
    frames = traceback.extract_tb(exc.__traceback__)
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for frame in reversed(frames):
        fname = os.path.abspath(frame.filename)
        if not fname.startswith(pkg) and "site-packages" not in fname and "torch" not in fname:
            return f"line {frame.lineno}: {frame.line}" if frame.line else f"line {frame.lineno}"
    return None


# --------------------------------------------------------------------------- running and recording
_RESULTS: dict[str, CheckResult] = {}


def _async_raise(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Ask ``thread`` to raise ``exc_type`` at its next Python bytecode (stops a pure-Python endless loop;
    a thread blocked inside C code keeps running but is a daemon, so it cannot keep the kernel alive)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def _run_with_timeout(target: Callable[[], str | None], timeout: float) -> tuple[str, Any]:
    """Run ``target`` in a daemon thread. Returns ``("ok", note)``, ``("error", exc)`` or ``("timeout", None)``."""
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["ok"] = target()
        except _CheckTimeout:
            box["timeout"] = True
        except BaseException as exc:  # noqa: BLE001 — reported to the learner, never re-raised
            box["error"] = exc

    thread = threading.Thread(target=worker, name="diffcourse-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _async_raise(thread, _CheckTimeout)
        thread.join(0.2)
        return "timeout", None
    if "error" in box:
        return "error", box["error"]
    if "timeout" in box:
        return "timeout", None
    return "ok", box.get("ok")


def _record(result: CheckResult) -> None:
    _RESULTS[result.exercise] = result
    path = os.environ.get(RESULTS_ENV)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
        except OSError as exc:  # the grader will then report the exercise as not run
            print(f"(could not record the result in {path}: {exc})", file=sys.stderr)


def _indent(text: str) -> str:
    return "\n".join("   " + line.lstrip() if line.strip() else "" for line in text.splitlines())


def check(name: str, fn: Callable[..., Any] | tuple[Callable[..., Any], ...], *, seed: int | None = None,
          timeout: float | None = None, quiet: bool = False) -> CheckResult:
    """Check the learner's ``fn`` against exercise ``name``; print ✅ or ❌ and record the result.

    ``fn`` is the function the exercise asks for, or a tuple of functions where it asks for several
    (chapter 2's ``check("mnist_ddpm", (train_step, sample_digits))``).

    ``seed`` chooses the random inputs (by default a fixed seed per exercise, so that the
    same code always gets the same verdict; pass other seeds to try more inputs). ``timeout`` (seconds) overrides the check's
    time limit. This function never raises: every problem becomes a ❌.
    """
    start = time.perf_counter()
    spec = get_check(name) if isinstance(name, str) else None
    if spec is None:
        known = ", ".join(all_checks()) or "none"
        result = CheckResult(str(name), False, f"there is no exercise called {name!r}. Known exercises: {known}.")
        return _finish(result, quiet, record=False)
    if not (callable(fn) or isinstance(fn, tuple) and fn and all(map(callable, fn))):  # a function, or a tuple of them
        result = CheckResult(name, False,
                             f"expected a function as the second argument, got {type(fn).__name__}: "
                             f"`check({name!r}, {name})` with the function you wrote above (no parentheses).",
                             spec.chapter)
        return _finish(result, quiet)

    if seed is None:
        seed = zlib.crc32(name.encode()) % 100_000  # fixed per exercise: the same notebook always gets the same grade
    limit = float(os.environ.get(TIMEOUT_ENV) or timeout or spec.timeout)
    ctx = CheckContext(name, seed)
    try:
        status, value = _run_with_timeout(lambda: spec.checker(fn, ctx), limit)
    except KeyboardInterrupt:
        status, value = "interrupted", None
    passed, message = _verdict(spec, status, value, seed, limit)
    result = CheckResult(name, passed, message, spec.chapter, round(time.perf_counter() - start, 3))
    return _finish(result, quiet)


def _verdict(spec: Check, status: str, value: Any, seed: int, limit: float) -> tuple[bool, str]:
    """``(passed, message)`` for what `_run_with_timeout` reported about a run of ``spec``'s checker."""
    if status == "ok":
        return True, "passed" + (f": {value}" if value else ".")
    if status == "timeout":
        return False, (f"no answer within {limit:g} s — is there an endless loop (a `while` whose condition "
                       f"never turns false), or far more work than the exercise needs?")
    if status == "interrupted":
        return False, "interrupted before it finished."
    if isinstance(value, Mismatch):
        hint = value.hint if value.hint is not None else spec.hint
        message = value.message
        if value.show_seed:
            message += f"\n(random inputs from seed {seed}: `check({spec.name!r}, ..., seed={seed})` repeats them)"
        if hint:
            message += f"\nHint: {hint}"
        return False, message
    return False, (f"the check itself failed ({type(value).__name__}: {value}). This is a bug in diffcourse, "
                   f"not in your code — please report it with the seed {seed}.")


def _finish(result: CheckResult, quiet: bool, record: bool = True) -> CheckResult:
    if record:
        _record(result)
    if not quiet:
        head, _, rest = result.message.partition("\n")
        mark = "✅" if result.passed else "❌"
        print(f"{mark} {result.exercise} — {head}" + (f"\n{_indent(rest)}" if rest else ""))
    return result


def results() -> dict[str, CheckResult]:
    """The latest result of every check run in this process, by exercise name."""
    return dict(_RESULTS)


def reset() -> None:
    """Forget the results recorded in this process (the results file, if any, is left alone)."""
    _RESULTS.clear()


def summary(chapter: int | None = None) -> None:
    """Print the score: every exercise of ``chapter`` (default: the chapter of the checks run so far),
    passed, failed or not run yet. Returns nothing useful to display; never raises."""
    try:
        if chapter is None:
            chapters = sorted({r.chapter for r in _RESULTS.values() if r.chapter is not None})
        else:
            chapters = [int(chapter)]
        if not chapters:
            print("No exercise has been checked yet: run the `check(...)` cells first.")
            return None
        for ch in chapters:
            names = checks_for_chapter(ch)
            passed = sum(1 for n in names if n in _RESULTS and _RESULTS[n].passed)
            print(f"Chapter {ch}: {passed}/{len(names)} exercises passed")
            for n in names:
                r = _RESULTS.get(n)
                if r is None:
                    print(f"  ⬜ {n} — not checked yet")
                elif r.passed:
                    print(f"  ✅ {n}")
                else:
                    print(f"  ❌ {n} — {r.message.splitlines()[0]}")
            if passed == len(names):
                print("All done — well done! 🎉")
    except Exception as exc:  # noqa: BLE001 — a summary must never break the notebook
        print(f"(could not print the summary: {type(exc).__name__}: {exc})")
    return None
