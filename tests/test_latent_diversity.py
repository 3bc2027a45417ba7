"""diffcourse.diversity: class mix, and density/coverage (Naeem et al. 2020) against hand-made point sets."""
import math

import pytest
import torch

from diffcourse.diversity import class_entropy, class_histogram, density_coverage, relative_spread


def test_class_entropy_reads_the_mix():
    assert class_histogram(torch.tensor([0, 0, 1, 9])).tolist() == [0.5, 0.25] + [0.0] * 7 + [0.25]
    assert class_entropy(torch.arange(100) % 10) == pytest.approx(1.0)
    assert class_entropy(torch.zeros(50, dtype=torch.long)) == 0.0
    two = class_entropy(torch.arange(100) % 2)
    assert two == pytest.approx(math.log(2) / math.log(10))
    with pytest.raises(ValueError):
        class_histogram(torch.tensor([], dtype=torch.long))


def test_density_and_coverage_separate_fidelity_from_variety():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 2, generator=g, dtype=torch.float64)
    same = torch.randn(400, 2, generator=g, dtype=torch.float64)
    d, c = density_coverage(real, same)
    assert 0.8 < d < 1.2 and c > 0.9, (d, c)
    one_mode = real[real[:, 0] > 0][:100] + 0.01  # realistic samples of half the data only
    d, c = density_coverage(real, one_mode)
    assert d > 0.8 and 0.35 < c < 0.6, (d, c)
    far = same + 10.0  # off-manifold samples, however varied, cover nothing
    assert density_coverage(real, far) == (0.0, 0.0)
    with pytest.raises(ValueError):
        density_coverage(real[:3], same)


def test_relative_spread_is_one_for_real_data_and_small_for_copies():
    g = torch.Generator().manual_seed(1)
    f, y = torch.randn(300, 4, generator=g), torch.arange(300) % 3
    assert relative_spread(f, y, f, y) == pytest.approx(1.0)
    copies = f[y == 0][:1].repeat(300, 1) + 0.01 * torch.randn(300, 4, generator=g)
    assert relative_spread(copies, y, f, y) < 0.01
