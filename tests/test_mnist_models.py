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
