"""``python -m diffcourse grade PATH…``: run exercise notebooks and report every exercise's result.

Each notebook (or every ``.ipynb`` under a folder) runs in a fresh kernel; the
results its ``check(...)`` cells record are collected, printed as a table, and
optionally written to CSV and/or JSON for an instructor. An exercise whose check
never ran counts as not passed. The exit status is 0 whenever grading ran,
whatever the score.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "grade", help="run exercise notebooks in fresh kernels and report the checks (table, CSV, JSON)",
        description="Execute notebooks in fresh kernels and collect the results of their exercise checks.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="notebooks, or folders searched for *.ipynb")
    p.add_argument("--csv", metavar="FILE", help="write one row per exercise: notebook, exercise, passed, message")
    p.add_argument("--json", metavar="FILE", help="write a list of {notebook, exercise, passed, message}")
    p.add_argument("--timeout", type=float, default=120, metavar="S",
                   help="seconds a single cell may run before it is interrupted (default: 120)")
    p.add_argument("--executed", metavar="DIR",
                   help="also save every executed notebook in DIR (as <folder>-<name>.ipynb), outputs included")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..grading.grader import find_notebooks, format_table, grade_paths, write_csv, write_json

    try:
        notebooks = find_notebooks(args.paths)
    except FileNotFoundError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"grade: no .ipynb files under {', '.join(args.paths)}.", file=sys.stderr)
        return 2
    records = grade_paths(notebooks, timeout=args.timeout, progress=True, executed_dir=args.executed)
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
    return 0
