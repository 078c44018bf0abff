"""Dependencies point one way (STYLE.md, rule of thumb 1).

- ``proto`` is sans-IO: importing it loads no event loop, no driver, no ``relay``;
  its files import only the standard library, ``attrs`` and ``proto`` itself.
- Only ``relay/storage/`` knows asyncio, asyncpg, uvloop, psycopg2 and yoyo; nothing
  imports trio-asyncio any more (trio is a guest of the asyncio loop instead).
- Only ``relay/storage/host.py`` starts an event loop (``trio.run``,
  ``start_guest_run``, ``asyncio.run``, ``run_forever`` …).
- ``relay.api`` and ``relay.smtp`` never import each other.
- No import cycle in ``relay`` or ``proto``, counting what Python really runs: a
  package's ``__init__`` before any of its modules, and a name imported from a package
  as a dependency on its ``__init__``. Services take their ``Runtime`` from the leaf
  ``relay.runtime``, never from ``relay.composition`` (the composition root that imports them).

The static checks read every file with ``ast`` (so an import inside a function or an
``if TYPE_CHECKING:`` block counts too) and resolve relative imports to absolute names.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RELAY = ROOT / "relay"
PROTO = ROOT / "proto"

STORAGE_ONLY = frozenset({"asyncpg", "asyncio", "uvloop", "trio_asyncio", "psycopg2", "yoyo"})
HOST = RELAY / "storage" / "host.py"
#: Calls that start (or drive) an event loop: ``trio.run``, ``trio.lowlevel.start_guest_run``,
#: ``asyncio.run``, ``loop.run_forever`` / ``run_until_complete``, ``new_event_loop``.
LOOP_STARTERS = frozenset(
    {"start_guest_run", "run_forever", "run_until_complete", "new_event_loop", "Runner"}
)
PROTO_ALLOWED = frozenset({"attrs", "attr", "proto"})


# ---------------------------------------------------------------- helpers


def _module_name(path: Path) -> str:
    """``relay/smtp/server.py`` -> ``relay.smtp.server``; a package is its ``__init__``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every absolute module name ``source`` (the text of ``module``) may import.

    ``from a import b`` yields both ``a`` and ``a.b``, since ``b`` may be a submodule;
    ``importlib.import_module("x")`` and ``__import__("x")`` with a literal count too.
    """
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = (
                func.attr if isinstance(func, ast.Attribute)
                else func.id if isinstance(func, ast.Name)
                else ""
            )
            first = node.args[0]
            if (
                called in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                names.add(first.value)
    return names


def _imports_of(path: Path) -> set[str]:
    return imported_names(
        path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py"
    )


def _python_files(where: Path) -> Iterator[Path]:
    """A package folder's files, or the single module ``where.py``."""
    if where.is_dir():
        yield from sorted(where.rglob("*.py"))
    elif where.with_suffix(".py").is_file():
        yield where.with_suffix(".py")


def _root(name: str) -> str:
    return name.split(".")[0]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# ---------------------------------------------------------------- the helpers work


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import asyncpg", "relay.composition", {"asyncpg"}),
        ("import asyncio.subprocess", "relay.composition", {"asyncio.subprocess"}),
        ("from ..smtp import server", "relay.api.routes", {"relay.smtp", "relay.smtp.server"}),
        ("from .. import smtp", "relay.api.routes", {"relay", "relay.smtp"}),
        ("from . import _events", "proto._server", {"proto", "proto._events"}),
        ("from ._events import Command", "proto._server", {"proto._events", "proto._events.Command"}),
        ("def f():\n    import yoyo\n", "relay.cli", {"yoyo"}),
        ("import importlib\nimportlib.import_module('psycopg2')", "relay.x", {"importlib", "psycopg2"}),
        ("__import__('uvloop')", "relay.x", {"uvloop"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from relay.api import app",
         "relay.smtp.server", {"typing", "typing.TYPE_CHECKING", "relay.api", "relay.api.app"}),
    ],
)
def test_import_scanner_resolves_what_a_file_imports(
    source: str, module: str, expected: set[str]
) -> None:
    assert imported_names(source, module) == expected


def test_import_scanner_resolves_relative_imports_in_a_package_init() -> None:
    assert imported_names("from .storage import x", "relay", is_package=True) == {
        "relay.storage", "relay.storage.x",
    }


def test_the_scan_sees_the_relay_package() -> None:
    files = list(_python_files(RELAY))
    assert RELAY / "composition.py" in files and RELAY / "storage" / "__init__.py" in files
    assert "relay.storage" in _imports_of(RELAY / "composition.py")


# ---------------------------------------------------------------- (a) proto alone


def test_importing_proto_loads_no_event_loop_driver_or_relay() -> None:
    if not (PROTO / "__init__.py").is_file():
        pytest.skip("proto/ does not exist yet (its own issue)")
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import proto\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "proto" in loaded
    forbidden = sorted(
        name for name in loaded if _root(name) in {"trio", "asyncio", "asyncpg", "relay"}
    )
    assert forbidden == []


# ---------------------------------------------------------------- (b) storage owns the drivers


def test_only_relay_storage_imports_database_and_asyncio_modules() -> None:
    storage = RELAY / "storage"
    offenders = {}
    for path in _python_files(RELAY):
        if storage in path.parents:
            continue
        bad = sorted(n for n in _imports_of(path) if _root(n) in STORAGE_ONLY)
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_relay_storage_does_use_the_drivers() -> None:
    """Keeps the check above honest: the scanner does find these imports where they are."""
    found = {_root(n) for p in _python_files(RELAY / "storage") for n in _imports_of(p)}
    assert {"asyncpg", "asyncio", "yoyo"} <= found


def test_nothing_imports_trio_asyncio() -> None:
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in _python_files(RELAY)
        if any(_root(n) == "trio_asyncio" for n in _imports_of(path))
    )
    assert offenders == []


def loop_starts(source: str) -> list[str]:
    """The calls in ``source`` that start an event loop (``LOOP_STARTERS``, ``x.run``
    on ``trio`` or ``asyncio``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else ""
            if func.attr in LOOP_STARTERS or (
                func.attr == "run" and owner in ("trio", "asyncio")
            ):
                found.append(f"{owner}.{func.attr}" if owner else func.attr)
        elif isinstance(func, ast.Name) and func.id in LOOP_STARTERS:
            found.append(func.id)
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("trio.run(main)", ["trio.run"]),
        ("asyncio.run(main())", ["asyncio.run"]),
        ("trio.lowlevel.start_guest_run(f, run_sync_soon_threadsafe=s, done_callback=d)",
         ["start_guest_run"]),
        ("loop.run_forever()", ["loop.run_forever"]),
        ("host.run(main)", []),
        ("trio.to_thread.run_sync(f)", []),
    ],
)
def test_loop_scanner_finds_loop_starts(source: str, expected: list[str]) -> None:
    assert loop_starts(source) == expected


def test_only_relay_storage_host_starts_an_event_loop() -> None:
    offenders = {}
    for path in _python_files(RELAY):
        if path == HOST:
            continue
        starts = loop_starts(path.read_text(encoding="utf-8"))
        if starts:
            offenders[str(path.relative_to(ROOT))] = starts
    assert offenders == {}
    assert "start_guest_run" in loop_starts(HOST.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- (c) proto's dependencies


def test_proto_imports_only_stdlib_attrs_and_itself() -> None:
    files = list(_python_files(PROTO))
    if not files:
        pytest.skip("proto/ does not exist yet (its own issue)")
    offenders = {}
    for path in files:
        bad = sorted(
            name
            for name in _imports_of(path)
            if _root(name) not in sys.stdlib_module_names and _root(name) not in PROTO_ALLOWED
        )
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


# ---------------------------------------------------------------- (d) api and smtp apart


@pytest.mark.parametrize(
    ("importer", "imported"), [("relay.api", "relay.smtp"), ("relay.smtp", "relay.api")]
)
def test_relay_api_and_relay_smtp_never_import_each_other(importer: str, imported: str) -> None:
    where = ROOT.joinpath(*importer.split("."))
    offenders = {}
    for path in _python_files(where):
        bad = sorted(n for n in _imports_of(path) if _within(n, imported))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


# ---------------------------------------------------------------- (e) no import cycles


def imported_modules(
    source: str, module: str, known: frozenset[str], *, is_package: bool = False
) -> set[str]:
    """The modules of ``known`` that importing ``module`` (whose text is ``source``)
    runs first, as Python does it.

    ``from a import b`` needs the submodule ``a.b`` when there is one, else a name
    from ``a`` itself (so ``from . import name`` in a submodule depends on the
    package's ``__init__``). Importing ``a.b.c`` also runs the ``__init__`` of ``a``
    and ``a.b`` first — except those of packages ``module`` is inside, which are
    already being imported when it is.
    """
    package = module if is_package else module.rpartition(".")[0]
    explicit: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            explicit.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                explicit.add(submodule if submodule in known else target)
    inside = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    if is_package:
        inside.add(module)
    found = set()
    for name in explicit:
        if name in known:
            found.add(name)
        parts = name.split(".")
        found.update(
            parent for i in range(1, len(parts))
            if (parent := ".".join(parts[:i])) in known and parent not in inside
        )
    return found


def import_graph(*where: Path) -> dict[str, set[str]]:
    """Module -> the modules it imports, over every file of the packages ``where``."""
    paths = {_module_name(path): path for place in where for path in _python_files(place)}
    known = frozenset(paths)
    return {
        name: imported_modules(
            path.read_text(encoding="utf-8"), name, known, is_package=path.name == "__init__.py"
        )
        for name, path in paths.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of ``graph`` with more than one module,
    and every module that imports itself (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        cycles.append(sorted(component))
    return sorted(cycles)


KNOWN = frozenset({
    "pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "other", "other.d",
})


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        # A submodule imported by name is the submodule, not its package's __init__.
        ("from . import b", "pkg.a", False, {"pkg.b"}),
        ("from .b import x", "pkg.a", False, {"pkg.b"}),
        # A name from the package's own __init__ depends on that __init__.
        ("from . import name", "pkg.a", False, {"pkg"}),
        ("from pkg import name", "pkg.a", False, {"pkg"}),
        # Importing a module of another package runs that package's __init__ first.
        ("from other import d", "pkg.sub.c", False, {"other", "other.d"}),
        ("from .. import a", "pkg.sub.c", False, {"pkg.a"}),
        ("import pkg.sub.c", "other.d", False, {"pkg", "pkg.sub", "pkg.sub.c"}),
        ("from pkg.sub.c import x", "pkg.a", False, {"pkg.sub", "pkg.sub.c"}),
        # Inside functions and TYPE_CHECKING blocks too; unknown modules are ignored.
        ("def f():\n    from . import a\n", "pkg", True, {"pkg.a"}),
        ("if TYPE_CHECKING:\n    from .b import B\nimport trio", "pkg.a", False, {"pkg.b"}),
        ("from . import name", "pkg", True, {"pkg"}),
    ],
)
def test_module_scanner_resolves_what_importing_a_module_runs(
    source: str, module: str, is_package: bool, expected: set[str]
) -> None:
    assert imported_modules(source, module, KNOWN, is_package=is_package) == expected


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"a"}, "b": set()}, [["a"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}},
         [["a", "b", "c"], ["d", "e"]]),
    ],
)
def test_cycle_finder_finds_cycles(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert import_cycles(graph) == expected


def test_the_import_graph_sees_relay_and_proto() -> None:
    graph = import_graph(RELAY, PROTO)
    assert {"relay.smtp.server", "relay.runtime"} <= graph["relay.composition"]
    assert "relay.runtime" in graph["relay.smtp.server"]
    if (PROTO / "__init__.py").is_file():
        assert "proto" in graph["relay.smtp.server"]


def test_relay_and_proto_have_no_import_cycle() -> None:
    """A cycle works or breaks by which module happens to be imported first
    (``import relay.console`` alone once failed on one); each is broken by moving the
    shared piece to a module of its own, never by hiding an import in a function."""
    graph = import_graph(RELAY, PROTO)
    cycles = {
        " <-> ".join(component): sorted(
            f"{importer} -> {imported}"
            for importer in component
            for imported in graph[importer]
            if imported in component
        )
        for component in import_cycles(graph)
    }
    assert cycles == {}


def test_services_take_the_runtime_from_the_leaf_not_the_composition_root() -> None:
    """``relay.runtime`` imports no service; services never import ``relay.composition``."""
    graph = import_graph(RELAY)
    services = ("relay.smtp", "relay.api", "relay.console", "relay.worker")
    assert not {n for n in graph["relay.runtime"] if any(_within(n, s) for s in services)}
    importers = sorted(
        name for name, imported in graph.items()
        if "relay.composition" in imported and any(_within(name, s) for s in services)
    )
    assert importers == []
