"""Regenerate the examples' sample pcap files (deterministic: same bytes every run).

    python examples/make_samples.py

Each packet is built with nfkit's own push API and written with nfkit's pcap writer; the
tests check the examples' outputs with tcpdump and Scapy, independently of nfkit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from nfkit import Mbuf, Mempool  # noqa: E402
from nfkit.packets import (EchoRequest, Ethernet, Icmpv6EchoRequest, Ipv4, Ipv6,  # noqa: E402
                           Tcp, Udp)
from nfkit.pcap import PcapWriter  # noqa: E402

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000_000_000_000  # fixed timestamps (ns)
POOL = Mempool(capacity=256, name="samples")

NF_MAC = "02:00:00:00:00:01"
PEER_MAC = "02:00:00:00:00:02"


def frame(build: Callable[[Any], Any]) -> bytes:
    m = Mbuf.alloc(POOL)
    eth = m.push(Ethernet)
    eth.src, eth.dst = PEER_MAC, NF_MAC
    inner = build(eth)
    inner.reconcile_all()
    raw = m.to_bytes()
    m.free()
    return raw


def write(path: Path, frames: list[bytes]) -> None:
    with PcapWriter(path) as w:
        for i, f in enumerate(frames):
            w.write(f, T0 + i * 1_000_000)
    print(f"{path.relative_to(HERE.parent)}: {len(frames)} packets")


def echo4(seq: int) -> bytes:
    def b(eth: Any) -> Any:
        ip = eth.push(Ipv4)
        ip.src, ip.dst, ip.identification = "192.0.2.1", "192.0.2.2", 100 + seq
        e = ip.push(EchoRequest)
        e.identifier, e.seq_no, e.data = 0x0200, seq, bytes(range(32))
        return e
    return frame(b)


def echo6(seq: int) -> bytes:
    def b(eth: Any) -> Any:
        ip = eth.push(Ipv6)
        ip.src, ip.dst = "2001:db8::1", "2001:db8::2"
        e = ip.push(Icmpv6EchoRequest)
        e.identifier, e.seq_no, e.data = 0x0300, seq, b"nfkit"
        return e
    return frame(b)


def tcp(version: int, sport: int, dport: int, src: str, dst: str, syn: bool = True,
        payload: bytes = b"") -> bytes:
    def b(eth: Any) -> Any:
        ip = eth.push(Ipv4 if version == 4 else Ipv6)
        ip.src, ip.dst = src, dst
        t = ip.push(Tcp)
        t.src_port, t.dst_port, t.seq_no, t.window = sport, dport, 1, 10
        t.syn = syn
        t.ack = not syn
        if payload:
            t.set_payload(payload)
        return t
    return frame(b)


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x") -> bytes:
    def b(eth: Any) -> Any:
        ip = eth.push(Ipv4)
        ip.src, ip.dst = src, dst
        u = ip.push(Udp)
        u.src_port, u.dst_port = sport, dport
        u.set_payload(payload)
        return u
    return frame(b)


def main() -> None:
    # ping4d: capsule's echo.pcap mix: 4 ICMPv4 echo requests, 5 ICMPv6 ones
    write(HERE / "ping4d" / "echo.pcap",
          [echo4(1), echo6(1), echo4(2), echo6(2), echo4(3), echo6(3), echo4(4), echo6(4), echo6(5)])
    # pktdump: 10 IPv4 and 10 IPv6 TCP SYNs (capsule's tcp4.pcap / tcp6.pcap)
    write(HERE / "pktdump" / "tcp4.pcap", [tcp(4, 1025, 1024, "10.0.0.1", "10.0.0.2")] * 10)
    write(HERE / "pktdump" / "tcp6.pcap", [tcp(6, 1025, 1024, "fe80::1", "fe80::2")] * 10)
    # l2fwd: a mix to forward
    write(HERE / "l2fwd" / "in.pcap",
          [udp4("10.0.0.1", "10.0.0.2", 1000 + i, 53) for i in range(8)] + [echo4(9), echo6(9)])
    # nat64: IPv6 clients talking to 64:ff9b::198.51.100.7, and the IPv4 server's replies
    write(HERE / "nat64" / "v6-side.pcap",
          [tcp(6, 40000 + i, 80, f"2001:db8::{i + 1:x}", "64:ff9b::c633:6407", payload=b"GET /")
           for i in range(3)]
          + [udp4("10.9.9.9", "10.9.9.8", 1, 2)])               # not IPv6 TCP: dropped
    write(HERE / "nat64" / "v4-side.pcap",
          [tcp(4, 80, 1025 + i, "198.51.100.7", "203.0.113.1", syn=False, payload=b"200 OK")
           for i in range(3)]
          + [tcp(4, 80, 9999, "198.51.100.7", "203.0.113.1", syn=False)])  # no binding: dropped
    # firewall: traffic for the example rules
    write(HERE / "firewall" / "in.pcap", [
        tcp(4, 40000, 22, "192.0.2.10", "10.0.0.5"),      # ssh from the admin net: allow
        tcp(4, 40001, 22, "198.51.100.9", "10.0.0.5"),    # ssh from elsewhere: deny
        tcp(4, 40002, 443, "198.51.100.9", "10.0.0.80"),  # https to the web server: allow
        udp4("198.51.100.9", "10.0.0.53", 5353, 53),      # dns: allow
        udp4("198.51.100.9", "10.0.0.53", 5353, 161),     # snmp: deny (default)
        echo4(1),                                          # icmp: allow
        tcp(6, 40003, 443, "2001:db8::9", "2001:db8::80"),  # IPv6 https: allow
        tcp(6, 40004, 25, "2001:db8::9", "2001:db8::80"),   # IPv6 smtp: deny (default)
    ])


if __name__ == "__main__":
    main()
