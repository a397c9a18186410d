"""Scapy as an independent oracle: field mappings from nfkit headers to Scapy layers.

This is test code: it says how to read the same field out of Scapy, which knows nothing of
nfkit's declarations.  Two services:

* :func:`compare` -- every field of every nfkit layer equals what Scapy dissects from the
  same bytes, layer by layer in order.  A layer or a field without a mapping here is an
  error, not a skip (:func:`unmapped` lists them; a test keeps that list empty).
* :func:`recomputed` -- the frame as Scapy rebuilds it with every checksum recomputed.
  ``recomputed(raw) == raw`` holds exactly when every checksum Scapy knows is right
  (:func:`bad_checksums` says which are not).
"""

from __future__ import annotations

from contextlib import contextmanager
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Callable, Iterable, Iterator

import scapy.layers.inet6 as _inet6

from scapy.contrib.gtp import GTP_ExtensionHeader, GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrFragment, IPv6ExtHdrSegmentRouting, IPerror6,
                                ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_Redirect,
                                ICMPv6ND_RS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptMTU,
                                ICMPv6NDOptPrefixInfo, ICMPv6NDOptRedirectedHdr,
                                ICMPv6NDOptSrcLLAddr, ICMPv6PacketTooBig, ICMPv6ParamProblem,
                                ICMPv6TimeExceeded, _ICMPv6)
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import NoPayload, Packet as ScapyPacket, Padding, Raw

from nfkit import MacAddr

Getter = Callable[[ScapyPacket], Any]

_VLAN = (Dot1Q, Dot1AD)
#: layers that quote an earlier packet inside an ICMP error: data to the ICMP checksum,
#: never recomputed (their checksums were right or wrong when the packet was quoted)
_QUOTED = (IPerror, IPerror6)


def _inner_type(p: ScapyPacket) -> int:
    """nfkit's ether_type is VLAN-aware: the type after the last tag."""
    t = p.type
    layer = p.payload
    while isinstance(layer, _VLAN):
        t = layer.type
        layer = layer.payload
    return t


def _flag(name: str) -> Getter:
    return lambda p: bool(getattr(p.flags, name))


def _f(name: str) -> Getter:
    return lambda p: getattr(p, name)


def _header_only(p: ScapyPacket) -> bytes:
    """The bytes of Scapy layer ``p`` alone, as Scapy dissected them."""
    q = p.copy()
    q.remove_payload()
    return bytes(q)


def _ip_options(p: ScapyPacket) -> bytes:
    """IPv4 options as Scapy parsed them, encoded again by Scapy."""
    return b"".join(bytes(o) for o in p.options)


def _tcp_options(p: ScapyPacket) -> bytes:
    """TCP options as Scapy parsed them, encoded again by Scapy (padded to 32 bits)."""
    return p.get_field("options").i2m(p, p.options)


def _srh_flags(p: ScapyPacket) -> int:
    return (p.unused1 << 7 | p.protected << 6 | p.oam << 5 | p.alert << 4 | p.hmac << 3
            | p.unused2)


def _gre_reserved0(p: ScapyPacket) -> int:
    """RFC 2784's Reserved0 bits 4-12: Scapy splits them into RFC 1701's fields."""
    return p.strict_route_source << 8 | p.recursion_control << 5 | p.flags


def _vxlan_reserved(p: ScapyPacket) -> int:
    """RFC 7348's 24 reserved bits; Scapy names them after the GPE/GBP flag it sees."""
    if p.flags.NextProtocol:
        return p.reserved0 << 8 | p.NextProtocol
    if p.flags.G:
        return int(p.gpflags) << 16 | p.gpid
    return p.reserved1


def _gtp_opt(flag: str, name: str) -> Getter:
    """GTP-U optional fields: nfkit reads None unless the field's own flag is set."""
    return lambda p: getattr(p, name) if getattr(p, flag) else None


_IPV4 = {
    "version": _f("version"), "ihl": _f("ihl"), "dscp": lambda p: p.tos >> 2,
    "ecn": lambda p: p.tos & 3, "total_length": _f("len"), "identification": _f("id"),
    "reserved_flag": _flag("evil"), "dont_fragment": _flag("DF"), "more_fragments": _flag("MF"),
    "fragment_offset": _f("frag"), "ttl": _f("ttl"), "protocol": _f("proto"),
    "checksum": _f("chksum"), "src": _f("src"), "dst": _f("dst"), "options": _ip_options}
_ICMP_COMMON = {"msg_type": _f("type"), "code": _f("code"), "checksum": _f("chksum")}
_ICMP_MSG = {**_ICMP_COMMON, "data": lambda p: _payload_bytes(p)}
_ICMP6_COMMON = {"msg_type": _f("type"), "code": _f("code"), "checksum": _f("cksum")}
_ECHO6 = {**_ICMP6_COMMON, "identifier": _f("id"), "seq_no": _f("seq"), "data": _f("data")}
_OPT = {"option_type": _f("type"), "length": _f("len")}


def _is(*classes: type) -> Callable[[ScapyPacket], bool]:
    return lambda s: isinstance(s, classes)


def _icmp4(t: int | None) -> Callable[[ScapyPacket], bool]:
    return lambda s: isinstance(s, ICMP) and (t is None or s.type == t)


def _payload_bytes(p: ScapyPacket) -> bytes:
    """The bytes after Scapy layer ``p``, link-layer padding excluded."""
    data = bytes(p.payload)
    pad = p.getlayer(Padding)
    return data[:len(data) - len(pad.load)] if pad is not None else data


#: nfkit header NAME -> (does this Scapy layer hold it?, {nfkit attribute: getter}).
#: The getters cover every declared field (aliases included) and the typed extras
#: (options, segments, optional GRE/GTP-U fields...).
FIELDS: dict[str, tuple[Callable[[ScapyPacket], bool], dict[str, Getter]]] = {
    "Ethernet": (_is(Ether), {"dst": _f("dst"), "src": _f("src"), "ether_type": _inner_type}),
    # VLAN tags are views inside nfkit's Ethernet header: compare() reaches them from there
    "VLAN": (_is(*_VLAN), {"tpid": lambda p: p.underlayer.type, "pcp": _f("prio"),
                           "dei": _f("dei"), "vid": _f("vlan")}),
    "ARP": (_is(ARP), {
        "hardware_type": _f("hwtype"), "protocol_type": _f("ptype"),
        "hardware_addr_len": _f("hwlen"), "protocol_addr_len": _f("plen"),
        "operation": _f("op"), "sender_hw_addr": _f("hwsrc"), "sender_ip": _f("psrc"),
        "target_hw_addr": _f("hwdst"), "target_ip": _f("pdst")}),
    "IPv4": (_is(IP), _IPV4),
    "IPv6": (_is(IPv6), {
        "version": _f("version"), "dscp": lambda p: p.tc >> 2, "ecn": lambda p: p.tc & 3,
        "traffic_class": _f("tc"), "flow_label": _f("fl"), "payload_length": _f("plen"),
        "next_header": _f("nh"), "hop_limit": _f("hlim"), "src": _f("src"), "dst": _f("dst")}),
    "IPv6-Frag": (_is(IPv6ExtHdrFragment), {
        "next_header": _f("nh"), "reserved": _f("res1"), "fragment_offset": _f("offset"),
        "res": _f("res2"), "more_fragments": _f("m"), "identification": _f("id")}),
    "SRH": (_is(IPv6ExtHdrSegmentRouting), {
        "next_header": _f("nh"), "hdr_ext_len": _f("len"), "routing_type": _f("type"),
        "segments_left": _f("segleft"), "last_entry": _f("lastentry"), "flags": _srh_flags,
        "tag": _f("tag"), "segments": _f("addresses"),
        "tlvs": lambda p: b"".join(bytes(t) for t in p.tlv_objects)}),
    "TCP": (_is(TCP), {
        "src_port": _f("sport"), "dst_port": _f("dport"), "seq_no": _f("seq"),
        "ack_no": _f("ack"), "data_offset": _f("dataofs"), "reserved": _f("reserved"),
        "ns": _flag("N"), "cwr": _flag("C"), "ece": _flag("E"), "urg": _flag("U"),
        "ack": _flag("A"), "psh": _flag("P"), "rst": _flag("R"), "syn": _flag("S"),
        "fin": _flag("F"), "flags": lambda p: int(p.flags), "window": _f("window"),
        "checksum": _f("chksum"), "urgent_pointer": _f("urgptr"), "options": _tcp_options}),
    "UDP": (_is(UDP), {"src_port": _f("sport"), "dst_port": _f("dport"), "length": _f("len"),
                       "checksum": _f("chksum")}),
    "GRE": (_is(GRE), {
        "checksum_present": _f("chksum_present"), "routing_present": _f("routing_present"),
        "reserved0": _gre_reserved0,
        "key_present": _f("key_present"), "seq_present": _f("seqnum_present"),
        "version": _f("version"), "protocol_type": _f("proto"),
        "checksum": lambda p: p.chksum if p.chksum_present else None,
        "reserved1": lambda p: p.offset if p.chksum_present else None,
        "key": lambda p: p.key if p.key_present else None,
        "sequence": lambda p: p.sequence_number if p.seqnum_present else None}),
    "VXLAN": (_is(VXLAN), {
        "flags": lambda p: int(p.flags), "vni_valid": _flag("Instance"),
        "reserved": _vxlan_reserved, "vni": _f("vni"), "reserved2": _f("reserved2")}),
    "GTP-U": (_is(GTP_U_Header), {
        "version": _f("version"), "protocol_type": _f("PT"), "spare": _f("reserved"),
        "ext_present": _f("E"), "seq_present": _f("S"), "npdu_present": _f("PN"),
        "message_type": _f("gtp_type"), "length": _f("length"), "teid": _f("teid"),
        "sequence": _gtp_opt("S", "seq"), "npdu_number": _gtp_opt("PN", "npdu"),
        "next_ext_type": lambda p: p.next_ex if (p.E or p.S or p.PN) else None}),
    # ICMPv4: one Scapy class for every type, fields by type
    "ICMPv4": (_icmp4(None), _ICMP_COMMON),
    "ICMPv4 EchoRequest": (_icmp4(8), {**_ICMP_MSG, "identifier": _f("id"), "seq_no": _f("seq")}),
    "ICMPv4 EchoReply": (_icmp4(0), {**_ICMP_MSG, "identifier": _f("id"), "seq_no": _f("seq")}),
    "ICMPv4 DestinationUnreachable": (_icmp4(3), {
        **_ICMP_MSG, "unused": lambda p: p.reserved << 8 | p.length,
        "next_hop_mtu": _f("nexthopmtu")}),
    "ICMPv4 TimeExceeded": (_icmp4(11), {
        **_ICMP_MSG, "unused": lambda p: p.reserved << 24 | p.length << 16 | p.unused}),
    "ICMPv4 Redirect": (_icmp4(5), {**_ICMP_MSG, "gateway": _f("gw")}),
    "ICMPv4 ParameterProblem": (_icmp4(12), {
        **_ICMP_MSG, "pointer": _f("ptr"), "unused": lambda p: p.length << 16 | p.unused}),
    # ICMPv6: a Scapy class per type; the generic nfkit header matches any of them
    "ICMPv6": (_is(_ICMPv6), _ICMP6_COMMON),
    "ICMPv6 EchoRequest": (_is(ICMPv6EchoRequest), _ECHO6),
    "ICMPv6 EchoReply": (_is(ICMPv6EchoReply), _ECHO6),
    "ICMPv6 DestinationUnreachable": (_is(ICMPv6DestUnreach), {
        **_ICMP6_COMMON, "unused": lambda p: p.length << 24 | p.unused,
        "data": _payload_bytes}),
    "ICMPv6 PacketTooBig": (_is(ICMPv6PacketTooBig), {**_ICMP6_COMMON, "mtu": _f("mtu"),
                                                       "data": _payload_bytes}),
    "ICMPv6 TimeExceeded": (_is(ICMPv6TimeExceeded), {
        **_ICMP6_COMMON, "unused": lambda p: p.length << 24 | p.unused,
        "data": _payload_bytes}),
    "ICMPv6 ParameterProblem": (_is(ICMPv6ParamProblem), {
        **_ICMP6_COMMON, "pointer": _f("ptr"), "data": _payload_bytes}),
    "ICMPv6 RouterSolicitation": (_is(ICMPv6ND_RS), {**_ICMP6_COMMON, "reserved": _f("res")}),
    "ICMPv6 RouterAdvertisement": (_is(ICMPv6ND_RA), {
        **_ICMP6_COMMON, "current_hop_limit": _f("chlim"), "managed_addr_cfg": _f("M"),
        "other_cfg": _f("O"), "router_lifetime": _f("routerlifetime"),
        "reachable_time": _f("reachabletime"), "retrans_timer": _f("retranstimer")}),
    "ICMPv6 NeighborSolicitation": (_is(ICMPv6ND_NS), {
        **_ICMP6_COMMON, "reserved": _f("res"), "target": _f("tgt")}),
    "ICMPv6 NeighborAdvertisement": (_is(ICMPv6ND_NA), {
        **_ICMP6_COMMON, "router": _f("R"), "solicited": _f("S"), "override": _f("O"),
        "reserved": _f("res"), "target": _f("tgt")}),
    "ICMPv6 Redirect": (_is(ICMPv6ND_Redirect), {
        **_ICMP6_COMMON, "reserved": _f("res"), "target": _f("tgt"),
        "destination": _f("dst")}),
    # NDP options are views inside nfkit's NDP messages: compare() reaches them from there
    "NDP option": (lambda s: type(s).__name__.startswith("ICMPv6NDOpt"), _OPT),
    "NDP link-layer address": (_is(ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr),
                               {**_OPT, "addr": _f("lladdr")}),
    "NDP prefix information": (_is(ICMPv6NDOptPrefixInfo), {
        **_OPT, "prefix_length": _f("prefixlen"), "on_link": _f("L"), "autonomous": _f("A"),
        "valid_lifetime": _f("validlifetime"), "preferred_lifetime": _f("preferredlifetime"),
        "reserved": _f("res2"), "prefix": _f("prefix")}),
    "NDP MTU": (_is(ICMPv6NDOptMTU), {**_OPT, "reserved": _f("res"), "mtu": _f("mtu")}),
    "NDP redirected header": (_is(ICMPv6NDOptRedirectedHdr), {
        **_OPT, "reserved": lambda p: int.from_bytes(bytes(p.res), "big")}),
}

#: nfkit classes that are not headers of their own (abstract bases)
ABSTRACT = frozenset({"packet"})


def unmapped(classes: Iterable[type]) -> list[str]:
    """``Header`` and ``Header.field`` names the oracle has no mapping for."""
    out = []
    for cls in classes:
        if cls.NAME in ABSTRACT:
            continue
        if cls.NAME not in FIELDS:
            out.append(cls.NAME)
            continue
        getters = FIELDS[cls.NAME][1]
        out += [f"{cls.NAME}.{f.name}" for f in cls.ALL_FIELDS if f.name not in getters]
    return out


def norm(v: Any) -> Any:
    """Compare addresses as addresses, flags as bools, bytes as bytes, the rest as ints."""
    if isinstance(v, MacAddr):
        return str(v).lower()
    if v is None or isinstance(v, (bool, bytes, IPv4Address, IPv6Address)):
        return v
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, str):
        try:
            return ip_address(v)
        except ValueError:
            return v.lower()
    return int(v)  # ints, enums, Scapy's FlagValue


def layers_of(sp: ScapyPacket) -> list[ScapyPacket]:
    """Scapy's layers in order, without the raw payload and padding at the end."""
    out = []
    layer = sp
    while not isinstance(layer, (NoPayload, Raw, Padding)):
        out.append(layer)
        layer = layer.payload
    return out


def _check_fields(layer: Any, slayer: ScapyPacket, where: str) -> None:
    name = layer.NAME
    if name not in FIELDS:
        raise AssertionError(f"the oracle has no mapping for nfkit's {name} header")
    _, getters = FIELDS[name]
    missing = [f.name for f in type(layer).ALL_FIELDS if f.name not in getters]
    assert not missing, f"the oracle has no mapping for {name} field(s) {missing}"
    for fname, get in getters.items():
        ours, theirs = norm(getattr(layer, fname)), norm(get(slayer))
        assert ours == theirs, f"{where}{name}.{fname}: nfkit {ours!r} != Scapy {theirs!r}"


def _matches(layer: Any, slayer: ScapyPacket | None) -> bool:
    return slayer is not None and FIELDS[layer.NAME][0](slayer)


def match(nf_layers: list[Any], sp: ScapyPacket) -> list[int]:
    """For each nfkit layer, the index of the Scapy layer (in :func:`layers_of`) holding it.

    Layers follow each other one for one, except that Scapy has separate layers for what
    nfkit keeps inside one header: VLAN tags (Ethernet), GTP-U extension headers, NDP
    options.  A layer without a mapping or in the wrong place is an AssertionError."""
    sl = layers_of(sp)
    out = []
    j = 0
    for layer in nf_layers:
        name = layer.NAME
        if name not in FIELDS:
            raise AssertionError(f"the oracle has no mapping for nfkit's {name} header")
        here = sl[j] if j < len(sl) else None
        assert _matches(layer, here), (
            f"nfkit layer {len(out)} is {name}, Scapy's is "
            f"{type(here).__name__ if here is not None else 'nothing'} in {sp!r}")
        out.append(j)
        j += 1
        while j < len(sl) and isinstance(sl[j], (*_VLAN, GTP_ExtensionHeader,
                                                 GTPPDUSessionContainer)):
            j += 1
        if name.startswith("ICMPv6 ") and hasattr(layer, "options"):
            while j < len(sl) and type(sl[j]).__name__.startswith("ICMPv6NDOpt"):
                j += 1
    return out


def compare(nf_layers: list[Any], raw: bytes) -> None:
    """Every field of every nfkit layer (and of the views inside them: VLAN tags, NDP
    options, GTP-U extension headers) equals what Scapy dissects from ``raw``."""
    sp = Ether(raw)
    sl = layers_of(sp)
    for i, (layer, j) in enumerate(zip(nf_layers, match(nf_layers, sp))):
        slayer = sl[j]
        _check_fields(layer, slayer, f"layer {i}: ")
        if layer.NAME == "Ethernet":
            tags = layer.vlans
            stags = sl[j + 1:j + 1 + len(tags)]
            assert len(stags) == len(tags) and all(isinstance(t, _VLAN) for t in stags), (
                f"nfkit sees {len(tags)} VLAN tags, Scapy {stags!r}")
            for tag, stag in zip(tags, stags):
                _check_fields(tag, stag, f"layer {i} VLAN: ")
        elif layer.NAME == "GTP-U":
            exts = []
            k = j + 1
            t = slayer.next_ex if slayer.E else 0
            while t and k < len(sl) and isinstance(sl[k], (GTP_ExtensionHeader,
                                                             GTPPDUSessionContainer)):
                hdr = _header_only(sl[k])
                exts.append((t, hdr[1:-1]))
                t = hdr[-1]
                k += 1
            assert layer.extensions == exts, f"GTP-U extensions: nfkit {layer.extensions} != Scapy {exts}"
        elif hasattr(layer, "options") and layer.NAME.startswith("ICMPv6 "):
            opts = layer.options()
            sopts = sl[j + 1:j + 1 + len(opts)]
            assert len(sopts) == len(opts), f"NDP options: nfkit {opts}, Scapy {sopts!r}"
            for o, so in zip(opts, sopts):
                assert FIELDS[o.NAME][0](so), f"NDP option {o.NAME} where Scapy has {so!r}"
                _check_fields(o, so, f"layer {i} option: ")


def scapy_fields(nf_layers: list[Any], raw: bytes) -> dict[str, Any]:
    """Every mapped field of every nfkit layer as Scapy reads it from ``raw``, keyed
    ``"index:Header.field"`` (VLAN tags ``"index:VLANk.field"``, NDP options
    ``"index:optk.field"``).  Two of these, before and after a setter, say what it changed."""
    sp = Ether(raw)
    sl = layers_of(sp)
    out: dict[str, Any] = {}

    def put(key: str, nf: Any, slayer: ScapyPacket) -> None:
        for fname, get in FIELDS[nf.NAME][1].items():
            out[f"{key}.{fname}"] = norm(get(slayer))

    for i, (layer, j) in enumerate(zip(nf_layers, match(nf_layers, sp))):
        put(f"{i}:{layer.NAME}", layer, sl[j])
        if layer.NAME == "Ethernet":
            for k, tag in enumerate(layer.vlans):
                put(f"{i}:VLAN{k}", tag, sl[j + 1 + k])
        elif hasattr(layer, "options") and layer.NAME.startswith("ICMPv6 "):
            for k, o in enumerate(layer.options()):
                put(f"{i}:opt{k}", o, sl[j + 1 + k])
    return out


# -- checksums --------------------------------------------------------------------------

def _checksum_layers(sp: ScapyPacket) -> list[tuple[int, ScapyPacket, str]]:
    """``(index, layer, field name)`` of every checksum Scapy would recompute in ``sp``
    (in :func:`layers_of` order), stopping at a packet quoted by an ICMP error."""
    out = []
    for i, layer in enumerate(layers_of(sp)):
        if isinstance(layer, _QUOTED):
            break
        for fname in ("chksum", "cksum"):
            if fname not in layer.fields:  # conditional fields (GRE's) absent: skipped
                continue
            if isinstance(layer, UDP) and layer.chksum == 0 and isinstance(layer.underlayer, IP):
                continue  # UDP over IPv4 without a checksum: 0 is right
            out.append((i, layer, fname))
    return out


_scapy_pseudoheader = _inet6.in6_pseudoheader


def _srh_pseudoheader(nh: int, u: ScapyPacket, plen: int) -> Any:
    """Scapy's pseudo-header, with nfkit's reading of RFC 8200 8.1 for a Segment Routing
    Header: its segments[0] is the final destination whatever segments_left says.  Scapy,
    like Linux, takes the IPv6 destination once segments_left is 0; the two agree for every
    packet whose destination is its last segment by then (see docs/packets.md)."""
    ph6 = _scapy_pseudoheader(nh, u, plen)
    layer = u
    while ph6 is not None and layer is not None and not isinstance(layer, IPv6):
        if isinstance(layer, IPv6ExtHdrSegmentRouting) and layer.addresses:
            ph6.dst = layer.addresses[0]
            break
        layer = layer.underlayer
    return ph6


@contextmanager
def _nfkit_srh_rule() -> Iterator[None]:
    _inet6.in6_pseudoheader = _srh_pseudoheader
    try:
        yield
    finally:
        _inet6.in6_pseudoheader = _scapy_pseudoheader


def recomputed(raw: bytes, keep: Iterable[int] = ()) -> bytes:
    """The frame as Scapy rebuilds it with every checksum recomputed, except those of the
    Scapy layers at the indices in ``keep`` (see :func:`match`).  Lengths are left as
    they are: a frame whose lengths are wrong is compared with :func:`compare`."""
    sp = Ether(raw)
    keep = set(keep)
    for i, layer, fname in _checksum_layers(sp):
        if i not in keep:
            delattr(layer, fname)  # Packet.__delattr__ also drops Scapy's cached bytes
    with _nfkit_srh_rule():
        return bytes(sp)


def bad_checksums(raw: bytes, keep: Iterable[int] = ()) -> list[str]:
    """``Layer.field stored != computed`` for every checksum Scapy finds wrong."""
    again = Ether(recomputed(raw, keep))
    out = []
    for (i, layer, fname), (_, good, _) in zip(_checksum_layers(Ether(raw)), _checksum_layers(again)):
        a, b = getattr(layer, fname), getattr(good, fname)
        if a != b:
            out.append(f"{i}:{type(layer).__name__}.{fname} {a:#06x} != {b:#06x}")
    return out
