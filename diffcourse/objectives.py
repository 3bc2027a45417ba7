r"""What the network is trained to predict, and the loss :math:`L_\text{simple}`.

DDPM trains :math:`\varepsilon_\theta` to predict the noise that was added:

.. math::

    L_\text{simple} = \mathbb E_{t\sim\mathcal U\{0..T-1\},\ x_0,\ \varepsilon\sim\mathcal N(0,I)}
    \big\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon,\ t)\big\|^2 .

The same network can instead predict :math:`x_0` or the velocity
:math:`v = \sqrt{\bar\alpha_t}\varepsilon - \sqrt{1-\bar\alpha_t}x_0`; all three carry the
same information and convert into each other given :math:`x_t` (`to_eps`), so every
sampler in the package takes an :math:`\varepsilon`-function.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .schedules import NoiseSchedule

__all__ = ["TARGETS", "diffusion_loss", "min_snr_weight", "drop_labels", "to_eps", "eps_fn", "EpsFn"]

TARGETS = ("eps", "x0", "v")
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}.")


def drop_labels(y: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label by the null label with probability ``p_uncond`` (classifier-free guidance training)."""
    if p_uncond <= 0:
        return y
    drop = torch.rand(y.shape, generator=generator) < p_uncond
    return torch.where(drop.to(y.device), torch.full_like(y, null_label), y)


def min_snr_weight(schedule: NoiseSchedule, t: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""Min-SNR-:math:`\gamma` loss weight for :math:`\varepsilon`-prediction (Hang et al. 2023):
    :math:`w_t = \min(\mathrm{SNR}_t, \gamma)/\mathrm{SNR}_t`, with :math:`\mathrm{SNR}_t = \bar\alpha_t/(1-\bar\alpha_t)`.

    :math:`w_t = 1` where the noise dominates (SNR ≤ γ) and shrinks where the image is almost
    clean, so the nearly-free low-noise steps stop drowning out the hard high-noise ones.
    """
    ab = schedule.alpha_bars.to(t.device)[t]
    snr = ab / (1 - ab)
    return (torch.clamp(snr, max=gamma) / snr).float()


def diffusion_loss(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, generator: torch.Generator | None = None,
                   target: str = "eps", y: torch.Tensor | None = None, p_uncond: float = 0.0,
                   min_snr_gamma: float | None = None) -> torch.Tensor:
    r"""Monte-Carlo estimate of :math:`L_\text{simple}` on a batch ``x0`` (mean squared error per element).

    Draws one :math:`t` and one :math:`\varepsilon` per example from ``generator``
    (on the CPU, so that runs repeat exactly on any device), forms
    :math:`x_t` by `NoiseSchedule.q_sample` and regresses the chosen ``target``.
    With labels ``y`` and ``p_uncond > 0``, labels are dropped to the null label
    at that rate so the model also learns the unconditional score. ``min_snr_gamma`` (ε-target
    only) weights each example by `min_snr_weight` instead of 1.
    """
    _check_target(target)
    B = x0.shape[0]
    t = torch.randint(0, schedule.T, (B,), generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    xt = schedule.q_sample(x0, t, eps)
    if y is not None:
        null = getattr(getattr(model, "label", None), "null_label", None)
        if p_uncond > 0 and null is None:
            raise ValueError("p_uncond > 0 needs a class-conditional model (built with num_classes).")
        y = drop_labels(y, p_uncond, null, generator) if p_uncond > 0 else y
        pred = model(xt, t, y)
    else:
        pred = model(xt, t)
    goal = {"eps": eps, "x0": x0, "v": schedule.velocity(x0, t, eps) if target == "v" else None}[target]
    if min_snr_gamma is None:
        return torch.mean((pred.float() - goal) ** 2)
    if target != "eps":
        raise ValueError("min_snr_gamma is written for the ε target here: use target='eps' or min_snr_gamma=None.")
    per_example = ((pred.float() - goal) ** 2).flatten(1).mean(1)
    return torch.mean(min_snr_weight(schedule, t, min_snr_gamma) * per_example)


def to_eps(pred: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, target: str) -> torch.Tensor:
    r"""Convert a network output of kind ``target`` into the implied :math:`\hat\varepsilon`."""
    _check_target(target)
    if target == "eps":
        return pred
    if target == "x0":
        return schedule.predict_eps(xt, t, pred)
    return schedule.eps_from_velocity(xt, t, pred)


def eps_fn(model: nn.Module, schedule: NoiseSchedule, target: str = "eps", y: torch.Tensor | None = None) -> EpsFn:
    r"""Wrap a network into the function :math:`(x_t, t) \mapsto \hat\varepsilon` that samplers call.

    ``y`` fixes the class labels of a conditional model (``None``: unconditional / null label).
    """
    _check_target(target)

    def f(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        pred = model(xt, t) if y is None else model(xt, t, y)
        return to_eps(pred, xt, t, schedule, target)

    return f
