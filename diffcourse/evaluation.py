r"""`evaluate_images`: chapter 7's metrics for a batch of MNIST samples, as one dictionary.

FID against the same number of MNIST test digits in the ``mnist-classifier`` feature space, the
real-vs-real floor at that N (two disjoint sets of real digits), the Inception-Score analogue, improved
precision and recall (k = 3), and — given labels — the accuracy, the fraction of samples the classifier
reads as the asked-for digit. ``python -m diffcourse evaluate`` prints it; the benchmarks record it.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["evaluate_images"]


def evaluate_images(images: torch.Tensor, labels: torch.Tensor | None = None, classifier: torch.nn.Module | None = None,
                    seed: int = 0, k: int = 3) -> dict[str, Any]:
    """The metrics of chapter 7 for ``(N, 1, 28, 28)`` images in [-1, 1] (see the module docstring)."""
    from .data.mnist import load_mnist
    from .metrics import (classifier_features, feature_stats, frechet_distance, inception_score,
                          precision_recall)
    from .pretrained import load_pretrained

    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must have shape (N, 1, 28, 28), got {tuple(x.shape)}.")
    if not torch.isfinite(x).all() or x.min() < -1.001 or x.max() > 1.001:
        raise ValueError("images must be finite and lie in [-1, 1] (as written by `python -m diffcourse sample`).")
    n = len(x)
    if n < 10 or n > 5000:
        raise ValueError(f"evaluate needs between 10 and 5000 images (FID compares with as many test digits), got {n}.")
    classifier = classifier or load_pretrained("mnist-classifier")
    test_x, _ = load_mnist("test")
    perm = torch.randperm(len(test_x), generator=torch.Generator().manual_seed(seed))
    ref, ref2 = test_x[perm[:n]], test_x[perm[n:2 * n]]
    f_fake, f_ref, f_ref2 = (classifier_features(v, classifier) for v in (x, ref, ref2))
    dev = next(classifier.parameters()).device  # the classifier may sit on a GPU; the images come from the CPU
    with torch.no_grad():
        probs = torch.softmax(torch.cat([classifier(x[i:i + 1000].to(dev)).cpu() for i in range(0, n, 1000)]), dim=1)
    precision, recall = precision_recall(f_ref, f_fake, k=k)
    result: dict[str, Any] = {
        "n": n,
        "fid": round(frechet_distance(*feature_stats(f_fake), *feature_stats(f_ref)), 4),
        "fid_floor": round(frechet_distance(*feature_stats(f_ref2), *feature_stats(f_ref)), 4),
        "inception_score": round(inception_score(probs), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
    }
    if labels is not None:
        result["accuracy"] = round(float((probs.argmax(1) == torch.as_tensor(labels)).float().mean()), 4)
    return result
