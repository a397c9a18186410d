"""What the capture-file modules share: format constants, the errors, timestamp
conversion, byte windows and the pcapng interface record."""

from __future__ import annotations

import numpy as np

from ..errors import NfkitError

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
