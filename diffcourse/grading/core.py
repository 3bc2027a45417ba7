r"""The check registry, and the context a check calls the learner's function through.

A *check* is a function ``checker(fn, ctx)`` that calls the learner's ``fn``
(always through ``ctx.call``) on randomised inputs, compares with the reference
implementation in `diffcourse`, and either returns a short success note or
raises `Mismatch` saying what differed. Chapters register their checks with
`register_check` in their own module (``diffcourse/grading/ch01.py`` …); the
modules are found and imported the first time a check is asked for.

Imports inside ``diffcourse.grading`` go one way only: ``references`` and ``progress``
(importing no sibling) ← ``core`` (this module: the registry and `CheckContext`) ←
``compare`` (the comparisons) ← ``fixtures`` (random inputs, stand-in networks, exact
models shared by the chapters) ← ``ch01`` … ``ch09`` (the checks; no chapter imports
another). Finding the chapter modules by name at run time (`_load_chapter_modules`) is
the one way down, and it is not an import of any of their names.

Running a check — with a time limit, turning anything that goes wrong into a ❌ — is
`diffcourse.grading.runner`; the grader, which runs the checks itself in a fresh
process, is `diffcourse.grading.grader`.
"""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .progress import Progress
from .references import ReferenceWatch

__all__ = [
    "Check",
    "CheckResult",
    "CheckContext",
    "Mismatch",
    "register_check",
    "get_check",
    "all_checks",
    "checks_for_chapter",
    "TIMEOUT_ENV",
    "STATUSES",
]

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


class CheckTimeout(BaseException):
    """Injected into a worker thread that ran past its time limit (BaseException: ``except Exception`` won't swallow it)."""


@dataclass(frozen=True)
class Check:
    """One exercise check: its ``name`` (what ``check(name, fn)`` uses), the ``chapter`` it
    belongs to, the ``checker`` function, a general ``hint``, a time limit in seconds, and the
    ``references``: the package's own functions that answer the exercise, which the learner's
    function must not simply call (`diffcourse.grading.references`)."""

    name: str
    chapter: int
    checker: Callable[[Callable[..., Any], "CheckContext"], str | None]
    hint: str
    timeout: float = DEFAULT_TIMEOUT
    order: int = 0
    references: tuple[Any, ...] = ()


STATUSES = {"passed": "✅", "failed": "❌", "too slow": "⏳", "not checked": "⬜", "tampered": "⚠️"}
"""What a check's result can be, with the mark it is shown with: *too slow* is no verdict on the code (the
machine could not finish the check in its time), *tampered* a result the grader could not trust."""


@dataclass
class CheckResult:
    """What one run of a check found. ``message`` is the full text printed under the mark, ``status`` one of
    `STATUSES` (by default ``passed`` or ``failed``, from ``passed``)."""

    exercise: str
    passed: bool
    message: str
    chapter: int | None = None
    seconds: float = 0.0
    status: str = ""

    def __post_init__(self) -> None:
        self.status = self.status or ("passed" if self.passed else "failed")

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        # `check(...)` already printed the verdict; as the last expression of a cell, show nothing more.
        pass


# --------------------------------------------------------------------------- registry
_CHECKS: dict[str, Check] = {}
_loaded = False
_CHAPTER_MODULE = re.compile(r"^ch(\d\d)$")


def register_check(name: str, *, chapter: int, hint: str, timeout: float = DEFAULT_TIMEOUT,
                   references: tuple[Any, ...] = ()):
    """Decorator that registers ``checker`` as the check called ``name``; ``references`` are the package's
    functions that answer it (a learner's function that calls one of them is told to write its own).

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
        _CHECKS[name] = Check(name, chapter, checker, hint, timeout, order=len(_CHECKS),
                              references=tuple(references))
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
    (draw every random input from it), `call`, the guarded call of the learner's function, and ``progress``,
    where a long check reports the steps it has done (`diffcourse.grading.progress`).

    The comparisons live in `diffcourse.grading.compare` (``expect_tensor``, ``expect_close`` …),
    which builds on this module; a checker imports them from there.
    """

    def __init__(self, name: str, seed: int, references: tuple[Any, ...] = ()) -> None:
        self.name = name
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)
        self.references = references
        self.progress = Progress()

    def call(self, fn: Callable[..., Any], *args: Any, what: str | None = None, **kwargs: Any) -> Any:
        """Call the learner's ``fn``; turn any exception into a `Mismatch` that explains it.

        Every tensor argument (also inside a list, tuple or dict, and the tensor attributes of a plain
        object such as a `NoiseSchedule`) is copied before the call and compared afterwards: a function
        that changed its input in place fails, naming the input.
        """
        snapshots = _snapshot_inputs(fn, args, kwargs)
        watch = ReferenceWatch(self.references)
        try:
            with watch:
                out = fn(*args, **kwargs)
        except NotImplementedError as exc:
            hint = "Replace the `raise NotImplementedError(...)` line with your code, run that cell, then this one."
            text = str(exc)
            if "Hint:" in text:  # the stub's own hint, from the solution's `### HINT:` lines
                hint = text.split("Hint:", 1)[1].strip() + " (" + hint[0].lower() + hint[1:-1] + ".)"
            raise Mismatch(f"not written yet: `{_fn_name(fn)}` still raises NotImplementedError.",
                           hint=hint, show_seed=False) from None
        except CheckTimeout:
            raise
        except BaseException as exc:  # the learner's bug (even SystemExit): report it, never raise it
            where = _learner_frame(exc)
            call = what or f"{_fn_name(fn)}(...)"
            raise Mismatch(
                f"your function raised {type(exc).__name__} when called as {call}:\n"
                f"   {type(exc).__name__}: {exc}" + (f"\n   at {where}" if where else "")
            ) from None
        _expect_inputs_unchanged(snapshots, what or f"{_fn_name(fn)}(...)")
        used = watch.used or [watch.handed_in(fn)] * (watch.handed_in(fn) is not None)
        if used:
            raise Mismatch(f"your function calls `{used[0]}` when called as {what or _fn_name(fn) + '(...)'}: "
                           "that is the course's own answer to this exercise, the very function the check compares "
                           "with. A copy of the answer cannot pass: write the computation yourself.",
                           hint="Use the equation above the exercise and the tensors you are given; other parts of "
                                "diffcourse (and your own earlier functions) are fine to call.", show_seed=False)
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


