r"""Recipes for the MNIST networks: one function call (or ``python -m diffcourse train NAME``) per checkpoint.

=========================  ===========================================================================
``mnist-ddpm``             unconditional `UNet`, :math:`\varepsilon`-prediction, linear schedule, T=1000
``mnist-cfg``              class-conditional `UNet`, labels dropped to the null label with p=0.1 (CFG)
``mnist-classifier``       `Classifier` on clean digits (small random shifts); its features give FID
``mnist-noisy-classifier`` `NoisyClassifier` on :math:`x_t` = ``q_sample(x_0, t, ε)``, t uniform
=========================  ===========================================================================

Every recipe runs the package's one training loop (`diffcourse.training.train`: Adam, EMA,
checkpoint every two minutes, exact resume) and draws all randomness from one seeded
generator, so a run repeats. `train_mnist_recipe` writes two files into ``out``:

* ``train.pt`` — the full training state (for ``--resume``);
* ``NAME.pt`` — the *export*: the EMA weights and what is needed to rebuild the network,
  ``{"state_dict", "config", "model", "recipe", "steps", "seconds", …}``; this is the file
  shipped in ``diffcourse/checkpoints/`` and read by `diffcourse.load_pretrained`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..data.mnist import load_mnist
from ..flows import flow_matching_loss
from ..objectives import diffusion_loss
from ..schedules import make_schedule
from ..training import TrainResult, train
from .base import (MODEL_CLASSES, Recipe, build_model, export_path, lr_multiplier, run_settings, snapshot_steps,
                   write_export)

__all__ = ["Recipe", "RECIPES", "MODEL_CLASSES", "build_model", "train_mnist_recipe", "export_path", "lr_multiplier",
           "random_shift"]

_UNET = dict(ch=24, ch_mult=[1, 2, 2], num_res_blocks=1, attn_res=[7])
# 19 500 steps x 128 = 42 epochs: warm-up, a cosine decay over the first 6500 steps, then a warm restart (warm-up
# again to half the learning rate, and a second cosine to 0 at step 19 500); min-SNR-5, bfloat16 autocast
# (1 CPU thread each)
_DIFFUSION = dict(steps=19500, batch_size=128, lr=2e-3, ema_decay=0.9995, lr_schedule="cosine", warmup=200,
                  min_snr_gamma=5.0, bf16=True, restart_at=6500, restart_lr_scale=0.5)
# (the first 6500 steps are a complete run of their own: `--steps 6500` stops there, and `--steps N --resume`
# continues it)
# The studies of chapters 3, 8 and 10 change one thing against that first 6500-step run (same seed, so the same
# batches, times and noise draws): the loss weighting (plain L_simple), or the objective (flow matching).
_STUDY = dict(_DIFFUSION, steps=6500, snapshot_every=500)

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("mnist-ddpm", "diffusion", "UNet", dict(_UNET), **_DIFFUSION,
           description="Unconditional DDPM U-Net, eps-prediction (min-SNR-5 weighting), linear schedule T=1000."),
    Recipe("mnist-cfg", "diffusion", "UNet", dict(_UNET, num_classes=10), **_DIFFUSION, p_uncond=0.1,
           description="Class-conditional U-Net with label dropout p=0.1 (classifier-free guidance)."),
    Recipe("mnist-ddpm-lsimple", "diffusion", "UNet", dict(_UNET), **dict(_STUDY, min_snr_gamma=None),
           description="The first 6500 steps of mnist-ddpm with plain L_simple instead of min-SNR-5 (chapter 3's study)."),
    Recipe("mnist-flow", "flow", "UNet", dict(_UNET), **dict(_STUDY, min_snr_gamma=None),
           description="The same U-Net and 6500-step budget trained by conditional flow matching on the linear "
                       "path x_t = (1-t) x_0 + t eps (chapter 10)."),
    Recipe("mnist-ddpm-wide", "diffusion", "UNet", dict(_UNET, ch=32), **dict(_DIFFUSION, min_snr_gamma=None,
                                                                      snapshot_every=1500),
           description="Candidate for mnist-ddpm (issue 29's capacity run): the U-Net at 32 base channels (1.1M "
                       "parameters), plain L_simple, the shipped 19 500-step schedule with its warm restart."),
    Recipe("mnist-classifier", "classifier", "Classifier", dict(ch=32, dropout=0.2), steps=4000, batch_size=128,
           lr=2e-3, lr_schedule="cosine", warmup=100, max_shift=2, bf16=True,
           description="CNN on clean MNIST (±2 px random shifts, cosine LR); its penultimate layer is the FID feature space."),
    Recipe("mnist-noisy-classifier", "noisy-classifier", "NoisyClassifier", dict(ch=32, spatial_head=True, linear_bases=4), steps=8000, batch_size=128,
           lr=2e-3, lr_schedule="cosine", warmup=200, bf16=True, t_high_share=0.5,
           description="Time-conditioned CNN trained on q_sample'd digits, t uniform on [0, T) for half of each batch and "
                       "on [T/2, T) for the other half (classifier guidance)."),
]}


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by an independent random integer offset in ``[-max_shift, max_shift]`` (fill −1 = black)."""
    if max_shift <= 0:
        return x
    B, C, H, W = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p), value=-1.0)
    oy = torch.randint(0, 2 * p + 1, (B,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * p + 1, (B,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(W, device=x.device))[:, None, None, :]
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows, cols]


def _noisy_classifier_times(n: int, T: int, high_share: float, g: torch.Generator) -> torch.Tensor:
    """Timesteps for a noisy-classifier batch: uniform on ``[0, T)``, except a ``high_share`` of the batch drawn from
    ``[T/2, T)``, where the signal is faint and a classifier needs the most examples to learn anything."""
    t = torch.randint(0, T, (n,), generator=g)
    if high_share > 0:
        high = torch.rand(n, generator=g) < high_share
        t = torch.where(high, torch.randint(T // 2, T, (n,), generator=g), t)
    return t


def _loss_fn(recipe: Recipe) -> Callable[[nn.Module, Any, torch.Generator], torch.Tensor]:
    schedule = make_schedule(recipe.schedule, recipe.T)
    if recipe.kind == "diffusion":
        conditional = recipe.model_kwargs.get("num_classes") is not None

        def loss(m, batch, g):
            x0, y = batch
            return diffusion_loss(m, schedule, x0, g, target=recipe.target, y=y if conditional else None,
                                  p_uncond=recipe.p_uncond, min_snr_gamma=recipe.min_snr_gamma)
    elif recipe.kind == "flow":
        conditional = recipe.model_kwargs.get("num_classes") is not None

        def loss(m, batch, g):
            x0, y = batch
            return flow_matching_loss(m, x0, g, y=y if conditional else None, p_uncond=recipe.p_uncond)
    elif recipe.kind == "classifier":
        def loss(m, batch, g):
            x, y = batch
            return F.cross_entropy(m(random_shift(x, recipe.max_shift, g)), y)
    elif recipe.kind == "noisy-classifier":
        def loss(m, batch, g):
            x0, y = batch
            t = _noisy_classifier_times(x0.shape[0], schedule.T, recipe.t_high_share, g).to(x0.device)
            eps = torch.randn(x0.shape, generator=g).to(x0.device)
            return F.cross_entropy(m(schedule.q_sample(x0, t, eps), t), y)
    else:
        raise ValueError(f"Unknown recipe kind {recipe.kind!r}.")
    return loss


def _mnist_batches(recipe: Recipe) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """``next_batch(generator)``: ``recipe.batch_size`` training digits and their labels, drawn with replacement."""
    x_train, y_train = load_mnist("train")

    def next_batch(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, x_train.shape[0], (recipe.batch_size,), generator=g)
        return x_train[idx], y_train[idx]
    return next_batch


def train_mnist_recipe(name: str, out: str | os.PathLike | None = None, *, steps: int | None = None,
                       resume: bool = False, device: torch.device | str = "cpu", progress: bool = True,
                       checkpoint_every_s: float = 120.0, command: str | None = None
                       ) -> tuple[TrainResult, Path | None]:
    """Run MNIST recipe ``name`` (see `RECIPES`); return the `TrainResult` and the path of the export (or None).

    ``steps`` overrides the recipe's step count (tests use a handful). With ``out`` the training
    state is checkpointed to ``out/train.pt`` (``resume=True`` continues from it) and at the end
    the EMA weights are exported to ``out/NAME.pt``. Every recipe, MNIST or chapter 8's, is run by name
    with `diffcourse.recipes.registry.train_recipe`.
    """
    if name not in RECIPES:
        raise ValueError(f"Unknown MNIST recipe {name!r}. Choose one of: {', '.join(RECIPES)}.")
    recipe = RECIPES[name]
    steps = int(steps if steps is not None else recipe.steps)
    torch.manual_seed(recipe.seed)  # weight initialisation
    model = build_model(recipe.model, recipe.model_kwargs)
    out_dir = Path(out) if out is not None else None
    settings = run_settings(recipe, steps)
    result = train(model, _loss_fn(recipe), _mnist_batches(recipe), steps, lr=recipe.lr, ema_decay=recipe.ema_decay,
                   seed=recipe.seed, checkpoint=out_dir / "train.pt" if out_dir is not None else None,
                   checkpoint_every_s=checkpoint_every_s, resume=resume, device=device, progress=progress, desc=name,
                   extra={"recipe": settings}, lr_lambda=lr_multiplier(recipe, steps),
                   autocast=torch.bfloat16 if recipe.bf16 else None, snapshot_steps=snapshot_steps(recipe, steps))
    if out_dir is None:
        return result, None
    return result, write_export(export_path(name, out_dir), result.ema_model, model, recipe, settings, steps=steps,
                                seconds=result.seconds, device=device, command=command)
