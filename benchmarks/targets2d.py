"""Benchmark: what the 2D DDPM of chapter 2 learns with each target, over training seeds.

    python benchmarks/targets2d.py [--seeds 0 1 2 3 4 5] [--n 2000] [--pairs 2] > part.json
    python benchmarks/targets2d.py --merge part_a.json part_b.json > benchmarks/results/targets2d.json

Chapter 2, sections 5 and 6. For each training seed, the same `ToyMLP` is trained with the chapter's 2D recipe
(`TOY_DEFAULTS`: 1500 steps of 512 points) on the 8-Gaussian mixture, once per target (ε, x₀, v), on DDPM's
linear schedule scaled to T = 200 (β from 5e-4 to 0.1; `diffcourse.target_study.study_schedule`). Not on the
recipe's cosine T = 200: its clipped last step (β = 0.999, so
1/√α ≈ 32) multiplies an ε-network's error in the first reverse step by about 32 but leaves x₀- and
v-networks alone (their implied ε̂ there is x_t itself), which would confound the comparison of targets.

Every model is sampled with ancestral DDPM from the same start noise and sampler noise (seeded by the training
seed), and scored by

- ``sw_ratio``: the sliced Wasserstein distance to fresh data over the floor, both means over ``--pairs`` pairs
  of ``--n`` points (`sw_floor_ratio`; the same data sets for every target of a seed: paired);
- ``nll``: the mean negative log-likelihood of the samples under the true mixture (`gaussian_nll_2d`).

The ε-models are also sampled (same noise) with their raw last-step weights instead of the EMA (``eps_raw``),
with σ_t² = β̃_t instead of β_t (``eps_beta_tilde``), and on the chain respaced to ``--short`` steps with each
variance (``eps_short_beta``, ``eps_short_beta_tilde``). The lesson reads the differences between these per-seed
values with `diffcourse.measure.seed_difference` (a paired t-interval over seeds).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from diffcourse.recipes.toy2d import TOY_DEFAULTS
from diffcourse.target_study import DATASET, run_seed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5], help="training seeds")
    p.add_argument("--n", type=int, default=2000, help="points per set (default 2000)")
    p.add_argument("--pairs", type=int, default=2, help="(samples, data) and (data', data) pairs per seed")
    p.add_argument("--short", type=int, default=10, help="steps of the respaced chain (default 10)")
    p.add_argument("--merge", nargs="+", help="merge the JSON outputs of runs over different seeds")
    a = p.parse_args()
    if a.merge:
        parts = [json.load(open(path)) for path in a.merge]
        merged = {**parts[0], "runs": sorted((r for part in parts for r in part["runs"]), key=lambda r: r["seed"])}
        merged["seeds"] = [r["seed"] for r in merged["runs"]]
        print(json.dumps(merged, indent=1))
        return
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    runs = []
    for s in a.seeds:
        runs.append(run_seed(s, a.n, a.pairs, a.short))
        print(json.dumps({"done": s, **{k: runs[-1][k] for k in ("eps", "x0", "v")}}), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "targets2d", "dataset": DATASET, "recipe": {**TOY_DEFAULTS, "schedule": "linear",
                                                                                "T": 200, "beta_start": 5e-4,
                                                                                "beta_end": 0.1},
                      "n": a.n, "pairs": a.pairs, "short_steps": a.short, "seeds": a.seeds, "torch_threads": 1,
                      "machine": platform.processor() or platform.machine(),
                      "wall_seconds": round(time.perf_counter() - t0, 1), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
