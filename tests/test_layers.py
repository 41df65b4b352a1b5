"""The package's layers (docs/architecture.md): each imports only the layers below it, and
no module imports itself through others. Imports inside functions count: an import that
waits until a function runs is still a dependency, and a cycle hidden that way is still a
cycle."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(config: Path, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), str(config), "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath)})


def test_the_layers_contract_holds():
    done = _lint(ROOT / "pyproject.toml", ROOT, ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 1 kept, 0 broken." in done.stdout


def test_the_contract_catches_an_upward_import_inside_a_function(tmp_path):
    """The same kind of contract on a two-layer package whose lower layer imports the upper
    one only when a function runs: the linter must report it."""
    package = tmp_path / "pkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "high.py").write_text("from pkg.low import thing\n")
    (package / "low" / "thing.py").write_text(textwrap.dedent("""\
        def late():
            from pkg import high
            return high
        """))
    config = tmp_path / "contracts.toml"
    config.write_text(textwrap.dedent("""\
        [tool.importlinter]
        root_package = "pkg"

        [[tool.importlinter.contracts]]
        name = "two layers"
        type = "layers"
        containers = ["pkg"]
        layers = ["high", "low"]
        """))
    done = _lint(config, tmp_path, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pkg.low.thing -> pkg.high" in done.stdout


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Every set of two or more modules that import each other, directly or through
    others (Tarjan's strongly connected components, iteratively)."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    edges = {m: sorted(d for d in graph.find_modules_directly_imported_by(m) if d in modules)
             for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles


def test_no_module_imports_itself_through_others():
    sys.path.insert(0, str(ROOT / "src"))
    try:
        graph = grimp.build_graph("sentibench", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT / "src"))
    assert import_cycles(graph, "sentibench") == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path, monkeypatch):
    package = tmp_path / "cyc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyc import b\n")
    (package / "b.py").write_text("def late():\n    from cyc import c\n")
    (package / "c.py").write_text("import cyc.a\n")
    (package / "d.py").write_text("import cyc.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyc", cache_dir=None)
    assert import_cycles(graph, "cyc") == [["cyc.a", "cyc.b", "cyc.c"]]
