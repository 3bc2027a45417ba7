r"""Noise schedules and the forward (noising) process.

Notation (Ho et al. 2020), with a **0-based** timestep index ``t = 0 … T-1``
(``t = 0`` is the first noising step, ``t = T-1`` the last):

.. math::

    q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{\alpha_t}\,x_{t-1},\ \beta_t I\big),\qquad
    \alpha_t = 1-\beta_t,\qquad \bar\alpha_t = \prod_{s\le t} \alpha_s

and the closed form that lets us jump straight to any step

.. math::

    q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)
    \iff x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon .

All tables are computed in float64 and cast to the dtype of the data on use. (The
cumulative product itself survives float32 to about 1e-7; what float32 loses is
1 - alpha_bar_t near t = 0, a difference of two numbers close to 1: see
`one_minus_alpha_bars`.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = [
    "NoiseSchedule",
    "make_schedule",
    "respace",
    "prior_kl",
    "one_minus_alpha_bars",
    "linear_betas",
    "cosine_betas",
    "sigmoid_betas",
    "SCHEDULES",
]


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    r"""Linear schedule of DDPM: :math:`\beta_t` evenly spaced from ``beta_start`` to ``beta_end``.

    The DDPM values (1e-4 … 0.02) were tuned for ``T = 1000``; with far fewer
    steps the same range never reaches noise (see chapter 1).
    """
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    r"""Cosine schedule of Nichol & Dhariwal (2021).

    .. math::

        \bar\alpha(\tau) = \frac{f(\tau)}{f(0)},\quad
        f(\tau) = \cos^2\!\Big(\frac{\tau/T + s}{1+s}\cdot\frac{\pi}{2}\Big),\quad
        \beta_t = \min\Big(1 - \frac{\bar\alpha(t+1)}{\bar\alpha(t)},\ 0.999\Big)

    so that with 0-based ``t`` the product of ``1 - beta`` up to ``t`` is
    :math:`\bar\alpha(t+1)` (before clipping, which only touches the last steps).
    """
    tau = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos(((tau / T) + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)


def sigmoid_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02, spread: float = 6.0) -> torch.Tensor:
    r"""Sigmoid schedule: :math:`\beta_t = \beta_{start} + (\beta_{end}-\beta_{start})\,\sigma(z_t)`,
    with :math:`z_t` evenly spaced in ``[-spread, spread]``.

    It starts and ends flatter than the linear schedule (GeoDiff, Xu et al. 2022),
    spending more steps at low and high noise. This is the sigmoid *in beta* of the DDIM code
    (``ermongroup/ddim``, option ``sigmoid``) that GeoDiff trains with; it is not the sigmoid in
    :math:`\bar\alpha` / log-SNR (start, end, temperature) of Jabri et al. (2022) and Chen (2023).
    """
    z = torch.linspace(-spread, spread, T, dtype=torch.float64)
    return beta_start + (beta_end - beta_start) * torch.sigmoid(z)


SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas, "sigmoid": sigmoid_betas}


@dataclass
class NoiseSchedule:
    r"""Every quantity of the forward process, precomputed for ``t = 0 … T-1``.

    Attributes (float64 tensors of length ``T``):

    * ``betas`` :math:`\beta_t`, ``alphas`` :math:`\alpha_t = 1-\beta_t`
    * ``alpha_bars`` :math:`\bar\alpha_t=\prod_{s\le t}\alpha_s`;
      ``alpha_bars_prev`` :math:`\bar\alpha_{t-1}` (with :math:`\bar\alpha_{-1} = 1`)
    * ``snr`` :math:`\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)`
    * posterior :math:`q(x_{t-1}\mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)`:
      ``posterior_variance`` :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t`,
      ``posterior_mean_coef_x0`` :math:`\frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}`,
      ``posterior_mean_coef_xt`` :math:`\frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}`
    """

    betas: torch.Tensor
    name: str = "custom"
    alphas: torch.Tensor = field(init=False)
    alpha_bars: torch.Tensor = field(init=False)
    alpha_bars_prev: torch.Tensor = field(init=False)
    snr: torch.Tensor = field(init=False)
    posterior_variance: torch.Tensor = field(init=False)
    posterior_mean_coef_x0: torch.Tensor = field(init=False)
    posterior_mean_coef_xt: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) == 0:
            raise ValueError("betas must be a non-empty 1-D sequence, one value per timestep.")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("Every beta_t must lie strictly between 0 and 1 (it is a variance of added noise).")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self.alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bars[:-1]])
        self.snr = self.alpha_bars / (1.0 - self.alpha_bars)
        one_minus = 1.0 - self.alpha_bars
        self.posterior_variance = (1.0 - self.alpha_bars_prev) / one_minus * betas
        self.posterior_mean_coef_x0 = self.alpha_bars_prev.sqrt() * betas / one_minus
        self.posterior_mean_coef_xt = self.alphas.sqrt() * (1.0 - self.alpha_bars_prev) / one_minus

    # ------------------------------------------------------------------ helpers
    @property
    def T(self) -> int:
        """Number of timesteps."""
        return len(self.betas)

    def __repr__(self) -> str:
        return (f"NoiseSchedule(name={self.name!r}, T={self.T}, beta_0={self.betas[0]:.2e}, "
                f"beta_T-1={self.betas[-1]:.2e}, alpha_bar_T-1={self.alpha_bars[-1]:.2e})")

    def _check_t(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point:
            raise TypeError("Timesteps t are integer indices 0 … T-1; got a float tensor. Use .long().")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise IndexError(
                f"Timestep out of range: got t in [{int(t.min())}, {int(t.max())}] but this schedule has "
                f"T={self.T} steps, indexed 0 … {self.T - 1} (0-based: t=0 is the first noising step)."
            )
        return t.long()

    def extract(self, values: torch.Tensor, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        """``values[t]`` shaped ``(B, 1, 1, …)`` to broadcast against a batch ``x``, in ``x``'s dtype and device.

        ``t`` may be a Python int (same step for the whole batch) or a tensor of ``B`` ints.
        """
        t = self._check_t(t).to(values.device)
        out = values[t].to(device=x.device, dtype=x.dtype)
        if out.ndim == 0:
            return out
        return out.reshape(-1, *([1] * (x.ndim - 1)))

    def alpha_bar_at(self, t: int, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\bar\alpha_t` for ``t = -1 … T-1`` in ``x``'s dtype and device, where ``t = -1`` is the data
        itself, :math:`\bar\alpha_{-1} = 1`: the point every sampler's grid ends at."""
        if int(t) == -1:
            return torch.ones((), dtype=x.dtype, device=x.device)
        return self.extract(self.alpha_bars, t, x)

    # ------------------------------------------------------- forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        r"""Sample :math:`x_t \sim q(x_t\mid x_0)` by reparameterisation:
        :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon`."""
        if eps.shape != x0.shape:
            raise ValueError(f"eps must have the shape of x0: got {tuple(eps.shape)} vs {tuple(x0.shape)}.")
        a = self.extract(self.alpha_bars, t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        r"""One step of the chain: :math:`x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon`."""
        a = self.extract(self.alphas, t, x_prev)
        return a.sqrt() * x_prev + (1 - a).sqrt() * eps

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and variance of :math:`q(x_{t-1}\mid x_t, x_0)`:
        :math:`\tilde\mu_t = c_0\,x_0 + c_t\,x_t`, :math:`\tilde\beta_t` (see the class docstring)."""
        mean = self.extract(self.posterior_mean_coef_x0, t, x0) * x0 + self.extract(self.posterior_mean_coef_xt, t, xt) * xt
        var = self.extract(self.posterior_variance, t, xt)
        return mean, var

    # --------------------------------------------- converting predictions
    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`."""
        a = self.extract(self.alpha_bars, t, xt)
        return (xt - (1 - a).sqrt() * eps) / a.sqrt()

    def predict_eps(self, xt: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}`."""
        a = self.extract(self.alpha_bars, t, xt)
        return (xt - a.sqrt() * x0) / (1 - a).sqrt()

    def velocity(self, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
        r"""The v-target of Salimans & Ho (2022): :math:`v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1-\bar\alpha_t}\,x_0`."""
        a = self.extract(self.alpha_bars, t, x0)
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    def eps_from_velocity(self, xt: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\varepsilon = \sqrt{1-\bar\alpha_t}\,x_t + \sqrt{\bar\alpha_t}\,v` (inverse of the v-target)."""
        a = self.extract(self.alpha_bars, t, xt)
        return (1 - a).sqrt() * xt + a.sqrt() * v


def make_schedule(name: str = "linear", T: int = 1000, **kw: float) -> NoiseSchedule:
    """Build a `NoiseSchedule` by name: ``"linear"``, ``"cosine"`` or ``"sigmoid"``.

    Keyword arguments go to the beta function (``beta_start``/``beta_end`` for
    linear and sigmoid, ``s``/``max_beta`` for cosine).

    >>> make_schedule("cosine", T=1000).alpha_bars[-1] < 1e-4
    tensor(True)
    """
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}.")
    if int(T) < 1:
        raise ValueError(f"T must be a positive number of steps, got {T}.")
    return NoiseSchedule(SCHEDULES[name](int(T), **kw), name=name)


def respace(schedule: NoiseSchedule, steps: int) -> tuple[NoiseSchedule, torch.Tensor]:
    r"""The same diffusion on ``steps`` of its timesteps (Nichol & Dhariwal 2021, "respacing").

    Keep the timesteps :math:`\tau_0 < \dots < \tau_{S-1}` spread evenly over :math:`0 … T-1` (:math:`\tau_{S-1}
    = T-1`, so sampling still starts from pure noise) and give the shorter chain the :math:`\beta'` that reproduce
    their :math:`\bar\alpha`,

    .. math::

        \beta'_i = 1 - \bar\alpha_{\tau_i} / \bar\alpha_{\tau_{i-1}}, \qquad \bar\alpha_{\tau_{-1}} = 1,

    so that :math:`\bar\alpha'_i = \bar\alpha_{\tau_i}`: a network trained on the long chain predicts the noise
    of the short one when called at :math:`\tau_i` instead of :math:`i`. Returns ``(short_schedule, tau)``; any
    sampler written for a `NoiseSchedule` runs on the short one with ``eps_fn(x, tau[i])``.
    """
    if not 1 <= int(steps) <= schedule.T:
        raise ValueError(f"steps must be between 1 and T = {schedule.T}, got {steps}.")
    tau = torch.linspace(0, schedule.T - 1, int(steps), dtype=torch.float64).round().long()
    ab = schedule.alpha_bars[tau]
    betas = 1 - ab / torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    return NoiseSchedule(betas, name=f"{schedule.name}, respaced to {int(steps)}"), tau


def prior_kl(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    r"""The prior term of the DDPM bound, :math:`L_T = D_{KL}\big(q(x_T\mid x_0)\,\|\,\mathcal N(0,I)\big)`,
    in nats, one value per example of the batch ``x0`` (shape ``(B, …)``).

    With :math:`\bar\alpha = \bar\alpha_{T-1}` (the last step, 0-based), each dimension contributes

    .. math::

        D_{KL}\big(\mathcal N(\sqrt{\bar\alpha}\,x_0,\ 1-\bar\alpha)\,\|\,\mathcal N(0,1)\big)
        = \tfrac12\big(\bar\alpha\,x_0^2-\bar\alpha-\log(1-\bar\alpha)\big),

    and the dimensions are summed. It vanishes only as :math:`\bar\alpha_{T-1}\to 0`: otherwise sampling from
    :math:`\mathcal N(0,I)` starts from the wrong distribution.
    """
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    if x0.ndim == 0:
        raise ValueError("x0 must be a batch of shape (B, ...); wrap a single value as torch.tensor([value]).")
    ab = schedule.alpha_bars[-1]
    per_dim = 0.5 * (ab * x0**2 - ab - torch.log1p(-ab))
    return per_dim.reshape(len(x0), -1).sum(dim=1)


def one_minus_alpha_bars(betas: torch.Tensor) -> torch.Tensor:
    r""":math:`1-\bar\alpha_t` for ``t = 0 … T-1`` without cancellation, in the dtype of ``betas``:

    .. math::

        1-\bar\alpha_t = -\operatorname{expm1}\Big(\sum_{s\le t}\operatorname{log1p}(-\beta_s)\Big).

    Forming :math:`\bar\alpha_t` first and subtracting it from 1 cancels the leading digits when
    :math:`\bar\alpha_t` is close to 1 (small ``t``): float32 keeps about 7 significant digits *of*
    :math:`\bar\alpha_t`, so :math:`1-\bar\alpha_t\approx 10^{-4}` keeps only 3–4, and a value below
    :math:`6\cdot10^{-8}` becomes exactly 0. ``log1p`` and ``expm1`` never form a number near 1.
    (`NoiseSchedule` keeps its tables in float64, where the plain form is accurate to about 1e-12.)
    """
    betas = torch.as_tensor(betas)
    if not betas.dtype.is_floating_point:
        raise TypeError("betas must be a floating-point tensor (the variances beta_t); got " + str(betas.dtype) + ".")
    return -torch.expm1(torch.cumsum(torch.log1p(-betas), dim=0))
