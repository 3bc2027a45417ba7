"""Figures that lessons quote from a benchmark run are the figures that run recorded.

Chapters 5 and 6 read the guidance sweeps of ``benchmarks/results/mnist_quality.json`` (parts ``cg`` and ``cfg``)
against floors drawn the way the samples were (class-balanced real digits at the same N), and mark every figure
they quote (``scripts/quotes.py`` checks the values); the tests here check the protocol of the file and that the
retired reading ("guided FIDs below a floor of random digits because guided samples vary less") stays retired.
Chapter 9 quotes ``benchmarks/results/editing.json``. The README quotes the 2D benchmark
(``benchmarks/results/toy2d.json``, ``benchmarks/toy2d.py``) and the MNIST table the same way.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from diffcourse.recipes.toy2d import TOY_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]


def markdown_of(notebook: str) -> str:
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_the_guidance_sweeps_are_read_against_matched_floors():
    """Issue 28: the guidance sweeps draw class-balanced labels, so their floors are class-balanced real digits at the
    same N (and the data's own mix for the unconditional rows), drawn by diffcourse.measure.matched_floor."""
    q = json.loads((ROOT / "benchmarks/results/mnist_quality.json").read_text())
    for part in ("cfg", "cg"):
        p = q[part]
        assert p["floor_protocol"] == "balanced"
        assert (p["floor_matched"]["label_mix"], p["floor_matched"]["n"]) == ("balanced", p["n"])
        assert (p["floor_data_mix"]["label_mix"], p["floor_data_mix"]["n"]) == ("data", p["n"])
        assert p["floor_at_n"] == p["floor_matched"]["mean"] and len(p["floor_matched"]["draws"]) >= 5
        # what the matched floor is for: balanced real digits score a lower FID than random ones at the same N
        assert p["floor_at_n"] < p["floor_data_mix"]["mean"]


def test_chapter5_reads_the_classifier_guidance_benchmark():
    """Chapter 5 quotes the cg sweep and its matched floor with marks (scripts/quotes.py checks the values), and no
    longer explains guided FIDs below a floor of random digits by "guided samples vary less"."""
    cg = json.loads((ROOT / "benchmarks/results/mnist_quality.json").read_text())["cg"]
    text = markdown_of("05_classifier_guidance.ipynb")
    assert f"N = {cg['n']} digits per scale" in text
    assert "{mnist_quality.json cg/floor_at_n}" in text
    for s, e in cg["per_s"].items():
        for key in ("accuracy", "fid"):
            if f"{{mnist_quality.json cg/per_s/{s}/{key}}}" not in text:
                continue
            figure = f"{e[key]:.3f}" if key == "accuracy" else f"{e[key]:.1f}"
            assert figure in text, f"chapter 5 marks cg {s}/{key} but does not show {figure}"
    for retired in ("vary *less*", "the bias rewards that", "vary less than real"):
        assert retired not in text



def test_chapter6_reads_the_cfg_benchmark_against_its_matched_floor():
    text = markdown_of("06_classifier_free_guidance.ipynb")
    assert "{mnist_quality.json cfg/floor_at_n}" in text
    for retired in ("vary *less*", "the bias rewards that", "as in chapter 5, never", "(chapter 5 met the same effect)"):
        assert retired not in text


def test_chapter5_quotes_the_noisy_classifier_benchmark():
    """Chapter 5 reads the network, the LDA and the Bayes-over-training-digits ceiling on all test digits (part noisy)."""
    nc = json.loads((ROOT / "benchmarks/results/mnist_quality.json").read_text())["noisy_classifier"]
    text = markdown_of("05_classifier_guidance.ipynb")
    for key in ("accuracy_at_t", "lda_accuracy_at_t", "kernel_bayes_accuracy_at_t"):
        for t in ("0", "250", "500", "750"):
            figure = f"{100 * nc[key][t]:.1f} %"
            assert figure in text, f"chapter 5's prose does not quote {key}[{t}] = {figure}"
    # the claim that the linear rule is level with the ceiling at t = 750 must stay true of the file
    assert abs(nc["kernel_bayes_accuracy_at_t"]["750"] - nc["lda_accuracy_at_t"]["750"]) < 0.005


def test_readme_quotes_the_mnist_quality_benchmark():
    """The README's table of the shipped MNIST networks is the file benchmarks/results/mnist_quality.json."""
    q = json.loads((ROOT / "benchmarks/results/mnist_quality.json").read_text())
    readme = (ROOT / "README.md").read_text()
    pct = lambda values: " / ".join(f"{100 * v:.1f}" for v in values) + " %"    # noqa: E731
    nc, ddim, ddpm, cfg, cg = q["noisy_classifier"], q["ddim50"], q["ddpm1000"], q["cfg"], q["cg"]
    ts = ("0", "250", "500", "750")
    ws = [w for w in cfg["per_w"] if float(w) > 0]
    figures = [
        f"{100 * q['classifier']['test_accuracy']:.2f} % test accuracy",
        *(pct(nc[k][t] for t in ts) for k in ("accuracy_at_t", "lda_accuracy_at_t", "kernel_bayes_accuracy_at_t")),
        f"FID {ddim['fid']:.1f} against a floor of {q['floor']['fid_mean']:.2f} ± {q['floor']['fid_std']:.2f} "
        f"({ddim['fid_over_floor']:.1f}×), confident share {ddim['confident_share']:.2f}",
        f"FID {ddpm['fid']:.1f} against {ddpm['ddim50_fid_at_n']:.1f} (floor {ddpm['floor_at_n']:.1f} at that N), "
        f"confident share {ddpm['confident_share']:.2f}",
        "accuracy " + pct(cfg["per_w"][w]["accuracy"] for w in ws),
        "FID " + " / ".join(f"{cfg['per_w'][w]['fid']:.1f}" for w in ws),
        f"the lowest FID is at w = {float(cfg['best_w']):g}",
        f"N = {cfg['n']} per weight, {cfg['n'] // 10} of each digit, against a matched floor {cfg['floor_at_n']:.1f}",
        f"N = {cg['n']} per scale, {cg['n'] // 10} of each digit, against a matched floor {cg['floor_at_n']:.1f}",
        "accuracy " + pct(e["accuracy"] for e in cg["per_s"].values()),
        "FID " + " / ".join(f"{e['fid']:.1f}" for e in cg["per_s"].values()),
    ]
    if "0.0" in cfg["per_w"]:
        figures.append(f"(w = 0): FID {cfg['per_w']['0.0']['fid']:.1f}, against random digits' {cfg['floor_data_mix']['mean']:.1f}")
    for figure in figures:
        assert figure in readme, f"the README does not quote the benchmark's {figure!r}"
    text = re.sub(r"\s*<!--.*?-->", "", readme)  # as a reader sees it
    for retired in ("lowest FID below the floor", "(floor 15.5 at that N)", "(floor 6.3 at that N)"):
        assert retired not in text, f"the README still reads the guidance sweeps against random digits: {retired!r}"


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


def test_chapter9_quotes_the_editing_benchmark():
    bench = json.loads((ROOT / "benchmarks/results/editing.json").read_text())
    text = re.sub(r"\s*<!--.*?-->", "", markdown_of("09_editing.ipynb"), flags=re.S)  # quote markers are invisible
    for mask in ("bottom", "centre"):
        rows = [r for r in bench["repaint"] if r["mask"] == mask]
        quoted = ("agreement " + ", ".join(f"{r['agreement']:.2f}" for r in rows)
                  + " and seam ratio " + ", ".join(f"{r['seam_ratio']:.2f}" for r in rows))
        assert quoted in text, f"chapter 9 does not quote editing.json's RePaint curve for the {mask} mask: {quoted}"
    sdedit = bench["sdedit"]
    assert "agreement " + ", ".join(f"{r['agreement']:.2f}" for r in sdedit) in text
    assert "confidence " + ", ".join(f"{r['confidence']:.2f}" for r in sdedit) not in text, \
        "chapter 9 reads realism by KID against real digits: the classifier's confidence is no measure of it"
    assert f"against {bench['guides']['agreement']:.2f} for the guides themselves" in text


def test_the_mnist_training_exercise_is_calibrated_as_shipped():
    """Chapter 2's ``mnist_ddpm`` check: its calibration run used today's budget and thresholds, every correct
    solution in it passes and every broken version fails, and docs/EXERCISES.md quotes what each scored."""
    from diffcourse.grading.ch02 import MNIST_CONFIDENCE, MNIST_MAX_CLASS, MNIST_N, MNIST_SHARE
    from diffcourse.recipes.mnist_budget import BUDGET

    bench = json.loads((ROOT / "benchmarks/results/mnist_training_exercise.json").read_text())
    assert bench["budget"] == BUDGET, "the budget changed since the calibration: re-run benchmarks/mnist_training_exercise.py"
    assert (bench["n"], bench["pass_share"], bench["max_class_share"], bench["confidence"]) == (
        MNIST_N, MNIST_SHARE, MNIST_MAX_CLASS, MNIST_CONFIDENCE)
    rows = {r["variant"]: r for r in bench["rows"]}
    assert {"solution", "no_time", "wrong_target", "no_ema"} <= set(rows)
    for name, row in rows.items():
        passes = row["confident_share"] >= MNIST_SHARE and row["top_share"] <= MNIST_MAX_CLASS
        assert row["passed"] == passes and passes == name.startswith("solution"), (name, row)
    doc = (ROOT / "docs/EXERCISES.md").read_text()
    for name, row in rows.items():
        quoted = f"`{name}`: {100 * row['confident_share']:.0f} % confident, top digit {100 * row['top_share']:.0f} %"
        assert quoted in doc, f"docs/EXERCISES.md does not quote {name}'s score: {quoted}"


def test_the_sampler_leaderboard_was_measured_on_the_shipped_weights():
    """benchmarks/samplers.py keeps rows across runs only for the same weights; the committed file is of these."""
    from diffcourse.pretrained import checkpoint_info
    bench = json.loads((ROOT / "benchmarks/results/samplers.json").read_text())
    assert bench["checkpoints"] == {name: checkpoint_info(name)["sha256"] for name in bench["checkpoints"]}
    assert {"mnist-ddpm", "mnist-cfg", "mnist-classifier"} <= bench["checkpoints"].keys()


def test_editing_benchmark_stores_paired_verdicts_that_match_its_rows():
    """Each RePaint row with r > 1 carries a paired verdict against r = 1 whose estimate is the difference of the two
    rows' means, inside its own interval, and whose `resolved` flag is the interval excluding 0."""
    bench = json.loads((ROOT / "benchmarks/results/editing.json").read_text())
    for mask in ("bottom", "centre"):
        rows = {r["r"]: r for r in bench["repaint"] if r["mask"] == mask}
        for r, row in rows.items():
            if r == 1:
                continue
            for key in ("agreement", "seam_ratio"):
                v = row["vs_r1"][key]
                assert abs(v["difference"] - (row[key] - rows[1][key])) < 2e-3, (mask, r, key)
                assert v["low"] <= v["difference"] <= v["high"]
                assert v["resolved"] == (v["low"] > 0 or v["high"] < 0)
