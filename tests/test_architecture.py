"""The shape of the code (docs/architecture.md): no import cycles among nfkit's modules,
and no module writing another module's objects' private attributes.

Both read the sources with ``ast`` (nothing is imported).  An import inside a function (a
lazy import) counts: it is a cycle all the same, only deferred.  Imports under
``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "nfkit"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, lazy ones included, ``if TYPE_CHECKING:`` bodies left out."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the nfkit modules it imports.  ``from pkg import name`` is an edge to the
    submodule ``pkg.name`` when there is one, else to ``pkg``."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target
                           for a in node.names]
            for t in targets:
                while t and t not in mods:      # `import nfkit.ports.tap` -> that module
                    t = t.rpartition(".")[0]
                if t and t != mod and t.split(".")[0] == "nfkit":
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _path(graph: dict[str, set[str]], comp: list[str]) -> str:
    """One cycle through ``comp``, spelled out (a -> b -> a)."""
    start, members = comp[0], set(comp)
    prev: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                hops = [v]
                while hops[-1] != start:
                    hops.append(prev[hops[-1]])
                return " -> ".join(reversed(hops)) + f" -> {start}"
            if w not in prev:
                prev[w] = v
                todo.append(w)
    return " <-> ".join(comp)


def test_the_checker_finds_a_cycle() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    assert _path(g, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "nfkit.ports.base" in graph and graph["nfkit.cli"], "the graph is read"
    found = cycles(graph)
    assert not found, "import cycles among nfkit modules:\n" + "\n".join(
        _path(graph, c) for c in found)


def _declared(tree: ast.AST) -> set[str]:
    """The private attribute names a module's classes declare: ``self._x = ``, ``_x: T`` or
    ``_x = `` in a class body, ``__slots__ = ("_x", ...)``."""
    own = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
           and isinstance(n.value, ast.Name) and n.value.id in ("self", "cls")
           and isinstance(n.ctx, ast.Store)}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                own.add(stmt.target.id)
            elif isinstance(stmt, ast.Assign):
                own.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
                if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in stmt.targets):
                    own.update(c.value for c in ast.walk(stmt.value)
                               if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return own


def _private_writes(tree: ast.AST) -> list[ast.Attribute]:
    """``x._name = ...`` (``+=``, ``del``) where ``x`` is not ``self``/``cls``."""
    out = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        for t in targets:
            out += [sub for sub in ast.walk(t) if isinstance(sub, ast.Attribute)
                    and sub.attr.startswith("_") and not sub.attr.startswith("__")
                    and not (isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls"))]
    return out


#: Writes that remain, each with its owner's reason; the test fails when one disappears, so
#: the list only shrinks.  (The runtime layer has none: #12.)
KNOWN_PRIVATE_WRITES = {
    # the packet-view fast path fills a header's __slots__ without __init__ (measured hot)
    "nfkit/buffers.py: p._abs", "nfkit/buffers.py: p._end",
    # the DPDK queue keeps the pool's free-stack top in step with the C side's refills
    "nfkit/ports/dpdk.py: pool._top",
    # a config made for a DPDK port opened without the runtime (config.py owns _base_dir)
    "nfkit/ports/dpdk.py: rc._base_dir",
}


def test_no_module_writes_another_objects_private_state() -> None:
    """A private attribute is written only where it is declared: in its module, or for a
    subpackage anywhere in it (packets/' header classes share their base's slots)."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in _modules().values()}
    def family(path: Path) -> Path:      # a subpackage, or one top-level module
        return path if path.parent == PKG else path.parent
    declared: dict[Path, set[str]] = {}
    for path, tree in trees.items():
        declared.setdefault(family(path), set()).update(_declared(tree))
    found = {f"{path.relative_to(SRC)}: {ast.unparse(a)}": a.lineno for path, tree in trees.items()
             for a in _private_writes(tree) if a.attr not in declared[family(path)]}
    bad = sorted(f"{k} (line {v})" for k, v in found.items() if k not in KNOWN_PRIVATE_WRITES)
    assert not bad, "private attributes written from outside their package:\n" + "\n".join(bad)
    assert KNOWN_PRIVATE_WRITES <= set(found), ("fixed, drop from KNOWN_PRIVATE_WRITES: "
                                                f"{sorted(KNOWN_PRIVATE_WRITES - set(found))}")


def test_every_driver_a_ports_module_declares_is_registered() -> None:
    from nfkit.ports import base
    declared = sorted(p.stem for p in (PKG / "ports").glob("*.py")
                      if re.search(r"^DRIVER = Driver\(", p.read_text(), re.M))
    registered = sorted(d.open.__module__.rpartition(".")[2] for d in base.DRIVERS)
    assert declared == registered
    assert len({d.name for d in base.DRIVERS}) == len(base.DRIVERS)


def test_the_add_a_port_driver_recipe_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/architecture.md, "Add a port driver": its module, as written, plus the one
    registry line, is a driver the runtime plans, opens, runs and names in errors."""
    import types

    from nfkit.config import RuntimeConfig
    from nfkit.ports import base
    from nfkit.runtime import Runtime
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    section = text[text.index("## Add a port driver"):]
    code = textwrap.dedent(re.search(r"```python\n(.*?)   ```", section, re.S).group(1))
    foo = types.ModuleType("nfkit.ports.foo")
    foo.__package__ = "nfkit.ports"
    exec(compile(code + 'DRIVER = Driver("foo", r"net_foo\\d+", _open)\n',
                 "docs/architecture.md", "exec"), foo.__dict__)
    monkeypatch.setattr(base, "DRIVERS", base.DRIVERS[:-1] + (foo.DRIVER, base.DRIVERS[-1]))
    assert base.driver_of("net_foo3") == "foo" and "foo (net_foo\\d+)" in base.known_drivers()
    rt = Runtime.build(RuntimeConfig.from_toml_text(
        'app_name = "foo"\nmaster_core = 0\nlog_level = "error"\n[[ports]]\nname = "f"\n'
        'device = "net_foo0"\ncores = [0]\n'))
    q = rt.port("f").queues[0]
    assert rt.port("f").driver == "foo" and type(q).__name__ == "FooQueue"
    from nfkit import Mbuf, Poll
    rt.add_pipeline_to_port("f", lambda q: Poll(q).send(q))
    rt.add_periodic_task_to_core(0, lambda: rt.stop("once"), 0.01)
    assert rt.execute().reason == "once"
    q.transmit([Mbuf.alloc(rt.pool)])
    assert q.counters.tx_packets == 1 and rt.pool.in_use == 0
    with pytest.raises(base.PortError, match=r"port g: unknown argument x=1"):
        base.open_port(base.plan_port(RuntimeConfig.from_toml_text(
            'app_name = "foo"\nmaster_core = 0\n[[ports]]\nname = "g"\ndevice = "net_foo1"\n'
            'args = "x=1"\ncores = [0]\n').ports[0]), rt.pool)
