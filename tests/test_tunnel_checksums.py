"""Setters keep every covering checksum valid, tunnels included (issue #11).

A setter changes bytes that the header's own checksum may cover (IPv4, TCP, UDP, ICMP),
that a transport checksum covers through the pseudo-header (addresses), and that every
checksum of an enclosing tunnel covers: an outer UDP (VXLAN, GTP-U) or a GRE checksum.
Scapy (with checksums really recomputed, see ``oracle.py``) is the judge, over every tunnel
chain nfkit parses, with hypothesis rounds of setters over every settable field.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import Ether

from nfkit import FieldValueError, Mbuf, Mempool
from nfkit.packets import (Arp, Ethernet, Icmpv6EchoRequest, Ipv4, Ipv6, LinkLayerAddress,
                           NeighborSolicitation, Tcp, Udp)
from nfkit.packets import EchoRequest as Icmpv4EchoRequest
from nfkit.packets.dissect import dissect
from nfkit.packets.gre import Gre
from nfkit.packets.gtpu import GtpU
from nfkit.packets.ipv6ext import Fragment, SegmentRouting
from nfkit.packets.vxlan import Vxlan
from nfkit.testing import mac_addrs
from oracle import bad_checksums, compare, match, scapy_fields

POOL = Mempool(capacity=63, name="tunnel-checksum-tests")

#: ports Scapy binds a payload decoder to: with one of them Scapy would read the payload as
#: another protocol (and recompute checksums in it), so generated ports avoid them
SCAPY_PORTS = frozenset({v for cls in (UDP, TCP) for fval, _ in cls.payload_guess
                         for k, v in fval.items() if k in ("sport", "dport")})
ports = st.integers(0, 0xFFFF).filter(lambda p: p not in SCAPY_PORTS)


def check(m: Mbuf, depth: int | None = None, kept: frozenset[int] = frozenset()) -> dict[str, Any]:
    """Every checksum in ``m`` is what Scapy computes (except those of the nfkit layers in
    ``kept``, whose checksum a test set by hand), and Scapy reads every field as nfkit.
    Returns every field as Scapy reads it (:func:`oracle.scapy_fields`)."""
    raw = m.to_bytes()
    probe = Mbuf.from_bytes(raw, POOL)
    try:
        layers, err = dissect(probe)
        assert err is None, err
        if depth is not None:
            assert len(layers) == depth, [p.NAME for p in layers]
        keep = [match(layers, Ether(raw))[i] for i in kept]
        assert bad_checksums(raw, keep) == [], [p.NAME for p in layers]
        compare(layers, raw)
        return scapy_fields(layers, raw)
    finally:
        probe.free()


# -- the faults as reported ------------------------------------------------------------------

def _outer(ipv6: bool) -> Any:
    m = Mbuf.alloc(POOL)
    eth = m.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
    ip: Any = eth.push(Ipv6 if ipv6 else Ipv4)
    ip.src, ip.dst = ("2001:db8::1", "2001:db8::2") if ipv6 else ("192.0.2.1", "192.0.2.2")
    return ip


def _inner_tcp(env: Any, ipv6: bool = False) -> Tcp:
    ip = env.push(Ipv6 if ipv6 else Ipv4)
    ip.src, ip.dst = ("fd00::1", "fd00::2") if ipv6 else ("10.0.0.1", "10.0.0.2")
    tcp = ip.push(Tcp)
    tcp.src_port, tcp.dst_port = 40000, 8080
    tcp.set_payload(b"inner payload")
    tcp.reconcile_all()
    return tcp


def _vxlan(ipv6: bool) -> tuple[Vxlan, Tcp]:
    udp = _outer(ipv6).push(Udp)
    udp.src_port = 49152
    vx = udp.push(Vxlan)
    vx.vni = 42
    eth = vx.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    return vx, _inner_tcp(eth)


@pytest.mark.parametrize("ipv6", [False, True])
def test_vxlan_vni_and_inner_macs_keep_the_outer_udp_checksum(ipv6: bool) -> None:
    vx, tcp = _vxlan(ipv6)
    check(tcp.mbuf, 7)
    vx.vni = 43                                   # the example (over IPv6)
    check(tcp.mbuf, 7)
    m = tcp.mbuf
    eth = tcp.envelope.envelope
    eth.src = "02:00:00:00:00:99"                 # inner MAC: no checksum of its own
    check(m, 7)
    eth.push_vlan(7)                              # a resize: lengths need a reconcile
    eth.reconcile_all()                           # (eth and its envelopes moved with it)
    eth = dissect(m)[0][4]
    eth.vlans[0].vid = 4000                       # a VLAN tag field inside the tunnel
    eth.ether_type = 0x88B5                       # (local experimental: no inner IPv4)
    check(m, 5)
    eth.ether_type = 0x0800
    eth.parse(Ipv4).decrement_ttl()
    check(m, 7)
    m.free()


@pytest.mark.parametrize("ipv6", [False, True])
def test_inner_address_under_gre_with_checksum_keeps_the_gre_checksum(ipv6: bool) -> None:
    gre = _outer(False).push(Gre)
    gre.use_checksum()
    tcp = _inner_tcp(gre, ipv6)
    check(tcp.mbuf, 5)
    tcp.envelope.src = "fd00::77" if ipv6 else "10.9.9.9"       # the example
    check(tcp.mbuf, 5)
    tcp.envelope.dst = "fd00::78" if ipv6 else "10.9.9.8"
    tcp.src_port = 1                                 # absorbed by the TCP checksum
    gre.key = None                                   # no-op: still right
    check(tcp.mbuf, 5)
    tcp.mbuf.free()


def test_gtpu_fields_keep_the_outer_udp_checksum() -> None:
    udp = _outer(False).push(Udp)
    udp.src_port = 49152
    gtp = udp.push(GtpU)
    gtp.sequence = 5
    tcp = _inner_tcp(gtp, ipv6=True)
    check(tcp.mbuf, 6)
    gtp.teid = 0xDEADBEEF
    check(tcp.mbuf, 6)
    gtp.sequence = 6                                 # optional field, present: no resize
    gtp.spare = True
    tcp.envelope.decrement_hop_limit()               # inner IPv6: no checksum of its own
    tcp.envelope.flow_label = 0x12345
    check(tcp.mbuf, 6)
    tcp.mbuf.free()


def test_a_zero_outer_udp_checksum_over_ipv4_stays_zero() -> None:
    vx, tcp = _vxlan(False)
    udp = vx.envelope
    udp.no_checksum()
    vx.vni = 7
    tcp.envelope.envelope.dst = "02:00:00:00:00:77"
    assert udp.checksum == 0
    check(tcp.mbuf, 7)
    tcp.mbuf.free()


def test_a_hand_set_inner_checksum_is_covered_by_the_outer_one() -> None:
    """The outer checksum covers the inner checksum's bytes too, right or wrong."""
    vx, tcp = _vxlan(True)
    tcp.checksum = 0x1234
    check(tcp.mbuf, 7, kept=frozenset({6}))
    tcp.mbuf.free()


# -- edges: outer checksums at the wrap ----------------------------------------------------------

def _steer_udp(udp: Udp, target: int) -> None:
    """Make ``udp``'s checksum ``target`` (1..0xFFFF) through its source port: +d in the
    port is -d in the checksum, modulo 0xFFFF (a tunnel's source port is free)."""
    udp.src_port = (udp.src_port + udp.checksum - target) % 0xFFFF
    assert udp.checksum == target or {udp.checksum, target} == {0, 0xFFFF}


@pytest.mark.parametrize("target", [1, 2, 3, 0xFF, 0x100, 0x101, 0xFEFF, 0xFF00,
                                    0xFFFD, 0xFFFE, 0xFFFF])
def test_small_changes_at_the_outer_checksum_edge(target: int) -> None:
    """A change of the sum by 1 or 256 (a hop limit, a TTL, one byte) moves an outer
    checksum across 0 / 0xFFFF: it must land where a full recomputation does."""
    for step in range(4):
        vx, tcp = _vxlan(True)
        ip = tcp.envelope
        if step % 2:
            ip.remove()
            ip6 = vx.parse(Ethernet).push(Ipv6)
            ip6.src, ip6.dst, ip6.hop_limit = "fd00::1", "fd00::2", 64
            tcp = ip6.push(Tcp)
            tcp.reconcile_all()
        _steer_udp(vx.envelope, target - step if target > step else target)
        inner = tcp.envelope
        if isinstance(inner, Ipv6):
            inner.decrement_hop_limit()
        else:
            inner.envelope.src = "02:00:00:00:00:03" if step else "02:00:00:00:00:01"
            vx.reserved2 = 1
        check(tcp.mbuf, 7)
        tcp.mbuf.free()


# -- setter rounds over every tunnel chain --------------------------------------------------------

#: settable fields a round leaves alone, and why: another value makes another packet (a
#: version, a type, a flag that selects the layout), which no checksum rule covers
IDENTITY = {
    "IPv4": {"version"}, "IPv6": {"version"}, "GRE": {"version"}, "SRH": {"routing_type"},
    "VXLAN": {"flags", "vni_valid"},   # I must stay set; Scapy reads G/P flags as GBP/GPE
    "GTP-U": {"version", "protocol_type", "message_type"},
    "VLAN": {"tpid"}, "NDP link-layer address": {"option_type"},
}


def settable(p: Any) -> list[str]:
    """Fields of ``p`` a round may set: not structural (header length, payload type: the
    bounds tests cover those), not derived except checksums, not an identity field."""
    skip = IDENTITY.get(p.NAME, set())
    out = [f.name for f in type(p).ALL_FIELDS
           if not f.structural and (not f.derived or f.name == "checksum") and f.name not in skip]
    if isinstance(p, Udp) and isinstance(_next(p), (Vxlan, GtpU)):
        out.remove("dst_port")            # it selects the tunnel
    if isinstance(p, GtpU):               # setting an absent one adds 4 bytes: see actions()
        out = [n for n in out if n not in ("sequence", "npdu_number")]
    return out


def _next(p: Any) -> Any:
    """The header after ``p`` in a fresh dissection of its packet, or None."""
    layers = p.layers()
    chain = dissect(p.mbuf)[0]
    return chain[len(layers)] if len(chain) > len(layers) else None


def value(f: Any) -> st.SearchStrategy[Any]:
    if f.kind == "flag":
        return st.booleans()
    if f.kind == "mac":
        return mac_addrs
    if f.kind in ("ipv4", "ipv6"):
        return st.ip_addresses(v=4 if f.kind == "ipv4" else 6)
    if f.name in ("src_port", "dst_port"):
        return ports
    return st.integers(0, f.max)


def _fields(cls: type) -> dict[str, Any]:
    return {f.name: f for f in cls.ALL_FIELDS}


def set_random(draw: Any, p: Any) -> None:
    """Set every settable field of ``p`` to a drawn value (values a setter refuses, such as
    GRE's routing bit, are left out)."""
    fields = _fields(type(p))
    for name in settable(p):
        try:
            setattr(p, name, draw(value(fields[name])))
        except FieldValueError:
            pass


@st.composite
def chains(draw: Any) -> tuple[Mbuf, int]:
    """A packet of up to two tunnels (VXLAN, GRE with any options, GRE carrying Ethernet,
    GTP-U with any options, IP in IP) over IPv4 or IPv6, and an innermost TCP, UDP, ICMP
    echo, NDP solicitation, IPv6 fragment or SRH, or ARP; every field drawn.  Returns the
    packet and how many headers it has."""
    m = Mbuf.alloc(POOL)
    try:
        env: Any = m.push(Ethernet)
        set_random(draw, env)
        for tunnel in draw(st.lists(st.sampled_from(["vxlan", "gre", "gre-eth", "gtpu", "ipip"]),
                                    max_size=2)):
            if isinstance(env, Ethernet):
                for _ in range(draw(st.integers(0, 2))):
                    env.push_vlan(draw(st.integers(0, 4095)))
            ip = env.push(draw(st.sampled_from([Ipv4, Ipv6])))
            set_random(draw, ip)
            if tunnel in ("vxlan", "gtpu"):
                udp = ip.push(Udp)
                udp.src_port = draw(ports)
                t: Any = udp.push(Vxlan if tunnel == "vxlan" else GtpU)
                set_random(draw, t)
                if tunnel == "gtpu":
                    t.sequence = draw(st.one_of(st.none(), st.integers(0, 0xFFFF)))
                    t.npdu_number = draw(st.one_of(st.none(), st.integers(0, 0xFF)))
                    if draw(st.booleans()):
                        t.extensions = [(0x85, bytes([0, draw(st.integers(0, 63))]))]
            elif tunnel.startswith("gre"):
                t = ip.push(Gre)
                set_random(draw, t)
                t.key = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
                t.sequence = draw(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
                t.use_checksum(draw(st.booleans()))
            else:
                t = ip
            if tunnel in ("vxlan", "gre-eth"):
                t = t.push(Ethernet)
                set_random(draw, t)
            env = t
        last = _innermost(draw, env)
        last.reconcile_all()
        return m, len(last.layers())
    except BaseException:
        m.free()
        raise


def _innermost(draw: Any, env: Any) -> Any:
    kinds = ["tcp", "udp", "icmp"] + (["arp"] if isinstance(env, Ethernet) else [])
    kinds += ["ns", "frag", "srh"]                        # over IPv6
    kind = draw(st.sampled_from(kinds))
    if kind == "arp":
        arp = env.push(Arp)
        set_random(draw, arp)
        return arp
    if isinstance(env, Ethernet):
        for _ in range(draw(st.integers(0, 2))):
            env.push_vlan(draw(st.integers(0, 4095)))
    v6 = kind in ("ns", "frag", "srh") or draw(st.booleans())
    ip = env.push(Ipv6 if v6 else Ipv4)
    set_random(draw, ip)
    if kind == "ns":
        ns = ip.push(NeighborSolicitation)
        set_random(draw, ns)
        ns.add_option(LinkLayerAddress, addr=draw(mac_addrs))
        return ns
    carrier: Any = ip
    if kind == "frag":
        carrier = ip.push(Fragment)
        set_random(draw, carrier)
    elif kind == "srh":
        carrier = ip.push(SegmentRouting)
        carrier.segments = draw(st.lists(st.ip_addresses(v=6), min_size=1, max_size=3))
        set_random(draw, carrier)
        carrier.segments_left = draw(st.integers(0, carrier.last_entry + 1))
    proto = draw(st.sampled_from(["tcp", "udp", "icmp"] if kind != "icmp" else ["icmp"]))
    if proto == "icmp":
        cls: Any = Icmpv6EchoRequest if v6 else Icmpv4EchoRequest
    else:
        cls = Tcp if proto == "tcp" else Udp
    t = carrier.push(cls)
    set_random(draw, t)
    t.set_payload(draw(st.binary(max_size=24)))
    return t


def actions(p: Any) -> list[str]:
    """What a round may do to header ``p``: set a field, or one of these setters."""
    out = [f"field:{n}" for n in settable(p)]
    if isinstance(p, Ipv4):
        out.append("decrement_ttl")
    if isinstance(p, Ipv6):
        out.append("decrement_hop_limit")
    if isinstance(p, Ethernet):
        out.append("swap_addresses")
        out += [f"vlan:{i}:{n}" for i in range(len(p.vlans)) for n in ("pcp", "dei", "vid")]
    if isinstance(p, Gre):
        out += [f"opt:{n}" for n in ("key", "sequence") if getattr(p, n) is not None]
    if isinstance(p, GtpU):
        out += [f"opt:{n}" for n in ("sequence", "npdu_number") if getattr(p, n) is not None]
    if isinstance(p, SegmentRouting):
        out.append("segments")
    if isinstance(p, NeighborSolicitation):
        out.append("option:addr")
    if isinstance(p, Udp) and isinstance(p.envelope, Ipv4):
        out.append("no_checksum")
    return out


def _bits(f: Any) -> set[int]:
    mask = f.mask or (1 << (8 * f.width)) - 1
    return {8 * (f.offset + f.width) - 1 - b for b in range(8 * f.width) if mask >> b & 1}


def touched(i: int, p: Any, action: str) -> set[str]:
    """The fields (``scapy_fields`` keys) ``action`` on layer ``i`` may change, besides
    checksums: the field set, and the fields sharing its bits (aliases)."""
    kind, _, rest = action.partition(":")
    if kind == "vlan":
        k, name = rest.split(":")
        return {f"{i}:VLAN{k}.{name}"}
    if kind == "field":
        fields = _fields(type(p))
        mine = _bits(fields[rest])
        return {f"{i}:{p.NAME}.{n}" for n, f in fields.items() if _bits(f) & mine}
    names = {"opt": {rest}, "decrement_ttl": {"ttl"}, "decrement_hop_limit": {"hop_limit"},
             "swap_addresses": {"dst", "src"}, "segments": {"segments"}, "no_checksum": set()}
    if kind == "option":
        return {f"{i}:opt0.addr"}
    return {f"{i}:{p.NAME}.{n}" for n in names[kind if kind in names else action]}


def act(draw: Any, p: Any, action: str) -> bool:
    """Do ``action`` on ``p``; True when it set a checksum by hand."""
    kind, _, rest = action.partition(":")
    if kind == "field":
        setattr(p, rest, draw(value(_fields(type(p))[rest])))
        return rest == "checksum"
    if kind == "vlan":
        i, name = rest.split(":")
        tag = p.vlans[int(i)]
        setattr(tag, name, draw(value(_fields(type(tag))[name])))
    elif kind == "opt":
        width = {"key": 32, "sequence": 32 if isinstance(p, Gre) else 16, "npdu_number": 8}[rest]
        setattr(p, rest, draw(st.integers(0, 2**width - 1)))
    elif action == "segments":
        p.segments = draw(st.lists(st.ip_addresses(v=6), min_size=p.segment_count,
                                   max_size=p.segment_count))
    elif action == "option:addr":
        p.options()[0].addr = draw(mac_addrs)
    else:
        getattr(p, action)()
    return False


@given(st.data())
def test_setter_rounds_keep_every_checksum_scapy_agrees(data: Any) -> None:
    idle = POOL.in_use
    m, depth = data.draw(chains(), label="packet")
    try:
        seen = check(m, depth)
        kept: set[int] = set()
        for _ in range(data.draw(st.integers(1, 6), label="rounds")):
            layers = dissect(m)[0]
            i = data.draw(st.integers(0, len(layers) - 1), label="layer")
            action = data.draw(st.sampled_from(actions(layers[i])), label=layers[i].NAME)
            try:
                if act(data.draw, layers[i], action):
                    kept.add(i)
            except FieldValueError:
                assert check(m, depth, frozenset(kept)) == seen   # refused: nothing changed
                continue
            now = check(m, depth, frozenset(kept))
            # nothing but the field set and checksums changed (a fix written to the wrong
            # word would keep every sum right and still garble a field)
            changed = {k for k in now if now[k] != seen[k] and not k.endswith(".checksum")}
            assert changed <= touched(i, layers[i], action), (action, changed)
            seen = now
    finally:
        m.free()
    assert POOL.in_use == idle


# -- every setter that ripples, inside a tunnel ---------------------------------------------------

def _in_vxlan(build: Any) -> Any:
    """VXLAN over IPv6 / Ethernet / what ``build(eth)`` pushes; reconciled."""
    udp = _outer(True).push(Udp)
    udp.src_port = 49152
    eth = udp.push(Vxlan).push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    inner = build(eth)
    inner.reconcile_all()
    return inner


def test_gre_key_and_sequence_inside_a_tunnel() -> None:
    """GRE without its own checksum: a new key or sequence number moves the outer UDP's."""
    def build(eth: Ethernet) -> Tcp:
        ip = eth.push(Ipv4)
        ip.src, ip.dst = "10.0.0.1", "10.0.0.2"
        gre = ip.push(Gre)
        gre.key, gre.sequence = 1, 2
        return _inner_tcp(gre)
    tcp = _in_vxlan(build)
    gre = tcp.envelope.envelope
    check(tcp.mbuf, 9)
    gre.key = 0xCAFEBABE
    gre.sequence = 0xFFFFFFFF
    check(tcp.mbuf, 9)
    tcp.mbuf.free()


def test_srh_segments_and_tlvs_inside_a_tunnel() -> None:
    """A same-size segment list (segments[0] included: the TCP checksum follows through the
    pseudo-header) and same-size TLVs move the outer UDP checksum by what they change."""
    def build(eth: Ethernet) -> Tcp:
        ip = eth.push(Ipv6)
        ip.src, ip.dst = "fd00::1", "fd00::2"
        srh = ip.push(SegmentRouting)
        srh.segments = ["fd00::a", "fd00::b"]
        srh.tlvs = bytes(8)
        srh.segments_left = 1
        tcp = srh.push(Tcp)
        tcp.set_payload(b"sr")
        return tcp
    tcp = _in_vxlan(build)
    srh = tcp.envelope
    check(tcp.mbuf, 8)
    srh.segments = ["fd00::c", "fd00::d"]
    check(tcp.mbuf, 8)
    srh.tlvs = bytes([1, 6]) + bytes(6)              # a PadN TLV of the same size
    check(tcp.mbuf, 8)
    tcp.mbuf.free()


def test_no_checksum_inside_a_tunnel() -> None:
    """An inner UDP dropping its checksum changes bytes the outer UDP covers."""
    def build(eth: Ethernet) -> Udp:
        ip = eth.push(Ipv4)
        ip.src, ip.dst = "10.0.0.1", "10.0.0.2"
        udp = ip.push(Udp)
        udp.src_port, udp.dst_port = 1000, 2000
        udp.set_payload(b"inner datagram")
        return udp
    udp = _in_vxlan(build)
    check(udp.mbuf, 7)
    udp.no_checksum()
    udp.dst_port = 3000                              # (and the next change goes out too)
    assert udp.checksum == 0
    check(udp.mbuf, 7)
    udp.mbuf.free()
