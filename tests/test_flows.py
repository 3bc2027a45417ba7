"""Flow matching: the linear path, its conditional velocity and the CFM loss."""
import torch

from diffcourse.flows import TIME_SCALE, conditional_velocity, flow_matching_loss, linear_path


def test_the_linear_path_runs_from_data_at_t0_to_noise_at_t1_with_constant_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g)
    assert torch.equal(linear_path(x0, eps, torch.zeros(4)), x0)
    assert torch.equal(linear_path(x0, eps, torch.ones(4)), eps)
    t, h = torch.full((4,), 0.3), 1e-3
    finite = (linear_path(x0, eps, t + h) - linear_path(x0, eps, t - h)) / (2 * h)
    assert torch.allclose(finite, conditional_velocity(x0, eps), atol=1e-3)


class _Oracle(torch.nn.Module):
    """Knows the noise the loss will draw: predicts eps - x0 exactly, so the loss is 0."""

    def __init__(self, x0, eps):
        super().__init__()
        self.x0, self.eps, self.seen_t = x0, eps, None

    def forward(self, xt, t):
        self.seen_t = t
        return self.eps - self.x0


def test_the_cfm_loss_is_zero_for_the_conditional_velocity_and_the_network_sees_1000t():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    oracle = _Oracle(x0, eps)
    assert float(flow_matching_loss(oracle, x0, torch.Generator().manual_seed(1), eps=eps)) == 0.0
    assert 0 <= float(oracle.seen_t.min()) and float(oracle.seen_t.max()) <= TIME_SCALE
    wrong_sign = float(flow_matching_loss(lambda xt, t: x0 - eps, x0, torch.Generator().manual_seed(1), eps=eps))
    assert wrong_sign > 1.0
