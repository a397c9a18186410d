"""nfkit's own capture-file I/O: read pcap and pcapng into a mempool, write pcap from one.

No libpcap and no Scapy: only the standard library and numpy.

Formats read by :class:`PcapReader`
    * classic pcap (the libpcap format): magic ``0xa1b2c3d4`` (microsecond timestamps) and
      ``0xa1b23c4d`` (nanosecond timestamps), in either byte order, version 2.x (2.4 in
      practice).  The ``thiszone``/``sigfigs`` header fields are ignored, as libpcap does.
    * pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks in either byte order, any
      number of sections; Interface Description Blocks with their link type, snap length and
      the ``if_tsresol`` (power of 10 or power of 2; default microseconds) and
      ``if_tsoffset`` options; Enhanced Packet Blocks, Simple Packet Blocks (no timestamp:
      0) and the obsolete Packet Block.  Every other block type is skipped.  Every block's
      total length is checked against its trailing copy.

Format written by :class:`PcapWriter`
    classic pcap, little-endian, microsecond or nanosecond timestamps; a new file, a
    truncated one, or (``mode="a"``) the continuation of one it wrote, repaired if its last
    record was cut short.  A symbolic link at the output path is refused, never followed.

Timestamps are integer nanoseconds since the Unix epoch everywhere (``Mempool.timestamp``
holds them as ``uint64``); a resolution coarser than 1 ns is converted exactly, a finer one
is rounded down, and values outside ``uint64`` (only possible with odd pcapng resolutions
or offsets) are clamped into it.  The writer clamps what it takes from the buffers to the
pcap format's range (32-bit seconds) and counts it: a packet is never refused for its time.

Streams
    A regular file is read with read() up to the size it had when opened (not mapped: a
    mapped file truncated meanwhile kills the reader with SIGBUS; a truncation is reported
    as damage).  Anything else -- a pipe, a FIFO, stdin, a device --
    is read as it comes: the header first (``/dev/zero`` is "not a capture" after its
    first read), then records as they arrive, each read handing out what is complete (a
    FIFO's packets come out while the writer is still writing, like ``tcpdump -r -``).
    Offsets in damage reports are offsets in the stream.  A stream cannot be rewound.

Behaviour on damage
    Opening a file that is not a capture (wrong magic, empty, header cut short, unsupported
    version, unreadable or missing path) raises :class:`PcapFormatError` naming the file and
    what was found; for an OS failure the :class:`OSError` is chained as ``__cause__`` and
    kept in ``os_error``.  Damage after the header -- a record or block cut short
    (:class:`PcapTruncated`) or one whose lengths or references make no sense
    (:class:`PcapCorrupt`) -- never loses the packets before it: they are all returned, the
    first damaged record is described in :attr:`PcapReader.error` (its byte offset and what
    is wrong) and the reader is then at its end.  A damaged pcapng packet block whose
    framing is intact (its total lengths agree: bad interface number, captured length
    larger than the block, too short) loses nothing else: it is skipped, counted in
    ``skipped_corrupt`` and listed in ``damage`` (with ``error``, the first damage), and
    reading goes on.  With ``strict=True`` the first damage is also raised, once, by the
    first read after the good packets before it were handed out, and ends the reading.  No
    other exception escapes a read on a damaged file.  A file is read as it was when opened
    (a capture still growing is not followed).

Speed
    Files are memory-mapped (streams are read in 1 MiB chunks).  Reading walks
    the records with one ``struct.unpack_from`` per record (pcapng: one for the block
    header, one for its trailing length) and switches to numpy strided views wherever
    records have a fixed layout (consecutive records of one size: the rest of the batch is
    validated in one pass).  Timestamps and lengths are decoded with numpy per batch;
    packet bytes go straight from the mapping into the mempool rows -- one numpy gather
    for fixed-size or small packets, a slice assignment each otherwise (faster than numpy
    for mixed sizes).  Writing builds a whole batch in memory -- one ``(n, 16 + size)``
    numpy array for fixed-size packets, else ``b"".join`` of header slices and packet views
    (measured faster than numpy there) -- and hands it to the OS in one ``write``.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import struct
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from . import _pcapjit
from .buffers import NO_TIMESTAMP, Mbuf, Mempool
from .errors import NfkitError
from .linktype import describe as _describe_linktype

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = [
    "PcapReader", "PcapWriter", "PcapError", "PcapFormatError", "PcapDamaged",
    "PcapTruncated", "PcapCorrupt", "PcapWriteError", "LINKTYPE_ETHERNET",
]

LINKTYPE_ETHERNET = 1

# Magic numbers, as read in the file's own byte order.
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_MAGIC_KUZNETZOV = 0xA1B2CD34
_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D
_IDB, _PB, _SPB, _EPB = 1, 2, 3, 6

#: libpcap's largest snap length: a classic record claiming more (and more than the file's
#: own snap length) is corrupt, not merely big.
_MAX_SNAPLEN = 262144
#: largest pcapng block nfkit accepts (libpcap's limit is of the same order)
_MAX_BLOCK = 16 << 20
#: pcapng default timestamp resolution: 10^-6 s
_DEFAULT_TSRESOL = (10, 6)
_NS = 1_000_000_000
#: the latest time a pcap record holds: 32-bit seconds (2106-02-07), the last nanosecond
_MAX_PCAP_NS = 0xFFFFFFFF * _NS + _NS - 1
#: a stream (pipe, FIFO, device) is read this much at a time; a read returns what has
#: arrived, so a FIFO's packets are handed out as they come
_STREAM_CHUNK = 1 << 20
#: damaged records a reader keeps (``PcapReader.damage``); they are all counted
_MAX_NOTES = 100
_U64 = np.uint64
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_U64 = np.zeros(0, dtype=np.uint64)
_NO_WINDOW = np.zeros((0, 16), dtype=np.uint8)

# The record walk looks for a run of fixed-size records every _CHUNK records (doubling
# the interval after a disappointing try); a run is checked with numpy only when the last
# 8 records had one size and at least _RUN_ROOM records of the batch remain.
_CHUNK = 16
_RUN_ROOM = 32
# Fewest packets worth a vectorised copy into the pool.
_VEC_MIN = 16
# A batch of packets all at most this long is copied vectorised at its longest length.
_VEC_SMALL = 256


# -- errors ------------------------------------------------------------------------------

class PcapError(NfkitError):
    """Base of the capture-file errors."""


class PcapFormatError(PcapError):
    """The file cannot be read as a capture at all (raised when opening it).

    ``path`` and ``reason`` say which file and why; ``os_error`` holds the :class:`OSError`
    when the file could not be opened or read (a missing file raises this, not
    :class:`FileNotFoundError`: one ``except`` covers every "not a usable capture" case).
    """

    def __init__(self, path: str, reason: str, os_error: OSError | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.os_error = os_error


class PcapDamaged(PcapError):
    """A record or block after the file header is damaged; every packet before it was read.

    ``offset`` is the damaged record's byte offset in the file.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class PcapTruncated(PcapDamaged):
    """The file ends inside a record or block."""


class PcapCorrupt(PcapDamaged):
    """A record or block holds lengths or references that cannot be right."""


class PcapWriteError(PcapError):
    """An output file cannot be opened, appended to or created (``path``, ``reason``;
    ``os_error`` holds the :class:`OSError` when the OS refused)."""

    def __init__(self, path: str, reason: str, os_error: OSError | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.os_error = os_error


# -- helpers -----------------------------------------------------------------------------

def _units_to_ns(units: int, base: int, exp: int) -> int:
    """Exact conversion of a pcapng timestamp in units of ``base**-exp`` s to ns (floor)."""
    if base == 10:
        return units * 10 ** (9 - exp) if exp <= 9 else units // 10 ** (exp - 9)
    sec = units >> exp
    return sec * _NS + (((units - (sec << exp)) * _NS) >> exp)


def _units_to_ns_np(units: np.ndarray, base: int, exp: int) -> np.ndarray:
    """:func:`_units_to_ns` over a ``uint64`` array: the same exact results, clamped to the
    ``uint64`` range (numpy where that cannot overflow, Python integers otherwise)."""
    top = (1 << 64) - 1
    if base == 10 and exp <= 9:
        mul = 10 ** (9 - exp)
        if not units.size or int(units.max()) <= top // mul:
            return units * _U64(mul)
    elif base == 10:  # coarser than 1 ns: a division (by more than 2**64: zero)
        return units // _U64(10 ** (exp - 9)) if exp <= 28 else np.zeros_like(units)
    elif base == 2 and exp <= 34:
        if not units.size or int(units.max()) >> exp < top // _NS:
            sec = units >> _U64(exp)
            frac = units & _U64((1 << exp) - 1)
            return sec * _U64(_NS) + ((frac * _U64(_NS)) >> _U64(exp))
    return _ts_array([_units_to_ns(u, base, exp) for u in units.tolist()])


def _ts_array(values: list[int]) -> np.ndarray:
    """Python-int nanosecond timestamps as ``uint64``, clamped into range."""
    try:
        return np.array(values, dtype=np.uint64)
    except OverflowError:
        top = (1 << 64) - 1
        return np.array([min(max(v, 0), top) for v in values], dtype=np.uint64)


def _window(buf: memoryview | np.ndarray, size: int, width: int) -> np.ndarray:
    """Every ``width``-byte window of ``buf`` as rows of a zero-copy ``(size-width+1, width)``
    view: indexing it with start offsets gathers whole packets in one numpy call."""
    if size < width:
        return np.zeros((0, width), dtype=np.uint8)
    return np.ndarray((size - width + 1, width), dtype=np.uint8, buffer=buf, strides=(1, 1))


class _Iface:
    """One pcapng interface: link type, snap length and timestamp conversion."""

    __slots__ = ("linktype", "snaplen", "base", "exp", "mul", "offset_ns")

    def __init__(self, linktype: int, snaplen: int, base: int = 10, exp: int = 6,
                 offset_ns: int = 0) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.base = base
        self.exp = exp
        #: nanoseconds per unit when that is an integer (the common case), else 0
        self.mul = (10 ** (9 - exp) if base == 10 and exp <= 9
                    else _NS if base == 2 and exp == 0 else 0)
        self.offset_ns = offset_ns

    def to_ns(self, units: int) -> int:
        ns = units * self.mul if self.mul else _units_to_ns(units, self.base, self.exp)
        ns += self.offset_ns
        return ns if ns >= 0 else 0

    def to_ns_np(self, units: np.ndarray) -> np.ndarray:
        ns = _units_to_ns_np(units, self.base, self.exp)
        off = self.offset_ns
        top = (1 << 64) - 1
        if off > 0:
            if off > top:
                return np.full_like(ns, top)
            return np.where(ns <= _U64(top - off), ns + _U64(off), _U64(top))
        if off < 0:
            if -off > top:
                return np.zeros_like(ns)
            return np.where(ns >= _U64(-off), ns - _U64(-off), _U64(0))
        return ns


# -- reader ------------------------------------------------------------------------------

class PcapReader:
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
        self.compiled = _pcapjit.AVAILABLE
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

    def _start_pcapng(self) -> None:
        if self._size >= 12:     # a stream: the whole section header block
            bo = "<" if struct.unpack_from("<I", self._map, 8)[0] == _BOM else ">"
            self._fill(min(struct.unpack_from(bo + "I", self._map, 4)[0], _MAX_BLOCK))
        err = self._section(0)
        if err is not None:
            raise self._fail(f"bad pcapng section header: {err.reason}")
        self._first = 0
        self._reset()
        self._check_linktype()

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

    # -- pcapng section state --------------------------------------------------------------
    def _section(self, o: int) -> PcapDamaged | None:
        """Enter the section whose header block is at ``o``: set the byte order, forget the
        interfaces.  Returns the damage found (not raised) or ``None``."""
        end = self._size
        at = o + self._base         # the offset in the file (a stream's buffer starts later)
        if o + 12 > end:
            return PcapTruncated(self.path, at, f"section header block at offset {at} cut "
                                 f"short: 28 bytes needed, only {end - o} remain")
        bom_le = struct.unpack_from("<I", self._map, o + 8)[0]
        if bom_le == _BOM:
            bo = "<"
        elif struct.unpack_from(">I", self._map, o + 8)[0] == _BOM:
            bo = ">"
        else:
            return PcapCorrupt(self.path, at, f"section header block at offset {at} has a bad "
                               f"byte-order magic 0x{bom_le:08x}")
        tl = struct.unpack_from(bo + "I", self._map, o + 4)[0]
        if tl < 28 or tl & 3 or tl > _MAX_BLOCK:
            return PcapCorrupt(self.path, at, f"section header block at offset {at} has an "
                               f"invalid total length {tl}")
        if o + tl > end:
            return PcapTruncated(self.path, at, f"section header block at offset {at} claims "
                                 f"{tl} bytes, only {end - o} remain")
        trail = struct.unpack_from(bo + "I", self._map, o + tl - 4)[0]
        if trail != tl:
            return PcapCorrupt(self.path, at, f"block at offset {at}: total length {tl} does "
                               f"not match its trailing copy {trail}")
        major, minor = struct.unpack_from(bo + "HH", self._map, o + 12)
        if major != 1:
            return PcapCorrupt(self.path, at, f"section header block at offset {at}: "
                               f"unsupported pcapng version {major}.{minor}")
        self._bo = bo
        self._u4 = np.dtype(bo + "u4")
        self._blk = struct.Struct(bo + "7I").unpack_from
        self._blk2 = struct.Struct(bo + "2I").unpack_from
        self._u32 = struct.Struct(bo + "I").unpack_from
        self._ifaces: list[_Iface] = []
        #: per interface: ns per timestamp unit when a plain product gives the time, else 0
        self._muls: list[int] = []
        #: per interface: its link type, and whether its packets are read (``linktype=``)
        self._lts: list[int] = []
        self._keep: list[bool] = []
        self._sec_end = o + tl
        return None

    def _interface(self, o: int, tl: int) -> None:
        """Record the Interface Description Block at ``o`` (``tl`` bytes, already checked)."""
        bo = self._bo
        buf = self._map
        linktype, _res, snaplen = struct.unpack_from(bo + "HHI", buf, o + 8)
        base, exp = _DEFAULT_TSRESOL
        offset_ns = 0
        p, stop = o + 16, o + tl - 4
        opt = struct.Struct(bo + "HH").unpack_from
        while p + 4 <= stop:
            code, length = opt(buf, p)
            p += 4
            if code == 0 or p + length > stop:
                break  # end of options (a malformed option list ends it too)
            if code == 9 and length >= 1:  # if_tsresol
                v = buf[p]
                base, exp = (2, v & 0x7F) if v & 0x80 else (10, v)
            elif code == 14 and length >= 8:  # if_tsoffset, seconds
                offset_ns = struct.unpack_from(bo + "q", buf, p)[0] * _NS
            p += (length + 3) & ~3
        iface = _Iface(linktype, snaplen, base, exp, offset_ns)
        self._ifaces.append(iface)
        self._muls.append(iface.mul if not offset_ns else 0)
        self._lts.append(linktype)
        self._keep.append(self.only_linktype is None or linktype == self.only_linktype)
        if self.linktype is None:
            self.linktype = linktype
            self.snaplen = snaplen
            self.nanosecond = exp > 6 if base == 10 else exp >= 20

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

    # -- pcapng scanning -----------------------------------------------------------------
    def _scan_ng(self, n: int, limit: int,
                 want_lt: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`_scan_pcap` for pcapng: walks blocks, applies section and interface
        blocks, returns data offsets, captured lengths and ns timestamps of packets; with
        ``want_lt`` their link types in ``_batch_lt`` (only :meth:`records` needs them:
        building them costs the fixed-size path ~10%)."""
        buf = self._map
        end = self._size
        at = self._base
        o = self._pos
        blk, u32 = self._blk, self._u32
        ifaces = self._ifaces
        doffs: list[int] = []
        caps: list[int] = []
        tss: list[int] = []
        lts: list[int] = []
        dap, cap_ap, tap, lap = doffs.append, caps.append, tss.append, lts.append
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        k = 0
        chunk = _CHUNK
        stop = min(n, chunk)
        skipped = 0
        muls, lt_of, keep = self._muls, self._lts, self._keep
        foreign = self.skipped_linktype
        path = self.path
        while True:
            try:
                bt, tl, a, b, c, d, _e = blk(buf, o)
            except struct.error:
                if o == end:
                    self._end_of_data()
                    break
                if o + 8 > end:
                    self._cut_short(PcapTruncated(
                        path, o + at, f"block header at offset {o + at} cut short: 8 bytes "
                        f"needed, only {end - o} remain"))
                    break
                bt, tl = self._blk2(buf, o)
                a = u32(buf, o + 8)[0] if o + 12 <= end else 0
                b = c = d = 0
            if bt == _SHB:
                err = self._section(o)
                if isinstance(err, PcapTruncated):
                    self._cut_short(err)
                    break
                if err is not None:
                    self._damage(err)
                    break
                blk, u32 = self._blk, self._u32
                ifaces, muls, lt_of, keep = self._ifaces, self._muls, self._lts, self._keep
                o = self._sec_end
                continue
            if tl < 12 or tl & 3 or tl > _MAX_BLOCK:
                self._damage(PcapCorrupt(path, o + at, f"block at offset {o + at} has an "
                                         f"invalid total length {tl}"))
                break
            nxt = o + tl
            if nxt > end:
                self._cut_short(PcapTruncated(path, o + at, f"block at offset {o + at} claims "
                                              f"{tl} bytes, only {end - o} remain"))
                break
            trail = u32(buf, nxt - 4)[0]
            if trail != tl:
                self._damage(PcapCorrupt(path, o + at, f"block at offset {o + at}: total "
                                         f"length {tl} does not match its trailing copy {trail}"))
                break
            if bt == _EPB or bt == _PB:
                if bt == _PB:
                    a = a & 0xFFFF if self._bo == "<" else a >> 16
                bad = (f"is too short ({tl} bytes)" if tl < 32 else
                       f"names interface {a}, the section has {len(ifaces)}"
                       if a >= len(ifaces) else
                       f"claims {d} captured bytes, the block holds {tl - 32}"
                       if d > tl - 32 else None)
                if bad is not None:
                    if self._bad_block(PcapCorrupt(path, o + at, f"packet block at offset "
                                                   f"{o + at} {bad}")):
                        o = nxt
                        continue
                    break
                if not keep[a]:
                    foreign[lt_of[a]] = foreign.get(lt_of[a], 0) + 1
                    o = nxt
                    continue
                if d > limit:
                    skipped += 1
                    o = nxt
                    continue
                if k >= stop:
                    if k >= n:
                        break
                    room = min(n - k, (end - o) // tl)
                    if (bt == _EPB and room >= _RUN_ROOM and len(doffs) >= 8
                            and o + 28 - doffs[-8] == 8 * tl):
                        # Same-sized EPBs: check the rest of the batch in one numpy pass.
                        w = np.ndarray((room, tl // 4), self._u4, self._mv, o, (tl, 4))
                        ok = ((w[:, 0] == _EPB) & (w[:, 1] == tl) & (w[:, 2] == a)
                              & (w[:, 5] == d) & (w[:, -1] == tl))
                        m = room if ok.all() else int(ok.argmin())  # >= 1: this block
                        pieces.append((np.array(doffs, dtype=np.int64),
                                       np.array(caps, dtype=np.int64), _ts_array(tss)))
                        doffs.clear()
                        caps.clear()
                        tss.clear()
                        units = ((w[:m, 3].astype(np.uint64) << _U64(32))
                                 | w[:m, 4].astype(np.uint64))
                        pieces.append((np.arange(o + 28, o + 28 + m * tl, tl, dtype=np.int64),
                                       np.full(m, d, dtype=np.int64), ifaces[a].to_ns_np(units)))
                        if want_lt:
                            lts.extend([lt_of[a]] * m)
                        o += m * tl
                        k += m
                        chunk = _CHUNK if m == room or m >= 256 else min(chunk * 2, 1 << 16)
                        stop = min(n, k + chunk)
                        continue
                    stop = min(n, k + chunk)
                dap(o + 28)
                cap_ap(d)
                units = (b << 32) | c
                mul = muls[a]
                tap(units * mul if mul else ifaces[a].to_ns(units))
                if want_lt:
                    lap(lt_of[a])
                k += 1
                o = nxt
                continue
            if bt == _SPB:
                bad = (f"is too short ({tl} bytes)" if tl < 16 else
                       "but the section has no interface" if not ifaces else None)
                if bad is not None:
                    if self._bad_block(PcapCorrupt(path, o + at, f"simple packet block at "
                                                   f"offset {o + at} {bad}")):
                        o = nxt
                        continue
                    break
                cap = min(a, tl - 16)
                snap = ifaces[0].snaplen
                if snap and cap > snap:
                    cap = snap
                if not keep[0]:
                    foreign[lt_of[0]] = foreign.get(lt_of[0], 0) + 1
                    o = nxt
                    continue
                if cap > limit:
                    skipped += 1
                    o = nxt
                    continue
                if k >= n:
                    break
                dap(o + 12)
                cap_ap(cap)
                tap(0)
                if want_lt:
                    lap(lt_of[0])
                k += 1
            elif bt == _IDB:
                if tl < 20:
                    self._damage(PcapCorrupt(path, o + at, f"interface description block "
                                             f"at offset {o + at} is too short ({tl} bytes)"))
                    break
                self._interface(o, tl)
            o = nxt
        self._pos = o
        self.skipped_oversize += skipped
        self._batch_lt = lts if want_lt else None
        if doffs or not pieces:
            pieces.append((np.array(doffs, dtype=np.int64), np.array(caps, dtype=np.int64),
                           _ts_array(tss)))
        if len(pieces) == 1:
            return pieces[0]
        return (np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]),
                np.concatenate([p[2] for p in pieces]))

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
        doff = np.empty(n, dtype=np.int64)
        cap = np.empty(n, dtype=np.int64)
        ts = np.empty(n, dtype=np.uint64)
        k, self._pos = _pcapjit.scan_pcap(self._u8, self._pos, self._size, n, self._bo == ">",
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
        if self.compiled:
            _pcapjit.fill_slots(pool.data, pool.data_len, pool.timestamp, slots, pool.headroom,
                                self._u8, doff, cap, ts)
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


# -- writer ------------------------------------------------------------------------------

_REC = struct.Struct("<IIII")


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
    """Write a classic little-endian pcap file.

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
    raise :class:`PcapWriteError`.

    Timestamps taken from the buffers (``pool.timestamp``) later than the format holds
    (32-bit seconds: 2106) are written as its last nanosecond and counted in
    ``timestamps_clamped``; explicit ``timestamp_ns`` arguments out of range raise
    :class:`ValueError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = 65535, nanosecond: bool = False, mode: str = "w") -> None:
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
        self.packets_written = 0
        self.timestamps_clamped = 0
        self.resumed_packets = self.resumed_octets = self.repaired_bytes = 0
        self._frac_div = 1 if nanosecond else 1000
        #: compiled record building (numba); False: the numpy/Python reference
        self.compiled = _pcapjit.AVAILABLE
        self._out = np.zeros(0, dtype=np.uint8)
        self._f = os.fdopen(self._open(mode), "wb", buffering=0)
        header = struct.pack("<IHHiIII", _MAGIC_NS if nanosecond else _MAGIC_US, 2, 4, 0, 0,
                             snaplen, linktype)
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
        try:
            at = f.tell()
        except OSError:                      # a pipe or device: nothing to cut back
            at = None
        try:
            done = f.write(mv)
            while done is not None and done < len(mv):
                mv = mv[done:]
                done = f.write(mv)
        except OSError as e:
            if at is not None:
                try:
                    os.ftruncate(f.fileno(), at)
                    f.seek(at)
                except OSError:
                    pass
            full = " (the disk is full)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            raise PcapWriteError(self.path, f"write failed: {e.strerror or e}{full}", e) from e

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
        sec, frac = self._split(time.time_ns() if timestamp_ns is None else timestamp_ns)
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
        if slots.min() < 0 or slots.max() >= pool.capacity:
            raise IndexError(f"write_mbufs: slot out of range for {pool.name} "
                             f"(0..{pool.capacity - 1})")
        return self._write_slots(pool, slots, timestamps_ns)

    def _timestamps(self, k: int, given: int | Sequence[int] | np.ndarray | None,
                    own: np.ndarray) -> np.ndarray:
        """``uint64`` timestamps for a batch of ``k`` (see :meth:`write_mbufs`)."""
        if given is None:
            ts = own.astype(np.uint64)
            unset = ts == _U64(NO_TIMESTAMP)      # no driver stamped it: now
            if unset.any():
                ts[unset] = time.time_ns()
            late = ts > _U64(_MAX_PCAP_NS)
            if late.any():           # read from a capture (or a driver) beyond 2106
                ts[late] = _MAX_PCAP_NS
                self.timestamps_clamped += int(late.sum())
            return ts
        if isinstance(given, (int, np.integer)):
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
        if timestamps_ns is None and self.compiled:
            return self._write_compiled(pool, slots)
        ts = self._timestamps(k, timestamps_ns, pool.timestamp[slots])
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
        buffer kept between bursts (sized for the longest burst so far)."""
        k = slots.size
        need = k * (16 + min(pool.stride, self.snaplen))    # a frame fits in its row
        if self._out.size < need:
            self._out = np.empty(need, dtype=np.uint8)
        size, clamped = _pcapjit.build_pcap(pool.data, pool.data_off, pool.data_len,
                                            pool.timestamp, slots, self.snaplen,
                                            self._frac_div, _U64(time.time_ns()), _U64(_MAX_PCAP_NS),
                                            self._out)
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
        return self._f.closed

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PcapWriter({self.path!r}, linktype={self.linktype}, "
                f"{'ns' if self.nanosecond else 'us'}, packets_written={self.packets_written})")

