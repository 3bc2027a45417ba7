r"""Grade notebooks: run each, then run its checks in a fresh process the notebook never touched.

The grade is decided here, outside anything the learner's code can reach. For each notebook:

1. **Read it.** Its chapter (``metadata["diffcourse"]["chapter"]``, or the number its file name starts
   with) gives the exercises it must contain; its code cells, as they are on disk, are kept, and read for
   attempts to tamper with grading (`diffcourse.grading.tamper`).
2. **Execute it** with `nbclient` in a fresh kernel of the current Python environment (errors allowed; a
   cell that runs past the cell timeout is interrupted), for the executed notebook an instructor may want
   to read. In that kernel ``check(...)`` only says that the grader will check (`runner.GRADER_ENV`):
   nothing the notebook prints, records or patches is read back.
3. **Check it** in a fresh Python process (`diffcourse.grading.isolation`): it imports the grading package
   anew, re-creates the learner's functions from the cells' definitions (`diffcourse.grading.plan`), runs
   every registered check itself with inputs of its own, watches its own code for changes
   (`diffcourse.grading.integrity`), and returns signed results over a pipe.

An expected exercise without a check cell, or whose check the process never reached, is not passed. If
the notebook's kernel rewrote the grading package's files on disk, grading stops (`GradingCompromised`):
later notebooks would be checked by altered code.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import nbformat

from .core import CheckResult, checks_for_chapter
from .gradebook import ExerciseRecord, format_table, write_csv, write_json
from .integrity import grading_files_digest
from .isolation import FreshRun, check_in_fresh_process
from .runner import GRADER_ENV, format_result, format_summary
from .tamper import tampering_attempts

__all__ = ["ExerciseRecord", "GradingCompromised", "find_notebooks", "notebook_chapter", "execute_notebook",
           "grade_notebook", "grade_paths", "executed_name", "format_table", "write_csv", "write_json"]

NOT_RUN = "not checked: the notebook has no check cell for it (its `check(...)` was removed, or never written)."


class GradingCompromised(RuntimeError):
    """A notebook rewrote the grading package's files while it ran; ``records`` holds the grades so far."""

    def __init__(self, message: str, records: list[ExerciseRecord]) -> None:
        super().__init__(message)
        self.records = records


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


def execute_notebook(nb: nbformat.NotebookNode, path: Path, timeout: float) -> None:
    """Run ``nb`` (in place: it gets its outputs) in a fresh kernel, in the notebook's folder, with ``check`` leaving
    the checks to the grader. A kernel that dies or a run that cannot start leaves a note in the last cell's outputs;
    neither changes a grade (the checks run elsewhere)."""
    from nbclient import NotebookClient

    env = {**os.environ, GRADER_ENV: "1"}
    client = NotebookClient(nb, km=_kernel_manager(), timeout=max(1, round(timeout)), allow_errors=True,
                            interrupt_on_timeout=True, record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    try:  # cleanup_kc: shut the kernel down when the notebook is done (nbclient keeps a kernel it was handed alive)
        client.execute(env=env, cleanup_kc=True)
    except Exception as exc:  # noqa: BLE001 — a dead kernel, a cell past its timeout, a kernel that never started
        if nb.cells:
            note = f"(the grader's run of this notebook stopped here: {type(exc).__name__}: {str(exc).splitlines()[0]})"
            nb.cells[-1].setdefault("outputs", []).append(nbformat.v4.new_output("stream", name="stderr", text=note))


def _records(label: str, expected: list[str], run: FreshRun, tampering: str) -> list[ExerciseRecord]:
    """A record per exercise, expected ones first in the chapter's order, then any other the notebook checked."""
    records = []
    problem = f" ({run.problem})" if run.problem else ""
    for name in expected + [n for n in run.results if n not in expected]:
        r = run.results.get(name)
        if r is None:
            records.append(ExerciseRecord(label, name, False, NOT_RUN + problem, "not checked", tampering))
        else:
            passed = r.get("status") == "passed" and r.get("passed") is True
            records.append(ExerciseRecord(label, name, passed, str(r.get("message", "")),
                                          str(r.get("status", "failed")), tampering))
    if not records:
        records.append(ExerciseRecord(label, "(notebook)", False, "no exercises found: the notebook ran no check and "
                                      "its chapter is unknown" + problem, "not checked", tampering))
    return records


def _annotate(nb: nbformat.NotebookNode, run: FreshRun, chapter: int | None) -> None:
    """Write the grader's verdicts into the executed notebook: under each check cell the grader's result, and the
    chapter's score as the output of its summary cells."""
    found = {name: CheckResult(name, r.get("status") == "passed", str(r.get("message", "")), chapter,
                               status=str(r.get("status", "failed"))) for name, r in run.results.items()}
    for result in found.values():
        cell = nb.cells[run.results[result.exercise]["cell"]]
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                   text=f"grader: {format_result(result)}\n"))
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("summary(") and chapter is not None:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                   text=format_summary(chapter, found) + "\n")]


def grade_notebook(path: str | Path, *, timeout: float = 120, label: str | None = None,
                   save_executed: str | Path | None = None) -> list[ExerciseRecord]:
    """Grade one notebook (see the module docstring): a record per exercise, expected ones first.

    ``timeout`` is the limit per cell in seconds when the notebook is executed (the checks run afterwards, each
    with its own limit); ``save_executed`` a path to write the executed notebook to, with the grader's verdicts
    under the check cells. Never raises for a problem inside the notebook; raises `GradingCompromised` if the
    notebook rewrote the grading package's files.
    """
    path = Path(path)
    label = label or str(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 — report, then go on with the next notebook
        return [ExerciseRecord(label, "(notebook)", False, f"could not read the notebook: {exc}", "not checked")]
    chapter = notebook_chapter(nb, path)
    expected = checks_for_chapter(chapter) if chapter is not None else []
    cells = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    attempts = tampering_attempts(cells)
    before = grading_files_digest()
    execute_notebook(nb, path, timeout)
    if grading_files_digest() != before:
        note = "; ".join(attempts + ["rewrote the files of diffcourse.grading on disk"])
        records = [ExerciseRecord(label, name, False, "not checked: the notebook rewrote the grading code on disk.",
                                  "tampered", note) for name in expected]
        raise GradingCompromised(f"{label} rewrote the files of diffcourse.grading while it ran: reinstall diffcourse "
                                 "and grade untrusted work in a container or as a throwaway user.", records)
    run = check_in_fresh_process(cells, expected, cell_timeout=timeout)
    records = _records(label, expected, run, "; ".join(attempts + run.tampering))
    if save_executed is not None:
        _annotate(nb, run, chapter)
        nbformat.write(nb, save_executed)
    return records


def executed_name(nb_path: str | Path) -> str:
    """Where `grade_paths` saves an executed notebook inside ``executed_dir``: ``<folder>-<name>``, so
    submissions that share a file name (``alice/05.ipynb``, ``bob/05.ipynb``) do not overwrite each other."""
    p = Path(nb_path).resolve()
    return f"{p.parent.name}-{p.name}"


def grade_paths(paths: Sequence[str | Path], *, timeout: float = 120, progress: bool = False,
                executed_dir: str | Path | None = None) -> list[ExerciseRecord]:
    """Grade every notebook in ``paths`` (files or folders), in order; with ``executed_dir``, keep each
    executed notebook there (named by `executed_name`) to see what a learner's code printed and what the grader
    found. Raises `GradingCompromised` (with every record so far) if a notebook rewrote the grading code."""
    records: list[ExerciseRecord] = []
    if executed_dir is not None:
        Path(executed_dir).mkdir(parents=True, exist_ok=True)
    for nb_path in find_notebooks(paths):
        if progress:
            print(f"grading {nb_path} …", flush=True)
        save = Path(executed_dir) / executed_name(nb_path) if executed_dir is not None else None
        try:
            records += grade_notebook(nb_path, timeout=timeout, save_executed=save)
        except GradingCompromised as exc:
            exc.records = records + exc.records
            raise
    return records
