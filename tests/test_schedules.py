import math

import pytest
import torch

from diffcourse.schedules import NoiseSchedule, cosine_betas, make_schedule


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_alpha_bar_monotone_in_unit_interval(name):
    s = make_schedule(name, T=1000)
    ab = s.alpha_bars
    assert ab.dtype == torch.float64 and s.betas.dtype == torch.float64
    assert ((ab > 0) & (ab < 1)).all()
    assert (ab[1:] < ab[:-1]).all()
    assert torch.allclose(s.snr, ab / (1 - ab))
    assert ab[-1] < 1e-3, "a T=1000 schedule should end in (almost) pure noise"


def test_linear_endpoints():
    s = make_schedule("linear", T=1000)
    assert math.isclose(float(s.betas[0]), 1e-4) and math.isclose(float(s.betas[-1]), 0.02)
    assert torch.allclose(s.alpha_bars, torch.cumprod(1 - s.betas, 0))


def test_cosine_matches_paper_formula():
    T, s_ = 1000, 0.008
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2
    sched = make_schedule("cosine", T=T)
    # before clipping (which touches only the very last steps), alpha_bar_t (0-based) = f(t+1)/f(0)
    for t in [0, 1, 10, 100, 500, 900, 980]:
        assert math.isclose(float(sched.alpha_bars[t]), f(t + 1) / f(0), rel_tol=1e-9)
    assert float(cosine_betas(T).max()) <= 0.999


def test_short_linear_schedule_does_not_reach_noise():
    s = make_schedule("linear", T=10)
    assert s.alpha_bars[-1] > 0.8  # 10 steps of beta <= 0.02 leave most of the signal


def test_q_sample_closed_form_matches_iterated_chain():
    """Iterating q(x_t|x_{t-1}) T times gives the same distribution as the closed form q(x_t|x_0)."""
    s = make_schedule("linear", T=300)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n, 1), 1.5, dtype=torch.float64)
    x = x0.clone()
    for t in range(s.T):
        x = s.q_step(x, t, torch.randn(x.shape, generator=g, dtype=torch.float64))
        if t in (10, 100, 299):
            ab = float(s.alpha_bars[t])
            closed = s.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
            for samples in (x, closed):
                assert abs(samples.mean().item() - math.sqrt(ab) * 1.5) < 0.01
                assert abs(samples.var().item() - (1 - ab)) < 0.01


def test_q_sample_batch_of_timesteps_and_errors():
    s = make_schedule("linear", T=100)
    x0 = torch.ones(3, 1, 4, 4)
    eps = torch.zeros_like(x0)
    t = torch.tensor([0, 50, 99])
    out = s.q_sample(x0, t, eps)
    assert out.shape == x0.shape and out.dtype == torch.float32
    assert torch.allclose(out[:, 0, 0, 0], s.alpha_bars[t].sqrt().float())
    with pytest.raises(IndexError, match="0-based"):
        s.q_sample(x0, torch.tensor([100, 0, 0]), eps)
    with pytest.raises(TypeError):
        s.q_sample(x0, torch.tensor([0.5, 0.1, 0.2]), eps)
    with pytest.raises(ValueError):
        make_schedule("quadratic")
    with pytest.raises(ValueError):
        NoiseSchedule(torch.tensor([0.1, 1.5]))


def test_posterior_matches_bayes_on_gaussians():
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): product of two Gaussians in x_{t-1}."""
    s = make_schedule("cosine", T=50)
    x0, xt = torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([[-0.3]], dtype=torch.float64)
    for t in [1, 5, 25, 49]:
        a, ab_prev = float(s.alphas[t]), float(s.alpha_bars_prev[t])
        beta = 1 - a
        # prior N(sqrt(ab_prev) x0, 1-ab_prev); likelihood in x_{t-1}: N(xt/sqrt(a), beta/a)
        prec = 1 / (1 - ab_prev) + a / beta
        mean = (ab_prev**0.5 * float(x0) / (1 - ab_prev) + a**0.5 * float(xt) / beta) / prec
        m, v = s.q_posterior(x0, xt, t)
        assert math.isclose(float(m), mean, rel_tol=1e-9)
        assert math.isclose(float(v), 1 / prec, rel_tol=1e-9)


def test_posterior_brute_force_by_sampling():
    """Monte Carlo: sample (x_{t-1}, x_t) jointly given x0, keep pairs with x_t near a value."""
    s = make_schedule("linear", T=100)
    g = torch.Generator().manual_seed(3)
    t, x0 = 60, torch.tensor(1.0, dtype=torch.float64)
    n = 2_000_000
    x_prev = s.q_sample(x0.expand(n, 1), t - 1, torch.randn(n, 1, generator=g, dtype=torch.float64))
    x_t = s.q_step(x_prev, t, torch.randn(n, 1, generator=g, dtype=torch.float64))
    keep = (x_t - 0.2).abs() < 0.01
    m, v = s.q_posterior(x0.reshape(1, 1), torch.tensor([[0.2]], dtype=torch.float64), t)
    assert abs(x_prev[keep].mean().item() - float(m)) < 0.01
    assert abs(x_prev[keep].var().item() - float(v)) / float(v) < 0.05


def test_conversions_round_trip():
    s = make_schedule("linear", T=1000)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    t = torch.arange(0, 1000, 125)
    xt = s.q_sample(x0, t, eps)
    assert torch.allclose(s.predict_x0(xt, t, eps), x0)
    assert torch.allclose(s.predict_eps(xt, t, x0), eps)
    assert torch.allclose(s.eps_from_velocity(xt, t, s.velocity(x0, t, eps)), eps)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_respace_keeps_the_alpha_bars_of_the_kept_timesteps(name):
    from diffcourse.schedules import respace

    long = make_schedule(name, 1000)
    short, tau = respace(long, 250)
    assert short.T == 250 and tau[0] == 0 and tau[-1] == 999 and (tau.diff() > 0).all()
    torch.testing.assert_close(short.alpha_bars, long.alpha_bars[tau], rtol=1e-12, atol=0)
    same, every = respace(long, 1000)
    torch.testing.assert_close(same.betas, long.betas, rtol=1e-9, atol=1e-15)
    assert torch.equal(every, torch.arange(1000))
    with pytest.raises(ValueError, match="between 1 and T"):
        respace(long, 0)


def test_prior_kl_is_the_gaussian_kl_summed_over_dimensions():
    from torch.distributions import Normal, kl_divergence

    from diffcourse.schedules import prior_kl

    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
    for s in (make_schedule("linear", T=10), make_schedule("linear", T=1000), make_schedule("cosine", T=50)):
        ab = s.alpha_bars[-1]
        reference = kl_divergence(Normal(ab.sqrt() * x0, (1 - ab).sqrt()), Normal(0.0, 1.0)).reshape(4, -1).sum(1)
        torch.testing.assert_close(prior_kl(s, x0), reference, rtol=1e-9, atol=1e-15)
    # a chain that ends in noise leaves (almost) nothing; one that keeps 90 % of the signal does not
    assert prior_kl(make_schedule("cosine", T=10), x0).max() < 1e-3 < 1.0 < prior_kl(make_schedule("linear", T=10), x0).min()
    with pytest.raises(ValueError, match="batch"):
        prior_kl(make_schedule("linear", T=10), torch.tensor(1.0))


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_one_minus_alpha_bars_keeps_float32_digits_near_t0(name):
    from diffcourse.schedules import one_minus_alpha_bars

    s = make_schedule(name, T=1000)
    truth = 1 - s.alpha_bars  # float64
    torch.testing.assert_close(one_minus_alpha_bars(s.betas), truth, rtol=1e-12, atol=0)
    stable = one_minus_alpha_bars(s.betas.float()).double()
    naive = (1 - torch.cumprod(1 - s.betas.float(), 0)).double()
    assert ((stable - truth).abs() / truth).max() < 2e-6
    assert ((naive[0] - truth[0]).abs() / truth[0]) > 1e-5  # the cancellation the stable form avoids
    tiny = torch.tensor([1e-8])  # below float32's spacing near 1: 1 - 1e-8 rounds to 1
    assert (1 - torch.cumprod(1 - tiny, 0)).item() == 0.0
    assert math.isclose(one_minus_alpha_bars(tiny).item(), 1e-8, rel_tol=1e-6)
    with pytest.raises(TypeError, match="floating-point"):
        one_minus_alpha_bars(torch.tensor([1, 2]))
