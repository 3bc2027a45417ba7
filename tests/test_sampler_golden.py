"""The one-loop samplers give the same samples, bit for bit, as the five hand-written loops they replaced.

tests/data/sampler_golden.json was written *before* the refactor, at commit 78cb011, by running these cases
through the old samplers (the SDE samplers then took ``(score_from_eps_fn(eps_fn, VPSDE(schedule)), VPSDE(schedule))``
and DDIM's default spacing was "leading"), with ``json.dump({k: v.double().tolist()})``. The cases below run
the same inputs through today's signatures; the numbers must agree exactly.
"""
import json
from pathlib import Path

import pytest
import torch

from diffcourse.samplers import (SAMPLERS, ddim_invert, ddim_sample, ddpm_sample, predictor_corrector_sample,
                                 probability_flow_ode_sample, reverse_sde_sample)
from diffcourse.schedules import make_schedule

GOLDEN = json.loads((Path(__file__).parent / "data" / "sampler_golden.json").read_text())


def eps_fn(x, t):
    t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return torch.tanh(x * (1 + t / 1000)) * 0.5 + 0.1 * x


def cases():
    sch = make_schedule("linear", 1000)
    x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    x0 = torch.tanh(x_T)
    return {
        "ddpm_beta": lambda: ddpm_sample(eps_fn, sch, x_T, generator=g()),
        "ddpm_beta_tilde_clip": lambda: ddpm_sample(eps_fn, sch, x_T, generator=g(), variance="beta_tilde", clip_x0=1.0),
        "ddpm_traj100": lambda: ddpm_sample(eps_fn, sch, x_T, generator=g(), return_trajectory=True, trajectory_every=100)[1],
        "ddim10_leading": lambda: ddim_sample(eps_fn, sch, x_T, steps=10, spacing="leading"),
        "ddim10_trailing": lambda: ddim_sample(eps_fn, sch, x_T, steps=10, spacing="trailing"),
        "ddim10_quadratic_clip": lambda: ddim_sample(eps_fn, sch, x_T, steps=10, spacing="quadratic", clip_x0=1.0),
        "ddim10_eta05_traj": lambda: ddim_sample(eps_fn, sch, x_T, steps=10, eta=0.5, generator=g(), spacing="leading",
                                                 return_trajectory=True)[1],
        "ddim_invert10_traj": lambda: ddim_invert(eps_fn, sch, x0, steps=10, spacing="leading", return_trajectory=True)[1],
        "ddim_invert10_trailing": lambda: ddim_invert(eps_fn, sch, x0, steps=10, spacing="trailing"),
        "sde20": lambda: reverse_sde_sample(eps_fn, sch, x_T, steps=20, generator=g()),
        "pc10_traj": lambda: predictor_corrector_sample(eps_fn, sch, x_T, steps=10, generator=g(), return_trajectory=True)[1],
        "ode_heun10": lambda: probability_flow_ode_sample(eps_fn, sch, x_T, steps=10, method="heun"),
        "ode_rk4_5": lambda: probability_flow_ode_sample(eps_fn, sch, x_T, steps=5, method="rk4"),
        "ode_euler10": lambda: probability_flow_ode_sample(eps_fn, sch, x_T, steps=10, method="euler"),
        "ddpm_shape": lambda: ddpm_sample(eps_fn, sch, (3, 2), generator=g()),
        "pc_shape": lambda: predictor_corrector_sample(eps_fn, sch, (3, 2), steps=5, generator=g()),
    }


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_same_samples_as_before_the_refactor(name):
    got = cases()[name]()
    want = torch.tensor(GOLDEN[name], dtype=torch.float64)
    assert got.shape == want.shape
    # the same to round-off: bit-for-bit equality held on the machine that wrote GOLDEN, but another CPU's
    # vector units round differently (4e-16 in float64 here; 3e-4 after a 1000-step float32 chain)
    tol = 1e-10 if got.dtype == torch.float64 else 1e-3
    assert torch.allclose(got.double(), want, rtol=0, atol=tol), \
        f"{name}: max |diff| {float((got.double() - want).abs().max()):.3g}"


def test_ddpm_with_beta_tilde_is_ddim_with_eta_one_at_all_steps():
    sch = make_schedule("linear", 200)
    x_T = torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = ddpm_sample(eps_fn, sch, x_T, variance="beta_tilde", generator=torch.Generator().manual_seed(4))
    b = ddim_sample(eps_fn, sch, x_T, steps=200, eta=1.0, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_reverse_sde_is_predictor_corrector_without_corrector():
    sch = make_schedule("linear", 1000)
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a = reverse_sde_sample(eps_fn, sch, x_T, steps=30, generator=torch.Generator().manual_seed(6))
    b = predictor_corrector_sample(eps_fn, sch, x_T, steps=30, n_corrector=0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_registered_sampler_has_one_signature_and_counts_its_nfe(name):
    sch = make_schedule("linear", 50)
    calls = []

    def counting(x, t):
        calls.append(x.shape[0])
        return eps_fn(x, t)

    sampler = SAMPLERS[name]
    steps = 50 if name == "ddpm" else 7
    x, traj = sampler.run(counting, sch, (3, 2), steps=steps, generator=torch.Generator().manual_seed(0),
                          device="cpu", progress=False, return_trajectory=True, trajectory_every=1)
    assert x.shape == (3, 2) and torch.isfinite(x).all()
    assert traj.shape[0] == steps + 1 and torch.equal(traj[-1], x)
    assert len(calls) == sampler.nfe(steps)
