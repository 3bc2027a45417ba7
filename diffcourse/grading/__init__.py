"""Exercise checks and the grader.

In an exercise notebook::

    from diffcourse.grading import check, summary

    def q_sample(x0, t, eps, alpha_bars):
        ...                                 # your code

    check("q_sample", q_sample)             # ✅ or ❌ with what differed and a hint
    ...
    summary()                               # the chapter's score

`check` never raises into the notebook; it prints its verdict and records it
(see `diffcourse.grading.core`). Each chapter's checks live in their own module,
``diffcourse/grading/chNN.py``, found automatically. ``python -m diffcourse
make-exercises`` builds ``exercises/`` from ``solutions/`` (`.exercises`), and
``python -m diffcourse grade`` runs notebooks and collects the results (`.grader`).
"""
from .core import (
    RESULTS_ENV,
    TIMEOUT_ENV,
    Check,
    CheckContext,
    CheckResult,
    Mismatch,
    all_checks,
    check,
    checks_for_chapter,
    get_check,
    register_check,
    reset,
    results,
    summary,
)

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
    "RESULTS_ENV",
    "TIMEOUT_ENV",
]
