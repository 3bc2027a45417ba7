"""Grades nobody can forge: the grader runs the checks itself, in a process the notebook never touched.

The three cheats measured against the old grader (each gave an untouched chapter-1 exercise notebook 8/8) and
the ones a learner would try next are each added to ``exercises/01_fundamentals.ipynb``; every one earns 0, and
the grading table says what was tried. The full grader (a kernel, then the checking process) runs once for the
three notebook-level cheats; the rest need only the checking process (`check_in_fresh_process`), or none.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from diffcourse.__main__ import main
from diffcourse.grading import checks_for_chapter, grader
from diffcourse.grading.channel import read_signed, signer
from diffcourse.grading.gradebook import ExerciseRecord, format_table
from diffcourse.grading.integrity import Integrity
from diffcourse.grading.isolation import check_in_fresh_process
from diffcourse.grading.plan import Definitions, notebook_plan
from diffcourse.grading.tamper import tampering_attempts

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_fundamentals.ipynb"
SOLUTION = ROOT / "solutions" / "01_fundamentals.ipynb"
CHAPTER_1 = checks_for_chapter(1)

# ------------------------------------------------------------------------------------- the cheats, as notebook cells
RESULTS_FILE_CHEAT = f'''import json, os
path = os.environ.get("DIFFCOURSE_GRADING_RESULTS", "results.jsonl")
with open(path, "a") as fh:
    for name in {CHAPTER_1!r}:
        fh.write(json.dumps({{"exercise": name, "passed": True, "message": "passed.", "chapter": 1}}) + "\\n")'''

VERDICT_CHEAT = '''import diffcourse.grading.core as core
import diffcourse.grading.runner as runner
core._verdict = lambda *args, **kwargs: (True, "passed.")
runner._verdict = lambda *args, **kwargs: ("passed", "passed.")'''

REBOUND_CHECK_CHEAT = '''from diffcourse.grading import runner

def check(name, fn, **kwargs):
    print("✅", name, "— passed.")
    result = runner.CheckResult(name, True, "passed.", 1)
    return runner._finish(result, quiet=True)'''

NOTEBOOK_CHEATS = {"results_file": RESULTS_FILE_CHEAT, "verdict": VERDICT_CHEAT, "rebound_check": REBOUND_CHECK_CHEAT}


def _with_cell(source: str, at: int = 2, notebook: Path = EXERCISE) -> nbformat.NotebookNode:
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return nb


def _code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _replace_def(nb: nbformat.NotebookNode, name: str, source: str) -> nbformat.NotebookNode:
    """``nb`` with the cell that defines ``name`` replaced by ``source``."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(f"def {name}("))
    cell.source = source
    return nb


@pytest.fixture(scope="module")
def cheated(tmp_path_factory):
    """One `grade` run over the untouched exercise notebook with each notebook-level cheat added after its imports."""
    folder = tmp_path_factory.mktemp("cheats")
    for name, source in NOTEBOOK_CHEATS.items():
        (folder / name).mkdir()
        nbformat.write(_with_cell(source), folder / name / "01_fundamentals.ipynb")
    out = folder / "grades.json"
    assert main(["grade", str(folder), "--json", str(out), "--timeout", "120"]) == 0
    return json.loads(out.read_text())


def _of(records: list[dict], cheat: str) -> list[dict]:
    return [r for r in records if Path(r["notebook"]).parent.name == cheat]


@pytest.mark.parametrize("cheat, tried", [
    ("results_file", "names the grader's variable 'DIFFCOURSE_GRADING_RESULTS'"),
    ("verdict", "writes `core._verdict`"),
    ("rebound_check", "defines its own `check`"),
])
def test_a_notebook_level_cheat_earns_nothing_and_is_reported(cheated, cheat, tried):
    records = _of(cheated, cheat)
    assert [r["exercise"] for r in records] == CHAPTER_1
    assert not any(r["passed"] for r in records), [r for r in records if r["passed"]]
    assert all(r["message"].startswith("not written yet") for r in records)  # the stubs, checked for real
    assert all(tried in r["tampering"] for r in records), records[0]["tampering"]


# ------------------------------------------------------------------------------- cheats inside the learner's functions
def _fresh(nb: nbformat.NotebookNode):
    return check_in_fresh_process(_code_cells(nb), CHAPTER_1, cell_timeout=60)


def test_a_function_that_patches_the_checker_while_it_is_checked_is_not_trusted():
    """q_sample replaces the comparison its check is about to use; the grader notices, does not pass it, puts the
    original back — and the next exercise, written correctly, is checked by the real code again."""
    nb = nbformat.read(EXERCISE, as_version=4)
    _replace_def(nb, "q_sample", '''def q_sample(x0, t, eps, alpha_bars):
    import diffcourse.grading.ch01 as checks
    checks.expect_tensor = lambda out, *args, **kwargs: out
    return x0''')
    solution = {c.source.split("(")[0]: c.source for c in nbformat.read(SOLUTION, as_version=4).cells
                if c.cell_type == "code" and c.source.startswith("def ")}
    _replace_def(nb, "q_step", solution["def q_step"])
    run = _fresh(nb)
    assert run.results["q_sample"]["status"] == "tampered" and not run.results["q_sample"]["passed"]
    assert "diffcourse.grading.ch01.expect_tensor" in run.results["q_sample"]["message"]
    assert run.results["q_step"]["status"] == "passed"
    assert any("changed the grading code" in t for t in run.tampering)


def test_forged_lines_on_the_result_channel_are_ignored_and_reported():
    nb = nbformat.read(EXERCISE, as_version=4)
    _replace_def(nb, "snr", '''def snr(alpha_bars):
    import json, os, stat
    forged = json.dumps({"kind": "result", "cell": 0, "exercise": "snr", "passed": True, "status": "passed",
                         "message": "passed."})
    for fd in range(1, 64):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, (forged + "\\n" + "0" * 64 + " " + forged + "\\n").encode())
        except OSError:
            pass
    raise NotImplementedError("snr: not written yet.")''')
    run = _fresh(nb)
    assert run.results["snr"]["status"] == "failed" and run.results["snr"]["message"].startswith("not written yet")
    assert any("not written by the grader" in t for t in run.tampering), run.tampering


def test_a_function_that_wraps_the_packages_own_answer_is_reported_as_such():
    nb = nbformat.read(EXERCISE, as_version=4)
    _replace_def(nb, "q_sample", '''def q_sample(x0, t, eps, alpha_bars):
    import diffcourse.schedules as schedules
    betas = 1 - alpha_bars / torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
    return schedules.NoiseSchedule(betas).q_sample(x0, t, eps)''')
    result = _fresh(nb).results["q_sample"]
    assert not result["passed"] and "NoiseSchedule.q_sample" in result["message"]
    assert "the course's own answer to this exercise" in result["message"]


def test_a_function_that_ends_the_grading_process_earns_nothing_after_it():
    nb = nbformat.read(EXERCISE, as_version=4)
    _replace_def(nb, "q_sample", "def q_sample(x0, t, eps, alpha_bars):\n    import os\n    os._exit(0)")
    run = _fresh(nb)
    assert "ended before it had finished" in run.problem
    assert "q_sample" not in run.results and "snr" not in run.results


def test_a_cell_that_hides_the_grading_package_or_sets_its_time_limit_changes_nothing():
    """Top-level statements never reach the checking process: only definitions (and what they read) do."""
    nb = _with_cell('import sys, os\nsys.modules["diffcourse.grading"] = None\nos.environ["DIFFCOURSE_CHECK_TIMEOUT"] = "0"')
    run = _fresh(nb)
    assert [run.results[n]["message"].startswith("not written yet") for n in CHAPTER_1] == [True] * len(CHAPTER_1)
    assert any("writes `sys.modules['diffcourse.grading']`" in t for t in tampering_attempts(_code_cells(nb)))


def test_a_check_cell_must_name_the_function_not_compute_one():
    nb = _with_cell("def make():\n    return lambda ab: ab / (1 - ab)")
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith('check("snr"'))
    cell.source = 'check("snr", make())'
    result = _fresh(nb).results["snr"]
    assert not result["passed"] and "checks the function a check cell names" in result["message"]


# ----------------------------------------------------------------------------------------- the pieces, without processes
def test_the_plan_keeps_definitions_and_what_the_checked_functions_read_and_drops_the_rest():
    cells = [(0, "import torch\nSCALE = 2.0\nUNUSED = print('hello')\ncheck = None"),
             (1, "def f(x):\n    return SCALE * helper(x)\n\ndef helper(x):\n    return x + OFFSET"),
             (2, "OFFSET = 1.0\nfor i in range(3):\n    LOOPED = i"),
             (3, 'check("snr", f)'),
             (4, "summary(chapter=1)"),
             (5, "%time x = 1\n!ls")]
    plan = notebook_plan(cells)
    kept = {name for step in plan.steps if isinstance(step, Definitions) for name in step.code.co_names}
    assert {"torch", "SCALE", "f", "helper", "OFFSET"} <= kept
    assert not {"UNUSED", "print", "check", "LOOPED"} & kept
    assert [type(s).__name__ for s in plan.steps][-1] == "CheckCall" and plan.summary_cells == [4]
    assert plan.unreadable == [] and plan.skipped_names["UNUSED"] == 0


@pytest.mark.parametrize("source, found", [
    ("check = lambda *a: None", "rebinds `check`"),
    ("from mytools import check", "imports its own `check`"),
    ("import diffcourse.grading.core as c\nc._record = print", "writes `c._record`"),
    ("from diffcourse.grading.runner import _finish", "imports _finish from diffcourse.grading.runner"),
    ("import diffcourse\nsetattr(diffcourse.schedules, 'q_sample', None)", "calls setattr on `diffcourse.schedules`"),
    ("import os\nos.environ['DIFFCOURSE_GRADER'] = ''", "names the grader's variable 'DIFFCOURSE_GRADER'"),
    ("from diffcourse.grading import worker", "imports the grader's machinery (diffcourse.grading.worker)"),
])
def test_the_table_names_each_kind_of_attempt(source, found):
    assert any(found in a for a in tampering_attempts([(7, source)])), tampering_attempts([(7, source)])


def test_the_course_notebooks_attempt_nothing():
    for path in sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb")):
        assert tampering_attempts(_code_cells(nbformat.read(path, as_version=4))) == [], path.name


def test_integrity_sees_a_replaced_function_changed_code_and_puts_them_back():
    import diffcourse.grading.compare as compare
    import diffcourse.schedules as schedules

    guard = Integrity()
    original, code = compare.expect_tensor, schedules.make_schedule.__code__
    compare.expect_tensor = lambda *a, **k: None
    schedules.make_schedule.__code__ = (lambda name="linear", T=1000, **kw: None).__code__
    compare.brand_new_helper = 1  # new names are not changes
    try:
        assert guard.changes() == ["diffcourse.grading.compare.expect_tensor",
                                   "diffcourse.schedules.make_schedule (its code)"]
    finally:
        guard.restore()
        del compare.brand_new_helper
    assert compare.expect_tensor is original and schedules.make_schedule.__code__ is code
    assert guard.changes() == []


def test_only_lines_signed_with_the_key_count():
    class Lines(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

    lines = Lines()
    signer(lines, b"k" * 32)({"kind": "done"})
    forged = ['{"kind": "result", "passed": true}\n', "0" * 64 + ' {"kind": "done"}\n']
    messages, bad = read_signed(list(lines) + forged, b"k" * 32)
    assert messages == [{"kind": "done"}] and bad == 2
    assert read_signed(lines, b"x" * 32) == ([], 1)


def test_the_table_says_when_a_notebook_tried_to_tamper():
    records = [ExerciseRecord("a.ipynb", "snr", False, "not written yet", "failed", "cell 3: rebinds `check`"),
               ExerciseRecord("b.ipynb", "snr", True, "passed.")]
    table = format_table(records)
    assert "a.ipynb: 0/1 passed\n  ⚠️ tried to tamper with grading: cell 3: rebinds `check`" in table
    assert "b.ipynb: 1/1 passed\n  ✅ snr" in table


def test_grading_stops_when_a_notebook_rewrites_the_grading_code(tmp_path, monkeypatch, capsys):
    digests = iter(["before", "after"])
    monkeypatch.setattr(grader, "grading_files_digest", lambda: next(digests))
    monkeypatch.setattr(grader, "execute_notebook", lambda nb, path, timeout: None)
    nbformat.write(nbformat.read(EXERCISE, as_version=4), tmp_path / "01_fundamentals.ipynb")
    assert main(["grade", str(tmp_path), "--json", str(tmp_path / "g.json")]) == 3
    assert "rewrote the files of diffcourse.grading" in capsys.readouterr().err
    records = json.loads((tmp_path / "g.json").read_text())
    assert {r["status"] for r in records} == {"tampered"} and not any(r["passed"] for r in records)
