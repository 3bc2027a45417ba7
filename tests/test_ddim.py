import pytest
import torch

from diffcourse.data import toy2d
from diffcourse.metrics import sliced_wasserstein
from diffcourse.models import ToyMLP
from diffcourse.objectives import diffusion_loss, eps_fn
from diffcourse.samplers import ddpm_sample
from diffcourse.samplers.ddim import ddim_invert, ddim_sample, ddim_timesteps
from diffcourse.schedules import make_schedule
from diffcourse.training import train

GM = toy2d.mixture("8gaussians")


def exact_eps(schedule):
    def f(x, t):
        ab = float(schedule.alpha_bars[int(t[0])])
        return (-(1 - ab) ** 0.5 * GM.noised(ab).score(x)).to(x.dtype)
    return f


def test_spacings():
    assert ddim_timesteps(1000, 10, "leading") == list(range(0, 1000, 100))
    assert ddim_timesteps(1000, 10, "trailing")[-1] == 999
    # the default is trailing: sampling starts at T-1, where x_T ~ N(0, I) is true
    assert ddim_timesteps(1000, 10) == ddim_timesteps(1000, 10, "trailing") == list(range(99, 1000, 100))
    q = ddim_timesteps(1000, 20, "quadratic")
    assert q[0] == 0 and all(b > a for a, b in zip(q, q[1:]))
    assert (q[1] - q[0]) < (q[-1] - q[-2]), "quadratic spacing is dense at low noise"
    assert ddim_timesteps(50, 50, "trailing") == list(range(50))
    with pytest.raises(ValueError, match="spacing"):
        ddim_timesteps(1000, 10, "cubic")
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(10, 11)


def test_eta1_all_steps_matches_ddpm_in_distribution():
    s = make_schedule("cosine", T=200)
    f = exact_eps(s)
    data = GM.sample(3000, torch.Generator().manual_seed(0))
    x_ddim = ddim_sample(f, s, (3000, 2), steps=200, eta=1.0, generator=torch.Generator().manual_seed(1))
    x_ddpm = ddpm_sample(f, s, (3000, 2), generator=torch.Generator().manual_seed(2), variance="beta_tilde")
    floor = sum(sliced_wasserstein(GM.sample(3000, torch.Generator().manual_seed(k)), data) for k in range(3, 8)) / 5
    assert sliced_wasserstein(x_ddim, data) < 1.5 * floor
    assert sliced_wasserstein(x_ddpm, data) < 1.5 * floor
    assert torch.allclose(x_ddim.mean(0), x_ddpm.mean(0), atol=0.1)
    assert torch.allclose(x_ddim.std(0), x_ddpm.std(0), rtol=0.05)
    # and the eta=1 update with all steps is exactly DDPM's step with sigma^2 = beta_tilde
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
    a = ddim_sample(f, s, x.clone(), steps=200, eta=1.0, generator=torch.Generator().manual_seed(5))
    b = ddpm_sample(f, s, x.clone(), generator=torch.Generator().manual_seed(5), variance="beta_tilde")
    assert torch.allclose(a, b, atol=1e-4)


def test_eta0_is_deterministic_and_reaches_the_data():
    s = make_schedule("linear", T=1000)
    f = exact_eps(s)
    x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(6))
    a = ddim_sample(f, s, x_T.clone(), steps=50, eta=0.0, spacing="trailing", generator=torch.Generator().manual_seed(7))
    b = ddim_sample(f, s, x_T.clone(), steps=50, eta=0.0, spacing="trailing", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    data = GM.sample(2000, torch.Generator().manual_seed(9))
    floor = sum(sliced_wasserstein(GM.sample(2000, torch.Generator().manual_seed(k)), data) for k in range(10, 15)) / 5
    assert sliced_wasserstein(a, data) < 2 * floor  # a single draw of 2000 points: mode counts alone vary by ±6%
    within = (a.double() - GM.means[GM.responsibilities(a.double()).argmax(1)]).std().item()
    assert abs(within - GM.std) < 0.03, "samples sit on the modes with the right spread"


def test_inversion_round_trip_on_a_trained_2d_model():
    torch.manual_seed(0)
    s = make_schedule("cosine", T=200)
    model = ToyMLP(hidden=48, depth=1)
    r = train(model, lambda m, x, g: diffusion_loss(m, s, x, g), lambda g: toy2d.sample("moons", 128, g), 250,
              lr=2e-3, progress=False)
    f = eps_fn(r.ema_model, s)
    # leading spacing, as when this test was written: with the cosine schedule (T = 200) trailing spacing starts
    # at abar_199 ~ 6e-8, where x0_hat divides the network's error by sqrt(abar) (chapter 3's pitfall)
    x0 = ddim_sample(f, s, (200, 2), steps=50, spacing="leading", generator=torch.Generator().manual_seed(1))
    x_T = ddim_invert(f, s, x0, steps=50, spacing="leading")
    assert x_T.std() > 0.7, "inversion must land in noise space"
    rec = ddim_sample(f, s, x_T, steps=50, spacing="leading")
    err = (rec - x0).norm(dim=1).mean() / x0.norm(dim=1).mean()
    assert err < 0.05


def test_default_spacing_is_trailing_everywhere():
    import inspect

    from diffcourse.samplers.ddim import ddim_grid
    for fn in (ddim_timesteps, ddim_grid, ddim_sample, ddim_invert):
        assert inspect.signature(fn).parameters["spacing"].default == "trailing", fn.__name__
    s = make_schedule("linear", T=100)
    f = lambda x, t: 0.1 * x  # noqa: E731
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ddim_sample(f, s, x_T, steps=7), ddim_sample(f, s, x_T, steps=7, spacing="trailing"))
    assert torch.equal(ddim_invert(f, s, x_T, steps=7), ddim_invert(f, s, x_T, steps=7, spacing="trailing"))
