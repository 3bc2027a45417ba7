"""Re-render the interval of every *resolved* verdict stored in the results files from the numbers stored beside it.

`Difference.verdict` used to print the interval of Δ = m(A) − m(B) beside the winner's positive margin, so a line
read "A beats B by 0.20 ± 0.16 ([-0.36, -0.04])". It now prints the interval of the margin. This rewrites only the
bracket of such lines, from the record's own ``estimate``, ``low`` and ``high`` (`Difference.margin_interval`), with
the digits the line already used; every other character stays. Run it once after changing the format:

    python scripts/refresh_verdicts.py benchmarks/results/*.json
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from diffcourse.measure import Difference

BRACKET = re.compile(r"\(\[(-?\d+\.(\d+)), (-?\d+\.\d+)\],")


def refresh(record: dict) -> bool:
    """Rewrite ``record["verdict"]`` in place if it is a resolved verdict; True when it changed."""
    line = record.get("verdict")
    if not isinstance(line, str) or not line.startswith("resolved:") or " beats " not in line:
        return False
    match = BRACKET.search(line)
    if match is None:
        raise ValueError(f"No interval found in the verdict {line!r}: fix the record by hand.")
    digits = len(match.group(2))
    low, high = Difference.from_dict(record).margin_interval
    new = line[:match.start()] + f"([{low:.{digits}f}, {high:.{digits}f}]," + line[match.end():]
    record["verdict"] = new
    return new != line


def walk(node: object) -> int:
    """Refresh every record under ``node``; the number changed."""
    if isinstance(node, dict):
        return int("estimate" in node and refresh(node)) + sum(walk(v) for v in node.values())
    if isinstance(node, list):
        return sum(walk(v) for v in node)
    return 0


def main(paths: list[str]) -> None:
    for path in map(Path, paths):
        text = path.read_text()
        data = json.loads(text)
        changed = walk(data)
        if changed:  # written back in the file's own layout: its indent, its escaping, its last newline
            lines = text.splitlines()
            indent = len(lines[1]) - len(lines[1].lstrip(" ")) if len(lines) > 1 else None
            out = json.dumps(data, indent=indent or None, ensure_ascii="\\u" in text)
            path.write_text(out + ("\n" if text.endswith("\n") else ""))
        print(f"{path}: {changed} verdict(s) re-rendered")


if __name__ == "__main__":
    main(sys.argv[1:])
