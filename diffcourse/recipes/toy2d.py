"""Recipe: a DDPM on a 2D toy dataset, trained in seconds on a CPU."""
from __future__ import annotations

from functools import partial

import torch

from ..data import toy2d
from torch.nn import functional as F

from ..models import ToyClassifier, ToyMLP
from ..objectives import diffusion_loss
from ..schedules import NoiseSchedule, make_schedule
from ..training import TrainResult, train

__all__ = ["train_toy_ddpm", "train_toy_conditional_ddpm", "train_toy_noisy_classifier", "TOY_DEFAULTS"]

# Measured with benchmarks/toy2d.py on a 2-core CPU: 13-15 s of training and 0.86-1.19x the sliced-Wasserstein
# floor on moons, 8 Gaussians and the Swiss roll (two seeds). A constant learning rate with the EMA of the weights
# beat a decaying one here; below ~1500 steps the 8 Gaussians' tight modes are the first to suffer.
TOY_DEFAULTS = dict(steps=1500, batch_size=512, lr=3e-3, T=200, schedule="cosine", hidden=64, depth=3)


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


def _labelled_batch(batch_size: int):
    """Draws of the 8-Gaussian mixture with the index of each point's component as its class label."""
    gm = toy2d.mixture("8gaussians")
    return lambda g: gm.sample(batch_size, g, return_labels=True)


def train_toy_conditional_ddpm(*, steps: int = TOY_DEFAULTS["steps"], batch_size: int = TOY_DEFAULTS["batch_size"],
                               lr: float = 2e-3, p_uncond: float = 0.1, schedule: NoiseSchedule | None = None,
                               hidden: int = 128, depth: int = 3, seed: int = 0,
                               progress: bool = True) -> tuple[TrainResult, NoiseSchedule]:
    r"""A class-conditional `ToyMLP` on the 8-Gaussian mixture (class = component), with labels dropped
    to the null label with probability ``p_uncond`` — the classifier-free guidance recipe in 2D.

    Twice as wide as the unconditional recipe: one network learns nine distributions here (eight
    classes and the unconditional one), and guidance magnifies the conditional-minus-unconditional
    difference, so its errors show at large ``w``."""
    schedule = schedule or make_schedule("linear", T=1000)
    torch.manual_seed(seed)
    model = ToyMLP(hidden=hidden, depth=depth, num_classes=8)

    def loss_fn(m, batch, g):
        x0, y = batch
        return diffusion_loss(m, schedule, x0, g, y=y, p_uncond=p_uncond)

    result = train(model, loss_fn, _labelled_batch(batch_size), steps, lr=lr, ema_decay=0.995, seed=seed,
                   progress=progress, desc="2D conditional (CFG)")
    return result, schedule


def train_toy_noisy_classifier(*, steps: int = 1500, batch_size: int = 512, lr: float = 2e-3,
                               schedule: NoiseSchedule | None = None, seed: int = 0,
                               progress: bool = True) -> tuple[TrainResult, NoiseSchedule]:
    r"""A `ToyClassifier` :math:`p_\phi(k\mid x_t, t)` of the 8-Gaussian mixture's components, trained with
    cross-entropy on :math:`x_t` = ``q_sample(x_0, t, ε)`` at uniformly drawn t (the classifier of chapter 5)."""
    schedule = schedule or make_schedule("linear", T=1000)
    torch.manual_seed(seed)
    model = ToyClassifier(num_classes=8)

    def loss_fn(m, batch, g):
        x0, y = batch
        t = torch.randint(0, schedule.T, (x0.shape[0],), generator=g)
        xt = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=g))
        return F.cross_entropy(m(xt, t), y)

    result = train(model, loss_fn, _labelled_batch(batch_size), steps, lr=lr, ema_decay=0.99, seed=seed,
                   progress=progress, desc="2D noisy classifier")
    return result, schedule
