"""Exercise checks and the grader.

In an exercise notebook::

    from diffcourse.grading import check, summary

    def q_sample(x0, t, eps, alpha_bars):
        ...                                 # your code

    check("q_sample", q_sample)             # ✅ or ❌ with what differed and a hint
    ...
    summary()                               # the chapter's score

`check` never raises into the notebook; it prints its verdict (see `diffcourse.grading.runner`).
Each chapter's checks live in their own module, ``diffcourse/grading/chNN.py``, found
automatically (`diffcourse.grading.core`). ``python -m diffcourse make-exercises`` builds
``exercises/`` from ``solutions/`` (`.exercises`), and ``python -m diffcourse grade`` runs
notebooks and then the checks itself, in a fresh process the notebook never touched (`.grader`).
"""
from .core import (
    STATUSES,
    TIMEOUT_ENV,
    Check,
    CheckContext,
    CheckResult,
    Mismatch,
    all_checks,
    checks_for_chapter,
    get_check,
    register_check,
)
from .runner import GRADER_ENV, check, reset, results, summary

__all__ = [
    "check",
    "summary",
    "results",
    "reset",
    "register_check",
    "get_check",
    "all_checks",
    "checks_for_chapter",
    "Check",
    "CheckContext",
    "CheckResult",
    "Mismatch",
    "STATUSES",
    "GRADER_ENV",
    "TIMEOUT_ENV",
]
