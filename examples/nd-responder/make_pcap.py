"""Writes requests.pcap, the sample input of nd-responder.toml: a neighbor solicitation for
2001:db8:77::1, a duplicate address detection probe for it, an echo request to it, and two
packets the responder ignores (a solicitation for another address, an IPv4 frame).

Run: python make_pcap.py  (from this folder)
"""

from __future__ import annotations

from pathlib import Path

import nfkit
from nfkit.packets import (Ethernet, Icmpv6EchoRequest, Ipv4, Ipv6, LinkLayerAddress,
                           NeighborSolicitation, Udp)
from nfkit.pcap import PcapWriter

HOST_MAC = "02:00:00:00:77:02"
HOST_IP = "2001:db8:77::2"
TARGET = "2001:db8:77::1"


def solicitation(src: str, target: str) -> bytes:
    m = nfkit.Mbuf.alloc()
    eth = m.push(Ethernet)
    eth.src, eth.dst = HOST_MAC, "33:33:ff:00:00:01"
    ip = eth.push(Ipv6)
    ip.src, ip.dst, ip.hop_limit = src, "ff02::1:ff00:1", 255
    ns = ip.push(NeighborSolicitation)
    ns.target = target
    if src != "::":
        ns.add_option(LinkLayerAddress, addr=HOST_MAC)
    ns.reconcile_all()
    raw = m.to_bytes()
    m.free()
    return raw


def echo_request() -> bytes:
    m = nfkit.Mbuf.alloc()
    eth = m.push(Ethernet)
    eth.src, eth.dst = HOST_MAC, "02:00:00:00:00:01"
    ip = eth.push(Ipv6)
    ip.src, ip.dst, ip.hop_limit = HOST_IP, TARGET, 64
    req = ip.push(Icmpv6EchoRequest)
    req.identifier, req.seq_no, req.data = 0x77, 1, b"nd-responder"
    req.reconcile_all()
    raw = m.to_bytes()
    m.free()
    return raw


def other_ipv4() -> bytes:
    m = nfkit.Mbuf.alloc()
    eth = m.push(Ethernet)
    eth.src, eth.dst = HOST_MAC, "02:00:00:00:00:01"
    ip = eth.push(Ipv4)
    ip.src, ip.dst = "192.0.2.2", "192.0.2.1"
    udp = ip.push(Udp)
    udp.src_port, udp.dst_port = 5000, 53
    udp.reconcile_all()
    raw = m.to_bytes()
    m.free()
    return raw


def write(path: Path) -> None:
    frames = [solicitation(HOST_IP, TARGET), solicitation("::", TARGET), echo_request(),
              solicitation(HOST_IP, "2001:db8:77::99"), other_ipv4()]
    with PcapWriter(path) as w:
        for i, f in enumerate(frames):
            w.write(f, i + 1)


if __name__ == "__main__":
    write(Path(__file__).resolve().parent / "requests.pcap")
