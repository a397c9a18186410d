"""nd-responder: answers IPv6 neighbor discovery and echo requests for its addresses.

A host that wants to reach one of the responder's addresses first asks for its MAC with a
Neighbor Solicitation (RFC 4861 7.2.3); the responder answers with a Neighbor Advertisement
(solicited and override flags set, the port's MAC in a target link-layer address option),
and then answers the ICMPv6 echo requests (RFC 4443 4.2) sent to that address.  Everything
else is dropped and counted.

The addresses come from the NFKIT_ND_ADDRESSES environment variable (comma-separated), or
``ADDRESSES`` below.  Checks follow RFC 4861 7.1.1: a solicitation must have hop limit 255
and code 0; one from the unspecified address (duplicate address detection) is answered to
all-nodes (ff02::1) without the solicited flag.
"""

from __future__ import annotations

import os
from ipaddress import IPv6Address

import nfkit
from nfkit.packets import (EtherType, Ethernet, Icmpv6, Icmpv6EchoReply, Icmpv6EchoRequest,
                           Icmpv6Type, IpProtocol, Ipv6, LinkLayerAddress, NeighborAdvertisement,
                           NeighborSolicitation)

PORT = "eth1"
ADDRESSES = ("2001:db8:77::1",)
ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = "33:33:00:00:00:01"


def configured_addresses() -> frozenset[IPv6Address]:
    """The addresses to answer for (NFKIT_ND_ADDRESSES, else ``ADDRESSES``)."""
    raw = os.environ.get("NFKIT_ND_ADDRESSES")
    items = [a.strip() for a in raw.split(",") if a.strip()] if raw else list(ADDRESSES)
    return frozenset(IPv6Address(a) for a in items)


class Responder:
    """Answers for ``addresses`` with ``mac`` (the port's MAC)."""

    def __init__(self, addresses: frozenset[IPv6Address], mac: nfkit.MacAddr) -> None:
        self.addresses = addresses
        self.mac = mac

    def wanted(self, m: nfkit.Mbuf) -> bool:
        """Whether ``m`` is a solicitation for, or an echo request to, one of our addresses
        (peeked only: the rest is dropped without further work)."""
        eth = m.peek(Ethernet)
        if eth.ether_type != EtherType.IPV6:
            return False
        ip = eth.peek(Ipv6)
        if ip.next_header != IpProtocol.ICMPV6:
            return False
        icmp = ip.peek(Icmpv6)
        t = icmp.msg_type
        if t == Icmpv6Type.NEIGHBOR_SOLICITATION:
            return (ip.hop_limit == 255 and icmp.code == 0
                    and ip.peek(NeighborSolicitation).target in self.addresses)
        return t == Icmpv6Type.ECHO_REQUEST and ip.dst in self.addresses

    def respond(self, m: nfkit.Mbuf) -> nfkit.Mbuf:
        """A new packet answering ``m`` (a packet :meth:`wanted` accepted)."""
        eth = m.peek(Ethernet)
        ip = eth.peek(Ipv6)
        if ip.peek(Icmpv6).msg_type == Icmpv6Type.NEIGHBOR_SOLICITATION:
            return self.advertise(eth, ip, ip.peek(NeighborSolicitation))
        return self.echo_reply(eth, ip, ip.peek(Icmpv6EchoRequest))

    def advertise(self, eth: Ethernet, ip: Ipv6, ns: NeighborSolicitation) -> nfkit.Mbuf:
        dad = ip.src == IPv6Address("::")
        if dad:
            dst_ip, dst_mac = ALL_NODES, ALL_NODES_MAC
        else:
            sll = ns.option(LinkLayerAddress, LinkLayerAddress.SOURCE)
            dst_ip, dst_mac = ip.src, (sll.addr if sll is not None else eth.src)
        out = nfkit.Mbuf.alloc()
        try:
            reth = out.push(Ethernet)
            reth.src, reth.dst = self.mac, dst_mac
            rip = reth.push(Ipv6)
            rip.src, rip.dst, rip.hop_limit = ns.target, dst_ip, 255
            na = rip.push(NeighborAdvertisement)
            na.solicited, na.override, na.router = not dad, True, False
            na.target = ns.target
            na.add_option(LinkLayerAddress, option_type=LinkLayerAddress.TARGET, addr=self.mac)
            na.reconcile_all()
        except BaseException:
            out.free()
            raise
        return out

    def echo_reply(self, eth: Ethernet, ip: Ipv6, req: Icmpv6EchoRequest) -> nfkit.Mbuf:
        out = nfkit.Mbuf.alloc()
        try:
            reth = out.push(Ethernet)
            reth.src, reth.dst = self.mac, eth.src
            rip = reth.push(Ipv6)
            rip.src, rip.dst, rip.hop_limit = ip.dst, ip.src, 64
            rep = rip.push(Icmpv6EchoReply)
            rep.identifier, rep.seq_no, rep.data = req.identifier, req.seq_no, req.data
            rep.reconcile_all()
        except BaseException:
            out.free()
            raise
        return out


def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
    r = Responder(configured_addresses(), q.mac_addr)
    return nfkit.Poll(q).filter(r.wanted).replace(r.respond).send(q)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port(PORT, install)
