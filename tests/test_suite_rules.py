"""Rules of the test suite itself.

- The skip rule: a test that needs something of the machine skips without it, but fails
  under CI=true (nfkit.testing.skips), and no test skips any other way.
- Hypothesis example counts come from the profile (tests/conftest.py: "ci" under CI=true,
  "dev" otherwise); a test that hard-codes ``max_examples`` would override CI's count."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from nfkit.testing import skips

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "src" / "nfkit" / "testing" / "skips.py"


def test_unavailable_skips_with_the_reason_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"tcpdump is not installed \(apt-get"):
        skips.unavailable("tcpdump is not installed", "apt-get install tcpdump")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        skips.need(False, "no numba")
    skips.need(True, "never raised")


def test_unavailable_fails_under_ci_with_reason_and_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception,
                       match=r"CI=true but tcpdump is not installed \(apt-get install tcpdump\)"):
        skips.unavailable("tcpdump is not installed", "apt-get install tcpdump")
    with pytest.raises(pytest.fail.Exception, match=r"nfkprobe-nosuch is not installed"):
        skips.need_tool("nfkprobe-nosuch")
    with pytest.raises(pytest.fail.Exception, match="the whole module"):
        skips.unavailable("the whole module", module=True)


def test_need_tool_finds_root_tools_outside_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    assert skips.need_tool("ip").endswith("/ip")          # iproute2 lives in /usr/sbin or /sbin


def _direct_skips(path: Path) -> list[str]:
    """``pytest.skip``, ``pytest.importorskip``, ``pytest.mark.skip``/``skipif``, ``from
    pytest import skip`` and reads of the CI variable in one file, as 'file:line what'."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Attribute) and node.attr in ("skip", "skipif", "importorskip"):
            what = f".{node.attr}"
        elif isinstance(node, ast.ImportFrom) and node.module == "pytest" and any(
                a.name in ("skip", "importorskip") for a in node.names):
            what = "from pytest import skip"
        elif isinstance(node, ast.Constant) and node.value == "CI":
            what = "reads CI (use nfkit.testing.skips.in_ci)"
        if what:
            found.append(f"{path.name}:{node.lineno} {what}")
    return found


def test_no_test_skips_except_through_the_helper() -> None:
    files = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "src" / "nfkit" / "testing").glob("*.py"))
    assert len(files) > 30
    found = [hit for f in files if f != HELPER and f != Path(__file__) for hit in _direct_skips(f)]
    assert found == []


def test_the_check_sees_every_kind_of_direct_skip(tmp_path: Path) -> None:
    bad = tmp_path / "test_probe.py"
    bad.write_text("import os, pytest\nfrom pytest import skip\n"
                   "@pytest.mark.skipif(True, reason='x')\ndef test_a():\n    pytest.skip('y')\n"
                   "np = pytest.importorskip('numpy')\nCI = os.environ.get('CI')\n")
    assert sorted(_direct_skips(bad)) == [
        "test_probe.py:2 from pytest import skip", "test_probe.py:3 .skipif",
        "test_probe.py:5 .skip", "test_probe.py:6 .importorskip",
        "test_probe.py:7 reads CI (use nfkit.testing.skips.in_ci)"]


def test_helper_and_pytest_plugin_import_without_hypothesis() -> None:
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import nfkit.testing.skips, nfkit.testing.pytest_plugin\nprint('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


def test_no_test_hard_codes_the_number_of_examples() -> None:
    found = []
    for f in sorted((ROOT / "tests").rglob("*.py")):
        if f.name == "conftest.py":
            continue                  # where the profiles are registered
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.keyword) and node.arg == "max_examples":
                found.append(f"{f.name}:{node.value.lineno}")
    assert found == []
