"""Mutation testing of the modules where a silent error corrupts packets (``make mutation``).

Two engines, one mutant set per module (see docs/testing.md, "Mutation testing"):

- mutmut 3 mutates every plain function and method;
- tools/mutate_compiled.py mutates, with mutmut's own operators, what mutmut leaves out:
  decorated functions (numba kernels and helpers, ``lru_cache``, properties), functions
  nested in a module-level ``if``, modules loaded by path (examples/nat64), and the
  templates of the generated field accessors.

Each group of modules runs with the tests that exercise it.  The score of a module is
killed / (mutants - documented equivalents), where a timeout counts as killed (as mutmut
counts it); the equivalents are in tools/mutation_equivalents.toml, each with its diff
(an entry whose diff no longer matches the mutant is reported and not counted).  The
table goes into docs/testing.md between its markers, the survivors into
docs/mutation-survivors.md.

    python tools/mutation.py                  # every group (about two hours on 2 cores)
    python tools/mutation.py lpm acl          # some groups (the other rows stay)
    python tools/mutation.py hash --check 90  # fail when a module scores below 90 %
    python tools/mutation.py lpm --rerun      # only the mutants that survived last time

Work files live in mutants/ (git-ignored): mutmut keeps its results there and reuses
them for functions that did not change; ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants"
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.toml"
DOC = ROOT / "docs" / "testing.md"
SURVIVORS = ROOT / "docs" / "mutation-survivors.md"
BEGIN, END = "<!-- mutation-table:begin -->", "<!-- mutation-table:end -->"
KILLED = {"killed", "timeout", "crashed", "segfault", "caught by type check"}


@dataclass(frozen=True)
class Group:
    name: str
    tests: tuple[str, ...]
    mutmut: tuple[str, ...] = ()        # files (globs) mutmut mutates
    compiled: tuple[str, ...] = ()      # files whose mutmut-skipped functions the engine mutates
    whole: tuple[str, ...] = ()         # files the engine mutates entirely (loaded by path)
    generated: bool = False             # the accessor templates of packets/fields.py
    deselect: tuple[str, ...] = ()      # tests that cannot pass with NUMBA_DISABLE_JIT
    untraced: tuple[str, ...] = ()      # tests (run in a subprocess) for untraced functions


PACKET_TESTS = ("tests/test_packets_core.py", "tests/test_oracle_scapy.py", "tests/test_tunnels.py",
                "tests/test_icmp.py", "tests/test_ipv6ext.py", "tests/test_ndp.py", "tests/test_arp.py",
                "tests/test_roundtrip.py", "tests/test_fuzz.py", "tests/test_decrement_ttl.py",
                "tests/test_reconcile_edges.py", "tests/test_packet_edits.py")
PACKET_MODULES = ("arp", "base", "constants", "dissect", "ethernet", "fields", "gre", "gtpu", "icmpv4",
                  "icmpv6", "ip", "ipv4", "ipv6", "ipv6ext", "ndp", "tcp", "udp", "vxlan")
NUMBA_ONLY = ("tests/test_vector_jit.py::test_numba_is_used_when_installed",)

GROUPS = {g.name: g for g in (
    Group("checksum", ("tests/test_checksum.py",) + PACKET_TESTS[:4], mutmut=("src/nfkit/checksum.py",)),
    # fields.py generates the accessors at import, before mutmut switches a mutant on (its
    # 700 mutmut mutants all "survived"): the engine mutates the file and imports it fresh
    Group("packets", PACKET_TESTS,
          mutmut=tuple(f"src/nfkit/packets/{m}.py" for m in PACKET_MODULES if m != "fields"),
          compiled=tuple(f"src/nfkit/packets/{m}.py" for m in PACKET_MODULES if m != "fields"),
          whole=("src/nfkit/packets/fields.py",), generated=True),
    Group("pcap", ("tests/test_pcap.py",), mutmut=("src/nfkit/pcap.py",)),
    Group("view", ("tests/test_vector_view.py", "tests/test_vector_classify.py",
                   "tests/test_vector_columns.py", "tests/test_vector_jit.py"),
          mutmut=("src/nfkit/vector/view.py",),
          compiled=("src/nfkit/vector/view.py", "src/nfkit/vector/_classify.py"), deselect=NUMBA_ONLY),
    Group("lpm", ("tests/test_vector_lpm.py", "tests/test_vector_jit.py"),
          mutmut=("src/nfkit/vector/lpm.py",), compiled=("src/nfkit/vector/lpm.py",), deselect=NUMBA_ONLY),
    Group("acl", ("tests/test_vector_acl.py", "tests/test_vector_jit.py", "tests/test_nat64_kernel.py"),
          mutmut=("src/nfkit/vector/acl.py", "src/nfkit/vector/jit.py"),
          compiled=("src/nfkit/vector/acl.py", "src/nfkit/vector/jit.py"), deselect=NUMBA_ONLY),
    Group("hash", ("tests/test_vector_hash.py",), mutmut=("src/nfkit/vector/hash.py",),
          compiled=("src/nfkit/vector/hash.py",)),
    Group("nat64", ("tests/test_nat64_kernel.py",), whole=("examples/nat64/nat64.py",),
          untraced=("tests/test_examples.py::test_nat64_translates_both_ways",)),
)}
QUICK = ("hash",)                       # small enough for every CI run (about 2 minutes)


@dataclass
class Result:
    name: str
    module: str                         # the file, relative to the repository
    engine: str                         # mutmut, compiled or generated
    status: str
    diff: str = ""


# -- running the engines ----------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI", "MUTANT_UNDER_TEST")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = str(ROOT / "tools")              # mutation_plugin
    return env


def _run(cmd: list[str], cwd: Path, log: Path, budget: float) -> None:
    """Run ``cmd`` in its own process group, output to ``log``; stop it after ``budget`` s."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=_env(),
                                start_new_session=True)
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            print(f"    stopped after {budget:.0f} s: the mutants not run yet stay 'not checked'")


def _toml_list(xs: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(xs))


#: mutmut's command line, leaving __init_subclass__ alone: its trampoline runs while the
#: class is still being made (Packet.__init_subclass__ makes a read-only subclass, whose own
#: __init_subclass__ call found the trampoline's table still empty: KeyError '_mutmut_orig');
#: tools/mutate_compiled.py mutates those methods instead.
MUTMUT = ("from mutmut.mutation import file_mutation\n"
          "file_mutation.NEVER_MUTATE_FUNCTION_NAMES.add('__init_subclass__')\n"
          "from mutmut.__main__ import cli\ncli()")


def run_mutmut(g: Group, budget: float, names: list[str] | None) -> list[Result]:
    work = WORK / g.name / "mutmut"
    work.mkdir(parents=True, exist_ok=True)
    for d in ("src", "tests", "examples", "bench"):
        # a link left by another checkout (mutants/ copied or the tree moved) would mutate
        # and test that checkout: point every link at this tree
        link = work / d
        if link.is_symlink() and link.readlink() != ROOT / d:
            link.unlink()
        if not link.exists():
            link.symlink_to(ROOT / d)
    (work / "pyproject.toml").write_text(f"""\
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.mutmut]
source_paths = ["src/nfkit"]
only_mutate = {_toml_list(g.mutmut)}
also_copy = ["examples", "bench"]
pytest_add_cli_args_test_selection = {_toml_list(g.tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "mutation_plugin", "-q", "--hypothesis-seed=0"]
use_git_change_detection = false
# CPU-time limit per mutant: (tests' time + 1 s) x 3 x 2 (mutmut's default x 15 x 2 let an
# endless loop in a route-table mutant run for 6 minutes)
timeout_multiplier = 3.0
""")
    if names == [] or not g.mutmut:
        return read_mutmut(g)
    _run([sys.executable, "-c", MUTMUT, "run", "--max-children", "1", *(names or [])], work,
         WORK / g.name / "mutmut.log", budget)
    return read_mutmut(g)


def read_mutmut(g: Group) -> list[Result]:
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    out: list[Result] = []
    base = WORK / g.name / "mutmut" / "mutants"
    for meta in sorted(base.glob("src/nfkit/**/*.py.meta")):
        module = str(meta.relative_to(base))[:-5]
        if not any(fnmatch.fnmatch(module, p) for p in g.mutmut):
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            status = status_by_exit_code[code]
            diff = ""
            if status not in KILLED:
                try:
                    diff = "\n".join(x for x in get_diff_for_mutant(name, path=base / module).splitlines()
                                     if x[:1] in "+-" and x[:3] not in ("+++", "---"))
                except Exception as exc:  # noqa: BLE001 - a diff is a nicety
                    diff = f"(no diff: {exc})"
            out.append(Result(name, module, "mutmut", status, diff))
    return out


def run_compiled(g: Group, budget: float, only: list[str] | None) -> list[Result]:
    files = (*g.compiled, *g.whole)
    if not files and not g.generated:
        return []
    saved = WORK / g.name / "compiled.json"
    old = {m["name"]: m for m in json.loads(saved.read_text())} if saved.exists() else {}
    if only == []:
        return _compiled_results(list(old.values()))
    tree = WORK / g.name / "compiled"
    shutil.rmtree(tree, ignore_errors=True)
    for d in ("src", "tests", "examples", "bench"):
        shutil.copytree(ROOT / d, tree / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "out"))
    (tree / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    out = WORK / g.name / "compiled.new.json"
    cmd = [sys.executable, str(ROOT / "tools" / "mutate_compiled.py"), str(tree), "--out", str(out),
           "--budget", str(budget)]
    cmd += [f"--file={f}" for f in g.compiled] + [f"--whole-file={f}" for f in g.whole]
    cmd += [f"--test={t}" for t in g.tests] + [f"--deselect={t}" for t in g.deselect]
    cmd += [f"--untraced={t}" for t in g.untraced] + [f"--only={n}" for n in only or []]
    cmd += ["--generated"] if g.generated else []
    _run(cmd, ROOT, WORK / g.name / "compiled.log", budget + 600)
    if not out.exists():
        sys.exit(f"{g.name}: the compiled-function engine failed, see {WORK / g.name / 'compiled.log'}")
    new = {m["name"]: m for m in json.loads(out.read_text())}
    merged = {**old, **new} if only else new
    saved.write_text(json.dumps(list(merged.values()), indent=1))
    return _compiled_results(list(merged.values()))


def _compiled_results(ms: list[dict]) -> list[Result]:
    return [Result(m["name"], m["path"], "generated" if "__generated_" in m["name"] else "compiled",
                   m["status"], m["diff"]) for m in ms]


# -- scores ----------------------------------------------------------------------------------------

@dataclass
class Equivalents:
    """tools/mutation_equivalents.toml: ``[mutant."name"]`` entries (the mutant's diff and
    why it changes nothing observable) and ``[rule.name]`` entries (a one-line change from
    ``from`` to ``to`` on a line matching ``context``, equivalent wherever it occurs)."""

    mutants: dict[str, dict[str, str]]
    rules: dict[str, dict[str, str]]

    @classmethod
    def load(cls) -> "Equivalents":
        data = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
        return cls(data.get("mutant", {}), data.get("rule", {}))

    def why(self, r: Result) -> str | None:
        """Why ``r`` is equivalent, or None; raises KeyError when its entry is stale."""
        e = self.mutants.get(r.name)
        if e is not None:
            if _norm(e["diff"]) != _norm(r.diff):
                raise KeyError(r.name)
            return e["why"]
        lines = r.diff.splitlines()
        if len(lines) == 2 and lines[0][:1] == "-" and lines[1][:1] == "+":
            old, new = lines[0][1:], lines[1][1:]
            for rule in self.rules.values():
                if re.search(rule["context"], old) and new in _replacements(old, rule["from"], rule["to"]):
                    return rule["why"]
        return None


def document_equivalents(groups: list[Group], why: dict[str, str]) -> None:
    """Append ``[mutant."name"]`` entries, with the diffs of the last run, to the file."""
    results = {r.name: r for g in groups for r in read_mutmut(g) + run_compiled(g, 0, [])}
    missing = sorted(set(why) - set(results))
    if missing:
        sys.exit(f"no such mutant in the last run of {[g.name for g in groups]}: {missing}")
    with EQUIVALENTS.open("a") as out:
        for name, reason in why.items():
            diff = results[name].diff           # a TOML literal string: taken as it is
            out.write(f'\n[mutant."{name}"]\ndiff = \'\'\'\n{diff}\n\'\'\'\nwhy = {json.dumps(reason, ensure_ascii=False)}\n')


def _replacements(line: str, old: str, new: str) -> set[str]:
    """``line`` with one occurrence of ``old`` replaced by ``new``, for each occurrence."""
    out, i = set(), line.find(old)
    while i >= 0:
        out.add(line[:i] + new + line[i + len(old):])
        i = line.find(old, i + 1)
    return out


@dataclass
class Score:
    module: str
    engines: dict[str, int] = field(default_factory=dict)
    killed: int = 0
    timeout: int = 0
    survived: int = 0
    no_tests: int = 0
    not_run: int = 0
    equivalent: int = 0

    @property
    def total(self) -> int:
        return sum(self.engines.values())

    @property
    def score(self) -> float:
        n = self.total - self.equivalent
        return 100.0 * self.killed / n if n else 100.0


def score(results: list[Result], eq: Equivalents) -> tuple[dict[str, Score], list[Result], list[str]]:
    """Per-module scores, the undocumented survivors, and stale equivalence entries."""
    scores: dict[str, Score] = {}
    survivors, stale = [], []
    for r in results:
        s = scores.setdefault(r.module, Score(r.module))
        s.engines[r.engine] = s.engines.get(r.engine, 0) + 1
        if r.status in KILLED:
            s.killed += 1
            s.timeout += r.status == "timeout"
            continue
        if r.status == "survived":
            try:
                if eq.why(r) is not None:
                    s.equivalent += 1
                    continue
            except KeyError:
                stale.append(r.name)
            s.survived += 1
        elif r.status == "no tests":
            s.no_tests += 1
        else:
            s.not_run += 1
        survivors.append(r)
    return scores, survivors, stale


def _norm(diff: str) -> str:
    return "\n".join(" ".join(line.split()) for line in diff.strip().splitlines())


def table_rows(scores: dict[str, Score]) -> dict[str, str]:
    rows = {}
    for m, s in sorted(scores.items()):
        engines = ", ".join(f"{n} {e}" for e, n in sorted(s.engines.items()))
        # a score over mutants of which some never ran is no score: say how many are missing
        ran = s.total - s.equivalent - s.not_run
        score = f"**{s.score:.1f} %**" if not s.not_run else \
            f"{100.0 * s.killed / ran:.1f} % of the {ran} run" if ran > 0 else "not run"
        rows[m] = (f"| `{m}` | {s.total} ({engines}) | {s.killed} | {s.timeout} | {s.survived} | "
                   f"{s.no_tests} | {s.not_run} | {s.equivalent} | {score} |")
    return rows


HEADER = ("| module | mutants (engine) | killed | of which timeouts | survived | no test reaches it "
          "| not run | equivalent | score |\n|---|---|---|---|---|---|---|---|---|")


def write_table(rows: dict[str, str]) -> None:
    """Replace the rows of these modules in docs/testing.md, keeping the others."""
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    old = {line.split("|")[1].strip().strip("`"): line for line in body.splitlines()
           if line.startswith("| `")}
    old.update(rows)
    DOC.write_text(f"{head}{BEGIN}\n{HEADER}\n" + "\n".join(old[m] for m in sorted(old))
                   + f"\n\nLast run: {time.strftime('%Y-%m-%d')} (python tools/mutation.py).\n{END}{tail}")


def write_survivors(survivors_by_group: dict[str, list[Result]]) -> None:
    """docs/mutation-survivors.md: one section per group run, the others kept."""
    sections: dict[str, str] = {}
    if SURVIVORS.exists():
        for part in SURVIVORS.read_text().split("\n## ")[1:]:
            sections[part.split("\n", 1)[0].strip()] = "## " + part.rstrip() + "\n"
    for group, rs in survivors_by_group.items():
        lines = [f"## {group}\n"]
        if not rs:
            lines.append("No survivor.\n")
        for r in sorted(rs, key=lambda r: (r.module, r.name)):
            lines.append(f"- `{r.name}` ({r.status})\n\n  ```diff\n"
                         + "\n".join("  " + x for x in r.diff.splitlines()) + "\n  ```\n")
        sections[group] = "\n".join(lines)
    SURVIVORS.write_text(
        "# Surviving mutants\n\nWritten by `python tools/mutation.py` (see docs/testing.md, "
        "\"Mutation testing\"): the mutants no test kills and that are not documented as "
        "equivalent in tools/mutation_equivalents.toml, per group.  Each is a missing test or an "
        "equivalent mutant to document.\n\n"
        + "\n".join(sections[k] for k in sorted(sections)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("groups", nargs="*", help=f"groups to run (default: all): {', '.join(GROUPS)}")
    ap.add_argument("--quick", action="store_true", help=f"the CI subset: {', '.join(QUICK)}")
    ap.add_argument("--budget", type=float, default=3600, help="seconds per engine and group")
    ap.add_argument("--rerun", action="store_true", help="run only the mutants that were not killed")
    ap.add_argument("--report-only", action="store_true", help="run nothing: rewrite the reports")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results")
    ap.add_argument("--check", type=float, metavar="PERCENT", help="exit 1 if a module scores lower")
    ap.add_argument("--no-docs", action="store_true", help="leave docs/ alone")
    ap.add_argument("--engine", choices=("mutmut", "compiled"),
                    help="run only this engine (the other one's last results are read)")
    ap.add_argument("--equivalent", nargs=2, action="append", default=[], metavar=("MUTANT", "WHY"),
                    help="document a surviving mutant of the groups as equivalent (with its diff)")
    a = ap.parse_args()
    names = list(QUICK) if a.quick else a.groups or list(GROUPS)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        sys.exit(f"unknown group(s) {unknown}; groups: {', '.join(GROUPS)}")
    eq = Equivalents.load()
    if a.equivalent:
        document_equivalents([GROUPS[n] for n in names], dict(a.equivalent))
        return
    all_scores: dict[str, Score] = {}
    survivors_by_group: dict[str, list[Result]] = {}
    for n in names:
        g = GROUPS[n]
        if a.fresh:
            shutil.rmtree(WORK / n, ignore_errors=True)
        (WORK / n).mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        print(f"== {n}", flush=True)
        if a.report_only:
            results = read_mutmut(g) + run_compiled(g, 0, [])
        elif a.rerun:       # mutmut reruns named mutants; the engine merges its new results
            again = [r.name for r in score(read_mutmut(g) + run_compiled(g, 0, []), eq)[1]]
            results = run_mutmut(g, a.budget, [x for x in again if "__mutmut_" in x]) \
                + run_compiled(g, a.budget, [x for x in again if "__mutmut_" not in x])
        else:
            results = run_mutmut(g, a.budget, None if a.engine != "compiled" else []) \
                + run_compiled(g, a.budget, None if a.engine != "mutmut" else [])
        scores, survivors, stale = score(results, eq)
        for s in stale:
            print(f"    {s}: its entry in {EQUIVALENTS.name} no longer matches the mutant")
        for s in scores.values():
            print(f"    {s.module}: {s.killed}/{s.total - s.equivalent} killed = {s.score:.1f} % "
                  f"({s.survived} survived, {s.no_tests} reached by no test, {s.not_run} not run, "
                  f"{s.equivalent} equivalent)")
        print(f"    {time.monotonic() - t0:.0f} s", flush=True)
        all_scores.update(scores)
        survivors_by_group[n] = survivors
    if not a.no_docs:
        write_table(table_rows(all_scores))
        write_survivors(survivors_by_group)
    if a.check is not None:
        low = [s for s in all_scores.values() if s.score < a.check]
        for s in low:
            print(f"{s.module}: mutation score {s.score:.1f} % < {a.check} %")
        sys.exit(1 if low else 0)


if __name__ == "__main__":
    main()
