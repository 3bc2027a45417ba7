"""diffcourse.target_study: chapter 2's paired study of the ε / x₀ / v targets."""
import torch

from diffcourse.schedules import respace
from diffcourse.target_study import per_seed, reference_sets, sample_seed, score, study_schedule


class _Recorder(torch.nn.Module):
    """An ε-network that predicts 0 and records the timesteps it is called at."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(t[0]))
        return torch.zeros_like(x)


def test_score_of_the_floor_sets_is_one():
    data, other = reference_sets(0, 200, 2)
    s = score(torch.cat(other), data, other)  # the floor's own sets, split as the samples are
    assert abs(s["sw_ratio"] - 1.0) < 1e-9
    assert s["nll"] > 0


def test_reference_sets_are_paired_within_a_seed_and_differ_across_seeds():
    a, _ = reference_sets(3, 50, 2)
    b, _ = reference_sets(3, 50, 2)
    c, _ = reference_sets(4, 50, 2)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_respaced_sampling_calls_the_network_at_the_kept_timesteps():
    schedule = study_schedule()
    net = _Recorder()
    sample_seed(net, schedule, 0, 8, steps=10)
    _, tau = respace(schedule, 10)
    assert net.calls == tau.flip(0).tolist()  # from the last kept step down to the first


def test_per_seed_reads_in_seed_order():
    study = {"runs": [{"seed": 0, "eps": {"nll": 1.0}}, {"seed": 1, "eps": {"nll": 2.0}}]}
    assert per_seed(study, "eps", "nll") == [1.0, 2.0]
