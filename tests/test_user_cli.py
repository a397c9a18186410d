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


# -- dump's timestamps, against tcpdump's on the same file ----------------------------------

#: ns since the epoch: the same second, a sub-microsecond part (cut, not rounded), seconds
#: and hours later, across midnight UTC and a date change in Asia/Kolkata (+05:30)
STAMPS = [1_700_000_000_000_000_000, 1_700_000_000_001_234_567, 1_700_000_003_500_000_999,
          1_700_000_000_000_000_000, 1_700_020_000_999_999_999, 1_700_050_000_000_000_000]


def _stamped_pcap(path: Path, nano: bool) -> Path:
    from nfkit import Mbuf
    from nfkit.packets import Ethernet, Ipv4, Udp
    from nfkit.pcap import PcapWriter
    with PcapWriter(path, nanosecond=nano) as w:
        for ts in STAMPS:
            m = Mbuf.alloc()
            try:
                ip = m.push(Ethernet).push(Ipv4)
                ip.src, ip.dst = "10.0.0.1", "10.0.0.2"
                ip.push(Udp)
                w.write(m, ts)
            finally:
                m.free()
    return path


@pytest.mark.parametrize("nano", [False, True], ids=["us-pcap", "ns-pcap"])
@pytest.mark.parametrize("flags", [[], ["-t"], ["-tt"], ["-ttt"], ["-tttt"], ["-ttttt"],
                                   ["-tt", "--time-stamp-precision", "nano"],
                                   ["--time-stamp-precision=nano"], ["-ttt", "--time-stamp-precision=nano"]])
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_dump_timestamps_are_tcpdumps(tmp_path: Path, nano: bool, flags: list[str], tz: str) -> None:
    from nfkit.testing.skips import need_tool
    tcpdump = need_tool("tcpdump")
    path = _stamped_pcap(tmp_path / "t.pcap", nano)
    env = {**os.environ, "TZ": tz}
    ours = subprocess.run([sys.executable, "-m", "nfkit", "dump", "t.pcap", *flags], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run([tcpdump, "-nn", "-r", "t.pcap", *flags], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=env)
    assert theirs.returncode == 0, theirs.stderr
    width = theirs.stdout.splitlines()[0].index("IP ")         # the column, its spaces too
    want = [line[:width] for line in theirs.stdout.splitlines()]
    got = [line[:width] for line in ours.stdout.splitlines()]
    assert got == want
    rest = {line[width:] for line in ours.stdout.splitlines()}     # the packets are alike
    assert len(rest) == 1 and rest.pop().startswith("00:00:00:00:00:00 > "), ours.stdout


def test_dump_deltas_beyond_a_day_keep_their_hours(tmp_path: Path) -> None:
    """tcpdump's -ttt wraps a delta at 24 hours (25 h shows as 01:00:00); nfkit keeps 25."""
    from nfkit.cli import Timestamps
    stamp = Timestamps(3)
    assert [stamp(ts) for ts in (0, 25 * 3600 * 10**9 + 5000, 25 * 3600 * 10**9)] == [
        " 00:00:00.000000 ", " 25:00:00.000005 ", "-00:00:00.000005 "]
    assert Timestamps(2, nano=True)(1_700_000_000_000_000_123) == "1700000000.000000123 "
    assert Timestamps(1)(5) == ""


def test_dump_rejects_six_ts(tmp_path: Path) -> None:
    _stamped_pcap(tmp_path / "t.pcap", False)
    proc = nfkit_module(tmp_path, "dump", "t.pcap", "-tttttt")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "-t" in proc.stderr
