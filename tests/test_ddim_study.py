"""diffcourse.ddim_study: chapter 3's readers of samplers.json and weighting_study.json, and the paired KID bootstrap."""
import torch

from diffcourse.ddim_study import (difference_from, eta_ordering, kid_difference, samplers_table, samplers_verdicts,
                                   weighting_table, weighting_verdicts)
from diffcourse.measure import Difference
from diffcourse.metrics import kid


def _d(a, b, est, low, high):
    return Difference(a, b, est, low, high, 0.95, "bootstrap (paired, 200 resamples)").as_dict()


def _study():
    rows = {m: {f"ddim{s}-eta{e}": {"n": 1000, "fid": 10.0 + s / 10 + e + (m == "L_simple"), "confident_share": 0.9}
                for s in (10, 20, 50, 100) for e in (0, 1)} for m in ("min-SNR-5", "L_simple")}
    eta = {f"{m} ddim{s}": _d(f"{m} ddim{s}-eta0", f"{m} ddim{s}-eta1", *((2.0, 1.0, 3.0) if s == 10 else
                                                                          (-2.0, -3.0, -1.0) if m == "L_simple" else
                                                                          (0.5, -1.0, 2.0)))
           for m in ("min-SNR-5", "L_simple") for s in (10, 20, 50, 100)}
    weighting = {f"ddim{s}-eta{e}": _d(f"L_simple ddim{s}-eta{e}", f"min-SNR-5 ddim{s}-eta{e}", 1.0, 0.2, 1.8)
                 for s in (10, 20, 50, 100) for e in (0, 1)}
    return {"rows": rows, "floors": {"1000": {"n": 1000, "label_mix": "data", "mean": 3.0, "std": 0.3,
                                              "draws": [2.7, 3.0, 3.3]}},
            "eta0_minus_eta1": eta, "lsimple_minus_minsnr": weighting}


def test_difference_from_round_trips_and_renames():
    d = Difference("a", "b", -1.0, -2.0, -0.5, 0.95, "m")
    back = difference_from(d.as_dict(), "η=1", "η=0")
    assert (back.estimate, back.low, back.high, back.resolved) == (-1.0, -2.0, -0.5, True)
    assert back.verdict().startswith("resolved: η=1 beats η=0")


def test_eta_ordering_reads_each_verdict():
    order = eta_ordering(_study())
    assert order["min-SNR-5"] == {10: "η=1 better", 20: "not resolved", 50: "not resolved", 100: "not resolved"}
    assert order["L_simple"] == {10: "η=1 better", 20: "η=0 better", 50: "η=0 better", 100: "η=0 better"}


def test_weighting_verdicts_and_table():
    v = weighting_verdicts(_study())
    assert len(v["eta"]) == 8 and len(v["weighting"]) == 8
    assert v["weighting"][0].startswith("DDIM-10, η=0: resolved: min-SNR-5 beats L_simple")
    assert "not resolved" in v["eta"][1]
    table = weighting_table(_study())
    assert "| DDIM-50, η=1 | 16.00 / 0.900 | 17.00 / 0.900 |" in table and "3.00 ± 0.30" in table


def test_samplers_readers():
    bench = {"n": 200, "rows": [
        {"spec": "ddim:10:0", "model": "mnist-ddpm", "fid": 40.0, "seconds": 8.0, "nfe": 10},
        {"spec": "ddim:10:1", "model": "mnist-ddpm", "fid": 30.0, "seconds": 8.0, "nfe": 10},
        {"spec": "ddpm", "model": "mnist-ddpm", "fid": 25.0, "seconds": 700.0, "nfe": 1000},
        {"spec": "cfg:20:1", "model": "mnist-cfg", "fid": 20.0, "seconds": 9.0, "nfe": 20}],
        "floor": {"fid_data": {"n": 200, "label_mix": "data", "mean": 25.0, "std": 5.0, "draws": [20.0, 30.0]}},
        "differences": [dict(_d("ddim:10:1", "ddim:10:0", -10.0, -30.0, 5.0), metric="fid"),
                        dict(_d("ddim:10:1", "ddim:10:0", -1.0, -3.0, 1.0), metric="kid"),
                        dict(_d("ddim:10:0", "real", 15.0, 1.0, 20.0), metric="fid")]}
    assert samplers_verdicts(bench) == [
        "not resolved at this N: FID DDIM-10 η=1 − DDIM-10 η=0 = -10.00 ([-30.00, 5.00], 95% bootstrap (paired, 200 resamples))"]
    table = samplers_table(bench, steps=(10,))
    assert "| 10 | 40.00 (+3.0σ) | 8.0 | 30.00 (+1.0σ) | 8.0 |" in table
    assert "25.00 (+0.0σ)" in table and "25.00 ± 5.00" in table
    assert "run `python benchmarks/samplers.py`" in samplers_table({"rows": []})
    assert "DDPM** ancestral, σ² = β, 1000" in samplers_table(bench, steps=(10,))


def test_samplers_verdicts_name_the_ddpm_row_and_skip_real_digits():
    bench = {"differences": [dict(_d("ddim:50:0", "ddpm", 2.0, -1.0, 5.0), metric="fid"),
                             dict(_d("ddim:50:0", "real", 9.0, 1.0, 20.0), metric="fid"),
                             dict(_d("sde:100", "ddpm", 1.0, -1.0, 3.0), metric="fid")]}
    lines = samplers_verdicts(bench)
    assert len(lines) == 1 and "FID DDIM-50 η=0 − DDPM-1000 (σ²=β) = +2.00" in lines[0]


def test_kid_difference_estimate_and_resolution():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(400, 16, generator=g, dtype=torch.float64)
    same_a, same_b = torch.randn(64, 16, generator=g), torch.randn(64, 16, generator=g)
    shifted = torch.randn(64, 16, generator=g) + 1.0
    d = kid_difference(shifted, same_a, ref)
    assert abs(d.estimate - (kid(shifted, ref) - kid(same_a, ref))) < 1e-9
    assert d.resolved and d.estimate > 0
    assert not kid_difference(same_a, same_b, ref).resolved


def test_difference_line_has_no_winner():
    from diffcourse.ddim_study import difference_line
    assert difference_line(Difference("lerp", "slerp", -0.03, -0.04, -0.02, 0.95, "paired t over 24 seeds"), "ink") == \
        "resolved: ink lerp − slerp = -0.030 ([-0.040, -0.020], 95% paired t over 24 seeds)"
    assert difference_line(Difference("a", "b", 0.01, -0.01, 0.03), "x", digits=2).startswith("not resolved at this N: x a − b = +0.01")


def test_ordering_lines():
    from diffcourse.ddim_study import ordering_lines
    lines = ordering_lines(_study())
    assert lines[0] == "min-SNR-5: η=1 better at 10; η=0 better at none; not resolved at 20, 50, 100"
    assert lines[1] == "L_simple: η=1 better at 10; η=0 better at 20, 50, 100; not resolved at none"
    assert lines[2] == "η=0 better (the DDIM paper's ordering), either weighting: L_simple 20, L_simple 50, L_simple 100"
    assert lines[3] == "step counts where both weightings are resolved: 10; they disagree at: none"


def test_kid_difference_interval_matches_the_spread_over_independent_draws():
    """Calibration: the jackknife's half-width / t is close to the true sd of the paired KID difference."""
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(300, 8, generator=g, dtype=torch.float64)

    def pair():
        a = torch.randn(60, 8, generator=g, dtype=torch.float64)
        return a + 0.3, a + 0.5 * torch.randn(60, 8, generator=g, dtype=torch.float64)

    true_sd = torch.tensor([kid(x, ref) - kid(y, ref) for x, y in (pair() for _ in range(150))]).std().item()
    est = [kid_difference(*pair(), ref) for _ in range(12)]
    ratio = sum(d.half_width for d in est) / len(est) / 2.0 / true_sd
    assert 0.6 < ratio < 1.6, ratio
