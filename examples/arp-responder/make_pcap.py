"""Writes requests.pcap, the sample input of arp-responder.toml: two ARP requests for
192.0.2.1 (one from a host probing for a duplicate address, sender 0.0.0.0), and three
packets the responder drops: a request for another address, an ARP reply, an IPv4 frame.

Run: python make_pcap.py  (from this folder)
"""

from __future__ import annotations

from pathlib import Path

import nfkit
from nfkit.packets import Arp, ArpOp, Ethernet, Ipv4, Udp
from nfkit.pcap import PcapWriter

HOST_MAC = "02:00:00:00:02:02"
HOST_IP = "192.0.2.2"
T0 = 1_700_000_000_000_000_000


def arp(op: int, sender_ip: str, target_ip: str) -> bytes:
    m = nfkit.Mbuf.alloc()
    try:
        eth = m.push(Ethernet)
        eth.src, eth.dst = HOST_MAC, "ff:ff:ff:ff:ff:ff"
        a = eth.push(Arp)
        a.operation, a.sender_hw_addr, a.sender_ip, a.target_ip = op, HOST_MAC, sender_ip, target_ip
        return m.to_bytes()
    finally:
        m.free()


def udp() -> bytes:
    m = nfkit.Mbuf.alloc()
    try:
        eth = m.push(Ethernet)
        eth.src, eth.dst = HOST_MAC, "02:00:00:00:00:01"
        ip = eth.push(Ipv4)
        ip.src, ip.dst = HOST_IP, "192.0.2.1"
        ip.push(Udp).reconcile_all()
        return m.to_bytes()
    finally:
        m.free()


def frames() -> list[bytes]:
    return [arp(ArpOp.REQUEST, HOST_IP, "192.0.2.1"),
            arp(ArpOp.REQUEST, HOST_IP, "192.0.2.99"),     # not ours: dropped
            arp(ArpOp.REPLY, HOST_IP, "192.0.2.1"),        # a reply: dropped
            udp(),                                         # not ARP: dropped
            arp(ArpOp.REQUEST, "0.0.0.0", "192.0.2.1")]    # RFC 5227 probe: answered


if __name__ == "__main__":
    with PcapWriter(Path(__file__).with_name("requests.pcap")) as w:
        for i, f in enumerate(frames()):
            w.write(f, T0 + i * 1_000_000)
