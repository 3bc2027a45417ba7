"""Pieces every sampler shares: the starting noise and the progress bar."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["initial_noise", "steps_iter"]


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


def steps_iter(steps: Iterable[int], progress: bool, desc: str, total: int | None = None) -> Iterable[int]:
    """Iterate over ``steps``, with a tqdm bar when ``progress`` is true."""
    return tqdm(steps, desc=desc, total=total, leave=False) if progress else steps
