"""Conventions that keep nbval's checked outputs meaningful on every machine.

nbval compares the outputs of cells marked ``# NBVAL_CHECK_OUTPUT``. A figure in such a cell
is compared too, and whether a kernel shows a figure at all depends on its matplotlib backend
(``MPLBACKEND=Agg`` shows none), so a checked cell must print text only.
"""
from __future__ import annotations

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
