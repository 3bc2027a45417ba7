r"""How good are the samples? Distances between sets of points.

Chapter 7 builds the full set; the 2D distances live here from the start
because every chapter checks its 2D samples with them. The MNIST metrics read images through a
feature network that the caller passes in (the shipped ``mnist-classifier``); nothing here loads a
checkpoint.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .likelihood import discretised_gaussian_log_likelihood

__all__ = ["sliced_wasserstein", "sw_floor_ratio", "frechet_distance", "feature_stats", "classifier_features", "fid",
           "classifier_accuracy", "confident_share", "within_class_spread", "inception_score", "precision_recall",
           "real_ball_hits", "density_coverage", "mmd_rbf", "kid", "nearest_neighbour_distances", "nearest_neighbour_ratio", "gaussian_nll_2d", "NoisyLDA", "lda_on_noisy",
           "NoisyKernelBayes", "kernel_bayes_on_noisy", "ddpm_elbo_bpd"]


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seed: int = 0,
                       unequal: bool = False) -> float:
    r"""Sliced 2-Wasserstein distance between two equal-size point sets.

    .. math::

        SW_2(x, y) = \Big(\mathbb E_{\theta\sim U(S^{d-1})}\ W_2^2\big(\theta^\top x,\ \theta^\top y\big)\Big)^{1/2},

    where in 1D :math:`W_2^2` between two sets of :math:`n` points is the mean squared
    difference of their *sorted* values. Directions come from a fixed ``seed``, so
    the number is repeatable. Two samples of the same distribution do not score 0:
    compare with the *floor*, the distance between two independent data samples of
    the same size.

    With ``unequal=True`` the two sets may differ in size (a jackknife deletes a group from one of them): in 1D
    :math:`W_2^2=\int_0^1\big(F_x^{-1}(u)-F_y^{-1}(u)\big)^2du`, and the empirical quantile functions are
    step functions with breaks at :math:`i/n_x` and :math:`j/n_y`, so the integral is an exact sum over the merged
    breaks; for equal sizes it is the sorted-value formula above.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"Expected two (n, d) point sets of the same d, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if x.shape[0] != y.shape[0] and not unequal:
        raise ValueError(f"Sliced Wasserstein here compares sets of equal size; got {x.shape[0]} and {y.shape[0]} points "
                         "(pass unequal=True to compare the quantile functions of sets of different sizes).")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = (x.detach().cpu().double() @ theta).sort(dim=0).values
    py = (y.detach().cpu().double() @ theta).sort(dim=0).values
    if x.shape[0] == y.shape[0]:
        return float(((px - py) ** 2).mean().sqrt())
    return _quantile_w2_squared(px, py).mean().sqrt().item()



def sw_floor_ratio(samples: list[torch.Tensor], data: list[torch.Tensor], other: list[torch.Tensor]
                   ) -> tuple[float, float, float]:
    r"""``(ratio, distance, floor)`` with the distance and the floor both averaged over K pairs:

    .. math::

        \text{ratio} = \frac{\tfrac1K\sum_k SW(\text{samples}_k, \text{data}_k)}
                             {\tfrac1K\sum_k SW(\text{other}_k, \text{data}_k)},

    where ``data`` and ``other`` are independent draws of the data set. One distance between sets of
    a few thousand points is noisy (two draws of the data alone scatter by about ±50 % around their
    mean), so a target like "≤ 1.5× the floor" is judged on means. ``samples`` may repeat one set.
    """
    if not (len(samples) == len(data) == len(other) > 0):
        raise ValueError(f"Need as many sample, data and other sets (K ≥ 1); got {len(samples)}, {len(data)}, {len(other)}.")
    dist = sum(sliced_wasserstein(x, d) for x, d in zip(samples, data)) / len(data)
    floor = sum(sliced_wasserstein(o, d) for o, d in zip(other, data)) / len(data)
    return dist / floor, dist, floor

# --------------------------------------------------------------------------- FID (MNIST, chapter 7)
def _sqrtm_psd(S: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, V = torch.linalg.eigh((S + S.T) / 2)
    return (V * w.clamp(min=0).sqrt()) @ V.T


def frechet_distance(mu1, S1, mu2, S2) -> float:
    r"""Fréchet (2-Wasserstein) distance² between :math:`\mathcal N(\mu_1,\Sigma_1)` and :math:`\mathcal N(\mu_2,\Sigma_2)`:

    .. math::

        d^2 = \|\mu_1-\mu_2\|^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
              - 2\operatorname{tr}\big(\Sigma_1^{1/2}\,\Sigma_2\,\Sigma_1^{1/2}\big)^{1/2}.

    :math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2}` equals the trace term, which is computed
    stably from the eigenvalues of the *symmetric* PSD product
    :math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}` in float64 (no complex parts, no scipy).
    Accepts tensors or arrays.
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu1, mu2))
    S1, S2 = (torch.as_tensor(s, dtype=torch.float64) for s in (S1, S2))
    if mu1.shape != mu2.shape or S1.shape != S2.shape or S1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(f"Shapes do not match: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; "
                         f"Sigma {tuple(S1.shape)}, {tuple(S2.shape)}.")
    r1 = _sqrtm_psd(S1)
    M = r1 @ S2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((M + M.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu1 - mu2).pow(2).sum() + S1.trace() + S2.trace() - 2 * tr_sqrt
    return float(d2.clamp(min=0))


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of ``(N, d)`` features, in float64."""
    f = torch.as_tensor(features, dtype=torch.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"Expected (N, d) features with N >= 2, got shape {tuple(f.shape)}.")
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


@torch.no_grad()
def classifier_features(images, classifier: torch.nn.Module, batch_size: int = 1000,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Penultimate-layer features of the MNIST classifier for ``(N, 1, 28, 28)`` images in [-1, 1].

    ``classifier`` is the feature network: the course's is the shipped ``mnist-classifier``
    (``diffcourse.load_pretrained("mnist-classifier")``).
    Returns a float64 CPU tensor ``(N, d)``.
    """
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"Expected images of shape (N, 1, 28, 28) in [-1, 1], got {tuple(x.shape)}.")
    dev = device if device is not None else next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    feats = [classifier.features(x[i:i + batch_size].to(dev)).double().cpu() for i in range(0, x.shape[0], batch_size)]
    classifier.train(was_training)
    return torch.cat(feats)


def fid(images_a, images_b, classifier: torch.nn.Module, batch_size: int = 1000,
        device: torch.device | str | None = None) -> float:
    r"""FID between two image sets in the MNIST classifier's feature space (see `classifier_features`):
    the `frechet_distance` between Gaussians fitted to the two sets of features.

    FID is biased upwards at small N: compare with the *floor*, the FID between two
    independent sets of real images of the same size.
    """
    fa = classifier_features(images_a, classifier, batch_size, device)
    fb = classifier_features(images_b, classifier, batch_size, device)
    return frechet_distance(*feature_stats(fa), *feature_stats(fb))


@torch.no_grad()
def classifier_accuracy(images, labels, classifier: torch.nn.Module, batch_size: int = 1000) -> float:
    """Fraction of ``images`` that the MNIST classifier assigns to the asked-for ``labels`` (how well guidance obeys)."""
    x = torch.as_tensor(images, dtype=torch.float32)
    dev = next(classifier.parameters()).device
    pred = torch.cat([classifier(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)])
    return float((pred == torch.as_tensor(labels).cpu()).float().mean())


@torch.no_grad()
def confident_share(images, classifier: torch.nn.Module, threshold: float = 0.9,
                    batch_size: int = 1000) -> float:
    r"""Fraction of ``images`` that the MNIST classifier reads as *some* digit with confidence: the largest
    softmax probability :math:`\max_y p(y\mid x)` at least ``threshold`` (0.9 by default).

    A per-sample score, so unlike FID it has no small-sample bias: at N samples its standard error is
    :math:`\sqrt{q(1-q)/N}`. Real test digits score close to 1; blurred, broken or half-formed digits
    score low. It sees fidelity only — ten copies of one good digit score 1 — so pair it with a
    diversity measure (recall, KID).
    """
    x = torch.as_tensor(images, dtype=torch.float32)
    dev = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    conf = torch.cat([torch.softmax(classifier(x[i:i + batch_size].to(dev)).float(), 1).amax(1).cpu()
                      for i in range(0, len(x), batch_size)])
    classifier.train(was_training)
    return float((conf >= threshold).double().mean())


def within_class_spread(features: torch.Tensor, labels: torch.Tensor) -> float:
    r"""Diversity within classes: the mean over classes of :math:`\operatorname{tr}\Sigma_c / d`, the average
    per-dimension variance of the features of the examples of class :math:`c`.

    Divide by the same number for real data to read it as a fraction of the real diversity
    (1 = as varied as real digits; guidance typically pushes it down).
    """
    f, y = torch.as_tensor(features, dtype=torch.float64), torch.as_tensor(labels)
    spreads = [f[y == c].var(dim=0).mean() for c in y.unique() if int((y == c).sum()) > 1]
    if not spreads:
        raise ValueError("within_class_spread needs at least two examples of some class.")
    return float(torch.stack(spreads).mean())



def inception_score(probs: torch.Tensor) -> float:
    r"""The Inception-Score analogue from a classifier's class probabilities ``(N, K)``:

    .. math:: \mathrm{IS} = \exp\Big(\mathbb E_x\, D_{KL}\big(p(y\mid x)\,\|\,p(y)\big)\Big),\qquad p(y)=\mathbb E_x\,p(y\mid x).

    High when each sample is classified confidently (sharp :math:`p(y\mid x)`) *and* the classes are
    used evenly (flat :math:`p(y)`); between 1 and K. It never looks at real data.
    """
    p = torch.as_tensor(probs, dtype=torch.float64).clamp_min(1e-12)
    if p.ndim != 2:
        raise ValueError(f"Expected class probabilities of shape (N, K), got {tuple(p.shape)}.")
    marginal = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))


def _kth_nn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # k+1: the nearest "neighbour" of a point is itself


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    r"""Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets ``real`` and ``fake``.

    Around every real point put a ball reaching its k-th nearest real neighbour; their union estimates
    the real manifold. **Precision** = fraction of fake points inside it (are samples realistic?).
    **Recall** = fraction of real points inside the union of the fake balls (is the data covered?).
    """
    r, f = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)
    if min(len(r), len(f)) <= k:
        raise ValueError(f"precision_recall needs more than k={k} points in each set.")
    r_rad, f_rad = _kth_nn_radius(r, k), _kth_nn_radius(f, k)
    d = torch.cdist(f, r)  # (n_fake, n_real)
    precision = (d <= r_rad[None, :]).any(dim=1).double().mean()
    recall = (d.T <= f_rad[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def real_ball_hits(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> torch.Tensor:
    r"""For each real point :math:`x_i`, how many fake points lie in its ball :math:`B\big(x_i, r_k(x_i)\big)`,
    where :math:`r_k(x_i)` is the distance to its k-th nearest real neighbour. Shape ``(len(real),)``.

    Precision asks only whether a fake point is in *some* ball; these counts show *which* balls catch the fake
    points. A real outlier has a large :math:`r_k` and so a large ball, which can catch many unrealistic samples.
    """
    r, f = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)
    if len(r) <= k:
        raise ValueError(f"real_ball_hits needs more than k={k} real points, got {len(r)}.")
    return (torch.cdist(f, r) <= _kth_nn_radius(r, k)[None, :]).sum(dim=0)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> tuple[float, float]:
    r"""Density and coverage (Naeem et al. 2020) of feature sets ``real`` (N points) and ``fake`` (M points):

    .. math::

        \text{density} = \frac{1}{kM}\sum_{j=1}^{M}\sum_{i=1}^{N} \mathbb 1\big[y_j\in B(x_i, r_k(x_i))\big],\qquad
        \text{coverage} = \frac{1}{N}\sum_{i=1}^{N} \mathbb 1\big[\exists\, j:\ y_j\in B(x_i, r_k(x_i))\big].

    Density counts *how many* real balls hold each sample (its expectation is 1 when fake and real follow the
    same distribution), so one inflated ball around a real outlier adds little; coverage asks which real points
    have a sample nearby, using only the real balls, so fake outliers cannot inflate it. Naeem et al. use k = 5.
    """
    hits = real_ball_hits(real, fake, k)
    return float(hits.sum().double() / (k * len(fake))), float((hits > 0).double().mean())


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> float:
    r"""Unbiased squared maximum mean discrepancy with the RBF kernel :math:`k(a,b)=\exp(-\|a-b\|^2/2h^2)`:

    .. math:: \mathrm{MMD}^2 = \mathbb E\,k(x,x') + \mathbb E\,k(y,y') - 2\,\mathbb E\,k(x,y),

    with the diagonal terms left out of the first two means. ``bandwidth`` h defaults to the median
    distance between all points (the median heuristic). Near 0 (it can dip below) for equal distributions.
    """
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if bandwidth is None:
        bandwidth = float(torch.cdist(torch.cat([x, y]), torch.cat([x, y])).median().clamp_min(1e-12))
    k = lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / (2 * bandwidth**2))
    n, m = len(x), len(y)
    kxx = (k(x, x).sum() - n) / (n * (n - 1))
    kyy = (k(y, y).sum() - m) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(x, y).mean())


def kid(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    r"""Kernel Inception Distance (Bińkowski et al. 2018) between feature sets ``x`` ``(m, d)`` and ``y`` ``(n, d)``:
    the unbiased squared MMD with the cubic polynomial kernel :math:`k(a, b) = (\gamma\, a^\top b + c)^3`,
    :math:`\gamma = 1/d`, :math:`c = 1`,

    .. math::

        \mathrm{KID} = \frac{1}{m(m-1)}\sum_{i\ne j} k(x_i, x_j) + \frac{1}{n(n-1)}\sum_{i\ne j} k(y_i, y_j)
                      - \frac{2}{mn}\sum_{i,j} k(x_i, y_j).

    Unlike FID it is **unbiased**: its expected value for two samples of the same distribution is 0 at any
    N (a single estimate can dip below 0), and it needs no covariance, so it is usable when N is smaller than
    the feature dimension. Compare it with the spread of real-vs-real values at the same N.
    """
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"Expected (m, d) and (n, d) features of the same d, got {tuple(x.shape)} and {tuple(y.shape)}.")
    m, n = len(x), len(y)
    if min(m, n) < 2:
        raise ValueError("kid needs at least two points in each set.")
    g = 1.0 / x.shape[1] if gamma is None else gamma
    k = lambda a, b: (g * a @ b.T + coef0) ** degree  # noqa: E731
    kxx, kyy = k(x, x), k(y, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * k(x, y).mean())


def nearest_neighbour_distances(samples: torch.Tensor, train: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Distance from each sample to its nearest training example (in pixel or feature space).

    A model that memorises returns training examples: its distances are ~0, which FID cannot see.
    """
    s = torch.as_tensor(samples, dtype=torch.float32).flatten(1)
    t = torch.as_tensor(train, dtype=torch.float32).flatten(1)
    return torch.cat([torch.cdist(s[i:i + batch_size], t).min(dim=1).values for i in range(0, len(s), batch_size)])


def nearest_neighbour_ratio(samples: torch.Tensor, train: torch.Tensor, n_neighbours: int = 50, alpha: float = 0.5,
                            batch_size: int = 500) -> torch.Tensor:
    r"""Carlini et al. (2023)'s normalised nearest-neighbour distance of each sample :math:`\hat x` to the training set:

    .. math:: \ell(\hat x) = \frac{\|\hat x - x_{(1)}\|_2}{\alpha\cdot\frac1n\sum_{j=1}^{n}\|\hat x - x_{(j)}\|_2},

    where :math:`x_{(1)}, \dots, x_{(n)}` are its ``n_neighbours`` nearest training examples (n = 50, α = 0.5 in
    the paper). A copy of a training example has a near-zero numerator and an ordinary denominator; a sample in a
    dense region, close to many training examples at once, is not flagged just for being close (a ratio of 2 means
    the nearest is no nearer than the average of the 50 nearest).
    """
    s = torch.as_tensor(samples, dtype=torch.float32).flatten(1)
    t = torch.as_tensor(train, dtype=torch.float32).flatten(1)
    if n_neighbours > len(t):
        raise ValueError(f"n_neighbours={n_neighbours} exceeds the {len(t)} training examples: lower it.")
    near = torch.cat([torch.cdist(s[i:i + batch_size], t).topk(n_neighbours, dim=1, largest=False).values
                      for i in range(0, len(s), batch_size)])  # (N, n), sorted ascending
    return near[:, 0] / (alpha * near.mean(dim=1))


def gaussian_nll_2d(samples: torch.Tensor, dataset: str = "8gaussians") -> float:
    """Mean negative log-likelihood (nats) of ``samples`` under a 2D dataset's exact density (the mixtures only)."""
    from .data import toy2d

    return float(-toy2d.log_prob(dataset, torch.as_tensor(samples)).mean())


# --------------------------------------------------------------------------- a closed-form baseline for noisy classifiers
class NoisyLDA:
    r"""Linear discriminant analysis of *noisy* data :math:`x_t`, fitted once on clean data :math:`x_0`.

    If class :math:`k` has mean :math:`\mu_k` and every class the within-class covariance :math:`\Sigma_0`
    (pooled over classes), then :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon` has

    .. math::

        \mu_{k,t} = \sqrt{\bar\alpha_t}\,\mu_k,\qquad \Sigma_t = \bar\alpha_t\,\Sigma_0 + (1-\bar\alpha_t)\,I,

    and LDA's discriminant is :math:`\delta_k(x) = x^\top\Sigma_t^{-1}\mu_{k,t} - \tfrac12\mu_{k,t}^\top\Sigma_t^{-1}\mu_{k,t}
    + \log\pi_k`. One eigendecomposition :math:`\Sigma_0 = V\Lambda V^\top` serves every noise level:
    :math:`\Sigma_t^{-1} = V\,\mathrm{diag}(\bar\alpha_t\lambda + 1 - \bar\alpha_t + r)^{-1}V^\top`, with a small
    ridge ``reg`` :math:`r` (MNIST's border pixels never vary, so :math:`\Sigma_0` is singular). The best *linear*
    classifier of Gaussian classes with a shared covariance; a noise-aware network should beat it at every t.
    """

    def __init__(self, x0: torch.Tensor, y: torch.Tensor, num_classes: int | None = None, reg: float = 1e-3) -> None:
        X = torch.as_tensor(x0, dtype=torch.float64).flatten(1)
        y = torch.as_tensor(y).long().reshape(-1)
        if len(X) != len(y):
            raise ValueError(f"Got {len(X)} examples but {len(y)} labels.")
        K = int(num_classes if num_classes is not None else int(y.max()) + 1)
        counts = torch.bincount(y, minlength=K).double()
        if (counts < 2).any():
            raise ValueError("NoisyLDA needs at least two examples of every class.")
        self.num_classes, self.reg = K, float(reg)
        self.means = torch.stack([X[y == k].mean(0) for k in range(K)])          # (K, D)
        centred = X - self.means[y]
        cov = centred.T @ centred / (len(X) - K)                                # pooled within-class covariance
        evals, self.evecs = torch.linalg.eigh((cov + cov.T) / 2)
        self.evals = evals.clamp(min=0)
        self.log_priors = (counts / counts.sum()).log()
        self._means_v = self.means @ self.evecs                                 # the means in the eigenbasis

    def logits(self, xt: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        r"""The discriminants :math:`\delta_k(x_t)` of a batch ``xt`` at noise level :math:`\bar\alpha_t`: ``(N, K)``."""
        a = float(alpha_bar)
        lam = a * self.evals + (1 - a) + self.reg
        mv = math.sqrt(a) * self._means_v                                      # mu_{k,t} in the eigenbasis
        xv = torch.as_tensor(xt, dtype=torch.float64).flatten(1) @ self.evecs
        return xv @ (mv / lam).T - 0.5 * (mv ** 2 / lam).sum(1) + self.log_priors

    def accuracy(self, xt: torch.Tensor, y: torch.Tensor, alpha_bar: float) -> float:
        """Fraction of ``xt`` whose largest discriminant is the label ``y``."""
        return float((self.logits(xt, alpha_bar).argmax(1) == torch.as_tensor(y).reshape(-1)).double().mean())


def _accuracy_on_noisy(classifier, test_x0: torch.Tensor, test_y: torch.Tensor, schedule, timesteps: Sequence[int],
                       generator: torch.Generator | None) -> dict[int, float]:
    """``{t: classifier.accuracy(x_t, y, alpha_bar_t)}`` on ``x_t = q_sample(test_x0, t, ε)``, one ε per t (float64)."""
    test_x0 = torch.as_tensor(test_x0)
    out = {}
    for t in timesteps:
        eps = torch.randn(test_x0.shape, generator=generator, dtype=torch.float64)
        xt = schedule.q_sample(test_x0.double(), int(t), eps)
        out[int(t)] = classifier.accuracy(xt, test_y, float(schedule.alpha_bars[int(t)]))
    return out


def lda_on_noisy(train_x0: torch.Tensor, train_y: torch.Tensor, test_x0: torch.Tensor, test_y: torch.Tensor,
                 schedule, timesteps: Sequence[int] = (0, 250, 500, 750), *, generator: torch.Generator | None = None,
                 reg: float = 1e-3) -> dict[int, float]:
    r"""Accuracy of the closed-form `NoisyLDA` on noised test data, ``{t: accuracy}`` for each code timestep t.

    Fitted once on the clean ``train_x0`` (class means and the pooled covariance); the test data are noised
    with ``schedule.q_sample(test_x0, t, ε)``, ε drawn from ``generator``, exactly as a noise-aware classifier
    is evaluated — so the two accuracies can stand side by side.
    """
    return _accuracy_on_noisy(NoisyLDA(train_x0, train_y, reg=reg), test_x0, test_y, schedule, timesteps, generator)


class NoisyKernelBayes:
    r"""The Bayes classifier of :math:`x_t` if the digits were exactly the training set: a ceiling at high noise.

    If :math:`x_0` is one of the training images :math:`x^{(i)}` (labels :math:`y^{(i)}`), each equally likely, then
    :math:`q(x_t\mid x^{(i)}) = \mathcal N(\sqrt{\bar\alpha_t}\,x^{(i)}, (1-\bar\alpha_t) I)` and Bayes' rule gives

    .. math::

        p(y=k\mid x_t) \propto \sum_{i:\,y^{(i)}=k} \exp\Big(\frac{\sqrt{\bar\alpha_t}\,x_t^\top x^{(i)}
        - \tfrac12\bar\alpha_t\lVert x^{(i)}\rVert^2}{1-\bar\alpha_t}\Big),

    a Gaussian-kernel vote of all training images (the terms that do not depend on :math:`i` cancel). At high noise
    the kernel is much wider than the gaps between digits, the training set stands in well for the true
    distribution, and no classifier can do much better: the label information left in :math:`x_t` is spent. At low
    noise the kernel shrinks to a nearest-neighbour vote, which over-fits the training set: it is no ceiling there.
    """

    def __init__(self, x0: torch.Tensor, y: torch.Tensor, num_classes: int | None = None, batch_size: int = 500) -> None:
        self.X = torch.as_tensor(x0, dtype=torch.float64).flatten(1)
        self.y = torch.as_tensor(y).long().reshape(-1)
        if len(self.X) != len(self.y):
            raise ValueError(f"Got {len(self.X)} examples but {len(self.y)} labels.")
        self.num_classes = int(num_classes if num_classes is not None else int(self.y.max()) + 1)
        self.sq_norms, self.batch_size = (self.X ** 2).sum(1), int(batch_size)

    def logits(self, xt: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        r""":math:`\log p(y=k\mid x_t)` up to a constant per row, ``(N, K)``; batched over ``xt``."""
        a = float(alpha_bar)
        if not 0 < a < 1:
            raise ValueError(f"alpha_bar must lie strictly between 0 and 1, got {a}: "
                             "pass schedule.alpha_bars[t] for a timestep t.")
        Z = torch.as_tensor(xt, dtype=torch.float64).flatten(1)
        rows = []
        for Zb in Z.split(self.batch_size):
            log_k = (math.sqrt(a) * Zb @ self.X.T - 0.5 * a * self.sq_norms) / (1 - a)   # (B, n_train)
            rows.append(torch.stack([torch.logsumexp(log_k[:, self.y == k], 1) for k in range(self.num_classes)], 1))
        return torch.cat(rows)

    def accuracy(self, xt: torch.Tensor, y: torch.Tensor, alpha_bar: float) -> float:
        """Fraction of ``xt`` whose most probable class is the label ``y``."""
        return float((self.logits(xt, alpha_bar).argmax(1) == torch.as_tensor(y).reshape(-1)).double().mean())


def kernel_bayes_on_noisy(train_x0: torch.Tensor, train_y: torch.Tensor, test_x0: torch.Tensor, test_y: torch.Tensor,
                          schedule, timesteps: Sequence[int] = (500, 750, 999), *,
                          generator: torch.Generator | None = None) -> dict[int, float]:
    """Accuracy of `NoisyKernelBayes` on noised test data, ``{t: accuracy}``; the same noise as `lda_on_noisy` with an
    equally seeded ``generator`` and the same timesteps (each t draws one ε, in order)."""
    return _accuracy_on_noisy(NoisyKernelBayes(train_x0, train_y), test_x0, test_y, schedule, timesteps, generator)


# --------------------------------------------------------------------------- the variational bound of a DDPM (bits/dim)
def ddpm_elbo_bpd(eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule, x0: torch.Tensor, *,
                  timesteps: int | Sequence[int] | None = None, variance: str = "beta",
                  generator: torch.Generator | None = None, batch_size: int = 256, bins: int = 256,
                  return_terms: bool = False):
    r"""DDPM's variational bound on :math:`-\log p_\theta(x_0)`, in bits per dimension of ``bins``-level data.

    In the paper's indices :math:`1\ldots T` (code index t is the paper's t + 1),

    .. math::

        L = \underbrace{D_{KL}\big(q(x_T\mid x_0)\,\|\,\mathcal N(0,I)\big)}_{L_T}
          + \sum_{t=2}^{T}\underbrace{D_{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
          \underbrace{-\log p_\theta(x_0\mid x_1)}_{L_0},

    with :math:`p_\theta(x_{t-1}\mid x_t) = \mathcal N(\mu_\theta, \sigma_t^2 I)`, :math:`\mu_\theta` from
    :math:`\hat\varepsilon` as in `ddpm_step`, :math:`\sigma_t^2 = \beta_t` (``variance="beta"``) or
    :math:`\tilde\beta_t`, and the decoder :math:`L_0` a Gaussian of variance :math:`\beta_0` integrated over each
    pixel's grey level (so the result is a bound on the *discrete* data's bits, comparable with the ODE's
    dequantised bits/dim). Each :math:`L_{t-1}` uses one draw :math:`x_t\sim q(x_t\mid x_0)`.

    ``timesteps``: ``None`` sums all T − 1 KL terms (T network evaluations per image); an int K draws one
    timestep in each of (at most) K strata of ``1 … T-1`` and weights it by its stratum's size — an unbiased
    estimate of the sum from K evaluations. The strata are geometric: single steps at low t, where the terms
    are largest and change fastest, wide at high t, where they are small and flat. A sequence uses those code
    timesteps, each weighted by (T − 1)/len(sequence). ``x0`` must lie on the ``bins`` grey levels in [-1, 1] (as `load_mnist` returns them).

    Returns the bound per example, shape ``(B,)``; with ``return_terms`` also ``{"prior", "diffusion",
    "decoder"}``, each ``(B,)``, in bits/dim (they sum to the total).
    """
    if variance not in ("beta", "beta_tilde"):
        raise ValueError(f"variance must be 'beta' or 'beta_tilde', got {variance!r}.")
    x0 = torch.as_tensor(x0)
    B, D = x0.shape[0], x0[0].numel()
    x0d = x0.double()
    # L_T: KL(N(sqrt(abar) x0, 1 - abar) || N(0, 1)), per dimension summed
    ab_T = float(schedule.alpha_bars[-1])
    prior = 0.5 * (_per_example(ab_T * x0d ** 2) + D * ((1 - ab_T) - 1 - math.log(1 - ab_T)))
    ts, weights = _elbo_timesteps(timesteps, schedule.T, generator)
    diffusion = _elbo_kl_terms(eps_fn, schedule, x0, ts, weights, variance, generator, batch_size)
    # L_0: the discretised Gaussian decoder at code t = 0 (the paper's t = 1), variance beta_0
    t0 = torch.zeros(B, dtype=torch.long, device=x0.device)
    x1 = schedule.q_sample(x0d, t0, torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(x0.device))
    mu0 = _model_mean(eps_fn, schedule, x1.to(x0.dtype), t0)
    decoder = -_per_example(discretised_gaussian_log_likelihood(x0d, mu0, math.sqrt(float(schedule.betas[0])), bins))
    to_bpd = 1.0 / (D * math.log(2))
    terms = {"prior": prior.cpu() * to_bpd, "diffusion": diffusion.cpu() * to_bpd, "decoder": decoder.cpu() * to_bpd}
    total = terms["prior"] + terms["diffusion"] + terms["decoder"]
    return (total, terms) if return_terms else total


def _per_example(v: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the batch."""
    return v.flatten(1).sum(1)


def _elbo_timesteps(timesteps: int | Sequence[int] | None, T: int,
                    generator: torch.Generator | None) -> tuple[list[int], list[float]]:
    """Which KL terms of `ddpm_elbo_bpd` to evaluate (code timesteps in 1 … T−1) and the weight of each."""
    if timesteps is None:
        return list(range(1, T)), [1.0] * (T - 1)
    if isinstance(timesteps, int):
        # K strata of 1 ... T-1, geometric: one step wide at low t, where the terms are large and change fast,
        # wide at high t, where they are small and flat (fewer than K if rounding merges some)
        K = max(1, min(int(timesteps), T - 1))
        edges = sorted(set(torch.logspace(0, math.log10(T), K + 1, dtype=torch.float64).round().long().tolist()))
        u = torch.rand(len(edges) - 1, generator=generator, dtype=torch.float64)
        ts = [int(lo + (hi - lo) * float(ui)) for lo, hi, ui in zip(edges[:-1], edges[1:], u)]
        return ts, [float(hi - lo) for lo, hi in zip(edges[:-1], edges[1:])]
    ts = [int(t) for t in timesteps]
    if any(not 1 <= t < T for t in ts):
        raise ValueError(f"KL timesteps must lie in 1 … T-1 = {T - 1} (t = 0 is the decoder term).")
    return ts, [(T - 1) / len(ts)] * len(ts)


def _model_mean(eps_fn: Callable, schedule, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`\mu_\theta(x_t, t) = (x_t - \beta_t/\sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\alpha_t}`, in float64."""
    with torch.no_grad():
        eps = eps_fn(xt, t).double()
    tt = t.cpu()
    b = schedule.betas[tt].to(xt.device).reshape(-1, *([1] * (xt.ndim - 1)))
    a = schedule.alphas[tt].to(xt.device).reshape_as(b)
    ab = schedule.alpha_bars[tt].to(xt.device).reshape_as(b)
    return (xt.double() - b / (1 - ab).sqrt() * eps) / a.sqrt()


def _elbo_kl_terms(eps_fn: Callable, schedule, x0: torch.Tensor, ts: list[int], weights: list[float], variance: str,
                   generator: torch.Generator | None, batch_size: int) -> torch.Tensor:
    """The weighted sum of the KL terms L_{t-1} of `ddpm_elbo_bpd` per example, batched over (timestep, image) pairs."""
    B, D, dev = x0.shape[0], x0[0].numel(), x0.device
    x0d = x0.double()
    diffusion = torch.zeros(B, dtype=torch.float64, device=dev)
    per_chunk = max(1, batch_size // B)
    for i in range(0, len(ts), per_chunk):
        chunk_t, chunk_w = ts[i:i + per_chunk], weights[i:i + per_chunk]
        t = torch.tensor(chunk_t).repeat_interleave(B).to(dev)
        x0c = x0d.repeat(len(chunk_t), *([1] * (x0.ndim - 1)))
        eps = torch.randn(x0c.shape, generator=generator, dtype=torch.float64).to(dev)
        xt = schedule.q_sample(x0c, t, eps)
        mu_q, var_q = schedule.q_posterior(x0c, xt, t)
        mu_p = _model_mean(eps_fn, schedule, xt.to(x0.dtype), t)
        var_p = schedule.extract(schedule.betas if variance == "beta" else schedule.posterior_variance, t, xt)
        ratio = (var_q / var_p).flatten()  # one variance per example (the same in every dimension)
        kl = 0.5 * (D * (ratio - 1 - ratio.log()) + _per_example((mu_q - mu_p) ** 2 / var_p))
        w = torch.tensor(chunk_w, dtype=torch.float64, device=dev).repeat_interleave(B)
        diffusion += (w * kl).reshape(len(chunk_t), B).sum(0)
    return diffusion


def _quantile_w2_squared(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    r"""Per column, :math:`\int_0^1 (F_x^{-1}(u) - F_y^{-1}(u))^2\,du` for sorted columns ``px`` (n_x, P) and ``py``
    (n_y, P): both quantile functions are constant between the merged breaks :math:`\{i/n_x\}\cup\{j/n_y\}`."""
    nx, ny = px.shape[0], py.shape[0]
    breaks = torch.cat([torch.arange(1, nx + 1, dtype=torch.float64) / nx, torch.arange(1, ny + 1, dtype=torch.float64) / ny])
    breaks = torch.unique(breaks)                                   # sorted, ends at 1
    width = torch.diff(breaks, prepend=breaks.new_zeros(1))
    mid = breaks - width / 2
    ix = (mid * nx).long().clamp_max(nx - 1)                        # the step of F_x^{-1} that holds u = mid
    iy = (mid * ny).long().clamp_max(ny - 1)
    return (width[:, None] * (px[ix] - py[iy]) ** 2).sum(0)
