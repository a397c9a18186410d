"""The router's per-packet operations, Ipv4.decrement_ttl and Ipv6.decrement_hop_limit,
against Scapy's full recomputation of every checksum.

Mutation testing found both reached by no packet test (only the vector comparison and an
example called them): ``% 65535`` -> ``% 65536`` in the incremental IPv4 checksum update,
the weight of the TTL byte, the byte written, all survived.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from nfkit import Mbuf, Mempool
from nfkit.errors import ReadOnlyError
from nfkit.packets import Ethernet, Ipv4, Ipv6
from nfkit.packets.dissect import dissect

E = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def recomputed(raw: bytes) -> bytes:
    """Scapy's bytes of ``raw`` with every IP/UDP checksum computed again."""
    p = Ether(raw)
    for layer in p.iterpayloads():
        for name in ("chksum",):
            if isinstance(layer, (IP, UDP)) and name in layer.fields:
                delattr(layer, name)
    return bytes(p)


def with_checksum(target: int) -> bytes:
    """An IPv4 header whose checksum is ``target``: one more in the ID field is one less
    in the checksum (ones'-complement arithmetic, modulo 0xFFFF)."""
    def frame(ident: int) -> Any:
        return Ether(**E) / IP(src="192.0.2.1", dst="198.51.100.2", ttl=64, id=ident) / b"data"
    c0 = Ether(bytes(frame(0)))[IP].chksum
    raw = bytes(frame((c0 - target) % 0xFFFF))
    assert Ether(raw)[IP].chksum == target
    return raw


@pytest.mark.parametrize("target", [0xFEFF, 0xFF00, 0xFF01, 0xFFFE, 0x0000, 0x00FF, 0x1234])
def test_decrement_ttl_at_every_wrap_of_the_checksum(target: int) -> None:
    raw = with_checksum(target)
    m = Mbuf.from_bytes(raw, Mempool(capacity=1))
    ip = m.parse(Ethernet).parse(Ipv4)
    assert ip.decrement_ttl() == 63 and ip.ttl == 63
    want = Ether(raw)
    want[IP].ttl = 63
    assert m.to_bytes() == recomputed(bytes(want)), hex(target)
    m.free()


@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.binary(max_size=8),
       st.sampled_from([b"", b"\x01" * 4, b"\x07\x07\x04" + bytes(5)]))
def test_decrement_ttl_equals_scapy(ttl: int, ident: int, tos: int, data: bytes, opts: bytes) -> None:
    p = Ether(**E) / IP(src="10.1.2.3", dst="10.9.8.7", ttl=ttl, id=ident, tos=tos, options=opts) / data
    raw = bytes(p)
    m = Mbuf.from_bytes(raw, Mempool(capacity=1))
    ip = m.parse(Ethernet).parse(Ipv4)
    assert ip.decrement_ttl() == max(ttl - 1, 0)
    if ttl == 0:
        assert m.to_bytes() == raw                   # 0 stays 0, the checksum too
    else:
        want = Ether(raw)
        want[IP].ttl = ttl - 1
        assert m.to_bytes() == recomputed(bytes(want))
    m.free()


@given(st.integers(0, 255))
def test_decrement_hop_limit_plain_and_in_a_tunnel(hlim: int) -> None:
    inner = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=hlim) / UDP(sport=1, dport=2) / b"x"
    for p in (Ether(**E) / inner,
              Ether(**E) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=9, dport=4789) / VXLAN(vni=5)
              / Ether(**E) / inner):
        raw = bytes(p)
        m = Mbuf.from_bytes(raw, Mempool(capacity=1))
        ip6 = [h for h in dissect(m)[0] if isinstance(h, Ipv6)][-1]
        assert ip6.decrement_hop_limit() == max(hlim - 1, 0)
        want = Ether(raw)
        want[IPv6].hlim = max(hlim - 1, 0)
        assert m.to_bytes() == recomputed(bytes(want))  # the VXLAN's outer UDP checksum too
        m.free()


def test_peeked_headers_refuse_both() -> None:
    pool = Mempool(capacity=2)
    m4 = Mbuf.from_bytes(bytes(Ether(**E) / IP() / b"x"), pool)
    m6 = Mbuf.from_bytes(bytes(Ether(**E) / IPv6(src="2001:db8::1", dst="2001:db8::2")), pool)
    with pytest.raises(ReadOnlyError, match=r"^cannot change the TTL of a IPv4 header obtained with peek\(\)$"):
        m4.parse(Ethernet).peek(Ipv4).decrement_ttl()
    with pytest.raises(ReadOnlyError, match=r"^cannot change the hop limit of a IPv6 header obtained "
                                            r"with peek\(\)$"):
        m6.parse(Ethernet).peek(Ipv6).decrement_hop_limit()
    assert m4.parse(Ethernet).parse(Ipv4).ttl == 64 and m6.parse(Ethernet).parse(Ipv6).hop_limit == 64
    m4.free()
    m6.free()
