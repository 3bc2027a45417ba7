"""Minimal DDIM: spacing, exactness on a point mass, determinism."""
import pytest
import torch

from diffcourse.samplers.ddim import ddim_sample, ddim_timesteps
from diffcourse.schedules import make_schedule


def test_leading_spacing():
    assert ddim_timesteps(1000, 50, "leading")[:3] == [0, 20, 40] and ddim_timesteps(1000, 50, "leading")[-1] == 980
    assert ddim_timesteps(10, 10, "leading") == ddim_timesteps(10, 10) == list(range(10))


def test_trailing_spacing_is_the_default():
    assert ddim_timesteps(1000, 50)[:3] == [19, 39, 59] and ddim_timesteps(1000, 50)[-1] == 999
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


def test_ddim_recovers_point_mass_exactly():
    # for x0 = c the true eps is (x_t - sqrt(abar) c) / sqrt(1 - abar): deterministic DDIM lands on c
    s = make_schedule("linear", 1000)
    c = torch.tensor([0.5, -0.25])

    def eps(x, t):
        a = s.extract(s.alpha_bars, t, x)
        return (x - a.sqrt() * c) / (1 - a).sqrt()

    g = torch.Generator().manual_seed(0)
    out = ddim_sample(eps, s, (16, 2), steps=10, generator=g)
    assert torch.allclose(out, c.expand(16, 2), atol=1e-4)
    out1 = ddim_sample(eps, s, (16, 2), steps=10, eta=1.0, generator=g)
    assert torch.allclose(out1, c.expand(16, 2), atol=1e-3)


def test_ddim_deterministic_and_trajectory():
    s = make_schedule("linear", 100)
    eps = lambda x, t: 0.1 * x  # noqa: E731
    a = ddim_sample(eps, s, (4, 3), steps=5, generator=torch.Generator().manual_seed(1))
    b, traj = ddim_sample(eps, s, (4, 3), steps=5, generator=torch.Generator().manual_seed(1), return_trajectory=True)
    assert torch.equal(a, b) and traj.shape == (6, 4, 3) and torch.equal(traj[-1], b)
