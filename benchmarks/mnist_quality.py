"""Quality of the shipped MNIST checkpoints, printed as JSON.

* ``classifier``: test accuracy of ``mnist-classifier`` (10 000 test digits);
* ``noisy_classifier``: accuracy of ``mnist-noisy-classifier`` on x_t = q_sample(x_0, t, eps) of the
  test digits at t = 0, 250, 500, 750, 999 (chance: 10 %), beside two closed-form references on the *same* x_t: the
  linear discriminant (``NoisyLDA``) and Bayes' rule over the training digits (``NoisyKernelBayes``, a ceiling
  at high noise); each difference with a paired bootstrap interval, and the design target read from them;
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

The guidance parts (``cfg``, ``cg``) draw class-balanced labels (``arange % 10``), so their FIDs are read against
a *matched* floor (``diffcourse.measure.matched_floor``): class-balanced training digits at the same N
(``floor_at_n``, 5 draws), and, for the unconditional rows (w = 0, s = 0, whose samples ignore the labels), training
digits in the data's own mix (``floor_data_mix_at_n``). ``--features FILE.pt`` keeps every setting's sample features
and the class the judge reads, so that ``--parts guidance`` (``diffcourse.guidance_study``) can read each difference
against its own noise (paired bootstrap) without sampling again.

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
                                NoisyKernelBayes, NoisyLDA)
from diffcourse.measure import balanced_labels, matched_floor
from diffcourse.schedules import make_schedule

PARTS = ("classifier", "noisy", "ddim", "ddpm", "cfg", "cg", "floors", "guidance")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@torch.no_grad()
def noisy_part(name: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
               schedule, device, seed: int) -> dict:
    """The noise-aware classifier, the closed-form LDA and Bayes' rule over the training digits, all three on the
    *same* noisy test digits at each t (one ε per t, as `metrics.lda_on_noisy` draws it), so that their differences
    are paired: each with a bootstrap interval over the test digits, and the design target read from them."""
    from diffcourse.guidance_study import noisy_classifier_differences

    nclf, _ = load_model(name, device)
    lda, kernel = NoisyLDA(x_train, y_train), NoisyKernelBayes(x_train, y_train)
    g = torch.Generator().manual_seed(seed)
    acc: dict = {"network": {}, "lda": {}, "bayes": {}}
    paired = {}
    for t in (0, 250, 500, 750, 999):
        xt = schedule.q_sample(x_test.double(), t, torch.randn(x_test.shape, generator=g, dtype=torch.float64))
        a = float(schedule.alpha_bars[t])
        correct = {"network": torch.cat([nclf(xb.float().to(device), torch.full((len(xb),), t, device=device)).argmax(1)
                                         .cpu() for xb in xt.split(1000)]) == y_test,
                   "lda": lda.logits(xt, a).argmax(1) == y_test, "bayes": kernel.logits(xt, a).argmax(1) == y_test}
        for k, c in correct.items():
            acc[k][str(t)] = float(c.double().mean())
        paired[str(t)] = noisy_classifier_differences({k: c.double() for k, c in correct.items()}, seed=seed)
        log(f"noisy t={t}: {[acc[k][str(t)] for k in acc]}")
    return {"accuracy_at_t": acc["network"], "lda_accuracy_at_t": acc["lda"], "kernel_bayes_accuracy_at_t": acc["bayes"],
            "lda": "closed-form linear discriminant on x_t (class means and pooled covariance of x_0, noised in closed form)",
            "kernel_bayes": "Bayes' rule if x_0 were one of the 60 000 training digits (metrics.NoisyKernelBayes): a "
                            "ceiling at high noise, a nearest-neighbour vote (no ceiling) at low noise",
            "paired": paired, "protocol": "all three readers on the same noisy test digits at each t; differences by "
                                          "a paired bootstrap over the test digits (2000 resamples)",
            "target_met_at_every_t": all(v["target_met"] for v in paired.values()),
            "chance": 0.1, "n_test": int(x_test.shape[0])}


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
    p.add_argument("--noisy-n", type=int, default=None, help="test digits for part noisy (default: all 10 000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default=",".join(PARTS), help=f"subset of {PARTS}")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=64)
    for name in ("ddpm", "cfg", "classifier", "noisy-classifier"):
        p.add_argument(f"--{name}", default=f"mnist-{name}", help=f"checkpoint name or exported .pt for mnist-{name}")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--features", default=None, help="keep the guidance parts' sample features here (.pt) for "
                                                    "--parts guidance; that part reads them back")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    device = get_device(args.device)
    n = args.n
    schedule = make_schedule("linear", 1000)
    x_test, y_test = load_mnist("test")
    x_train, y_train_all = load_mnist("train")
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
        # all test digits, or a seeded random subset (the test set is ordered: its halves come from different writers)
        idx = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(args.seed))[:args.noisy_n or len(x_test)]
        result["noisy_classifier"] = noisy_part(args.noisy_classifier, x_train, y_train_all, x_test[idx], y_test[idx],
                                                schedule, device, args.seed)
        log(f"noisy classifier: {result['noisy_classifier']}")
        save(result)

    test_feats = classifier_features(x_test, clf, device=device)
    ref_mu, ref_S = feature_stats(test_feats)
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

    kept: dict = torch.load(args.features) if args.features and "guidance" in parts and not parts & {"cfg", "cg"} \
        else {}

    def keep(key: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Store a setting's features and the digit the judge reads (for the paired differences of part guidance)."""
        if not args.features:
            return
        with torch.no_grad():
            read_as = torch.cat([clf(images[i:i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(images), 1000)])
        kept[key] = {"features": classifier_features(images, clf, device=device).float(), "read_as": read_as,
                     "labels": labels.clone()}
        torch.save(kept, args.features)

    def matched(k: int, labels: torch.Tensor | None) -> dict:
        """Real training digits drawn as the samples were (same N, same label mix) against the test digits."""
        return matched_floor(train_feats, y_train_all, test_feats, k, labels=labels, draws=5, seed=args.seed).as_dict()

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
            keep(f"cfg:{w}", imgs, labels)
            log(f"cfg w={w}: {entry}")
            save(result)
        # one definition of "best w" everywhere: the lowest FID, with the accuracy at that w beside it
        best = min(result["cfg"]["per_w"].items(), key=lambda kv: kv[1]["fid"])
        result["cfg"]["best_w"] = float(best[0])
        result["cfg"]["best_w_rule"] = "lowest FID"
        result["cfg"]["fid_at_best_w"], result["cfg"]["accuracy_at_best_w"] = best[1]["fid"], best[1]["accuracy"]
        # the samples' labels are balanced: so is the floor (the unconditional w = 0 row ignores them: data mix)
        fl, fl_data = matched(m, balanced_labels(m)), matched(m, None)
        result["cfg"].update(floor_at_n=fl["mean"], floor_at_n_std=fl["std"], floor_protocol="balanced", floor_matched=fl,
                             floor_data_mix_at_n=fl_data["mean"], floor_data_mix=fl_data)
        result["cfg"]["fid_at_best_w_over_floor"] = best[1]["fid"] / result["cfg"]["floor_at_n"]

    if "cg" in parts:
        model, _ = load_model(args.ddpm, device)
        nclf, _ = load_model(args.noisy_classifier, device)
        m = args.cg_n or n
        labels = torch.arange(m) % 10
        fl, fl_data = matched(m, balanced_labels(m)), matched(m, None)
        result["cg"] = {"n": m, "sampler": f"DDIM-{args.cg_steps}", "floor_at_n": fl["mean"], "floor_at_n_std": fl["std"],
                        "floor_protocol": "balanced", "floor_matched": fl, "floor_data_mix_at_n": fl_data["mean"],
                        "floor_data_mix": fl_data, "per_s": {}}
        for s in (float(v) for v in args.cg_s.split(",")):
            imgs, sec, nfe = generate(model, schedule, m, sampler="ddim", steps=args.cg_steps, seed=args.seed,
                                      labels=labels, classifier=nclf, classifier_scale=s, device=device,
                                      batch_size=args.batch_size, progress=True)
            entry = {"accuracy": classifier_accuracy(imgs, labels, clf), "fid": fid_to_test(imgs), "seconds": sec,
                     "nfe": nfe}
            result["cg"]["per_s"][str(s)] = entry
            keep(f"cg:{s}", imgs, labels)
            log(f"cg s={s}: {entry}")
            save(result)

    if "floors" in parts:  # the matched floors of the guidance sweeps alone (real data only, no sampling)
        for part, m in (("cfg", args.cfg_n or n), ("cg", args.cg_n or n)):
            fl, fl_data = matched(m, balanced_labels(m)), matched(m, None)
            result[f"{part}_floors"] = {"n": m, "floor_at_n": fl["mean"], "floor_at_n_std": fl["std"],
                                        "floor_protocol": "balanced", "floor_matched": fl,
                                        "floor_data_mix_at_n": fl_data["mean"], "floor_data_mix": fl_data}
            log(f"{part} floors: {result[f'{part}_floors']}")
            save(result)

    if "guidance" in parts:
        from diffcourse.guidance_study import guidance_differences
        result["guidance"] = guidance_differences(kept, train_feats, y_train_all, test_feats, seed=args.seed)
        log(f"guidance: {result['guidance']}")

    save(result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
