r"""The one loop every sampler runs: walk a time grid, apply a step.

A sampler is two things (as in EDM's ``generate.py`` and smalldiffusion's ``samples()``):

* a **grid** :math:`t_0 > t_1 > … > t_K` from pure noise to data, the last point included
  (DDPM: every step ``T-1, …, 0, -1``; DDIM: a subsequence; the SDE samplers: continuous times
  :math:`1 → t_\varepsilon`), and
* a **step** :math:`x_{t_k} \mapsto x_{t_{k+1}}`, called as ``step(x, t, s, generator)`` with
  :math:`s = t_{k+1}`; a stochastic step draws its own noise from ``generator``.

`sample_loop` does the rest, once for all samplers: the starting noise, the device, the progress
bar and the trajectory. In code, timestep ``-1`` is the data itself (:math:`\bar\alpha_{-1} = 1`,
see `NoiseSchedule.alpha_bar_at`): the code's ``t = 0 … T-1`` are the paper's ``t = 1 … T``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["Step", "sample_loop", "initial_noise", "steps_iter"]

Step = Callable[[torch.Tensor, Any, Any, "torch.Generator | None"], torch.Tensor]


def initial_noise(shape_or_x: Sequence[int] | torch.Tensor, generator: torch.Generator | None,
                  device: torch.device | str | None = None) -> torch.Tensor:
    r"""Start of the reverse process: :math:`x_T\sim\mathcal N(0, I)` of the given shape, or a given ``x_T``.

    Noise is drawn on the CPU from ``generator`` and then moved, so the same seed
    gives the same samples on a CPU and on a GPU.
    """
    if isinstance(shape_or_x, torch.Tensor):
        return shape_or_x.to(device) if device is not None else shape_or_x
    x = torch.randn(tuple(shape_or_x), generator=generator)
    return x.to(device) if device is not None else x


def steps_iter(steps: Iterable[Any], progress: bool, desc: str, total: int | None = None) -> Iterable[Any]:
    """Iterate over ``steps``, with a tqdm bar when ``progress`` is true."""
    return tqdm(steps, desc=desc, total=total, leave=False) if progress else steps


@torch.no_grad()
def sample_loop(step: Step, grid: Sequence[Any], shape_or_x: Sequence[int] | torch.Tensor, *,
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                progress: bool = False, return_trajectory: bool = False, trajectory_every: int = 1,
                desc: str = "sampling"):
    r"""Run ``x ← step(x, t_k, t_{k+1}, generator)`` over consecutive pairs of ``grid``; return the last ``x``.

    ``shape_or_x`` is a batch shape (start from :math:`\mathcal N(0, I)` drawn from ``generator``)
    or a starting tensor. With ``return_trajectory`` the result is ``(x, traj)``, ``traj`` of shape
    ``(K, *x.shape)`` on the CPU: the start, then every ``trajectory_every``-th state counted back
    from the end (so the final state is always in it).
    """
    if len(grid) < 2:
        raise ValueError(f"A sampling grid needs at least two points (start and end), got {len(grid)}.")
    if int(trajectory_every) < 1:
        raise ValueError(f"trajectory_every must be a positive integer, got {trajectory_every}.")
    x = initial_noise(shape_or_x, generator, device)
    traj = [x.detach().cpu()] if return_trajectory else None
    n = len(grid) - 1
    for k in steps_iter(range(n), progress, desc, total=n):
        x = step(x, grid[k], grid[k + 1], generator)
        if return_trajectory and (n - 1 - k) % trajectory_every == 0:
            traj.append(x.detach().cpu())
    return (x, torch.stack(traj)) if return_trajectory else x
