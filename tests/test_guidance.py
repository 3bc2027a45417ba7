import math

import pytest
import torch

from diffcourse.data import toy2d
from diffcourse.models import ToyMLP
from diffcourse.samplers.guidance import (cfg_combine, cfg_combine_paper, cfg_eps_fn, classifier_guided_eps,
                                          classifier_guided_eps_fn, classifier_log_prob_grad, w_from_paper)
from diffcourse.schedules import make_schedule


def _conditional_model():
    torch.manual_seed(0)
    return ToyMLP(hidden=16, depth=1, num_classes=3)


def test_cfg_w1_is_conditional_and_w0_unconditional():
    m = _conditional_model()
    x, t, y = torch.randn(6, 2), torch.randint(0, 100, (6,)), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        assert torch.allclose(cfg_eps_fn(m, y, 1.0)(x, t), m(x, t, y))
        assert torch.allclose(cfg_eps_fn(m, y, 0.0)(x, t), m(x, t, None), atol=1e-6)
        e_c, e_u = m(x, t, y), m(x, t, None)
        assert torch.allclose(cfg_eps_fn(m, y, 3.0)(x, t), e_u + 3 * (e_c - e_u), atol=1e-5)


def test_the_two_conventions_agree_after_mapping():
    g = torch.Generator().manual_seed(1)
    e_c, e_u = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    for w_prime in (0.0, 0.5, 2.0, 7.0):
        assert torch.allclose(cfg_combine_paper(e_c, e_u, w_prime), cfg_combine(e_c, e_u, w_from_paper(w_prime)), atol=1e-6)
    assert torch.allclose(cfg_combine_paper(e_c, e_u, 0.0), e_c)


def test_cfg_needs_a_conditional_model():
    with pytest.raises(ValueError, match="class-conditional"):
        cfg_eps_fn(ToyMLP(hidden=8, depth=1), torch.tensor([0]), 2.0)


def test_classifier_guided_eps_with_exact_classifier_is_the_exact_conditional():
    """On the 8-Gaussian mixture, classes = components. With the exact noisy classifier p_t(k|x) (the
    responsibilities of the noised mixture) and s = 1, the guided eps equals the exact eps of component k alone."""
    gm, s = toy2d.mixture("8gaussians"), make_schedule("linear", T=1000)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2
    for t in (20, 300, 800):
        ab = float(s.alpha_bars[t])
        noised = gm.noised(ab)
        eps_uncond = -math.sqrt(1 - ab) * noised.score(x)
        k = 3
        grad = classifier_log_prob_grad(lambda xx: noised.component_log_probs(xx).log_softmax(1)[:, k], x)
        guided = classifier_guided_eps(eps_uncond, grad, ab, scale=1.0)
        component = toy2d.GaussianMixture(noised.means[k:k + 1], noised.std)
        exact_conditional = -math.sqrt(1 - ab) * component.score(x)
        assert torch.allclose(guided, exact_conditional, atol=1e-8)


def test_classifier_guided_eps_fn_matches_manual():
    s = make_schedule("linear", T=100)
    torch.manual_seed(0)

    class Clf(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)

        def forward(self, x, t):
            return self.lin(torch.cat([x, t.float()[:, None] / 100], 1))

    clf, base = Clf(), (lambda x, t: 0.5 * x)
    x, t, y = torch.randn(5, 2), torch.full((5,), 40), torch.tensor([0, 1, 2, 3, 0])
    got = classifier_guided_eps_fn(base, clf, s, y, 2.0)(x, t)
    grad = classifier_log_prob_grad(lambda xx: clf(xx, t).log_softmax(1).gather(1, y[:, None])[:, 0], x)
    assert torch.allclose(got, 0.5 * x - 2.0 * (1 - s.alpha_bars[40]).sqrt().float() * grad, atol=1e-6)
    assert torch.equal(classifier_guided_eps_fn(base, clf, s, y, 0.0)(x, t), 0.5 * x)


def test_toy_guidance_recipes_learn():
    """The 2D recipes of chapters 5 and 6, briefly trained: the classifier beats chance at low noise and the
    conditional model follows its label."""
    from diffcourse.objectives import eps_fn
    from diffcourse.recipes.toy2d import train_toy_conditional_ddpm, train_toy_noisy_classifier
    from diffcourse.samplers.ddim import ddim_sample

    clf, s = train_toy_noisy_classifier(steps=150, progress=False)
    gm = toy2d.mixture("8gaussians")
    x0, k = gm.sample(500, torch.Generator().manual_seed(0), return_labels=True)
    with torch.no_grad():
        acc = (clf.ema_model(x0, torch.full((500,), 10)).argmax(1) == k).float().mean().item()
    assert acc > 0.6
    cond, s = train_toy_conditional_ddpm(steps=300, progress=False)
    y = torch.full((300,), 2)
    x = ddim_sample(eps_fn(cond.ema_model, s, y=y), s, (300, 2), steps=20, generator=torch.Generator().manual_seed(1))
    assert (gm.responsibilities(x.double()).argmax(1) == 2).float().mean() > 0.5


def test_within_class_spread_and_accuracy():
    from diffcourse.metrics import classifier_accuracy, within_class_spread

    g = torch.Generator().manual_seed(0)
    f = torch.randn(200, 5, generator=g)
    y = torch.arange(200) % 4
    assert abs(within_class_spread(f, y) - 1.0) < 0.2
    assert within_class_spread(f * 0.5, y) == pytest.approx(within_class_spread(f, y) * 0.25)

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.nn.functional.one_hot((x.flatten(1).sum(1) > 0).long(), 10).float() + self.w

    images = torch.cat([torch.ones(3, 1, 28, 28), -torch.ones(2, 1, 28, 28)])
    assert classifier_accuracy(images, torch.tensor([1, 1, 1, 0, 5]), Fixed()) == pytest.approx(0.8)


@pytest.mark.parametrize("w, calls", [(0.0, [(6, {3})]), (1.0, [(6, {0, 1, 2})]), (2.5, [(12, {0, 1, 2, 3})])])
def test_cfg_evaluates_one_branch_at_w0_and_w1_and_both_otherwise(w, calls):
    """w = 0 is the unconditional model alone: one evaluation per step on the null label, like w = 1 on the labels."""
    m = _conditional_model()
    seen = []
    original = m.forward

    def counting(x, t, y=None):
        seen.append((x.shape[0], set(torch.as_tensor(y).tolist())))
        return original(x, t, y)

    m.forward = counting
    x, t, y = torch.randn(6, 2), torch.randint(0, 100, (6,)), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        out = cfg_eps_fn(m, y, w)(x, t)
        e_c, e_u = original(x, t, y), original(x, t, torch.full_like(y, 3))
    assert seen == calls
    assert torch.allclose(out, e_u + w * (e_c - e_u), atol=1e-5)
