r"""Noticing a submission that hands in the package's own answer.

Every check compares the learner's function with a reference in `diffcourse` (``q_sample`` with
`diffcourse.schedules.q_sample` …). A function that simply *calls* that reference — ``def q_sample(*a):
return schedules.q_sample(*a)`` — would match it exactly and teach nothing. Each check therefore names
its references (``register_check(..., references=(...))``), and while the learner's function runs,
`ReferenceWatch` watches for a call of one of them *made directly by the learner's code*: a frame of a
reference whose caller lies outside the ``diffcourse`` package (and `ReferenceWatch.handed_in` notices a
reference passed to the check as the learner's function itself). Calls the package makes itself (a
checker's stand-in network that happens to use a library function, a sampler the learner legitimately
calls that uses another one inside) are not the learner handing in the reference, and are not counted.

The watch is a profile hook (`sys.setprofile`) that the runner installs in a check's own thread when the
check names references (`install_hook`); it costs about a microsecond per Python call, and does nothing
unless a `ReferenceWatch` is active in that thread. It is never removed: the thread ends with the check.
(Removing a profile function makes a thread stall in CPython 3.11 while another thread has a pending
asynchronous exception — which a check that timed out leaves behind, `diffcourse.grading.runner`.)

This module imports nothing else from ``diffcourse.grading``.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
from types import CodeType, FrameType
from typing import Any, Iterable

__all__ = ["ReferenceWatch", "install_hook", "code_of", "reference_name"]

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The ``diffcourse`` package folder: code there is the course's, code elsewhere the learner's."""


def code_of(obj: Any) -> CodeType | None:
    """The code object a call of ``obj`` runs: a function's, a bound method's, a property's getter, a
    classmethod's or staticmethod's function, a `functools.partial`'s function; ``None`` for what has
    none (a builtin)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    for attr in ("fget", "__func__"):
        obj = getattr(obj, attr, obj)
    return getattr(obj, "__code__", None)


def reference_name(obj: Any) -> str:
    """``module.qualname`` of a reference, for messages (``diffcourse.schedules.q_sample``)."""
    for attr in ("fget", "__func__"):
        obj = getattr(obj, attr, obj)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _in_package(frame: FrameType | None) -> bool:
    return frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(PACKAGE_DIR + os.sep)


_ACTIVE = threading.local()


def _hook(frame: FrameType, event: str, arg: Any) -> None:
    if event == "call":
        watches = getattr(_ACTIVE, "watches", None)
        if watches:
            watches[-1].notice(frame)


def install_hook() -> None:
    """Install the watching profile hook in the current thread (a check's own thread; see the module docstring)."""
    sys.setprofile(_hook)


class ReferenceWatch:
    """Watch one call of a learner's function for direct calls of the given references (in a thread where
    `install_hook` ran).

    >>> watch = ReferenceWatch([schedules.q_sample])          # doctest: +SKIP
    >>> with watch:                                           # doctest: +SKIP
    ...     out = learner_fn(x0, t, eps, alpha_bars)
    >>> watch.used                                            # the references it called, by name  # doctest: +SKIP
    """

    def __init__(self, references: Iterable[Any]) -> None:
        self._names = {code: reference_name(ref) for ref in references if (code := code_of(ref)) is not None}
        self.used: list[str] = []

    def handed_in(self, fn: Any) -> str | None:
        """The reference ``fn`` *is* (handed in as the learner's function, or wrapped in a partial), else ``None``."""
        return self._names.get(code_of(fn))

    def notice(self, frame: FrameType) -> None:
        """Record ``frame`` if it runs a reference and its caller is the learner's code."""
        if frame.f_code in self._names and not _in_package(frame.f_back):
            name = self._names[frame.f_code]
            if name not in self.used:
                self.used.append(name)

    def __enter__(self) -> "ReferenceWatch":
        if not hasattr(_ACTIVE, "watches"):
            _ACTIVE.watches = []
        _ACTIVE.watches.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.watches.remove(self)
