"""``python -m diffcourse site``: build the course's website from the committed, executed notebooks.

Offline and without running anything: the pages show the notebooks as committed, and MathJax is
copied from an installed package (``pip install -r requirements-dev.txt``). Open ``OUT/index.html``
in a browser. The builder is `diffcourse.site`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "site", help="build the course website (static HTML, offline) from the executed notebooks",
        description="Build the course website: a landing page, a page per lesson and per exercise notebook, and "
                    "the README's reference parts, from the committed notebooks (nothing is executed or "
                    "downloaded). Open OUT/index.html in a browser.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="_site",
                   help="folder to write the site to (emptied first if it holds an earlier build)")
    p.add_argument("--root", default=".", help="the course repository (its notebooks/, exercises/, README.md)")
    p.add_argument("--repo", default=None, metavar="OWNER/NAME",
                   help="the course's public GitHub repository: adds the clone command, links to the sources "
                        "and the Binder / Colab badges (leave out while the repository is private)")
    p.add_argument("--branch", default="main", help="the branch those links point at")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..site import CourseError, SiteOptions, build_site

    try:
        report = build_site(Path(args.root), Path(args.out), SiteOptions(repo=args.repo, branch=args.branch))
    except CourseError as exc:
        print(f"site: {exc}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"site: warning: {warning}", file=sys.stderr)
    print(f"wrote {len(report.pages)} pages and {report.files} files to {report.out} in {report.seconds:.1f} s "
          f"({report.cpu_seconds:.1f} s of CPU); open {report.out / 'index.html'}")
    return 0
