r"""Did the learner's code change the code that grades it? A snapshot, a comparison, a repair.

The grader's fresh process (`diffcourse.grading.worker`) imports the grading package and everything the
checks use *before* it runs a line of the learner's code, and takes an `Integrity` snapshot: the
attributes of every ``diffcourse`` module and class, of ``torch``, ``torch.nn.functional``,
``torch.Tensor``, ``torch.nn.Module``, ``math``, ``numpy`` and ``builtins``, and the code, defaults and
keyword defaults of every Python function among them. After the learner's definitions run, and after every
check (which calls the learner's functions), `Integrity.changes` lists what differs — a replaced verdict
function, a comparison patched to accept anything, a method swapped on a class — and `Integrity.restore`
puts the originals back, so that the next check runs on the real code again. A check during which
anything changed is not trusted (`diffcourse.grading.worker`).

New attributes are not changes (modules load submodules lazily); only what existed and was replaced or
removed counts. `grading_files_digest` is the same idea for the grading package's files on disk, which the
notebook's kernel could rewrite with the instructor's rights.

This module imports nothing else from ``diffcourse.grading``.
"""
from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["Integrity", "watched_namespaces", "grading_files_digest"]

_EXTRA_MODULES = ("torch", "torch.nn.functional", "math", "numpy", "builtins", "json", "hmac", "os")
LAZY_WRAPPERS = {("torch", "manual_seed")}
"""Attributes PyTorch itself wraps the first time a part of it loads (``torch._dynamo`` wraps ``torch.manual_seed``,
and an optimiser's first step loads it): a wrapper whose ``__wrapped__`` is the original is not a change."""


def _owner_classes(module: types.ModuleType) -> list[type]:
    return [v for v in vars(module).values()
            if isinstance(v, type) and getattr(v, "__module__", None) == module.__name__]


def watched_namespaces() -> dict[str, Any]:
    """``{name: module or class}``: what `Integrity` watches (see the module docstring)."""
    watched: dict[str, Any] = {}
    for name, module in sorted(sys.modules.items()):
        if module is None or not (name == "diffcourse" or name.startswith("diffcourse.") or name in _EXTRA_MODULES):
            continue
        watched[name] = module
        if name.startswith("diffcourse"):
            watched.update({f"{name}.{c.__qualname__}": c for c in _owner_classes(module)})
    import torch

    watched.update({"torch.Tensor": torch.Tensor, "torch.nn.Module": torch.nn.Module})
    return watched


def _entries(namespace: Any) -> dict[str, Any]:
    """The attributes to compare: every non-dunder one of a module; every function-like one of a class (dunder
    methods included: ``__call__`` of a stand-in network matters)."""
    items = dict(vars(namespace))
    if isinstance(namespace, types.ModuleType):
        return {k: v for k, v in items.items() if not (k.startswith("__") and k.endswith("__"))}
    return {k: v for k, v in items.items()
            if isinstance(v, (types.FunctionType, property, classmethod, staticmethod, types.BuiltinFunctionType))}


def _function_parts(fn: types.FunctionType) -> tuple[Any, Any, Any]:
    return fn.__code__, fn.__defaults__, fn.__kwdefaults__


class Integrity:
    """A snapshot of `watched_namespaces` that can say what changed since, and undo it."""

    def __init__(self) -> None:
        self._spaces = watched_namespaces()
        self._values = {name: _entries(space) for name, space in self._spaces.items()}
        self._functions = {id(v): (v, _function_parts(v)) for values in self._values.values() for v in values.values()
                           if isinstance(v, types.FunctionType)}

    def changes(self) -> list[str]:
        """What differs from the snapshot, as ``module.attribute`` (replaced, removed, or a function's code changed)."""
        found = []
        for name, values in self._values.items():
            now = vars(self._spaces[name])
            found += [f"{name}.{key}" for key, value in values.items()
                      if now.get(key, _MISSING) is not value and not _lazily_wrapped(name, key, value, now.get(key))]
        found += [f"{fn.__module__}.{fn.__qualname__} (its code)" for fn, parts in self._functions.values()
                  if _function_parts(fn) != parts]
        return sorted(set(found))

    def restore(self) -> None:
        """Put back every replaced or removed attribute and every function's code and defaults."""
        for name, values in self._values.items():
            space = self._spaces[name]
            for key, value in values.items():
                now = vars(space).get(key, _MISSING)
                if now is not value and not _lazily_wrapped(name, key, value, now):
                    setattr(space, key, value)
        for fn, (code, defaults, kwdefaults) in self._functions.values():
            fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults


_MISSING = object()


def _lazily_wrapped(space: str, key: str, original: Any, now: Any) -> bool:
    return (space, key) in LAZY_WRAPPERS and getattr(now, "__wrapped__", None) is original


def grading_files_digest() -> str:
    """SHA-256 over the names and contents of the grading package's ``.py`` files, as they are on disk now."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
