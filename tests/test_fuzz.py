"""Bad input is normal input: any bytes, through any parser, only ever raise ParseError.

Packets are placed at the very end of their pool's memory, so a read past the end of a
packet is an IndexError here instead of a silent read of the next buffer.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st

from nfkit import Mbuf, Mempool, ParseError
from nfkit.packets import base
from nfkit.packets.constants import EtherType, IpProtocol
from nfkit.packets.dissect import dissect
from nfkit.testing import v4_tcp, v4_udp, v6_tcp, v6_udp


def at_end_of_pool(raw: bytes) -> Mbuf:
    """An Mbuf whose last byte is the last byte of the pool's memory."""
    pool = Mempool(capacity=1, buf_size=2048, headroom=128)
    m = Mbuf.alloc(pool)
    off = pool.stride - len(raw)
    pool.data_off[m.slot] = off
    pool.data_len[m.slot] = len(raw)
    m.write_data(0, raw) if raw else None
    return m


def exercise(m: Mbuf) -> None:
    """Dissect, then read every field and the summaries: nothing but ParseError."""
    layers, err = dissect(m)
    assert err is None or isinstance(err, ParseError)
    for p in layers:
        p.fields()
        repr(p)
        p.summary()
        p.payload
    try_every_class(m, layers)


def try_every_class(m: Mbuf, layers: list[Any]) -> None:
    envs: list[Any] = [m] + layers
    for env in envs:
        for cls in list(base.REGISTRY):
            try:
                p = env.parse(cls)
            except ParseError:
                continue
            p.fields()
            repr(p)


# Prefixes that route random bytes into each parser: Ethernet with each ether type, IPv4 and
# IPv6 with each next protocol, UDP with each tunnel port.
def _eth(t: int) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + t.to_bytes(2, "big")


def _v4(proto: int) -> bytes:
    return _eth(EtherType.IPV4) + bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0]) + bytes(8)


def _v6(nh: int) -> bytes:
    return _eth(EtherType.IPV6) + bytes([0x60, 0, 0, 0, 0, 0, nh, 64]) + bytes(32)


PREFIXES = [b"", _eth(0x8100), _eth(0x88A8)]
PREFIXES += [_eth(t) for t in (0x0800, 0x0806, 0x86DD, 0x6558)]
PREFIXES += [_v4(p) for p in (1, 4, 6, 17, 41, 47, 58)]
PREFIXES += [_v6(p) for p in (0, 4, 6, 17, 41, 43, 44, 47, 58, 60)]
PREFIXES += [_v4(17) + (1234).to_bytes(2, "big") + port.to_bytes(2, "big") + bytes(4)
             for port in (4789, 2152)]


@given(st.binary(max_size=200))
def test_random_bytes(raw: bytes) -> None:
    exercise(at_end_of_pool(raw))


@pytest.mark.parametrize("prefix", PREFIXES, ids=lambda p: p.hex()[:48] or "empty")
@given(tail=st.binary(max_size=120))
def test_random_bytes_after_each_header(prefix: bytes, tail: bytes) -> None:
    exercise(at_end_of_pool(prefix + tail))


@given(st.one_of(v4_udp(), v4_tcp(), v6_udp(), v6_tcp()), st.data())
def test_every_truncation_of_valid_packets(m: Mbuf, data: st.DataObject) -> None:
    raw = m.to_bytes()
    m.free()
    cut = data.draw(st.integers(0, len(raw)))
    exercise(at_end_of_pool(raw[:cut]))


@given(st.one_of(v4_udp(), v4_tcp(), v6_udp(), v6_tcp()), st.data())
def test_random_byte_flips_in_valid_packets(m: Mbuf, data: st.DataObject) -> None:
    raw = bytearray(m.to_bytes())
    m.free()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    exercise(at_end_of_pool(bytes(raw)))


def test_known_nasty_inputs() -> None:
    nasty = [
        _v4(6)[:-20] + bytes([0x4F]) + bytes(10),          # IHL 15 in a short packet
        _v4(6) + bytes(12) + bytes([0xF0]) + bytes(7),     # TCP data offset 15
        _v4(6) + bytes(12) + bytes([0x10]) + bytes(7),     # TCP data offset 1
        _eth(0x8100) * 30,                                 # endless VLAN tags
        _v6(IpProtocol.HOPOPT) + bytes([0, 255]) + bytes(6),
        _v6(IpProtocol.IPV6_ROUTE) + bytes([6, 255, 4, 0, 255, 0, 0, 0]),
    ]
    for raw in nasty:
        exercise(at_end_of_pool(raw))
