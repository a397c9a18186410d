"""syn-flood: a periodic generator of TCP SYNs from incrementing source addresses
(capsule's syn-flood), with a once-a-second statistics print.

Every 10 ms a periodic pipeline allocates 128 buffers, writes a SYN to 10.100.1.255:80 in
each (sources 10.0.0.1, 10.0.0.2, ...) and sends them out ``eth1``.  Watch with e.g.
``tcpdump -nn host 10.100.1.255 and port 80`` on the receiver.
"""

from __future__ import annotations

import ipaddress

import nfkit
from nfkit.packets import Ethernet, Ipv4, Tcp

TARGET = ipaddress.IPv4Address("10.100.1.255")
BURST = 128


class SynGenerator:
    def __init__(self, src_mac: nfkit.MacAddr) -> None:
        self.src_mac = src_mac
        self.next_ip = int(ipaddress.IPv4Address("10.0.0.0"))

    def __call__(self) -> list[nfkit.Mbuf]:
        try:
            mbufs = nfkit.Mbuf.alloc_bulk(BURST)
        except nfkit.MempoolExhausted as exc:
            print(f"syn-flood: {exc}", flush=True)
            return []
        for m in mbufs:
            eth = m.push(Ethernet)
            eth.src, eth.dst = self.src_mac, "02:00:00:ff:ff:ff"
            ip = eth.push(Ipv4)
            self.next_ip += 1
            ip.src, ip.dst = self.next_ip, TARGET
            tcp = ip.push(Tcp)
            tcp.syn = True
            tcp.seq_no, tcp.window, tcp.dst_port = 1, 10, 80
            tcp.reconcile_all()
        return mbufs


def install(qs: dict[str, nfkit.PortQueue]) -> nfkit.Pipeline:
    q = qs["eth1"]
    return nfkit.poll_fn(SynGenerator(q.mac_addr)).send(q)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_periodic_pipeline_to_core(0, install, 0.01)
    port = runtime.port("eth1")

    def print_stats() -> None:
        c = port.counters()
        print(f"syn-flood: sent {c.tx_packets} SYNs ({c.tx_octets} bytes), dropped {c.tx_dropped}",
              flush=True)

    runtime.add_periodic_task_to_core(0, print_stats, 1.0)
