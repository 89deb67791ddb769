"""The flow between fer_jax's packages goes one way, and no package reaches into another's privates.

Every import is read from the source with `ast`, including those inside functions (an import
moved into a function hides a cycle from Python, not from the design). A "package" here is what
follows `fer_jax.`: a subpackage (fer_jax.data, fer_jax.train, ...) or a top-level module
(fer_jax.config, fer_jax.runs, ...).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fer_jax"


def module_name(path: pathlib.Path) -> str:
    parts = ("fer_jax",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def is_package(path: pathlib.Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(path: pathlib.Path, tree: ast.Module) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) of every fer_jax import in the file, at any depth."""
    here = module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "fer_jax"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = here.split(".") if is_package(path) else here.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == "fer_jax":
                found.append((base, [a.name for a in node.names], node.lineno))
    return found


def target_module(base: str, name: str) -> str:
    """`from base import name`: the submodule `base.name` when there is one, else `base`."""
    candidate = f"{base}.{name}"
    rel = pathlib.Path(*candidate.split(".")[1:])
    if (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file():
        return candidate
    return base


def sources() -> list[tuple[pathlib.Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(ROOT.rglob("*.py"))]


def package_edges(files) -> dict[tuple[str, str], list[str]]:
    """{(importing package, imported package): ["file:line", ...]} between different packages."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path, tree in files:
        source = package_of(module_name(path))
        for base, names, line in imported_modules(path, tree):
            for target in [target_module(base, n) for n in names] or [base]:
                target = package_of(target)
                if target not in (source, "fer_jax"):
                    edges.setdefault((source, target), []).append(f"{path.relative_to(ROOT.parent)}:{line}")
    return edges


def cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_packages():
    edges = package_edges(sources())
    problems = []
    for component in cycles(edges):
        inside = [f"{a} -> {b} ({', '.join(where)})" for (a, b), where in sorted(edges.items())
                  if a in component and b in component]
        problems.append(f"cycle between {component}:\n    " + "\n    ".join(inside))
    assert not problems, "\n".join(problems)


def private_uses(files) -> list[str]:
    """Underscore names of another package taken by `from m import _x`, or as `m._x` on an
    imported module (dunder names are Python's, not a package's)."""
    problems = []
    for path, tree in files:
        source = package_of(module_name(path))
        where = path.relative_to(ROOT.parent)
        modules = {}  # local name -> module, for modules bound by `import` / `from ... import module`
        for base, names, line in imported_modules(path, tree):
            for name in names:
                target = target_module(base, name)
                if target != base:
                    modules[name] = target
                elif name.startswith("_") and package_of(base) != source:
                    problems.append(f"{where}:{line}: imports {base}.{name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name.startswith("fer_jax."):
                        modules[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and package_of(modules[node.value.id]) != source):
                problems.append(f"{where}:{node.lineno}: uses {modules[node.value.id]}.{node.attr}")
    return problems


def test_no_module_uses_another_packages_private_names():
    problems = private_uses(sources())
    assert not problems, "\n".join(problems)


# The checks themselves, on small made-up trees: each must see what it is for.


def _parsed(tmp_path, files: dict[str, str], monkeypatch):
    root = tmp_path / "fer_jax"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(__import__(__name__), "ROOT", root)
    return [(p, ast.parse(p.read_text())) for p in sorted(root.rglob("*.py"))]


@pytest.mark.parametrize("import_line", [
    "from fer_jax.b import y",
    "from fer_jax.b.y import thing",
    "import fer_jax.b.y",
    "from ..b import y",
])
def test_a_cycle_hidden_inside_a_function_is_found(tmp_path, monkeypatch, import_line):
    files = _parsed(tmp_path, {
        "__init__.py": "", "a/__init__.py": "", "a/x.py": "from fer_jax.b.y import thing\n",
        "b/__init__.py": "", "b/y.py": "thing = 1\n",
        "b/z.py": f"def late():\n    {import_line.replace('..b', '..a').replace('fer_jax.b', 'fer_jax.a')}\n",
    }, monkeypatch)
    assert cycles(package_edges(files)) == [["fer_jax.a", "fer_jax.b"]]


def test_a_one_way_flow_has_no_cycle(tmp_path, monkeypatch):
    files = _parsed(tmp_path, {
        "__init__.py": "", "a/__init__.py": "", "a/x.py": "from fer_jax.b.y import thing\nfrom . import w\n",
        "a/w.py": "", "b/__init__.py": "", "b/y.py": "thing = 1\n",
    }, monkeypatch)
    assert package_edges(files) and cycles(package_edges(files)) == []


def test_private_names_of_another_package_are_found(tmp_path, monkeypatch):
    files = _parsed(tmp_path, {
        "__init__.py": "", "a/__init__.py": "",
        "a/x.py": "from fer_jax.b import y\nfrom fer_jax.b.y import _hidden\n\ndef f():\n    return y._open()\n",
        "a/own.py": "from fer_jax.a import x\n\nx._mine()\n",  # its own package's: allowed
        "b/__init__.py": "", "b/y.py": "def _hidden(): pass\ndef _open(): pass\n",
    }, monkeypatch)
    assert private_uses(files) == ["fer_jax/a/x.py:2: imports fer_jax.b.y._hidden", "fer_jax/a/x.py:5: uses fer_jax.b.y._open"]
