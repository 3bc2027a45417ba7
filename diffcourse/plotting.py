"""Pictures: image grids, 2D scatter plots, schedule curves and vector fields.

Every function draws on a matplotlib ``Axes`` (made for you when none is given),
labels its axes, and returns the axes so a caller can add to it.
"""
from __future__ import annotations

import io
from typing import Callable, Mapping


import matplotlib.pyplot as plt
import numpy as np
import torch

from .schedules import NoiseSchedule

__all__ = ["image_grid", "show_images", "scatter2d", "plot_schedules", "plot_vector_field",
           "plot_trajectories", "fig_to_png", "TOY_LIM"]

TOY_LIM = 3.5  # the 2D plots show [-TOY_LIM, TOY_LIM]^2, fixed so that frames are comparable


def _ax(ax: plt.Axes | None, figsize=(4, 4)) -> plt.Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def image_grid(images: torch.Tensor, nrow: int = 8, vmin: float = -1.0, vmax: float = 1.0, pad: int = 1) -> np.ndarray:
    """Tile ``(N, 1, H, W)`` images into one ``uint8`` array, mapping ``[vmin, vmax]`` to 0…255.

    The range is fixed (not per image), so brightness means the same in every grid.
    """
    x = torch.as_tensor(images).detach().cpu().float()
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"Expected grey images of shape (N, 1, H, W), got {tuple(x.shape)}.")
    n, _, h, w = x.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    u8 = ((x.clamp(vmin, vmax) - vmin) / (vmax - vmin) * 255).round().to(torch.uint8).numpy()
    grid = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = u8[i, 0]
    return grid


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Show a grid of ``(N, 1, H, W)`` images in ``[-1, 1]`` (white background, black digits inverted as MNIST)."""
    ax = _ax(ax, figsize=(nrow * 0.6, -(-len(images) // nrow) * 0.6 + 0.4))
    ax.imshow(image_grid(images, nrow), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def scatter2d(x: torch.Tensor, ax: plt.Axes | None = None, title: str | None = None, lim: float = TOY_LIM,
              color: str = "C0", s: float = 2.0, alpha: float = 0.5, label: str | None = None) -> plt.Axes:
    """Scatter an ``(n, 2)`` point cloud on fixed limits ``[-lim, lim]^2`` with labelled axes."""
    ax = _ax(ax)
    p = torch.as_tensor(x).detach().cpu().float().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, color=color, label=label, linewidths=0)
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.set_xlabel("$x_1$"), ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax


def plot_schedules(schedules: Mapping[str, NoiseSchedule], axes: tuple[plt.Axes, plt.Axes] | None = None) -> tuple[plt.Axes, plt.Axes]:
    r"""Left: :math:`\bar\alpha_t` against t; right: :math:`\log_{10}\mathrm{SNR}(t)`, for each schedule."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    a1, a2 = axes
    for name, s in schedules.items():
        t = np.arange(s.T)
        a1.plot(t, s.alpha_bars.numpy(), label=name)
        a2.plot(t, np.log10(s.snr.numpy()), label=name)
    a1.set_xlabel("timestep t"), a1.set_ylabel(r"$\bar\alpha_t$"), a1.set_title(r"signal kept: $\bar\alpha_t$")
    a2.set_xlabel("timestep t"), a2.set_ylabel(r"$\log_{10}\,\mathrm{SNR}(t)$"), a2.set_title(r"SNR $=\bar\alpha_t/(1-\bar\alpha_t)$")
    for a in axes:
        a.grid(alpha=0.3), a.legend()
    return a1, a2


def plot_vector_field(field: Callable[[torch.Tensor], torch.Tensor], ax: plt.Axes | None = None, lim: float = TOY_LIM,
                      n: int = 21, title: str | None = None, normalise: bool = True, color: str = "k") -> plt.Axes:
    """Arrows of a 2D vector field ``field((m, 2)) -> (m, 2)`` on an ``n × n`` grid (unit length if ``normalise``)."""
    ax = _ax(ax)
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    v = torch.as_tensor(field(pts)).detach().double()
    if normalise:
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    ax.quiver(pts[:, 0], pts[:, 1], v[:, 0], v[:, 1], color=color, angles="xy", alpha=0.7, width=0.004)
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.set_xlabel("$x_1$"), ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectories(traj: torch.Tensor, ax: plt.Axes | None = None, n: int = 30, lim: float = TOY_LIM,
                      title: str | None = None) -> plt.Axes:
    """Paths of ``n`` points through a trajectory of shape ``(K, N, 2)``: start (grey) → end (red)."""
    ax = _ax(ax)
    p = torch.as_tensor(traj)[:, :n].cpu().numpy()
    for i in range(p.shape[1]):
        ax.plot(p[:, i, 0], p[:, i, 1], lw=0.7, alpha=0.6, color="C0")
    ax.scatter(p[0, :, 0], p[0, :, 1], s=8, color="grey", label="start")
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=8, color="C3", label="end")
    ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    ax.set_xlabel("$x_1$"), ax.set_ylabel("$x_2$"), ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    return ax


def fig_to_png(fig: plt.Figure, dpi: int = 80) -> bytes:
    """Encode a figure as PNG bytes (what the widgets swap in and out)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def plot_guidance_over_t(readers: list[Mapping], records: Mapping[float, list[Mapping]],
                         decided: Mapping[float, list[float]], axes: list[plt.Axes] | None = None):
    r"""Chapter 5: why classifier guidance at :math:`s=1` under-steers. Left: the size of the guidance term at unit
    scale, :math:`\lVert\sqrt{1-\bar\alpha_t}\nabla\log p(y\mid x_t)\rVert/\sqrt d`, against t — for the noise-aware
    network and Bayes' rule over the training digits on noised real digits (``readers``, from
    `guidance_study.noisy_readers`) and along the guided sampler (``records[s]``, from `guidance_study.guidance_probe`),
    beside the noise prediction's own size (≈ 1). Right: the share of samples whose predicted :math:`\hat x_0` already
    reads as their final digit (``decided[s]``), and the classifier's :math:`p_\phi(y\mid x_t)` along the sampler."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.9), layout="constrained")
    ax1, ax2 = axes
    t_r = [r["t"] for r in readers]
    ax1.plot(t_r, [r["network"]["guidance"] for r in readers], "o-", label="network, on noised test digits")
    ax1.plot(t_r, [r["bayes"]["guidance"] for r in readers], "s--", label="Bayes over training digits, same digits")
    for s, rec in records.items():
        ax1.plot([r["t"] for r in rec], [r["guidance"] for r in rec], ".-", label=f"network, along the s = {s:g} sampler")
    first = next(iter(records.values()))
    ax1.plot([r["t"] for r in first], [r["eps"] for r in first], ":", color="grey", label=r"$\|\varepsilon_\theta\|/\sqrt{d}$")
    ax1.set_yscale("log")
    ax1.set_ylim(1e-3, 3)
    ax1.set_xlabel("timestep t (sampling runs right to left)")
    ax1.set_ylabel(r"$\|\sqrt{1-\bar\alpha_t}\,\nabla\log p(y|x_t)\|/\sqrt{d}$")
    ax1.set_title("size of the guidance term at s = 1")
    for s, share in decided.items():
        ax2.plot([r["t"] for r in records.get(s, first)], share, "o-", ms=3, label=f"class already decided, s = {s:g}")
    for s, rec in records.items():
        ax2.plot([r["t"] for r in rec], [r["p_y"] for r in rec], "--", label=rf"$p_\phi$(asked digit | $x_t$), s = {s:g}")
    ax2.set_xlabel("timestep t (sampling runs right to left)")
    ax2.set_ylabel("share / probability")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("when is the digit decided?")
    for ax in axes:
        ax.invert_xaxis()
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return axes
