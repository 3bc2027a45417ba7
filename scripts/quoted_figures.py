"""Where do the lessons and the README quote a results file? List every quote, to update after a re-run.

    python scripts/quoted_figures.py benchmarks/results/mnist_quality.json
    git show HEAD~3:benchmarks/results/mnist_quality.json > /tmp/old.json
    python scripts/quoted_figures.py /tmp/old.json          # the quotes of the *old* run still in the prose

Every number in the file (its JSON path, e.g. ``cfg.per_w.1.0.accuracy``) is written the ways prose writes
it — 1 to 3 decimals, and as a percentage with 0 to 2 decimals — and searched for in the markdown cells of
``notebooks/`` and in ``README.md`` and ``docs/``. Numbers too short to be told apart from ordinary text
(fewer than three digits, such as ``0.9`` or ``5``) are skipped. A hit is a *candidate*: the same digits can
mean something else, so read the sentence. ``tests/test_benchmark_figures.py`` holds the quotes that must match.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]\d)")


def leaves(obj, path: str = ""):
    """(JSON path, value) for every float in ``obj``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{path}[{i}]")
    elif isinstance(obj, float):  # measurements; integers are settings (N, seeds, threads, steps)
        yield path, obj


def spellings(value: float) -> set[str]:
    """The ways prose writes ``value``: 1-3 decimals, or a percentage with 0-2 decimals (for fractions)."""
    out = {f"{value:.{d}f}" for d in (1, 2, 3)}
    if 0 < value < 1:  # (0 and 1 as 0 % and 100 % are too common in prose to tell apart)
        out |= {f"{100 * value:.{d}f}" for d in (0, 1, 2)}
    out -= {"100", "100.0", "100.00"}  # a rounded 100 % says nothing about which figure it was
    return {s for s in out if sum(c.isdigit() for c in s) >= 3 and s.strip("0.") != ""}


def prose_files() -> list[tuple[str, str]]:
    """(name, text) of every lesson's markdown and of the README and docs."""
    out = []
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                out.append((f"{nb_path.relative_to(ROOT)} cell {i}", cell.source))
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        out.append((str(md.relative_to(ROOT)), md.read_text()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="a JSON results file (benchmarks/results/*.json, or an older copy of one)")
    a = p.parse_args(argv)
    by_spelling: dict[str, list[str]] = {}
    for path, value in leaves(json.loads(Path(a.results).read_text())):
        for s in spellings(value):
            by_spelling.setdefault(s, []).append(path)
    hits = 0
    for name, text in prose_files():
        for line_no, line in enumerate(text.splitlines(), 1):
            found = [(m.group(), by_spelling[m.group()]) for m in NUMBER.finditer(line) if m.group() in by_spelling]
            for number, paths in found:
                hits += 1
                print(f"{name}:{line_no}: {number}  <- {', '.join(paths[:3])}{' …' if len(paths) > 3 else ''}")
    print(f"{hits} candidate quotes of {a.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
