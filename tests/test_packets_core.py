"""Packet semantics on Ethernet, VLAN, IPv4, IPv6, TCP and UDP (capsule's Packet trait)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from nfkit import (FieldValueError, MacAddr, MalformedError, Mbuf, Mempool, ParseError,
                   ProtocolMismatch, ReadOnlyError, TruncatedError)
from nfkit.checksum import checksum, update
from nfkit.packets import Ethernet, EtherType, IpProtocol, Ipv4, Ipv6, Tcp, Udp
from oracle import bad_checksums

# ``checksum_ok`` is nfkit checking nfkit; bad_checksums() (Scapy recomputing every
# checksum) is the independent judge of what nfkit builds and rewrites.


def build_v4_udp(pool: Mempool, payload: bytes = b"hello") -> Mbuf:
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
    ip = eth.push(Ipv4)
    ip.src, ip.dst = "10.0.0.1", "10.0.0.2"
    udp = ip.push(Udp)
    udp.src_port, udp.dst_port = 1234, 53
    udp.set_payload(payload)
    udp.reconcile_all()
    return m


def test_rfc1624_vector() -> None:
    assert update(0xDD2F, 0x5555, 0x3285) == 0x0000


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"\x01") == (~0x0100) & 0xFFFF      # odd byte padded as high byte


def test_push_builds_expected_bytes(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    raw = m.to_bytes()
    assert raw.hex() == ("020000000002" "020000000001" "0800"
                         "45000021000000004011" + raw[24:26].hex() + "0a0000010a000002"
                         "04d20035000d" + raw[40:42].hex() + b"hello".hex())
    ip = m.parse(Ethernet).parse(Ipv4)
    assert ip.checksum_ok and ip.parse(Udp).checksum_ok
    assert bad_checksums(raw) == []
    m.free()


def test_parse_chain_geometry(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    eth = m.parse(Ethernet)
    ip = eth.parse(Ipv4)
    udp = ip.parse(Udp)
    assert (eth.offset, eth.header_len, len(eth)) == (0, 14, 47)
    assert (ip.offset, ip.header_len, ip.payload_len) == (14, 20, 13)
    assert (udp.offset, udp.header_len, udp.payload_len, udp.payload) == (34, 8, 5, b"hello")
    assert udp.envelope is ip and ip.envelope is eth and eth.envelope is m
    assert udp.reset() is m and udp.deparse() is ip
    assert udp.layers() == [eth, ip, udp]
    assert udp.flow().src_port == 1234 and udp.flow().dst_ip == IPv4Address("10.0.0.2")
    assert udp.flow().reverse().dst_port == 1234
    m.free()


def test_fields_round_trip_every_ipv4_field(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    values = dict(dscp=46, ecn=3, identification=0xBEEF, reserved_flag=True, dont_fragment=True,
                  more_fragments=True, fragment_offset=0x1ABC, ttl=7,
                  src=IPv4Address("192.0.2.1"), dst=IPv4Address("198.51.100.7"))
    for k, v in values.items():
        setattr(ip, k, v)
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv4)
    for k, v in values.items():
        assert getattr(again, k) == v, k
    assert again.version == 4 and again.ihl == 5 and again.protocol == IpProtocol.UDP
    assert again.checksum_ok            # every setter kept the header checksum valid
    assert bad_checksums(m.to_bytes()) == []
    m.free()
    again.reset().free()


def test_setters_keep_checksums_valid_incrementally(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    udp = ip.parse(Udp)
    ip.ttl -= 1
    ip.src = "172.16.5.4"
    udp.set_dst_ip("8.8.4.4")
    udp.src_port = 40000
    assert ip.checksum_ok and udp.checksum_ok
    assert ip.checksum == ip.compute_checksum() and udp.checksum == udp.compute_checksum()
    assert bad_checksums(m.to_bytes()) == []    # and Scapy's full recomputation agrees
    m.free()


def test_udp_zero_checksum_stays_zero(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    udp = ip.parse(Udp)
    udp.no_checksum()
    ip.src = "1.2.3.4"                  # capsule turns 0 into a bogus checksum here
    udp.dst_port = 99
    assert udp.checksum == 0 and udp.checksum_ok
    assert bad_checksums(m.to_bytes()) == []    # (Scapy: 0 over IPv4 is "no checksum")
    m.free()


def test_field_value_errors(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    with pytest.raises(FieldValueError, match=r"ttl must be in 0..255, got 256"):
        ip.ttl = 256
    with pytest.raises(FieldValueError, match="dscp"):
        ip.dscp = 64
    with pytest.raises(FieldValueError, match="not an IPv4 address"):
        ip.src = "10.0.0.300"
    with pytest.raises(FieldValueError):
        ip.ttl = "x"
    with pytest.raises(FieldValueError):
        m.parse(Ethernet).src = "zz:00:00:00:00:00"
    m.free()


def test_peek_is_read_only_and_consumes_nothing(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    eth = m.parse(Ethernet)
    ip = eth.peek(Ipv4)
    assert isinstance(ip, Ipv4) and ip.ttl == 64
    with pytest.raises(ReadOnlyError):
        ip.ttl = 1
    with pytest.raises(ReadOnlyError):
        ip.push(Tcp)
    with pytest.raises(ReadOnlyError):
        ip.parse(Udp).remove() if False else ip.remove()
    assert eth.parse(Ipv4).ttl == 64     # the Ethernet header is still usable
    m.free()


def test_remove_and_push_nat64_style(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    eth = m.parse(Ethernet)
    v4 = eth.parse(Ipv4)
    eth2 = v4.remove()
    assert eth2 is eth and m.data_len == 14 + 13
    v6 = eth.push(Ipv6)
    v6.src, v6.dst = "2001:db8::1", "64:ff9b::a00:2"
    assert eth.ether_type == EtherType.IPV6
    v6.next_header = IpProtocol.UDP
    udp = v6.parse(Udp)
    udp.reconcile_all()
    assert v6.payload_length == 13 and udp.checksum_ok
    raw = m.to_bytes()
    assert len(raw) == 14 + 40 + 13 and bad_checksums(raw) == []
    m.free()


def test_ethernet_padding_is_not_payload(pool: Mempool) -> None:
    raw = build_v4_udp(pool, b"").to_bytes()
    padded = Mbuf.from_bytes(raw + b"\0" * (60 - len(raw)), pool)
    ip = padded.parse(Ethernet).parse(Ipv4)
    udp = ip.parse(Udp)
    assert len(ip) == 28 and udp.payload_len == 0 and udp.checksum_ok
    udp.reconcile_all()                  # must not swallow the padding
    assert ip.total_length == 28 and udp.length == 8
    eth = ip.remove()                    # the padding goes with the IP packet
    assert padded.data_len == 14 + 8 and len(eth) == 22


def test_ipv4_options_preserved_and_settable(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    ip.options = b"\x94\x04\x00\x00"     # router alert
    assert ip.ihl == 6 and ip.header_len == 24 and ip.checksum_ok
    udp = ip.parse(Udp)
    udp.reconcile_all()
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv4)
    assert again.options == b"\x94\x04\x00\x00" and again.parse(Udp).payload == b"hello"
    assert again.parse(Udp).checksum_ok and bad_checksums(again.mbuf.to_bytes()) == []
    again.options = b""
    assert again.header_len == 20 and again.checksum_ok
    with pytest.raises(FieldValueError):
        again.options = bytes(44)


def test_tcp_options_and_flags(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    tcp = m.push(Ethernet).push(Ipv6).push(Tcp)
    tcp.syn = tcp.ece = tcp.ns = True
    tcp.options = b"\x02\x04\x05\xb4\x01\x03\x03\x07"  # MSS 1460, NOP, WS 7
    tcp.set_payload(b"data")
    tcp.reconcile_all()
    t = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv6).parse(Tcp)
    assert t.data_offset == 7 and t.header_len == 28 and t.payload == b"data"
    assert t.option_list() == [(2, b"\x05\xb4"), (3, b"\x07")]
    assert t.syn and t.ece and t.ns and not t.ack and t.flags == 0x142
    assert t.checksum_ok and bad_checksums(m.to_bytes()) == []
    t.ack = True
    assert t.syn_ack and t.checksum_ok and bad_checksums(t.mbuf.to_bytes()) == []
    m.free()


def test_vlan_push_pop_and_parse_through_tags(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    eth = m.parse(Ethernet)
    eth.push_vlan(100, pcp=5)
    eth.push_vlan(200)
    assert eth.is_qinq and eth.header_len == 22
    assert [(t.tpid, t.vid) for t in eth.vlans] == [(0x88A8, 200), (0x8100, 100)]
    assert eth.vlans[1].pcp == 5
    assert eth.ether_type == EtherType.IPV4
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet)
    assert again.vlan_id == 200 and again.parse(Ipv4).parse(Udp).checksum_ok
    assert bad_checksums(m.to_bytes()) == []
    assert eth.pop_vlan() == 200 and eth.is_dot1q
    assert eth.pop_vlan() == 100 and eth.header_len == 14
    with pytest.raises(MalformedError):
        eth.pop_vlan()
    assert m.to_bytes() == build_v4_udp(pool).to_bytes()


def test_swap_addresses(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    eth = m.parse(Ethernet)
    eth.swap_addresses()
    assert eth.src == MacAddr("02:00:00:00:00:02") and str(eth.dst) == "02:00:00:00:00:01"
    m.free()


def test_protocol_mismatch_messages(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    eth = m.parse(Ethernet)
    with pytest.raises(ProtocolMismatch, match=r"not an IPv6 packet: ether type is 0x0800 \(IPV4\)"):
        eth.parse(Ipv6)
    with pytest.raises(ProtocolMismatch, match="next protocol is 17"):
        eth.parse(Ipv4).parse(Tcp)
    with pytest.raises(ProtocolMismatch):
        eth.push(Tcp)                    # TCP cannot follow Ethernet
    m.free()


@pytest.mark.parametrize("cut", range(0, 47))
def test_truncated_never_indexerror(pool: Mempool, cut: int) -> None:
    raw = build_v4_udp(pool).to_bytes()
    m = Mbuf.from_bytes(raw[:cut], pool)
    before = m.to_bytes()
    try:
        m.parse(Ethernet).parse(Ipv4).parse(Udp)
    except ParseError as exc:
        assert exc.header in ("Ethernet", "IPv4", "UDP")
    assert m.to_bytes() == before


def test_ipv4_error_messages(pool: Mempool) -> None:
    raw = bytearray(build_v4_udp(pool).to_bytes())
    raw[14] = 0x4F                        # IHL 15 = 60 bytes, only 33 remain
    with pytest.raises(TruncatedError, match="header length 60 exceeds remaining 33 bytes"):
        Mbuf.from_bytes(bytes(raw), pool).parse(Ethernet).parse(Ipv4)
    raw[14] = 0x44
    with pytest.raises(MalformedError, match="header length 16"):
        Mbuf.from_bytes(bytes(raw), pool).parse(Ethernet).parse(Ipv4)
    raw[14] = 0x65
    with pytest.raises(MalformedError, match="version is 6, expected 4"):
        Mbuf.from_bytes(bytes(raw), pool).parse(Ethernet).parse(Ipv4)
    raw[14] = 0x45
    raw[16:18] = (200).to_bytes(2, "big")
    with pytest.raises(TruncatedError, match="total length 200 exceeds remaining 33"):
        Mbuf.from_bytes(bytes(raw), pool).parse(Ethernet).parse(Ipv4)


def test_non_initial_fragment_has_no_transport(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    ip.fragment_offset = 10
    with pytest.raises(ProtocolMismatch, match="non-initial fragment"):
        ip.parse(Udp)
    m.free()


def test_ipv6_fields_and_checksum_cascade(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    ip6 = m.push(Ethernet).push(Ipv6)
    ip6.dscp, ip6.ecn, ip6.flow_label, ip6.hop_limit = 10, 2, 0xABCDE, 3
    ip6.src, ip6.dst = "2001:db8::1", "2001:db8::2"
    tcp = ip6.push(Tcp)
    tcp.reconcile_all()
    assert ip6.traffic_class == (10 << 2) | 2
    ip6.src = IPv6Address("fe80::1234")
    ip6.hop_limit -= 1
    assert tcp.checksum_ok and bad_checksums(m.to_bytes()) == []
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv6)
    assert (again.dscp, again.ecn, again.flow_label, again.hop_limit) == (10, 2, 0xABCDE, 2)
    assert again.src == IPv6Address("fe80::1234") and again.next_header == IpProtocol.TCP
    with pytest.raises(FieldValueError):
        again.flow_label = 1 << 20
    m.free()


def test_truncate_ip_packets(pool: Mempool) -> None:
    m = build_v4_udp(pool, b"x" * 200)
    ip = m.parse(Ethernet).parse(Ipv4)
    with pytest.raises(FieldValueError):
        ip.truncate(67)
    ip.truncate(100)
    ip.reconcile()
    assert m.data_len == 114 and ip.total_length == 100 and ip.checksum_ok
    # Scapy agrees on the IPv4 checksum; UDP's is stale (its datagram was cut, unreconciled)
    assert [x.split()[0] for x in bad_checksums(m.to_bytes())] == ["2:UDP.chksum"]
    m.free()


def test_repr_is_derived_from_the_declaration(pool: Mempool) -> None:
    m = build_v4_udp(pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    text = repr(ip)
    assert text.startswith("IPv4(version=4, ihl=5, dscp=0")
    assert "protocol=UDP" in text and "src=10.0.0.1" in text and "offset=14" in text
    assert "traffic_class" not in repr(Mbuf.alloc(pool).push(Ethernet).push(Ipv6))
    assert "(peek)" in repr(m.peek(Ethernet))
    m.free()


def test_macaddr() -> None:
    a = MacAddr("AA-bb-cc-dd-ee-0f")
    assert str(a) == "aa:bb:cc:dd:ee:0f" and a == MacAddr(0xAABBCCDDEE0F)
    assert MacAddr.BROADCAST.is_broadcast and MacAddr("01:00:5e:00:00:01").is_multicast
    for bad in ("aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fg", "aa:bb:cc:dd:ee:ff:00", "aabbccddeeff"):
        with pytest.raises(FieldValueError):
            MacAddr(bad)
