"""Tunnels: GRE (RFC 2784/2890), VXLAN (RFC 7348) and GTP-U v1 (TS 29.281).

Each is built with nfkit and dissected by Scapy, built by Scapy and parsed by nfkit, and
must carry its inner packets with every checksum valid after ``reconcile_all``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.layers.vxlan import VXLAN

from nfkit import (FieldValueError, MalformedError, Mbuf, Mempool, ParseError,
                   ProtocolMismatch, ReadOnlyError, TruncatedError)
from nfkit.packets import Ethernet, EtherType, Ipv4, Ipv6, Tcp, Udp
from nfkit.packets.dissect import dissect, summarize
from nfkit.packets.gre import Gre
from nfkit.packets.gtpu import GtpMessageType, GtpU
from nfkit.packets.vxlan import Vxlan
from oracle import bad_checksums

POOL = Mempool(capacity=63, name="tunnel-tests")
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # no Scapy route look-ups
u32 = st.integers(0, 2**32 - 1)
maybe_u32 = st.one_of(st.none(), u32)


def outer_ipv4(pool: Mempool) -> Ipv4:
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    eth.src, eth.dst = MACS["src"], MACS["dst"]
    ip = eth.push(Ipv4)
    ip.src, ip.dst = "192.0.2.1", "192.0.2.2"
    return ip


def outer_udp(pool: Mempool, ipv6: bool = False) -> Udp:
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    if ipv6:
        ip: Any = eth.push(Ipv6)
        ip.src, ip.dst = "2001:db8::1", "2001:db8::2"
    else:
        ip = eth.push(Ipv4)
        ip.src, ip.dst = "192.0.2.1", "192.0.2.2"
    udp = ip.push(Udp)
    udp.src_port = 49152
    return udp


def inner_tcp(env: Any, payload: bytes = b"inner") -> Tcp:
    ip = env.push(Ipv4)
    ip.src, ip.dst = "10.0.0.1", "10.0.0.2"
    tcp = ip.push(Tcp)
    tcp.src_port, tcp.dst_port, tcp.ack, tcp.ack_no = 1234, 80, True, 99
    tcp.set_payload(payload)
    return tcp


def scapy_checksums_ok(raw: bytes) -> bool:
    """Every checksum Scapy knows in the frame (ICMPv6's and a UDP-over-IPv4 0 included)
    equals the one Scapy computes: the oracle of ``oracle.py``."""
    return bad_checksums(raw) == []


def take_bytes(m: Mbuf) -> bytes:
    """The packet's bytes; the mbuf is freed."""
    raw = m.to_bytes()
    m.free()
    return raw


def parse_chain(raw: bytes, pool: Mempool, chain: list[type]) -> None:
    """Parse ``chain`` over ``raw``: it succeeds or raises a ParseError, nothing else."""
    m = Mbuf.from_bytes(raw, pool)
    try:
        p: Any = m
        for cls in chain:
            p = p.parse(cls)
    except ParseError:
        pass
    finally:
        m.free()


# -- GRE ----------------------------------------------------------------------------------

@pytest.mark.parametrize("inner", [Ipv4, Ipv6, Ethernet])
def test_gre_carries_ipv4_ipv6_and_ethernet(pool: Mempool, inner: type) -> None:
    ip = outer_ipv4(pool)
    gre = ip.push(Gre)
    assert ip.protocol == 47 and gre.header_len == 4
    env = gre.push(inner)
    assert gre.protocol_type == inner.ETHERTYPE
    if inner is Ethernet:
        env = env.push(Ipv4)
    udp = env.push(Udp)
    udp.src_port, udp.dst_port = 7, 9
    udp.set_payload(b"through gre")
    udp.reconcile_all()
    raw = ip.mbuf.to_bytes()
    assert scapy_checksums_ok(raw)
    chain = [Ethernet, Ipv4, Gre, inner] + ([Ipv4] if inner is Ethernet else []) + [Udp]
    m = Mbuf.from_bytes(raw, pool)
    p: Any = m
    for cls in chain:
        p = p.parse(cls)
    assert p.payload == b"through gre" and p.checksum_ok
    assert Ether(raw)[GRE].proto == inner.ETHERTYPE
    m.free()
    ip.mbuf.free()
    assert pool.in_use == 0


def test_gre_over_ipv6(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    ip6 = m.push(Ethernet).push(Ipv6)
    gre = ip6.push(Gre)
    gre.key = 42
    tcp = inner_tcp(gre)
    tcp.reconcile_all()
    assert ip6.next_header == 47
    raw = m.to_bytes()
    assert scapy_checksums_ok(raw) and Ether(raw)[GRE].key == 42
    t = Mbuf.from_bytes(raw, pool).parse(Ethernet).parse(Ipv6).parse(Gre).parse(Ipv4).parse(Tcp)
    assert t.checksum_ok and t.payload == b"inner"
    m.free()
    t.reset().free()


def test_gre_optional_fields_resize_in_order(pool: Mempool) -> None:
    ip = outer_ipv4(pool)
    gre = ip.push(Gre)
    tcp = inner_tcp(gre)
    tcp.reconcile_all()
    gre.sequence = 5
    assert (gre.header_len, gre.sequence, gre.key, gre.checksum) == (8, 5, None, None)
    gre.key = 0xCAFEBABE
    gre.use_checksum()
    assert gre.header_len == 16 and (gre.key, gre.sequence) == (0xCAFEBABE, 5)
    assert gre.checksum_present and gre.key_present and gre.seq_present
    assert gre.checksum_ok and gre.reserved1 == 0
    assert gre.header_bytes()[4:] == (gre.checksum.to_bytes(2, "big") + b"\0\0"
                                      + bytes.fromhex("cafebabe") + (5).to_bytes(4, "big"))
    # setters keep the checksum valid without a reconcile
    gre.key = 1
    gre.sequence = 0xFFFFFFFF
    gre.protocol_type = EtherType.IPV4
    assert gre.checksum_ok
    ip.reconcile()                            # the outer lengths, after the resizes
    assert scapy_checksums_ok(ip.mbuf.to_bytes())
    gre.key = None
    assert gre.checksum_ok and gre.header_len == 12 and gre.sequence == 0xFFFFFFFF
    gre.seq_present = False
    gre.key_present = True
    assert (gre.key, gre.sequence, gre.header_len, gre.checksum_ok) == (0, None, 12, True)
    gre.checksum_present = False
    assert (gre.checksum, gre.header_len, gre.checksum_ok) == (None, 8, True)
    gre.key = None
    assert gre.header_len == 4 and gre.header_bytes() == bytes.fromhex("00000800")
    inner = gre.parse(Ipv4).parse(Tcp)
    assert inner.payload == b"inner" and inner.checksum_ok
    with pytest.raises(FieldValueError):
        gre.key = 2**32
    with pytest.raises(FieldValueError):
        gre.sequence = "7"  # type: ignore[assignment]
    ip.mbuf.free()


@given(csum=st.booleans(), key=maybe_u32, seq=maybe_u32, payload=st.binary(max_size=33))
def test_gre_nfkit_builds_scapy_dissects(csum: bool, key: int | None, seq: int | None,
                                         payload: bytes) -> None:
    ip = outer_ipv4(POOL)
    gre = ip.push(Gre)
    gre.key, gre.sequence = key, seq
    gre.use_checksum(csum)
    tcp = inner_tcp(gre, payload)
    tcp.reconcile_all()
    raw = ip.mbuf.to_bytes()
    ip.mbuf.free()
    s = Ether(raw)[GRE]
    assert (s.chksum_present, s.key_present, s.seqnum_present, s.version, s.proto) == \
        (int(csum), int(key is not None), int(seq is not None), 0, 0x0800)
    assert (s.key, s.sequence_number) == (key, seq)
    assert scapy_checksums_ok(raw)
    assert Ether(raw)[TCP].load == payload if payload else True


@given(csum=st.booleans(), key=maybe_u32, seq=maybe_u32, payload=st.binary(max_size=33))
def test_gre_scapy_builds_nfkit_parses(csum: bool, key: int | None, seq: int | None,
                                       payload: bytes) -> None:
    g = GRE(chksum_present=int(csum), key_present=int(key is not None), key=key,
            seqnum_present=int(seq is not None), sequence_number=seq)
    raw = bytes(Ether(**MACS) / IP() / g / IPv6() / UDP(sport=1, dport=2) / payload)
    m = Mbuf.from_bytes(raw, POOL)
    try:
        gre = m.parse(Ethernet).parse(Ipv4).parse(Gre)
        assert (gre.key, gre.sequence, gre.checksum is not None) == (key, seq, csum)
        assert gre.header_len == 4 + 4 * (csum + (key is not None) + (seq is not None))
        assert gre.checksum_ok and gre.protocol_type == EtherType.IPV6
        udp = gre.parse(Ipv6).parse(Udp)
        assert udp.checksum_ok and udp.payload == payload
    finally:
        m.free()


def test_gre_errors(pool: Mempool) -> None:
    ip = outer_ipv4(pool)
    gre = ip.push(Gre)
    gre.key = 1
    gre.sequence = 2
    inner_tcp(gre).reconcile_all()
    raw = bytearray(ip.mbuf.to_bytes())
    ip.mbuf.free()
    bad = bytearray(raw)
    bad[34 + 1] |= 1                          # version 1 (PPTP's enhanced GRE)
    m = Mbuf.from_bytes(bytes(bad), pool)
    with pytest.raises(MalformedError, match="version is 1"):
        m.parse(Ethernet).parse(Ipv4).parse(Gre)
    m.free()
    bad = bytearray(raw)
    bad[34] |= 0x40                           # RFC 1701's routing bit: fields nfkit lacks
    m = Mbuf.from_bytes(bytes(bad), pool)
    with pytest.raises(MalformedError, match="routing bit"):
        m.parse(Ethernet).parse(Ipv4).parse(Gre)
    m.free()
    m = Mbuf.from_bytes(bytes(raw), pool)
    gre = m.parse(Ethernet).parse(Ipv4).parse(Gre)
    for name in ("routing_present", "version"):
        with pytest.raises(FieldValueError, match=f"GRE {name} must be 0"):
            setattr(gre, name, 1)
    assert m.to_bytes() == bytes(raw)
    m.free()
    m = Mbuf.from_bytes(bytes(raw), pool)
    with pytest.raises(ProtocolMismatch, match="GRE protocol type is 0x0800"):
        m.parse(Ethernet).parse(Ipv4).parse(Gre).parse(Ipv6)
    with pytest.raises(ProtocolMismatch, match="cannot follow GRE"):
        m.parse(Ethernet).parse(Ipv4).parse(Gre).push(Tcp)
    m.free()
    raw[16:18] = b"\0\0"                      # total_length 0: the frame's end is the limit
    for cut in range(34, 34 + 12):
        m = Mbuf.from_bytes(bytes(raw[:cut]), pool)
        with pytest.raises(TruncatedError):
            m.parse(Ethernet).parse(Ipv4).parse(Gre)
        m.free()


@given(body=st.binary(max_size=40))
def test_gre_random_bytes_never_crash(body: bytes) -> None:
    raw = bytes(Ether(**MACS) / IP(proto=47, len=20))
    for inner in (Ipv4, Ipv6, Ethernet):
        parse_chain(raw + body, POOL, [Ethernet, Ipv4, Gre, inner, Tcp])


# -- VXLAN --------------------------------------------------------------------------------

def build_vxlan(pool: Mempool, ipv6: bool = False, vni: int = 0xABCDE) -> Mbuf:
    udp = outer_udp(pool, ipv6)
    vx = udp.push(Vxlan)
    vx.vni = vni
    eth = vx.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    inner_tcp(eth).reconcile_all()
    return udp.mbuf


@pytest.mark.parametrize("ipv6", [False, True])
def test_vxlan_full_stack_checksums_valid(pool: Mempool, ipv6: bool) -> None:
    m = build_vxlan(pool, ipv6)
    raw = m.to_bytes()
    outer_ip = Ipv6 if ipv6 else Ipv4
    udp = m.parse(Ethernet).parse(outer_ip).parse(Udp)
    assert udp.dst_port == 4789 and udp.checksum_ok and udp.length == len(udp)
    vx = udp.parse(Vxlan)
    assert (vx.flags, vx.vni_valid, vx.vni, vx.reserved, vx.reserved2) == \
        (0x08, True, 0xABCDE, 0, 0)
    tcp = vx.parse(Ethernet).parse(Ipv4).parse(Tcp)
    assert tcp.checksum_ok and tcp.payload == b"inner" and tcp.ack_no == 99
    assert [type(p) for p in tcp.layers()] == [Ethernet, outer_ip, Udp, Vxlan, Ethernet, Ipv4, Tcp]
    s = Ether(raw)
    assert s[VXLAN].vni == 0xABCDE and s[VXLAN].flags == 0x08
    assert s[VXLAN][Ether].src == "02:00:00:00:00:0a" and s[VXLAN][TCP].dport == 80
    assert scapy_checksums_ok(raw)
    assert vx.summary() == "VXLAN flags 0x08 vni 703710"
    m.free()


@given(vni=st.integers(0, 2**24 - 1), sport=st.integers(0, 0xFFFF), payload=st.binary(max_size=30))
def test_vxlan_scapy_builds_nfkit_parses(vni: int, sport: int, payload: bytes) -> None:
    raw = bytes(Ether(**MACS) / IP() / UDP(sport=sport, dport=4789) / VXLAN(vni=vni)
                / Ether(**MACS) / IP() / UDP(sport=3, dport=4) / payload)
    m = Mbuf.from_bytes(raw, POOL)
    try:
        vx = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Vxlan)
        assert vx.vni == vni and vx.vni_valid
        udp = vx.parse(Ethernet).parse(Ipv4).parse(Udp)
        assert udp.payload == payload and udp.checksum_ok
    finally:
        m.free()


def test_vxlan_errors(pool: Mempool) -> None:
    raw = bytearray(take_bytes(build_vxlan(pool)))
    bad = bytearray(raw)
    bad[42] = 0                               # I flag cleared
    m = Mbuf.from_bytes(bytes(bad), pool)
    with pytest.raises(MalformedError, match="I flag"):
        m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Vxlan)
    m.free()
    bad = bytearray(raw)
    bad[36:38] = (4790).to_bytes(2, "big")    # neither port is 4789
    m = Mbuf.from_bytes(bytes(bad), pool)
    with pytest.raises(ProtocolMismatch, match="UDP ports are 49152 > 4790"):
        m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Vxlan)
    m.free()
    bad[34:38] = (4789).to_bytes(2, "big") + (5555).to_bytes(2, "big")  # the reply direction
    m = Mbuf.from_bytes(bytes(bad), pool)
    vx = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Vxlan)
    with pytest.raises(ProtocolMismatch, match="Ethernet frames only"):
        vx.parse(Ipv4)
    with pytest.raises(ProtocolMismatch, match="cannot follow VXLAN"):
        vx.push(Ipv4)
    m.free()
    for cut in range(42, 50):
        m = Mbuf.from_bytes(bytes(raw[:cut]), pool)
        with pytest.raises(ParseError):       # IPv4 total_length or VXLAN's 8 bytes
            m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Vxlan)
        m.free()
    assert pool.in_use == 0


# -- GTP-U --------------------------------------------------------------------------------

def build_gtpu(pool: Mempool, inner6: bool = False, **opts: Any) -> Mbuf:
    udp = outer_udp(pool)
    gtp = udp.push(GtpU)
    gtp.teid = 0x11223344
    for k, v in opts.items():
        setattr(gtp, k, v)
    if inner6:
        ip6 = gtp.push(Ipv6)
        ip6.src, ip6.dst = "fd00::1", "fd00::2"
        u = ip6.push(Udp)
        u.src_port, u.dst_port = 53, 5353
        u.set_payload(b"v6 inside")
        u.reconcile_all()
    else:
        inner_tcp(gtp).reconcile_all()
    return udp.mbuf


def test_gtpu_push_defaults(pool: Mempool) -> None:
    udp = outer_udp(pool)
    gtp = udp.push(GtpU)
    assert udp.dst_port == 2152
    assert gtp.header_bytes() == bytes.fromhex("30ff000000000000")
    assert (gtp.version, gtp.protocol_type, gtp.message_type) == (1, True, GtpMessageType.G_PDU)
    assert (gtp.sequence, gtp.npdu_number, gtp.next_ext_type) == (None, None, None)
    assert gtp.extensions == []
    udp.mbuf.free()


@pytest.mark.parametrize("inner6", [False, True])
def test_gtpu_nfkit_builds_scapy_dissects(pool: Mempool, inner6: bool) -> None:
    m = build_gtpu(pool, inner6, sequence=0x1234, npdu_number=7,
                   extensions=[(0x85, bytes([0x00, 0x09]))])
    raw = m.to_bytes()
    s = Ether(raw)[GTP_U_Header]
    assert (s.version, s.PT, s.E, s.S, s.PN, s.gtp_type, s.teid) == (1, 1, 1, 1, 1, 255, 0x11223344)
    assert (s.seq, s.npdu, s.next_ex) == (0x1234, 7, 0x85)
    assert s[GTPPDUSessionContainer].QFI == 9
    assert s.length == len(raw) - 42 - 8
    assert (IPv6 if inner6 else IP) in s
    assert scapy_checksums_ok(raw)
    gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    assert gtp.header_len == 16 and gtp.extensions == [(0x85, b"\x00\x09")]
    inner = gtp.parse(Ipv6).parse(Udp) if inner6 else gtp.parse(Ipv4).parse(Tcp)
    assert inner.checksum_ok
    assert gtp.summary() == f"GTPv1-U G_PDU teid 0x11223344 seq 4660 len {gtp.payload_len}"
    m.free()


@given(teid=u32, seq=st.one_of(st.none(), st.integers(0, 0xFFFF)),
       npdu=st.one_of(st.none(), st.integers(0, 0xFF)),
       qfi=st.one_of(st.none(), st.integers(0, 63)),
       payload=st.binary(max_size=30))
def test_gtpu_scapy_builds_nfkit_parses(teid: int, seq: int | None, npdu: int | None,
                                        qfi: int | None, payload: bytes) -> None:
    hdr = GTP_U_Header(teid=teid, S=int(seq is not None), seq=seq or 0,
                       PN=int(npdu is not None), npdu=npdu or 0,
                       E=int(qfi is not None), next_ex=0x85 if qfi is not None else 0)
    if qfi is not None:
        hdr = hdr / GTPPDUSessionContainer(type=1, QFI=qfi)
    raw = bytes(Ether(**MACS) / IP() / UDP(sport=2152, dport=2152) / hdr
                / IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=9, dport=10) / payload)
    m = Mbuf.from_bytes(raw, POOL)
    try:
        gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
        assert (gtp.teid, gtp.sequence, gtp.npdu_number) == (teid, seq, npdu)
        exts = gtp.extensions
        assert len(exts) == (qfi is not None)
        if exts:
            assert exts[0][0] == 0x85 and exts[0][1][1] & 0x3F == qfi
        assert gtp.length == len(raw) - 50
        udp = gtp.parse(Ipv4).parse(Udp)
        assert udp.payload == payload and udp.checksum_ok
    finally:
        m.free()


def test_gtpu_optional_fields_toggle(pool: Mempool) -> None:
    m = build_gtpu(pool)
    gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    gtp.sequence = 9
    assert (gtp.header_len, gtp.seq_present, gtp.next_ext_type) == (12, True, 0)
    gtp.npdu_present = True
    assert (gtp.npdu_number, gtp.header_len) == (0, 12)
    gtp.extensions = [(0x85, b"\x10\x05"), (0x40, b"\xaa\xbb\xcc\xdd\xee\xff")]
    assert gtp.ext_present and gtp.header_len == 12 + 4 + 8 and gtp.next_ext_type == 0x85
    assert gtp.extensions == [(0x85, b"\x10\x05"), (0x40, b"\xaa\xbb\xcc\xdd\xee\xff")]
    gtp.sequence = None
    assert gtp.sequence is None and gtp.header_len == 24
    gtp.extensions = [(0x85, b"\x10\x06")]
    assert gtp.header_len == 16
    gtp.ext_present = False
    assert (gtp.header_len, gtp.extensions, gtp.npdu_number) == (12, [], 0)
    gtp.npdu_number = None
    assert gtp.header_len == 8 and gtp.next_ext_type is None
    gtp.ext_present = True
    assert gtp.header_len == 12 and gtp.extensions == []
    gtp.ext_present = False
    assert gtp.header_len == 8
    tcp = gtp.parse(Ipv4).parse(Tcp)
    tcp.reconcile_all()
    assert tcp.payload == b"inner" and tcp.checksum_ok
    assert scapy_checksums_ok(m.to_bytes())
    with pytest.raises(FieldValueError, match="4-byte units"):
        gtp.extensions = [(0x85, b"\x00")]
    with pytest.raises(FieldValueError):
        gtp.sequence = 0x10000
    m.free()


def test_gtpu_round_trip_every_field(pool: Mempool) -> None:
    m = build_gtpu(pool, sequence=77, npdu_number=3, extensions=[(0x85, b"\x00\x01")])
    gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    gtp.spare = True
    again = Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    assert again.fields() == {
        "version": 1, "protocol_type": True, "spare": True, "ext_present": True,
        "seq_present": True, "npdu_present": True, "message_type": 255,
        "length": gtp.length, "teid": 0x11223344, "sequence": 77, "npdu_number": 3,
        "next_ext_type": 0x85}
    assert "extensions=[0x85:0001]" in repr(again)
    m.free()
    again.reset().free()


def test_gtpu_length_bounds_the_inner_packet(pool: Mempool) -> None:
    raw = take_bytes(build_gtpu(pool))
    # trailing bytes after the GTP-U length (inside the UDP datagram) are not payload
    padded = bytearray(raw + b"\xee" * 6)
    padded[16:18] = b"\0\0"                   # outer IPv4 total_length: to the end
    padded[38:40] = b"\0\0"                   # UDP length (not checked) / checksum off
    padded[40:42] = b"\0\0"
    m = Mbuf.from_bytes(bytes(padded), pool)
    gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    assert len(gtp) == len(raw) - 42
    assert gtp.parse(Ipv4).parse(Tcp).payload == b"inner"
    m.free()
    assert pool.in_use == 0


def test_gtpu_errors(pool: Mempool) -> None:
    m0 = build_gtpu(pool, extensions=[(0x85, b"\x00\x01")])
    raw = bytearray(m0.to_bytes())
    m0.free()

    def parse(data: bytes | bytearray) -> GtpU:
        m = Mbuf.from_bytes(bytes(data), pool)
        try:
            return m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
        finally:
            m.free()

    bad = bytearray(raw)
    bad[42] = (bad[42] & 0x1F) | (2 << 5)
    with pytest.raises(MalformedError, match="version is 2"):
        parse(bad)
    bad = bytearray(raw)
    bad[42 + 12] = 0                          # extension length 0
    with pytest.raises(MalformedError, match="length 0"):
        parse(bad)
    bad = bytearray(raw)
    bad[42 + 2:42 + 4] = (2).to_bytes(2, "big")   # length shorter than the header
    with pytest.raises(MalformedError, match="below the header"):
        parse(bad)
    bad = bytearray(raw)
    bad[42 + 2:42 + 4] = (500).to_bytes(2, "big")
    with pytest.raises(TruncatedError, match="length 500"):
        parse(bad)
    bad = bytearray(raw)
    bad[43] = GtpMessageType.ECHO_REQUEST
    m = Mbuf.from_bytes(bytes(bad), pool)
    gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    with pytest.raises(ProtocolMismatch, match="message type 1 is not a G-PDU"):
        gtp.parse(Ipv4)
    m.free()
    m = Mbuf.from_bytes(bytes(raw), pool)
    gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    with pytest.raises(ProtocolMismatch, match="IP version 4"):
        gtp.parse(Ipv6)
    with pytest.raises(ProtocolMismatch, match="cannot follow GTP-U"):
        gtp.push(Ethernet)
    m.free()
    # cut anywhere inside the GTP-U header (lengths zeroed so only GTP-U can notice)
    raw[16:18] = b"\0\0"
    raw[42 + 2:42 + 4] = b"\0\0"
    for cut in range(42, 42 + 16):
        with pytest.raises(TruncatedError):
            parse(raw[:cut])
    assert pool.in_use == 0


@given(flags=st.integers(0, 0xFF), body=st.binary(max_size=40))
def test_gtpu_random_bytes_never_crash(flags: int, body: bytes) -> None:
    head = bytes(Ether(**MACS) / IP(len=0) / UDP(dport=2152, len=0, chksum=0))
    raw = bytearray(head) + bytes([flags]) + body
    raw[16:18] = b"\0\0"
    parse_chain(bytes(raw), POOL, [Ethernet, Ipv4, Udp, GtpU, Ipv4, Tcp])
    parse_chain(bytes(raw), POOL, [Ethernet, Ipv4, Udp, GtpU, Ipv6, Udp])


# -- common --------------------------------------------------------------------------------

def test_peek_refuses_setters(pool: Mempool) -> None:
    ip = outer_ipv4(pool)
    gre = ip.push(Gre)
    gre.key = 3
    inner_tcp(gre).reconcile_all()
    g = ip.mbuf.peek(Ethernet).peek(Ipv4).peek(Gre)
    for name, value in [("key", None), ("sequence", 1), ("key_present", False),
                        ("checksum_present", True), ("protocol_type", 0x86DD), ("version", 0)]:
        with pytest.raises(ReadOnlyError):
            setattr(g, name, value)
    with pytest.raises(ReadOnlyError):
        g.use_checksum()
    with pytest.raises(ReadOnlyError):
        g.reconcile()
    assert g.key == 3
    ip.mbuf.free()

    m = build_vxlan(pool)
    vx = m.peek(Ethernet).peek(Ipv4).peek(Udp).peek(Vxlan)
    for name in ("vni", "flags", "vni_valid"):
        with pytest.raises(ReadOnlyError):
            setattr(vx, name, 1)
    with pytest.raises(ReadOnlyError):
        vx.push(Ethernet)
    m.free()

    m = build_gtpu(pool, sequence=1)
    gtp = m.peek(Ethernet).peek(Ipv4).peek(Udp).peek(GtpU)
    for name, value in [("sequence", None), ("npdu_number", 1), ("extensions", []),
                        ("ext_present", True), ("teid", 1), ("message_type", 1)]:
        with pytest.raises(ReadOnlyError):
            setattr(gtp, name, value)
    with pytest.raises(ReadOnlyError):
        gtp.reconcile()
    assert gtp.sequence == 1
    m.free()
    assert pool.in_use == 0


def test_summaries(pool: Mempool) -> None:
    ip = outer_ipv4(pool)
    gre = ip.push(Gre)
    gre.key, gre.sequence = 0x10, 3
    gre.push(Ipv6)
    assert gre.summary() == "GREv0, key=0x10, seq 3, proto IPV6"
    assert "key=0x10" in repr(gre) and "sequence=3" in repr(gre)
    ip.mbuf.free()
    m = build_gtpu(pool)
    gtp = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(GtpU)
    gtp.message_type = GtpMessageType.END_MARKER
    assert gtp.summary().startswith("GTPv1-U END_MARKER teid 0x11223344 len ")
    m.free()


def test_dissect_walks_every_tunnel_and_mbuf_reconcile_all_fixes_it(pool: Mempool) -> None:
    ip = outer_ipv4(pool)
    gre = ip.push(Gre)
    gre.use_checksum()
    eth = gre.push(Ethernet)
    inner_tcp(eth)                           # nothing reconciled yet
    gre_frame = ip.mbuf
    gre_frame.reconcile_all()
    vx_frame = build_vxlan(pool, ipv6=True)
    gtp_frame = build_gtpu(pool, inner6=True, sequence=1, extensions=[(0x85, b"\0\1")])
    expected = {
        gre_frame: [Ethernet, Ipv4, Gre, Ethernet, Ipv4, Tcp],
        vx_frame: [Ethernet, Ipv6, Udp, Vxlan, Ethernet, Ipv4, Tcp],
        gtp_frame: [Ethernet, Ipv4, Udp, GtpU, Ipv6, Udp],
    }
    for m, chain in expected.items():
        layers, err = dissect(m)
        assert [type(p) for p in layers] == chain and err is None
        assert layers[-1].checksum_ok and scapy_checksums_ok(m.to_bytes())
    assert " / GREv0, proto TEB / " in summarize(gre_frame)
    assert " / VXLAN flags 0x08 vni 703710 / " in summarize(vx_frame)
    assert " / GTPv1-U G_PDU teid 0x11223344 seq 1 len " in summarize(gtp_frame)
    for m in expected:
        m.free()
    assert pool.in_use == 0


def test_cached_payload_key_follows_protocol_type(pool: Mempool) -> None:
    ip = outer_ipv4(pool)
    gre = ip.push(Gre)
    gre.push(Ipv6)
    g = ip.mbuf.parse(Ethernet).parse(Ipv4).parse(Gre)
    assert g.parse(Ipv6).version == 6
    g.protocol_type = EtherType.IPV4
    with pytest.raises(ProtocolMismatch, match="0x0800"):
        g.parse(Ipv6)
    with pytest.raises(MalformedError, match="version is 6"):
        g.parse(Ipv4)
    ip.mbuf.free()
