"""Conventions that keep nbval's checked outputs meaningful on every machine, and committed outputs clean.

nbval compares the outputs of cells marked ``# NBVAL_CHECK_OUTPUT``. A figure in such a cell
is compared too, and whether a kernel shows a figure at all depends on its matplotlib backend
(``MPLBACKEND=Agg`` shows none), so a checked cell must print text only.

Committed outputs are what a learner reads on GitHub before running anything, so they must not hold a
progress bar frozen below 100 % (a saved tqdm widget shows its first frame), reStructuredText from a
docstring that no notebook renders (``:math:`` roles, double backticks: use `diffcourse.reporting`), or
a path of the machine that executed them.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


def checked_cells(path: Path) -> list[tuple[int, nbformat.NotebookNode]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, c) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_checked_cells_print_text_only(path):
    for i, cell in checked_cells(path):
        kinds = {o.output_type for o in cell.outputs}
        assert kinds <= {"stream"}, (
            f"{path.name} cell {i} is marked NBVAL_CHECK_OUTPUT but stores {sorted(kinds)} outputs: "
            "move the figure or widget into the next cell and keep only the printed numbers here.")
        assert not any(o.get("name") == "stderr" for o in cell.outputs), (
            f"{path.name} cell {i} is checked but wrote to stderr (a warning?): silence or fix it.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_checked_cells_have_outputs(path):
    for i, cell in checked_cells(path):
        assert cell.outputs, f"{path.name} cell {i} is checked but has no stored output: execute the notebook."


# ----------------------------------------------------------------------------------------- clean outputs
_BAR = re.compile(r"(\d{1,3})%\|")
_RST = re.compile(r":math:`|(?<!`)``(?!`)[^`\n]+(?<!`)``(?!`)")
_MACHINE_PATHS = ("/work/", "/root/", "/home/", "/tmp/", "/Users/", "C:\\Users")


def output_texts(path: Path):
    """``(cell index, text)`` for every text a committed output holds: streams, every ``text/*`` representation
    of displayed data (plain, Markdown, HTML; a saved widget's plain text too) and error tracebacks."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if o.output_type == "stream":
                yield i, o.text
            elif o.output_type in ("display_data", "execute_result"):
                for mime, value in o.get("data", {}).items():
                    if mime.startswith("text/"):
                        yield i, value if isinstance(value, str) else "".join(value)
            elif o.output_type == "error":
                yield i, "\n".join(o.get("traceback", []))


def stuck_progress_bars(text: str) -> list[str]:
    """tqdm bars in ``text`` whose last state (after any carriage returns) is below 100 %."""
    stuck = []
    for line in text.split("\n"):  # not splitlines(): it splits at "\r" too, and a bar redraws itself after "\r"
        last = line.split("\r")[-1]
        m = _BAR.search(last)
        if m and int(m.group(1)) < 100:
            stuck.append(last.strip())
    return stuck


def test_the_output_checks_catch_what_they_should():
    assert stuck_progress_bars("train:   0%|          | 0/1000 [00:00<?, ?it/s]")
    assert not stuck_progress_bars("train:  50%|#####     | 5/10\rtrain: 100%|##########| 10/10 [00:01<00:00]")
    assert _RST.search("A small U-Net :math:`\\varepsilon` for ``in_ch`` images")
    assert _RST.search("for ``in_ch``×28×28 images")
    assert not _RST.search("```python\nx = 1\n```") and not _RST.search("$x$ and `code`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_output_holds_a_progress_bar_stuck_below_100_percent(path):
    bad = [(i, bar) for i, text in output_texts(path) for bar in stuck_progress_bars(text)]
    assert not bad, (f"{path.name}: saved progress bars below 100 % (cell, bar): {bad[:3]}. Pass progress=False in "
                     "lessons (or leave=False where a bar must show while running), then re-execute.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_output_holds_raw_restructuredtext(path):
    bad = [(i, m.group(0)) for i, text in output_texts(path) for m in [_RST.search(text)] if m]
    assert not bad, (f"{path.name}: outputs show reStructuredText (cell, match): {bad[:3]}. Show package code and "
                     "docstrings with diffcourse.reporting.show_source / show_docstring, which render them as Markdown.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_output_holds_a_machine_specific_path(path):
    bad = [(i, p, text[max(0, text.index(p) - 30):text.index(p) + 40]) for i, text in output_texts(path)
           for p in _MACHINE_PATHS if p in text]
    assert not bad, (f"{path.name}: outputs hold paths of the machine that ran them (cell, path, context): {bad[:3]}. "
                     "Print paths relative to the repository or the working folder.")
