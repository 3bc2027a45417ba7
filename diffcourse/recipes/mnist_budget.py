r"""DDPM on MNIST on a budget: a small network, a fixed number of steps, and *anyone's* training step.

Chapter 2's MNIST exercise has the learner write the two halves of DDPM (Ho et al. 2020): the training
step (Algorithm 1, plus the EMA of the weights)

.. math::

    x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad
    \theta \leftarrow \theta - \text{Adam}\big(\nabla_\theta\,\|\varepsilon - \varepsilon_\theta(x_t, t)\|^2\big),\qquad
    \theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1-d)\,\theta ,

and the sampling loop (Algorithm 2, from :math:`t = T-1` down to 0). This module holds what stays fixed
around them, so that the exercise's check, the solution notebook and ``benchmarks/mnist_training_exercise.py``
train the very same thing:

* `SmallUNet`: the network — the course's `UNet` at 16 base channels (0.28M parameters), its forward pass in
  bfloat16 (1.6× faster on an AVX-512 CPU). A residual MLP on the 784 pixels costs a tenth per image but
  learns far slower: after 400 steps its loss was 0.47–0.53 against 0.15 for this U-Net after 100;
* `BUDGET`: the schedule (linear, T = 1000), batch size, learning rate (warm-up, then a cosine decay: `budget_lr`),
  EMA decay and the fixed number of steps — a step count, not a wall-clock limit, so that the result does not
  depend on the machine;
* `train_on_budget`: the loop that draws the batches, timesteps and noise and calls a given training step;
* `respaced_eps_fn`: the trained network on the chain respaced to fewer steps, where the check runs the
  learner's sampling loop (256 digits at 250 steps cost what 64 cost at 1000, and their scores have half the
  standard error);
* `reference_train_step` and `reference_sample`: the course's own two halves, for comparison.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable

import torch
from torch import nn

from ..data.mnist import load_mnist
from ..models import UNet
from ..samplers.ddpm import ddpm_sample
from ..schedules import NoiseSchedule, make_schedule, respace
from ..training import TrainResult

__all__ = ["BUDGET", "SmallUNet", "budget_model", "budget_lr", "train_on_budget", "reference_train_step",
           "reference_sample", "budget_schedule", "respaced_eps_fn"]

BUDGET: dict[str, Any] = dict(steps=900, batch_size=64, lr=2e-3, warmup=50, ema_decay=0.99, ch=16, schedule="linear",
                              T=1000, seed=0)
"""The fixed settings of the budget run (see ``benchmarks/results/mnist_training_exercise.json``)."""

TrainStep = Callable[..., Any]


class SmallUNet(nn.Module):
    r"""The noise predictor :math:`\varepsilon_\theta(x_t, t)` of the budget run: ``UNet(ch=16)`` (28, 14 and 7 pixels,
    attention at 7), its forward pass under bfloat16 autocast (``bf16=True``), the output float32 again."""

    def __init__(self, ch: int = BUDGET["ch"], bf16: bool = True) -> None:
        super().__init__()
        self.net = UNet(ch=ch)
        self.bf16 = bf16

    def forward(self, x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x, t)
        return out.float()


def budget_model(seed: int = BUDGET["seed"], **kwargs: Any) -> SmallUNet:
    """A freshly initialised `SmallUNet` (weights from ``seed``)."""
    torch.manual_seed(seed)
    return SmallUNet(**kwargs)


def budget_schedule() -> NoiseSchedule:
    """The schedule of the budget run: DDPM's linear one, T = 1000."""
    return make_schedule(BUDGET["schedule"], BUDGET["T"])


def budget_lr(step: int, steps: int, lr: float = BUDGET["lr"], warmup: int = BUDGET["warmup"]) -> float:
    r"""The learning rate at ``step``: linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``steps``,
    :math:`\eta_n = \tfrac12\,\eta\,(1+\cos(\pi\,(n-n_w)/(N-n_w)))` (a short run gains most from ending at a small step)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


def train_on_budget(train_step: TrainStep, *, steps: int = BUDGET["steps"], batch_size: int = BUDGET["batch_size"],
                    lr: float = BUDGET["lr"], ema_decay: float = BUDGET["ema_decay"], seed: int = BUDGET["seed"],
                    model: nn.Module | None = None, images: torch.Tensor | None = None) -> TrainResult:
    r"""Train ``model`` (default: `budget_model`) for exactly ``steps`` calls of
    ``train_step(model, ema_model, optimizer, x0, t, eps, alpha_bars, ema_decay)``.

    Each call gets a batch of MNIST training images (``images``, default all 60 000) and one
    :math:`t\sim U\{0,…,T-1\}` and :math:`\varepsilon\sim\mathcal N(0, I)` per image, all drawn from one
    generator seeded with ``seed``; the EMA copy starts equal to the network, Adam's learning rate follows
    `budget_lr` (warm-up to ``lr``, cosine decay to 0).
    ``train_step`` returns the loss (anything ``float()`` accepts); a non-finite loss stops the run.
    """
    model = model if model is not None else budget_model(seed)
    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images = images if images is not None else load_mnist("train")[0]
    alpha_bars = budget_schedule().alpha_bars
    g = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = budget_lr(step, steps, lr)
        x0 = images[torch.randint(0, len(images), (batch_size,), generator=g)]
        t = torch.randint(0, len(alpha_bars), (batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        loss = train_step(model, ema_model, optimizer, x0, t, eps, alpha_bars, ema_decay)
        losses.append(loss.item() if isinstance(loss, torch.Tensor) else float(loss))
        if not losses[-1] < float("inf"):  # NaN or inf
            break
    return TrainResult(model.eval(), ema_model.eval(), losses, len(losses), time.perf_counter() - start)


def reference_train_step(model: nn.Module, ema_model: nn.Module, optimizer: torch.optim.Optimizer, x0: torch.Tensor,
                         t: torch.Tensor, eps: torch.Tensor, alpha_bars: torch.Tensor, ema_decay: float) -> float:
    r"""One step of Algorithm 1 of Ho et al. (2020) and the EMA update (see the module docstring); returns the loss."""
    a = alpha_bars[t].reshape(-1, *[1] * (x0.ndim - 1)).to(x0.dtype)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    loss = ((model(xt, t) - eps) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for p_ema, p in zip(ema_model.parameters(), model.parameters()):
            p_ema.lerp_(p, 1 - ema_decay)  # d·p_ema + (1 − d)·p
    return loss.item()


def respaced_eps_fn(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    schedule: NoiseSchedule, steps: int) -> tuple[NoiseSchedule, Callable[[torch.Tensor, Any], torch.Tensor]]:
    r"""The chain of ``schedule`` on ``steps`` of its timesteps (`diffcourse.schedules.respace`) and the network on
    it: step :math:`i` of the short chain is step :math:`\tau_i` of the long one, so ``eps_fn`` is called there."""
    short, tau = respace(schedule, steps)
    return short, lambda x, i: eps_fn(x, tau[torch.as_tensor(i)])


def reference_sample(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                     x_T: torch.Tensor, generator: torch.Generator, variance: str = "beta") -> torch.Tensor:
    r"""Algorithm 2 from the given :math:`x_T`: `ddpm_sample`, drawing :math:`z` from ``generator`` at
    :math:`t = T-1, …, 1` (one ``torch.randn(x.shape, generator=generator)`` per step, none at t = 0)."""
    return ddpm_sample(eps_fn, schedule, x_T.clone(), generator=generator, variance=variance)
