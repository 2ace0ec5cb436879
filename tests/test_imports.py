"""The package's import graph: no cycles, and every module in its declared layer.

The graph is read from the source with ``ast``, not from what Python happens to load: every
``import`` and ``from ... import`` counts, at module level, inside functions and under ``if
TYPE_CHECKING:`` alike; relative imports are resolved, and ``from pkg import name`` points at the
submodule ``pkg.name`` when there is one, else at ``pkg``. (As in grimp, importing ``a.b.c`` is an
edge to ``a.b.c`` only, not to the packages ``a`` and ``a.b`` Python runs first.)

Each module's docstring starts with its layer: ``Pure:``, ``Shell:`` or ``Composition root:``
(a package names the outermost layer among the modules it holds). A ``Pure:`` module imports no
I/O library and no callcenter module that is not itself pure, save ``callcenter.ports``. The
import-linter contracts in ``pyproject.toml`` check the layering between packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import callcenter

PACKAGE_DIR = Path(callcenter.__file__).resolve().parent

LAYERS = ("Pure", "Shell", "Composition root")  # innermost first

# What a pure module may not import: the event loop, sockets, processes, the database and PBX
# drivers, clocks, the file system, threads and signals, terminals, and pyst2's stdio AGI.
IO_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "subprocess",
        "asyncpg",
        "panoramisk",
        "time",
        "selectors",
        "ssl",
        "socketserver",
        "http.client",
        "http.server",
        "urllib.request",
        "os",
        "pathlib",
        "shutil",
        "tempfile",
        "threading",
        "multiprocessing",
        "concurrent",
        "signal",
        "rich",
        "asterisk",
    }
)

PURE_BY_DEFINITION = frozenset({"callcenter.ports"})


@dataclass(frozen=True, slots=True)
class Edge:
    """``importer`` imports ``imported`` at ``file:line``."""

    importer: str
    imported: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.file}:{self.line})"


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    file: str  # relative to the package's parent directory: ``callcenter/sim/pbx.py``
    is_package: bool
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @property
    def docstring(self) -> str:
        return ast.get_docstring(self.tree) or ""


def modules(root: Path) -> dict[str, Module]:
    """Every module of the package whose directory is ``root``, by dotted name."""
    found: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        parts = rel.with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = Module(
            name, rel.as_posix(), is_package, ast.parse(path.read_text(), filename=str(path))
        )
    return found


def imports(module: Module) -> Iterator[tuple[str, list[str], int]]:
    """(module imported from, names, line) for every import statement anywhere in ``module``,
    relative ones made absolute: ``import a.b`` is ``("a.b", [], line)``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:
                package = module.package.rsplit(".", node.level - 1)[0] if node.level > 1 else module.package
                base = f"{package}.{base}" if base else package
            yield base, [alias.name for alias in node.names], node.lineno


def edges(mods: dict[str, Module]) -> list[Edge]:
    """The import graph between ``mods`` (no self-edges), sorted."""
    out: set[Edge] = set()
    for module in mods.values():
        for base, names, line in imports(module):
            targets = [f"{base}.{n}" if f"{base}.{n}" in mods else base for n in names] or [base]
            for target in targets:
                while target and target not in mods:  # ``pkg.sub.Class`` -> ``pkg.sub``
                    target = target.rpartition(".")[0]
                if target and target != module.name:
                    out.add(Edge(module.name, target, module.file, line))
    return sorted(out, key=lambda e: (e.importer, e.line, e.imported))


def external_imports(module: Module, mods: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of what ``module`` imports from outside ``mods``' package."""
    root = module.name.split(".")[0]
    for base, _, line in imports(module):
        if base.split(".")[0] != root:
            yield base, line


def find_cycle(graph: list[Edge]) -> list[Edge] | None:
    """One import cycle, as its edges in order, or ``None`` when the graph is acyclic."""
    succ: dict[str, list[Edge]] = {}
    for e in graph:
        succ.setdefault(e.importer, []).append(e)
    done: set[str] = set()
    on_path: list[str] = []  # the modules of the current walk, in order
    path: list[Edge] = []  # path[i] leads from on_path[i] to on_path[i + 1]

    def visit(node: str) -> list[Edge] | None:
        on_path.append(node)
        for e in succ.get(node, []):
            if e.imported in on_path:
                return [*path[on_path.index(e.imported) :], e]
            if e.imported not in done:
                path.append(e)
                cycle = visit(e.imported)
                if cycle is not None:
                    return cycle
                path.pop()
        on_path.pop()
        done.add(node)
        return None

    for node in sorted(succ):
        if node not in done:
            cycle = visit(node)
            if cycle is not None:
                return cycle
    return None


def find_cycles(graph: list[Edge]) -> list[list[Edge]]:
    """Cycles until none is left, each found with the previous ones' closing edges taken out (so
    every tangle of modules is named at least once)."""
    cycles: list[list[Edge]] = []
    remaining = list(graph)
    while (cycle := find_cycle(remaining)) is not None:
        cycles.append(cycle)
        remaining.remove(cycle[-1])
    return cycles


def layer_of(module: Module) -> str | None:
    first = module.docstring.split("\n", 1)[0]
    return next((layer for layer in LAYERS if first.startswith(layer + ":")), None)


def layer_problems(mods: dict[str, Module], graph: list[Edge]) -> list[str]:
    """What breaks the layer rules (see the module docstring), one line each."""
    problems: list[str] = []
    layers = {name: layer_of(m) for name, m in mods.items()}
    for name, layer in layers.items():
        if layer is None:
            first = mods[name].docstring.split("\n", 1)[0]
            problems.append(
                f"{name}: the docstring does not start with a layer ({', '.join(LAYERS)}): {first!r}"
            )
    for name, module in mods.items():
        inside = [layers[n] for n in mods if n.startswith(name + ".")]
        if module.is_package and inside and layers[name] is not None and None not in inside:
            outermost = max(inside, key=lambda layer: LAYERS.index(layer or ""))
            if layers[name] != outermost:
                problems.append(
                    f"{name}: a package holding {outermost} modules, but its docstring says {layers[name]}"
                )
    for name, module in mods.items():
        if layers[name] != "Pure":
            continue
        for imported, line in external_imports(module, mods):
            if any(imported == m or imported.startswith(m + ".") for m in IO_MODULES):
                problems.append(f"{name} is Pure but imports {imported} ({module.file}:{line}): I/O")
        for e in graph:
            if e.importer == name and layers[e.imported] != "Pure" and e.imported not in PURE_BY_DEFINITION:
                problems.append(
                    f"{name} is Pure but imports {e.imported}, which is {layers[e.imported]} ({e})"
                )
    return problems


# ---------------------------------------------------------------------------------------- the package
@pytest.fixture(scope="module")
def package() -> tuple[dict[str, Module], list[Edge]]:
    mods = modules(PACKAGE_DIR)
    return mods, edges(mods)


def test_the_package_has_no_import_cycle(package: tuple[dict[str, Module], list[Edge]]) -> None:
    mods, graph = package
    assert len(mods) > 50 and len(graph) > 200  # the walk saw the package
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join("  " + "\n    ".join(map(str, c)) for c in cycles)


def test_every_module_is_in_its_layer(package: tuple[dict[str, Module], list[Edge]]) -> None:
    mods, graph = package
    assert layer_problems(mods, graph) == []


# ---------------------------------------------------------------------------------------- the walk itself
def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def _graph(root: Path) -> tuple[dict[str, Module], list[Edge]]:
    mods = modules(root)
    return mods, edges(mods)


def test_the_walk_finds_a_cycle_through_an_import_inside_a_function(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "engine.py": "def run():\n    from pkg import apps\n    return apps\n",
            "apps.py": "from pkg.engine import run\n",
        },
    )
    cycle = find_cycle(_graph(root)[1])
    assert cycle is not None
    assert {(e.importer, e.imported) for e in cycle} == {
        ("pkg.engine", "pkg.apps"),
        ("pkg.apps", "pkg.engine"),
    }
    assert "pkg.engine -> pkg.apps (pkg/engine.py:2)" in {str(e) for e in cycle}


def test_the_walk_finds_a_cycle_under_type_checking_and_relative_imports(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "sub/__init__.py": "",
            "sub/server.py": "from . import population\nfrom ..util import helper\n",
            "sub/population.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.server import Server\n"
            ),
            "util.py": "def helper():\n    pass\n",
        },
    )
    mods, graph = _graph(root)
    assert {(e.importer, e.imported) for e in graph} == {
        ("pkg.sub.server", "pkg.sub.population"),
        ("pkg.sub.server", "pkg.util"),
        ("pkg.sub.population", "pkg.sub.server"),
    }
    cycle = find_cycle(graph)
    assert cycle is not None and len(cycle) == 2


def test_the_walk_finds_a_longer_cycle_and_none_in_a_tree(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "import pkg.b\n",
            "b.py": "from pkg.c import thing\n",
            "c.py": "import os\nthing = 1\n",
        },
    )
    assert find_cycle(_graph(root)[1]) is None
    (root / "c.py").write_text("import os\nthing = 1\n\ndef later():\n    import pkg.a\n")
    cycle = find_cycle(_graph(root)[1])
    assert cycle is not None
    assert [e.importer for e in cycle] == ["pkg.a", "pkg.b", "pkg.c"]
    (root / "d.py").write_text("import pkg.e\n")
    (root / "e.py").write_text("from . import d\n")
    assert [[e.importer for e in c] for c in find_cycles(_graph(root)[1])] == [
        ["pkg.a", "pkg.b", "pkg.c"],
        ["pkg.d", "pkg.e"],
    ]


def test_the_layer_rules_catch_io_impure_imports_and_missing_layers(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "__init__.py": '"""Pure: a package holding a shell."""\n',
            "core.py": '"""Pure: a core."""\nimport time\nfrom pkg import shell\n',
            "shell.py": '"""Shell: I/O."""\nimport asyncio\n',
            "ok.py": '"""Pure: fine."""\nimport math\nfrom pkg.core import x\n',
            "bare.py": '"""No layer here."""\n',
        },
    )
    mods, graph = _graph(root)
    problems = layer_problems(mods, graph)
    assert problems == [
        "pkg.bare: the docstring does not start with a layer (Pure, Shell, Composition root): "
        "'No layer here.'",
        "pkg.core is Pure but imports time (pkg/core.py:2): I/O",
        "pkg.core is Pure but imports pkg.shell, which is Shell (pkg.core -> pkg.shell (pkg/core.py:3))",
    ]
    (root / "bare.py").unlink()
    mods, graph = _graph(root)
    assert "pkg: a package holding Shell modules, but its docstring says Pure" in layer_problems(mods, graph)
