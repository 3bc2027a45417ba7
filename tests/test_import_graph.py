"""The package's modules import each other without a circle (issue 27, §5).

The graph counts every import a module makes, at its top or inside a function: an import deferred into a function
hides a circle from Python but not from a reader, who still cannot understand either module without the other.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import diffcourse

PACKAGE = Path(diffcourse.__file__).resolve().parent


def module_files(package: Path) -> dict[str, Path]:
    """``{dotted name: file}`` for every module under ``package`` (a package is named by its ``__init__.py``)."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement may refer to (``from . import x`` may name a module x)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


@lru_cache(maxsize=None)
def import_graph(package: Path) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, each import resolved to the deepest module it names."""
    files = module_files(package)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(name, path, node):
                    while target and target not in files:
                        target = target.rpartition(".")[0]
                    if target and target != name:
                        graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm): each is an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_circle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and "diffcourse.recipes.registry" in graph["diffcourse.pretrained"]
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(
        " <-> ".join(group) + " (" + ", ".join(f"{m} imports {sorted(graph[m] & set(group))}" for m in group) + ")"
        for group in found)


def test_the_layers_of_issue_27():
    """Metrics load no checkpoint; the likelihood helper sits below the metrics and the networks; the MNIST and
    latent recipes do not import each other, and one registry sits above both."""
    graph = import_graph(PACKAGE)
    assert not graph["diffcourse.metrics"] & {"diffcourse.pretrained", "diffcourse.loading"}
    assert "diffcourse.likelihood" in graph["diffcourse.metrics"] & graph["diffcourse.models.autoencoder"]
    assert graph["diffcourse.likelihood"] == set()
    assert "diffcourse.recipes.latent" not in graph["diffcourse.recipes.mnist"]
    assert "diffcourse.recipes.mnist" not in graph["diffcourse.recipes.latent"]
    assert {"diffcourse.recipes.mnist", "diffcourse.recipes.latent"} <= graph["diffcourse.recipes.registry"]


def test_a_deferred_import_circle_is_found(tmp_path):
    """The checker itself: a circle closed by an import inside a function, and one through ``from . import``."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub.b import f\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import g\n    return g\n")
    (pkg / "c.py").write_text("from . import d\n")
    (pkg / "d.py").write_text("import pkg.c\n")
    (pkg / "e.py").write_text("from .a import f\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg", "pkg.d"}
    assert circles(graph) == [["pkg.a", "pkg.sub.b"], ["pkg.c", "pkg.d"]]
