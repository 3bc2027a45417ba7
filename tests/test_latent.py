"""The maths of latent diffusion (`diffcourse.latent`): each function against an independent computation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from diffcourse import latent as L
from diffcourse.samplers import ddim_sample
from diffcourse.schedules import make_schedule

SCHED = make_schedule("linear", 100)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def fake_eps(x, t):
    tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *[1] * (x.ndim - 1))
    return torch.tanh(0.5 * x + torch.cos(0.05 * tt))


# ----------------------------------------------------------------------------------------- VAE terms
def test_reparameterize_is_mean_plus_sigma_eps_and_has_the_right_moments():
    mean, logvar, eps = torch.randn(3, 2, 4, 4, generator=gen(1)).unbind(0)
    assert torch.allclose(L.reparameterize(mean, logvar, eps), mean + torch.sqrt(torch.exp(logvar)) * eps, atol=1e-6)
    mu, lv = torch.tensor([1.5, -2.0]), torch.tensor([math.log(0.25), math.log(4.0)])  # sigma = 0.5, 2
    z = L.reparameterize(mu, lv, torch.randn(200_000, 2, generator=gen(2)))
    assert torch.allclose(z.mean(0), mu, atol=0.02)
    assert torch.allclose(z.std(0), torch.tensor([0.5, 2.0]), atol=0.02)


def test_reparameterize_lets_gradients_reach_mean_and_logvar():
    mean, logvar = torch.zeros(5, requires_grad=True), torch.zeros(5, requires_grad=True)
    L.reparameterize(mean, logvar, torch.ones(5)).sum().backward()
    assert torch.allclose(mean.grad, torch.ones(5)) and torch.allclose(logvar.grad, torch.full((5,), 0.5))


def test_gaussian_kl_matches_torch_distributions_and_is_zero_at_the_prior():
    mean, logvar = torch.randn(2, 3, 4, 5, 5, generator=gen(3), dtype=torch.float64).unbind(0)
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    kl = L.gaussian_kl(mean, logvar)
    assert kl.shape == (3,) and torch.allclose(kl, expected, atol=1e-10)
    assert torch.equal(L.gaussian_kl(torch.zeros(2, 8), torch.zeros(2, 8)), torch.zeros(2))
    assert (kl > 0).all()


# ----------------------------------------------------------------------------------------- scale factor
def test_latent_scale_factor_gives_unit_variance_and_refuses_constants():
    z = 5.4 * torch.randn(64, 4, 7, 7, generator=gen(4)) + 0.3
    c = L.latent_scale_factor(z)
    assert isinstance(c, float) and abs(c - 1 / float(z.double().std())) < 1e-12
    assert abs(float((c * z).std()) - 1.0) < 1e-5
    with pytest.raises(ValueError, match="non-constant"):
        L.latent_scale_factor(torch.ones(4, 3))


# ----------------------------------------------------------------------------------------- cross-attention
def _weights(d_x=6, d_c=5, d=4, seed=5):
    g = gen(seed)
    return torch.randn(d_x, d, generator=g), torch.randn(d_c, d, generator=g), torch.randn(d_c, d, generator=g)


def test_cross_attention_matches_scaled_dot_product_attention():
    x, c = torch.randn(2, 9, 6, generator=gen(6)), torch.randn(2, 3, 5, generator=gen(7))
    w_q, w_k, w_v = _weights()
    out, attn = L.cross_attention(x, c, w_q, w_k, w_v)
    assert out.shape == (2, 9, 4) and attn.shape == (2, 9, 3)
    assert torch.allclose(out, F.scaled_dot_product_attention(x @ w_q, c @ w_k, c @ w_v), atol=1e-5)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 9), atol=1e-6)


def test_cross_attention_mask_gives_padding_zero_weight_and_ignores_its_values():
    x, c = torch.randn(2, 9, 6, generator=gen(8)), torch.randn(2, 4, 5, generator=gen(9))
    mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    w_q, w_k, w_v = _weights()
    out, attn = L.cross_attention(x, c, w_q, w_k, w_v, mask)
    assert (attn[~mask[:, None, :].expand_as(attn)] == 0).all()
    c2 = c.clone()
    c2[~mask] = 100.0  # whatever the padding holds, the output is the same
    assert torch.allclose(L.cross_attention(x, c2, w_q, w_k, w_v, mask)[0], out, atol=1e-6)
    short, _ = L.cross_attention(x[:1], c[:1, :2], w_q, w_k, w_v)  # the first prompt without its padding
    assert torch.allclose(out[:1], short, atol=1e-5)
    with pytest.raises(ValueError, match="at least one real token"):
        L.cross_attention(x, c, w_q, w_k, w_v, torch.zeros(2, 4, dtype=torch.bool))


# ----------------------------------------------------------------------------------------- sampling
def test_latent_sample_is_ddim_in_the_latent_then_decode_of_the_unscaled_latent():
    seen = []

    def decode(z):
        seen.append(z.shape)
        return torch.tanh(z.sum(1, keepdim=True)).repeat_interleave(4, -1).repeat_interleave(4, -2)

    x = L.latent_sample(fake_eps, SCHED, decode, (3, 2, 5, 5), scale=0.25, steps=10, generator=gen(10))
    z0 = ddim_sample(fake_eps, SCHED, (3, 2, 5, 5), steps=10, generator=gen(10))
    assert seen == [(3, 2, 5, 5)] and x.shape == (3, 1, 20, 20)
    assert torch.allclose(x, decode(z0 / 0.25), atol=1e-6)
    again = L.latent_sample(fake_eps, SCHED, decode, (3, 2, 5, 5), scale=0.25, steps=10, generator=gen(10))
    assert torch.equal(x, again)
    noisy = L.latent_sample(fake_eps, SCHED, lambda z: z, (3, 2, 5, 5), scale=1.0, steps=10, eta=1.0, generator=gen(10))
    assert torch.allclose(noisy, ddim_sample(fake_eps, SCHED, (3, 2, 5, 5), steps=10, eta=1.0, generator=gen(10)))
    with pytest.raises(ValueError, match="scale"):
        L.latent_sample(fake_eps, SCHED, decode, (1, 2, 5, 5), scale=0.0)


def test_time_per_item_is_the_best_of_the_repeats_per_item():
    calls = []
    s = L.time_per_item(lambda: calls.append(1), n_items=10, repeats=4)
    assert len(calls) == 4 and 0 <= s < 0.01
    with pytest.raises(ValueError):
        L.time_per_item(lambda: None, n_items=0)
