"""The layout of ARCHITECTURE.md holds: no import cycles between gaitlib's modules (module- or
function-level; imports only for type checkers do not count), the plain-data layers stay free of
the heavy libraries, and every name a notebook takes from gaitlib exists."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gaitlib"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(x) for stmt in node.body for x in ast.walk(stmt)}
    return skip


def import_graph() -> dict[str, set[str]]:
    """Module -> the gaitlib modules it imports anywhere in its body (a package import counts
    as its ``__init__``; ``from pkg import module`` as that module)."""
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                found = owner(target) if target.startswith("gaitlib") else None
                if found and found != module:
                    graph[module].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("lower, upper", [
    ("gaitlib.data", "gaitlib.training"), ("gaitlib.models", "gaitlib.training"),
    ("gaitlib.papers", "gaitlib.runs"), ("gaitlib.papers", "gaitlib.report"),
    ("gaitlib.training", "gaitlib.runs"), ("gaitlib.training", "gaitlib.report"),
    ("gaitlib.evaluation", "gaitlib.report"), ("gaitlib.runs", "gaitlib.report"),
    ("gaitlib.provenance", "gaitlib.runs"), ("gaitlib.provenance", "gaitlib.training"),
    ("gaitlib.papers", "gaitlib.analysis"), ("gaitlib.runs", "gaitlib.analysis"),
    ("gaitlib.training", "gaitlib.analysis"), ("gaitlib.analysis", "gaitlib.report"),
    ("gaitlib.analysis", "gaitlib.publish"), ("gaitlib.report", "gaitlib.publish"),
    ("gaitlib.runs", "gaitlib.publish"), ("gaitlib.analysis", "gaitlib.figures"),
])
def test_layers_import_downwards_only(lower, upper):
    graph = import_graph()
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items()
                   if m == lower or m.startswith(lower + ".")
                   for t in targets if t == upper or t.startswith(upper + "."))
    assert wrong == []


# What reads or writes files (and so does not belong in the analysis layer).
_FILE_IO = ("open", "read_text", "write_text", "read_bytes", "write_bytes", "read_csv", "to_csv",
            "to_json", "read_json", "savefig", "Path", "glob", "rglob", "load", "dump")


def file_io_calls(path: Path) -> list[str]:
    """``name (line)`` for every call in ``path`` whose function is named like file I/O."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _FILE_IO:
                found.append(f"{name} ({node.lineno})")
    return found


def test_the_analysis_layer_reads_and_writes_no_files(tmp_path):
    bad = {p.name: file_io_calls(p) for p in sorted((PACKAGE / "analysis").glob("*.py"))}
    assert {name: calls for name, calls in bad.items() if calls} == {}
    sample = tmp_path / "sample.py"  # the check itself finds file I/O
    sample.write_text("from pathlib import Path\nPath('x').read_text()\nopen('y')\n")
    assert sorted(file_io_calls(sample)) == ["Path (2)", "open (3)", "read_text (2)"]


def test_the_papers_layer_is_plain_data():
    code = ("import sys, gaitlib.papers.artifacts, gaitlib.papers.reported, gaitlib.runs.plan; "
            "print([m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.strip()
    assert out == "[]"


def _notebook_uses(path: Path) -> set[tuple[str, str]]:
    """(module, name) for every name a notebook's code takes from gaitlib: ``from M import N``
    and ``alias.N`` where ``alias`` is a gaitlib module it imported."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    source = "\n".join("".join(c["source"]) for c in cells)
    tree = ast.parse("\n".join(line for line in source.splitlines()
                               if not line.lstrip().startswith(("%", "!"))))
    uses: set[tuple[str, str]] = set()
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gaitlib"):
            for a in node.names:
                uses.add((node.module, a.name))
                if (PACKAGE.parent / (node.module.replace(".", "/") + f"/{a.name}.py")).is_file():
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("gaitlib"):
                    aliases[a.asname or a.name] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases:
            uses.add((aliases[node.value.id], node.attr))
    return uses


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_every_name_a_notebook_uses_exists(notebook):
    uses = _notebook_uses(notebook)
    assert uses, f"{notebook.name} takes nothing from gaitlib"
    missing = [f"{m}.{n}" for m, n in sorted(uses) if not _exists(m, n)]
    assert missing == []


def _exists(module: str, name: str) -> bool:
    if hasattr(importlib.import_module(module), name):
        return True
    try:  # a submodule not imported yet
        return importlib.util.find_spec(f"{module}.{name}") is not None
    except ModuleNotFoundError:  # ``module`` is not a package
        return False


def test_a_missing_name_is_caught():
    assert _exists("gaitlib.report", "study") and _exists("gaitlib.report.study", "runs_for")
    assert not _exists("gaitlib.report.study", "no_such_helper")


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_a_notebook_imports_only_what_it_uses(notebook):
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    tree = ast.parse("\n".join("".join(c["source"]) for c in cells))
    imported = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert sorted(imported - used) == []
