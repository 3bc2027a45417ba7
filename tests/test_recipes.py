"""The MNIST recipes' learning-rate schedule (`diffcourse.recipes.mnist.lr_multiplier`)."""
from __future__ import annotations

import dataclasses

import pytest

from diffcourse.recipes.mnist import RECIPES, lr_multiplier


def test_a_run_of_restart_at_steps_has_the_plain_cosine():
    recipe = RECIPES["mnist-ddpm"]
    R = recipe.restart_at
    plain = dataclasses.replace(recipe, restart_at=None)
    f, g = lr_multiplier(recipe, R), lr_multiplier(plain, R)
    assert [f(n) for n in range(0, R, 7)] == [g(n) for n in range(0, R, 7)]
    assert f(recipe.warmup) == pytest.approx(1.0) and f(R - 1) < 1e-6


def test_the_shipped_recipe_is_one_warm_restart():
    recipe = RECIPES["mnist-ddpm"]
    assert recipe.steps == 3 * recipe.restart_at == 19500   # 6500 steps, then a second cycle twice as long


def test_a_longer_run_continues_the_short_one_then_restarts_its_cosine():
    recipe = RECIPES["mnist-ddpm"]
    R, N, w, scale = recipe.restart_at, 3 * recipe.restart_at, recipe.warmup, recipe.restart_lr_scale
    short, long = lr_multiplier(recipe, R), lr_multiplier(recipe, N)
    assert [long(n) for n in range(R)] == [short(n) for n in range(R)]  # `--resume --steps N` continues exactly
    assert long(R) == pytest.approx(scale / w)                           # warm-up again …
    assert long(R + w) == pytest.approx(scale)                           # … to the restart's peak
    assert long((R + w + N) // 2) == pytest.approx(scale / 2, rel=1e-3)  # cosine half-way down
    assert long(N - 1) < 1e-6


def test_the_constant_schedule_ignores_restarts():
    recipe = dataclasses.replace(RECIPES["mnist-ddpm"], lr_schedule="constant", warmup=0)
    assert lr_multiplier(recipe, 20000) is None


def test_snapshots_along_the_way_hold_the_ema_weights_and_the_time_spent(tmp_path):
    import torch

    from diffcourse.training import train

    model = torch.nn.Linear(2, 1)
    batch = lambda g: torch.randn(16, 2, generator=g)  # noqa: E731
    loss = lambda m, x, g: (m(x) - x.sum(1, keepdim=True)).pow(2).mean()  # noqa: E731
    result = train(model, loss, batch, 6, checkpoint=tmp_path / "train.pt", snapshot_steps=(2, 4), progress=False)
    snaps = sorted((tmp_path / "snapshots").glob("*.pt"))
    assert [p.name for p in snaps] == ["step000002.pt", "step000004.pt"]
    s4 = torch.load(snaps[1], weights_only=True)
    assert s4["step"] == 4 and s4["seconds"] > 0 and s4["cpu_seconds"] > 0
    assert set(s4["state_dict"]) == set(result.ema_model.state_dict())
    assert torch.load(tmp_path / "train.pt", weights_only=True)["cpu_seconds"] >= s4["cpu_seconds"]
