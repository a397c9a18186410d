"""Scapy agrees with nfkit both ways on hypothesis-generated packets.

The oracle itself is tested first: it must reject a frame whose checksum is wrong, and it
must know every header and field nfkit has (an unmapped one is an error, not a skip)."""

from __future__ import annotations

from contextlib import contextmanager
from ipaddress import IPv4Address, IPv6Address
from typing import Iterator

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1AD, Dot1Q, Ether

from nfkit import Mbuf, Mempool
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp, Udp
from nfkit.packets.dissect import dissect
from nfkit.testing import sr_tcp, v4_icmp, v4_tcp, v4_udp, v6_icmp, v6_tcp, v6_udp
from oracle import bad_checksums, compare, recomputed, scapy_fields, unmapped
from test_tunnel_checksums import ports as tunnel_ports   # not ones Scapy decodes first (53: DNS)

payloads = st.binary(max_size=40)
#: Scapy looks MAC addresses up (ARP, with a timeout) unless they are given
L2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
#: packets of these tests, and the copies they parse: not the default pool, which other
#: tests size (hypothesis may discard an example whose packet a strategy already built)
POOL = Mempool(capacity=4095, name="oracle-tests")
PARSE_POOL = Mempool(capacity=15, name="oracle-parse")


def _check_nfkit_built(m: Mbuf) -> None:
    raw = m.to_bytes()
    layers, err = dissect(m)
    assert err is None
    compare(layers, raw)
    assert recomputed(raw) == raw, "Scapy computes different checksums or lengths"
    m.free()


@given(v4_udp(payload=payloads, pool=POOL))
def test_v4_udp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


@given(v4_tcp(payload=payloads, pool=POOL))
def test_v4_tcp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


@given(v6_udp(payload=payloads, pool=POOL))
def test_v6_udp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


@given(v6_tcp(payload=payloads, pool=POOL))
def test_v6_tcp_nfkit_builds_scapy_agrees(m: Mbuf) -> None:
    _check_nfkit_built(m)


ports = st.integers(0, 65535)
macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)


@pytest.fixture(autouse=True)
def no_leak() -> Iterator[None]:
    """Every copy a test parses goes back."""
    yield
    assert PARSE_POOL.in_use == 0


@contextmanager
def parsed(raw: bytes) -> Iterator[list]:
    """The nfkit layers of a copy of ``raw`` (freed on exit)."""
    m = Mbuf.from_bytes(raw, PARSE_POOL)
    try:
        layers, err = dissect(m)
        assert err is None, err
        yield layers
    finally:
        m.free()


def compare_all(raw: bytes) -> None:
    with parsed(raw) as layers:
        compare(layers, raw)


def changed_fields(before: bytes, after: bytes) -> set[str]:
    """The fields (checksums aside) Scapy reads differently in ``after``: a setter must
    change its own field only (a checksum fix written to the wrong word keeps every sum
    right and garbles a field)."""
    with parsed(before) as la, parsed(after) as lb:
        a, b = scapy_fields(la, before), scapy_fields(lb, after)
    return {k for k in b if a[k] != b[k] and not k.endswith(".checksum")}


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
    with parsed(raw) as layers:
        assert [type(p) for p in layers] == [Ethernet, Ipv4, Udp]
        compare(layers, raw)
        assert layers[1].options == options and layers[1].checksum_ok
        assert layers[2].payload == payload and layers[2].checksum_ok


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
    with parsed(raw) as layers:
        assert [type(p) for p in layers] == [Ethernet, Ipv6, Tcp]
        compare(layers, raw)
        eth, _, tcp = layers
        if isinstance(vlan, int):
            assert eth.vlan_id == vlan and eth.is_dot1q
        elif vlan:
            assert [t.vid for t in eth.vlans] == list(vlan) and eth.is_qinq
        assert tcp.payload == payload and tcp.checksum_ok
        assert tcp.options == bytes(pkt[TCP])[20:tcp.header_len]


@given(v4_tcp(pool=POOL), st.ip_addresses(v=4), ports)
def test_nat_style_rewrite_keeps_checksums_scapy_valid(m: Mbuf, new_src, new_port) -> None:
    before = m.to_bytes()
    tcp = m.parse(Ethernet).parse(Ipv4).parse(Tcp)
    tcp.set_src_ip(new_src)
    tcp.src_port = new_port
    tcp.envelope.decrement_ttl()
    raw = m.to_bytes()
    assert recomputed(raw) == raw       # incremental updates == Scapy's full recomputation
    assert changed_fields(before, raw) <= {"1:IPv4.src", "1:IPv4.ttl", "2:TCP.src_port"}
    assert IPv4Address(Ether(raw)[IP].src) == new_src and Ether(raw)[TCP].sport == new_port
    m.free()


@given(v6_udp(pool=POOL), st.ip_addresses(v=6))
def test_v6_address_rewrite_keeps_udp_checksum(m: Mbuf, new_dst) -> None:
    before = m.to_bytes()
    udp = m.parse(Ethernet).parse(Ipv6).parse(Udp)
    udp.set_dst_ip(new_dst)
    raw = m.to_bytes()
    assert changed_fields(before, raw) <= {"1:IPv6.dst"}
    assert bad_checksums(raw) == [] and recomputed(raw) == raw
    assert IPv6Address(Ether(raw)[IPv6].dst) == new_dst
    compare_all(raw)
    m.free()


@given(st.one_of(sr_tcp(payload=payloads, pool=POOL), v4_icmp(pool=POOL), v6_icmp(pool=POOL)))
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
    assert bad_checksums(raw) == [] and recomputed(raw) == raw   # TCP, ICMP and ICMPv6 alike
    m.free()


@given(v4_udp(dst_port=53, ipv4_ttl=1, eth_src="02:00:00:00:00:09", pool=POOL),
       sr_tcp(sr_segments=[IPv6Address("2001:db8::1")], sr_segments_left=0, pool=POOL))
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


# -- the oracle can fail ------------------------------------------------------------------

def test_oracle_maps_every_header_and_field() -> None:
    """compare() knows every header class nfkit registers and every field it declares."""
    from nfkit.packets.base import REGISTRY
    assert unmapped(REGISTRY) == []


def _good_frames() -> dict[str, tuple[bytes, type, str]]:
    """Scapy-built frames, each with the layer and field of one checksum to corrupt."""
    from scapy.layers.inet import ICMP
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr
    l2 = L2
    v4 = IP(src="192.0.2.1", dst="198.51.100.7")
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
    return {
        "ipv4": (bytes(l2 / v4 / UDP(sport=1, dport=2) / b"x"), IP, "chksum"),
        "udp4": (bytes(l2 / v4 / UDP(sport=1, dport=2) / b"payload"), UDP, "chksum"),
        "tcp4": (bytes(l2 / v4 / TCP(sport=1, dport=2, flags="S") / b"payload"), TCP, "chksum"),
        "icmp4": (bytes(l2 / v4 / ICMP(id=7, seq=1) / b"ping"), ICMP, "chksum"),
        "udp6": (bytes(l2 / v6 / UDP(sport=1, dport=2) / b"payload"), UDP, "chksum"),
        "tcp6": (bytes(l2 / v6 / TCP(sport=1, dport=2) / b"payload"), TCP, "chksum"),
        "icmp6": (bytes(l2 / v6 / ICMPv6EchoRequest(id=7, seq=1, data=b"ping")),
                  ICMPv6EchoRequest, "cksum"),
        "ndp": (bytes(l2 / v6 / ICMPv6ND_NS(tgt="2001:db8::9")
                      / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")), ICMPv6ND_NS, "cksum"),
        "gre": (bytes(l2 / v4 / GRE(chksum_present=1) / IP(src="10.0.0.1", dst="10.0.0.2")
                      / UDP(sport=1, dport=2) / b"in gre"), GRE, "chksum"),
        "inner-udp": (bytes(l2 / v4 / GRE() / IP(src="10.0.0.1", dst="10.0.0.2")
                            / UDP(sport=1, dport=2) / b"in gre"), UDP, "chksum"),
    }


#: where each checksum sits in its header (ICMP and ICMPv6: byte 2)
CHECKSUM_AT = {IP: 10, UDP: 6, TCP: 16, GRE: 4}


@pytest.mark.parametrize("name", list(_good_frames()))
def test_oracle_rejects_a_wrong_checksum(name: str) -> None:
    """A frame with one wrong checksum (any other value, the ones'-complement twin of the
    right one included) is not what Scapy recomputes; the right frame is."""
    raw, cls, fname = _good_frames()[name]
    assert recomputed(raw) == raw and bad_checksums(raw) == []
    good = getattr(Ether(raw)[cls], fname)
    at = raw.index(bytes(Ether(raw)[cls])) + CHECKSUM_AT.get(cls, 2)
    assert int.from_bytes(raw[at:at + 2], "big") == good
    twin = {0: 0xFFFF, 0xFFFF: 0}.get(good, good ^ 0x0101)
    for wrong in {good ^ 1, good ^ 0x8000, (good + 1) & 0xFFFF, twin}:
        bad = raw[:at] + wrong.to_bytes(2, "big") + raw[at + 2:]
        assert recomputed(bad) != bad, f"{name}: checksum {wrong:#06x} accepted"
        assert len(bad_checksums(bad)) == 1 and cls.__name__ in bad_checksums(bad)[0]
    # a changed payload byte makes the (unchanged) checksum wrong too
    flipped = raw[:-1] + bytes([raw[-1] ^ 0x20])
    assert recomputed(flipped) != flipped


def test_oracle_compare_rejects_a_wrong_field() -> None:
    """compare() fails when nfkit reads a field differently from Scapy (here: it is handed
    the layers of another frame)."""
    import pytest as _pytest
    a = bytes(L2 / IP(src="192.0.2.1", dst="192.0.2.2", ttl=9) / UDP(sport=1, dport=2))
    b = bytes(L2 / IP(src="192.0.2.1", dst="192.0.2.2", ttl=8) / UDP(sport=1, dport=2))
    compare_all(a)
    with parsed(a) as layers:
        with _pytest.raises(AssertionError, match="IPv4.ttl"):
            compare(layers, b)
        with _pytest.raises(AssertionError, match="nfkit layer 1 is IPv4, Scapy's is IPv6"):
            compare(layers, bytes(L2 / IPv6(src="::1", dst="::2") / UDP()))


# -- edges where a wrong modulus shows ------------------------------------------------------

def _v4_with_checksum(target: int, ttl: int) -> Mbuf:
    """Ethernet / IPv4 / UDP whose IPv4 header checksum is ``target`` (steered through the
    identification field: +d there is -d in the checksum, modulo 0xFFFF)."""
    m = Mbuf.from_bytes(bytes(L2 / IP(src="192.0.2.1", dst="192.0.2.2", ttl=ttl, id=0)
                              / UDP(sport=1, dport=2)), POOL)
    ip = m.parse(Ethernet).parse(Ipv4)
    ip.identification = (ip.checksum - target) % 0xFFFF
    assert ip.checksum == target
    return m


@pytest.mark.parametrize("ttl", [1, 2, 64, 255])
def test_decrement_ttl_at_every_checksum_edge(ttl: int) -> None:
    """decrement_ttl adds 256 to the checksum: every stored checksum where that wraps
    (0xFEFF..0xFFFE) and around zero must give Scapy's full recomputation."""
    for target in [*range(0xFE00, 0xFFFF), *range(0, 0x102)]:
        m = _v4_with_checksum(target, ttl)
        m.parse(Ethernet).parse(Ipv4).decrement_ttl()
        raw = m.to_bytes()
        m.free()
        assert Ether(raw)[IP].ttl == ttl - 1
        assert recomputed(raw) == raw, f"checksum {target:#06x}, TTL {ttl}: {bad_checksums(raw)}"


@given(st.integers(0, 255), st.integers(0, 0xFFFE))
def test_decrement_ttl_any_ttl_any_checksum(ttl: int, target: int) -> None:
    m = _v4_with_checksum(target, ttl)
    m.parse(Ethernet).parse(Ipv4).decrement_ttl()
    raw = m.to_bytes()
    m.free()
    assert Ether(raw)[IP].ttl == max(ttl - 1, 0) and recomputed(raw) == raw


# -- checksum.py against Scapy's own checksum ------------------------------------------------------

@given(st.one_of(st.binary(max_size=64), st.integers(0, 9).map(bytes)))
def test_checksum_equals_scapy(data: bytes) -> None:
    """RFC 1071 over any bytes (odd lengths, and all zeros: the complement of +0 is 0xFFFF)."""
    from scapy.utils import checksum as scapy_checksum
    from nfkit.checksum import checksum, verify
    c = checksum(data)
    assert c == scapy_checksum(data)
    if any(data):                     # the data with its checksum sums to -0
        assert verify(data + b"\0" * (len(data) & 1) + c.to_bytes(2, "big"))


@given(st.binary(min_size=2, max_size=40).filter(lambda b: len(b) % 2 == 0 and any(b[2:])),
       st.integers(0, 0xFFFF))
def test_update_equals_a_full_recomputation(data: bytes, word: int) -> None:
    """RFC 1624: changing the first word gives exactly the checksum Scapy computes anew."""
    from scapy.utils import checksum as scapy_checksum
    from nfkit.checksum import update
    old = int.from_bytes(data[:2], "big")
    new_data = word.to_bytes(2, "big") + data[2:]
    assert update(scapy_checksum(data), old, word) == scapy_checksum(new_data)


# -- address rewrites that land a checksum on its edges ---------------------------------------------

@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("land_on", [0, 1, 0xFFFE])
def test_address_rewrite_lands_a_udp_checksum_on_its_edges(v6: bool, land_on: int) -> None:
    """An address change that brings the UDP sum to -0 must store 0xFFFF (0 is "none")."""
    l3 = IPv6(src="2001:db8::1", dst="2001:db8::2") if v6 else IP(src="192.0.2.1", dst="192.0.2.2")
    m = Mbuf.from_bytes(bytes(L2 / l3 / UDP(sport=7, dport=9) / b"edge"), POOL)
    ip = m.parse(Ethernet).parse(Ipv6 if v6 else Ipv4)
    udp = ip.parse(Udp)
    # +d in the address is -d in the checksum (2**16 = 1 modulo 0xFFFF)
    target = land_on or 0xFFFF
    src = int(ip.src) + (udp.checksum - target) % 0xFFFF
    ip.src = src % (1 << (128 if v6 else 32))
    raw = m.to_bytes()
    m.free()
    assert Ether(raw)[UDP].chksum == (0xFFFF if land_on == 0 else land_on)
    assert bad_checksums(raw) == []


@given(v6_icmp(pool=POOL), st.ip_addresses(v=6), st.ip_addresses(v=6))
def test_v6_address_rewrite_keeps_icmpv6_checksum(m: Mbuf, src, dst) -> None:
    before = m.to_bytes()
    ip6 = m.parse(Ethernet).parse(Ipv6)
    ip6.src = src
    ip6.dst = dst
    raw = m.to_bytes()
    m.free()
    assert bad_checksums(raw) == []
    assert changed_fields(before, raw) <= {"1:IPv6.src", "1:IPv6.dst"}


def test_v6_address_rewrite_keeps_ndp_checksum() -> None:
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr
    raw = bytes(L2 / IPv6(src="fe80::1", dst="ff02::1:ff00:9") / ICMPv6ND_NS(tgt="fe80::9")
                / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"))
    m = Mbuf.from_bytes(raw, POOL)
    ip6 = m.parse(Ethernet).parse(Ipv6)
    ip6.src, ip6.dst = "fe80::1234", "ff02::1:ff12:3456"
    before, raw = raw, m.to_bytes()
    m.free()
    assert bad_checksums(raw) == []
    assert changed_fields(before, raw) == {"1:IPv6.src", "1:IPv6.dst"}


# -- every header class through the oracle -----------------------------------------------------------

def _chains() -> list[tuple]:
    """A chain that ends in (or passes through) each header class nfkit can push."""
    from nfkit.packets import (Arp, DestinationUnreachable, EchoReply, EchoRequest, Fragment,
                               Gre, GtpU, Icmpv6DestinationUnreachable, Icmpv6EchoReply,
                               Icmpv6EchoRequest, Icmpv6ParameterProblem, Icmpv6TimeExceeded,
                               NdpRedirect, NeighborAdvertisement, NeighborSolicitation,
                               PacketTooBig, ParameterProblem, Redirect, RouterAdvertisement,
                               RouterSolicitation, SegmentRouting, TimeExceeded, Vxlan)
    v4 = [EchoRequest, EchoReply, DestinationUnreachable, TimeExceeded, Redirect, ParameterProblem]
    v6 = [Icmpv6EchoRequest, Icmpv6EchoReply, Icmpv6DestinationUnreachable, PacketTooBig,
          Icmpv6TimeExceeded, Icmpv6ParameterProblem, RouterSolicitation, RouterAdvertisement,
          NeighborSolicitation, NeighborAdvertisement, NdpRedirect]
    return ([(Ethernet, Arp), (Ethernet, Ipv6, Fragment, Udp), (Ethernet, Ipv6, SegmentRouting, Tcp),
             (Ethernet, Ipv4, Gre, Ipv6, Tcp), (Ethernet, Ipv6, Gre, Ethernet, Ipv4, Udp),
             (Ethernet, Ipv4, Udp, Vxlan, Ethernet, Ipv6, Udp),
             (Ethernet, Ipv6, Udp, GtpU, Ipv4, Tcp)]
            + [(Ethernet, Ipv4, c) for c in v4] + [(Ethernet, Ipv6, c) for c in v6])


@pytest.mark.parametrize("chain", _chains(), ids=lambda c: "/".join(k.__name__ for k in c))
@given(data=st.data())
def test_every_header_class_nfkit_builds_scapy_reads(chain: tuple, data) -> None:
    """Every field of every header class (NDP options and VLAN tags too) reads the same in
    Scapy, and every checksum is Scapy's, on packets with every field drawn."""
    from nfkit.packets import LinkLayerAddress, Mtu, PrefixInformation
    from nfkit.testing import mac_addrs, packet
    icmp = chain[-1].NAME.startswith("ICMP")
    free = {"udp_src_port": tunnel_ports}
    m = data.draw(packet(*chain, payload=b"" if hasattr(chain[-1], "options") else
                         st.binary(max_size=48 if icmp else 24), pool=POOL,
                         **(free if Udp in chain[:-1] else {})))
    try:
        layers, err = dissect(m)
        assert err is None and [type(p) for p in layers] == list(chain)
        last = layers[-1]
        for f in type(last).ALL_FIELDS:       # the fields generated packets pin too
            if not (f.derived or f.alias or f.structural):
                value = st.booleans() if f.kind == "flag" else st.integers(0, f.max) \
                    if f.kind == "int" else None
                if value is not None:
                    setattr(last, f.name, data.draw(value, label=f.name))
        last.reconcile_all()
        if hasattr(last, "add_option"):
            last.add_option(LinkLayerAddress, addr=data.draw(mac_addrs))
            last.add_option(Mtu, mtu=data.draw(st.integers(0, 2**32 - 1)))
            last.add_option(PrefixInformation, prefix_length=data.draw(st.integers(0, 128)),
                            prefix=data.draw(st.ip_addresses(v=6)), on_link=True)
            last.reconcile_all()
        if data.draw(st.booleans()):
            layers[0].push_vlan(data.draw(st.integers(0, 4095)))
        raw = m.to_bytes()
        with parsed(raw) as again:
            assert [type(p) for p in again] == list(chain)
            compare(again, raw)
        assert bad_checksums(raw) == []
    finally:
        m.free()


@pytest.mark.parametrize("frame", [
    "ICMP(type=13)",                       # timestamp: nfkit's generic ICMPv4 header
    "ICMPv6MLQuery()",                     # MLD: nfkit's generic ICMPv6 header
])
def test_generic_icmp_headers_scapy_reads_the_same(frame: str) -> None:
    from scapy.layers.inet import ICMP  # noqa: F401  (eval)
    from scapy.layers.inet6 import ICMPv6MLQuery  # noqa: F401
    l3 = IP(src="192.0.2.1", dst="192.0.2.2") if frame.startswith("ICMP(") else \
        IPv6(src="fe80::1", dst="ff02::1")
    raw = bytes(L2 / l3 / eval(frame))
    with parsed(raw) as layers:
        assert layers[-1].NAME in ("ICMPv4", "ICMPv6")
        compare(layers, raw)
    assert bad_checksums(raw) == []
