r"""The grader's side of the fresh process: start it, give it the notebook, read what it signs.

`check_in_fresh_process` starts ``python -I`` (isolated mode: no ``PYTHON*`` variables, no user site,
not the current folder on the path) in an empty temporary folder, importing the very ``diffcourse`` this
grader runs (`diffcourse.grading.worker`). It writes the job — a new random key, the notebook's code
cells, the cell time limit — to the process's standard input and closes it, and reads the signed
results from its standard output (`diffcourse.grading.channel`) until it ends or runs past the sum of
the chapter's time limits. Nothing travels through the environment or a file the notebook could name.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .channel import read_signed
from .core import TIMEOUT_ENV, get_check
from .runner import GRADER_ENV

__all__ = ["FreshRun", "check_in_fresh_process", "time_allowed"]

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_BOOT = ("import sys; sys.path.insert(0, {parent!r}); "
         "from diffcourse.grading.worker import main; main()")
STARTUP_SECONDS = 180.0
"""Time for the fresh process to start and import PyTorch and the checks (seconds on a busy 2-core machine)."""


@dataclass
class FreshRun:
    """What the fresh process reported: the latest result of each exercise (``{"passed", "status", "message",
    "cell"}``), the tampering it saw, and a problem that cut it short (``""`` if none)."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    tampering: list[str] = field(default_factory=list)
    problem: str = ""


def time_allowed(exercises: list[str], cell_timeout: float, n_cells: int) -> float:
    """Seconds the fresh process may take: every check's own limit, a cell limit per cell of definitions (at most
    ten), and `STARTUP_SECONDS`."""
    override = os.environ.get(TIMEOUT_ENV)
    limits = [float(override or spec.timeout) for spec in map(get_check, exercises) if spec is not None]
    return sum(limits) + min(n_cells, 10) * cell_timeout + STARTUP_SECONDS


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != GRADER_ENV}
    env["MPLBACKEND"] = "Agg"  # no window from a learner's plotting helper
    return env


def _start(folder: str, log: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-I", "-c", _BOOT.format(parent=_PACKAGE_PARENT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=folder,
                            env=_environment(), text=True, encoding="utf-8")


def check_in_fresh_process(cells: list[tuple[int, str]], exercises: list[str], *,
                           cell_timeout: float = 120) -> FreshRun:
    """Run the checks of the code ``cells`` (``[(index, source)]``) in a fresh process; ``exercises`` are the chapter's,
    whose time limits bound the run. Never raises for what happens in that process."""
    key = secrets.token_bytes(32)
    job = {"key": key.hex(), "cell_timeout": cell_timeout, "cells": [{"index": i, "source": s} for i, s in cells]}
    deadline = time_allowed(exercises, cell_timeout, len(cells))
    with tempfile.TemporaryDirectory(prefix="diffcourse-grade-") as folder, \
            open(Path(folder) / "worker.log", "w+", encoding="utf-8") as log:
        proc = _start(folder, log)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
        except OSError:
            pass  # the process died at once; its log says why
        ended = _wait(proc, deadline)
        reader.join(5)
        log.seek(0)
        tail = log.read()[-2000:]
    return _collect(lines, key, ended, deadline, tail)


def _wait(proc: subprocess.Popen, deadline: float) -> bool:
    """Wait for the process; kill it after ``deadline`` seconds. Whether it ended by itself."""
    try:
        proc.wait(timeout=deadline)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def _collect(lines: list[str], key: bytes, ended: bool, deadline: float, log_tail: str) -> FreshRun:
    """Turn the signed lines into a `FreshRun`, noting forged lines, messages after the end, and an early end."""
    messages, forged = read_signed(lines, key)
    run = FreshRun()
    if forged:
        run.tampering.append(f"{forged} line(s) on the grader's result channel were not written by the grader "
                             "(forged results are ignored)")
    done = False
    for message in messages:
        if done:
            run.tampering.append("results arrived after the grader's process had finished")
            break
        if message.get("kind") == "result":
            run.results[message["exercise"]] = message
        elif message.get("kind") == "tamper":
            run.tampering.append(f"cell {message['cell']} changed the grading code: {', '.join(message['changed'])}")
        done = message.get("kind") == "done"
    if not ended:
        run.problem = f"the grader's process was stopped after {deadline:.0f} s"
    elif not done:
        last = log_tail.strip().splitlines()[-1:] or ["no message"]
        run.problem = f"the grader's process ended before it had finished ({last[0][:200]})"
    return run
