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


# ---------------------------------------------------------------------------------------------- chapter 10's package
import itertools
import math

import pytest

from diffcourse import flows
from diffcourse.data import toy2d
from diffcourse.data.toy2d import GaussianMixture
from diffcourse.samplers import SAMPLERS, ddim_sample
from diffcourse.samplers.flow import flow_grid, flow_sample
from diffcourse.samplers.sde import VPSDE
from diffcourse.schedules import make_schedule


def _mixture_pairs(gm, n, t, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = gm.sample(n, g).double()
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x0, eps, (1 - t) * x0 + t * eps


@pytest.mark.parametrize("t", [0.05, 0.3, 0.7, 0.95])
def test_the_marginal_velocity_of_a_mixture_is_the_conditional_mean_of_the_conditional_velocity(t):
    """Nadaraya-Watson regression of eps - x0 on x_t (a local average over 10^6 pairs) against the closed form."""
    gm = GaussianMixture(torch.tensor([[-1.5, 0.0], [1.0, 1.0], [0.5, -1.5]]), std=0.3,
                         weights=torch.tensor([0.5, 0.3, 0.2]))
    x0, eps, xt = _mixture_pairs(gm, 1_000_000, t, seed=1)
    s = math.sqrt((1 - t) ** 2 * 0.3 ** 2 + t ** 2)  # the std of each component of p_t
    queries = (1 - t) * gm.means + 0.5 * s * torch.tensor([1.0, -1.0], dtype=torch.float64)  # where p_t has mass
    h = 0.04
    w = torch.exp(-((xt[None] - queries[:, None]) ** 2).sum(-1) / (2 * h ** 2))  # (3, n)
    local = (w @ (eps - x0)) / w.sum(1, keepdim=True)
    exact = flows.mixture_marginal_velocity(gm, queries, t)
    assert torch.allclose(local, exact, atol=0.08), (local, exact)


def test_regressing_the_conditional_velocity_costs_the_marginal_one_plus_a_constant():
    """L_CFM(f) - L_CFM(v*) = E|f - v*|^2 for any f: the cross term has mean zero (within 4 standard errors)."""
    gm = toy2d.mixture("8gaussians")
    for t in (0.2, 0.6, 0.9):
        x0, eps, xt = _mixture_pairs(gm, 400_000, t, seed=2)
        u, v_star = eps - x0, flows.mixture_marginal_velocity(gm, xt, t)
        f = v_star + 0.5 * torch.sin(2 * xt)
        cross = 2 * ((f - v_star) * (v_star - u)).sum(1)
        assert abs(float(cross.mean())) < 4 * float(cross.std()) / math.sqrt(len(cross))
        wrong = ((f - u) ** 2).sum(1) - ((f - v_star) ** 2).sum(1)  # what a learner "x0 - eps" would get differs
        assert float(wrong.mean()) > 0


def test_conversions_are_inverse_to_each_other_for_every_pair_of_predictions():
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(6, 1, 4, 4, generator=g,
                                                                                     dtype=torch.float64)
    t = torch.rand(6, generator=g, dtype=torch.float64) * 0.9 + 0.05
    xt = flows.linear_path(x0, eps, t)
    for source, target in itertools.product(flows.PREDICTIONS, repeat=2):
        pred = flows.from_x0_eps(x0, eps, t, source)
        torch.testing.assert_close(flows.convert(pred, xt, t, source, target), flows.from_x0_eps(x0, eps, t, target))
    torch.testing.assert_close(flows.from_x0_eps(x0, eps, t, "velocity"), flows.conditional_velocity(x0, eps))
    with pytest.raises(ValueError, match="kind must be one of"):
        flows.to_x0_eps(xt, xt, t, "noise")


def test_the_score_on_the_linear_path_is_minus_eps_over_t_for_a_mixture():
    gm = toy2d.mixture("8gaussians")
    t = 0.4
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    s2 = (1 - t) ** 2 * gm.std ** 2 + t ** 2
    score = GaussianMixture(gm.means * (1 - t), math.sqrt(s2)).score(x)
    v = flows.mixture_marginal_velocity(gm, x, t)
    tt = torch.full((50,), t, dtype=torch.float64)
    torch.testing.assert_close(flows.convert(score, x, tt, "score", "velocity"), v)


def test_the_linear_and_vp_paths_have_the_velocities_of_their_time_derivatives():
    g = torch.Generator().manual_seed(5)
    x0, eps = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    t, h = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64), 1e-5
    for path in (flows.LINEAR_PATH, flows.vp_path(VPSDE(make_schedule("linear", 1000)))):
        finite = (path.sample(x0, eps, t + h) - path.sample(x0, eps, t - h)) / (2 * h)
        torch.testing.assert_close(finite, path.velocity(x0, eps, t), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(flows.LINEAR_PATH.sample(x0, eps, t), flows.linear_path(x0, eps, t))


def test_cfm_loss_targets_agree_on_the_oracle_and_differ_in_weight():
    g = torch.Generator().manual_seed(6)
    x0, eps = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g)
    t = torch.rand(8, generator=g)
    for target, value in (("velocity", eps - x0), ("eps", eps), ("x0", x0)):
        assert float(flows.cfm_loss(lambda xt, tt, v=value: v, x0, eps, t, target)) == 0.0
    assert float(flows.cfm_loss(lambda xt, tt: x0 - eps, x0, eps, t)) > 1.0
    with pytest.raises(ValueError, match="target must be"):
        flows.cfm_loss(lambda xt, tt: xt, x0, eps, t, "score")


def test_the_ot_coupling_is_the_best_permutation_by_brute_force():
    g = torch.Generator().manual_seed(7)
    for _ in range(10):
        a, b = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
        perm = flows.ot_coupling(a, b)
        assert sorted(perm.tolist()) == list(range(6))
        best = min(float(((a - b[list(p)]) ** 2).sum()) for p in itertools.permutations(range(6)))
        assert float(((a - b[perm]) ** 2).sum()) == pytest.approx(best, rel=1e-6)
    with pytest.raises(ValueError, match="equal batches"):
        flows.ot_coupling(torch.zeros(3, 2), torch.zeros(4, 2))


def test_ddim_with_eta_0_is_euler_on_the_diffusion_models_flow_in_linear_time():
    from diffcourse.grading.fixtures import exact_eps_fn

    schedule = make_schedule("linear", 1000)
    eps_fn = exact_eps_fn(schedule)
    x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    abar = schedule.alpha_bars[-1]
    for steps in (1, 4, 25):
        ddim = ddim_sample(eps_fn, schedule, x_T, steps=steps)
        times = flows.ddim_linear_times(schedule, steps)
        flow = flow_sample(flows.diffusion_velocity_fn(eps_fn, schedule), x_T / (abar.sqrt() + (1 - abar).sqrt()),
                           times=times)
        torch.testing.assert_close(flow, ddim, rtol=1e-9, atol=1e-9)


def test_time_maps_invert_each_other_and_hit_the_table():
    schedule = make_schedule("linear", 1000)
    ab = schedule.alpha_bars[[0, 10, 500, 999]]
    torch.testing.assert_close(flows.alpha_bar_of(flows.linear_time_of(ab)), ab)
    torch.testing.assert_close(flows.fractional_timestep(schedule, ab), torch.tensor([0.0, 10, 500, 999],
                                                                                     dtype=torch.float64))
    assert float(flows.fractional_timestep(schedule, torch.tensor(1.0))) == -1.0


def test_euler_is_exact_on_straight_paths_and_straightness_measures_it():
    x0 = torch.randn(20, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    eps = torch.randn(20, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    straight = lambda x, t: eps - x0  # noqa: E731  (the velocity of the straight pairs)
    torch.testing.assert_close(flow_sample(straight, eps, steps=1), x0)
    assert float(flows.straightness(straight, eps, steps=10).max()) < 1e-20
    gm = toy2d.mixture("8gaussians")
    curved = lambda x, t: flows.mixture_marginal_velocity(gm, x, float(t[0]))  # noqa: E731
    assert float(flows.straightness(curved, eps, steps=50).mean()) > 0.1


def test_flow_samplers_walk_a_decreasing_grid_and_heun_is_second_order():
    assert SAMPLERS["flow_euler"].nfe(7) == 7 and SAMPLERS["flow_heun"].nfe(7) == 14
    assert torch.equal(flow_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    v = lambda x, t: x * t[:, None]  # noqa: E731  dx/dt = t x: x(0) = x(1) exp(-1/2)
    x1 = torch.ones(3, 2, dtype=torch.float64)
    exact = x1 * math.exp(-0.5)
    errors = {m: [float((flow_sample(v, x1, steps=k, method=m) - exact).abs().max()) for k in (20, 40)]
              for m in ("euler", "heun")}
    assert 1.8 < errors["euler"][0] / errors["euler"][1] < 2.2
    assert 3.6 < errors["heun"][0] / errors["heun"][1] < 4.4
    with pytest.raises(ValueError, match="strictly decreasing"):
        flow_sample(v, x1, times=[0.0, 1.0])


def test_reflow_pairs_are_the_odes_ends_from_the_given_noise():
    g = torch.Generator().manual_seed(11)
    x0, eps = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    straight = lambda x, t: eps - x0  # noqa: E731  each noise's straight line to its own data point
    torch.testing.assert_close(flows.reflow_pairs(straight, eps, steps=3), x0)
    curved = lambda x, t: x * t[:, None]  # noqa: E731  dx/dt = t x ends at x(1) exp(-1/2)
    torch.testing.assert_close(flows.reflow_pairs(curved, eps, steps=200), eps * math.exp(-0.5), rtol=1e-5, atol=1e-6)


def test_the_flow_paths_widget_swaps_frames_without_recomputing():
    from diffcourse.widgets import FlowPathsScrubber

    g = torch.Generator().manual_seed(12)
    runs, fine = {}, {}
    for name, bend in (("straight", 0.0), ("curved", 1.0)):
        fine[name] = torch.randn(11, 5, 2, generator=g).cumsum(0) * bend
        runs[name] = {k: (torch.randn(k + 1, 5, 2, generator=g), torch.randn(50, 2, generator=g)) for k in (1, 4)}
    w = FlowPathsScrubber(runs, fine, data=torch.randn(50, 2, generator=g), notes={"curved": {1: "a", 4: "b"}})
    first = w.select(0, "straight")
    assert w.select(1) != first and w.nfe() == 4
    assert w.select(1, "curved") != w.select(1, "straight")
    w.select(1, "curved")
    assert w.caption.value == "curved, NFE = 4: b"
    with pytest.raises(ValueError, match="same NFE values"):
        FlowPathsScrubber({"a": {1: runs["straight"][1]}, "b": runs["curved"]}, fine)


def test_the_2d_study_models_come_back_from_their_file_as_they_were_saved(tmp_path):
    from diffcourse.flow_study import load_toy_models, save_toy_models, toy_sample
    from diffcourse.models import ToyMLP
    from diffcourse.recipes.toy2d_flow import FLOW_TOY

    torch.manual_seed(0)
    models = {m: {"model": ToyMLP(hidden=FLOW_TOY["hidden"], depth=FLOW_TOY["depth"]), "seconds": 1.5}
              for m in ("i-cfm", "ddim-x0")}
    models["ddim-x0"]["schedule"] = make_schedule("linear", FLOW_TOY["T"])
    save_toy_models(models, tmp_path / "toy.pt")
    loaded = load_toy_models(tmp_path / "toy.pt")
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    for m in models:
        assert loaded[m]["seconds"] == 1.5
        assert torch.equal(toy_sample(m, loaded[m], x_T, 4), toy_sample(m, models[m], x_T, 4))
    assert "schedule" in loaded["ddim-x0"] and "schedule" not in loaded["i-cfm"]
    with pytest.raises(FileNotFoundError, match="toy2d-cache"):
        load_toy_models(tmp_path / "missing.pt")


# ---------------------------------------------------------------------------------------------- the time grid axis
def _toy_entry(kind: str, seed: int = 0) -> dict:
    from diffcourse.models import ToyMLP
    from diffcourse.recipes.toy2d_flow import FLOW_TOY

    torch.manual_seed(seed)
    model = ToyMLP(hidden=16, depth=1).eval().requires_grad_(False)
    return {"model": model, "schedule": make_schedule("linear", FLOW_TOY["T"])} if kind.startswith("ddim") else \
        {"model": model}


def test_both_time_grids_start_at_ddims_first_time_end_at_the_data_and_coincide_at_one_step():
    from diffcourse.flow_study import toy_grid

    for nfe in (1, 2, 8):
        u, d = toy_grid("uniform", nfe), toy_grid("ddim", nfe)
        assert len(u) == len(d) == nfe + 1 and float(u[0]) == float(d[0]) and abs(float(u[0]) - 0.9937) < 1e-3
        assert float(u[-1]) == float(d[-1]) == 0.0 and bool((u[1:] < u[:-1]).all()) and bool((d[1:] < d[:-1]).all())
        assert torch.allclose(u[1:] - u[:-1], u[1:2] - u[:1])                 # evenly spaced
    assert torch.equal(toy_grid("uniform", 1), toy_grid("ddim", 1))
    assert float(toy_grid("ddim", 4)[1]) > float(toy_grid("uniform", 4)[1])  # DDIM's steps crowd near t = 1


def test_a_diffusion_model_by_euler_on_ddims_grid_is_its_ddim_and_the_uniform_grid_differs():
    from diffcourse.flow_study import toy_grid_sample, toy_sample

    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    for kind in ("ddim-eps", "ddim-x0"):
        entry = _toy_entry(kind)
        ddim = toy_sample(kind, entry, x_T, 4)
        assert torch.allclose(toy_grid_sample(kind, entry, x_T, 4, "ddim"), ddim, atol=1e-4)
        assert (toy_grid_sample(kind, entry, x_T, 4, "uniform") - ddim).abs().max() > 1e-2


def test_the_effective_weights_integrate_to_one_and_the_eps_loss_puts_little_weight_near_noise():
    from diffcourse.flow_study import effective_weights

    t = torch.linspace(1e-3, 1 - 1e-3, 4001, dtype=torch.float64)
    w = effective_weights(t)
    for v in w.values():
        assert abs(float(torch.trapezoid(v, t)) - 1) < 1e-6 and bool((v >= 0).all())
    eps = w["DDPM L_simple (eps, uniform tau)"]
    assert float(torch.trapezoid(eps * (t > 0.9), t)) < 0.02 < float(torch.trapezoid(eps * (t < 0.5), t))
    assert float(w["flow matching (uniform t)"].std()) < 1e-12  # constant in t
    snr = ((1 - t) / t) ** 2  # min-SNR-5 is L_simple times min(SNR, 5)/SNR, up to the normalisation
    ratio = w["min-SNR-5 (eps, uniform tau)"] / eps / (snr.clamp(max=5) / snr)
    ok = eps > 1e-6
    assert float(ratio[ok].max() / ratio[ok].min()) < 1 + 1e-9


def test_the_verdict_table_names_the_winner_only_where_the_seeds_agree():
    from diffcourse.flow_study import verdict_table

    runs = [{"a": {"sw_ratio": {"1": 1.0, "2": 5.0}}, "b": {"sw_ratio": {"1": 3.0, "2": 1.0}}},
            {"a": {"sw_ratio": {"1": 1.1, "2": 1.0}}, "b": {"sw_ratio": {"1": 3.2, "2": 4.0}}},
            {"a": {"sw_ratio": {"1": 0.9, "2": 3.0}}, "b": {"sw_ratio": {"1": 2.9, "2": 2.0}}}]
    table = verdict_table(runs, [("a", "b")], nfes=(1, 2))
    row = table.splitlines()[-1]
    assert "**a** by 2.03" in row and "not resolved" in row.split("|")[3] and "**" not in row.split("|")[3]


def test_the_floor_draws_start_with_the_studys_own_floor():
    from diffcourse.flow_study import toy_floor_draws, toy_sets
    from diffcourse.metrics import sliced_wasserstein

    draws = toy_floor_draws(3, n=300, draws=4)
    sets = toy_sets(3, 300)
    assert draws[0] == sliced_wasserstein(sets["other"], sets["data"]) and len(set(draws)) == 4


def test_the_x0_loss_weights_the_velocity_error_by_t_squared_and_sits_near_noise():
    from diffcourse.flow_study import effective_weights

    t = torch.linspace(1e-3, 1 - 1e-3, 4001, dtype=torch.float64)
    w = effective_weights(t)
    x0, eps = w["DDPM x0-loss (x0, uniform tau)"], w["DDPM L_simple (eps, uniform tau)"]
    ok = eps > 1e-6
    ratio = x0[ok] / eps[ok] / (t[ok] / (1 - t[ok])) ** 2  # x0_hat - x0 = -t (v_hat - v), eps_hat - eps = (1-t)(...)
    assert float(ratio.max() / ratio.min()) < 1 + 1e-9
    assert float(torch.trapezoid(x0 * (t > 0.5), t)) > 0.5 > float(torch.trapezoid(eps * (t > 0.5), t))


def test_over_mean_floor_rescales_every_ratio_and_keeps_the_raw_sw():
    from diffcourse.flow_study import over_mean_floor

    scores = {"a": {"floor": 0.04, "sw_ratio": {"1": 2.0, "2": 1.5}, "sw_ratio_heun": {"2": 1.25},
                    "straightness": 0.5}}
    out = over_mean_floor(scores, 0.05)
    assert out["a"]["floor"] == 0.05 and out["a"]["straightness"] == 0.5
    for key in ("sw_ratio", "sw_ratio_heun"):
        for k, v in scores["a"][key].items():
            assert abs(out["a"][key][k] * 0.05 - v * 0.04) < 1e-12  # the same SW, over another floor
    assert scores["a"]["sw_ratio"]["1"] == 2.0  # the input is not changed


def test_plot_pairs_draws_a_random_subset_of_an_ordered_batch():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from diffcourse.flow_study import plot_pairs

    x0 = torch.cat([torch.ones(128, 2), -torch.ones(128, 2)])  # ordered: the upper half first, like the moons
    fig, ax = plt.subplots()
    plot_pairs(ax, x0, torch.zeros(256, 2), "t", n=60)
    drawn = ax.collections[1].get_offsets()  # the data points' scatter
    plt.close(fig)
    assert len(drawn) == 60 and (drawn[:, 0] > 0).any() and (drawn[:, 0] < 0).any()
