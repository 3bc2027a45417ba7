"""Generate exercise notebooks from solution notebooks.

``solutions/NN_*.ipynb`` is the single source. In a code cell, the solution sits
between two marker lines::

    def q_sample(x0, t, eps, alpha_bars):
        \"\"\"…\"\"\"
        ### BEGIN SOLUTION
        ### HINT: index alpha_bars with t and reshape it to (B, 1, …, 1).
        a = alpha_bars[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps
        ### END SOLUTION

and the exercise notebook gets, at the same indentation, a stub that names the
exercise (the enclosing ``def``) and carries the hint (the ``### HINT:`` lines)::

        # YOUR CODE HERE — then delete the `raise` line and run the check below.
        raise NotImplementedError("q_sample: not written yet. Hint: index alpha_bars with t and …")

In a markdown cell, a written answer between ``<!-- BEGIN SOLUTION -->`` and
``<!-- END SOLUTION -->`` becomes a prompt for the learner's own answer. Outputs,
execution counts and widget state are dropped.

A learner's work is never lost: ``exercises/.manifest.json`` records the sha256
of every file as it was generated, and `generate` refuses to overwrite a file
whose content no longer matches (the learner edited it) unless ``force=True``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import nbformat

__all__ = [
    "BEGIN",
    "END",
    "HINT",
    "MANIFEST",
    "SolutionMarkerError",
    "stub_code",
    "stub_markdown",
    "exercise_notebook",
    "render_exercise",
    "generate",
    "Outcome",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT:"
MD_BEGIN = "<!-- BEGIN SOLUTION -->"
MD_END = "<!-- END SOLUTION -->"
MANIFEST = ".manifest.json"
MD_PROMPT = "*✏️ Your answer here (double-click to edit).*"

_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")


class SolutionMarkerError(ValueError):
    """A solution notebook's markers do not pair up (a BEGIN without END, or nested regions)."""


def _enclosing_def(lines: list[str], index: int, indent: int) -> str | None:
    """Name of the innermost ``def`` above line ``index`` that encloses code indented by ``indent``."""
    for line in reversed(lines[:index]):
        m = _DEF.match(line)
        if m and len(m.group(1)) < indent:
            return m.group(2)
    return None


def stub_code(source: str, where: str = "this cell") -> str:
    """Replace every solution region of a code cell's ``source`` by a ``NotImplementedError`` stub."""
    lines = source.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(END):
            raise SolutionMarkerError(f"{where}: '{END}' on line {i + 1} has no '{BEGIN}' above it.")
        if not stripped.startswith(BEGIN):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        hints: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(END):
            inner = lines[j].strip()
            if inner.startswith(BEGIN):
                raise SolutionMarkerError(f"{where}: nested '{BEGIN}' on line {j + 1}; close the first region first.")
            if inner.startswith(HINT):
                hints.append(inner[len(HINT):].strip())
            j += 1
        if j == len(lines):
            raise SolutionMarkerError(f"{where}: '{BEGIN}' on line {i + 1} is never closed by '{END}'.")
        name = _enclosing_def(lines, i, indent) or "this exercise"
        message = f"{name}: not written yet."
        if hints:
            message += " Hint: " + " ".join(hints)
        pad = line[:indent]
        out.append(f"{pad}# YOUR CODE HERE — then delete the `raise` line and run the check below.")
        out.append(f"{pad}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})")
        i = j + 1
    return "\n".join(out)


def stub_markdown(source: str, where: str = "this cell") -> str:
    """Replace every written answer between the markdown markers by a prompt for the learner's answer."""
    pattern = re.compile(re.escape(MD_BEGIN) + r".*?" + re.escape(MD_END), re.DOTALL)
    result = pattern.sub(MD_PROMPT, source)
    if MD_BEGIN in result or MD_END in result:
        raise SolutionMarkerError(f"{where}: unpaired '{MD_BEGIN}' / '{MD_END}' markers.")
    return result


_KEEP_NB_METADATA = ("kernelspec", "language_info", "diffcourse")
_KEEP_CELL_METADATA = ("tags", "editable", "deletable")


def exercise_notebook(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The exercise version of a solution notebook: stubs for solutions, no outputs, no execution counts."""
    nb = copy.deepcopy(solution)
    nb.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k in _KEEP_NB_METADATA})
    n_regions = 0
    for number, cell in enumerate(nb.cells, start=1):
        where = f"{name}, cell {number}"
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in _KEEP_CELL_METADATA})
        if cell.cell_type == "code":
            n_regions += cell.source.count(BEGIN)
            cell.source = stub_code(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            n_regions += cell.source.count(MD_BEGIN)
            cell.source = stub_markdown(cell.source, where)
    if n_regions == 0:
        raise SolutionMarkerError(f"{name} has no '{BEGIN}' region: is it really a solution notebook?")
    nbformat.validate(nb)
    return nb


def render_exercise(solution_path: Path) -> str:
    """The exact text of the exercise notebook generated from ``solution_path``."""
    nb = nbformat.read(solution_path, as_version=4)
    text = nbformat.writes(exercise_notebook(nb, solution_path.name))
    return text if text.endswith("\n") else text + "\n"


def _sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


@dataclass
class Outcome:
    """What `generate` did with one file: ``status`` is one of written, updated, unchanged, kept, overwritten."""

    path: Path
    status: str
    detail: str = ""


def _read_manifest(out_dir: Path) -> dict[str, str]:
    path = out_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("files", {}))
    except (ValueError, AttributeError):
        return {}


def _write_manifest(out_dir: Path, files: dict[str, str]) -> None:
    data = {
        "about": "Written by `python -m diffcourse make-exercises`: the sha256 of each exercise notebook as it "
                 "was generated. A notebook whose content no longer matches has been edited (your work!) and is "
                 "never overwritten without --force.",
        "files": dict(sorted(files.items())),
    }
    (out_dir / MANIFEST).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def generate(solutions_dir: Path | str, out_dir: Path | str, *, force: bool = False,
             only: Iterable[str] | None = None) -> list[Outcome]:
    """Write ``out_dir/NAME.ipynb`` for every ``solutions_dir/NAME.ipynb`` (or just those named in ``only``).

    A file that exists and differs from what was generated last time (per the manifest) is
    *kept* — it holds a learner's work — unless ``force`` is true.
    """
    solutions_dir, out_dir = Path(solutions_dir), Path(out_dir)
    if not solutions_dir.is_dir():
        raise FileNotFoundError(f"No solutions folder at {solutions_dir}: run from the course's root folder, "
                                "or pass --solutions PATH.")
    sources = sorted(p for p in solutions_dir.glob("*.ipynb"))
    if only:
        wanted = {Path(n).name if n.endswith(".ipynb") else f"{n}.ipynb" for n in only}
        missing = wanted - {p.name for p in sources}
        if missing:
            raise FileNotFoundError(f"Not in {solutions_dir}: {', '.join(sorted(missing))}.")
        sources = [p for p in sources if p.name in wanted]
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out_dir)
    outcomes: list[Outcome] = []
    for src in sources:
        text = render_exercise(src)
        digest = _sha256(text)
        target = out_dir / src.name
        if not target.exists():
            status = "written"
        else:
            current = _sha256(target.read_bytes())
            if current == digest:
                status = "unchanged"
            elif current == manifest.get(src.name):
                status = "updated"  # untouched since the last generation: the solution changed
            elif force:
                status = "overwritten"
            else:
                outcomes.append(Outcome(target, "kept", "it differs from what was generated last time, so it "
                                                        "holds your edits"))
                continue
        if status != "unchanged":
            target.write_text(text, encoding="utf-8")
        manifest[src.name] = digest
        outcomes.append(Outcome(target, status))
    _write_manifest(out_dir, manifest)
    return outcomes
