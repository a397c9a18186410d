"""Mutation testing of the code mutmut does not reach: compiled and generated functions.

mutmut 3 swaps functions through trampolines and leaves out every decorated function (a
numba ``@_jit``/``@kernel``/``@numba.njit``, an ``@lru_cache``, a ``@property``), every
function nested in a module-level ``if``, and modules loaded by path (the examples, which
``nfkit.cli.load_module`` imports under another name).  It never sees the field accessors
either: they are generated from templates and ``exec``'d (``nfkit.packets.fields``).

This engine mutates exactly that code, with mutmut's own mutation operators
(``mutmut.mutation.mutators``), and runs each mutant the way mutmut does:

- the work tree (a copy of ``src``, ``tests``, ``examples``) gets the mutated file; a child
  forked from a runner that has already imported numpy, numba, hypothesis and pytest (but
  not nfkit) runs the tests with ``NUMBA_DISABLE_JIT=1``, so a mutated kernel runs as
  Python (the same function numba would compile; ``Kernel.run(python=True)`` is tested to
  agree with the compiled one) instead of being compiled again for every mutant;
- a first pass records which tests call which target function (a ``sys.settrace`` hook on
  call events), so a mutant runs only the tests that reach it, fastest first, stopping at
  the first failure;
- a mutant is killed when a test fails or times out (3x the tests' traced time + 10 s).

Generated accessors: every line of every generated getter/setter is reduced to its
template (numbers and strings replaced by N and S: ``hc = (hc - (n - o) * N) % N``); a
mutant is one mutation of one template line, applied to every accessor generated from it.

Usage (tools/mutation.py drives it): ``python tools/mutate_compiled.py WORK_TREE --file
src/nfkit/vector/jit.py ... [--generated] --test tests/test_x.py ... --out results.json``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider
from mutmut.mutation.mutators import mutation_operators

#: calls mutmut never mutates (nor their arguments)
SKIP_CALLS = {"len", "isinstance"}
#: methods mutmut leaves alone by name
MUTMUT_SKIPS_NAMES = {"__getattribute__", "__setattr__", "__new__",
                      "__init_subclass__"}      # (the last one: tools/mutation.py tells mutmut)
GENERATED_FILE = "src/nfkit/packets/fields.py"


@dataclass
class Mutant:
    name: str                  # module.function__compiled_k, or fields.template[...]__generated_k
    path: str                  # the file mutated (relative to the work tree)
    function: str
    line: int
    diff: str
    status: str = "not run"
    seconds: float = 0.0
    tests: list[str] = field(default_factory=list)


# -- which functions --------------------------------------------------------------------------

def _mutmut_mutates(fn: cst.FunctionDef) -> bool:
    """Whether mutmut 3.8 mutates this top-level function or top-level class's method."""
    if fn.name.value in MUTMUT_SKIPS_NAMES:
        return False
    if not fn.decorators:
        return True
    d = fn.decorators[0].decorator
    return len(fn.decorators) == 1 and isinstance(d, cst.Name) and d.value in ("staticmethod", "classmethod")


def targets(module: cst.Module, whole_file: bool) -> list[tuple[str, cst.FunctionDef]]:
    """``(qualified name, node)`` of the functions mutmut leaves out (all of them when
    ``whole_file``: a module mutmut cannot import under its own name)."""
    out: list[tuple[str, cst.FunctionDef]] = []

    def visit(node: cst.CSTNode, prefix: str, mutmut_sees: bool) -> None:
        for child in node.children:
            if isinstance(child, cst.FunctionDef):
                if whole_file or not (mutmut_sees and _mutmut_mutates(child)):
                    out.append((prefix + child.name.value, child))
            elif isinstance(child, cst.ClassDef):
                visit(child.body, f"{prefix}{child.name.value}.", mutmut_sees and not prefix)
            elif isinstance(child, (cst.BaseCompoundStatement, cst.BaseSuite, cst.BaseStatement,
                                    cst.ExceptHandler, cst.Else, cst.Finally)):
                # the body of a module-level if/try/with: mutmut never looks inside
                visit(child, prefix, mutmut_sees and isinstance(child, cst.BaseSuite)
                      and isinstance(node, (cst.Module, cst.ClassDef)))

    visit(module, "", True)
    return out


def _mutable_nodes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The nodes of a function mutmut's operators apply to (what mutmut itself skips, skipped)."""
    if isinstance(node, (cst.Decorator, cst.Annotation)):
        return
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in SKIP_CALLS:
        return
    if isinstance(node, cst.Param) and node.default is not None \
            and not isinstance(node.default, (cst.Name, cst.BaseNumber, cst.BaseString)):
        return
    yield node
    for child in node.children:
        yield from _mutable_nodes(child)


def _mutations(node: cst.CSTNode) -> Iterator[tuple[cst.CSTNode, cst.CSTNode]]:
    for n in _mutable_nodes(node):
        for kind, op in mutation_operators:
            if isinstance(n, kind):
                for new in op(n):
                    yield n, new


def _diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
    return "\n".join(x for x in lines if x[:1] in "+-" and x[:3] not in ("---", "+++"))


def module_name(path: str) -> str:
    p = path[:-3].replace("/", ".")
    return p[4:] if p.startswith("src.") else p


def file_mutants(tree: Path, path: str, whole_file: bool) -> list[tuple[Mutant, str]]:
    """Every mutant of the target functions of ``path``, with the mutated file's source."""
    code = (tree / path).read_text()
    wrapper = MetadataWrapper(cst.parse_module(code))
    pos = wrapper.resolve(PositionProvider)
    module = wrapper.module
    out = []
    count: dict[str, int] = {}          # a property's getter and setter share a name
    for qual, fn in targets(module, whole_file):
        for old, new in _mutations(fn):
            mutated = module.deep_replace(old, new).code
            if mutated == code:
                continue
            k = count[qual] = count.get(qual, 0) + 1
            m = Mutant(f"{module_name(path)}.{qual}__compiled_{k}", path, qual,
                       pos[old].start.line, _diff(code, mutated))
            out.append((m, mutated))
    return out


def spans(tree: Path, paths: list[str], whole: set[str]) -> dict[str, list[tuple[int, int, str]]]:
    """Per absolute file: (first line, last line, function) of each target, decorators included."""
    out: dict[str, list[tuple[int, int, str]]] = {}
    for path in paths:
        wrapper = MetadataWrapper(cst.parse_module((tree / path).read_text()))
        pos = wrapper.resolve(PositionProvider)
        # a decorated function's code starts at its first decorator (co_firstlineno)
        out[str((tree / path).resolve())] = [
            (min([pos[fn].start.line] + [pos[d].start.line for d in fn.decorators]), pos[fn].end.line, qual)
            for qual, fn in targets(wrapper.module, path in whole)]
    return out


# -- generated accessors -------------------------------------------------------------------

_NUM = re.compile(r"\b(0x[0-9a-fA-F]+|\d+)\b")
_STR = re.compile(r"'[^']*'")


def template(line: str) -> str:
    """A generated line with its field's constants taken out: the template it came from."""
    return _NUM.sub("N", _STR.sub("S", line.strip()))


def template_mutations(src: str) -> tuple[cst.Module, list[tuple[str, int, cst.CSTNode, cst.CSTNode]]]:
    """The parsed accessor and ``(template, k, node, mutated node)``: the k-th mutation of
    each of its template lines."""
    wrapper = MetadataWrapper(cst.parse_module(src))
    pos = wrapper.resolve(PositionProvider)
    lines = src.splitlines()
    count: dict[str, int] = {}
    out = []
    for old, new in _mutations(wrapper.module):
        p = pos.get(old)
        if p is None or p.start.line != p.end.line or isinstance(old, cst.FunctionDef):
            continue                        # not a mutation within one line
        key = template(lines[p.start.line - 1])
        k = count[key] = count.get(key, 0) + 1
        out.append((key, k, old, new))
    return wrapper.module, out


def mutate_generated(src: str, key: str, k: int) -> str:
    """``src`` (one generated accessor) with mutation ``k`` of its template line ``key``."""
    if key not in {template(x) for x in src.splitlines()}:
        return src
    module, muts = template_mutations(src)
    for key2, k2, old, new in muts:
        if key2 == key and k2 == k:
            return module.deep_replace(old, new).code
    return src


#: ``"Class.field|get"`` -> source of every accessor generated in this process (filled by
#: the hook the work tree's fields.py calls, see :func:`wrap_compile`)
GENERATED: dict[str, str] = {}
TEMPLATE_ENV = "NFKIT_MUTANT_TEMPLATE"
HOOK = "\n\n# appended in the mutation work tree by tools/mutate_compiled.py\n" \
       "import mutate_compiled as _mc\n_compile = _mc.wrap_compile(_compile)\n"


def wrap_compile(compile_fn: Any) -> Any:
    """The accessor compiler of fields.py, recording each source and applying the template
    mutant named in $NFKIT_MUTANT_TEMPLATE (``[template, k]``) if there is one."""
    spec = os.environ.get(TEMPLATE_ENV)
    key, k = json.loads(spec) if spec else (None, 0)

    def _compile(src: str, name: str, qual: str) -> Any:
        GENERATED[f"{qual}|{src[4:7]}"] = src            # "def get(" / "def set("
        return compile_fn(mutate_generated(src, key, k) if key else src, name, qual)

    return _compile


def generated_mutants(sources: dict[str, str]) -> list[tuple[Mutant, list[str]]]:
    """One mutant per mutation of a template line, with the accessors it changes."""
    seen: dict[tuple[str, int], tuple[Mutant, list[str]]] = {}
    for acc, src in sorted(sources.items()):
        module, muts = template_mutations(src)
        for key, k, old, new in muts:
            if (key, k) not in seen:
                diff = _diff(src, module.deep_replace(old, new).code)
                name = f"nfkit.packets.fields.accessor[{key}]__generated_{k}"
                seen[(key, k)] = (Mutant(name, GENERATED_FILE, f"accessor[{key}]", 0, diff), [])
            seen[(key, k)][1].append(acc)
    return list(seen.values())


# -- running -------------------------------------------------------------------------------

PRELOAD = ("numpy", "numba", "hypothesis", "pytest", "scapy.all")


class _Order:
    """Runs the given tests first, in the given order (the rest after them, as collected)."""

    def __init__(self, first: list[str]) -> None:
        self.rank = {t: i for i, t in enumerate(first)}

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        items.sort(key=lambda item: self.rank.get(item.nodeid, len(self.rank)))


class _Deadline:
    """Ends the child (exit 124, a time-out) when one test runs past 3x its traced time + 2 s:
    a mutant looping forever in the first test is stopped in seconds, not after the time
    of all the tests it would have run (the parent's limit stays as a backstop)."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
        signal.signal(signal.SIGALRM, lambda *_: os._exit(TIMED_OUT))
        signal.setitimer(signal.ITIMER_REAL, 3 * self.seconds.get(item.nodeid, 10.0) + 2)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


TIMED_OUT = 124


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class _Recorder:
    """Which target functions (and generated accessors) each test calls, and its time."""

    def __init__(self, spans: dict[str, list[tuple[int, int, str]]]) -> None:
        self.spans = spans
        self.cache: dict[Any, str | None] = {}
        self.outside: set[str] = set()            # called at import and collection time
        self.current = self.outside
        self.hits: dict[str, tuple[list[str], float]] = {}

    def _target(self, code: Any) -> str | None:
        name = code.co_filename
        if name.startswith("<nfkit field "):
            return f"{name[13:-1]}|{code.co_name}" if code.co_name in ("get", "set") else None
        best = None
        for start, end, qual in self.spans.get(name, ()):
            if start <= code.co_firstlineno <= end and (best is None or start >= best[0]):
                best = (start, qual)                       # the innermost target
        return best[1] if best else None

    def _trace(self, frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        try:
            t = self.cache[code]
        except KeyError:
            t = self.cache[code] = self._target(code)
        if t is not None:
            self.current.add(t)
        return None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
        self.current = set()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.hits[item.nodeid] = (sorted(self.current), time.perf_counter() - t0)
            self.current = self.outside

    def start(self) -> None:
        import threading
        sys.settrace(self._trace)
        threading.settrace(self._trace)


def _fork(tree: Path, fn: Any, *args: Any, env: dict[str, str] | None = None) -> int:
    """Run ``fn(*args)`` in a child in its own process group, output to tree/mutant.log;
    returns the child's pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setpgid(0, 0)
        os.chdir(tree)
        os.environ.update(env or {})
        fd = os.open(tree / "mutant.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = fn(*args)
    except BaseException:                       # noqa: BLE001 - report, then leave the child
        import traceback
        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, limit: float) -> int | None:
    """The child's exit code (minus the signal number if a signal ended it), or None when
    it ran past ``limit`` seconds (then it and its process group are killed)."""
    deadline = time.monotonic() + limit
    delay = 0.005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _pytest(args: list[str], plugins: list[Any]) -> int:
    import pytest
    return int(pytest.main(["-p", "no:cacheprovider", "-p", "mutation_plugin", "-q",
                            "--hypothesis-seed=0", *args], plugins=plugins))


#: the pseudo-test of the calls made while importing and collecting (e.g. the accessor
#: generator): a mutant there runs every test of the group
AT_IMPORT = "<import and collection>"


def _stats(tree: Path, tests: list[str], spans: dict[str, Any], out: Path) -> int:
    rec = _Recorder(spans)
    rec.start()                           # in the child: its imports are traced too
    code = _pytest(tests, [rec])
    rec.hits[AT_IMPORT] = (sorted(rec.outside), 0.0)
    out.write_text(json.dumps({"exit": code, "hits": rec.hits, "generated": GENERATED}))
    return code


def _generated_sources(tree: Path, out: Path) -> int:
    import nfkit.packets  # noqa: F401 - generating every accessor fills GENERATED
    out.write_text(json.dumps(GENERATED))
    return 0


def status_of(code: int | None) -> str:
    if code is None or code == TIMED_OUT:
        return "timeout"
    if code == 0:
        return "survived"
    if code in (1, 2, 3):            # failed, interrupted (an import-time error), internal error
        return "killed"
    if code < 0:
        return "crashed"             # a signal: the tests noticed (counted as killed)
    return f"error {code}"           # usage error, no tests collected, the harness itself


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tree", type=Path, help="the work tree (a copy of src, tests, examples)")
    ap.add_argument("--file", action="append", default=[], help="a file whose mutmut-skipped functions to mutate")
    ap.add_argument("--whole-file", action="append", default=[], help="a file whose every function to mutate")
    ap.add_argument("--generated", action="store_true", help="mutate the accessor templates")
    ap.add_argument("--test", action="append", default=[], help="the tests to run (pytest arguments)")
    ap.add_argument("--deselect", action="append", default=[], help="a test not to run")
    ap.add_argument("--untraced", action="append", default=[],
                    help="tests for the functions no traced test calls (e.g. run in a subprocess)")
    ap.add_argument("--only", action="append", default=[], help="run only these mutants")
    ap.add_argument("--budget", type=float, default=3600, help="seconds; the rest stay 'not run'")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()

    tree = a.tree.resolve()
    os.environ["NUMBA_DISABLE_JIT"] = "1"
    os.environ["PYTHONPATH"] = str(tree / "src")         # for tests that run nfkit in a subprocess
    sys.dont_write_bytecode = True
    sys.modules.setdefault("mutate_compiled", sys.modules[__name__])
    sys.path.insert(0, str(tree / "src"))
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    files = a.file + a.whole_file
    whole = set(a.whole_file)
    fields_py = tree / GENERATED_FILE
    if a.generated and not fields_py.read_text().endswith(HOOK):
        # first: the mutants of fields.py itself must keep the hook, and restore it
        fields_py.write_text(fields_py.read_text() + HOOK)
    mutants: list[tuple[Mutant, str | None, list[str]]] = []      # mutant, source, accessors
    for path in files:
        mutants += [(m, src, []) for m, src in file_mutants(tree, path, path in whole)]
    original = {path: (tree / path).read_text() for path in files}
    if a.generated:
        src_json = tree / "generated.json"
        if _wait(_fork(tree, _generated_sources, tree, src_json), 300) != 0:
            sys.exit(f"generating the accessors failed: see {tree / 'mutant.log'}")
        mutants += [(m, None, accs) for m, accs in generated_mutants(json.loads(src_json.read_text()))]
    if a.only:
        mutants = [x for x in mutants if x[0].name in set(a.only)]

    # which tests reach which function
    tests = [*a.test, *(f"--deselect={d}" for d in a.deselect)]
    stats = tree / "stats.json"
    t0 = time.monotonic()
    pid = _fork(tree, _stats, tree, tests, spans(tree, files, whole), stats)
    if _wait(pid, 3600) != 0:
        sys.exit(f"the tests fail without mutants: see {tree / 'mutant.log'}")
    hits = json.loads(stats.read_text())["hits"]
    print(f"tests traced in {time.monotonic() - t0:.0f} s; {len(mutants)} mutants", flush=True)
    by_target: dict[str, list[tuple[float, str]]] = {}
    seconds = {test: secs for test, (_, secs) in hits.items()}
    file_time: dict[str, float] = {}
    for test, (targets_hit, secs) in hits.items():
        if test != AT_IMPORT:
            file_time[_file(test)] = file_time.get(_file(test), 0.0) + secs
        for t in targets_hit:
            by_target.setdefault(t, []).append((secs, test))

    # stopped (SIGTERM: the driver's budget): end the running child too, keep the results
    child = {"pid": 0, "stop": False}

    def stop(signum: int, frame: Any) -> None:
        child["stop"] = True
        if child["pid"]:
            os.killpg(child["pid"], signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    start = time.monotonic()
    for i, (m, src, accessors) in enumerate(mutants):
        if time.monotonic() - start > a.budget or child["stop"]:
            break
        # the tests that call the function, fastest first, then the rest of their files (a
        # cache such as lru_cache calls the function only for the first test that needs it)
        first = [t for _, t in sorted({x for k in accessors or [m.function] for x in by_target.get(k, [])})]
        if AT_IMPORT in first:            # code run at import: any test may tell
            first.remove(AT_IMPORT)
            first += [f for f in file_time if f not in first]
        files = sorted({_file(t) for t in first})
        limit = 3 * sum(file_time.get(f, 0.0) for f in files) + 10
        if not first and a.untraced and not accessors:
            files, limit = list(a.untraced), 120
        m.tests = files
        if not files:
            m.status = "no tests"
            continue
        env = {}
        if src is not None:
            (tree / m.path).write_text(src)
        else:
            key = m.function[len("accessor["):-1]
            env[TEMPLATE_ENV] = json.dumps([key, int(m.name.rsplit("_", 1)[1])])
        t1 = time.monotonic()
        try:
            args = ["-x", *files, *(f"--deselect={d}" for d in a.deselect)]
            child["pid"] = _fork(tree, _pytest, args, [_Order(first), _Deadline(seconds)], env=env)
            code = _wait(child["pid"], limit)
        finally:
            child["pid"] = 0
            if src is not None:
                (tree / m.path).write_text(original[m.path])
        if child["stop"]:
            break
        m.status, m.seconds = status_of(code), round(time.monotonic() - t1, 2)
        print(f"[{i + 1}/{len(mutants)}] {m.status:9} {m.name}", flush=True)
    a.out.write_text(json.dumps([asdict(m) for m, _, _ in mutants], indent=1))


if __name__ == "__main__":
    main()
