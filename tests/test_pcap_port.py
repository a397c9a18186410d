"""The net_pcap port and pcap dump as a run uses them (issue #11): a restarted worker
continues its output files and the run's totals match them; dump files are never written
through a planted symlink; replays that cannot make progress end instead of spinning.

The restart test needs CPUs 0 and 1; with fewer it skips, saying so (never under CI=true).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nfkit
from nfkit import Mbuf, Poll
from nfkit.config import RuntimeConfig
from nfkit.multicore import available_cpus
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.pcap import PcapReader, PcapWriter
from nfkit.runtime import Runtime
from nfkit.testing import skips


def cfg(text: str, base: Path) -> RuntimeConfig:
    c = RuntimeConfig.from_toml_text(textwrap.dedent(text))
    c._base_dir = base
    return c


def udp_frame(dport: int) -> bytes:
    m = Mbuf.alloc(nfkit.Mempool(capacity=1))
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.dst_port = dport
    u.reconcile_all()
    return m.to_bytes()


def write_pcap(path: Path, ports: range) -> None:
    with PcapWriter(path) as w:
        for i, d in enumerate(ports):
            w.write(udp_frame(d), 1_000_000_000 + i)


def records(path: Path) -> int:
    """Packets in a capture that must be whole (no damage anywhere)."""
    with PcapReader(path) as r:
        n = sum(1 for _ in r)
        assert r.error is None, r.error
    return n


def _need_two_cpus() -> None:
    skips.need({0, 1} <= available_cpus(), "the restart test needs CPUs 0 and 1")


def test_restart_continues_tx_pcap_and_totals_match_the_files(tmp_path: Path) -> None:
    """A 2-core replay whose worker is SIGKILLed mid-run and restarted: its tx file keeps
    what the first incarnation wrote (before: reopened with "wb", truncated), the files are
    whole, and the run's tx total equals the records in them -- packets the dead worker
    wrote after its last counter update (published every 0.5 s) included."""
    _need_two_cpus()
    write_pcap(tmp_path / "a.pcap", range(1000, 1100))
    write_pcap(tmp_path / "b.pcap", range(2000, 2100))
    rt = Runtime.build(cfg("""
        app_name = "pcaprestart"
        master_core = 0
        duration = 3
        pcap_dump = true
        pcap_dump_dir = "dumps"
        [workers]
        restart = "on-failure"
        max_restarts = 1
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=a.pcap,rx_pcap=b.pcap,infinite_rx=1,tx_pcap=out.pcap"
        cores = [0, 1]
    """, tmp_path))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    killed: list[int] = []

    def kill_worker() -> None:
        if not killed:
            (child,) = multiprocessing.active_children()
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)

    rt.add_periodic_task_to_core(0, kill_worker, 1.2)
    res = rt.execute()
    assert killed and res.reason == "duration" and res.cores[1] == "stopped"
    assert rt.metrics.snapshot().restarts == {1: 1}
    q0, q1 = records(tmp_path / "out-q0.pcap"), records(tmp_path / "out-q1.pcap")
    assert res.ports["eth1"]["tx_packets"] == q0 + q1
    assert q0 > 1000 and q1 > 1000
    for core in (0, 1):                                # dump files: whole after a restart too
        for d in ("rx", "tx"):
            records(tmp_path / "dumps" / f"port-eth1-core{core}-{d}.pcap")


def test_pcap_dump_replaces_a_planted_symlink_without_following_it(tmp_path: Path) -> None:
    write_pcap(tmp_path / "in.pcap", range(10))
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (dumps / "port-eth1-core0-rx.pcap").symlink_to(victim)
    (dumps / "port-eth1-core0-tx.pcap").write_bytes(b"an old capture")
    rt = Runtime.build(cfg("""
        app_name = "dumplink"
        master_core = 0
        stop_when_drained = true
        pcap_dump = true
        pcap_dump_dir = "dumps"
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=in.pcap"
        cores = [0]
    """, tmp_path))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    assert rt.execute().reason == "drained"
    assert victim.read_text() == "precious"
    rx = dumps / "port-eth1-core0-rx.pcap"
    assert not rx.is_symlink() and records(rx) == 10
    assert records(dumps / "port-eth1-core0-tx.pcap") == 10


_REPLAY = """
import nfkit, os, sys
from nfkit.runtime import Runtime
rt = Runtime.build(sys.argv[1])
rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
for f in sys.argv[2:]:
    os.unlink(f)            # gone after the port checked it
res = rt.execute()
print(res.reason, res.ports["eth1"]["rx_packets"], res.ports["eth1"]["rx_errors"])
"""


@pytest.mark.parametrize("case", ["header-only", "files-vanish"])
def test_replay_that_cannot_progress_ends(tmp_path: Path, case: str) -> None:
    """infinite_rx over files with no packets, or files deleted after the port opened:
    the replay ends (before: a receive call that never returned -- not even ``duration``
    stopped it)."""
    PcapWriter(tmp_path / "a.pcap").close()
    PcapWriter(tmp_path / "b.pcap").close()
    if case == "files-vanish":
        write_pcap(tmp_path / "a.pcap", range(5))
        write_pcap(tmp_path / "b.pcap", range(5))
    (tmp_path / "r.toml").write_text(textwrap.dedent("""
        app_name = "replay"
        master_core = 0
        duration = 3
        stop_when_drained = true
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=a.pcap,rx_pcap=b.pcap,infinite_rx=1"
        cores = [0]
    """))
    gone = [str(tmp_path / "a.pcap"), str(tmp_path / "b.pcap")] if case == "files-vanish" else []
    proc = subprocess.run([sys.executable, "-c", _REPLAY, str(tmp_path / "r.toml"), *gone],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reason, rx, errors = proc.stdout.split()
    assert reason == "drained" and rx == "0"
    if case == "files-vanish":
        assert errors == "2" and "No such file" in proc.stderr
    else:
        assert "gave no packets in a whole pass" in proc.stderr


def test_generated_tx_names_replace_a_planted_symlink(tmp_path: Path) -> None:
    """tx_pcap=out.pcap on two queues writes out-q0/out-q1.pcap: names nfkit made up, so
    whatever holds them is replaced (a planted link unlinked, not followed); the name the
    config gives itself is never opened through a link (test_cli checks that)."""
    write_pcap(tmp_path / "a.pcap", range(10))
    write_pcap(tmp_path / "b.pcap", range(10, 30))
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "out-q1.pcap").symlink_to(victim)
    rt = Runtime.build(cfg("""
        app_name = "genlink"
        master_core = 0
        stop_when_drained = true
        [workers]
        mode = "single"
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=a.pcap,rx_pcap=b.pcap,tx_pcap=out.pcap"
        cores = [0, 1]
    """, tmp_path))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    assert rt.execute().reason == "drained"
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out-q1.pcap").is_symlink()
    assert records(tmp_path / "out-q0.pcap") == 10 and records(tmp_path / "out-q1.pcap") == 20


def test_replayed_damage_is_counted_every_pass_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_pcap(tmp_path / "in.pcap", range(10))
    data = (tmp_path / "in.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[:-5])
    rt = Runtime.build(cfg("""
        app_name = "replaydamage"
        master_core = 0
        stop_when_drained = true
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=cut.pcap,loop=50"
        cores = [0]
    """, tmp_path))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    res = rt.execute()
    assert res.reason == "drained"
    assert res.ports["eth1"]["rx_packets"] == 9 * 50 and res.ports["eth1"]["rx_errors"] == 50
    damage = [r for r in caplog.records if "cut.pcap" in r.getMessage()]
    assert len(damage) == 1, [r.getMessage() for r in damage]
