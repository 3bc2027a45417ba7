"""Benchmark: chapter 9's edits on the shipped MNIST models — RePaint's harmony vs cost, SDEdit's strength curve.

    python benchmarks/editing.py [--n 256] [--steps 15] [--resample 1 2 4] [--masks bottom centre]
                                 [--strengths 0.1 0.2 0.4 0.6 0.8 1.0] [--out benchmarks/results/editing.json]

* **repaint** — for each mask and r in ``--resample``: N random test digits inpainted with
  `diffcourse.editing.inpaint` (``--steps`` DDIM steps, η = 1, x̂0 clipped to [-1, 1], r = 1 is plain
  replacement). Measured: the classifier's agreement with the original label, the seam
  (`diffcourse.editing.seam_score` of the results over that of the real digits under the same mask), NFE per
  digit and seconds; per r > 1, the paired bootstrap of r against r = 1 over the digits (same digits and starting
  noise: both are means of per-digit values) for agreement and the per-digit seam ratio, with its verdict.
* **sdedit** — the same digits reduced to 7×7 blocks (`low_pass`, factor 4) as guides, edited with
  `diffcourse.editing.sdedit` at each strength (``--sdedit-steps`` steps over the full range). Measured: the mean
  L2 distance to the guide (faithfulness), the classifier's mean confidence (realism), agreement with the
  original label, NFE per digit and seconds.

The same seed gives the same digits and noise for every row, so rows differ only by the setting. JSON is
rewritten after every row (``--out``) and each row is printed as it finishes. The lesson
(``notebooks/09_editing.ipynb``) measures the same curves at N = 32; use this for a larger N.
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
from diffcourse.editing import MASKS, edit_grid, inpaint, inpaint_nfe, low_pass, make_mask, sdedit, seam_score
from diffcourse.measure import bootstrap_difference
from diffcourse.objectives import eps_fn
from diffcourse.pretrained import pretrained_schedule


def batched(fn, x: torch.Tensor, batch_size: int, seed: int) -> torch.Tensor:
    """Apply ``fn(x_batch, generator)`` in batches (one generator per batch, seeded from ``seed`` and the batch index)."""
    out = [fn(x[i:i + batch_size], torch.Generator().manual_seed(seed + i)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def probabilities(judge: torch.nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([judge(images[i:i + 500].clamp(-1, 1).to(device)).softmax(1).cpu() for i in range(0, len(images), 500)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256, help="test digits per row")
    p.add_argument("--steps", type=int, default=15, help="DDIM steps of the inpainting grid")
    p.add_argument("--resample", type=int, nargs="*", default=[1, 2, 4], help="RePaint's r (1 = plain replacement)")
    p.add_argument("--masks", nargs="*", default=["bottom", "centre"], choices=[m for m in MASKS if m != "random"])
    p.add_argument("--strengths", type=float, nargs="*", default=[0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    p.add_argument("--sdedit-steps", type=int, default=20, help="SDEdit steps over the full range")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/editing.json")
    p.add_argument("--parts", nargs="*", default=["repaint", "sdedit"], choices=["repaint", "sdedit"],
                   help="parts to run; the others' rows are kept from --out")
    a = p.parse_args()

    device = get_device()
    model, schedule = load_pretrained("mnist-ddpm", device), pretrained_schedule("mnist-ddpm")
    eps = eps_fn(model, schedule)
    judge = load_pretrained("mnist-classifier", device)
    test_x, test_y = load_mnist("test")
    pick = torch.randperm(len(test_x), generator=torch.Generator().manual_seed(a.seed))[:a.n]
    x0, y0 = test_x[pick], test_y[pick]
    p_real = probabilities(judge, x0, device)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "editing", "n": a.n, "seed": a.seed, "device": str(device), "threads": torch.get_num_threads(),
              "machine": platform.machine(), "model": "mnist-ddpm", "steps": a.steps, "sdedit_steps": a.sdedit_steps,
              "real_digits": {"agreement": round(float((p_real.argmax(1) == y0).float().mean()), 4),
                              "confidence": round(float(p_real.max(1).values.mean()), 4)},
              "repaint": [], "sdedit": []}
    if out.exists() and set(a.parts) != {"repaint", "sdedit"}:   # keep the parts not rerun
        kept = json.loads(out.read_text())
        report.update({k: v for k, v in kept.items() if k in ("repaint", "sdedit", "guides") and k not in a.parts})
        report.update({k: [] for k in a.parts})

    def save(row: dict, part: str) -> None:
        report[part].append(row)
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps({"part": part, **row}), flush=True)

    for name in (a.masks if "repaint" in a.parts else []):
        mask = make_mask(name)
        per_digit = {}
        real_seam = float(seam_score(x0, mask).mean())
        for r in a.resample:
            t0 = time.perf_counter()
            res = batched(lambda xb, g: inpaint(eps, schedule, xb, mask, steps=a.steps, resample=r, clip_x0=1.0,
                                                generator=g, device=device), x0, a.batch_size, a.seed)
            seconds = time.perf_counter() - t0
            pr = probabilities(judge, res, device)
            per_digit[r] = {"agreement": (pr.argmax(1) == y0).double(), "seam_ratio": seam_score(res, mask).double() / real_seam}
            row = {"mask": name, "r": r, "nfe": inpaint_nfe(schedule.T, a.steps, r),
                   "agreement": round(float(per_digit[r]["agreement"].mean()), 4),
                   "seam_ratio": round(float(per_digit[r]["seam_ratio"].mean()), 4), "seconds": round(seconds, 1)}
            if r != a.resample[0]:
                row[f"vs_r{a.resample[0]}"] = paired_verdicts(per_digit[r], per_digit[a.resample[0]], r, a.resample[0])
            save(row, "repaint")
    if "sdedit" not in a.parts:
        print(json.dumps(report), flush=True)
        return

    guides = low_pass(x0, 4)
    p_guide = probabilities(judge, guides, device)
    report["guides"] = {"kind": "7x7 blocks (low_pass, factor 4)",
                        "agreement": round(float((p_guide.argmax(1) == y0).float().mean()), 4),
                        "confidence": round(float(p_guide.max(1).values.mean()), 4),
                        "real_l2_to_guide": round(float((x0 - guides).flatten(1).norm(dim=1).mean()), 4)}
    for strength in a.strengths:
        t0 = time.perf_counter()
        res = batched(lambda xb, g: sdedit(eps, schedule, xb, strength, steps=a.sdedit_steps, clip_x0=1.0, generator=g,
                                           device=device), guides, a.batch_size, a.seed)
        seconds = time.perf_counter() - t0
        pr = probabilities(judge, res, device)
        save({"strength": strength, "nfe": len(edit_grid(schedule.T, a.sdedit_steps, strength)) - 1,
              "l2_to_guide": round(float((res - guides).flatten(1).norm(dim=1).mean()), 4),
              "confidence": round(float(pr.max(1).values.mean()), 4),
              "agreement": round(float((pr.argmax(1) == y0).float().mean()), 4), "seconds": round(seconds, 1)}, "sdedit")
    print(json.dumps(report), flush=True)


def paired_verdicts(a: dict, b: dict, r_a: int, r_b: int) -> dict:
    """Paired bootstrap (2000 resamples over the digits) of the mean per-digit agreement and seam ratio, r_a - r_b."""
    mean = lambda v, _: v.mean().item()  # noqa: E731
    out = {}
    for key, lower in (("agreement", False), ("seam_ratio", True)):
        d = bootstrap_difference(mean, a[key], b[key], n_boot=2000, name_a=f"r = {r_a}", name_b=f"r = {r_b}")
        out[key] = {"difference": round(d.estimate, 4), "low": round(d.low, 4), "high": round(d.high, 4),
                    "resolved": d.resolved, "verdict": d.verdict(key.replace("_", " "), lower_is_better=lower)}
    return out


if __name__ == "__main__":
    main()
