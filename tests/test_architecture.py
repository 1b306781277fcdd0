"""The shape of the code base, checked: data flows one way and the S3 seam does not leak.

Built from the source with `ast` (nothing is imported), so a violation fails here before it can
surprise anyone at run time. Imports inside functions count; imports under `if TYPE_CHECKING:` do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "pipeline"
INTERFACES = ("pipeline.cli", "pipeline.api", "pipeline.web")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module `name` imports (absolute names; `from a import b` resolves to a.b when b is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (child.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                for a in child.names:
                    full = f"{base}.{a.name}"
                    out.add(full if full in known else base)
            visit(child)

    visit(tree)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(p, m, known) for m, p in mods.items()}


def test_no_import_cycles() -> None:
    graph = {m: {d for d in deps if d in graph_keys} for graph_keys in [set(_modules())]
             for m, deps in _graph().items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep == node:
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                dfs(dep, stack)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_storage_package_imports_minio() -> None:
    bad = sorted(f"{m} imports {d}" for m, deps in _graph().items() for d in deps
                 if (d == "minio" or d.startswith("minio.")) and not m.startswith("pipeline.storage"))
    assert not bad, "minio outside pipeline/storage:\n" + "\n".join(bad)


def test_lower_layers_never_import_the_interfaces() -> None:
    def interface(m: str) -> bool:
        return any(m == i or m.startswith(i + ".") for i in INTERFACES)

    bad = sorted(f"{m} imports {d}" for m, deps in _graph().items() if not interface(m)
                 for d in deps if interface(d))
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_module_over_400_lines() -> None:
    long = sorted(f"{m}: {n} lines" for m, p in _modules().items()
                  if (n := len(p.read_text().splitlines())) > MAX_LINES)
    assert not long, "split these modules:\n" + "\n".join(long)


def test_the_checker_sees_what_it_must(tmp_path: Path) -> None:
    """The rules above would pass vacuously if the parser missed imports; make sure it does not."""
    src = tmp_path / "mod.py"
    src.write_text("import minio\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hidden\n"
                   "def f():\n    from pipeline.cli import main\n")
    got = _imports(src, "pipeline.x.mod", {"pipeline.cli.main"})
    assert {"minio", "pipeline.cli.main"} <= got and "hidden" not in got
