"""l2fwd: a MAC-swapping forwarder -- every packet goes back out with its Ethernet source
and destination exchanged (the classic DPDK l2fwd benchmark NF).

Three versions of the same NF, tested to give the same bytes (NFKIT_L2FWD picks one):

- ``kernel`` (the default when numba is installed): a JIT kernel swaps the addresses of a
  whole burst in one compiled call -- the fastest;
- ``vector`` (the default without numba): one numpy operation over the burst's columns;
- ``per-packet``: the per-packet API, the reference the tests compare against.
"""

from __future__ import annotations

import os

import nfkit
from nfkit.packets import Ethernet
from nfkit.vector import HAVE_NUMBA, BatchView, kernel


@nfkit.vectorized
def swap(b: BatchView) -> object:
    b.eth.swap_addresses()
    return b.eth.valid          # frames too short for Ethernet are dropped (counted)


@kernel
def swap_kernel(data, slots, data_off, data_len, keep):  # noqa: ANN001
    for i in range(slots.shape[0]):
        s = slots[i]
        o = data_off[s]
        if data_len[s] < 14:
            keep[i] = False             # not even an Ethernet header: drop (counted)
            continue
        for k in range(6):
            t = data[s, o + k]
            data[s, o + k] = data[s, o + 6 + k]
            data[s, o + 6 + k] = t


def swap_per_packet(m: nfkit.Mbuf) -> nfkit.Mbuf:
    m.parse(Ethernet).swap_addresses()
    return m


STAGES = {"kernel": swap_kernel, "vector": swap, "per-packet": swap_per_packet}


def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
    mode = os.environ.get("NFKIT_L2FWD") or ("kernel" if HAVE_NUMBA else "vector")
    if mode not in STAGES:
        raise nfkit.NfkitError(f"NFKIT_L2FWD: expected one of {', '.join(STAGES)}, got {mode!r}")
    return nfkit.Poll(q).map(STAGES[mode]).send(q)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port("eth1", install)
