"""The small-sample metrics (KID, confident share), the closed-form noisy LDA and DDPM's variational bound."""
import math

import pytest
import torch

from diffcourse.metrics import (NoisyKernelBayes, NoisyLDA, confident_share, ddpm_elbo_bpd, kernel_bayes_on_noisy, kid,
                                lda_on_noisy)
from diffcourse.schedules import make_schedule


def test_kid_hand_computed_case():
    """d = 2, gamma = 1/2, k(a, b) = (a.b/2 + 1)^3. Off-diagonal k(x1, x2) = 1 and k(y1, y2) = 1; across the sets
    k = 1.5^3 = 3.375 where a.b = 1 (x1.y1, x2.y1) and 1 where a.b = 0: mean 2.1875. KID = 1 + 1 - 2 * 2.1875."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert kid(x, y) == pytest.approx(-2.375, abs=1e-12)
    assert kid(x, y) == pytest.approx(kid(y, x), abs=1e-12)


def test_kid_is_unbiased_and_sees_a_shift():
    g = torch.Generator().manual_seed(0)
    same = [kid(torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)) for _ in range(200)]
    mean, sem = sum(same) / len(same), torch.tensor(same).std().item() / math.sqrt(len(same))
    assert abs(mean) < 4 * sem, "same distribution: KID averages to 0 even at N = 50 (FID would not)"
    assert min(same) < 0 < max(same), "single estimates scatter on both sides of 0"
    shifted = kid(torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g) + 0.5)
    assert shifted > max(same)
    with pytest.raises(ValueError):
        kid(torch.randn(5, 3), torch.randn(5, 4))


def test_confident_share_counts_samples_above_the_threshold():
    class Fixed(torch.nn.Module):  # logits chosen so that the top softmax probabilities are known
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            p = x.flatten(1)[:, :1].clamp(0.01, 0.99)              # the top probability, stored in pixel 0
            rest = (1 - p) / 9
            return torch.cat([p, rest.expand(-1, 9)], 1).log()

    x = torch.zeros(4, 1, 28, 28)
    x[:, 0, 0, 0] = torch.tensor([0.95, 0.5, 0.91, 0.2])
    assert confident_share(x, Fixed()) == pytest.approx(0.5)
    assert confident_share(x, Fixed(), threshold=0.4) == pytest.approx(0.75)


def test_noisy_lda_reaches_the_bayes_accuracy_of_two_gaussian_classes():
    """Two classes N(+-m, S) in 2D: LDA is Bayes-optimal, with accuracy Phi(Delta_t / 2), where Delta_t is the
    Mahalanobis distance between the noised means under Sigma_t = abar S + (1 - abar) I."""
    g = torch.Generator().manual_seed(0)
    m = torch.tensor([0.6, 0.2], dtype=torch.float64)
    S = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
    L = torch.linalg.cholesky(S)

    def draw(n):
        y = torch.randint(0, 2, (n,), generator=g)
        x = (2 * y[:, None] - 1) * m + torch.randn(n, 2, generator=g, dtype=torch.float64) @ L.T
        return x, y

    sched = make_schedule("linear", T=1000)
    x_tr, y_tr = draw(40_000)
    x_te, y_te = draw(40_000)
    acc = lda_on_noisy(x_tr, y_tr, x_te, y_te, sched, (0, 200, 400), generator=g, reg=0.0)
    for t, a in acc.items():
        ab = float(sched.alpha_bars[t])
        St = ab * S + (1 - ab) * torch.eye(2, dtype=torch.float64)
        d = 2 * math.sqrt(ab) * m
        delta = math.sqrt(float(d @ torch.linalg.solve(St, d)))
        bayes = 0.5 * (1 + math.erf(delta / 2 / math.sqrt(2)))
        assert a == pytest.approx(bayes, abs=0.01), (t, a, bayes)
    assert acc[0] > acc[200] > acc[400], "accuracy falls with the noise"
    # the discriminant is the textbook one: x' Sigma^-1 mu - mu' Sigma^-1 mu / 2 + log prior
    lda = NoisyLDA(x_tr, y_tr, reg=0.0)
    ab = float(sched.alpha_bars[200])
    St = ab * lda.evecs @ torch.diag(lda.evals) @ lda.evecs.T + (1 - ab) * torch.eye(2, dtype=torch.float64)
    mu = math.sqrt(ab) * lda.means
    direct = x_te[:5] @ torch.linalg.solve(St, mu.T) - 0.5 * (mu * torch.linalg.solve(St, mu.T).T).sum(1) + lda.log_priors
    torch.testing.assert_close(lda.logits(x_te[:5], ab), direct)


def _oracle(sched, x0):
    """The noise predictor that knows x0: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar) for each image of the batch."""
    def f(xt, t):
        n = xt.shape[0] // x0.shape[0]
        a = sched.extract(sched.alpha_bars, t, xt)
        return (xt - a.sqrt() * x0.repeat(n, *([1] * (x0.ndim - 1)))) / (1 - a).sqrt()
    return f


def test_ddpm_elbo_of_an_oracle_is_the_closed_form():
    """With the exact eps the model's mean is the posterior mean: the KL terms are 0 with sigma^2 = beta_tilde and
    0.5 (log(beta / beta_tilde) + beta_tilde / beta - 1) per dimension with sigma^2 = beta; the decoder's mean is x0
    itself, so each pixel has probability 2 Phi(h / sigma_0) - 1 (h = 1/255) inside [-1, 1] and Phi(h / sigma_0) at the
    two ends; L_T = 0.5 (abar x0^2 - abar - log(1 - abar)) per dimension."""
    sched = make_schedule("linear", T=100)
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (3, 1, 4, 4), generator=g)
    levels[0, 0, 0, :2] = torch.tensor([0, 255])  # both ends appear
    x0 = levels.double() / 127.5 - 1
    D = 16
    ab = float(sched.alpha_bars[-1])
    prior = 0.5 * (ab * (x0 ** 2).flatten(1).sum(1) + D * (-ab - math.log(1 - ab)))
    s0, h = math.sqrt(float(sched.betas[0])), 1 / 255
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    ends = ((levels == 0) | (levels == 255)).flatten(1).sum(1).double()
    decoder = -(ends * math.log(phi(h / s0)) + (D - ends) * math.log(2 * phi(h / s0) - 1))
    r = sched.posterior_variance[1:] / sched.betas[1:]
    kl_beta = 0.5 * D * float((r - 1 - r.log()).sum())
    to_bpd = 1 / (D * math.log(2))
    f = _oracle(sched, x0)
    for variance, kl in (("beta_tilde", 0.0), ("beta", kl_beta)):
        total, terms = ddpm_elbo_bpd(f, sched, x0, variance=variance, generator=g, return_terms=True)
        torch.testing.assert_close(terms["prior"], prior * to_bpd)
        torch.testing.assert_close(terms["decoder"], decoder * to_bpd)
        torch.testing.assert_close(terms["diffusion"], torch.full((3,), kl * to_bpd, dtype=torch.float64), atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(total, terms["prior"] + terms["diffusion"] + terms["decoder"])
    # an unbiased subset: with sigma^2 = beta_tilde every term is 0, so any subset gives the full sum exactly
    sub = ddpm_elbo_bpd(f, sched, x0, variance="beta_tilde", timesteps=7, generator=g)
    torch.testing.assert_close(sub, prior * to_bpd + decoder * to_bpd)


def test_ddpm_elbo_stratified_estimate_agrees_with_the_full_sum():
    """A model that is off by a constant: each KL term is then fixed by t alone, so the full sum is exact and the
    stratified K-term estimate must average to it (only the choice of t inside each stratum is random)."""
    sched = make_schedule("linear", T=60)
    x0 = torch.randint(0, 256, (4, 1, 3, 3), generator=torch.Generator().manual_seed(1)).double() / 127.5 - 1
    oracle = _oracle(sched, x0)
    f = lambda xt, t: oracle(xt, t) + 0.2  # noqa: E731
    full = ddpm_elbo_bpd(f, sched, x0, generator=torch.Generator().manual_seed(0), return_terms=True)[1]["diffusion"]
    listed = ddpm_elbo_bpd(f, sched, x0, timesteps=list(range(1, 60)), generator=torch.Generator().manual_seed(5),
                           return_terms=True)[1]["diffusion"]
    torch.testing.assert_close(listed, full)
    strat = torch.stack([ddpm_elbo_bpd(f, sched, x0, timesteps=12, generator=torch.Generator().manual_seed(100 + k),
                                       return_terms=True)[1]["diffusion"] for k in range(400)]).mean(0)
    torch.testing.assert_close(strat, full, rtol=0.02, atol=0)
    with pytest.raises(ValueError):
        ddpm_elbo_bpd(f, sched, x0, timesteps=[0, 5])


def test_kernel_bayes_is_bayes_rule_on_a_finite_training_set():
    """`NoisyKernelBayes` is Bayes' rule when x0 is one of the training points: its logits equal the log of the summed
    Gaussian densities N(x_t; sqrt(abar) x_i, (1 - abar) I) per class, and on an XOR layout (no linear boundary) it
    beats the best linear classifier, which is at chance."""
    g = torch.Generator().manual_seed(0)
    corners = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    kb = NoisyKernelBayes(corners, labels)
    sched = make_schedule("linear", T=1000)
    t = 200
    ab = float(sched.alpha_bars[t])
    idx = torch.randint(0, 4, (4000,), generator=g)
    eps = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    xt = math.sqrt(ab) * corners[idx] + math.sqrt(1 - ab) * eps
    dens = torch.distributions.Normal(math.sqrt(ab) * corners[None], math.sqrt(1 - ab)).log_prob(xt[:, None]).sum(-1)
    direct = torch.stack([torch.logsumexp(dens[:, labels == k], 1) for k in range(2)], 1)
    got = kb.logits(xt, ab)
    torch.testing.assert_close(got - got[:, :1], direct - direct[:, :1])   # equal up to a constant per row
    lda = NoisyLDA(corners.repeat(50, 1), labels.repeat(50), reg=1e-6)
    bayes, linear = kb.accuracy(xt, labels[idx], ab), lda.accuracy(xt, labels[idx], ab)
    assert bayes > 0.6 and abs(linear - 0.5) < 0.05, (bayes, linear)
    # the helper noises test data exactly as lda_on_noisy does (same seed, same draws)
    acc = kernel_bayes_on_noisy(corners, labels, corners.repeat(250, 1), labels.repeat(250), sched, (t, 999),
                                generator=torch.Generator().manual_seed(1))
    assert acc[t] == pytest.approx(bayes, abs=0.04) and acc[999] == pytest.approx(0.5, abs=0.06)
    with pytest.raises(ValueError, match="strictly between"):
        kb.logits(xt, 1.0)
