"""The multi-core runtime (nfkit.multicore): worker processes per core, the start-up
handshake, shutdown, failure detection, metrics summed over workers, pcap dump.

The machine these run on needs two CPUs (cores 0 and 1); with fewer the tests skip, saying
so (never under CI=true, where they must run).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from scapy.layers.inet import UDP  # noqa: F401  (registers the layers rdpcap decodes)
from scapy.utils import rdpcap

import nfkit
from nfkit import Mbuf, Poll
from nfkit.config import RuntimeConfig
from nfkit.multicore import WorkerError, available_cpus, shared_array
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.pcap import PcapWriter
from nfkit.runtime import CoreError, RunError, Runtime
from nfkit.testing.skips import need

need({0, 1} <= available_cpus(), "the multi-core tests need CPUs 0 and 1",
     "a machine (or cpuset) with two CPUs", module=True)


def cfg(text: str, base: Path | None = None) -> RuntimeConfig:
    c = RuntimeConfig.from_toml_text(textwrap.dedent(text))
    if base is not None:
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


def dports(path: Path) -> list[int]:
    """UDP destination ports of every packet in ``path`` (nfkit's reader: captures of a
    busy run are too long for Scapy; the small ones are checked with Scapy as well)."""
    from nfkit.pcap import PcapReader
    pool = nfkit.Mempool(capacity=4096, name="check")
    out: list[int] = []
    with PcapReader(path) as r:
        while not r.at_end:
            slots = r.read_into(pool, 4096)
            for s in slots.tolist():
                out.append(Mbuf(pool, s).parse(Ethernet).parse(Ipv4).parse(Udp).dst_port)
            pool.free_slots(slots)
        assert r.error is None, r.error
    return out


def scapy_dports(path: Path) -> list[int]:
    return [int(p["UDP"].dport) for p in rdpcap(str(path))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of http://127.0.0.1:port/metrics as {(name, labels): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r'(\w+)\{(.*)\} (\S+)', line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m[2])))
            out[(m[1], labels)] = float(m[3])
    return out


def total(samples: dict, name: str, **want: str) -> float:
    return sum(v for (n, labels), v in samples.items()
               if n == name and all(dict(labels).get(k) == x for k, x in want.items()))


def no_children_left() -> bool:
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


TWO_QUEUES = """
app_name = "mc"
master_core = 0
duration = 20
pcap_dump = true
pcap_dump_dir = "dump"
[metrics]
listen = "127.0.0.1:{port}"
interval = 0.05
[[ports]]
name = "eth1"
device = "net_pcap0"
args = "rx_pcap=a.pcap,rx_pcap=b.pcap,tx_pcap=out.pcap"
cores = [0, 1]
"""


def test_two_cores_two_queues_every_packet_once_and_prometheus_sums(tmp_path: Path) -> None:
    """Two queues of one port on cores 0 (master) and 1 (worker): every packet is handled
    exactly once, the endpoint sums both processes, the worker is pinned and named, the
    installers are closures (inherited by fork), and shared memory crosses processes."""
    write_pcap(tmp_path / "a.pcap", range(1000, 1300))
    write_pcap(tmp_path / "b.pcap", range(2000, 2400))
    (tmp_path / "dump").mkdir()
    mport = free_port()
    rt = Runtime.build(cfg(TWO_QUEUES.format(port=mport), tmp_path))
    assert rt.mode == "processes"
    hits = shared_array(2)                  # one row per core: no locks needed
    seen: dict[str, object] = {}
    tag = "closure state"                   # captured by the installer below, never pickled

    def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
        assert tag == "closure state"

        def count(m: Mbuf) -> Mbuf:
            hits[q.core] += 1
            return m
        return Poll(q).map(count).send(q)

    def check() -> None:
        snap = rt.metrics.snapshot()
        if snap.total("tx_packets") < 700 and time.monotonic() < deadline:
            return                           # not all published yet: look again next tick
        time.sleep(0.2)                      # > 2 publish intervals: every core up to date
        seen["samples"] = scrape(mport)
        kids = multiprocessing.active_children()
        seen["names"] = [Path(f"/proc/{k.pid}/comm").read_text().strip() for k in kids]
        seen["affinity"] = [os.sched_getaffinity(k.pid) for k in kids]
        seen["master_affinity"] = os.sched_getaffinity(0)
        rt.stop("checked")

    rt.add_pipeline_to_port("eth1", install)
    rt.add_periodic_task_to_core(0, check, 0.1)
    deadline = time.monotonic() + 15
    res = rt.execute()
    assert res.reason == "checked" and res.cores == {0: "stopped", 1: "stopped"}
    assert seen["names"] == ["mc-1"] and seen["affinity"] == [{1}]
    assert seen["master_affinity"] == {0}
    assert os.sched_getaffinity(0) == available_cpus() or len(os.sched_getaffinity(0)) >= 1
    # Every packet exactly once across the two workers' outputs.
    got = scapy_dports(tmp_path / "out-q0.pcap") + scapy_dports(tmp_path / "out-q1.pcap")
    assert sorted(got) == list(range(1000, 1300)) + list(range(2000, 2400))
    assert sorted(dports(tmp_path / "out-q0.pcap")) == list(range(1000, 1300))
    assert list(hits) == [300, 400]
    # The Prometheus endpoint sums both processes, with per-core labels.
    s = seen["samples"]
    assert total(s, "nfkit_port_packets_total", port="eth1", dir="rx") == 700
    assert total(s, "nfkit_port_packets_total", port="eth1", dir="tx") == 700
    assert total(s, "nfkit_port_packets_total", core="1", dir="rx") == 400
    assert total(s, "nfkit_pipeline_packets_total", disposition="act") == 700
    assert total(s, "nfkit_pipeline_received_total", core="0") == 300
    assert total(s, "nfkit_core_polls_total", core="1", kind="busy") >= 1
    assert total(s, "nfkit_mempool_capacity", core="1") == 65535
    assert res.ports["eth1"]["rx_packets"] == 700 and res.ports["eth1"]["tx_octets"] > 0
    assert res.pipelines["default#0"]["act"] + res.pipelines["default#1"]["act"] == 700
    # pcap dump: per core and port, complete after the stop.
    for core, first in ((0, 1000), (1, 2000)):
        for d in ("rx", "tx"):
            f = tmp_path / "dump" / f"port-eth1-core{core}-{d}.pcap"
            assert sorted(dports(f)) == list(range(first, first + (300 if core == 0 else 400)))
    assert no_children_left()


def test_failing_installer_on_a_worker_aborts_start_up(tmp_path: Path) -> None:
    rt = Runtime.build(cfg("""
        app_name = "mc"
        master_core = 0
        duration = 10
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0, 1]
    """))

    def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
        if q.core == 1:
            raise ValueError("no table on core 1")
        return Poll(q).send(q)

    rt.add_pipeline_to_port("eth1", install)
    t0 = time.monotonic()
    with pytest.raises(RunError) as info:
        rt.execute()
    msg = str(info.value)
    assert re.search(r"core 1: installer .*install failed: ValueError: no table on core 1", msg)
    assert "Traceback" in msg and "raise ValueError" in msg
    assert time.monotonic() - t0 < 10
    assert no_children_left()


def test_sigkill_of_a_worker_is_detected_and_reported() -> None:
    rt = Runtime.build(cfg("""
        app_name = "mc"
        master_core = 0
        duration = 30
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0, 1]
    """))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    killed: list[float] = []

    def kill_worker() -> None:
        if not killed:
            (child,) = multiprocessing.active_children()
            os.kill(child.pid, signal.SIGKILL)
            killed.append(time.monotonic())

    rt.add_periodic_task_to_core(0, kill_worker, 0.3)
    with pytest.raises(WorkerError, match=r"core 1: the worker killed by SIGKILL") as info:
        rt.execute()
    assert time.monotonic() - killed[0] < 1.0 + 1.0        # detected within 1 s (+ shutdown)
    err = info.value
    assert err.core == 1 and err.result is not None and err.result.reason == "core 1 failed"
    assert err.result.ports["eth1"]["tx_packets"] > 0       # what ran before still counts
    assert no_children_left()


def test_restart_on_failure_starts_the_worker_again() -> None:
    rt = Runtime.build(cfg("""
        app_name = "mc"
        master_core = 0
        duration = 2
        [workers]
        restart = "on-failure"
        max_restarts = 1
        [metrics]
        interval = 0.05
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0, 1]
    """))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    killed: list[int] = []

    def kill_worker() -> None:
        if not killed:
            (child,) = multiprocessing.active_children()
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)

    rt.add_periodic_task_to_core(0, kill_worker, 0.5)
    res = rt.execute()
    assert res.reason == "duration" and res.cores[1] == "stopped"
    assert rt.metrics.snapshot().restarts == {1: 1}
    assert no_children_left()


def test_unavailable_core_is_a_clear_error() -> None:
    with pytest.raises(CoreError, match=r"core\(s\) \[64\] are not online CPUs this process may use"):
        Runtime.build(cfg("""
            app_name = "mc"
            master_core = 0
            [[ports]]
            name = "eth1"
            device = "net_null0"
            cores = [0, 64]
        """))


def test_single_process_switch_keeps_one_process() -> None:
    rt = Runtime.build(cfg("""
        app_name = "mc"
        master_core = 0
        duration = 1
        [workers]
        mode = "single"
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0, 1]
    """))
    assert rt.mode == "single" and set(rt.port("eth1").queues) == {0, 1}
    pids = shared_array(1)
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    rt.add_periodic_task_to_core(1, lambda: pids.__setitem__(0, os.getpid()), 0.1)
    res = rt.execute()
    assert pids[0] == os.getpid() and res.ports["eth1"]["tx_packets"] > 0


def test_sigterm_to_the_master_stops_every_worker_with_complete_outputs(tmp_path: Path) -> None:
    write_pcap(tmp_path / "a.pcap", range(1000, 1100))
    write_pcap(tmp_path / "b.pcap", range(2000, 2100))
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import nfkit
        def main(rt):
            rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
            rt.add_periodic_task_to_core(1, lambda: print("running", flush=True), 0.2)
    """))
    (tmp_path / "app.toml").write_text(textwrap.dedent("""
        app_name = "mcterm"
        master_core = 0
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=a.pcap,rx_pcap=b.pcap,infinite_rx=1,tx_pcap=out.pcap"
        cores = [0, 1]
    """))
    proc = subprocess.Popen([sys.executable, "-m", "nfkit.cli", "run", "app.py", "-c", "app.toml",
                             "--no-status", "--pcap-dump"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert took < 1.0 + 1.0, took        # workers stopped within 1 s (+ interpreter exit)
    assert "stopped: signal SIGTERM" in out
    assert "core 1 stopped" in err
    tx = int(out.split("port eth1: rx ")[1].split()[2])
    q0, q1 = dports(tmp_path / "out-q0.pcap"), dports(tmp_path / "out-q1.pcap")
    assert len(q0) + len(q1) == tx and len(q0) > 100 and len(q1) > 100
    assert set(q0) == set(range(1000, 1100)) and set(q1) == set(range(2000, 2100))
    dumped = [len(dports(tmp_path / f"port-eth1-core{c}-tx.pcap")) for c in (0, 1)]
    assert dumped == [len(q0), len(q1)]
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit()
                and _comm(p) == "mcterm-1"]


def _comm(p: Path) -> str:
    try:
        return (p / "comm").read_text().strip()
    except OSError:
        return ""
