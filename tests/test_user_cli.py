"""The command as a user meets it (#15): `python -m nfkit` is the `nfkit` command, and the
top-level help shows every command's whole summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nfkit


def nfkit_module(cwd: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "nfkit", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=env)


def test_python_dash_m_nfkit_is_the_command(tmp_path: Path) -> None:
    version = nfkit_module(tmp_path, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"nfkit, version {nfkit.__version__}"
    helped = nfkit_module(tmp_path, "dump", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: nfkit dump "), helped.stdout
    missing = nfkit_module(tmp_path, "dump", "nope.pcap")
    assert missing.returncode != 0 and "Error: " in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("columns", [80, 200])
def test_top_level_help_does_not_truncate_summaries(tmp_path: Path, columns: int) -> None:
    out = nfkit_module(tmp_path, "--help", columns=columns)
    assert out.returncode == 0, out.stderr
    commands = out.stdout.split("Commands:\n", 1)[1]
    assert "..." not in commands, commands
    summaries = dict(re.findall(r"^  (\w+)\s+(.*)$", commands, re.M))
    assert set(summaries) == {"dump", "run"}, commands
    for name, text in summaries.items():
        assert text.endswith("."), (name, text)      # a whole sentence, on one 80-column line
