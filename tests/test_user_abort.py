"""An aborting stage is located (#15): the log names the user's file:line (the innermost frame
of the user's code, not nfkit's) once per error kind, the traceback at debug level; `nfkit run`
warns when most packets aborted and, with --fail-on-abort / fail_on_abort, exits non-zero."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from doubles import ListRx, ListTx
from nfkit import Mbuf, Mempool
from nfkit.batch import Poll
from nfkit.packets import Ethernet, Ipv4, Ipv6, Udp
from nfkit.pcap import PcapWriter

HERE = Path(__file__).name


def udp4(pool: Mempool, dport: int) -> Mbuf:
    m = Mbuf.alloc(pool)
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.dst_port = dport
    u.reconcile_all()
    return m


def _helper(port: int) -> None:
    raise ValueError(f"bad packet {port}")        # RAISE_LINE


def check(m: Mbuf) -> Mbuf:
    _helper(m.parse(Ethernet).parse(Ipv4).parse(Udp).dst_port)
    return m


def parse_v6(m: Mbuf) -> Mbuf:
    m.parse(Ethernet).parse(Ipv6)                  # PARSE_LINE: raises inside nfkit
    return m


def _line(marker: str) -> int:
    return next(i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                if line.rstrip().endswith(marker))


def _run(pool: Mempool, stage: object, n: int = 3) -> list[logging.LogRecord]:
    rx, tx = ListRx([udp4(pool, 1000 + i) for i in range(n)]), ListTx()
    pl = Poll(rx).map(stage).send(tx)  # type: ignore[arg-type]
    assert pl.run_once() == n
    assert pl.stats.abort == n and pool.in_use == 0
    return []


def test_abort_log_names_the_users_file_and_line(pool: Mempool,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        _run(pool, check)
    lines = [r.getMessage() for r in caplog.records if "aborted" in r.getMessage()]
    assert len(lines) == 1, lines                  # once per error kind
    assert "map(check) aborted a packet: ValueError: bad packet 1000" in lines[0]
    # the innermost frame of the user's code: the helper that raised
    assert f"{HERE}:{_line('# RAISE_LINE')} in _helper" in lines[0], lines[0]
    assert "Traceback" not in caplog.text          # not at warning level


def test_abort_inside_nfkit_names_the_users_call(pool: Mempool,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The exception is raised in nfkit's parse: the location is the user's line calling it."""
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        _run(pool, parse_v6)
    lines = [r.getMessage() for r in caplog.records if "aborted" in r.getMessage()]
    assert len(lines) == 1 and "ProtocolMismatch" in lines[0], lines
    assert f"{HERE}:{_line('# PARSE_LINE: raises inside nfkit')} in parse_v6" in lines[0], lines[0]
    assert "nfkit/packets" not in lines[0]


def test_abort_traceback_at_debug_level_once_per_kind(pool: Mempool,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "nfkit.batch"):
        _run(pool, check)
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(tracebacks) == 1, caplog.text
    assert "Traceback (most recent call last)" in caplog.text
    assert f'{HERE}", line {_line("# RAISE_LINE")}, in _helper' in caplog.text


# -- nfkit run ------------------------------------------------------------------------------

APP = '''\
import nfkit
from nfkit.packets import Ethernet, Ipv4, Udp

def check(m):
    if m.parse(Ethernet).parse(Ipv4).parse(Udp).dst_port != 7:
        raise ValueError("bad packet")
    return m

def main(runtime):
    runtime.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).map(check).send(q))
'''

CONFIG = '''\
app_name = "aborts"
master_core = 0
stop_when_drained = true
{extra}
[[ports]]
name = "eth1"
device = "net_pcap0"
args = "rx_pcap=in.pcap,tx_pcap=out.pcap"
cores = [0]
'''


@pytest.fixture
def work(tmp_path: Path, pool: Mempool) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "run.toml").write_text(CONFIG.format(extra=""))
    (tmp_path / "strict.toml").write_text(CONFIG.format(extra="fail_on_abort = true"))
    ms = [udp4(pool, port) for port in (7, 9, 9, 9)]    # 3 of 4 abort
    with PcapWriter(tmp_path / "in.pcap") as w:
        for i, m in enumerate(ms):
            w.write(m, i * 1000)
    Mbuf.free_bulk(ms)
    return tmp_path


def nfkit_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nfkit.cli", "run", "app.py", "--no-status",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_run_logs_location_and_warns_when_most_packets_aborted(work: Path) -> None:
    proc = nfkit_run(work, "-c", "run.toml")
    assert proc.returncode == 0, proc.stderr
    assert "map(check) aborted a packet: ValueError: bad packet" in proc.stderr
    assert f"at {work / 'app.py'}:6 in check" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "aborted 3" in proc.stdout
    assert "warning: pipeline default#0 aborted 3 of 4 packets" in proc.stderr, proc.stderr


def test_run_debug_level_logs_the_traceback(work: Path) -> None:
    proc = nfkit_run(work, "-c", "run.toml", "--log-level", "debug")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("Traceback (most recent call last)") == 1, proc.stderr
    assert f'File "{work / "app.py"}", line 6, in check' in proc.stderr


def test_run_fail_on_abort_exits_non_zero(work: Path) -> None:
    proc = nfkit_run(work, "-c", "run.toml", "--fail-on-abort")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "aborted 3" in proc.stdout                # the summary is still printed
    assert "Error: 3 packet(s) aborted (--fail-on-abort)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    strict = nfkit_run(work, "-c", "strict.toml")     # the config key does the same
    assert strict.returncode == 1 and "aborted (fail_on_abort)" in strict.stderr, strict.stderr
    # and the command line can turn the config's key off
    assert nfkit_run(work, "-c", "strict.toml", "--no-fail-on-abort").returncode == 0
