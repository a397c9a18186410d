"""pktdump: print every packet's headers as it goes through (capsule's pktdump).

The pipeline prints the Ethernet header, then splits by ether type: IPv4 and IPv6 packets
get their IP and TCP headers and flow printed; other packets pass through untouched.  Every
packet is forwarded back out its port.  A non-TCP IP packet aborts (as in capsule).
"""

from __future__ import annotations

import nfkit
from nfkit.packets import EtherType, Ethernet, Ipv4, Ipv6, Tcp


def dump_eth(m: nfkit.Mbuf) -> Ethernet:
    eth = m.parse(Ethernet)
    print(repr(eth), flush=True)
    return eth


def dump_ip(eth: Ethernet, cls: type) -> None:
    ip = eth.peek(cls)
    print(repr(ip))
    tcp = ip.peek(Tcp)
    print(repr(tcp))
    print(f"flow {tcp.flow()}", flush=True)


def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
    return (nfkit.Poll(q)
            .map(dump_eth)
            .group_by(lambda eth: eth.ether_type, {
                EtherType.IPV4: lambda g: g.for_each(lambda eth: dump_ip(eth, Ipv4)),
                EtherType.IPV6: lambda g: g.for_each(lambda eth: dump_ip(eth, Ipv6)),
            })
            .send(q))


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port("eth1", install)
    runtime.add_pipeline_to_port("eth2", install)
