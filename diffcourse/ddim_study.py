r"""Chapter 3's measurements of DDIM's noise level η, read from committed results files (nothing is sampled here).

* ``samplers.json`` (``benchmarks/samplers.py``): the shipped ``mnist-ddpm`` with DDIM η = 0 and η = 1 at 10–100
  steps and DDPM-1000, N = 200, every sampler from the same starting noise, with paired bootstrap intervals of the
  differences it records;
* ``weighting_study.json`` (``benchmarks/weighting_study.py``): two networks that differ only in the loss weighting
  (min-SNR-5 and plain :math:`L_\text{simple}`, 6500 steps each) sampled the same way at N = 1000, with paired
  bootstrap intervals of :math:`\mathrm{FID}(\eta{=}0)-\mathrm{FID}(\eta{=}1)` per step count and of
  :math:`\mathrm{FID}(L_\text{simple})-\mathrm{FID}(\text{min-SNR-5})` per setting.

`kid_difference` is the paired jackknife interval of a KID difference at a lesson's small N.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .measure import Difference
from .reporting import markdown_table

__all__ = ["difference_from", "difference_line", "samplers_table", "samplers_verdicts", "weighting_table", "weighting_verdicts",
           "eta_ordering", "ordering_lines", "kid_difference"]

STEPS = (10, 20, 50, 100)
NETWORKS = ("min-SNR-5", "L_simple")


def difference_from(d: Mapping, name_a: str | None = None, name_b: str | None = None) -> Difference:
    """A `Difference` from its ``as_dict`` form in a results file (optionally renamed for a shorter verdict)."""
    return Difference.from_dict(d, name_a, name_b)


def difference_line(d: Difference, what: str, digits: int = 3) -> str:
    """A verdict line for a quantity with no "better" direction (ink, a distance): the difference, its interval and
    whether the interval excludes 0."""
    status = "resolved" if d.resolved else "not resolved at this N"
    return (f"{status}: {what} {d.name_a} − {d.name_b} = {d.estimate:+.{digits}f} "
            f"([{d.low:+.{digits}f}, {d.high:+.{digits}f}], {d.level:.0%} {d.method})")


DDPM_LABEL = "DDPM-1000 (σ²=β)"  # the benchmark's ``ddpm`` row: ancestral sampling, all steps, sigma_t^2 = beta_t


def _spec_name(spec: str) -> str:
    kind, steps, eta = (spec.split(":") + ["", ""])[:3]
    return f"DDIM-{steps} η={eta}" if kind == "ddim" else DDPM_LABEL if spec == "ddpm" else spec


def samplers_verdicts(bench: Mapping | None, metric: str = "fid") -> list[str]:
    """One verdict line per difference that ``samplers.json`` records between two DDIM rows of ``mnist-ddpm``, or
    between a DDIM row and DDPM-1000 (ancestral, :math:`\\sigma_t^2=\\beta_t`)."""
    lines = []
    for d in (bench or {}).get("differences", []):
        if d["metric"] == metric and d["a"].startswith("ddim:") and (d["b"].startswith("ddim:") or d["b"] == "ddpm"):
            diff = difference_from(d, _spec_name(d["a"]), _spec_name(d["b"]))
            lines.append(diff.verdict(metric.upper()))
    return lines


def samplers_table(bench: Mapping | None, steps: Sequence[int] = STEPS) -> str:
    """Markdown: ``mnist-ddpm``'s FID at each DDIM step count and η and for DDPM-1000 (``samplers.json``), each with
    its distance from the matched floor's mean in units of the floor's draw-to-draw spread, and the floor itself."""
    rows = {r["spec"]: r for r in (bench or {}).get("rows", []) if r.get("model") == "mnist-ddpm"}
    fl = (bench or {}).get("floor", {}).get("fid_data")
    if not rows or not fl:
        return "(benchmarks/results/samplers.json has no mnist-ddpm rows or no floor: run `python benchmarks/samplers.py`)"

    def cell(spec: str) -> list[str]:
        r = rows.get(spec)
        if r is None:
            return ["—", "—"]
        return [f"{r['fid']:.2f} ({(r['fid'] - fl['mean']) / fl['std']:+.1f}σ)", f"{r['seconds']:.1f}"]
    body = [[str(s)] + cell(f"ddim:{s}:0") + cell(f"ddim:{s}:1") for s in steps]
    if "ddpm" in rows:
        body.append([f"**DDPM** ancestral, σ² = β, {rows['ddpm']['nfe']}"] + cell("ddpm") + ["", ""])
    body.append([f"real digits (floor): N = {fl['n']}, {len(fl['draws'])} draws", f"{fl['mean']:.2f} ± {fl['std']:.2f}",
                 "", "", ""])
    return markdown_table(["steps = NFE", "DDIM η=0: FID (vs floor)", "seconds", "DDIM η=1: FID (vs floor)", "seconds"],
                          body)


def weighting_table(study: Mapping) -> str:
    """Markdown: FID and confident share of each network at each DDIM setting, and the matched floor at that N."""
    rows = study["rows"]
    body = []
    for s in STEPS:
        for e in (0, 1):
            key = f"ddim{s}-eta{e}"
            cells = [f"{rows[m][key]['fid']:.2f} / {rows[m][key]['confident_share']:.3f}" if key in rows.get(m, {})
                     else "—" for m in NETWORKS]
            body.append([f"DDIM-{s}, η={e}"] + cells)
    for n, fl in study["floors"].items():
        body.append([f"real digits, N = {n} ({len(fl['draws'])} draws, {fl['label_mix']} label mix)",
                     f"{fl['mean']:.2f} ± {fl['std']:.2f}", ""])
    return markdown_table(["setting", "min-SNR-5: FID / confident", "L_simple: FID / confident"], body)


def weighting_verdicts(study: Mapping) -> dict[str, list[str]]:
    """The verdict lines: η = 0 − η = 1 per network and step count, and L_simple − min-SNR-5 per setting."""
    eta = [f"{m}, DDIM-{s}: " + difference_from(d, "η=0", "η=1").verdict()
           for m in NETWORKS for s in STEPS if (d := study["eta0_minus_eta1"].get(f"{m} ddim{s}"))]
    weighting = [f"DDIM-{key[4:].replace('-eta', ', η=')}: " + difference_from(d, "L_simple", "min-SNR-5").verdict()
                 for key, d in study["lsimple_minus_minsnr"].items() if d]
    return {"eta": eta, "weighting": weighting}


def _winner(d: Difference) -> str:
    if not d.resolved:
        return "not resolved"
    return f"{d.name_a} better" if d.estimate < 0 else f"{d.name_b} better"


def eta_ordering(study: Mapping, steps: Sequence[int] = STEPS) -> dict[str, dict[int, str]]:
    """For each network and step count: ``"η=0 better"``, ``"η=1 better"`` or ``"not resolved"`` (FID, 95 %)."""
    return {m: {s: _winner(difference_from(d, "η=0", "η=1")) for s in steps
                if (d := study["eta0_minus_eta1"].get(f"{m} ddim{s}"))} for m in NETWORKS}


def ordering_lines(study: Mapping, steps: Sequence[int] = STEPS) -> list[str]:
    """Per network: the step counts where η = 1 is better, where η = 0 is better and where the difference is not
    resolved; then whether η = 0 is better anywhere (the DDIM paper's ordering) and whether the two weightings
    ever disagree where both differences are resolved."""
    order = eta_ordering(study, steps)
    lines = []
    for net, by in order.items():
        parts = [f"{w} at " + (", ".join(str(s) for s, v in by.items() if v == w) or "none")
                 for w in ("η=1 better", "η=0 better", "not resolved")]
        lines.append(f"{net}: " + "; ".join(parts))
    paper = [f"{net} {s}" for net, by in order.items() for s, v in by.items() if v == "η=0 better"]
    both = [s for s in steps if all(order[n].get(s, "not resolved") != "not resolved" for n in order)]
    clash = [s for s in both if len({order[n][s] for n in order}) > 1]
    lines.append("η=0 better (the DDIM paper's ordering), either weighting: " + (", ".join(paper) or "nowhere"))
    lines.append(f"step counts where both weightings are resolved: {', '.join(map(str, both)) or 'none'}; "
                 f"they disagree at: {', '.join(map(str, clash)) or 'none'}")
    return lines


def kid_difference(a: torch.Tensor, b: torch.Tensor, reference: torch.Tensor, *, groups: int = 50, seed: int = 0,
                   level: float = 0.95, name_a: str = "A", name_b: str = "B") -> Difference:
    r"""Paired interval of :math:`\mathrm{KID}(A,R)-\mathrm{KID}(B,R)` with the reference ``R`` held fixed.

    With one reference the term :math:`\frac{1}{n(n-1)}\sum k(y_i,y_j)` cancels, so
    :math:`\Delta = [s_{xx}(A) - 2\,\overline{k(a,R)}] - [s_{xx}(B) - 2\,\overline{k(b,R)}]`, where
    :math:`s_{xx}` averages the kernel over *distinct* pairs. The kernel matrices are computed once; the variance is
    the delete-a-group jackknife over the paired rows (`measure.jackknife_variance`: row i of A and of B came from
    the same starting noise, and no row is used twice — a bootstrap's duplicated rows would enter :math:`s_{xx}` as
    "distinct" pairs and bias every replicate). The interval is :math:`\Delta \pm t_{G-1}\hat\sigma`, conditional on
    ``R`` as the measurement is.
    """
    from .measure import jackknife_variance, t_multiplier

    def parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = x.double(), reference.double()
        k = lambda u, v: (u @ v.T / x.shape[1] + 1.0) ** 3  # noqa: E731  (metrics.kid's cubic kernel)
        return k(x, x), k(x, y).mean(1)

    def delta(idx: torch.Tensor) -> float:
        m = len(idx)
        out = 0.0
        for sign, (kxx, kxy) in ((1, pa), (-1, pb)):
            sub = kxx[idx][:, idx]
            out += sign * float((sub.sum() - sub.diagonal().sum()) / (m * (m - 1)) - 2 * kxy[idx].mean())
        return out

    if len(a) != len(b):
        raise ValueError(f"Paired sets must have equal size ({len(a)} vs {len(b)}).")
    pa, pb = parts(a), parts(b)
    estimate = delta(torch.arange(len(a)))
    variance, count = jackknife_variance(len(a), delta, groups, torch.Generator().manual_seed(seed))
    hw = t_multiplier(count - 1, level) * variance ** 0.5
    return Difference(name_a, name_b, estimate, estimate - hw, estimate + hw, level,
                      f"jackknife (paired, {count} groups, fixed reference)")