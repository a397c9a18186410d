"""arp-responder: answers ARP requests for its IPv4 addresses with its port's MAC.

The first NF to put on a real interface: a host on the link that wants to reach one of the
responder's addresses broadcasts "who-has A tell S"; the responder turns that request into
the reply "A is-at <port MAC>" in place (RFC 826: the sender's addresses become the target's,
``Arp.make_reply``) and sends it back to the asker, whose kernel then has a neighbour entry
for A.  Per-packet API, one request at a time -- ARP is a trickle, not a flood.

Everything else is dropped and counted in the pipeline's ``drop``: other EtherTypes, ARP
replies, requests for addresses not ours, and ARP that is not Ethernet/IPv4 or is cut short
(nfkit refuses to parse those; they are dropped here instead of aborting the stage).

The addresses come from the NFKIT_ARP_ADDRESSES environment variable (comma-separated), or
``ADDRESSES`` below.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address

import nfkit
from nfkit.packets import Arp, EtherType, Ethernet

PORT = "eth1"
ADDRESSES = ("192.0.2.1",)


def configured_addresses() -> frozenset[IPv4Address]:
    """The addresses to answer for (NFKIT_ARP_ADDRESSES, else ``ADDRESSES``)."""
    raw = os.environ.get("NFKIT_ARP_ADDRESSES")
    items = [a.strip() for a in raw.split(",") if a.strip()] if raw else list(ADDRESSES)
    return frozenset(IPv4Address(a) for a in items)


class Responder:
    """Answers for ``addresses`` with ``mac`` (the port's MAC)."""

    def __init__(self, addresses: frozenset[IPv4Address], mac: nfkit.MacAddr) -> None:
        self.addresses = addresses
        self.mac = mac

    def wanted(self, m: nfkit.Mbuf) -> bool:
        """Whether ``m`` is an ARP request for one of our addresses (peeked only)."""
        try:
            eth = m.peek(Ethernet)
            if eth.ether_type != EtherType.ARP:
                return False
            arp = eth.peek(Arp)
        except nfkit.ParseError:        # too short, or not Ethernet/IPv4 ARP
            return False
        return arp.is_request and arp.target_ip in self.addresses

    def answer(self, m: nfkit.Mbuf) -> nfkit.Mbuf:
        """``m`` (a request :meth:`wanted` accepted) turned into its reply, in place."""
        eth = m.parse(Ethernet)
        eth.parse(Arp).make_reply(self.mac)
        eth.dst, eth.src = eth.src, self.mac     # back to the asker, from us
        return m


def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
    r = Responder(configured_addresses(), q.mac_addr)
    return nfkit.Poll(q).filter(r.wanted).map(r.answer).send(q)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port(PORT, install)
