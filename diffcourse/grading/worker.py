r"""The grader's fresh process: re-create the learner's functions, run the checks on them, report over a signed channel.

`diffcourse.grading.isolation` starts ``python -I`` running `main` for each notebook. In this order, so that
nothing the learner wrote runs before the grading code is in place:

1. keep the original standard output as the result channel and send everything else printed to
   ``os.devnull``; read the job (the key, the code cells, the limits) from standard input, to its end;
2. import the grading package with every chapter's checks and all they use, set PyTorch to one thread (the
   checks' inputs are small; a check that trains picks its own count, `diffcourse.grading.progress`), and
   take an `Integrity` snapshot;
3. walk the notebook's `Plan`: run its definitions, and at each check call run the registered check on the
   named function with the exercise's fixed seed (`default_seed`: the inputs the notebook's own check drew, so
   the grade is the verdict the learner saw) and the check's own time limit. After every step
   compare with the snapshot: whatever changed is reported as tampering and put back, and a check during
   which something changed counts as not passed (status ``tampered``);
4. send one signed message per check (`diffcourse.grading.channel`), and ``{"kind": "done"}`` at the end.
"""
from __future__ import annotations

import ast
import builtins
import json
import linecache
import os
import sys
from typing import Any, Callable

import torch

from .channel import signer
from .core import TIMEOUT_ENV, Check, CheckResult, all_checks
from .integrity import Integrity
from .plan import CheckCall, Definitions, Plan, is_inert_target, missing_global_note, notebook_plan
from .runner import default_seed, is_function_or_tuple, run_check, run_with_limit

__all__ = ["main", "grade_job"]

Send = Callable[[dict[str, Any]], None]


def main() -> None:
    """Entry point of the worker process (see the module docstring)."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    job = json.loads(sys.stdin.read())
    send = signer(channel, bytes.fromhex(job.pop("key")))
    grade_job(job, send)


def grade_job(job: dict[str, Any], send: Send) -> None:
    """Steps 2–4 of the module docstring for ``job`` = ``{"cells": [{"index", "source"}], "cell_timeout": s}``."""
    checks = dict(all_checks())
    torch.set_num_threads(1)
    guard = Integrity()
    plan = notebook_plan([(c["index"], c["source"]) for c in job["cells"]])
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    for step in plan.steps:
        if isinstance(step, Definitions):
            _define(step, namespace, float(job.get("cell_timeout", 120)))
            result = None
        else:
            result = _check(step, namespace, checks, plan)
        changed = guard.changes()
        if changed:
            guard.restore()
            send({"kind": "tamper", "cell": step.cell, "changed": changed[:5]})
            if result is not None:
                result = _distrusted(result, changed)
        if result is not None:
            send({"kind": "result", "cell": step.cell, "exercise": result.exercise, "passed": result.passed,
                  "status": result.status, "message": result.message})
    send({"kind": "done"})


def _define(step: Definitions, namespace: dict[str, Any], limit: float) -> None:
    """Run a cell's definitions (errors and hangs are the learner's: a check on a missing function says so)."""
    filename = step.code.co_filename
    linecache.cache[filename] = (len(step.source), None, step.source.splitlines(True), filename)
    run_with_limit(lambda: exec(step.code, namespace), limit)


def _failed(spec: Check, message: str) -> CheckResult:
    return CheckResult(spec.name, False, message, spec.chapter)


def _check(step: CheckCall, namespace: dict[str, Any], checks: dict[str, Check], plan: Plan) -> CheckResult | None:
    """Run the registered check of ``step`` on the function(s) it names, as they are defined at that point."""
    spec = checks.get(step.exercise)
    if spec is None:
        return None
    if not is_inert_target(step.target):
        return _failed(spec, f"not checked: the check cell passes `{step.target_text}`; the grader checks the function "
                             f"a check cell names, as in check({spec.name!r}, {spec.name}).")
    try:
        fn = eval(compile(ast.Expression(step.target), f"<cell {step.cell}>", "eval"), namespace)
    except Exception as exc:  # noqa: BLE001 — a NameError, mostly: the function's cell failed or was removed
        return _failed(spec, f"not checked: `{step.target_text}` is not defined when its check cell runs ({exc}): did "
                             "the cell that defines it raise an error, or was it removed?")
    if not is_function_or_tuple(fn):
        return _failed(spec, f"not checked: `{step.target_text}` is a {type(fn).__name__}, not the function the "
                             "exercise asks for.")
    limit = float(os.environ.get(TIMEOUT_ENV) or spec.timeout)
    result = run_check(spec, fn, seed=default_seed(spec.name), limit=limit)
    if not result.passed:
        result.message += missing_global_note(result.message, plan)
    return result


def _distrusted(result: CheckResult, changed: list[str]) -> CheckResult:
    listed = ", ".join(changed[:3]) + (" …" if len(changed) > 3 else "")
    return CheckResult(result.exercise, False,
                       f"not trusted: while this check ran, your code changed the code that grades it ({listed}). The "
                       "originals were put back; an honest solution never touches them.", result.chapter,
                       status="tampered")
