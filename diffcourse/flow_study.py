r"""Chapter 10's measurements: the 2D coupling study and the reading of ``benchmarks/results/flows.json``.

`toy_study` trains the five models of `diffcourse.recipes.toy2d_flow` for one seed and scores them the same way:
sliced Wasserstein distance to fresh data over the floor (two data sets of the same N) at each NFE, and the
straightness of each model's ODE paths (`diffcourse.flows.straightness`; the diffusion models' probability-flow
ODE is read on the linear path by `diffusion_velocity_fn`). ``benchmarks/flows.py`` runs it over seeds; the lesson
runs seed 0 live. `seed_verdicts` and `mnist_verdicts` turn the results into the verdict lines of
`diffcourse.measure` (paired over seeds; or, over samples drawn from the same noises, the paired jackknife for FID
and the paired bootstrap for the confident share).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .data import toy2d
from .flows import ddim_linear_times, diffusion_velocity_fn, straightness, velocity_fn
from .measure import Difference, seed_difference
from .metrics import sliced_wasserstein
from .objectives import eps_fn
from .recipes.toy2d_flow import FLOW_TOY, train_toy_diffusion, train_toy_flow, train_toy_reflow
from .samplers import ddim_sample
from .samplers.flow import flow_sample

__all__ = ["TOY_NFES", "TOY_METHODS", "toy_sets", "toy_models", "toy_velocity", "toy_sample", "toy_straightness",
           "toy_scores", "toy_study", "TOY_CACHE", "save_toy_models", "load_toy_models", "seed_verdicts",
           "mnist_verdicts", "TOY_GRIDS", "toy_grid", "toy_grid_start", "toy_grid_sample", "toy_floor_draws",
           "toy_grid_scores", "floor_band_table", "verdict_table", "grid_curves", "effective_weights", "MNIST_GRID_ROWS", "mnist_grid_table", "grid_table",
           "over_mean_floor", "plot_ode_paths"]

TOY_NFES = (1, 2, 4, 8, 50)
TOY_METHODS = ("i-cfm", "ot-cfm", "reflow", "ddim-x0", "ddim-eps")
FLOWS = ("i-cfm", "ot-cfm", "reflow")


def toy_sets(seed: int, n: int = 2000) -> dict[str, torch.Tensor]:
    """The evaluation sets of one seed: ``data`` and ``other`` (two independent draws of the dataset: the floor is
    their distance) and the starting noises ``x_T``, all of ``n`` points."""
    name = FLOW_TOY["dataset"]
    return {"data": toy2d.sample(name, n, torch.Generator().manual_seed(30_000 + seed)),
            "other": toy2d.sample(name, n, torch.Generator().manual_seed(40_000 + seed)),
            "x_T": torch.randn(n, 2, generator=torch.Generator().manual_seed(50_000 + seed))}


def toy_models(seed: int = 0, methods: Sequence[str] = TOY_METHODS) -> dict[str, dict[str, Any]]:
    """Train the study's models for ``seed``: ``{method: {"model", "seconds"[, "schedule", "pair_seconds"]}}``
    (reflow also trains its I-CFM base)."""
    out: dict[str, dict[str, Any]] = {}
    base = None
    for m in methods:
        if m in ("i-cfm", "reflow") and base is None:
            base = train_toy_flow("independent", seed=seed)
            out["i-cfm"] = {"model": base.ema_model, "seconds": base.seconds}
        if m == "ot-cfm":
            r = train_toy_flow("ot", seed=seed)
            out[m] = {"model": r.ema_model, "seconds": r.seconds}
        elif m == "reflow":
            r, pair_s = train_toy_reflow(base, seed=seed)
            out[m] = {"model": r.ema_model, "seconds": r.seconds, "pair_seconds": pair_s}
        elif m.startswith("ddim-"):
            r, schedule = train_toy_diffusion(m.split("-")[1], seed=seed)
            out[m] = {"model": r.ema_model, "seconds": r.seconds, "schedule": schedule}
    return {m: out[m] for m in methods}


def toy_velocity(method: str, entry: Mapping[str, Any]):
    """The velocity field of a study model on the linear path (a diffusion model's through `diffusion_velocity_fn`)."""
    if method in FLOWS:
        return velocity_fn(entry["model"])
    model = entry["model"]
    return diffusion_velocity_fn(lambda x, tau: model(x, tau), entry["schedule"], kind=method.split("-")[1])


def toy_straightness(method: str, entry: Mapping[str, Any], x_T: torch.Tensor) -> torch.Tensor:
    """`straightness` of a study model's ODE paths from ``x_T``: a flow's on 100 uniform steps from t = 1; a diffusion
    model's on DDIM's 100 timesteps read as linear times (`ddim_linear_times`, from x_T / c, as DDIM-100 walks)."""
    v = toy_velocity(method, entry)
    if method in FLOWS:
        return straightness(v, x_T, steps=100)
    ab = entry["schedule"].alpha_bars[-1]
    return straightness(v, x_T / (ab.sqrt() + (1 - ab).sqrt()).float(), times=ddim_linear_times(entry["schedule"], 100))


@torch.no_grad()
def toy_sample(method: str, entry: Mapping[str, Any], x_T: torch.Tensor, nfe: int, solver: str = "euler",
               return_trajectory: bool = False):
    """Samples of a study model from ``x_T`` with ``nfe`` evaluations: flows by Euler (or Heun, ``nfe`` even) on a
    uniform grid, diffusion models by DDIM with η = 0 (trailing spacing, no clipping)."""
    if method in FLOWS:
        steps = nfe if solver == "euler" else nfe // 2
        return flow_sample(velocity_fn(entry["model"]), x_T, steps=steps, method=solver,
                           return_trajectory=return_trajectory)
    schedule = entry["schedule"]
    return ddim_sample(eps_fn(entry["model"], schedule, method.split("-")[1]), schedule, x_T, steps=nfe,
                       return_trajectory=return_trajectory)


def toy_scores(models: Mapping[str, Mapping[str, Any]], sets: Mapping[str, torch.Tensor],
               nfes: Sequence[int] = TOY_NFES, n_straight: int = 500) -> dict[str, dict[str, Any]]:
    """SW / floor at each NFE (and with Heun at the even NFEs for the flows), straightness on the first
    ``n_straight`` noises, and training seconds, per method."""
    floor = sliced_wasserstein(sets["other"], sets["data"])
    scores = {}
    for m, entry in models.items():
        row = {"train_seconds": round(entry["seconds"], 2), "floor": floor,
               "sw_ratio": {str(k): sliced_wasserstein(toy_sample(m, entry, sets["x_T"], k), sets["data"]) / floor
                            for k in nfes},
               "straightness": float(toy_straightness(m, entry, sets["x_T"][:n_straight]).mean())}
        if m in FLOWS:
            row["sw_ratio_heun"] = {str(k): sliced_wasserstein(toy_sample(m, entry, sets["x_T"], k, "heun"),
                                                               sets["data"]) / floor for k in nfes if k % 2 == 0}
        if "pair_seconds" in entry:
            row["pair_seconds"] = round(entry["pair_seconds"], 2)
        scores[m] = row
    return scores


def toy_study(seed: int = 0, n: int = 2000, methods: Sequence[str] = TOY_METHODS,
              models: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Train (or take ``models``, e.g. `load_toy_models`) and score one seed of the 2D study:
    ``{"models", "sets", "scores"}``."""
    models = dict(models) if models is not None else toy_models(seed, methods)
    sets = toy_sets(seed, n)
    return {"models": models, "sets": sets, "scores": toy_scores(models, sets)}


def seed_verdicts(runs: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[str, str]], key: str,
                  nfe: int | None = None) -> list[Difference]:
    """Paired-over-seeds differences (`seed_difference`) of ``key`` (``"sw_ratio"`` at ``nfe``, or
    ``"straightness"``) for each ``(a, b)`` in ``pairs``; ``runs`` are the per-seed score dicts."""
    def value(run: Mapping[str, Any], m: str) -> float:
        v = run[m][key]
        return float(v[str(nfe)]) if nfe is not None else float(v)

    return [seed_difference([value(r, a) for r in runs], [value(r, b) for r in runs], name_a=a, name_b=b)
            for a, b in pairs]


def mnist_verdicts(results: Mapping[str, Any], metric: str = "fid") -> list[tuple[int, Difference]]:
    """The paired differences stored by ``benchmarks/flows.py --part mnist`` (or ``--part mnist-grid``) for
    ``metric``, as ``(nfe, Difference)``: ``"fid"`` by the paired jackknife over groups of samples (the test digits'
    noise included), ``"confident"`` by the paired bootstrap; each `Difference` names its own interval."""
    out = []
    for d in results.get("differences", []):
        if d["metric"] == metric:
            out.append((d["nfe"], Difference.from_dict(d)))
    return out


# ----------------------------------------------------------------------------------------------- checks and tables
def continuity_residual(gm, x: torch.Tensor, t: float, h: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Both sides of the continuity equation :math:`\partial_t p_t = -\nabla\cdot(p_t v_t)` for the linear path from
    the mixture ``gm`` (the path's marginal :math:`p_t` is the mixture with means :math:`(1-t)\mu_k` and variance
    :math:`(1-t)^2\sigma^2 + t^2`; :math:`v_t` is `mixture_marginal_velocity`), by central differences of step ``h``
    in :math:`t` and in each coordinate. Returns ``(dp_dt, minus_div)``, one value per point."""
    import math

    from .data.toy2d import GaussianMixture
    from .flows import mixture_marginal_velocity

    def p(y: torch.Tensor, s: float) -> torch.Tensor:
        return GaussianMixture(gm.means * (1 - s), math.sqrt((1 - s) ** 2 * gm.std ** 2 + s ** 2), gm.weights
                               ).log_prob(y).exp()

    x = x.double()
    dp_dt = (p(x, t + h) - p(x, t - h)) / (2 * h)
    div = torch.zeros(len(x), dtype=torch.float64)
    for d in range(x.shape[1]):
        e = torch.zeros_like(x)
        e[:, d] = h
        flux = [p(x + s * e, t) * mixture_marginal_velocity(gm, x + s * e, t)[:, d] for s in (1, -1)]
        div += (flux[0] - flux[1]) / (2 * h)
    return dp_dt, -div


def toy_table(scores: Mapping[str, Mapping[str, Any]], nfes: Sequence[int] = TOY_NFES,
              seconds: Mapping[str, Mapping[str, Any]] | None = None, seconds_label: str = "training s",
              ratio_label: str = "SW / floor") -> str:
    """A markdown table of one seed's study: SW / floor at each NFE, straightness and training seconds per method
    (``seconds``: another run's score dicts to take the seconds from, e.g. the benchmark's seed in ``flows.json``
    when the models were loaded rather than trained here). The straightness column is `toy_straightness`'s: each
    model on its own sampler's grid (a flow's uniform one, a diffusion model's DDIM grid), so it is not a
    comparison across the two families (`toy_grid_scores` measures every model on the same grid)."""
    from .reporting import markdown_table

    rows = []
    for m, s in scores.items():
        clock = (seconds or scores)[m]
        extra = f" (+{clock['pair_seconds']:.1f} s for the pairs, + the I-CFM run)" if "pair_seconds" in clock else ""
        rows.append([m] + [f"{s['sw_ratio'][str(k)]:.2f}" for k in nfes]
                    + [f"{s['straightness']:.4f}", f"{clock['train_seconds']:.1f}{extra}"])
    return markdown_table([f"model ({ratio_label})"] + [f"NFE {k}" for k in nfes]
                          + ["straightness (each on its own grid: flows uniform, DDIM models DDIM's)", seconds_label], rows)


def plot_pairs(ax, x0: torch.Tensor, eps: torch.Tensor, title: str, n: int = 60, seed: int = 0) -> None:
    """The straight lines of a coupling: each data point joined to its noise partner (the conditional paths), for
    ``n`` pairs drawn at random (seeded: a data set may come ordered, e.g. the two moons' upper half first)."""
    idx = torch.randperm(len(x0), generator=torch.Generator().manual_seed(seed))[:n]
    x0, eps = x0[idx], eps[idx]
    for i in range(len(idx)):
        ax.plot([eps[i, 0], x0[i, 0]], [eps[i, 1], x0[i, 1]], color="C0", lw=0.6, alpha=0.7)
    ax.scatter(eps[:, 0], eps[:, 1], s=8, color="k", label="noise (t = 1)")
    ax.scatter(x0[:, 0], x0[:, 1], s=8, color="C3", label="data (t = 0)")
    ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", title=title)
    ax.legend(loc="upper right", fontsize=7)


def study_curves(runs: Sequence[Mapping[str, Any]], key: str = "sw_ratio") -> dict[str, list[tuple[int, float]]]:
    """Mean over seeds of ``key`` at each NFE, per method, as ``{method: [(nfe, value), …]}`` (a quality-vs-NFE
    plot's series)."""
    out = {}
    for m in runs[0]:
        if key not in runs[0][m]:
            continue
        nfes = sorted(int(k) for k in runs[0][m][key])
        out[m] = [(k, sum(r[m][key][str(k)] for r in runs) / len(runs)) for k in nfes]
    return out


def mnist_table(part: Mapping[str, Any]) -> str:
    """A markdown table of the MNIST part of ``flows.json``: FID (and its ratio to the floor) and confident share
    for each model and sampler at each NFE."""
    from .reporting import markdown_table

    rows = []
    for key, r in part["rows"].items():
        rows.append([key.split(":")[0], r["nfe"], f"{r['fid']:.2f}", f"{r['fid_over_floor']:.2f}",
                     f"{r['confident']:.3f}", f"{r['seconds']:.0f}"])
    fl = part["floor"]
    rows.append([f"floor: {fl['n']} training digits, {len(fl['draws'])} draws", "—",
                 f"{fl['mean']:.2f} ± {fl['std']:.2f}", "1.00", f"{part.get('real_confident', float('nan')):.3f}", "—"])
    return markdown_table(["model / sampler", "NFE", "FID", "FID / floor", "confident share",
                           "wall seconds (1 thread, busy shared CPU)"],
                          sorted(rows[:-1], key=lambda r: (r[0], r[1])) + rows[-1:])


# ----------------------------------------------------------------------------------------------- the cached seed
TOY_CACHE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "flows_toy2d_seed0.pt"
"""Seed 0's five trained 2D models, written by ``python benchmarks/flows.py --part toy2d-cache`` (which refuses to
write them unless their scores equal seed 0 of ``flows.json``'s ``toy2d`` part): the lesson loads them instead of
spending about a minute of CPU retraining them."""


def save_toy_models(models: Mapping[str, Mapping[str, Any]], path: str | Path = TOY_CACHE) -> None:
    """Write the EMA weights of a `toy_models` result, with the seconds of that training run (the lesson shows the
    benchmark's seconds from ``flows.json`` instead: the cache may be written on a busier machine)."""
    torch.save({m: {"state_dict": e["model"].state_dict(), "seconds": float(e["seconds"]),
                    **({"pair_seconds": float(e["pair_seconds"])} if "pair_seconds" in e else {})}
                for m, e in models.items()}, path)


def load_toy_models(path: str | Path = TOY_CACHE) -> dict[str, dict[str, Any]]:
    """The models `save_toy_models` wrote, rebuilt as `toy_models` returns them (same `ToyMLP`, diffusion models
    with their linear schedule)."""
    from .models import ToyMLP
    from .schedules import make_schedule

    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is not there: write it with `python benchmarks/flows.py --part toy2d-cache`, "
                                "or train the models here with `toy_models(seed=0)` (about a minute of CPU).")
    out = {}
    for m, saved in torch.load(path, weights_only=True).items():
        model = ToyMLP(hidden=FLOW_TOY["hidden"], depth=FLOW_TOY["depth"])
        model.load_state_dict(saved["state_dict"])
        entry = {"model": model.eval().requires_grad_(False), **{k: v for k, v in saved.items() if k != "state_dict"}}
        if m.startswith("ddim-"):
            entry["schedule"] = make_schedule("linear", FLOW_TOY["T"])
        out[m] = entry
    return out


# ----------------------------------------------------------------------------------------------- the time grid
TOY_GRIDS = ("uniform", "ddim")
"""The two time grids of the matched-grid study: ``"uniform"`` steps in linear time, ``"ddim"`` DDIM's trailing
timesteps read as linear times (`ddim_linear_times`), which crowd near pure noise and end with one long jump."""


def toy_grid(grid: str, nfe: int) -> torch.Tensor:
    r"""The decreasing grid of ``nfe`` Euler steps, both from DDIM's first linear time :math:`t_0 = 0.9937` (the
    linear schedule's :math:`\bar\alpha_T`) to 0: ``"uniform"`` (evenly spaced) or ``"ddim"`` (`ddim_linear_times`).
    At ``nfe = 1`` the two are the same single step."""
    from .schedules import make_schedule

    ddim = ddim_linear_times(make_schedule("linear", FLOW_TOY["T"]), nfe)
    if grid == "ddim":
        return ddim
    if grid == "uniform":
        return torch.linspace(float(ddim[0]), 0.0, nfe + 1, dtype=torch.float64)
    raise ValueError(f"grid must be one of {TOY_GRIDS}, got {grid!r}.")


def toy_grid_start(x_T: torch.Tensor) -> torch.Tensor:
    r"""The common starting point of every model on `toy_grid`: :math:`z = x_T / c_T`, DDIM's :math:`x_T` on the
    linear path (:math:`c = \sqrt{\bar\alpha_T} + \sqrt{1-\bar\alpha_T}`), which is :math:`0.9937\,x_T`."""
    from .schedules import make_schedule

    ab = make_schedule("linear", FLOW_TOY["T"]).alpha_bars[-1]
    return x_T / float(ab.sqrt() + (1 - ab).sqrt())


@torch.no_grad()
def toy_grid_sample(method: str, entry: Mapping[str, Any], x_T: torch.Tensor, nfe: int, grid: str) -> torch.Tensor:
    """Euler on a study model's velocity field (`toy_velocity`: a flow's own, a diffusion model's read on the linear
    path) on `toy_grid` from `toy_grid_start`: every model walks the same grid from the same points, so only the
    field differs. A diffusion model on ``"ddim"`` is its DDIM (η = 0) exactly (section 3)."""
    return flow_sample(toy_velocity(method, entry), toy_grid_start(x_T), times=toy_grid(grid, nfe))


def toy_floor_draws(seed: int, n: int = 2000, draws: int = 10) -> list[float]:
    """The floor drawn ``draws`` times: SW between the seed's ``data`` set and independent data sets of the same
    ``n`` (the first is `toy_sets`'s ``other``, the one the study's ratios divide by)."""
    data = toy_sets(seed, n)["data"]
    return [sliced_wasserstein(toy2d.sample(FLOW_TOY["dataset"], n, torch.Generator().manual_seed(40_000 + seed + 100 * j)),
                               data) for j in range(draws)]


def toy_grid_scores(models: Mapping[str, Mapping[str, Any]], sets: Mapping[str, torch.Tensor],
                    nfes: Sequence[int] = TOY_NFES, n_straight: int = 500) -> dict[str, dict[str, Any]]:
    """Every model on both grids: ``{"<method>@<grid>": {"sw_ratio": {nfe: SW / floor}, "sw": {nfe: SW},
    "straightness": S}}`` (straightness on 100 steps of that grid from `toy_grid_start`, the first ``n_straight``
    noises), keyed so that `seed_verdicts` pairs e.g. ``("i-cfm@uniform", "ddim-eps@uniform")``."""
    floor = sliced_wasserstein(sets["other"], sets["data"])
    out = {}
    for grid in TOY_GRIDS:
        for m, entry in models.items():
            sw = {str(k): sliced_wasserstein(toy_grid_sample(m, entry, sets["x_T"], k, grid), sets["data"]) for k in nfes}
            s = straightness(toy_velocity(m, entry), toy_grid_start(sets["x_T"][:n_straight]), times=toy_grid(grid, 100))
            out[f"{m}@{grid}"] = {"sw": sw, "sw_ratio": {k: v / floor for k, v in sw.items()},
                                  "straightness": float(s.mean())}
    return out


def floor_band_table(runs: Sequence[Mapping[str, Any]], floors: Sequence[Sequence[float]], nfe: int = 50,
                     grid: str = "uniform") -> str:
    """A markdown table: each seed's floor over its draws (mean ± sd), and each model's SW at ``nfe`` on ``grid``
    in floor standard deviations above the floor's mean ((SW - mean) / sd)."""
    import statistics

    from .reporting import markdown_table

    methods = [k.split("@")[0] for k in runs[0] if k.endswith(f"@{grid}")]
    rows = []
    for i, (run, fl) in enumerate(zip(runs, floors)):
        mu, sd = statistics.mean(fl), statistics.stdev(fl)
        rows.append([str(i), f"{mu:.4f} ± {sd:.4f} ({len(fl)} draws)"]
                    + [f"{(run[f'{m}@{grid}']['sw'][str(nfe)] - mu) / sd:+.1f}" for m in methods])
    return markdown_table(["seed", "floor SW: mean ± sd"] + [f"{m}: (SW - floor) / sd" for m in methods], rows)


def verdict_table(runs: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[str, str]], nfes: Sequence[int] = TOY_NFES,
                  key: str = "sw_ratio", digits: int = 2) -> str:
    """A markdown table of `seed_verdicts`, one row per pair and one column per NFE: each cell says which model wins
    and by how much (margin ± half-width) where the paired interval over seeds excludes 0, else "not resolved" with
    the interval of a − b (lower is better)."""
    from .reporting import markdown_table

    rows = []
    for a, b in pairs:
        cells = []
        for k in nfes:
            d = seed_verdicts(runs, [(a, b)], key, nfe=k)[0]
            if d.resolved:
                winner = a if d.estimate < 0 else b
                cells.append(f"**{winner}** by {abs(d.estimate):.{digits}f} ± {d.half_width:.{digits}f}")
            else:
                cells.append(f"not resolved: {d.estimate:+.{digits}f} [{d.low:.{digits}f}, {d.high:.{digits}f}]")
        rows.append([f"{a} − {b}"] + cells)
    return markdown_table(["a − b (SW / floor)"] + [f"NFE {k}" for k in nfes], rows)


def grid_curves(part: Mapping[str, Any], grid: str) -> tuple[dict[str, list[tuple[int, float]]], tuple[float, float]]:
    """From the ``toy2d_grid`` part: each model's mean over seeds of SW / (the seed's mean floor) at each NFE on
    ``grid``, and the floor band (mean over seeds of 1 ± 2 sd / mean of that seed's floor draws)."""
    import statistics

    curves: dict[str, list[tuple[int, float]]] = {}
    for name in part["runs"][0]:
        m, g = name.split("@")
        if g != grid:
            continue
        nfes = sorted(int(k) for k in part["runs"][0][name]["sw"])
        curves[m] = [(k, statistics.mean(run[name]["sw"][str(k)] / statistics.mean(fl)
                                         for run, fl in zip(part["runs"], part["floors"]))) for k in nfes]
    rel = statistics.mean(statistics.stdev(fl) / statistics.mean(fl) for fl in part["floors"])
    return curves, (1 - 2 * rel, 1 + 2 * rel)


def effective_weights(t: torch.Tensor, T: int = 1000, gamma: float = 5.0) -> dict[str, torch.Tensor]:
    r"""The weight each objective puts on the **velocity** error :math:`\|\hat v - v\|^2` at linear time
    :math:`t` (Kingma & Gao 2023's view: one per-noise-level loss, different weightings), each normalised to
    integrate to 1 over :math:`t\in(0,1)`:

    * DDPM's loss on :math:`x_0` (the 2D study's ``ddim-x0``): :math:`p(t)\,t^2`, since
      :math:`\hat x_0-x_0=-t(\hat v-v)`: heavy near noise, light near the data;
    * DDPM's :math:`L_\text{simple}` (ε-loss, :math:`\tau` uniform on :math:`0\ldots T-1`, linear schedule):
      :math:`p(t)\,(1-t)^2`, since :math:`\hat\varepsilon-\varepsilon=(1-t)(\hat v-v)` at fixed :math:`z_t` and
      :math:`p(t)=\frac1T\,d\tau/dt` is the density of the sampled times on the linear clock;
    * min-SNR-γ (ε-loss weighted by :math:`\min(\mathrm{SNR},\gamma)/\mathrm{SNR}`,
      :math:`\mathrm{SNR}=((1-t)/t)^2`): :math:`p(t)(1-t)^2\min(\mathrm{SNR},\gamma)/\mathrm{SNR}`;
    * flow matching, :math:`t\sim\mathcal U(0,1)`: 1;
    * SD3's logit-normal :math:`t` (Esser et al. 2024, m = 0, s = 1): the logit-normal density.
    """
    from .flows import alpha_bar_of, fractional_timestep
    from .schedules import make_schedule

    t = torch.as_tensor(t, dtype=torch.float64)
    tau = fractional_timestep(make_schedule("linear", T), alpha_bar_of(t))
    p = torch.gradient(tau, spacing=(t,))[0].clamp(min=0) / T
    p = torch.where((tau > -1) & (tau < T - 1), p, torch.zeros_like(p))  # outside the table no timestep is drawn
    snr = ((1 - t) / t) ** 2
    logit = torch.log(t / (1 - t))
    w = {"DDPM L_simple (eps, uniform tau)": p * (1 - t) ** 2,
         "DDPM x0-loss (x0, uniform tau)": p * t ** 2,
         f"min-SNR-{gamma:g} (eps, uniform tau)": p * (1 - t) ** 2 * snr.clamp(max=gamma) / snr,
         "flow matching (uniform t)": torch.ones_like(t),
         "SD3 logit-normal t (m=0, s=1)": torch.exp(-logit ** 2 / 2) / (math.sqrt(2 * math.pi) * t * (1 - t))}
    return {k: v / torch.trapezoid(v, t) for k, v in w.items()}


MNIST_GRID_ROWS = {"flow": ("flow-euler", "flow-ddimgrid"), "L_simple": ("lsimple-uniform", "lsimple-ddim"),
                   "min-SNR-5": ("minsnr-uniform", "minsnr-ddim")}
"""Each MNIST model's row keys on the uniform grid and on DDIM's trailing grid (all by Euler on the model's own
flow: DDIM with η = 0 is Euler on DDIM's grid), in the ``mnist`` and ``mnist_grid`` parts of ``flows.json``."""


def mnist_grid_table(mnist: Mapping[str, Any], grid_part: Mapping[str, Any]) -> str:
    """A markdown table crossing objective and time grid on MNIST: FID (and FID / matched floor) of each model by
    Euler on its own flow, on the uniform grid and on DDIM's grid, at each NFE both parts measured."""
    from .reporting import markdown_table

    rows_all = {**mnist["rows"], **grid_part["rows"]}
    nfes = sorted({int(k.split(":")[1]) for k in grid_part["rows"]})
    rows = []
    for name, (uniform, ddim) in MNIST_GRID_ROWS.items():
        for grid, key in (("uniform", uniform), ("DDIM's", ddim)):
            cells = [f"{rows_all[f'{key}:{k}']['fid']:.1f} ({rows_all[f'{key}:{k}']['fid_over_floor']:.1f})"
                     if f"{key}:{k}" in rows_all else "—" for k in nfes]
            rows.append([name, grid] + cells)
    return markdown_table(["objective", "time grid"] + [f"NFE {k}: FID (/ floor)" for k in nfes], rows)


def grid_table(scores: Mapping[str, Mapping[str, Any]], nfes: Sequence[int]) -> str:
    """A markdown table of `toy_grid_scores`-style results (``"<method>@<grid>"`` keys): one row per model, each
    cell SW / floor on the uniform grid / on DDIM's grid at that NFE."""
    from .reporting import markdown_table

    methods = list(dict.fromkeys(k.split("@")[0] for k in scores))
    rows = [[m] + [f"{scores[f'{m}@uniform']['sw_ratio'][str(k)]:.2f} / {scores[f'{m}@ddim']['sw_ratio'][str(k)]:.2f}"
                   for k in nfes] for m in methods]
    return markdown_table(["model"] + [f"NFE {k}: uniform / DDIM grid" for k in nfes], rows)


def over_mean_floor(scores: Mapping[str, Mapping[str, Any]], mean_floor: float) -> dict[str, dict[str, Any]]:
    """A copy of `toy_scores`'s dicts with every SW ratio (``sw_ratio``, ``sw_ratio_heun``) divided by
    ``mean_floor`` (e.g. the mean of `toy_floor_draws`) instead of the one floor draw it was divided by."""
    out = {}
    for m, row in scores.items():
        scale = row["floor"] / mean_floor
        out[m] = {**row, "floor": mean_floor,
                  **{key: {k: v * scale for k, v in row[key].items()}
                     for key in ("sw_ratio", "sw_ratio_heun") if key in row}}
    return out


def plot_ode_paths(axes, fine: Mapping[str, torch.Tensor], data: torch.Tensor,
                   straight: Mapping[str, float] | None = None, lim: float = 3.5) -> None:
    """One panel per model: the ODE's paths ``fine[name]`` (a ``(steps + 1, n, 2)`` trajectory from the noises at
    t = 1 to t = 0) over the data (grey), the start black and the end red; ``straight`` adds each model's
    straightness to its title."""
    for ax, (name, traj) in zip(axes, fine.items()):
        ax.scatter(data[:, 0], data[:, 1], s=2, color="0.85")
        for i in range(traj.shape[1]):
            ax.plot(traj[:, i, 0], traj[:, i, 1], color="C0", lw=0.7, alpha=0.8)
        ax.scatter(traj[0, :, 0], traj[0, :, 1], s=8, color="k", zorder=3, label="noise (t = 1)")
        ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=8, color="C3", zorder=3, label="end of the path (t = 0)")
        extra = f": straightness {straight[name]:.4f}" if straight else ""
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=f"{name}{extra}")
        ax.legend(loc="upper right", fontsize=7)
