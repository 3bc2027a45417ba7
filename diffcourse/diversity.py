r"""Diversity measured apart from fidelity (chapter 8's comparison of generative models).

Improved recall (Kynkäänniemi et al. 2019, `diffcourse.metrics.precision_recall`) mixes two things: a sample
set covers little of the real data either because it lacks variety (mode dropping) or because its samples lie
off the real manifold (every sample is a blur). These read diversity without that confound:

* **class histogram and class entropy** — the classifier's labels of the samples; the entropy
  :math:`H = -\sum_c p_c\log p_c` of their mix, divided by :math:`\log 10` (1 = all ten digits equally often). A
  model that drops a digit shows it here whatever the quality of the rest;
* **within-class spread** (`diffcourse.metrics.within_class_spread`) — the feature variance inside each class, as a
  fraction of real digits' (1 = as varied as real digits of the same class);
* **density and coverage** (Naeem et al. 2020, `diffcourse.metrics.density_coverage`) — with :math:`B_k(r_j)` the ball around real point :math:`r_j` reaching
  its k-th nearest real neighbour,

  .. math:: \text{density} = \frac{1}{kM}\sum_{i=1}^M \sum_{j=1}^N \mathbb 1[f_i\in B_k(r_j)],\qquad
            \text{coverage} = \frac1N\sum_{j=1}^N \mathbb 1[\exists i: f_i\in B_k(r_j)] .

  Coverage asks, of each *real* point, whether some sample lands in its own ball — balls built from real data
  only, so outlying samples cannot inflate it as they inflate recall's sample balls; density counts how many
  real balls hold each sample (≈ 1 for samples distributed like the data, fidelity).
"""
from __future__ import annotations

import math

import torch

from .metrics import density_coverage, within_class_spread

__all__ = ["class_histogram", "class_entropy", "density_coverage", "within_class_spread", "relative_spread"]


def class_histogram(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """The share of each class among ``labels`` (e.g. the classifier's argmax of samples), shape ``(num_classes,)``."""
    counts = torch.bincount(torch.as_tensor(labels).long().reshape(-1), minlength=num_classes).double()
    if counts.sum() == 0:
        raise ValueError("class_histogram needs at least one label.")
    return counts / counts.sum()


def class_entropy(labels: torch.Tensor, num_classes: int = 10) -> float:
    r"""Normalised entropy :math:`-\sum_c p_c \log p_c / \log K` of the label mix: 1 when all K classes are equally
    frequent, 0 when one class takes everything. (MNIST's own training labels score 0.9994.)"""
    p = class_histogram(labels, num_classes)
    p = p[p > 0]
    return abs(float(-(p * p.log()).sum() / math.log(num_classes)))  # abs: one class gives -0.0


def relative_spread(features: torch.Tensor, labels: torch.Tensor, real_features: torch.Tensor,
                    real_labels: torch.Tensor) -> float:
    """`within_class_spread` of the samples divided by that of real examples (each with its classifier labels)."""
    return within_class_spread(features, labels) / within_class_spread(real_features, real_labels)
