"""The TAP port driver and the KNI built on it (nfkit.ports.tap), against the real kernel.

Interfaces are created in this process's namespace with unique names and vanish when the
port closes.  The kernel is the oracle: it answers an echo request the port transmits, and
what it sends comes back through the port.  Argument errors need nothing; the rest needs
root and /dev/net/tun (skipped without, failed under CI=true).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import nfkit
from nfkit.config import RuntimeConfig
from nfkit.packets import EchoReply, EchoRequest, EtherType, Ethernet, Icmpv4, Ipv4
from nfkit.ports import tap
from nfkit.ports.base import PortError
from nfkit.ports.tap import KniDisabled, KniError, KniNotAcquired
from nfkit.runtime import Runtime
from nfkit.testing.skips import need, need_tool

ROOT = Path(__file__).resolve().parent.parent
_n = itertools.count()


def need_tap() -> None:
    why = None
    if os.geteuid() != 0:
        why = "TAP interfaces need root (CAP_NET_ADMIN)"
    elif not os.path.exists(tap.TUN_PATH):
        why = f"{tap.TUN_PATH} is missing (modprobe tun)"
    need(why is None, str(why), "run as root with the tun module loaded")


def unique(tag: str) -> str:
    return f"nfk{tag}{os.getpid() % 10000}{next(_n)}"[:15]


def config(*ports: dict, cores: list[int] | None = None) -> RuntimeConfig:
    """Every core in this process (the tests look at the queues directly)."""
    return RuntimeConfig.model_validate({"app_name": "tap-test", "master_core": 0,
                                         "cores": cores or [], "ports": list(ports),
                                         "workers": {"mode": "single"}})


@pytest.fixture
def runtime_of() -> Iterator:
    """Build runtimes and close them after the test (the interfaces go with them)."""
    built: list[Runtime] = []

    def build(cfg: RuntimeConfig) -> Runtime:
        rt = Runtime.build(cfg)
        built.append(rt)
        return rt
    yield build
    for rt in built:
        rt.close()


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10).stdout


def echo_request(src_mac: str, dst_mac: str, src: str, dst: str, seq: int) -> nfkit.Mbuf:
    m = nfkit.Mbuf.alloc()
    eth = m.push(Ethernet)
    eth.src, eth.dst = src_mac, dst_mac
    v4 = eth.push(Ipv4)
    v4.src, v4.dst = src, dst
    req = v4.push(EchoRequest)
    req.identifier, req.seq_no, req.data = 0x4E46, seq, b"nfkit tap test"
    req.reconcile_all()
    return m


def echo_replies(mbufs: list[nfkit.Mbuf]) -> list[tuple[str, int]]:
    """(source address, seq) of the IPv4 echo replies among ``mbufs`` (all freed)."""
    out = []
    for m in mbufs:
        eth = m.peek(Ethernet)
        if eth.ether_type == EtherType.IPV4:
            v4 = eth.peek(Ipv4)
            if v4.protocol == 1 and v4.peek(Icmpv4).msg_type == 0:
                out.append((str(v4.src), v4.peek(EchoReply).seq_no))
    nfkit.Mbuf.free_bulk(mbufs)
    return out


def poll_until(receive, want: int, timeout: float = 3.0) -> list[tuple[str, int]]:
    got: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += echo_replies(receive())
        time.sleep(0.005)
    return got


# -- arguments --------------------------------------------------------------------------

@pytest.mark.parametrize("device,args,message", [
    ("net_tap0", "speed=10", "unknown argument(s) ['speed']"),
    ("net_tap0", "mac=02:00", "mac must be 'fixed' or a MAC address"),
    ("net_tap0", "iface=has space", "not a valid interface name"),
    ("net_tap0", "iface=sixteen-chars-xx", "not a valid interface name"),
    ("tap:x0", "iface=x1", "the interface is named in the device already"),
])
def test_bad_arguments_are_port_errors(device: str, args: str, message: str) -> None:
    with pytest.raises(PortError) as err:
        Runtime.build(config({"name": "t0", "device": device, "args": args, "cores": [0]}))
    assert message in str(err.value) and "port t0" in str(err.value)


def test_kni_on_a_tap_port_is_refused() -> None:
    with pytest.raises(PortError, match="kni = true on a TAP port"):
        Runtime.build(config({"name": "t0", "device": "net_tap0", "cores": [0], "kni": True}))


def test_missing_tun_device_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap, "TUN_PATH", "/nonexistent/tun")
    with pytest.raises(PortError, match="does not exist .*modprobe tun"):
        Runtime.build(config({"name": "t0", "device": "tap:nfkmissing", "cores": [0]}))


def test_without_privilege_says_so() -> None:
    need_tap()
    need_tool("unshare", "apt-get install util-linux")
    code = ("from nfkit.config import RuntimeConfig\nfrom nfkit.runtime import Runtime\n"
            "Runtime.build(RuntimeConfig.model_validate({'app_name': 'x', 'master_core': 0, "
            f"'ports': [{{'name': 't0', 'device': 'tap:{unique('np')}', 'cores': [0]}}]}}))\n")
    # A user namespace has every capability inside it, none over this network namespace.
    res = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert res.returncode != 0
    assert "PortError" in res.stderr and "CAP_NET_ADMIN" in res.stderr, res.stderr


# -- the port against the kernel ------------------------------------------------------------

def test_tap_port_exchanges_frames_with_the_kernel(runtime_of) -> None:
    need_tap()
    name = unique("t")
    rt = runtime_of(config({"name": "tp", "device": f"tap:{name}", "cores": [0, 1],
                            "args": "mac=02:00:00:00:07:01,addr=198.18.7.1/24"}))
    port = rt.port("tp")
    assert str(port.mac_addr) == "02:00:00:00:07:01"
    detail = ip("-d", "link", "show", "dev", name)
    assert "link/ether 02:00:00:00:07:01" in detail and ",UP" in detail, detail
    assert "multi_queue numqueues 2" in detail and "pi off" in detail, detail
    assert "198.18.7.1/24" in ip("addr", "show", "dev", name)
    # The kernel answers a ping "from the wire"; its reply comes back on some queue.
    subprocess.run(["ip", "neigh", "replace", "198.18.7.2", "lladdr", "02:00:00:00:07:02",
                    "dev", name, "nud", "permanent"], check=True)
    q0, q1 = port.queues[0], port.queues[1]
    q0.transmit([echo_request("02:00:00:00:07:02", "02:00:00:00:07:01", "198.18.7.2",
                              "198.18.7.1", seq) for seq in (1, 2, 3)])
    assert q0.counters.tx_packets == 3 and q0.counters.tx_dropped == 0
    got = poll_until(lambda: q0.receive() + q1.receive(), 3)
    assert sorted(got) == [("198.18.7.1", 1), ("198.18.7.1", 2), ("198.18.7.1", 3)]
    assert port.counters().rx_packets >= 3 and port.counters().rx_errors == 0
    rt.close()
    assert not ip("link", "show", "dev", name), "the interface must go with the port"


def test_receive_slots_and_transmit_slots(runtime_of) -> None:
    """The slot path (vector pipelines) moves the same frames, with the same counters."""
    need_tap()
    name = unique("s")
    rt = runtime_of(config({"name": "ts", "device": "net_tap3", "cores": [0],
                            "args": f"iface={name},mac=fixed,addr=198.18.8.1/24"}))
    port = rt.port("ts")
    assert str(port.mac_addr) == "00:64:74:61:70:03"          # DPDK's fixed MAC, unit 3
    subprocess.run(["ip", "neigh", "replace", "198.18.8.2", "lladdr", "02:00:00:00:08:02",
                    "dev", name, "nud", "permanent"], check=True)
    q = port.queues[0]
    m = echo_request("02:00:00:00:08:02", str(port.mac_addr), "198.18.8.2", "198.18.8.1", 9)
    q.transmit_slots(m.pool, __import__("numpy").array([m.slot]))
    assert q.counters.tx_packets == 1 and q.counters.tx_octets == 14 + 20 + 8 + 14

    def slots() -> list[nfkit.Mbuf]:
        return q.receive_slots().mbufs()
    assert poll_until(slots, 1) == [("198.18.8.1", 9)]


def test_transmit_to_a_down_interface_counts_errors_and_drops(runtime_of) -> None:
    need_tap()
    name = unique("d")
    rt = runtime_of(config({"name": "td", "device": f"tap:{name}", "cores": [0]}))
    q = rt.port("td").queues[0]
    q.device.set_up(False)
    pool = q.pool
    before = pool.in_use
    q.transmit([echo_request("02:00:00:00:09:02", "02:00:00:00:09:01", "198.18.9.2",
                             "198.18.9.1", s) for s in range(3)])
    c = q.counters
    assert (c.tx_packets, c.tx_dropped, c.tx_errors) == (0, 3, 1)
    assert pool.in_use == before, "refused packets are freed"


# -- KNI -----------------------------------------------------------------------------------

def test_kni_errors_are_capsules(runtime_of) -> None:
    need_tap()
    name = unique("k")
    rt = runtime_of(config({"name": name, "device": "net_ring0", "cores": [0], "kni": True},
                           {"name": "plain", "device": "net_ring1", "cores": [0]}))
    with pytest.raises(KniDisabled, match="KNI is not enabled for port plain"):
        rt.port("plain").queues[0].kni()
    with pytest.raises(KniDisabled):
        rt.add_kni_rx_pipeline_to_port("plain", nfkit.splice)
    rt.add_kni_rx_pipeline_to_port(name, nfkit.splice)
    with pytest.raises(KniNotAcquired, match="another core owns the handle"):
        rt.add_kni_rx_pipeline_to_port(name, nfkit.splice)
    assert issubclass(KniNotAcquired, KniError) and issubclass(KniError, PortError)
    with pytest.raises(PortError, match="is not found"):
        rt.add_kni_rx_pipeline_to_port("nope", nfkit.splice)


def test_kni_example_in_process_on_ring_ports(runtime_of) -> None:
    """examples/kni/kni.py on an in-process port: an echo request injected into the port
    reaches the kernel through the KNI, and the kernel's reply leaves by the port.  The KNI
    receive pipeline runs on the port's first core."""
    need_tap()
    name = unique("k")
    rt = runtime_of(config({"name": name, "device": "net_ring0", "cores": [0, 1], "kni": True}))
    port = rt.port(name)
    detail = ip("-o", "link", "show", "dev", name)
    assert f"link/ether {port.mac_addr}" in detail and ",UP" in detail, detail
    subprocess.run(["ip", "addr", "add", "198.18.10.1/24", "dev", name], check=True)
    subprocess.run(["ip", "neigh", "replace", "198.18.10.2", "lladdr", "02:00:00:00:10:02",
                    "dev", name, "nud", "permanent"], check=True)

    sys.path.insert(0, str(ROOT / "examples" / "kni"))
    try:
        import importlib
        kni_app = importlib.import_module("kni")
    finally:
        sys.path.remove(str(ROOT / "examples" / "kni"))
    kni_app.PORT = name
    kni_app.main(rt)

    q0, q1 = port.queues[0], port.queues[1]
    q1.inject([echo_request("02:00:00:00:10:02", str(port.mac_addr), "198.18.10.2",
                            "198.18.10.1", s) for s in (1, 2)])
    replies: list[tuple[str, int]] = []

    def watch() -> None:
        replies.extend(echo_replies(q0.drain() + q1.drain()))
        if len(replies) >= 2:
            rt.stop("answered")
    rt.add_periodic_task_to_core(0, watch, 0.01)
    rt.config.duration = 5
    result = rt.execute()
    assert result.reason == "answered", result
    assert sorted(replies) == [("198.18.10.1", 1), ("198.18.10.1", 2)]
    kni_pipelines = [p for p in rt.executors[0].pipelines if "KniRx" in repr(p.source)]
    assert len(kni_pipelines) == 1 and not any("KniRx" in repr(p.source)
                                               for p in rt.executors[1].pipelines)
    k = port.kni.counters
    assert k.tx_packets == 2 and k.rx_packets >= 2 and k.tx_dropped == 0
    assert not ip("link", "show", "dev", name), "the KNI goes with the port"
