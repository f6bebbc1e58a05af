"""The package's layers, read from the imports (ast): the folders of mechcheck/ are floors, and a
floor never imports a higher one; report/ works from results.json and imports only core/; claim
files use the public API; no import loops; a function-local import says why in a comment.

Why a test and not a linter: the rules are this project's architecture (issue #20), not style.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mechcheck"
FLOORS = {"core": 0, "data": 1, "models": 2, "metrics": 3, "studies": 4, "report": 5, "pytest_plugin": 5,
          "testing": 5,  # claims' controls, run by the plugin and by tests/ (issue #19)
          "tools": 6, "__main__": 7}
ALLOWED_IN_REPORT = {"core", "report"}
PUBLIC_FOR_CLAIMS = {"mechcheck.pytest_plugin"}  # of the plugin, claim files import only its package API


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, ast.AST, bool]]:
    """(imported mechcheck module, node, inside a function) for each import of mechcheck in `path`;
    `from mechcheck.x import y` names the submodule x.y when y is a module."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(node, local):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child, local) for a in child.names if a.name.split(".")[0] == "mechcheck")
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "mechcheck":
                for a in child.names:
                    sub = f"{child.module}.{a.name}"
                    out.append((sub if sub in MODULES else child.module, child, local))
            visit(child, inner)

    visit(tree, False)
    return out


def _floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_lies_on_a_floor():
    loose = [m for m in MODULES if m != "mechcheck" and _floor(m) not in FLOORS]
    assert not loose, f"modules outside the layers: {loose}"


def test_no_floor_imports_a_higher_one():
    wrong = []
    for module, path in MODULES.items():
        if module == "mechcheck":
            continue
        floor = _floor(module)
        for target, node, _ in _imports(path):
            tf = _floor(target)
            if tf == "__init__":
                continue
            if FLOORS[tf] > FLOORS[floor] or (floor == "report" and tf not in ALLOWED_IN_REPORT) \
                    or (floor == "pytest_plugin" and tf == "tools"):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} ({floor}) imports {target} ({tf})")
    assert not wrong, "imports that run the wrong way:\n" + "\n".join(wrong)


def test_no_import_loops():
    graph = {m: {t for t, _, _ in _imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is how a package is assembled, not a loop
    for m in graph:
        graph[m] = {t for t in graph[m] if not (MODULES[m].name == "__init__" and t.startswith(m + "."))
                    and not (MODULES.get(t, Path()).name == "__init__" and m.startswith(t + "."))}
    loops, state = [], {}

    def dfs(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                loops.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                dfs(nxt, stack + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m, [m])
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_function_local_imports_say_why():
    """A function-local import hides the graph; it is allowed only with a comment saying why."""
    silent = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for target, node, local in _imports(path):
            if local and "#" not in lines[node.lineno - 1] and not lines[node.lineno - 2].strip().startswith("#"):
                silent.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert not silent, "function-local imports without a reason:\n" + "\n".join(silent)


@pytest.mark.parametrize("claim_file", sorted((ROOT / "claims").glob("test_*.py")), ids=lambda p: p.name)
def test_claim_files_use_the_public_api(claim_file):
    internal = [f"{claim_file.name}:{node.lineno} imports {target}" for target, node, _ in _imports(claim_file)
                if target.startswith("mechcheck.pytest_plugin.") or target.startswith("mechcheck.tools")]
    assert not internal, "claim files use the plugin's public API (mechcheck.pytest_plugin, fixtures):\n" + \
        "\n".join(internal)
