r"""``python -m diffcourse evaluate SAMPLES.npz``: score MNIST samples written by ``sample``.

Prints one JSON object: FID against the same number of MNIST test digits in the ``mnist-classifier``
feature space, the real-vs-real floor at that N (two disjoint sets of real digits), the Inception-Score
analogue, improved precision and recall (k = 3), and — when the file has ``labels`` — the accuracy,
the fraction of samples the classifier reads as the asked-for digit.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..evaluation import evaluate_images

__all__ = ["register", "run"]


def _load_samples(path: Path):
    """Open an ``.npz`` of samples without ever unpickling: a file that is not one is refused, not executed."""
    import zipfile

    import numpy as np

    if path.is_dir() or not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a samples file: expected an .npz written by "
                         "`python -m diffcourse sample … --out FILE.npz`.")
    return np.load(path, allow_pickle=False)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="score an .npz of MNIST samples (FID, floor, IS, precision, recall, accuracy)",
                              description=__doc__.split("\n\n")[1].replace("\n", " "),
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("samples", help=".npz written by `python -m diffcourse sample` (key images, optional labels)")
    p.add_argument("--seed", type=int, default=0, help="which test digits form the reference sets")
    p.add_argument("--json", default=None, help="also write the JSON to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.samples)
    try:
        if not path.exists():
            raise ValueError(f"{path} does not exist; write one with `python -m diffcourse sample … --out {path}`.")
        data = _load_samples(path)
        if "images" not in data:
            raise ValueError(f"{path} has no 'images' array (keys: {list(data.keys())}).")
        labels = torch.from_numpy(data["labels"]) if "labels" in data else None
        result = evaluate_images(torch.from_numpy(data["images"]), labels, seed=args.seed)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps({"samples": str(path), **result}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0
