"""How much of a guided set's KID is its label mix: bands of real digits drawn with the label counts the judge *reads*.

Chapters 5 and 6 read each guided set of ``benchmarks/results/guidance_live.pt`` against a band of real digits drawn
with the labels *asked* for (8 of every digit). A set whose digits do not all follow their label (classifier guidance
at s = 1: 79 % do) has a less balanced mix as read, and KID moves with the balance. Here the band is drawn again
(100 draws of 80 training digits, seeds 10 + k, against chapter 5's 2000 test digits, seed 0) with each set's read
counts, and the shift of the band's mean is the part of a KID margin that label mix alone would produce:

* ``bands``: per set, the read counts and the band (mean, sd);
* ``cg_s1_vs_read_band``: classifier guidance s = 1 against the band drawn with its own read counts;
* ``pairs``: the paired jackknife KID difference that the lessons print, and the shift between the two sets' bands.

Writes ``benchmarks/results/guidance_label_mix.json``. About 2-3 minutes on one CPU thread (the features of 32 000
real digits).

Run:  DIFFCOURSE_DATA_DIR=… python benchmarks/guidance_label_mix.py
"""
from __future__ import annotations

import json
import os

import torch

from diffcourse.data.mnist import load_mnist
from diffcourse.guidance_study import band_difference, kid_to, load_live
from diffcourse.measure import draw_reference, jackknife_difference
from diffcourse.metrics import classifier_features
from diffcourse.pretrained import load_model
from diffcourse.reporting import floor_stats

OUT = os.path.join(os.path.dirname(__file__), "results", "guidance_label_mix.json")
M = 100  # real draws per band, as in the lessons


def band(kid_ref, train_x: torch.Tensor, train_y: torch.Tensor, labels: torch.Tensor, judge) -> list[float]:
    """KID of M draws of real training digits with exactly ``labels``' class counts (seeds 10 + k, as in chapter 5)."""
    return [kid_ref(classifier_features(train_x[draw_reference(train_y, len(labels), labels,
                                                               torch.Generator().manual_seed(10 + k))], judge))
            for k in range(M)]


def main() -> int:
    torch.set_num_threads(1)
    judge = load_model("mnist-classifier")
    judge = judge[0] if isinstance(judge, tuple) else judge
    judge.eval()
    test_x, _ = load_mnist("test")
    train_x, train_y = load_mnist("train")
    live = load_live()
    asked = live["meta"]["labels"]
    ref = classifier_features(test_x[torch.randperm(len(test_x), generator=torch.Generator().manual_seed(0))[:2000]], judge)
    kid_ref = kid_to(ref)
    sets = {"asked": ("the asked-for labels", asked), "cg:1": ("CG s = 1", live["cg"]["per_s"][1.0]),
            "cg:2": ("CG s = 2", live["cg"]["per_s"][2.0]), "cfg:1": ("CFG w = 1", live["cfg"]["per_w"][1.0])}
    out = {"m": M, "n": len(asked), "bands": {}, "pairs": {}}
    for key, (name, e) in sets.items():
        read = e if key == "asked" else e["read_as"]
        st = floor_stats(band(kid_ref, train_x, train_y, read, judge))
        out["bands"][key] = {"name": name, "counts": torch.bincount(read, minlength=10).tolist(), "mean": st["mean"],
                             "std": st["std"]}
        print(f"{name}: counts {out['bands'][key]['counts']}, KID band {st['mean']:.2f} ± {st['std']:.2f}", flush=True)
    s1 = sets["cg:1"][1]
    d = band_difference(kid_ref(s1["features"]), band(kid_ref, train_x, train_y, s1["read_as"], judge), "CG s = 1",
                        "real digits with its read counts")
    out["cg_s1_vs_read_band"] = {"estimate": d.estimate, "low": d.low, "high": d.high, "verdict": d.verdict("KID")}
    print(out["cg_s1_vs_read_band"]["verdict"])
    for a, b in (("cg:2", "cg:1"), ("cfg:1", "cg:1")):
        d = jackknife_difference(kid_ref, sets[a][1]["features"], s1["features"], None, paired=True,
                                 name_a=sets[a][0], name_b=sets[b][0])
        shift = out["bands"][a]["mean"] - out["bands"][b]["mean"]
        out["pairs"][f"{a}-{b}"] = {"estimate": d.estimate, "low": d.low, "high": d.high, "band_shift": shift,
                                    "verdict": d.verdict("KID")}
        print(f"{d.verdict('KID')}; the two read-count bands differ by {shift:+.2f}")
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
