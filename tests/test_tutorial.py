"""docs/tutorial.md (#15) is followed as a reader follows it: in an empty directory, every
``file=NAME`` block is saved under that name and every ``console`` block's ``$`` commands
run in order, their output compared with the lines shown (``...`` stands for any text; a
line of only ``...`` for any lines).  The ``sh`` blocks -- installing, a real interface as
root -- are not run here (tests/test_arp_responder.py runs the latter)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.M | re.S)


def blocks() -> list[tuple[str, str, str]]:
    """``(language, info, body)`` of every fenced block, in order."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(TUTORIAL.read_text())]


def matches(pattern: list[str], lines: list[str]) -> bool:
    """Whether ``lines`` are ``pattern`` (``...`` in a line: any text; a ``...`` line: any
    lines)."""
    if not pattern:
        return not lines
    head = pattern[0]
    if head == "...":
        return any(matches(pattern[1:], lines[i:]) for i in range(len(lines) + 1))
    rx = ".*".join(re.escape(part) for part in head.split("..."))
    return bool(lines) and re.fullmatch(rx, lines[0]) is not None and matches(pattern[1:], lines[1:])


def console_steps(body: str) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONUNBUFFERED": "1", "COLUMNS": "80", "TZ": "UTC"}
    env.pop("PYTEST_ADDOPTS", None)
    ran = written = 0
    for lang, info, body in blocks():
        if info.startswith("file="):
            (tmp_path / info[len("file="):]).write_text(body)
            written += 1
        elif lang == "console":
            for cmd, want in console_steps(body):
                proc = subprocess.run(["bash", "-c", cmd + " 2>&1"], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=120)
                got = proc.stdout.splitlines()
                assert proc.returncode == 0, (cmd, proc.stdout)
                assert matches(want, got), f"$ {cmd}\nwanted:\n" + "\n".join(want) + \
                    "\ngot:\n" + proc.stdout
                ran += 1
        else:
            assert lang in ("sh", "python", "toml"), f"a {lang} block neither run nor skipped"
    assert written == 4 and ran == 5, (written, ran)


def test_the_matcher() -> None:
    assert matches(["a ... c", "..."], ["a b c", "x", "y"])
    assert not matches(["a ... c"], ["a b d"])
    assert not matches(["x"], ["x", "y"])
    assert matches(["...", "z"], ["x", "z"])
