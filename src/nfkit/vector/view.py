"""A whole batch of packets seen as numpy columns, over the same mempool memory.

``BatchView(pool, slots)`` classifies a batch once, vectorized -- where each packet's
Ethernet type, L3 and L4 headers start, through VLAN tags, IPv4 options and IPv6 extension
headers -- and then exposes every declared header field as a column::

    b = BatchView(pool, slots)
    b.eth.src, b.eth.dst = b.eth.dst, b.eth.src     # uint64 columns (48-bit MACs)
    keep = b.ipv4.ttl > 1
    b.ipv4.ttl -= 1                                  # header checksums follow, vectorized
    b.udp.dst_port                                   # uint16 column, 0 where not UDP
    b.udp.valid                                      # which packets carry UDP

The columns come from the same :class:`~nfkit.packets.fields.Field` declarations as the
per-packet accessors: a field's ``(offset, width, mask)`` is a gather at the per-packet
header offset.  Reading gives a full-length array (0 where the packet lacks the header,
see ``.valid``); assigning writes only packets that carry the header and keeps the
covering checksums valid incrementally (the header's own, and for IP addresses the
TCP/UDP/ICMPv6 checksum through the pseudo-header), as the per-packet setters do.

Nothing is copied: a per-packet stage that follows sees the bytes a vector stage wrote.
A view describes the packets as they were when it was made; a per-packet stage that
resizes packets makes the next vector stage build a fresh view.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..buffers import Mempool
from ..errors import FieldValueError
from . import _classify
from ..packets import Ethernet, Icmpv4, Icmpv6, Ipv4, Ipv6, Tcp, Udp
from ..packets.base import Packet
from ..packets.fields import Field

__all__ = ["BatchView", "HeaderColumns"]

_M = 0xFFFF
_L3_ATTRS = frozenset({"ipv4_valid", "ipv6_valid", "l3_end", "_ihl", "_v4_fo"})
_L4_ATTRS = frozenset({"l4", "l4_proto", "ipv6_routing", "tcp_valid", "udp_valid", "icmpv4_valid",
                       "icmpv6_valid"})
MAX_VLAN_TAGS = 4
MAX_IPV6_EXT = 8
#: classify bursts in one compiled pass when numba is there (False: the numpy version)
COMPILED = True


class BatchView:
    """Columns over the packets ``slots`` of ``pool`` (see the module docstring)."""

    def __init__(self, pool: Mempool, slots: np.ndarray) -> None:
        self.pool = pool
        self.slots = s = np.asarray(slots, dtype=np.int64)
        self.n = len(s)
        self.flat = pool.data.reshape(-1)
        self._cols: dict[str, HeaderColumns] = {}
        if COMPILED and _classify.AVAILABLE:
            # one compiled pass instead of tens of numpy calls (same results)
            (self.base, self.length, self.eth_valid, self.ether_type_off, self.ether_type,
             self.l3, self.ipv4_valid, self.ipv6_valid, self.l3_end, self._ihl, self._v4_fo,
             self.l4, self.l4_proto, self.ipv6_routing, self.tcp_valid, self.udp_valid,
             self.icmpv4_valid, self.icmpv6_valid) = _classify.classify(
                pool.data, s, pool.data_off, pool.data_len, pool.stride)
            self._l3_done = self._l4_done = True
            return
        self.base = s * pool.stride + pool.data_off[s].astype(np.int64)
        self.length = pool.data_len[s].astype(np.int64)
        self._classify()

    # -- raw access -------------------------------------------------------------------
    def gather(self, pos: np.ndarray, width: int) -> np.ndarray:
        """Bytes ``[pos, pos + width)`` of every packet as an (n, width) uint8 array
        (positions are absolute; out-of-range positions are clipped, mask them)."""
        idx = pos[:, None] + np.arange(width, dtype=np.int64)
        return self.flat.take(idx, mode="clip")

    def u8(self, rel: np.ndarray) -> np.ndarray:
        """Each packet's byte at ``rel`` (per packet, from its start) as int64 (reads past the data are clipped)."""
        return self.flat.take(self.base + rel, mode="clip").astype(np.int64)

    def u16(self, rel: np.ndarray) -> np.ndarray:
        """Each packet's big-endian 16-bit word at ``rel`` as int64."""
        b = self.gather(self.base + rel, 2).astype(np.int64)
        return (b[:, 0] << 8) | b[:, 1]

    # -- classification (lazy: an L2-only stage pays only for L2) ---------------------
    def _is_vlan(self, et: np.ndarray) -> np.ndarray:
        return (et == 0x8100) | (et == 0x88A8) | (et == 0x9100)

    def _classify(self) -> None:
        ln = self.length
        has_eth = ln >= 14
        et_off = np.full(self.n, 12, dtype=np.int64)
        et = np.where(has_eth, self.u16(et_off), -1)
        tag = self._is_vlan(et)
        for _ in range(MAX_VLAN_TAGS):
            tag &= ln >= et_off + 6       # the next type field fits
            if not tag.any():
                break
            et_off = np.where(tag, et_off + 4, et_off)
            et = np.where(tag, self.u16(et_off), et)
            tag = self._is_vlan(et)
        # a tag that runs past the frame makes the frame unusable as Ethernet + payload
        self.eth_valid = has_eth & ~self._is_vlan(et)
        self.ether_type_off = et_off
        self.ether_type = np.where(self.eth_valid, et, -1)
        self.l3 = et_off + 2
        self._l3_done = self._l4_done = False

    def _classify_l3(self) -> None:
        if self._l3_done:
            return
        self._l3_done = True
        ln = self.length
        l3 = self.l3
        vi = self.u8(l3)
        b = self.gather(self.base + l3, 8).astype(np.int64)
        tl = (b[:, 2] << 8) | b[:, 3]                 # IPv4 total length
        pl = (b[:, 4] << 8) | b[:, 5]                 # IPv6 payload length
        self._v4_fo = ((b[:, 6] << 8) | b[:, 7]) & 0x1FFF
        ihl = (vi & 0x0F) * 4
        self._ihl = ihl
        et = self.ether_type
        self.ipv4_valid = (et == 0x0800) & (ln >= l3 + 20) & (vi >> 4 == 4) & (ihl >= 20) \
            & (l3 + ihl <= ln) & ((tl == 0) | ((tl >= ihl) & (l3 + tl <= ln)))
        self.ipv6_valid = (et == 0x86DD) & (ln >= l3 + 40) & (vi >> 4 == 6) \
            & ((pl == 0) | (l3 + 40 + pl <= ln))
        self.l3_end = np.where(self.ipv4_valid & (tl > 0), l3 + tl,
                               np.where(self.ipv6_valid & (pl > 0), l3 + 40 + pl, ln))

    def _classify_l4(self) -> None:
        if self._l4_done:
            return
        self._classify_l3()
        self._l4_done = True
        l3, l3_end = self.l3, self.l3_end
        v4, v6 = self.ipv4_valid, self.ipv6_valid
        # transport: IPv4 directly; IPv6 after walking the extension headers
        proto = np.where(v4, self.u8(l3 + 9), np.where(v6, self.u8(l3 + 6), -1))
        l4 = np.where(v4, l3 + self._ihl, l3 + 40)
        initial = np.where(v4, self._v4_fo == 0, True)
        routing = np.zeros(self.n, dtype=bool)
        for _ in range(MAX_IPV6_EXT):
            ext = v6 & ((proto == 0) | (proto == 43) | (proto == 60) | (proto == 44)) \
                & (l4 + 8 <= l3_end)
            if not ext.any():
                break
            frag = ext & (proto == 44)
            size = np.where(frag, 8, (self.u8(l4 + 1) + 1) * 8)
            initial &= ~(frag & ((self.u16(l4 + 2) & 0xFFF8) != 0))
            routing |= ext & (proto == 43)
            nxt = self.u8(l4)
            proto = np.where(ext, nxt, proto)
            l4 = np.where(ext, l4 + size, l4)
        # an extension chain left unfinished (too long or cut) has no transport header
        unfinished = v6 & ((proto == 0) | (proto == 43) | (proto == 60) | (proto == 44))
        ip = (v4 | v6) & initial & ~unfinished & (l4 <= l3_end)
        self.l4 = l4
        self.l4_proto = np.where(ip, proto, -1)
        self.ipv6_routing = routing
        avail = l3_end - l4
        tcp_hlen = (self.u8(l4 + 12) >> 4) * 4
        self.tcp_valid = ip & (proto == 6) & (avail >= 20) & (tcp_hlen >= 20) & (tcp_hlen <= avail)
        self.udp_valid = ip & (proto == 17) & (avail >= 8)
        self.icmpv4_valid = ip & v4 & (proto == 1) & (avail >= 4)
        self.icmpv6_valid = ip & v6 & (proto == 58) & (avail >= 4)

    def __getattr__(self, name: str) -> Any:
        """Classification results computed on first use."""
        if name in _L3_ATTRS:
            self._classify_l3()
            return self.__dict__[name]
        if name in _L4_ATTRS:
            self._classify_l4()
            return self.__dict__[name]
        raise AttributeError(f"BatchView has no attribute {name!r}")

    # -- header columns ---------------------------------------------------------------
    def _columns(self, name: str, cls: type[Packet], rel: np.ndarray, valid: np.ndarray) -> "HeaderColumns":
        c = self._cols.get(name)
        if c is None:
            c = self._cols[name] = HeaderColumns(self, cls, rel, valid)
        return c

    @property
    def eth(self) -> "HeaderColumns":
        """The Ethernet header's fields as columns (``valid``: frames long enough for one)."""
        return self._columns("eth", Ethernet, np.zeros(self.n, dtype=np.int64), self.eth_valid)

    @property
    def ipv4(self) -> "HeaderColumns":
        """The IPv4 header's fields as columns, zeros where a packet has none (``valid`` says which)."""
        return self._columns("ipv4", Ipv4, self.l3, self.ipv4_valid)

    @property
    def ipv6(self) -> "HeaderColumns":
        """The IPv6 header's fields as columns, zeros where a packet has none."""
        return self._columns("ipv6", Ipv6, self.l3, self.ipv6_valid)

    @property
    def tcp(self) -> "HeaderColumns":
        """The TCP header's fields as columns, zeros where a packet has none."""
        return self._columns("tcp", Tcp, self.l4, self.tcp_valid)

    @property
    def udp(self) -> "HeaderColumns":
        """The UDP header's fields as columns, zeros where a packet has none."""
        return self._columns("udp", Udp, self.l4, self.udp_valid)

    @property
    def icmpv4(self) -> "HeaderColumns":
        """The ICMPv4 header's fields as columns, zeros where a packet has none."""
        return self._columns("icmpv4", Icmpv4, self.l4, self.icmpv4_valid)

    @property
    def icmpv6(self) -> "HeaderColumns":
        """The ICMPv6 header's fields as columns, zeros where a packet has none."""
        return self._columns("icmpv6", Icmpv6, self.l4, self.icmpv6_valid)

    # -- whole-batch operations ---------------------------------------------------------
    @property
    def src_port(self) -> np.ndarray:
        """TCP or UDP source port (0 for other packets)."""
        return np.where(self.tcp_valid, self.tcp.src_port, self.udp.src_port)

    @property
    def dst_port(self) -> np.ndarray:
        """The TCP or UDP destination port of each packet, 0 for the others."""
        return np.where(self.tcp_valid, self.tcp.dst_port, self.udp.dst_port)

    def flow_hash(self, key: bytes | None = None) -> np.ndarray:
        """The RSS (Toeplitz) hash of every packet, as a NIC computes it: over addresses
        and ports for TCP/UDP, over addresses for other IP packets; 0 for non-IP.  With a
        symmetric key (:func:`~nfkit.vector.hash.symmetric_key`) both directions agree."""
        from .hash import DEFAULT_RSS_KEY, rss_hash_ipv4, rss_hash_ipv6
        key = key or DEFAULT_RSS_KEY
        out = np.zeros(self.n, dtype=np.uint32)
        ports = self.tcp_valid | self.udp_valid
        sp, dp = self.src_port, self.dst_port
        for fam, valid in ((4, self.ipv4_valid), (6, self.ipv6_valid)):
            cols = self.ipv4 if fam == 4 else self.ipv6
            h = rss_hash_ipv4 if fam == 4 else rss_hash_ipv6
            for with_ports in (True, False):
                rows = valid & (ports if with_ports else ~ports)
                if not rows.any():
                    continue
                src, dst = cols.src[rows], cols.dst[rows]
                out[rows] = (h(src, dst, sp[rows], dp[rows], key=key) if with_ports
                             else h(src, dst, key=key))
        return out

    def decrement_ttl(self) -> np.ndarray:
        """Decrement the IPv4 TTL / IPv6 hop limit of every IP packet (checksums follow);
        returns the keep mask: False for IP packets whose TTL was 0 or 1 (left unchanged:
        a router drops them), True for the rest."""
        v4 = self.ipv4
        v6 = self.ipv6
        ttl = v4.ttl.astype(np.int64)
        hl = v6.hop_limit.astype(np.int64)
        live4 = self.ipv4_valid & (ttl > 1)
        live6 = self.ipv6_valid & (hl > 1)
        v4.set("ttl", ttl - 1, where=live4)
        v6.set("hop_limit", hl - 1, where=live6)
        return ~((self.ipv4_valid & ~live4) | (self.ipv6_valid & ~live6))

    def __len__(self) -> int:
        return self.n


class HeaderColumns:
    """The fields of one header type across a batch (``b.ipv4``, ``b.tcp``, ...)."""

    def __init__(self, view: BatchView, cls: type[Packet], rel: np.ndarray, valid: np.ndarray) -> None:
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "_rel", rel)
        object.__setattr__(self, "valid", valid)
        object.__setattr__(self, "_fields", {f.name: f for f in cls.ALL_FIELDS})

    @property
    def offset(self) -> np.ndarray:
        """Where the header starts in each packet."""
        return self._rel

    def _field(self, name: str) -> Field:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"{self._cls.NAME} has no field {name!r}; fields: "
                                 f"{', '.join(self._fields)}") from None

    def _pos(self, f: Field) -> np.ndarray:
        v = self._view
        if self._cls is Ethernet and f.name == "ether_type":
            return v.base + v.ether_type_off          # VLAN-aware, as the per-packet property
        return v.base + self._rel + f.offset

    def _raw(self, f: Field) -> np.ndarray:
        """The field's bytes as unsigned ints (uint64; IPv6 addresses: (n, 16) uint8)."""
        b = self._view.gather(self._pos(f), f.width)
        if f.kind == "ipv6":
            return b
        w = f.width
        if w in (1, 2, 4, 8):
            return b.view(f">u{w}").reshape(-1).astype(np.uint64)
        pad = np.zeros((len(b), 8 - w), dtype=np.uint8)
        return np.concatenate([pad, b], axis=1).view(">u8").reshape(-1).astype(np.uint64)

    def get(self, name: str) -> np.ndarray:
        """The column of field ``name``: one value per packet, zeros where the header is absent."""
        f = self._field(name)
        raw = self._raw(f)
        valid = self.valid
        if f.kind == "ipv6":
            return np.where(valid[:, None], raw, 0).astype(np.uint8)
        if f.is_masked:
            raw = (raw & np.uint64(f.mask)) >> np.uint64(f.shift)
        raw = np.where(valid, raw, 0)
        if f.kind == "flag":
            return raw.astype(bool)
        bits = f.bits if f.is_masked else 8 * f.width
        dtype = np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64
        return raw.astype(dtype)

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value)

    # -- writing ----------------------------------------------------------------------
    def set(self, name: str, value: Any, where: np.ndarray | None = None) -> None:
        """Write ``value`` (a scalar or a column) into field ``name`` of every packet that
        carries this header (and, if given, where ``where`` is True), keeping checksums
        valid."""
        f = self._field(name)
        v = self._view
        mask = self.valid if where is None else self.valid & where
        if not mask.any():
            return
        pos = self._pos(f)[mask]
        w = f.width
        if f.kind == "ipv6":
            new_bytes = np.broadcast_to(_as_ipv6(value), (v.n, 16))[mask]
        else:
            vals = _as_int(value, f, v.n)[mask]
            if len(vals) and (vals.min() < 0 or vals.max() > f.max):
                raise FieldValueError(f"{self._cls.NAME}.{name}: values must be in 0..{f.max}")
            if f.bounded:
                self._bound(f, vals, mask)
            vals = vals.astype(np.uint64)
            old_bytes = v.gather(pos, w)
            if f.is_masked:
                old = _bytes_to_u64(old_bytes)
                new = (old & np.uint64(~f.mask & ((1 << (8 * w)) - 1))) | (vals << np.uint64(f.shift))
            else:
                new = vals
            new_bytes = _u64_to_bytes(new, w)
        # checksum bookkeeping: sums of the aligned 16-bit words the field touches
        hdr_start = v.base[mask] + self._rel[mask]
        fix_own = self._cls.CHECKSUM is not None and f.offset != self._cls.CHECKSUM
        if fix_own or f.pseudo:
            w0 = (pos - hdr_start) & ~1
            span = ((pos - hdr_start) + w + 1) & ~1
            nwords = int((span - w0).max())
            old_sum = _word_sum(v, hdr_start + w0, nwords)
        idx = pos[:, None] + np.arange(w, dtype=np.int64)
        # rows whose bytes change: as the per-packet setter, a write of the value already
        # there leaves the header's checksum alone ((HC - 0) % 0xFFFF would turn a stored
        # 0xFFFF into 0, wrong for an all-zero ICMPv4 message)
        changed = (v.flat[idx] != new_bytes).any(axis=1)
        v.flat[idx] = new_bytes
        if fix_own or f.pseudo:
            delta = _word_sum(v, hdr_start + w0, nwords) - old_sum
            if fix_own and changed.any():
                _fix_checksum(v, (hdr_start + self._cls.CHECKSUM)[changed], delta[changed],
                              self._cls.CHECKSUM_ZERO_MEANS_NONE)
            if f.pseudo:
                self._fix_transport(mask, delta, f)

    def _bound(self, f: Field, words: np.ndarray, mask: np.ndarray) -> None:
        """Refuse header lengths (IPv4 IHL, TCP data offset, in 32-bit words) that the
        per-packet setter refuses: the header must hold its fixed part and end inside its IP
        packet.  Checked before any write, so a refused column writes nothing."""
        if self._cls not in (Ipv4, Tcp):      # the only bounded fields of these headers
            raise NotImplementedError(f"no column bound for {self._cls.NAME}.{f.name}")
        v = self._view
        room = (v.l3_end - self._rel)[mask]
        bad = (words * 4 < self._cls.SIZE) | (words * 4 > room)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FieldValueError(f"{self._cls.NAME}.{f.name}: {int(words[i])} words "
                                  f"({int(words[i]) * 4} bytes) in packet {int(np.flatnonzero(mask)[i])}; "
                                  f"it needs {self._cls.SIZE} to {int(room[i])} there (set options instead)")

    def _fix_transport(self, mask: np.ndarray, delta: np.ndarray, f: Field) -> None:
        """An IP address changed: the TCP/UDP/ICMPv6 checksum covers it (pseudo-header)."""
        v = self._view
        sel = np.flatnonzero(mask)
        proto = v.l4_proto[sel]
        skip = np.zeros(len(sel), dtype=bool)
        if self._cls is Ipv6 and f.offset == 24:
            skip = v.ipv6_routing[sel]       # a routing header holds the final destination
        for p, off, zero_none, valid in ((6, 16, False, v.tcp_valid), (17, 6, True, v.udp_valid),
                                         (58, 2, False, v.icmpv6_valid)):
            m = (proto == p) & valid[sel] & ~skip
            if m.any():
                rows = sel[m]
                _fix_checksum(v, v.base[rows] + v.l4[rows] + off, delta[m], zero_none)

    # -- operations -------------------------------------------------------------------
    def swap_addresses(self) -> None:
        """Ethernet only: exchange source and destination MACs of every frame."""
        if self._cls is not Ethernet:
            raise AttributeError(f"{self._cls.NAME} columns have no swap_addresses")
        v = self._view
        pos = v.base[self.valid]
        idx = pos[:, None] + np.arange(12, dtype=np.int64)
        b = v.flat[idx]
        v.flat[idx] = np.concatenate([b[:, 6:], b[:, :6]], axis=1)

    def __repr__(self) -> str:
        return f"<{self._cls.NAME} columns: {int(self.valid.sum())} of {self._view.n} packets>"


def _as_int(value: Any, f: Field, n: int) -> np.ndarray:
    """``value`` as an int64 column of ``n`` (uint64 for 64-bit fields)."""
    if f.kind == "mac" and not isinstance(value, np.ndarray):
        from ..net import to_mac
        value = int.from_bytes(to_mac(value), "big")
    elif f.kind == "ipv4" and not isinstance(value, np.ndarray):
        from ..net import to_ipv4
        value = to_ipv4(value)
    arr = np.asarray(value)
    if f.width < 8 or arr.dtype.kind in "bi":
        arr = arr.astype(np.int64)
    return np.broadcast_to(arr, (n,))


def _as_ipv6(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.uint8)
    from ..net import to_ipv6
    return np.frombuffer(to_ipv6(value), dtype=np.uint8)


def _bytes_to_u64(b: np.ndarray) -> np.ndarray:
    w = b.shape[1]
    pad = np.zeros((len(b), 8 - w), dtype=np.uint8)
    return np.concatenate([pad, b], axis=1).view(">u8").reshape(-1).astype(np.uint64)


def _u64_to_bytes(v: np.ndarray, w: int) -> np.ndarray:
    return v.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - w:]


def _word_sum(v: BatchView, start: np.ndarray, nwords: int) -> np.ndarray:
    """Sum of ``nwords`` big-endian 16-bit words from each ``start`` (int64)."""
    b = v.gather(start, 2 * nwords).astype(np.int64)
    return ((b[:, 0::2] << 8) | b[:, 1::2]).sum(axis=1)


def _fix_checksum(v: BatchView, pos: np.ndarray, delta: np.ndarray, zero_means_none: bool) -> None:
    """Checksums at ``pos`` change by minus ``delta`` (ones'-complement, modular form)."""
    idx = pos[:, None] + np.arange(2, dtype=np.int64)
    b = v.flat[idx].astype(np.int64)
    hc = (b[:, 0] << 8) | b[:, 1]
    new = (hc - delta) % _M
    if zero_means_none:
        new = np.where(hc == 0, 0, np.where(new == 0, _M, new))  # 0: no checksum, keep it
    v.flat[idx] = np.stack([new >> 8, new & 0xFF], axis=1).astype(np.uint8)
