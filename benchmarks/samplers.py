"""Benchmark: every sampler of the course on the shipped MNIST models — quality, NFE and time.

    python benchmarks/samplers.py [--n 500] [--rows ddim:50:0 ddpm ...] [--fid-vs-n] [--out benchmarks/results/samplers.json]

A row is ``SAMPLER[:STEPS[:ETA_OR_W]]``:

* ``ddim:S:ETA`` — DDIM with S steps on ``mnist-ddpm``; ``ddpm`` — ancestral, all 1000 steps;
* ``sde:S``, ``pc:S``, ``ode:S`` — chapter 4's reverse SDE, predictor–corrector, probability-flow ODE (Heun);
* ``cfg:S:W`` — ``mnist-cfg`` with classifier-free guidance weight W, DDIM with S steps, balanced labels.

Every row draws N samples with the same seed (`diffcourse.sampling.generate`, the code behind
``python -m diffcourse sample``) and scores them with `diffcourse.commands.evaluate.evaluate_images`
(FID against N test digits in the ``mnist-classifier`` feature space, the real-vs-real floor at N,
IS analogue, precision/recall, accuracy for conditional rows). ``--fid-vs-n`` adds FID of one model at
N = 250 … 5000 (DDIM-10, the cheapest sampler) next to the floor, for chapter 7's sample-size plot.
JSON is rewritten after every row, so a long run can be read while it goes.
"""
from __future__ import annotations

import argparse
import inspect
import json
import platform
import time
from pathlib import Path

import torch

from diffcourse import get_device, load_pretrained
from diffcourse.commands.evaluate import evaluate_images
from diffcourse.sampling import generate, parse_labels
from diffcourse.data.mnist import load_mnist
from diffcourse.metrics import classifier_features, feature_stats, frechet_distance
from diffcourse.pretrained import checkpoint_info, pretrained_schedule
from diffcourse.samplers import ddim_sample

DEFAULT_ROWS = ["ddim:10:0", "ddim:20:0", "ddim:50:0", "ddim:100:0", "ddim:10:1", "ddim:20:1", "ddim:50:1", "ddim:100:1",
                "ddpm", "sde:100", "pc:50", "ode:25", "cfg:20:1", "cfg:20:2", "cfg:20:3", "cfg:20:5"]


def parse_row(spec: str) -> dict:
    parts = spec.split(":")
    kind = parts[0]
    row = {"spec": spec, "sampler": kind, "model": "mnist-cfg" if kind == "cfg" else "mnist-ddpm",
           "steps": int(parts[1]) if len(parts) > 1 else 1000, "eta": 0.0, "guidance": None}
    if kind == "ddim":
        row["eta"] = float(parts[2]) if len(parts) > 2 else 0.0
    if kind == "cfg":
        row["sampler"], row["guidance"] = "ddim", float(parts[2])
    if kind not in ("ddim", "ddpm", "sde", "pc", "ode", "cfg"):
        raise ValueError(f"unknown row {spec!r}")
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--rows", nargs="*", default=DEFAULT_ROWS, help="rows to run (none: only --fid-vs-n)")
    p.add_argument("--fid-vs-n", action="store_true")
    p.add_argument("--batch-size", type=int, default=64, help="images per network call (64 is fastest for this U-Net on a CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/samplers.json")
    a = p.parse_args()
    device = get_device()
    judge = load_pretrained("mnist-classifier", device)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(out.read_text()) if out.exists() else {}
    weights = {name: checkpoint_info(name)["sha256"] for name in ("mnist-ddpm", "mnist-cfg", "mnist-classifier")}
    if a.rows:
        if report.get("n") != a.n or report.get("device") != str(device) or report.get("checkpoints") != weights:
            report["rows"] = []  # rows measured at another N, on another device or of other weights are not comparable
        report.update({"checkpoints": weights, "benchmark": "samplers", "n": a.n, "device": str(device),
                       "threads": torch.get_num_threads(), "machine": platform.machine(), "seed": a.seed,
                       "batch_size": a.batch_size,
                       "ddim_spacing": inspect.signature(ddim_sample).parameters["spacing"].default,
                       "timing": "after one untimed warm-up call per model (allocation and kernel choice are not billed "
                                 "to the first row)"})
    rows = {r["spec"]: r for r in report.get("rows", [])}
    models = {}
    for spec in a.rows:
        row = parse_row(spec)
        name = row["model"]
        if name not in models:
            models[name] = (load_pretrained(name, device), pretrained_schedule(name))
            warm = parse_labels("0-9", a.batch_size) if name == "mnist-cfg" else None
            generate(*models[name], a.batch_size, sampler="ddim", steps=2, seed=a.seed, labels=warm, device=device,
                     batch_size=a.batch_size)  # the untimed warm-up
        model, schedule = models[name]
        labels = parse_labels("0-9", a.n) if name == "mnist-cfg" else None
        images, seconds, nfe = generate(model, schedule, a.n, sampler=row["sampler"], steps=row["steps"], eta=row["eta"],
                                        seed=a.seed, labels=labels, guidance=row["guidance"], device=device,
                                        batch_size=a.batch_size)
        metrics = evaluate_images(images.cpu(), labels, classifier=judge, seed=a.seed)
        row.update(nfe=nfe, seconds=round(seconds, 1), **metrics)
        rows[spec] = row
        report["rows"] = list(rows.values())
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(row), flush=True)
    if a.fid_vs_n:
        model, schedule = models.get("mnist-ddpm") or (load_pretrained("mnist-ddpm", device), pretrained_schedule("mnist-ddpm"))
        t0 = time.perf_counter()
        images, _, _ = generate(model, schedule, 5000, sampler="ddim", steps=10, seed=a.seed, device=device, batch_size=a.batch_size)
        train_x, _ = load_mnist("train")
        test_x, _ = load_mnist("test")
        # random subsets: the files' own order is not random (MNIST's first 5000 test digits are the cleaner half)
        g = torch.Generator().manual_seed(a.seed)
        test_x, train_x = test_x[torch.randperm(len(test_x), generator=g)], train_x[torch.randperm(len(train_x), generator=g)]
        f_model, f_test = classifier_features(images, judge), classifier_features(test_x[:5000], judge)
        f_train = classifier_features(train_x[:5000], judge)
        curve = []
        for n in (250, 500, 1000, 2000, 5000):
            ref = feature_stats(f_test[:n])
            curve.append({"n": n, "fid_model_ddim10": round(frechet_distance(*feature_stats(f_model[:n]), *ref), 4),
                          "fid_floor": round(frechet_distance(*feature_stats(f_train[:n]), *ref), 4)})
        report["fid_vs_n"] = {"sampler": "DDIM-10 (eta=0), mnist-ddpm", "seconds": round(time.perf_counter() - t0, 1),
                              "device": str(device), "threads": torch.get_num_threads(),
                              "reference": "random test digits; floor: as many random training digits", "points": curve}
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report["fid_vs_n"]), flush=True)


if __name__ == "__main__":
    main()
