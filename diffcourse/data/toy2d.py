r"""Two-dimensional toy datasets, as ``(n, 2)`` float32 tensors of roughly unit scale.

Small enough to train a diffusion model on in seconds and to *see* every sample.
The Gaussian mixtures (``"8gaussians"``, ``"circles"`` is *not* one) have an exact
density, so their log-density and score are available in closed form:

.. math::

    p(x) = \sum_k w_k\,\mathcal N(x;\mu_k,\sigma^2 I),\qquad
    \nabla_x \log p(x) = \sum_k r_k(x)\,\frac{\mu_k - x}{\sigma^2},\quad
    r_k(x) = \frac{w_k\,\mathcal N(x;\mu_k,\sigma^2 I)}{p(x)} .

Noising a mixture keeps it a mixture: under :math:`q(x_t\mid x_0)` the means
shrink to :math:`\sqrt{\bar\alpha_t}\mu_k` and the variance becomes
:math:`\bar\alpha_t\sigma^2 + 1-\bar\alpha_t` (`GaussianMixture.noised`), which gives
the exact score of every noisy marginal — the ground truth for chapter 4.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["DATASETS", "sample", "log_prob", "score", "GaussianMixture", "mixture"]

DATASETS = ("moons", "swiss_roll", "8gaussians", "checkerboard", "spirals", "circles")


def _gen(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    return generator


def _randn(n: int, d: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def _rand(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


@dataclass
class GaussianMixture:
    r"""An isotropic Gaussian mixture :math:`\sum_k w_k\,\mathcal N(\mu_k, \sigma^2 I)` in 2D."""

    means: torch.Tensor  # (K, 2)
    std: float
    weights: torch.Tensor | None = None  # (K,), defaults to uniform

    def __post_init__(self) -> None:
        self.means = torch.as_tensor(self.means, dtype=torch.float64)
        K = len(self.means)
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if self.weights is None else torch.as_tensor(self.weights, dtype=torch.float64)
        self.weights = w / w.sum()

    def sample(self, n: int, generator: torch.Generator | None = None, return_labels: bool = False):
        """Draw ``n`` points (and, with ``return_labels``, the index of the component of each)."""
        g = _gen(generator)
        k = torch.multinomial(self.weights, n, replacement=True, generator=g)
        x = self.means[k] + self.std * _randn(n, self.means.shape[1], g)
        return (x.float(), k) if return_labels else x.float()

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log w_k + \log\mathcal N(x;\mu_k,\sigma^2 I)` for each point and component, shape ``(n, K)``."""
        x = x.to(torch.float64)
        d = x.shape[-1]
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        log_norm = -0.5 * d * math.log(2 * math.pi * self.std**2)
        return self.weights.log()[None] + log_norm - 0.5 * sq / self.std**2

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x)` (float64, shape ``(n,)``)."""
        return torch.logsumexp(self.component_log_probs(x), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`r_k(x) = p(k\mid x)`, shape ``(n, K)``: the exact Bayes classifier of components."""
        return torch.softmax(self.component_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla_x\log p(x) = \sum_k r_k(x)(\mu_k - x)/\sigma^2` (float64, shape ``(n, 2)``)."""
        x64 = x.to(torch.float64)
        r = self.responsibilities(x64)
        return (r @ self.means - x64) / self.std**2

    def posterior_mean(self, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        r"""The exact :math:`\mathbb E[x_0\mid x_t]` when :math:`x_0` follows this mixture and
        :math:`x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\varepsilon` (float64, shape ``(n, 2)``).

        Each component is a Gaussian prior, so its posterior mean is linear in :math:`x_t`; the mixture's is their
        average weighted by the responsibilities :math:`p(k\mid x_t)` of the noised mixture (`noised`):

        .. math::

            \mathbb E[x_0\mid x_t] = \sum_k p(k\mid x_t)\Big(\mu_k + \frac{\sigma^2\sqrt{\bar\alpha}}
            {\bar\alpha\sigma^2 + 1-\bar\alpha}\big(x_t - \sqrt{\bar\alpha}\,\mu_k\big)\Big).

        Computed without the score, it is the ground truth for Tweedie's formula
        :math:`\mathbb E[x_0\mid x_t] = (x_t + (1-\bar\alpha)\nabla\log p_t(x_t))/\sqrt{\bar\alpha}` (chapter 4).
        """
        a = float(alpha_bar)
        x = x_t.to(torch.float64)
        r = self.noised(a).responsibilities(x)  # (n, K)
        gain = self.std**2 * math.sqrt(a) / (a * self.std**2 + 1 - a)
        per_component = self.means[None] + gain * (x[:, None, :] - math.sqrt(a) * self.means[None])  # (n, K, d)
        return (r[..., None] * per_component).sum(1)

    def noised(self, alpha_bar: float) -> "GaussianMixture":
        r"""The marginal of :math:`x_t` when :math:`x_0` follows this mixture:
        means :math:`\sqrt{\bar\alpha}\mu_k`, std :math:`\sqrt{\bar\alpha\sigma^2 + 1-\bar\alpha}`."""
        a = float(alpha_bar)
        return GaussianMixture(self.means * math.sqrt(a), math.sqrt(a * self.std**2 + 1 - a), self.weights)


def mixture(name: str = "8gaussians") -> GaussianMixture:
    """The exact mixture behind a dataset name (only ``"8gaussians"`` is a mixture)."""
    if name != "8gaussians":
        raise ValueError(f"{name!r} has no closed-form density; only '8gaussians' does. Use a model's likelihood instead.")
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture(means, std=0.15)


def _moons(n: int, g: torch.Generator) -> torch.Tensor:
    n_up = n // 2
    theta = math.pi * _rand(n, g)
    upper = torch.stack([theta.cos(), theta.sin()], 1)
    lower = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], 1)
    pts = torch.where((torch.arange(n) < n_up)[:, None], upper, lower)
    pts = pts + 0.06 * _randn(n, 2, g)
    return (pts - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 1.6


def _swiss_roll(n: int, g: torch.Generator) -> torch.Tensor:
    t = 1.5 * math.pi * (1 + 2 * _rand(n, g))
    pts = torch.stack([t * t.cos(), t * t.sin()], 1) / 5.0
    return pts + 0.05 * _randn(n, 2, g)


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    """Uniform on the 8 dark squares of a 4x4 board covering [-2, 2]^2."""
    cells = torch.tensor([(c, r) for c in range(4) for r in range(4) if (c + r) % 2 == 0], dtype=torch.float64)
    k = torch.randint(len(cells), (n,), generator=g)
    return cells[k] + torch.stack([_rand(n, g), _rand(n, g)], 1) - 2.0


def _spirals(n: int, g: torch.Generator) -> torch.Tensor:
    t = torch.sqrt(_rand(n, g)) * 3 * math.pi
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double()
    pts = torch.stack([sign * t * t.cos(), sign * t * t.sin()], 1) / (1.5 * math.pi)
    return pts + 0.05 * _randn(n, 2, g)


def _circles(n: int, g: torch.Generator) -> torch.Tensor:
    radius = torch.where(torch.arange(n) % 2 == 0, 2.0, 1.0).double()
    theta = 2 * math.pi * _rand(n, g)
    pts = radius[:, None] * torch.stack([theta.cos(), theta.sin()], 1)
    return pts + 0.05 * _randn(n, 2, g)


_MAKERS = {
    "moons": _moons,
    "swiss_roll": _swiss_roll,
    "checkerboard": _checkerboard,
    "spirals": _spirals,
    "circles": _circles,
}


def sample(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points of the dataset ``name`` as an ``(n, 2)`` float32 tensor.

    ``generator`` makes the draw repeatable; without one a generator seeded
    with 0 is used, so ``sample("moons", 100)`` is the same every time.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown 2D dataset {name!r}; choose one of {list(DATASETS)}.")
    if int(n) < 1:
        raise ValueError(f"n must be a positive number of points, got {n}.")
    g = _gen(generator)
    if name == "8gaussians":
        return mixture(name).sample(int(n), g)
    return _MAKERS[name](int(n), g).float()


def log_prob(name: str, x: torch.Tensor) -> torch.Tensor:
    """Exact log-density of the dataset at ``x`` (Gaussian mixtures only)."""
    return mixture(name).log_prob(x)


def score(name: str, x: torch.Tensor) -> torch.Tensor:
    r"""Exact score :math:`\nabla_x \log p(x)` of the dataset at ``x`` (Gaussian mixtures only)."""
    return mixture(name).score(x)
