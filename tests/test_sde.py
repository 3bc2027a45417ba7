import math

import pytest
import torch

from diffcourse.data import toy2d
from diffcourse.metrics import sliced_wasserstein
from diffcourse.samplers.sde import (VESDE, VPSDE, bits_per_dim, euler_maruyama, ode_likelihood,
                                     predictor_corrector_sample, probability_flow_ode_sample,
                                     pf_ode_step, reverse_sde_sample, sample_loop, score_from_eps_fn, time_grid)
from diffcourse.schedules import make_schedule

GM = toy2d.mixture("8gaussians")


def exact_vp_score(sde):
    def score(x, t):
        ab = sde.alpha_bar(t)
        return torch.cat([GM.noised(float(a)).score(xi[None]) for a, xi in zip(ab, x)]).to(x.dtype) if len(set(ab.tolist())) > 1 \
            else GM.noised(float(ab[0])).score(x).to(x.dtype)
    return score


def test_vp_sde_matches_discrete_schedule_on_grid():
    s = make_schedule("linear", T=1000)
    sde = VPSDE(s)
    t = (torch.tensor([0, 99, 499, 999]) + 1) / 1000
    assert torch.allclose(sde.log_alpha_bar(t), s.alpha_bars[[0, 99, 499, 999]].log(), rtol=1e-3, atol=1e-4)
    # beta(t) = -T log(alpha_i) ~ T beta_i: from 0.1 to 20 for the DDPM linear schedule
    assert math.isclose(float(sde.beta(torch.tensor([1e-4]))), 0.1, rel_tol=1e-3)
    assert math.isclose(float(sde.beta(torch.tensor([1.0]))), -1000 * math.log(1 - 0.02), rel_tol=1e-9)
    assert (sde.beta(torch.linspace(0, 1, 5000, dtype=torch.float64)).diff().abs() < 0.005).all(), "beta(t) is continuous (a step function would jump by 0.02)"
    # d/dt log alpha_bar = -beta
    tt = torch.tensor([0.3004], dtype=torch.float64)
    h = 1e-4
    deriv = (sde.log_alpha_bar(tt + h) - sde.log_alpha_bar(tt - h)) / (2 * h)
    assert math.isclose(float(deriv), -float(sde.beta(tt)), rel_tol=1e-6)


def test_score_from_eps_conversion():
    sde = VPSDE(make_schedule("linear", T=100))
    eps = torch.randn(4, 2)
    score = score_from_eps_fn(lambda x, t: eps, sde)
    t = torch.full((4,), 0.5, dtype=torch.float64)
    assert torch.allclose(score(torch.zeros(4, 2), t), -eps / math.sqrt(1 - float(sde.alpha_bar(t[:1]))), atol=1e-6)


def test_euler_maruyama_ou_stationary_variance():
    """dx = -theta x dt + sigma dW has stationary variance sigma^2 / (2 theta)."""
    theta, sigma = 2.0, 1.5
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(50_000, 1, dtype=torch.float64)
    times = torch.linspace(0, 5, 2001, dtype=torch.float64)
    x = euler_maruyama(lambda x, t: -theta * x, lambda t: torch.full_like(t, sigma), x, times, g)
    assert abs(x.var().item() - sigma**2 / (2 * theta)) < 0.02
    assert abs(x.mean().item()) < 0.02


def test_ode_likelihood_of_standard_gaussian_model():
    """Data N(0, I) under the VP SDE stays N(0, I); with score -x the ODE velocity is 0 and the
    likelihood must equal the analytic log-density."""
    sde = VPSDE(make_schedule("linear", T=1000))
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ll = ode_likelihood(lambda x, t: -x, sde, x, steps=20, exact_trace=True)
    ref = -0.5 * (x**2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(ll, ref, atol=1e-8)


@pytest.mark.parametrize("exact", [True, False])
def test_ode_likelihood_of_scaled_gaussian(exact):
    """Data N(0, s0^2 I): p_t = N(0, (ab s0^2 + 1 - ab) I), score known; the ODE is non-trivial here."""
    s0 = 0.5
    sde = VPSDE(make_schedule("linear", T=1000))

    def score(x, t):
        ab = sde.alpha_bar(t).to(x.dtype).reshape(-1, 1)
        return -x / (ab * s0**2 + 1 - ab)

    x = s0 * torch.randn(400, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ll = ode_likelihood(score, sde, x, steps=100, method="rk4", t_eps=1e-5, exact_trace=exact,
                        generator=torch.Generator().manual_seed(3))
    ref = -0.5 * (x**2).sum(1) / s0**2 - math.log(2 * math.pi * s0**2)
    if exact:
        assert torch.allclose(ll, ref, atol=2e-3)
    else:  # Hutchinson is unbiased: close on average (for an isotropic Jacobian it is even exact)
        assert abs((ll - ref).mean().item()) < 2e-3


def test_ode_likelihood_in_high_dimension_with_few_steps():
    """MNIST-like: D = 784, data sharper than the noise at t_eps (s0 = 0.002, like a dequantised pixel), 50 Heun
    steps from t_eps = 1e-3. The divergence grows like D/t near t = 0; the default geometric grid integrates it
    to within a few hundredths of a bit per dimension, while even steps in t overshoot by bits per dimension."""
    s0, D = 0.002, 784
    sde = VPSDE(make_schedule("linear", T=1000))

    def score(x, t):
        ab = sde.alpha_bar(t).to(x.dtype).reshape(-1, 1)
        return -x / (ab * s0**2 + 1 - ab)

    x = s0 * torch.randn(4, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # p_{t_eps} is what the ODE measures: N(0, (ab s0^2 + 1 - ab) I) at t_eps
    ab = sde.alpha_bar(torch.tensor([1e-3], dtype=torch.float64)).item()
    var = ab * s0**2 + 1 - ab
    ref = -0.5 * (x**2).sum(1) / var - 0.5 * D * math.log(2 * math.pi * var)
    per_dim = lambda ll: ((ll - ref) / (D * math.log(2))).abs().max().item()  # error in bits per dimension
    ll = ode_likelihood(score, sde, x, steps=50, method="heun", t_eps=1e-3, exact_trace=False,
                        generator=torch.Generator().manual_seed(3))
    assert per_dim(ll) < 0.05
    ll_uniform = ode_likelihood(score, sde, x, steps=50, method="heun", t_eps=1e-3, spacing="uniform",
                                generator=torch.Generator().manual_seed(3))
    assert per_dim(ll_uniform) > 1.0  # why the default is geometric


def test_ode_likelihood_on_mixture_matches_true_density():
    sde = VPSDE(make_schedule("linear", T=1000))
    x = GM.sample(64, torch.Generator().manual_seed(4)).double()
    ll = ode_likelihood(exact_vp_score(sde), sde, x, steps=200, method="rk4", t_eps=1e-4, exact_trace=True)
    ref = GM.log_prob(x)
    assert (ll - ref).abs().mean() < 0.05


def eps_from_score(score, sde):
    """The ε-function whose score (through `score_from_eps_fn`) is exactly ``score``: ε = −σ(t)·s(x, t), t = (i+1)/T."""
    def eps(x, idx):
        t = (torch.as_tensor(idx, dtype=torch.float64) + 1) / sde.N
        return -sde.marginal_std(t).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1))) * score(x, t)
    return eps


def test_samplers_shapes_determinism_and_quality_with_exact_score():
    schedule = make_schedule("linear", T=1000)
    sde = VPSDE(schedule)
    eps = eps_from_score(exact_vp_score(sde), sde)
    data = GM.sample(1000, torch.Generator().manual_seed(5))
    floor = sliced_wasserstein(GM.sample(1000, torch.Generator().manual_seed(6)), data)
    g = lambda: torch.Generator().manual_seed(7)
    x_ode = probability_flow_ode_sample(eps, schedule, (1000, 2), steps=50, generator=g())
    x_ode2 = probability_flow_ode_sample(eps, schedule, (1000, 2), steps=50, generator=g())
    assert x_ode.shape == (1000, 2) and torch.equal(x_ode, x_ode2), "the ODE sampler is deterministic given x_1"
    x_em = reverse_sde_sample(eps, schedule, (1000, 2), steps=200, generator=g())
    x_pc, traj = predictor_corrector_sample(eps, schedule, (1000, 2), steps=100, generator=g(), return_trajectory=True)
    assert traj.shape == (101, 1000, 2)
    assert not torch.equal(x_em, reverse_sde_sample(eps, schedule, (1000, 2), steps=200,
                                                    generator=torch.Generator().manual_seed(8)))
    for x in (x_ode, x_em, x_pc):
        assert sliced_wasserstein(x, data) < 2 * floor + 0.05


def test_ve_sde_sampling_with_exact_score():
    sde = VESDE(0.01, 10.0)

    def score(x, t):
        sig = float(sde.sigma(t[:1]))
        return toy2d.GaussianMixture(GM.means, math.sqrt(GM.std**2 + sig**2)).score(x).to(x.dtype)

    x_1 = sde.prior_sample((800, 2), torch.Generator().manual_seed(0))
    x = sample_loop(pf_ode_step(score, sde, "rk4"), time_grid(100, 1e-3), x_1)
    data = GM.sample(800, torch.Generator().manual_seed(1))
    floor = sliced_wasserstein(GM.sample(800, torch.Generator().manual_seed(2)), data)
    assert sliced_wasserstein(x, data) < 2 * floor + 0.05


def test_bits_per_dim_of_uniform_is_8_bits():
    # a uniform density on [-1, 1]^D has log p = -D log 2: exactly 8 bits per 256-level dimension
    D = 784
    assert math.isclose(float(bits_per_dim(torch.tensor(-D * math.log(2.0)), D)), 8.0, rel_tol=1e-12)


def test_bad_method_message():
    sde = VPSDE(make_schedule("linear", T=10))
    with pytest.raises(ValueError, match="heun"):
        probability_flow_ode_sample(lambda x, t: x, sde.schedule, (2, 2), steps=2, method="midpoint")


def test_ode_bpd_floor_is_the_density_of_the_sharpest_data_and_a_lower_bound_for_any_other():
    """p_{t_eps} of data on the grey levels is a Gaussian mixture over levels; its bits/dim equal the floor when each
    pixel sits on its nearest level with certainty, and exceed it for any other distribution over the levels."""
    from diffcourse.samplers.sde import grey_levels, ode_bpd_floor

    sde, t_eps, D = VPSDE(make_schedule("linear", T=1000)), 1e-3, 40
    ab = float(sde.alpha_bar(torch.tensor([t_eps])))
    sigma, centres = math.sqrt(1 - ab), math.sqrt(ab) * grey_levels()
    g = torch.Generator().manual_seed(0)
    k = torch.randint(0, 256, (3, D), generator=g)
    x = (k + torch.rand(3, D, generator=g, dtype=torch.float64)) / 128 - 1            # dequantised, in [-1, 1]
    log_normal = -0.5 * ((x[..., None] - centres) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))  # (3, D, 256)
    floor = ode_bpd_floor(x, sde, t_eps)
    sharpest = bits_per_dim(log_normal.max(-1).values.sum(1), D)
    assert torch.allclose(floor, sharpest, atol=1e-9)
    weights = torch.distributions.Dirichlet(torch.full((256,), 0.3)).sample((D,)).double()  # any P per pixel
    other = bits_per_dim(torch.logsumexp(log_normal + weights.log(), -1).sum(1), D)
    assert (other > floor).all()
    assert 1.6 < floor.mean().item() < 1.9, "sigma(1e-3) = 0.01 is wider than a bin of 2/256: a floor of ~1.7 bits/dim"


def test_decoder_bpd_floor_matches_the_gaussian_mass_of_one_bin():
    from diffcourse.samplers.sde import decoder_bpd_floor

    std, half = 0.01, 1 / 255
    normal = torch.distributions.Normal(0.0, 1.0)
    interior = -math.log2(float(2 * normal.cdf(torch.tensor(half / std)) - 1))
    edge = -math.log2(float(normal.cdf(torch.tensor(half / std))))
    x = torch.tensor([[[[-1.0, 1.0, 127 / 127.5 - 1, 3 / 127.5 - 1]]]])
    assert math.isclose(float(decoder_bpd_floor(x, std)), (2 * edge + 2 * interior) / 4, rel_tol=1e-6)
    assert 1.6 < interior < 1.8 and 0.5 < edge < 0.7


def test_probability_flow_ode_encode_inverts_the_sampler():
    """With the exact mixture score, decoding then encoding returns the starting noise up to the solvers' error;
    with 2 steps it does not (so the check can fail)."""
    from diffcourse.samplers.sde import probability_flow_ode_encode

    s = make_schedule("linear", T=1000)
    eps = eps_from_score(exact_vp_score(VPSDE(s)), VPSDE(s))
    x1 = torch.randn(200, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    errors = []
    for steps in (2, 100):
        x0 = probability_flow_ode_sample(eps, s, x1.clone(), steps=steps, method="rk4")
        errors.append((probability_flow_ode_encode(eps, s, x0, steps=steps, method="rk4") - x1).norm(dim=1).median().item())
    assert errors[1] < 0.02 < errors[0]


def test_sliced_wasserstein_of_unequal_sets_is_the_exact_quantile_integral():
    """unequal=True: equal sets give the sorted-value formula; in 1D {0, 1} vs {0, 0.5, 1} the quantile functions
    differ by 0.5 on two sixths of [0, 1] (W2^2 = 1/12); a set and its own copy twice over are at distance 0; and
    by default unequal sizes still raise."""
    import pytest

    from diffcourse.metrics import sliced_wasserstein

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 0.5
    assert sliced_wasserstein(x, y, unequal=True) == sliced_wasserstein(x, y)
    a, b = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [0.5], [1.0]])
    assert abs(sliced_wasserstein(a, b, n_projections=1, unequal=True) ** 2 - 1 / 12) < 1e-12
    assert sliced_wasserstein(y, y.repeat(2, 1), unequal=True) < 1e-12
    assert abs(sliced_wasserstein(x, y[:250], unequal=True) - sliced_wasserstein(x, y)) < 0.1
    with pytest.raises(ValueError, match="unequal=True"):
        sliced_wasserstein(x, y[:250])
