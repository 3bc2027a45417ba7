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
