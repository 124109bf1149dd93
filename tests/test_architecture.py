"""The import graph of ``gambit_gym`` and ``agents`` is acyclic and points one way: agents -> gambit_gym.

The graph is built statically (``ast``; nothing is imported) over every ``.py`` module under
``gambit_gym/`` and ``agents/``. A package is a node of its own, its ``__init__.py``, named after
the package. The rules:

* Every import statement counts, wherever it is: module level, inside functions and classes, in
  ``try`` blocks. A lazy import still makes the importer depend on the imported module. The one
  exception is the body of ``if TYPE_CHECKING:``, which never runs.
* Relative imports are resolved against the importing module's package first.
* ``import a.b.c`` draws an edge to ``a.b.c``. Third-party imports draw none. An import that
  names a repository module which does not exist draws none either but fails its own test: it
  would raise when it runs, which for a lazy import may be long after the rename that broke it.
* ``from a.b import name`` draws an edge to the submodule ``a.b.name`` when that module exists
  (loading it is what the statement does), and otherwise to ``a.b`` itself, whose ``__init__.py``
  must run to define (or re-export) ``name``. ``from a.b import *`` draws an edge to ``a.b``.
* The parent packages that Python initialises on the way to a submodule (``a`` and ``a.b`` for
  ``import a.b.c``) draw no edge of their own: only what a module names counts. (For an importer
  inside ``a`` such an edge would be wrong: ``a`` is already initialising when its submodules run,
  so every ``__init__`` that imports a submodule would look cyclic.)
* An edge from a module to itself (``from pkg import x`` in ``pkg/__init__.py``) is dropped.

So a package's ``__init__`` importing its submodules is no cycle by itself, but a submodule that
imports a name defined in its package's ``__init__`` which imports that submodule back is one
(``pkg -> pkg.sub -> pkg``), and so is a lazy import that closes a loop
(``agents.run -> agents.sb3 -> agents.run``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gambit_gym", "agents")


# -- the static import graph ------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    """One import statement of ``module`` (file ``path``, line ``line``) naming ``target``, resolved."""

    module: str
    target: str  # the module the statement names, made absolute: ``a.b`` or, for a submodule, ``a.b.name``
    resolved: str | None  # the repository module the edge goes to; None if there is none
    in_repo: bool  # the target is in one of the scanned packages
    path: str
    line: int

    @property
    def missing(self) -> bool:
        """Names a module of the scanned packages that does not exist."""
        return self.in_repo and self.resolved is None

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def discover_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` file under each package directory."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            if name in modules:  # e.g. a stale pkg/x.py beside pkg/x/__init__.py: Python loads only one
                raise AssertionError(f"module {name} is both {modules[name]} and {path}")
            modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.AST):
    """Every Import / ImportFrom node in ``tree``, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the else branch does run
        else:
            stack.extend(ast.iter_child_nodes(node))


def module_imports(root: Path, packages: tuple[str, ...]) -> list[Import]:
    """Every import statement of every repository module, resolved by the rules in the module docstring."""
    files = discover_modules(root, packages)
    modules = set(files)
    found = []
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        rel = str(path.relative_to(root))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for node in sorted(_statements(tree), key=lambda node: (node.lineno, node.col_offset)):
            if isinstance(node, ast.Import):
                pairs = [(alias.name, alias.name if alias.name in modules else None) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    # level 1 is the importer's own package (the module itself when it is an __init__).
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                pairs = []
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if alias.name != "*" and sub in modules:
                        pairs.append((sub, sub))
                    else:
                        pairs.append((base, base if base in modules else None))
            found += [Import(module, target, resolved, target.split(".")[0] in packages, rel, node.lineno)
                      for target, resolved in pairs]
    return found


def import_graph(modules: Iterable[str], imports: list[Import]) -> dict[str, set[str]]:
    """Module -> the repository modules it imports (self-edges dropped); every module is a node."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for imp in imports:
        if imp.resolved is not None and imp.resolved != imp.module:
            graph[imp.module].add(imp.resolved)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component that has one (Tarjan, then BFS).

    Each cycle is a shortest one through the component's alphabetically first module, so
    the report is deterministic; an empty list means the graph is acyclic.
    """
    nodes = sorted(set(graph) | {v for targets in graph.values() for v in targets})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
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
            components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(nodes) + 100))
    try:
        for v in nodes:
            if v not in index:
                strongconnect(v)
    finally:
        sys.setrecursionlimit(limit)

    cycles = []
    for component in sorted(components):
        start = component[0]
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        members = set(component)
        # Breadth-first from start, staying inside the component, until an edge leads back to start.
        parent: dict[str, str] = {}
        frontier, seen = [start], {start}
        end = None
        while frontier and end is None:
            following = []
            for v in frontier:
                for w in sorted(graph.get(v, ())):
                    if w == start:
                        end = v
                        break
                    if w in members and w not in seen:
                        seen.add(w)
                        parent[w] = v
                        following.append(w)
                if end is not None:
                    break
            frontier = following
        path = [end]
        while path[-1] != start:
            path.append(parent[path[-1]])
        cycles.append(path[::-1] + [start])
    return cycles


# -- the cycle finder and the graph builder are themselves tested --------------------------------
def test_find_cycles_on_hand_made_graphs():
    assert find_cycles({}) == []
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a"}}) == []  # a DAG
    assert find_cycles({"a": {"a"}}) == [["a", "a"]]
    # A 3-cycle with a tail into it and a chord: the shortest cycle through "b" is reported.
    graph = {"t": {"b"}, "b": {"c"}, "c": {"d", "b2"}, "d": {"b"}, "b2": {"x"}, "x": {"b"}}
    assert find_cycles(graph) == [["b", "c", "d", "b"]]
    # Two separate components, each reported once.
    graph = {"p": {"q"}, "q": {"p"}, "m": {"n"}, "n": {"o"}, "o": {"m"}, "z": {"m"}}
    assert find_cycles(graph) == [["m", "n", "o", "m"], ["p", "q", "p"]]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_graph_builder_resolves_imports_by_the_documented_rules(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.sub import helper\nVERSION = '1'\n",
        "pkg/sub.py": (
            "from typing import TYPE_CHECKING\nimport numpy\n"
            "if TYPE_CHECKING:\n    from pkg.typed import T\nelse:\n    from . import other\n"
            "def helper():\n    from pkg import VERSION\n    return VERSION\n"
        ),
        "pkg/other.py": "from .inner import deep\nfrom pkg.inner.deep import *\n",
        "pkg/typed.py": "import pkg.sub\n",
        "pkg/inner/__init__.py": "",
        "pkg/inner/deep.py": "from .. import other\nimport other_pkg.api\n",
        "other_pkg/__init__.py": "import pkg.typed\n",
        "other_pkg/api.py": "import json\ndef late():\n    from pkg.renamed import x\n    import pkg.inner.gone\n",
    })
    imports = module_imports(tmp_path, ("pkg", "other_pkg"))
    graph = import_graph(discover_modules(tmp_path, ("pkg", "other_pkg")), imports)
    assert graph == {
        "pkg": {"pkg.sub"},
        "pkg.sub": {"pkg", "pkg.other"},  # TYPE_CHECKING excluded, lazy `from pkg import VERSION` kept
        "pkg.other": {"pkg.inner.deep"},  # `from .inner import deep` is the submodule, not the package
        "pkg.typed": {"pkg.sub"},
        "pkg.inner": set(),
        "pkg.inner.deep": {"pkg.other", "other_pkg.api"},
        "other_pkg": {"pkg.typed"},
        "other_pkg.api": set(),
    }
    assert {imp.target for imp in imports if imp.resolved is None and not imp.in_repo} == {"typing", "numpy", "json"}
    assert [(imp.where(), imp.target) for imp in imports if imp.missing] == [
        ("other_pkg/api.py:3", "pkg.renamed"), ("other_pkg/api.py:4", "pkg.inner.gone")
    ]
    cycles = find_cycles(graph)
    # pkg -> pkg.sub -> pkg (the lazy import of a name from __init__) and pkg.other <-> pkg.inner.deep.
    assert cycles == [["pkg", "pkg.sub", "pkg"], ["pkg.inner.deep", "pkg.other", "pkg.inner.deep"]]


# -- the repository ---------------------------------------------------------------------------
def _imports() -> list[Import]:
    imports = module_imports(ROOT, PACKAGES)
    assert {imp.module.split(".")[0] for imp in imports} == set(PACKAGES), "no modules found"
    return imports


def test_gambit_gym_imports_nothing_from_agents():
    """The environments must work, and be understood, without the agents: not even a lazy import."""
    bad = [imp for imp in _imports()
           if imp.module.split(".")[0] == "gambit_gym" and imp.target.split(".")[0] == "agents"]
    assert not bad, "gambit_gym imports from agents:\n" + "\n".join(
        dict.fromkeys(f"  {imp.where()}: {imp.module} imports {imp.target}" for imp in bad)
    )


def test_every_import_of_a_repository_module_names_one_that_exists():
    """A lazy import left behind by a move or rename fails only when it runs; catch it here."""
    missing = [imp for imp in _imports() if imp.missing]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(
        dict.fromkeys(f"  {imp.where()}: {imp.module} imports {imp.target}" for imp in missing)
    )


def test_import_graph_has_no_cycles():
    imports = _imports()
    cycles = find_cycles(import_graph(discover_modules(ROOT, PACKAGES), imports))
    lines = []
    for cycle in cycles:
        lines.append("  " + " -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            where = ", ".join(dict.fromkeys(imp.where() for imp in imports if imp.module == a and imp.resolved == b))
            lines.append(f"      {a} -> {b} at {where}")
    assert not cycles, "import cycles (each shown once, through its first module):\n" + "\n".join(lines)


# Imports each module with every module of the packages evicted from sys.modules first, so each
# one is imported as if it were the first thing a user imports (an import order that hides a
# circular import cannot help); third-party modules stay loaded, which keeps this fast.
_IMPORT_EACH = """
import importlib, json, sys, traceback
root, packages, names = sys.argv[1], tuple(json.loads(sys.argv[2])), json.loads(sys.argv[3])
failures, skipped, outside = {}, {}, []
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[loaded]
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if 'pip install "gambit-gym[' in str(exc):
            skipped[name] = str(exc)
        else:
            failures[name] = traceback.format_exc()
    except Exception:
        failures[name] = traceback.format_exc()
    else:
        if not str(module.__file__).startswith(root):
            outside.append(f"{name}: {module.__file__}")
print(json.dumps({"failures": failures, "skipped": skipped, "outside": outside}))
"""


def import_each(root: Path, packages: tuple[str, ...]) -> dict:
    """Import every module of ``packages`` on its own in one fresh interpreter rooted at ``root``.

    Returns ``failures`` (name -> traceback), ``skipped`` (name -> the missing-extra message of
    :func:`gambit_gym.extras.require`) and ``outside`` (modules not loaded from ``root``).
    """
    names = sorted(discover_modules(root, packages))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, str(root), json.dumps(packages), json.dumps(names)],
                          capture_output=True, text=True, cwd=root, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_each_reports_circular_imports_and_skips_only_missing_extras(tmp_path):
    _write(tmp_path, {
        "fake_arch_pkg/__init__.py": "",
        "fake_arch_pkg/a.py": "from fake_arch_pkg.b import B\nA = 1\n",
        "fake_arch_pkg/b.py": "from fake_arch_pkg.a import A\nB = 2\n",  # fails whichever is imported first
        "fake_arch_pkg/heavy.py": "raise ImportError('x needs y: pip install \"gambit-gym[torch]\"')\n",
        "fake_arch_pkg/broken.py": "import a_module_that_is_not_installed_anywhere\n",
        "fake_arch_pkg/fine.py": "import json\n",
    })
    result = import_each(tmp_path, ("fake_arch_pkg",))
    assert sorted(result["failures"]) == ["fake_arch_pkg.a", "fake_arch_pkg.b", "fake_arch_pkg.broken"]
    assert "partially initialized module" in result["failures"]["fake_arch_pkg.a"]
    assert sorted(result["skipped"]) == ["fake_arch_pkg.heavy"] and result["outside"] == []


@pytest.mark.slow  # about 0.1 s a module: each one re-imports the repository's modules it needs
def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    result = import_each(ROOT, PACKAGES)
    assert not result["outside"], f"imported from outside {ROOT}: {result['outside']}"
    # The end of each traceback is enough to tell one failure from another.
    assert not result["failures"], "modules that fail to import on their own:\n" + "\n".join(
        f"--- {name}\n" + "\n".join(tb.strip().splitlines()[-4:]) for name, tb in result["failures"].items()
    )
    # Skipping is for a missing optional extra only; the test is pointless if it skips everything.
    n_modules = len(discover_modules(ROOT, PACKAGES))
    assert len(result["skipped"]) < n_modules // 2, f"most modules skipped: {result['skipped']}"
