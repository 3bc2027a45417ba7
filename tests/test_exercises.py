"""Exercise notebooks and the grader, end to end.

* ``exercises/`` is exactly what ``make-exercises`` generates from ``solutions/``;
* the generator stubs every solution region, keeps a learner's edits unless ``--force``;
* ``grade`` gives the solutions full marks and the untouched exercises zero — and the
  exercises still run to the end — and reports partial work (a hang included) fairly.

The grading tests start real kernels and checking processes (a few seconds each), so they share one run.
The ways a notebook might try to give itself marks are tests/test_grading_isolation.py.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import nbformat
import pytest

from diffcourse.__main__ import main
from diffcourse.grading import TIMEOUT_ENV, checks_for_chapter
from diffcourse.grading.exercises import (
    BEGIN,
    END,
    MANIFEST,
    MD_BEGIN,
    MD_END,
    MD_PROMPT,
    SolutionMarkerError,
    exercise_notebook,
    generate,
    stub_code,
    stub_markdown,
)
from diffcourse.grading.grader import NOT_RUN, executed_name, grade_notebook, notebook_chapter

from grading_helpers import is_endless_loop_verdict

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
SOLUTION_NOTEBOOKS = sorted(SOLUTIONS.glob("*.ipynb"))


# ------------------------------------------------------------------------------------ the committed files
def test_there_are_solution_notebooks():
    assert SOLUTION_NOTEBOOKS, "solutions/ holds no notebooks"


def test_exercises_folder_is_a_fresh_generation_of_solutions(tmp_path):
    generate(SOLUTIONS, tmp_path)
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in EXERCISES.iterdir() if p.name != ".ipynb_checkpoints")
    assert committed == fresh, "exercises/ and a fresh generation hold different files"
    for name in fresh:
        assert (EXERCISES / name).read_bytes() == (tmp_path / name).read_bytes(), (
            f"exercises/{name} is stale or was edited by hand: run `python -m diffcourse make-exercises` "
            "(with --force if it refuses) and commit the result.")


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_solution_notebook_is_wired_to_its_chapter(path):
    nb = nbformat.read(path, as_version=4)
    chapter = notebook_chapter(nb, path)
    expected = checks_for_chapter(chapter)
    assert len(expected) >= 4, f"chapter {chapter} needs at least 4 exercises"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    called = re.findall(r'^check\("([^"]+)"', code, flags=re.M)
    assert called == expected, "the notebook's check cells and the chapter's registered checks differ"
    assert code.count(BEGIN) >= len(expected)
    assert nb.cells[-1].cell_type == "code" and nb.cells[-1].source.startswith("summary(")
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "commit solutions executed"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not any(o.output_type == "error" for o in outputs)
    assert not any("❌" in o.get("text", "") for o in outputs), "a solution fails its own check"


@pytest.mark.parametrize("path", sorted(EXERCISES.glob("*.ipynb")), ids=lambda p: p.name)
def test_exercise_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        assert BEGIN not in cell.source and END not in cell.source and MD_BEGIN not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert "widgets" not in nb.metadata
    stubs = sum("raise NotImplementedError" in c.source for c in nb.cells if c.cell_type == "code")
    assert stubs == len(checks_for_chapter(notebook_chapter(nb, path)))


# ------------------------------------------------------------------------------------ the generator
SOLUTION_CELL = '''import math

def area(r: float) -> float:
    """Area of a circle."""
    ### BEGIN SOLUTION
    ### HINT: pi r squared.
    return math.pi * r ** 2
    ### END SOLUTION

check("area", area)'''


def test_stub_replaces_the_region_and_names_the_exercise():
    out = stub_code(SOLUTION_CELL)
    assert "math.pi * r ** 2" not in out and "HINT" not in out
    assert '    raise NotImplementedError("area: not written yet. Hint: pi r squared.")' in out
    assert '    """Area of a circle."""' in out and out.endswith('check("area", area)')
    compile(out, "<stub>", "exec")  # the stub is valid Python


@pytest.mark.parametrize("source, words", [
    (f"def f():\n    {BEGIN}\n    return 1\n", "never closed"),
    (f"def f():\n    return 1\n    {END}\n", "no '### BEGIN SOLUTION' above"),
    (f"def f():\n    {BEGIN}\n    {BEGIN}\n    {END}\n", "nested"),
])
def test_broken_markers_are_reported(source, words):
    with pytest.raises(SolutionMarkerError, match=words):
        stub_code(source, "test.ipynb, cell 1")


def test_written_answers_in_markdown_become_prompts_and_broken_markers_are_reported():
    source = (f"**Prove it.**\n\n{MD_BEGIN}\n*Answer.* By induction: $m_t=\\sqrt{{\\bar\\alpha_t}}$.\n{MD_END}\n\n"
              f"And why?\n{MD_BEGIN}Because.{MD_END}")
    out = stub_markdown(source)
    assert out.count(MD_PROMPT) == 2 and "induction" not in out and "Because" not in out
    assert out.startswith("**Prove it.**") and "And why?" in out
    with pytest.raises(SolutionMarkerError, match="unpaired"):
        stub_markdown(f"{MD_BEGIN} an answer never closed", "test.ipynb, cell 2")


def _tiny_solution(path: Path, answer: str = "math.pi * r ** 2") -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"Why?\n\n{MD_BEGIN}\nBecause.\n<!-- END SOLUTION -->"),
        nbformat.v4.new_code_cell(SOLUTION_CELL.replace("math.pi * r ** 2", answer),
                                  execution_count=3, outputs=[nbformat.v4.new_output("stream", text="✅ area\n")]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    nbformat.write(nb, path)


def test_generated_notebook_drops_outputs_counts_and_written_answers(tmp_path):
    _tiny_solution(tmp_path / "01_x.ipynb")
    ex = exercise_notebook(nbformat.read(tmp_path / "01_x.ipynb", as_version=4))
    assert ex.cells[1].outputs == [] and ex.cells[1].execution_count is None
    assert "Because." not in ex.cells[0].source and "Your answer here" in ex.cells[0].source
    assert "widgets" not in ex.metadata


def test_make_exercises_never_overwrites_a_learners_edits_without_force(tmp_path, capsys):
    sol, out = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    _tiny_solution(sol / "01_x.ipynb")
    args = ["make-exercises", "--solutions", str(sol), "--out", str(out)]
    assert main(args) == 0
    target = out / "01_x.ipynb"
    generated = target.read_text()
    assert json.loads((out / MANIFEST).read_text())["files"]["01_x.ipynb"]

    # the solution changes, the exercise is untouched: it is simply updated
    _tiny_solution(sol / "01_x.ipynb", answer="3.14159 * r * r")
    assert main(args) == 0 and "updated" in capsys.readouterr().out
    generated = target.read_text()

    # the learner works in the notebook: make-exercises keeps it and says why
    learner = generated.replace("raise NotImplementedError", "return 3.14 * r * r  # mine\\n    # raise")
    target.write_text(learner)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "kept" in err and "--force" in err and "your work is not lost" in err
    assert target.read_text() == learner

    # even after the solution changes again
    _tiny_solution(sol / "01_x.ipynb", answer="math.pi * r * r")
    assert main(args) == 1 and target.read_text() == learner
    capsys.readouterr()

    # --force overwrites, and says so
    assert main(args + ["--force"]) == 0
    assert "overwrote" in capsys.readouterr().out and target.read_text() != learner
    assert main(args) == 0 and "unchanged" in capsys.readouterr().out


def test_make_exercises_explains_a_missing_solutions_folder(tmp_path, capsys):
    assert main(["make-exercises", "--solutions", str(tmp_path / "nope"), "--out", str(tmp_path / "ex")]) == 2
    assert "No solutions folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the grader
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One `grade` run over solutions/ and exercises/, written as JSON and CSV."""
    out = tmp_path_factory.mktemp("grade")
    argv = ["grade", str(SOLUTIONS), str(EXERCISES), "--json", str(out / "g.json"), "--csv", str(out / "g.csv"),
            "--timeout", "600", "--executed", str(out / "executed")]  # per cell, as nbval's: a busy machine trains slowly
    assert main(argv) == 0
    records = json.loads((out / "g.json").read_text())
    with open(out / "g.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return records, rows, out / "executed"


def _by_notebook(records, folder: Path):
    return [r for r in records if Path(r["notebook"]).parent.resolve() == folder.resolve()]


def test_grading_solutions_gives_full_marks(graded):
    """Every solution passes, with nothing tried against grading. On a machine too busy to finish chapter 2's
    training check in its 15 minutes, that check says *too slow here* (never that the code is wrong): then the
    test says so and is skipped, since the machine could not tell."""
    records, _, _ = graded
    sol = _by_notebook(records, SOLUTIONS)
    expected = sum(len(checks_for_chapter(notebook_chapter(nbformat.read(p, 4), p))) for p in SOLUTION_NOTEBOOKS)
    assert len(sol) == expected
    assert not any(r["tampering"] for r in sol)
    assert all(r["passed"] or r["status"] == "too slow" for r in sol), [r for r in sol if not r["passed"]]
    slow = [f"{Path(r['notebook']).name}: {r['exercise']}: {r['message']}" for r in sol if r["status"] == "too slow"]
    if slow:
        pytest.skip("too busy a machine to finish: " + "; ".join(slow))


def test_grading_exercises_gives_zero_and_every_check_still_ran(graded):
    records, _, _ = graded
    ex = _by_notebook(records, EXERCISES)
    assert ex and not any(r["passed"] for r in ex)
    assert all(r["message"].startswith("not written yet") for r in ex), "some check never ran or failed oddly"


@pytest.mark.parametrize("path", SOLUTION_NOTEBOOKS, ids=lambda p: p.name)
def test_solution_notebook_runs_top_to_bottom_without_an_error(graded, path):
    """The grading run executes every solution notebook in a fresh kernel, which is the one run of
    ``solutions/`` in the suite (nbval does not run them again): every code cell ran and none shows an error."""
    _, _, executed = graded
    cells = [c for c in nbformat.read(executed / executed_name(path), as_version=4).cells if c.cell_type == "code"]
    assert cells and all(c.execution_count for c in cells if c.source.strip()), "a cell of the solution never ran"
    for cell in cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"solutions/{path.name}: {errors[0].ename}: {errors[0].evalue} in\n{cell.source}"


@pytest.mark.parametrize("path", sorted(EXERCISES.glob("*.ipynb")), ids=lambda p: p.name)
def test_untouched_exercise_runs_to_its_summary_without_an_error_in_a_check_cell(graded, path):
    """The executed exercise notebook (saved by ``grade --executed``): no check or summary cell shows an
    error, and the last cell holds the grader's score, 0 of the chapter's exercises passed."""
    records, _, executed = graded
    n = sum(1 for r in _by_notebook(records, EXERCISES) if Path(r["notebook"]).name == path.name)
    cells = nbformat.read(executed / executed_name(path), as_version=4).cells
    for cell in cells:
        if cell.cell_type == "code" and cell.source.startswith(("check(", "summary(")):
            assert not any(o.output_type == "error" for o in cell.outputs), cell.source
    last = "".join(o.get("text", "") for o in cells[-1].outputs)
    assert n >= 4 and f"0/{n} exercises passed" in last, last


def test_json_and_csv_hold_one_record_per_exercise(graded):
    records, rows, executed = graded
    assert sorted(p.name for p in executed.iterdir()) == sorted(
        [f"solutions-{p.name}" for p in SOLUTION_NOTEBOOKS] + [f"exercises-{p.name}" for p in EXERCISES.glob("*.ipynb")])
    assert set(records[0]) == {"notebook", "exercise", "passed", "message", "status", "tampering"}
    assert [(r["notebook"], r["exercise"]) for r in records] == [(r["notebook"], r["exercise"]) for r in rows]
    assert {row["passed"] for row in rows} == {"True", "False"}


def test_exercise_notebook_runs_to_the_end_without_an_error_escaping_a_check(tmp_path):
    """Partial work: two exercises done, one hanging, the rest stubs — and a cell that never finishes."""
    nb = nbformat.read(EXERCISES / "01_fundamentals.ipynb", as_version=4)
    solutions = {c.source.split("(")[0]: c.source for c in nbformat.read(SOLUTIONS / "01_fundamentals.ipynb", 4).cells
                 if c.cell_type == "code" and BEGIN in c.source}
    for cell in nb.cells:
        head = cell.source.split("(")[0]
        if head in ("def linear_betas", "def snr"):
            cell.source = solutions[head]
        elif head == "def q_step":
            cell.source = "def q_step(x_prev, t, eps, betas):\n    while True:\n        pass"
    nb.cells.insert(3, nbformat.v4.new_code_cell("import time\ntime.sleep(600)  # a cell stuck forever"))
    path = tmp_path / "01_fundamentals.ipynb"
    nbformat.write(nb, path)

    executed = tmp_path / "executed.ipynb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TIMEOUT_ENV, "1")
        # 45 s per cell: the imports alone can take half a minute on a heavily loaded 2-core machine
        records = grade_notebook(path, timeout=45, save_executed=executed)
    verdict = {r.exercise: r for r in records}
    assert list(verdict) == checks_for_chapter(1)
    assert verdict["linear_betas"].passed and verdict["snr"].passed
    assert is_endless_loop_verdict(verdict["q_step"], 1), verdict["q_step"].message
    assert verdict["q_sample"].message.startswith("not written yet")

    cells = nbformat.read(executed, as_version=4).cells
    for cell in cells:
        if cell.cell_type == "code" and cell.source.startswith(("check(", "summary(")):
            assert not any(o.output_type == "error" for o in cell.outputs), cell.source
    last = "".join(o.get("text", "") for o in cells[-1].outputs)
    assert "Chapter 1: 2/8 exercises passed" in last


def test_a_notebook_that_never_ran_a_check_scores_zero_not_nothing(tmp_path):
    nb = nbformat.read(EXERCISES / "01_fundamentals.ipynb", as_version=4)
    nb.cells = nb.cells[:1]  # only the introduction
    path = tmp_path / "01_fundamentals.ipynb"
    nbformat.write(nb, path)
    records = grade_notebook(path, timeout=30)
    assert [r.exercise for r in records] == checks_for_chapter(1)
    assert all(not r.passed and r.message == NOT_RUN for r in records)


def test_grade_reports_a_missing_path(capsys):
    assert main(["grade", "no/such/notebook.ipynb"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
