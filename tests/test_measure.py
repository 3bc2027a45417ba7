"""The measurement protocol: matched reference draws and differences read against their own noise."""
import math

import pytest
import torch

from diffcourse.measure import (Difference, balanced_labels, bootstrap_difference, jackknife_difference, draw_reference, fid_features,
                                matched_floor, seed_difference)


def test_a_matched_draw_has_the_samples_label_counts():
    pool = torch.arange(1000) % 10
    labels = torch.tensor([3] * 7 + [5] * 2 + [0])
    idx = draw_reference(pool, 10, labels, torch.Generator().manual_seed(0))
    assert sorted(pool[idx].tolist()) == sorted(labels.tolist())
    assert len(set(idx.tolist())) == 10  # without replacement


def test_a_draw_says_what_to_do_when_a_class_runs_short():
    with pytest.raises(ValueError, match="Class 1"):
        draw_reference(torch.tensor([0, 0, 1]), 2, torch.tensor([1, 1]))


def test_the_balanced_floor_of_clustered_data_is_lower_than_the_random_one():
    # ten well-separated classes: a random draw's class counts wobble, which a balanced draw does not
    g = torch.Generator().manual_seed(0)
    y = torch.arange(20000) % 10
    feats = torch.randn(20000, 4, generator=g, dtype=torch.float64) * 0.2 + torch.randn(10, 4, generator=g,
                                                                                         dtype=torch.float64)[y] * 3
    pool, ref = feats[:10000], feats[10000:]
    balanced = matched_floor(pool, y[:10000], ref, 200, balanced_labels(200), draws=8)
    random = matched_floor(pool, y[:10000], ref, 200, None, draws=8)
    assert balanced.label_mix == "balanced" and random.label_mix == "data"
    assert balanced.mean < random.mean


def test_a_clear_difference_is_resolved_and_a_null_one_is_not():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(500, 3, generator=g, dtype=torch.float64)
    same = torch.randn(400, 3, generator=g, dtype=torch.float64)
    same2 = torch.randn(400, 3, generator=g, dtype=torch.float64)
    shifted = same + 0.5
    d = bootstrap_difference(fid_features, shifted, same, ref, n_boot=100, name_a="shifted", name_b="same")
    assert d.resolved and d.estimate > 0
    assert d.verdict().startswith("resolved: same beats shifted")
    null = bootstrap_difference(fid_features, same2, same, ref, paired=False, n_boot=100)
    assert not null.resolved and null.verdict().startswith("not resolved at this N")


def test_a_resolved_verdict_prints_the_interval_of_its_margin_whichever_set_wins():
    for a_wins in (True, False):
        d = Difference("A", "B", -0.2, -0.36, -0.04) if a_wins else Difference("A", "B", 0.2, 0.04, 0.36)
        for lower_is_better in (True, False):
            v = d.verdict("SW", digits=2, lower_is_better=lower_is_better)
            assert v.endswith("by 0.20 ± 0.16 ([0.04, 0.36], 95% )"), v
    assert Difference.from_dict(d.as_dict(), "X").verdict().startswith("resolved: B beats X")


def test_pairing_narrows_the_interval_when_the_two_sets_share_their_noise():
    g = torch.Generator().manual_seed(2)
    base = torch.rand(300, generator=g, dtype=torch.float64)
    a, b = base + 0.01, base  # the same draws, shifted: the paired difference has almost no noise
    rate = lambda x, ref: float(x.mean())  # noqa: E731
    paired = bootstrap_difference(rate, a, b, paired=True, n_boot=100)
    unpaired = bootstrap_difference(rate, a, b, paired=False, n_boot=100)
    assert paired.resolved and not unpaired.resolved
    assert paired.half_width < unpaired.half_width / 10


def test_the_seed_interval_is_the_paired_t_interval():
    d = seed_difference([3.0, 4.0, 5.0], [2.0, 2.5, 3.5])
    diffs = torch.tensor([1.0, 1.5, 1.5])
    hw = 4.302652729911275 * float(diffs.std()) / math.sqrt(3)  # t_{0.975, 2}
    assert d.estimate == pytest.approx(float(diffs.mean()))
    assert d.high - d.estimate == pytest.approx(hw)
    assert isinstance(d, Difference) and d.resolved


def test_the_interval_holds_its_estimate_even_where_resampling_shifts_the_statistic():
    # FID of a small set against a reference: duplicates in a resample shift it, the basic interval reflects that
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(400, 6, generator=g, dtype=torch.float64)
    a = torch.randn(30, 6, generator=g, dtype=torch.float64) + 2.0
    b = torch.randn(30, 6, generator=g, dtype=torch.float64)
    d = bootstrap_difference(fid_features, a, b, ref, paired=False, n_boot=100)
    assert d.low <= d.estimate <= d.high


def test_the_basic_interval_reflects_the_replicates_around_the_estimate():
    # [2 theta - q_hi, 2 theta - q_lo]: a shift of the replicates is subtracted, not reported; it holds the estimate
    # exactly when the percentile interval [q_lo, q_hi] does (both need q_lo <= theta <= q_hi)
    from diffcourse.measure import _basic_interval
    shifted = torch.linspace(1.0, 3.0, 1001, dtype=torch.float64)  # every replicate above the estimate 0.5
    low, high = _basic_interval(0.5, shifted, 0.95)
    q_lo, q_hi = torch.quantile(shifted, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    assert (low, high) == pytest.approx((1.0 - q_hi, 1.0 - q_lo))
    assert high < 0.5 < q_lo  # both intervals miss the estimate, on opposite sides
    centred = torch.linspace(-1.0, 2.0, 1001, dtype=torch.float64)
    low, high = _basic_interval(0.5, centred, 0.95)
    assert low <= 0.5 <= high


def test_the_jackknife_interval_matches_the_spread_of_fid_differences_over_independent_draws():
    """Calibration on Gaussian features: the interval's half-width / t is within a factor of the true sd of the
    difference over independent draws, paired (B = A + its own noise) and unpaired — and no row is ever duplicated."""
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(2000, 6, generator=g, dtype=torch.float64)
    for paired in (True, False):
        def pair():
            a = torch.randn(150, 6, generator=g, dtype=torch.float64)
            b = a + 0.4 * torch.randn(150, 6, generator=g, dtype=torch.float64) if paired else \
                torch.randn(150, 6, generator=g, dtype=torch.float64)
            return a + 0.1, b
        true_sd = torch.tensor([fid_features(x, ref) - fid_features(y, ref) for x, y in (pair() for _ in range(120))]).std()
        est = [jackknife_difference(lambda x, _r: fid_features(x, ref), *pair(), None, paired=paired, groups=30)
               for _ in range(10)]
        ratio = sum(d.half_width for d in est) / len(est) / 2.05 / float(true_sd)
        assert 0.6 < ratio < 1.7, (paired, ratio)
    d = est[0]
    assert d.method == "jackknife (unpaired, 30 groups)" and d.low < d.estimate < d.high


def test_t_multiplier_and_the_half_width_of_one_new_draw():
    from diffcourse.measure import new_draw_half_width, t_multiplier
    assert abs(t_multiplier(4) - 2.7764) < 1e-4 and abs(t_multiplier(10_000) - 1.96) < 1e-3
    assert abs(new_draw_half_width(2.0, 5) - 2.7764 * 2.0 * (1.2 ** 0.5)) < 1e-3
