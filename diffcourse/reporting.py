r"""What a lesson shows: the package's own code and docstrings as Markdown, and benchmark results as
tables and plots.

The package's docstrings are written in reStructuredText (``:math:`x```, double backticks,
``.. math::`` blocks), which a notebook does not render. `rst_to_markdown` converts them to the
Markdown and LaTeX that Jupyter renders, and `show_source` uses it: it shows a function's or class's
docstring as rendered Markdown above its code, so a learner reads formulas, not markup.

The benchmark scripts write JSON files to ``benchmarks/results/``; `load_results` reads one (or says
how to make it), and the table and plot helpers below turn one into what a lesson shows, so that a
lesson holds one line per result instead of a page of JSON handling.
"""
from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["rst_to_markdown", "docstring_markdown", "source_markdown", "show_source", "show_docstring",
           "RESULTS_DIR", "load_results", "markdown_table", "sampler_rows", "ddim_steps_table", "plot_quality_vs_nfe",
           "cfg_sweep", "cfg_table", "plot_cfg_tradeoff", "floor_stats", "latent_speed_table", "latent_compare_table",
           "latent_runs_table", "plot_latent_curve", "latent_cfg_table", "latent_autoencoder_table", "latent_baselines_table",
           "latent_prompts_table"]

# --------------------------------------------------------------------------------------------- docstrings
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|ref|exc|const|term)`~?([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_LITERAL = re.compile(r"(?<!`)``(?!`)([^`\n]+?)(?<!`)``(?!`)")
_TABLE_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _inline(text: str) -> str:
    """Inline markup: ``:math:`x``` → ``$x$``, double backticks → single, ``:func:`f``` → ```f```."""
    text = _MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _take_block(lines: list[str], i: int, base: int) -> tuple[list[str], int]:
    """The lines from ``i`` on that are blank or indented deeper than ``base``; returns them (dedented) and the
    index after them. Trailing blank lines are not part of the block."""
    j = i
    while j < len(lines) and (not lines[j].strip() or _indent_of(lines[j]) > base):
        j += 1
    while j > i and not lines[j - 1].strip():
        j -= 1
    while i < j and not lines[i].strip():
        i += 1
    return textwrap.dedent("\n".join(lines[i:j])).split("\n") if j > i else [], j


def _split_row(line: str, starts: list[int]) -> list[str]:
    """Cut a table row at the column starts; where a cell's text runs past its column (RST allows it in the last
    column only, but hand-written tables overflow elsewhere too), cut at the next gap of two spaces instead."""
    cuts = [0]
    for a in starts[1:]:
        b = max(a, cuts[-1])
        if 0 < b < len(line) and line[b - 1] != " " and line[b] != " ":
            gap = line.find("  ", b)
            b = len(line) if gap < 0 else gap
        cuts.append(min(b, len(line)))
    cuts.append(len(line))
    return [line[x:y] for x, y in zip(cuts[:-1], cuts[1:])]


def _simple_table(rows: list[str]) -> list[str]:
    """An RST *simple table* (columns ruled by ``=====  ====`` lines) as a Markdown table. A row whose first
    column is empty continues the row above it."""
    border = rows[0]
    spans, k = [], 0
    while k < len(border):
        if border[k] == "=":
            start = k
            while k < len(border) and border[k] == "=":
                k += 1
            spans.append((start, k))
        else:
            k += 1
    spans[-1] = (spans[-1][0], 10 ** 6)  # the last column runs to the end of the line
    table: list[list[str]] = []
    header_rows = 0
    for line in rows[1:]:
        if _TABLE_BORDER.match(line):
            header_rows = header_rows or len(table)
            continue
        cells = [c.strip() for c in _split_row(line, [a for a, _ in spans])]
        if table and not cells[0]:
            table[-1] = [f"{p} {c}".strip() for p, c in zip(table[-1], cells)]
        else:
            table.append(cells)
    if not table:
        return []
    header_rows = header_rows or 1
    head = [" ".join(c[j] for c in table[:header_rows]).strip() for j in range(len(spans))]
    md = ["| " + " | ".join(_inline(c) for c in head) + " |", "|" + "|".join("---" for _ in spans) + "|"]
    md += ["| " + " | ".join(_inline(c) for c in row) + " |" for row in table[header_rows:]]
    return md


def rst_to_markdown(text: str) -> str:
    r"""Convert reStructuredText as the package's docstrings use it to Markdown with LaTeX maths.

    * inline: ``:math:`x``` → ``$x$``; double backticks → single (inline code); ``:func:`f``` → ```f```;
    * ``.. math::`` blocks (and ``.. math:: x`` on one line) → ``$$ … $$``, one display per paragraph;
    * a paragraph ending in ``::`` followed by an indented block → the block fenced as code;
    * ``>>>`` examples → fenced code, shown as written; simple tables (ruled by ``=====``) → Markdown tables.

    Text that is already Markdown (lists, ``*emphasis*``, single backticks) passes through unchanged.
    """
    lines = textwrap.dedent(text.expandtabs(4)).strip("\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        converted, i = _convert_block(lines, i)
        out += converted
    md = _MATH.sub(lambda m: f"${' '.join(m.group(1).split())}$", "\n".join(out))  # roles broken across lines
    return re.sub(r"\n{3,}", "\n\n", md).strip()


def _paragraph_end(lines: list[str], i: int) -> int:
    """The index of the first blank line at or after ``i`` (or the end)."""
    while i < len(lines) and lines[i].strip():
        i += 1
    return i


def _math_display(lines: list[str], i: int, base: int) -> tuple[list[str], int]:
    """A ``.. math::`` directive at line ``i`` (its own line may hold the formula): one ``$$`` display per paragraph."""
    first = lines[i].strip()[len(".. math::"):].strip()
    block, j = _take_block(lines, i + 1, base)
    body = ([first] if first else []) + block
    out: list[str] = []
    for p in (p.strip() for p in "\n".join(body).split("\n\n")):
        if p:
            out += ["", "$$", p, "$$", ""]
    return out, j


def _literal_block(lines: list[str], i: int, base: int) -> tuple[list[str], int] | None:
    """A paragraph ending in ``::`` at line ``i`` followed by an indented block: the lead-in, then the block fenced as
    text; ``None`` if no indented block follows."""
    block, j = _take_block(lines, i + 1, base)
    if not (block and any(b.strip() for b in block)):
        return None
    lead = lines[i].rstrip()[:-2].rstrip()
    return ([_inline(lead) + ":"] if lead.strip() else []) + ["", "```text"] + block + ["```", ""], j


def _convert_block(lines: list[str], i: int) -> tuple[list[str], int]:
    """The Markdown for what starts at line ``i`` — a maths display, a ``>>>`` example, a simple table, a literal
    block or one ordinary line — and the index of the line after it."""
    line, stripped, base = lines[i], lines[i].strip(), _indent_of(lines[i])
    if stripped.startswith(".. math::"):
        return _math_display(lines, i, base)
    if stripped.startswith(">>>"):
        j = _paragraph_end(lines, i)
        return ["```python"] + [ln[base:] for ln in lines[i:j]] + ["```"], j
    if _TABLE_BORDER.match(line):
        j = _paragraph_end(lines, i)
        return ["", *_simple_table(lines[i:j]), ""], j
    if stripped.endswith("::") and not stripped.startswith(".."):
        literal = _literal_block(lines, i, base)
        if literal is not None:
            return literal
    return [_inline(line)], i + 1


def docstring_markdown(obj: Any) -> str:
    """The docstring of ``obj`` (function, class, method or module) as Markdown (see `rst_to_markdown`)."""
    doc = inspect.getdoc(obj)
    return rst_to_markdown(doc) if doc else ""


def _docstring_node(node: ast.AST) -> ast.Expr | None:
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def source_markdown(obj: Any, docstring: bool = True) -> str:
    """Markdown that shows ``obj``'s source code: its docstring rendered as Markdown (if ``docstring``), then
    the code in a ``python`` block with that docstring taken out. Docstrings of nested functions and methods
    stay in the code, with their reStructuredText roles converted (``:math:`x``` → ``$x$``)."""
    src = textwrap.dedent(inspect.getsource(obj))
    lines = src.split("\n")
    tree = ast.parse(src)
    top = tree.body[0] if tree.body else None
    drop: set[int] = set()
    top_doc = _docstring_node(top) if top is not None else None
    if top_doc is not None:
        drop = set(range(top_doc.lineno - 1, top_doc.end_lineno))
        if top_doc.end_lineno < len(lines) and not lines[top_doc.end_lineno].strip():
            drop.add(top_doc.end_lineno)  # and the blank line after it
        if len(top.body) == 1:  # nothing but a docstring: keep the block valid
            lines[top_doc.lineno - 1] = " " * top_doc.col_offset + "..."
            drop.discard(top_doc.lineno - 1)
    for node in ast.walk(tree):
        d = _docstring_node(node) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else None
        if d is not None and d is not top_doc:
            for k in range(d.lineno - 1, d.end_lineno):
                lines[k] = _inline(lines[k])
    code = "\n".join(ln for k, ln in enumerate(lines) if k not in drop).rstrip()
    parts = []
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", ""))
    module = getattr(obj, "__module__", None) or getattr(inspect.getmodule(obj), "__name__", "")
    if name:
        parts.append(f"**`{name}`**" + (f" · `{module}`" if module and module != name else ""))
    if docstring and top_doc is not None:
        parts.append(docstring_markdown(obj))
    parts.append("```python\n" + code + "\n```")
    return "\n\n".join(parts)


def show_source(*objs: Any, docstring: bool = True) -> None:
    """Display each object's code (and its docstring rendered as Markdown) in the notebook: what you read is
    what runs. See `source_markdown`."""
    from IPython.display import Markdown, display

    for obj in objs:
        display(Markdown(source_markdown(obj, docstring=docstring)))


def show_docstring(obj: Any, first_paragraph: bool = False) -> None:
    """Display ``obj``'s docstring as rendered Markdown (only its first paragraph if ``first_paragraph``)."""
    from IPython.display import Markdown, display

    md = docstring_markdown(obj)
    display(Markdown(md.split("\n\n")[0] if first_paragraph else md))


# --------------------------------------------------------------------------------------------- results files
RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def load_results(name: str | Path, quiet: bool = False) -> dict | None:
    """Read a benchmark's JSON results (``name`` in ``benchmarks/results/``, or a path). If the file is not there,
    print which script writes it and return ``None``, so a lesson still runs without it."""
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = RESULTS_DIR / path
    if not path.exists():
        script = f"benchmarks/{path.stem}.py" if path.stem in ("samplers", "toy2d", "mnist_quality", "latent") else "its benchmark"
        print(f"benchmarks/results/{path.name} is not there (yet): run `python {script}` from the repository root "
              "to write it. The lesson goes on without it.")
        return None
    data = json.loads(path.read_text())
    if not quiet:
        where = ", ".join(f"{k} = {data[k]}" for k in ("n", "device", "threads") if k in data)
        print(f"read benchmarks/results/{path.name}" + (f": {where}" if where else ""))
    return data


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one character per column (``l``, ``r`` or ``c``; default: right-aligned
    but the first column)."""
    header = list(header)
    align = align or ("l" + "r" * (len(header) - 1))
    rule = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def floor_stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation (n − 1), minimum and maximum of several draws of a real-vs-real floor."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("floor_stats needs at least one value.")
    mean = sum(v) / len(v)
    std = (sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else float("nan")
    return {"mean": mean, "std": std, "min": min(v), "max": max(v), "n": len(v)}


# --------------------------------------------------------------------------------------------- samplers.json
def sampler_rows(bench: Mapping | None, model: str = "mnist-ddpm") -> dict[str, dict]:
    """The rows of ``benchmarks/results/samplers.json`` for one ``model``, keyed by their spec (``"ddim:50:0"``)."""
    return {r["spec"]: r for r in (bench or {}).get("rows", []) if r.get("model") == model}


def _fmt(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def ddim_steps_table(bench: Mapping | None, steps: Sequence[int] = (10, 20, 50, 100, 1000)) -> str:
    """Markdown: FID and seconds of DDIM (η = 0 and η = 1) at each step count, DDPM-1000 (when measured), and the
    floor, from ``samplers.json`` (the ``mnist-ddpm`` rows). Missing entries show as —."""
    rows = sampler_rows(bench)
    def cell(spec: str) -> list[str]:
        r = rows.get(spec)
        return [_fmt(r and r["fid"], ".2f"), _fmt(r and r["seconds"], ".1f")]
    body = [[str(s)] + cell(f"ddim:{s}:0") + cell(f"ddim:{s}:1") for s in steps]
    d = rows.get("ddpm")
    if d:
        body.append([f"**DDPM** ancestral, {d['nfe']}", f"{d['fid']:.2f}", f"{d['seconds']:.1f}", "", ""])
    floor = next(iter(rows.values()))["fid_floor"] if rows else None
    body.append([f"real vs real (floor), N = {(bench or {}).get('n', '?')}", _fmt(floor, ".2f"), "", "", ""])
    return markdown_table(["steps = NFE", "DDIM η=0: FID", "seconds", "DDIM η=1: FID", "seconds"], body)


def plot_quality_vs_nfe(ax, series: Mapping[str, Sequence[tuple[float, float]]], floor: float | None = None,
                        floor_range: tuple[float, float] | None = None, ylabel: str = "FID (classifier features)",
                        title: str | None = None, markers: Mapping[str, str] | None = None,
                        floor_label: str = "real vs real (floor)", band_label: str = "floor's range over real draws"):
    """Quality against cost on a log NFE axis: one line per entry of ``series`` (name → [(nfe, value), …]), the
    floor (or any reference value for real data) as a dashed line and, if given, its range as a band; ``markers``
    maps a series to a matplotlib format string. Returns ``ax``."""
    import matplotlib.ticker as mticker

    markers = markers or {}
    nfes = []
    for k, (name, pts) in enumerate(series.items()):
        pts = sorted(pts)
        if not pts:
            continue
        nfes += [p[0] for p in pts]
        style = markers.get(name, "o-")
        colour = {} if any(c in style for c in "bgrcmykw") else {"color": f"C{k}"}  # a colour in the format wins
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=6 if "*" not in style else 14, label=name, **colour)
    if floor is not None:
        ax.axhline(floor, color="grey", ls="--", label=floor_label)
    if floor_range is not None:
        ax.axhspan(*floor_range, color="grey", alpha=0.15, label=band_label)
    ax.set_xscale("log")
    ticks = [v for v in (10, 20, 50, 100, 1000) if nfes and min(nfes) <= v <= max(nfes)]
    if ticks:
        ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(mticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel("network evaluations per sample (NFE, log scale)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return ax


# --------------------------------------------------------------------------------------------- mnist_quality.json
def cfg_sweep(quality: Mapping | None) -> list[dict]:
    """The classifier-free-guidance sweep of ``benchmarks/results/mnist_quality.json`` as a list of dicts sorted by
    w: ``{"w", "accuracy", "fid", "seconds", "nfe", …}`` (whatever each entry holds), ``[]`` if absent."""
    per_w = ((quality or {}).get("cfg") or {}).get("per_w") or {}
    return sorted(({"w": float(k), **v} for k, v in per_w.items()), key=lambda r: r["w"])


def cg_sweep(quality: Mapping | None) -> list[dict]:
    """The classifier-guidance sweep of ``mnist_quality.json`` (part ``cg``), sorted by the scale:
    ``{"s", "accuracy", "fid", "seconds", "nfe"}`` per entry, ``[]`` if absent."""
    per_s = ((quality or {}).get("cg") or {}).get("per_s") or {}
    return sorted(({"s": float(k), **v} for k, v in per_s.items()), key=lambda r: r["s"])


def _floor_of(quality: Mapping | None, part: str | None = None) -> dict:
    """The real-vs-real floor that the FIDs of ``part`` ("cfg", "cg") are to be read against: the floor at that
    part's own N when it was drawn at another N (``floor_at_n``), else the file's floor."""
    sub = ((quality or {}).get(part) or {}) if part else {}
    if sub.get("floor_at_n") is not None:
        return {"mean": sub["floor_at_n"], "std": sub.get("floor_at_n_std"), "n": sub.get("n")}
    fl = (quality or {}).get("floor") or {}
    draws = fl.get("fid_draws") or []
    out = {"mean": fl.get("fid_mean"), "std": fl.get("fid_std"), "n": fl.get("n")}
    if out["std"] is None and len(draws) > 1:
        out["std"] = floor_stats(draws)["std"]
    return out


def _floor_row(fl: dict, width: int) -> list[str]:
    spread = f" ± {fl['std']:.2f}" if fl.get("std") is not None else ""
    return [f"real vs real (floor), N = {fl.get('n', '?')}", "", "", f"{fl['mean']:.2f}{spread}"] + [""] * (width - 4)


def cfg_table(quality: Mapping | None) -> str:
    """Markdown: accuracy, FID (and the confident share, when recorded), NFE and seconds per guidance weight w,
    with the floor and the best w (the lowest FID) from ``mnist_quality.json``."""
    rows = cfg_sweep(quality)
    if not rows:
        return "*(no classifier-free guidance sweep in the results file)*"
    best = min(rows, key=lambda r: r["fid"])
    has_conf = any("confident_share" in r for r in rows)
    header = ["w", "paper w'", "accuracy", "FID"] + (["confident share"] if has_conf else []) + ["NFE", "seconds"]
    body = []
    for r in rows:
        mark = " **(lowest FID)**" if r is best else ""
        body.append([f"{r['w']:g}{mark}", f"{r['w'] - 1:g}", f"{r['accuracy']:.4f}", f"{r['fid']:.2f}"]
                    + ([_fmt(r.get("confident_share"), ".3f")] if has_conf else [])
                    + [str(r.get("nfe", "—")), _fmt(r.get("seconds"), ".1f")])
    fl = _floor_of(quality, "cfg")
    if fl["mean"] is not None:
        body.append(_floor_row(fl, len(header)))
    return markdown_table(header, body)


def cg_table(quality: Mapping | None) -> str:
    """Markdown: accuracy, FID, NFE and seconds per classifier-guidance scale s, with the floor at the sweep's N,
    from ``mnist_quality.json`` (part ``cg``)."""
    rows = cg_sweep(quality)
    if not rows:
        return "*(no classifier-guidance sweep in the results file)*"
    best = min(rows, key=lambda r: r["fid"])
    header = ["scale s", "accuracy", "FID", "NFE", "seconds"]
    body = [[f"{r['s']:g}" + (" **(lowest FID)**" if r is best else ""), f"{r['accuracy']:.3f}", f"{r['fid']:.2f}",
             str(r.get("nfe", "—")), _fmt(r.get("seconds"), ".1f")] for r in rows]
    fl = _floor_of(quality, "cg")
    if fl["mean"] is not None:
        body.append([f"real vs real (floor), N = {fl.get('n', '?')}", "", f"{fl['mean']:.2f}", "", ""])
    return markdown_table(header, body)


def plot_cfg_tradeoff(quality: Mapping | None, ax=None, annotate: bool = True):
    """The fidelity–quality trade-off of classifier-free guidance: FID (y) against accuracy (x), one point per w
    (labelled), the floor as a dashed line, the lowest-FID w marked. Returns ``ax`` (``None`` without data)."""
    import matplotlib.pyplot as plt

    rows = cfg_sweep(quality)
    if not rows:
        return None
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 4.0))
    acc, fid = [r["accuracy"] for r in rows], [r["fid"] for r in rows]
    ax.plot(acc, fid, "o-", color="C0", label="guidance weight w (labels)")
    if annotate:
        for r in rows:
            ax.annotate(f"w={r['w']:g}", (r["accuracy"], r["fid"]), fontsize=8, xytext=(5, 3), textcoords="offset points")
    best = min(rows, key=lambda r: r["fid"])
    ax.plot([best["accuracy"]], [best["fid"]], "*", ms=16, color="C3", label=f"lowest FID: w = {best['w']:g}")
    fl = _floor_of(quality, "cfg")
    if fl["mean"] is not None:
        ax.axhline(fl["mean"], color="grey", ls="--", label=f"real vs real floor (N = {fl.get('n', '?')})")
    ax.set_yscale("log")
    ax.set_xlabel("accuracy (mnist-classifier reads the asked-for digit)")
    ax.set_ylabel("FID vs the test set (log scale)")
    n = ((quality or {}).get("cfg") or {}).get("n", (quality or {}).get("n", "?"))
    ax.set_title(f"classifier-free guidance: fidelity vs quality (N = {n} per w)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------------------------- latent.json (chapter 8)
def latent_speed_table(bench: Mapping | None) -> str:
    """Chapter 8's pixel-vs-latent table from ``benchmarks/results/latent.json`` (its ``speed`` and ``quality`` parts)."""
    if not bench or "speed" not in bench or "quality" not in bench:
        return "(benchmarks/results/latent.json has no speed/quality part: run `python benchmarks/latent.py`)"
    sp, q, fl, n = bench["speed"], bench["quality"], bench["floor"], bench["n"]
    rows = []
    for key, name in (("pixel", "pixel U-Net (mnist-ddpm), 1×28×28"), ("latent", "latent U-Net (latent-ldm), 4×7×7")):
        rows.append([name, f"{sp[key]['parameters']:,}", f"{sp[key]['train_images_per_s']:.0f}",
                     f"{sp[key]['train_activation_MB']:.0f}", f"{q[key]['seconds']:.1f}", f"{q[key]['fid']:.2f}",
                     f"{q[key]['confident']:.3f}"])
    rows.append(["latent, prompted with the digit's name (w = 1)", "", "", "", f"{q['latent_prompted']['seconds']:.1f}",
                 f"{q['latent_prompted']['fid']:.2f}", f"{q['latent_prompted']['confident']:.3f}"])
    rows.append(["real digits (floor: training vs test)", "", "", "", "", f"{fl['fid']:.2f}", f"{fl['confident']:.3f}"])
    return markdown_table(["model", "parameters", "training images/s", "activations per batch of 128 (MB)",
                           f"DDIM-{bench['steps']}: seconds for {n}", "FID", "confident share"], rows)


def latent_compare_table(bench: Mapping | None) -> str:
    """Chapter 8's VAE / GAN / diffusion table from ``benchmarks/results/latent.json`` (its ``compare`` part)."""
    if not bench or "compare" not in bench:
        return "(benchmarks/results/latent.json has no compare part: run `python benchmarks/latent.py`)"
    fl = bench["floor"]
    rows = [[r["label"], f"{r['fid']:.2f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['confident']:.3f}",
             "—" if r["nll_bpd"] is None else f"≤ {r['nll_bpd']:.2f}", r["nfe"], f"{r['seconds']:.2f}"]
            for r in bench["compare"]["rows"]]
    rows.append(["real digits (floor)", f"{fl['fid']:.2f}", f"{fl['precision']:.3f}", f"{fl['recall']:.3f}",
                 f"{fl['confident']:.3f}", "", "", ""])
    return markdown_table(["model", "FID", "precision", "recall", "confident", "NLL (bits/dim)", "NFE",
                           f"seconds for {bench['n']}"], rows)


def _cpu(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def latent_runs_table(bench: Mapping | None) -> str:
    """Chapter 8's matched-compute study: what each run spent (CPU seconds, 1 thread) and how many images it saw
    (``speed`` → ``real_runs`` and ``curve`` parts of ``benchmarks/results/latent.json``)."""
    if not bench or "real_runs" not in bench.get("speed", {}):
        return "(benchmarks/results/latent.json has no matched-compute study: run `python benchmarks/latent.py`)"
    rr, sp = bench["speed"]["real_runs"], bench["speed"]
    rows = []
    for key, name in (("pixel", "pixel U-Net (mnist-ddpm-lsimple), 1×28×28"),
                      ("latent", "latent U-Net (latent-ldm-lsimple), 4×7×7")):
        r = rr[key]
        rows.append([name, f"{sp[key]['parameters']:,}", f"{r['steps']:,}", f"{r['images']:,}",
                     _cpu(r.get("autoencoder_cpu_seconds")), _cpu(r.get("encode_cpu_seconds")), _cpu(r["loop_cpu_seconds"]),
                     _cpu(r.get("total_cpu_seconds", r["loop_cpu_seconds"])), f"{r['images_per_cpu_second']:.0f}"])
    return markdown_table(["run", "parameters", "steps (batch 128)", "images seen", "autoencoder CPU s",
                           "encoding CPU s", "diffusion CPU s", "total CPU s", "images per diffusion CPU s"], rows)


def plot_latent_curve(bench: Mapping | None, axes=None, references: Mapping[str, float] | None = None):
    """FID (log scale) and confident share against training CPU seconds for the pixel and the latent run of the
    matched-compute study, the matched floor as a band; ``references`` (label → FID) as dashed lines. Returns axes."""
    import matplotlib.pyplot as plt

    c = (bench or {}).get("curve")
    if not c:
        return None
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4))
    fl = c["floor"]
    for key, label, color in (("pixel", "pixel diffusion", "C0"), ("latent", "latent diffusion (autoencoder charged)", "C1")):
        pts = c[key]
        axes[0].plot([p["cpu_seconds"] for p in pts], [p["fid"] for p in pts], "o-", color=color, label=label)
        axes[1].plot([p["cpu_seconds"] for p in pts], [p["confident"] for p in pts], "o-", color=color, label=label)
    over = c["latent_overhead"]
    for ax in axes:
        ax.axvline(over["autoencoder_cpu_seconds"] + over["encode_cpu_seconds"], color="C1", ls=":", lw=1,
                   label="latent side: autoencoder trained, data encoded")
        ax.set_xlabel("training CPU seconds (1 thread)")
        ax.grid(alpha=0.3, which="both")
    axes[0].axhspan(fl["mean"] - fl["std"], fl["mean"] + fl["std"], color="grey", alpha=0.3,
                    label=f"matched floor (N = {fl['n']}), mean ± std")
    for i, (label, fid) in enumerate((references or {}).items()):
        axes[0].axhline(fid, color=f"C{i + 2}", ls="--", lw=1, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel(f"FID (N = {c['n']}, DDIM-{c['steps']})")
    axes[1].set_ylabel("confident share")
    axes[0].legend(fontsize=8)
    return axes


def latent_cfg_table(bench: Mapping | None) -> str:
    """The prompted LDM against ``mnist-cfg`` on the same footing (part ``cfg``), with the balanced floor."""
    c = (bench or {}).get("cfg")
    if not c:
        return "(benchmarks/results/latent.json has no cfg part: run `python benchmarks/latent.py --parts cfg`)"
    rows = []
    for r in c["rows"]:
        for key, name in (("pixel", "mnist-cfg, the label"), ("latent", "latent-ldm, the digit's name")):
            m = r[key]
            rows.append([f"{r['w']:g}", name, f"{m['fid']:.2f}", f"{m['accuracy']:.3f}", f"{m['confident']:.3f}",
                         m["nfe"], f"{m['seconds']:.1f}"])
    fl = c["floor"]
    rows.append(["", "real digits, balanced (floor)", f"{fl['mean']:.2f} ± {fl['std']:.2f}", "", "", "", ""])
    return markdown_table(["w", "model, condition", "FID", "accuracy", "confident", "NFE", f"seconds for {c['n']}"], rows)


def latent_autoencoder_table(bench: Mapping | None) -> str:
    """Each autoencoder's reconstructions of N training digits beside the originals (part ``autoencoder``)."""
    a = (bench or {}).get("autoencoder")
    if not a:
        return "(benchmarks/results/latent.json has no autoencoder part: run `python benchmarks/latent.py`)"
    o = a["originals"]
    rows = [["the originals (real digits)", "", "", "", "", f"{o['fid']:.2f}", f"{o['precision']:.3f}",
             f"{o['recall']:.3f}"]]
    for name, r in a["rows"].items():
        shape = "×".join(map(str, r["latent_shape"]))
        rows.append([name, shape, f"{r['recon_mse_per_pixel']:.4f}", f"{r['kl_per_image_nats']:.0f}",
                     f"{r['recon_accuracy']:.3f}", f"{r['fid']:.2f}", f"{r['precision']:.3f}", f"{r['recall']:.3f}"])
    return markdown_table(["reconstructions by", "latent", "MSE per pixel", "KL (nats)", "accuracy",
                           f"FID (N = {a['n']})", "precision", "recall"], rows)


def latent_baselines_table(bench: Mapping | None) -> str:
    """The seeds' table measured (part ``compare``): quality, diversity apart from fidelity, likelihood, cost."""
    c = (bench or {}).get("compare")
    if not c:
        return "(benchmarks/results/latent.json has no compare part: run `python benchmarks/latent.py`)"
    rows = [[r["label"], f"{r['fid']:.2f}", f"{r['precision']:.3f}", f"{r['density']:.2f}", f"{r['confident']:.3f}",
             f"{r['recall']:.3f}", f"{r['coverage']:.3f}", f"{r['class_entropy']:.3f}", f"{r['within_class_spread']:.2f}",
             "—" if r.get("nll_bpd") is None else f"≤ {r['nll_bpd']:.2f}", r["nfe"],
             "" if r.get("seconds") is None else f"{r['seconds']:.2f}", _cpu(r.get("training_cpu_seconds"))]
            for r in c["rows"]]
    return markdown_table(["model", "FID", "precision", "density", "confident", "recall", "coverage", "class entropy",
                           "within-class spread", "NLL (bits/dim)", "NFE", f"seconds for {c['n']}",
                           "training CPU s"], rows)


def latent_prompts_table(bench: Mapping | None) -> str:
    """Obedience to the 50 prompts by kind of prompt at each w, with 95 % intervals and chance rates (``prompts``)."""
    p = (bench or {}).get("prompts")
    if not p:
        return "(benchmarks/results/latent.json has no prompts part: run `python benchmarks/latent.py --parts prompts`)"
    kinds = ("digit", "parity", "threshold")
    rows = [[f"{r['w']:g}", r["nfe"]] + [f"{r['by_kind'][k]['obeys']:.3f} [{r['by_kind'][k]['interval'][0]:.2f}, "
                                         f"{r['by_kind'][k]['interval'][1]:.2f}]" for k in kinds]
            for r in p["rows"]]
    first = p["rows"][0]["by_kind"]
    rows.append(["chance", ""] + [f"{first[k]['chance']:.3f}" for k in kinds])
    head = [f"{k}: {first[k]['prompts']} prompts × {p['per_prompt']}" for k in kinds]
    return markdown_table(["w", "NFE"] + head, rows)
