r"""Reading the guidance benchmarks (chapters 5 and 6) the way the course reads every measurement (DESIGN §7).

The guidance sweeps draw **class-balanced** labels (``0, 1, …, 9, 0, …``), so their FIDs are read against a floor of
class-balanced real digits at the same N (`diffcourse.measure.matched_floor`); the unconditional rows (``w = 0``,
``s = 0``) ignore the labels and are read against real digits in the data's own mix. Balanced real digits score a
clearly *lower* FID than random ones at the same N (their class histogram has no sampling noise), so a floor of
random digits makes balanced samples look "better than real".

Every claim is a difference read against its own noise:

* **sample vs floor**: :math:`\mathrm{FID}(\text{samples}) - \mathrm{FID}(\text{real draw})`, both against the same
  test digits, by an unpaired bootstrap (`bootstrap_difference` with ``paired=False``);
* **setting vs setting** (two scales, or classifier guidance against classifier-free guidance): a *paired*
  bootstrap — row i of both sets came from the same starting noise and asked for the same digit;
* **accuracy** differences: a paired bootstrap of the per-sample "read as the asked-for digit".

``kept`` (what ``benchmarks/mnist_quality.py --features`` stores) maps a setting such as ``"cfg:1.25"`` or
``"cg:2.0"`` to ``{"features": (N, d), "read_as": (N,), "labels": (N,)}``.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch

from .measure import Difference, bootstrap_difference, draw_reference, fid_features
from .samplers.guidance import classifier_guided_eps, classifier_log_prob_grad

__all__ = ["UNCONDITIONAL", "setting_name", "is_unconditional", "fid_to_floor", "paired_fid", "paired_accuracy",
           "guidance_differences", "difference_from_dict", "noisy_classifier_differences", "guidance_probe",
           "decided_share", "noisy_readers", "floor_for", "to_floor_difference", "to_floor_verdict",
           "reading", "sweep_table",
           "kid_to"]

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
                 reference: torch.Tensor, labels: torch.Tensor | None, *, n_boot: int = 200, seed: int = 0,
                 name: str = "samples", metric: Callable = fid_features) -> Difference:
    r""":math:`m(\text{samples}) - m(\text{real})` (``metric`` FID by default, or e.g. `metrics.kid`) with a bootstrap
    interval, where the real set is drawn from the pool the way the samples were (``labels``: their label list;
    ``None``: the data's own mix), and both are scored against the same ``reference``."""
    g = torch.Generator().manual_seed(seed + 1000)
    real = pool_features[draw_reference(pool_labels, len(features), labels, g)]
    mix = "data-mix" if labels is None else "balanced"
    return bootstrap_difference(metric, features.double(), real.double(), reference.double(), paired=False,
                                n_boot=n_boot, seed=seed, name_a=name, name_b=f"{mix} real digits")


def paired_fid(a: Mapping, b: Mapping, reference: torch.Tensor, name_a: str, name_b: str, *, n_boot: int = 200,
               seed: int = 0) -> Difference:
    """FID(a) − FID(b) for two settings drawn from the same starting noises and labels (a paired bootstrap)."""
    return bootstrap_difference(fid_features, a["features"].double(), b["features"].double(), reference.double(),
                                paired=True, n_boot=n_boot, seed=seed, name_a=name_a, name_b=name_b)


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
                         reference: torch.Tensor, *, n_boot: int = 200, seed: int = 0) -> dict:
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
                                                    n_boot=n_boot, seed=seed, name=setting_name(k))),
                              "n": len(v["features"]), "fid": fid[k], "accuracy": _accuracy(_correct(v))}
    for a, b in _pairs(list(kept)):
        out["pairs"].append({"fid": record(paired_fid(kept[a], kept[b], reference, setting_name(a), setting_name(b),
                                                      n_boot=n_boot, seed=seed)),
                             "accuracy": record(paired_accuracy(kept[a], kept[b], setting_name(a), setting_name(b),
                                                                seed=seed), "accuracy", lower_is_better=False)})
    guided = {f: [k for k in kept if k.startswith(f + ":") and not is_unconditional(k)] for f in ("cg", "cfg")}
    if guided["cg"] and guided["cfg"]:
        best = {f: min(ks, key=fid.get) for f, ks in guided.items()}
        matches = [(best["cg"], best["cfg"])] + ([("cg:1.0", "cfg:1.0")] if {"cg:1.0", "cfg:1.0"} <= kept.keys() else [])
        for a, b in matches:
            out["head_to_head"].append({
                "fid": record(paired_fid(kept[a], kept[b], reference, setting_name(a), setting_name(b), n_boot=n_boot,
                                         seed=seed)),
                "accuracy": record(paired_accuracy(kept[a], kept[b], setting_name(a), setting_name(b), seed=seed),
                                   "accuracy", lower_is_better=False)})
    out["protocol"] = ("FID of each setting against all test digits; floors: real training digits drawn as the samples "
                       "were (balanced labels, or the data's mix for w = 0 / s = 0), same N; differences by bootstrap "
                       f"({n_boot} resamples for FID, paired where the two settings share starting noise and labels)")
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
    \nabla\log p(y\mid x_t)\rVert/\sqrt d` for the true label y. A calibrated reader's confidence equals its
    accuracy."""
    rows = []
    d = x0[0].numel() ** 0.5
    for t in timesteps:
        a = float(schedule.alpha_bars[t])
        xt = schedule.q_sample(x0.double(), t, torch.randn(x0.shape, generator=generator, dtype=torch.float64))
        tt = torch.full((len(x0),), t)
        readers = {"network": lambda z: torch.log_softmax(network(z.float(), tt), 1).double(),
                   "bayes": lambda z: torch.log_softmax(bayes.logits(z, a), 1)}
        row = {"t": t}
        for name, log_p in readers.items():
            grad = classifier_log_prob_grad(lambda z: log_p(z).gather(1, y[:, None])[:, 0], xt)
            with torch.no_grad():
                p = log_p(xt).exp()
            row[name] = {"accuracy": float((p.argmax(1) == y).double().mean()),
                         "confidence": float(p.max(1).values.mean()),
                         "guidance": float(math.sqrt(1 - a) * grad.flatten(1).norm(dim=1).mean() / d)}
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
    draws' does (± 1.96·√2·floor std), and says so in its ``method``."""
    boot = ((quality.get("guidance") or {}).get("to_floor") or {}).get(key)
    if boot is not None and boot.get("n") == quality[part]["n"]:
        return difference_from_dict(boot)
    mean, std, mix = floor_for(quality[part], key)
    fid = quality[part]["per_w" if part == "cfg" else "per_s"][key.split(":")[1]]["fid"]
    hw = 1.96 * math.sqrt(2) * std
    return Difference(setting_name(key), f"{mix} real digits", fid - mean, fid - mean - hw, fid - mean + hw,
                      method="approximate: ± 1.96·√2·floor std")


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
