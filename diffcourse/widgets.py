"""Sliders that let a learner *scrub* through a diffusion process.

Every widget follows one recipe (DESIGN §5): compute all frames once, encode
each to PNG once (with fixed axes and a fixed grey range so nothing jumps), and
let the slider's ``observe`` callback swap the bytes shown by a
``widgets.Image``. Moving the slider never recomputes anything. The update is a
plain method (`FrameScrubber.select`) so tests can drive a widget without a browser,
and callbacks print into an ``Output`` widget so their errors are visible.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from .plotting import TOY_LIM, fig_to_png, image_grid
from .schedules import NoiseSchedule

__all__ = ["FrameScrubber", "TimestepScrubber", "timestep_frames"]


class FrameScrubber:
    """A slider over pre-encoded PNG frames, with an optional dropdown between sets of frames.

    ``frames[choice][i]`` is the PNG shown at slider position ``i`` when the dropdown
    shows ``choice``; ``captions[choice][i]`` is the text under the slider.
    """

    def __init__(self, frames: Mapping[str, Sequence[bytes]], captions: Mapping[str, Sequence[str]],
                 slider_label: str = "step", choice_label: str = "choice", start: int = 0, play: bool = True) -> None:
        if not frames:
            raise ValueError("A scrubber needs at least one set of frames.")
        lengths = {k: len(v) for k, v in frames.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"Every set of frames must have the same length, got {lengths}.")
        self.frames, self.captions = dict(frames), dict(captions)
        n = next(iter(lengths.values()))
        self.out = widgets.Output()
        self.choice = widgets.Dropdown(options=list(frames), description=choice_label)
        self.slider = widgets.IntSlider(value=start, min=0, max=n - 1, step=1, description=slider_label,
                                        readout=False, continuous_update=True,
                                        layout=widgets.Layout(width="420px"))
        self.caption = widgets.HTML()
        self.image = widgets.Image(format="png")
        controls = [self.slider, self.caption]
        if play:
            self.play = widgets.Play(min=0, max=n - 1, step=1, interval=120, description="play")
            widgets.jslink((self.play, "value"), (self.slider, "value"))
            controls.insert(0, self.play)
        rows = [widgets.HBox([self.choice])] if len(frames) > 1 else []
        self.widget = widgets.VBox(rows + [widgets.HBox(controls), self.image, self.out])
        self.slider.observe(self._on_change, names="value")
        self.choice.observe(self._on_change, names="value")
        self._render()

    def _on_change(self, _change=None) -> None:
        with self.out:  # an error in a callback shows up under the widget, not in the Lab log
            self._render()

    def _render(self) -> None:
        self.image.value = self.frames[self.choice.value][self.slider.value]
        self.caption.value = self.captions[self.choice.value][self.slider.value]

    def select(self, index: int | None = None, choice: str | None = None) -> bytes:
        """Move the controls (as a learner would) and return the PNG bytes now shown."""
        if choice is not None:
            if choice not in self.frames:
                raise ValueError(f"Unknown choice {choice!r}; pick one of {list(self.frames)}.")
            self.choice.value = choice
        if index is not None:
            self.slider.value = int(index)
        return bytes(self.image.value)

    @property
    def n_frames(self) -> int:
        return self.slider.max + 1

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _frame_times(T: int, n_frames: int) -> list[int]:
    return sorted(set(np.linspace(0, T - 1, n_frames).round().astype(int).tolist()))


def timestep_frames(x0: torch.Tensor, schedule: NoiseSchedule, eps: torch.Tensor, times: Sequence[int],
                    draw: Callable[[plt.Axes, torch.Tensor], object], dpi: int = 70) -> list[bytes]:
    r"""PNG frames of :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon` for each t in ``times``,
    next to the :math:`\bar\alpha_t` and SNR curves with a marker at t.

    ``draw(ax, x_t)`` draws the data panel on the first call and returns an
    ``update(x_t)`` function used for the following frames (so one figure is reused).
    """
    fig, (ax_data, ax_curve) = plt.subplots(1, 2, figsize=(8, 3.6), gridspec_kw=dict(width_ratios=[1, 1.2]))
    t_axis = np.arange(schedule.T)
    ax_curve.plot(t_axis, schedule.alpha_bars.numpy(), color="C0", label=r"$\bar\alpha_t$ (signal kept)")
    ax_curve.plot(t_axis, (1 - schedule.alpha_bars).numpy(), color="C1", label=r"$1-\bar\alpha_t$ (noise)")
    ax_curve.set_xlabel("timestep t"), ax_curve.set_ylabel("coefficient"), ax_curve.set_ylim(-0.02, 1.02)
    ax_curve.grid(alpha=0.3), ax_curve.legend(loc="center right", fontsize=8)
    marker = ax_curve.axvline(0, color="k", lw=1)
    dot, = ax_curve.plot([0], [1], "o", color="C0")
    ax_curve.set_title("placeholder", fontsize=10)
    ax_data.set_title("placeholder", fontsize=10)
    fig.tight_layout()
    update = None
    frames = []
    for t in times:
        xt = schedule.q_sample(x0, int(t), eps)
        if update is None:
            update = draw(ax_data, xt)
        else:
            update(xt)
        ab = float(schedule.alpha_bars[t])
        ax_data.set_title(f"$x_t$ at t = {t}", fontsize=10)
        ax_curve.set_title(f"{schedule.name}: " + r"$\bar\alpha_t$" + f" = {ab:.3f}, SNR = {ab / (1 - ab):.3g}", fontsize=10)
        marker.set_xdata([t, t])
        dot.set_data([t], [ab])
        frames.append(fig_to_png(fig, dpi=dpi))
    plt.close(fig)
    return frames


def _draw_points(ax: plt.Axes, x: torch.Tensor):
    sc = ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.5, linewidths=0)
    ax.set_xlim(-TOY_LIM, TOY_LIM), ax.set_ylim(-TOY_LIM, TOY_LIM), ax.set_aspect("equal")
    ax.set_xlabel("$x_1$"), ax.set_ylabel("$x_2$")
    return lambda xt: sc.set_offsets(xt.numpy())


def _draw_images(ax: plt.Axes, x: torch.Tensor, nrow: int = 4):
    im = ax.imshow(image_grid(x, nrow), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel("pixels clipped to [-1, 1] for display")
    return lambda xt: im.set_data(image_grid(xt, nrow))


class TimestepScrubber(FrameScrubber):
    r"""Scrub the **forward** process: a slider over t shows :math:`x_t\sim q(x_t\mid x_0)` with one fixed
    :math:`\varepsilon`, beside the :math:`\bar\alpha_t` curve with a marker; a dropdown switches schedule.

    ``x0`` is an ``(n, 2)`` point cloud or ``(n, 1, H, W)`` images (a few digits).
    """

    def __init__(self, x0: torch.Tensor, schedules: Mapping[str, NoiseSchedule] | NoiseSchedule,
                 n_frames: int = 31, seed: int = 0, dpi: int = 70) -> None:
        if isinstance(schedules, NoiseSchedule):
            schedules = {schedules.name: schedules}
        x0 = torch.as_tensor(x0).detach().cpu().float()
        if x0.ndim == 2 and x0.shape[1] == 2:
            draw = _draw_points
        elif x0.ndim == 4:
            draw = _draw_images
        else:
            raise ValueError(f"x0 must be (n, 2) points or (n, 1, H, W) images, got shape {tuple(x0.shape)}.")
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        frames, captions = {}, {}
        self.times = {}
        for name, s in schedules.items():
            times = _frame_times(s.T, n_frames)
            self.times[name] = times
            frames[name] = timestep_frames(x0, s, eps, times, draw, dpi=dpi)
            captions[name] = [f"t = {t} of {s.T - 1}, " + r"ᾱ<sub>t</sub>" + f" = {float(s.alpha_bars[t]):.3f}" for t in times]
        super().__init__(frames, captions, slider_label="t", choice_label="schedule")

    def t(self) -> int:
        """The timestep currently shown."""
        return self.times[self.choice.value][self.slider.value]
