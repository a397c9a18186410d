"""The capture reader: classic pcap (both byte orders, us and ns) and, through
:class:`~nfkit.pcap.pcapng.PcapngBlocks`, pcapng -- from files and streams, into Python
objects or straight into a mempool (see :mod:`nfkit.pcap` for formats, streams, damage)."""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..buffers import NO_TIMESTAMP, Mempool
from ..linktype import describe as _describe_linktype
from . import _jit
from ._common import (_CHUNK, _EMPTY_I64, _EMPTY_U64, _MAGIC_KUZNETZOV, _MAGIC_NS, _MAGIC_US,
                      _MAX_NOTES, _MAX_SNAPLEN, _NO_WINDOW, _NS, _RUN_ROOM, _SHB, _STREAM_CHUNK,
                      _U64, _VEC_MIN, _VEC_SMALL, PcapCorrupt, PcapDamaged, PcapError,
                      PcapFormatError, PcapTruncated, _window)
from .pcapng import PcapngBlocks

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

# -- reader ------------------------------------------------------------------------------

class PcapReader(PcapngBlocks):
    """Read a pcap or pcapng file, packet by packet or straight into a mempool.

    ``for ts_ns, data in reader`` yields Python ``(int, bytes)`` pairs, :meth:`records`
    ``(int, bytes, linktype)`` triples; :meth:`read_into` fills mempool buffers in bulk
    (the fast path).  All share one position.  See the module docstring for the formats and
    the behaviour on damage.  ``linktype=N``: read only packets of that link type (what an
    Ethernet port carries): a file whose (first) link type differs is refused when opened;
    packets of a later pcapng interface of another type are skipped and counted.

    Attributes: ``path``; ``format`` (``'pcap'`` or ``'pcapng'``); ``linktype`` and
    ``snaplen`` (pcapng: of the first interface; ``None`` if the file has none);
    ``nanosecond`` (timestamps finer than microseconds); ``packets_read`` (handed out since
    open, across :meth:`rewind`); ``skipped_oversize`` (packets longer than the pool's
    ``buf_size``, skipped by :meth:`read_into`); ``skipped_corrupt`` (damaged pcapng packet
    blocks skipped, reading on); ``skipped_linktype`` (link type -> packets skipped for
    ``linktype=``); ``damage`` (the damaged records found, the first 100); ``error``
    (``None`` or the first :class:`PcapDamaged` found); ``fatal`` (the damage that ended
    the reading, if any).
    """

    def __init__(self, path: str | os.PathLike[str], *, strict: bool = False,
                 linktype: int | None = None) -> None:
        self.path = os.fspath(path)
        self.strict = strict
        self.only_linktype = linktype
        #: compiled passes (numba) for the records and the copy; False: the numpy/Python
        #: reference (the same results: tests/test_capture_fast.py compares them)
        self.compiled = _jit.AVAILABLE
        self._cols = (_EMPTY_I64, _EMPTY_I64, _EMPTY_U64)
        self.packets_read = 0
        self.skipped_oversize = 0
        self.skipped_corrupt = 0
        self.skipped_linktype: dict[int, int] = {}
        self.damage: list[PcapDamaged] = []
        self.error: PcapDamaged | None = None
        self.fatal: PcapDamaged | None = None
        self.linktype: int | None = None
        self.snaplen: int | None = None
        self.nanosecond = False
        self.format = "pcap"
        self._closed = True
        self._map: mmap.mmap | bytes = b""
        self._mv = memoryview(b"")
        self._size = 0
        self._pos = 0
        # A stream (not a mapped file) is read as it comes: ``_fd`` is open, the buffer
        # holds the bytes from file offset ``_base`` on, ``_need`` says a record continues
        # past the buffer.  A mapped file is all there: ``_eof`` from the start.
        self._fd = -1
        self._limit: int | None = None     # a regular file: its size when opened
        self._base = 0
        self._eof = True
        self._need = False
        self._read_error: PcapTruncated | None = None
        self._batch_lt: list[int] | None = None
        self._opening = True
        self._load()
        self._closed = False
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self._opening = False

    # -- opening -------------------------------------------------------------------------
    def _fail(self, reason: str, os_error: OSError | None = None) -> PcapFormatError:
        return PcapFormatError(self.path, reason, os_error)

    def _load(self) -> None:
        """Map a regular file; anything else (pipe, FIFO, device, a file that cannot be
        mapped) is a stream, read as it comes -- never whole before its header is known."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise self._fail(f"cannot open: {e.strerror or e}", e) from e
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                e = IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), self.path)
                raise self._fail(f"cannot open: {e.strerror}", e)
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                raise self._fail("empty file (0 bytes): not a pcap or pcapng file")
            if stat.S_ISREG(st.st_mode):
                # Read, not mapped: a mapped file truncated by another process while it is
                # read kills the reader with SIGBUS (a 2-core replay whose input was cut
                # did); read() just ends early, and that is reported as damage.
                self._limit = st.st_size
            self._fd, fd = fd, -1
            self._eof = False
            self._set_buffer(b"")
        finally:
            if fd >= 0:
                os.close(fd)

    def _set_buffer(self, data: mmap.mmap | bytes) -> None:
        self._map = data
        self._mv = memoryview(data)
        self._size = len(data)
        self._hdr_win = _window(self._mv, self._size, 16)
        self._u8 = np.frombuffer(data, dtype=np.uint8)

    def _read_more(self) -> None:
        """Stream: drop the bytes before the position, add what one read returns (waiting
        until something arrives); at the end of the stream set ``_eof``."""
        at = self._base + self._size
        want = _STREAM_CHUNK if self._limit is None else min(_STREAM_CHUNK, self._limit - at)
        try:
            chunk = os.read(self._fd, want) if want > 0 else b""
        except OSError as e:
            if self._opening:
                raise self._fail(f"cannot read: {e.strerror or e}", e) from e
            # The end of the stream: the complete records buffered are still handed out.
            chunk = b""
            at = self._base + self._size
            self._read_error = PcapTruncated(self.path, at, f"reading failed at offset {at}: "
                                             f"{e.strerror or e}")
        if not chunk:
            self._eof = True
            if self._limit is not None and at < self._limit and self._read_error is None:
                self._read_error = PcapTruncated(
                    self.path, at, f"the file ends at offset {at}, {self._limit} bytes when "
                    "it was opened: it was truncated while being read")
            return
        pos = self._pos
        self._set_buffer(b"".join((self._mv[pos:], chunk)))
        self._base += pos
        self._pos = 0
        if self._limit is not None and self._base + self._size >= self._limit:
            self._eof = True                 # all the file held when it was opened

    def _fill(self, n: int) -> None:
        """Stream: read until ``n`` bytes past the position are buffered (or the end)."""
        while not self._eof and self._size - self._pos < n:
            self._read_more()

    def _start(self) -> None:
        """Identify the format from the magic number and parse the file header."""
        self._fill(28)     # a pcap header, or a pcapng block header and byte-order magic
        size = self._size
        if size == 0:
            raise self._fail("empty (0 bytes): not a pcap or pcapng file")
        if size < 4:
            raise self._fail(f"not a pcap or pcapng file (only {size} bytes)")
        raw = int.from_bytes(self._map[:4], "big")
        le = int.from_bytes(self._map[:4], "little")
        if raw == _SHB:
            self.format = "pcapng"
            self._start_pcapng()
            return
        for magic, order in ((le, "<"), (raw, ">")):
            if magic in (_MAGIC_US, _MAGIC_NS):
                self._bo = order
                self.nanosecond = magic == _MAGIC_NS
                break
            if magic == _MAGIC_KUZNETZOV:
                raise self._fail(f"unsupported pcap variant (modified/Kuznetzov pcap, "
                                 f"magic 0x{raw:08x})")
        else:
            raise self._fail(f"not a pcap or pcapng file (magic 0x{raw:08x})")
        if size < 24:
            raise self._fail(f"pcap file header cut short: 24 bytes needed, {size} found")
        major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
            self._bo + "HHiIII", self._map, 4)
        if major != 2:
            raise self._fail(f"unsupported pcap version {major}.{minor} (only 2.x)")
        self.snaplen = snaplen
        # Bits 26-31 of the link-type field carry FCS information, not the link type.
        self.linktype = network & 0x03FFFFFF
        self._check_linktype()
        self._maxcap = max(snaplen, _MAX_SNAPLEN)
        self._u4 = np.dtype(self._bo + "u4")
        self._rec_c = struct.Struct(self._bo + "I").unpack_from
        self._frac_mul = _U64(1 if self.nanosecond else 1000)
        self._first = 24
        self._reset()

    def _check_linktype(self) -> None:
        want = self.only_linktype
        if want is not None and self.linktype is not None and self.linktype != want:
            raise self._fail(f"link type {_describe_linktype(self.linktype)}: only link type "
                             f"{_describe_linktype(want)} is read here")

    def _reset(self) -> None:
        """Position at the first record with a clean state, then look ahead (consuming no
        packet) so that damage or the end of the file right there is already known, and a
        pcapng file's first interface (its link type) is read -- from a stream, waiting for
        its first blocks."""
        self._pos = self._first
        self._done = False
        self._raised = False
        self.error = self.fatal = None
        self.damage = []
        if self.format == "pcapng":
            self._section(0)
            while True:
                self._need = False
                self._scan_ng(0, 1 << 62)
                if not self._need or self.linktype is not None:
                    break
                self._read_more()
        else:
            self._scan_pcap(0, 1 << 62)

    # -- damage and the end of the data ---------------------------------------------------
    def _note(self, err: PcapDamaged) -> None:
        if len(self.damage) < _MAX_NOTES:
            self.damage.append(err)
        if self.error is None:
            self.error = err

    def _damage(self, err: PcapDamaged) -> None:
        """Note a damaged record that ends the reading; the reader is at its end from here."""
        self._note(err)
        self.fatal = err
        self._done = not self.strict

    def _bad_block(self, err: PcapCorrupt) -> bool:
        """A damaged block whose framing (total lengths) is intact: noted and skipped,
        reading on (True) -- or, with ``strict``, the end like any damage (False)."""
        if self.strict:
            self._damage(err)
            return False
        self._note(err)
        self.skipped_corrupt += 1
        return True

    def _end_of_data(self) -> None:
        """Every buffered record was read: the end, or (stream) wait for more."""
        if self._read_error is not None:
            self._damage(self._read_error)
        elif self._eof:
            self._done = True
        else:
            self._need = True

    def _cut_short(self, err: PcapTruncated) -> None:
        """A record continues past the buffered bytes: damage at the end, or (stream)
        wait for the rest of it."""
        if self._eof:
            self._damage(self._read_error or err)
        else:
            self._need = True

    def _pending(self) -> None:
        """In strict mode, raise the damage found by an earlier read (once)."""
        if self._closed:
            raise ValueError(f"{self.path}: read from a closed PcapReader")
        if self.strict and self.error is not None and not self._raised:
            self._raised = True
            self._done = True
            raise self.error

    # -- classic pcap scanning -----------------------------------------------------------
    def _scan_pcap(self, n: int, limit: int) -> np.ndarray:
        """Offsets of the next (up to) ``n`` records no longer than ``limit``; longer ones
        are skipped and counted.  Stops before a damaged record, noting it."""
        buf = self._map
        end = self._size
        at = self._base
        o = self._pos
        rec_c = self._rec_c
        maxcap = self._maxcap
        limit = min(limit, maxcap)
        offs: list[int] = []
        ap = offs.append
        pieces: list[np.ndarray] = []
        k = 0
        chunk = _CHUNK
        stop = min(n, chunk)
        skipped = 0
        while True:
            try:
                c = rec_c(buf, o + 8)[0]
            except struct.error:
                if o == end:
                    self._end_of_data()
                else:
                    self._cut_short(PcapTruncated(
                        self.path, o + at, f"record header at offset {o + at} cut short: 16 "
                        f"bytes needed, only {end - o} remain"))
                break
            nxt = o + 16 + c
            if nxt > end or c > limit:
                if o + 16 > end:
                    self._cut_short(PcapTruncated(
                        self.path, o + at, f"record header at offset {o + at} cut short: 16 "
                        f"bytes needed, only {end - o} remain"))
                elif c > maxcap:
                    self._damage(PcapCorrupt(
                        self.path, o + at, f"record at offset {o + at} claims {c} bytes, "
                        f"more than the snap length allows ({maxcap})"))
                elif nxt > end:
                    self._cut_short(PcapTruncated(
                        self.path, o + at, f"record at offset {o + at} claims {c} bytes, "
                        f"only {end - o - 16} remain"))
                else:
                    skipped += 1
                    o = nxt
                    continue
                break
            if k == stop:
                if k == n:
                    break
                s = 16 + c
                room = min(n - k, (end - o) // s)
                if room >= _RUN_ROOM and len(offs) >= 8 and o - offs[-8] == 8 * s:
                    # Fixed-size records: check the rest of the batch in one numpy pass.
                    eq = np.ndarray((room,), self._u4, self._mv, o + 8, (s,)) == c
                    m = room if eq.all() else int(eq.argmin())  # >= 1: this record
                    pieces.append(np.array(offs, dtype=np.int64))
                    offs.clear()
                    pieces.append(np.arange(o, o + m * s, s, dtype=np.int64))
                    o += m * s
                    k += m
                    chunk = _CHUNK if m == room or m >= 256 else min(chunk * 2, 1 << 16)
                    stop = min(n, k + chunk)
                    continue
                stop = min(n, k + chunk)
            ap(o)
            k += 1
            o = nxt
        self._pos = o
        self.skipped_oversize += skipped
        if not pieces:
            return np.array(offs, dtype=np.int64) if offs else _EMPTY_I64
        if offs:
            pieces.append(np.array(offs, dtype=np.int64))
        return np.concatenate(pieces)

    def _decode_pcap(self, offs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Data offsets, captured lengths and ns timestamps of the records at ``offs``."""
        hdr = self._hdr_win[offs].view(self._u4)  # (k, 4): sec, frac, caplen, len
        ts = hdr[:, 0].astype(np.uint64)
        ts *= _U64(_NS)
        frac = hdr[:, 1].astype(np.uint64)
        if self._frac_mul != 1:
            frac *= self._frac_mul
        ts += frac
        offs += 16
        return offs, hdr[:, 2], ts

    # -- reading -------------------------------------------------------------------------
    def _scan(self, n: int, limit: int,
              want_lt: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch from the buffered bytes (pcapng: link types in ``_batch_lt``)."""
        if self.format == "pcap":
            self._batch_lt = None
            if self.compiled:
                return self._scan_pcap_compiled(n, limit)
            offs = self._scan_pcap(n, limit)
            return self._decode_pcap(offs) if offs.size else (_EMPTY_I64, _EMPTY_I64, _EMPTY_U64)
        return self._scan_ng(n, limit, want_lt)

    def _scan_pcap_compiled(self, n: int,
                            limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_scan_pcap` + :meth:`_decode_pcap` in one compiled pass over the clean
        records; the first other one (damage, oversize, the end of the buffer) is left to
        the reference walk, so every such case behaves as it does there."""
        if self._cols[0].size < n:        # kept between bursts: read before the next one
            self._cols = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64),
                          np.empty(n, dtype=np.uint64))
        doff, cap, ts = (c[:n] for c in self._cols)
        k, self._pos = _jit.scan_pcap(self._u8, self._pos, self._size, n, self._bo == ">",
                                          int(self._frac_mul), min(limit, self._maxcap),
                                          doff, cap, ts)
        # Always: with k == n it only looks ahead (the end, or damage, known right away)
        offs = self._scan_pcap(n - k, limit)
        if not offs.size:
            return doff[:k], cap[:k], ts[:k]
        rest = self._decode_pcap(offs)
        return (np.concatenate((doff[:k], rest[0])), np.concatenate((cap[:k], rest[1])),
                np.concatenate((ts[:k], rest[2])))

    def _next(self, n: int, limit: int,
              want_lt: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next batch as (data offsets, captured lengths, timestamps); from a stream,
        waits until at least one packet (or the end) has arrived."""
        self._pending()
        if self._done or n <= 0:
            return _EMPTY_I64, _EMPTY_I64, _EMPTY_U64
        while True:
            if self._need:
                self._need = False
                self._read_more()
            batch = self._scan(n, limit, want_lt)
            if batch[0].size or self._done or not self._need:
                break
        self.packets_read += batch[0].size
        return batch

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(timestamp_ns, data)`` for each remaining packet (Python objects)."""
        for ts, data, _lt in self.records():
            yield ts, data

    def records(self) -> Iterator[tuple[int, bytes, int]]:
        """Yield ``(timestamp_ns, data, linktype)`` for each remaining packet: a pcapng
        file's interfaces may have different link types."""
        while True:
            doff, cap, ts = self._next(1024, 1 << 62, True)
            if not doff.size:
                if self.strict and self.error is not None and not self._raised:
                    continue  # raise it
                return
            buf = self._map
            lts = [self.linktype] * doff.size if self._batch_lt is None else self._batch_lt
            for o, c, t, lt in zip(doff.tolist(), cap.tolist(), ts.tolist(), lts):
                yield t, buf[o:o + c], lt

    def read_into(self, pool: Mempool, max_packets: int) -> np.ndarray:
        """Read up to ``max_packets`` packets into new buffers of ``pool``; returns their
        slots (``int32``, file order).

        Fewer come back at the end of the file, and never more than ``pool.available``
        (then possibly none).  Each buffer gets the packet at ``pool.headroom``, its
        ``data_len`` and ``timestamp``.  Packets longer than ``pool.buf_size`` are skipped
        and counted in :attr:`skipped_oversize`.
        """
        n = min(max_packets, pool.available)
        doff, cap, ts = self._next(n, pool.buf_size)
        k = doff.size
        if not k:
            return np.zeros(0, dtype=np.int32)
        slots = pool.alloc_slots(k)
        if self.compiled and _jit.fill_slots(pool.data, pool.data_len, pool.timestamp, slots,
                                             pool.headroom, self._u8, doff, cap, ts) == 0:
            return slots
        pool.data_len[slots] = cap
        pool.timestamp[slots] = np.minimum(ts, _U64(NO_TIMESTAMP - 1))  # never "not stamped"
        self._copy(pool, slots, doff, cap)
        return slots

    def _copy(self, pool: Mempool, slots: np.ndarray, doff: np.ndarray, cap: np.ndarray) -> None:
        """Copy packet bytes from the mapped file into the slots' rows at the headroom.

        Fixed-size packets (and batches of small ones) go in one numpy gather of
        equal-width rows from a strided window over the file; others one slice assignment
        each (measured faster than numpy for mixed sizes: per-length-class gathers lose to
        the plain copy).  A wider row copies bytes past the packet's end into its own
        buffer's tailroom, where they do no harm.
        """
        k = slots.size
        h = pool.headroom
        size = self._size
        if k >= _VEC_MIN:
            lo, hi = int(cap.min()), int(cap.max())
            if hi and (lo == hi or hi <= _VEC_SMALL):
                # Offsets ascend: only the file's last packets can lack ``hi`` bytes after them.
                cut = k if int(doff[-1]) + hi <= size else \
                    int(np.searchsorted(doff, size - hi, side="right"))
                pool.data[slots[:cut], h:h + hi] = _window(self._mv, size, hi)[doff[:cut]]
                if cut == k:
                    return
                slots, doff, cap = slots[cut:], doff[cut:], cap[cut:]
        pbuf = pool._buf
        mv = self._mv
        stride = pool.stride
        for s, o, c in zip(slots.tolist(), doff.tolist(), cap.tolist()):
            d = s * stride + h
            pbuf[d:d + c] = mv[o:o + c]

    @property
    def is_stream(self) -> bool:
        """True when reading a stream (pipe, FIFO, device) rather than a regular file."""
        return self._fd >= 0 and self._limit is None

    @property
    def at_end(self) -> bool:
        """True once no further read can return a packet (end of file or damage; with
        ``strict=True``, damage counts only after it was raised)."""
        return self._done

    def rewind(self) -> None:
        """Go back to the first packet (for replay loops); the damage state is forgotten
        and found again.  ``packets_read`` and ``skipped_oversize`` keep counting."""
        if self._closed:
            raise ValueError(f"{self.path}: rewind of a closed PcapReader")
        if self.is_stream:
            raise PcapError(f"{self.path}: cannot rewind: reading a stream (pipe, FIFO, "
                            "device), not a file")
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._base = self._pos = 0
        self._eof, self._read_error = False, None
        self._set_buffer(b"")
        self._start()

    def __del__(self) -> None:
        # The descriptor is a raw os.open one: unlike a file object, nothing closes it when
        # a reader is dropped unclosed (tests/test_pcap.py leaked ~1750, and a later select()
        # failed on a descriptor past 1024).  The buffers go with the object anyway.
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        """Unmap the file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._done = True
        self._hdr_win = _NO_WINDOW
        self._u8 = _NO_WINDOW
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            self._mv.release()
            if isinstance(self._map, mmap.mmap):
                self._map.close()
        except BufferError:
            pass  # a caller still holds a view; the mapping goes when it does
        self._map = b""
        self._mv = memoryview(b"")

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "at end" if self._done else f"at {self._pos}"
        return (f"PcapReader({self.path!r}, format={self.format}, linktype={self.linktype}, "
                f"{state}, packets_read={self.packets_read})")
