"""Comparisons that explain themselves.

Each function raises `Mismatch` with a message that says *what* differed — the
type, the shape, NaN/inf, the values (where, by how much), the dtype, a
statistic — and, when the wrong output equals a known mistake (a forgotten
square root, a swapped argument …), names the mistake.

This module builds on `diffcourse.grading.core` (for `Mismatch`) and on nothing else
in the package; the shared fixtures and the chapter checks build on it.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import torch

from .core import Mismatch

__all__ = ["expect_like", "expect_tensor", "expect_close", "expect_statistic", "describe", "as_float", "as_int",
           "as_int_list", "as_pair"]


def describe(x: Any) -> str:
    """A short description of an input, for messages: ``tensor (4, 2) float32`` or the repr of a number."""
    if isinstance(x, torch.Tensor):
        if x.numel() <= 6:
            values = ", ".join(f"{v:.4g}" if x.dtype.is_floating_point else str(v) for v in x.flatten().tolist())
            return f"tensor{tuple(x.shape)} {_dtype(x.dtype)} [{values}]"
        return f"tensor{tuple(x.shape)} {_dtype(x.dtype)}"
    return repr(x)


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _not_a_tensor(out: Any, what: str) -> Mismatch:
    if out is None:
        return Mismatch(f"{what} returned None.", hint="Did you forget the `return` statement?")
    if hasattr(out, "__array__") and not isinstance(out, torch.Tensor):
        return Mismatch(f"{what} returned a {type(out).__name__}, not a torch.Tensor.",
                        hint="Stay in PyTorch (torch.sqrt, torch.cumprod …), or convert with torch.as_tensor(...).")
    return Mismatch(f"{what} returned a {type(out).__name__} ({out!r:.60}), but a torch.Tensor was expected.")


def _matching_mistake(out: torch.Tensor, mistakes: Mapping[str, torch.Tensor] | None,
                      rtol: float, atol: float) -> str | None:
    for description, wrong in (mistakes or {}).items():
        wrong = torch.as_tensor(wrong)
        if wrong.shape == out.shape and torch.allclose(out.to(torch.float64), wrong.to(torch.float64),
                                                       rtol=rtol, atol=atol, equal_nan=True):
            return description
    return None


def expect_like(out: Any, expected: torch.Tensor, *, what: str, inputs: str = "",
                dtype_hint: str | None = None) -> torch.Tensor:
    """Require ``out`` to be a finite floating-point tensor of ``expected``'s shape (values are not compared)."""
    context = f"\n   inputs: {inputs}" if inputs else ""
    if not isinstance(out, torch.Tensor):
        raise _not_a_tensor(out, what)
    if out.shape != expected.shape:
        note = ""
        if out.numel() == expected.numel():
            note = " (same number of elements, arranged differently: a reshape/transpose problem?)"
        elif out.ndim > expected.ndim:
            note = " (more dimensions than expected: did broadcasting combine two shapes that should have matched?)"
        raise Mismatch(f"shape differs: yours {tuple(out.shape)}, expected {tuple(expected.shape)}{note}.{context}")
    if out.is_complex() or not (out.dtype.is_floating_point or out.dtype == expected.dtype):
        raise Mismatch(f"dtype differs: yours {_dtype(out.dtype)}, expected {_dtype(expected.dtype)}.{context}",
                       hint=dtype_hint)
    bad = ~torch.isfinite(out.detach())
    if bad.any():
        n_nan = int(torch.isnan(out).sum())
        kinds = "NaN" if n_nan == int(bad.sum()) else ("inf" if n_nan == 0 else "NaN/inf")
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise Mismatch(f"your output contains {kinds} ({int(bad.sum())} of {out.numel()} entries, first at index "
                       f"{first}).{context}",
                       hint=("inf comes from dividing by zero or overflowing (exp of a large number)"
                             if kinds == "inf" else "NaN comes from 0/0, sqrt or log of a negative number, or inf − inf")
                       + "; print intermediate values to find where it first appears.")
    return out


def expect_tensor(out: Any, expected: torch.Tensor, *, what: str, inputs: str = "", rtol: float = 1e-5,
                  atol: float = 1e-6, check_dtype: bool = True, dtype_hint: str | None = None,
                  mistakes: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Require ``out`` to be a tensor equal to ``expected``: type, shape, finiteness, values, dtype — in that order,
    except that a *less precise* float dtype (float32 where float64 is expected) is reported before the values, whose
    small differences it would otherwise show as; values right only to float32 precision are said to be so.

    ``what`` names the call (``"q_sample(x0, t, eps, alpha_bars)"``), ``inputs`` describes
    the inputs used, ``mistakes`` maps a description ("forgot the square root of ᾱ_t") to
    the output that mistake would give; a match is named in the message.
    """
    expect_like(out, expected, what=what, inputs=inputs, dtype_hint=dtype_hint)
    context = f"\n   inputs: {inputs}" if inputs else ""
    got = out.detach().to(torch.float64)
    ref = expected.detach().to(torch.float64)
    if check_dtype and _less_precise(out.dtype, expected.dtype):
        # float32 where float64 is needed: say so first, not as a tiny difference in the values
        raise Mismatch(f"dtype differs: yours {_dtype(out.dtype)}, expected {_dtype(expected.dtype)} — "
                       f"{_dtype(out.dtype)} keeps only about {_digits(out.dtype)} significant digits, too few "
                       f"here.{context}", hint=dtype_hint)
    if not torch.allclose(got, ref, rtol=rtol, atol=atol):
        err = (got - ref).abs()
        idx = tuple(int(i) for i in torch.nonzero(err == err.max())[0])
        where = f" at index {idx}" if idx else ""
        message = (f"values differ: largest difference {float(err.max()):.3g}{where}: yours {float(got[idx]):.6g}, "
                   f"expected {float(ref[idx]):.6g} ({int((err > atol + rtol * ref.abs()).sum())} of {out.numel()} "
                   f"entries off).{context}")
        mistake = _matching_mistake(out, mistakes, rtol, atol)
        float32_like = rtol < 1e-6 and torch.allclose(got, ref, rtol=1e-4, atol=max(atol, 1e-7))
        if mistake:
            message += f"\n   Your output is exactly what you get if you {mistake}."
        elif float32_like:  # right to 4–7 digits, but the check asks for float64 accuracy
            message += ("\n   Your values agree with the expected ones only to about float32 precision (4–7 "
                        "digits): was something computed in float32 and cast afterwards? Do the arithmetic in "
                        "float64 throughout.")
        raise Mismatch(message, hint=dtype_hint if float32_like and not mistake else None)
    if check_dtype and out.dtype != expected.dtype:
        raise Mismatch(f"dtype differs: yours {_dtype(out.dtype)}, expected {_dtype(expected.dtype)} "
                       f"(the values are right).{context}", hint=dtype_hint)
    return out


def _less_precise(a: torch.dtype, b: torch.dtype) -> bool:
    """Whether floating dtype ``a`` holds fewer digits than floating dtype ``b`` (float32 vs float64)."""
    return (a.is_floating_point and b.is_floating_point and a != b
            and torch.finfo(a).eps > torch.finfo(b).eps)


def _digits(dtype: torch.dtype) -> int:
    return int(round(-math.log10(torch.finfo(dtype).eps)))


def _is_integer_like(value: Any) -> bool:
    """A Python, NumPy or torch integer, or a one-element integer tensor/array (not a bool)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.dtype.is_floating_point and not value.is_complex() \
            and value.dtype != torch.bool
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # a NumPy array or scalar
    return kind in ("i", "u") and getattr(value, "size", 0) == 1


def as_int(value: Any, what: str, *, allow_none: bool = False, meaning: str = "a whole number") -> int | None:
    """The whole number a learner's function returned — a Python int, a NumPy or torch integer, or a one-element
    integer tensor/array — as an int (``None`` passes through when ``allow_none``).

    Raises `Mismatch` for anything else, saying what came back instead (a float such as 3.0 included: it
    is a whole *value* but not an integer *type*, and cannot index a table).
    """
    if value is None:
        if allow_none:
            return None
        raise Mismatch(f"{what} returned None.", hint="Did you forget the `return` statement?")
    if _is_integer_like(value):
        return int(value.item()) if hasattr(value, "item") else int(value)
    raise Mismatch(f"{what} returned {value!r:.60} (a {type(value).__name__}); expected {meaning} as an integer "
                   "type (int).",
                   hint="Convert with int(...) — a float such as 3.0 cannot index a table — and return it.")


def as_int_list(value: Any, what: str, *, meaning: str = "whole numbers") -> list[int]:
    """A list of integers a learner's function returned — a list/tuple of Python, NumPy or torch integers, or a
    1-D integer tensor/array — as a list of ints; raises `Mismatch` for anything else."""
    if value is None:
        raise Mismatch(f"{what} returned None.", hint="Did you forget the `return` statement?")
    if isinstance(value, torch.Tensor) or hasattr(value, "__array__") and hasattr(value, "dtype"):
        kind = getattr(value.dtype, "kind", None) if not isinstance(value, torch.Tensor) else (
            "f" if value.dtype.is_floating_point else "i")
        if kind not in ("i", "u") or value.ndim != 1:
            raise Mismatch(f"{what} returned {type(value).__name__} of shape {tuple(value.shape)} and dtype "
                           f"{value.dtype}; expected a list of {meaning} (integers).",
                           hint="Return a list of ints, e.g. [int(v) for v in ...].")
        return [int(v) for v in value.tolist()]
    if not isinstance(value, (list, tuple)):
        raise Mismatch(f"{what} returned a {type(value).__name__}; expected a list of {meaning} (integers).")
    for v in value:
        if not _is_integer_like(v):
            raise Mismatch(f"{what} returned a list holding {v!r:.40} (a {type(v).__name__}); expected {meaning} "
                           "of an integer type (int), which can index a table.",
                           hint="Convert each value with int(...) (int() rounds down, round() to the nearest).")
    return [int(v.item()) if hasattr(v, "item") else int(v) for v in value]


def as_pair(value: Any, what: str, names: tuple[str, str] = ("mean", "var")) -> tuple[Any, Any]:
    """The two results a learner's function returned as a tuple or list, e.g. ``(mean, var)``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return value[0], value[1]
    if value is None:
        raise Mismatch(f"{what} returned None.", hint=f"Did you forget the `return {names[0]}, {names[1]}` statement?")
    shape = f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ""
    raise Mismatch(f"{what} returned a {type(value).__name__}{shape}; expected a pair ({names[0]}, {names[1]}).",
                   hint=f"End with `return {names[0]}, {names[1]}` (a tuple of two tensors).")


def as_float(value: Any, what: str) -> float:
    """The single number a learner's function returned (a Python or NumPy number, or a one-element tensor or
    array), as a float.

    Raises `Mismatch` for anything else (None, a bool, a string, a tensor of several elements),
    saying what ``what`` returned instead.
    """
    if isinstance(value, torch.Tensor) or hasattr(value, "__array__") and hasattr(value, "shape"):
        if (value.numel() if isinstance(value, torch.Tensor) else int(value.size)) != 1:
            raise Mismatch(f"{what} returned a {type(value).__name__} of shape {tuple(value.shape)}; "
                           "expected a single number.")
        if str(value.dtype).endswith("bool"):
            raise Mismatch(f"{what} returned a boolean ({value!r:.60}); expected a number.")
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if value is None:
            raise Mismatch(f"{what} returned None.", hint="Did you forget the `return` statement?")
        raise Mismatch(f"{what} returned a {type(value).__name__} ({value!r:.60}); expected a number.")
    return float(value)


def expect_close(value: Any, expected: float, *, what: str, inputs: str = "", rtol: float = 1e-6,
                 atol: float = 0.0, mistakes: Mapping[str, float] | None = None) -> float:
    """Require a single number close to ``expected`` (a Python number or a one-element tensor)."""
    got = as_float(value, what)
    context = f"\n   inputs: {inputs}" if inputs else ""
    if not math.isfinite(got):
        raise Mismatch(f"{what} returned {got}.{context}")
    if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        message = f"value differs: {what} gave {got:.6g}, expected {expected:.6g}.{context}"
        for description, wrong in (mistakes or {}).items():
            if wrong is not None and math.isclose(got, float(wrong), rel_tol=rtol, abs_tol=atol):
                message += f"\n   That is exactly what you get if you {description}."
                break
        raise Mismatch(message)
    return got


def expect_statistic(name: str, value: float, expected: float, tolerance: float, *, what: str,
                     inputs: str = "", note: str = "") -> None:
    """Require a statistic estimated from samples (a mean, a variance) within ``tolerance`` of its exact value."""
    if not math.isfinite(value) or abs(value - expected) > tolerance:
        context = f"\n   inputs: {inputs}" if inputs else ""
        raise Mismatch(f"statistic differs: the {name} of {what} is {value:.4g}, but the closed form says "
                       f"{expected:.4g} (allowed deviation ±{tolerance:.2g} for this many samples).{context}"
                       + (f"\n   {note}" if note else ""))
