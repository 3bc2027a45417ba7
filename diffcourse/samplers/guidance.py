r"""Guidance: steering a diffusion model towards a class.

**Classifier guidance** (Dhariwal & Nichol 2021). Bayes' rule on scores,

.. math:: \nabla_x\log p_t(x\mid y) = \nabla_x\log p_t(x) + \nabla_x\log p_t(y\mid x),

and :math:`\varepsilon = -\sqrt{1-\bar\alpha_t}\,\nabla\log p_t` turn an unconditional noise
predictor and a classifier of *noisy* inputs into a conditional one; a scale :math:`s` sharpens it:

.. math:: \hat\varepsilon = \varepsilon_\theta(x_t,t) - s\,\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log p_\phi(y\mid x_t, t).

**Classifier-free guidance** (Ho & Salimans 2022). One network trained with labels sometimes
replaced by a null label predicts both :math:`\varepsilon_c = \varepsilon_\theta(x_t,t,y)` and
:math:`\varepsilon_u = \varepsilon_\theta(x_t,t,\varnothing)`; extrapolate from one to the other:

.. math:: \hat\varepsilon = \varepsilon_u + w\,(\varepsilon_c - \varepsilon_u) .

:math:`w=0` is unconditional, :math:`w=1` the conditional model, :math:`w>1` guided. The paper
writes the same thing as :math:`(1+w')\,\varepsilon_c - w'\,\varepsilon_u`, so :math:`w = 1 + w'`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..objectives import EpsFn
from ..schedules import NoiseSchedule

__all__ = ["cfg_combine", "cfg_combine_paper", "w_from_paper", "cfg_eps_fn", "classifier_log_prob_grad",
           "classifier_guided_eps", "classifier_guided_eps_fn", "classifier_guided_mean"]


def cfg_combine(eps_c: torch.Tensor, eps_u: torch.Tensor, w: float) -> torch.Tensor:
    r""":math:`\varepsilon_u + w(\varepsilon_c - \varepsilon_u)` (this course's convention: w=1 is the conditional model)."""
    return eps_u + w * (eps_c - eps_u)


def cfg_combine_paper(eps_c: torch.Tensor, eps_u: torch.Tensor, w_prime: float) -> torch.Tensor:
    r""":math:`(1+w')\varepsilon_c - w'\varepsilon_u`, the convention of Ho & Salimans (w'=0 is the conditional model)."""
    return (1 + w_prime) * eps_c - w_prime * eps_u


def w_from_paper(w_prime: float) -> float:
    """The course's guidance weight ``w`` equal to the paper's ``w'``: ``w = 1 + w'``."""
    return 1.0 + w_prime


def cfg_eps_fn(model: nn.Module, y: torch.Tensor, w: float) -> EpsFn:
    r"""The guided noise predictor :math:`(x_t, t) \mapsto \varepsilon_u + w(\varepsilon_c-\varepsilon_u)` of a
    class-conditional ``model`` with a null label (``model.label.null_label``), for labels ``y``.

    Both predictions come from one batched call (the batch doubled), so a guided step costs two NFE.
    The two ends cost one: ``w = 1`` is the conditional model alone and ``w = 0`` the unconditional
    model alone (the null label), so each evaluates only its own half.
    """
    label = getattr(model, "label", None)
    if label is None:
        raise ValueError("Classifier-free guidance needs a class-conditional model trained with a null label "
                         "(e.g. load_pretrained('mnist-cfg')).")
    null = label.null_label

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        yy = torch.as_tensor(y, device=x.device).long().reshape(-1).expand(x.shape[0])
        if w == 1.0:   # the conditional model: eps_u + 1 * (eps_c - eps_u) = eps_c
            return model(x, t, yy)
        if w == 0.0:   # the unconditional model: eps_u + 0 * (eps_c - eps_u) = eps_u
            return model(x, t, torch.full_like(yy, null))
        eps_c, eps_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([yy, torch.full_like(yy, null)])).chunk(2)
        return cfg_combine(eps_c, eps_u, w)

    return f


def classifier_log_prob_grad(log_prob_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    r""":math:`\nabla_x \log p(y\mid x)` where ``log_prob_fn(x)`` returns :math:`\log p(y\mid x)` per example, shape ``(B,)``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_prob_fn(x).sum(), x)
    return grad


def classifier_guided_eps(eps: torch.Tensor, grad_log_py: torch.Tensor, alpha_bar_t: torch.Tensor | float,
                          scale: float) -> torch.Tensor:
    r""":math:`\hat\varepsilon = \varepsilon - s\sqrt{1-\bar\alpha_t}\,\nabla_x\log p(y\mid x_t)`."""
    a = torch.as_tensor(alpha_bar_t, dtype=eps.dtype, device=eps.device)
    if a.ndim == 1:
        a = a.reshape(-1, *([1] * (eps.ndim - 1)))
    return eps - scale * (1 - a).sqrt() * grad_log_py


def classifier_guided_eps_fn(eps_fn: EpsFn, classifier: nn.Module, schedule: NoiseSchedule, y: torch.Tensor,
                             scale: float) -> EpsFn:
    r"""Classifier guidance of an unconditional ``eps_fn`` by a noise-aware ``classifier(x_t, t) -> logits``
    towards labels ``y`` with scale ``s``: see the module docstring. One NFE plus one classifier
    forward and backward pass per step."""

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        yy = torch.as_tensor(y, device=x.device).long().reshape(-1).expand(x.shape[0])
        eps = eps_fn(x, t)
        if scale == 0:
            return eps

        def log_py(xx: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(classifier(xx, t), dim=1).gather(1, yy[:, None])[:, 0]

        grad = classifier_log_prob_grad(log_py, x)
        return classifier_guided_eps(eps, grad, schedule.extract(schedule.alpha_bars, t.long(), x), scale)

    return f


def classifier_guided_mean(mean: torch.Tensor, variance: torch.Tensor | float, grad_log_py: torch.Tensor,
                           scale: float) -> torch.Tensor:
    r"""Dhariwal & Nichol's Algorithm 1 (guided ancestral sampling): shift the reverse step's Gaussian mean,

    .. math:: x_{t-1}\sim\mathcal N\big(\mu + s\,\Sigma\,\nabla_{x_t}\log p_\phi(y\mid x_t, t),\ \Sigma\big),

    with :math:`\mu, \Sigma = \sigma_t^2 I` the unguided DDPM step's mean and variance. Putting the guided
    :math:`\hat\varepsilon` (their Algorithm 2, `classifier_guided_eps`) into the DDPM mean
    :math:`\mu = (x_t - \beta_t\hat\varepsilon/\sqrt{1-\bar\alpha_t})/\sqrt{\alpha_t}` shifts it by
    :math:`s\,\beta_t\,\nabla\log p/\sqrt{\alpha_t}` instead: the same step up to :math:`1/\sqrt{\alpha_t}\approx1`
    when :math:`\sigma_t^2=\beta_t`. Algorithm 1 needs a variance, so it is for ancestral sampling only; DDIM uses
    the ε form.
    """
    v = torch.as_tensor(variance, dtype=mean.dtype, device=mean.device)
    if v.ndim == 1:
        v = v.reshape(-1, *([1] * (mean.ndim - 1)))
    return mean + scale * v * grad_log_py
