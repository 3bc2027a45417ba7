import math

import numpy as np
import pytest
import torch

from diffcourse.metrics import (density_coverage, frechet_distance, gaussian_nll_2d, inception_score, mmd_rbf,
                                nearest_neighbour_distances, nearest_neighbour_ratio, precision_recall, real_ball_hits, sliced_wasserstein,
                                sw_floor_ratio)


def test_frechet_distance_non_commuting_pair_closed_form():
    """2x2 covariances that do not commute; tr sqrt(S1 S2) computed by hand via the 2x2 identity
    tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for a matrix with positive eigenvalues."""
    S1 = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    S2 = torch.tensor([[1.0, -0.3], [-0.3, 3.0]], dtype=torch.float64)
    assert not torch.allclose(S1 @ S2, S2 @ S1)
    M = S1 @ S2
    tr_sqrt = math.sqrt(M.trace() + 2 * math.sqrt(torch.det(M)))
    mu1, mu2 = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    expected = 8.0 + S1.trace() + S2.trace() - 2 * tr_sqrt
    assert frechet_distance(mu1, S1, mu2, S2) == pytest.approx(float(expected), rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    for d in (3, 10, 32):
        A, B = rng.normal(size=(d, d)), rng.normal(size=(d, d))
        S1, S2 = A @ A.T + 0.1 * np.eye(d), B @ B.T + 0.1 * np.eye(d)
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        covmean = scipy_linalg.sqrtm(S1 @ S2).real
        ref = ((mu1 - mu2) ** 2).sum() + np.trace(S1) + np.trace(S2) - 2 * np.trace(covmean)
        assert frechet_distance(mu1, S1, mu2, S2) == pytest.approx(ref, rel=1e-7, abs=1e-7)


def test_inception_score_extremes():
    K = 10
    confident_even = torch.eye(K).repeat(5, 1)           # every class, each sample certain
    assert inception_score(confident_even) == pytest.approx(K, rel=1e-6)
    one_class = torch.zeros(50, K)
    one_class[:, 3] = 1
    assert inception_score(one_class) == pytest.approx(1.0, rel=1e-6)
    uniform = torch.full((50, K), 1 / K)
    assert inception_score(uniform) == pytest.approx(1.0, rel=1e-6)


def test_precision_recall_on_constructed_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 2, generator=g, dtype=torch.float64)
    p, r = precision_recall(real, real.clone())
    assert p == 1.0 and r == 1.0
    # fake = half of the real cloud only (x > 0): every fake point is realistic, half the data is missed
    half = real[real[:, 0] > 0.3]
    p, r = precision_recall(real, half)
    assert p == 1.0 and 0.3 < r < 0.75
    # fake far away: nothing realistic, nothing covered
    p, r = precision_recall(real, real + 100)
    assert p == 0.0 and r == 0.0
    # a mode-collapsed fake (all points in a tiny cluster at the centre): precise, no recall
    p, r = precision_recall(real, 0.01 * torch.randn(100, 2, generator=g, dtype=torch.float64))
    assert p > 0.95 and r < 0.1


def test_density_and_coverage_by_hand():
    """Real points 0, 1, 2, 3, 10 on a line, k = 1: radii 1, 1, 1, 1, 7 (the outlier's ball reaches 3)."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]], dtype=torch.float64)
    fake = torch.tensor([[0.5], [6.0], [7.0], [8.0]], dtype=torch.float64)
    assert real_ball_hits(real, fake, k=1).tolist() == [1, 1, 0, 0, 3]  # 0.5 lies in the balls of 0 and 1
    density, coverage = density_coverage(real, fake, k=1)
    assert density == pytest.approx(5 / (1 * 4)) and coverage == pytest.approx(3 / 5)
    assert precision_recall(real, fake, k=1)[0] == 1.0  # every fake point lies in some real ball


def test_density_and_coverage_of_equal_distributions_and_an_outlier_ball():
    """Same distribution: density near 1 and coverage near 1 - 2^-k (Naeem et al.: a real ball holds no fake point
    with probability (N-1)...(N-k) / ((M+N-1)...(M+N-k)), about 2^-k for M = N); a real outlier's big ball lifts
    precision to 1 but density only to 1/k."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(3000, 4, generator=g), torch.randn(3000, 4, generator=g)
    density, coverage = density_coverage(real, fake, k=5)
    assert density == pytest.approx(1.0, abs=0.05) and coverage == pytest.approx(1 - 2 ** -5, abs=0.02)
    cluster = torch.randn(300, 2, generator=g, dtype=torch.float64)
    real = torch.cat([cluster, torch.tensor([[20.0, 0.0]], dtype=torch.float64)])  # one outlier: its ball reaches ~18
    fake = torch.tensor([15.0, 0.0], dtype=torch.float64) + torch.randn(200, 2, generator=g, dtype=torch.float64)
    assert precision_recall(real, fake, k=5)[0] == 1.0  # every off-manifold sample lies in the outlier's ball
    density, coverage = density_coverage(real, fake, k=5)
    assert density == pytest.approx(1 / 5) and coverage == pytest.approx(1 / 301)  # one ball of weight 1/k each


def test_mmd_properties():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
    assert abs(mmd_rbf(x, x.clone(), bandwidth=1.0)) < 1e-2
    assert mmd_rbf(x, y, bandwidth=1.0) == pytest.approx(mmd_rbf(y, x, bandwidth=1.0))
    assert mmd_rbf(x, y + 2, bandwidth=1.0) > 10 * abs(mmd_rbf(x, y, bandwidth=1.0))
    assert sliced_wasserstein(x, y) == pytest.approx(sliced_wasserstein(y, x))


def test_memorisation_is_caught_by_nearest_neighbours():
    g = torch.Generator().manual_seed(2)
    train = torch.rand(200, 1, 8, 8, generator=g)
    copies = train[:50]
    fresh = torch.rand(50, 1, 8, 8, generator=g)
    assert nearest_neighbour_distances(copies, train).max() < 0.01  # exact copies (up to float rounding)
    assert nearest_neighbour_distances(fresh, train).min() > 0.5


def test_nearest_neighbour_ratio_by_hand_and_for_copies():
    """1D training set 0, 1, ..., 9; a sample at 2.5 with n = 4 nearest (2, 3, 1, 4 at 0.5, 0.5, 1.5, 1.5):
    0.5 / (0.5 * 1.0) = 1. A copy scores 0; alpha scales the ratio."""
    train = torch.arange(10.0)[:, None]
    ratio = nearest_neighbour_ratio(torch.tensor([[2.5], [7.0]]), train, n_neighbours=4)
    assert ratio[0].item() == pytest.approx(1.0) and ratio[1].item() == 0.0
    assert nearest_neighbour_ratio(torch.tensor([[2.5]]), train, n_neighbours=4, alpha=1.0).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lower it"):
        nearest_neighbour_ratio(torch.tensor([[2.5]]), train, n_neighbours=11)


def test_gaussian_nll_2d():
    from diffcourse.data import toy2d

    x = toy2d.sample("8gaussians", 1000)
    assert gaussian_nll_2d(x) == pytest.approx(float(-toy2d.log_prob("8gaussians", x).mean()))


def test_sw_floor_ratio_is_the_mean_distance_over_the_mean_floor():
    g = torch.Generator().manual_seed(0)
    samples = [torch.randn(300, 2, generator=g) * 1.3 for _ in range(3)]
    data = [torch.randn(300, 2, generator=g) for _ in range(3)]
    other = [torch.randn(300, 2, generator=g) for _ in range(3)]
    ratio, dist, floor = sw_floor_ratio(samples, data, other)
    d = [sliced_wasserstein(x, y) for x, y in zip(samples, data)]
    f = [sliced_wasserstein(x, y) for x, y in zip(other, data)]
    assert dist == pytest.approx(sum(d) / 3) and floor == pytest.approx(sum(f) / 3)
    assert ratio == pytest.approx(dist / floor) and ratio > 1.1  # over-dispersed samples sit above the floor
    assert sw_floor_ratio(data[:1], other[:1], data[:1])[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="as many"):
        sw_floor_ratio(samples, data[:2], other)
