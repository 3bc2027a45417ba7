"""``python -m diffcourse grade PATH…``: grade exercise notebooks and report every exercise's result.

Each notebook (or every ``.ipynb`` under a folder) runs in a fresh kernel; then the grader
runs every check itself, on the learner's functions, in a fresh process the notebook never
touched (`diffcourse.grading.grader`). The results are printed as a table and optionally
written to CSV and/or JSON for an instructor. An exercise without a check counts as not
passed. The exit status is 0 whenever grading ran, whatever the score; 2 for a missing path;
3 if a notebook rewrote the grading code on disk (grading stops there).
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run", "report"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "grade", help="run exercise notebooks, then their checks in a fresh process, and report (table, CSV, JSON)",
        description="Execute notebooks in fresh kernels, then run every exercise check on the learner's functions "
                    "in a fresh process the notebook never touched, and report.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="notebooks, or folders searched for *.ipynb")
    p.add_argument("--csv", metavar="FILE",
                   help="write one row per exercise: notebook, exercise, passed, message, status, tampering")
    p.add_argument("--json", metavar="FILE",
                   help="write a list of {notebook, exercise, passed, message, status, tampering}")
    p.add_argument("--timeout", type=float, default=120, metavar="S",
                   help="seconds a single cell may run before it is interrupted (default: 120)")
    p.add_argument("--executed", metavar="DIR",
                   help="also save every executed notebook in DIR (as <folder>-<name>.ipynb), outputs and the grader's "
                        "verdicts included")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..grading.grader import GradingCompromised, find_notebooks, grade_paths

    try:
        notebooks = find_notebooks(args.paths)
    except FileNotFoundError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"grade: no .ipynb files under {', '.join(args.paths)}.", file=sys.stderr)
        return 2
    try:
        records = grade_paths(notebooks, timeout=args.timeout, progress=True, executed_dir=args.executed)
    except GradingCompromised as exc:
        report(exc.records, args)
        print(f"grade: stopped: {exc}", file=sys.stderr)
        return 3
    report(records, args)
    return 0


def report(records: list, args: argparse.Namespace) -> None:
    """Print the table and write the CSV and JSON the command line asked for."""
    from ..grading.gradebook import format_table, write_csv, write_json

    print()
    print(format_table(records))
    if args.csv:
        write_csv(records, args.csv)
        print(f"wrote {args.csv}")
    if args.json:
        write_json(records, args.json)
        print(f"wrote {args.json}")
    if args.executed:
        print(f"executed notebooks in {args.executed}")
