"""The import rules of docs/ARCHITECTURE.md ("Layers"), checked on the source of cdcml_lib.

The method (the top-level modules) imports nothing else of the package; each layer below imports
only lower layers (and its own subpackage); no cycle; a function-local import of the package's own
modules is allowed only with a comment on the line above saying why (a heavy optional dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cdcml_lib"

#: the layer of each part of the package: a module may import its own part and lower layers
LAYER = {"method": 0, "workflow": 1, "data": 2, "runs": 3, "results": 4, "explore": 4, "command": 5}
#: top-level modules that are commands (entry points above every layer), not the method
COMMANDS = {"match"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """``cdcml_lib.data.features`` -> ``data``; ``cdcml_lib.nets`` -> ``method``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "method"
    if parts[1] in LAYER:
        return parts[1]
    return "command" if parts[1] in COMMANDS else "method"


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package_imports(path: Path):
    """(imported cdcml_lib module, line, is function-local) for every import of the package."""
    tree = ast.parse(path.read_text())
    local_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    known = modules()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; write cdcml_lib.<...>"
            base = node.module or ""
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            if name == "cdcml_lib" or name.startswith("cdcml_lib."):
                yield name, node.lineno, id(node) in local_nodes


def edges() -> dict[str, set[str]]:
    out = {}
    for name, path in modules().items():
        out[name] = {target for target, _, _ in package_imports(path) if target != name}
    return out


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_go_down_only(name):
    here = part_of(name)
    for target in edges()[name]:
        there = part_of(target)
        if target == "cdcml_lib":
            continue
        if here == there:
            continue
        assert LAYER[there] < LAYER[here], (
            f"{name} ({here}, layer {LAYER[here]}) imports {target} ({there}, layer {LAYER[there]}): "
            f"imports go from the machinery down to the method, never up or sideways")


def test_no_import_cycle():
    graph = edges()
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(nxt_ := node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[nxt_] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [node])


def test_function_local_imports_say_why():
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        for target, lineno, local in package_imports(path):
            if local:
                above = lines[lineno - 2].strip()
                assert above.startswith("#"), (
                    f"{path.relative_to(PACKAGE.parent)}:{lineno}: function-local import of {target}; "
                    f"import it at the top, or say on the line above why it must wait (a heavy optional "
                    f"dependency)")


def test_the_rules_see_a_violation(tmp_path):
    """The checker itself: an upward import is reported (so the tests above can fail)."""
    assert part_of("cdcml_lib.nets") == "method" and part_of("cdcml_lib.runs.train") == "runs"
    assert LAYER[part_of("cdcml_lib.runs.train")] > LAYER[part_of("cdcml_lib.data.dataset")]
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from cdcml_lib.runs import train\n")
    found = list(package_imports(fake))
    assert found == [("cdcml_lib.runs.train", 2, True)]
