r"""One training loop for every model in the course.

``train(model, loss_fn, next_batch, steps)`` runs Adam on ``loss_fn(model, batch, generator)``,
keeps an exponential moving average (EMA) of the weights,

.. math::  \theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1-d)\,\theta,\qquad
           d = \min\big(d_\text{max},\ \tfrac{1+n}{10+n}\big)

(the warm-up of :math:`d` lets short runs use the EMA too), records the loss, shows a
tqdm bar, saves a checkpoint every few minutes, and resumes from one exactly: the
model, EMA, optimiser, step counter and random-number state are all restored, so an
interrupted run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["EMA", "TrainResult", "train", "load_checkpoint"]


class EMA:
    """Exponential moving average of a model's parameters (and a copy of its buffers)."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        # ema_p <- d * ema_p + (1 - d) * p, for all parameters in one call
        torch._foreach_lerp_(list(self.model.parameters()), [p.detach() for p in model.parameters()], 1 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
        self.decay = float(state["decay"])


@dataclass
class TrainResult:
    """What `train` returns: the trained model, its EMA copy, the loss per step and the time taken."""

    model: nn.Module
    ema_model: nn.Module
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint written by `train` (tensors and plain Python only: ``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


CHECKPOINT_KEYS = ("model", "ema", "optimizer", "generator", "losses", "step", "seconds")


def _resumable_state(path: Path) -> dict[str, Any]:
    """`load_checkpoint`, or a `ValueError` that says what to do when ``path`` is not a training checkpoint."""
    try:
        state = load_checkpoint(path)
    except Exception as e:  # a truncated or foreign file fails in many ways inside torch.load
        raise ValueError(f"{path} is not a readable training checkpoint ({type(e).__name__}); delete it to start "
                         "afresh, or choose another output folder.") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path} is not a training checkpoint of this loop (missing {', '.join(missing)}); delete it "
                         "to start afresh, or choose another output folder.")
    return state


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: an interruption never leaves half a checkpoint


def _optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    # fused: one kernel updates every tensor (CPU and CUDA); 4-5x faster than a Python loop over tensors
    if device.type in ("cpu", "cuda"):
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


@dataclass
class _Run:
    """Everything a checkpoint holds: restoring all of it makes a resumed run repeat an uninterrupted one."""

    model: nn.Module
    ema: EMA
    opt: torch.optim.Optimizer
    g: torch.Generator
    losses: list[float] = field(default_factory=list)
    step: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (less sensitive than wall time to other programs' load)

    def restore(self, ckpt: Path) -> None:
        state = _resumable_state(ckpt)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.g.set_state(state["generator"])
        self.losses = list(state["losses"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.cpu_seconds = float(state.get("cpu_seconds", 0.0))
        if "torch_rng" in state:  # global RNG (dropout draws from it): restored for an exact resume
            torch.set_rng_state(state["torch_rng"])

    def snapshot(self, step: int, seconds: float, extra: dict[str, Any] | None) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "optimizer": self.opt.state_dict(),
                "generator": self.g.get_state(), "torch_rng": torch.get_rng_state(), "losses": self.losses,
                "step": step, "seconds": seconds, "cpu_seconds": self.cpu_seconds, "extra": extra or {}}

    def save_ema(self, path: Path, step: int, seconds: float, extra: dict[str, Any] | None) -> None:
        """A snapshot along the way: the EMA weights after ``step`` steps and the time spent to get there."""
        _save(path, {"state_dict": {k: v.detach().cpu() for k, v in self.ema.model.state_dict().items()},
                     "step": step, "seconds": seconds, "cpu_seconds": self.cpu_seconds, "extra": extra or {}})


def _one_step(run: _Run, loss_fn: Callable, batch: Any, lr: float, grad_clip: float | None,
              autocast: torch.dtype | None, device: torch.device) -> float:
    """One optimiser step on ``batch`` (already on ``device``) and one EMA update; returns the loss."""
    with torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext():
        loss = loss_fn(run.model, batch, run.g).float()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"The loss became {loss.item()} at step {run.step}: lower the learning rate (now {lr}).")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    run.opt.step()
    run.ema.update(run.model)
    return loss.item()


def train(model: nn.Module, loss_fn: Callable[[nn.Module, Any, torch.Generator], torch.Tensor],
          next_batch: Callable[[torch.Generator], Any], steps: int, *, lr: float = 1e-3,
          ema_decay: float = 0.999, seed: int = 0, grad_clip: float | None = 1.0,
          checkpoint: str | os.PathLike | None = None, checkpoint_every_s: float = 120.0, resume: bool = False,
          device: torch.device | str | None = None, progress: bool = True, desc: str = "train",
          extra: dict[str, Any] | None = None, lr_lambda: Callable[[int], float] | None = None,
          autocast: torch.dtype | None = None, snapshot_steps: tuple[int, ...] = ()) -> TrainResult:
    """Train ``model`` for ``steps`` optimiser steps and return a `TrainResult`.

    * ``next_batch(generator)`` returns a batch (tensors, or a tuple of tensors, on the CPU);
    * ``loss_fn(model, batch, generator)`` returns a scalar loss; the batch is on ``device``;
    * both draw randomness only from ``generator`` (seeded by ``seed``), so runs repeat;
    * ``checkpoint`` is a file path: saved every ``checkpoint_every_s`` seconds and at the end;
      with ``resume=True`` an existing checkpoint is loaded and training continues from its step.
    * ``extra`` is stored in the checkpoint as is (e.g. the recipe's settings);
    * ``lr_lambda(step)``, if given, multiplies ``lr`` at each step (e.g. a cosine decay); it depends
      only on the step, so resuming stays exact;
    * ``autocast=torch.bfloat16`` runs the forward pass in mixed precision (weights, optimiser and
      EMA stay float32): 1.6x the images per second of float32 for the U-Net on an AVX-512 CPU.
    * ``snapshot_steps``: after each of these steps the EMA weights are also saved to
      ``CHECKPOINT_DIR/snapshots/stepNNNNNN.pt`` with the wall and CPU seconds so far (quality-vs-compute curves).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    run = _Run(model, EMA(model, ema_decay), _optimizer(model, lr, device), torch.Generator().manual_seed(seed))
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is None:
        raise ValueError("resume=True needs a checkpoint path to resume from.")
    if resume and ckpt.exists():
        run.restore(ckpt)
    seconds_before, t0 = run.seconds, time.perf_counter()
    cpu_before, c0 = run.cpu_seconds, time.process_time()
    last_save = t0
    bar = tqdm(range(run.step, steps), desc=desc, initial=run.step, total=steps, disable=not progress)
    for step in bar:
        run.step = step
        batch = next_batch(run.g)
        batch = tuple(b.to(device) for b in batch) if isinstance(batch, (tuple, list)) else batch.to(device)
        if lr_lambda is not None:
            for group in run.opt.param_groups:
                group["lr"] = lr * float(lr_lambda(step))
        run.losses.append(_one_step(run, loss_fn, batch, lr, grad_clip, autocast, device))
        run.cpu_seconds = cpu_before + time.process_time() - c0
        if ckpt is not None and step + 1 in snapshot_steps:
            run.save_ema(ckpt.parent / "snapshots" / f"step{step + 1:06d}.pt", step + 1,
                         seconds_before + time.perf_counter() - t0, extra)
        if progress and step % 25 == 0:
            bar.set_postfix(loss=f"{sum(run.losses[-100:]) / len(run.losses[-100:]):.4f}")
        if ckpt is not None and time.perf_counter() - last_save > checkpoint_every_s:
            _save(ckpt, run.snapshot(step + 1, seconds_before + time.perf_counter() - t0, extra))
            last_save = time.perf_counter()
    seconds = seconds_before + time.perf_counter() - t0
    if ckpt is not None:
        _save(ckpt, run.snapshot(steps, seconds, extra))
    model.eval()
    return TrainResult(model=model, ema_model=run.ema.model, losses=run.losses, steps=steps, seconds=seconds)
