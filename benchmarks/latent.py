"""Chapter 8 measured: latent vs pixel diffusion, and diffusion vs VAE vs GAN, printed as JSON.

* ``speed`` — the pixel-space ``mnist-ddpm`` U-Net against the latent model ``latent-ldm`` on this machine:
  parameters; training images/s (one optimiser step on a batch of 128, bfloat16 autocast as the recipes
  train, best of ``--reps``); the autoencoder's encoding images/s (the training set is encoded once);
  the activations held for the backward pass of one training batch (bytes of the tensors autograd saves:
  the memory training needs beyond the weights); the bytes of one sample's state while sampling.
* ``quality`` — the same sampler (DDIM, ``--steps`` steps, eta = 0) for both, N samples each, seconds for
  the N; FID against the 10 000 test digits in the ``mnist-classifier`` feature space, confident share
  (classifier's max probability >= 0.9), and the real-vs-real floor (N training digits vs the same test set).
  The latent model runs unconditionally (the empty prompt) and prompted with the digit names (balanced).
* ``autoencoder`` — both autoencoders (``latent-vae``, β = 1e-3; ``latent-vae-beta1``, β = 1) on N test digits:
  reconstruction error, classifier accuracy and FID of reconstructions, KL per image, the latent's std and
  scale factor 1/std (measured on training digits).
* ``compare`` — the seeds' table measured: VAE alone (decode z ~ N(0, I)), GAN, latent diffusion, pixel diffusion:
  FID, precision and recall (k = 3, classifier features, N samples vs N test digits, with the real-vs-real
  values), confident share, NLL bound in bits/dim where one is defined (VAE: the ELBO; pixel DDPM: its
  variational bound, ``--nll-n`` test digits, ``--nll-k`` timesteps), NFE and seconds for N.
* ``prompts`` — the latent model over all 50 training prompts at guidance w: the share of samples whose digit the
  prompt allows (read by the classifier), and FID.

Run:  DIFFCOURSE_DATA_DIR=… python benchmarks/latent.py [--n 500] [--out benchmarks/results/latent.json]
Checkpoints are the shipped ones unless names or exported ``.pt`` paths are given (``--pixel PATH`` …).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from diffcourse.data.mnist import load_mnist
from diffcourse.latent import latent_scale_factor, reparameterize
from diffcourse.metrics import (classifier_accuracy, classifier_features, confident_share, ddpm_elbo_bpd, feature_stats,
                                frechet_distance, precision_recall)
from diffcourse.models.autoencoder import decoder_sigma, vae_elbo_bpd, vae_loss
from diffcourse.models.latent_unet import sample_latent_digits
from diffcourse.models.text import NUMBER_WORDS, all_prompts, prompt_digits, tokenize
from diffcourse.objectives import diffusion_loss, eps_fn
from diffcourse.pretrained import load_model
from diffcourse.samplers import ddim_sample
from diffcourse.schedules import make_schedule

PARTS = ("speed", "quality", "autoencoder", "compare", "prompts")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


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


class Judge:
    """The course classifier's view of a set of images: FID vs the test set, precision/recall vs N test digits."""

    def __init__(self, classifier: torch.nn.Module, test_x: torch.Tensor, train_x: torch.Tensor, n: int) -> None:
        self.classifier, self.n = classifier, n
        self.ref_stats = feature_stats(classifier_features(test_x, classifier))
        self.ref_n = classifier_features(test_x[:n], classifier)
        floor_f = classifier_features(train_x[:n], classifier)
        p, r = precision_recall(self.ref_n, floor_f)
        self.floor = {"fid": round(frechet_distance(*feature_stats(floor_f), *self.ref_stats), 3),
                      "precision": round(p, 4), "recall": round(r, 4),
                      "confident": round(confident_share(train_x[:n], classifier), 4)}

    def __call__(self, images: torch.Tensor) -> dict:
        f = classifier_features(images, self.classifier)
        p, r = precision_recall(self.ref_n, f)
        return {"fid": round(frechet_distance(*feature_stats(f), *self.ref_stats), 3), "precision": round(p, 4),
                "recall": round(r, 4), "confident": round(confident_share(images, self.classifier), 4)}


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
    out["pixel"]["state_numbers_per_sample"] = 28 * 28
    out["latent"]["state_numbers_per_sample"] = ldm.latent_ch * 7 * 7
    out["train_speedup"] = round(out["latent"]["train_images_per_s"] / out["pixel"]["train_images_per_s"], 2)
    out["activation_ratio"] = round(out["pixel"]["train_activation_MB"] / out["latent"]["train_activation_MB"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="samples per row")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps for both diffusion models")
    p.add_argument("--nll-n", type=int, default=100, help="test digits for the NLL bounds")
    p.add_argument("--nll-k", type=int, default=100, help="timesteps (strata) of the DDPM bound")
    p.add_argument("--reps", type=int, default=3, help="timed repeats (best kept) for the training speed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {PARTS}")
    p.add_argument("--guidance", default="1,2,3,5", help="guidance weights for the prompts part")
    for flag, default in (("pixel", "mnist-ddpm"), ("classifier", "mnist-classifier"), ("vae", "latent-vae"),
                          ("vae-beta1", "latent-vae-beta1"), ("ldm", "latent-ldm"), ("gan", "latent-gan")):
        p.add_argument(f"--{flag}", default=default, help=f"checkpoint name or exported .pt (default {default})")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    models = {k: load_model(getattr(args, k.replace("-", "_")))[0]
              for k in ("pixel", "classifier", "vae", "vae-beta1", "ldm", "gan")}
    pixel, classifier, vae, vae1, ldm, gan = models.values()
    schedule = make_schedule("linear", 1000)
    test_x, test_y = load_mnist("test")
    train_x, _ = load_mnist("train")
    perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed + 1))
    train_x = train_x[perm]
    N, seed = args.n, lambda k: torch.Generator().manual_seed(args.seed + k)  # noqa: E731
    res = {"benchmark": "latent", "n": N, "steps": args.steps, "device": "cpu", "threads": args.threads,
           "machine": platform.machine(), "checkpoints": {k: getattr(args, k.replace("-", "_")) for k in models}}
    judge = Judge(classifier, test_x, train_x, N)
    res["floor"] = judge.floor
    log(f"floor {judge.floor}")
    if "speed" in parts:
        res["speed"] = speed_part(pixel, ldm, vae, schedule, train_x, args)
        log(f"speed {res['speed']}")
    samples: dict[str, tuple[torch.Tensor, float, int]] = {}
    if parts & {"quality", "compare"}:
        with torch.no_grad():
            samples["pixel"] = (*timed(lambda: ddim_sample(eps_fn(pixel, schedule), schedule, (N, 1, 28, 28),
                                                           steps=args.steps, generator=seed(2))), args.steps)
            samples["latent"] = (*timed(lambda: sample_latent_digits(ldm, vae, schedule, [""] * N, steps=args.steps,
                                                                     generator=seed(3))), args.steps)
            names = [NUMBER_WORDS[i % 10] for i in range(N)]
            samples["latent_prompted"] = (*timed(lambda: sample_latent_digits(ldm, vae, schedule, names, w=1.0,
                                                                              steps=args.steps, generator=seed(4))), args.steps)
            samples["vae_beta1"] = (*timed(lambda: vae1.decode(torch.randn(N, vae1.latent_ch, 7, 7, generator=seed(5)))), 1)
            samples["vae_small_beta"] = (*timed(lambda: vae.decode(torch.randn(N, vae.latent_ch, 7, 7, generator=seed(6)))), 1)
            samples["gan"] = (*timed(lambda: gan.sample(N, seed(7))), 1)
    if "quality" in parts:
        res["quality"] = {}
        for k in ("pixel", "latent", "latent_prompted"):
            imgs, secs, nfe = samples[k]
            res["quality"][k] = {"seconds": round(secs, 2), "nfe": nfe, **judge(imgs)}
        acc = classifier_accuracy(samples["latent_prompted"][0], torch.arange(N) % 10, classifier)
        res["quality"]["latent_prompted"]["accuracy"] = round(acc, 4)
        res["quality"]["sampling_speedup"] = round(res["quality"]["pixel"]["seconds"] / res["quality"]["latent"]["seconds"], 2)
        log(f"quality {res['quality']}")
    if "autoencoder" in parts:
        res["autoencoder"] = {}
        for k, ae in (("latent-vae", vae), ("latent-vae-beta1", vae1)):
            with torch.no_grad():
                recon, mean, logvar = ae(test_x[:N])
                _, rec, kl = vae_loss(ae, test_x[:N], 0.0, seed(8))
                m, lv = ae.encode(train_x[:2000])
                z = reparameterize(m, lv, torch.randn(m.shape, generator=seed(9)))
            res["autoencoder"][k] = {"beta": ae.pretrained_info.get("settings", {}).get("beta"),
                                     "recon_mse_per_pixel": round(float((recon - test_x[:N]).pow(2).mean()), 5),
                                     "recon_sq_error_per_image": round(float(rec), 3), "kl_per_image_nats": round(float(kl), 2),
                                     "recon_accuracy": round(classifier_accuracy(recon, test_y[:N], classifier), 4),
                                     "latent_std": round(float(z.std()), 4), "scale_factor": round(latent_scale_factor(z), 5),
                                     **{f"recon_{a}": b for a, b in judge(recon).items()}}
        log(f"autoencoder {res['autoencoder']}")
    if "compare" in parts:
        nll_x = test_x[:args.nll_n]
        sig = {k: decoder_sigma(ae, train_x[:2000], seed(10)) for k, ae in (("vae_beta1", vae1), ("vae_small_beta", vae))}
        nll = {k: float(vae_elbo_bpd(ae, nll_x, sig[k], seed(11)).mean()) for k, ae in (("vae_beta1", vae1), ("vae_small_beta", vae))}
        t0 = time.perf_counter()
        nll["pixel"] = float(ddpm_elbo_bpd(eps_fn(pixel, schedule), schedule, nll_x, timesteps=args.nll_k,
                                           generator=seed(12)).mean())
        log(f"NLL bounds {nll} (DDPM bound {time.perf_counter() - t0:.0f} s)")
        labels = {"vae_beta1": "VAE (beta = 1), decode z ~ N(0, I)",
                  "vae_small_beta": "the LDM's autoencoder (beta = 1e-3), decode z ~ N(0, I)",
                  "gan": "GAN, one generator pass", "latent": "latent diffusion, DDIM-%d, empty prompt" % args.steps,
                  "pixel": "pixel diffusion (mnist-ddpm), DDIM-%d" % args.steps}
        res["compare"] = {"nll_n": args.nll_n, "nll_k": args.nll_k, "decoder_sigma": {k: round(v, 4) for k, v in sig.items()},
                          "rows": []}
        for k, label in labels.items():
            imgs, secs, nfe = samples[k]
            res["compare"]["rows"].append({"model": k, "label": label, "nfe": nfe + (1 if k == "latent" else 0),
                                           "seconds": round(secs, 3), "nll_bpd": round(nll[k], 3) if k in nll else None,
                                           **judge(imgs)})
        log(f"compare {res['compare']}")
    if "prompts" in parts:
        prompts = all_prompts()
        per = max(1, N // len(prompts))
        plist = [q for q in prompts for _ in range(per)]
        allowed = [set(prompt_digits(q)) for q in plist]
        res["prompts"] = {"n_per_prompt": per, "rows": []}
        for w in (float(v) for v in args.guidance.split(",")):
            imgs, secs = timed(lambda: sample_latent_digits(ldm, vae, schedule, plist, w=w, steps=args.steps,
                                                            generator=seed(13)))
            with torch.no_grad():
                pred = classifier(imgs).argmax(1).tolist()
            obey = sum(int(d in a) for d, a in zip(pred, allowed)) / len(plist)
            res["prompts"]["rows"].append({"w": w, "obeys_prompt": round(obey, 4), "seconds": round(secs, 2),
                                           "nfe": args.steps * (1 if w == 1.0 else 2), **judge(imgs)})
            log(f"prompts w={w}: {res['prompts']['rows'][-1]}")
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
