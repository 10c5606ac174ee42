"""The layers of DESIGN.md hold: every import inside conveyor (at module level or inside a
function) goes down the layers or stays in its own, and peopleflow uses conveyor's public API
only. ``make lint`` runs this file; it reads the sources, it imports nothing."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Bottom to top; a module may import from its own layer and the ones before it.
LAYERS: list[tuple[str, ...]] = [
    ("conveyor._errors",),
    ("conveyor.spec",),
    ("conveyor.task", "conveyor.graph"),
    ("conveyor.plan", "conveyor.plan_drawing", "conveyor.cluster_plan"),
    ("conveyor.transport",),
    ("conveyor.runtime",),
    ("conveyor.monitor",),
    ("conveyor.backends",),
    ("conveyor.api", "conveyor", "conveyor.testing", "conveyor.cli", "conveyor.demo"),
]
# Where a layer's modules are packages, the order of their parts inside (bottom to top).
BACKENDS = ["base", "scaffold", "bridge", "inline", "local", "ray_backend", "ray_cluster"]


def layer_of(module: str) -> int:
    best, at = -1, -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, at = len(name), i
    assert at >= 0, f"{module} is in no layer: add it to LAYERS"
    return at


def imports(path: Path, type_checking: bool = False) -> list[tuple[str, int]]:
    """The conveyor modules ``path`` imports, with their line; TYPE_CHECKING blocks skipped
    unless ``type_checking`` (a cycle through them is a cycle all the same)."""
    found = []
    text = path.read_text()
    for node in ast.walk(ast.parse(text if type_checking else _without_type_checking(text))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [(n, node.lineno) for n in names if n.startswith("conveyor")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("conveyor")]
    return sorted(set(found))


def _without_type_checking(text: str) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = [ast.Pass()]
    return ast.unparse(tree)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _existing(name: str) -> str:
    """``name`` if it is a module, else the module that holds it (``a.b.Name`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        base = SRC.joinpath(*parts)
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    return name


def test_conveyor_imports_go_down_the_layers_only() -> None:
    wrong = []
    for path in sorted((SRC / "conveyor").rglob("*.py")):
        me = module_name(path)
        mine = layer_of(me)
        for name, line in imports(path):
            target = _existing(name)
            if me == "conveyor" or target == "conveyor":
                continue  # the package's __init__ is the API on top; importing it is the API
            if layer_of(target) > mine:
                wrong.append(f"{me}:{line} imports {target} (a higher layer)")
    assert not wrong, "\n".join(wrong)


def test_backends_import_each_other_one_way() -> None:
    wrong = []
    for path in sorted((SRC / "conveyor" / "backends").rglob("*.py")):
        me = module_name(path).split(".")[2] if module_name(path) != "conveyor.backends" else ""
        if not me:
            continue
        for name, line in imports(path):
            target = _existing(name)
            if not target.startswith("conveyor.backends."):
                continue
            other = target.split(".")[2]
            if other != me and BACKENDS.index(other) > BACKENDS.index(me):
                wrong.append(f"backends.{me}:{line} imports backends.{other}")
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_cycle_between_conveyor_modules() -> None:
    graph: dict[str, set[str]] = {}
    for path in sorted((SRC / "conveyor").rglob("*.py")):
        me = module_name(path)
        graph[me] = {_existing(n) for n, _ in imports(path, True)} - {me, "conveyor"}
    seen: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own parts
            if seen.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])


def test_peopleflow_uses_conveyors_public_api_only() -> None:
    wrong = []
    for path in sorted((SRC / "peopleflow").rglob("*.py")):
        for name, line in imports(path):
            target = _existing(name)
            if target not in ("conveyor", "conveyor.transport", "conveyor.testing"):
                wrong.append(f"{module_name(path)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)
