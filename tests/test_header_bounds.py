"""Structural fields cannot be set to values that break their header's bounds (issue #11).

Every header length, offset, count and layout flag is set to every value of its range (or
its edges) on packets placed at the very end of the pool's memory, so that a read past a
packet shows (as a short read or an IndexError) instead of reading the next buffer.  A
setter either refuses the value with a FieldValueError, leaving the bytes as they were, or
takes it; then every header still lies inside its packet and every read of every header
either works or raises a ParseError.
"""

from __future__ import annotations

from typing import Any

import pytest
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6ND_NS, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr, IPv6,
                                IPv6ExtHdrSegmentRouting, IPv6ExtHdrSegmentRoutingTLVPadN)
from scapy.layers.l2 import ARP, GRE, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from nfkit import FieldValueError, Mbuf, ParseError
from nfkit.packets import Ethernet, Ipv6, SegmentRouting
from nfkit.packets.dissect import dissect
from test_fuzz import at_end_of_pool

L2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = IP(src="192.0.2.1", dst="192.0.2.2")
V6 = IPv6(src="2001:db8::1", dst="2001:db8::2")

FRAMES = {
    "ipv4-tcp-options": L2 / IP(src="192.0.2.1", dst="192.0.2.2", options=b"\x01\x01\x01\x00")
    / TCP(sport=1, dport=2, options=[("MSS", 1460), ("NOP", None), ("WScale", 7)]) / b"data",
    "srh-tlv": L2 / V6 / IPv6ExtHdrSegmentRouting(
        addresses=["2001:db8::a", "2001:db8::b", "2001:db8::c"], segleft=2,
        tlv_objects=[IPv6ExtHdrSegmentRoutingTLVPadN(len=4, padding=b"\0" * 4)])
    / TCP(sport=1, dport=2) / b"x",
    "gre-all-options": L2 / V4 / GRE(chksum_present=1, key_present=1, key=7, seqnum_present=1,
                                     sequence_number=9) / IP(src="10.0.0.1", dst="10.0.0.2")
    / UDP(sport=1, dport=2) / b"in gre",
    "gtpu-ext": L2 / V4 / UDP(sport=2152, dport=2152)
    / GTP_U_Header(teid=5, S=1, seq=3, E=1, next_ex=0x85) / GTPPDUSessionContainer(type=1, QFI=9)
    / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2) / b"gtp",
    "vxlan-vlan-arp": L2 / V4 / UDP(sport=5, dport=4789) / VXLAN(vni=3) / L2 / Dot1Q(vlan=7)
    / ARP(psrc="10.0.0.1", pdst="10.0.0.2"),
    "ndp": L2 / V6 / ICMPv6ND_NS(tgt="2001:db8::9") / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    / ICMPv6NDOptPrefixInfo(prefix="2001:db8::", prefixlen=64),
}


def structural_fields(p: Any) -> list[Any]:
    """The fields that say where something is: lengths, header lengths, offsets, counts,
    layout flags (structural, bounded, or derived other than a checksum)."""
    return [f for f in type(p).ALL_FIELDS if not f.alias and f.kind in ("int", "flag")
            and (f.structural or getattr(f, "bounded", False)
                 or (f.derived and f.name != "checksum"))]


def values(f: Any, current: Any) -> list[int]:
    if f.max <= 0xFF:
        return list(range(f.max + 1))
    c = int(current)
    return sorted({0, 1, 2, 3, 4, 7, 8, 20, 40, 60, 255, 256, f.max - 1, f.max,
                   max(c - 1, 0), min(c + 1, f.max)})


READS = ("fields", "summary", "payload", "header_bytes", "options", "option_list", "segments",
         "tlvs", "segment_count", "extensions", "key", "sequence", "checksum", "reserved1",
         "npdu_number", "next_ext_type", "vlans", "checksum_ok", "compute_checksum", "flow",
         "data", "dst", "src")


def read_everything(m: Mbuf, layers: list[Any]) -> None:
    """Every header lies inside the packet; every read works or raises a ParseError."""
    end = m._abs + m.data_len
    for p in layers:
        assert m._abs <= p._abs and p._abs + p._hlen <= p._end <= end, (p.NAME, p._hlen)
        repr(p)
        for name in READS:
            if getattr(type(p), name, None) is None:
                continue
            try:
                v = getattr(p, name)
                v = v() if callable(v) else v
            except ParseError:
                continue
            if name == "options" and isinstance(v, bytes):
                assert len(v) == p.header_len - p.SIZE      # not cut short by the pool's end
            if name == "segments":
                assert len(v) == p.segment_count and p.header_len >= 8 + 16 * len(v)
    d, err = dissect(m)
    assert err is None or isinstance(err, ParseError)


@pytest.mark.parametrize("name", list(FRAMES))
def test_structural_fields_keep_every_header_inside_its_packet(name: str) -> None:
    raw = bytes(FRAMES[name])
    n = len(dissect(at_end_of_pool(raw))[0])
    for i in range(n):
        probe = at_end_of_pool(raw)
        layer = dissect(probe)[0][i]
        for f in structural_fields(layer):
            for v in values(f, getattr(layer, f.name)):
                m = at_end_of_pool(raw)
                layers = dissect(m)[0]
                p = layers[i]
                before = m.to_bytes()
                try:
                    setattr(p, f.name, v)
                except FieldValueError:
                    assert m.to_bytes() == before, f"{p.NAME}.{f.name} = {v} refused but wrote"
                    read_everything(m, layers)
                    continue
                except AttributeError:
                    break                      # read-only (GTP-U next_ext_type)
                try:
                    read_everything(m, layers[:i + 1])
                except AssertionError as exc:
                    raise AssertionError(f"{name}: {p.NAME}.{f.name} = {v}: {exc}") from exc


def test_srh_last_entry_cannot_point_past_the_header() -> None:
    """The issue's example: last_entry 255 made ``segments`` read 4 KB past the header."""
    raw = bytes(FRAMES["srh-tlv"])
    m = at_end_of_pool(raw)
    srh = m.parse(Ethernet).parse(Ipv6).parse(SegmentRouting)
    for bad in (3, 4, 100, 255):
        with pytest.raises(FieldValueError, match="last_entry"):
            srh.last_entry = bad
    with pytest.raises(FieldValueError, match="hdr_ext_len"):
        srh.hdr_ext_len = 5                  # 3 segments need 6
    with pytest.raises(FieldValueError, match="hdr_ext_len"):
        srh.hdr_ext_len = 10                 # past the packet
    assert m.to_bytes() == raw
    srh.last_entry = 1                       # fewer segments: the rest reads as TLVs
    assert len(srh.segments) == 2 and len(srh.tlvs) == 16 + 8
    # a raw write behind the setters' back is caught on read, not read past
    m.write_data(54 + 4, b"\xff")
    with pytest.raises(ParseError, match="last_entry 255 runs past"):
        srh.segments
    assert "segments=<" in repr(srh)
