r"""Recipes for chapter 10's 2D study: flows with three couplings, and DDIM at the same budget.

Every model is the same `ToyMLP` trained by the package's one loop for the same number of steps on batches of the
same size, from noise :math:`\varepsilon\sim\mathcal N(0, I)` to a 2D dataset; only the objective or the coupling
changes (`FLOW_TOY`):

============  ================================================================================================
``i-cfm``     independent coupling: fresh data, fresh noise (rectified flow's first step, I-CFM)
``ot-cfm``    the same draws, re-paired within each batch by `diffcourse.flows.ot_coupling` (OT-CFM)
``reflow``    pairs :math:`(\hat x_0, \varepsilon)` made by a trained I-CFM's ODE (`reflow_pairs`), a second run
              of the same length on them, started from the I-CFM weights (Liu et al. 2022's 2-rectified flow)
``ddim-x0``   DDPM's :math:`L_\text{simple}` on the linear schedule (T = 1000), network predicting :math:`x_0`
``ddim-eps``  the same, predicting :math:`\varepsilon` (the course's MNIST parameterisation)
============  ================================================================================================
"""
from __future__ import annotations

import torch

from ..data import toy2d
from ..flows import flow_matching_loss, ot_coupling, reflow_pairs, velocity_fn
from ..models import ToyMLP
from ..objectives import diffusion_loss
from ..schedules import NoiseSchedule, make_schedule
from ..training import TrainResult, train

__all__ = ["FLOW_TOY", "train_toy_flow", "train_toy_reflow", "train_toy_diffusion", "make_reflow_pairs"]

FLOW_TOY = dict(dataset="moons", steps=2000, batch_size=256, lr=2e-3, hidden=128, depth=3, ema_decay=0.995,
                reflow_pairs=10_000, reflow_steps=25, T=1000)
"""The shared budget of the 2D study (each run ≤ 20 s on one CPU thread)."""


def _model(seed: int) -> ToyMLP:
    torch.manual_seed(seed)
    return ToyMLP(hidden=FLOW_TOY["hidden"], depth=FLOW_TOY["depth"])


def _run(model: ToyMLP, loss_fn, next_batch, seed: int, desc: str, steps: int | None, progress: bool) -> TrainResult:
    return train(model, loss_fn, next_batch, steps or FLOW_TOY["steps"], lr=FLOW_TOY["lr"],
                 ema_decay=FLOW_TOY["ema_decay"], seed=seed, progress=progress, desc=desc, device="cpu")


def train_toy_flow(coupling: str = "independent", *, dataset: str | None = None, seed: int = 0,
                   steps: int | None = None, progress: bool = False) -> TrainResult:
    r"""Conditional flow matching (`flow_matching_loss`) on fresh batches of ``dataset``, with the ``"independent"``
    coupling (each data point meets a fresh noise) or the ``"ot"`` coupling (the batch's noises re-paired by
    `ot_coupling`). ``.ema_model`` predicts the velocity from :math:`(x_t, 1000\,t)`."""
    if coupling not in ("independent", "ot"):
        raise ValueError(f"coupling must be 'independent' or 'ot' (reflow: train_toy_reflow), got {coupling!r}.")
    name, B = dataset or FLOW_TOY["dataset"], FLOW_TOY["batch_size"]

    def loss_fn(m, x0, g):
        eps = torch.randn(x0.shape, generator=g)
        if coupling == "ot":
            eps = eps[ot_coupling(x0, eps)]
        return flow_matching_loss(m, x0, g, eps=eps)

    return _run(_model(seed), loss_fn, lambda g: toy2d.sample(name, B, g), seed, f"2D flow ({coupling})", steps,
                progress)


@torch.no_grad()
def make_reflow_pairs(base: torch.nn.Module, n: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` reflow pairs ``(x0_hat, eps)`` from flow network ``base``: fresh noises and where its ODE takes them
    (`reflow_pairs`, Heun with ``FLOW_TOY["reflow_steps"]`` steps)."""
    eps = torch.randn(n or FLOW_TOY["reflow_pairs"], 2, generator=torch.Generator().manual_seed(10_000 + seed))
    return reflow_pairs(velocity_fn(base), eps, steps=FLOW_TOY["reflow_steps"]), eps


def train_toy_reflow(base: TrainResult, *, seed: int = 0, steps: int | None = None,
                     progress: bool = False) -> tuple[TrainResult, float]:
    r"""Reflow: a second flow-matching run on pairs from ``base``'s ODE (`make_reflow_pairs`), started from ``base``'s
    EMA weights. Returns the result and the seconds spent making the pairs (the part of reflow's cost beyond the
    second run)."""
    import copy
    import time

    t0 = time.perf_counter()
    x0_hat, eps = make_reflow_pairs(base.ema_model, seed=seed)
    pair_seconds = time.perf_counter() - t0
    model = copy.deepcopy(base.ema_model).train().requires_grad_(True)
    B = FLOW_TOY["batch_size"]

    def next_batch(g):
        i = torch.randint(0, len(eps), (B,), generator=g)
        return x0_hat[i], eps[i]

    def loss_fn(m, batch, g):
        x0, e = batch
        return flow_matching_loss(m, x0, g, eps=e)

    return _run(model, loss_fn, next_batch, seed, "2D reflow", steps, progress), pair_seconds


def train_toy_diffusion(target: str = "x0", *, dataset: str | None = None, seed: int = 0, steps: int | None = None,
                        progress: bool = False) -> tuple[TrainResult, NoiseSchedule]:
    r"""DDPM's loss on the linear schedule (T = ``FLOW_TOY["T"]``) with the same network, steps and batch as the
    flows; ``target`` ``"x0"`` or ``"eps"``. Sample it with DDIM (`diffcourse.objectives.eps_fn` with the target)."""
    schedule = make_schedule("linear", FLOW_TOY["T"])
    name, B = dataset or FLOW_TOY["dataset"], FLOW_TOY["batch_size"]

    def loss_fn(m, x0, g):
        return diffusion_loss(m, schedule, x0, g, target=target)

    result = _run(_model(seed), loss_fn, lambda g: toy2d.sample(name, B, g), seed, f"2D diffusion ({target})", steps,
                  progress)
    return result, schedule
