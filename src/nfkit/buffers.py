"""Packet buffers: one :class:`Mempool` of numpy arrays, and the light :class:`Mbuf` handle.

A mempool owns a single ``uint8`` array of shape ``(capacity, headroom + buf_size)`` -- every
packet buffer is one row -- plus one numpy array per slot attribute (``data_off``,
``data_len``, ``refcnt``, ``port``, ``rss_hash``, ``timestamp``) and a free stack.  The
same memory is reachable two ways with no copy:

* per packet, through :class:`Mbuf` handles and the typed headers of :mod:`nfkit.packets`,
  which read and write through flat ``memoryview`` s (a Python int per access, no numpy
  scalar overhead);
* per batch, through the numpy arrays themselves: ``pool.data[slots, pool.data_off[slots] + k]``
  gathers byte ``k`` of every packet of a batch at once.

The buffer memory is an anonymous shared ``mmap``, so worker processes forked later see the
same pool.  A fresh buffer starts ``headroom`` bytes into its row; growing a packet near its
front uses the headroom (DPDK-style prepend), near its back the tailroom.
"""

from __future__ import annotations

import mmap
from typing import IO, TYPE_CHECKING, Iterable, Sequence, TypeVar

import numpy as np

from . import _accel
from .errors import (BadOffset, DoubleFree, MempoolExhausted, OutOfBuffer, ProtocolMismatch,
                     TruncatedError)
from .packets.base import KEY_OUTERMOST

_new = object.__new__

if TYPE_CHECKING:  # pragma: no cover
    from .packets.base import Packet

    P = TypeVar("P", bound=Packet)

__all__ = ["Mempool", "Mbuf", "default_pool", "set_default_pool", "NO_TIMESTAMP", "CLASSIFICATION"]


#: ``Mempool.timestamp`` of a buffer no driver stamped: the largest ``uint64`` (year 2554),
#: which no source produces (capture readers clamp below it); writers stamp such a packet
#: with the time they write it.  0 is a real time (1970-01-01), never "not set".
NO_TIMESTAMP = (1 << 64) - 1

#: The classification record of a packet: where its headers start and what they are
#: (offsets from the packet start; ``base`` is the packet's first byte in the flat pool).
#: Computed once per burst by :mod:`nfkit.vector._classify` (VPP and DPDK keep such offsets
#: in buffer metadata too); a burst carries its records (``SlotBatch.records``), and
#: ``Mempool.meta`` holds them per slot for kernels that read them (``classified=True``).
#: Valid only while nothing restructured the packet (see :class:`nfkit.slots.SlotBatch`):
#: buffers do not track it themselves.  int64 offsets: the columns BatchView hands out are
#: views of it, with no conversion; 64 bytes, one cache line a slot (88 bytes, two lines,
#: made a vector stage's burst 2-3 us slower, measured).
CLASSIFICATION = np.dtype(
    [(n, np.int64) for n in ("base", "ether_type_off", "ether_type", "l3", "l3_end", "l4",
                             "l4_proto")]
    + [(n, np.bool_) for n in ("eth_valid", "ipv4_valid", "ipv6_valid", "ipv6_routing",
                               "tcp_valid", "udp_valid", "icmpv4_valid", "icmpv6_valid")])


class Mempool:
    """A fixed-size pool of packet buffers backed by numpy arrays.

    ``capacity`` buffers of ``buf_size`` data bytes each, with ``headroom`` extra bytes in
    front of every buffer for prepending headers.  capsule (after DPDK) defaults to
    65535 buffers of 2048 + 128 bytes; so does nfkit.  The memory is mapped lazily, so an
    unused pool costs address space, not RAM.
    """

    def __init__(self, capacity: int = 65535, buf_size: int = 2048, headroom: int = 128,
                 name: str | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"mempool capacity must be at least 1, got {capacity}")
        if buf_size < 64:
            raise ValueError(f"mempool buf_size must be at least 64 bytes, got {buf_size}")
        if headroom < 0:
            raise ValueError(f"mempool headroom cannot be negative, got {headroom}")
        self.name = name or f"mempool{id(self):x}"
        self.capacity = capacity
        self.buf_size = buf_size
        self.headroom = headroom
        #: bytes per row: headroom + data room
        self.stride = stride = headroom + buf_size
        self._mem = mmap.mmap(-1, capacity * stride)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            # Transparent huge pages, where the kernel offers them: fewer TLB misses when a
            # batch touches many buffers (DPDK uses hugepages for the same reason).
            try:
                self._mem.madvise(mmap.MADV_HUGEPAGE)
            except OSError:
                pass
        #: every buffer, one row each: ``data[slot, data_off[slot] : data_off[slot] + data_len[slot]]``
        self.data = np.frombuffer(self._mem, dtype=np.uint8).reshape(capacity, stride)
        #: where each packet starts inside its row
        self.data_off = np.full(capacity, headroom, dtype=np.uint32)
        #: packet length of each slot
        self.data_len = np.zeros(capacity, dtype=np.uint32)
        #: 1 while a slot is allocated, 0 while free (double-free detection)
        self.refcnt = np.zeros(capacity, dtype=np.uint8)
        #: receive port id, RSS hash and receive timestamp (ns), filled by drivers; a
        #: buffer nothing stamped holds NO_TIMESTAMP (not 0: 1970-01-01 is a time a capture holds)
        self.port = np.zeros(capacity, dtype=np.uint16)
        self.rss_hash = np.zeros(capacity, dtype=np.uint32)
        self.timestamp = np.zeros(capacity, dtype=np.uint64)
        #: the classification of each slot's packet (CLASSIFICATION; zeroed pages are mapped
        #: on first touch, so an unused pool does not pay its 64 bytes a slot)
        self.meta = np.zeros(capacity, dtype=CLASSIFICATION)
        # The free stack: slots free[0:_top] are free; allocation pops from the top.
        self._free = np.arange(capacity - 1, -1, -1, dtype=np.int32)
        self._top = capacity
        self._scratch = np.empty(capacity, dtype=np.int32)     # duplicate check in free_slots
        self._arange = np.arange(capacity, dtype=np.int32)
        # Fast per-packet views of the same memory (format 'B' and 'I': Python ints).
        self._buf = memoryview(self._mem)
        self._off_mv = memoryview(self.data_off)
        self._len_mv = memoryview(self.data_len)
        self._ts_mv = memoryview(self.timestamp)
        # ... and of the free stack and reference counts: the one-buffer paths (from_bytes,
        # free) read and write them as Python ints, ~4x cheaper than numpy scalar indexing.
        self._free_mv = memoryview(self._free)
        self._rc_mv = memoryview(self.refcnt)

    # -- bookkeeping ------------------------------------------------------------------
    @property
    def available(self) -> int:
        """Free buffers."""
        return self._top

    @property
    def in_use(self) -> int:
        """Allocated buffers (what a leak check looks at)."""
        return self.capacity - self._top

    def __repr__(self) -> str:
        return (f"Mempool({self.name!r}, capacity={self.capacity}, buf_size={self.buf_size}, "
                f"headroom={self.headroom}, in_use={self.in_use})")

    # -- slot-level allocation (what batches and drivers use) -------------------------
    def alloc_slots(self, n: int, length: int = 0) -> np.ndarray:
        """Allocate ``n`` buffers, all or nothing; returns their slots as ``int32``.
        ``length``: their data length (0: empty; a driver that fills them sets it here).

        Raises :class:`MempoolExhausted` (nothing allocated) when fewer than ``n`` are free.
        """
        if n < 0:
            raise ValueError(f"cannot allocate a negative number of buffers ({n})")
        if not 0 <= length <= self.buf_size:
            raise ValueError(f"length {length} is outside 0..{self.buf_size} (the buffer size)")
        top = self._top
        if n > top:
            raise MempoolExhausted(
                f"mempool {self.name}: cannot allocate {n} buffers, {top} of {self.capacity} free")
        if _accel.AVAILABLE:
            slots = _accel.alloc_slots(self._free, top, n, self.refcnt, self.data_off,
                                       self.data_len, self.timestamp, self.headroom, length)
            self._top = top - n
            return slots
        slots = self._free[top - n:top][::-1].copy()
        self._top = top - n
        self.refcnt[slots] = 1
        self.data_off[slots] = self.headroom
        self.data_len[slots] = length
        self.timestamp[slots] = NO_TIMESTAMP   # a recycled buffer must not keep its last packet's time
        return slots

    def free_slots(self, slots: "np.ndarray | Sequence[int]") -> None:
        """Return buffers to the pool.

        Raises :class:`DoubleFree` and frees nothing if any slot is not allocated or appears
        twice in ``slots``.
        """
        s = slots if isinstance(slots, np.ndarray) and slots.ndim == 1 and slots.dtype.kind == "i" \
            else np.asarray(slots, dtype=np.int32).ravel()
        n = s.size
        if n == 0:
            return
        if _accel.AVAILABLE:
            top = _accel.free_slots(self._free, self._top, s, self.refcnt, self.capacity)
            if top >= 0:
                self._top = top
                return
            # an error: the numpy path below says which, with nothing freed
        if s.min() < 0 or s.max() >= self.capacity:
            raise DoubleFree(f"mempool {self.name}: slot out of range in free "
                             f"(valid 0..{self.capacity - 1})")
        rc = self.refcnt
        if not rc[s].all():
            bad = s[rc[s] == 0][:4].tolist()
            raise DoubleFree(f"mempool {self.name}: buffer(s) {bad} freed but not allocated")
        if n > 1:
            # A slot listed twice: scatter positions, gather them back; a duplicate's first
            # position was overwritten by its last.
            pos = self._arange[:n]
            self._scratch[s] = pos
            if not np.array_equal(self._scratch[s], pos):
                raise DoubleFree(f"mempool {self.name}: a buffer appears twice in one free_bulk")
        rc[s] = 0
        top = self._top
        self._free[top:top + n] = s
        self._top = top + n

    def _alloc_one(self, length: int = 0) -> int:
        """Pop one slot and reset its metadata (``Mbuf.alloc`` / ``from_bytes``)."""
        top = self._top - 1
        if top < 0:
            raise MempoolExhausted(
                f"mempool {self.name}: cannot allocate a buffer, 0 of {self.capacity} free")
        self._top = top
        slot = self._free_mv[top]
        self._rc_mv[slot] = 1
        self._off_mv[slot] = self.headroom
        self._len_mv[slot] = length
        self._ts_mv[slot] = NO_TIMESTAMP
        return slot

    def _free_one(self, slot: int) -> None:
        rc = self._rc_mv
        if not 0 <= slot < self.capacity or not rc[slot]:
            raise DoubleFree(f"mempool {self.name}: buffer {slot} freed but not allocated")
        rc[slot] = 0
        top = self._top
        self._free_mv[top] = slot
        self._top = top + 1

    def mbuf(self, slot: int) -> "Mbuf":
        """A handle on an allocated slot (no allocation)."""
        return Mbuf(self, int(slot))


_default_pool: Mempool | None = None


def default_pool() -> Mempool:
    """The process-wide pool, created with capsule's defaults on first use."""
    global _default_pool
    if _default_pool is None:
        _default_pool = Mempool(name="mempool0")
    return _default_pool


def set_default_pool(pool: Mempool | None) -> Mempool | None:
    """Make ``pool`` the process-wide default (``None``: lazily create a new one); returns
    the previous default.  The runtime gives each core process its own pool this way."""
    global _default_pool
    prev, _default_pool = _default_pool, pool
    return prev


class Mbuf:
    """A handle on one packet buffer: ``(pool, slot)``, nothing else.

    Handles are cheap and carry no state of their own, so any number may refer to one slot
    and all see the same bytes.  A buffer is not freed when its handle is garbage collected:
    like DPDK, ownership is explicit (:meth:`free`, :meth:`free_bulk`, or a pipeline that
    transmits or drops the packet).

    An Mbuf is also the root of the packet chain: ``mbuf.parse(Ethernet)``,
    ``mbuf.peek(Ethernet)`` and ``mbuf.push(Ethernet)`` start at offset 0.
    """

    __slots__ = ("pool", "slot")

    def __init__(self, pool: Mempool, slot: int) -> None:
        self.pool = pool
        self.slot = slot

    # -- allocation -------------------------------------------------------------------
    @classmethod
    def alloc(cls, pool: Mempool | None = None) -> "Mbuf":
        """Allocate an empty buffer (``data_len == 0``) from ``pool`` or the default pool."""
        pool = pool or default_pool()
        m = _new(cls)
        m.pool = pool
        m.slot = pool._alloc_one()
        return m

    @classmethod
    def alloc_bulk(cls, n: int, pool: Mempool | None = None) -> list["Mbuf"]:
        """Allocate ``n`` empty buffers, all or nothing (:class:`MempoolExhausted`)."""
        pool = pool or default_pool()
        return [cls(pool, s) for s in pool.alloc_slots(n).tolist()]

    @classmethod
    def from_bytes(cls, data: "bytes | bytearray | memoryview", pool: Mempool | None = None) -> "Mbuf":
        """A new buffer holding a copy of ``data`` (empty data is allowed)."""
        if pool is None:
            pool = default_pool()
        n = len(data)
        if n > pool.buf_size:
            raise OutOfBuffer(f"{n} bytes do not fit a {pool.buf_size}-byte buffer")
        # pool._alloc_one(n), inlined: this is the per-packet entry (a call is ~10% of it)
        top = pool._top - 1
        if top < 0:
            pool._alloc_one()       # raises MempoolExhausted with its message
        pool._top = top
        s = pool._free_mv[top]
        pool._rc_mv[s] = 1
        h = pool.headroom
        pool._off_mv[s] = h
        pool._len_mv[s] = n
        pool._ts_mv[s] = NO_TIMESTAMP
        a = s * pool.stride + h
        pool._buf[a:a + n] = data
        m = _new(cls)       # not cls(...): no __init__ call on this path
        m.pool = pool
        m.slot = s
        return m

    @classmethod
    def from_bytes_bulk(cls, frames: "Sequence[bytes | bytearray | memoryview]",
                        pool: Mempool | None = None) -> list["Mbuf"]:
        """One new buffer per frame, holding a copy of it; all or nothing
        (:class:`OutOfBuffer` for a frame too big, :class:`MempoolExhausted` when fewer
        buffers are free than frames given: then nothing is allocated)."""
        pool = pool or default_pool()
        lens = [len(f) for f in frames]
        if lens and max(lens) > pool.buf_size:
            big = max(lens)
            raise OutOfBuffer(f"frame {lens.index(big)} of {len(lens)}: {big} bytes do not fit "
                              f"a {pool.buf_size}-byte buffer")
        slots = pool.alloc_slots(len(lens))
        pool.data_len[slots] = lens
        buf = pool._buf
        stride = pool.stride
        head = pool.headroom
        out = []
        for s, f, n in zip(slots.tolist(), frames, lens):
            a = s * stride + head
            buf[a:a + n] = f
            out.append(cls(pool, s))
        return out

    @staticmethod
    def to_bytes_bulk(mbufs: "Iterable[Mbuf]") -> list[bytes]:
        """A copy of each packet's bytes, in order."""
        out = []
        for m in mbufs:
            p = m.pool
            s = m.slot
            a = s * p.stride + p._off_mv[s]
            out.append(p._buf[a:a + p._len_mv[s]].tobytes())
        return out

    def free(self) -> None:
        """Return the buffer to its pool (:class:`DoubleFree` if it is not allocated)."""
        # pool._free_one, inlined (the per-packet exit)
        p = self.pool
        s = self.slot
        rc = p._rc_mv
        if not 0 <= s < p.capacity or not rc[s]:
            raise DoubleFree(f"mempool {p.name}: buffer {s} freed but not allocated")
        rc[s] = 0
        top = p._top
        p._free_mv[top] = s
        p._top = top + 1

    @staticmethod
    def free_bulk(mbufs: Iterable["Mbuf"]) -> None:
        """Free many buffers, grouped by pool, each group in one call."""
        if not isinstance(mbufs, list):
            mbufs = list(mbufs)
        if not mbufs:
            return
        pool = mbufs[0].pool
        slots = [m.slot for m in mbufs if m.pool is pool]
        if len(slots) == len(mbufs):          # the usual case: one pool
            pool.free_slots(slots)
            return
        by_pool: dict[int, tuple[Mempool, list[int]]] = {}
        for m in mbufs:
            entry = by_pool.get(id(m.pool))
            if entry is None:
                by_pool[id(m.pool)] = (m.pool, [m.slot])
            else:
                entry[1].append(m.slot)
        for pool, slots in by_pool.values():
            pool.free_slots(slots)

    # -- geometry ---------------------------------------------------------------------
    @property
    def data_len(self) -> int:
        """Bytes of packet data."""
        return self.pool._len_mv[self.slot]

    def __len__(self) -> int:
        return self.pool._len_mv[self.slot]

    @property
    def data_off(self) -> int:
        """Where the packet starts inside the buffer row (the headroom left)."""
        return self.pool._off_mv[self.slot]

    @property
    def headroom(self) -> int:
        """Free bytes before the packet data (room for ``push`` of outer headers)."""
        return self.pool._off_mv[self.slot]

    @property
    def tailroom(self) -> int:
        """Free bytes after the packet data (room to grow the packet)."""
        p = self.pool
        return p.stride - p._off_mv[self.slot] - p._len_mv[self.slot]

    @property
    def _abs(self) -> int:
        """Absolute position of the packet's first byte in the pool's flat buffer."""
        p = self.pool
        return self.slot * p.stride + p._off_mv[self.slot]

    @property
    def _end(self) -> int:
        p = self.pool
        s = self.slot
        return s * p.stride + p._off_mv[s] + p._len_mv[s]

    _hlen = 0
    _env = None
    _next = KEY_OUTERMOST

    @property
    def _mbuf(self) -> "Mbuf":
        return self

    @property
    def _buf(self) -> memoryview:
        return self.pool._buf

    @property
    def mbuf(self) -> "Mbuf":
        """The buffer itself (so an Mbuf can stand where a header's envelope is expected)."""
        return self

    @property
    def offset(self) -> int:
        """0: as an envelope the buffer starts at the packet data (a header's offset is its own)."""
        return 0

    @property
    def header_len(self) -> int:
        """0: the buffer has no header of its own; its payload is the whole packet."""
        return 0

    @property
    def payload_len(self) -> int:
        """The packet's length (``data_len``): as an envelope, everything is payload."""
        return self.data_len

    @property
    def envelope(self) -> None:
        """An Mbuf is the outermost layer: it has no envelope."""
        return None

    # -- data access ------------------------------------------------------------------
    def _check(self, offset: int, n: int) -> int:
        length = self.pool._len_mv[self.slot]
        if offset < 0 or n < 0 or offset > length:
            raise BadOffset(f"offset {offset} is outside the packet (length {length})")
        if offset + n > length:
            raise BadOffset(f"{n} bytes at offset {offset} exceed the packet length {length}")
        return self._abs + offset

    def read_data(self, offset: int, n: int) -> bytes:
        """A copy of ``n`` bytes at ``offset``."""
        a = self._check(offset, n)
        return self.pool._buf[a:a + n].tobytes()

    def write_data(self, offset: int, data: "bytes | bytearray | memoryview") -> None:
        """Overwrite packet bytes at ``offset`` (the packet does not grow: extend first)."""
        n = len(data)
        a = self._check(offset, n)
        self.pool._buf[a:a + n] = data

    def view(self) -> memoryview:
        """A writable zero-copy view of the packet bytes (valid until the packet is resized)."""
        a = self._abs
        return self.pool._buf[a:a + self.data_len]

    def to_bytes(self) -> bytes:
        """A copy of the packet bytes."""
        p = self.pool
        s = self.slot
        a = s * p.stride + p._off_mv[s]
        return p._buf[a:a + p._len_mv[s]].tobytes()

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    # -- resizing ---------------------------------------------------------------------
    def _resize(self, offset: int, n: int) -> tuple[int, int]:
        """Insert ``n`` zero bytes at ``offset`` (``n < 0``: remove ``-n`` bytes there).

        Moves whichever side of ``offset`` is shorter, using headroom or tailroom.  Returns
        how far the packet's start and end moved in the flat buffer, so packet views that
        enclose ``offset`` can follow.
        """
        p = self.pool
        s = self.slot
        off = p._off_mv[s]
        length = p._len_mv[s]
        row = s * p.stride
        buf = p._buf
        if offset < 0 or offset > length:
            raise BadOffset(f"offset {offset} is outside the packet (length {length})")
        if n > 0:
            head_ok = off >= n
            tail_ok = off + length + n <= p.stride
            if not (head_ok or tail_ok):
                if p.stride - length < n:
                    raise OutOfBuffer(
                        f"cannot grow the packet by {n} bytes: {off} bytes of headroom and "
                        f"{p.stride - off - length} of tailroom")
                # Neither side alone has room, both together do: slide the packet to the
                # start of its row, then grow at the back.
                buf[row:row + length] = buf[row + off:row + off + length].tobytes()
                p._off_mv[s] = 0
                d_front = -off
                off = 0
                tail = length - offset
                if tail:
                    buf[row + offset + n:row + length + n] = buf[row + offset:row + length].tobytes()
                buf[row + offset:row + offset + n] = bytes(n)
                p._len_mv[s] = length + n
                return d_front, d_front + n
            a = row + off
            if head_ok and (offset <= length - offset or not tail_ok):
                # Move the front [0, offset) left by n.
                if offset:
                    buf[a - n:a - n + offset] = buf[a:a + offset].tobytes()
                buf[a - n + offset:a + offset] = bytes(n)
                p._off_mv[s] = off - n
                p._len_mv[s] = length + n
                return -n, 0
            # Move the back [offset, length) right by n.
            tail = length - offset
            if tail:
                buf[a + offset + n:a + length + n] = buf[a + offset:a + length].tobytes()
            buf[a + offset:a + offset + n] = bytes(n)
            p._len_mv[s] = length + n
            return 0, n
        if n < 0:
            k = -n
            if offset + k > length:
                raise BadOffset(f"cannot remove {k} bytes at offset {offset}: "
                                f"the packet is {length} bytes")
            a = row + off
            if offset < length - offset - k:
                # Move the front right by k.
                if offset:
                    buf[a + k:a + k + offset] = buf[a:a + offset].tobytes()
                p._off_mv[s] = off + k
                p._len_mv[s] = length - k
                return k, 0
            tail = length - offset - k
            if tail:
                buf[a + offset:a + offset + tail] = buf[a + offset + k:a + length].tobytes()
            p._len_mv[s] = length - k
            return 0, -k
        return 0, 0

    def extend(self, offset: int, n: int) -> None:
        """Insert ``n`` zero bytes at ``offset`` (0 <= offset <= data_len), using the
        headroom when the front is shorter, else the tailroom.  :class:`OutOfBuffer` if
        neither has room; :class:`BadOffset` for an offset outside the packet."""
        if n < 0:
            raise ValueError(f"extend takes a non-negative length, got {n}")
        self._resize(offset, n)

    def shrink(self, offset: int, n: int) -> None:
        """Remove ``n`` bytes at ``offset`` (they must lie inside the packet)."""
        if n < 0:
            raise ValueError(f"shrink takes a non-negative length, got {n}")
        self._resize(offset, -n)

    def truncate(self, n: int) -> None:
        """Cut the packet to its first ``n`` bytes (``n <= data_len``)."""
        length = self.data_len
        if not 0 <= n <= length:
            raise BadOffset(f"cannot truncate a {length}-byte packet to {n} bytes")
        self.pool._len_mv[self.slot] = n

    # -- packet-chain root ------------------------------------------------------------
    def parse(self, cls: "type[P]") -> "P":
        """Parse the outermost header (normally :class:`~nfkit.packets.Ethernet`)."""
        keys, size, check, claim = cls._PARSE
        if KEY_OUTERMOST not in keys:
            raise ProtocolMismatch(cls.NAME, f"{cls.NAME} cannot start a packet (only an outermost header such as Ethernet)")
        pool = self.pool
        s = self.slot
        n = pool._len_mv[s]
        if n < size:
            raise TruncatedError(cls.NAME, f"header needs {size} bytes, {n} remain")
        start = s * pool.stride + pool._off_mv[s]
        if claim is not None:
            claim(pool._buf, start, start + n)
        p = _new(cls)
        p._env = self
        p._buf = pool._buf
        p._abs = start
        p._end = start + n
        p._hlen = size
        p._next = None
        if check is not None:
            check(p, n)
        return p

    def peek(self, cls: "type[P]") -> "P":
        """A read-only view of the outermost header."""
        p = self.parse(cls)
        p.__class__ = cls._RO
        return p

    def push(self, cls: "type[P]") -> "P":
        """Insert a default ``cls`` header at the front of the packet."""
        return cls._try_push(self)

    def reset(self) -> "Mbuf":
        """The buffer itself: the root of ``Packet.reset`` (nothing to undo above it)."""
        return self

    def deparse(self) -> "Mbuf":
        """The buffer itself: the root of ``Packet.deparse`` (no envelope above it)."""
        return self

    def _carries(self, cls: type) -> bool:
        return bool(getattr(cls, "OUTERMOST", False))

    _can_carry = _carries

    def _set_next(self, cls: type) -> None:
        pass

    def _describe_next(self) -> str:
        return "the buffer start"

    def _move(self, d_start: int, d_end: int) -> None:
        pass

    _READONLY = False

    def reconcile(self) -> None:
        """Nothing to recompute: the root of ``Packet.reconcile_all`` (lengths and checksums live in headers)."""
        pass

    def reconcile_all(self) -> None:
        """Parse every header nfkit knows and fix lengths and checksums, inner first."""
        from .packets.dissect import dissect

        layers, _ = dissect(self)
        if layers:
            layers[-1].reconcile_all()

    # -- the REPL: a packet explorer ----------------------------------------------------
    def summary(self) -> str:
        """One line, every header nfkit decodes (what ``nfkit dump`` prints)."""
        from .packets.dissect import summarize
        return summarize(self)

    def show(self, file: IO[str] | None = None) -> None:
        """Print every decoded header with each declared field (Scapy's ``show()``); a
        packet that stops decoding ends with the reason."""
        from .packets.dissect import dissect
        from .packets.fields import format_value
        layers, err = dissect(self)
        lines = []
        for p in layers:
            fields = [f for f in p.ALL_FIELDS if not f.alias]
            width = max(len(f.name) for f in fields) if fields else 0
            lines.append(f"###[ {p.NAME} ]###")
            lines += [f"  {f.name:<{width}} = {format_value(f, getattr(p, f.name))}"
                      for f in fields]
        if err is not None:
            lines.append(f"[{err}]")
        elif not layers:
            lines.append(f"{len(self)} bytes")
        print("\n".join(lines), file=file)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mbuf) and other.pool is self.pool and other.slot == self.slot

    def __hash__(self) -> int:
        return hash((id(self.pool), self.slot))

    def __repr__(self) -> str:
        return f"Mbuf(slot={self.slot}, data_len={self.data_len}, data_off={self.data_off})"
