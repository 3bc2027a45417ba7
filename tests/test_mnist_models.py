"""MNIST networks: shapes, conditioning (null label), parameter budgets."""
import pytest
import torch

from diffcourse.models import Classifier, NoisyClassifier, UNet
from diffcourse.recipes.mnist import RECIPES, build_model, random_shift


def _n(m):
    return sum(p.numel() for p in m.parameters())


def test_unet_shapes_and_budget():
    m = build_model("UNet", RECIPES["mnist-ddpm"].model_kwargs)
    x = torch.randn(3, 1, 28, 28)
    assert m(x, torch.tensor([0, 500, 999])).shape == x.shape
    assert m(x, 7).shape == x.shape  # a scalar t is broadcast
    assert 0.3e6 < _n(m) < 2e6
    assert UNet(**m.config).config == m.config


def test_unet_fresh_output_is_zero():
    m = UNet(ch=16)
    assert torch.count_nonzero(m(torch.randn(2, 1, 28, 28), torch.tensor([3, 4]))) == 0


def test_unet_null_label_and_conditioning():
    torch.manual_seed(0)
    m = UNet(ch=16, num_classes=10)
    torch.nn.init.normal_(m.conv_out.weight, std=0.1)
    assert m.label.null_label == 10
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([10, 200, 400, 900])
    null = m(x, t, torch.full((4,), 10))
    assert torch.allclose(m(x, t), null)  # y=None means "no label"
    assert torch.allclose(m(x, t, None), null)
    y = torch.tensor([1, 2, 3, 4])
    assert not torch.allclose(m(x, t, y), null)  # the label changes the output
    with pytest.raises(ValueError, match="Labels must be"):
        m(x, t, torch.tensor([11, 0, 0, 0]))
    with pytest.raises(ValueError, match="without num_classes"):
        UNet(ch=16)(x, t, y)


def test_classifiers_shapes():
    x = torch.randn(5, 1, 28, 28)
    c = Classifier()
    assert c(x).shape == (5, 10) and c.features(x).shape == (5, 128)
    nc = NoisyClassifier()
    assert nc(x, torch.arange(5) * 100).shape == (5, 10) and nc(x, 3).shape == (5, 10)
    assert _n(c) < 0.5e6 and _n(nc) < 0.5e6


def test_random_shift_moves_pixels_and_keeps_shape():
    g = torch.Generator().manual_seed(0)
    x = torch.full((8, 1, 28, 28), -1.0)
    x[:, :, 14, 14] = 1.0
    s = random_shift(x, 2, g)
    assert s.shape == x.shape and (s == 1).sum() == 8
    assert torch.equal(random_shift(x, 0, g), x)


def test_frechet_distance_known_values():
    from diffcourse.metrics import feature_stats, fid, frechet_distance

    # 1D: (0-1)^2 + 1 + 4 - 2*sqrt(1*4) = 2
    assert abs(frechet_distance(torch.zeros(1), torch.eye(1), torch.ones(1), 4 * torch.eye(1)) - 2.0) < 1e-9
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64)
    S1, S2 = A @ A.T + torch.eye(6, dtype=torch.float64), torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))
    assert frechet_distance(torch.zeros(6), S1, torch.zeros(6), S1) < 1e-8
    d12, d21 = frechet_distance(torch.zeros(6), S1, torch.ones(6), S2), frechet_distance(torch.ones(6), S2, torch.zeros(6), S1)
    assert abs(d12 - d21) < 1e-8  # symmetric
    # commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2
    D1 = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64))
    D2 = torch.diag(torch.tensor([4.0, 4.0, 1.0], dtype=torch.float64))
    assert abs(frechet_distance(torch.zeros(3), D1, torch.zeros(3), D2) - (1 + 0 + 4)) < 1e-9
    mu, S = feature_stats(torch.randn(500, 3, generator=g))
    assert mu.shape == (3,) and S.shape == (3, 3)
    clf = Classifier(ch=8).eval()
    x = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1
    assert fid(x, x, clf) < 1e-6 and fid(x, -x, clf) > 0
