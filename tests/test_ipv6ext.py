"""IPv6 Fragment and Segment Routing headers: the next-header chain, segment lists, the
pseudo-header's final destination, and Scapy as the oracle."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrFragment, IPv6ExtHdrSegmentRouting,
                                IPv6ExtHdrSegmentRoutingTLVPadN)
from scapy.layers.l2 import Ether

from nfkit import (FieldValueError, MalformedError, Mbuf, Mempool, ParseError,
                   ProtocolMismatch, ReadOnlyError, TruncatedError)
from nfkit.packets import Ethernet, IpProtocol, Ipv4, Ipv6, Tcp, Udp
from nfkit.packets.dissect import dissect, summarize
from nfkit.packets.ipv6ext import Fragment, SegmentRouting
from oracle import bad_checksums, compare

POOL = Mempool(capacity=63, name="ipv6ext-tests")
SRC, DST = IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
SEGS = [IPv6Address("2001:db8:f::1"), IPv6Address("2001:db8:e::2"), IPv6Address("2001:db8:d::3")]

MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # no Scapy route look-ups

ipv6s = st.binary(min_size=16, max_size=16).map(IPv6Address)


def ipv6_tcp(pool: Mempool, payload: bytes = b"data") -> tuple[Mbuf, Ipv6]:
    """Ethernet / IPv6 / TCP, not reconciled; returns the mbuf and the IPv6 header."""
    m = Mbuf.alloc(pool)
    ip6 = m.push(Ethernet).push(Ipv6)
    ip6.src, ip6.dst = SRC, DST
    tcp = ip6.push(Tcp)
    tcp.src_port, tcp.dst_port, tcp.seq_no, tcp.syn = 40000, 443, 12345, True
    tcp.set_payload(payload)
    return m, ip6


def srh_tcp(pool: Mempool, segments: list[IPv6Address] = SEGS, segments_left: int = 2) -> Mbuf:
    """Ethernet / IPv6 / SRH / TCP, reconciled."""
    m, ip6 = ipv6_tcp(pool)
    srh = ip6.push(SegmentRouting)
    srh.segments = segments
    srh.segments_left = segments_left
    srh.tag = 0xBEEF
    srh.parse(Tcp).reconcile_all()
    return m


def take_bytes(m: Mbuf) -> bytes:
    """The packet's bytes; the mbuf is freed."""
    raw = m.to_bytes()
    m.free()
    return raw


def scapy_tcp_checksum(raw: bytes) -> tuple[int, int]:
    """(stored, recomputed by Scapy) TCP checksums of an Ethernet frame."""
    stored = Ether(raw)[TCP].chksum
    again = Ether(raw)
    del again[TCP].chksum
    return stored, Ether(bytes(again))[TCP].chksum


# -- Fragment -------------------------------------------------------------------------------

def test_fragment_push_splices_the_next_header_chain(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    frag = ip6.push(Fragment)
    assert (ip6.next_header, frag.next_header) == (IpProtocol.IPV6_FRAG, IpProtocol.TCP)
    assert (frag.header_len, frag.offset) == (8, 54)
    tcp = frag.parse(Tcp)
    assert (tcp.src_port, tcp.payload) == (40000, b"data")
    assert (frag.src, frag.dst) == (SRC, DST)
    assert tcp.flow().dst_ip == DST
    m.free()


def test_fragment_remove_restores_the_chain(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    ip6.parse(Tcp).reconcile_all()
    before = m.to_bytes()
    frag = ip6.push(Fragment)
    frag.identification = 7
    frag.parse(Tcp).reconcile_all()
    env = m.parse(Ethernet).parse(Ipv6).parse(Fragment).remove()
    assert isinstance(env, Ipv6) and env.next_header == IpProtocol.TCP
    env.reconcile()
    assert m.to_bytes() == before
    m.free()


def test_fragment_fields_round_trip(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    frag = ip6.push(Fragment)
    values = dict(fragment_offset=0x1ABC, more_fragments=True, identification=0xDEADBEEF,
                  reserved=0, res=0)
    for k, v in values.items():
        setattr(frag, k, v)
    frag.reconcile_all()
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv6).parse(Fragment)
    assert again.fields() == {"next_header": IpProtocol.TCP, **values}
    assert again.summary() == f"frag id 0xdeadbeef off {0x1ABC * 8} MF"
    m.free()
    again.reset().free()


@given(offset=st.integers(0, 0x1FFF), mf=st.booleans(), ident=st.integers(0, 2**32 - 1))
def test_fragment_nfkit_builds_scapy_dissects(offset: int, mf: bool, ident: int) -> None:
    m, ip6 = ipv6_tcp(POOL)
    frag = ip6.push(Fragment)
    frag.fragment_offset, frag.more_fragments, frag.identification = offset, mf, ident
    frag.reconcile_all()
    s = Ether(m.to_bytes())[IPv6ExtHdrFragment]
    m.free()
    assert (s.nh, s.offset, s.m, s.id, s.res1, s.res2) == (6, offset, int(mf), ident, 0, 0)


@given(offset=st.integers(0, 0x1FFF), mf=st.booleans(), ident=st.integers(0, 2**32 - 1))
def test_fragment_scapy_builds_nfkit_parses(offset: int, mf: bool, ident: int) -> None:
    raw = bytes(Ether(**MACS) / IPv6(src=str(SRC), dst=str(DST))
                / IPv6ExtHdrFragment(offset=offset, m=int(mf), id=ident) / UDP(sport=7, dport=9))
    m = Mbuf.from_bytes(raw, POOL)
    try:
        frag = m.parse(Ethernet).parse(Ipv6).parse(Fragment)
        assert (frag.fragment_offset, frag.more_fragments, frag.identification) == \
            (offset, mf, ident)
        if offset == 0:
            udp = frag.parse(Udp)
            assert udp.dst_port == 9 and udp.checksum_ok
        else:
            with pytest.raises(ProtocolMismatch, match="non-initial fragment"):
                frag.parse(Udp)
    finally:
        m.free()


def test_tcp_on_a_later_fragment_is_a_protocol_mismatch(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    ip6.push(Fragment).fragment_offset = 185
    with pytest.raises(ProtocolMismatch, match="non-initial fragment"):
        m.parse(Ethernet).parse(Ipv6).parse(Fragment).parse(Tcp)
    m.free()


# -- Segment Routing -----------------------------------------------------------------------

def test_srh_push_has_one_unspecified_segment(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    srh = ip6.push(SegmentRouting)
    assert (srh.header_len, srh.hdr_ext_len, srh.routing_type, srh.last_entry) == (24, 2, 4, 0)
    assert srh.segments == [IPv6Address("::")] and srh.tlvs == b""
    assert (ip6.next_header, srh.next_header) == (IpProtocol.IPV6_ROUTE, IpProtocol.TCP)
    again = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    assert again.parse(Tcp).payload == b"data"
    m.free()


def test_srh_fields_and_segments_round_trip(pool: Mempool) -> None:
    m = srh_tcp(pool)
    srh = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    assert srh.fields() == {"next_header": IpProtocol.TCP, "hdr_ext_len": 6, "routing_type": 4,
                            "segments_left": 2, "last_entry": 2, "flags": 0, "tag": 0xBEEF}
    assert srh.segments == SEGS and srh.header_len == 56
    assert [srh.segment(i) for i in range(3)] == SEGS and srh.segment(-1) == SEGS[2]
    with pytest.raises(IndexError):
        srh.segment(3)
    assert (srh.src, srh.dst) == (SRC, SEGS[0])
    assert srh.summary() == f"SRH segleft 2 [0]{SEGS[0]}, [1]{SEGS[1]}, [2]{SEGS[2]}"
    tcp = srh.parse(Tcp)
    assert tcp.checksum_ok and tcp.flow().dst_ip == SEGS[0] and tcp.flow().src_ip == SRC
    m.free()
    srh.reset().free()


@pytest.mark.parametrize("n", [1, 2, 5, 3])
def test_set_segments_resizes_both_ways(pool: Mempool, n: int) -> None:
    m = srh_tcp(pool)
    srh = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    srh.tlvs = bytes.fromhex("0104 00000000 0000")   # a PadN TLV: 8 bytes
    new = [IPv6Address(f"2001:db8:{i + 1:x}::") for i in range(n)]
    srh.set_segments(new)
    assert (srh.segments, srh.last_entry, srh.hdr_ext_len) == (new, n - 1, 2 * n + 1)
    assert srh.segments_left == 2                    # untouched
    assert srh.header_len == 8 + 16 * n + 8 and srh.tlvs.hex() == "0104000000000000"
    tcp = srh.parse(Tcp)
    assert tcp.payload == b"data" and tcp.checksum_ok      # segments[0] changed incrementally
    srh.reconcile_all()
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    assert again.segments == new and again.tlvs == srh.tlvs and again.parse(Tcp).checksum_ok
    m.free()
    again.reset().free()


def test_set_segments_refuses_empty_and_oversized_lists(pool: Mempool) -> None:
    m = srh_tcp(pool)
    srh = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    with pytest.raises(FieldValueError, match="empty"):
        srh.segments = []
    with pytest.raises(FieldValueError):
        srh.set_segments(["::1"] * 128)
    with pytest.raises(FieldValueError):
        srh.set_segments(["not an address"])
    assert srh.segments == SEGS
    m.free()


def test_tcp_checksum_uses_the_final_destination_scapy_agrees(pool: Mempool) -> None:
    m = srh_tcp(pool)
    raw = m.to_bytes()
    stored, scapy_says = scapy_tcp_checksum(raw)     # Scapy: addresses[0] while segleft > 0
    assert stored == scapy_says
    s = Ether(raw)[IPv6ExtHdrSegmentRouting]
    assert ([IPv6Address(a) for a in s.addresses], s.segleft, s.lastentry, s.len, s.tag) == \
        (SEGS, 2, 2, 6, 0xBEEF)
    # ... and differs from a checksum over the IPv6 destination.
    plain, ip6 = ipv6_tcp(pool)
    ip6.parse(Tcp).reconcile_all()
    assert m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting).parse(Tcp).checksum != \
        plain.parse(Ethernet).parse(Ipv6).parse(Tcp).checksum
    m.free()
    plain.free()


@given(segs=st.lists(ipv6s, min_size=1, max_size=6), sl=st.integers(1, 255),
       tag=st.integers(0, 0xFFFF), src=ipv6s, dst=ipv6s, payload=st.binary(max_size=40))
def test_srh_scapy_builds_nfkit_parses(segs: list[IPv6Address], sl: int, tag: int,
                                       src: IPv6Address, dst: IPv6Address, payload: bytes) -> None:
    pkt = (Ether(**MACS) / IPv6(src=str(src), dst=str(dst))
           / IPv6ExtHdrSegmentRouting(addresses=[str(a) for a in segs], segleft=sl, tag=tag)
           / TCP(sport=1, dport=2) / payload)
    m = Mbuf.from_bytes(bytes(pkt), POOL)
    try:
        srh = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
        assert (srh.segments, srh.segments_left, srh.tag) == (segs, sl, tag)
        tcp = srh.parse(Tcp)
        assert tcp.checksum_ok and tcp.payload == payload
        assert tcp.compute_checksum() == Ether(bytes(pkt))[TCP].chksum
    finally:
        m.free()


@given(segs=st.lists(ipv6s, min_size=1, max_size=6), sl=st.integers(1, 255),
       src=ipv6s, payload=st.binary(max_size=40))
def test_srh_nfkit_builds_scapy_dissects(segs: list[IPv6Address], sl: int, src: IPv6Address,
                                         payload: bytes) -> None:
    m, ip6 = ipv6_tcp(POOL, payload)
    ip6.src = src
    srh = ip6.push(SegmentRouting)
    srh.segments, srh.segments_left = segs, sl
    srh.parse(Tcp).reconcile_all()
    raw = m.to_bytes()
    m.free()
    s = Ether(raw)[IPv6ExtHdrSegmentRouting]
    assert [IPv6Address(a) for a in s.addresses] == segs and s.segleft == sl
    assert s.lastentry == len(segs) - 1 and s.len == 2 * len(segs)
    stored, scapy_says = scapy_tcp_checksum(raw)
    assert stored == scapy_says


def test_tlvs_from_scapy_are_preserved(pool: Mempool) -> None:
    tlv = IPv6ExtHdrSegmentRoutingTLVPadN(len=4, padding=b"\0" * 4)
    pkt = (Ether(**MACS) / IPv6(src=str(SRC), dst=str(SEGS[1]))
           / IPv6ExtHdrSegmentRouting(addresses=[str(a) for a in SEGS], segleft=1,
                                      tlv_objects=[tlv]) / TCP())
    raw = bytes(pkt)
    s = Ether(raw)[IPv6ExtHdrSegmentRouting]
    m = Mbuf.from_bytes(raw, pool)
    srh = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    assert srh.hdr_ext_len == s.len > 6                  # Scapy pads the TLVs to 8 bytes
    assert srh.tlvs == raw[54 + 56:54 + 8 + 8 * s.len] and srh.tlvs.startswith(bytes(tlv))
    assert srh.parse(Tcp).checksum_ok
    srh.segments = SEGS[:1]
    srh.tlvs = b""
    assert srh.header_len == 24 and srh.hdr_ext_len == 2
    assert "tlvs" not in repr(srh)
    m.free()


def test_pseudo_header_follows_segments_and_removal(pool: Mempool) -> None:
    m = srh_tcp(pool)
    srh = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    ip6 = srh.envelope
    ip6.dst = "2001:db8::77"                  # not in the pseudo-header: checksum unchanged
    ip6.src = "2001:db8::66"                  # in it: fixed incrementally
    tcp = srh.parse(Tcp)
    assert tcp.checksum_ok
    srh.segments = [IPv6Address("2001:db8:abc::1")] + SEGS[1:]
    assert srh.parse(Tcp).checksum_ok
    before = srh.parse(Tcp).payload
    env = srh.remove()                        # pseudo-header destination is the IPv6 dst again
    assert env.next_header == IpProtocol.TCP
    tcp = env.parse(Tcp)
    assert tcp.checksum_ok and tcp.payload == before
    env.reconcile()
    assert scapy_tcp_checksum(m.to_bytes())[0] == scapy_tcp_checksum(m.to_bytes())[1]
    m.free()


def test_segments_left_0_keeps_segments_0_in_the_pseudo_header(pool: Mempool) -> None:
    """nfkit's pseudo-header destination is segments[0] whatever segments_left says (RFC
    8200 8.1's final destination); Scapy and Linux take the IPv6 destination once
    segments_left is 0.  For a packet whose destination is its last segment by then the two
    agree (Scapy's own rule is the oracle here); setters keep the checksum right throughout
    (the oracle applies nfkit's rule where the two differ)."""
    m = srh_tcp(pool, segments=SEGS, segments_left=1)
    srh = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    ip6 = srh.envelope
    srh.segments_left = 0                                   # an endpoint's last step...
    ip6.dst = SEGS[0]                                       # ...puts the last segment in DA
    stored, scapy_says = scapy_tcp_checksum(m.to_bytes())   # Scapy: DA, as segleft is 0
    assert stored == scapy_says
    for change in (lambda: setattr(ip6, "dst", "2001:db8::55"),  # DA is not segments[0] now
                   lambda: setattr(srh, "segments_left", 2),
                   lambda: setattr(srh, "segments", SEGS[::-1]),
                   lambda: setattr(srh, "segments_left", 0),
                   srh.remove):
        change()
        raw = m.to_bytes()
        assert bad_checksums(raw) == [], raw.hex()
        probe = Mbuf.from_bytes(raw, pool)
        compare(dissect(probe)[0], raw)
        probe.free()
    m.free()


def test_nested_ipv6_srh_fragment_tcp_scapy_agrees(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    srh = ip6.push(SegmentRouting)
    srh.segments, srh.segments_left = SEGS, 1
    frag = srh.push(Fragment)
    frag.identification = 0x1234
    tcp = frag.parse(Tcp)
    tcp.reconcile_all()
    assert [type(p) for p in tcp.layers()] == [Ethernet, Ipv6, SegmentRouting, Fragment, Tcp]
    assert (srh.next_header, frag.next_header) == (IpProtocol.IPV6_FRAG, IpProtocol.TCP)
    assert tcp.flow().dst_ip == SEGS[0] and frag.dst == SEGS[0] and frag.src == SRC
    raw = m.to_bytes()
    s = Ether(raw)
    assert s[IPv6].plen == 56 + 8 + 24 and s[IPv6ExtHdrFragment].id == 0x1234
    stored, scapy_says = scapy_tcp_checksum(raw)
    assert stored == scapy_says
    # removing the middle Fragment keeps SRH -> TCP linked
    env = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting).parse(Fragment).remove()
    assert isinstance(env, SegmentRouting) and env.next_header == IpProtocol.TCP
    assert env.parse(Tcp).checksum_ok
    m.free()


def test_udp_over_srh(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    ip6 = m.push(Ethernet).push(Ipv6)
    ip6.src, ip6.dst = SRC, SEGS[1]
    srh = ip6.push(SegmentRouting)
    srh.segments, srh.segments_left = SEGS, 1
    udp = srh.push(Udp)
    udp.src_port, udp.dst_port = 5, 6
    udp.set_payload(b"xyz")
    udp.reconcile_all()
    assert srh.next_header == IpProtocol.UDP and udp.checksum_ok
    s = Ether(m.to_bytes())
    again = Ether(m.to_bytes())
    del again[UDP].chksum
    assert s[UDP].chksum == Ether(bytes(again))[UDP].chksum
    m.free()


# -- errors ------------------------------------------------------------------------------

def test_other_routing_types_are_a_protocol_mismatch(pool: Mempool) -> None:
    raw = bytearray(take_bytes(srh_tcp(pool)))
    raw[54 + 2] = 2                          # type 2: Mobile IPv6 routing header
    m = Mbuf.from_bytes(bytes(raw), pool)
    with pytest.raises(ProtocolMismatch, match="routing type 2 is not a segment routing header"):
        m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    m.free()


@pytest.mark.parametrize("ext_len, last_entry", [(0, 0), (4, 2), (5, 2), (1, 0)])
def test_inconsistent_lengths_are_malformed(pool: Mempool, ext_len: int, last_entry: int) -> None:
    raw = bytearray(take_bytes(srh_tcp(pool)))
    raw[54 + 1], raw[54 + 4] = ext_len, last_entry
    m = Mbuf.from_bytes(bytes(raw), pool)
    with pytest.raises(MalformedError, match="hdr_ext_len"):
        m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    m.free()


def test_hdr_ext_len_past_the_packet_is_truncated(pool: Mempool) -> None:
    raw = bytearray(take_bytes(srh_tcp(pool)))
    raw[54 + 1] = 200
    m = Mbuf.from_bytes(bytes(raw), pool)
    with pytest.raises(TruncatedError):
        m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    m.free()


def parse_all(raw: bytes, pool: Mempool, chain: list[type]) -> None:
    """Parse ``chain`` over ``raw``; any failure must be a ParseError."""
    m = Mbuf.from_bytes(raw, pool)
    try:
        p: object = m
        for cls in chain:
            p = p.parse(cls)  # type: ignore[attr-defined]
    except ParseError:
        pass
    finally:
        m.free()


@pytest.mark.parametrize("cut", range(0, 138))
def test_truncations_raise_parse_errors_only(pool: Mempool, cut: int) -> None:
    m, ip6 = ipv6_tcp(pool)
    srh = ip6.push(SegmentRouting)
    srh.segments = SEGS
    srh.push(Fragment).parse(Tcp).reconcile_all()
    raw = bytearray(m.to_bytes())
    m.free()
    assert len(raw) == 14 + 40 + 56 + 8 + 20 + 4
    raw[18:20] = b"\0\0"                     # payload_length 0: the frame's end is the limit
    mm = Mbuf.from_bytes(bytes(raw[:cut]), pool)
    with pytest.raises(ParseError):          # every cut lies inside a header
        mm.parse(Ethernet).parse(Ipv6).parse(SegmentRouting).parse(Fragment).parse(Tcp)
    mm.free()


@given(body=st.binary(min_size=0, max_size=120), nh=st.sampled_from([43, 44]))
def test_random_extension_bytes_never_crash(body: bytes, nh: int) -> None:
    raw = bytes(Ether(**MACS) / IPv6(nh=nh, plen=0))
    parse_all(raw + body, POOL, [Ethernet, Ipv6, SegmentRouting if nh == 43 else Fragment, Tcp])
    parse_all(raw + body, POOL, [Ethernet, Ipv6, SegmentRouting if nh == 43 else Fragment, Udp])


# -- API guards ----------------------------------------------------------------------------

def test_peek_refuses_setters(pool: Mempool) -> None:
    m = srh_tcp(pool)
    srh = m.peek(Ethernet).peek(Ipv6).peek(SegmentRouting)
    for name, value in [("segments", SEGS[:1]), ("tlvs", b""), ("segments_left", 0), ("tag", 1)]:
        with pytest.raises(ReadOnlyError):
            setattr(srh, name, value)
    with pytest.raises(ReadOnlyError):
        srh.set_segments(SEGS[:1])
    with pytest.raises(ReadOnlyError):
        srh.remove()
    with pytest.raises(ReadOnlyError):
        srh.push(Fragment)
    assert srh.segments == SEGS
    m.free()
    m2, ip6 = ipv6_tcp(pool)
    ip6.push(Fragment)
    frag = m2.peek(Ethernet).peek(Ipv6).peek(Fragment)
    for name in ("identification", "more_fragments", "fragment_offset", "next_header"):
        with pytest.raises(ReadOnlyError):
            setattr(frag, name, 1)
    m2.free()


def test_extension_headers_need_an_ipv6_envelope(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    with pytest.raises(ProtocolMismatch):
        eth.push(SegmentRouting)
    ip4 = eth.push(Ipv4)
    with pytest.raises(ProtocolMismatch, match="cannot follow IPv4"):
        ip4.push(Fragment)
    assert len(m) == 34                      # nothing was inserted
    m.free()
    m2, ip6 = ipv6_tcp(pool)
    with pytest.raises(ProtocolMismatch, match="next protocol is 6"):
        ip6.parse(SegmentRouting)
    m2.free()


def test_cached_payload_key_follows_setters(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    ip6.push(Fragment)
    frag = m.parse(Ethernet).parse(Ipv6).parse(Fragment)
    frag.fragment_offset = 3
    with pytest.raises(ProtocolMismatch, match="non-initial"):
        frag.parse(Tcp)
    frag.fragment_offset = 0
    assert frag.parse(Tcp).src_port == 40000
    frag.next_header = IpProtocol.UDP
    with pytest.raises(ProtocolMismatch, match="next protocol is 17"):
        frag.parse(Tcp)
    assert frag.parse(Udp).src_port == 40000
    m.free()


def test_dissect_and_mbuf_reconcile_all(pool: Mempool) -> None:
    m, ip6 = ipv6_tcp(pool)
    srh = ip6.push(SegmentRouting)
    srh.segments, srh.segments_left = SEGS, 1
    srh.push(Fragment).identification = 9
    m.reconcile_all()                        # found by the dissector, fixed inner first
    layers, err = dissect(m)
    assert [type(p) for p in layers] == [Ethernet, Ipv6, SegmentRouting, Fragment, Tcp]
    assert err is None and layers[-1].checksum_ok and layers[1].payload_length == 56 + 8 + 20 + 4
    text = summarize(m)
    assert " / SRH segleft 1 [0]2001:db8:f::1, " in text and " / frag id 0x9 off 0 / TCP " in text
    stored, scapy_says = scapy_tcp_checksum(m.to_bytes())
    assert stored == scapy_says
    m.free()
