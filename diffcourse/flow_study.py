r"""Chapter 10's measurements: the 2D coupling study and the reading of ``benchmarks/results/flows.json``.

`toy_study` trains the five models of `diffcourse.recipes.toy2d_flow` for one seed and scores them the same way:
sliced Wasserstein distance to fresh data over the floor (two data sets of the same N) at each NFE, and the
straightness of each model's ODE paths (`diffcourse.flows.straightness`; the diffusion models' probability-flow
ODE is read on the linear path by `diffusion_velocity_fn`). ``benchmarks/flows.py`` runs it over seeds; the lesson
runs seed 0 live. `seed_verdicts` and `mnist_verdicts` turn the results into the verdict lines of
`diffcourse.measure` (paired over seeds, or paired bootstrap over samples drawn from the same noises).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .data import toy2d
from .flows import diffusion_velocity_fn, straightness, velocity_fn
from .measure import Difference, seed_difference
from .metrics import sliced_wasserstein
from .objectives import eps_fn
from .recipes.toy2d_flow import FLOW_TOY, train_toy_diffusion, train_toy_flow, train_toy_reflow
from .samplers import ddim_sample
from .samplers.flow import flow_sample

__all__ = ["TOY_NFES", "TOY_METHODS", "toy_sets", "toy_models", "toy_velocity", "toy_sample", "toy_scores",
           "toy_study", "seed_verdicts", "mnist_verdicts"]

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
               "straightness": float(straightness(toy_velocity(m, entry), sets["x_T"][:n_straight]).mean())}
        if m in FLOWS:
            row["sw_ratio_heun"] = {str(k): sliced_wasserstein(toy_sample(m, entry, sets["x_T"], k, "heun"),
                                                               sets["data"]) / floor for k in nfes if k % 2 == 0}
        if "pair_seconds" in entry:
            row["pair_seconds"] = round(entry["pair_seconds"], 2)
        scores[m] = row
    return scores


def toy_study(seed: int = 0, n: int = 2000, methods: Sequence[str] = TOY_METHODS) -> dict[str, Any]:
    """Train and score one seed of the 2D study: ``{"models", "sets", "scores"}``."""
    models = toy_models(seed, methods)
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
            out.append((d["nfe"], Difference(d["a"], d["b"], d["estimate"], d["low"], d["high"], d["level"],
                                             d["method"])))
    return out
