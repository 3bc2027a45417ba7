"""Where tensors live and how runs are made repeatable.

`get_device()` picks the fastest backend that is present (CUDA, then Apple's MPS,
then the CPU); the environment variable ``DIFFCOURSE_DEVICE`` overrides the choice,
e.g. ``DIFFCOURSE_DEVICE=cpu jupyter lab`` to keep everything on the CPU.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "make_generator"]


def get_device(prefer: str | None = None) -> torch.device:
    """Return the device to compute on: ``prefer`` > ``$DIFFCOURSE_DEVICE`` > cuda > mps > cpu."""
    choice = prefer or os.environ.get("DIFFCOURSE_DEVICE")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"Device {choice!r} was asked for but PyTorch sees no CUDA GPU. "
                "Unset DIFFCOURSE_DEVICE (or pass --device cpu) to run on the CPU."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a CPU `torch.Generator` seeded alike.

    Every random draw in the package takes an explicit generator; this function
    also seeds the global generators so that code which does not (e.g. weight
    initialisation inside `nn.Module` constructors) is repeatable too.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return make_generator(seed)


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (random draws happen on the CPU, then move)."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
