"""NDP messages and options (RFC 4861), checked against Scapy as an independent oracle."""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import UDP, Ether
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_Redirect,
                                ICMPv6ND_RS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptMTU,
                                ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS,
                                ICMPv6NDOptRedirectedHdr, ICMPv6NDOptSrcLLAddr, IPv6,
                                in6_chksum)
from scapy.packet import Raw

from nfkit import (FieldValueError, MacAddr, MalformedError, Mbuf, Mempool, ParseError,
                   ProtocolMismatch, ReadOnlyError, TruncatedError)
from nfkit.packets import Ethernet, Ipv6
from nfkit.packets.icmpv6 import Icmpv6
from nfkit.packets.ndp import (LinkLayerAddress, Mtu, NdpOption, NdpOptionType,
                               NeighborAdvertisement, NeighborSolicitation, PrefixInformation,
                               Redirect, RedirectedHeader, RouterAdvertisement,
                               RouterSolicitation)

POOL = Mempool(capacity=63, name="ndp-hypothesis")
MAC1 = "02:00:00:00:00:01"
MAC2 = "02:00:00:00:00:02"


# -- helpers ------------------------------------------------------------------------------

def new_message(cls: type, pool: Mempool = POOL) -> tuple[Mbuf, Any, Any]:
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    eth.src, eth.dst = MAC1, "33:33:00:00:00:01"
    ip = eth.push(Ipv6)
    ip.src, ip.dst, ip.hop_limit = "fe80::1", "ff02::1", 255
    return m, ip, ip.push(cls)


def finish(m: Mbuf, msg: Any) -> bytes:
    msg.reconcile_all()
    raw = m.to_bytes()
    m.free()
    return raw


def scapy_ok(raw: bytes) -> bool:
    """Scapy's ICMPv6 checksum over our message (field zeroed) equals the stored one."""
    ip = Ether(raw)[IPv6]
    msg = raw[54:54 + ip.plen]
    return in6_chksum(58, ip, msg[:2] + b"\0\0" + msg[4:]) == int.from_bytes(msg[2:4], "big")


def parse(raw: bytes, cls: type, pool: Mempool = POOL) -> tuple[Mbuf, Any]:
    m = Mbuf.from_bytes(raw, pool)
    return m, m.parse(Ethernet).parse(Ipv6).parse(cls)


def scapy_recomputes_same(raw: bytes, layer: type) -> None:
    pkt = Ether(raw)
    stored = pkt[layer].cksum
    del pkt[layer].cksum
    assert Ether(bytes(pkt))[layer].cksum == stored


# -- each message: nfkit builds, Scapy dissects, nfkit parses back ---------------------------

def test_router_solicitation(pool: Mempool) -> None:
    m, _, rs = new_message(RouterSolicitation, pool)
    rs.add_option(LinkLayerAddress, addr=MAC1)
    raw = finish(m, rs)
    pkt = Ether(raw)
    assert pkt[ICMPv6ND_RS].type == 133 and pkt[ICMPv6NDOptSrcLLAddr].lladdr == MAC1
    assert scapy_ok(raw)
    scapy_recomputes_same(raw, ICMPv6ND_RS)
    m, rs = parse(raw, RouterSolicitation, pool)
    assert rs.header_len == 8 and rs.reserved == 0 and rs.checksum_ok
    [lla] = rs.options()
    assert type(lla) is LinkLayerAddress and lla.option_type == LinkLayerAddress.SOURCE
    assert lla.addr == MacAddr(MAC1) and lla.length == 1 and len(lla) == 8
    m.free()


def test_router_advertisement(pool: Mempool) -> None:
    m, _, ra = new_message(RouterAdvertisement, pool)
    ra.current_hop_limit = 64
    ra.managed_addr_cfg = True
    ra.other_cfg = True
    ra.router_lifetime = 1800
    ra.reachable_time = 30000
    ra.retrans_timer = 1000
    ra.add_option(LinkLayerAddress, addr=MAC1)
    ra.add_option(Mtu, mtu=1500)
    ra.add_option(PrefixInformation, prefix_length=64, on_link=True, autonomous=True,
                  valid_lifetime=2592000, preferred_lifetime=604800, prefix="2001:db8:1::")
    raw = finish(m, ra)
    pkt = Ether(raw)
    sra = pkt[ICMPv6ND_RA]
    assert (sra.chlim, sra.M, sra.O, sra.routerlifetime, sra.reachabletime, sra.retranstimer) == \
        (64, 1, 1, 1800, 30000, 1000)
    assert pkt[ICMPv6NDOptSrcLLAddr].lladdr == MAC1 and pkt[ICMPv6NDOptMTU].mtu == 1500
    pi = pkt[ICMPv6NDOptPrefixInfo]
    assert (pi.prefixlen, pi.L, pi.A, pi.validlifetime, pi.preferredlifetime, pi.prefix) == \
        (64, 1, 1, 2592000, 604800, "2001:db8:1::")
    assert scapy_ok(raw)
    scapy_recomputes_same(raw, ICMPv6ND_RA)
    m, ra = parse(raw, RouterAdvertisement, pool)
    assert ra.fields() == {"msg_type": 134, "code": 0, "checksum": sra.cksum,
                           "current_hop_limit": 64, "managed_addr_cfg": True, "other_cfg": True,
                           "router_lifetime": 1800, "reachable_time": 30000, "retrans_timer": 1000}
    lla, mtu, prefix = ra.options()
    assert (type(lla), type(mtu), type(prefix)) == (LinkLayerAddress, Mtu, PrefixInformation)
    assert mtu.mtu == 1500 and mtu.reserved == 0
    assert prefix.fields() == {"option_type": 3, "length": 4, "prefix_length": 64, "on_link": True,
                               "autonomous": True, "valid_lifetime": 2592000,
                               "preferred_lifetime": 604800, "reserved": 0,
                               "prefix": IPv6Address("2001:db8:1::")}
    m.free()


def test_neighbor_solicitation_and_advertisement(pool: Mempool) -> None:
    m, _, ns = new_message(NeighborSolicitation, pool)
    ns.target = "fe80::2"
    ns.add_option(LinkLayerAddress, addr=MAC1)
    raw = finish(m, ns)
    pkt = Ether(raw)
    assert pkt[ICMPv6ND_NS].tgt == "fe80::2" and pkt[ICMPv6NDOptSrcLLAddr].lladdr == MAC1
    assert scapy_ok(raw)
    m, ns = parse(raw, NeighborSolicitation, pool)
    assert ns.target == IPv6Address("fe80::2") and ns.header_len == 24
    assert ns.option(LinkLayerAddress).addr == MacAddr(MAC1)
    m.free()

    m, _, na = new_message(NeighborAdvertisement, pool)
    na.router, na.solicited, na.override = True, True, False
    na.target = "fe80::2"
    na.add_option(LinkLayerAddress, option_type=LinkLayerAddress.TARGET, addr=MAC2)
    raw = finish(m, na)
    pkt = Ether(raw)
    sna = pkt[ICMPv6ND_NA]
    assert (sna.R, sna.S, sna.O, sna.res, sna.tgt) == (1, 1, 0, 0, "fe80::2")
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC2
    assert scapy_ok(raw)
    scapy_recomputes_same(raw, ICMPv6ND_NA)
    m, na = parse(raw, NeighborAdvertisement, pool)
    assert (na.router, na.solicited, na.override, na.reserved) == (True, True, False, 0)
    assert na.option(LinkLayerAddress, option_type=LinkLayerAddress.SOURCE) is None
    assert na.option(LinkLayerAddress, option_type=LinkLayerAddress.TARGET).addr == MacAddr(MAC2)
    m.free()


def test_redirect_small(pool: Mempool) -> None:
    m, _, rd = new_message(Redirect, pool)
    rd.target, rd.destination = "fe80::99", "2001:db8::5"
    rd.add_option(LinkLayerAddress, option_type=2, addr=MAC2)
    rh = rd.add_option(RedirectedHeader, data=b"0123456789abc")   # padded to 8
    assert len(rh) == 24 and rh.length == 3 and rh.data == b"0123456789abc" + bytes(3)
    raw = finish(m, rd)
    pkt = Ether(raw)
    srd = pkt[ICMPv6ND_Redirect]
    assert (srd.tgt, srd.dst) == ("fe80::99", "2001:db8::5")
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC2
    assert pkt[ICMPv6NDOptRedirectedHdr].len == 3 and scapy_ok(raw)
    m, rd = parse(raw, Redirect, pool)
    assert rd.header_len == 40 and rd.target == IPv6Address("fe80::99")
    assert [type(o) for o in rd.options()] == [LinkLayerAddress, RedirectedHeader]
    m.free()


# -- Scapy builds, nfkit parses --------------------------------------------------------------

def test_parse_scapy_router_advertisement_with_unknown_option(pool: Mempool) -> None:
    raw = bytes(Ether() / IPv6(src="fe80::1", dst="ff02::1", hlim=255)
                / ICMPv6ND_RA(chlim=32, M=0, O=1, routerlifetime=600)
                / ICMPv6NDOptSrcLLAddr(lladdr=MAC2)
                / ICMPv6NDOptRDNSS(dns=["2001:db8::53"], lifetime=100)
                / ICMPv6NDOptPrefixInfo(prefix="2001:db8:2::", prefixlen=48)
                / ICMPv6NDOptMTU(mtu=9000))
    m, ra = parse(raw, RouterAdvertisement, pool)
    assert (ra.current_hop_limit, ra.managed_addr_cfg, ra.other_cfg, ra.router_lifetime) == \
        (32, False, True, 600)
    assert ra.checksum_ok
    opts = ra.options()
    assert [type(o) for o in opts] == [LinkLayerAddress, NdpOption, PrefixInformation, Mtu]
    assert opts[1].option_type == 25 and len(opts[1]) == 24
    assert opts[1].data == bytes(ICMPv6NDOptRDNSS(dns=["2001:db8::53"], lifetime=100))[2:]
    assert opts[2].prefix == IPv6Address("2001:db8:2::") and opts[2].prefix_length == 48
    assert opts[3].mtu == 9000 and ra.option(Mtu).mtu == 9000
    assert ra.option(NdpOption).option_type == 1            # the generic class matches any
    assert ra.option(RedirectedHeader) is None
    with pytest.raises(ProtocolMismatch):
        opts[1].downcast(Mtu)
    m.free()


def test_parse_scapy_neighbor_messages(pool: Mempool) -> None:
    raw = bytes(Ether() / IPv6() / ICMPv6ND_NS(tgt="2001:db8::7")
                / ICMPv6NDOptSrcLLAddr(lladdr=MAC1))
    m, ns = parse(raw, NeighborSolicitation, pool)
    assert ns.target == IPv6Address("2001:db8::7") and ns.checksum_ok
    assert ns.options()[0].addr == MacAddr(MAC1)
    assert type(ns.envelope.parse(Icmpv6).message()) is NeighborSolicitation
    m.free()
    raw = bytes(Ether() / IPv6() / ICMPv6ND_NA(R=0, S=1, O=1, tgt="2001:db8::7")
                / ICMPv6NDOptDstLLAddr(lladdr=MAC2))
    m, na = parse(raw, NeighborAdvertisement, pool)
    assert (na.router, na.solicited, na.override) == (False, True, True) and na.checksum_ok
    assert na.options()[0].option_type == NdpOptionType.TARGET_LINK_LAYER_ADDRESS
    m.free()
    raw = bytes(Ether() / IPv6() / ICMPv6ND_RS())
    m, rs = parse(raw, RouterSolicitation, pool)
    assert rs.options() == [] and rs.checksum_ok
    m.free()


def test_parse_scapy_redirect(pool: Mempool) -> None:
    orig = bytes(IPv6(src="2001:db8::1", dst="2001:db8::5") / UDP() / (b"p" * 40))
    raw = bytes(Ether() / IPv6() / ICMPv6ND_Redirect(tgt="fe80::1", dst="2001:db8::5")
                / ICMPv6NDOptDstLLAddr(lladdr=MAC2) / ICMPv6NDOptRedirectedHdr(pkt=orig))
    m, rd = parse(raw, Redirect, pool)
    assert rd.destination == IPv6Address("2001:db8::5") and rd.checksum_ok
    lla, rh = rd.options()
    assert isinstance(rh, RedirectedHeader) and rh.data[:len(orig)] == orig
    assert rh.reserved == 0 and len(rh) % 8 == 0
    m.free()


# -- option editing ------------------------------------------------------------------------

def test_add_prepend_remove_retain(pool: Mempool) -> None:
    m, ip, ra = new_message(RouterAdvertisement, pool)
    ra.reconcile()
    mtu = ra.add_option(Mtu, mtu=1400)
    assert ra.checksum_ok and mtu.mtu == 1400
    ra.prepend_option(LinkLayerAddress, addr=MAC1)
    ra.add_option(PrefixInformation, prefix="2001:db8::", prefix_length=64)
    ra.add_option(NdpOption, option_type=25, data=b"\x00\x00" + bytes(4) + bytes(16))
    assert ra.checksum_ok
    assert [o.option_type for o in ra.options()] == [1, 5, 3, 25]
    assert ra.payload_len == 8 + 8 + 32 + 24
    ra.remove_option(ra.option(Mtu))
    assert [o.option_type for o in ra.options()] == [1, 3, 25] and ra.checksum_ok
    ra.option(PrefixInformation).remove()
    assert [o.option_type for o in ra.options()] == [1, 25] and ra.checksum_ok
    assert ra.retain_options(lambda o: isinstance(o, LinkLayerAddress)) == 1
    assert ra.retain_options(lambda o: True) == 0
    assert [o.option_type for o in ra.options()] == [1] and ra.checksum_ok
    ra.reconcile_all()
    raw = m.to_bytes()
    assert scapy_ok(raw) and Ether(raw)[ICMPv6NDOptSrcLLAddr].lladdr == MAC1
    assert Ether(raw)[IPv6].plen == 16 + 8
    m.free()


def test_add_option_refusals_change_nothing(pool: Mempool) -> None:
    m, _, ns = new_message(NeighborSolicitation, pool)
    ns.reconcile_all()
    before = m.to_bytes()
    with pytest.raises(FieldValueError):
        ns.add_option(LinkLayerAddress, mac=MAC1)           # no such field
    with pytest.raises(FieldValueError):
        ns.add_option(LinkLayerAddress, option_type=3)      # not a link-layer type
    with pytest.raises(FieldValueError):
        ns.add_option(PrefixInformation, prefix="2001:db8::", prefix_length=300)   # rolled back
    with pytest.raises(TypeError):
        ns.add_option(Ipv6)
    assert m.to_bytes() == before and ns.options() == []
    other_m, _, other = new_message(NeighborSolicitation, pool)
    foreign = other.add_option(Mtu)
    with pytest.raises(FieldValueError):
        ns.remove_option(foreign)
    other_m.free()
    m.free()


def test_option_data_resizes_and_downcast(pool: Mempool) -> None:
    m, _, rs = new_message(RouterSolicitation, pool)
    rs.reconcile()
    opt = rs.add_option(NdpOption, option_type=31)
    assert (len(opt), opt.length, opt.data) == (8, 1, bytes(6))
    opt.data = b"x" * 7                               # 2 + 7 -> 16 bytes
    assert (len(opt), opt.length, opt.data) == (16, 2, b"x" * 7 + bytes(7)) and rs.checksum_ok
    opt.data = b""
    assert (len(opt), opt.length) == (8, 1) and rs.checksum_ok
    with pytest.raises(FieldValueError):
        opt.data = bytes(2100)
    mtu = rs.add_option(Mtu)
    mtu.option_type = 5
    assert rs.options()[1].downcast(Mtu).mtu == 1500
    with pytest.raises(ProtocolMismatch, match=r"option type 31 is not one of \[3\]"):
        rs.options()[0].downcast(PrefixInformation)
    rs.options()[0].option_type = 3                   # a prefix option of 8 bytes: too short
    assert type(rs.options()[0]) is NdpOption
    with pytest.raises(MalformedError):
        rs.options()[0].downcast(PrefixInformation)
    assert rs.checksum_ok
    m.free()


# -- malformed and truncated ---------------------------------------------------------------

def test_length_zero_option_is_malformed_not_a_loop(pool: Mempool) -> None:
    raw = bytes(Ether() / IPv6() / ICMPv6ND_NS(tgt="fe80::1") / Raw(b"\x01\x00" + bytes(6)))
    m, ns = parse(raw, NeighborSolicitation, pool)
    with pytest.raises(MalformedError, match="length 0"):
        ns.options()
    with pytest.raises(MalformedError):
        ns.option(Mtu)
    m.free()
    # built with nfkit: set an option's length to 0
    m, _, ns = new_message(NeighborSolicitation, pool)
    ns.add_option(LinkLayerAddress).length = 0
    with pytest.raises(MalformedError) as exc:
        ns.options()
    assert isinstance(exc.value, ParseError)
    m.free()


def test_option_past_the_end_is_malformed(pool: Mempool) -> None:
    raw = bytes(Ether() / IPv6() / ICMPv6ND_NS(tgt="fe80::1") / Raw(b"\x01\x02" + bytes(6)))
    m, ns = parse(raw, NeighborSolicitation, pool)
    with pytest.raises(MalformedError, match="past the message"):
        ns.options()
    m.free()
    raw = bytes(Ether() / IPv6() / ICMPv6ND_NS(tgt="fe80::1") / Raw(b"\x01"))
    m, ns = parse(raw, NeighborSolicitation, pool)
    with pytest.raises(MalformedError, match="stray"):
        ns.options()
    m.free()


@pytest.mark.parametrize("cls,size", [(RouterSolicitation, 8), (RouterAdvertisement, 16),
                                      (NeighborSolicitation, 24), (NeighborAdvertisement, 24),
                                      (Redirect, 40)])
def test_truncated_messages(cls: type, size: int, pool: Mempool) -> None:
    body = bytes([cls.MSG_TYPE]) + bytes(size - 2)
    raw = bytes(Ether() / IPv6(nh=58) / Raw(body))
    m = Mbuf.from_bytes(raw, pool)
    ip = m.parse(Ethernet).parse(Ipv6)
    with pytest.raises(TruncatedError):
        ip.parse(cls)
    assert ip.parse(Icmpv6).msg_type == cls.MSG_TYPE
    with pytest.raises(TruncatedError):
        ip.parse(Icmpv6).downcast(cls)
    m.free()


def test_wrong_type_is_a_mismatch(pool: Mempool) -> None:
    raw = bytes(Ether() / IPv6() / ICMPv6ND_NA(tgt="fe80::1"))
    m = Mbuf.from_bytes(raw, pool)
    with pytest.raises(ProtocolMismatch, match=r"expected type 135 .* got type 136"):
        m.parse(Ethernet).parse(Ipv6).parse(NeighborSolicitation)
    m.free()


# -- read-only views -----------------------------------------------------------------------

def test_peeked_messages_and_options_are_read_only(pool: Mempool) -> None:
    m, _, ra = new_message(RouterAdvertisement, pool)
    ra.add_option(LinkLayerAddress, addr=MAC1)
    ra.add_option(PrefixInformation)
    raw = finish(m, ra)
    m = Mbuf.from_bytes(raw, pool)
    ra = m.parse(Ethernet).parse(Ipv6).peek(RouterAdvertisement)
    lla, pi = ra.options()
    attempts = [lambda: setattr(lla, "addr", MAC2), lambda: setattr(pi, "on_link", False),
                lambda: setattr(lla, "data", b"x"), lla.remove,
                lambda: setattr(ra, "router_lifetime", 0), lambda: ra.add_option(Mtu),
                lambda: ra.prepend_option(Mtu), lambda: ra.remove_option(lla),
                lambda: ra.retain_options(lambda o: False), ra.reconcile,
                lambda: pi.downcast(PrefixInformation).set_payload(b"")]
    for attempt in attempts:
        with pytest.raises(ReadOnlyError):
            attempt()
    assert m.to_bytes() == raw
    m.free()


# -- checksum kept valid by setters and edits (property test) ------------------------------

option_ops = st.lists(st.one_of(
    st.tuples(st.just("add_lla"), st.integers(0, 2**48 - 1)),
    st.tuples(st.just("add_mtu"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("prepend_prefix"), st.integers(0, 128)),
    st.tuples(st.just("set_first"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("remove_first"), st.just(0)),
    st.tuples(st.just("flags"), st.integers(0, 7)),
    st.tuples(st.just("target"), st.integers(0, 2**128 - 1)),
    st.tuples(st.just("src"), st.integers(0, 2**128 - 1)),
    st.tuples(st.just("data"), st.binary(max_size=30)),
), min_size=1, max_size=8)


@given(ops=option_ops)
def test_edits_keep_checksum_valid(ops: list) -> None:
    m, ip, na = new_message(NeighborAdvertisement)
    na.reconcile()
    for op, v in ops:
        if op == "add_lla":
            na.add_option(LinkLayerAddress, option_type=2, addr=v)
        elif op == "add_mtu":
            na.add_option(Mtu, mtu=v)
        elif op == "prepend_prefix":
            na.prepend_option(PrefixInformation, prefix_length=v, prefix=v << 64, on_link=v & 1)
        elif op == "set_first" and na.options():
            o = na.options()[0]
            if isinstance(o, Mtu):
                o.mtu = v
            elif isinstance(o, PrefixInformation):
                o.valid_lifetime = v
            else:
                o.addr = v & (2**48 - 1)
        elif op == "remove_first" and na.options():
            na.remove_option(na.options()[0])
        elif op == "flags":
            na.router, na.solicited, na.override = bool(v & 4), bool(v & 2), bool(v & 1)
        elif op == "target":
            na.target = v
        elif op == "src":
            ip.src = v
        elif op == "data" and na.options():
            na.options()[-1].data = v
        assert na.checksum_ok
    ip.reconcile()                       # payload length only; no ICMPv6 checksum recomputation
    raw = m.to_bytes()
    m.free()
    assert scapy_ok(raw)
    assert POOL.in_use == 0


# -- Redirect reconcile ----------------------------------------------------------------------

def test_redirect_trims_redirected_header_to_1280(pool: Mempool) -> None:
    orig = bytes(IPv6(src="2001:db8::1", dst="2001:db8::5") / UDP() / (b"p" * 1500))
    m, _, rd = new_message(Redirect, pool)
    rd.target, rd.destination = "fe80::2", "2001:db8::5"
    rh = rd.add_option(RedirectedHeader, data=orig[:2000])
    assert len(orig) == 1548 and len(rh) == 1560 and rh.length == 195   # 8 + 1548, padded
    rd.add_option(LinkLayerAddress, option_type=2, addr=MAC2)   # after the RH: kept whole
    raw = finish(m, rd)
    ip = Ether(raw)[IPv6]
    assert 40 + ip.plen <= 1280 and 40 + ip.plen > 1280 - 8
    m, rd = parse(raw, Redirect, pool)
    rh, lla = rd.options()
    assert len(rh) % 8 == 0 and rh.length * 8 == len(rh)
    assert rh.data == orig[:len(rh) - 8] and lla.addr == MacAddr(MAC2)
    assert rd.checksum_ok and scapy_ok(raw)
    m.free()


def test_redirect_capsule_style(pool: Mempool) -> None:
    """Push a Redirect onto the received packet, prepend the Redirected Header: it takes
    the original packet as its data, trimmed and sized on reconcile."""
    orig = bytes(IPv6(src="2001:db8::1", dst="2001:db8::5") / UDP() / (b"p" * 1500))
    m = Mbuf.from_bytes(bytes(Ether(src=MAC1, dst=MAC2)) + orig, pool)
    eth = m.parse(Ethernet)
    ip = eth.push(Ipv6)
    ip.src, ip.dst, ip.hop_limit = "fe80::1", "fe80::9", 255
    rd = ip.push(Redirect)
    rd.target, rd.destination = "fe80::2", "2001:db8::5"
    rd.prepend_option(RedirectedHeader)
    rd.prepend_option(LinkLayerAddress, option_type=2, addr=MAC2)
    rd.reconcile_all()
    raw = m.to_bytes()
    pkt = Ether(raw)
    assert 40 + pkt[IPv6].plen <= 1280 and len(raw) == 14 + 40 + pkt[IPv6].plen
    lla, rh = rd.options()
    assert lla.addr == MacAddr(MAC2) and rh.data == orig[:len(rh) - 8]
    assert len(raw) == 14 + 1280 and len(rh) == 1280 - 40 - 40 - 8
    assert scapy_ok(raw) and pkt[ICMPv6NDOptRedirectedHdr].len == len(rh) // 8
    m.free()


def test_redirect_small_original_is_padded(pool: Mempool) -> None:
    """A Redirected Header that runs to the end of the message unaligned is padded up."""
    m, _, rd = new_message(Redirect, pool)
    rd.prepend_option(RedirectedHeader)
    rd.set_payload(rd.payload + b"abcde")        # 13 bytes: header + 5 bytes of packet
    rd.reconcile_all()
    (rh,) = rd.options()
    assert len(rh) == 16 and rh.data == b"abcde" + bytes(3)
    assert scapy_ok(m.to_bytes())
    m.free()


# -- display ---------------------------------------------------------------------------------

def test_summaries_and_repr(pool: Mempool) -> None:
    m, _, ra = new_message(RouterAdvertisement, pool)
    ra.managed_addr_cfg = True
    ra.add_option(LinkLayerAddress, addr=MAC1)
    ra.add_option(PrefixInformation, prefix="2001:db8::", prefix_length=64, on_link=True,
                  valid_lifetime=10, preferred_lifetime=5)
    ra.add_option(Mtu, mtu=1280)
    assert ra.summary() == "ICMP6 router advertisement hlim 64 lifetime 1800 [M]"
    assert [o.summary() for o in ra.options()] == [
        f"source link-address {MAC1}", "prefix 2001:db8::/64 valid 10 pref 5 [L]", "mtu 1280"]
    assert "options=[source link-address" in repr(ra)
    ra.options()[0].length = 0
    assert "length 0" in repr(ra)                  # repr never raises
    m.free()
    m, _, na = new_message(NeighborAdvertisement, pool)
    na.target, na.solicited = "fe80::5", True
    assert na.summary() == "ICMP6 neighbor advertisement tgt is fe80::5 [S]"
    m.free()
    m, _, ns = new_message(NeighborSolicitation, pool)
    ns.target = "fe80::5"
    assert ns.summary() == "ICMP6 neighbor solicitation who has fe80::5"
    m.free()
    m, _, rd = new_message(Redirect, pool)
    rd.target, rd.destination = "fe80::1", "2001:db8::9"
    assert rd.summary() == "ICMP6 redirect 2001:db8::9 to fe80::1"
    assert rd.add_option(RedirectedHeader).summary() == "redirected header len 8"
    m.free()
    m, _, rs = new_message(RouterSolicitation, pool)
    assert rs.summary() == "ICMP6 router solicitation"
    assert rs.add_option(NdpOption, option_type=99).summary() == "option 99 len 8"
    m.free()
