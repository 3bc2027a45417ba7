"""The README's picture of the shipped models: MNIST samples drawn by the package itself.

    python scripts/readme_samples.py [--out docs/images/samples.png]

Left: 48 digits from ``mnist-ddpm`` (DDIM-50, eta = 0, seed 0). Right: ``mnist-cfg`` with classifier-free
guidance w = 2 (DDIM-50), one row per class 0-9. The same calls as ``python -m diffcourse sample``.
"""
from __future__ import annotations

import argparse
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from diffcourse import get_device, load_pretrained  # noqa: E402
from diffcourse.sampling import generate  # noqa: E402
from diffcourse.plotting import show_images  # noqa: E402
from diffcourse.pretrained import pretrained_schedule  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/images/samples.png")
    p.add_argument("--w", type=float, default=2.0, help="guidance weight of the conditional grid")
    a = p.parse_args()
    device = get_device()
    ddpm, cfg = load_pretrained("mnist-ddpm", device), load_pretrained("mnist-cfg", device)
    schedule = pretrained_schedule("mnist-ddpm")
    uncond, sec_u, _ = generate(ddpm, schedule, 48, sampler="ddim", steps=50, seed=0, device=device)
    labels = torch.arange(10).repeat_interleave(8)
    cond, sec_c, _ = generate(cfg, schedule, 80, sampler="ddim", steps=50, seed=0, labels=labels, guidance=a.w,
                              device=device)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 5.2))
    show_images(uncond, nrow=8, ax=ax1, title=f"mnist-ddpm, DDIM-50 (unconditional), {sec_u:.0f} s on {device}")
    show_images(cond, nrow=8, ax=ax2, title=f"mnist-cfg, DDIM-50, guidance w = {a.w:g}: rows = digits 0-9")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    with open(a.out, "wb") as f:
        f.write(buf.getvalue())
    print(f"wrote {a.out} ({len(buf.getvalue()) / 1e3:.0f} kB); sampling took {sec_u:.1f} s + {sec_c:.1f} s on {device}")


if __name__ == "__main__":
    main()
