r"""Training a GAN the standard way (Radford et al. 2016): two players, two optimisers, alternating updates.

The course's one training loop (`diffcourse.training.train`) minimises *one* loss with *one* optimiser. A GAN
is a game, so it gets its own short loop. Each step, on a batch of real digits :math:`x` and noise :math:`u`:

1. the discriminator takes one Adam step on :math:`L_D(x, G(u))` (the fakes detached);
2. the generator takes one Adam step on the non-saturating :math:`L_G = -\log\sigma(D(G(u)))`, against the
   discriminator *just updated*.

Both optimisers are Adam with DCGAN's :math:`\beta_1 = 0.5,\ \beta_2 = 0.999` and learning rate :math:`2\cdot10^{-4}`;
no gradient clipping. An exponential moving average of the generator's weights (Yazıcı et al. 2019) is kept,
as the diffusion recipes keep one; because a generator has batch normalisation, the averaged weights get their
*own* normalisation statistics before they sample (`recalibrate_batchnorm`) — the live generator's running
statistics belong to other weights. Checkpoints, exact resume, and snapshots with wall and CPU seconds work as
in `diffcourse.training`.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .models.gan import GAN, discriminator_loss, generator_loss
from .training import EMA, load_checkpoint

__all__ = ["recalibrate_batchnorm", "GANRun", "train_gan", "sampling_generator"]


@torch.no_grad()
def recalibrate_batchnorm(gan: GAN, batches: int = 20, batch_size: int = 256, seed: int = 0) -> GAN:
    """Recompute the generator's batch-norm statistics as exact averages over ``batches`` noise batches.

    A generator's running statistics are an average over past *weights*; for a weight average (EMA) or a
    snapshot they must be measured again on the weights that will sample. Returns ``gan`` (in eval mode)."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in gan.generator.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    gan.generator.train()
    device = next(gan.parameters()).device
    for _ in range(batches):
        gan.generator(torch.randn(batch_size, gan.z_dim, generator=g).to(device))
    for m, mom in zip(norms, momenta):
        m.momentum = mom
    return gan.eval()


def sampling_generator(ema: EMA) -> GAN:
    """The averaged generator alone (``discriminator=False``), batch norm recalibrated, in eval mode: what ships."""
    full = ema.model
    gen = GAN(**{**full.config, "discriminator": False})
    gen.generator.load_state_dict(full.generator.state_dict())
    return recalibrate_batchnorm(gen)


@dataclass
class GANRun:
    """The whole training state: both players, the generator's EMA, both optimisers, the random state, the clocks."""

    gan: GAN
    ema: EMA
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g: torch.Generator
    losses: list[tuple[float, float]] = field(default_factory=list)
    step: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def state(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        return {"model": self.gan.state_dict(), "ema": self.ema.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "generator": self.g.get_state(), "losses": self.losses,
                "step": self.step, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "extra": extra or {}}

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        if "opt_d" not in state:
            raise ValueError(f"{path} is not a GAN training checkpoint (no discriminator optimiser): delete it or "
                             "choose another output folder.")
        self.gan.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.g.set_state(state["generator"])
        self.losses = [tuple(v) for v in state["losses"]]
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.cpu_seconds = float(state["cpu_seconds"])


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic


def _alternating_step(run: GANRun, real: torch.Tensor) -> tuple[float, float]:
    """One discriminator step, then one generator step against the updated discriminator; returns (L_D, L_G)."""
    u = torch.randn(real.shape[0], run.gan.z_dim, generator=run.g).to(real.device)
    fake = run.gan.generator(u)
    run.opt_d.zero_grad(set_to_none=True)
    loss_d = discriminator_loss(run.gan, real, fake)
    loss_d.backward()
    run.opt_d.step()
    run.opt_g.zero_grad(set_to_none=True)
    loss_g = generator_loss(run.gan, fake)
    loss_g.backward()  # also leaves gradients on D's weights: opt_d zeroes them before its next step
    run.opt_g.step()
    run.ema.update(run.gan)
    return loss_d.item(), loss_g.item()


def train_gan(gan: GAN, next_batch: Callable[[torch.Generator], torch.Tensor], steps: int, *, lr: float = 2e-4,
              betas: tuple[float, float] = (0.5, 0.999), ema_decay: float = 0.999, seed: int = 0,
              checkpoint: str | os.PathLike | None = None, checkpoint_every_s: float = 120.0, resume: bool = False,
              snapshot_steps: tuple[int, ...] = (), progress: bool = True, desc: str = "gan",
              extra: dict[str, Any] | None = None) -> GANRun:
    """Train ``gan`` for ``steps`` alternating steps (module docstring) on batches ``next_batch(generator)``.

    ``checkpoint``: the training state is saved there every ``checkpoint_every_s`` seconds and at the end;
    ``resume=True`` continues from it. After each step in ``snapshot_steps`` the sampling generator
    (`sampling_generator`) is saved to ``CHECKPOINT_DIR/snapshots/stepNNNNNN.pt`` with the seconds so far."""
    gan.train()
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=betas)
    run = GANRun(gan, EMA(gan, ema_decay), opt_g, opt_d, torch.Generator().manual_seed(seed))
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is not None and ckpt.exists():
        run.restore(ckpt)
    wall0, cpu0, t0, c0 = run.seconds, run.cpu_seconds, time.perf_counter(), time.process_time()
    last_save = t0
    bar = tqdm(range(run.step, steps), desc=desc, initial=run.step, total=steps, disable=not progress)
    for step in bar:
        run.losses.append(_alternating_step(run, next_batch(run.g)))
        run.step, run.seconds = step + 1, wall0 + time.perf_counter() - t0
        run.cpu_seconds = cpu0 + time.process_time() - c0
        if ckpt is not None and run.step in snapshot_steps:
            sampler = sampling_generator(run.ema)
            _save(ckpt.parent / "snapshots" / f"step{run.step:06d}.pt",
                  {"state_dict": sampler.state_dict(), "config": sampler.config, "step": run.step,
                   "seconds": run.seconds, "cpu_seconds": run.cpu_seconds, "extra": extra or {}})
        if progress and step % 50 == 0:
            tail = torch.tensor(run.losses[-100:]).mean(0).tolist()
            bar.set_postfix(D=f"{tail[0]:.3f}", G=f"{tail[1]:.3f}")
        if ckpt is not None and time.perf_counter() - last_save > checkpoint_every_s:
            _save(ckpt, run.state(extra))
            last_save = time.perf_counter()
    if ckpt is not None:
        _save(ckpt, run.state(extra))
    return run
