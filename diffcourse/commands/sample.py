r"""``python -m diffcourse sample``: draw MNIST samples from a shipped (or exported) diffusion model.

Writes an ``.npz`` with ``images`` (float32, ``(N, 1, 28, 28)`` in [-1, 1]) and, for a
class-conditional model, ``labels`` (int64); prints the seconds taken and the number of
network evaluations per sample (NFE). With ``--guidance W`` a conditional model uses
classifier-free guidance,

.. math::  \hat\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + w\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big),

so ``w = 1`` is the plain conditional model, ``w = 0`` the unconditional one, and ``w > 1``
pushes harder towards the class (two network evaluations per step).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["register", "run", "parse_labels", "load_model", "generate", "SAMPLERS"]

SAMPLERS = ("ddpm", "ddim", "sde", "pc", "ode")


def parse_labels(spec: str, n: int, num_classes: int = 10) -> torch.Tensor:
    """``"0-9"`` → balanced labels ``0,1,…,9,0,1,…`` (n of them); ``"3"`` → all 3; ``"1,7"`` → alternating 1 and 7."""
    spec = spec.strip()
    try:
        if "-" in spec:
            lo, hi = (int(s) for s in spec.split("-"))
            values = list(range(lo, hi + 1))
        else:
            values = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--labels must look like '0-9', '3' or '1,7'; got {spec!r}.") from None
    if not values or min(values) < 0 or max(values) >= num_classes:
        raise ValueError(f"--labels {spec!r}: labels must lie in 0 … {num_classes - 1}.")
    return torch.tensor(values, dtype=torch.long).repeat((n + len(values) - 1) // len(values))[:n]


def load_model(name: str, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """A shipped checkpoint by name (hash-verified), or an exported ``.pt`` file by path; returns (model, metadata)."""
    from ..pretrained import available, checkpoint_info, load_export, load_pretrained
    from ..recipes.mnist import build_model

    path = Path(name)
    if path.suffix == ".pt" and path.exists():
        state = load_export(path)
        model = build_model(state["model"], state["config"])
        model.load_state_dict(state["state_dict"])
        meta = {k: v for k, v in state.items() if k != "state_dict"}
        meta.setdefault("schedule", {"name": state.get("settings", {}).get("schedule", "linear"),
                                     "T": state.get("settings", {}).get("T", 1000)})
        return model.to(device).eval().requires_grad_(False), meta
    if name not in available():
        raise ValueError(f"--model {name!r} is neither a shipped checkpoint ({', '.join(available())}) "
                         "nor an existing exported .pt file.")
    return load_pretrained(name, device), dict(checkpoint_info(name))


def _counting_eps_fn(model: torch.nn.Module, y: torch.Tensor | None, guidance: float | None,
                     counter: list[int]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The eps-function for the sampler; ``counter[0]`` counts network evaluations per sample."""
    null = getattr(getattr(model, "label", None), "null_label", None)

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if y is None:
            counter[0] += 1
            return model(x, t)
        if guidance is None or guidance == 1.0:
            counter[0] += 1
            return model(x, t, y)
        counter[0] += 2
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
        eps_c, eps_u = both.chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    return f


def generate(model: torch.nn.Module, schedule, n: int, *, sampler: str = "ddim", steps: int = 50, eta: float = 0.0,
             seed: int = 0, labels: torch.Tensor | None = None, guidance: float | None = None,
             device: torch.device | str = "cpu", batch_size: int = 500, clip_x0: float | None = 1.0,
             progress: bool = False, classifier: torch.nn.Module | None = None,
             classifier_scale: float | None = None) -> tuple[torch.Tensor, float, int]:
    """Draw ``n`` samples in batches; returns ``(images on CPU, seconds, NFE per sample)``.

    ``sampler`` is ``"ddim"`` (``steps`` evaluations, ``eta``), ``"ddpm"`` (all T steps, ancestral), or one of
    chapter 4's continuous-time samplers on the VP SDE of the schedule: ``"sde"`` (reverse-SDE Euler–Maruyama,
    ``steps`` evaluations), ``"pc"`` (predictor–corrector, one Langevin corrector after every step but the last: 2 × ``steps`` − 1) or ``"ode"``
    (probability-flow ODE with Heun's method: 2 × ``steps``).
    Noise comes from one CPU generator seeded with ``seed``, so the result repeats.
    With ``classifier`` (a noise-aware classifier, e.g. ``mnist-noisy-classifier``) and ``classifier_scale``
    an *unconditional* model is guided towards ``labels`` by classifier guidance (chapter 5).
    """
    from ..samplers.guidance import classifier_guided_eps_fn
    from ..samplers import sde as sde_samplers
    from ..samplers.ddim import ddim_sample
    from ..samplers.ddpm import ddpm_sample

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
    conditional = getattr(model, "label", None) is not None
    classifier_guided = classifier_scale is not None
    if classifier_guided and (conditional or classifier is None or labels is None):
        raise ValueError("Classifier guidance (--classifier-scale) needs an unconditional model (e.g. mnist-ddpm), "
                         "a noise-aware classifier (e.g. mnist-noisy-classifier) and labels.")
    if conditional and labels is None:
        raise ValueError("This model is class-conditional: give labels (e.g. --labels 0-9).")
    if not conditional and not classifier_guided and (labels is not None or guidance is not None):
        raise ValueError("This model is unconditional: --labels and --guidance need a conditional model (e.g. mnist-cfg), "
                         "or use --classifier-scale for classifier guidance.")
    g = torch.Generator().manual_seed(int(seed))
    out, nfe = [], 0
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        y = labels[start:start + b].to(device) if labels is not None else None
        counter = [0]
        f = _counting_eps_fn(model, None if classifier_guided else y, guidance, counter)
        if classifier_guided:
            f = classifier_guided_eps_fn(f, classifier, schedule, y, classifier_scale)
        shape = (b, 1, 28, 28)
        if sampler == "ddim":
            x = ddim_sample(f, schedule, shape, steps=steps, eta=eta, generator=g, device=device, progress=progress,
                            clip_x0=clip_x0)
        elif sampler == "ddpm":
            x = ddpm_sample(f, schedule, shape, generator=g, device=device, progress=progress, clip_x0=clip_x0)
        else:
            vp = sde_samplers.VPSDE(schedule)
            score = sde_samplers.score_from_eps_fn(f, vp)
            x_T = vp.prior_sample(shape, g)
            run_sde = {"sde": sde_samplers.reverse_sde_sample, "pc": sde_samplers.predictor_corrector_sample,
                       "ode": sde_samplers.probability_flow_ode_sample}[sampler]
            x = run_sde(score, vp, x_T, steps=steps, generator=g, device=device, progress=progress)
        out.append(x.clamp(-1, 1).float().cpu())
        nfe = counter[0]
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out), time.perf_counter() - t0, nfe


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample", help="draw MNIST samples from a diffusion model into an .npz file",
        description=__doc__.split("\n\n")[0].split(":", 1)[1].strip() + " Writes images (N,1,28,28) in [-1,1] "
                    "and labels for conditional models; prints seconds and NFE.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="shipped checkpoint (mnist-ddpm, mnist-cfg) or path to an exported .pt")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddim",
                   help="ddpm: ancestral, all T steps; ddim: --steps steps; sde: reverse-SDE Euler-Maruyama; "
                        "pc: predictor-corrector; ode: probability-flow ODE (Heun) — the last three from chapter 4")
    p.add_argument("--steps", type=int, default=50, help="steps of ddim/sde/pc/ode (ignored by ddpm, which uses all T)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic, 1 DDPM-like")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance weight w (eps_u + w (eps_c - eps_u)); conditional models only")
    p.add_argument("--classifier-scale", type=float, default=None,
                   help="classifier guidance scale s for an unconditional model, guided by --classifier towards --labels")
    p.add_argument("--classifier", default="mnist-noisy-classifier", help="noise-aware classifier for --classifier-scale")
    p.add_argument("--labels", default=None, help="'0-9' balanced, '3' one digit, '1,7' a list (conditional models; default 0-9)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.add_argument("--device", default=None, help="cpu, cuda, mps … (default: diffcourse.device.get_device())")
    p.add_argument("--batch-size", type=int, default=500, help="samples per batch")
    p.add_argument("--no-clip", action="store_true", help="do not clip the predicted x0 to [-1, 1] during sampling")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..device import get_device
    from ..schedules import make_schedule

    device = get_device(args.device)
    try:
        model, meta = load_model(args.model, device)
        conditional = getattr(model, "label", None) is not None
        classifier = None
        if args.classifier_scale is not None:
            classifier, _ = load_model(args.classifier, device)
            labels = parse_labels(args.labels or "0-9", args.n, 10)
        elif conditional:
            labels = parse_labels(args.labels or "0-9", args.n, model.label.num_classes)
        else:
            labels = None
        if not conditional and args.labels is not None and args.classifier_scale is None:
            raise ValueError(f"--model {args.model} is unconditional: --labels needs a conditional model (e.g. mnist-cfg) "
                             "or --classifier-scale for classifier guidance.")
        sched = meta.get("schedule") or {"name": "linear", "T": 1000}
        schedule = make_schedule(sched["name"], sched["T"])
        images, seconds, nfe = generate(model, schedule, args.n, sampler=args.sampler, steps=args.steps, eta=args.eta,
                                        seed=args.seed, labels=labels, guidance=args.guidance, device=device,
                                        batch_size=args.batch_size, clip_x0=None if args.no_clip else 1.0,
                                        progress=not args.no_progress, classifier=classifier,
                                        classifier_scale=args.classifier_scale)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"images": images.numpy().astype(np.float32)}
    if labels is not None:
        arrays["labels"] = labels.numpy().astype(np.int64)
    np.savez(out, **arrays)
    name = {"ddim": f"DDIM-{args.steps} (eta={args.eta})", "ddpm": f"DDPM-{schedule.T}", "sde": f"reverse SDE (EM) {args.steps} steps",
            "pc": f"predictor-corrector {args.steps} steps", "ode": f"probability-flow ODE (Heun) {args.steps} steps"}[args.sampler]
    print(f"{args.n} samples from {args.model} with {name}"
          + (f", guidance w={args.guidance}" if args.guidance is not None else "")
          + (f", classifier guidance s={args.classifier_scale}" if args.classifier_scale is not None else "")
          + f" in {seconds:.2f} s on {device} ({seconds / max(args.n, 1) * 1000:.1f} ms/sample); NFE={nfe}; wrote {out}")
    return 0
