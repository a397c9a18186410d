"""nat64 on two veth links, for tests/test_e2e_linux.py: the translation of
``examples/nat64/nat64.py`` (its :class:`Nat64` class), plus the MAC addresses a real link
needs (the example leaves them unchanged, as capsule's does): source = the port the packet
leaves by, destination = the peer on that side (NAT64_V6_PEER_MAC, NAT64_V4_PEER_MAC).

Ports: ``eth1`` faces the IPv6 client, ``eth2`` the IPv4 server, both on one core.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import nfkit
from nfkit.packets import Ethernet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nat64" / "nat64.py"


def _load_nat64() -> Any:
    from nfkit.cli import load_module
    return load_module(EXAMPLE)


def with_macs(translate: Callable[[nfkit.Mbuf], Any], src: nfkit.MacAddr,
              dst: str) -> Callable[[nfkit.Mbuf], nfkit.Mbuf | None]:
    """``translate``, then set the Ethernet addresses of what it kept."""
    def run(m: nfkit.Mbuf) -> nfkit.Mbuf | None:
        out = translate(m)
        if out is None:
            return None
        mbuf = out.reset()
        eth = mbuf.parse(Ethernet)
        eth.src, eth.dst = src, dst
        return mbuf
    return run


def main(runtime: nfkit.Runtime) -> None:
    nat = _load_nat64().Nat64()
    v6_peer = os.environ["NAT64_V6_PEER_MAC"]
    v4_peer = os.environ["NAT64_V4_PEER_MAC"]
    core = runtime.config.port("eth1").cores[0]
    six = with_macs(nat.six_to_four, runtime.port("eth2").mac_addr, v4_peer)
    four = with_macs(nat.four_to_six, runtime.port("eth1").mac_addr, v6_peer)
    runtime.add_pipeline_to_core(
        core, lambda qs: nfkit.Poll(qs["eth1"]).filter_map(six).send(qs["eth2"], "6to4"))
    runtime.add_pipeline_to_core(
        core, lambda qs: nfkit.Poll(qs["eth2"]).filter_map(four).send(qs["eth1"], "4to6"))
