"""``python -m diffcourse train RECIPE``: train one of the MNIST networks with its recipe.

Writes ``OUT/train.pt`` (the training state, saved every two minutes, for ``--resume``) and, at the
end, ``OUT/RECIPE.pt`` with the EMA weights (the file shipped in ``diffcourse/checkpoints/``).
The progress bar goes to stderr.
"""
from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..recipes.registry import RECIPES

    p = subparsers.add_parser(
        "train", help="train an MNIST network with one of the course's recipes",
        description="Train an MNIST network with one of the course's recipes. "
                    + " ".join(f"{r.name}: {r.description}" for r in RECIPES.values()),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("recipe", choices=sorted(RECIPES), help="which recipe to run")
    p.add_argument("--out", default=None, help="output folder (default: runs/RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train.pt if it exists")
    p.add_argument("--device", default=None, help="cpu, cuda, mps … (default: diffcourse.device.get_device())")
    p.add_argument("--steps", type=int, default=None, help="number of optimiser steps (default: the recipe's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: PyTorch's choice)")
    p.add_argument("--checkpoint-every", type=float, default=120.0, help="seconds between training checkpoints")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..device import get_device
    from ..recipes.registry import train_recipe

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or f"runs/{args.recipe}"
    command = "python -m diffcourse " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["train"] \
        else f"python -m diffcourse train {args.recipe}"
    try:
        device = get_device(args.device)
        result, path = train_recipe(args.recipe, out, steps=args.steps, resume=args.resume, device=device,
                                    progress=not args.no_progress, checkpoint_every_s=args.checkpoint_every,
                                    command=command)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tail = result.losses[-100:]
    loss = f"{sum(tail) / len(tail):.4f}" if tail else "n/a"
    print(f"{args.recipe}: {result.steps} steps in {result.seconds:.1f} s on {device}; "
          f"final loss (mean of last 100) {loss}; EMA weights in {path}")
    return 0
