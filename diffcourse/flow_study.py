r"""Chapter 10's measurements: the 2D coupling study and the reading of ``benchmarks/results/flows.json``.

`toy_study` trains the five models of `diffcourse.recipes.toy2d_flow` for one seed and scores them the same way:
sliced Wasserstein distance to fresh data over the floor (two data sets of the same N) at each NFE, and the
straightness of each model's ODE paths (`diffcourse.flows.straightness`; the diffusion models' probability-flow
ODE is read on the linear path by `diffusion_velocity_fn`). ``benchmarks/flows.py`` runs it over seeds; the lesson
runs seed 0 live. `seed_verdicts` and `mnist_verdicts` turn the results into the verdict lines of
`diffcourse.measure` (paired over seeds, or paired bootstrap over samples drawn from the same noises).
"""
from __future__ import annotations

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
           "mnist_verdicts"]

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
    """The paired bootstrap differences stored by ``benchmarks/flows.py --part mnist`` for ``metric``
    (``"fid"`` or ``"confident"``), as ``(nfe, Difference)``."""
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


def toy_table(scores: Mapping[str, Mapping[str, Any]], nfes: Sequence[int] = TOY_NFES) -> str:
    """A markdown table of one seed's study: SW / floor at each NFE, straightness and training seconds per method."""
    from .reporting import markdown_table

    rows = []
    for m, s in scores.items():
        extra = f" (+{s['pair_seconds']:.1f} s for the pairs, + the I-CFM run)" if "pair_seconds" in s else ""
        rows.append([m] + [f"{s['sw_ratio'][str(k)]:.2f}" for k in nfes]
                    + [f"{s['straightness']:.4f}", f"{s['train_seconds']:.1f}{extra}"])
    return markdown_table(["model"] + [f"NFE {k}" for k in nfes] + ["straightness", "training s"], rows)


def plot_pairs(ax, x0: torch.Tensor, eps: torch.Tensor, title: str, n: int = 60) -> None:
    """The straight lines of a coupling: each data point joined to its noise partner (the conditional paths)."""
    for i in range(min(n, len(x0))):
        ax.plot([eps[i, 0], x0[i, 0]], [eps[i, 1], x0[i, 1]], color="C0", lw=0.6, alpha=0.7)
    ax.scatter(eps[:n, 0], eps[:n, 1], s=8, color="k", label="noise (t = 1)")
    ax.scatter(x0[:n, 0], x0[:n, 1], s=8, color="C3", label="data (t = 0)")
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
                           "seconds (CPU, 1 thread)"],
                          sorted(rows[:-1], key=lambda r: (r[0], r[1])) + rows[-1:])


# ----------------------------------------------------------------------------------------------- the cached seed
TOY_CACHE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "flows_toy2d_seed0.pt"
"""Seed 0's five trained 2D models, written by ``python benchmarks/flows.py --part toy2d-cache`` (which refuses to
write them unless their scores equal seed 0 of ``flows.json``'s ``toy2d`` part): the lesson loads them instead of
spending about a minute of CPU retraining them."""


def save_toy_models(models: Mapping[str, Mapping[str, Any]], path: str | Path = TOY_CACHE) -> None:
    """Write the EMA weights of a `toy_models` result, with its training seconds (what `toy_table` shows)."""
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
