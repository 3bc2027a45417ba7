"""The grade book: one record per notebook and exercise, as a table, CSV and JSON."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

from .core import STATUSES

__all__ = ["ExerciseRecord", "format_table", "write_csv", "write_json"]


@dataclass
class ExerciseRecord:
    """One row of the grade book. ``status`` is one of `diffcourse.grading.core.STATUSES`; ``tampering`` lists
    what the notebook tried against grading (``""`` if nothing), the same on every row of the notebook."""

    notebook: str
    exercise: str
    passed: bool
    message: str
    status: str = ""
    tampering: str = ""

    def __post_init__(self) -> None:
        self.status = self.status or ("passed" if self.passed else "failed")


def _first_line(text: str, width: int) -> str:
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def format_table(records: Sequence[ExerciseRecord], width: int = 70) -> str:
    """A plain-text report: per notebook, its score, a warning if it tried to tamper with grading, and one line per
    exercise (the mark, the name, the first line of the message unless it passed)."""
    lines: list[str] = []
    by_nb: dict[str, list[ExerciseRecord]] = {}
    for r in records:
        by_nb.setdefault(r.notebook, []).append(r)
    name_w = max([len(r.exercise) for r in records] + [8])
    for nb, recs in by_nb.items():
        lines.append(f"{nb}: {sum(r.passed for r in recs)}/{len(recs)} passed")
        if recs[0].tampering:
            lines.append(f"  ⚠️ tried to tamper with grading: {recs[0].tampering}")
        for r in recs:
            message = "" if r.passed else _first_line(r.message, width)
            lines.append(f"  {STATUSES.get(r.status, '❌')} {r.exercise:<{name_w}}  {message}".rstrip())
        lines.append("")
    total = sum(r.passed for r in records)
    lines.append(f"total: {total}/{len(records)} exercises passed in {len(by_nb)} notebook(s)")
    return "\n".join(lines)


FIELDS = [f.name for f in fields(ExerciseRecord)]


def write_csv(records: Sequence[ExerciseRecord], path: str | Path) -> None:
    """CSV with the columns notebook, exercise, passed, message, status, tampering (one row per exercise)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for r in records:
            writer.writerow(asdict(r))


def write_json(records: Sequence[ExerciseRecord], path: str | Path) -> None:
    """JSON: a list of ``{"notebook", "exercise", "passed", "message", "status", "tampering"}`` records."""
    Path(path).write_text(json.dumps([asdict(r) for r in records], indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
