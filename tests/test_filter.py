"""nfkit.filter: every primitive, the grammar (precedence, not, parentheses), tunnels,
VLANs, malformed packets, the error messages, and a differential test against tcpdump.

Most tests run expressions over one catalogue of packets built with nfkit (module fixture
``catalogue``) and compare the names of the packets selected with the expected ones.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, strategies as st

from nfkit import Mbuf, Mempool, NfkitError
from nfkit.batch import Poll
from nfkit.filter import Filter, FilterError, compile_filter
from nfkit.packets import (Arp, DestinationUnreachable, EchoRequest, Ethernet, Fragment,
                           Icmpv6EchoReply, Ipv4, Ipv6, NeighborSolicitation, SegmentRouting,
                           Tcp, Udp)
from nfkit.packets.dissect import dissect
from nfkit.packets.gre import Gre
from nfkit.packets.gtpu import GtpU
from nfkit.packets.vxlan import Vxlan
from nfkit.testing.skips import need_tool

POOL = Mempool(capacity=127, name="filter-tests")
MAC1, MAC2, MAC3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
BROADCAST = "ff:ff:ff:ff:ff:ff"


# ---------------------------------------------------------------------------------------
# The packet catalogue
# ---------------------------------------------------------------------------------------

def eth(src: str = MAC1, dst: str = MAC2, vlans: tuple[int, ...] = ()) -> Ethernet:
    """A new buffer with an Ethernet header (tags given outermost first)."""
    e = Mbuf.alloc(POOL).push(Ethernet)
    e.src, e.dst = src, dst
    for vid in reversed(vlans):
        e.push_vlan(vid)
    return e


def v4(env: Any, src: str, dst: str) -> Ipv4:
    ip = env.push(Ipv4)
    ip.src, ip.dst = src, dst
    return ip


def v6(env: Any, src: str, dst: str) -> Ipv6:
    ip = env.push(Ipv6)
    ip.src, ip.dst = src, dst
    return ip


def tcp(env: Any, sport: int, dport: int, *flags: str, payload: bytes = b"") -> Tcp:
    t = env.push(Tcp)
    t.src_port, t.dst_port = sport, dport
    for f in flags:
        setattr(t, f, True)
    if payload:
        t.set_payload(payload)
    return t


def udp(env: Any, sport: int, dport: int, payload: bytes = b"") -> Udp:
    u = env.push(Udp)
    u.src_port, u.dst_port = sport, dport
    if payload:
        u.set_payload(payload)
    return u


def done(p: Any) -> Mbuf:
    """Fix lengths and checksums; the packet's buffer."""
    m = p.mbuf
    m.reconcile_all()
    return m


def build_catalogue() -> dict[str, Mbuf]:
    c: dict[str, Mbuf] = {}
    c["syn"] = done(tcp(v4(eth(), "10.0.0.1", "10.0.0.2"), 40000, 80, "syn"))
    c["synack"] = done(tcp(v4(eth(MAC2, MAC1), "10.0.0.2", "10.0.0.1"), 80, 40000, "syn", "ack"))
    c["rst"] = done(tcp(v4(eth(), "10.0.0.1", "192.168.1.1"), 22, 50000, "rst", "ack"))
    c["fin"] = done(tcp(v4(eth(), "172.16.0.5", "10.0.0.1"), 443, 50001, "fin", "ack",
                        payload=bytes(300)))
    c["dns4"] = done(udp(v4(eth(), "10.0.0.3", "8.8.8.8"), 50002, 53, b"query"))
    c["dns6"] = done(udp(v6(eth(), "2001:db8::1", "2001:db8:1::53"), 50003, 53, b"query"))
    c["tcp6"] = done(tcp(v6(eth(), "2001:db8::2", "fe80::1"), 1500, 8080, "ack"))

    a = eth(MAC3, BROADCAST).push(Arp)
    a.sender_hw_addr, a.sender_ip, a.target_ip = MAC3, "10.0.0.9", "10.0.0.1"
    c["arp"] = done(a)

    c["echo4"] = done(v4(eth(), "10.0.0.1", "10.0.0.2").push(EchoRequest))
    c["unreach4"] = done(v4(eth(MAC2, MAC1), "10.0.0.2", "10.0.0.1").push(DestinationUnreachable))
    c["echo6"] = done(v6(eth(), "2001:db8::1", "2001:db8::2").push(Icmpv6EchoReply))
    ns = v6(eth(MAC1, "33:33:ff:00:00:01"), "fe80::1", "ff02::1:ff00:1").push(NeighborSolicitation)
    ns.target = "fe80::2"
    c["ns"] = done(ns)

    ip = v4(eth(), "10.0.0.4", "10.0.0.5")       # a later fragment of a UDP datagram
    udp(ip, 9, 9, bytes(8))
    m = done(ip)
    ip.fragment_offset = 100
    c["frag4"] = m

    ip6 = v6(eth(), "2001:db8::1", "2001:db8::2")   # the first fragment of a TCP segment
    fr = ip6.push(Fragment)
    fr.more_fragments = True
    c["frag6"] = done(tcp(fr, 1234, 80, "syn"))

    srh = v6(eth(), "2001:db8::1", "2001:db8::a").push(SegmentRouting)
    srh.set_segments(["2001:db8::b", "2001:db8::a"])
    srh.segments_left = 1
    c["srh"] = done(udp(srh, 7000, 7001))

    c["vlan"] = done(tcp(v4(eth(vlans=(100,)), "10.1.0.1", "10.1.0.2"), 1234, 80, "ack"))
    c["qinq"] = done(udp(v6(eth(vlans=(10, 20)), "2001:db8::5", "2001:db8::6"), 4000, 4001))

    vx = udp(v4(eth(), "192.0.2.1", "192.0.2.2"), 49152, 4789).push(Vxlan)
    vx.vni = 42
    inner = vx.push(Ethernet)
    inner.src, inner.dst = "02:00:00:00:00:aa", "02:00:00:00:00:bb"
    c["vxlan"] = done(tcp(v4(inner, "10.9.0.1", "10.9.0.2"), 5555, 80, "syn"))

    gre = v4(eth(), "192.0.2.1", "192.0.2.3").push(Gre)
    c["gre"] = done(udp(v6(gre, "2001:db8:9::1", "2001:db8:9::2"), 5353, 53))

    gtp = udp(v4(eth(), "192.0.2.1", "192.0.2.4"), 49153, 2152).push(GtpU)
    gtp.teid = 0x1234
    c["gtpu"] = done(v4(gtp, "10.45.0.1", "8.8.4.4").push(EchoRequest))

    c["ipip"] = done(udp(v4(v4(eth(), "192.0.2.1", "192.0.2.5"), "10.7.0.1", "10.7.0.2"),
                         1000, 2000))

    ip = v4(eth(), "10.0.0.1", "10.0.0.2")          # IPv4 says TCP; 10 bytes of it follow
    ip.protocol = 6
    ip.set_payload(b"\x00\x07\x00\x07" + bytes(6))
    c["trunc_tcp"] = done(ip)

    hdr = bytes.fromhex("020000000002" "020000000001" "0800")
    c["bad_ip"] = Mbuf.from_bytes(hdr + b"\x55" * 20, POOL)   # IP version 5
    c["runt"] = Mbuf.from_bytes(b"\xff" * 6, POOL)
    c["empty"] = Mbuf.from_bytes(b"", POOL)

    ip6 = v6(eth(), "2001:db8::1", "2001:db8::2")   # hop-by-hop options (not modelled) / UDP
    ip6.next_header = 0
    ip6.set_payload(bytes([17, 0, 1, 4, 0, 0, 0, 0]) + bytes.fromhex("0035003500080000"))
    c["hbh_udp"] = done(ip6)
    return c


@pytest.fixture(scope="module")
def catalogue() -> Iterator[dict[str, Mbuf]]:
    c = build_catalogue()
    yield c
    Mbuf.free_bulk(c.values())
    assert POOL.in_use == 0, "a test leaked buffers"


ALL = {"syn", "synack", "rst", "fin", "dns4", "dns6", "tcp6", "arp", "echo4", "unreach4",
       "echo6", "ns", "frag4", "frag6", "srh", "vlan", "qinq", "vxlan", "gre", "gtpu", "ipip",
       "trunc_tcp", "bad_ip", "runt", "empty", "hbh_udp"}
IP = {"syn", "synack", "rst", "fin", "dns4", "echo4", "unreach4", "frag4", "vlan", "vxlan",
      "gre", "gtpu", "ipip", "trunc_tcp", "bad_ip"}
IP6 = {"dns6", "tcp6", "echo6", "ns", "frag6", "srh", "qinq", "gre", "hbh_udp"}
TCP = {"syn", "synack", "rst", "fin", "tcp6", "frag6", "vlan", "vxlan", "trunc_tcp"}
UDP = {"dns4", "dns6", "frag4", "srh", "qinq", "vxlan", "gre", "gtpu", "ipip", "hbh_udp"}


def selected(expr: str, catalogue: dict[str, Mbuf]) -> set[str]:
    f = compile_filter(expr)
    return {name for name, m in catalogue.items() if f(m)}


CASES: list[tuple[str, set[str]]] = [
    # protocol names
    ("ether", ALL - {"runt", "empty"}),
    ("vlan", {"vlan", "qinq"}),
    ("arp", {"arp"}),
    ("ip", IP),
    ("ip6", IP6),
    ("tcp", TCP),
    ("udp", UDP),
    ("icmp", {"echo4", "unreach4", "gtpu"}),
    ("icmp6", {"echo6", "ns"}),
    ("gre", {"gre"}),
    ("vxlan", {"vxlan"}),
    ("gtp", {"gtpu"}),
    ("ndp", {"ns"}),
    ("frag", {"frag4", "frag6"}),
    ("srh", {"srh"}),
    ("true", ALL),
    ("false", set()),
    # flags and ICMP echo
    ("tcp-syn", {"syn", "synack", "frag6", "vxlan"}),
    ("tcp-ack", {"synack", "rst", "fin", "tcp6", "vlan"}),
    ("tcp-rst", {"rst"}),
    ("tcp-fin", {"fin"}),
    ("icmp-echo", {"echo4", "echo6", "gtpu"}),
    # hosts (IPv4 also matches ARP sender/target)
    ("host 10.0.0.1", {"syn", "synack", "rst", "fin", "arp", "echo4", "unreach4", "trunc_tcp"}),
    ("src host 10.0.0.1", {"syn", "rst", "echo4", "trunc_tcp"}),
    ("dst host 10.0.0.1", {"synack", "fin", "arp", "unreach4"}),
    ("ip host 10.0.0.1", {"syn", "synack", "rst", "fin", "echo4", "unreach4", "trunc_tcp"}),
    ("arp host 10.0.0.9", {"arp"}),
    ("arp src host 10.0.0.9", {"arp"}),
    ("arp dst host 10.0.0.9", set()),
    ("src 10.0.0.9", {"arp"}),
    ("host 2001:db8::2", {"tcp6", "echo6", "frag6", "hbh_udp"}),
    ("ip6 host 2001:db8::1", {"dns6", "echo6", "frag6", "srh", "hbh_udp"}),
    ("dst host 2001:db8::a", {"srh"}),
    ("dst 2001:0db8:0::a", {"srh"}),
    ("host 192.0.2.1", {"vxlan", "gre", "gtpu", "ipip"}),
    # networks
    ("net 10.0.0.0/24", {"syn", "synack", "rst", "fin", "dns4", "arp", "echo4", "unreach4",
                         "frag4", "trunc_tcp"}),
    ("src net 10.0.0.0/24", {"syn", "synack", "rst", "dns4", "arp", "echo4", "unreach4",
                             "frag4", "trunc_tcp"}),
    ("src and dst net 10.0.0.0/24", {"syn", "synack", "arp", "echo4", "unreach4", "frag4",
                                     "trunc_tcp"}),
    ("ip src or dst net 10.0.0.0/24", {"syn", "synack", "rst", "fin", "dns4", "echo4",
                                       "unreach4", "frag4", "trunc_tcp"}),
    ("net 10.0.0.0/8", {"syn", "synack", "rst", "fin", "dns4", "arp", "echo4", "unreach4",
                        "frag4", "vlan", "vxlan", "gtpu", "ipip", "trunc_tcp"}),
    ("dst 8.8.0.0/16", {"dns4", "gtpu"}),
    ("ip6 net 2001:db8::/32", {"dns6", "tcp6", "echo6", "frag6", "srh", "qinq", "gre", "hbh_udp"}),
    ("net fe80::/10", {"tcp6", "ns"}),
    # ports
    ("port 80", {"syn", "synack", "frag6", "vlan", "vxlan"}),
    ("tcp dst port 80", {"syn", "frag6", "vlan", "vxlan"}),
    ("tcp src port 80", {"synack"}),
    ("dst port 53", {"dns4", "dns6", "gre"}),
    ("udp port 53", {"dns4", "dns6", "gre"}),
    ("tcp port 53", set()),
    ("src port 5353", {"gre"}),
    ("src or dst port 2000", {"ipip"}),
    ("src and dst port 9", set()),                      # frag4's UDP header is not parsed
    ("portrange 1000-2000", {"tcp6", "frag6", "vlan", "ipip"}),
    ("tcp portrange 1000-2000", {"tcp6", "frag6", "vlan"}),
    ("udp src portrange 4000-7000", {"srh", "qinq", "gre"}),
    ("dst portrange 7001-7001", {"srh"}),
    # Ethernet addresses (inner frames included)
    ("ether host 02:00:00:00:00:03", {"arp"}),
    ("ether dst ff:ff:ff:ff:ff:ff", {"arp"}),
    ("ether src 02:00:00:00:00:02", {"synack", "unreach4"}),
    ("ether src host 02-00-00-00-00-02", {"synack", "unreach4"}),
    ("ether host 02:00:00:00:00:BB", {"vxlan"}),
    ("ether src and dst 02:00:00:00:00:01", set()),
    # VLAN ids (any tag), tunnel ids
    ("vlan 100", {"vlan"}),
    ("vlan 10", {"qinq"}),
    ("vlan 20", {"qinq"}),
    ("vlan 30", set()),
    ("vni 42", {"vxlan"}),
    ("vni 43", set()),
    ("teid 0x1234", {"gtpu"}),
    ("teid 4660", {"gtpu"}),
    ("teid 1", set()),
    # frame length
    ("len >= 300", {"fin"}),
    ("len > 354", set()),
    ("len = 354", {"fin"}),
    ("len == 0", {"empty"}),
    ("len < 40", {"bad_ip", "runt", "empty"}),
    ("len <= 6", {"runt", "empty"}),
    ("len != 0 and len<=6", {"runt"}),
    ("greater 354", {"fin"}),
    ("less 6", {"runt", "empty"}),
    # combinations, precedence, negation, parentheses
    ("tcp and dst port 80", {"syn", "frag6", "vlan", "vxlan"}),
    ("udp or tcp and port 22", UDP | {"rst"}),
    ("(udp or tcp) and port 22", {"rst"}),
    ("tcp and port 22 or udp", UDP | {"rst"}),
    ("not ip and not ip6", {"arp", "runt", "empty"}),
    ("!(tcp || udp) && ip", {"echo4", "unreach4", "bad_ip"}),
    ("not not arp", {"arp"}),
    ("not (vlan 100 or vlan 10)", ALL - {"vlan", "qinq"}),
    ("((tcp))", TCP),
    ("vxlan and tcp port 80 and host 10.9.0.2", {"vxlan"}),
    ("gtp and icmp-echo", {"gtpu"}),
    ("ip6 and udp and host 2001:db8:9::1", {"gre"}),
    ("ip and ip6", {"gre"}),
    ("TCP AND Dst Port 80", {"syn", "frag6", "vlan", "vxlan"}),
    ("", ALL),
]


@pytest.mark.parametrize("expr, expected", CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_primitive_selects(expr: str, expected: set[str], catalogue: dict[str, Mbuf]) -> None:
    assert selected(expr, catalogue) == expected


@pytest.mark.parametrize("expr, expected", CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_normalised_expression_compiles_to_the_same_filter(
        expr: str, expected: set[str], catalogue: dict[str, Mbuf]) -> None:
    f = compile_filter(expr)
    again = compile_filter(f.expression)
    assert again.expression == f.expression
    assert selected(f.expression, catalogue) == expected


def test_catalogue_is_what_it_claims(catalogue: dict[str, Mbuf]) -> None:
    """Guard the fixtures: the layers the tests above rely on are really there."""
    def names(key: str) -> list[str]:
        return [type(p).__name__ for p in dissect(catalogue[key])[0]]
    assert names("vxlan") == ["Ethernet", "Ipv4", "Udp", "Vxlan", "Ethernet", "Ipv4", "Tcp"]
    assert names("gre") == ["Ethernet", "Ipv4", "Gre", "Ipv6", "Udp"]
    assert names("gtpu") == ["Ethernet", "Ipv4", "Udp", "GtpU", "Ipv4", "EchoRequest"]
    assert names("frag6") == ["Ethernet", "Ipv6", "Fragment", "Tcp"]
    assert names("srh") == ["Ethernet", "Ipv6", "SegmentRouting", "Udp"]
    assert names("frag4") == ["Ethernet", "Ipv4"]
    assert names("hbh_udp") == ["Ethernet", "Ipv6"]
    layers, err = dissect(catalogue["trunc_tcp"])
    assert [type(p).__name__ for p in layers] == ["Ethernet", "Ipv4"] and err is not None
    layers, err = dissect(catalogue["bad_ip"])
    assert [type(p).__name__ for p in layers] == ["Ethernet"] and err is not None
    assert len(catalogue["fin"]) == 354


def test_normalised_text() -> None:
    cases = {
        "tcp && dst port 80": "tcp and dst port 80",
        "tcp || udp && port 53": "tcp or (udp and port 53)",
        "(tcp or udp) and port 53": "(tcp or udp) and port 53",
        "!(tcp or udp)": "not (tcp or udp)",
        "! tcp": "not tcp",
        "((arp))": "arp",
        "tcp and (udp and icmp)": "tcp and udp and icmp",
        "src or dst port 53": "port 53",
        "src 10.0.0.0/8": "src net 10.0.0.0/8",
        "dst 2001:DB8:0:0::1": "dst host 2001:db8::1",
        "ether src AA-BB-CC-DD-EE-FF": "ether src aa:bb:cc:dd:ee:ff",
        "ether src host aa:bb:cc:dd:ee:ff": "ether src aa:bb:cc:dd:ee:ff",
        "len>=100": "len >= 100",
        "len == 1": "len = 1",
        "greater 10 and less 20": "len >= 10 and len <= 20",
        "portrange 2000-1000": "portrange 1000-2000",
        "teid 0x10": "teid 16",
        "": "true",
        "   ": "true",
    }
    for text, want in cases.items():
        assert compile_filter(text).expression == want, text
    assert isinstance(compile_filter("tcp"), Filter)
    assert repr(compile_filter("tcp")) == "Filter('tcp')"


def test_takes_a_parsed_header_or_layers(catalogue: dict[str, Mbuf]) -> None:
    f = compile_filter("tcp dst port 80")
    m = catalogue["syn"]
    eth_hdr = m.parse(Ethernet)
    assert f(eth_hdr) and f(eth_hdr.parse(Ipv4).parse(Tcp))     # the whole packet is examined
    layers, _ = dissect(m)
    assert f.match_layers(layers, len(m))
    assert not compile_filter("len > 54").match_layers(layers, len(m))
    with pytest.raises(TypeError, match="Mbuf or a parsed header"):
        f(b"\x00" * 60)


def test_filter_leaves_the_packet_unchanged(catalogue: dict[str, Mbuf]) -> None:
    before = {k: m.to_bytes() for k, m in catalogue.items()}
    f = compile_filter("tcp or udp or arp or icmp or icmp6 or vxlan or host 10.0.0.1")
    for m in catalogue.values():
        f(m)
    assert {k: m.to_bytes() for k, m in catalogue.items()} == before


def test_in_a_pipeline() -> None:
    class Rx:
        def __init__(self, mbufs: list[Mbuf]) -> None:
            self.mbufs = mbufs

        def receive(self, max_packets: int = 32) -> list[Mbuf]:
            out, self.mbufs = self.mbufs[:max_packets], self.mbufs[max_packets:]
            return out

    class Tx:
        def __init__(self) -> None:
            self.sent: list[Mbuf] = []

        def transmit(self, mbufs: list[Mbuf]) -> None:
            self.sent.extend(mbufs)

    pkts = [done(udp(v4(eth(), "10.0.0.1", "10.0.0.2"), 1, d)) for d in (53, 80, 53)]
    tx = Tx()
    pl = Poll(Rx(pkts)).filter(compile_filter("udp dst port 53")).send(tx)
    assert pl.run_once() == 3
    assert [m.slot for m in tx.sent] == [pkts[0].slot, pkts[2].slot]
    Mbuf.free_bulk(tx.sent)


# ---------------------------------------------------------------------------------------
# Malformed packets: matched on what parsed, never an exception
# ---------------------------------------------------------------------------------------

EVERYTHING = ("ether or vlan or arp or ip or ip6 or tcp or udp or icmp or icmp6 or gre or "
              "vxlan or gtp or ndp or frag or srh or tcp-syn or tcp-ack or tcp-rst or "
              "tcp-fin or icmp-echo or host 10.0.0.1 or host 2001:db8::1 or net 10.0.0.0/8 "
              "or port 80 or portrange 1-1000 or ether host 02:00:00:00:00:01 or vlan 100 or "
              "vni 42 or teid 1 or len > 100 or src and dst net ::/0")
FILTERS = [compile_filter(EVERYTHING), compile_filter(f"not ({EVERYTHING})")]


def test_every_truncation_of_every_packet(catalogue: dict[str, Mbuf]) -> None:
    """Cut each catalogue packet at every length: the filters answer, and a header that
    no longer fits stops matching (the outer ones still do)."""
    tcp_port = compile_filter("tcp port 80")
    for name, m in catalogue.items():
        raw = m.to_bytes()
        for n in range(len(raw) + 1):
            cut = Mbuf.from_bytes(raw[:n], POOL)
            try:
                results = [f(cut) for f in FILTERS]
                assert results[0] is not results[1]
                assert tcp_port(cut) == (tcp_port(m) and n >= _tcp_end(m))
            finally:
                cut.free()


def _tcp_end(m: Mbuf) -> int:
    """Where the last TCP header of ``m`` ends (the packet must reach it to show its port)."""
    tcps = [p for p in dissect(m)[0] if isinstance(p, Tcp)]
    return tcps[-1].payload_offset if tcps else 0


def test_truncated_inner_header_keeps_outer_matches() -> None:
    """A VXLAN packet whose inner IPv4 says TCP but carries only 10 bytes of it."""
    vx = udp(v4(eth(), "192.0.2.1", "192.0.2.2"), 49152, 4789).push(Vxlan)
    vx.vni = 42
    inner = v4(vx.push(Ethernet), "10.9.0.1", "10.9.0.2")
    inner.protocol = 6
    inner.set_payload(bytes.fromhex("15b30050") + bytes(6))     # ports 5555 > 80
    m = done(inner)
    try:
        layers, err = dissect(m)
        assert type(layers[-1]) is Ipv4 and err is not None
        assert compile_filter("vxlan and vni 42 and host 10.9.0.2 and tcp and udp port 4789")(m)
        assert not compile_filter("port 80")(m)
        assert not compile_filter("tcp-syn or tcp-ack")(m)
        assert compile_filter("not port 80 and not portrange 5000-6000")(m)
    finally:
        m.free()


def test_declared_but_unparsed_protocols(catalogue: dict[str, Mbuf]) -> None:
    """Protocol names follow what the headers declare (as tcpdump does); fields of a
    header that did not parse never match."""
    assert compile_filter("udp and frag and not port 9")(catalogue["frag4"])
    assert compile_filter("tcp and not portrange 0-65535")(catalogue["trunc_tcp"])
    assert compile_filter("ip and not net 0.0.0.0/0")(catalogue["bad_ip"])
    assert compile_filter("udp and ip6 and not port 53")(catalogue["hbh_udp"])


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    m = Mbuf.from_bytes(data, POOL)
    try:
        a, b = (f(m) for f in FILTERS)
        assert a is not b
    finally:
        m.free()


@given(st.binary(min_size=14, max_size=120), st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100,
                                                              0x88A8, 0x6558]))
def test_random_payloads_behind_known_ethertypes_never_raise(data: bytes, et: int) -> None:
    m = Mbuf.from_bytes(data[:12] + et.to_bytes(2, "big") + data[14:], POOL)
    try:
        a, b = (f(m) for f in FILTERS)
        assert a is not b
    finally:
        m.free()


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

ERRORS = [
    ("tcp and", "expected a primitive after 'and' at column 8"),
    ("tcp &&", "expected a primitive after '&&' at column 7"),
    ("tcp or or udp", "expected a primitive after 'or' at column 8, found 'or'"),
    ("not", "expected a primitive after 'not' at column 4"),
    ("and tcp", "expected a primitive at column 1, found 'and'"),
    ("tcp or ()", "expected a primitive after '(' at column 9, found ')'"),
    ("tpc", "unknown primitive 'tpc' at column 1 (did you mean 'tcp'?)"),
    ("tcp and hots 10.0.0.1", "unknown primitive 'hots' at column 9 (did you mean 'host'?)"),
    ("10.0.0.1", "unknown primitive '10.0.0.1' at column 1 (did you mean 'host 10.0.0.1'?)"),
    ("10.0.0.0/8", "unknown primitive '10.0.0.0/8' at column 1 (did you mean 'net 10.0.0.0/8'?)"),
    ("aa:bb:cc:dd:ee:ff", "unknown primitive 'aa:bb:cc:dd:ee:ff' at column 1 "
                          "(did you mean 'ether host aa:bb:cc:dd:ee:ff'?)"),
    ("80", "unknown primitive '80' at column 1 (did you mean 'port 80'?)"),
    ("sctp", "unknown primitive 'sctp' at column 1 (not supported: nfkit does not parse it)"),
    ("ip proto 6", "unexpected 'proto' at column 4 (expected 'and', 'or' or the end of the "
                   "filter)"),
    ("broadcast", "unknown primitive 'broadcast' at column 1 (not supported: use "
                  "'ether dst ff:ff:ff:ff:ff:ff')"),
    ("(tcp", "expected ')' to close the '(' at column 1, found the end of the filter at column 5"),
    ("(tcp udp)", "expected ')' to close the '(' at column 1, found 'udp' at column 6"),
    ("tcp)", "unexpected ')' at column 4 (no '(' to close)"),
    ("tcp udp", "unexpected 'udp' at column 5 (expected 'and', 'or' or the end of the filter)"),
    ("tcp & udp", "unexpected character '&' at column 5 (did you mean '&&' or 'and'?)"),
    ("tcp | udp", "unexpected character '|' at column 5 (did you mean '||' or 'or'?)"),
    ("port $1", "unexpected character '$' at column 6"),
    ("host 10.0.0.256", "bad address '10.0.0.256' at column 6: not an IPv4 or IPv6 address "
                        "(host names are not resolved)"),
    ("host example.com", "bad address 'example.com' at column 6: not an IPv4 or IPv6 address "
                         "(host names are not resolved)"),
    ("host", "expected an address after 'host' at column 5"),
    ("src host and tcp", "expected an address after 'host' at column 10, found 'and'"),
    ("src", "expected 'host', 'net', 'port', 'portrange' or an address after 'src' at column 4"),
    ("ip src", "expected 'host', 'net' or an address after 'src' at column 7"),
    ("ip host 2001:db8::1", "'ip host' takes an IPv4 address, got '2001:db8::1' at column 9"),
    ("ip6 net 10.0.0.0/8", "'ip6 net' takes an IPv6 address, got '10.0.0.0/8' at column 9"),
    ("arp host ::1", "'arp host' takes an IPv4 address, got '::1' at column 10"),
    ("net 10.0.0.1/8", "bad network '10.0.0.1/8' at column 5: host bits set "
                       "(did you mean '10.0.0.0/8'?)"),
    ("net 10.0.0.0/33", "bad network '10.0.0.0/33' at column 5: expected a CIDR network such "
                        "as 10.0.0.0/8 or 2001:db8::/32"),
    ("port", "expected a port number after 'port' at column 5"),
    ("port http", "bad port 'http' at column 6: expected a number 0-65535"),
    ("port 70000", "bad port '70000' at column 6: out of range 0-65535"),
    ("dst port -1", "bad port '-1' at column 10: expected a number 0-65535"),
    ("portrange 10", "bad port range '10' at column 11: expected N-M, e.g. 1024-65535"),
    ("portrange 1-70000", "bad port range '1-70000' at column 11: ports are 0-65535"),
    ("ip port 80", "'ip' cannot qualify 'port' at column 4 (use tcp or udp)"),
    ("tcp host 10.0.0.1", "'tcp' cannot qualify 'host' at column 5 (use ip, ip6 or arp)"),
    ("udp src 10.0.0.1", "expected 'port' or 'portrange' after 'src' at column 9, "
                         "found '10.0.0.1'"),
    ("ether net 10.0.0.0/8", "'ether' cannot qualify 'net' at column 7 "
                             "(use 'ether host', 'ether src' or 'ether dst')"),
    ("ether src 02:00:00:00:00", "bad MAC address '02:00:00:00:00' at column 11: "
                                 "expected aa:bb:cc:dd:ee:ff"),
    ("ether host", "expected a MAC address after 'host' at column 11"),
    ("vlan 4096", "bad VLAN ID '4096' at column 6: out of range 0-4095"),
    ("vni", "expected a VNI after 'vni' at column 4"),
    ("vni 16777216", "bad VNI '16777216' at column 5: out of range 0-16777215"),
    ("teid x", "bad TEID 'x' at column 6: expected a number 0-4294967295"),
    ("len", "expected a comparison (>, <, >=, <=, =, !=) after 'len' at column 4"),
    ("len 5", "expected a comparison (>, <, >=, <=, =, !=) after 'len' at column 5, found '5'"),
    ("len > big", "bad length 'big' at column 7: expected a number 0-4294967295"),
    ("greater", "expected a length after 'greater' at column 8"),
]


@pytest.mark.parametrize("expr, reason", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages(expr: str, reason: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    err = info.value
    assert str(err) == f"filter '{expr}': {reason}"
    assert err.reason == reason and err.expression == expr
    assert err.column is not None and f"column {err.column}" in reason


def test_filter_error_is_an_nfkit_error_and_a_value_error() -> None:
    with pytest.raises(NfkitError):
        compile_filter("tcp and")
    with pytest.raises(ValueError):
        compile_filter("tcp and")
    with pytest.raises(TypeError):
        compile_filter(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# Differential test against tcpdump (no tunnels: tcpdump only looks at outer headers)
# ---------------------------------------------------------------------------------------

def _scapy_packets() -> list[tuple[Any, bool]]:
    """Varied packets for the differential test, each with "is VLAN-tagged"."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption
    from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NS,
                                    ICMPv6ND_RA, IPv6, IPv6ExtHdrFragment)
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.packet import Raw

    def e(src: str = MAC1, dst: str = MAC2) -> Any:
        return Ether(src=src, dst=dst)

    untagged = [
        e() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S"),
        e(MAC2, MAC1) / IP(src="10.0.0.2", dst="10.0.0.1") / TCP(sport=80, dport=40000, flags="SA"),
        e() / IP(src="10.0.0.1", dst="192.168.1.1") / TCP(sport=22, dport=50000, flags="RA")
        / Raw(bytes(100)),
        e() / IP(src="10.0.0.3", dst="8.8.8.8") / UDP(sport=50002, dport=53) / Raw(b"q" * 20),
        e(MAC2, MAC1) / IP(src="8.8.8.8", dst="10.0.0.3") / UDP(sport=53, dport=50002),
        e() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1500, dport=1501),
        e() / IPv6(src="2001:db8::2", dst="2001:db8:1::1") / TCP(sport=1234, dport=443, flags="S"),
        e(MAC3, BROADCAST) / ARP(op=1, hwsrc=MAC3, psrc="10.0.0.9", pdst="10.0.0.1"),
        e(MAC1, MAC3) / ARP(op=2, hwsrc=MAC1, psrc="10.0.0.1", hwdst=MAC3, pdst="10.0.0.9"),
        e() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8),
        e(MAC2, MAC1) / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0),
        e(MAC2, MAC1) / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3)
        / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53, dport=53),
        e() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(),
        e(MAC2, MAC1) / IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6EchoReply(),
        e(MAC1, "33:33:ff:00:00:02") / IPv6(src="fe80::1", dst="ff02::1:ff00:2")
        / ICMPv6ND_NS(tgt="fe80::2"),
        e(MAC2, "33:33:00:00:00:01") / IPv6(src="fe80::2", dst="ff02::1") / ICMPv6ND_RA(),
        e() / IP(src="10.0.0.4", dst="10.0.0.5", flags="MF", frag=0) / UDP(sport=5000, dport=53)
        / Raw(bytes(16)),
        e() / IP(src="10.0.0.4", dst="10.0.0.5", flags=0, frag=3, proto=17) / Raw(bytes(16)),
        e() / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(offset=10, nh=6, m=0) / Raw(bytes(16)),
        e() / IP(src="10.1.2.3", dst="10.0.0.200", options=[IPOption(b"\x01\x01\x01\x00")])
        / TCP(sport=1000, dport=2000, flags="FA"),
        e() / IP(src="10.1.2.3", dst="10.0.0.200") / UDP(sport=1999, dport=2001),
        e() / IP(src="10.0.0.1", dst="10.0.0.2", proto=6) / Raw(b"\x00\x07\x00\x07" + bytes(6)),
        e() / IP(src="172.16.0.1", dst="10.0.0.1") / UDP(sport=5000, dport=5001)
        / Raw(bytes(1000)),
        e() / IPv6(src="fe80::1", dst="2001:db8::1") / TCP(sport=2000, dport=22, flags="PA")
        / Raw(b"x" * 40),
    ]
    tagged = [
        e() / Dot1Q(vlan=100) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80),
        e() / Dot1Q(vlan=200) / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(sport=53, dport=53),
    ]
    return [(p, False) for p in untagged] + [(p, True) for p in tagged]


#: (nfkit expression, tcpdump expression); None: the same text.
DIFFERENTIAL: list[tuple[str, str | None]] = [
    ("tcp", None), ("udp", None), ("icmp", None), ("icmp6", None), ("arp", None),
    ("ip", None), ("ip6", None),
    ("host 10.0.0.1", None), ("src host 10.0.0.1", None), ("dst host 10.0.0.1", None),
    ("ip host 10.0.0.1", None), ("arp host 10.0.0.9", None), ("dst host 2001:db8::2", None),
    ("net 10.0.0.0/24", None), ("src net 10.0.0.0/8", None), ("ip6 net 2001:db8::/32", None),
    ("net fe80::/10", None), ("src and dst net 10.0.0.0/8", None),
    ("port 53", None), ("tcp dst port 80", None), ("udp src port 53", None),
    ("src or dst port 2000", None), ("portrange 1000-2000", None),
    ("tcp portrange 20-80", None),
    ("ether host 02:00:00:00:00:03", None), ("ether dst ff:ff:ff:ff:ff:ff", None),
    ("ether src 02:00:00:00:00:02", None),
    ("len > 100", None), ("len <= 60", None), ("greater 200", None), ("less 60", None),
    ("tcp and not port 22", None), ("(udp or icmp) and not ip6", None),
    ("not (tcp or udp)", None), ("tcp or (udp and port 53)", None),
    ("ip host 10.0.0.1 and (tcp or icmp)", None),
    ("tcp-syn", "(tcp[tcpflags] & tcp-syn != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 2 != 0)"),
    ("tcp-fin", "(tcp[tcpflags] & tcp-fin != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 1 != 0)"),
    ("tcp-ack and not tcp-syn",
     "((tcp[tcpflags] & tcp-ack != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 16 != 0)) and "
     "not ((tcp[tcpflags] & tcp-syn != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 2 != 0))"),
    ("icmp-echo", "icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply or "
                  "icmp6[icmp6type] == icmp6-echo or icmp6[icmp6type] == icmp6-echoreply"),
    ("frag", "(ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)"),
    ("ndp", "icmp6 and ip6[40] >= 133 and ip6[40] <= 137"),
]
#: VLAN expressions: tcpdump reads inside the tag after the ``vlan`` keyword, so these
#: agree on tagged and untagged frames alike.
DIFFERENTIAL_VLAN = ["vlan", "vlan 100", "vlan 200", "vlan and tcp port 80",
                     "vlan and ip6 and udp port 53"]


def _tcpdump_selects(tcpdump: str, pcap: Path, expr: str) -> set[int]:
    """Indices (packet timestamps are index + 1) of the packets tcpdump's filter passes."""
    out = subprocess.run([tcpdump, "-nn", "-tt", "-r", str(pcap), expr], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f"tcpdump rejected {expr!r}: {out.stderr}"
    return {int(float(line.split()[0])) - 1 for line in out.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def differential(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[str, Path, list[Mbuf], list[bool]]]:
    """tcpdump's path, a pcap of :func:`_scapy_packets`, the same frames as Mbufs, and
    which of them are VLAN-tagged."""
    tcpdump = need_tool("tcpdump")
    from scapy.utils import wrpcap
    pkts = _scapy_packets()
    frames = []
    for i, (p, _) in enumerate(pkts):
        p.time = i + 1
        frames.append(p)
    pcap = tmp_path_factory.mktemp("filter") / "varied.pcap"
    wrpcap(str(pcap), frames)
    mbufs = [Mbuf.from_bytes(bytes(p), POOL) for p in frames]
    yield tcpdump, pcap, mbufs, [tagged for _, tagged in pkts]
    Mbuf.free_bulk(mbufs)


@pytest.mark.parametrize("ours, theirs", DIFFERENTIAL, ids=[d[0] for d in DIFFERENTIAL])
def test_same_selection_as_tcpdump(ours: str, theirs: str | None, differential: Any) -> None:
    tcpdump, pcap, mbufs, tagged = differential
    f = compile_filter(ours)
    untagged = {i for i, t in enumerate(tagged) if not t}
    # Without the vlan keyword tcpdump does not look inside tagged frames; nfkit does.
    want = _tcpdump_selects(tcpdump, pcap, theirs or ours) & untagged
    got = {i for i in untagged if f(mbufs[i])}
    assert got == want
    assert want or ours.startswith("not"), f"{ours!r} selects nothing: a weak comparison"


@pytest.mark.parametrize("expr", DIFFERENTIAL_VLAN)
def test_same_vlan_selection_as_tcpdump(expr: str, differential: Any) -> None:
    tcpdump, pcap, mbufs, _ = differential
    f = compile_filter(expr)
    assert {i for i, m in enumerate(mbufs) if f(m)} == _tcpdump_selects(tcpdump, pcap, expr)


# ---------------------------------------------------------------------------------------
# Limits: deep nesting, long numbers, long filters are FilterErrors; a compiled filter
# never raises
# ---------------------------------------------------------------------------------------

def _limits() -> tuple[int, int, int]:
    import nfkit.filter as nf
    return (getattr(nf, "MAX_DEPTH", 100), getattr(nf, "MAX_DIGITS", 20),
            getattr(nf, "MAX_LENGTH", 65536))


@pytest.mark.parametrize("text, column", [
    ("(" * 330 + "tcp" + ")" * 330, 101),
    ("not " * 1000 + "tcp", 401),
    ("!" * 1000 + "tcp", 101),
    ("tcp and (" + "not (" * 60 + "udp" + ")" * 61, 9 + 50 * 5),
])
def test_nesting_deeper_than_the_limit_is_a_filter_error(text: str, column: int) -> None:
    """Regression: 330 parentheses or ~1,000 'not's raised RecursionError."""
    depth = _limits()[0]
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    err = info.value
    assert err.column == column, err.reason
    assert err.reason.endswith(f"at column {column}: nesting deeper than {depth} levels of "
                               "parentheses and 'not' (the limit)")
    assert len(str(err)) < 400                     # the message quotes a bounded excerpt


def _at_depth(n: int, f: Filter, m: Mbuf) -> bool:
    return _at_depth(n - 1, f, m) if n else f(m)


@pytest.mark.parametrize("nest, levels", [(lambda e: f"({e})", 1), (lambda e: f"not {e}", 1),
                                          (lambda e: f"(tcp and udp and {e})", 1),
                                          (lambda e: f"(tcp or not {e})", 2)],
                         ids=["parens", "not", "and3", "or-not"])
def test_the_deepest_filter_allowed_compiles_and_never_raises_when_called(nest: Any,
                                                                           levels: int) -> None:
    """Regression: 'not ' * 600 + 'tcp' compiled, then raised RecursionError when called
    from a pipeline's stack.  At the depth limit a call needs few enough frames to run
    even 600 frames down."""
    depth = _limits()[0]
    text = "tcp"
    for _ in range(depth // levels):
        text = nest(text)
    m = Mbuf.from_bytes(bytes(60), POOL)
    try:
        f = compile_filter(text)
        assert _at_depth(600, f, m) in (True, False)
        assert compile_filter(f.expression).expression == f.expression
    finally:
        m.free()
    with pytest.raises(FilterError):
        compile_filter("not " * 600 + "tcp")


@pytest.mark.parametrize("text, column", [
    ("port " + "9" * 4301, 6),
    ("vlan " + "0" * 500 + "1", 6),
    ("len > 0x" + "f" * 5000, 7),
    ("tcp and portrange 1-" + "1" * 5000, 21),
])
def test_numbers_longer_than_the_limit_are_a_filter_error(text: str, column: int) -> None:
    """Regression: a number of 4,301 digits raised ValueError (Python's int() limit)."""
    digits = _limits()[1]
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    err = info.value
    assert err.column == column
    assert f"at column {column}: longer than {digits} digits (the limit)" in err.reason
    assert len(str(err)) < 400


def test_a_filter_longer_than_the_limit_is_a_filter_error() -> None:
    limit = _limits()[2]
    text = " or ".join(["tcp"] * (limit // 4 + 10))
    with pytest.raises(FilterError) as info:
        compile_filter(text)
    err = info.value
    assert err.column == limit + 1
    assert err.reason == (f"the filter is {len(text)} characters long; at most {limit} "
                          f"(the limit) at column {limit + 1}")
    assert len(str(err)) < 400
    ok = " or ".join(["tcp"] * (limit // 8))          # long and flat: fine
    assert len(ok) <= limit and compile_filter(ok).expression.startswith("tcp or tcp")


_PRIMITIVES = [
    "tcp", "udp", "ip", "ip6", "arp", "icmp", "icmp6", "gre", "vxlan", "gtp", "ndp", "frag",
    "srh", "ether", "vlan", "vlan 100", "vni 42", "teid 7", "tcp-syn", "tcp-ack", "icmp-echo",
    "host 10.0.0.1", "src host 2001:db8::1", "dst net 10.0.0.0/8", "net ::/0",
    "arp src 192.0.2.1", "tcp port 80", "udp dst port 53", "portrange 1-1024",
    "src and dst net 0.0.0.0/0", "ether src 02:00:00:00:00:01", "ether host ff:ff:ff:ff:ff:ff",
    "len > 100", "len <= 64", "greater 1000", "less 60", "true", "false",
]
#: near misses: compiling must raise FilterError, nothing else
_NOT_PRIMITIVES = ["port 99999", "host 300.1.1.1", "foo", "net 10.0.0.1/8", "len", ")",
                   "port " + "9" * 30, "portrange 5"]
_OPS = [" and ", " or ", " && ", " || "]


def _mostly(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """One of ``good``, one time in 20 one of ``bad``."""
    return st.integers(0, 19).flatmap(lambda i: st.sampled_from(bad if i == 0 else good))

_DEPTHS = st.sampled_from([0, 1, 2, 30, 99, 100, 101, 1200])
_shallow = st.recursive(
    _mostly(_PRIMITIVES, _NOT_PRIMITIVES),
    lambda inner: st.one_of(
        st.tuples(inner, _mostly(_OPS, [" ", "and", ""]), inner).map("".join),
        inner.map(lambda e: f"not {e}"), inner.map(lambda e: f"!{e}"),
        inner.map(lambda e: f"({e})")),
    max_leaves=12)


@st.composite
def filters(draw: Any) -> str:
    """Expressions of the grammar (and near misses), often wrapped very deep."""
    e = draw(_shallow)
    for _ in range(draw(st.integers(0, 3))):
        n = draw(_DEPTHS)
        how = draw(st.sampled_from(["()", "not", "!", "and", "or-not"]))
        if how == "()":
            e = "(" * n + e + ")" * n
        elif how in ("not", "!"):
            e = ("not " if how == "not" else "!") * n + e
        else:
            other = draw(_shallow)
            for _ in range(n):
                e = f"({other} and {e})" if how == "and" else f"({other} or not {e})"
    return e


def _frames() -> list[bytes]:
    c = build_catalogue()
    try:
        return [m.to_bytes() for m in c.values()]
    finally:
        Mbuf.free_bulk(c.values())


_FRAMES = _frames()


@st.composite
def mangled_frames(draw: Any) -> bytes:
    """Random bytes, or a catalogue frame cut short and with some bytes changed."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    raw = bytearray(draw(st.sampled_from(_FRAMES)))
    for _ in range(draw(st.integers(0, 6))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw[:draw(st.integers(0, len(raw)))])


@given(st.one_of(filters(), st.text(max_size=80)), st.lists(mangled_frames(), max_size=8))
def test_random_filters_compile_or_say_why_and_never_raise_on_any_frame(
        text: str, frames: list[bytes]) -> None:
    try:
        f = compile_filter(text)
    except FilterError as err:
        assert err.column is None or 1 <= err.column <= len(text) + 1
        return
    again = compile_filter(f.expression)               # the normalised text compiles too
    for raw in frames:
        m = Mbuf.from_bytes(raw, POOL)
        try:
            got = f(m)
            assert got in (True, False)
            assert again(m) is got
            assert _at_depth(300, f, m) is got          # and from deeper in a stack
        finally:
            m.free()
