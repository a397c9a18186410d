"""A whole batch of packets seen as numpy columns, over the same mempool memory.

``BatchView(pool, slots)`` classifies a batch once (:mod:`._classify`, into the pool's
per-slot metadata) -- where each packet's Ethernet type, L3 and L4 headers start, through
VLAN tags, IPv4 options and IPv6 extension headers -- and then exposes every declared header
field as a column::

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
A view describes the packets as they were when it was made.  In a pipeline the burst is
classified by its first vector stage and the next vector stages reuse that classification,
until a stage may have changed packet structure: a per-packet stage, a kernel not declared
``restructures=False``, or a column write of a field the classification reads.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..buffers import CLASSIFICATION, Mempool
from ..errors import FieldValueError
from ..packets.constants import MAX_IPV6_EXT, MAX_VLAN_TAGS  # noqa: F401 - re-exported (acl)
from . import _classify
from ..packets import Ethernet, Icmpv4, Icmpv6, Ipv4, Ipv6, Tcp, Udp
from ..packets.base import Packet
from ..packets.fields import Field

__all__ = ["BatchView", "HeaderColumns"]

_M = 0xFFFF
_RECORD = CLASSIFICATION.names
#: classify bursts in one compiled pass when numba is there (False: the numpy version)
COMPILED = True


class BatchView:
    """Columns over the packets ``slots`` of ``pool`` (see the module docstring).

    ``records``: these packets' current classification (a pipeline's burst that nothing
    restructured since it was classified, ``SlotBatch.records``), used instead of
    classifying again; the view's own are :attr:`records`.  The classification's columns are
    attributes: ``base``, ``ether_type_off``, ``ether_type``, ``l3``, ``l3_end``, ``l4``,
    ``l4_proto``, ``eth_valid``, ``ipv4_valid``, ``ipv6_valid``, ``ipv6_routing``,
    ``tcp_valid``, ``udp_valid``, ``icmpv4_valid``, ``icmpv6_valid`` (see
    :data:`nfkit.buffers.CLASSIFICATION`).  The view's own column writes of a
    field the classification reads (an Ethernet type, an IP header or total length, a next
    header, a TCP data offset...) set :attr:`restructured`; so does :meth:`invalidate`."""

    def __init__(self, pool: Mempool, slots: np.ndarray, records: np.ndarray | None = None) -> None:
        self.pool = pool
        self.slots = s = np.asarray(slots, dtype=np.int64)
        self.n = len(s)
        self.flat = pool.data.reshape(-1)
        self._cols: dict[str, HeaderColumns] = {}
        #: True once this view changed what the classification found (see the class doc)
        self.restructured = False
        #: the classification, a CLASSIFICATION record per packet
        self.records = rec = _classify.classify(pool, s, COMPILED) if records is None else records
        # the columns (l3, l4, tcp_valid...) are views of the records, bound here: ~1 us for
        # all, where a lazy __getattr__ cost ~0.7 us per column used (measured)
        d = self.__dict__
        for name in _RECORD:
            d[name] = rec[name]

    def __getattr__(self, name: str) -> Any:
        """Only reached for a name that is not there (the columns are plain attributes)."""
        raise AttributeError(f"BatchView has no attribute {name!r}")

    def invalidate(self) -> None:
        """Say that this stage changed packet structure by other means than column writes
        (raw bytes through :attr:`flat`, per-packet calls on the slots): the next stage
        classifies the burst again."""
        self.restructured = True

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
        if _structural(self._cls, f):
            v.restructured = True       # the burst's classification no longer holds
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


@functools.lru_cache(maxsize=None)
def _structural(cls: type[Packet], f: Field) -> bool:
    """Whether field ``f`` of ``cls`` covers a bit the classification reads."""
    read = _classify.STRUCTURAL.get(cls.NAME, {})
    mask = f.mask if f.is_masked else (1 << 8 * f.width) - 1
    last = f.offset + f.width - 1
    return any(f.offset <= b <= last and (mask >> 8 * (last - b)) & bits
               for b, bits in read.items())


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
