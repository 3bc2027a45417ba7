"""benchmarks/samplers.py: every row is compared with ONE real draw per label mix, so the rows' "minus real" lines are
comparable with each other (chapter 7, section 9)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from diffcourse.measure import fid_features

ROOT = Path(__file__).resolve().parents[1]


def _samplers_module():
    spec = importlib.util.spec_from_file_location("samplers_benchmark", ROOT / "benchmarks/samplers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_row_of_a_label_mix_is_compared_with_the_same_real_draw():
    samplers = _samplers_module()
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(40, 4, generator=g, dtype=torch.float64)
    pool, pool_y = torch.randn(400, 4, generator=g, dtype=torch.float64), torch.arange(400) % 10
    features = {"ddim:10:0": torch.randn(40, 4, generator=g, dtype=torch.float64) + 0.5,
                "ddim:20:0": torch.randn(40, 4, generator=g, dtype=torch.float64) + 0.2,
                "ddim:50:1": torch.randn(40, 4, generator=g, dtype=torch.float64)}
    out = samplers.differences(features, ref, pool, pool_y, groups=10, seed=0)
    vs_real = {d["a"]: d["estimate"] for d in out if d["b"] == "real" and d["metric"] == "fid"}
    assert set(vs_real) == set(features)
    # FID(row) - FID(real): with one shared real set, FID(row) - estimate is the same number for every row
    implied_real = [fid_features(f, ref) - vs_real[spec] for spec, f in features.items()]
    assert max(implied_real) - min(implied_real) == pytest.approx(0.0, abs=1e-9)


def test_the_committed_file_compares_every_unconditional_row_with_one_real_draw():
    bench = json.loads((ROOT / "benchmarks/results/samplers.json").read_text())
    rows = {r["spec"]: r for r in bench["rows"]}
    for metric in ("fid", "kid"):
        implied = [rows[d["a"]][metric] - d["estimate"] for d in bench["differences"]
                   if d["b"] == "real" and d["metric"] == metric and rows[d["a"]]["model"] == "mnist-ddpm"]
        assert len(implied) >= 2
        assert max(implied) - min(implied) < 1e-3  # the rows' metrics are rounded to 4-6 decimals in the file


def test_the_recorded_intervals_use_no_sample_twice():
    """The file's intervals are the grouped jackknife of `jackknife_difference` (a bootstrap's duplicated rows inflate
    FID and put self-pairs into KID), and each holds its own estimate."""
    bench = json.loads((ROOT / "benchmarks/results/samplers.json").read_text())
    assert bench["differences"]
    for d in bench["differences"]:
        assert d["method"].startswith("jackknife"), d["method"]
        assert d["low"] <= d["estimate"] <= d["high"]
