r"""Flow matching (chapter 10): a path from data to noise, and the velocity that walks it.

The course keeps the DDPM convention: :math:`x_0` is **data** and :math:`t` runs from 0 (data) to 1 (noise), so
sampling walks a *decreasing* time grid like every other sampler in the package. (Lipman et al. 2023 and TorchCFM
write it the other way round, :math:`t = 0` noise and :math:`t = 1` data; Stable Diffusion 3 writes it this way.)

The linear (rectified-flow, conditional-OT) path between a data point :math:`x_0` and a noise draw
:math:`\varepsilon` is

.. math::  x_t = (1-t)\,x_0 + t\,\varepsilon, \qquad
           u_t(x_t \mid x_0, \varepsilon) = \frac{dx_t}{dt} = \varepsilon - x_0 ,

and conditional flow matching regresses a network on that conditional velocity,

.. math::  L_\text{CFM} = \mathbb E_{t\sim\mathcal U(0,1),\,x_0,\,\varepsilon}\,
           \big\| v_\theta(x_t, t) - (\varepsilon - x_0) \big\|^2 ,

whose minimiser is the *marginal* velocity :math:`v(x, t) = \mathbb E[\varepsilon - x_0 \mid x_t = x]`.
"""
from __future__ import annotations

import torch
from torch import nn

from .objectives import drop_labels

__all__ = ["TIME_SCALE", "linear_path", "conditional_velocity", "flow_matching_loss"]

TIME_SCALE = 1000.0
"""The network sees :math:`1000\\,t`: the same range of time inputs as a diffusion U-Net's integer steps."""


def linear_path(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`x_t = (1-t)\,x_0 + t\,\varepsilon`, with ``t`` of shape ``(B,)`` broadcast over the other axes."""
    tb = t.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - tb) * x0 + tb * eps


def conditional_velocity(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    r""":math:`u_t(x_t\mid x_0,\varepsilon) = \varepsilon - x_0`: the same at every :math:`t` on a straight line."""
    return eps - x0


def flow_matching_loss(model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None,
                       y: torch.Tensor | None = None, p_uncond: float = 0.0,
                       eps: torch.Tensor | None = None) -> torch.Tensor:
    r"""Monte-Carlo estimate of :math:`L_\text{CFM}` on a batch ``x0`` (mean squared error per element).

    One :math:`t \sim \mathcal U(0, 1)` and one :math:`\varepsilon \sim \mathcal N(0, I)` per example, drawn on the
    CPU from ``generator`` so runs repeat on any device; the network is called as ``model(x_t, 1000 t[, y])``.
    ``eps`` replaces the noise draw by given partners (a minibatch-OT or reflow coupling); labels are dropped to
    the null label with probability ``p_uncond`` (classifier-free guidance), as in `diffusion_loss`.
    """
    B = x0.shape[0]
    t = torch.rand(B, generator=generator).to(x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    xt = linear_path(x0, eps, t)
    if y is not None:
        null = getattr(getattr(model, "label", None), "null_label", None)
        if p_uncond > 0 and null is None:
            raise ValueError("p_uncond > 0 needs a class-conditional model (built with num_classes).")
        y = drop_labels(y, p_uncond, null, generator) if p_uncond > 0 else y
        pred = model(xt, TIME_SCALE * t, y)
    else:
        pred = model(xt, TIME_SCALE * t)
    return torch.mean((pred.float() - conditional_velocity(x0, eps)) ** 2)
