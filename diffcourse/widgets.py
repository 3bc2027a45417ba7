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

__all__ = ["FrameScrubber", "TimestepScrubber", "ReverseTrajectoryScrubber", "ScoreFieldScrubber", "ImageGridScrubber",
           "MenuGridScrubber", "LatentTrajectoryScrubber", "FlowPathsScrubber", "timestep_frames", "grid_png"]


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


def timestep_frames(xs: Sequence[torch.Tensor], schedule: NoiseSchedule, times: Sequence[int],
                    draw: Callable[[plt.Axes, torch.Tensor], object], dpi: int = 70) -> list[bytes]:
    r"""PNG frames of the states ``xs[k]`` (at timesteps ``times[k]``), each next to the
    :math:`\bar\alpha_t` and :math:`1-\bar\alpha_t` curves with a marker at t.

    ``draw(ax, x)`` draws the data panel on the first call and returns an
    ``update(x)`` function used for the following frames (so one figure is reused).
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
    for x, t in zip(xs, times):
        x = torch.as_tensor(x).detach().cpu().float()
        if update is None:
            update = draw(ax_data, x)
        else:
            update(x)
        ab = float(schedule.alpha_bars[t]) if t >= 0 else 1.0
        ax_data.set_title(f"$x_t$ at t = {t}" if t >= 0 else "$x_0$ (t = -1: after the last step)", fontsize=10)
        ax_curve.set_title(f"{schedule.name}: " + r"$\bar\alpha_t$" + f" = {ab:.3f}", fontsize=10)
        marker.set_xdata([max(t, 0)] * 2)
        dot.set_data([max(t, 0)], [ab])
        frames.append(fig_to_png(fig, dpi=dpi))
    plt.close(fig)
    return frames


def _drawer(x: torch.Tensor) -> Callable[[plt.Axes, torch.Tensor], object]:
    if x.ndim == 2 and x.shape[1] == 2:
        return _draw_points
    if x.ndim == 4:
        return _draw_images
    raise ValueError(f"Expected (n, 2) points or (n, 1, H, W) images, got shape {tuple(x.shape)}.")


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
        draw = _drawer(x0)
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        frames, captions = {}, {}
        self.times = {}
        for name, s in schedules.items():
            times = _frame_times(s.T, n_frames)
            self.times[name] = times
            frames[name] = timestep_frames([s.q_sample(x0, t, eps) for t in times], s, times, draw, dpi=dpi)
            captions[name] = [f"t = {t} of {s.T - 1}, " + r"ᾱ<sub>t</sub>" + f" = {float(s.alpha_bars[t]):.3f}" for t in times]
        super().__init__(frames, captions, slider_label="t", choice_label="schedule")

    def t(self) -> int:
        """The timestep currently shown."""
        return self.times[self.choice.value][self.slider.value]


class ReverseTrajectoryScrubber(FrameScrubber):
    r"""Scrub the **reverse** process: a slider over the sampler's steps shows :math:`x_t` from pure
    noise (t = T-1) down to the sample :math:`x_0`, next to the :math:`\bar\alpha_t` curve.

    ``trajectories`` maps a name (e.g. ``"2D moons"``, ``"MNIST"``) to a trajectory of shape
    ``(K, n, …)`` as returned by the samplers with ``return_trajectory=True``, whose frame ``k``
    is the state *before* step ``times[k]`` (so ``times`` runs T-1, …, 0, and a last frame
    ``-1`` is the final sample). Frames are subsampled to at most ``n_frames``.
    """

    def __init__(self, trajectories: Mapping[str, torch.Tensor], schedule: NoiseSchedule,
                 times: Sequence[int] | None = None, n_frames: int = 41, dpi: int = 70) -> None:
        frames, captions = {}, {}
        self.times = {}
        for name, traj in trajectories.items():
            traj = torch.as_tensor(traj).detach().cpu().float()
            ts = list(times) if times is not None else list(range(schedule.T - 1, -1, -1)) + [-1]
            if len(ts) != len(traj):
                raise ValueError(f"{name}: the trajectory has {len(traj)} frames but {len(ts)} timesteps were given; "
                                 "pass times= matching the sampler's steps (T-1 … 0, then -1 for the result).")
            keep = sorted(set(np.linspace(0, len(traj) - 1, min(n_frames, len(traj))).round().astype(int).tolist()))
            kept_t = [ts[k] for k in keep]
            self.times[name] = kept_t
            frames[name] = timestep_frames([traj[k] for k in keep], schedule, kept_t, _drawer(traj[0]), dpi=dpi)
            captions[name] = [f"step {i} of {len(keep) - 1}: " + (f"x<sub>t</sub> at t = {t}" if t >= 0 else "final sample x<sub>0</sub>")
                              for i, t in enumerate(kept_t)]
        super().__init__(frames, captions, slider_label="step", choice_label="data")


class ScoreFieldScrubber(FrameScrubber):
    r"""The score field :math:`\nabla_x\log p_t(x)` as arrows over the 2D plane, with a slider over t,
    and (optionally) samples of a reverse-time trajectory moving along it.

    ``score_fn(x, t)`` takes points ``(m, 2)`` and continuous times ``(m,)`` in [0, 1];
    ``trajectory`` is ``(K, n, 2)`` with ``trajectory[k]`` the samples at ``times[k]``.
    """

    def __init__(self, score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], times: Sequence[float],
                 trajectory: torch.Tensor | None = None, grid: int = 17, lim: float = TOY_LIM, dpi: int = 70) -> None:
        times = [float(t) for t in times]
        if trajectory is not None and len(trajectory) != len(times):
            raise ValueError(f"trajectory has {len(trajectory)} frames but {len(times)} times were given.")
        g = torch.linspace(-lim, lim, grid)
        xx, yy = torch.meshgrid(g, g, indexing="xy")
        pts = torch.stack([xx.flatten(), yy.flatten()], 1)
        fig, ax = plt.subplots(figsize=(4.6, 4.6))
        quiv = ax.quiver(pts[:, 0], pts[:, 1], np.zeros(len(pts)), np.zeros(len(pts)), color="k", angles="xy",
                         alpha=0.7, width=0.004, scale=grid * 1.1)
        sc = ax.scatter([], [], s=3, color="C3", alpha=0.6, linewidths=0, label="samples at this t")
        ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
        ax.set_xlabel("$x_1$"), ax.set_ylabel("$x_2$")
        if trajectory is not None:
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title("placeholder")
        fig.tight_layout()
        frames, captions = [], []
        for k, t in enumerate(times):
            with torch.no_grad():
                s = torch.as_tensor(score_fn(pts, torch.full((len(pts),), t, dtype=torch.float64))).double()
            norm = s.norm(dim=1, keepdim=True)
            u = s / norm.clamp_min(1e-12)
            quiv.set_UVC(u[:, 0].numpy(), u[:, 1].numpy())
            if trajectory is not None:
                sc.set_offsets(torch.as_tensor(trajectory[k]).float().numpy())
            ax.set_title(f"score direction at t = {t:.3f}  (median |score| = {norm.median():.2f})", fontsize=9)
            frames.append(fig_to_png(fig, dpi=dpi))
            captions.append(f"t = {t:.3f}")
        plt.close(fig)
        self.times = times
        super().__init__({"score": frames}, {"score": captions}, slider_label="t", play=True)


def grid_png(images: torch.Tensor, nrow: int = 8, scale: int = 3) -> bytes:
    """Encode ``(N, 1, H, W)`` images in [-1, 1] as one PNG grid (nearest-neighbour upscaled ``scale``×), without matplotlib."""
    import io

    from PIL import Image

    grid = image_grid(images, nrow)
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class ImageGridScrubber(FrameScrubber):
    """A slider over precomputed image grids, e.g. the same seeds sampled with 5…100 DDIM steps,
    or at guidance scales w = 0…8; an optional dropdown switches between sets (e.g. eta, or class).

    ``grids[choice][i]`` is an ``(N, 1, H, W)`` batch in [-1, 1]; ``values[i]`` labels slider position ``i``
    (``value_name = value`` is shown under the slider). All PNGs are encoded once, here.
    """

    def __init__(self, grids: Mapping[str, Sequence[torch.Tensor]], values: Sequence[float], value_name: str,
                 choice_label: str = "choice", nrow: int = 8, scale: int = 3, start: int = 0) -> None:
        frames = {k: [grid_png(g, nrow, scale) for g in v] for k, v in grids.items()}
        for k, v in frames.items():
            if len(v) != len(values):
                raise ValueError(f"{k!r} has {len(v)} grids but {len(values)} values were given.")
        captions = {k: [f"{value_name} = {val:g}" for val in values] for k in frames}
        self.values = list(values)
        super().__init__(frames, captions, slider_label=value_name, choice_label=choice_label, start=start, play=False)

    def value(self) -> float:
        """The value (e.g. number of steps, guidance scale) currently shown."""
        return self.values[self.slider.value]


class MenuGridScrubber(ImageGridScrubber):
    """`ImageGridScrubber` with one dropdown per factor instead of one list of every combination, e.g. a mask
    menu and a method menu over an editing-strength slider (chapter 9).

    ``grids[(a, b, …)][i]`` is the ``(N, 1, H, W)`` batch shown for menu choices ``(a, b, …)`` at slider
    position ``i``; every combination of the choices must be present. ``menus`` names the factors.
    """

    def __init__(self, grids: Mapping[tuple[str, ...], Sequence[torch.Tensor]], menus: Sequence[str],
                 values: Sequence[float], value_name: str, nrow: int = 8, scale: int = 3, start: int = 0) -> None:
        keys = [tuple(k) for k in grids]
        if not keys or any(len(k) != len(menus) for k in keys):
            raise ValueError(f"Every key of grids must be a tuple of {len(menus)} choices, one per menu {list(menus)}.")
        options = [list(dict.fromkeys(k[i] for k in keys)) for i in range(len(menus))]
        missing = [c for c in _product(options) if c not in set(keys)]
        if missing:
            raise ValueError(f"grids lacks {len(missing)} combination(s) of the menus, e.g. {missing[0]}.")
        self._sep = " · "
        super().__init__({self._sep.join(k): v for k, v in grids.items()}, values, value_name, nrow=nrow, scale=scale,
                         start=start)
        self.menus = {name: widgets.Dropdown(options=opts, description=name) for name, opts in zip(menus, options)}
        for menu in self.menus.values():
            menu.observe(self._on_menu, names="value")
        self.widget.children = (widgets.HBox(list(self.menus.values())),) + tuple(self.widget.children[-3:])
        self._on_menu()

    def _on_menu(self, _change=None) -> None:
        with self.out:
            self.choice.value = self._sep.join(m.value for m in self.menus.values())

    def select(self, index: int | None = None, choice: str | None = None, **menus: str) -> bytes:
        """Set any menus by name (``select(2, mask="centre", method="RePaint")``) and the slider; return the PNG shown."""
        for name, value in menus.items():
            if name not in self.menus:
                raise ValueError(f"Unknown menu {name!r}; the menus are {list(self.menus)}.")
            if value not in self.menus[name].options:
                raise ValueError(f"Unknown choice {value!r} for {name}; pick one of {list(self.menus[name].options)}.")
            self.menus[name].value = value
        return super().select(index, choice)


def _product(options: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for opts in options:
        out = [c + (o,) for c in out for o in opts]
    return out


class LatentTrajectoryScrubber(FrameScrubber):
    r"""Scrub a **latent** diffusion trajectory: at each step, every sample's latent channels (7×7 each, grey
    range fixed to ±``latent_range``) next to what the decoder makes of the current latent,
    :math:`\mathrm{decode}(z_t/c)`; a dropdown switches between trajectories (e.g. prompts).

    ``trajectories[name]`` is ``(K, n, C, h, w)`` (a sampler's ``return_trajectory`` output, scaled latents),
    ``times[k]`` the timestep of frame ``k`` (``-1`` for the final latent), ``decode`` the autoencoder's decoder
    and ``scale`` the factor :math:`c` the latents were multiplied by. One row per sample in each frame.
    """

    def __init__(self, trajectories: Mapping[str, torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
                 scale: float, times: Sequence[int], latent_range: float = 3.0, scale_px: int = 3) -> None:
        frames, captions = {}, {}
        self.times = list(times)
        for name, traj in trajectories.items():
            traj = torch.as_tensor(traj).detach().cpu().float()
            if len(traj) != len(self.times):
                raise ValueError(f"{name}: the trajectory has {len(traj)} frames but {len(self.times)} times were given.")
            frames[name], captions[name] = [], []
            for k, (z, t) in enumerate(zip(traj, self.times)):
                with torch.no_grad():
                    image = decode(z / scale).detach().cpu().float()
                n, C, h, w = z.shape
                f = image.shape[-1] // w
                channels = (z / latent_range).clamp(-1, 1).repeat_interleave(f, -1).repeat_interleave(f, -2)
                tiles = torch.cat([channels.reshape(n, C, 1, h * f, w * f), image[:, None]], 1)  # (n, C + 1, 1, H, W)
                frames[name].append(grid_png(tiles.reshape(n * (C + 1), 1, h * f, w * f), nrow=C + 1, scale=scale_px))
                what = f"z<sub>t</sub> at t = {t}" if t >= 0 else "final latent z<sub>0</sub>"
                captions[name].append(f"step {k} of {len(traj) - 1}: {what} (std {z.std():.2f}); columns: "
                                      f"{C} latent channels, then decode(z / {scale:.3f})")
        super().__init__(frames, captions, slider_label="step", choice_label="prompt")


class FlowPathsScrubber(FrameScrubber):
    r"""Chapter 10: the paths a flow's ODE takes from noise to data, and what a few Euler steps along them give.

    A dropdown picks a model (e.g. a coupling: I-CFM, OT-CFM, reflow), a slider the number of network evaluations.
    Each frame shows, left, the paths of ``n_paths`` noises: the ODE solved finely (``fine[name]``, grey, the
    "true" curves) and the coarse solve with that NFE (``runs[name][nfe][0]``, coloured polylines: one segment per
    step), and, right, the samples of that coarse solve (``runs[name][nfe][1]``) over ``data`` (grey). Straight paths
    make the coarse polylines land where the fine curves do; curved ones cut the corners and miss.
    ``notes[name][nfe]`` (e.g. a score) is printed under the slider.
    """

    def __init__(self, runs: Mapping[str, Mapping[int, tuple[torch.Tensor, torch.Tensor]]],
                 fine: Mapping[str, torch.Tensor], data: torch.Tensor | None = None,
                 notes: Mapping[str, Mapping[int, str]] | None = None, n_paths: int = 40, lim: float = TOY_LIM,
                 dpi: int = 70) -> None:
        nfes = [sorted(r) for r in runs.values()]
        if any(n != nfes[0] for n in nfes):
            raise ValueError(f"Every model needs the same NFE values, got {dict(zip(runs, nfes))}.")
        self.nfes = nfes[0]
        frames, captions = {}, {}
        for name, by_nfe in runs.items():
            frames[name] = [self._frame(fine[name], *by_nfe[k], data, name, k, n_paths, lim, dpi) for k in self.nfes]
            captions[name] = [f"{name}, NFE = {k}" + (f": {notes[name][k]}" if notes and name in notes else "")
                              for k in self.nfes]
        super().__init__(frames, captions, slider_label="NFE", choice_label="model", play=False)

    @staticmethod
    def _frame(fine: torch.Tensor, coarse: torch.Tensor, samples: torch.Tensor, data: torch.Tensor | None, name: str,
               nfe: int, n_paths: int, lim: float, dpi: int) -> bytes:
        fine, coarse = torch.as_tensor(fine)[:, :n_paths].float(), torch.as_tensor(coarse)[:, :n_paths].float()
        fig, (ax_p, ax_s) = plt.subplots(1, 2, figsize=(8.4, 4.2))
        for i in range(fine.shape[1]):
            ax_p.plot(fine[:, i, 0], fine[:, i, 1], color="0.6", lw=0.8)
            ax_p.plot(coarse[:, i, 0], coarse[:, i, 1], color="C3", lw=1.0, marker=".", ms=3)
        ax_p.scatter(fine[0, :, 0], fine[0, :, 1], s=10, color="k", zorder=3, label="noise (t = 1)")
        ax_p.set_title(f"{name}: ODE paths (grey) and {nfe} Euler step(s) (red)", fontsize=9)
        if data is not None:
            ax_s.scatter(data[:, 0], data[:, 1], s=2, color="0.75", label="data")
        ax_s.scatter(samples[:, 0], samples[:, 1], s=2, color="C3", label=f"samples, NFE = {nfe}")
        ax_s.set_title(f"{name}: samples with {nfe} network evaluation(s)", fontsize=9)
        for ax in (ax_p, ax_s):
            ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
            ax.legend(loc="upper right", fontsize=7, markerscale=3)
        fig.tight_layout()
        png = fig_to_png(fig, dpi=dpi)
        plt.close(fig)
        return png

    def nfe(self) -> int:
        """The number of network evaluations currently shown."""
        return self.nfes[self.slider.value]
