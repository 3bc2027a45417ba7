"""Benchmark for chapter 10 (flow matching): the 2D coupling study over seeds, and MNIST flow vs diffusion.

    python benchmarks/flows.py --part toy2d [--seeds 0 1 2 3 4]
    python benchmarks/flows.py --part toy2d-cache        # seed 0's models for the lesson (after --part toy2d)
    python benchmarks/flows.py --part mnist [--n 1000] [--flow runs/mnist-flow/mnist-flow.pt]
    python benchmarks/flows.py --part record-quality     # the flow's rows into the manifest's mnist-flow entry
    python benchmarks/flows.py --part toy2d-grid         # the time grid in 2D: every model on both grids, floor band
    python benchmarks/flows.py --part mnist-grid --n 500 # the time grid: diffusion on the uniform grid, flow on DDIM's

Writes ``benchmarks/results/flows.json`` incrementally (each seed, each sampler as it finishes), so an
interrupted run keeps what it measured; a part re-run replaces that part. One thread (the 2-core CPU is shared).

* ``toy2d``: for each seed, `diffcourse.flow_study.toy_study` (I-CFM, OT-CFM, reflow, DDIM with x0- and
  eps-prediction, the same MLP, steps and batch): SW / floor at NFE 1, 2, 4, 8, 50 and straightness. Differences
  between methods are read over seeds (`seed_difference`, paired: every method of a seed meets the same data,
  floor and noises).
* ``toy2d-cache``: seed 0's five models trained again and saved to ``benchmarks/results/flows_toy2d_seed0.pt``
  (`diffcourse.flow_study.TOY_CACHE`) if their scores equal the ``toy2d`` part's seed 0; the lesson loads them.
* ``mnist``: the flow model ``mnist-flow`` and its two matched diffusion partners (the same U-Net, 6500 steps,
  batches, seed and learning-rate schedule: ``mnist-ddpm-lsimple``, plain L_simple, and the 6500-step min-SNR-5
  ``mnist-ddpm``) at NFE 5/10/20/50: Euler and Heun for the flow, DDIM (eta = 0, no clipping: Euler on the
  diffusion model's own flow) for both diffusion models. Every sampler decodes the same N noises (seed 0, so the
  differences are paired). FID in the course's feature space (``mnist-classifier``) against all 10 000 test digits,
  next to `matched_floor` (N training digits, the data's own label mix, 5 draws); confident share; paired
  differences from the same noises: FID by the paired jackknife (`jackknife_difference`, 50 groups, the test
  digits' noise included; ``--part mnist-verdicts`` from the cached images), the confident share by the paired
  bootstrap (`bootstrap_difference`, ``--n-boot`` resamples, 1000 by default). Also: the shipped 19 500-step
  ``mnist-ddpm`` sampled as a flow (`diffusion_velocity_fn`, Euler on DDIM's grid) against its DDIM. Images are
  cached in ``--cache`` so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from diffcourse.flow_study import TOY_METHODS, TOY_NFES, toy_study
from diffcourse.recipes.toy2d_flow import FLOW_TOY

RESULTS = Path(__file__).resolve().parent / "results" / "flows.json"


def load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_part(name: str, part: dict) -> None:
    """Write one part of the results file, keeping the others as they are on disk now (the parts may run at once)."""
    results = load()
    results[name] = part
    RESULTS.parent.mkdir(exist_ok=True)
    tmp = RESULTS.with_suffix(f".{name}.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(RESULTS)


def toy_part(seeds: list[int], n: int) -> None:
    part = {"recipe": FLOW_TOY, "methods": list(TOY_METHODS), "nfes": list(TOY_NFES), "n": n, "seeds": [],
            "runs": [], "device": "cpu", "torch_threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "note": "python benchmarks/flows.py --part toy2d: per seed, every method trained with the same MLP, steps "
                    "and batch, and scored on the same data, floor set and starting noises (N points each); flows "
                    "sampled by Euler (sw_ratio) and Heun (sw_ratio_heun, even NFE), diffusion by DDIM eta = 0. "
                    "Measured on the 2-core CPU while two MNIST trainings ran (training seconds are of a busy machine)"}
    for seed in seeds:
        t0 = time.perf_counter()
        study = toy_study(seed, n)
        part["seeds"].append(seed)
        part["runs"].append(study["scores"])
        save_part("toy2d", part)
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s; 1-NFE SW/floor "
              + ", ".join(f"{m} {s['sw_ratio']['1']:.2f}" for m, s in study["scores"].items()), flush=True)


def toy_cache_part(n: int, tolerance: float = 1e-6) -> None:
    """Train seed 0's models again and write them to `TOY_CACHE` for the lesson, but only if their scores equal seed
    0 of the ``toy2d`` part (training is seeded: a difference means this machine rounds differently, and the lesson
    would show other numbers than the results file)."""
    from diffcourse.flow_study import TOY_CACHE, save_toy_models, toy_models, toy_scores, toy_sets

    toy = load().get("toy2d")
    if not toy or 0 not in toy["seeds"] or toy["n"] != n:
        raise SystemExit("run `python benchmarks/flows.py --part toy2d` (with seed 0, the same --n) first.")
    recorded = toy["runs"][toy["seeds"].index(0)]
    models = toy_models(0)
    scores = toy_scores(models, toy_sets(0, n))
    worst = max(abs(scores[m]["sw_ratio"][k] / recorded[m]["sw_ratio"][k] - 1) for m in scores for k in
                recorded[m]["sw_ratio"])
    if worst > tolerance:
        raise SystemExit(f"seed 0 retrained scores differ from flows.json by up to {worst:.1e} (relative): "
                         "not writing the cache; re-run --part toy2d on this machine first.")
    save_toy_models(models, TOY_CACHE)
    print(f"wrote {TOY_CACHE} (scores equal flows.json seed 0 to {worst:.1e})")


# ------------------------------------------------------------------------------------------------------ MNIST
NFES = (5, 10, 20, 50)
HEUN_STEPS = {5: 3, 10: 5, 20: 10, 50: 25}  # Heun costs 2 evaluations a step: NFE 6 stands in for 5
DIFFERENCES = [("flow-euler", "lsimple-ddim"), ("flow-euler", "minsnr-ddim"), ("flow-heun", "flow-euler")]


def mnist_configs(nfes: tuple[int, ...] = NFES) -> list[dict]:
    """Every (model, sampler, steps) measured, in the order they run; ``nfe`` is what `generate` counts."""
    rows = []
    for nfe in nfes:
        rows += [dict(key=f"flow-euler:{nfe}", model="flow", sampler="flow_euler", steps=nfe, nfe=nfe),
                 dict(key=f"flow-heun:{nfe}", model="flow", sampler="flow_heun", steps=HEUN_STEPS[nfe],
                      nfe=2 * HEUN_STEPS[nfe]),
                 dict(key=f"lsimple-ddim:{nfe}", model="lsimple", sampler="ddim", steps=nfe, nfe=nfe),
                 dict(key=f"minsnr-ddim:{nfe}", model="minsnr", sampler="ddim", steps=nfe, nfe=nfe)]
    return rows


def _models(a) -> dict:
    """The networks compared, loaded from their exports (hash-checked where shipped)."""
    from diffcourse.pretrained import load_model, load_pretrained, sha256

    if not Path(a.minsnr).exists() or not sha256(a.minsnr).startswith("3fc9c9c6"):
        raise SystemExit(f"{a.minsnr}: write it with "
                         f"`git show c288428:diffcourse/checkpoints/mnist-ddpm.pt > {a.minsnr}`.")
    return {"flow": load_model(a.flow)[0], "lsimple": load_model(a.lsimple)[0], "minsnr": load_model(a.minsnr)[0],
            "ddpm19500": load_pretrained("mnist-ddpm")}


def _images(cfg: dict, model, n: int, cache: Path) -> tuple[torch.Tensor, float]:
    """The config's n images from seed 0 (cached: a resumed run re-uses them)."""
    from diffcourse import make_schedule
    from diffcourse.sampling import generate

    path = cache / f"{cfg['key'].replace(':', '_')}_n{n}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        return saved["images"].float(), saved["seconds"]
    options = {k: cfg[k] for k in ("times",) if k in cfg}
    images, seconds, nfe = generate(model, make_schedule("linear", 1000), n, sampler=cfg["sampler"], steps=cfg["steps"],
                                    seed=0, clip_x0=None, batch_size=250, **options)
    if nfe != cfg["nfe"]:
        raise RuntimeError(f"{cfg['key']}: generate counted NFE {nfe}, expected {cfg['nfe']}.")
    torch.save({"images": images, "seconds": seconds}, path)  # float32: the agreement check reads 1e-5 differences
    return images, seconds


def _reference(n: int) -> dict:
    """Features of the 10 000 test digits (reference) and the training digits (floor pool), and the floor at n."""
    from diffcourse.data.mnist import load_mnist
    from diffcourse.measure import draw_reference, matched_floor
    from diffcourse.metrics import classifier_features, confident_share
    from diffcourse.pretrained import load_pretrained

    judge = load_pretrained("mnist-classifier")
    test_x, _ = load_mnist("test")
    train_x, train_y = load_mnist("train")
    ref, pool = classifier_features(test_x, judge), classifier_features(train_x, judge)
    floor = matched_floor(pool, train_y, ref, n, labels=None, draws=5)
    real = train_x[draw_reference(train_y, n, None, torch.Generator().manual_seed(0))]
    return {"judge": judge, "ref": ref, "floor": floor, "real_confident": confident_share(real, judge)}


def _score(images: torch.Tensor, ref: dict) -> dict:
    from diffcourse.measure import fid_features
    from diffcourse.metrics import classifier_features, confident_share

    feats = classifier_features(images, ref["judge"])
    return {"features": feats, "fid": fid_features(feats, ref["ref"]),
            "confident": confident_share(images, ref["judge"])}


def _differences(scored: dict, ref: dict, n_boot: int = 1000, pairs: list | None = None,
                 nfes: tuple[int, ...] = NFES, groups: int = 50) -> list[dict]:
    """Paired differences of FID and confident share for `DIFFERENCES` (or ``pairs``) at every shared NFE. FID, a
    set metric: `jackknife_difference` (delete-a-group over the samples, one grouping for both sides since they share
    their noises, plus the 10 000 test digits of the reference); the confident share, a mean of per-sample values:
    the paired `bootstrap_difference` (``n_boot`` resamples)."""
    from diffcourse.measure import bootstrap_difference, jackknife_difference
    from diffcourse.metrics import feature_stats, frechet_distance

    def fid_metric(features: torch.Tensor, reference: torch.Tensor) -> float:
        return frechet_distance(*feature_stats(features), *feature_stats(reference))

    def conf_metric(conf: torch.Tensor, _ref) -> float:
        return float(conf.double().mean())

    out = []
    for a_name, b_name in pairs or DIFFERENCES:
        for nfe in nfes:  # those measured
            a, b = scored.get(f"{a_name}:{nfe}"), scored.get(f"{b_name}:{nfe}")
            if a is None or b is None or a["nfe"] != b["nfe"]:
                continue
            names = dict(name_a=f"{a_name} (NFE {a['nfe']})", name_b=f"{b_name} (NFE {b['nfe']})")
            fid = jackknife_difference(fid_metric, a["features"], b["features"], ref["ref"], paired=True,
                                       groups=groups, seed=nfe, **names)
            conf = bootstrap_difference(conf_metric, a["confident_per_sample"], b["confident_per_sample"], None,
                                        paired=True, n_boot=n_boot, seed=nfe, **names)
            out.append({"metric": "fid", "nfe": nfe, **fid.as_dict(), "verdict": fid.verdict("FID")})
            out.append({"metric": "confident", "nfe": nfe, **conf.as_dict(),
                        "verdict": conf.verdict("confident share", lower_is_better=False)})
    return out


def mnist_verdicts_part(a) -> None:
    """Re-run only the verdict stage of the ``mnist`` and ``mnist_grid`` parts from the cached images (no sampling):
    features of every row's images, then `_differences` (FID by the jackknife). Rows, floors and notes are kept."""
    from diffcourse.data.mnist import load_mnist
    from diffcourse.metrics import classifier_features
    from diffcourse.pretrained import load_pretrained

    results, cache = load(), Path(a.cache)
    judge = load_pretrained("mnist-classifier")
    ref = {"judge": judge, "ref": classifier_features(load_mnist("test")[0], judge)}
    for name, pairs in (("mnist", DIFFERENCES), ("mnist_grid", GRID_DIFFERENCES)):
        part = results[name]
        keys = set(part["rows"]) | {k for p in pairs for k in (f"{p[0]}:{n}" for n in part["nfes"])} \
            | {f"{p[1]}:{n}" for p in pairs for n in part["nfes"]}
        scored = {}
        for key in sorted(keys):
            path = cache / f"{key.replace(':', '_')}_n{part['n']}.pt"
            if not path.exists():
                continue
            images = torch.load(path, weights_only=True)["images"].float()
            conf = torch.softmax(judge(images).float(), 1).amax(1) >= 0.9
            scored[key] = {"features": classifier_features(images, judge), "confident_per_sample": conf,
                           "nfe": int(key.split(":")[1]) if not key.startswith("flow-heun") else
                           2 * HEUN_STEPS[int(key.split(":")[1])]}
        part["differences"] = _differences(scored, ref, a.n_boot, pairs, tuple(part["nfes"]))
        part["note"] = part["note"].split(" Differences")[0] + (
            " Differences: FID by the paired jackknife (jackknife_difference, 50 groups, the 10 000 test digits' "
            f"noise included); confident share by the paired bootstrap ({a.n_boot} resamples); the same noises for "
            "every sampler. (Re-run from the cached images by --part mnist-verdicts.)")
        save_part(name, part)
        print(f"{name}: {len(part['differences'])} differences", flush=True)


def _agreement(models: dict, n: int, cache: Path) -> list[dict]:
    """The shipped 19 500-step mnist-ddpm sampled as a flow (Euler on DDIM's grid in linear time) against its DDIM
    (eta = 0, no clipping), from the same n noises: the largest and mean pixel difference."""
    from diffcourse import make_schedule
    from diffcourse.flows import ddim_linear_times

    rows = []
    for steps in (10, 50):
        times = ddim_linear_times(make_schedule("linear", 1000), steps)
        ddim, _ = _images(dict(key=f"ddpm19500-ddim:{steps}", sampler="ddim", steps=steps, nfe=steps),
                          models["ddpm19500"], n, cache)
        flow, _ = _images(dict(key=f"ddpm19500-flow:{steps}", sampler="flow_euler", steps=steps, nfe=steps,
                               times=times), models["ddpm19500"], n, cache)
        diff = (ddim - flow).abs()
        rows.append({"steps": steps, "n": n, "max_abs_pixel_difference": float(diff.max()),
                     "mean_abs_pixel_difference": float(diff.mean())})
    return rows


def mnist_part(a) -> None:
    n, cache = a.n or 1000, Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    models, ref = _models(a), _reference(n)
    part = {"n": n, "nfes": list(a.nfes), "device": "cpu", "torch_threads": torch.get_num_threads(),
            "models": {"flow": a.flow, "lsimple": a.lsimple, "minsnr": a.minsnr + " (c288428:mnist-ddpm.pt)"},
            "floor": ref["floor"].as_dict(), "real_confident": ref["real_confident"], "rows": {},
            "note": f"python benchmarks/flows.py --part mnist --n {n} --nfes {' '.join(map(str, a.nfes))} on the "
                    "2-core CPU shared with other jobs (1 thread); 'seconds' are wall times on that busy machine. "
                    "Differences: FID by the paired jackknife (50 groups, the test digits' noise included), confident "
                    f"share by the paired bootstrap ({a.n_boot} resamples); the same noises for every sampler."}
    part["agreement"] = _agreement(models, min(200, n), cache)
    save_part("mnist", part)
    scored = {}
    for cfg in mnist_configs(tuple(a.nfes)):
        images, seconds = _images(cfg, models[cfg["model"]], n, cache)
        s = _score(images, ref)
        conf = torch.softmax(ref["judge"](images).float(), 1).amax(1) >= 0.9
        scored[cfg["key"]] = {**s, "confident_per_sample": conf, "nfe": cfg["nfe"]}
        part["rows"][cfg["key"]] = {"model": cfg["model"], "sampler": cfg["sampler"], "steps": cfg["steps"],
                                    "nfe": cfg["nfe"], "fid": s["fid"], "fid_over_floor": s["fid"] / ref["floor"].mean,
                                    "confident": s["confident"], "seconds": round(seconds, 1)}
        save_part("mnist", part)
        print(f"{cfg['key']}: FID {s['fid']:.2f} (floor {ref['floor'].mean:.2f}), confident {s['confident']:.3f}, "
              f"{seconds:.0f} s", flush=True)
    part["differences"] = _differences(scored, ref, a.n_boot)  # at the end: 2 n_boot FIDs each
    save_part("mnist", part)


def record_quality() -> None:
    """Copy the MNIST part's rows for the flow (``flow-euler`` / ``flow-heun`` at each NFE) and its floor into the
    ``quality`` of the ``mnist-flow`` entry of ``diffcourse/checkpoints/manifest.json``, as ``mnist-ddpm``'s entry holds
    ``floor`` and ``ddim50`` — after checking that the measured file is the shipped one (SHA-256)."""
    from diffcourse.pretrained import CHECKPOINT_DIR, sha256

    part = load().get("mnist")
    if not part or not part.get("rows"):
        raise SystemExit("no MNIST part in flows.json: run `python benchmarks/flows.py --part mnist` first.")
    path = CHECKPOINT_DIR / "manifest.json"
    manifest = json.loads(path.read_text())
    entry = manifest["checkpoints"]["mnist-flow"]
    if sha256(part["models"]["flow"]) != entry["sha256"]:
        raise SystemExit(f"{part['models']['flow']} is not the shipped mnist-flow.pt (SHA-256 differs): not recording.")
    fl, n = part["floor"], part["n"]
    quality = {"source": "benchmarks/results/flows.json, part mnist",
               "floor": {"n": fl["n"], "fid_mean": fl["mean"], "fid_std": fl["std"], "fid_draws": fl["draws"]}}
    for key, r in part["rows"].items():
        if r["model"] == "flow":
            quality[f"{r['sampler'].removeprefix('flow_')}{r['nfe']}"] = {
                "n": n, "fid": r["fid"], "fid_over_floor": r["fid_over_floor"], "seconds": r["seconds"],
                "nfe": r["nfe"], "steps": r["steps"], "confident_share": r["confident"]}
    entry["quality"] = quality
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"mnist-flow quality recorded in {path}: " + ", ".join(k for k in quality if k not in ("source", "floor")))


# ------------------------------------------------------------------------------------------ MNIST: the time grid
GRID_NFES = (5, 10, 20, 50)
GRID_DIFFERENCES = [("flow-euler", "lsimple-uniform"), ("flow-euler", "minsnr-uniform"),
                    ("lsimple-uniform", "lsimple-ddim"), ("minsnr-uniform", "minsnr-ddim"),
                    ("flow-ddimgrid", "flow-euler"), ("flow-ddimgrid", "lsimple-ddim"), ("flow-ddimgrid", "minsnr-ddim")]


def grid_configs(nfes: tuple[int, ...] = GRID_NFES) -> list[dict]:
    """The time-grid rows: each diffusion model sampled as a flow (Euler on `diffusion_velocity_fn`) on the flow's
    uniform grid in linear time (from DDIM's first linear time t_0 = 0.9937 down to 0: `uniform_linear_times`), and
    the flow network by Euler on DDIM's trailing grid (`ddim_linear_times`). With the ``mnist`` part's rows this
    crosses the two axes: objective (flow vs L_simple vs min-SNR-5) x time grid (uniform vs DDIM's)."""
    from diffcourse import make_schedule
    from diffcourse.flows import ddim_linear_times

    schedule = make_schedule("linear", 1000)
    rows = []
    for nfe in nfes:
        uniform, ddim = uniform_linear_times(schedule, nfe), ddim_linear_times(schedule, nfe)
        rows += [dict(key=f"lsimple-uniform:{nfe}", model="lsimple", sampler="flow_euler", steps=nfe, nfe=nfe,
                      times=uniform, grid="uniform"),
                 dict(key=f"minsnr-uniform:{nfe}", model="minsnr", sampler="flow_euler", steps=nfe, nfe=nfe,
                      times=uniform, grid="uniform"),
                 dict(key=f"flow-ddimgrid:{nfe}", model="flow", sampler="flow_euler", steps=nfe, nfe=nfe,
                      times=ddim, grid="ddim")]
    return rows


def uniform_linear_times(schedule, steps: int) -> torch.Tensor:
    """``steps + 1`` evenly spaced linear-path times from DDIM's first one (the schedule's last noise level,
    t_0 = 0.9937 for linear T = 1000) down to 0: the flow's uniform grid, started where a diffusion model's flow
    starts."""
    from diffcourse.flows import ddim_linear_times

    t_start = float(ddim_linear_times(schedule, steps)[0])
    return torch.linspace(t_start, 0.0, steps + 1, dtype=torch.float64)


def mnist_grid_part(a) -> None:
    """The ``mnist_grid`` part: `grid_configs` at ``--nfes`` (same N, seed-0 noises, reference and floor as the
    ``mnist`` part, whose cached images it re-uses for the paired differences `GRID_DIFFERENCES`), written after
    every NFE."""
    n, cache = a.n or 500, Path(a.cache)
    base = load().get("mnist")
    if not base or base["n"] != n:
        raise SystemExit("run `python benchmarks/flows.py --part mnist` with the same --n first.")
    models, ref = _models(a), _reference(n)
    part = {"n": n, "nfes": list(a.nfes), "device": "cpu", "torch_threads": torch.get_num_threads(),
            "floor": ref["floor"].as_dict(), "rows": {}, "differences": [],
            "note": f"python benchmarks/flows.py --part mnist-grid --n {n} --nfes {' '.join(map(str, a.nfes))} on "
                    "the 2-core CPU shared with other jobs (1 thread; 'seconds' are wall times on that busy machine). "
                    "Rows: each diffusion model as a flow on the uniform linear grid from t_0 = DDIM's first time; "
                    "the flow on DDIM's trailing grid. Differences as in the mnist part (FID: paired jackknife; "
                    f"confident share: paired bootstrap, {a.n_boot} resamples; the same noises)."}
    scored = {}
    for nfe in a.nfes:
        cfgs = [c for c in mnist_configs((nfe,)) if c["sampler"] != "flow_heun"] + list(grid_configs((nfe,)))
        for cfg in cfgs:
            images, seconds = _images(cfg, models[cfg["model"]], n, cache)
            s = _score(images, ref)
            conf = torch.softmax(ref["judge"](images).float(), 1).amax(1) >= 0.9
            scored[cfg["key"]] = {**s, "confident_per_sample": conf, "nfe": cfg["nfe"]}
            if "grid" in cfg:
                part["rows"][cfg["key"]] = {"model": cfg["model"], "sampler": cfg["sampler"], "grid": cfg["grid"],
                                            "t_start": float(cfg["times"][0]), "nfe": cfg["nfe"], "fid": s["fid"],
                                            "fid_over_floor": s["fid"] / ref["floor"].mean,
                                            "confident": s["confident"], "seconds": round(seconds, 1)}
                print(f"{cfg['key']}: FID {s['fid']:.2f}, confident {s['confident']:.3f}, {seconds:.0f} s", flush=True)
        part["differences"] += _differences(scored, ref, a.n_boot, GRID_DIFFERENCES, (nfe,))
        save_part("mnist_grid", part)


# ------------------------------------------------------------------------------------------- 2D: the time grid
def toy_grid_part(seeds: list[int], n: int, draws: int = 10) -> None:
    """The ``toy2d_grid`` part: for each seed of the ``toy2d`` part, its five models (seed 0 from `TOY_CACHE`, the
    others trained again, seeded) on both time grids (`diffcourse.flow_study.toy_grid_scores`: every model Euler on
    its velocity field from the same start, on the same grid) and the floor drawn ``draws`` times. A retrained seed is
    used only if its 1-NFE scores (where the two grids coincide) equal the ``toy2d`` part's."""
    from diffcourse.flow_study import load_toy_models, toy_floor_draws, toy_grid_scores, toy_models, toy_sets

    toy = load().get("toy2d")
    if not toy or toy["n"] != n:
        raise SystemExit("run `python benchmarks/flows.py --part toy2d` (the same --n) first.")
    part = {"n": n, "seeds": [], "runs": [], "floors": [], "grids": ["uniform", "ddim"], "floor_draws": draws,
            "note": "python benchmarks/flows.py --part toy2d-grid: every model of a seed by Euler on its velocity "
                    "field (a diffusion model's read on the linear path) from x_T / c_T at t_0 = 0.9937, on the "
                    "uniform grid and on DDIM's trailing grid; straightness on 100 steps of each grid; sw_ratio over "
                    "the toy2d part's single floor, sw raw; floors: SW of independent data sets to the seed's data."}
    for seed in seeds:
        t0 = time.perf_counter()
        models = load_toy_models() if seed == 0 else toy_models(seed)
        sets = toy_sets(seed, n)
        scores = toy_grid_scores(models, sets)
        recorded = toy["runs"][toy["seeds"].index(seed)]
        worst = max(abs(scores[f"{m}@ddim"]["sw_ratio"]["1"] / recorded[m]["sw_ratio"]["1"] - 1)
                    for m in recorded if not m in ("i-cfm", "ot-cfm", "reflow"))
        if worst > 1e-5:
            raise SystemExit(f"seed {seed}: DDIM-1 differs from the toy2d part by {worst:.1e}: not the same models.")
        part["seeds"].append(seed)
        part["runs"].append(scores)
        part["floors"].append(toy_floor_draws(seed, n, draws))
        save_part("toy2d_grid", part)
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s (check {worst:.1e})", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["toy2d", "toy2d-cache", "mnist", "mnist-grid", "toy2d-grid", "mnist-verdicts", "record-quality"], required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--n", type=int, default=None, help="points (toy2d, default 2000) or images (mnist, default 1000)")
    p.add_argument("--nfes", type=int, nargs="+", default=list(NFES), help="mnist: the NFE values (default 5 10 20 50)")
    p.add_argument("--n-boot", type=int, default=1000, help="mnist: bootstrap resamples per difference")
    p.add_argument("--cache", default="/tmp/flows_mnist_cache", help="folder for the sampled images (resume)")
    p.add_argument("--flow", default="runs/mnist-flow/mnist-flow.pt")
    p.add_argument("--lsimple", default="runs/mnist-ddpm-lsimple/mnist-ddpm-lsimple.pt")
    p.add_argument("--minsnr", default="/tmp/mnist-ddpm-6500.pt",
                   help="the 6500-step min-SNR-5 mnist-ddpm: git show c288428:diffcourse/checkpoints/mnist-ddpm.pt")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.part == "toy2d":
        toy_part(a.seeds, a.n or 2000)
    elif a.part == "toy2d-cache":
        toy_cache_part(a.n or 2000)
    elif a.part == "record-quality":
        record_quality()
    elif a.part == "toy2d-grid":
        toy_grid_part([s for s in a.seeds if s in load().get("toy2d", {}).get("seeds", [])], a.n or 2000)
    elif a.part == "mnist-verdicts":
        mnist_verdicts_part(a)
    elif a.part == "mnist-grid":
        mnist_grid_part(a)
    else:
        mnist_part(a)


if __name__ == "__main__":
    main()
