"""Chapter 8 measured: latent vs pixel diffusion at matched compute, the prompted LDM against mnist-cfg, the
autoencoder's cap, and diffusion vs VAE vs GAN — printed as JSON.

Every score is read the course's way (DESIGN §7, `diffcourse.measure`): FID against the 10 000 test digits in the
``mnist-classifier`` feature space, beside a *matched floor* (real training digits drawn the way the samples were:
same N, same label mix), and every comparison as a `Difference` with its bootstrap interval and verdict.

* ``speed`` — the pixel U-Net (``mnist-ddpm``) against the latent U-Net (``latent-ldm``): one timed optimiser step
  on a batch of 128 (bfloat16, best of ``--reps``), the activations autograd keeps, the encoder's images/s; and
  the *real* training runs of the matched-compute study: images per CPU second of each whole run.
* ``curve`` — the matched-compute study (Rombach et al. 2022, Figs. 6–7): every EMA snapshot of the pixel run
  (``mnist-ddpm-lsimple``) and of the latent run (``latent-ldm-lsimple``, its autoencoder's and the encoding's CPU
  seconds charged to it) sampled with DDIM-``--steps``, N each: FID and confident share against training CPU seconds;
  at each pixel snapshot, the verdict against the latent snapshot nearest in total CPU seconds.
* ``cfg`` — ``latent-ldm`` prompted with the digit names against ``mnist-cfg`` given the labels: same sampler and
  steps, same N, the same class-balanced labels (row i asks for digit i mod 10), a balanced floor; FID, accuracy,
  confident share at each guidance weight in ``--cfg-w``; paired differences (row i of both asks for the same digit).
* ``autoencoder`` — each autoencoder reconstructs N *training* digits (posterior mean); their FID against the test
  digits is paired with the FID of the very same originals (one floor draw): the difference is what the
  autoencoder loses, the cap on any latent model of it. Precision/recall against N held-out test digits.
* ``compare`` — the seeds' table measured: σ-VAE, DCGAN, latent and pixel diffusion (the matched-compute pair and
  the shipped long-trained ``mnist-ddpm``), and real digits: FID, precision, recall, density, coverage, class
  entropy and histogram, within-class spread relative to real digits, confident share, NLL bound in bits/dim
  where one is defined, NFE, sampling seconds, training CPU seconds.
* ``trajectories`` — the baselines along their training (their snapshots): the σ-VAE's bound on held-out test
  digits (has it converged?) and the GAN's FID and confident share at N (is its training stable, is it done?).
* ``prompts`` — ``latent-ldm`` over all 50 prompts at each w in ``--guidance``, ``--per-prompt`` samples each: the
  share obeying its prompt per kind of prompt (digit names, odd/even, greater/less than), with its chance rate.

Run (1 thread while a training runs):
  DIFFCOURSE_DATA_DIR=… python benchmarks/latent.py --n 500 --threads 1 --out benchmarks/results/latent.json
``--parts`` picks parts; a part not asked for is copied from ``--keep FILE`` (a previous results file).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from diffcourse.data.mnist import load_mnist
from diffcourse.diversity import class_entropy, class_histogram, density_coverage, relative_spread
from diffcourse.latent import reparameterize
from diffcourse.measure import (balanced_labels, bootstrap_difference, draw_reference, fid_features,
                                jackknife_difference, matched_floor)
from diffcourse.metrics import classifier_features, ddpm_elbo_bpd, precision_recall
from diffcourse.models.autoencoder import decoder_sigma, vae_elbo_bpd, vae_loss
from diffcourse.models.latent_unet import sample_latent_digits
from diffcourse.models.text import NUMBER_WORDS, all_prompts, prompt_digits, tokenize
from diffcourse.objectives import diffusion_loss, eps_fn
from diffcourse.pretrained import load_model
from diffcourse.recipes.latent import LATENT_RECIPES
from diffcourse.recipes.mnist import RECIPES, build_model
from diffcourse.samplers import ddim_sample
from diffcourse.samplers.guidance import cfg_eps_fn
from diffcourse.schedules import make_schedule

PARTS = ("speed", "curve", "cfg", "autoencoder", "compare", "trajectories", "prompts")
SCHEDULE = make_schedule("linear", 1000)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    with torch.no_grad():
        out = fn()
    return out, time.perf_counter() - t0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ the judge
class Judge:
    """The course classifier's view: features, FID against all test digits, floors drawn like the samples."""

    def __init__(self, classifier: torch.nn.Module, n: int, seed: int) -> None:
        self.classifier, self.n, self.seed = classifier, n, seed
        self.test_x, self.test_y = load_mnist("test")
        self.train_x, self.train_y = load_mnist("train")
        self.ref = classifier_features(self.test_x, classifier)                    # FID reference: 10 000 test digits
        self.pr_ref = self.ref[torch.randperm(len(self.ref), generator=gen(seed))[:n]]  # held-out, not the first n
        self.train_f = classifier_features(self.train_x, classifier)
        self._floors: dict[str, dict] = {}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return classifier_features(images, self.classifier)

    @torch.no_grad()
    def labels_and_confidence(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.cat([torch.softmax(self.classifier(images[i:i + 1000]).float(), 1)
                       for i in range(0, len(images), 1000)])
        return p.argmax(1), p.amax(1)

    def fid(self, f: torch.Tensor) -> float:
        return fid_features(f, self.ref)

    def floor(self, labels: torch.Tensor | None = None) -> dict:
        """The matched floor at N: the data's own label mix (``None``) or the samples' label list."""
        key = "data" if labels is None else ",".join(map(str, labels.tolist()))
        if key not in self._floors:
            fl = matched_floor(self.train_f, self.train_y, self.ref, len(labels) if labels is not None else self.n,
                               labels=labels, seed=self.seed)
            self._floors[key] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fl.as_dict().items()}
        return self._floors[key]

    def score(self, images: torch.Tensor, full: bool = False) -> tuple[dict, "Scored"]:
        """FID and confident share (``full``: and precision, recall, density, coverage, class mix, spread), and the
        per-sample features, labels and confidence that differences resample."""
        f = self.features(images)
        labels, conf = self.labels_and_confidence(images)
        out = {"fid": round(self.fid(f), 3), "confident": round(float((conf >= 0.9).double().mean()), 4)}
        if full:
            p, r = precision_recall(self.pr_ref, f)
            d, c = density_coverage(self.pr_ref, f)
            real = draw_reference(self.train_y, len(images), generator=gen(self.seed + 99))
            out.update(precision=round(p, 4), recall=round(r, 4), density=round(d, 4), coverage=round(c, 4),
                       class_entropy=round(class_entropy(labels), 4),
                       class_histogram=[round(v, 3) for v in class_histogram(labels).tolist()],
                       within_class_spread=round(relative_spread(f, labels, self.train_f[real], self.train_y[real]), 4))
        return out, Scored(f, labels, conf >= 0.9)


@dataclass
class Scored:
    """Per-sample measurements of one sample set: classifier features, the classifier's labels, confident (≥ 0.9)."""

    features: torch.Tensor
    labels: torch.Tensor
    confident: torch.Tensor


def fid_difference(judge: Judge, fa: torch.Tensor, fb: torch.Tensor, a: str, b: str, paired: bool) -> dict:
    """Interval of FID(A) − FID(B) by the grouped jackknife over the samples and the test reference
    (`jackknife_difference`: no row used twice)."""
    d = jackknife_difference(fid_features, fa, fb, judge.ref, paired=paired, name_a=a, name_b=b)
    return {**d.as_dict(), "verdict": d.verdict("FID")}


def rate_difference(xa: torch.Tensor, xb: torch.Tensor, a: str, b: str, what: str, paired: bool, n_boot: int) -> dict:
    """Bootstrap interval of the difference of two per-sample rates (0/1 tensors): higher is better."""
    rate = lambda x, _ref: float(x.double().mean())  # noqa: E731
    d = bootstrap_difference(rate, xa, xb, None, paired=paired, n_boot=n_boot, name_a=a, name_b=b)
    return {**d.as_dict(), "verdict": d.verdict(what, digits=3, lower_is_better=False)}
def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_images_per_s(model: torch.nn.Module, loss: Callable[[], torch.Tensor], batch: int, reps: int) -> float:
    """Images/s of one optimiser step (bfloat16 autocast, as the recipes), the best of ``reps`` timed steps.

    The steps change ``model``'s weights: pass a copy (`speed_part` does), never a network measured afterwards."""
    model.train().requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    best = math.inf
    for i in range(reps + 1):  # the first step warms up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if i:
            best = min(best, time.perf_counter() - t0)
    model.eval().requires_grad_(False)
    return batch / best


def saved_activation_bytes(model: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves for the backward pass during one forward of ``loss`` (bfloat16 autocast)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if not isinstance(t, torch.nn.Parameter):
            total += t.numel() * t.element_size()
        return t
    model.train().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        loss()
    model.eval().requires_grad_(False)
    return total


def forward_flops(net: Callable, x: torch.Tensor, time_arg: bool = True) -> int:
    """Floating-point operations of one forward pass on one item (torch's FlopCounterMode: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, torch.tensor([500])) if time_arg else net(x)
    return int(counter.get_total_flops())


def speed_part(pixel, ldm, vae, schedule, train_x, args) -> dict:
    B, g = 128, torch.Generator().manual_seed(args.seed)
    x = train_x[:B]
    with torch.no_grad():
        mean, logvar = vae.encode(x)
    z = ldm.scale_factor * reparameterize(mean, logvar, torch.randn(mean.shape, generator=g))
    toks = tokenize(all_prompts())[torch.randint(0, 50, (B,), generator=g)]
    pixel, ldm = copy.deepcopy(pixel), copy.deepcopy(ldm)   # timed optimiser steps must not touch the measured networks
    pixel_loss = lambda: diffusion_loss(pixel, schedule, x, g)                     # noqa: E731
    latent_loss = lambda: diffusion_loss(ldm, schedule, z, g, y=toks)               # noqa: E731
    out = {"batch": B}
    for name, model, loss in (("pixel", pixel, pixel_loss), ("latent", ldm, latent_loss)):
        out[name] = {"parameters": parameters(model),
                     "train_images_per_s": round(train_images_per_s(model, loss, B, args.reps), 1),
                     "train_activation_MB": round(saved_activation_bytes(model, loss) / 2**20, 1)}
    with torch.no_grad():
        best = min(timed(lambda: vae.encode(train_x[:1000]))[1] for _ in range(args.reps))
    out["encoder_images_per_s"] = round(1000 / best, 1)
    out["latent"]["train_images_per_s_encoding_on_the_fly"] = round(
        1 / (1 / out["latent"]["train_images_per_s"] + 1 / out["encoder_images_per_s"]), 1)
    out["pixel"]["forward_flops_per_image"] = forward_flops(pixel, torch.randn(1, 1, 28, 28))
    out["latent"]["forward_flops_per_image"] = forward_flops(ldm, torch.randn(1, ldm.latent_ch, 7, 7))
    out["decoder_flops_per_image"] = forward_flops(vae.decode, torch.randn(1, ldm.latent_ch, 7, 7), time_arg=False)
    out["pixel"]["state_numbers_per_sample"] = 28 * 28
    out["latent"]["state_numbers_per_sample"] = ldm.latent_ch * 7 * 7
    out["train_speedup"] = round(out["latent"]["train_images_per_s"] / out["pixel"]["train_images_per_s"], 2)
    out["activation_ratio"] = round(out["pixel"]["train_activation_MB"] / out["latent"]["train_activation_MB"], 2)
    return out


# ------------------------------------------------------------------------------------------------ the study's runs
def snapshot_network(path: Path, recipe_name: str) -> torch.nn.Module:
    """Rebuild the EMA network of a training snapshot (``runs/RECIPE/snapshots/stepNNNNNN.pt``) or of an export."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    recipe = {**RECIPES, **LATENT_RECIPES}[recipe_name]
    config = dict(state.get("config") or recipe.model_kwargs)
    if recipe.kind == "latent-diffusion":
        config["scale_factor"] = (state["extra"]["recipe"] if "extra" in state else config)["scale_factor"]
    model = build_model(recipe.model, config)
    model.load_state_dict(state["state_dict"])
    return model.eval().requires_grad_(False)


def run_points(folder: Path, recipe_name: str) -> list[dict]:
    """The snapshots of a run and its final export, each ``{step, seconds, cpu_seconds, path}``, by step."""
    points = {}
    for p in sorted((folder / "snapshots").glob("step*.pt")):
        s = torch.load(p, map_location="cpu", weights_only=True)
        points[int(s["step"])] = {"step": int(s["step"]), "seconds": float(s["seconds"]),
                                  "cpu_seconds": float(s["cpu_seconds"]), "path": p}
    export = folder / f"{recipe_name}.pt"
    if export.exists():
        s = torch.load(export, map_location="cpu", weights_only=True)
        if int(s["steps"]) not in points and "cpu_seconds" in s:
            points[int(s["steps"])] = {"step": int(s["steps"]), "seconds": float(s["seconds"]),
                                       "cpu_seconds": float(s["cpu_seconds"]), "path": export}
    if not points:
        raise SystemExit(f"No snapshots in {folder}/snapshots: train {recipe_name} first (runs/ch8/queue.sh).")
    return [points[k] for k in sorted(points)]


def latent_overhead(folder: Path, recipe_name: str) -> dict:
    """CPU seconds the latent run spent before its first step: training its autoencoder, encoding the training set."""
    s = torch.load(folder / f"{recipe_name}.pt", map_location="cpu", weights_only=True)["settings"] \
        if (folder / f"{recipe_name}.pt").exists() else \
        torch.load(folder / "train.pt", map_location="cpu", weights_only=True)["extra"]["recipe"]
    return {"autoencoder_cpu_seconds": float(s["autoencoder_cpu_seconds"]),
            "encode_cpu_seconds": float(s["encode_cpu_seconds"]), "autoencoder": s["autoencoder"]}


def real_run_speed(args) -> dict:
    """Images per CPU second of the two study runs, whole runs (the rate a learner's training actually gets)."""
    out = {}
    for key, folder, name in (("pixel", args.pixel_run, "mnist-ddpm-lsimple"),
                              ("latent", args.latent_run, "latent-ldm-lsimple")):
        last = run_points(Path(folder), name)[-1]
        out[key] = {"steps": last["step"], "images": last["step"] * 128,
                    "loop_cpu_seconds": round(last["cpu_seconds"], 1), "wall_seconds": round(last["seconds"], 1),
                    "images_per_cpu_second": round(last["step"] * 128 / last["cpu_seconds"], 1)}
    extra = latent_overhead(Path(args.latent_run), "latent-ldm-lsimple")
    lat = out["latent"]
    lat.update({k: round(v, 1) for k, v in extra.items() if k.endswith("seconds")})
    lat["total_cpu_seconds"] = round(lat["loop_cpu_seconds"] + extra["autoencoder_cpu_seconds"]
                                     + extra["encode_cpu_seconds"], 1)
    lat["images_per_cpu_second_all_included"] = round(lat["images"] / lat["total_cpu_seconds"], 1)
    pixel_rate = out["pixel"]["images_per_cpu_second"]
    out["loop_speedup"] = round(lat["images_per_cpu_second"] / pixel_rate, 2)
    out["speedup_all_included"] = round(lat["images_per_cpu_second_all_included"] / pixel_rate, 2)
    return out


# ------------------------------------------------------------------------------------------------ curve
def sample_point(kind: str, model: torch.nn.Module, ae: torch.nn.Module | None, n: int, steps: int,
                 seed: int) -> tuple[torch.Tensor, float]:
    """N unconditional samples, DDIM-``steps`` (η = 0): pixel U-Net, or latent U-Net (empty prompt) + decoder."""
    if kind == "pixel":
        return timed(lambda: ddim_sample(eps_fn(model, SCHEDULE), SCHEDULE, (n, 1, 28, 28), steps=steps,
                                         generator=gen(seed)))
    return timed(lambda: sample_latent_digits(model, ae, SCHEDULE, [""] * n, steps=steps, generator=gen(seed)))


def measure_run(judge: Judge, kind: str, folder: Path, name: str, args, overhead: float,
                ae: torch.nn.Module | None, keep: Callable[[dict], bool]) -> tuple[list[dict], list[Scored]]:
    """Every kept point of a run: FID and confident share of N samples against its CPU seconds (+ ``overhead``)."""
    rows, feats = [], []
    for pt in (p for p in run_points(folder, name) if keep(p)):
        imgs, secs = sample_point(kind, snapshot_network(pt["path"], name), ae, args.n, args.steps, args.seed + 2)
        score, f = judge.score(imgs)
        rows.append({"step": pt["step"], "images": pt["step"] * 128, "loop_cpu_seconds": round(pt["cpu_seconds"], 1),
                     "cpu_seconds": round(pt["cpu_seconds"] + overhead, 1), "wall_seconds": round(pt["seconds"], 1),
                     "sampling_seconds": round(secs, 2), **score})
        feats.append(f)
        log(f"curve {kind} {rows[-1]}")
    return rows, feats


def curve_part(judge: Judge, args) -> dict:
    """The matched-compute study: both runs' snapshots, the matched floor, verdicts at equal CPU seconds."""
    over = latent_overhead(Path(args.latent_run), "latent-ldm-lsimple")
    ae = load_model(over["autoencoder"])[0]
    every = args.curve_every
    pixel, pf = measure_run(judge, "pixel", Path(args.pixel_run), "mnist-ddpm-lsimple", args, 0.0, None,
                            lambda p: p["step"] % (500 * every) == 0 or p["step"] == 6500)
    total = over["autoencoder_cpu_seconds"] + over["encode_cpu_seconds"]
    latent, lf = measure_run(judge, "latent", Path(args.latent_run), "latent-ldm-lsimple", args, total, ae,
                             lambda p: True)
    compare = []
    for i, p in enumerate(pixel):
        j = min(range(len(latent)), key=lambda k: abs(latent[k]["cpu_seconds"] - p["cpu_seconds"]))
        a, b = f"latent ({latent[j]['cpu_seconds']:.0f} CPU s)", f"pixel ({p['cpu_seconds']:.0f} CPU s)"
        compare.append({"pixel_step": p["step"], "latent_step": latent[j]["step"],
                        "pixel_cpu_seconds": p["cpu_seconds"], "latent_cpu_seconds": latent[j]["cpu_seconds"],
                        "fid": fid_difference(judge, lf[j].features, pf[i].features, a, b, False),
                        "confident": rate_difference(lf[j].confident, pf[i].confident, a, b, "confident share",
                                                     False, args.boot)})
    return {"n": args.n, "steps": args.steps, "sampler": f"DDIM-{args.steps}, eta = 0",
            "floor": judge.floor(), "pixel": pixel, "latent": latent,
            "latent_overhead": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in over.items()},
            "at_equal_cpu": compare}


# ------------------------------------------------------------------------------------------------ cfg
def cfg_samples(kind: str, model: torch.nn.Module, ae: torch.nn.Module | None, labels: torch.Tensor, w: float,
                steps: int, seed: int) -> tuple[torch.Tensor, float]:
    """Class-conditional samples: ``mnist-cfg`` given the labels, or the LDM given the digits' names as prompts."""
    if kind == "pixel":
        return timed(lambda: ddim_sample(cfg_eps_fn(model, labels, w), SCHEDULE, (len(labels), 1, 28, 28), steps=steps,
                                         generator=gen(seed)))
    names = [NUMBER_WORDS[int(y)] for y in labels]
    return timed(lambda: sample_latent_digits(model, ae, SCHEDULE, names, w=w, steps=steps, generator=gen(seed)))


def cfg_part(judge: Judge, nets: dict, args) -> dict:
    """``latent-ldm`` prompted with digit names against ``mnist-cfg`` with labels: same sampler, N, labels, floor."""
    labels = balanced_labels(args.n)
    out = {"n": args.n, "steps": args.steps, "labels": "balanced: row i asks for digit i mod 10",
           "floor": judge.floor(labels), "budgets": {k: budget(nets[k]) for k in ("cfg", "ldm")}, "rows": []}
    for w in (float(v) for v in args.cfg_w.split(",")):
        row, scored, hits = {"w": w}, {}, {}
        for key, model, ae in (("pixel", nets["cfg"], None), ("latent", nets["ldm"], nets["vae"])):
            imgs, secs = cfg_samples(key, model, ae, labels, w, args.steps, args.seed + 4)
            score, scored[key] = judge.score(imgs)
            hits[key] = scored[key].labels == labels
            row[key] = {**score, "accuracy": round(float(hits[key].double().mean()), 4), "seconds": round(secs, 2),
                        "nfe": args.steps * (1 if w in (0.0, 1.0) else 2)}
        row["fid_difference"] = fid_difference(judge, scored["latent"].features, scored["pixel"].features,
                                               f"latent-ldm (w = {w:g})", f"mnist-cfg (w = {w:g})", True)
        row["accuracy_difference"] = rate_difference(hits["latent"], hits["pixel"], f"latent-ldm (w = {w:g})",
                                                     f"mnist-cfg (w = {w:g})", "accuracy", True, args.boot)
        out["rows"].append(row)
        log(f"cfg w={w}: {json.dumps(row)[:400]}")
    return out


def budget(model: torch.nn.Module) -> dict:
    """A shipped network's training budget from its manifest entry: steps, images, wall seconds."""
    info = getattr(model, "pretrained_info", {})
    steps, batch = info.get("training_steps"), info.get("settings", {}).get("batch_size")
    return {"steps": steps, "batch_size": batch, "images": steps * batch if steps and batch else None,
            "wall_seconds": info.get("wall_time_s")}


# ------------------------------------------------------------------------------------------------ autoencoder
@torch.no_grad()
def autoencoder_part(judge: Judge, autoencoders: dict[str, str], args, cache: dict) -> dict:
    """Each autoencoder's reconstructions of N training digits against those very digits (paired): the cap."""
    idx = draw_reference(judge.train_y, args.n, generator=gen(args.seed + 5))
    x, y = judge.train_x[idx], judge.train_y[idx]
    orig, cache["originals"] = judge.score(x, full=True)
    out = {"n": args.n, "digits": "N training digits drawn uniformly (not in the test reference)",
           "originals": orig, "floor": judge.floor(), "rows": {}}
    for name, source in autoencoders.items():
        ae = load_model(source)[0]
        recon = ae(x)[0]
        _, rec, kl = vae_loss(ae, x, 0.0, gen(args.seed + 8))
        score, cache[f"recon:{name}"] = judge.score(recon, full=True)
        out["rows"][name] = {"source": source, "latent_shape": list(ae.latent_shape), **score,
                             "recon_mse_per_pixel": round(float((recon - x).pow(2).mean()), 5),
                             "kl_per_image_nats": round(float(kl), 2),
                             "recon_accuracy": round(float((cache[f"recon:{name}"].labels == y).double().mean()), 4),
                             "cap": fid_difference(judge, cache[f"recon:{name}"].features, cache["originals"].features,
                                                   f"reconstructions ({name})", "the originals", True)}
        log(f"autoencoder {name}: {json.dumps(out['rows'][name])[:300]}")
    names = list(autoencoders)
    out["ablation"] = [fid_difference(judge, cache[f"recon:{b}"].features, cache[f"recon:{a}"].features,
                                      f"reconstructions ({b})", f"reconstructions ({a})", True)
                       for a, b in zip(names, names[1:])]
    return out


# ------------------------------------------------------------------------------------------------ compare
def compare_samplers(nets: dict, args) -> dict[str, tuple[str, Callable[[], torch.Tensor], int, float | None]]:
    """Row name → (label, sampler of N images, NFE per sample, training CPU seconds or None)."""
    n, steps, s = args.n, args.steps, args.seed
    vae, gan = nets["vae-beta1"], nets["gan"]
    rows = {"vae": ("σ-VAE (latent-vae-beta1): decode z ~ N(0, I)",
                    lambda: vae.decode(torch.randn(n, *vae.latent_shape, generator=gen(s + 5))), 1, cpu_of(vae)),
            "gan": ("DCGAN (latent-gan): one generator pass", lambda: gan.sample(n, gen(s + 7)), 1, cpu_of(gan))}
    if "latent_study" in nets:
        ldm, ae = nets["latent_study"]
        rows["latent_study"] = (f"latent diffusion, matched compute (latent-ldm-lsimple), DDIM-{steps}",
                                lambda: sample_point("latent", ldm, ae, n, steps, s + 3)[0], steps + 1,
                                nets["latent_study_cpu"])
    if "pixel_study" in nets:
        rows["pixel_study"] = (f"pixel diffusion, matched compute (mnist-ddpm-lsimple), DDIM-{steps}",
                               lambda: sample_point("pixel", nets["pixel_study"], None, n, steps, s + 2)[0], steps,
                               nets["pixel_study_cpu"])
    rows["pixel"] = (f"pixel diffusion, long-trained (mnist-ddpm, 19 500 steps), DDIM-{steps}",
                     lambda: sample_point("pixel", nets["pixel"], None, n, steps, s + 2)[0], steps, None)
    return rows


def cpu_of(model: torch.nn.Module) -> float | None:
    """Training CPU seconds recorded in a shipped network's export (None for networks exported before they were)."""
    info = getattr(model, "pretrained_info", {})
    return info.get("cpu_time_s", info.get("cpu_seconds"))  # manifest entry, or the metadata of an exported file


def nll_bounds(nets: dict, judge: Judge, args) -> dict:
    """Upper bounds on −log p(x) in bits/dim on ``--nll-n`` test digits: the σ-VAE's ELBO (its decoder σ at the
    maximum-likelihood value on training digits) and the pixel DDPM's variational bound."""
    x = judge.test_x[torch.randperm(len(judge.test_x), generator=gen(args.seed + 11))[:args.nll_n]]
    vae = nets["vae-beta1"]
    sigma = decoder_sigma(vae, judge.train_x[:5000], gen(args.seed + 10))
    out = {"vae": float(vae_elbo_bpd(vae, x, sigma, gen(args.seed + 12)).mean()), "vae_decoder_sigma": sigma}
    for key in ("pixel", "pixel_study"):
        if key in nets:
            out[key] = float(ddpm_elbo_bpd(eps_fn(nets[key], SCHEDULE), SCHEDULE, x, timesteps=args.nll_k,
                                           generator=gen(args.seed + 13)).mean())
    log(f"NLL bounds {out}")
    return {k: round(v, 4) for k, v in out.items()}


def set_difference(metric: Callable[[torch.Tensor], float], a: torch.Tensor, b: torch.Tensor, na: str, nb: str,
                   what: str, digits: int = 3) -> dict:
    """Interval of metric(A) − metric(B), a set metric of samples against a fixed reference (higher better), by the
    grouped jackknife (`jackknife_difference`: resampling with replacement would duplicate samples)."""
    d = jackknife_difference(lambda x, _r: metric(x), a, b, None, paired=False, name_a=na, name_b=nb)
    return {**d.as_dict(), "verdict": d.verdict(what, digits=digits, lower_is_better=False)}


def compare_differences(judge: Judge, scored: dict[str, Scored], best: str, args) -> dict:
    """VAE and GAN against the best diffusion row: FID, recall, coverage, class entropy, confident share."""
    recall = lambda f: precision_recall(judge.pr_ref, f)[1]     # noqa: E731
    coverage = lambda f: density_coverage(judge.pr_ref, f)[1]   # noqa: E731
    out = {}
    for key in ("vae", "gan"):
        a, b = scored[key], scored[best]
        out[key] = {"fid": fid_difference(judge, a.features, b.features, key, best, False),
                    "recall": set_difference(recall, a.features, b.features, key, best, "recall"),
                    "coverage": set_difference(coverage, a.features, b.features, key, best, "coverage"),
                    "class_entropy": set_difference(class_entropy, a.labels, b.labels, key, best, "class entropy"),
                    "confident": rate_difference(a.confident, b.confident, key, best, "confident share", False,
                                                 args.boot)}
    return out


def compare_part(judge: Judge, nets: dict, args, cache: dict) -> dict:
    """The seeds' table measured, every row at N with the same metrics, and real digits as the floor row."""
    real_idx = draw_reference(judge.train_y, args.n, generator=gen(args.seed + 99))
    real, cache["real"] = judge.score(judge.train_x[real_idx], full=True)
    out = {"n": args.n, "steps": args.steps, "nll_n": args.nll_n, "nll_k": args.nll_k, "floor": judge.floor(),
           "rows": [{"model": "real", "label": "real training digits (the floor row)", "nfe": 0, **real}]}
    nll = nll_bounds(nets, judge, args)
    for key, (label, sample, nfe, cpu) in compare_samplers(nets, args).items():
        imgs, secs = timed(sample)
        score, cache[key] = judge.score(imgs, full=True)
        out["rows"].append({"model": key, "label": label, "nfe": nfe, "seconds": round(secs, 2),
                            "nll_bpd": nll.get(key), "training_cpu_seconds": None if cpu is None else round(cpu, 1),
                            **score})
        log(f"compare {out['rows'][-1]}")
    out["vae_decoder_sigma"] = nll["vae_decoder_sigma"]
    best = min((r for r in out["rows"] if r["model"].startswith("pixel") or r["model"].startswith("latent")),
               key=lambda r: r["fid"])["model"]
    out["best_diffusion"] = best
    out["differences"] = compare_differences(judge, cache, best, args)
    return out


# ------------------------------------------------------------------------------------------------ trajectories
def trajectories_part(judge: Judge, args) -> dict:
    """The σ-VAE's held-out bound and the GAN's FID at every snapshot of their runs, against CPU seconds."""
    x = judge.test_x[torch.randperm(len(judge.test_x), generator=gen(args.seed + 11))[:args.nll_n]]
    out = {"nll_n": args.nll_n, "n": args.n, "vae": [], "gan": []}
    for pt in run_points(Path(args.vae_run), "latent-vae-beta1"):
        vae = snapshot_network(pt["path"], "latent-vae-beta1")
        sigma = decoder_sigma(vae, judge.train_x[:5000], gen(args.seed + 10))
        bpd = float(vae_elbo_bpd(vae, x, sigma, gen(args.seed + 12)).mean())
        out["vae"].append({"step": pt["step"], "cpu_seconds": round(pt["cpu_seconds"], 1), "nll_bpd": round(bpd, 4),
                           "decoder_sigma": round(sigma, 4)})
        log(f"trajectory vae {out['vae'][-1]}")
    for pt in run_points(Path(args.gan_run), "latent-gan"):
        gan = snapshot_network(pt["path"], "latent-gan")
        score, _ = judge.score(gan.sample(args.n, gen(args.seed + 7)))
        out["gan"].append({"step": pt["step"], "cpu_seconds": round(pt["cpu_seconds"], 1), **score})
        log(f"trajectory gan {out['gan'][-1]}")
    out["floor"] = judge.floor()
    return out


# ------------------------------------------------------------------------------------------------ prompts
def prompt_kind(prompt: str) -> str:
    """"digit" (names one digit), "parity" (odd / even) or "threshold" (greater / less than N)."""
    words = prompt.split()
    return "parity" if {"odd", "even"} & set(words) else "threshold" if {"greater", "less"} & set(words) else "digit"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95 % interval of a binomial rate k / n."""
    p, d = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return round(mid - half, 4), round(mid + half, 4)


def prompts_part(judge: Judge, nets: dict, args) -> dict:
    """Obedience to all 50 prompts at each w, by kind of prompt, against each prompt's chance rate (the share of
    training digits it allows: what a sampler that ignores the prompt would score)."""
    prompts, per = all_prompts(), args.per_prompt
    chance = {p: float(torch.isin(judge.train_y, torch.tensor(prompt_digits(p))).double().mean()) for p in prompts}
    plist = [p for p in prompts for _ in range(per)]
    out = {"per_prompt": per, "steps": args.steps, "chance": {p: round(c, 4) for p, c in chance.items()}, "rows": []}
    for w in (float(v) for v in args.guidance.split(",")):
        imgs, secs = timed(lambda: sample_latent_digits(nets["ldm"], nets["vae"], SCHEDULE, plist, w=w,
                                                        steps=args.steps, generator=gen(args.seed + 13)))
        pred = judge.labels_and_confidence(imgs)[0].tolist()
        ok = [int(d in prompt_digits(p)) for d, p in zip(pred, plist)]
        per_prompt = {p: sum(ok[i * per:(i + 1) * per]) for i, p in enumerate(prompts)}
        kinds = {}
        for kind in ("digit", "parity", "threshold"):
            ps = [p for p in prompts if prompt_kind(p) == kind]
            k, n = sum(per_prompt[p] for p in ps), per * len(ps)
            kinds[kind] = {"prompts": len(ps), "n": n, "obeys": round(k / n, 4), "interval": wilson(k, n),
                           "chance": round(sum(chance[p] for p in ps) / len(ps), 4)}
        out["rows"].append({"w": w, "nfe": args.steps * (1 if w in (0.0, 1.0) else 2), "seconds": round(secs, 2),
                            "obeys": round(sum(ok) / len(ok), 4), "by_kind": kinds,
                            "per_prompt": {p: round(c / per, 4) for p, c in per_prompt.items()}})
        log(f"prompts w={w}: {kinds}")
    return out


# ------------------------------------------------------------------------------------------------ main
def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="samples per measured set")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps for every diffusion model")
    p.add_argument("--boot", type=int, default=200, help="bootstrap resamples per difference")
    p.add_argument("--curve-every", type=int, default=1, help="measure every k-th pixel snapshot (500 steps apart)")
    p.add_argument("--cfg-w", default="1,3", help="guidance weights of the cfg part")
    p.add_argument("--guidance", default="0,1,2,3,5", help="guidance weights of the prompts part")
    p.add_argument("--per-prompt", type=int, default=20, help="samples per prompt in the prompts part")
    p.add_argument("--nll-n", type=int, default=100, help="test digits for the NLL bounds")
    p.add_argument("--nll-k", type=int, default=100, help="timesteps (strata) of the DDPM bound")
    p.add_argument("--reps", type=int, default=3, help="timed repeats (best kept) for the training speed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {PARTS}")
    p.add_argument("--pixel-run", default="runs/mnist-ddpm-lsimple", help="the pixel study's run folder")
    p.add_argument("--latent-run", default="runs/latent-ldm-lsimple", help="the latent study's run folder")
    p.add_argument("--vae-run", default="runs/latent-vae-beta1", help="the σ-VAE's run folder (trajectories)")
    p.add_argument("--gan-run", default="runs/latent-gan", help="the GAN's run folder (trajectories)")
    p.add_argument("--autoencoders", default="latent-vae=latent-vae,study=runs/latent-vae/latent-vae.pt,"
                   "8 channels=runs/latent-vae-c8/latent-vae-c8.pt",
                   help="NAME=checkpoint,… for the autoencoder part (run paths that are not there are skipped)")
    p.add_argument("--keep", default=None, help="a previous results file: parts not measured now are copied from it")
    p.add_argument("--out", default=None, help="also write the JSON here")
    return p.parse_args(argv)


def load_nets(args, parts: set[str]) -> dict:
    """The shipped networks, and the study's final networks where their runs are there."""
    nets = {k: load_model(name)[0] for k, name in (("pixel", "mnist-ddpm"), ("cfg", "mnist-cfg"), ("vae", "latent-vae"),
                                                   ("vae-beta1", "latent-vae-beta1"), ("ldm", "latent-ldm"),
                                                   ("gan", "latent-gan"))}
    if "compare" in parts:
        pixel = run_points(Path(args.pixel_run), "mnist-ddpm-lsimple")[-1]
        nets["pixel_study"] = snapshot_network(pixel["path"], "mnist-ddpm-lsimple")
        nets["pixel_study_cpu"] = pixel["cpu_seconds"]
        latent = run_points(Path(args.latent_run), "latent-ldm-lsimple")[-1]
        over = latent_overhead(Path(args.latent_run), "latent-ldm-lsimple")
        nets["latent_study"] = (snapshot_network(latent["path"], "latent-ldm-lsimple"),
                                load_model(over["autoencoder"])[0])
        nets["latent_study_cpu"] = latent["cpu_seconds"] + over["autoencoder_cpu_seconds"] + over["encode_cpu_seconds"]
    return nets


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    old = json.loads(Path(args.keep).read_text()) if args.keep else {}
    res = {"benchmark": "latent", "n": args.n, "steps": args.steps, "device": "cpu", "threads": args.threads,
           "machine": platform.machine(), "command": "python benchmarks/latent.py " + " ".join(sys.argv[1:]),
           **{k: old[k] for k in (*PARTS, "checkpoints") if k in old and k not in parts}}
    nets, cache = load_nets(args, parts), {}
    res.setdefault("checkpoints", {})
    res["checkpoints"].update({k: {"name": m.pretrained_info.get("recipe"), "sha256": m.pretrained_info.get("sha256")}
                               for k, m in nets.items() if hasattr(m, "pretrained_info")})
    judge = Judge(load_model("mnist-classifier")[0], args.n, args.seed)
    if "speed" in parts:
        res["speed"] = speed_part(nets["pixel"], nets["ldm"], nets["vae"], SCHEDULE, judge.train_x, args)
        res["speed"]["real_runs"] = real_run_speed(args)
    if "curve" in parts:
        res["curve"] = curve_part(judge, args)
    if "cfg" in parts:
        res["cfg"] = cfg_part(judge, nets, args)
    if "autoencoder" in parts:
        aes = dict(kv.split("=", 1) for kv in args.autoencoders.split(","))
        res["autoencoder"] = autoencoder_part(judge, {k: v for k, v in aes.items() if Path(v).exists() or "/" not in v},
                                              args, cache)
    if "compare" in parts:
        res["compare"] = compare_part(judge, nets, args, cache)
    if "trajectories" in parts:
        res["trajectories"] = trajectories_part(judge, args)
    if "prompts" in parts:
        res["prompts"] = prompts_part(judge, nets, args)
    text = json.dumps(res, indent=1, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
