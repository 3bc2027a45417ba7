r"""What every training recipe shares: the `Recipe` record, the network classes a checkpoint names, the learning-rate
schedule, and the exported file.

This module sits below the recipes (`diffcourse.recipes.mnist`, `diffcourse.recipes.latent`), the one registry
above them (`diffcourse.recipes.registry`) and the checkpoint loader (`diffcourse.loading`, which rebuilds a network
with `build_model`); it imports none of them.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..models import GAN, Autoencoder, Classifier, LatentUNet, NoisyClassifier, UNet

__all__ = ["Recipe", "MODEL_CLASSES", "build_model", "run_settings", "lr_multiplier", "snapshot_steps", "export_path",
           "write_export"]

MODEL_CLASSES: dict[str, type[nn.Module]] = {"UNet": UNet, "Classifier": Classifier, "NoisyClassifier": NoisyClassifier,
                                            # chapter 8 (recipes in diffcourse.recipes.latent)
                                            "Autoencoder": Autoencoder, "LatentUNet": LatentUNet, "GAN": GAN}


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a training run (the defaults reproduce the shipped checkpoints)."""

    name: str
    kind: str                      # "diffusion" | "flow" | "classifier" | "noisy-classifier"
    model: str                     # a key of MODEL_CLASSES
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 5000
    batch_size: int = 64
    lr: float = 1e-3
    ema_decay: float = 0.999
    seed: int = 0
    schedule: str = "linear"
    T: int = 1000
    target: str = "eps"
    p_uncond: float = 0.0
    lr_schedule: str = "constant"  # "constant" | "cosine" (decay to 0 over `steps`)
    warmup: int = 0                # steps of linear learning-rate warm-up before the schedule
    min_snr_gamma: float | None = None  # diffusion: min-SNR-γ loss weighting (None: plain L_simple)
    bf16: bool = False             # mixed-precision forward pass (bfloat16 autocast)
    max_shift: int = 0             # classifier: random translation in pixels
    t_high_share: float = 0.0      # noisy classifier: share of each batch with t drawn from [T/2, T) instead of [0, T)
    restart_at: int | None = None  # cosine: a run longer than this restarts its cosine here (see `lr_multiplier`)
    restart_lr_scale: float = 1.0  # … at this fraction of `lr`
    snapshot_every: int = 0        # save the EMA weights every this many steps too (quality-vs-compute curves)
    description: str = ""


def build_model(model: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate network class ``model`` (a key of `MODEL_CLASSES`) from its ``config`` dict."""
    if model not in MODEL_CLASSES:
        raise ValueError(f"Unknown model class {model!r}; known: {sorted(MODEL_CLASSES)}.")
    return MODEL_CLASSES[model](**config)


def run_settings(recipe: Recipe, steps: int) -> dict[str, Any]:
    """What a run records of its recipe (in its checkpoint and its export): every field but the network's arguments
    (those are the export's ``config``), with the number of steps it ran."""
    settings = {k: v for k, v in asdict(recipe).items() if k != "model_kwargs"}
    settings["steps"] = steps
    return settings


def lr_multiplier(recipe: Recipe, steps: int) -> Callable[[int], float] | None:
    r"""The learning-rate factor of step :math:`n`: linear warm-up over ``recipe.warmup`` steps, then
    constant or cosine, :math:`\tfrac12\big(1+\cos(\pi\,(n-n_w)/(N-n_w))\big)`, decaying to 0 at step N.

    With ``recipe.restart_at`` :math:`= R` and a longer run (N > R), the cosine of the first R steps is the one a
    run of exactly R steps has, and a second cycle follows (a *warm restart*, Loshchilov & Hutter 2017): warm-up
    again, to ``recipe.restart_lr_scale`` times the rate, then a cosine to 0 at step N. A run of R steps is thus the
    first part of every longer one: it can be continued with ``--resume --steps N``."""
    if recipe.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"Unknown lr_schedule {recipe.lr_schedule!r}: use 'constant' or 'cosine'.")
    if recipe.lr_schedule == "constant" and recipe.warmup <= 0:
        return None
    warm = max(int(recipe.warmup), 0)
    restart = recipe.restart_at if recipe.restart_at is not None and recipe.lr_schedule == "cosine" else None

    def cycle(n: int, length: int) -> float:  # warm-up, then cosine to 0 at the cycle's end
        if n < warm:
            return (n + 1) / warm
        if recipe.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (n - warm) / max(length - warm, 1)))

    def factor(step: int) -> float:
        if restart is None or steps <= restart:
            return cycle(step, steps)
        if step < restart:
            return cycle(step, restart)
        return recipe.restart_lr_scale * cycle(step - restart, steps - restart)
    return factor


def snapshot_steps(recipe: Recipe, steps: int) -> tuple[int, ...]:
    """The steps at which a run of ``steps`` also saves its EMA weights: every ``recipe.snapshot_every`` (or none)."""
    return tuple(range(recipe.snapshot_every, steps + 1, recipe.snapshot_every)) if recipe.snapshot_every else ()


def export_path(name: str, out: str | os.PathLike) -> Path:
    """Where a recipe's run writes the exported EMA weights of recipe ``name``: ``out/NAME.pt``."""
    return Path(out) / f"{name}.pt"


def write_export(path: Path, weights: nn.Module, model: nn.Module, recipe: Recipe, settings: dict[str, Any], *,
                 steps: int, seconds: float, device: torch.device | str, command: str | None,
                 cpu_seconds: float | None = None) -> Path:
    """Write the shipped form of a run to ``path`` (through a temporary file, so a crash leaves no half file):
    ``weights``' state (the EMA copy), the config that rebuilds ``model``, the recipe's settings and the clocks."""
    export = {"state_dict": {k: v.detach().cpu() for k, v in weights.state_dict().items()},
              "config": dict(model.config), "model": recipe.model, "recipe": recipe.name, "settings": settings,
              "steps": steps, "seconds": round(seconds, 1),
              **({"cpu_seconds": round(cpu_seconds, 1)} if cpu_seconds is not None else {}),
              "device": str(device), "command": command or ""}
    tmp = path.with_suffix(".pt.tmp")
    torch.save(export, tmp)
    tmp.replace(path)
    return path
