"""Quality of the shipped MNIST checkpoints, printed as JSON.

* ``classifier``: test accuracy of ``mnist-classifier`` (10 000 test digits);
* ``noisy_classifier``: accuracy of ``mnist-noisy-classifier`` on x_t = q_sample(x_0, t, eps) of the
  test digits at t = 0, 250, 500, 750, 999 (chance: 10 %), beside two closed-form references on x_t: the
  linear discriminant (``NoisyLDA``) and Bayes' rule over the training digits (``NoisyKernelBayes``, a ceiling
  at high noise);
* ``floor``: FID (``mnist-classifier`` penultimate features) of N random *training* digits vs the
  10 000 test digits — the real-vs-real floor at the same N (mean of ``--floor-draws`` draws);
* ``ddim50``: ``mnist-ddpm`` with DDIM-50 (eta=0), N samples: FID vs the test set, seconds;
* ``ddpm1000``: ``mnist-ddpm`` with ancestral DDPM-1000 on ``--ddpm-n`` samples (default N; on a CPU
  use fewer), its FID and the FID of the first ``--ddpm-n`` DDIM-50 samples and the floor at that N;
* ``cfg``: ``mnist-cfg`` with DDIM-50 at each guidance weight w (eps_u + w (eps_c - eps_u)), balanced
  labels: the fraction classified as the requested digit, FID vs the test set, seconds;
* ``cg``: classifier guidance (chapter 5) — ``mnist-ddpm`` guided by ``mnist-noisy-classifier`` at each
  scale s, DDIM with ``--cg-steps`` steps, balanced labels: accuracy, FID vs the test set and the floor at
  that N, seconds. (s = 0 is the unconditional model: accuracy ≈ 10 %.)

Run:  DIFFCOURSE_DATA_DIR=… python benchmarks/mnist_quality.py [--n 2000] [--ddpm-n 200] [--out FILE.json]
Checkpoints are the shipped ones unless paths to exported ``.pt`` files are given (``--ddpm PATH`` …).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from diffcourse.pretrained import load_model
from diffcourse.sampling import generate
from diffcourse.data.mnist import load_mnist
from diffcourse.device import get_device
from diffcourse.metrics import (classifier_accuracy, classifier_features, confident_share, feature_stats, frechet_distance,
                                kernel_bayes_on_noisy, lda_on_noisy)
from diffcourse.schedules import make_schedule

PARTS = ("classifier", "noisy", "ddim", "ddpm", "cfg", "cg")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@torch.no_grad()
def noisy_accuracy(model: torch.nn.Module, x_t: torch.Tensor, y: torch.Tensor, t: int, device, batch: int = 1000) -> float:
    """Accuracy of the time-conditioned classifier on ``x_t``, all at timestep ``t``."""
    correct = 0
    for i in range(0, x_t.shape[0], batch):
        xb = x_t[i:i + batch].to(device)
        correct += int((model(xb, torch.full((xb.shape[0],), t, device=device)).argmax(1).cpu() == y[i:i + batch]).sum())
    return correct / x_t.shape[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="samples per sampler")
    p.add_argument("--ddpm-n", type=int, default=None, help="samples for DDPM-1000 (default --n)")
    p.add_argument("--cfg-n", type=int, default=None, help="samples per guidance weight (default --n)")
    p.add_argument("--cfg-w", default="0,1,1.25,1.5,2,3,5", help="guidance weights, comma separated")
    p.add_argument("--cg-n", type=int, default=None, help="samples per classifier-guidance scale (default --n)")
    p.add_argument("--cg-s", default="0,1,2,3,5,10", help="classifier-guidance scales, comma separated")
    p.add_argument("--cg-steps", type=int, default=50, help="DDIM steps for classifier guidance")
    p.add_argument("--floor-draws", type=int, default=3, help="independent real draws averaged for the floor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {PARTS}")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=64)
    for name in ("ddpm", "cfg", "classifier", "noisy-classifier"):
        p.add_argument(f"--{name}", default=f"mnist-{name}", help=f"checkpoint name or exported .pt for mnist-{name}")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    device = get_device(args.device)
    n = args.n
    schedule = make_schedule("linear", 1000)
    x_test, y_test = load_mnist("test")
    x_train, _ = load_mnist("train")
    result: dict = {"device": str(device), "threads": torch.get_num_threads(), "n": n, "seed": args.seed,
                    "checkpoints": {k: getattr(args, k.replace("-", "_")) for k in ("ddpm", "cfg", "classifier",
                                                                                  "noisy-classifier")}}

    def save(res: dict) -> None:  # rewritten after every part, so a long run can be read (or cut) midway
        if args.out:
            with open(args.out, "w") as fh:
                fh.write(json.dumps(res, indent=2) + "\n")

    clf, _ = load_model(args.classifier, device)
    if "classifier" in parts:
        result["classifier"] = {"test_accuracy": classifier_accuracy(x_test, y_test, clf), "n_test": int(x_test.shape[0])}
        log(f"classifier: {result['classifier']}")
        save(result)
    if "noisy" in parts:
        nclf, _ = load_model(args.noisy_classifier, device)
        g = torch.Generator().manual_seed(args.seed)
        eps = torch.randn(x_test.shape, generator=g)
        ts = (0, 250, 500, 750, 999)
        y_train = load_mnist("train")[1]
        lda = lda_on_noisy(x_train, y_train, x_test, y_test, schedule, ts, generator=torch.Generator().manual_seed(args.seed))
        # the same noisy test digits as the LDA (same seed, same timesteps)
        kernel = kernel_bayes_on_noisy(x_train, y_train, x_test, y_test, schedule, ts,
                                       generator=torch.Generator().manual_seed(args.seed))
        result["noisy_classifier"] = {
            "accuracy_at_t": {str(t): noisy_accuracy(nclf, schedule.q_sample(x_test, t, eps), y_test, t, device) for t in ts},
            "lda_accuracy_at_t": {str(t): a for t, a in lda.items()},
            "lda": "closed-form linear discriminant on x_t (class means and pooled covariance of x_0, noised in closed form)",
            "kernel_bayes_accuracy_at_t": {str(t): a for t, a in kernel.items()},
            "kernel_bayes": "Bayes' rule if x_0 were one of the 60 000 training digits (metrics.NoisyKernelBayes): a ceiling "
                            "at high noise, a nearest-neighbour vote (no ceiling) at low noise",
            "chance": 0.1, "n_test": int(x_test.shape[0])}
        log(f"noisy classifier: {result['noisy_classifier']}")
        save(result)

    ref_mu, ref_S = feature_stats(classifier_features(x_test, clf, device=device))
    train_feats = classifier_features(x_train, clf, device=device)

    def fid_to_test(images: torch.Tensor) -> float:
        return frechet_distance(*feature_stats(classifier_features(images, clf, device=device)), ref_mu, ref_S)

    def floor(k: int) -> dict:
        g = torch.Generator().manual_seed(args.seed + 1)
        vals = [frechet_distance(*feature_stats(train_feats[torch.randperm(train_feats.shape[0], generator=g)[:k]]),
                                 ref_mu, ref_S) for _ in range(args.floor_draws)]
        mean = sum(vals) / len(vals)
        std = (sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1)) ** 0.5
        return {"n": k, "fid_mean": mean, "fid_std": std, "fid_draws": vals}

    result["real_confident_share"] = confident_share(x_test, clf)
    result["reference"] = "MNIST test set (10000 images), features: mnist-classifier penultimate layer (128-d)"
    result["floor"] = floor(n)
    log(f"floor: {result['floor']}")
    save(result)

    ddim_images = None
    if "ddim" in parts or "ddpm" in parts:
        model, _ = load_model(args.ddpm, device)
        m = args.ddpm_n or n
        # without the "ddim" part, DDIM-50 is drawn only for the DDPM comparison (the same m samples, the same seed)
        k = n if "ddim" in parts else m
        ddim_images, sec, nfe = generate(model, schedule, k, sampler="ddim", steps=50, seed=args.seed, device=device,
                                         batch_size=args.batch_size, progress=True)
        ddim_seconds_per_sample = sec / k
        if "ddim" in parts:
            f = fid_to_test(ddim_images)
            result["ddim50"] = {"n": n, "fid": f, "fid_over_floor": f / result["floor"]["fid_mean"], "seconds": sec,
                                "seconds_per_sample": sec / n, "nfe": nfe,
                                "confident_share": confident_share(ddim_images, clf)}
            log(f"ddim50: {result['ddim50']}")
            save(result)
        if "ddpm" in parts:
            imgs, sec, nfe = generate(model, schedule, m, sampler="ddpm", seed=args.seed, device=device,
                                      batch_size=args.batch_size, progress=True)
            fl = floor(m) if m != n else result["floor"]
            f = fid_to_test(imgs)
            f_ddim = fid_to_test(ddim_images[:m])
            result["ddpm1000"] = {"n": m, "fid": f, "confident_share": confident_share(imgs, clf), "floor_at_n": fl["fid_mean"], "fid_over_floor": f / fl["fid_mean"],
                                  "ddim50_fid_at_n": f_ddim, "ddim50_fid_over_ddpm1000_fid": f_ddim / f,
                                  "seconds": sec, "seconds_per_sample": sec / m, "nfe": nfe,
                                  "ddim50_speedup_per_sample": (sec / m) / ddim_seconds_per_sample}
            log(f"ddpm1000: {result['ddpm1000']}")
            save(result)

    if "cfg" in parts:
        model, _ = load_model(args.cfg, device)
        m = args.cfg_n or n
        labels = torch.arange(m) % 10
        result["cfg"] = {"n": m, "sampler": "DDIM-50", "per_w": {}}
        for w in (float(s) for s in args.cfg_w.split(",")):
            imgs, sec, nfe = generate(model, schedule, m, sampler="ddim", steps=50, seed=args.seed, labels=labels,
                                      guidance=w, device=device, batch_size=args.batch_size, progress=True)
            acc = classifier_accuracy(imgs, labels, clf)
            entry = {"accuracy": acc, "fid": fid_to_test(imgs), "confident_share": confident_share(imgs, clf),
                     "seconds": sec, "nfe": nfe}
            result["cfg"]["per_w"][str(w)] = entry
            log(f"cfg w={w}: {entry}")
            save(result)
        # one definition of "best w" everywhere: the lowest FID, with the accuracy at that w beside it
        best = min(result["cfg"]["per_w"].items(), key=lambda kv: kv[1]["fid"])
        result["cfg"]["best_w"] = float(best[0])
        result["cfg"]["best_w_rule"] = "lowest FID"
        result["cfg"]["fid_at_best_w"], result["cfg"]["accuracy_at_best_w"] = best[1]["fid"], best[1]["accuracy"]
        result["cfg"]["floor_at_n"] = floor(m)["fid_mean"] if m != n else result["floor"]["fid_mean"]
        result["cfg"]["fid_at_best_w_over_floor"] = best[1]["fid"] / result["cfg"]["floor_at_n"]

    if "cg" in parts:
        model, _ = load_model(args.ddpm, device)
        nclf, _ = load_model(args.noisy_classifier, device)
        m = args.cg_n or n
        labels = torch.arange(m) % 10
        result["cg"] = {"n": m, "sampler": f"DDIM-{args.cg_steps}", "floor_at_n": floor(m)["fid_mean"], "per_s": {}}
        for s in (float(v) for v in args.cg_s.split(",")):
            imgs, sec, nfe = generate(model, schedule, m, sampler="ddim", steps=args.cg_steps, seed=args.seed,
                                      labels=labels, classifier=nclf, classifier_scale=s, device=device,
                                      batch_size=args.batch_size, progress=True)
            entry = {"accuracy": classifier_accuracy(imgs, labels, clf), "fid": fid_to_test(imgs), "seconds": sec,
                     "nfe": nfe}
            result["cg"]["per_s"][str(s)] = entry
            log(f"cg s={s}: {entry}")
            save(result)

    save(result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
