"""Classify a burst once: where each packet's headers start, as one record per packet.

One walk, :func:`walk_py` -- Ethernet type after VLAN tags, the IPv4/IPv6 header checks, the
IPv6 extension chain, the transport header -- compiled for the burst classifier
(:func:`classify`: a :data:`~nfkit.buffers.CLASSIFICATION` record per packet, kept with the
burst and, for kernels that read it, in the pool's per-slot ``pool.meta``).  The numpy
twin :func:`classify_numpy` does the same with array calls, for machines without numba; the
tests hold the two equal, record for record.  Header sizes, TPIDs and the extension-header
set come from :mod:`nfkit.packets.constants`, as in the per-packet parsers.

Every record field is defined for every packet (the tests compare them all):
``ether_type`` is -1 unless the frame is Ethernet past its tags; ``l3_end`` is the frame's
end, ``l4`` equal to ``l3`` and ``l4_proto`` -1 unless the packet is valid IPv4/IPv6.
"""

from __future__ import annotations

import numpy as np

from .. import _accel
from ..buffers import CLASSIFICATION, Mempool
from ..packets.constants import (ETH_HLEN, ICMP_MIN_HLEN, IPV4_MIN_HLEN, IPV6_EXT_UNIT,
                                 IPV6_EXTENSION_HEADERS, IPV6_HLEN, MAX_IPV6_EXT, MAX_VLAN_TAGS,
                                 TCP_MIN_HLEN, UDP_HLEN, VLAN_TAG_LEN, VLAN_TPIDS, EtherType,
                                 IpProtocol)

__all__ = ["AVAILABLE", "classify", "classify_numpy", "walk_py", "ETH", "V4", "V6", "ROUTING",
           "TCP", "UDP", "ICMP4", "ICMP6", "STRUCTURAL"]

AVAILABLE = _accel.AVAILABLE

#: the flag bits :func:`walk_py` returns
ETH, V4, V6, ROUTING, TCP, UDP, ICMP4, ICMP6 = 1, 2, 4, 8, 16, 32, 64, 128
_FLAG_FIELDS = ("eth_valid", "ipv4_valid", "ipv6_valid", "ipv6_routing", "tcp_valid", "udp_valid",
                "icmpv4_valid", "icmpv6_valid")

#: The header bits the walk reads, by header name, as {byte offset: bit mask}: a column
#: write that changes one of them changes the packet's structure, so the burst's
#: classification no longer holds (a TTL, an address, a port, the IPv4 DF/MF flags do not).
STRUCTURAL = {"Ethernet": {12: 0xFF, 13: 0xFF},                 # the type (after the tags)
              "IPv4": {0: 0xFF, 2: 0xFF, 3: 0xFF, 6: 0x1F, 7: 0xFF, 9: 0xFF},
              "IPv6": {0: 0xF0, 4: 0xFF, 5: 0xFF, 6: 0xFF},     # version, payload length, next
              "TCP": {12: 0xF0}}                                # the data offset

_IPV4, _IPV6 = int(EtherType.IPV4), int(EtherType.IPV6)
_FRAG, _ROUTE = int(IpProtocol.IPV6_FRAG), int(IpProtocol.IPV6_ROUTE)
_TCP, _UDP, _ICMP, _ICMPV6 = (int(IpProtocol.TCP), int(IpProtocol.UDP), int(IpProtocol.ICMP),
                              int(IpProtocol.ICMPV6))
_TYPE_AT = ETH_HLEN - 2          # where the (first) type field is


def walk_py(data, s, o, ln):  # noqa: ANN001, ANN201
    """Classify the frame ``data[s, o:o + ln]``; every read is bounded by ``ln``.  Returns
    ``(ether_type_off, ether_type, l3, l3_end, l4, l4_proto, flags)``."""
    i64 = np.int64
    ln = i64(ln)
    o = i64(o)
    if ln < ETH_HLEN:
        return i64(_TYPE_AT), i64(-1), i64(ETH_HLEN), ln, i64(ETH_HLEN), i64(-1), 0
    et_off = i64(_TYPE_AT)
    p = o + et_off
    et = (i64(data[s, p]) << 8) | i64(data[s, p + 1])
    for _ in range(MAX_VLAN_TAGS):
        if et not in VLAN_TPIDS or ln < et_off + VLAN_TAG_LEN + 2:   # the next type must fit
            break
        et_off += VLAN_TAG_LEN
        p = o + et_off
        et = (i64(data[s, p]) << 8) | i64(data[s, p + 1])
    l3 = et_off + 2
    if et in VLAN_TPIDS:            # tags run past the frame (or too many): not Ethernet + payload
        return et_off, i64(-1), l3, ln, l3, i64(-1), 0
    a = o + l3
    end = ln
    ihl = i64(0)
    fo = i64(0)
    flags = ETH
    if et == _IPV4 and ln >= l3 + IPV4_MIN_HLEN:
        vi = i64(data[s, a])
        hl = (vi & 0x0F) * 4
        tl = (i64(data[s, a + 2]) << 8) | i64(data[s, a + 3])
        if (vi >> 4) == 4 and hl >= IPV4_MIN_HLEN and l3 + hl <= ln \
                and (tl == 0 or (tl >= hl and l3 + tl <= ln)):
            flags |= V4
            ihl = hl
            fo = ((i64(data[s, a + 6]) << 8) | i64(data[s, a + 7])) & 0x1FFF
            end = l3 + tl if tl > 0 else ln
    elif et == _IPV6 and ln >= l3 + IPV6_HLEN:
        pl = (i64(data[s, a + 4]) << 8) | i64(data[s, a + 5])
        if (i64(data[s, a]) >> 4) == 6 and (pl == 0 or l3 + IPV6_HLEN + pl <= ln):
            flags |= V6
            end = l3 + IPV6_HLEN + pl if pl > 0 else ln
    if flags == ETH:
        return et_off, et, l3, ln, l3, i64(-1), flags
    if flags & V4:
        proto = i64(data[s, a + 9])
        l4 = l3 + ihl
        initial = fo == 0
        unfinished = False
    else:
        proto = i64(data[s, a + 6])
        l4 = l3 + IPV6_HLEN
        initial = True
        for _ in range(MAX_IPV6_EXT):
            if proto not in IPV6_EXTENSION_HEADERS or l4 + IPV6_EXT_UNIT > end:
                break
            p = o + l4
            if proto == _FRAG:
                size = i64(IPV6_EXT_UNIT)
                if ((i64(data[s, p + 2]) << 8) | i64(data[s, p + 3])) & 0xFFF8:
                    initial = False
            else:
                size = (i64(data[s, p + 1]) + 1) * IPV6_EXT_UNIT
                if proto == _ROUTE:
                    flags |= ROUTING
            proto = i64(data[s, p])
            l4 += size
        unfinished = proto in IPV6_EXTENSION_HEADERS    # too long or cut: no transport header
    if not initial or unfinished or l4 > end:
        return et_off, et, l3, end, l4, i64(-1), flags
    avail = end - l4
    if proto == _TCP and avail >= TCP_MIN_HLEN:
        thl = (i64(data[s, o + l4 + 12]) >> 4) * 4
        if thl >= TCP_MIN_HLEN and thl <= avail:
            flags |= TCP
    elif proto == _UDP and avail >= UDP_HLEN:
        flags |= UDP
    elif proto == _ICMP and flags & V4 and avail >= ICMP_MIN_HLEN:
        flags |= ICMP4
    elif proto == _ICMPV6 and flags & V6 and avail >= ICMP_MIN_HLEN:
        flags |= ICMP6
    return et_off, et, l3, end, l4, proto, flags


def _classify_py(data, slots, data_off, data_len, stride, out):  # noqa: ANN001, ANN202
    """Per packet ``i`` of ``slots``: :func:`walk_py` into ``out[i]``."""
    for i in range(slots.shape[0]):
        s = slots[i]
        o = np.int64(data_off[s])
        r = out[i]
        r["base"] = np.int64(s) * stride + o
        et_off, et, l3, end, l4, proto, flags = walk_py(data, s, o, data_len[s])
        r["ether_type_off"] = et_off
        r["ether_type"] = et
        r["l3"] = l3
        r["l3_end"] = end
        r["l4"] = l4
        r["l4_proto"] = proto
        r["eth_valid"] = (flags & ETH) != 0
        r["ipv4_valid"] = (flags & V4) != 0
        r["ipv6_valid"] = (flags & V6) != 0
        r["ipv6_routing"] = (flags & ROUTING) != 0
        r["tcp_valid"] = (flags & TCP) != 0
        r["udp_valid"] = (flags & UDP) != 0
        r["icmpv4_valid"] = (flags & ICMP4) != 0
        r["icmpv6_valid"] = (flags & ICMP6) != 0

if AVAILABLE:  # pragma: no branch
    import numba

    _walk = numba.njit(cache=True, nogil=True)(walk_py)
    _classify_nb = numba.njit(cache=True, nogil=True)(
        # the same Python function, calling the compiled walk
        type(_classify_py)(_classify_py.__code__, {**_classify_py.__globals__, "walk_py": _walk},
                           "_classify_nb"))
else:  # pragma: no cover
    _classify_nb = None


def classify(pool: Mempool, slots: np.ndarray, compiled: bool = True, store: bool = False) -> np.ndarray:
    """The classification of the packets ``slots`` (int64) of ``pool``: a
    :data:`~nfkit.buffers.CLASSIFICATION` record per packet, in one compiled pass when numba
    is there (``compiled``), else by :func:`classify_numpy`.  ``store``: also into the pool's
    per-slot metadata, ``pool.meta[slots]`` (what ``classified=True`` kernels read).

    Not stored by default: the records travel with the burst (``SlotBatch.records``), and
    writing every burst's records into ``pool.meta`` made the router's vector stage 6% slower
    (cold cache lines: its route table evicts them; measured, batch 256)."""
    if compiled and AVAILABLE:
        out = np.empty(len(slots), dtype=CLASSIFICATION)
        _classify_nb(pool.data, slots, pool.data_off, pool.data_len, pool.stride, out)
    else:
        out = classify_numpy(pool, slots)
    if store:
        pool.meta[slots] = out
    return out


def classify_numpy(pool: Mempool, slots: np.ndarray) -> np.ndarray:
    """:func:`walk_py` for a whole burst in numpy array calls (tens of them: the compiled
    pass is several times faster); the same records."""
    n = len(slots)
    flat = pool.data.reshape(-1)
    base = slots * pool.stride + pool.data_off[slots].astype(np.int64)
    ln = pool.data_len[slots].astype(np.int64)

    def u8(rel: np.ndarray) -> np.ndarray:          # out-of-range reads are clipped, then masked
        return flat.take(base + rel, mode="clip").astype(np.int64)

    def u16(rel: np.ndarray) -> np.ndarray:
        return (u8(rel) << 8) | u8(rel + 1)

    tpids = np.array(VLAN_TPIDS)
    exts = np.array(IPV6_EXTENSION_HEADERS)
    has_eth = ln >= ETH_HLEN
    et_off = np.full(n, _TYPE_AT, dtype=np.int64)
    et = np.where(has_eth, u16(et_off), -1)
    tag = np.isin(et, tpids)
    for _ in range(MAX_VLAN_TAGS):
        tag &= ln >= et_off + VLAN_TAG_LEN + 2
        if not tag.any():
            break
        et_off = np.where(tag, et_off + VLAN_TAG_LEN, et_off)
        et = np.where(tag, u16(et_off), et)
        tag = np.isin(et, tpids)
    eth = has_eth & ~np.isin(et, tpids)
    et = np.where(eth, et, -1)
    l3 = et_off + 2
    vi = u8(l3)
    hl = (vi & 0x0F) * 4
    tl = u16(l3 + 2)
    pl = u16(l3 + 4)
    v4 = (et == _IPV4) & (ln >= l3 + IPV4_MIN_HLEN) & (vi >> 4 == 4) & (hl >= IPV4_MIN_HLEN) \
        & (l3 + hl <= ln) & ((tl == 0) | ((tl >= hl) & (l3 + tl <= ln)))
    v6 = (et == _IPV6) & (ln >= l3 + IPV6_HLEN) & (vi >> 4 == 6) \
        & ((pl == 0) | (l3 + IPV6_HLEN + pl <= ln))
    ihl = np.where(v4, hl, 0)
    fo = np.where(v4, u16(l3 + 6) & 0x1FFF, 0)
    end = np.where(v4 & (tl > 0), l3 + tl, np.where(v6 & (pl > 0), l3 + IPV6_HLEN + pl, ln))
    ip = v4 | v6
    proto = np.where(v4, u8(l3 + 9), np.where(v6, u8(l3 + 6), -1))
    l4 = np.where(v4, l3 + ihl, np.where(v6, l3 + IPV6_HLEN, l3))
    initial = ~v4 | (fo == 0)
    routing = np.zeros(n, dtype=bool)
    for _ in range(MAX_IPV6_EXT):
        ext = v6 & np.isin(proto, exts) & (l4 + IPV6_EXT_UNIT <= end)
        if not ext.any():
            break
        frag = ext & (proto == _FRAG)
        size = np.where(frag, IPV6_EXT_UNIT, (u8(l4 + 1) + 1) * IPV6_EXT_UNIT)
        initial &= ~(frag & ((u16(l4 + 2) & 0xFFF8) != 0))
        routing |= ext & (proto == _ROUTE)
        proto = np.where(ext, u8(l4), proto)
        l4 = np.where(ext, l4 + size, l4)
    transport = ip & initial & ~(v6 & np.isin(proto, exts)) & (l4 <= end)
    proto = np.where(transport, proto, -1)
    avail = end - l4
    thl = (u8(l4 + 12) >> 4) * 4
    rec = np.empty(n, dtype=CLASSIFICATION)
    for name, col in (("base", base), ("ether_type_off", et_off), ("ether_type", et),
                      ("l3", l3), ("l3_end", end), ("l4", l4), ("l4_proto", proto), ("eth_valid", eth),
                      ("ipv4_valid", v4), ("ipv6_valid", v6), ("ipv6_routing", routing),
                      ("tcp_valid", (proto == _TCP) & (avail >= TCP_MIN_HLEN) & (thl >= TCP_MIN_HLEN)
                       & (thl <= avail)),
                      ("udp_valid", (proto == _UDP) & (avail >= UDP_HLEN)),
                      ("icmpv4_valid", v4 & (proto == _ICMP) & (avail >= ICMP_MIN_HLEN)),
                      ("icmpv6_valid", v6 & (proto == _ICMPV6) & (avail >= ICMP_MIN_HLEN))):
        rec[name] = col
    return rec
