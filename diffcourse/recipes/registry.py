"""The one registry of training recipes: every network the course ships, by name.

The MNIST recipes (`diffcourse.recipes.mnist`) and chapter 8's (`diffcourse.recipes.latent`) know nothing of each
other; this module sits above both, so that ``python -m diffcourse train NAME``, `diffcourse.pretrained.load_or_train`
and the export script find any recipe by its name in one place.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..training import TrainResult
from .base import Recipe
from .latent import LATENT_RECIPES, train_latent_recipe
from .mnist import RECIPES as MNIST_RECIPES
from .mnist import train_mnist_recipe

__all__ = ["RECIPES", "train_recipe"]

RECIPES: dict[str, Recipe] = {**MNIST_RECIPES, **LATENT_RECIPES}


def train_recipe(name: str, out: str | os.PathLike | None = None, *, steps: int | None = None, resume: bool = False,
                 device: torch.device | str = "cpu", progress: bool = True, checkpoint_every_s: float = 120.0,
                 command: str | None = None) -> tuple[TrainResult, Path | None]:
    """Run recipe ``name``, MNIST or chapter 8's; return the `TrainResult` and the path of the export (or None).

    ``steps`` overrides the recipe's step count. With ``out`` the training state is checkpointed to ``out/train.pt``
    (``resume=True`` continues from it) and the EMA weights are exported to ``out/NAME.pt`` at the end.
    """
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}. Choose one of: {', '.join(RECIPES)}.")
    trainer = train_latent_recipe if name in LATENT_RECIPES else train_mnist_recipe
    return trainer(name, out, steps=steps, resume=resume, device=device, progress=progress,
                   checkpoint_every_s=checkpoint_every_s, command=command)
