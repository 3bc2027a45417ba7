"""benchmarks/results/guidance_live.pt: the guided samples that chapters 5 and 6 read back (benchmarks/guidance_live.py),
and how the two lessons read them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffcourse.guidance_study import load_live

ROOT = Path(__file__).resolve().parents[1]
LIVE = ROOT / "benchmarks/results/guidance_live.pt"


@pytest.fixture(scope="module")
def live():
    if not LIVE.exists():
        pytest.skip("benchmarks/results/guidance_live.pt not there: run benchmarks/guidance_live.py")
    return load_live(str(LIVE))


def test_every_setting_has_the_same_balanced_labels_and_noise_sized_sets(live):
    labels = live["meta"]["labels"]
    assert torch.equal(labels, torch.arange(80) % 10)
    parts = {"cg": "per_s", "cg_bayes": "per_s", "cfg": "per_w"}
    for part, key in parts.items():
        for value, e in live[part][key].items():
            assert e["samples"].shape == (80, 1, 28, 28) and -1 <= float(e["samples"].min()) <= float(e["samples"].max()) <= 1
            assert e["features"].shape[0] == 80 and e["features"].dtype == torch.float64
            assert e["read_as"].shape == (80,), (part, value)


def test_the_cfg_sweep_counted_one_evaluation_per_step_at_w_0_and_1_and_two_otherwise(live):
    steps = live["cfg"]["steps"]
    for w, e in live["cfg"]["per_w"].items():
        assert e["nfe"] == (steps if w in (0.0, 1.0) else 2 * steps), w


def test_the_classifier_guided_sweep_recorded_every_step(live):
    for s, e in live["cg"]["per_s"].items():
        recs = e["records"]
        assert len(recs) == live["cg"]["steps"] and recs[0]["t"] > recs[-1]["t"]
        assert all(0 <= r["p_y"] <= 1 for r in recs)
    # unguided samples ignore their labels: about chance; s = 5 obeys them
    acc = {s: float((e["read_as"] == live["meta"]["labels"]).double().mean()) for s, e in live["cg"]["per_s"].items()}
    assert acc[0.0] < 0.25 and acc[5.0] > 0.95


def _code(name: str) -> str:
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("name", ["05_classifier_guidance.ipynb", "06_classifier_free_guidance.ipynb"])
def test_the_lessons_read_the_file_and_never_bootstrap_kid(name):
    """KID is a U-statistic: a bootstrap with replacement adds k(x, x) terms to it. The lessons read KID against a band
    of real draws (band_difference) and between settings by the jackknife, and draw their sweeps from the file."""
    code = _code(name)
    assert "load_live()" in code and "band_difference(" in code
    assert "bootstrap_difference(kid_ref" not in code and "jackknife_difference(kid_ref" in code


def _outputs(name: str) -> str:
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    return "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
                   for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))


def test_the_label_mix_file_reads_the_same_sets_the_way_the_lessons_do(live):
    """benchmarks/results/guidance_label_mix.json (quoted by chapters 5 and 6): its bands and paired lines must be the
    lessons' own — the balanced band is chapter 5's, the jackknife lines are the ones the lessons print — and its read
    counts must be those of the live file's sets."""
    mix = json.loads((ROOT / "benchmarks/results/guidance_label_mix.json").read_text())
    assert mix["bands"]["asked"]["counts"] == [8] * 10
    for key, e in (("cg:1", live["cg"]["per_s"][1.0]), ("cg:2", live["cg"]["per_s"][2.0]), ("cfg:1", live["cfg"]["per_w"][1.0])):
        assert mix["bands"][key]["counts"] == torch.bincount(e["read_as"], minlength=10).tolist(), key
    ch5, ch6 = _outputs("05_classifier_guidance.ipynb"), _outputs("06_classifier_free_guidance.ipynb")
    asked = mix["bands"]["asked"]
    assert f"KID balanced {asked['mean']:.2f} ± {asked['std']:.2f}" in ch5
    assert mix["pairs"]["cg:2-cg:1"]["verdict"].split(": ", 1)[1].replace("CG ", "") in ch5.replace(", network guide, DDIM-20", "")
    assert mix["pairs"]["cfg:1-cg:1"]["verdict"] in ch6
    d = mix["cg_s1_vs_read_band"]
    assert d["low"] > 0 and d["low"] < d["estimate"] < d["high"]  # s = 1 stays resolved above its read-counts band
