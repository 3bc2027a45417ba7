"""Training throughput of the MNIST recipes: images per second of whole optimiser steps, printed as JSON.

    python benchmarks/train_speed.py [--recipes mnist-ddpm,...] [--threads 1,2] [--steps 6] [--out FILE.json]

For each recipe, each thread count and with/without bfloat16 autocast: a few warm-up steps, then
``--steps`` timed steps of the recipe's own loss at its batch size (forward, backward, Adam, EMA, as in
`diffcourse.training.train`). This is how the recipes' settings (batch 128, bfloat16 on an AVX-512 CPU,
one thread per run with two runs side by side) were chosen.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from diffcourse.recipes.mnist import RECIPES, _loss_fn, build_model
from diffcourse.training import EMA


def images_per_second(name: str, threads: int, bf16: bool, steps: int, warmup: int = 2) -> float:
    recipe = RECIPES[name]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(recipe.model, recipe.model_kwargs).train()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, fused=True)
    ema, loss_fn, g = EMA(model), _loss_fn(recipe), torch.Generator().manual_seed(0)
    x = torch.rand(recipe.batch_size, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (recipe.batch_size,))
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model, (x, y), g).float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model)
    return recipe.batch_size * steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    rows = []
    for name in a.recipes.split(","):
        for threads in (int(t) for t in a.threads.split(",")):
            for bf16 in (False, True):
                ips = images_per_second(name, threads, bf16, a.steps)
                rows.append({"recipe": name, "threads": threads, "bf16": bf16, "batch_size": RECIPES[name].batch_size,
                             "images_per_second": round(ips, 1)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report = {"benchmark": "train_speed", "machine": platform.machine(), "cpu_count": os.cpu_count(),
              "note": "measured on an otherwise idle machine", "rows": rows}
    text = json.dumps(report, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
