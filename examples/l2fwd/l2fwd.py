"""l2fwd: a MAC-swapping forwarder -- every packet goes back out with its Ethernet source
and destination exchanged (the classic DPDK l2fwd benchmark NF)."""

from __future__ import annotations

import nfkit
from nfkit.packets import Ethernet


def swap(m: nfkit.Mbuf) -> nfkit.Mbuf:
    m.parse(Ethernet).swap_addresses()
    return m


def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
    return nfkit.Poll(q).map(swap).send(q)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port("eth1", install)
