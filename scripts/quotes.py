"""Quoted figures, checked: every number the prose takes from a results file or an output says where from.

A lesson's markdown (or the README, or docs/) marks each quoted figure with an HTML comment, invisible when
rendered::

    DDIM-50 reaches FID 8.0 <!-- quote 8.0 = {mnist_quality.json ddim50/fid} -->
    … 4.9× the floor <!-- quote 4.9 = {mnist_quality.json ddim50/fid} / {mnist_quality.json floor/fid_mean} -->
    … 89.7 % confident <!-- quote 89.7 % = {mnist_quality.json ddim50/confident_share} -->
    … about 7.5 h <!-- quote 7.5 = {manifest.json checkpoints/mnist-ddpm/wall_time_s} / 3600 -->
    … an RMSE of 0.549 <!-- quote 0.549 = output -->

* ``TEXT`` is a number, optionally followed by ``%`` (then the value is multiplied by 100); it must stand in the
  cell's text, and the value rounded to TEXT's decimals must be TEXT.
* ``{FILE PATH}`` is a leaf of ``benchmarks/results/FILE`` (or ``diffcourse/checkpoints/manifest.json``), its keys
  separated by ``/`` (list items by their index); terms combine with numbers and ``+ - * / ( )``.
* ``output``: TEXT appears in the printed output of one of the three code cells before or after the quote.

``python scripts/quotes.py`` lists every broken quote (``tests/test_quotes.py`` runs it). The older
``scripts/quoted_figures.py RESULTS.json`` finds *unmarked* quotes of a results file, to mark them.
"""
from __future__ import annotations

import ast
import json
import operator
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
QUOTE = re.compile(r"<!--\s*quote\s+(?P<text>[-+]?\d[\d.]*)(?P<pct>\s*%)?\s*=\s*(?P<expr>.*?)\s*-->", re.S)
FENCE = re.compile(r"```.*?```", re.S)
TERM = re.compile(r"\{\s*(?P<file>[\w.\-]+)\s+(?P<path>[^}]+?)\s*\}")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@dataclass
class Quote:
    where: str
    text: str
    percent: bool
    expr: str


@lru_cache(maxsize=None)
def _results(file: str) -> dict:
    path = ROOT / "diffcourse/checkpoints" / file if file == "manifest.json" else ROOT / "benchmarks/results" / file
    if not path.exists():
        raise ValueError(f"no results file {path.relative_to(ROOT)}")
    return json.loads(path.read_text())


def leaf(file: str, path: str) -> float:
    """The number at ``path`` (keys joined by ``/``) of results file ``file``."""
    node = _results(file)
    for key in path.split("/"):
        try:
            node = node[int(key)] if isinstance(node, list) else node[key]
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"{file} has no {path!r} (stuck at {key!r})") from None
    if not isinstance(node, (int, float)) or isinstance(node, bool):
        raise ValueError(f"{file} {path} is not a number: {node!r}")
    return float(node)


def evaluate(expr: str) -> float:
    """Value of an expression of ``{FILE PATH}`` terms, numbers and ``+ - * / ( )``."""
    terms: list[float] = []

    def name(m: re.Match) -> str:
        terms.append(leaf(m["file"], m["path"]))
        return f"_t{len(terms) - 1}"

    tree = ast.parse(TERM.sub(name, expr), mode="eval")

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id.startswith("_t"):
            return terms[int(node.id[2:])]
        raise ValueError(f"cannot evaluate {ast.unparse(node)!r} in {expr!r}")
    return walk(tree)


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _outputs_near(cells: list, i: int, reach: int = 3) -> str:
    code = [j for j, c in enumerate(cells) if c.cell_type == "code"]
    before = [j for j in code if j < i][-reach:]
    after = [j for j in code if j > i][:reach]
    texts = []
    for j in before + after:
        for o in cells[j].get("outputs", []):
            texts.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def check_text(where: str, text: str, outputs: str = "") -> list[str]:
    """Problems with the quotes in one piece of prose (``outputs``: the printed text near it, for ``output``)."""
    problems = []
    text = FENCE.sub("", text)  # examples in code blocks are not quotes
    visible = QUOTE.sub("", text)
    for m in QUOTE.finditer(text):
        q, shown = m["text"], m["text"] + ("" if not m["pct"] else " %")
        if not re.search(rf"(?<![\d.]){re.escape(q)}(?![\d])", visible):
            problems.append(f"{where}: quotes {shown} but the text does not show it")
            continue
        if m["expr"].strip() == "output":
            if q not in outputs:
                problems.append(f"{where}: {shown} is not in the outputs of the code cells around it")
            continue
        try:
            value = evaluate(m["expr"]) * (100 if m["pct"] else 1)
        except (ValueError, SyntaxError, ZeroDivisionError) as e:
            problems.append(f"{where}: quote {shown}: {e}")
            continue
        if f"{value:.{_decimals(q)}f}" != q.lstrip("+"):
            problems.append(f"{where}: says {shown}, but {m['expr'].strip()} = {value:.{_decimals(q) + 2}f}")
    return problems


def check_all() -> tuple[int, list[str]]:
    """``(number of quotes, problems)`` over the lessons, the solutions, the README and docs/."""
    count, problems = 0, []
    for folder in ("notebooks", "solutions"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            cells = nbformat.read(path, as_version=4).cells
            for i, cell in enumerate(cells):
                if cell.cell_type == "markdown":
                    count += len(QUOTE.findall(FENCE.sub("", cell.source)))
                    problems += check_text(f"{path.relative_to(ROOT)} cell {i}", cell.source, _outputs_near(cells, i))
    for md in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = md.read_text()
        count += len(QUOTE.findall(FENCE.sub("", text)))
        problems += check_text(str(md.relative_to(ROOT)), text)
    return count, problems


if __name__ == "__main__":
    n, bad = check_all()
    print("\n".join(bad) or "", f"{n} quotes checked, {len(bad)} broken", sep="\n")
    sys.exit(1 if bad else 0)
