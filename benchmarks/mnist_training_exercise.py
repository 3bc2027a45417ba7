"""Calibrate chapter 2's MNIST training exercise (check ``mnist_ddpm``): the solution and deliberately broken versions.

    python benchmarks/mnist_training_exercise.py [--variants solution,no_time,...] [--classifier PATH]
                                                 [--part FILE.json] [--merge PART.json ... --out FILE.json]

Each variant runs the check's stage 2 exactly — `train_on_budget` (`BUDGET`'s steps) with a training step, then
``MNIST_N`` digits from a sampling loop on the schedule respaced to ``MNIST_SAMPLE_STEPS`` steps, read by the course classifier (`mnist_verdict`: the confident share and
the share of the most frequent digit) — and records the wall seconds of training and of sampling on ``--threads``
CPU threads (default 2, the course's laptop), and their CPU seconds (``time.process_time``, all threads together).

* ``solution``: the reference training step and sampling loop (`reference_train_step`, `reference_sample`);
* ``no_time``: the network is never told t (called with t = 0 in training and sampling);
* ``wrong_target``: the training step regresses x0 instead of ε, the sampler reads the output as ε;
* ``no_ema``: the training step never updates the EMA copy, so the check samples the initial network;
* ``solution_seed1``, ``solution_seed2``: the solution with other seeds (weights, batches, start noise), for the
  spread a correct solution shows.

Variants can run as separate processes (``--part``) and be merged (``--merge``) into the results file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import torch

from diffcourse.grading.ch02 import (MNIST_CONFIDENCE, MNIST_MAX_CLASS, MNIST_N, MNIST_SAMPLE_STEPS, MNIST_SHARE,
                                     mnist_verdict)
from diffcourse.objectives import eps_fn
from diffcourse.pretrained import load_model, load_pretrained
from diffcourse.recipes.mnist_budget import (BUDGET, budget_schedule, reference_sample, reference_train_step,
                                             respaced_eps_fn, train_on_budget)

VARIANTS = ("solution", "solution_seed1", "solution_seed2", "no_time", "wrong_target", "no_ema")


def broken_train_step(mistake: str):
    """The reference training step with one mistake: ``no_time``, ``wrong_target`` or ``no_ema``."""
    def step(model, ema_model, optimizer, x0, t, eps, alpha_bars, ema_decay):
        a = alpha_bars[t].reshape(-1, 1, 1, 1).to(x0.dtype)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        goal = x0 if mistake == "wrong_target" else eps
        loss = ((model(xt, torch.zeros_like(t) if mistake == "no_time" else t) - goal) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if mistake != "no_ema":
            with torch.no_grad():
                for p_ema, p in zip(ema_model.parameters(), model.parameters()):
                    p_ema.lerp_(p, 1 - ema_decay)
        return loss.item()
    return step


def run_variant(name: str, classifier: torch.nn.Module, save_dir: str | None = None) -> dict[str, Any]:
    seed = int(name[-1]) if name.startswith("solution_seed") else BUDGET["seed"]
    step = reference_train_step if name.startswith("solution") else broken_train_step(name)
    c0, w0 = time.process_time(), time.perf_counter()
    run = train_on_budget(step, seed=seed)
    train_cpu, train_wall = time.process_time() - c0, time.perf_counter() - w0
    f = eps_fn(run.ema_model, budget_schedule())
    if name == "no_time":
        f = (lambda g: lambda x, t: g(x, torch.zeros_like(torch.as_tensor(t))))(f)
    schedule, f = respaced_eps_fn(f, budget_schedule(), MNIST_SAMPLE_STEPS)
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn(MNIST_N, 1, 28, 28, generator=gen)
    c0, w0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        x = reference_sample(f, schedule, x_T, gen)
        verdict = mnist_verdict(x, classifier)
    sample_cpu, sample_wall = time.process_time() - c0, time.perf_counter() - w0
    if save_dir:  # the digits themselves, to look at (and to re-read with another rule)
        torch.save(x.float().clamp(-1, 1), os.path.join(save_dir, f"{name}.pt"))
    return dict(variant=name, seed=seed, steps=len(run.losses), final_loss=round(sum(run.losses[-50:]) / 50, 4),
                train_cpu_s=round(train_cpu, 1), sample_cpu_s=round(sample_cpu, 1),
                total_cpu_s=round(train_cpu + sample_cpu, 1), train_wall_s=round(train_wall, 1),
                sample_wall_s=round(sample_wall, 1), **{k: v for k, v in verdict.items()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--classifier", default="mnist-classifier",
                   help="a shipped checkpoint name or an exported .pt file (default: the shipped mnist-classifier)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2, as on the course's 2-core laptop)")
    p.add_argument("--save-samples", default=None, help="write each variant's digits to DIR/VARIANT.pt")
    p.add_argument("--part", default=None, help="write this run's rows to FILE.json")
    p.add_argument("--merge", nargs="*", default=None, help="merge these part files into --out")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if a.merge is not None:
        rows = [r for f in a.merge for r in json.load(open(f))["rows"]]
        rows.sort(key=lambda r: VARIANTS.index(r["variant"]))
        result = dict(json.load(open(a.merge[0])), rows=rows)
    else:
        torch.set_num_threads(a.threads)
        classifier = (load_model(a.classifier)[0] if a.classifier.endswith(".pt")
                      else load_pretrained(a.classifier))
        rows = []
        for name in a.variants.split(","):
            rows.append(run_variant(name, classifier, a.save_samples))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        result = dict(device="cpu", threads=a.threads, cpu=platform.processor() or platform.machine(),
                      torch=torch.__version__, classifier=a.classifier, budget=BUDGET, n=MNIST_N, sample_steps=MNIST_SAMPLE_STEPS,
                      confidence=MNIST_CONFIDENCE, pass_share=MNIST_SHARE, max_class_share=MNIST_MAX_CLASS,
                      cpus=os.cpu_count(), rows=rows)
    text = json.dumps(result, indent=1)
    for path in filter(None, (a.part, a.out)):
        with open(path, "w") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
