"""Scapy agrees with nfkit both ways on hypothesis-generated packets."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from nfkit import Mbuf
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp, Udp
from nfkit.packets.dissect import dissect
from nfkit.testing import sr_tcp, v4_icmp, v4_tcp, v4_udp, v6_icmp, v6_tcp, v6_udp
from oracle import compare, recomputed

payloads = st.binary(max_size=40)


def _check_nfkit_built(m: Mbuf) -> None:
    raw = m.to_bytes()
    layers, err = dissect(m)
    assert err is None
    compare(layers, raw)
    assert recomputed(raw) == raw, "Scapy computes different checksums or lengths"
    m.free()


@given(v4_udp(payload=payloads))
def test_v4_udp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


@given(v4_tcp(payload=payloads))
def test_v4_tcp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


@given(v6_udp(payload=payloads))
def test_v6_udp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


@given(v6_tcp(payload=payloads))
def test_v6_tcp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


ports = st.integers(0, 65535)
macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)


def _parse_all(raw: bytes) -> list:
    m = Mbuf.from_bytes(raw)
    layers, err = dissect(m)
    assert err is None, err
    return layers


@given(src=macs, dst=macs, ip_src=v4, ip_dst=v4, tos=st.integers(0, 255), ttl=st.integers(0, 255),
       ident=st.integers(0, 65535), flags=st.integers(0, 7), sport=ports, dport=ports,
       payload=payloads, options=st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00"]))
def test_scapy_builds_v4_udp_nfkit_agrees(src, dst, ip_src, ip_dst, tos, ttl, ident, flags,
                                          sport, dport, payload, options) -> None:
    from scapy.layers.inet import IPOption
    pkt = (Ether(src=src, dst=dst) / IP(src=ip_src, dst=ip_dst, tos=tos, ttl=ttl, id=ident,
                                         flags=flags, options=[IPOption(options)] if options else [])
           / UDP(sport=sport, dport=dport) / payload)
    raw = bytes(pkt)
    layers = _parse_all(raw)
    assert [type(p) for p in layers] == [Ethernet, Ipv4, Udp]
    compare(layers, raw)
    assert layers[1].options == options and layers[1].checksum_ok
    assert layers[2].payload == payload and layers[2].checksum_ok
    layers[0].reset().free()


@given(sport=ports, dport=ports, seq=st.integers(0, 2**32 - 1), ack=st.integers(0, 2**32 - 1),
       flags=st.integers(0, 0x1FF), window=ports, urg=ports, payload=payloads,
       options=st.sampled_from([[], [("MSS", 1460)], [("MSS", 536), ("NOP", None), ("WScale", 7)],
                                [("Timestamp", (1, 2))]]),
       vlan=st.sampled_from([None, 7, (100, 200)]), ip_src=v6, ip_dst=v6,
       tc=st.integers(0, 255), fl=st.integers(0, 2**20 - 1), hlim=st.integers(0, 255))
def test_scapy_builds_v6_tcp_nfkit_agrees(sport, dport, seq, ack, flags, window, urg, payload,
                                          options, vlan, ip_src, ip_dst, tc, fl, hlim) -> None:
    l2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if isinstance(vlan, int):
        l2 = l2 / Dot1Q(vlan=vlan)
    elif vlan:
        l2 = l2 / Dot1AD(vlan=vlan[0]) / Dot1Q(vlan=vlan[1])
    pkt = (l2 / IPv6(src=ip_src, dst=ip_dst, tc=tc, fl=fl, hlim=hlim)
           / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window,
                 urgptr=urg, options=options) / payload)
    raw = bytes(pkt)
    layers = _parse_all(raw)
    assert [type(p) for p in layers] == [Ethernet, Ipv6, Tcp]
    compare(layers, raw)
    eth, _, tcp = layers
    if isinstance(vlan, int):
        assert eth.vlan_id == vlan and eth.is_dot1q
    elif vlan:
        assert [t.vid for t in eth.vlans] == list(vlan) and eth.is_qinq
    assert tcp.payload == payload and tcp.checksum_ok
    assert tcp.options == bytes(pkt[TCP])[20:tcp.header_len]
    eth.reset().free()


@given(v4_tcp(), st.ip_addresses(v=4), ports)
def test_nat_style_rewrite_keeps_checksums_scapy_valid(m: Mbuf, new_src, new_port) -> None:
    tcp = m.parse(Ethernet).parse(Ipv4).parse(Tcp)
    tcp.set_src_ip(new_src)
    tcp.src_port = new_port
    tcp.envelope.decrement_ttl()
    raw = m.to_bytes()
    assert recomputed(raw) == raw       # incremental updates == Scapy's full recomputation
    assert IPv4Address(Ether(raw)[IP].src) == new_src and Ether(raw)[TCP].sport == new_port
    m.free()


@given(v6_udp(), st.ip_addresses(v=6))
def test_v6_address_rewrite_keeps_udp_checksum(m: Mbuf, new_dst) -> None:
    udp = m.parse(Ethernet).parse(Ipv6).parse(Udp)
    udp.set_dst_ip(new_dst)
    raw = m.to_bytes()
    assert recomputed(raw) == raw and IPv6Address(Ether(raw)[IPv6].dst) == new_dst
    assert Ether(raw)[UDP].chksum == udp.checksum
    m.free()


@given(st.one_of(sr_tcp(payload=payloads), v4_icmp(), v6_icmp()))
def test_sr_and_icmp_strategies_scapy_checksums(m: Mbuf) -> None:
    """What the other strategies build, Scapy dissects with the same checksums."""
    from scapy.layers.inet import ICMP
    from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting
    raw = m.to_bytes()
    layers, err = dissect(m)
    assert err is None and len(layers) == (4 if layers[1].NAME == "IPv6" and
                                            layers[2].NAME == "SRH" else 3)
    compare(layers, raw)
    sp = Ether(raw)
    if layers[2].NAME == "SRH":
        srh = sp[IPv6ExtHdrSegmentRouting]
        assert [IPv6Address(a) for a in srh.addresses] == layers[2].segments
        assert srh.segleft == layers[2].segments_left
    elif ICMP in sp:
        assert sp[ICMP].type == layers[2].msg_type
        assert recomputed(raw) == raw
    else:
        assert layers[2].checksum_ok
    m.free()


@given(v4_udp(dst_port=53, ipv4_ttl=1, eth_src="02:00:00:00:00:09"),
       sr_tcp(sr_segments=[IPv6Address("2001:db8::1")], sr_segments_left=0))
def test_strategy_overrides(m: Mbuf, sr: Mbuf) -> None:
    """Bare field names resolve when unambiguous; prefixed names always."""
    from nfkit.packets import SegmentRouting
    udp = m.parse(Ethernet).parse(Ipv4).parse(Udp)
    assert udp.dst_port == 53 and udp.envelope.ttl == 1
    assert str(udp.envelope.envelope.src) == "02:00:00:00:00:09"
    srh = sr.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    assert srh.dst == IPv6Address("2001:db8::1") and srh.segments_left == 0
    Mbuf.free_bulk([m, sr])


def test_strategy_override_errors() -> None:
    import pytest
    with pytest.raises(TypeError, match="ambiguous here: say eth_src or ipv4_src"):
        v4_udp(src="1.2.3.4")
    with pytest.raises(TypeError, match="no layer of Ethernet/IPv4/UDP has a field 'nonsense'"):
        v4_udp(nonsense=1)
