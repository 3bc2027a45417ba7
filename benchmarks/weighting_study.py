r"""Chapter 3's question, measured: does the loss weighting decide the DDIM η-ordering?

Two networks that differ in **one** thing — the loss weighting — are sampled the same way:

* ``min-SNR-5``: the first 6500 steps of the shipped ``mnist-ddpm`` recipe (min-SNR-5 weighting), the checkpoint
  shipped at commit c288428 (its SHA-256 is checked);
* ``L_simple``: ``python -m diffcourse train mnist-ddpm-lsimple`` — the same U-Net, seed, batches, noise draws,
  learning-rate schedule and 6500 steps, with plain :math:`L_\text{simple}`.

For each network: DDIM η = 0 and η = 1 at 10 / 20 / 50 / 100 steps (and DDPM-1000 at ``--ddpm-n``), the **same**
starting noise for every setting (chunk k of every setting starts from seed k), N samples each, FID against the
10 000 test digits in the course's feature space, the confident share, the matched floor (N random training
digits, the data's own label mix), and paired intervals of every difference the lesson reads: FID by
`diffcourse.measure.jackknife_difference` (50 groups of samples, held out from both settings together, and 50 of
the test set), the confident share — a mean over samples — by `diffcourse.measure.bootstrap_difference`.

Samples are reduced to their features and max-softmax at once and cached per chunk under ``--cache`` (so the
run can be stopped and resumed); the summary goes to ``benchmarks/results/weighting_study.json``::

    python benchmarks/weighting_study.py --n 1000 --threads 1          # sample what is missing, then summarise
    python benchmarks/weighting_study.py --n 1000 --summary-only       # summarise the cached chunks
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from diffcourse import load_pretrained
from diffcourse.data.mnist import load_mnist
from diffcourse.measure import bootstrap_difference, fid_features, jackknife_difference, matched_floor
from diffcourse.metrics import classifier_features
from diffcourse.pretrained import load_model, sha256
from diffcourse.sampling import generate
from diffcourse.schedules import make_schedule

ROOT = Path(__file__).resolve().parents[1]
MIN_SNR_COMMIT, MIN_SNR_SHA = "c288428", "3fc9c9c63ef520702116303b987313d50f27ccd80dc5c46b9a1075aa03f11f3a"
STEPS = (10, 20, 50, 100)
CHUNK = 250


def settings(ddpm: bool) -> list[tuple[str, dict]]:
    """``(name, generate-options)`` of every sampler setting: DDIM-50 (the course's target sampler) first."""
    order = sorted(STEPS, key=lambda s: (s != 50, s))
    rows = [(f"ddim{s}-eta{e}", dict(sampler="ddim", steps=s, eta=float(e))) for s in order for e in (0, 1)]
    return rows + ([("ddpm1000", dict(sampler="ddpm"))] if ddpm else [])


def model_paths(cache: Path) -> dict[str, Path]:
    """The two networks' export files (the min-SNR one taken out of git history and hash-checked)."""
    old = cache / "mnist-ddpm-6500-minsnr5.pt"
    if not old.exists():
        cache.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(["git", "show", f"{MIN_SNR_COMMIT}:diffcourse/checkpoints/mnist-ddpm.pt"], cwd=ROOT,
                              capture_output=True, check=True).stdout
        old.write_bytes(blob)
    if sha256(old) != MIN_SNR_SHA:
        raise SystemExit(f"{old} is not the 6500-step min-SNR-5 mnist-ddpm (SHA-256 differs): delete it and rerun.")
    new = ROOT / "runs/mnist-ddpm-lsimple/mnist-ddpm-lsimple.pt"
    if not new.exists():
        raise SystemExit(f"{new} is missing: run `python -m diffcourse train mnist-ddpm-lsimple` first.")
    return {"min-SNR-5": old, "L_simple": new}


@torch.no_grad()
def sample_chunks(paths: dict[str, Path], n: int, ddpm_n: int, cache: Path, clf: torch.nn.Module) -> None:
    """Sample every missing chunk of every (setting, network) — setting by setting, both networks in turn, so a
    cut run still has paired rows — and cache each chunk's features and max-softmax."""
    nets = {name: load_model(str(path)) for name, path in paths.items()}
    for setting, opts in settings(ddpm_n > 0):
        total = ddpm_n if setting == "ddpm1000" else n
        for name, (model, meta) in nets.items():
            schedule = make_schedule(meta["schedule"]["name"], meta["schedule"]["T"])
            for k in range(total // CHUNK):
                out = cache / name / setting / f"chunk{k:03d}.pt"
                if out.exists():
                    continue
                x, sec, nfe = generate(model, schedule, CHUNK, seed=k, batch_size=CHUNK, **opts)
                conf = torch.softmax(clf(x), 1).amax(1)
                out.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"features": classifier_features(x, clf), "confidence": conf, "seconds": sec,
                            "nfe": nfe}, out)
                print(f"{name} {setting} chunk {k}: {sec:.0f} s", flush=True)


def load_cached(cache: Path, name: str, setting: str, n: int) -> dict | None:
    files = sorted((cache / name / setting).glob("chunk*.pt"))[: n // CHUNK]
    if len(files) < n // CHUNK:
        return None
    parts = [torch.load(f, weights_only=True) for f in files]
    return {"features": torch.cat([p["features"] for p in parts]), "confidence": torch.cat([p["confidence"] for p in parts]),
            "seconds_per_sample": sum(p["seconds"] for p in parts) / (len(parts) * CHUNK), "nfe": parts[0]["nfe"]}


def _confident(conf: torch.Tensor, _ref) -> float:
    return float((conf >= 0.9).double().mean())


def summarise(cache: Path, n: int, ddpm_n: int, test_f: torch.Tensor, pool: tuple[torch.Tensor, torch.Tensor],
              n_boot: int) -> dict:
    """FID, confident share, floors and the paired differences the lesson reads."""
    rows, data = {}, {}
    for name in ("min-SNR-5", "L_simple"):
        for setting, _ in settings(ddpm_n > 0):
            d = load_cached(cache, name, setting, ddpm_n if setting == "ddpm1000" else n)
            if d is None:
                continue
            data[name, setting] = d
            rows.setdefault(name, {})[setting] = {
                "n": len(d["features"]), "fid": fid_features(d["features"], test_f),
                "confident_share": _confident(d["confidence"], None), "nfe": d["nfe"],
                "seconds_per_sample": d["seconds_per_sample"]}
    floors = {m: matched_floor(*pool, test_f, m, draws=5).as_dict() for m in sorted({r["n"] for v in rows.values()
                                                                                      for r in v.values()})}

    def diff(a, b, what="fid"):
        if a not in data or b not in data or len(data[a]["features"]) != len(data[b]["features"]):
            return None
        if what == "fid":
            return jackknife_difference(fid_features, data[a]["features"], data[b]["features"], test_f,
                                        name_a=" ".join(a), name_b=" ".join(b)).as_dict()
        return bootstrap_difference(_confident, data[a]["confidence"], data[b]["confidence"], None,
                                    n_boot=n_boot, name_a=" ".join(a), name_b=" ".join(b)).as_dict()
    eta = {f"{m} ddim{s}": diff((m, f"ddim{s}-eta0"), (m, f"ddim{s}-eta1")) for m in rows for s in STEPS}
    weighting = {f"ddim{s}-eta{e}": diff(("L_simple", f"ddim{s}-eta{e}"), ("min-SNR-5", f"ddim{s}-eta{e}"))
                 for s in STEPS for e in (0, 1)}
    confident = {f"ddim{s}-eta{e}": diff(("L_simple", f"ddim{s}-eta{e}"), ("min-SNR-5", f"ddim{s}-eta{e}"), "conf")
                 for s in STEPS for e in (0, 1)}
    return {"rows": rows, "floors": floors, "eta0_minus_eta1": eta, "lsimple_minus_minsnr": weighting,
            "lsimple_minus_minsnr_confident": confident}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="samples per DDIM setting (a multiple of 250)")
    p.add_argument("--ddpm-n", type=int, default=0, help="samples of DDPM-1000 per network (0: skip it)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default=str(ROOT / "runs/weighting_study"))
    p.add_argument("--boot", type=int, default=200, help="bootstrap resamples per difference")
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/weighting_study.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cache, t0 = Path(a.cache), time.time()
    clf = load_pretrained("mnist-classifier")
    paths = model_paths(cache)
    if not a.summary_only:
        sample_chunks(paths, a.n, a.ddpm_n, cache, clf)
    x_test, _ = load_mnist("test")
    x_train, y_train = load_mnist("train")
    test_f = classifier_features(x_test, clf)
    pool = (classifier_features(x_train, clf), y_train)
    result = summarise(cache, a.n, a.ddpm_n, test_f, pool, a.boot)
    result["networks"] = {k: {"file": str(v.relative_to(ROOT)), "sha256": sha256(v)} for k, v in paths.items()}
    result["note"] = (f"python benchmarks/weighting_study.py --n {a.n} --ddpm-n {a.ddpm_n} --threads {a.threads}; "
                      "CPU; DDIM with clip_x0 = 1 (the course default); chunk k of every setting starts from seed k; "
                      f"reference: the 10 000 test digits; summary took {time.time() - t0:.0f} s")
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({m: {s: round(r["fid"], 2) for s, r in v.items()} for m, v in result["rows"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
