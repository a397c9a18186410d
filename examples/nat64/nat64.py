"""nat64: stateful IPv6 <-> IPv4 translation of TCP with the well-known prefix 64:ff9b::/96
(capsule's nat64, RFC 6146 in miniature).

``eth1`` faces IPv6 clients, ``eth2`` the IPv4 internet.  A client's packet to
64:ff9b::a.b.c.d leaves as an IPv4 packet from 203.0.113.1 to a.b.c.d with a source port
allocated for the client's (address, port) -- from 1025 up, as capsule does; replies to
that port are translated back.  Anything else (non-TCP, fragments, unknown bindings,
expired hop limits) is dropped and counted.  Unlike capsule, a hop limit / TTL of 1 or 0 is
dropped instead of wrapping around, and running out of ports drops instead of panicking.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import nfkit
from nfkit.packets import EtherType, Ethernet, IpProtocol, Ipv4, Ipv6, Tcp

PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
GATEWAY_V4 = ipaddress.IPv4Address("203.0.113.1")


class Nat64:
    """The bindings: (IPv6 address, port) <-> IPv4 port of the gateway."""

    def __init__(self, first_port: int = 1025) -> None:
        self.next_port = first_port
        self.v6_to_port: dict[tuple[ipaddress.IPv6Address, int], int] = {}
        self.port_to_v6: dict[int, tuple[ipaddress.IPv6Address, int]] = {}

    def port_for(self, addr: ipaddress.IPv6Address, port: int) -> int | None:
        key = (addr, port)
        p = self.v6_to_port.get(key)
        if p is None:
            if self.next_port > 65535:
                return None
            p = self.next_port
            self.next_port += 1
            self.v6_to_port[key] = p
            self.port_to_v6[p] = key
        return p

    def six_to_four(self, m: nfkit.Mbuf) -> Any:
        eth = m.parse(Ethernet)
        if eth.ether_type != EtherType.IPV6:
            return None
        v6 = eth.parse(Ipv6)
        if v6.next_header != IpProtocol.TCP or v6.hop_limit <= 1 or v6.dst not in PREFIX:
            return None
        dscp, ecn, ttl = v6.dscp, v6.ecn, v6.hop_limit - 1
        src, sport = v6.src, v6.parse(Tcp).src_port
        dst = ipaddress.IPv4Address(int(v6.dst) & 0xFFFFFFFF)
        port = self.port_for(src, sport)
        if port is None:
            return None
        v4 = v6.remove().push(Ipv4)
        v4.dscp, v4.ecn, v4.ttl, v4.protocol = dscp, ecn, ttl, IpProtocol.TCP
        v4.src, v4.dst = GATEWAY_V4, dst
        tcp = v4.parse(Tcp)
        tcp.src_port = port
        tcp.reconcile_all()
        return tcp

    def four_to_six(self, m: nfkit.Mbuf) -> Any:
        eth = m.parse(Ethernet)
        if eth.ether_type != EtherType.IPV4:
            return None
        v4 = eth.parse(Ipv4)
        if v4.protocol != IpProtocol.TCP or v4.is_fragment or v4.ttl <= 1:
            return None
        binding = self.port_to_v6.get(v4.parse(Tcp).dst_port)
        if binding is None:
            return None
        dscp, ecn, hops, src = v4.dscp, v4.ecn, v4.ttl - 1, v4.src
        v6 = v4.remove().push(Ipv6)
        v6.dscp, v6.ecn, v6.hop_limit, v6.next_header = dscp, ecn, hops, IpProtocol.TCP
        v6.src = PREFIX[int(src)]
        v6.dst = binding[0]
        tcp = v6.parse(Tcp)
        tcp.dst_port = binding[1]
        tcp.reconcile_all()
        return tcp


def main(runtime: nfkit.Runtime) -> None:
    nat = Nat64()
    core = runtime.config.port("eth1").cores[0]
    runtime.add_pipeline_to_core(
        core, lambda qs: nfkit.Poll(qs["eth1"]).filter_map(nat.six_to_four).send(qs["eth2"], "6to4"))
    runtime.add_pipeline_to_core(
        core, lambda qs: nfkit.Poll(qs["eth2"]).filter_map(nat.four_to_six).send(qs["eth1"], "4to6"))
