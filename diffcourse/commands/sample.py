r"""``python -m diffcourse sample``: draw MNIST samples from a shipped (or exported) diffusion model.

Writes an ``.npz`` with ``images`` (float32, ``(N, 1, 28, 28)`` in [-1, 1]) and, for a
class-conditional model, ``labels`` (int64); prints the seconds taken and the number of
network evaluations per sample (NFE). With ``--guidance W`` a conditional model uses
classifier-free guidance,

.. math::  \hat\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + w\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big),

so ``w = 1`` is the plain conditional model, ``w = 0`` the unconditional one, and ``w > 1``
pushes harder towards the class (two network evaluations per step). The sampling itself is
`diffcourse.sampling.generate`; this module only parses, loads and saves.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..samplers import SAMPLERS

    p = subparsers.add_parser(
        "sample", help="draw MNIST samples from a diffusion model into an .npz file",
        description=__doc__.split("\n\n")[0].split(":", 1)[1].strip() + " Writes images (N,1,28,28) in [-1,1] "
                    "and labels for conditional models; prints seconds and NFE.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="shipped checkpoint (mnist-ddpm, mnist-cfg) or path to an exported .pt")
    p.add_argument("--sampler", choices=list(SAMPLERS), default="ddim",
                   help="; ".join(f"{k}: {v.label}" for k, v in SAMPLERS.items()))
    p.add_argument("--steps", type=int, default=50, help="steps of ddim/sde/pc/ode (ignored by ddpm, which uses all T)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta in [0, 1]: 0 deterministic, 1 DDPM-like")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance weight w (eps_u + w (eps_c - eps_u)); conditional models only")
    p.add_argument("--classifier-scale", type=float, default=None,
                   help="classifier guidance scale s for an unconditional model, guided by --classifier towards --labels")
    p.add_argument("--classifier", default="mnist-noisy-classifier", help="noise-aware classifier for --classifier-scale")
    p.add_argument("--labels", default=None, help="'0-9' balanced, '3' one digit, '1,7' a list (conditional models; default 0-9)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--device", default=None, help="cpu, cuda, mps … (default: diffcourse.device.get_device())")
    p.add_argument("--batch-size", type=int, default=500, help="samples per batch")
    p.add_argument("--no-clip", action="store_true", help="do not clip the predicted x0 to [-1, 1] during sampling")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def check_output_path(out: Path) -> None:
    """Fail before sampling if ``out`` cannot be written: a folder on its path is a file, or it is a folder."""
    for parent in [out, *out.parents]:
        if parent.exists():
            if parent != out and not parent.is_dir():
                raise ValueError(f"--out {out}: {parent} is a file, not a folder; choose another output path.")
            if parent == out and out.is_dir():
                raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'samples.npz'}.")
            return


def _labels_for(args: argparse.Namespace, model):
    from ..sampling import parse_labels

    if args.classifier_scale is not None:
        return parse_labels(args.labels or "0-9", args.n, 10)
    if getattr(model, "label", None) is not None:
        return parse_labels(args.labels or "0-9", args.n, model.label.num_classes)
    if args.labels is not None:
        raise ValueError(f"--model {args.model} is unconditional: --labels needs a conditional model (e.g. mnist-cfg) "
                         "or --classifier-scale for classifier guidance.")
    return None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..device import get_device
    from ..pretrained import load_model
    from ..samplers import SAMPLERS
    from ..sampling import generate
    from ..schedules import make_schedule

    out = Path(args.out)
    try:
        check_output_path(out)
        device = get_device(args.device)
        model, meta = load_model(args.model, device)
        classifier = load_model(args.classifier, device)[0] if args.classifier_scale is not None else None
        labels = _labels_for(args, model)
        schedule = make_schedule(meta["schedule"]["name"], meta["schedule"]["T"])
        images, seconds, nfe = generate(model, schedule, args.n, sampler=args.sampler, steps=args.steps, eta=args.eta,
                                        seed=args.seed, labels=labels, guidance=args.guidance, device=device,
                                        batch_size=args.batch_size, clip_x0=None if args.no_clip else 1.0,
                                        progress=not args.no_progress, classifier=classifier,
                                        classifier_scale=args.classifier_scale)
        out.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"images": images.numpy().astype(np.float32)}
        if labels is not None:
            arrays["labels"] = labels.numpy().astype(np.int64)
        np.savez(out, **arrays)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    name = SAMPLERS[args.sampler].label + ("" if args.sampler == "ddpm" else f", {args.steps} steps") \
        + (f", eta={args.eta}" if args.sampler == "ddim" else "")
    print(f"{args.n} samples from {args.model} with {name}"
          + (f", guidance w={args.guidance}" if args.guidance is not None else "")
          + (f", classifier guidance s={args.classifier_scale}" if args.classifier_scale is not None else "")
          + f" in {seconds:.2f} s on {device} ({seconds / max(args.n, 1) * 1000:.1f} ms/sample); NFE={nfe}; wrote {out}")
    return 0
