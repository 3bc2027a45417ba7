"""``python -m diffcourse make-exercises``: write ``exercises/`` from ``solutions/``.

Every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub
that raises ``NotImplementedError`` with the exercise's name and hint; outputs and
execution counts are cleared (see `diffcourse.grading.exercises`). A notebook you
have edited is never overwritten unless you pass ``--force``.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]

_VERB = {"written": "wrote", "updated": "updated", "unchanged": "unchanged", "overwritten": "overwrote (--force)"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-exercises", help="generate exercises/ from solutions/ (never overwrites your edits without --force)",
        description="Generate the exercise notebooks from the solution notebooks. A notebook in the exercises "
                    "folder that you have edited since it was generated is left alone unless you pass --force.")
    p.add_argument("names", nargs="*", help="only these notebooks, e.g. 01_fundamentals (default: all)")
    p.add_argument("--solutions", default="solutions", help="folder of solution notebooks (default: solutions)")
    p.add_argument("--out", default="exercises", help="folder to write the exercises to (default: exercises)")
    p.add_argument("--force", action="store_true",
                   help="overwrite exercise notebooks even if they were edited — your work in them is LOST")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..grading.exercises import SolutionMarkerError, generate

    try:
        outcomes = generate(args.solutions, args.out, force=args.force, only=args.names or None)
    except (FileNotFoundError, SolutionMarkerError) as exc:
        print(f"make-exercises: {exc}", file=sys.stderr)
        return 2
    kept = [o for o in outcomes if o.status == "kept"]
    for o in outcomes:
        if o.status != "kept":
            print(f"{_VERB[o.status]:>20}  {o.path}")
    for o in kept:
        print(f"{'kept':>20}  {o.path}: {o.detail}.", file=sys.stderr)
    if kept:
        print(f"\n{len(kept)} notebook(s) kept as they are, so that your work is not lost. To regenerate them "
              "anyway, copy them somewhere safe and re-run with --force.", file=sys.stderr)
        return 1
    return 0
