"""regbench's own modules import one another without a cycle, and at module level: a
function-level import of a regbench module hides a cycle (it only moves it to run time), so
bench/ has none outside cli.py, which defers each subcommand's imports to keep `regbench --help`
fast.

The graph is read from the source with ast (nothing is imported): every `import regbench...`
and `from regbench... import ...`, at module level, under `if TYPE_CHECKING:` and inside
functions, of bench/ (the `regbench` package) and of models/ and tasks/ (its subpackages
`regbench.models` and `regbench.tasks`, as pyproject.toml's package-dir maps them). Lazy
imports of other libraries (torch, wandb, ...) are not regbench modules and are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"bench": "regbench", "models": "regbench.models", "tasks": "regbench.tasks"}
CHECKED = "bench"  # the folder whose function-level imports are checked
DEFERRING = "regbench.cli"  # defers each subcommand's imports (fast --help)
# The stages of the data path, grid file → jobs → train(job) → run dir → collect → tables: a
# stage imports only the stages before it (and models/, tasks/, errors), never one after it.
STAGES = ("plan", "run", "launch", "report")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    in_function: bool
    line: int


def modules() -> dict[str, Path]:
    """Every module of the three folders by its dotted name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from ... import` names (relative imports too)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _targets(node: ast.AST, module: str, path: Path, known: Mapping[str, Path]) -> list[str]:
    """The regbench modules an import statement loads (a submodule rather than its package
    where `from package import submodule`)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        return [n for n in names if n in known]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = _resolve(node, module, path.name == "__init__.py")
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append(sub if sub in known else base)
    return [t for t in dict.fromkeys(out) if t in known and t != module]


def edges(known: Mapping[str, Path]) -> list[Edge]:
    """Every import between the modules, marked when it runs inside a function."""
    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in _walk(tree, False):
            for target in _targets(node, module, path, known):
                found.append(Edge(module, target, in_function, node.lineno))
    return found


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        deeper = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, in_function or deeper)


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a cycle (Tarjan 1972), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def graph_of(found: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for e in found:
        graph.setdefault(e.source, set()).add(e.target)
    return graph


KNOWN = modules()
EDGES = edges(KNOWN)


def test_the_graph_reader_sees_module_and_function_level_imports():
    assert {"regbench.cli", "regbench.run.job", "regbench.models", "regbench.tasks"} <= set(KNOWN)
    pairs = {(e.source, e.target, e.in_function) for e in EDGES}
    assert ("regbench.run.job", "regbench.run.train", False) in pairs
    assert ("regbench.run.train", "regbench.models", False) in pairs
    assert ("regbench.cli", "regbench.launch.launchers", True) in pairs


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}, "e": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_regbench_modules():
    found = cycles(graph_of(EDGES))
    detail = [
        " ↔ ".join(c)
        + ": "
        + ", ".join(
            f"{e.source}:{e.line} → {e.target}" for e in EDGES if {e.source, e.target} <= set(c)
        )
        for c in found
    ]
    assert not found, "import cycles:\n" + "\n".join(detail)


def test_no_function_level_regbench_import_outside_cli():
    checked = PACKAGES[CHECKED]
    lazy = [
        f"{KNOWN[e.source].relative_to(ROOT)}:{e.line}: {e.target}"
        for e in EDGES
        if e.in_function
        and e.source != DEFERRING
        and e.source.startswith(checked)
        and not e.source.startswith(tuple(p for f, p in PACKAGES.items() if f != CHECKED))
    ]
    assert not lazy, "function-level regbench imports (move them to module level):\n" + "\n".join(
        lazy
    )


def stage(module: str) -> int | None:
    """The position of a module's stage on the data path, or None outside the stages."""
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "regbench" and parts[1] in STAGES:
        return STAGES.index(parts[1])
    return None


def test_stages_import_only_earlier_stages():
    upward = [
        f"{KNOWN[e.source].relative_to(ROOT)}:{e.line}: {e.target}"
        for e in EDGES
        if stage(e.source) is not None
        and stage(e.target) is not None
        and stage(e.target) > stage(e.source)
    ]
    assert not upward, "a stage imports a later stage of the data path:\n" + "\n".join(upward)
