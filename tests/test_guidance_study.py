"""diffcourse.guidance_study (reading the guidance benchmarks) and Algorithm 1 of classifier guidance."""
from __future__ import annotations

import math

import pytest
import torch

from diffcourse import make_schedule
from diffcourse.guidance_study import (difference_from_dict, fid_to_floor, guidance_differences, kid_to,
                                       noisy_classifier_differences, paired_accuracy, reading, to_floor_difference)
from diffcourse.measure import Difference, balanced_labels, draw_reference
from diffcourse.metrics import kid
from diffcourse.samplers.guidance import classifier_guided_eps, classifier_guided_mean


def test_algorithm_1_is_the_eps_form_up_to_one_over_sqrt_alpha():
    """Dhariwal & Nichol's mean shift with Σ = β_t and the ε form inside a DDPM step differ by 1/√α_t only."""
    sch = make_schedule("linear", T=1000)
    g = torch.Generator().manual_seed(0)
    x, eps, grad = (torch.randn(64, 3, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (0, 10, 500, 999):
        beta, alpha, ab = sch.betas[t].item(), sch.alphas[t].item(), sch.alpha_bars[t].item()
        mean = lambda e: (x - beta / math.sqrt(1 - ab) * e) / math.sqrt(alpha)  # noqa: E731
        shift_eps = mean(classifier_guided_eps(eps, grad, ab, 2.5)) - mean(eps)
        shift_alg1 = classifier_guided_mean(mean(eps), beta, grad, 2.5) - mean(eps)
        assert torch.allclose(shift_eps, shift_alg1 / math.sqrt(alpha), atol=1e-12)


def test_classifier_guided_mean_takes_a_per_example_variance():
    mean, grad = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    out = classifier_guided_mean(mean, torch.tensor([1.0, 2.0]), grad, 3.0)
    assert torch.equal(out[0], torch.full((1, 2, 2), 3.0)) and torch.equal(out[1], torch.full((1, 2, 2), 6.0))


def test_kid_to_is_kid_against_its_reference():
    g = torch.Generator().manual_seed(1)
    a, ref = torch.randn(40, 16, generator=g), torch.randn(300, 16, generator=g)
    assert kid_to(ref)(a) == pytest.approx(kid(a, ref), rel=1e-12, abs=1e-12)


def _pool(n: int = 3000, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian 'features' whose class shifts the mean, with labels 0-9."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + 0.8 * torch.nn.functional.one_hot(y % d, d), y


def test_fid_to_floor_tells_real_from_shifted_samples():
    pool, y = _pool()
    ref, _ = _pool(2000, seed=1)
    labels = balanced_labels(200)
    real_like = pool[draw_reference(y, 200, labels, torch.Generator().manual_seed(9))]  # "samples" as good as real
    same = fid_to_floor(real_like, pool, y, ref, labels, groups=20)
    shifted = fid_to_floor(real_like + 1.0, pool, y, ref, labels, groups=20)
    assert not same.resolved
    assert shifted.resolved and shifted.estimate > 0 and reading(shifted) == "above the floor"


def test_paired_accuracy_needs_the_same_labels():
    a = {"read_as": torch.arange(10), "labels": torch.arange(10)}
    b = {"read_as": torch.arange(10), "labels": torch.arange(10).flip(0)}
    with pytest.raises(ValueError, match="same label list"):
        paired_accuracy(a, b, "a", "b")


def test_noisy_classifier_target_reads_the_differences():
    g = torch.Generator().manual_seed(0)
    bayes = (torch.rand(4000, generator=g) < 0.6).double()
    lda = (torch.rand(4000, generator=g) < 0.5).double()
    met = noisy_classifier_differences({"network": bayes.clone(), "lda": lda, "bayes": bayes}, n_boot=300)
    assert met["target_met"] and not met["network_minus_bayes"]["resolved"]
    worse = bayes * (torch.rand(4000, generator=g) < 0.7).double()   # loses 30 % of Bayes' correct answers
    missed = noisy_classifier_differences({"network": worse, "lda": lda, "bayes": bayes}, n_boot=300)
    assert not missed["target_met"] and missed["network_minus_bayes"]["estimate"] < 0
    # where Bayes' rule itself is level with the LDA, the network need not beat the LDA
    level = noisy_classifier_differences({"network": lda.clone(), "lda": lda, "bayes": lda.clone()}, n_boot=300)
    assert level["above_lda_where_bayes_is"] and level["target_met"]


def test_guidance_differences_pairs_neighbours_and_matches_the_two_methods():
    g = torch.Generator().manual_seed(0)
    labels = balanced_labels(60)
    kept = {k: {"features": torch.randn(60, 4, generator=g), "read_as": labels.clone(), "labels": labels}
            for k in ("cfg:1.0", "cfg:1.25", "cg:0.0", "cg:1.0", "cg:2.0")}
    pool, y = _pool(2000, d=4)
    out = guidance_differences(kept, pool.float(), y, torch.randn(500, 4, generator=g), groups=10)
    assert set(out["to_floor"]) == set(kept)
    assert [(p["fid"]["a"], p["fid"]["b"]) for p in out["pairs"]] == [("CFG w = 1.25", "CFG w = 1"),
                                                                      ("CG s = 1", "CG s = 0"), ("CG s = 2", "CG s = 1")]
    assert ("CG s = 1", "CFG w = 1") in [(h["fid"]["a"], h["fid"]["b"]) for h in out["head_to_head"]]
    d = difference_from_dict(out["pairs"][0]["fid"])
    assert isinstance(d, Difference) and d.verdict("FID") == out["pairs"][0]["fid"]["verdict"]


def test_to_floor_difference_without_kept_samples_is_approximate_and_says_so():
    quality = {"cfg": {"n": 500, "floor_at_n": 3.0, "floor_at_n_std": 0.5, "floor_protocol": "balanced",
                       "floor_data_mix": {"mean": 6.0, "std": 1.0}, "per_w": {"0.0": {"fid": 30.0}, "1.0": {"fid": 3.2}}}}
    level = to_floor_difference(quality, "cfg", "cfg:1.0")
    assert not level.resolved and "approximate" in level.method
    unconditional = to_floor_difference(quality, "cfg", "cfg:0.0")   # read against the data-mix floor
    assert unconditional.estimate == pytest.approx(24.0) and reading(unconditional) == "above the floor"


def test_plot_guidance_over_t_draws_both_panels():
    import matplotlib
    matplotlib.use("Agg")
    from diffcourse.plotting import plot_guidance_over_t

    readers = [{"t": t, "network": {"guidance": 0.1}, "bayes": {"guidance": 0.05}} for t in (100, 500, 900)]
    records = {1.0: [{"t": t, "guidance": 0.02, "eps": 1.0, "p_y": 0.3} for t in (900, 500, 100)]}
    ax1, ax2 = plot_guidance_over_t(readers, records, {1.0: [0.2, 0.6, 1.0]})
    assert len(ax1.lines) == 4 and len(ax2.lines) == 2
    assert ax1.xaxis_inverted() and ax2.get_ylim() == (0, 1.02)


def test_band_difference_covers_a_new_real_draw_and_resolves_a_shifted_one():
    """A KID read against a band of M real draws: a further real draw lands inside the interval about 95 % of the time
    (the band's t·sd·√(1 + 1/M) is the spread of one new draw), while a set shifted off the data is resolved above."""
    from diffcourse.guidance_study import band_difference

    g = torch.Generator().manual_seed(0)
    pool, reference = torch.randn(20000, 8, generator=g, dtype=torch.float64), torch.randn(500, 8, generator=g, dtype=torch.float64)
    kid_ref = kid_to(reference)
    draw = lambda: pool[torch.randint(0, len(pool), (40,), generator=g)]  # noqa: E731
    band = [kid_ref(draw()) for _ in range(100)]
    inside = [not band_difference(kid_ref(draw()), band, "real", "band").resolved for _ in range(300)]
    assert 0.9 <= sum(inside) / len(inside) <= 0.99
    shifted = band_difference(kid_ref(draw() + 0.5), band, "shifted", "band")
    assert shifted.resolved and shifted.estimate > 0 and "100 real draws" in shifted.method
    with pytest.raises(ValueError, match="at least 10"):
        band_difference(0.0, band[:5], "a", "b")


def test_share_lower_bound_is_clopper_pearson():
    from diffcourse.guidance_study import share_lower_bound

    assert share_lower_bound(500, 500) == pytest.approx(0.05 ** (1 / 500))   # all right: (1 - level)^(1/n)
    assert share_lower_bound(0, 50) == 0.0
    assert share_lower_bound(486, 500) < 0.97 < 486 / 500   # the chapter-6 target met by the point estimate only


def test_to_floor_difference_uses_t_of_the_floor_draws():
    from scipy.stats import t as student_t

    quality = {"cfg": {"n": 500, "floor_at_n": 3.0, "floor_at_n_std": 0.5, "floor_protocol": "balanced",
                       "floor_matched": {"mean": 3.0, "std": 0.5, "draws": [2.5, 3.0, 3.5, 3.0, 3.0]},
                       "floor_data_mix": {"mean": 6.0, "std": 1.0}, "per_w": {"1.0": {"fid": 3.2}}}}
    d = to_floor_difference(quality, "cfg", "cfg:1.0")
    assert d.half_width == pytest.approx(student_t.ppf(0.975, 4) * 0.5 * (1 + 1 / 5) ** 0.5)


def test_noisy_readers_report_per_digit_pushes_and_the_cosine_of_the_two_gradients():
    from diffcourse.guidance_study import noisy_readers
    from diffcourse.metrics import NoisyKernelBayes
    from diffcourse.schedules import make_schedule

    g = torch.Generator().manual_seed(0)
    x0, y = torch.randn(200, 1, 4, 4, generator=g), torch.arange(200) % 2
    x0[y == 1] += 1.0
    bayes = NoisyKernelBayes(x0, y)

    class SameAsBayes(torch.nn.Module):   # a "network" that is Bayes' rule: its gradient is Bayes' rule's
        def forward(self, z, t):
            return bayes.logits(z, float(schedule.alpha_bars[int(t[0])])).float()

    schedule = make_schedule("linear", 1000)
    rows = noisy_readers(x0[:16], y[:16], [300, 600], schedule, SameAsBayes(), bayes, g)
    for r in rows:
        assert r["network"]["push"].shape == (16,) and r["cosine"].shape == (16,)
        assert torch.allclose(r["cosine"], torch.ones(16, dtype=r["cosine"].dtype), atol=1e-3)  # float32 network pass
