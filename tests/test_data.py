import gzip
import shutil

import pytest
import torch

from diffcourse.data import toy2d
from diffcourse.data.mnist import FILES, MNISTError, load_mnist, read_idx


@pytest.mark.parametrize("name", toy2d.DATASETS)
def test_toy_shapes_and_determinism(name):
    a = toy2d.sample(name, 500, torch.Generator().manual_seed(5))
    b = toy2d.sample(name, 500, torch.Generator().manual_seed(5))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.isfinite(a).all() and a.abs().max() < 6


def test_unknown_dataset_message():
    with pytest.raises(ValueError, match="choose one of"):
        toy2d.sample("mooons", 10)
    with pytest.raises(ValueError, match="closed-form"):
        toy2d.log_prob("moons", torch.zeros(1, 2))


def test_mixture_score_is_gradient_of_log_prob():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(toy2d.log_prob("8gaussians", x).sum(), x)
    assert torch.allclose(toy2d.score("8gaussians", x.detach()), grad, atol=1e-8)


def test_mixture_density_integrates_to_one():
    grid = torch.linspace(-4, 4, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    mass = toy2d.log_prob("8gaussians", pts).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3


def test_noised_mixture_matches_q_sample():
    from diffcourse.schedules import make_schedule

    gm, s = toy2d.mixture("8gaussians"), make_schedule("linear", T=1000)
    g = torch.Generator().manual_seed(2)
    x0 = gm.sample(200_000, g).double()
    t = 300
    xt = s.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    noised = gm.noised(float(s.alpha_bars[t]))
    ref = noised.sample(200_000, g).double()
    assert torch.allclose(xt.var(0), ref.var(0), rtol=0.02)
    assert abs(noised.log_prob(xt).mean() - noised.log_prob(ref).mean()) < 0.02


@pytest.mark.parametrize("alpha_bar", [0.05, 0.5, 0.95])
def test_exact_posterior_mean_is_tweedies_formula(alpha_bar):
    """E[x0 | x_t] from responsibilities and per-component posteriors (no score) equals (x_t + (1 − ᾱ)·score)/sqrt(ᾱ)."""
    gm = toy2d.GaussianMixture(torch.tensor([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]]), 0.3, torch.tensor([1.0, 2.0, 3.0]))
    noisy = gm.noised(alpha_bar)
    x = noisy.sample(400, torch.Generator().manual_seed(1)).double()
    tweedie = (x + (1 - alpha_bar) * noisy.score(x)) / alpha_bar**0.5
    assert torch.allclose(gm.posterior_mean(x, alpha_bar), tweedie, atol=1e-10)


def test_exact_posterior_mean_is_the_best_predictor_of_x0():
    """E[x0 | x_t] is the regression of x0 on x_t: its residual has mean zero and is uncorrelated with it."""
    gm, a = toy2d.mixture("8gaussians"), 0.3
    g = torch.Generator().manual_seed(0)
    x0 = gm.sample(100_000, g).double()
    xt = a**0.5 * x0 + (1 - a) ** 0.5 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    m = gm.posterior_mean(xt, a)
    residual = x0 - m
    assert residual.mean(0).abs().max() < 0.01 and float((residual * m).mean()) < 0.01
    assert torch.allclose(gm.posterior_mean(xt[:5], 1.0 - 1e-12), xt[:5], atol=1e-5)  # no noise: x_t itself


def test_mnist_loads(monkeypatch):
    x, y = load_mnist("test", download=False)
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10_000,) and y.dtype == torch.int64
    assert x.min() == -1 and x.max() == 1
    assert sorted(y.unique().tolist()) == list(range(10))


def _copy_mnist(tmp_path):
    x_dir = load_mnist.__globals__["data_dir"](None)[0]
    for name in FILES:
        shutil.copy(x_dir / name, tmp_path / name)


def test_mnist_corrupt_file_names_file_and_checksum(tmp_path):
    _copy_mnist(tmp_path)
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(MNISTError) as e:
        load_mnist("test", root=tmp_path, download=False)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and FILES["t10k-labels-idx1-ubyte.gz"] in msg and "corrupt" in msg


def test_mnist_missing_file_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFCOURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(MNISTError) as e:
        load_mnist("train")  # DIFFCOURSE_DATA_DIR is read-only: never downloads
    msg = str(e.value)
    assert "missing" in msg and str(tmp_path) in msg and "DIFFCOURSE_DATA_DIR" in msg


def test_read_idx_rejects_non_idx(tmp_path):
    p = tmp_path / "x.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(MNISTError, match="IDX"):
        read_idx(p)
