"""The grader shuts down each notebook's kernel when the notebook is done (issue 27): grading a folder of twenty
notebooks kept twenty kernels alive, each holding its memory, until the grader exited."""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat

from diffcourse.grading.grader import execute_notebook


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_kernel_of_a_graded_notebook_is_shut_down(tmp_path: Path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nprint(os.getpid())")])
    execute_notebook(nb, tmp_path / "01_fundamentals.ipynb", timeout=120)
    pid = int("".join(o.get("text", "") for o in nb.cells[0].outputs).strip())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid), f"the kernel (pid {pid}) still runs after its notebook was graded"
