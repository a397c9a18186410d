"""l2fwd: a MAC-swapping forwarder -- every packet goes back out with its Ethernet source
and destination exchanged (the classic DPDK l2fwd benchmark NF).

The pipeline uses the vector path: one numpy operation swaps the addresses of a whole
burst.  ``swap_per_packet`` is the same NF through the per-packet API, kept as the
reference the tests compare against (set NFKIT_L2FWD=per-packet to run it).
"""

from __future__ import annotations

import os

import nfkit
from nfkit.packets import Ethernet
from nfkit.vector import BatchView


@nfkit.vectorized
def swap(b: BatchView) -> None:
    b.eth.swap_addresses()


def swap_per_packet(m: nfkit.Mbuf) -> nfkit.Mbuf:
    m.parse(Ethernet).swap_addresses()
    return m


def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
    stage = swap_per_packet if os.environ.get("NFKIT_L2FWD") == "per-packet" else swap
    return nfkit.Poll(q).map(stage).send(q)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port("eth1", install)
