"""examples/arp-responder (#15): answers ARP requests for its addresses, drops (and counts)
everything else -- in memory, on its sample pcap (replies decoded by Scapy, an independent
oracle), and end to end: the Linux kernel of a client namespace resolves the NF's addresses
over a veth pair (``ip neigh``), and not the ones it was not given."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

import nfkit
from nfkit import Mbuf, MacAddr, Mempool
from nfkit.cli import load_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "arp-responder"
APP = load_module(EXAMPLE / "arp_responder.py")
SAMPLES = load_module(EXAMPLE / "make_pcap.py")
PORT_MAC = "02:00:00:00:00:01"


def responder() -> object:
    return APP.Responder(frozenset({IPv4Address("192.0.2.1"), IPv4Address("192.0.2.7")}),
                         MacAddr(PORT_MAC))


def scapy_arp(raw: bytes) -> object:
    from scapy.layers.l2 import ARP, Ether
    pkt = Ether(raw)
    assert ARP in pkt, pkt.summary()
    return pkt


def test_a_request_for_our_address_becomes_its_reply(pool: Mempool) -> None:
    r = responder()
    for sender_ip in (SAMPLES.HOST_IP, "0.0.0.0"):
        m = Mbuf.from_bytes(SAMPLES.arp(nfkit.packets.ArpOp.REQUEST, sender_ip, "192.0.2.7"),
                            pool)
        try:
            assert r.wanted(m)
            out = scapy_arp(r.answer(m).to_bytes())
        finally:
            m.free()
        arp = out["ARP"]
        assert (out.src, out.dst) == (PORT_MAC, SAMPLES.HOST_MAC)
        assert (arp.op, arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (2, 1, 0x0800, 6, 4)
        assert (arp.hwsrc, arp.psrc) == (PORT_MAC, "192.0.2.7")
        assert (arp.hwdst, arp.pdst) == (SAMPLES.HOST_MAC, sender_ip)


def _bad_frames() -> dict[str, bytes]:
    req = SAMPLES.arp(nfkit.packets.ArpOp.REQUEST, SAMPLES.HOST_IP, "192.0.2.1")
    token_ring = bytearray(req)
    token_ring[14:16] = b"\x00\x06"                     # hardware type 6 (IEEE 802)
    long_hw = bytearray(req)
    long_hw[18] = 8                                     # 8-byte hardware addresses
    return {"not ours": SAMPLES.arp(nfkit.packets.ArpOp.REQUEST, SAMPLES.HOST_IP, "192.0.2.99"),
            "a reply": SAMPLES.arp(nfkit.packets.ArpOp.REPLY, SAMPLES.HOST_IP, "192.0.2.1"),
            "udp": SAMPLES.udp(), "cut ARP": req[:30], "cut Ethernet": req[:10], "empty": b"",
            "hardware type 6": bytes(token_ring), "hardware length 8": bytes(long_hw)}


@pytest.mark.parametrize("what", list(_bad_frames()))
def test_everything_else_is_not_wanted(pool: Mempool, what: str) -> None:
    m = Mbuf.from_bytes(_bad_frames()[what], pool)
    try:
        assert not responder().wanted(m)
    finally:
        m.free()


def run_example(tmp_path: Path, env: dict[str, str] | None = None,
                frames: list[bytes] | None = None) -> subprocess.CompletedProcess[str]:
    """``nfkit run`` of the example on its sample requests (or on ``frames``)."""
    for name in ("arp_responder.py", "arp-responder.toml", "requests.pcap"):
        (tmp_path / name).write_bytes((EXAMPLE / name).read_bytes())
    if frames is not None:
        from nfkit.pcap import PcapWriter
        with PcapWriter(tmp_path / "requests.pcap") as w:
            for f in frames:
                w.write(f, SAMPLES.T0)
    return subprocess.run([sys.executable, "-m", "nfkit", "run", "arp_responder.py", "-c",
                           "arp-responder.toml", "--no-status"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_example_answers_its_sample_requests(tmp_path: Path) -> None:
    proc = run_example(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "received 5 sent 2 emitted 0 dropped 3 aborted 0 replaced 0" in proc.stdout
    from scapy.utils import rdpcap
    replies = [bytes(p) for p in rdpcap(str(tmp_path / "replies.pcap"))]
    assert [scapy_arp(r)["ARP"].pdst for r in replies] == [SAMPLES.HOST_IP, "0.0.0.0"]
    assert all(scapy_arp(r)["ARP"].hwsrc == PORT_MAC for r in replies)
    other = run_example(tmp_path, {"NFKIT_ARP_ADDRESSES": "192.0.2.99, 192.0.2.1"})
    assert "received 5 sent 3 emitted 0 dropped 2" in other.stdout, other.stdout


def test_bad_input_is_dropped_and_counted_never_aborted(tmp_path: Path) -> None:
    bad = list(_bad_frames().values())
    proc = run_example(tmp_path, frames=bad + [SAMPLES.frames()[0]])
    assert proc.returncode == 0, proc.stderr
    assert (f"received {len(bad) + 1} sent 1 emitted 0 dropped {len(bad)} aborted 0"
            in proc.stdout), proc.stdout + proc.stderr


def test_sample_pcap_is_what_make_pcap_writes(tmp_path: Path) -> None:
    from nfkit.pcap import PcapReader
    with PcapReader(EXAMPLE / "requests.pcap") as r:
        assert [data for _, data, _ in r.records()] == SAMPLES.frames()


# -- end to end: the kernel of a client namespace resolves the NF's addresses ---------------

def test_linux_resolves_the_nfs_addresses(netlab: object, tmp_path: Path) -> None:
    from test_e2e_linux import RunningNf, need, port_toml
    ping = need("ping")
    nfns, client = netlab.namespace("nf"), netlab.namespace("cli")
    link = netlab.veth(ns=nfns, peer_ns=client, peer_addr="10.79.0.2/24")
    nf = RunningNf(netlab, nfns, EXAMPLE / "arp_responder.py", port_toml("eth1", link.name),
                   tmp_path / "nf", env={"NFKIT_ARP_ADDRESSES": "10.79.0.1,10.79.0.7"})
    nf.wait_running()

    def neigh(addr: str, seconds: float) -> str:
        """The client's neighbour entry for ``addr`` once resolved, or after ``seconds`` of
        asking: an echo request makes the kernel resolve the address (no echo reply comes:
        ARP only), again when a resolution failed (a loaded machine can delay the NF)."""
        deadline = time.monotonic() + seconds
        while True:
            client.run([ping, "-c", "1", "-W", "1", addr], timeout=10)
            out = client.ip("neigh", "show", addr, "dev", link.peer)
            if "lladdr" in out or time.monotonic() > deadline:
                return out

    answered = {a: neigh(a, 15) for a in ("10.79.0.1", "10.79.0.7")}
    unknown = neigh("10.79.0.9", 3)
    log = nf.stop()
    port_mac = nf.mac("eth1")
    for addr, out in answered.items():
        assert f"lladdr {port_mac}" in out, (addr, out, log)
        assert not re.search(r"FAILED|INCOMPLETE", out), out
    assert "lladdr" not in unknown, unknown
    sent = re.search(r"pipeline \S+: received (\d+) sent (\d+) .* aborted (\d+)", log)
    assert sent and int(sent.group(2)) >= 2 and sent.group(3) == "0", log
