"""The runtime: capsule's checks, installers, periodic work, stop conditions, ports."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.utils import rdpcap

import nfkit
from nfkit import Mbuf, Poll
from nfkit.config import RuntimeConfig
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.pcap import PcapWriter
from nfkit.ports.base import PortError
from nfkit.runtime import CoreError, RunError, Runtime


def cfg(text: str, base: Path | None = None) -> RuntimeConfig:
    c = RuntimeConfig.from_toml_text(textwrap.dedent(text))
    if base is not None:
        c._base_dir = base
    return c


RING = """
app_name = "t"
master_core = 0
cores = [1]
#TOP
[[ports]]
name = "eth1"
device = "net_ring0"
cores = [0]
"""


def udp_frame(dport: int = 53) -> bytes:
    m = Mbuf.alloc(nfkit.Mempool(capacity=1))
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.dst_port = dport
    u.reconcile_all()
    return m.to_bytes()


def test_core_checks_like_capsule() -> None:
    rt = Runtime.build(cfg(RING))
    with pytest.raises(CoreError, match="core 5 is not found"):
        rt.add_pipeline_to_core(5, lambda qs: None)
    with pytest.raises(CoreError, match="core 1 is not assigned to any ports"):
        rt.add_pipeline_to_core(1, lambda qs: None)
    with pytest.raises(CoreError, match="core 7 is not found"):
        rt.add_periodic_task_to_core(7, lambda: None, 1)
    with pytest.raises(PortError, match="port eth9 is not found"):
        rt.add_pipeline_to_port("eth9", lambda q: None)
    rt.add_periodic_task_to_core(1, lambda: None, 1)   # any configured core takes tasks


def test_unknown_device_names_device_and_drivers() -> None:
    # A PCI address goes to DPDK unless backend = "native" (tests/test_dpdk.py has the DPDK
    # side, in subprocesses: EAL starts once per process).
    with pytest.raises(PortError, match=r"unknown device '0000:00:08.0' \(backend = \"native\": "
                                        r"nfkit has no driver of its own.*; known drivers: memory"):
        Runtime.build(cfg(RING.replace("net_ring0", "0000:00:08.0")
                          .replace("#TOP", 'backend = "native"')))
    with pytest.raises(PortError, match=r"unknown device 'eth0'; known drivers: memory"):
        Runtime.build(cfg(RING.replace("net_ring0", "eth0")))


def test_failing_installer_aborts_start_with_traceback() -> None:
    rt = Runtime.build(cfg(RING.replace("#TOP", "duration = 1")))

    def bad(q):
        raise ValueError("no such table")

    rt.add_pipeline_to_port("eth1", bad)
    with pytest.raises(RunError, match=r"core 0: installer .*bad failed: ValueError: no such table"):
        rt.execute()
    rt2 = Runtime.build(cfg(RING))
    rt2.add_pipeline_to_port("eth1", lambda q: Poll(q))
    with pytest.raises(RunError, match="not a Pipeline"):
        rt2.execute()


def test_memory_port_pipeline_periodic_task_and_stop() -> None:
    rt = Runtime.build(cfg(RING))
    q = rt.port("eth1").queues[0]
    q.inject([Mbuf.from_bytes(udp_frame(d)) for d in (53, 80, 53)])
    ticks = []

    def task() -> None:
        ticks.append(time.monotonic())
        if len(ticks) == 3:
            rt.stop("enough")

    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).filter(
        lambda m: m.parse(Ethernet).parse(Ipv4).parse(Udp).dst_port == 53).send(q))
    rt.add_periodic_task_to_core(1, task, 0.05)
    res = rt.execute()
    assert res.reason == "enough" and len(ticks) == 3
    assert 0.1 <= res.seconds < 2
    out = q.drain()
    assert len(out) == 2
    c = rt.port("eth1").counters()
    assert c.rx_packets == 3 and c.tx_packets == 2 and res.pipelines["default#0"]["drop"] == 1
    Mbuf.free_bulk(out)
    assert rt.pool.in_use == 0


def test_batch_size_from_config_sets_the_burst() -> None:
    rt = Runtime.build(cfg(RING.replace("#TOP", "batch_size = 4")))
    q = rt.port("eth1").queues[0]
    q.inject([Mbuf.from_bytes(udp_frame()) for _ in range(10)])
    pl = Poll(q).send(q)
    assert [pl.run_once() for _ in range(4)] == [4, 4, 2, 0]
    Mbuf.free_bulk(q.drain())


def test_null_port_generates_valid_frames_and_discards() -> None:
    rt = Runtime.build(cfg(RING.replace("net_ring0", "net_null0").replace("#TOP", "batch_size = 64")))
    q = rt.port("eth1").queues[0]
    got = q.receive()
    assert len(got) == 64 and all(len(m) == 60 for m in got)
    udp = got[0].parse(Ethernet).parse(Ipv4).parse(Udp)
    assert udp.checksum_ok and udp.envelope.checksum_ok
    q.transmit(got)
    c = q.counters
    assert c.tx_packets == 64 and c.rx_packets == 64 and rt.pool.in_use == 0


def test_driver_says_which_fields_do_not_apply(caplog: pytest.LogCaptureFixture) -> None:
    Runtime.build(cfg(RING.replace('cores = [0]', 'cores = [0]\npromiscuous = true\nrxd = 512')))
    msgs = [r.getMessage() for r in caplog.records]
    assert any("promiscuous = True does not apply to in-process rings; ignored" in m for m in msgs)
    assert any("rxd = 512 does not apply" in m for m in msgs)


def test_periodic_pipeline_generates() -> None:
    rt = Runtime.build(cfg(RING.replace("#TOP", "duration = 1")))
    frame = udp_frame()
    rt.add_periodic_pipeline_to_core(
        0, lambda qs: nfkit.poll_fn(lambda: [Mbuf.from_bytes(frame)]).send(qs["eth1"]), 0.1)
    rt.execute()
    sent = rt.port("eth1").queues[0].drain()
    assert 8 <= len(sent) <= 11
    Mbuf.free_bulk(sent)


def test_named_rings_chain_two_ports() -> None:
    rt = Runtime.build(cfg("""
        app_name = "chain"
        master_core = 0
        [[ports]]
        name = "a"
        device = "net_ring0"
        args = "tx_ring=link"
        cores = [0]
        [[ports]]
        name = "b"
        device = "net_ring1"
        args = "rx_ring=link"
        cores = [0]
    """))
    a, b = rt.port("a").queues[0], rt.port("b").queues[0]
    a.inject([Mbuf.from_bytes(udp_frame()) for _ in range(5)])
    rt.add_pipeline_to_port("a", lambda q: Poll(q).send(q))
    rt.add_pipeline_to_port("b", lambda q: Poll(q).map(lambda m: (m.parse(Ethernet).swap_addresses(), m)[1]).send(q))
    rt.stop("once")
    rt._stop_requested = None
    import threading
    threading.Timer(0.3, rt.stop).start()
    rt.execute()
    out = b.drain()
    assert len(out) == 5
    Mbuf.free_bulk(out)


def write_pcap(path: Path, frames: list[bytes]) -> None:
    with PcapWriter(path) as w:
        for i, f in enumerate(frames):
            w.write(f, 1_000_000_000 + i)


def test_pcap_port_drained_and_damaged_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frames = [udp_frame(1000 + i) for i in range(20)]
    write_pcap(tmp_path / "in.pcap", frames)
    raw = (tmp_path / "in.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(raw[:-30])              # the last record is damaged
    rt = Runtime.build(cfg("""
        app_name = "p"
        master_core = 0
        stop_when_drained = true
        duration = 10
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=cut.pcap,rx_pcap=in.pcap,tx_pcap=out.pcap"
        cores = [0]
    """, tmp_path))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    res = rt.execute()
    assert res.reason == "drained"
    out = rdpcap(str(tmp_path / "out.pcap"))
    assert len(out) == 19 + 20                                  # everything before the damage
    assert res.ports["eth1"]["rx_errors"] == 1
    assert any("offset" in r.getMessage() for r in caplog.records)


def test_missing_rx_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PortError, match=r"rx_pcap file .*nope.pcap does not exist"):
        Runtime.build(cfg("""
            app_name = "p"
            master_core = 0
            [[ports]]
            name = "eth1"
            device = "net_pcap0"
            args = "rx_pcap=nope.pcap"
            cores = [0]
        """, tmp_path))


def test_sigterm_leaves_complete_output(tmp_path: Path) -> None:
    """A long replay run stopped by SIGTERM: the output pcap is whole and readable."""
    write_pcap(tmp_path / "in.pcap", [udp_frame(i) for i in range(100)])
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import nfkit
        def main(rt):
            rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
            print("ready", flush=True)
    """))
    (tmp_path / "app.toml").write_text(textwrap.dedent("""
        app_name = "replay"
        master_core = 0
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=in.pcap,infinite_rx=1,tx_pcap=out.pcap"
        cores = [0]
    """))
    proc = subprocess.Popen([sys.executable, "-m", "nfkit.cli", "run", "app.py", "-c", "app.toml",
                             "--no-status"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: signal SIGTERM" in out
    pkts = rdpcap(str(tmp_path / "out.pcap"))
    assert len(pkts) > 1000
    tx = int(out.split("port eth1: rx ")[1].split()[2])
    assert len(pkts) == tx                                      # nothing buffered was lost
