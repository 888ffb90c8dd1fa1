"""The code's shape: no import cycle among the package's modules, and event kinds spelled in
one place only (``monitor.types.EventKind`` / ``KIND_INFO``)."""

from __future__ import annotations

import ast
from pathlib import Path

from monitor.types import EventKind

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"

# Modules whose strings share a word with a kind but mean something else.
OTHER_VOCABULARY = {
    "temporal/model.py": "the sequence model's output classes",
    "temporal/simulate.py": "the simulator's behaviours (walk, run, loiter, fall, lie)",
    "temporal/train.py": "maps simulator behaviours and operator labels to model classes",
    "temporal/features.py": "feature column names (the detector's Fall class as a feature)",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Modules of the package this file imports, anywhere in it (TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycle_among_modules() -> None:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(paths)) - {name} for name, path in paths.items()}
    # A package's __init__ re-exporting its submodules is not a cycle of the stages.
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    assert find_cycles(graph) == []


def stray_kinds(source: str, kinds: set[str]) -> list[int]:
    """Lines where a kind name is a string constant other than a docstring."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and node.value in kinds and id(node) not in docstrings
    ]


def test_event_kinds_are_spelled_in_one_place() -> None:
    kinds = {kind.value for kind in EventKind}
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "types.py" or relative in OTHER_VOCABULARY:
            continue
        stray += [f"{relative}:{line}" for line in stray_kinds(path.read_text(), kinds)]
    assert stray == [], "use EventKind / KIND_INFO / kinds_where instead"


def test_the_checks_find_what_they_look_for() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    source = 'def f():\n    """About "fall"."""\n    return {"fall": 1}\n'
    assert stray_kinds(source, {"fall"}) == [3]
