"""Figures that lessons quote from a benchmark run are the figures that run recorded.

Chapter 5 quotes the classifier-guidance sweep at N = 500 from
``benchmarks/results/classifier_guidance.json`` (``benchmarks/mnist_quality.py --parts cg``): every row of
its table must be the JSON's numbers, rounded as shown, so re-running the benchmark without updating the
lesson (or editing a number by hand) fails here. The README quotes the 2D benchmark
(``benchmarks/results/toy2d.json``, ``benchmarks/toy2d.py``) the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from diffcourse.recipes.toy2d import TOY_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]


def markdown_of(notebook: str) -> str:
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_chapter5_quotes_the_classifier_guidance_benchmark():
    cg = json.loads((ROOT / "benchmarks/results/classifier_guidance.json").read_text())["cg"]
    text = markdown_of("05_classifier_guidance.ipynb")
    assert f"N = {cg['n']} digits per scale" in text
    assert f"floor at this N is {cg['floor_at_n']:.1f}" in text
    for s, e in cg["per_s"].items():
        row = f"| {float(s):g} | {e['accuracy'] * 100:.1f} % | {e['fid']:.1f} | {e['seconds']:.0f} |"
        assert row in text, f"chapter 5 does not show the benchmark's row for s = {s}: {row}"


def test_readme_quotes_the_toy2d_benchmark():
    runs = json.loads((ROOT / "benchmarks/results/toy2d.json").read_text())["runs"]
    rows = [r for run in runs for r in run["results"]]
    seconds = [r["train_seconds"] for r in rows]
    ratios = [r["ratio"] for r in rows]
    readme = (ROOT / "README.md").read_text()
    assert f"trains in {min(seconds):.1f}–{max(seconds):.1f} s per dataset" in readme
    assert f"{min(ratios):.2f}–{max(ratios):.2f}× the data-vs-data" in readme
    recipe = runs[0]["recipe"]
    assert f"{recipe['steps']} steps × {recipe['batch_size']} points" in readme
    assert all(run["recipe"] == TOY_DEFAULTS for run in runs), "toy2d.json was measured with another recipe: re-run benchmarks/toy2d.py"
    assert all(r["meets_targets"] for r in rows)
