"""Figures that lessons quote from a benchmark run are the figures that run recorded.

Chapter 5 quotes the classifier-guidance sweep at N = 500 from
``benchmarks/results/classifier_guidance.json`` (``benchmarks/mnist_quality.py --parts cg``): every row of
its table must be the JSON's numbers, rounded as shown, so re-running the benchmark without updating the
lesson (or editing a number by hand) fails here.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

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
