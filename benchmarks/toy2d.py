"""Benchmark: a DDPM on 2D toy data — training time and sample quality against the data-vs-data floor.

    python benchmarks/toy2d.py [--datasets moons 8gaussians swiss_roll] [--n 2000]

Prints one JSON object. Targets (DESIGN §7): training ≤ 20 s on a 2-core CPU and
sliced-Wasserstein(samples, data) ≤ 1.5 × the floor SW(data, data') at the same N.
The floor is averaged over 5 independent pairs of data sets, so it is not itself a lucky draw.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from diffcourse.data import toy2d
from diffcourse.metrics import sliced_wasserstein
from diffcourse.objectives import eps_fn
from diffcourse.recipes.toy2d import TOY_DEFAULTS, train_toy_ddpm
from diffcourse.samplers import ddpm_sample


def run(dataset: str, n: int, seed: int) -> dict:
    result, schedule = train_toy_ddpm(dataset, seed=seed, progress=False)
    t0 = time.perf_counter()
    samples = ddpm_sample(eps_fn(result.ema_model, schedule), schedule, (n, 2), generator=torch.Generator().manual_seed(seed + 1))
    sample_s = time.perf_counter() - t0
    data = toy2d.sample(dataset, n, torch.Generator().manual_seed(10_000 + seed))
    floors = [sliced_wasserstein(toy2d.sample(dataset, n, torch.Generator().manual_seed(20_000 + k)), data) for k in range(5)]
    floor = sum(floors) / len(floors)
    sw = sliced_wasserstein(samples, data)
    return {"dataset": dataset, "train_seconds": round(result.seconds, 2), "sample_seconds": round(sample_s, 2),
            "steps": result.steps, "sw": round(sw, 4), "floor": round(floor, 4), "ratio": round(sw / floor, 3),
            "meets_targets": bool(result.seconds <= 20 and sw <= 1.5 * floor)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["moons", "8gaussians", "swiss_roll"], choices=toy2d.DATASETS)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(2)
    rows = [run(d, a.n, a.seed) for d in a.datasets]
    print(json.dumps({"benchmark": "toy2d", "recipe": TOY_DEFAULTS, "n": a.n, "torch_threads": torch.get_num_threads(),
                      "machine": platform.processor() or platform.machine(), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
