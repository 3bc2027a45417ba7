"""Benchmark: every sampler of the course on the shipped MNIST models — quality, NFE and time.

    python benchmarks/samplers.py [--n 500] [--rows ddim:50:0 ddpm ...] [--fid-vs-n] [--out benchmarks/results/samplers.json]

A row is ``SAMPLER[:STEPS[:ETA_OR_W]]``:

* ``ddim:S:ETA`` — DDIM with S steps on ``mnist-ddpm``; ``ddpm`` — ancestral, all 1000 steps;
* ``sde:S``, ``pc:S``, ``ode:S`` — chapter 4's reverse SDE, predictor–corrector, probability-flow ODE (Heun);
* ``cfg:S:W`` — ``mnist-cfg`` with classifier-free guidance weight W, DDIM with S steps, balanced labels.

Every row draws N samples with the same seed (`diffcourse.sampling.generate`, the code behind
``python -m diffcourse sample``) and scores them with `diffcourse.evaluation.evaluate_images`
(FID against N test digits in the ``mnist-classifier`` feature space, the real-vs-real floor at N,
IS analogue, precision/recall, accuracy for conditional rows). ``--fid-vs-n`` adds FID of one model at
N = 250 … 5000 (DDIM-10, the cheapest sampler) next to the floor — FID and KID, over several disjoint draws
at each N — for chapter 7's sample-size plot.

**Paired differences.** Every row starts from the same seed, so the deterministic samplers (DDIM with eta = 0, the
ODE) start all N samples from the same noise, and every sampler shares the first batch's starting noise (a
stochastic sampler draws fresh noise inside a batch, which shifts the next batch's start). The per-sample
classifier features of every row are cached under ``runs/samplers/`` (git-ignored), and ``differences`` records,
for the pairs in ``PAIRS`` and for each row against real digits drawn the way its samples were (one shared draw per
label mix, so these lines compare across rows), the interval of the FID and KID difference against the rows'
shared reference digits (`diffcourse.measure.jackknife_difference`: a grouped jackknife over the samples, paired
where the rows share their noise, and over the reference; no sample is used twice), with the verdict it
resolves. ``floor`` holds the matched real-vs-reference floors (same N, the data's label mix and the balanced mix
of the conditional rows, several draws); ``--differences-only`` recomputes both from the cached features of
``--rows`` without sampling.
JSON is rewritten after every row, so a long run can be read while it goes; a rerun skips rows whose features
are cached for the same weights, N and seed (``--fresh`` redraws them).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import time
from pathlib import Path

import torch

from diffcourse import get_device, load_pretrained
from diffcourse.evaluation import evaluate_images
from diffcourse.sampling import generate, parse_labels
from diffcourse.data.mnist import load_mnist
from diffcourse.measure import balanced_labels, draw_reference, fid_features, jackknife_difference, matched_floor
from diffcourse.metrics import (classifier_features, density_coverage, feature_stats, frechet_distance, kid,
                                precision_recall)
from diffcourse.pretrained import checkpoint_info, pretrained_schedule
from diffcourse.samplers import ddim_sample

DEFAULT_ROWS = ["ddim:10:0", "ddim:20:0", "ddim:50:0", "ddim:100:0", "ddim:10:1", "ddim:20:1", "ddim:50:1", "ddim:100:1",
                "ddpm", "sde:100", "pc:50", "ode:25", "cfg:20:1", "cfg:20:2", "cfg:20:3", "cfg:20:5"]
# the differences chapter 7 (and the README) read: (A, B) means "A minus B"
PAIRS = [("ddim:10:1", "ddim:10:0"), ("ddim:20:1", "ddim:20:0"), ("ddim:50:1", "ddim:50:0"),
         ("ddim:100:1", "ddim:100:0"),
         ("ddim:20:0", "ddim:10:0"), ("ddim:50:0", "ddim:20:0"), ("ddim:100:0", "ddim:50:0"),
         ("ddim:20:1", "ddim:10:1"), ("ddim:50:1", "ddim:20:1"), ("ddim:100:1", "ddim:50:1"),
         ("ddim:100:1", "ddpm"), ("sde:100", "ddpm"), ("pc:50", "ddpm"), ("ddim:50:1", "ddpm"), ("ddim:50:0", "ddpm"),
         ("ddim:100:1", "sde:100"),
         ("ode:25", "ddim:50:0"), ("cfg:20:1", "cfg:20:2")]
METRICS = {"fid": fid_features, "kid": kid}
CACHE = Path("runs/samplers")  # per-sample features of every row (git-ignored)
FID_VS_N = (250, 500, 1000, 2000, 5000)


def parse_row(spec: str) -> dict:
    parts = spec.split(":")
    kind = parts[0]
    row = {"spec": spec, "sampler": kind, "model": "mnist-cfg" if kind == "cfg" else "mnist-ddpm",
           "steps": int(parts[1]) if len(parts) > 1 else 1000, "eta": 0.0, "guidance": None}
    if kind == "ddim":
        row["eta"] = float(parts[2]) if len(parts) > 2 else 0.0
    if kind == "cfg":
        row["sampler"], row["guidance"] = "ddim", float(parts[2])
    if kind not in ("ddim", "ddpm", "sde", "pc", "ode", "cfg"):
        raise ValueError(f"unknown row {spec!r}")
    return row


def _cache_path(spec: str) -> Path:
    return CACHE / f"{spec.replace(':', '_')}.pt"


def cached_features(spec: str, key: dict) -> torch.Tensor | None:
    """The row's per-sample features from an earlier run with the same weights, N and seed (else None)."""
    path = _cache_path(spec)
    if not path.exists():
        return None
    cache = torch.load(path)
    return cache["features"] if cache["key"] == key else None


def save_features(spec: str, features: torch.Tensor, key: dict) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save({"key": key, "features": features}, _cache_path(spec))


def reference_features(judge: torch.nn.Module, n: int, seed: int) -> torch.Tensor:
    """Features of the N test digits that `evaluate_images(seed=seed)` scores every row against."""
    test_x, _ = load_mnist("test")
    perm = torch.randperm(len(test_x), generator=torch.Generator().manual_seed(seed))
    return classifier_features(test_x[perm[:n]], judge)


def real_pool(judge: torch.nn.Module, size: int = 10000) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of the first ``size`` training digits: the pool real draws come from."""
    train_x, train_y = load_mnist("train")
    return classifier_features(train_x[:size], judge), train_y[:size]


def matched_floors(pool: torch.Tensor, pool_y: torch.Tensor, ref: torch.Tensor, n: int, seed: int,
                   draws: int = 20) -> dict:
    """FID and KID of ``draws`` sets of N real training digits against the rows' reference, for the data's own
    label mix (the unconditional rows) and the balanced mix (the conditional rows)."""
    return {f"{name}_{mix}": matched_floor(pool, pool_y, ref, n, labels, metric=metric, draws=draws,
                                           seed=seed).as_dict()
            for mix, labels in (("data", None), ("balanced", balanced_labels(n))) for name, metric in METRICS.items()}


def _difference(metric: str, a: torch.Tensor, b: torch.Tensor, ref: torch.Tensor, names: tuple[str, str], paired: bool,
                groups: int, seed: int) -> dict:
    d = jackknife_difference(METRICS[metric], a, b, ref, paired=paired, groups=groups, seed=seed,
                             name_a=names[0], name_b=names[1])
    return {"metric": metric, **d.as_dict(), "verdict": d.verdict(metric.upper(), digits=2 if metric == "fid" else 5)}


def differences(features: dict[str, torch.Tensor], ref: torch.Tensor, pool: torch.Tensor, pool_y: torch.Tensor,
                groups: int, seed: int) -> list[dict]:
    """Intervals of FID and KID differences (`_difference`): the pairs in PAIRS, then each row against real training
    digits drawn the way its samples were (unpaired: the real digits share no noise). The real set is ONE draw per
    label mix (the data's, or balanced for the conditional rows), shared by every row of that mix, so the rows'
    "minus real" estimates differ only by the rows' own FIDs and can be compared with each other."""
    out = [_difference(m, features[a], features[b], ref, (a, b), True, groups, seed)
           for a, b in PAIRS if a in features and b in features for m in METRICS]
    g = torch.Generator().manual_seed(seed + 1)
    reals: dict[tuple[str, int], torch.Tensor] = {}  # (label mix, N) -> the one real draw its rows are compared with
    for spec, f in features.items():
        mix = "balanced" if parse_row(spec)["model"] == "mnist-cfg" else "data"
        if (mix, len(f)) not in reals:
            labels = balanced_labels(len(f)) if mix == "balanced" else None
            reals[(mix, len(f))] = pool[draw_reference(pool_y, len(f), labels, g)]
        out += [_difference(m, f, reals[(mix, len(f))], ref, (spec, "real"), False, groups, seed) for m in METRICS]
    return out


def fid_vs_n(model, schedule, judge: torch.nn.Module, device, seed: int, batch_size: int, samples: int = 5000,
             real: int = 10000) -> dict:
    """FID and KID of ``samples`` DDIM-10 samples and of real training digits against random test digits at each N
    in FID_VS_N up to ``samples``, over disjoint draws (draw i: the i-th block of N samples, or of N training
    digits, against the i-th block of N test digits; ``real`` test and training digits). The first draw is the
    file's earlier single value."""
    t0 = time.perf_counter()
    images, _, _ = generate(model, schedule, samples, sampler="ddim", steps=10, seed=seed, device=device,
                            batch_size=batch_size)
    seconds = time.perf_counter() - t0
    train_x, _ = load_mnist("train")
    test_x, _ = load_mnist("test")
    # random orders: the files' own order is not random (MNIST's first 5000 test digits are the cleaner half)
    g = torch.Generator().manual_seed(seed)
    test_x, train_x = test_x[torch.randperm(len(test_x), generator=g)], train_x[torch.randperm(len(train_x), generator=g)]
    f_model, f_test = classifier_features(images, judge), classifier_features(test_x[:real], judge)
    f_train = classifier_features(train_x[:real], judge)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save({"model": f_model, "test": f_test, "train": f_train}, CACHE / "fid_vs_n.pt")
    points = []
    for n in (n for n in FID_VS_N if n <= samples):
        block = lambda f, i: f[i * n:(i + 1) * n]  # noqa: E731
        k_real, k_model = min(20, len(f_test) // n), min(20, len(f_model) // n)
        point = {"n": n}
        for name, metric in METRICS.items():
            point[f"{name}_model_draws"] = [round(metric(block(f_model, i), block(f_test, i)), 6)
                                            for i in range(k_model)]
            point[f"{name}_floor_draws"] = [round(metric(block(f_train, i), block(f_test, i)), 6)
                                            for i in range(k_real)]
        point.update(fid_model_ddim10=round(point["fid_model_draws"][0], 4),
                     fid_floor=round(point["fid_floor_draws"][0], 4))
        points.append(point)
    return {"sampler": "DDIM-10 (eta=0), mnist-ddpm", "samples": samples, "real": real, "seconds": round(seconds, 1),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "reference": "random test digits; floor: as many random training digits; draw i uses the i-th disjoint "
                         "block of N samples, training digits and test digits", "points": points}


def draws_at_n(n: int, seed: int, cache: Path = CACHE / "fid_vs_n.pt") -> dict:
    """Every set metric of chapter 7 for ``k`` independent draws at one N, from the features ``fid_vs_n`` cached:
    draw i scores the i-th block of N DDIM-10 samples and the i-th block of N training digits against the i-th
    block of N test digits, so ``model[i] - floor[i]`` shares its reference and the draws are independent pairs
    (read them with `diffcourse.measure.seed_difference`)."""
    f = torch.load(cache)
    k = min(20, len(f["model"]) // n, len(f["test"]) // n)
    block = lambda x, i: x[i * n:(i + 1) * n]  # noqa: E731

    def scores(fake: torch.Tensor, ref: torch.Tensor) -> dict:
        p, r = precision_recall(ref, fake)
        d, c = density_coverage(ref, fake)
        return {"fid": fid_features(fake, ref), "kid": kid(fake, ref), "precision": p, "recall": r,
                "density": d, "coverage": c}

    out = {"n": n, "draws": k, "seed": seed, "model": {}, "floor": {}}
    for side, key in (("model", "model"), ("floor", "train")):
        rows = [scores(block(f[key], i), block(f["test"], i)) for i in range(k)]
        out[side] = {m: [round(r[m], 6) for r in rows] for m in rows[0]}
    return out


def recompute_differences(report: dict, specs: list[str], key: dict, judge: torch.nn.Module, n: int, seed: int,
                          groups: int) -> None:
    """``--differences-only``: the matched floors, the recorded differences and the rows' KID, recomputed from the cached
    features of ``specs`` (no sampling; the rows' other values and the file's timing metadata are kept as they are)."""
    if report.get("n") != n:
        raise SystemExit(f"the file's rows are at N = {report.get('n')}, not --n {n}: pass --n {report.get('n')}")
    features = {spec: cached_features(spec, key) for spec in specs}
    missing = [spec for spec, f in features.items() if f is None]
    if missing:
        raise SystemExit(f"no cached features (same weights, N, seed, batch size) for {missing}: "
                         "run these rows without --differences-only first")
    ref = reference_features(judge, n, seed)
    rows = {r["spec"]: r for r in report.get("rows", [])}
    for spec, f in features.items():  # a row drawn before its features were kept may lack its KID: as a full run sets it
        rows[spec]["kid"] = round(kid(f, ref), 6)
    pool, pool_y = real_pool(judge)
    report["floor"] = matched_floors(pool, pool_y, ref, n, seed)
    report["differences"] = differences(features, ref, pool, pool_y, groups, seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--rows", nargs="*", default=DEFAULT_ROWS, help="rows to run (none: only --fid-vs-n)")
    p.add_argument("--fid-vs-n", action="store_true")
    p.add_argument("--batch-size", type=int, default=64, help="images per network call (64 is fastest for this U-Net on a CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the committed file: 1)")
    p.add_argument("--groups", type=int, default=50, help="jackknife groups per difference (each leaves out 1/G of the rows)")
    p.add_argument("--fresh", action="store_true", help="redraw rows whose features are cached")
    p.add_argument("--fid-vs-n-samples", type=int, default=5000, help="DDIM-10 samples for --fid-vs-n")
    p.add_argument("--fid-vs-n-real", type=int, default=10000, help="test (and training) digits for --fid-vs-n")
    p.add_argument("--draws-at-n", type=int, default=None,
                   help="also score independent draws of this N from the --fid-vs-n features (cached)")
    p.add_argument("--differences-only", action="store_true",
                   help="draw nothing: recompute the floors and differences from the cached features of --rows")
    p.add_argument("--out", default="benchmarks/results/samplers.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = get_device()
    judge = load_pretrained("mnist-classifier", device)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(out.read_text()) if out.exists() else {}
    weights = {name: checkpoint_info(name)["sha256"] for name in ("mnist-ddpm", "mnist-cfg", "mnist-classifier")}
    key = {"checkpoints": weights, "n": a.n, "seed": a.seed, "batch_size": a.batch_size}
    if a.differences_only:
        recompute_differences(report, a.rows, key, judge, a.n, a.seed, a.groups)
        out.write_text(json.dumps(report, indent=2))
        print(f"{len(report['differences'])} differences written", flush=True)
        return
    if a.rows:
        if report.get("n") != a.n or report.get("device") != str(device) or report.get("checkpoints") != weights:
            report["rows"] = []  # rows measured at another N, on another device or of other weights are not comparable
        report.update({"checkpoints": weights, "benchmark": "samplers", "n": a.n, "device": str(device),
                       "threads": torch.get_num_threads(), "machine": platform.machine(), "seed": a.seed,
                       "batch_size": a.batch_size,
                       "ddim_spacing": inspect.signature(ddim_sample).parameters["spacing"].default,
                       "timing": "after one untimed warm-up call per model (allocation and kernel choice are not billed "
                                 "to the first row); cpu_seconds is the process's CPU time, which a busy machine "
                                 "does not inflate (one thread)",
                       "load_average_at_start": round(os.getloadavg()[0], 2)})
    rows = {r["spec"]: r for r in report.get("rows", [])}
    models, features = {}, {}
    for spec in a.rows:
        row = parse_row(spec)
        name = row["model"]
        cached = None if a.fresh else cached_features(spec, key)
        if cached is not None and spec in rows and "cpu_seconds" in rows[spec]:
            features[spec] = cached
            continue
        if name not in models:
            models[name] = (load_pretrained(name, device), pretrained_schedule(name))
            warm = parse_labels("0-9", a.batch_size) if name == "mnist-cfg" else None
            generate(*models[name], a.batch_size, sampler="ddim", steps=2, seed=a.seed, labels=warm, device=device,
                     batch_size=a.batch_size)  # the untimed warm-up
        model, schedule = models[name]
        labels = parse_labels("0-9", a.n) if name == "mnist-cfg" else None
        cpu0 = time.process_time()
        images, seconds, nfe = generate(model, schedule, a.n, sampler=row["sampler"], steps=row["steps"], eta=row["eta"],
                                        seed=a.seed, labels=labels, guidance=row["guidance"], device=device,
                                        batch_size=a.batch_size)
        cpu_seconds = time.process_time() - cpu0
        metrics = evaluate_images(images.cpu(), labels, classifier=judge, seed=a.seed)
        features[spec] = classifier_features(images.cpu(), judge)
        save_features(spec, features[spec], key)
        row.update(nfe=nfe, seconds=round(seconds, 1), cpu_seconds=round(cpu_seconds, 1), **metrics)
        rows[spec] = row
        report["rows"] = list(rows.values())
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(row), flush=True)
    if features:
        ref = reference_features(judge, a.n, a.seed)
        for spec, f in features.items():
            rows[spec]["kid"] = round(kid(f, ref), 6)
        pool, pool_y = real_pool(judge)
        report["rows"] = list(rows.values())
        report["floor"] = matched_floors(pool, pool_y, ref, a.n, a.seed)
        report["differences"] = differences(features, ref, pool, pool_y, a.groups, a.seed)
        out.write_text(json.dumps(report, indent=2))
        print(f"{len(report['differences'])} differences written", flush=True)
    if a.fid_vs_n:
        model, schedule = models.get("mnist-ddpm") or (load_pretrained("mnist-ddpm", device), pretrained_schedule("mnist-ddpm"))
        report["fid_vs_n"] = fid_vs_n(model, schedule, judge, device, a.seed, a.batch_size, a.fid_vs_n_samples,
                                      a.fid_vs_n_real)
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report["fid_vs_n"]["points"][-1]), flush=True)
    if a.draws_at_n:
        report.setdefault("fid_vs_n", {})["draws_at_n"] = draws_at_n(a.draws_at_n, a.seed)
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report["fid_vs_n"]["draws_at_n"]["model"]["precision"]), flush=True)


if __name__ == "__main__":
    main()
