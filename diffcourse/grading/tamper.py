r"""What a notebook's code *tried* to do to grading, read from its source.

The grade never depends on it — the grader runs the checks itself, in a process the notebook never
touched — but an instructor wants to know. `tampering_attempts` reads every code cell (function bodies
included) and lists, with the cell, each of:

* rebinding ``check`` or ``summary`` (an assignment, a ``def``, an import under that name), other than
  importing them from ``diffcourse.grading``;
* assigning to, or deleting, an attribute of anything imported from ``diffcourse`` (``core._verdict = …``),
  calling ``setattr``/``delattr`` on it, or writing into a module's ``__dict__``, ``vars(...)`` or
  ``sys.modules``;
* reading a private name (``_x``) of the grading package, or importing its machinery (`core`,
  `runner`, `worker`, `isolation`, `channel`, `integrity`, `plan`, `tamper`) rather than a chapter's helpers;
* naming the grader's environment variables (``DIFFCOURSE_GRADER``, the former results file
  ``DIFFCOURSE_GRADING_RESULTS``).

Reading source cannot see everything (a name built from pieces at run time); what runs in the grader's
process is watched as well (`diffcourse.grading.integrity`, `diffcourse.grading.channel`).
"""
from __future__ import annotations

import ast

from .plan import python_source

__all__ = ["tampering_attempts"]

MACHINERY = {"core", "runner", "worker", "isolation", "channel", "integrity", "plan", "tamper", "progress",
             "references", "grader", "gradebook"}
ENV_NAMES = ("DIFFCOURSE_GRADER", "DIFFCOURSE_GRADING_RESULTS")


def _root(node: ast.AST) -> str | None:
    """The name an attribute or subscript chain starts from (``a`` in ``a.b[c].d``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _imports(tree: ast.AST) -> tuple[set[str], set[str], list[str]]:
    """``(names bound to anything from diffcourse, names bound to diffcourse.grading modules, findings)``."""
    from_course, grading, found = set(), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "diffcourse":
                    from_course.add((a.asname or a.name).split(".")[0])
                    grading |= {a.asname} if a.asname and a.name.startswith("diffcourse.grading") else set()
                    found += _machinery(a.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "diffcourse":
            for a in node.names:
                bound = a.asname or a.name
                from_course.add(bound)
                if node.module.startswith("diffcourse.grading"):
                    grading |= {bound} if node.module == "diffcourse.grading" and a.name in MACHINERY else set()
                    found += _machinery(f"{node.module}.{a.name}")
                    if a.name.startswith("_") or (bound in ("check", "summary") and a.name != bound):
                        found.append(f"imports {a.name} from {node.module} as {bound}")
    return from_course, grading, found


def _machinery(dotted: str) -> list[str]:
    parts = dotted.split(".")
    if len(parts) >= 3 and parts[:2] == ["diffcourse", "grading"] and parts[2] in MACHINERY:
        return [f"imports the grader's machinery ({dotted})"]
    return []


def _findings(node: ast.AST, course: set[str], grading: set[str]) -> list[str]:
    """The attempts one AST node makes (see the module docstring)."""
    found = []
    if isinstance(node, (ast.Import, ast.ImportFrom)) and not (getattr(node, "module", None) or "").startswith(
            "diffcourse.grading"):
        found += [f"imports its own `{a.asname or a.name}`" for a in node.names if (a.asname or a.name) in
                  ("check", "summary")]
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in ("check", "summary"):
        found.append(f"defines its own `{node.name}`")
    elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) and node.id in ("check", "summary"):
        found.append(f"rebinds `{node.id}`")
    elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, (ast.Store, ast.Del)):
        text = ast.unparse(node)
        if _root(node) in course or "__dict__" in text or text.startswith(("vars(", "sys.modules")):
            found.append(f"writes `{text}`")
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
        if node.args and _root(node.args[0]) in course:
            found.append(f"calls {node.func.id} on `{ast.unparse(node.args[0])}`")
    elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
        if _root(node) in grading or ".grading." in ast.unparse(node) + ".":
            found.append(f"reads the private `{ast.unparse(node)}`")
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(ENV_NAMES):
        found.append(f"names the grader's variable {node.value!r}")
    return found


def tampering_attempts(cells: list[tuple[int, str]]) -> list[str]:
    """Every attempt found in the code ``cells`` (``[(index, source)]``), as ``"cell N: …"`` (cells that do not parse
    are skipped)."""
    found: list[str] = []
    for index, source in cells:
        python = python_source(source)
        if python is None:
            continue
        tree = ast.parse(python)
        course, grading, attempts = _imports(tree)
        for node in ast.walk(tree):
            attempts += _findings(node, course, grading)
        found += [f"cell {index}: {a}" for a in dict.fromkeys(attempts)]
    return found
