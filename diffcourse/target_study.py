r"""Chapter 2's study of the three training targets (ε, x₀, v) on the 2D 8-Gaussian mixture, over training seeds.

One seed trains the same `ToyMLP` with the 2D recipe (`TOY_DEFAULTS`: 1500 steps of 512 points) once per target,
on DDPM's linear schedule scaled to T = 200 (`study_schedule`), samples each model with ancestral DDPM from the same
start noise and sampler noise, and scores the samples against data sets shared by all targets of the seed (`score`),
so that the per-seed values of two targets are *paired*. ``benchmarks/targets2d.py`` runs the seeds and writes
``benchmarks/results/targets2d.json``; the lesson trains seed 0 live and reads the differences over all seeds with
`diffcourse.measure.seed_difference`.

Why not the recipe's own cosine schedule (T = 200): its clipped last step (β = 0.999, so :math:`1/\sqrt{\alpha}\approx 32`) multiplies
an ε-network's error in the first reverse step by about 32, while an x₀- or v-network's implied
:math:`\hat\varepsilon` there is :math:`x_t` itself — a difference between the targets that is the schedule's, not theirs.
"""
from __future__ import annotations

import torch

from .data import toy2d
from .metrics import gaussian_nll_2d, sw_floor_ratio
from .objectives import TARGETS, eps_fn
from .recipes.toy2d import train_toy_ddpm
from .samplers import ddpm_sample
from .schedules import NoiseSchedule, make_schedule, respace

__all__ = ["DATASET", "study_schedule", "reference_sets", "score", "sample_seed", "run_seed", "per_seed"]

DATASET = "8gaussians"


def study_schedule() -> NoiseSchedule:
    r"""DDPM's linear schedule on T = 200 steps: β from 5e-4 to 0.1, DDPM's 1e-4 … 0.02 times 1000/200, so that the
    shorter chain adds the same noise per unit of diffusion time and ends, like DDPM's, near
    :math:`\bar\alpha_T \approx 3\cdot10^{-5}` (chapter 1's rule: choose the betas for T). No clipped step (the
    largest β is 0.1, :math:`1/\sqrt{\alpha}\approx1.05`), and five times cheaper to sample than T = 1000."""
    return make_schedule("linear", T=200, beta_start=5e-4, beta_end=0.1)


def reference_sets(seed: int, n: int, pairs: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``pairs`` data sets of ``n`` points and as many independent ones for the floor, seeded by the training seed."""
    data = [toy2d.sample(DATASET, n, torch.Generator().manual_seed(10_000 + 100 * seed + k)) for k in range(pairs)]
    other = [toy2d.sample(DATASET, n, torch.Generator().manual_seed(20_000 + 100 * seed + k)) for k in range(pairs)]
    return data, other


def score(x: torch.Tensor, data: list[torch.Tensor], other: list[torch.Tensor]) -> dict:
    r"""``sw_ratio``: SW(samples, data) / SW(data', data), each a mean over the pairs (`sw_floor_ratio`; the samples
    split into as many sets as there are data sets); ``nll``: :math:`-\log p_\text{data}` of the samples, in nats."""
    ratio, _, _ = sw_floor_ratio(list(x.split(len(x) // len(data))), data, other)
    return {"sw_ratio": round(ratio, 4), "nll": round(gaussian_nll_2d(x), 4)}


def sample_seed(net: torch.nn.Module, schedule: NoiseSchedule, seed: int, n_total: int, target: str = "eps",
                variance: str = "beta", steps: int | None = None) -> torch.Tensor:
    """Ancestral DDPM from the seed's start noise and sampler noise; ``steps`` respaces the chain (`respace`)."""
    f = eps_fn(net, schedule, target=target)
    start = torch.randn(n_total, 2, generator=torch.Generator().manual_seed(30_000 + seed))
    g = torch.Generator().manual_seed(40_000 + seed)
    if steps is None:
        return ddpm_sample(f, schedule, start, generator=g, variance=variance)
    short, tau = respace(schedule, steps)
    return ddpm_sample(lambda x, i: f(x, tau.to(i.device)[i]), short, start, generator=g, variance=variance)


def run_seed(seed: int, n: int, pairs: int, short_steps: int) -> dict:
    """Every target of one training seed, and the ε-model's variants: its raw last-step weights (``eps_raw``),
    :math:`\\sigma_t^2=\\tilde\\beta_t` (``eps_beta_tilde``), and the chain respaced to ``short_steps`` with each
    variance (``eps_short_beta``, ``eps_short_beta_tilde``) — all from the same noise."""
    schedule = study_schedule()
    data, other = reference_sets(seed, n, pairs)
    row: dict = {"seed": seed}
    for target in TARGETS:
        result, _ = train_toy_ddpm(DATASET, target=target, seed=seed, schedule=schedule, progress=False)
        x = sample_seed(result.ema_model, schedule, seed, n * pairs, target)
        row[target] = {**score(x, data, other), "train_seconds": round(result.seconds, 1)}
        if target == "eps":
            variants = {"eps_raw": (result.model, {}), "eps_beta_tilde": (result.ema_model, dict(variance="beta_tilde")),
                        "eps_short_beta": (result.ema_model, dict(steps=short_steps)),
                        "eps_short_beta_tilde": (result.ema_model, dict(steps=short_steps, variance="beta_tilde"))}
            for name, (net, kw) in variants.items():
                row[name] = score(sample_seed(net, schedule, seed, n * pairs, **kw), data, other)
    return row


def per_seed(study: dict, run: str, metric: str) -> list[float]:
    """The values of ``metric`` (``sw_ratio`` or ``nll``) for ``run`` (a target or a variant), in seed order."""
    return [r[run][metric] for r in study["runs"]]
