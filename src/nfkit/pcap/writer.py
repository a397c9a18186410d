"""The capture writer: classic little-endian pcap, us or ns, complete after every call;
new, exclusive, replacing or continuing (see :class:`PcapWriter`)."""

from __future__ import annotations

import errno
import os
import stat
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from ..buffers import NO_TIMESTAMP, Mbuf, Mempool
from ..linktype import describe as _describe_linktype
from . import _jit
from ._common import (_BOM, _EPB, _IDB, _MAGIC_NS, _MAGIC_US, _MAX_PCAP_NS, _NS, _SHB, _U64,
                      LINKTYPE_ETHERNET, PcapCorrupt, PcapWriteError, _window)
from .reader import PcapReader

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

# -- writer ------------------------------------------------------------------------------

_REC = struct.Struct("<IIII")
#: pcapng: a little-endian section header (no options, section length unknown), an
#: interface description's fixed part, an Enhanced Packet Block's fixed part
_SHB_LE = struct.pack("<IIIHHqI", _SHB, 28, _BOM, 1, 0, -1, 28)
_IDB_HEAD = struct.Struct("<IIHHI")
_EPB_HEAD = struct.Struct("<7I")
_U32 = struct.Struct("<I")
_NEVER = (1 << 64) - 2       # pcapng timestamps are 64-bit: nothing to clamp


def _header_difference(have: tuple[int, ...], want: tuple[int, ...]) -> str:
    """What makes the pcap header ``have`` (magic, major, minor, zone, sigfigs, snaplen,
    linktype) differ from the one this writer writes (``want``)."""
    res = {_MAGIC_US: "microsecond", _MAGIC_NS: "nanosecond"}
    if have[0] != want[0]:
        if have[0] not in res:
            return f"not a little-endian pcap file (magic 0x{have[0]:08x})"
        return (f"the file has {res[have[0]]} timestamps, this writer writes "
                f"{res[want[0]]} ones")
    if have[6] != want[6]:
        return (f"the file has link type {_describe_linktype(have[6])}, this writer writes "
                f"link type {_describe_linktype(want[6])}")
    if have[5] != want[5]:
        return f"the file has snap length {have[5]}, this writer writes {want[5]}"
    return f"the file's header {have} differs from this writer's {want}"


class PcapWriter:
    """Write a classic little-endian pcap file -- or, ``pcapng=True``, a pcapng file: a
    section header, one interface description (link type, snap length, ``if_tsresol``
    for ns or us) and an Enhanced Packet Block per packet (no 2106 limit there).

    The global header is written at open.  Every :meth:`write` and :meth:`write_mbufs`
    hands complete records to the OS in one ``write`` call on an unbuffered file, so the
    file on disk is valid whenever no call is in progress (a process killed between calls
    leaves a complete capture).  Packets longer than ``snaplen`` are cut to ``snaplen``
    bytes with their original length recorded.

    ``mode``: ``"w"`` creates or truncates the file, ``"x"`` creates a new one (an existing
    name is an error), ``"n"`` removes whatever holds the name (an old file, a planted
    link: unlinked, not followed) and then creates it as ``"x"`` does -- for names nfkit
    generates in shared directories -- and ``"a"`` continues a pcap file this writer could
    have written (same byte order, resolution, link type and snap length): its records are
    counted (``resumed_packets``, ``resumed_octets``) and a partial last record -- a writer
    killed mid-write -- is cut off (``repaired_bytes``).  No mode follows a symbolic link at
    ``path`` (in a shared directory a planted link could point anywhere).  Opening failures
    raise :class:`PcapWriteError`; a pcapng file is not continued (``"a"`` on one that
    has bytes raises it: the port then writes a new file beside it).

    Timestamps taken from the buffers (``pool.timestamp``) later than the format holds
    (32-bit seconds: 2106) are written as its last nanosecond and counted in
    ``timestamps_clamped``; explicit ``timestamp_ns`` arguments out of range raise
    :class:`ValueError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = 65535, nanosecond: bool = False, mode: str = "w",
                 pcapng: bool = False) -> None:
        if not 0 <= linktype <= 0xFFFFFFFF:
            raise ValueError(f"link type {linktype} does not fit 32 bits")
        if not 0 < snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snap length must be 1..2**32-1, got {snaplen}")
        if mode not in ("w", "x", "n", "a"):
            raise ValueError(f"mode must be 'w', 'x', 'n' or 'a', got {mode!r}")
        self.path = os.fspath(path)
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self.pcapng = pcapng
        self.packets_written = 0
        self.timestamps_clamped = 0
        self.resumed_packets = self.resumed_octets = self.repaired_bytes = 0
        self._frac_div = 1 if nanosecond else 1000
        #: compiled record building (numba); False: the numpy/Python reference
        self.compiled = _jit.AVAILABLE
        self._out = np.zeros(0, dtype=np.uint8)
        self._at: int | None = None          # the file offset after the last write
        self._seekable = True
        self._f = os.fdopen(self._open(mode), "wb", buffering=0)
        if pcapng:
            tsresol = struct.pack("<HHB3x", 9, 1, 9 if nanosecond else 6)  # if_tsresol
            opts = tsresol + bytes(4)                                    # + opt_endofopt
            tl = 20 + len(opts)
            header = _SHB_LE + _IDB_HEAD.pack(_IDB, tl, linktype, 0, snaplen) + opts + \
                _U32.pack(tl)
        else:
            header = struct.pack("<IHHiIII", _MAGIC_NS if nanosecond else _MAGIC_US, 2, 4, 0,
                                 0, snaplen, linktype)
        try:
            if mode != "a" or not self._resume(header):
                self._write(header)
        except BaseException:
            self._f.close()
            raise

    def _open(self, mode: str) -> int:
        if mode == "n":
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise PcapWriteError(self.path, f"cannot replace it: {e.strerror or e}", e) from e
        flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        flags |= {"w": os.O_WRONLY | os.O_TRUNC, "x": os.O_WRONLY | os.O_EXCL,
                  "n": os.O_WRONLY | os.O_EXCL, "a": os.O_RDWR}[mode]
        try:
            return os.open(self.path, flags, 0o644)
        except OSError as e:
            if os.path.islink(self.path):
                reason = ("is a symbolic link: nfkit does not follow links for the files it "
                          "writes (in a shared directory a link could point anywhere)")
            elif e.errno == errno.EEXIST:
                reason = "already exists (a new file was asked for)"
            else:
                reason = f"cannot open for writing: {e.strerror or e}"
            raise PcapWriteError(self.path, reason, e) from e

    def _resume(self, header: bytes) -> bool:
        """Mode ``"a"``: check, count and repair the records already in the file and move
        to its end; False when the file has no header yet (it is written then)."""
        fd = self._f.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False                     # a pipe or device: nothing to continue
        size = st.st_size
        if self.pcapng and size:
            raise PcapWriteError(self.path, "cannot append: continuing a pcapng file is not "
                                 "supported")
        if size < 24:                        # empty, or the header itself cut short
            os.ftruncate(fd, 0)
            self.repaired_bytes = size
            return False
        have = struct.unpack("<IHHiIII", os.pread(fd, 24, 0))
        want = struct.unpack("<IHHiIII", header)
        if have != want:
            raise PcapWriteError(self.path, "cannot append: " + _header_difference(have, want))
        with PcapReader(f"/proc/self/fd/{fd}") as r:
            while True:
                offs = r._scan_pcap(1 << 16, 1 << 62)
                if offs.size:
                    self.resumed_packets += offs.size
                    self.resumed_octets += int(r._hdr_win[offs].view(r._u4)[:, 3].sum(dtype=np.int64))
                elif r._need:                # the rest of the file is still to be read
                    r._need = False
                    r._read_more()
                else:
                    break
            end, err = r._base + r._pos, r.error
        if isinstance(err, PcapCorrupt):
            raise PcapWriteError(self.path, f"cannot append: {err.reason}")
        if end < size:                       # a record cut short by a killed writer
            os.ftruncate(fd, end)
            self.repaired_bytes = size - end
        self._f.seek(0, os.SEEK_END)
        return True

    def _write(self, data: bytes | memoryview) -> None:
        """One ``write`` (more only if the OS takes part of it).  All or nothing: when the
        OS refuses part of it (a full disk takes what fits, then says ENOSPC) the file is
        cut back to where the call started -- a record boundary -- and
        :class:`PcapWriteError` says why (``os_error`` holds the OS error)."""
        f = self._f
        if f.closed:
            raise ValueError(f"{self.path}: write to a closed PcapWriter")
        mv = memoryview(data).cast("B")
        total = len(mv)
        at = self._at                        # kept: a tell() per burst is a system call
        if at is None and self._seekable:
            try:
                at = f.tell()
            except OSError:                  # a pipe or device: nothing to cut back
                self._seekable = False
        try:
            done = f.write(mv)
            while done is not None and done < len(mv):
                mv = mv[done:]
                done = f.write(mv)
        except OSError as e:
            self._at = None
            if at is not None:
                try:
                    os.ftruncate(f.fileno(), at)
                    f.seek(at)
                    self._at = at
                except OSError:
                    pass
            full = " (the disk is full)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            raise PcapWriteError(self.path, f"write failed: {e.strerror or e}{full}", e) from e
        if at is not None:
            self._at = at + total

    def _split(self, ts: int) -> tuple[int, int]:
        if ts < 0:
            raise ValueError(f"timestamp {ts} ns is before 1970")
        sec, ns = divmod(ts, _NS)
        if sec > 0xFFFFFFFF:
            raise ValueError(f"timestamp {ts} ns is past 2106: pcap seconds are 32-bit")
        return sec, ns // self._frac_div

    def write(self, data: bytes | bytearray | memoryview | Mbuf,
              timestamp_ns: int | None = None) -> None:
        """Append one packet (``timestamp_ns`` None: now)."""
        if isinstance(data, Mbuf):
            data = data.view()
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        n = len(mv)
        c = min(n, self.snaplen)
        ts = time.time_ns() if timestamp_ns is None else timestamp_ns
        if self.pcapng:
            if not 0 <= ts <= _NEVER:
                raise ValueError(f"timestamp {ts} ns does not fit 64 bits")
            self._write(self._epb(ts, mv[:c], n))
        else:
            sec, frac = self._split(ts)
            self._write(b"".join((_REC.pack(sec, frac, c, n), mv[:c])))
        self.packets_written += 1

    def write_mbufs(self, mbufs_or_slots: Sequence[Mbuf] | Sequence[int] | np.ndarray,
                    pool: Mempool | None = None,
                    timestamps_ns: int | Sequence[int] | np.ndarray | None = None) -> int:
        """Append a batch of packets in one file write; returns how many.

        Takes :class:`Mbuf` handles, or slots of ``pool``.  ``timestamps_ns``: one value
        for all, one per packet, or None -- each buffer's own ``pool.timestamp`` (what
        :meth:`PcapReader.read_into` and drivers set), the current time where none was set
        (``buffers.NO_TIMESTAMP``; 0 is 1970-01-01, written as such).
        """
        items = mbufs_or_slots
        if not isinstance(items, np.ndarray) and len(items) and isinstance(items[0], Mbuf):
            mbufs = cast("Sequence[Mbuf]", items)
            p0 = mbufs[0].pool
            if pool is not None and pool is not p0:
                raise ValueError("write_mbufs: the mbufs belong to another pool than pool=")
            if all(m.pool is p0 for m in mbufs):
                slots = np.fromiter((m.slot for m in mbufs), dtype=np.int64, count=len(mbufs))
                return self._write_slots(p0, slots, timestamps_ns)
            return self._write_mixed(list(mbufs), timestamps_ns)
        slots = np.asarray(items, dtype=np.int64).ravel()
        if not slots.size:
            return 0
        if pool is None:
            raise ValueError("write_mbufs: slots need the pool they belong to (pool=)")
        if timestamps_ns is None and self.compiled and self._write_compiled(pool, slots) >= 0:
            return slots.size                # the compiled pass checked the slots itself
        if slots.min() < 0 or slots.max() >= pool.capacity:
            raise IndexError(f"write_mbufs: slot out of range for {pool.name} "
                             f"(0..{pool.capacity - 1})")
        return self._write_slots(pool, slots, timestamps_ns)

    def _epb(self, ts: int, data: memoryview, n: int) -> bytes:
        """One Enhanced Packet Block (interface 0) holding ``data`` (``n`` bytes long)."""
        c = len(data)
        pad = -c & 3
        units = ts // self._frac_div
        tl = 32 + c + pad
        return b"".join((_EPB_HEAD.pack(_EPB, tl, 0, units >> 32, units & 0xFFFFFFFF, c, n),
                         data, bytes(pad), _U32.pack(tl)))

    def _timestamps(self, k: int, given: int | Sequence[int] | np.ndarray | None,
                    own: np.ndarray) -> np.ndarray:
        """``uint64`` timestamps for a batch of ``k`` (see :meth:`write_mbufs`)."""
        if given is None:
            ts = own.astype(np.uint64)
            unset = ts == _U64(NO_TIMESTAMP)      # no driver stamped it: now
            if unset.any():
                ts[unset] = time.time_ns()
            late = ts > _U64(_NEVER if self.pcapng else _MAX_PCAP_NS)
            if late.any():           # read from a capture (or a driver) beyond 2106
                ts[late] = _MAX_PCAP_NS
                self.timestamps_clamped += int(late.sum())
            return ts
        if isinstance(given, (int, np.integer)):
            if not self.pcapng:
                self._split(int(given))
            return np.full(k, int(given), dtype=np.uint64)
        arr = np.asarray(given)
        if arr.shape != (k,):
            raise ValueError(f"write_mbufs: {arr.size} timestamps for {k} packets")
        if arr.dtype.kind not in "ui":
            raise ValueError("write_mbufs: timestamps must be integers (ns)")
        if arr.dtype.kind == "i" and k and int(arr.min()) < 0:
            raise ValueError(f"timestamp {int(arr.min())} ns is before 1970")
        return arr.astype(np.uint64)

    def _headers(self, ts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Record headers ``(k, 4)`` little-endian ``u32`` and the captured lengths."""
        sec = ts // _U64(_NS)
        if sec.size and int(sec.max()) > 0xFFFFFFFF:
            raise ValueError(f"timestamp {int(ts.max())} ns is past 2106: pcap seconds are 32-bit")
        frac = ts - sec * _U64(_NS)
        if self._frac_div != 1:
            frac //= _U64(self._frac_div)
        caps = np.minimum(lens, self.snaplen)
        hdr = np.empty((ts.size, 4), dtype="<u4")
        hdr[:, 0] = sec
        hdr[:, 1] = frac
        hdr[:, 2] = caps
        hdr[:, 3] = lens
        return hdr, caps

    def _write_slots(self, pool: Mempool, slots: np.ndarray,
                     timestamps_ns: int | Sequence[int] | np.ndarray | None) -> int:
        k = slots.size
        if not k:
            return 0
        if timestamps_ns is None and self.compiled and self._write_compiled(pool, slots) >= 0:
            return k
        ts = self._timestamps(k, timestamps_ns, pool.timestamp[slots])
        if self.pcapng:
            lens = pool.data_len[slots].tolist()
            start = (slots * pool.stride + pool.data_off[slots]).tolist()
            pbuf, snap = pool._buf, self.snaplen
            self._write(b"".join([self._epb(t, pbuf[a:a + min(n, snap)], n)
                                  for t, a, n in zip(ts.tolist(), start, lens)]))
            self.packets_written += k
            return k
        lens = pool.data_len[slots].astype(np.int64)
        hdr, caps = self._headers(ts, lens)
        start = slots * pool.stride + pool.data_off[slots]
        lo, hi = int(caps.min()), int(caps.max())
        if lo == hi:
            # Fixed-size records: one (k, 16 + L) array, headers and data interleaved.
            out = np.empty((k, 16 + hi), dtype=np.uint8)
            out[:, :16] = hdr.view(np.uint8)
            if hi:
                out[:, 16:] = _window(pool.data, pool.data.size, hi)[start]
            self._write(out.data)
        else:
            hb = hdr.data.cast("B")
            pbuf = pool._buf
            parts: list[memoryview] = []
            ap = parts.append
            for i, (a, c) in enumerate(zip(start.tolist(), caps.tolist())):
                ap(hb[16 * i:16 * i + 16])
                ap(pbuf[a:a + c])
            self._write(b"".join(parts))
        self.packets_written += k
        return k

    def _write_compiled(self, pool: Mempool, slots: np.ndarray) -> int:
        """:meth:`_write_slots` with the slots' own timestamps in one compiled pass into a
        buffer kept between bursts (sized for the longest burst so far); -1 (nothing
        written) when a slot is out of range or its bytes out of its row: the reference
        path then says so or writes what it can."""
        k = slots.size
        need = k * (35 + min(pool.stride, self.snaplen))    # a frame fits in its row
        if self._out.size < need:
            self._out = np.empty(need, dtype=np.uint8)
        if self.pcapng:
            size = _jit.build_pcapng(pool.data, pool.data_off, pool.data_len, pool.timestamp,
                                     slots, self.snaplen, self._frac_div, _U64(time.time_ns()),
                                     self._out)
            if size < 0:                        # a slot out of range or of its row
                return -1
            self._write(self._out[:size].data)
            self.packets_written += k
            return k
        size, clamped = _jit.build_pcap(pool.data, pool.data_off, pool.data_len,
                                            pool.timestamp, slots, self.snaplen,
                                            self._frac_div, _U64(time.time_ns()),
                                            _U64(_MAX_PCAP_NS),
                                            self._out)
        if size < 0:
            return -1
        self._write(self._out[:size].data)
        self.timestamps_clamped += clamped
        self.packets_written += k
        return k

    def _write_mixed(self, mbufs: list[Mbuf],
                     timestamps_ns: int | Sequence[int] | np.ndarray | None) -> int:
        """Mbufs from several pools: same records, gathered one by one."""
        k = len(mbufs)
        own = np.array([int(m.pool.timestamp[m.slot]) for m in mbufs], dtype=np.uint64)
        ts = self._timestamps(k, timestamps_ns, own)
        if self.pcapng:
            snap = self.snaplen
            self._write(b"".join([self._epb(t, m.view()[:snap], len(m))
                                  for t, m in zip(ts.tolist(), mbufs)]))
            self.packets_written += k
            return k
        lens = np.array([m.data_len for m in mbufs], dtype=np.int64)
        hdr, caps = self._headers(ts, lens)
        hb = hdr.data.cast("B")
        parts: list[memoryview] = []
        for i, (m, c) in enumerate(zip(mbufs, caps.tolist())):
            parts.append(hb[16 * i:16 * i + 16])
            parts.append(m.view()[:c])
        self._write(b"".join(parts))
        self.packets_written += k
        return k

    def flush(self, sync: bool = False) -> None:
        """Records are already with the OS after every write; ``sync=True`` also waits
        for them to reach the disk (``fsync``)."""
        if self._f.closed:
            raise ValueError(f"{self.path}: flush of a closed PcapWriter")
        if sync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._f.close()

    @property
    def closed(self) -> bool:
        """Whether the file is closed."""
        return self._f.closed

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PcapWriter({self.path!r}, linktype={self.linktype}, "
                f"{'ns' if self.nanosecond else 'us'}{', pcapng' if self.pcapng else ''}, "
                f"packets_written={self.packets_written})")
