r"""How good are the samples? Distances between sets of points.

Chapter 7 builds the full set; the 2D distances live here from the start
because every chapter checks its 2D samples with them.
"""
from __future__ import annotations

import torch

__all__ = ["sliced_wasserstein", "sw_floor_ratio", "frechet_distance", "feature_stats", "classifier_features", "fid",
           "classifier_accuracy", "within_class_spread", "inception_score", "precision_recall", "mmd_rbf",
           "nearest_neighbour_distances", "gaussian_nll_2d"]


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seed: int = 0) -> float:
    r"""Sliced 2-Wasserstein distance between two equal-size point sets.

    .. math::

        SW_2(x, y) = \Big(\mathbb E_{\theta\sim U(S^{d-1})}\ W_2^2\big(\theta^\top x,\ \theta^\top y\big)\Big)^{1/2},

    where in 1D :math:`W_2^2` between two sets of :math:`n` points is the mean squared
    difference of their *sorted* values. Directions come from a fixed ``seed``, so
    the number is repeatable. Two samples of the same distribution do not score 0:
    compare with the *floor*, the distance between two independent data samples of
    the same size.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"Expected two (n, d) point sets of the same d, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"Sliced Wasserstein here compares sets of equal size; got {x.shape[0]} and {y.shape[0]} points.")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = (x.detach().cpu().double() @ theta).sort(dim=0).values
    py = (y.detach().cpu().double() @ theta).sort(dim=0).values
    return float(((px - py) ** 2).mean().sqrt())



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
def classifier_features(images, classifier: torch.nn.Module | None = None, batch_size: int = 1000,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Penultimate-layer features of the MNIST classifier for ``(N, 1, 28, 28)`` images in [-1, 1].

    ``classifier`` defaults to the shipped ``mnist-classifier`` (`diffcourse.load_pretrained`).
    Returns a float64 CPU tensor ``(N, d)``.
    """
    if classifier is None:
        from .pretrained import load_pretrained
        classifier = load_pretrained("mnist-classifier", device)
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"Expected images of shape (N, 1, 28, 28) in [-1, 1], got {tuple(x.shape)}.")
    dev = device if device is not None else next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    feats = [classifier.features(x[i:i + batch_size].to(dev)).double().cpu() for i in range(0, x.shape[0], batch_size)]
    classifier.train(was_training)
    return torch.cat(feats)


def fid(images_a, images_b, classifier: torch.nn.Module | None = None, batch_size: int = 1000,
        device: torch.device | str | None = None) -> float:
    r"""FID between two image sets in the MNIST classifier's feature space (see `classifier_features`):
    the `frechet_distance` between Gaussians fitted to the two sets of features.

    FID is biased upwards at small N: compare with the *floor*, the FID between two
    independent sets of real images of the same size.
    """
    if classifier is None:
        from .pretrained import load_pretrained
        classifier = load_pretrained("mnist-classifier", device)
    fa = classifier_features(images_a, classifier, batch_size, device)
    fb = classifier_features(images_b, classifier, batch_size, device)
    return frechet_distance(*feature_stats(fa), *feature_stats(fb))


@torch.no_grad()
def classifier_accuracy(images, labels, classifier: torch.nn.Module | None = None, batch_size: int = 1000) -> float:
    """Fraction of ``images`` that the MNIST classifier assigns to the asked-for ``labels`` (how well guidance obeys)."""
    if classifier is None:
        from .pretrained import load_pretrained
        classifier = load_pretrained("mnist-classifier")
    x = torch.as_tensor(images, dtype=torch.float32)
    dev = next(classifier.parameters()).device
    pred = torch.cat([classifier(x[i:i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)])
    return float((pred == torch.as_tensor(labels).cpu()).float().mean())


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


def nearest_neighbour_distances(samples: torch.Tensor, train: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Distance from each sample to its nearest training example (in pixel or feature space).

    A model that memorises returns training examples: its distances are ~0, which FID cannot see.
    """
    s = torch.as_tensor(samples, dtype=torch.float32).flatten(1)
    t = torch.as_tensor(train, dtype=torch.float32).flatten(1)
    return torch.cat([torch.cdist(s[i:i + batch_size], t).min(dim=1).values for i in range(0, len(s), batch_size)])


def gaussian_nll_2d(samples: torch.Tensor, dataset: str = "8gaussians") -> float:
    """Mean negative log-likelihood (nats) of ``samples`` under a 2D dataset's exact density (the mixtures only)."""
    from .data import toy2d

    return float(-toy2d.log_prob(dataset, torch.as_tensor(samples)).mean())
