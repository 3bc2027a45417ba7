r"""`generate`: from a trained network to a batch of MNIST samples, the one way the CLI, the
benchmarks and the notebooks draw them.

``generate(model, schedule, n, sampler="ddim", steps=50, …)`` checks its inputs (`check_sampling_args`),
builds the ε-function (plain, classifier-free guided with weight ``guidance``, or classifier-guided
with scale ``classifier_scale``), runs a registered sampler (`diffcourse.samplers.SAMPLERS`) batch by
batch from one seeded generator, and counts the network evaluations per sample (NFE).
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Iterator

import torch
from torch import nn

from .flows import diffusion_velocity_fn, is_flow_model, velocity_fn
from .objectives import EpsFn, eps_fn
from .samplers import SAMPLERS
from .samplers.guidance import cfg_eps_fn, classifier_guided_eps_fn
from .schedules import NoiseSchedule

__all__ = ["generate", "check_sampling_args", "parse_labels", "count_evaluations"]


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


def _finite(name: str, value: float | None, low: float | None = None, high: float | None = None) -> None:
    if value is None:
        return
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        span = f" in [{low}, {high}]" if high is not None else (f" ≥ {low}" if low is not None else "")
        raise ValueError(f"{name} must be a finite number{span}, got {value}.")


def check_sampling_args(model: nn.Module, sampler: str, n: int, steps: int, eta: float, labels: torch.Tensor | None,
                        guidance: float | None, classifier: nn.Module | None, classifier_scale: float | None,
                        batch_size: int) -> None:
    """Raise a `ValueError` that says what to change for any input `generate` cannot honour."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}.")
    if n < 1 or batch_size < 1 or steps < 1:
        raise ValueError(f"n, batch size and steps must be positive integers, got n={n}, batch={batch_size}, steps={steps}.")
    _finite("eta", eta, 0.0, 1.0)
    if eta and sampler != "ddim":
        raise ValueError(f"eta is the DDIM sampler's option; the {sampler} sampler takes none (drop --eta).")
    _finite("the guidance weight w", guidance)
    _finite("the classifier scale s", classifier_scale)
    conditional = getattr(model, "label", None) is not None
    if classifier_scale is not None and (conditional or classifier is None or labels is None):
        raise ValueError("Classifier guidance (--classifier-scale) needs an unconditional model (e.g. mnist-ddpm), "
                         "a noise-aware classifier (e.g. mnist-noisy-classifier) and labels.")
    if conditional and labels is None:
        raise ValueError("This model is class-conditional: give labels (e.g. --labels 0-9).")
    if not conditional and classifier_scale is None and (labels is not None or guidance is not None):
        raise ValueError("This model is unconditional: --labels and --guidance need a conditional model (e.g. mnist-cfg), "
                         "or use --classifier-scale for classifier guidance.")
    velocity = SAMPLERS[sampler].input == "velocity"
    if is_flow_model(model) and not velocity:
        raise ValueError(f"This network was trained by flow matching: sample it with flow_euler or flow_heun, "
                         f"not {sampler}.")
    if velocity and (labels is not None or classifier_scale is not None):
        raise ValueError("The flow samplers take unconditional models here: drop --labels, --guidance and "
                         "--classifier-scale.")
    if labels is not None and len(labels) != n:
        raise ValueError(f"Give one label per sample: {len(labels)} labels for n={n}.")


@contextlib.contextmanager
def count_evaluations(model: nn.Module) -> Iterator[list[int]]:
    """Count the rows ``model`` is evaluated on (a forward hook): ``counter[0]`` / batch size = NFE per sample."""
    counter = [0]
    handle = model.register_forward_hook(lambda m, args, out: counter.__setitem__(0, counter[0] + out.shape[0]))
    try:
        yield counter
    finally:
        handle.remove()


def _guided_eps_fn(model: nn.Module, schedule: NoiseSchedule, y: torch.Tensor | None, guidance: float | None,
                   classifier: nn.Module | None, classifier_scale: float | None) -> EpsFn:
    if classifier_scale is not None:
        return classifier_guided_eps_fn(eps_fn(model, schedule), classifier, schedule, y, classifier_scale)
    if y is None:
        return eps_fn(model, schedule)
    return cfg_eps_fn(model, y, 1.0 if guidance is None else guidance)


def generate(model: nn.Module, schedule: NoiseSchedule, n: int, *, sampler: str = "ddim", steps: int = 50,
             eta: float = 0.0, seed: int = 0, labels: torch.Tensor | None = None, guidance: float | None = None,
             device: torch.device | str = "cpu", batch_size: int = 500, clip_x0: float | None = 1.0,
             progress: bool = False, classifier: nn.Module | None = None, classifier_scale: float | None = None,
             **options: Any) -> tuple[torch.Tensor, float, int]:
    """Draw ``n`` samples in batches; returns ``(images in [-1, 1] on the CPU, seconds, NFE per sample)``.

    ``sampler`` names a registered sampler: ``"ddim"`` (``steps``, ``eta``), ``"ddpm"`` (all T steps),
    or chapter 4's ``"sde"``, ``"pc"``, ``"ode"``, or chapter 10's ``"flow_euler"``, ``"flow_heun"`` (a flow network's
    velocity, or a diffusion model's read as a flow by `diffusion_velocity_fn`); ``options`` go to it (e.g. ``spacing``,
    ``times``). A conditional model needs ``labels`` and takes a classifier-free ``guidance`` weight w; an
    unconditional one is steered towards ``labels`` by ``classifier`` with scale ``classifier_scale``. ``clip_x0``
    clips the predicted x̂₀ in the DDPM and DDIM steps. All noise comes from one CPU generator seeded with ``seed``.
    """
    check_sampling_args(model, sampler, n, steps, eta, labels, guidance, classifier, classifier_scale, batch_size)
    if sampler == "ddim":
        options = {"eta": eta, "clip_x0": clip_x0, **options}
    elif sampler == "ddpm":
        options, steps = {"clip_x0": clip_x0, **options}, schedule.T
    g = torch.Generator().manual_seed(int(seed))
    out, nfe = [], 0
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        y = labels[start:start + b].to(device) if labels is not None else None
        if SAMPLERS[sampler].input == "velocity":  # chapter 10: a flow network, or a diffusion model read as a flow
            f = velocity_fn(model) if is_flow_model(model) else diffusion_velocity_fn(eps_fn(model, schedule), schedule)
        else:
            f = _guided_eps_fn(model, schedule, y, guidance, classifier, classifier_scale)
        with count_evaluations(model) as counter:
            x = SAMPLERS[sampler].run(f, schedule, (b, 1, 28, 28), steps=steps, generator=g, device=device,
                                      progress=progress, **options)
        out.append(x.clamp(-1, 1).float().cpu())
        nfe = counter[0] // b
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out), time.perf_counter() - t0, nfe
