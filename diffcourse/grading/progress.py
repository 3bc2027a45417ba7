r"""A long check on a busy machine: how far it got, and how many threads it should use.

Most checks answer in well under a second, and a time limit is all they need: a function that does
not return within it is an endless loop. A check that *trains* (chapter 2's ``mnist_ddpm``: 900
training steps, then 250 sampling steps) is different — on a laptop that is busy with something else it
can run past any fixed limit with nothing wrong in the learner's code. Such a check reports its
progress (`Progress.advance`, once per step), and the runner reads it when the time is up:

* the steps kept coming, only too slowly to finish: **too slow here** — a statement about the machine,
  not a verdict on the code, with the measured rate and what to do (`Progress.too_slow_message`);
* the steps stopped coming (one call of the learner's step ran for `STALL_SECONDS`): an endless loop,
  reported as soon as that is clear, without waiting for the whole limit (`Progress.stalled`).

A long check that reports no progress (a learner's function that trains inside, say) and runs out of time on a
machine that is busy (`slowdown`: several programs per core) gets *too slow here* too (`busy_message`), never
the endless-loop verdict: there, no time limit can tell the two apart.

`machine_threads` chooses how many threads such a check trains with: no more than the cores that are
free right now. PyTorch spreads every operation over its threads and waits for the slowest; on a busy
machine a thread that shares its core with another program makes all of them wait, so fewer threads
finish sooner.

This module imports nothing else from ``diffcourse.grading``.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator

import torch

__all__ = ["Progress", "STALL_SECONDS", "machine_threads", "free_cores", "usable_cores", "slowdown", "busy_message",
           "BUSY_FACTOR", "LONG_CHECK_SECONDS"]

STALL_SECONDS = 180.0
"""A single step of a long check that runs this long means the learner's step never returns (an idle 2-core CPU
does one of ``mnist_ddpm``'s training steps in about 0.2 s; a machine 100 times slower is not a machine to train on)."""


class Progress:
    """Steps done out of a total, as a long check reports them (thread-safe: the runner reads it while the
    check's thread writes it). ``unit`` names the steps in messages ("training and sampling steps")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.unit = "steps"
        self.threads: int | None = None
        self.started: float | None = None
        self.last: float | None = None

    def advance(self, done: int, total: int, unit: str = "steps") -> None:
        """Record that ``done`` of ``total`` steps are finished (call it after every step)."""
        with self._lock:
            now = time.monotonic()
            if self.started is None:
                self.started = now
            self.done, self.total, self.unit, self.last = int(done), int(total), unit, now

    @property
    def reported(self) -> bool:
        """Whether the check has reported any progress (only long checks do)."""
        return self.last is not None

    def stalled(self, now: float | None = None, limit: float | None = None) -> bool:
        """Whether progress was reported once and then stopped for longer than ``limit`` seconds (`STALL_SECONDS`)."""
        limit = STALL_SECONDS if limit is None else limit
        with self._lock:
            return self.last is not None and self.done < self.total and (now or time.monotonic()) - self.last > limit

    def stall_message(self, now: float | None = None) -> str:
        """The verdict on a step that never returned."""
        quiet = (now or time.monotonic()) - (self.last or 0.0)
        return (f"no answer: after {self.done} of {self.total} {self.unit}, the next one has not finished in "
                f"{quiet:.0f} s — is there an endless loop (a `while` whose condition never turns false) in your "
                f"function?")

    def too_slow_message(self, limit: float) -> str:
        """What to say when the time ran out while the steps were still coming: a fact about the machine."""
        with self._lock:
            done, total, unit = self.done, self.total, self.unit
            spent = max((self.last or 0.0) - (self.started or 0.0), 1e-9)
        rate = done / spent * 60
        need = total / max(rate, 1e-9)
        threads = f" with {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        return (f"too slow here to give a verdict: your machine did {done} of {total} {unit} in {limit / 60:.0f} "
                f"minutes{threads} ({rate:.0f} a minute; the whole run would need about {need:.0f} minutes). "
                "That says nothing about your code. Close other programs that keep the processor busy (or run "
                "with fewer threads: torch.set_num_threads(1)) and run the check again; "
                f"`check(..., timeout=S)` allows S seconds.")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _runnable_tasks() -> float | None:
    """Tasks ready to run right now, other programs' and this one's together (Linux: ``/proc/loadavg``'s
    fourth field, averaged over a few readings); ``None`` where the system does not say."""
    readings = []
    for _ in range(5):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                readings.append(int(fh.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return None
        time.sleep(0.02)
    return sum(readings) / len(readings)


def _other_tasks() -> float:
    """Tasks other than this reading that are ready to run right now (Linux); where the system cannot say, the
    1-minute load average; where it has none either (Windows), 0."""
    runnable = _runnable_tasks()
    if runnable is not None:
        return max(runnable - 1, 0.0)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def free_cores() -> int:
    """Cores not busy with other programs right now: the usable cores less the other tasks ready to run."""
    cores = usable_cores()
    return max(1, min(cores, round(cores - _other_tasks())))


BUSY_FACTOR = 1.5
"""A machine on which a check gets less than 1/1.5 of a core is busy: running out of time there says nothing about
the code (`busy_message`)."""

LONG_CHECK_SECONDS = 60.0
"""Checks allowed at least this long do real work (training, sampling experiments): their time limit is read against
the machine's load. Shorter ones answer in well under a second on any machine."""


def slowdown() -> float:
    """About how much slower than on an idle machine one thread runs now: the tasks ready to run (with this one) per
    usable core, at least 1."""
    return max(1.0, (_other_tasks() + 1.0) / usable_cores())


def busy_message(limit: float, factor: float) -> str:
    """What to say when a long check without reported progress runs out of time on a busy machine."""
    return (f"no answer within {limit:g} s, on a machine about {factor:.1f}× slower than idle (other programs keep "
            f"its {usable_cores()} core(s) busy): too slow here to tell slow work from an endless loop, so no verdict. "
            "Close other programs and run the check again.")


@contextlib.contextmanager
def machine_threads(progress: Progress | None = None) -> Iterator[int]:
    """Run the block with as many PyTorch threads as there are free cores (at least 1, and no more than
    ``OMP_NUM_THREADS`` where that is set); the thread count is restored afterwards and recorded in ``progress``."""
    before = torch.get_num_threads()
    cap = os.environ.get("OMP_NUM_THREADS", "")
    threads = free_cores()
    if cap.isdigit() and int(cap) > 0:
        threads = min(threads, int(cap))
    torch.set_num_threads(threads)
    if progress is not None:
        progress.threads = threads
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
