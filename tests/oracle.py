"""Scapy as an independent oracle: field mappings from nfkit headers to Scapy layers.

This is test code: it says how to read the same field out of Scapy, which knows nothing of
nfkit's declarations.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any, Callable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet as ScapyPacket

Getter = Callable[[ScapyPacket], Any]


def _inner_type(p: ScapyPacket) -> int:
    """nfkit's ether_type is VLAN-aware: the type after the last tag."""
    t = p.type
    layer = p.payload
    while isinstance(layer, (Dot1Q, Dot1AD)):
        t = layer.type
        layer = layer.payload
    return t


def _flag(name: str) -> Getter:
    return lambda p: bool(getattr(p.flags, name))


#: nfkit header name -> (Scapy layer, {nfkit field: getter on the Scapy layer})
FIELDS: dict[str, tuple[type[ScapyPacket], dict[str, Getter]]] = {
    "Ethernet": (Ether, {"dst": lambda p: p.dst, "src": lambda p: p.src,
                         "ether_type": _inner_type}),
    "IPv4": (IP, {
        "version": lambda p: p.version, "ihl": lambda p: p.ihl, "dscp": lambda p: p.tos >> 2,
        "ecn": lambda p: p.tos & 3, "total_length": lambda p: p.len, "identification": lambda p: p.id,
        "reserved_flag": _flag("evil"), "dont_fragment": _flag("DF"), "more_fragments": _flag("MF"),
        "fragment_offset": lambda p: p.frag, "ttl": lambda p: p.ttl, "protocol": lambda p: p.proto,
        "checksum": lambda p: p.chksum, "src": lambda p: p.src, "dst": lambda p: p.dst}),
    "IPv6": (IPv6, {
        "version": lambda p: p.version, "dscp": lambda p: p.tc >> 2, "ecn": lambda p: p.tc & 3,
        "flow_label": lambda p: p.fl, "payload_length": lambda p: p.plen,
        "next_header": lambda p: p.nh, "hop_limit": lambda p: p.hlim,
        "src": lambda p: p.src, "dst": lambda p: p.dst}),
    "TCP": (TCP, {
        "src_port": lambda p: p.sport, "dst_port": lambda p: p.dport, "seq_no": lambda p: p.seq,
        "ack_no": lambda p: p.ack, "data_offset": lambda p: p.dataofs,
        "reserved": lambda p: p.reserved, "ns": _flag("N"), "cwr": _flag("C"), "ece": _flag("E"),
        "urg": _flag("U"), "ack": _flag("A"), "psh": _flag("P"), "rst": _flag("R"),
        "syn": _flag("S"), "fin": _flag("F"), "window": lambda p: p.window,
        "checksum": lambda p: p.chksum, "urgent_pointer": lambda p: p.urgptr}),
    "UDP": (UDP, {"src_port": lambda p: p.sport, "dst_port": lambda p: p.dport,
                  "length": lambda p: p.len, "checksum": lambda p: p.chksum}),
}


def norm(v: Any) -> Any:
    """Compare addresses as text, flags as bools, everything else as ints."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return int(v)
    try:
        return ip_address(str(v))
    except ValueError:
        return str(v).lower()


def recomputed(raw: bytes) -> bytes:
    """The frame as Scapy rebuilds it with every checksum (and length) recomputed."""
    p = Ether(raw)
    layer = p
    while layer is not None and not isinstance(layer, type(None)):
        for fname in ("chksum", "cksum"):
            if fname in layer.fields:
                del layer.fields[fname]
        layer = layer.payload if layer.payload else None
    return bytes(p)


def compare(nf_layers: list[Any], raw: bytes) -> None:
    """Every field of every nfkit layer equals what Scapy dissects from ``raw``."""
    sp = Ether(raw)
    for layer in nf_layers:
        name = layer.NAME
        if name not in FIELDS:
            continue
        scls, getters = FIELDS[name]
        assert scls in sp, f"Scapy did not find {scls.__name__} in {sp!r}"
        slayer = sp[scls]
        for fname, get in getters.items():
            ours, theirs = norm(getattr(layer, fname)), norm(get(slayer))
            assert ours == theirs, f"{name}.{fname}: nfkit {ours!r} != Scapy {theirs!r}"
