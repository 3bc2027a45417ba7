"""Editing with a trained diffusion model (`diffcourse.editing`): exact small cases.

Stand-in networks: a cheap deterministic fake ε that depends on x and t, and the exact ε of the
8-Gaussian mixture (`diffcourse.data.toy2d`). One test uses the shipped ``mnist-cfg`` (2 digits, 20 steps).
"""
from __future__ import annotations

import math

import pytest
import torch

from diffcourse import editing as E
from diffcourse.data import toy2d
from diffcourse.schedules import make_schedule


SCHED = make_schedule("linear", 200)


class Counting:
    """A fake ε(x, t) = tanh(0.7 x + sin(0.03 t)) that counts its calls (network evaluations per image)."""

    def __init__(self):
        self.images = 0

    def __call__(self, x, t):
        self.images += x.shape[0]
        tt = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *[1] * (x.ndim - 1))
        return torch.tanh(0.7 * x + torch.sin(0.03 * tt))


def mixture_eps(schedule, name="8gaussians"):
    gm = toy2d.mixture(name)

    def eps(x, t):
        ab = float(schedule.alpha_bars[int(torch.as_tensor(t).flatten()[0])])
        return (-math.sqrt(1 - ab) * gm.noised(ab).score(x)).to(x.dtype)

    return eps


def images(n=4, size=8, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------- index convention
def test_noise_to_is_q_sample_and_the_data_at_minus_one():
    x0, z = images(), images(seed=1)
    assert torch.equal(E.noise_to(SCHED, x0, -1, z), x0)
    for s in (0, 57, 199):
        assert torch.allclose(E.noise_to(SCHED, x0, s, z), SCHED.q_sample(x0, s, z))


def test_start_index_and_edit_grid():
    assert E.start_index(1000, 0.0) == -1 and E.start_index(1000, 1.0) == 999 and E.start_index(1000, 0.5) == 499
    assert E.edit_grid(1000, 20, 0.0) == [-1]
    full = E.edit_grid(1000, 20, 1.0)
    assert full[0] == 999 and full[-1] == -1 and len(full) == 21 and full == sorted(full, reverse=True)
    half = E.edit_grid(1000, 20, 0.5)
    assert half[0] == 499 and len(half) == 11, "trailing spacing: strength x steps network evaluations"
    assert E.edit_grid(1000, 20, 1.0, spacing="leading")[:2] == [999, 950]
    for bad in (-0.1, 1.5, float("nan"), "half"):
        with pytest.raises(ValueError, match="strength"):
            E.start_index(1000, bad)


# ----------------------------------------------------------------------------------------- replacement
def test_known_pixels_equal_the_noised_original_at_every_step():
    """eta = 0 draws no noise in the reverse step, so the generator's draws are: the start, then one per step."""
    x0, mask = images(), E.make_mask("centre", 8)
    grid = E.edit_grid(SCHED.T, 10)
    _, traj = E.inpaint(Counting(), SCHED, x0, mask, steps=10, eta=0.0, generator=gen(3), return_trajectory=True)
    assert len(traj) == len(grid)
    g = gen(3)
    known = mask.expand_as(x0) > 0.5
    x_in = mask * x0  # fill = 0
    expected_start = E.noise_to(SCHED, x_in, grid[0], torch.randn(x0.shape, generator=g))
    assert torch.equal(traj[0], expected_start)
    for frame, s in zip(traj[1:], grid[1:]):
        noised = E.noise_to(SCHED, x0, s, torch.randn(x0.shape, generator=g))
        assert torch.allclose(frame[known], noised[known], atol=1e-6), f"known pixels at level {s}"


@pytest.mark.parametrize("resample, eta, clip", [(1, 1.0, None), (3, 1.0, 1.0), (2, 0.0, None)])
def test_known_pixels_end_exactly_at_the_original(resample, eta, clip):
    x0, mask = images(), E.make_mask("left", 8)
    out = E.inpaint(Counting(), SCHED, x0, mask, steps=8, resample=resample, eta=eta, clip_x0=clip, generator=gen())
    known = mask.expand_as(x0) > 0.5
    assert torch.equal(out[known], x0[known])
    assert not torch.allclose(out[~known], x0[~known]), "the hole is filled by the model, not copied"


def test_inpaint_never_reads_the_hidden_pixels_and_is_deterministic():
    x0, mask = images(), E.make_mask("centre", 8)
    other = torch.where(mask.expand_as(x0) > 0.5, x0, images(seed=9))
    kw = dict(steps=6, resample=2, strength=0.7)
    a = E.inpaint(Counting(), SCHED, x0, mask, generator=gen(1), **kw)
    b = E.inpaint(Counting(), SCHED, other, mask, generator=gen(1), **kw)
    c = E.inpaint(Counting(), SCHED, x0, mask, generator=gen(2), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(E.inpaint(Counting(), SCHED, x0, torch.ones(8, 8), steps=4, generator=gen()), x0)


def test_replace_known_formula_and_masks():
    x_s, x0, z = images(), images(seed=1), images(seed=2)
    m = E.make_mask("top", 8)
    ab = SCHED.alpha_bars[40].item()
    want = m * (math.sqrt(ab) * x0 + math.sqrt(1 - ab) * z) + (1 - m) * x_s
    assert torch.allclose(E.replace_known(x_s, x0, m, SCHED, 40, z), want, atol=1e-6)
    assert torch.allclose(E.replace_known(x_s, x0, m[0, 0], SCHED, 40, z), want, atol=1e-6), "an (H, W) mask"
    with pytest.raises(ValueError, match="broadcast"):
        E.replace_known(x_s, x0, torch.ones(5, 5), SCHED, 40, z)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.replace_known(x_s, x0, 2 * m, SCHED, 40, z)


def test_make_mask_kinds():
    assert E.make_mask("centre", 28).mean().item() == pytest.approx(1 - 14 * 14 / 784)
    for kind in ("top", "bottom", "left", "right"):
        assert E.make_mask(kind, 28).mean().item() == pytest.approx(0.5)
    assert E.make_mask("top", 28)[0, 0, 0].sum() == 0 and E.make_mask("top", 28)[0, 0, -1].sum() == 28
    r = E.make_mask("random", 28, frac=0.3, generator=gen())
    assert set(r.unique().tolist()) <= {0.0, 1.0} and abs(r.mean().item() - 0.7) < 0.06
    with pytest.raises(ValueError, match="one of"):
        E.make_mask("ring")


# ----------------------------------------------------------------------------------------- RePaint
def test_repaint_jump_is_the_one_step_forward_map():
    x, z = images(), images(seed=1)
    for t in (0, 1, 100, 199):
        assert torch.allclose(E.repaint_jump(SCHED, x, t, z), SCHED.q_step(x, t, z), atol=1e-6)
    with pytest.raises(ValueError, match="noisier"):
        E.repaint_jump(SCHED, x, 5, z, s=5)


@pytest.mark.parametrize("t, s", [(150, None), (10, None), (120, 60), (80, -1)])
def test_repaint_jump_mean_and_variance_monte_carlo(t, s):
    """x_t | x_s ~ N(sqrt(ab_t/ab_s) x_s, (1 - ab_t/ab_s) I); tolerance 5 standard errors."""
    n = 200_000
    x_prev = torch.tensor([1.5, -0.5], dtype=torch.float64).expand(n, 2)
    z = torch.randn(n, 2, generator=gen(4), dtype=torch.float64)
    out = E.repaint_jump(SCHED, x_prev, t, z, s=s)
    s_ = t - 1 if s is None else s
    ab_s = 1.0 if s_ < 0 else SCHED.alpha_bars[s_].item()
    ratio = SCHED.alpha_bars[t].item() / ab_s
    var = 1 - ratio
    assert ((out.mean(0) - math.sqrt(ratio) * x_prev[0]).abs() < 5 * math.sqrt(var / n)).all()
    assert ((out.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all()
    if s is None:
        assert var == pytest.approx(SCHED.betas[t].item()), "one step up adds beta_t, not 1 - abar_t"


@pytest.mark.parametrize("resample", [1, 2, 5])
def test_repaint_network_evaluations(resample):
    eps = Counting()
    x0 = images(n=3)
    E.inpaint(eps, SCHED, x0, E.make_mask("centre", 8), steps=7, resample=resample, generator=gen())
    assert eps.images == 3 * E.inpaint_nfe(SCHED.T, 7, resample) == 3 * (6 * resample + 1)
    with pytest.raises(ValueError, match="resample"):
        E.inpaint(eps, SCHED, x0, E.make_mask("centre", 8), steps=7, resample=0)


def test_repaint_with_one_resample_is_plain_replacement():
    x0, mask = images(), E.make_mask("right", 8)
    base = E.reverse_step(Counting(), SCHED, eta=1.0)
    plain = E.replacement_step(base, SCHED, x0, mask)
    wrapped = E.repaint_step(plain, SCHED, 1)
    x = images(seed=5)
    assert torch.equal(plain(x, 100, 80, gen(2)), wrapped(x, 100, 80, gen(2)))
    assert not torch.equal(plain(x, 100, 80, gen(2)), E.repaint_step(plain, SCHED, 3)(x, 100, 80, gen(2)))


# ----------------------------------------------------------------------------------------- SDEdit
def test_sdedit_at_strength_zero_returns_the_input():
    x = images()
    z = images(seed=1)
    assert torch.equal(E.sdedit_start(x, SCHED, 0.0, z), x)
    eps = Counting()
    out = E.sdedit(eps, SCHED, x, 0.0, steps=10, generator=gen())
    assert torch.equal(out, x) and eps.images == 0


def test_sdedit_at_strength_one_starts_from_nearly_pure_noise():
    x, z = images(), images(seed=1)
    start = E.sdedit_start(x, SCHED, 1.0, z)
    ab = SCHED.alpha_bars[-1].item()
    assert torch.allclose(start, math.sqrt(ab) * x + math.sqrt(1 - ab) * z, atol=1e-6)  # float32 rounding
    assert (start - z).abs().max() < 3 * math.sqrt(ab) + 1e-6
    sched = make_schedule("linear", 1000)
    eps = mixture_eps(sched)
    guides = [torch.full((500, 2), v) for v in (-1.0, 3.0)]
    a, b = (E.sdedit(eps, sched, gd, 1.0, steps=20, eta=0.0, generator=gen(1)) for gd in guides)
    same = ((a - b).norm(dim=1) < 0.1).float().mean().item()
    assert same > 0.85, f"at strength 1 the guide barely matters: only {same:.0%} of the points agree"
    a, b = (E.sdedit(eps, sched, gd, 0.5, steps=20, eta=0.0, generator=gen(1)) for gd in guides)
    assert ((a - b).norm(dim=1) < 0.1).float().mean().item() < 0.5, "at strength 0.5 it does"


def test_sdedit_trades_faithfulness_for_realism_on_a_mixture():
    sched = make_schedule("linear", 1000)
    eps = mixture_eps(sched)
    guide = torch.randn(400, 2, generator=gen(2)) * 3  # off the data: between and beyond the 8 modes
    gm = toy2d.mixture("8gaussians")
    dist, loglik = [], []
    for strength in (0.05, 0.3, 1.0):
        out = E.sdedit(eps, sched, guide, strength, steps=20, generator=gen(3))
        dist.append((out - guide).norm(dim=1).mean().item())
        loglik.append(gm.log_prob(out.double()).mean().item())
    assert dist[0] < dist[1] < dist[2]
    assert loglik[0] < loglik[1] < loglik[2] + 0.5


def test_sdedit_network_evaluations_scale_with_strength():
    for strength, nfe in ((0.25, 5), (0.5, 10), (1.0, 20)):
        eps = Counting()
        E.sdedit(eps, SCHED, images(n=1), strength, steps=20, generator=gen())
        assert eps.images == nfe


# ----------------------------------------------------------------------------------------- ILVR
def test_low_pass_is_a_projection_that_keeps_the_mean():
    x = images(n=3, size=28)
    for factor in (1, 2, 4, 7, 14):
        lp = E.low_pass(x, factor)
        assert lp.shape == x.shape
        assert torch.allclose(E.low_pass(lp, factor), lp, atol=1e-6), "idempotent"
        assert torch.allclose(lp.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6), "keeps the mean"
        y = images(n=3, size=28, seed=7)
        assert torch.allclose((E.low_pass(x, factor) * y).sum(), (x * E.low_pass(y, factor)).sum(), rtol=1e-4), \
            "self-adjoint: an orthogonal projection"
    assert torch.equal(E.low_pass(x, 1), x)
    blocks = E.low_pass(x, 4).reshape(3, 1, 7, 4, 7, 4)
    assert (blocks - blocks[:, :, :, :1, :, :1]).abs().max() == 0, "constant on 4x4 blocks"
    with pytest.raises(ValueError, match="divisor"):
        E.low_pass(x, 5)
    with pytest.raises(ValueError, match="B, C, H, W"):
        E.low_pass(x[0], 2)


def test_ilvr_output_has_the_reference_low_pass():
    ref = images(n=3, size=8)
    for factor in (2, 4):
        out = E.ilvr(Counting(), SCHED, ref, factor, steps=10, generator=gen())
        assert torch.allclose(E.low_pass(out, factor), E.low_pass(ref, factor), atol=1e-5)
        assert not torch.allclose(out, ref, atol=1e-2), "the details are the model's"
    x_low = images(n=2, size=4)
    out = E.super_resolve(Counting(), SCHED, x_low, size=8, steps=6, generator=gen())
    assert out.shape == (2, 1, 8, 8)
    assert torch.allclose(torch.nn.functional.avg_pool2d(out, 2), x_low, atol=1e-5)
    with pytest.raises(ValueError, match="dividing"):
        E.super_resolve(Counting(), SCHED, images(n=1, size=3), size=8)


def test_ilvr_correct_formula():
    x, ref, z = images(size=8), images(size=8, seed=1), images(size=8, seed=2)
    ab = SCHED.alpha_bars[70].item()
    ref_s = math.sqrt(ab) * ref + math.sqrt(1 - ab) * z
    want = x - E.low_pass(x, 2) + E.low_pass(ref_s, 2)
    assert torch.allclose(E.ilvr_correct(x, ref, SCHED, 70, z, 2), want, atol=1e-6)


# ----------------------------------------------------------------------------------------- relabel
def test_relabel_round_trip_on_an_exact_conditional_mixture():
    from diffcourse.grading.fixtures import LeakyMixtureModel

    sched = make_schedule("linear", 1000)
    model = LeakyMixtureModel(sched, keep=0.9)
    x0, y = toy2d.mixture("8gaussians").sample(200, gen(5), return_labels=True)
    x0 = x0.float()
    errs = [(E.relabel(model, sched, x0, y, y, steps=n, w=1.0) - x0).norm(dim=1).mean().item() for n in (5, 50)]
    assert errs[1] < errs[0] and errs[1] < 0.1
    moved = E.relabel(model, sched, x0, y, (y + 4) % 8, steps=50, w=3.0)
    assert (moved - x0).norm(dim=1).mean() > 1.0, "a new label moves the points to another mode"
    with pytest.raises(ValueError, match="invert_with"):
        E.relabel(model, sched, x0, y, y, invert_with="target")


def test_relabel_round_trip_with_the_shipped_cfg_model():
    from diffcourse.pretrained import load_pretrained, pretrained_schedule

    from diffcourse.data.mnist import load_mnist

    model, sched = load_pretrained("mnist-cfg"), pretrained_schedule("mnist-cfg")
    test_x, test_y = load_mnist("test")
    x0, y = test_x[:2], test_y[:2]  # two real test digits (a 7 and a 2)
    rec = E.relabel(model, sched, x0, y, y, steps=20, w=1.0)
    rmse = (rec - x0).pow(2).mean().sqrt().item()
    swapped = (rec - x0.flip(0)).pow(2).mean().sqrt().item()
    assert rmse < 0.2 and rmse < 0.5 * swapped, (rmse, swapped)
    with pytest.raises(ValueError, match="class-conditional"):
        E.relabel(load_pretrained("mnist-ddpm"), sched, x0, y, y, steps=2)


# ----------------------------------------------------------------------------------------- seams
def test_seam_score_exact_cases():
    mask = E.make_mask("left", 6)  # columns 0-2 hidden, 3-5 known
    flat = torch.zeros(1, 1, 6, 6)
    assert E.seam_score(flat, mask).item() == 0
    step = torch.where(mask > 0.5, torch.ones(1, 1, 6, 6), torch.zeros(1, 1, 6, 6))
    assert E.seam_score(step, mask).item() == pytest.approx(1.0)
    ramp = torch.arange(6.0).expand(1, 1, 6, 6)  # +1 per column everywhere
    assert E.seam_score(ramp, mask).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="boundary"):
        E.seam_score(flat, torch.ones(6, 6))


def test_everything_runs_on_the_given_device():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x0, mask = images(), E.make_mask("centre", 8)
    cpu = E.inpaint(Counting(), SCHED, x0, mask, steps=5, resample=2, generator=gen(), device="cpu")
    dev = E.inpaint(Counting(), SCHED, x0, mask, steps=5, resample=2, generator=gen(), device=device)
    assert dev.device.type == device and torch.allclose(dev.cpu(), cpu, atol=1e-4)
    assert E.ilvr(Counting(), SCHED, x0, 2, steps=4, generator=gen(), device=device).device.type == device
    assert E.sdedit(Counting(), SCHED, x0, 0.5, steps=4, generator=gen(), device=device).device.type == device


# ----------------------------------------------------------------------------------------- references for measuring
def test_visible_label_posterior_reads_the_label_from_the_known_pixels_only():
    """Training images whose top half encodes the label and whose bottom half is noise: the posterior from the top
    half is one-hot on the right label; from the bottom half alone it is no better than chance."""
    g = torch.Generator().manual_seed(0)
    train_y = torch.arange(200) % 10
    train_x = torch.rand(200, 1, 28, 28, generator=g)
    train_x[:, :, :14] = (train_y.float() / 10).reshape(-1, 1, 1, 1)
    query_y = torch.tensor([3, 7, 0])
    query = torch.rand(3, 1, 28, 28, generator=g)
    query[:, :, :14] = (query_y.float() / 10).reshape(-1, 1, 1, 1)
    top = E.visible_label_posterior(query, E.make_mask("bottom"), train_x, train_y, k=5)
    assert torch.equal(top.argmax(1), query_y) and torch.allclose(top.max(1).values, torch.ones(3))
    bottom_only = E.visible_label_posterior(query, E.make_mask("top"), train_x, train_y, k=5)
    assert bottom_only.max(1).values.max() < 1.0


def test_kid_against_a_fixed_reference_equals_kid():
    from diffcourse.metrics import kid

    g = torch.Generator().manual_seed(1)
    ref, x = torch.randn(300, 16, generator=g), torch.randn(40, 16, generator=g) + 0.3
    assert math.isclose(E.kid_against(ref)(x), kid(x, ref), rel_tol=1e-12)


def test_chapters_4_and_9_read_set_metrics_by_the_jackknife():
    """SW / floor (chapter 4) and KID (chapter 9) are metrics of a whole set: their verdicts use jackknife_difference,
    never the bootstrap (duplicated rows distort a set metric)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for name, metric in (("04_score_sde", "sw_metric"), ("09_editing", "realism")):
        cells = json.loads((root / f"notebooks/{name}.ipynb").read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert f"jackknife_difference({metric}" in code, name
        assert f"bootstrap_difference({metric}" not in code, name
