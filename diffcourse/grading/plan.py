r"""What the grader runs of a notebook: its definitions and its check calls, nothing else.

The grader does not trust what a notebook's kernel recorded. It reads the notebook's code cells and
re-creates the learner's functions in a fresh process (`diffcourse.grading.worker`), running only

* the imports, the ``def`` and ``class`` statements, and
* the plain assignments (``NAME = …``) that the checked functions depend on — the globals they read, the
  globals those read in turn, found with `symtable`, the compiler's own view of which names a function
  takes from the module —

in notebook order, and at each ``check("name", fn)`` it runs the registered check itself on the
function named there. Everything else at the top level of a cell — printing, plotting, training a
demonstration model, and any cell that writes a results file, patches the grading package or
rebinds ``check`` — is not run: it cannot change a grade, and re-running experiments would only cost
time. A function that needs a global set some other way (in a loop, say) gets a `NameError` that
`missing_global_note` explains.

Cells may hold IPython syntax (``%time``, ``!ls``); it is turned into Python first, and cells that
are not Python at all are listed in `Plan.unreadable`.
"""
from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field
from types import CodeType

__all__ = ["python_source", "Definitions", "CheckCall", "Plan", "notebook_plan", "missing_global_note",
           "is_inert_target"]

_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign)


@dataclass
class Definitions:
    """Statements of cell ``cell`` to run, compiled as ``<cell N>`` (so tracebacks name the cell)."""

    cell: int
    code: CodeType
    source: str


@dataclass
class CheckCall:
    """``check(exercise, target)`` in cell ``cell``; ``target`` is the expression naming the learner's function(s)."""

    cell: int
    exercise: str
    target: ast.expr

    @property
    def target_text(self) -> str:
        return ast.unparse(self.target)


@dataclass
class Plan:
    """The steps in notebook order, the summary cells, the cells that are not Python, and the names that only
    statements the grader does not run bind (``{name: cell}``, for `missing_global_note`)."""

    steps: list[Definitions | CheckCall] = field(default_factory=list)
    summary_cells: list[int] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)
    skipped_names: dict[str, int] = field(default_factory=dict)


def python_source(source: str) -> str | None:
    """The cell as Python: as it is, or with IPython's magics and shell escapes turned into calls; ``None`` if neither
    parses."""
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        transformed = TransformerManager().transform_cell(source)
        ast.parse(transformed)
        return transformed
    except Exception:  # noqa: BLE001 — not Python, with or without IPython
        return None


def _call_name(node: ast.stmt) -> tuple[str | None, ast.Call | None]:
    """``("check", call)`` for ``check(...)`` or ``x = check(...)``, ``("summary", call)`` likewise, else
    ``(None, None)``."""
    value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("check", "summary"):
        return value.func.id, value
    return None, None


def _as_check_call(cell: int, call: ast.Call) -> CheckCall | None:
    args = list(call.args) + [k.value for k in call.keywords if k.arg in ("name", "fn")]
    if len(args) >= 2 and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
        return CheckCall(cell, args[0].value, args[1])
    return None


def _globals_read(statements: list[ast.stmt]) -> set[str]:
    """The module-level names ``statements`` read: in their own expressions, or inside the functions and classes they
    define (`symtable`'s globals of every nested scope)."""
    if not statements:
        return set()
    table = symtable.symtable(ast.unparse(ast.Module(body=statements, type_ignores=[])), "<cell>", "exec")
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        scope = stack.pop()
        names |= {s.get_name() for s in scope.get_symbols() if s.is_global() or (s.is_free() and scope.get_type()
                                                                                   == "class")}
        stack += scope.get_children()
    return names


def _bound_names(node: ast.stmt) -> set[str]:
    """The module-level names a definition or a plain assignment binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _needed(statements: list[ast.stmt], reads: set[str]) -> set[int]:
    """The ids of the plain assignments the checked functions depend on: starting from the names the check calls
    read, every statement that binds a name read so far adds the names it reads in turn (to a fixed point)."""
    binders: dict[str, list[ast.stmt]] = {}
    for node in statements:
        for name in _bound_names(node):
            binders.setdefault(name, []).append(node)
    seen: set[int] = set()
    frontier = list(reads)
    while frontier:
        for node in binders.get(frontier.pop(), []):
            if id(node) not in seen:
                seen.add(id(node))
                frontier += list(_globals_read([node]))
    return {id(node) for node in statements if id(node) in seen and isinstance(node, _ASSIGNMENTS)}


def _parse_cells(cells: list[tuple[int, str]], plan: Plan) -> list[tuple[int, str, ast.Module]]:
    parsed = []
    for index, source in cells:
        python = python_source(source)
        if python is None:
            plan.unreadable.append(index)
        else:
            parsed.append((index, python, ast.parse(python)))
    return parsed


def notebook_plan(cells: list[tuple[int, str]]) -> Plan:
    """The plan for the code cells ``[(index in the notebook, source), …]`` (see the module docstring)."""
    plan = Plan()
    parsed = _parse_cells(cells, plan)
    statements = [node for _, _, module in parsed for node in module.body]
    calls = [_call_name(node)[1] for node in statements if _call_name(node)[0] == "check"]
    targets = {n.id for call in calls for a in call.args[1:2] for n in ast.walk(a) if isinstance(n, ast.Name)}
    needed = _needed([n for n in statements if isinstance(n, _DEFINITIONS + _ASSIGNMENTS)], targets)
    for index, source, module in parsed:
        _plan_cell(plan, index, source, module, needed)
    return plan


def _plan_cell(plan: Plan, index: int, source: str, module: ast.Module, needed: set[int]) -> None:
    """Add one cell's steps: runs of statements to keep, split at its check calls."""
    kept: list[ast.stmt] = []

    def flush() -> None:
        if kept:
            body = ast.Module(body=list(kept), type_ignores=[])
            plan.steps.append(Definitions(index, compile(body, f"<cell {index}>", "exec"), source))
            kept.clear()

    for node in module.body:
        kind, call = _call_name(node)
        if kind == "check" and (step := _as_check_call(index, call)) is not None:
            flush()
            plan.steps.append(step)
        elif kind == "summary":
            plan.summary_cells.append(index)
        elif isinstance(node, _DEFINITIONS) or id(node) in needed:
            kept.append(node)
        else:
            for name in _bound_names(node) if isinstance(node, _ASSIGNMENTS) else set():
                plan.skipped_names.setdefault(name, index)
    flush()


def is_inert_target(node: ast.expr) -> bool:
    """Whether a check call's second argument only *names* functions (a name, an attribute, a tuple of them, or a
    lambda): evaluating it runs none of the learner's code."""
    if isinstance(node, (ast.Name, ast.Lambda)):
        return True
    if isinstance(node, ast.Attribute):
        return is_inert_target(node.value)
    return isinstance(node, (ast.Tuple, ast.List)) and all(is_inert_target(e) for e in node.elts)


def missing_global_note(message: str, plan: Plan) -> str:
    """An explanation to add to a failure whose `NameError` names a global that only a statement the grader does not
    run sets; ``""`` otherwise."""
    for name, cell in plan.skipped_names.items():
        if f"NameError: name '{name}' is not defined" in message:
            return (f"\n   The grader re-creates your functions from the notebook's imports, definitions and plain "
                    f"assignments; `{name}` is set in cell {cell} by a statement it does not run. Set it with a "
                    f"plain assignment (`{name} = …`) or inside your function.")
    return ""
