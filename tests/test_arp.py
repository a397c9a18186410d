"""ARP (IPv4 over Ethernet): push, parse, field round trips, and Scapy as the oracle."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, strategies as st
from scapy.layers.l2 import ARP, Dot1Q, Ether

from nfkit import (MacAddr, MalformedError, Mbuf, Mempool, ParseError, ProtocolMismatch,
                   ReadOnlyError, TruncatedError)
from nfkit.packets import Ethernet, EtherType, Ipv4
from nfkit.packets.arp import Arp, ArpOp
from nfkit.packets.dissect import dissect, summarize

#: a private pool for the hypothesis tests (function-scoped fixtures do not mix with @given)
POOL = Mempool(capacity=63, name="arp-tests")

macs = st.binary(min_size=6, max_size=6).map(MacAddr)
ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)


def build_request(pool: Mempool) -> Mbuf:
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:01", MacAddr.BROADCAST
    arp = eth.push(Arp)
    arp.sender_hw_addr = "02:00:00:00:00:01"
    arp.sender_ip = "10.0.0.1"
    arp.target_ip = "10.0.0.2"
    return m


def take_bytes(m: Mbuf) -> bytes:
    """The packet's bytes; the mbuf is freed."""
    raw = m.to_bytes()
    m.free()
    return raw


def test_push_writes_ethernet_ipv4_defaults(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    arp = eth.push(Arp)
    assert eth.ether_type == EtherType.ARP
    assert m.to_bytes()[14:] == bytes.fromhex("0001 0800 06 04 0001") + bytes(20)
    assert (arp.header_len, arp.payload_len, arp.operation) == (28, 0, ArpOp.REQUEST)
    assert arp.is_request and not arp.is_reply
    m.free()
    assert pool.in_use == 0


def test_every_field_round_trips(pool: Mempool) -> None:
    m = build_request(pool)
    arp = m.parse(Ethernet).parse(Arp)
    values = dict(operation=ArpOp.REPLY_REVERSE, sender_hw_addr=MacAddr("aa:bb:cc:dd:ee:ff"),
                  sender_ip=IPv4Address("192.0.2.1"), target_hw_addr=MacAddr("11:22:33:44:55:66"),
                  target_ip=IPv4Address("198.51.100.9"))
    for k, v in values.items():
        setattr(arp, k, v)
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Arp)
    assert again.fields() == {"hardware_type": 1, "protocol_type": 0x0800,
                              "hardware_addr_len": 6, "protocol_addr_len": 4, **values}
    m.free()
    again.reset().free()


def test_summary_like_tcpdump(pool: Mempool) -> None:
    m = build_request(pool)
    arp = m.parse(Ethernet).parse(Arp)
    assert arp.summary() == "ARP who-has 10.0.0.2 tell 10.0.0.1"
    arp.make_reply("aa:bb:cc:dd:ee:ff")
    assert arp.summary() == "ARP 10.0.0.2 is-at aa:bb:cc:dd:ee:ff"
    assert (arp.target_ip, arp.target_hw_addr) == (IPv4Address("10.0.0.1"),
                                                   MacAddr("02:00:00:00:00:01"))
    arp.operation = ArpOp.REQUEST_REVERSE
    assert arp.summary().startswith("ARP request-reverse ")
    assert "operation=REQUEST_REVERSE" in repr(arp)
    m.free()


@given(op=st.integers(1, 4), sha=macs, spa=ipv4s, tha=macs, tpa=ipv4s)
def test_nfkit_builds_scapy_dissects(op: int, sha: MacAddr, spa: IPv4Address, tha: MacAddr,
                                     tpa: IPv4Address) -> None:
    m = Mbuf.alloc(POOL)
    arp = m.push(Ethernet).push(Arp)
    arp.operation, arp.sender_hw_addr, arp.sender_ip = op, sha, spa
    arp.target_hw_addr, arp.target_ip = tha, tpa
    s = Ether(m.to_bytes())[ARP]
    m.free()
    assert (s.hwtype, s.ptype, s.hwlen, s.plen, s.op) == (1, 0x0800, 6, 4, op)
    assert (s.hwsrc, s.psrc, s.hwdst, s.pdst) == (str(sha), str(spa), str(tha), str(tpa))


@given(op=st.integers(0, 0xFFFF), sha=macs, spa=ipv4s, tha=macs, tpa=ipv4s,
       vlan=st.one_of(st.none(), st.integers(0, 4095)))
def test_scapy_builds_nfkit_parses(op: int, sha: MacAddr, spa: IPv4Address, tha: MacAddr,
                                   tpa: IPv4Address, vlan: int | None) -> None:
    arp = ARP(op=op, hwsrc=str(sha), psrc=str(spa), hwdst=str(tha), pdst=str(tpa))
    frame = Ether() / (Dot1Q(vlan=vlan) / arp if vlan is not None else arp)
    m = Mbuf.from_bytes(bytes(frame), POOL)
    try:
        eth = m.parse(Ethernet)
        assert eth.vlan_id == vlan
        p = eth.parse(Arp)
        assert (p.operation, p.sender_hw_addr, p.sender_ip, p.target_hw_addr, p.target_ip) == \
            (op, sha, spa, tha, tpa)
    finally:
        m.free()


def test_ethernet_padding_after_arp_is_payload_not_header(pool: Mempool) -> None:
    raw = bytes(Ether() / ARP(pdst="10.0.0.9"))
    m = Mbuf.from_bytes(raw + bytes(60 - len(raw)), pool)
    arp = m.parse(Ethernet).parse(Arp)
    assert (arp.header_len, arp.payload_len, arp.target_ip) == (28, 18, IPv4Address("10.0.0.9"))
    m.free()


@pytest.mark.parametrize("offset, value, field", [
    (0, b"\x00\x06", "hardware_type is 0x6"),
    (2, b"\x86\xdd", "protocol_type is 0x86dd"),
    (4, b"\x08", "hardware_addr_len is 0x8"),
    (5, b"\x10", "protocol_addr_len is 0x10"),
])
def test_other_address_types_are_malformed(pool: Mempool, offset: int, value: bytes,
                                           field: str) -> None:
    raw = bytearray(take_bytes(build_request(pool)))
    raw[14 + offset:14 + offset + len(value)] = value
    m = Mbuf.from_bytes(bytes(raw), pool)
    with pytest.raises(MalformedError, match=field):
        m.parse(Ethernet).parse(Arp)
    m.free()


@pytest.mark.parametrize("cut", range(0, 42))
def test_truncated_raises_parse_error(pool: Mempool, cut: int) -> None:
    raw = take_bytes(build_request(pool))
    m = Mbuf.from_bytes(raw[:cut], pool)
    with pytest.raises(TruncatedError):
        m.parse(Ethernet).parse(Arp)
    m.free()


def test_protocol_mismatches(pool: Mempool) -> None:
    m = build_request(pool)
    eth = m.parse(Ethernet)
    with pytest.raises(ProtocolMismatch, match="not an IPv4 packet"):
        eth.parse(Ipv4)
    ip_frame = Mbuf.alloc(pool)
    ip = ip_frame.push(Ethernet).push(Ipv4)
    with pytest.raises(ProtocolMismatch, match="not an ARP packet"):
        ip.envelope.parse(Arp)
    with pytest.raises(ProtocolMismatch, match="cannot follow IPv4"):
        ip.push(Arp)
    with pytest.raises(ParseError):
        eth.parse(Arp).parse(Ipv4)     # ARP carries nothing
    m.free()
    ip_frame.free()


def test_peek_refuses_setters(pool: Mempool) -> None:
    m = build_request(pool)
    arp = m.peek(Ethernet).peek(Arp)
    assert isinstance(arp, Arp) and "(peek)" in repr(arp)
    for name, value in [("operation", 2), ("sender_ip", "1.2.3.4"), ("target_hw_addr", 0)]:
        with pytest.raises(ReadOnlyError):
            setattr(arp, name, value)
    with pytest.raises(ReadOnlyError):
        arp.make_reply("aa:bb:cc:dd:ee:ff")
    with pytest.raises(ReadOnlyError):
        arp.remove()
    assert arp.target_ip == IPv4Address("10.0.0.2")
    m.free()


def test_remove_then_push_again(pool: Mempool) -> None:
    m = build_request(pool)
    before = m.to_bytes()
    eth = m.parse(Ethernet).parse(Arp).remove()
    assert len(m) == 14
    arp = eth.push(Arp)
    arp.sender_hw_addr, arp.sender_ip, arp.target_ip = "02:00:00:00:00:01", "10.0.0.1", "10.0.0.2"
    assert m.to_bytes() == before
    m.free()


def test_dissect_finds_arp(pool: Mempool) -> None:
    m = build_request(pool)
    layers, err = dissect(m)
    assert [type(p) for p in layers] == [Ethernet, Arp] and err is None
    assert summarize(m).endswith(" / ARP who-has 10.0.0.2 tell 10.0.0.1")
    m.free()
