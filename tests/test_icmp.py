"""ICMPv4 and ICMPv6 messages, checked against Scapy as an independent oracle."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import ICMP, IP, UDP, Ether
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6PacketTooBig, ICMPv6ParamProblem, ICMPv6TimeExceeded,
                                IPv6, in6_chksum)
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from nfkit import (Mbuf, Mempool, ParseError, ProtocolMismatch, ReadOnlyError,
                   TruncatedError)
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp
from nfkit.packets import icmpv4 as v4
from nfkit.packets import icmpv6 as v6
from nfkit.packets.icmpv4 import Icmpv4, Icmpv4Type
from nfkit.packets.icmpv6 import Icmpv6, Icmpv6Type

#: hypothesis tests cannot use the function-scoped ``pool`` fixture: they share this one
POOL = Mempool(capacity=63, name="icmp-hypothesis")

INVOKING4 = bytes(IP(src="10.0.0.2", dst="192.0.2.9") / UDP(sport=5000, dport=53) / (b"q" * 20))
INVOKING6 = bytes(IPv6(src="2001:db8::2", dst="2001:db8::9") / UDP(sport=5000, dport=53)
                  / (b"q" * 20))


# -- helpers ------------------------------------------------------------------------------

def build(family: int, cls: type, fields: dict[str, Any], data: bytes | None = None,
          pool: Mempool = POOL) -> bytes:
    """Push Ethernet / IP / ``cls``, set ``fields`` and ``data``, reconcile; the frame."""
    m = Mbuf.alloc(pool)
    try:
        eth = m.push(Ethernet)
        eth.src, eth.dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
        if family == 4:
            ip = eth.push(Ipv4)
            ip.src, ip.dst = "10.0.0.1", "10.0.0.2"
        else:
            ip = eth.push(Ipv6)
            ip.src, ip.dst = "2001:db8::1", "2001:db8::2"
        msg = ip.push(cls)
        for k, v in fields.items():
            setattr(msg, k, v)
        if data is not None:
            msg.data = data
        msg.reconcile_all()
        return m.to_bytes()
    finally:
        m.free()


def icmp4_bytes(raw: bytes) -> bytes:
    ip = Ether(raw)[IP]
    return raw[14 + ip.ihl * 4:14 + ip.len]


def scapy4_ok(raw: bytes) -> bool:
    """Scapy's checksum of the ICMPv4 message (field zeroed) equals the stored one."""
    msg = icmp4_bytes(raw)
    return scapy_checksum(msg[:2] + b"\0\0" + msg[4:]) == int.from_bytes(msg[2:4], "big")


def icmp6_bytes(raw: bytes) -> bytes:
    ip = Ether(raw)[IPv6]
    return raw[54:54 + ip.plen]


def scapy6_ok(raw: bytes) -> bool:
    """Scapy's ICMPv6 checksum (pseudo-header included) equals the stored one."""
    msg = icmp6_bytes(raw)
    want = in6_chksum(58, Ether(raw)[IPv6], msg[:2] + b"\0\0" + msg[4:])
    return want == int.from_bytes(msg[2:4], "big")


def parse(raw: bytes, family: int, cls: type, pool: Mempool = POOL) -> tuple[Mbuf, Any]:
    m = Mbuf.from_bytes(raw, pool)
    ip = m.parse(Ethernet).parse(Ipv4 if family == 4 else Ipv6)
    return m, ip.parse(cls)


# -- ICMPv4: nfkit builds, Scapy dissects -------------------------------------------------

V4_CASES = [
    (v4.EchoRequest, {"identifier": 0x1234, "seq_no": 7}, b"ping data",
     {"type": 8, "code": 0, "id": 0x1234, "seq": 7}),
    (v4.EchoReply, {"identifier": 1, "seq_no": 2}, b"", {"type": 0, "id": 1, "seq": 2}),
    (v4.DestinationUnreachable, {"code": 4, "next_hop_mtu": 1400}, INVOKING4,
     {"type": 3, "code": 4, "nexthopmtu": 1400}),
    (v4.TimeExceeded, {"code": 1}, INVOKING4, {"type": 11, "code": 1}),
    (v4.Redirect, {"code": 1, "gateway": "192.0.2.1"}, INVOKING4,
     {"type": 5, "code": 1, "gw": "192.0.2.1"}),
    (v4.ParameterProblem, {"pointer": 9}, INVOKING4, {"type": 12, "ptr": 9}),
]


def case_id(value: Any) -> str:
    return getattr(value, "__name__", "")


@pytest.mark.parametrize("cls,fields,data,scapy_fields", V4_CASES, ids=case_id)
def test_v4_build_matches_scapy_and_round_trips(cls: type, fields: dict, data: bytes,
                                                scapy_fields: dict, pool: Mempool) -> None:
    raw = build(4, cls, fields, data, pool)
    icmp = Ether(raw)[ICMP]
    for name, want in scapy_fields.items():
        assert icmp.getfieldval(name) == want, name
    assert scapy4_ok(raw)
    # Scapy's own rebuild computes the same checksum
    pkt = Ether(raw)
    stored = pkt[ICMP].chksum
    del pkt[ICMP].chksum
    assert Ether(bytes(pkt))[ICMP].chksum == stored
    # the invoking packet is what Scapy sees after the 8 bytes
    assert icmp4_bytes(raw)[8:] == data
    m, msg = parse(raw, 4, cls, pool)
    assert msg.msg_type == cls.MSG_TYPE and msg.header_len == 8
    for name, want in fields.items():
        got = getattr(msg, name)
        assert (str(got) if isinstance(got, IPv4Address) else got) == want
    assert msg.data == data and msg.payload_len == len(data)
    assert msg.checksum_ok and msg.compute_checksum() == msg.checksum
    m.free()


# -- ICMPv4: Scapy builds, nfkit parses ---------------------------------------------------

S4_CASES = [
    (ICMP(type=8, id=5, seq=6) / b"hi there", v4.EchoRequest,
     {"identifier": 5, "seq_no": 6, "data": b"hi there"}),
    (ICMP(type=0, id=65535, seq=0), v4.EchoReply, {"identifier": 65535, "seq_no": 0, "data": b""}),
    (ICMP(type=3, code=3) / Raw(INVOKING4), v4.DestinationUnreachable,
     {"code": 3, "next_hop_mtu": 0, "data": INVOKING4}),
    (ICMP(type=11, code=0) / Raw(INVOKING4), v4.TimeExceeded, {"code": 0, "unused": 0}),
    (ICMP(type=5, code=0, gw="10.1.1.1") / Raw(INVOKING4), v4.Redirect,
     {"gateway": IPv4Address("10.1.1.1")}),
    (ICMP(type=12, ptr=33) / Raw(INVOKING4), v4.ParameterProblem, {"pointer": 33}),
]


@pytest.mark.parametrize("layer,cls,fields", S4_CASES, ids=case_id)
def test_v4_parse_scapy_built(layer: Any, cls: type, fields: dict, pool: Mempool) -> None:
    raw = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / layer)
    m, msg = parse(raw, 4, cls, pool)
    for name, want in fields.items():
        assert getattr(msg, name) == want, name
    assert msg.checksum == Ether(raw)[ICMP].chksum and msg.checksum_ok
    generic = msg.envelope.parse(Icmpv4)
    assert generic.header_len == 4 and generic.msg_type == cls.MSG_TYPE
    assert type(generic.message()) is cls
    m.free()


# -- ICMPv6: nfkit builds, Scapy dissects; Scapy builds, nfkit parses ----------------------

V6_CASES = [
    (v6.EchoRequest, {"identifier": 0xBEEF, "seq_no": 1}, b"abc", ICMPv6EchoRequest,
     {"type": 128, "id": 0xBEEF, "seq": 1, "data": b"abc"}),
    (v6.EchoReply, {"identifier": 2, "seq_no": 3}, b"", ICMPv6EchoReply,
     {"type": 129, "id": 2, "seq": 3}),
    (v6.DestinationUnreachable, {"code": 4}, INVOKING6, ICMPv6DestUnreach, {"type": 1, "code": 4}),
    (v6.PacketTooBig, {"mtu": 1400}, INVOKING6, ICMPv6PacketTooBig, {"type": 2, "mtu": 1400}),
    (v6.TimeExceeded, {"code": 1}, INVOKING6, ICMPv6TimeExceeded, {"type": 3, "code": 1}),
    (v6.ParameterProblem, {"code": 1, "pointer": 40}, INVOKING6, ICMPv6ParamProblem,
     {"type": 4, "code": 1, "ptr": 40}),
]


@pytest.mark.parametrize("cls,fields,data,slayer,scapy_fields", V6_CASES,
                         ids=case_id)
def test_v6_build_matches_scapy_and_round_trips(cls: type, fields: dict, data: bytes, slayer: Any,
                                                scapy_fields: dict, pool: Mempool) -> None:
    raw = build(6, cls, fields, data, pool)
    pkt = Ether(raw)
    icmp = pkt[slayer]
    for name, want in scapy_fields.items():
        assert icmp.getfieldval(name) == want, name
    assert scapy6_ok(raw)
    stored = icmp.cksum
    del pkt[slayer].cksum
    assert Ether(bytes(pkt))[slayer].cksum == stored
    m, msg = parse(raw, 6, cls, pool)
    for name, want in fields.items():
        assert getattr(msg, name) == want, name
    assert msg.data == data and msg.checksum_ok
    m.free()


S6_CASES = [
    (ICMPv6EchoRequest(id=9, seq=10, data=b"xyz"), v6.EchoRequest,
     {"identifier": 9, "seq_no": 10, "data": b"xyz"}),
    (ICMPv6EchoReply(id=0, seq=65535), v6.EchoReply,
     {"identifier": 0, "seq_no": 65535, "data": b""}),
    (ICMPv6DestUnreach(code=1) / Raw(INVOKING6), v6.DestinationUnreachable,
     {"code": 1, "unused": 0, "data": INVOKING6}),
    (ICMPv6PacketTooBig(mtu=1280) / Raw(INVOKING6), v6.PacketTooBig, {"mtu": 1280}),
    (ICMPv6TimeExceeded(code=0) / Raw(INVOKING6), v6.TimeExceeded, {"code": 0}),
    (ICMPv6ParamProblem(code=2, ptr=48) / Raw(INVOKING6), v6.ParameterProblem,
     {"code": 2, "pointer": 48}),
]


@pytest.mark.parametrize("layer,cls,fields", S6_CASES, ids=case_id)
def test_v6_parse_scapy_built(layer: Any, cls: type, fields: dict, pool: Mempool) -> None:
    raw = bytes(Ether() / IPv6(src="fe80::1", dst="fe80::2") / layer)
    m, msg = parse(raw, 6, cls, pool)
    for name, want in fields.items():
        assert getattr(msg, name) == want, name
    assert msg.checksum_ok
    assert type(msg.envelope.parse(Icmpv6).message()) is cls
    m.free()


# -- property tests -------------------------------------------------------------------------

echo_fields = st.fixed_dictionaries({"identifier": st.integers(0, 0xFFFF),
                                     "seq_no": st.integers(0, 0xFFFF)})


@given(cls=st.sampled_from([v4.EchoRequest, v4.EchoReply]), fields=echo_fields,
       data=st.binary(max_size=300))
def test_v4_echo_property(cls: type, fields: dict, data: bytes) -> None:
    raw = build(4, cls, fields, data)
    icmp = Ether(raw)[ICMP]
    assert (icmp.type, icmp.id, icmp.seq) == (cls.MSG_TYPE, fields["identifier"], fields["seq_no"])
    assert scapy4_ok(raw)
    pkt = Ether(raw)
    del pkt[ICMP].chksum
    assert Ether(bytes(pkt))[ICMP].chksum == icmp.chksum   # all-zero replies: 0xFFFF too
    m, msg = parse(raw, 4, cls)
    assert (msg.identifier, msg.seq_no, msg.data) == (fields["identifier"], fields["seq_no"], data)
    m.free()
    assert POOL.in_use == 0


@given(cls=st.sampled_from([v6.EchoRequest, v6.EchoReply]), fields=echo_fields,
       data=st.binary(max_size=300))
def test_v6_echo_property(cls: type, fields: dict, data: bytes) -> None:
    raw = build(6, cls, fields, data)
    assert scapy6_ok(raw)
    m, msg = parse(raw, 6, cls)
    assert (msg.identifier, msg.seq_no, msg.data) == (fields["identifier"], fields["seq_no"], data)
    m.free()


# Setter sequences applied after reconcile: the checksum must stay valid with no reconcile.
setter_ops = st.lists(st.one_of(
    st.tuples(st.just("identifier"), st.integers(0, 0xFFFF)),
    st.tuples(st.just("seq_no"), st.integers(0, 0xFFFF)),
    st.tuples(st.just("code"), st.integers(0, 255)),
    st.tuples(st.just("data"), st.binary(max_size=64)),
), min_size=1, max_size=6)


@given(family=st.sampled_from([4, 6]), ops=setter_ops, addr=st.integers(1, 2**32 - 1))
def test_setters_keep_checksum_valid(family: int, ops: list, addr: int) -> None:
    raw = build(family, v4.EchoRequest if family == 4 else v6.EchoRequest,
                {"identifier": 1}, b"initial data")
    m = Mbuf.from_bytes(raw, POOL)
    ip = m.parse(Ethernet).parse(Ipv4 if family == 4 else Ipv6)
    msg = ip.parse(v4.EchoRequest if family == 4 else v6.EchoRequest)
    for name, value in ops:
        setattr(msg, name, value)
        assert msg.checksum_ok
    if family == 6:
        ip.src = (0x20010DB8 << 96) | addr   # the pseudo-header changes: the checksum follows
    ip.reconcile()                          # lengths only; the ICMP checksum is not recomputed
    out = m.to_bytes()
    m.free()
    assert (scapy4_ok if family == 4 else scapy6_ok)(out)
    data = [v for k, v in ops if k == "data"]
    want = data[-1] if data else b"initial data"
    assert (icmp4_bytes(out) if family == 4 else icmp6_bytes(out))[8:] == want


# -- generic header, downcast, type checks --------------------------------------------------

def test_generic_parses_any_type_and_downcasts(pool: Mempool) -> None:
    raw = bytes(Ether() / IP() / ICMP(type=13, code=0) / (b"\0" * 12))   # timestamp: no class
    m, msg = parse(raw, 4, Icmpv4, pool)
    assert msg.msg_type == Icmpv4Type.TIMESTAMP and msg.type_name == "Timestamp"
    assert msg.header_len == 4 and msg.payload_len == 24 + 4 and msg.checksum_ok
    assert msg.message() is msg
    with pytest.raises(ProtocolMismatch, match=r"expected type 8 \(Echo Request\), got type 13"):
        msg.downcast(v4.EchoRequest)
    m.free()

    raw = build(4, v4.EchoRequest, {"identifier": 3, "seq_no": 4}, b"x", pool)
    m, msg = parse(raw, 4, Icmpv4, pool)
    echo = msg.downcast(v4.EchoRequest)
    assert (echo.identifier, echo.seq_no, echo.data) == (3, 4, b"x")
    assert echo.offset == msg.offset and echo.envelope is msg.envelope
    with pytest.raises(TypeError):
        msg.downcast(Tcp)
    with pytest.raises(TypeError):
        msg.downcast(v6.EchoRequest)            # the other family
    m.free()


def test_parse_checks_the_type(pool: Mempool) -> None:
    raw = build(4, v4.EchoRequest, {}, b"", pool)
    m = Mbuf.from_bytes(raw, pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    with pytest.raises(ProtocolMismatch) as exc:
        ip.parse(v4.EchoReply)
    assert "expected type 0 (Echo Reply)" in str(exc.value)
    assert "got type 8 (Echo Request)" in str(exc.value)
    with pytest.raises(ProtocolMismatch):
        ip.parse(v6.EchoRequest)                # ICMPv6 over IPv4
    with pytest.raises(ProtocolMismatch):
        ip.parse(Tcp)
    m.free()


def test_pushing_the_generic_header_is_refused(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    ip = m.push(Ethernet).push(Ipv4)
    with pytest.raises(ProtocolMismatch, match="concrete message"):
        ip.push(Icmpv4)
    with pytest.raises(ProtocolMismatch):
        ip.push(v6.EchoRequest)                 # wrong family
    ip6 = Mbuf.alloc(pool)
    with pytest.raises(ProtocolMismatch):
        ip6.push(Ethernet).push(Ipv6).push(Icmpv6)
    m.free()
    ip6.free()


def test_push_writes_type_and_protocol(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    ip = m.push(Ethernet).push(Ipv4)
    msg = ip.push(v4.TimeExceeded)
    assert msg.msg_type == 11 and ip.protocol == 1 and msg.header_len == 8 and msg.data == b""
    m.free()
    m = Mbuf.alloc(pool)
    ip6 = m.push(Ethernet).push(Ipv6)
    msg6 = ip6.push(v6.PacketTooBig)
    assert msg6.msg_type == 2 and ip6.next_header == 58 and msg6.mtu == 1280
    m.free()


def test_truncated_messages(pool: Mempool) -> None:
    raw = bytes(Ether() / IP(proto=1) / Raw(b"\x08\x00\x00\x00\x00\x01"))   # 6 of 8 bytes
    m = Mbuf.from_bytes(raw, pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    with pytest.raises(TruncatedError) as exc:
        ip.parse(v4.EchoRequest)
    assert isinstance(exc.value, ParseError)
    assert ip.parse(Icmpv4).payload_len == 2
    m.free()
    raw = bytes(Ether() / IP(proto=1) / Raw(b"\x08\x00"))
    m = Mbuf.from_bytes(raw, pool)
    with pytest.raises(TruncatedError):
        m.parse(Ethernet).parse(Ipv4).parse(Icmpv4)
    m.free()
    raw = bytes(Ether() / IPv6(nh=58) / Raw(b"\x80\x00\x00\x00\x00"))
    m = Mbuf.from_bytes(raw, pool)
    with pytest.raises(TruncatedError):
        m.parse(Ethernet).parse(Ipv6).parse(v6.EchoRequest)
    m.free()


def test_peek_views_are_read_only(pool: Mempool) -> None:
    raw = build(4, v4.EchoRequest, {"identifier": 1}, b"data", pool)
    m = Mbuf.from_bytes(raw, pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    echo = ip.peek(v4.EchoRequest)
    for attempt in (lambda: setattr(echo, "identifier", 2), lambda: setattr(echo, "code", 1),
                    lambda: setattr(echo, "data", b"new"), lambda: echo.set_payload(b""),
                    echo.reconcile, lambda: setattr(echo, "checksum", 0)):
        with pytest.raises(ReadOnlyError):
            attempt()
    assert echo.identifier == 1 and echo.data == b"data"
    generic = ip.peek(Icmpv4)
    down = generic.downcast(v4.EchoRequest)       # read-only stays read-only
    with pytest.raises(ReadOnlyError):
        down.seq_no = 5
    assert m.to_bytes() == raw
    m.free()


# -- echo data (capsule bugs not copied) ----------------------------------------------------

@pytest.mark.parametrize("family", [4, 6])
def test_echo_data_edge_cases(family: int, pool: Mempool) -> None:
    cls = v4.EchoRequest if family == 4 else v6.EchoRequest
    ok = scapy4_ok if family == 4 else scapy6_ok
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    ip = eth.push(Ipv4 if family == 4 else Ipv6)
    echo = ip.push(cls)
    assert echo.data == b""                     # empty data at the end of the buffer
    echo.data = b""                             # same length (0): no error
    echo.data = b"abcd"
    echo.reconcile_all()
    echo.data = b"wxyz"                         # same length: just rewritten
    assert echo.data == b"wxyz" and ok(m.to_bytes())
    echo.data = b"odd"                          # shrink, odd length
    ip.reconcile()
    assert echo.data == b"odd" and ok(m.to_bytes())
    echo.data = bytes(range(200))               # grow
    ip.reconcile()
    assert echo.data == bytes(range(200)) and ok(m.to_bytes())
    echo.remove_payload()
    ip.reconcile()
    assert echo.data == b"" and len(m) == 14 + (20 if family == 4 else 40) + 8 and ok(m.to_bytes())
    m.free()


def test_all_zero_echo_reply_checksum_is_ffff(pool: Mempool) -> None:
    """type 0, code 0, id 0, seq 0, no data sums to +0: the checksum must be 0xFFFF."""
    raw = build(4, v4.EchoReply, {}, b"", pool)
    assert icmp4_bytes(raw)[2:4] == b"\xff\xff"
    assert scapy4_ok(raw)


# -- error messages trim the invoking packet ------------------------------------------------

def test_v4_error_trims_to_576_capsule_style(pool: Mempool) -> None:
    """Turn a received packet into a Time Exceeded about it: push a new IPv4 header after
    Ethernet, push the message; the old IP packet becomes the data, trimmed to fit 576."""
    big = bytes(Ether() / IP(src="10.0.0.9", dst="10.0.0.7") / UDP(sport=1, dport=2)
                / (b"z" * 1200))
    m = Mbuf.from_bytes(big, pool)
    eth = m.parse(Ethernet)
    ip = eth.push(Ipv4)
    ip.src, ip.dst = "10.0.0.254", "10.0.0.9"
    te = ip.push(v4.TimeExceeded)
    te.reconcile_all()
    out = m.to_bytes()
    assert len(out) == 14 + 576
    assert te.data == big[14:14 + 576 - 28] and len(te) == 576 - 20
    pkt = Ether(out)
    assert pkt[IP].len == 576 and pkt[ICMP].type == 11 and scapy4_ok(out)
    assert pkt[ICMP].payload.src == "10.0.0.9"      # Scapy sees the invoking header
    m.free()


def test_v4_error_short_packet_is_not_trimmed(pool: Mempool) -> None:
    raw = build(4, v4.DestinationUnreachable, {"code": 3}, INVOKING4, pool)
    assert len(raw) == 14 + 20 + 8 + len(INVOKING4) and scapy4_ok(raw)
    # echo messages are never trimmed
    raw = build(4, v4.EchoRequest, {}, b"e" * 1000, pool)
    assert len(raw) == 14 + 20 + 8 + 1000 and scapy4_ok(raw)


@pytest.mark.parametrize("cls", [v6.PacketTooBig, v6.DestinationUnreachable, v6.TimeExceeded,
                                 v6.ParameterProblem])
def test_v6_error_trims_to_1280(cls: type, pool: Mempool) -> None:
    big = bytes(IPv6(src="2001:db8::9", dst="2001:db8::7") / UDP() / (b"z" * 1400))
    raw = build(6, cls, {}, big, pool)
    assert len(raw) == 14 + 1280
    assert Ether(raw)[IPv6].plen == 1240 and scapy6_ok(raw)
    assert icmp6_bytes(raw)[8:] == big[:1280 - 48]


def test_v6_over_fragment_header(pool: Mempool) -> None:
    """The pseudo-header comes through an extension header; trimming moves it too."""
    from nfkit.packets.ipv6ext import Fragment

    m = Mbuf.alloc(pool)
    ip = m.push(Ethernet).push(Ipv6)
    ip.src, ip.dst = "2001:db8::1", "2001:db8::2"
    frag = ip.push(Fragment)
    msg = frag.push(v6.PacketTooBig)
    msg.mtu = 1300
    msg.data = b"y" * 1400
    msg.reconcile_all()
    out = m.to_bytes()
    assert len(out) == 14 + 1280 and len(frag) == 1240 and len(msg) == 1232
    pkt = Ether(out)
    icmp = out[14 + 40 + 8:]
    assert pkt[IPv6].plen == 1240 and icmp[:2] == b"\x02\x00"
    assert icmp[4:8] == (1300).to_bytes(4, "big")
    want = in6_chksum(58, pkt[IPv6], icmp[:2] + b"\0\0" + icmp[4:])
    assert want == int.from_bytes(icmp[2:4], "big") and msg.checksum_ok
    m.free()


def test_v6_checksum_follows_address_change(pool: Mempool) -> None:
    raw = build(6, v6.EchoRequest, {"identifier": 77}, b"hello", pool)
    m = Mbuf.from_bytes(raw, pool)
    ip = m.parse(Ethernet).parse(Ipv6)
    echo = ip.parse(v6.EchoRequest)
    ip.src = "2001:db8:ffff::1"
    ip.dst = "fe80::42"
    assert echo.checksum_ok and scapy6_ok(m.to_bytes())
    m.free()


# -- display ----------------------------------------------------------------------------

def test_type_enums_print_names() -> None:
    assert str(Icmpv6Type.DESTINATION_UNREACHABLE) == "Destination Unreachable"
    assert str(Icmpv6Type(1)) == "Destination Unreachable"
    assert str(Icmpv4Type.ECHO_REQUEST) == "Echo Request"
    assert str(Icmpv6Type.PACKET_TOO_BIG) == "Packet Too Big"


def test_summaries(pool: Mempool) -> None:
    cases = [
        (4, v4.EchoRequest, {"identifier": 1, "seq_no": 2}, "ICMP echo request id 1 seq 2"),
        (4, v4.EchoReply, {"identifier": 1, "seq_no": 2}, "ICMP echo reply id 1 seq 2"),
        (4, v4.DestinationUnreachable, {"code": 4, "next_hop_mtu": 1400},
         "ICMP destination unreachable code 4 (need to frag) mtu 1400"),
        (4, v4.DestinationUnreachable, {"code": 3},
         "ICMP destination unreachable code 3 (port unreachable)"),
        (4, v4.TimeExceeded, {}, "ICMP time exceeded in-transit"),
        (4, v4.Redirect, {"code": 1, "gateway": "10.0.0.9"},
         "ICMP redirect to 10.0.0.9 code 1 (host)"),
        (4, v4.ParameterProblem, {"pointer": 20}, "ICMP parameter problem code 0 pointer 20"),
        (6, v6.EchoRequest, {"identifier": 5, "seq_no": 6}, "ICMP6 echo request id 5 seq 6"),
        (6, v6.EchoReply, {"identifier": 5, "seq_no": 6}, "ICMP6 echo reply id 5 seq 6"),
        (6, v6.DestinationUnreachable, {"code": 4},
         "ICMP6 destination unreachable code 4 (port unreachable)"),
        (6, v6.PacketTooBig, {"mtu": 1400}, "ICMP6 packet too big mtu 1400"),
        (6, v6.TimeExceeded, {"code": 1}, "ICMP6 time exceeded reassembly"),
        (6, v6.ParameterProblem, {"pointer": 6},
         "ICMP6 parameter problem code 0 (erroneous header field) pointer 6"),
    ]
    for family, cls, fields, want in cases:
        raw = build(family, cls, fields, None, pool)
        m, msg = parse(raw, family, cls, pool)
        assert msg.summary() == want
        assert cls.__name__ in repr(msg)
        m.free()
    raw = bytes(Ether() / IP() / ICMP(type=13))
    m, msg = parse(raw, 4, Icmpv4, pool)
    assert msg.summary() == "ICMP timestamp code 0"
    m.free()
