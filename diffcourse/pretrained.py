r"""The course's networks: ``load_pretrained("mnist-ddpm")`` and friends, or ``load_or_train(NAME, TRAIN)``.

A lesson loads the shipped checkpoint of each network it uses (`load_pretrained`, hash-verified; see
`diffcourse.loading`, whose names this module also offers), or, with its ``TRAIN = True`` flag, trains it here with
the recipe that produced the shipped file (`load_or_train`). Loading sits below the recipes (a chapter-8 recipe loads
a shipped autoencoder); this module sits above them, since it can train any of them.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .device import get_device
from .loading import (CHECKPOINT_DIR, ChecksumError, PretrainedError, available, checkpoint_info, load_export,
                      load_model, load_pretrained, manifest, network_from_export, pretrained_schedule, sha256)
from .recipes.registry import train_recipe

__all__ = ["CHECKPOINT_DIR", "PretrainedError", "ChecksumError", "available", "manifest", "checkpoint_info", "load_model",
           "sha256", "load_pretrained", "load_export", "load_or_train", "pretrained_schedule"]


def load_or_train(name: str, train: bool = False, device: torch.device | str | None = None, *,
                  out: str | os.PathLike | None = None, steps: int | None = None) -> nn.Module:
    """The network of recipe ``name``: the shipped checkpoint, or — with ``train=True`` — one trained here.

    This is what a lesson's ``TRAIN = False`` flag switches. Training runs the same recipe that
    produced the shipped file (``python -m diffcourse train NAME``), with a progress bar, and
    checkpoints to ``out`` (default ``runs/NAME``) so an interrupted run resumes where it stopped.
    """
    if not train:
        return load_pretrained(name, device)
    device = get_device(device)
    folder = Path(out) if out is not None else Path("runs") / name
    _, path = train_recipe(name, folder, steps=steps, resume=True, device=device, progress=True,
                           command=f"diffcourse.pretrained.load_or_train({name!r}, train=True)")
    state = load_export(path)
    return network_from_export(state, {"recipe": name, "settings": state["settings"], "training_steps": state["steps"],
                                       "wall_time_s": state["seconds"], "device": state["device"], "file": str(path)},
                               device)
