"""Grade notebooks: run each in a fresh kernel, collect the checks' results, report.

Each notebook runs top to bottom with `nbclient` in a new kernel of the *current*
Python environment (errors allowed, so one broken cell does not stop the rest; a
cell that runs past the cell timeout is interrupted). The kernel gets the
environment variable `~diffcourse.grading.core.RESULTS_ENV` naming a temporary
file, to which every ``check(...)`` appends its result. The latest result of each
exercise counts.

Which exercises a notebook *should* contain comes from the check registry: the
notebook's chapter is ``metadata["diffcourse"]["chapter"]``, or else the number
its file name starts with (``01_fundamentals.ipynb`` → chapter 1). An expected
exercise whose check never ran is reported as not passed.
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

from .core import RESULTS_ENV, TIMEOUT_ENV, checks_for_chapter, get_check

__all__ = ["ExerciseRecord", "find_notebooks", "notebook_chapter", "cell_timeout", "grade_notebook", "grade_paths",
           "format_table", "write_csv", "write_json"]

NOT_RUN = "not checked: its check cell never ran (the notebook stopped before it, or the cell was removed)."


@dataclass
class ExerciseRecord:
    """One row of the grade book."""

    notebook: str
    exercise: str
    passed: bool
    message: str


def find_notebooks(paths: Iterable[str | Path]) -> list[Path]:
    """The notebooks named in ``paths``: files as given, folders searched recursively (checkpoints skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder.")
    return found


def notebook_chapter(nb: nbformat.NotebookNode, path: Path) -> int | None:
    """The chapter a notebook belongs to: from its metadata, else from its file name's leading number."""
    meta = nb.metadata.get("diffcourse", {})
    if isinstance(meta, dict) and meta.get("chapter") is not None:
        return int(meta["chapter"])
    m = re.match(r"^(\d+)_", path.name)
    return int(m.group(1)) if m else None


def _kernel_manager():
    """A kernel manager whose kernel is this very Python environment (as nbval's --nbval-current-env)."""
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnvKernelSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:  # noqa: ARG002 — always this env
            return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())

    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=CurrentEnvKernelSpecs())


def _read_results(path: Path) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                latest[str(rec["exercise"])] = rec
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line: ignore it rather than fail the whole notebook
    return latest


_CHECK_CALL = re.compile(r"""^\s*check\(\s*["']([^"']+)["']""", re.M)


def cell_timeout(source: str, timeout: float) -> int:
    """The time limit of a cell: ``timeout``, or — for a cell that runs a check with a longer time limit of its
    own (chapter 2's MNIST training) — that limit plus a minute, so that the check, not the grader, stops it."""
    limits = [float(os.environ.get(TIMEOUT_ENV) or spec.timeout) + 60
              for spec in map(get_check, _CHECK_CALL.findall(source)) if spec is not None]
    return max(1, round(max([timeout, *limits])))


def grade_notebook(path: str | Path, *, timeout: float = 120, label: str | None = None,
                   save_executed: str | Path | None = None) -> list[ExerciseRecord]:
    """Run one notebook and return a record per exercise (expected ones first, in the chapter's order).

    ``timeout`` is the limit per cell in seconds (a check cell gets its check's own limit if longer:
    `cell_timeout`); ``save_executed`` a path to write the executed
    notebook to (with its outputs), to see what happened. Never raises for a problem inside the
    notebook; an unreadable notebook or a kernel that dies is reported in the records.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    label = label or str(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 — report, then go on with the next notebook
        return [ExerciseRecord(label, "(notebook)", False, f"could not read the notebook: {exc}")]
    chapter = notebook_chapter(nb, path)
    expected = checks_for_chapter(chapter) if chapter is not None else []

    problem = ""
    with tempfile.TemporaryDirectory(prefix="diffcourse-grade-") as tmp:
        results_file = Path(tmp) / "results.jsonl"
        env = dict(os.environ)
        env[RESULTS_ENV] = str(results_file)
        client = NotebookClient(nb, km=_kernel_manager(), timeout=max(1, round(timeout)), allow_errors=True,
                                timeout_func=lambda cell: cell_timeout(cell.source, timeout),
                                interrupt_on_timeout=True, record_timing=False,
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        try:
            client.execute(env=env)
        except (CellTimeoutError, DeadKernelError) as exc:
            problem = f" (the notebook stopped early: {type(exc).__name__}: {str(exc).splitlines()[0]})"
        except Exception as exc:  # noqa: BLE001
            problem = f" (the notebook could not be run: {type(exc).__name__}: {str(exc).splitlines()[0]})"
        recorded = _read_results(results_file)
    if save_executed is not None:
        nbformat.write(nb, save_executed)

    records = []
    for name in expected + [n for n in recorded if n not in expected]:
        rec = recorded.get(name)
        if rec is None:
            records.append(ExerciseRecord(label, name, False, NOT_RUN + problem))
        else:
            records.append(ExerciseRecord(label, name, bool(rec.get("passed")), str(rec.get("message", ""))))
    if not records:
        records.append(ExerciseRecord(label, "(notebook)", False,
                                      "no exercises found: the notebook ran no check and its chapter is unknown"
                                      + problem))
    return records


def executed_name(nb_path: str | Path) -> str:
    """Where `grade_paths` saves an executed notebook inside ``executed_dir``: ``<folder>-<name>``, so
    submissions that share a file name (``alice/05.ipynb``, ``bob/05.ipynb``) do not overwrite each other."""
    p = Path(nb_path).resolve()
    return f"{p.parent.name}-{p.name}"


def grade_paths(paths: Sequence[str | Path], *, timeout: float = 120, progress: bool = False,
                executed_dir: str | Path | None = None) -> list[ExerciseRecord]:
    """Grade every notebook in ``paths`` (files or folders), in order; with ``executed_dir``, keep each
    executed notebook there (named by `executed_name`) to see what a learner's code printed."""
    records: list[ExerciseRecord] = []
    if executed_dir is not None:
        Path(executed_dir).mkdir(parents=True, exist_ok=True)
    for nb_path in find_notebooks(paths):
        if progress:
            print(f"grading {nb_path} …", flush=True)
        save = Path(executed_dir) / executed_name(nb_path) if executed_dir is not None else None
        records += grade_notebook(nb_path, timeout=timeout, save_executed=save)
    return records


def format_table(records: Sequence[ExerciseRecord], width: int = 70) -> str:
    """A plain-text report: per notebook, one line per exercise and the score."""
    lines: list[str] = []
    by_nb: dict[str, list[ExerciseRecord]] = {}
    for r in records:
        by_nb.setdefault(r.notebook, []).append(r)
    name_w = max([len(r.exercise) for r in records] + [8])
    for nb, recs in by_nb.items():
        score = sum(r.passed for r in recs)
        lines.append(f"{nb}: {score}/{len(recs)} passed")
        for r in recs:
            first = r.message.splitlines()[0] if r.message else ""
            if len(first) > width:
                first = first[: width - 1] + "…"
            lines.append(f"  {'✅' if r.passed else '❌'} {r.exercise:<{name_w}}  {'' if r.passed else first}".rstrip())
        lines.append("")
    total = sum(r.passed for r in records)
    lines.append(f"total: {total}/{len(records)} exercises passed in {len(by_nb)} notebook(s)")
    return "\n".join(lines)


def write_csv(records: Sequence[ExerciseRecord], path: str | Path) -> None:
    """CSV with the columns notebook, exercise, passed, message (one row per exercise)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["notebook", "exercise", "passed", "message"])
        writer.writeheader()
        for r in records:
            writer.writerow(asdict(r))


def write_json(records: Sequence[ExerciseRecord], path: str | Path) -> None:
    """JSON: a list of ``{"notebook", "exercise", "passed", "message"}`` records."""
    Path(path).write_text(json.dumps([asdict(r) for r in records], indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
