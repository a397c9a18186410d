"""The nat64 example's JIT kernels give byte for byte what its per-packet version gives,
on hypothesis-generated mixes (VLAN tags, hop limits, prefixes, options, padding, cuts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, strategies as st

from nfkit import Mbuf, Mempool, NfkitError
from nfkit.cli import load_module
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp
from nfkit.testing import packet, sr_tcp, v4_tcp, v4_udp, v6_tcp, v6_udp

from test_vector_view import mangled

nat64 = load_module(Path(__file__).parents[1] / "examples" / "nat64" / "nat64.py")

CLIENTS = st.sampled_from(["2001:db8::1", "2001:db8::2", "2001:db8:ffff::1234:5678", "fe80::1"])
V6_DST = st.sampled_from(["64:ff9b::c633:6407", "64:ff9b::a00:1", "64:ff9b:1::1", "2001:db8::80"])


SIX = st.one_of(v6_tcp(ipv6_src=CLIENTS, ipv6_dst=V6_DST, ipv6_hop_limit=st.integers(0, 3) | st.just(64),
                       src_port=st.integers(1000, 1003), payload=st.binary(max_size=12)),
                v6_udp(ipv6_dst=V6_DST), sr_tcp(), v4_tcp())
FOUR = st.one_of(v4_tcp(ipv4_ttl=st.integers(0, 3) | st.just(64), dst_port=st.integers(1024, 1030),
                        payload=st.binary(max_size=12)),
                 packet(Ethernet, Ipv4, Tcp, dst_port=1025, ipv4_more_fragments=st.booleans()),
                 v4_udp(dst_port=1025), v6_tcp())


def per_packet(fn: Any, raws: list[bytes]) -> list[bytes | None]:
    out = []
    for raw in raws:
        m = Mbuf.from_bytes(raw)
        try:
            r = fn(m)
        except NfkitError:      # a pipeline aborts (drops and counts) these
            r = None
        out.append(m.to_bytes() if r is not None else None)
        m.free()
    return out


def kernel(k: Any, raws: list[bytes], python: bool) -> list[bytes | None]:
    pool = Mempool(capacity=64)
    slots = np.array([Mbuf.from_bytes(r, pool).slot for r in raws], dtype=np.int64)
    keep = k.run(pool, slots, python=python)
    return [Mbuf(pool, int(s)).to_bytes() if kp else None for s, kp in zip(slots, keep)]


@given(st.lists(mangled(SIX), min_size=1, max_size=20), st.lists(mangled(FOUR), max_size=20))
def test_kernels_equal_per_packet_both_ways(six: list[bytes], four: list[bytes]) -> None:
    ref = nat64.Nat64()
    want6 = per_packet(ref.six_to_four, six)
    want4 = per_packet(ref.four_to_six, four)
    for python in (False, True):
        k = nat64.KernelNat64()
        assert kernel(k.six_to_four, six, python) == want6
        assert kernel(k.four_to_six, four, python) == want4
        assert len(k) == len(ref.port_to_v6)


def test_translated_packets_parse_with_valid_checksums() -> None:
    k = nat64.KernelNat64()
    m = Mbuf.alloc()
    t = m.push(Ethernet).push(Ipv6).push(Tcp)
    t.envelope.src, t.envelope.dst, t.src_port, t.dst_port = "2001:db8::7", "64:ff9b::c000:201", 4242, 80
    t.set_payload(b"hello")
    t.reconcile_all()
    raw = m.to_bytes()
    m.free()
    (out,) = kernel(k.six_to_four, [raw], python=False)
    v4 = Mbuf.from_bytes(out).parse(Ethernet).parse(Ipv4)
    tcp = v4.parse(Tcp)
    assert str(v4.src) == "203.0.113.1" and str(v4.dst) == "192.0.2.1" and tcp.src_port == 1025
    assert v4.checksum_ok and tcp.checksum_ok and v4.ttl == 63
    # and the reply comes back to the client
    v4.src, v4.dst = v4.dst, v4.src
    tcp.src_port, tcp.dst_port = 80, 1025
    (back,) = kernel(k.four_to_six, [v4.mbuf.to_bytes()], python=False)
    v6 = Mbuf.from_bytes(back).parse(Ethernet).parse(Ipv6)
    t6 = v6.parse(Tcp)
    assert str(v6.dst) == "2001:db8::7" and str(v6.src) == "64:ff9b::c000:201"
    assert t6.dst_port == 4242 and t6.checksum_ok and bytes(t6.payload) == b"hello"
    Mbuf.free_bulk([v4.mbuf, v6.mbuf])
