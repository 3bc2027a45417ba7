"""Chapter 2's MNIST training exercise (``mnist_ddpm``): stage 1 names each mistake and lets right code through.

Stage 2 (the 900-step training and 256 digits, about 3 minutes) runs once, in the grading test, on the solution notebook; its
calibration (the solution and broken versions) is ``benchmarks/mnist_training_exercise.py``. Here stage 2 is
replaced by a recorder, so these tests take seconds and also prove that wrong code never reaches the training.
The correct versions are written from the equations, differently from the package's reference.
"""
from __future__ import annotations

import math

import pytest
import torch

from diffcourse.grading import check, ch02
from diffcourse.recipes.mnist_budget import budget_lr, budget_model, train_on_budget
from diffcourse.samplers.ddpm import ddpm_step


pytestmark = pytest.mark.usefixtures("fresh_grading")


@pytest.fixture
def stage2(monkeypatch):
    """Replace the training stage by a recorder that reports a passing run."""
    calls = []

    def fake(step_fn, sample_fn, ctx):
        calls.append((step_fn, sample_fn))
        return dict(confident_share=0.8, top_share=0.14, top_digit=1, counts=[6] * 10, passed=True,
                    losses=[0.1] * 100, seconds=1.0, threads=1)

    monkeypatch.setattr(ch02, "_train_and_draw", fake)
    return calls


# ============================================================================ right code, with switches for mistakes
def train_step(model, ema_model, optimizer, x0, t, eps, alpha_bars, ema_decay, *, target="eps", time=True, shift=0,
               sqrt=True, zero_grad=True, step=True, step_first=False, ema="right", in_no_grad=True, reduce="mean"):
    ab = alpha_bars.to(x0.dtype)[t].view(-1, *([1] * (x0.dim() - 1)))
    xt = (ab.sqrt() if sqrt else ab) * x0 + ((1 - ab).sqrt() if sqrt else 1 - ab) * eps
    tt = (t + shift) if time else torch.zeros_like(t)
    goal = {"eps": eps, "x0": x0}[target]
    err = (model(xt, tt) - goal) ** 2
    loss = err.sum() if reduce == "sum" else err.mean()
    if zero_grad:
        optimizer.zero_grad()
    if step_first:
        optimizer.step()
    loss.backward()
    if step and not step_first:
        optimizer.step()
    if ema != "none":
        ctx = torch.no_grad() if in_no_grad else torch.enable_grad()
        with ctx:
            for q, p in zip(ema_model.parameters(), model.parameters()):
                if ema == "right":
                    q.copy_(ema_decay * q + (1 - ema_decay) * p)
                elif ema == "swapped":
                    q.copy_((1 - ema_decay) * q + ema_decay * p)
                elif ema == "copy":
                    q.copy_(p)
    return float(loss.detach())


def sample(eps_fn, schedule, x_T, generator, *, order="down", last=True, noise_at_0=False, fresh=True,
           use_generator=True, variance="beta"):
    x = x_T.clone()
    ts = list(range(schedule.T - 1, -1, -1)) if order == "down" else list(range(schedule.T))
    if not last:
        ts = [t for t in ts if t != 0]
    z_once = None
    for t in ts:
        if t > 0 or noise_at_0:
            z = torch.randn(x.shape, generator=generator if use_generator else None)
            if not fresh:
                z_once = z if z_once is None else z_once
                z = z_once
        else:
            z = torch.zeros_like(x)
        x = ddpm_step(eps_fn, schedule, x, t, z, variance)
        if t == 0 and noise_at_0:
            x = x + math.sqrt(float(schedule.betas[0])) * z
    return x


def sample_lerp(eps_fn, schedule, x_T, generator):
    """Written out by hand, from the posterior-mean formula with the beta-tilde variance."""
    x = x_T
    for t in reversed(range(schedule.T)):
        tt = torch.full((x.shape[0],), t)
        b, a, ab = (float(v[t]) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
        x = (x - b / math.sqrt(1 - ab) * eps_fn(x, tt)) / math.sqrt(a)
        if t:
            x = x + math.sqrt(float(schedule.posterior_variance[t])) * torch.randn(x.shape, generator=generator)
    return x


def _run(step=train_step, loop=sample, **_):
    return check("mnist_ddpm", (step, loop), quiet=True)


def test_right_code_passes_stage_one_and_reaches_the_training(stage2):
    assert _run().passed
    assert _run(loop=sample_lerp).passed  # β̃ variance, written by hand
    assert _run(loop=lambda *a: sample(*a, variance="beta_tilde")).passed
    assert len(stage2) == 3


@pytest.mark.parametrize("switch, phrase", [
    (dict(target="x0"), "regress x0"),
    (dict(time=False), "t = 0 for every example"),
    (dict(shift=-1), "at t − 1"),
    (dict(shift=1), "at t + 1"),
    (dict(sqrt=False), "without the square roots"),
    (dict(reduce="sum"), "sum the squared errors"),
    (dict(zero_grad=False), "forget optimizer.zero_grad()"),
    (dict(step=False), "never call optimizer.step()"),
    (dict(step_first=True), "before loss.backward()"),
    (dict(ema="none"), "never update ema_model"),
    (dict(ema="swapped"), "swap d and 1 − d"),
    (dict(ema="copy"), "copy the weights into ema_model"),
])
def test_each_training_step_mistake_is_named_before_any_training(stage2, switch, phrase):
    result = _run(step=lambda *a: train_step(*a, **switch))
    assert not result.passed
    assert phrase in result.message, result.message
    assert not stage2


def test_an_ema_update_outside_no_grad_is_named(stage2):
    def step(model, ema_model, optimizer, x0, t, eps, alpha_bars, d):
        loss = train_step(model, ema_model, optimizer, x0, t, eps, alpha_bars, d, ema="none")
        for q, p in zip(ema_model.parameters(), model.parameters()):
            q.mul_(d).add_((1 - d) * p)  # p requires grad: q now carries a history
        return loss
    result = _run(step=step)
    assert not result.passed and "gradient history" in result.message and not stage2


@pytest.mark.parametrize("switch, phrase", [
    (dict(order="up"), "run the loop forwards"),
    (dict(last=False), "stop before t = 0"),
    (dict(noise_at_0=True), "add noise at t = 0 too"),
    (dict(fresh=False), "draw z once"),
    (dict(use_generator=False), "ignores the generator"),
])
def test_each_sampling_loop_mistake_is_named_before_any_training(stage2, switch, phrase):
    result = _run(loop=lambda *a: sample(*a, **switch))
    assert not result.passed
    assert phrase in result.message, result.message
    assert not stage2


def test_the_pair_is_required():
    result = check("mnist_ddpm", train_step, quiet=True)
    assert not result.passed and "(train_step, sample_digits)" in result.message
    assert not check("mnist_ddpm", (train_step, 3), quiet=True).passed


def test_verdict_reads_noise_as_one_digit_and_fails_it():
    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with torch.no_grad():
        classifier[1].weight.zero_()
        classifier[1].bias.copy_(torch.tensor([0.0] * 8 + [20.0, 0.0]))  # everything is a confident "8"
    v = ch02.mnist_verdict(torch.randn(40, 1, 28, 28), classifier)
    assert v["confident_share"] == 1.0 and v["top_digit"] == 8 and v["top_share"] == 1.0
    assert not v["passed"]


def test_train_on_budget_calls_the_step_with_the_documented_arguments():
    seen, lrs = [], []

    def step(model, ema_model, optimizer, x0, t, eps, alpha_bars, d):
        seen.append((x0.shape, t.shape, eps.shape, alpha_bars.shape, d, ema_model is not model))
        lrs.append(optimizer.param_groups[0]["lr"])
        return torch.tensor(0.5)

    images = torch.rand(20, 1, 28, 28) * 2 - 1
    run = train_on_budget(step, steps=3, batch_size=4, model=budget_model(), images=images)
    assert run.losses == [0.5] * 3
    assert seen[0] == ((4, 1, 28, 28), (4,), (4, 1, 28, 28), (1000,), 0.99, True)
    assert lrs == [budget_lr(n, 3) for n in range(3)]  # the schedule is the run's own (3 steps here)


def test_the_budget_learning_rate_warms_up_then_decays_to_zero():
    from diffcourse.recipes.mnist_budget import BUDGET, budget_lr

    lr, warm, steps = BUDGET["lr"], BUDGET["warmup"], BUDGET["steps"]
    assert budget_lr(0, steps) == pytest.approx(lr / warm)
    assert budget_lr(warm - 1, steps) == pytest.approx(lr)
    assert budget_lr(warm, steps) == pytest.approx(lr)
    assert budget_lr((warm + steps) // 2, steps) == pytest.approx(lr / 2, rel=0.01)
    assert budget_lr(steps - 1, steps) < lr * 1e-4


def test_stage_two_calls_the_network_at_the_long_chains_timesteps():
    from diffcourse.recipes.mnist_budget import budget_schedule, respaced_eps_fn

    seen = []
    short, f = respaced_eps_fn(lambda x, t: seen.append(torch.as_tensor(t).tolist()) or torch.zeros_like(x),
                               budget_schedule(), ch02.MNIST_SAMPLE_STEPS)
    assert short.T == ch02.MNIST_SAMPLE_STEPS
    f(torch.zeros(2, 1), torch.full((2,), short.T - 1))
    f(torch.zeros(2, 1), 0)
    assert seen == [[999, 999], 0]
    torch.testing.assert_close(short.alpha_bars[-1], budget_schedule().alpha_bars[-1])


def test_verdict_counts_only_confident_digits_for_the_class_balance():
    def classifier(x):  # reads the first 10 pixels of the top row as logits (scaled), the rest as nothing
        return 20 * x[:, 0, 0, :10]

    def digits(labels, smudges):
        x = torch.zeros(len(labels) + smudges, 1, 28, 28)
        x[torch.arange(len(labels)), 0, 0, torch.tensor(labels)] = 1.0  # a confident digit of that label
        return x

    balanced = digits([d for d in range(10) for _ in range(6)], smudges=40)  # 60 % confident, 10 % each
    v = ch02.mnist_verdict(balanced, classifier)
    assert v["confident_share"] == pytest.approx(0.6) and v["top_share"] == pytest.approx(0.1) and v["passed"]
    assert sum(v["counts"]) == 60  # the 40 smudges (uniform p = 0.1) are not counted
    skewed = digits([8] * 30 + list(range(10)) * 3, smudges=40)  # 60 % confident, half of them 8s
    v = ch02.mnist_verdict(skewed, classifier)
    assert v["top_digit"] == 8 and v["top_share"] == pytest.approx(33 / 60) and not v["passed"]
