"""The guided MNIST samples that chapters 5 and 6 read, drawn once and kept (their Run All reads them back).

Writes ``benchmarks/results/guidance_live.pt`` (a dict of tensors, about 2 MB):

* ``cg``: ``mnist-ddpm`` guided by ``mnist-noisy-classifier`` (chapter 5's sweep) at scales s = 0, 1, 2, 5, 10; N = 80
  class-balanced labels (``balanced_labels(80)``), DDIM-20, the same starting noise (seed 0) at every s; the sampler
  instrumented by `guidance_study.guidance_probe` (per step: size of the guidance term, p(y | x_t), the digit the
  judge reads in x̂₀);
* ``cg_steps``: s = 1 again with DDIM-100 (the same noise): how much of s = 1's shortfall is the sampler's;
* ``cg_bayes``: s = 1 guided by Bayes' rule over the training digits (`metrics.NoisyKernelBayes`) in place of the
  network, DDIM-20, the same noise: how much is the classifier's;
* ``cfg``: ``mnist-cfg`` at w = 0, 1, 1.25, 1.5, 2, 3, 5 on the same 80 labels and noise, DDIM-20 (chapter 6's sweep
  and its head-to-head with ``cg``), with the network evaluations per sample counted.

Each setting keeps its samples (uint8, for the grids), the ``mnist-classifier`` features of the float samples, and
the digit that classifier reads. Seconds are not kept: they were timed on a shared CPU.

Run:  DIFFCOURSE_DATA_DIR=… python benchmarks/guidance_live.py [--parts cg,cg_steps,cg_bayes,cfg] [--threads 1]
(a part already in the file is kept unless named again).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from diffcourse.data.mnist import load_mnist
from diffcourse.guidance_study import guidance_probe
from diffcourse.measure import balanced_labels
from diffcourse.metrics import NoisyKernelBayes, classifier_features
from diffcourse.objectives import eps_fn
from diffcourse.pretrained import load_model, pretrained_schedule
from diffcourse.samplers.ddim import ddim_sample
from diffcourse.samplers.guidance import cfg_eps_fn
from diffcourse.sampling import count_evaluations

OUT = os.path.join(os.path.dirname(__file__), "results", "guidance_live.pt")
N, STEPS, SEED = 80, 20, 0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def entry(x: torch.Tensor, judge: torch.nn.Module, **extra) -> dict:
    """What a lesson needs of one setting's samples ``x`` (float, in [-1, 1])."""
    with torch.no_grad():
        read_as = judge(x).argmax(1)
    return {"samples": to_uint8(x), "features": classifier_features(x, judge).float(), "read_as": read_as, **extra}


def draw(f, schedule, steps: int) -> torch.Tensor:
    return ddim_sample(f, schedule, (N, 1, 28, 28), steps=steps, generator=torch.Generator().manual_seed(SEED),
                       clip_x0=1.0).clamp(-1, 1)


def probed(unet, classifier, schedule, labels, s: float, judge, steps: int) -> dict:
    guided, records = guidance_probe(eps_fn(unet, schedule), classifier, schedule, labels, s, judge)
    x = draw(guided, schedule, steps)
    return entry(x, judge, records=[{**r, "read": r["read"].to(torch.uint8)} for r in records])


class BayesReader(torch.nn.Module):
    """`metrics.NoisyKernelBayes` as a noise-aware classifier ``(x_t, t) -> logits`` (one t per batch)."""

    def __init__(self, kernel: NoisyKernelBayes, schedule) -> None:
        super().__init__()
        self.kernel, self.schedule = kernel, schedule

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.kernel.logits(x, float(self.schedule.alpha_bars[int(t[0])])).to(x.dtype)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="cg,cg_steps,cg_bayes,cfg")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    result = torch.load(args.out) if os.path.exists(args.out) else {}
    labels = balanced_labels(N)
    judge, _ = load_model("mnist-classifier", "cpu")
    schedule = pretrained_schedule("mnist-ddpm")
    result["meta"] = {"n": N, "labels": labels, "seed": SEED, "judge": "mnist-classifier", "threads": args.threads,
                      "sampler": "DDIM (eta = 0, trailing), clip x0 to [-1, 1]"}

    def save(key: str, value: dict, t0: float) -> None:
        result[key] = value
        torch.save(result, args.out)
        log(f"{key}: {time.perf_counter() - t0:.0f} s")

    if {"cg", "cg_steps", "cg_bayes"} & set(parts):
        unet, _ = load_model("mnist-ddpm", "cpu")
        noisy_clf, _ = load_model("mnist-noisy-classifier", "cpu")
    if "cg" in parts:
        t0 = time.perf_counter()
        save("cg", {"steps": STEPS, "per_s": {s: probed(unet, noisy_clf, schedule, labels, s, judge, STEPS)
                                              for s in (0.0, 1.0, 2.0, 5.0, 10.0)}}, t0)
    if "cg_bayes" in parts:
        t0 = time.perf_counter()
        train_x, train_y = load_mnist("train")
        bayes = BayesReader(NoisyKernelBayes(train_x, train_y), schedule)
        save("cg_bayes", {"steps": STEPS, "classifier": "NoisyKernelBayes over the 60 000 training digits",
                          "per_s": {1.0: probed(unet, bayes, schedule, labels, 1.0, judge, STEPS)}}, t0)
    if "cg_steps" in parts:
        t0 = time.perf_counter()
        save("cg_steps", {"steps": 100, "per_s": {s: probed(unet, noisy_clf, schedule, labels, s, judge, 100)
                                                  for s in (1.0,)}}, t0)
    if "cfg" in parts:
        t0 = time.perf_counter()
        model, _ = load_model("mnist-cfg", "cpu")
        per_w = {}
        for w in (0.0, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0):
            with count_evaluations(model) as counter:
                x = draw(cfg_eps_fn(model, labels, w), pretrained_schedule("mnist-cfg"), STEPS)
            per_w[w] = entry(x, judge, nfe=counter[0] // N)
            log(f"cfg w = {w}: {time.perf_counter() - t0:.0f} s")
        save("cfg", {"steps": STEPS, "per_w": per_w}, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
