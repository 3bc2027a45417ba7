"""Benchmark for chapter 3: sample quality and time of DDIM (eta = 0, 1) and DDPM against the number of steps.

    python benchmarks/ddim_table.py [--n 500] [--steps 10 20 50 100] [--ddpm] [--out benchmarks/results/ddim_table.json]

For each sampler and step count it draws N samples from the shipped ``mnist-ddpm`` (same seed for all),
computes FID against N test images in the ``mnist-classifier`` feature space, and records the seconds.
The real-vs-real floor (FID between two disjoint sets of N test images) is reported beside, since FID
is biased upwards at small N. Results are written as JSON after every row, so a long run can be read
while it goes; chapter 3 shows this file next to the small table it measures itself.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from diffcourse import get_device, load_pretrained
from diffcourse.data.mnist import load_mnist
from diffcourse.metrics import classifier_features, feature_stats, frechet_distance
from diffcourse.objectives import eps_fn
from diffcourse.pretrained import pretrained_schedule
from diffcourse.samplers.ddim import ddim_sample
from diffcourse.samplers.ddpm import ddpm_sample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument("--ddpm", action="store_true", help="also run DDPM with all 1000 steps (slow on a CPU)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/ddim_table.json")
    a = p.parse_args()
    device = get_device()
    model = load_pretrained("mnist-ddpm", device)
    schedule = pretrained_schedule("mnist-ddpm")
    classifier = load_pretrained("mnist-classifier", device)
    test_x, _ = load_mnist("test")
    perm = torch.randperm(len(test_x), generator=torch.Generator().manual_seed(a.seed))
    ref = classifier_features(test_x[perm[:a.n]], classifier)
    ref_stats = feature_stats(ref)
    floor = frechet_distance(*feature_stats(classifier_features(test_x[perm[a.n:2 * a.n]], classifier)), *ref_stats)
    f = eps_fn(model, schedule)
    report = {"benchmark": "ddim_table", "model": "mnist-ddpm", "n": a.n, "device": str(device),
              "threads": torch.get_num_threads(), "machine": platform.machine(), "fid_floor": round(floor, 3), "rows": []}
    runs = [("DDIM eta=0", s, 0.0) for s in a.steps] + [("DDIM eta=1", s, 1.0) for s in a.steps]
    if a.ddpm:
        runs.append(("DDPM", schedule.T, None))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, steps, eta in runs:
        g = torch.Generator().manual_seed(a.seed)
        t0 = time.perf_counter()
        images = []
        for start in range(0, a.n, a.batch_size):
            shape = (min(a.batch_size, a.n - start), 1, 28, 28)
            if eta is None:
                x = ddpm_sample(f, schedule, shape, generator=g, device=device, clip_x0=1.0)
            else:
                x = ddim_sample(f, schedule, shape, steps=steps, eta=eta, generator=g, device=device, clip_x0=1.0)
            images.append(x.clamp(-1, 1).cpu())
        seconds = time.perf_counter() - t0
        fid = frechet_distance(*feature_stats(classifier_features(torch.cat(images), classifier)), *ref_stats)
        report["rows"].append({"sampler": name, "steps": steps, "nfe": steps, "fid": round(fid, 3),
                               "fid_over_floor": round(fid / floor, 2), "seconds": round(seconds, 1)})
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report["rows"][-1]), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
