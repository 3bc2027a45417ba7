"""Recipe: a DDPM on a 2D toy dataset, trained in seconds on a CPU."""
from __future__ import annotations

from functools import partial

import torch

from ..data import toy2d
from ..models import ToyMLP
from ..objectives import diffusion_loss
from ..schedules import NoiseSchedule, make_schedule
from ..training import TrainResult, train

__all__ = ["train_toy_ddpm", "TOY_DEFAULTS"]

TOY_DEFAULTS = dict(steps=2000, batch_size=512, lr=2e-3, T=200, schedule="cosine", hidden=128, depth=3)


def train_toy_ddpm(dataset: str = "moons", *, steps: int = TOY_DEFAULTS["steps"], batch_size: int = TOY_DEFAULTS["batch_size"],
                   lr: float = TOY_DEFAULTS["lr"], target: str = "eps", schedule: NoiseSchedule | None = None,
                   hidden: int = TOY_DEFAULTS["hidden"], depth: int = TOY_DEFAULTS["depth"], seed: int = 0,
                   progress: bool = True, device: torch.device | str = "cpu") -> tuple[TrainResult, NoiseSchedule]:
    r"""Train a `ToyMLP` with :math:`L_\text{simple}` on fresh draws of ``dataset`` every step.

    Returns the `TrainResult` (use ``.ema_model`` for sampling) and the schedule it was trained with
    (by default cosine with T=200: in 2D a short chain suffices).
    """
    schedule = schedule or make_schedule(TOY_DEFAULTS["schedule"], T=TOY_DEFAULTS["T"])
    torch.manual_seed(seed)
    model = ToyMLP(hidden=hidden, depth=depth)
    next_batch = partial(toy2d.sample, dataset, batch_size)

    def loss_fn(m, x0, g):
        return diffusion_loss(m, schedule, x0, g, target=target)

    result = train(model, loss_fn, lambda g: next_batch(generator=g), steps, lr=lr, ema_decay=0.995, seed=seed,
                   progress=progress, device=device, desc=f"2D {dataset} ({target})")
    return result, schedule
