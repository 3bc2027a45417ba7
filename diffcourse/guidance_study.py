r"""Reading the guidance benchmarks (chapters 5 and 6) the way the course reads every measurement (DESIGN §7).

The guidance sweeps draw **class-balanced** labels (``0, 1, …, 9, 0, …``), so their FIDs are read against a floor of
class-balanced real digits at the same N (`diffcourse.measure.matched_floor`); the unconditional rows (``w = 0``,
``s = 0``) ignore the labels and are read against real digits in the data's own mix. Balanced real digits score a
clearly *lower* FID than random ones at the same N (their class histogram has no sampling noise), so a floor of
random digits makes balanced samples look "better than real".

Every claim is a difference read against its own noise:

* **sample vs floor**: :math:`\mathrm{FID}(\text{samples}) - \mathrm{FID}(\text{real draw})`, both against the same
  test digits, by the package's interval for set metrics (`jackknife_difference` with ``paired=False``), or, for
  KID at a small N, against a band of many real draws (`band_difference`);
* **setting vs setting** (two scales, or classifier guidance against classifier-free guidance): a *paired*
  jackknife — row i of both sets came from the same starting noise and asked for the same digit;
* **accuracy** differences: a paired bootstrap of the per-sample "read as the asked-for digit".

``kept`` (what ``benchmarks/mnist_quality.py --features`` stores) maps a setting such as ``"cfg:1.25"`` or
``"cg:2.0"`` to ``{"features": (N, d), "read_as": (N,), "labels": (N,)}``.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch

from .measure import (Difference, bootstrap_difference, draw_reference, fid_features, jackknife_difference,
                      new_draw_half_width)
from .samplers.guidance import classifier_guided_eps, classifier_log_prob_grad

__all__ = ["UNCONDITIONAL", "setting_name", "is_unconditional", "fid_to_floor", "paired_fid", "paired_accuracy",
           "guidance_differences", "difference_from_dict", "noisy_classifier_differences", "guidance_probe",
           "decided_share", "noisy_readers", "floor_for", "to_floor_difference", "to_floor_verdict",
           "reading", "sweep_table",
           "kid_to", "load_live", "band_difference", "share_lower_bound",
           "mark_floors"]

UNCONDITIONAL = ("cfg:0.0", "cg:0.0")   # the rows whose samples ignore their labels


def setting_name(key: str) -> str:
    """``"cfg:1.25"`` → ``"CFG w = 1.25"``, ``"cg:2.0"`` → ``"CG s = 2"``."""
    family, value = key.split(":")
    return f"{'CFG w' if family == 'cfg' else 'CG s'} = {float(value):g}"


def is_unconditional(key: str) -> bool:
    return key in UNCONDITIONAL


def _accuracy(correct: torch.Tensor, _reference: torch.Tensor | None = None) -> float:
    return float(correct.double().mean())


def _correct(entry: Mapping) -> torch.Tensor:
    return (entry["read_as"] == entry["labels"]).double()


def fid_to_floor(features: torch.Tensor, pool_features: torch.Tensor, pool_labels: torch.Tensor,
                 reference: torch.Tensor, labels: torch.Tensor | None, *, groups: int = 50, seed: int = 0,
                 name: str = "samples", metric: Callable = fid_features) -> Difference:
    r""":math:`m(\text{samples}) - m(\text{real})` (``metric`` FID by default) with the package's interval for set
    metrics (`measure.jackknife_difference`, unpaired), where the real set is drawn from the pool the way the samples
    were (``labels``: their label list; ``None``: the data's own mix), and both are scored against the same
    ``reference``."""
    g = torch.Generator().manual_seed(seed + 1000)
    real = pool_features[draw_reference(pool_labels, len(features), labels, g)]
    mix = "data-mix" if labels is None else "balanced"
    return jackknife_difference(metric, features.double(), real.double(), reference.double(), paired=False,
                                groups=groups, seed=seed, name_a=name, name_b=f"{mix} real digits")


def paired_fid(a: Mapping, b: Mapping, reference: torch.Tensor, name_a: str, name_b: str, *, groups: int = 50,
               seed: int = 0) -> Difference:
    """FID(a) − FID(b) for two settings drawn from the same starting noises and labels (a paired jackknife)."""
    return jackknife_difference(fid_features, a["features"].double(), b["features"].double(), reference.double(),
                                paired=True, groups=groups, seed=seed, name_a=name_a, name_b=name_b)


def paired_accuracy(a: Mapping, b: Mapping, name_a: str, name_b: str, *, n_boot: int = 1000,
                    seed: int = 0) -> Difference:
    """accuracy(a) − accuracy(b), paired over samples (same noise, same asked-for digit)."""
    if not torch.equal(a["labels"], b["labels"]):
        raise ValueError("paired_accuracy needs the same label list for both settings (row i asks for one digit).")
    return bootstrap_difference(_accuracy, _correct(a), _correct(b), None, paired=True, n_boot=n_boot, seed=seed,
                                name_a=name_a, name_b=name_b)


def _pairs(keys: list[str]) -> list[tuple[str, str]]:
    """Neighbouring settings of each family (larger first): ``[("cfg:1.25", "cfg:1.0"), …]``."""
    out = []
    for family in ("cfg", "cg"):
        ks = sorted((k for k in keys if k.startswith(family + ":")), key=lambda k: float(k.split(":")[1]))
        out += list(zip(ks[1:], ks[:-1]))
    return out


def guidance_differences(kept: Mapping[str, Mapping], pool_features: torch.Tensor, pool_labels: torch.Tensor,
                         reference: torch.Tensor, *, groups: int = 50, seed: int = 0) -> dict:
    """Every setting against its matched floor, neighbouring settings against each other, and classifier guidance
    against classifier-free guidance at each one's lowest FID and at w = s = 1 (the two "Bayes' rule" settings).

    Returns JSON-ready dicts (`Difference.as_dict` plus the printed ``verdict``)."""
    fid = {k: fid_features(v["features"].double(), reference.double()) for k, v in kept.items()}

    def record(d: Difference, metric: str = "FID", lower_is_better: bool = True) -> dict:
        return {**d.as_dict(), "verdict": d.verdict(metric, lower_is_better=lower_is_better)}

    out: dict = {"to_floor": {}, "pairs": [], "head_to_head": []}
    for k, v in kept.items():
        labels = None if is_unconditional(k) else v["labels"]
        out["to_floor"][k] = {**record(fid_to_floor(v["features"], pool_features, pool_labels, reference, labels,
                                                    groups=groups, seed=seed, name=setting_name(k))),
                              "n": len(v["features"]), "fid": fid[k], "accuracy": _accuracy(_correct(v))}
    for a, b in _pairs(list(kept)):
        out["pairs"].append({"fid": record(paired_fid(kept[a], kept[b], reference, setting_name(a), setting_name(b),
                                                      groups=groups, seed=seed)),
                             "accuracy": record(paired_accuracy(kept[a], kept[b], setting_name(a), setting_name(b),
                                                                seed=seed), "accuracy", lower_is_better=False)})
    guided = {f: [k for k in kept if k.startswith(f + ":") and not is_unconditional(k)] for f in ("cg", "cfg")}
    if guided["cg"] and guided["cfg"]:
        best = {f: min(ks, key=fid.get) for f, ks in guided.items()}
        matches = [(best["cg"], best["cfg"])] + ([("cg:1.0", "cfg:1.0")] if {"cg:1.0", "cfg:1.0"} <= kept.keys() else [])
        for a, b in matches:
            out["head_to_head"].append({
                "fid": record(paired_fid(kept[a], kept[b], reference, setting_name(a), setting_name(b), groups=groups,
                                         seed=seed)),
                "accuracy": record(paired_accuracy(kept[a], kept[b], setting_name(a), setting_name(b), seed=seed),
                                   "accuracy", lower_is_better=False)})
    out["protocol"] = ("FID of each setting against all test digits; floors: real training digits drawn as the samples "
                       "were (balanced labels, or the data's mix for w = 0 / s = 0), same N; differences by "
                       f"(FID: a delete-a-group jackknife, {groups} groups, paired where the two settings share starting noise and "
                       "labels; accuracy: a paired bootstrap of the per-sample outcomes)")
    return out


def difference_from_dict(d: Mapping) -> Difference:
    """The `Difference` that ``Difference.as_dict`` wrote into a results file (to print its verdict again)."""
    return Difference.from_dict(d)


def noisy_classifier_differences(correct: Mapping[str, torch.Tensor], *, n_boot: int = 2000, seed: int = 0) -> dict:
    """At one noise level, from per-digit correctness on the *same* noisy digits (``{"network", "lda", "bayes"}``):
    network − Bayes over the training digits, network − LDA, Bayes − LDA, each with a paired bootstrap interval, and
    the design target: not resolved below Bayes' rule, and resolved above the LDA wherever Bayes' rule is."""
    def diff(a: str, b: str) -> Difference:
        return bootstrap_difference(_accuracy, correct[a], correct[b], None, paired=True, n_boot=n_boot, seed=seed,
                                    name_a=a, name_b=b)

    to_bayes, to_lda, ceiling = diff("network", "bayes"), diff("network", "lda"), diff("bayes", "lda")
    below_bayes = to_bayes.resolved and to_bayes.estimate < 0
    above_lda = to_lda.resolved and to_lda.estimate > 0
    room_above_lda = ceiling.resolved and ceiling.estimate > 0
    return {name: {**d.as_dict(), "verdict": d.verdict("accuracy", digits=4, lower_is_better=False)}
            for name, d in (("network_minus_bayes", to_bayes), ("network_minus_lda", to_lda),
                            ("bayes_minus_lda", ceiling))} | {
        "within_noise_of_bayes_or_above": not below_bayes, "above_lda_where_bayes_is": above_lda or not room_above_lda,
        "target_met": (not below_bayes) and (above_lda or not room_above_lda)}


# ------------------------------------------------------------------------------------------ chapter 5: why s = 1 is weak
def guidance_probe(eps_fn: Callable, classifier: torch.nn.Module, schedule, y: torch.Tensor, scale: float,
                   judge: torch.nn.Module) -> tuple[Callable, list[dict]]:
    r"""A classifier-guided ε-function (as `classifier_guided_eps_fn`) that also records, at every step it is
    called, what the guidance is doing: the size of the guidance term at unit scale,
    :math:`\lVert\sqrt{1-\bar\alpha_t}\,\nabla\log p_\phi(y\mid x_t)\rVert/\sqrt d`, beside the size of the noise
    prediction :math:`\lVert\varepsilon_\theta\rVert/\sqrt d` (both ≈ 1 for unit noise); the classifier's mean
    :math:`p_\phi(y\mid x_t)`; and the digit that ``judge`` reads in the predicted :math:`\hat x_0` (clipped), so that
    one can see *when* each sample's class is decided. Returns the ε-function and the list it appends to."""
    records: list[dict] = []

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        yy = torch.as_tensor(y, device=x.device).long().reshape(-1)
        eps = eps_fn(x, t)
        grad = classifier_log_prob_grad(lambda z: torch.log_softmax(classifier(z, t), 1).gather(1, yy[:, None])[:, 0], x)
        a = schedule.extract(schedule.alpha_bars, t.long(), x)
        d = x[0].numel() ** 0.5
        with torch.no_grad():
            p_y = torch.softmax(classifier(x, t), 1).gather(1, yy[:, None])[:, 0]
            read = judge(schedule.predict_x0(x, t, eps).clamp(-1, 1)).argmax(1).cpu()
        records.append({"t": int(t[0]), "guidance": float(((1 - a).sqrt() * grad).flatten(1).norm(dim=1).mean() / d),
                        "eps": float(eps.flatten(1).norm(dim=1).mean() / d), "p_y": float(p_y.mean()), "read": read})
        return classifier_guided_eps(eps, grad, a, scale)

    return f, records


def decided_share(records: list[dict], final_read: torch.Tensor) -> list[float]:
    """Per recorded step, the share of samples whose predicted x̂₀ already reads as the digit they end as."""
    return [float((r["read"] == final_read.cpu()).double().mean()) for r in records]


def noisy_readers(x0: torch.Tensor, y: torch.Tensor, timesteps: list[int], schedule, network: torch.nn.Module,
                  bayes, generator: torch.Generator) -> list[dict]:
    r"""Calibration and gradient size of the noise-aware ``network`` and of Bayes' rule over the training digits
    (``bayes``, a `metrics.NoisyKernelBayes`) on the *same* noised digits at each t: accuracy, mean confidence
    (largest probability), and the mean size of the guidance term :math:`\lVert\sqrt{1-\bar\alpha_t}\,
    \nabla\log p(y\mid x_t)\rVert/\sqrt d` for the true label y (``"push"``: per digit). A calibrated reader's
    confidence equals its accuracy. ``row["cosine"]``: per digit, the cosine between the two readers' gradients —
    whether the network pushes in Bayes' rule's *direction*, not only by its amount."""
    rows = []
    d = x0[0].numel() ** 0.5
    for t in timesteps:
        a = float(schedule.alpha_bars[t])
        xt = schedule.q_sample(x0.double(), t, torch.randn(x0.shape, generator=generator, dtype=torch.float64))
        tt = torch.full((len(x0),), t)
        readers = {"network": lambda z: torch.log_softmax(network(z.float(), tt), 1).double(),
                   "bayes": lambda z: torch.log_softmax(bayes.logits(z, a), 1)}
        row, grads = {"t": t}, {}
        for name, log_p in readers.items():
            grads[name] = classifier_log_prob_grad(lambda z: log_p(z).gather(1, y[:, None])[:, 0], xt).flatten(1)
            with torch.no_grad():
                p = log_p(xt).exp()
            push = math.sqrt(1 - a) * grads[name].norm(dim=1) / d     # per digit
            row[name] = {"accuracy": float((p.argmax(1) == y).double().mean()),
                         "confidence": float(p.max(1).values.mean()), "guidance": float(push.mean()), "push": push}
        row["cosine"] = torch.nn.functional.cosine_similarity(grads["network"], grads["bayes"], dim=1)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------ tables for the lessons
def floor_for(part: Mapping, key: str) -> tuple[float, float, str]:
    """(mean, std, mix) of the matched floor that row ``key`` of a sweep is read against: class-balanced real digits
    for guided rows, the data's own mix for the unconditional one (w = 0, s = 0)."""
    if is_unconditional(key) and part.get("floor_data_mix"):
        fl = part["floor_data_mix"]
        return fl["mean"], fl["std"], "data mix"
    return part["floor_at_n"], part.get("floor_at_n_std") or float("nan"), part.get("floor_protocol", "random")


def to_floor_difference(quality: Mapping, part: str, key: str) -> Difference:
    """FID − matched floor for one row of a sweep: the bootstrap's, when the benchmark kept that row's features at the
    sweep's N (part ``guidance``), else an approximate interval that assumes the samples' FID varies as the real
    draws' does: ± t·sd·√(1 + 1/M) over the floor's M draws (t of M − 1 degrees of freedom: 2.78 for 5 draws), the
    spread of one new draw about their mean (`measure.new_draw_half_width`); its ``method`` says so."""
    boot = ((quality.get("guidance") or {}).get("to_floor") or {}).get(key)
    if boot is not None and boot.get("n") == quality[part]["n"]:
        return difference_from_dict(boot)
    mean, std, mix = floor_for(quality[part], key)
    fl = quality[part].get("floor_data_mix" if mix == "data mix" else "floor_matched") or {}
    m = len(fl.get("draws") or [None] * 5)
    fid = quality[part]["per_w" if part == "cfg" else "per_s"][key.split(":")[1]]["fid"]
    hw = new_draw_half_width(std, m)
    return Difference(setting_name(key), f"{mix} real digits", fid - mean, fid - mean - hw, fid - mean + hw,
                      method=f"approximate: ± t·sd·√(1 + 1/{m}) over {m} real draws")


def to_floor_verdict(quality: Mapping, part: str, key: str) -> str:
    """The printed verdict of `to_floor_difference`."""
    return to_floor_difference(quality, part, key).verdict("FID")


def reading(d: Difference) -> str:
    """A difference "samples − floor" in words: "above the floor", "below the floor" or "level (not resolved)"."""
    if not d.resolved:
        return "level (not resolved)"
    return "above the floor" if d.estimate > 0 else "below the floor"


def sweep_table(quality: Mapping, part: str) -> str:
    """Markdown: each row of a guidance sweep (``part`` "cfg" or "cg") with its accuracy, FID, the matched floor it is
    read against (mean ± std of 5 draws at the same N), the verdict on FID − floor, NFE per sample and seconds."""
    from .reporting import markdown_table

    sub = quality[part]
    per = sub["per_w" if part == "cfg" else "per_s"]
    rows = []
    for value in sorted(per, key=float):
        key = f"{part}:{float(value)}"
        mean, std, mix = floor_for(sub, key)
        e = per[value]
        rows.append([f"{float(value):g}", f"{e['accuracy']:.3f}", f"{e['fid']:.2f}", f"{mean:.2f} ± {std:.2f} ({mix})",
                     f"{e['fid'] - mean:+.2f}", reading(to_floor_difference(quality, part, key)), str(e.get("nfe", "—")),
                     f"{e['seconds']:.0f}" if "seconds" in e else "—"])
    name = "w" if part == "cfg" else "s"
    return markdown_table([name, "accuracy", "FID", f"matched floor, N = {sub['n']}", "FID − floor", "vs floor",
                           "NFE", f"seconds for {sub['n']}"], rows)


def kid_to(reference: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> Callable:
    r"""``metric(x, _)`` = `metrics.kid` of features ``x`` against a fixed ``reference``, with the reference's own
    kernel term :math:`\frac{1}{n(n-1)}\sum_{i\ne j}k(y_i,y_j)` computed once — the same number, fast enough to
    bootstrap. (Ignores its second argument, so pass ``reference=None`` to `bootstrap_difference`.)"""
    y = torch.as_tensor(reference, dtype=torch.float64)
    gamma = 1.0 / y.shape[1]
    kyy = (gamma * y @ y.T + coef0) ** degree
    n = len(y)
    syy = float((kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)))

    def metric(x: torch.Tensor, _unused: torch.Tensor | None = None) -> float:
        x = torch.as_tensor(x, dtype=torch.float64)
        m = len(x)
        kxx = (gamma * x @ x.T + coef0) ** degree
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        return float(sxx + syy - 2 * ((gamma * x @ y.T + coef0) ** degree).mean())

    return metric


# ------------------------------------------------------------------------------- the kept live samples (chapters 5, 6)
def load_live(path: str | None = None) -> dict:
    """``benchmarks/results/guidance_live.pt`` (written by ``benchmarks/guidance_live.py``): every setting's samples
    back in [-1, 1] (float), its features as float64. Raises with the command that writes the file if it is absent."""
    from .reporting import RESULTS_DIR

    path = path or str(RESULTS_DIR / "guidance_live.pt")
    try:
        live = torch.load(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is not there: run `python benchmarks/guidance_live.py` from the repository "
                                "root (about half an hour on a 2-core CPU) to write it.") from None
    for part in ("cg", "cg_steps", "cg_bayes", "cfg"):
        for e in (live.get(part) or {}).get("per_s", (live.get(part) or {}).get("per_w", {})).values():
            e["samples"] = e["samples"].float() / 127.5 - 1
            e["features"] = e["features"].double()
    return live


def band_difference(value: float, band: Sequence[float], name_a: str, name_b: str, *,
                    level: float = 0.95) -> Difference:
    r""":math:`m(\text{samples}) - \overline{m(\text{real})}` against a **band** of M independent real draws, each at
    the samples' N and label mix: the interval is :math:`\pm t_{M-1}\,\mathrm{sd}\sqrt{1 + 1/M}`, the spread of one
    new draw about the band's mean — it assumes that the samples' metric varies from draw to draw as a real draw's
    does (as `to_floor_difference` does for FID). No row is resampled, so a U-statistic such as KID keeps its
    meaning (a bootstrap with replacement adds :math:`k(x, x)` terms to it)."""
    v = torch.as_tensor([float(b) for b in band], dtype=torch.float64)
    if len(v) < 10:
        raise ValueError(f"band_difference needs at least 10 real draws for a stable spread, got {len(v)}.")
    m, sd = float(v.mean()), float(v.std())
    hw = new_draw_half_width(sd, len(v), level)
    return Difference(name_a, name_b, value - m, value - m - hw, value - m + hw, level,
                      f"band of {len(v)} real draws: ± t·sd·√(1 + 1/{len(v)})")


def share_lower_bound(successes: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper–Pearson lower bound of a share (e.g. accuracy) from ``successes`` of ``n``: the share is
    at least this with probability ``level``."""
    from scipy.stats import beta

    return 0.0 if successes == 0 else float(beta.ppf(1 - level, successes, n - successes + 1))


def mark_floors(ax, quality: Mapping, part: str = "cfg") -> None:
    """On a plot of FID (y) from a sweep ``part``, draw both matched floors with their ± sd bands: class-balanced
    real digits (what the guided rows are read against) and the data's own mix (the unconditional row), replacing a
    single unlabelled "floor" line (any horizontal line labelled "... floor ..." is removed)."""
    for line in list(ax.lines):
        if "floor" in str(line.get_label()) and len(set(line.get_ydata())) == 1:
            line.remove()
    sub = quality[part]
    zero = "w = 0" if part == "cfg" else "s = 0"
    for fl, color, name in ((sub["floor_matched"], "grey", f"class-balanced real digits (guided rows)"),
                            (sub["floor_data_mix"], "C2", f"real digits, data mix ({zero})")):
        ax.axhline(fl["mean"], color=color, ls="--", lw=1, label=f"{name}, N = {sub['n']}: mean")
        ax.axhspan(fl["mean"] - fl["std"], fl["mean"] + fl["std"], color=color, alpha=0.15,
                   label=f"  ± sd ({len(fl.get('draws', []))} draws)")
    ax.legend(fontsize=7)
