"""Edges of reconcile and checksum_ok that mutation testing found untested: a packet too
long for IPv4's total_length or IPv6's payload_length (a typed error naming the header,
nothing written), reconcile on a peeked header, the IHL nibble written by reconcile, and
checksum_ok on the two ones'-complement zeros (0x0000 and 0xFFFF both verify; a UDP 0
means no checksum)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from nfkit import Mbuf, Mempool
from nfkit.errors import MalformedError, ReadOnlyError
from nfkit.packets import Ethernet, Icmpv6, Ipv4, Ipv6, Tcp, Udp

E = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def mbuf(raw: bytes, size: int = 2048) -> Mbuf:
    return Mbuf.from_bytes(raw, Mempool(capacity=1, buf_size=size))


@pytest.mark.parametrize("family", [4, 6])
def test_reconcile_of_a_packet_too_long_for_its_length_field(family: int) -> None:
    # length 0 ("not filled in yet"): the packet ends where the frame ends
    ip = IP(src="10.0.0.1", dst="10.0.0.2", len=0) if family == 4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    hlen = 20 if family == 4 else 40
    for payload, ok in ((0xFFFF - hlen * (family == 4), True), (0xFFFF - hlen * (family == 4) + 1, False)):
        raw = bytes(Ether(**E) / ip) + bytes(payload)
        m = mbuf(raw, size=len(raw) + 256)
        h = m.parse(Ethernet).parse(Ipv4 if family == 4 else Ipv6)
        before = m.to_bytes()
        if ok:
            h.reconcile()                            # exactly 0xFFFF fits
            assert m.to_bytes()[16 if family == 4 else 18:][:2] == b"\xff\xff"
        elif family == 4:
            with pytest.raises(MalformedError, match=r"^IPv4: packet of 65536 bytes does not fit total_length$"):
                h.reconcile()
            assert m.to_bytes() == before
        else:
            with pytest.raises(MalformedError, match=r"^IPv6: payload of 65536 bytes needs a jumbogram$"):
                h.reconcile()
            assert m.to_bytes() == before
        m.free()


def test_reconcile_writes_the_ihl_nibble_and_keeps_the_version() -> None:
    raw = bytearray(bytes(Ether(**E) / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 4) / b"x"))
    m = mbuf(bytes(raw))
    ip = m.parse(Ethernet).parse(Ipv4)
    ip.reconcile()
    assert m.to_bytes() == bytes(raw) and ip.checksum_ok        # already right: unchanged
    m.write_data(14, b"\x47")                    # a raw write: IHL 7 (odd), header still 24
    ip.reconcile()
    assert m.to_bytes() == bytes(raw)             # IHL 6 again, version kept, checksum back
    m.free()


def test_reconcile_on_peeked_headers_is_refused() -> None:
    for raw, cls in ((bytes(Ether(**E) / IP() / b"x"), Ipv4),
                     (bytes(Ether(**E) / IPv6(src="2001:db8::1", dst="2001:db8::2")), Ipv6)):
        m = mbuf(raw)
        with pytest.raises(ReadOnlyError, match=rf"^cannot reconcile a {cls.NAME} header obtained with peek\(\)$"):
            m.parse(Ethernet).peek(cls).reconcile()
        m.free()


def with_transport_sum_zero(pkt: object, layer: type, name: str) -> bytes:
    """``pkt`` plus two payload bytes that make its computed checksum 0 (the data sums to
    ones'-complement -0)."""
    first = getattr(Ether(bytes(pkt / b"\x00\x00"))[layer], name)
    return bytes(pkt / first.to_bytes(2, "big"))


@pytest.mark.parametrize("layer, cls, name, off", [(TCP, Tcp, "chksum", 16), (UDP, Udp, "chksum", 6),
                                                   (ICMPv6EchoRequest, Icmpv6, "cksum", 2)])
def test_checksum_ok_on_both_zeros(layer: type, cls: type, name: str, off: int) -> None:
    ip = IPv6(src="2001:db8::1", dst="2001:db8::2") if layer is ICMPv6EchoRequest else \
        IP(src="10.0.0.1", dst="10.0.0.2")
    raw = with_transport_sum_zero(Ether(**E) / ip / layer(), layer, name)
    l4 = 14 + (40 if layer is ICMPv6EchoRequest else 20)
    stored = raw[l4 + off:l4 + off + 2]
    assert stored == (b"\xff\xff" if layer is UDP else b"\x00\x00")   # Scapy's choice
    for value, ok in ((b"\x00\x00", True), (b"\xff\xff", True), (b"\x00\x01", False), (b"\xff\xfe", False)):
        b = bytearray(raw)
        b[l4 + off:l4 + off + 2] = value
        m = mbuf(bytes(b))
        h = m.parse(Ethernet).parse(Ipv4 if layer is not ICMPv6EchoRequest else Ipv6).parse(cls)
        assert h.checksum_ok is ok, (layer.__name__, value)
        m.free()
    # a UDP 0 means no checksum even where the data does not sum to zero
    b = bytearray(bytes(Ether(**E) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(chksum=0) / b"abc"))
    m = mbuf(bytes(b))
    assert m.parse(Ethernet).parse(Ipv4).parse(Udp).checksum_ok
    m.free()
    b = bytearray(bytes(Ether(**E) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(chksum=0) / b"abc"))
    m = mbuf(bytes(b))
    assert not m.parse(Ethernet).parse(Ipv4).parse(Tcp).checksum_ok      # TCP 0 is a value
    m.free()
