"""BatchView's burst classification -- both versions, numpy and compiled -- against a plain
per-frame reference written from the documented rules, on every cut and on single-byte
changes of template frames built with Scapy.

The hypothesis tests in test_vector_view.py compare columns with the per-packet API on
generated packets; mutation testing showed that left the classification's edges untested
(a frame cut exactly at a header's end, a total length of 256 or more, a QinQ tag type, a
routing header followed by another extension header, ICMP validity...).  Every edge is a
cut length or a header byte, so trying them all is cheap (about 10,000 frames).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import (ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrSegmentRouting)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from nfkit import Mbuf, Mempool
from nfkit.vector import BatchView, _classify, view
from nfkit.testing import skips

VLAN = (0x8100, 0x88A8, 0x9100)
EXT = (0, 43, 60, 44)
MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def template_frames() -> list[bytes]:
    big = b"x" * 300                                  # lengths >= 256 use both length bytes
    e = Ether(**MAC)
    frames = [
        e / IP(options=[IPOption_NOP()] * 4, flags="MF") / TCP(options=[("MSS", 1460)]) / big,
        e / Dot1Q(vlan=1) / IP(flags=0, frag=0x1234, id=1) / UDP() / b"frag",
        e / IP(flags="DF", frag=0) / UDP() / b"u",
        e / IP(len=0) / TCP() / b"tso",                # total length 0: up to the frame's end
        e / Dot1AD(vlan=3) / Dot1Q(vlan=4) / IPv6() / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrSegmentRouting(addresses=["2001:db8::1"]) / IPv6ExtHdrDestOpt() / TCP() / big,
        Ether(type=0x9100, **MAC) / Dot1Q(vlan=4) / IPv6() / IPv6ExtHdrFragment(offset=0, m=1) / UDP() / b"f",
        e / IPv6() / IPv6ExtHdrFragment(offset=5) / UDP() / b"later",
        e / IPv6(plen=0) / UDP() / b"jumbo-ish",
        e / IP() / ICMP() / b"ping",
        e / IPv6() / ICMPv6EchoRequest() / b"ping",
        e / ARP(),
        e / Dot1Q(vlan=9) / ARP(),                     # cut at 18 bytes: a tag and its type, no more
        e / IP(proto=253),                             # headers that end exactly at the frame's end
        e / IPv6(nh=59),
        e / IPv6() / IPv6ExtHdrHopByHop(nh=59),
        e / IP(len=0, options=[IPOption_NOP()] * 8) / UDP(),   # options the cuts end inside
        e / IP() / TCP() / (b"y" * 10),                # room for some data offsets, not all
    ]
    pad = b"\x00" * 24                                 # lengths that end inside the next header
    frames += [e / IP(len=20 + 7) / UDP() / pad, e / IP(len=20 + 19) / TCP() / pad,
               e / IPv6(plen=7) / UDP() / pad, e / IPv6(plen=19) / TCP() / pad,
               e / IPv6(plen=4) / IPv6ExtHdrHopByHop() / UDP() / pad]
    routed = e / IPv6()
    for _ in range(8):                                 # the ninth header, routing, is unwalked
        routed = routed / IPv6ExtHdrDestOpt()
    frames.append(routed / IPv6ExtHdrSegmentRouting(addresses=["2001:db8::1"]) / TCP())
    chain = e / IPv6()
    for _ in range(9):                                 # a chain longer than the 8 walked
        chain = chain / IPv6ExtHdrDestOpt()
    frames.append(chain / TCP())
    for tags in (4, 5):                               # as many tags as are walked, one more
        tagged = Ether(**MAC)
        for v in range(tags):
            tagged = tagged / Dot1Q(vlan=v)
        frames.append(tagged / IP() / UDP())
    return [bytes(f) for f in frames]


def variants(t: bytes) -> list[bytes]:
    """Every cut of ``t``, and single-byte changes of its first 120 bytes past the MACs."""
    out = [t[:k] for k in range(len(t) + 1)]
    for p in range(12, min(len(t), 120)):
        for v in {0, 0xFF, t[p] ^ 0x01, t[p] ^ 0x10, t[p] ^ 0x80, (t[p] + 1) & 0xFF}:
            out.append(t[:p] + bytes([v]) + t[p + 1:])
    return out


def be16(f: bytes, p: int) -> int:
    return (f[p] << 8) | f[p + 1]


def reference(f: bytes) -> dict[str, Any]:
    """What the classification must find in frame ``f`` (None where it is undefined)."""
    n = len(f)
    r: dict[str, Any] = dict(eth_valid=False, ether_type=None, ipv4_valid=False, ipv6_valid=False,
                             l3=None, l3_end=None, l4=None, l4_proto=None, ipv6_routing=None,
                             tcp_valid=False, udp_valid=False, icmpv4_valid=False, icmpv6_valid=False)
    if n < 14:
        return r
    off, et = 12, be16(f, 12)
    for _ in range(4):                       # up to four tags, each needing its type field
        if et not in VLAN or n < off + 6:
            break
        off += 4
        et = be16(f, off)
    if et in VLAN:
        return r
    l3 = off + 2
    r.update(eth_valid=True, ether_type=et)
    routing = False
    if et == 0x0800 and n >= l3 + 20:
        vi, tl = f[l3], be16(f, l3 + 2)
        ihl = (vi & 0x0F) * 4
        if not (vi >> 4 == 4 and ihl >= 20 and l3 + ihl <= n and (tl == 0 or (ihl <= tl and l3 + tl <= n))):
            return r
        v4, end, proto, l4 = True, (l3 + tl if tl else n), f[l3 + 9], l3 + ihl
        initial = be16(f, l3 + 6) & 0x1FFF == 0
    elif et == 0x86DD and n >= l3 + 40:
        pl = be16(f, l3 + 4)
        if not (f[l3] >> 4 == 6 and (pl == 0 or l3 + 40 + pl <= n)):
            return r
        v4, end, proto, l4, initial = False, (l3 + 40 + pl if pl else n), f[l3 + 6], l3 + 40, True
        for _ in range(8):
            if proto not in EXT or l4 + 8 > end:
                break
            if proto == 44:
                initial &= be16(f, l4 + 2) & 0xFFF8 == 0
                size = 8
            else:
                routing |= proto == 43
                size = (f[l4 + 1] + 1) * 8
            proto, l4 = f[l4], l4 + size
    else:
        return r
    r.update(ipv4_valid=v4, ipv6_valid=not v4, l3=l3, l3_end=end, ipv6_routing=routing, l4_proto=-1)
    if not initial or (not v4 and proto in EXT) or l4 > end:
        return r                              # no transport header: a later fragment, or cut
    avail = end - l4
    r.update(l4=l4, l4_proto=proto,
             tcp_valid=proto == 6 and avail >= 20 and 20 <= (f[l4 + 12] >> 4) * 4 <= avail,
             udp_valid=proto == 17 and avail >= 8,
             icmpv4_valid=v4 and proto == 1 and avail >= 4,
             icmpv6_valid=not v4 and proto == 58 and avail >= 4)
    return r


def classified(frames: list[bytes], compiled: bool) -> list[dict[str, Any]]:
    old = view.COMPILED
    view.COMPILED = compiled
    try:
        pool = Mempool(capacity=len(frames))
        slots = np.array([Mbuf.from_bytes(f, pool).slot for f in frames], dtype=np.int64)
        b = BatchView(pool, slots)
        for k in ("eth_valid", "ipv4_valid", "ipv6_valid", "ipv6_routing", "tcp_valid", "udp_valid",
                  "icmpv4_valid", "icmpv6_valid"):
            assert getattr(b, k).dtype == np.bool_, k
        for k in ("ether_type", "l3", "l3_end", "l4", "l4_proto"):
            assert getattr(b, k).dtype == np.int64, k
        cols = {k: getattr(b, k).tolist() for k in ("eth_valid", "ether_type", "ipv4_valid",
                                                    "ipv6_valid", "l3", "l3_end", "l4", "l4_proto",
                                                    "ipv6_routing", "tcp_valid", "udp_valid",
                                                    "icmpv4_valid", "icmpv6_valid")}
    finally:
        view.COMPILED = old
    return [{k: v[i] for k, v in cols.items()} for i in range(len(frames))]


def defined(got: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """``got`` with the entries the reference leaves undefined (None) left out."""
    return {k: v for k, v in got.items() if want[k] is not None}


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "compiled"])
def test_classification_on_every_cut_and_byte_change(compiled: bool) -> None:
    if compiled:
        skips.need(_classify.AVAILABLE, "numba is not installed: no compiled classification",
                   "pip install 'nfkit[jit]'")
    frames = [v for t in template_frames() for v in variants(t)]
    got = classified(frames, compiled)
    for f, g in zip(frames, got):
        want = reference(f)
        assert defined(g, want) == {k: v for k, v in want.items() if v is not None}, f.hex()


def test_templates_reach_every_kind() -> None:
    """The templates themselves classify as meant (the reference is not vacuous)."""
    kinds = [reference(t) for t in template_frames()]
    assert sum(k["tcp_valid"] for k in kinds) == 4 and sum(k["udp_valid"] for k in kinds) == 5
    assert [k["icmpv4_valid"] or k["icmpv6_valid"] for k in kinds].count(True) == 2
    assert sum(bool(k["ipv6_routing"]) for k in kinds) == 1
    assert [k["l4_proto"] for k in kinds].count(-1) == 5     # later fragments, long or cut chains
    assert [k["eth_valid"] for k in kinds].count(False) == 1  # five tags
    arp = [t for t in template_frames() if t[16:18] == b"\x08\x06"][0]
    assert reference(arp[:18])["eth_valid"] and not reference(arp[:17])["eth_valid"]


def test_reads_past_the_pool_are_clipped() -> None:
    """A header length pointing past the last buffer of the pool reads nothing out of bounds
    (a hop-by-hop header claiming 2 KiB in a 70-byte frame, in the pool's only buffer)."""
    f = bytes(Ether(**MAC) / IPv6() / IPv6ExtHdrHopByHop() / TCP())
    f = f[:55] + bytes([255]) + f[56:]                  # hop-by-hop length: 256 * 8 bytes
    for compiled in (False, True):
        (g,) = classified([f], compiled)
        assert g["ipv6_valid"] and g["l4_proto"] == -1 and not g["tcp_valid"]
