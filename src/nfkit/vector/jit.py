"""JIT kernels: a per-packet loop over the raw mempool arrays, compiled once with numba.

Some logic is per packet by nature (stateful NAT, parsers with branches) and numpy columns
express it poorly.  A kernel is a plain Python function over the pool's arrays::

    @nfkit.vector.kernel
    def l2fwd(data, slots, data_off, data_len, keep):
        for i in range(slots.shape[0]):
            s = slots[i]
            o = data_off[s]
            for k in range(6):
                t = data[s, o + k]
                data[s, o + k] = data[s, o + 6 + k]
                data[s, o + 6 + k] = t

    pipeline = Poll(q).map(l2fwd).send(q)

``data`` is ``pool.data`` (one row per buffer), ``slots`` the burst, ``data_off`` /
``data_len`` the pool's metadata arrays, ``keep`` a boolean array (all True) the kernel
clears for packets to drop.  Extra arrays (tables, counters) are bound with
``kernel.bind(*arrays)`` and passed after ``keep``.

With numba installed (``pip install nfkit[jit]``) the function is compiled on first use;
without it the very same function runs as Python, with the same results, only slower.
The helpers below (``be16``, ``put_be16``, ``csum_adjust``...) are kernels' building blocks
and are compiled the same way.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from ..packets.constants import (IPV6_EXT_UNIT, IPV6_EXTENSION_HEADERS, MAX_IPV6_EXT, MAX_VLAN_TAGS,
                                 VLAN_TPIDS)
from ._classify import ETH, TCP, UDP, V4, V6
from . import _classify

__all__ = ["kernel", "Kernel", "HAVE_NUMBA", "be16", "put_be16", "csum_adjust", "flow_key", "classified_flow_key", "NOT_IP",
           "FLOW_IPV4", "FLOW_IPV6", "MALFORMED"]

log = logging.getLogger("nfkit.vector.jit")

try:  # numba is optional
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    numba = None
    HAVE_NUMBA = False


def _jit(f: Callable[..., Any]) -> Callable[..., Any]:
    return numba.njit(cache=False, nogil=True)(f) if HAVE_NUMBA else f


@_jit
def be16(data: np.ndarray, s: int, pos: int) -> int:
    """The big-endian 16-bit value at ``pos`` of row ``s``."""
    return (np.int64(data[s, pos]) << 8) | np.int64(data[s, pos + 1])


@_jit
def put_be16(data: np.ndarray, s: int, pos: int, v: int) -> None:
    """Write ``v`` as a big-endian 16-bit word at byte ``pos`` of slot ``s``."""
    data[s, pos] = (v >> 8) & 0xFF
    data[s, pos + 1] = v & 0xFF


@_jit
def csum_adjust(data: np.ndarray, s: int, pos: int, delta: int) -> None:
    """The words a checksum at ``pos`` covers grew by ``delta``: adjust it (RFC 1624,
    modular form, as the per-packet setters do)."""
    hc = be16(data, s, pos)
    put_be16(data, s, pos, (hc - delta) % 0xFFFF)


_DISPATCHERS: dict[Callable[..., Any], Any] = {}


class Kernel:
    """A compiled (or, without numba, plain) per-packet function over a burst."""

    __nfkit_kernel__ = True

    def __init__(self, fn: Callable[..., Any], extra: tuple[Any, ...] = (), compiled: Any = None,
                 classified: bool = False, restructures: bool = True) -> None:
        self.py_func = fn
        self.extra = extra
        self._compiled = compiled
        #: the kernel takes the burst's classification (``pool.meta``) after ``keep``
        self.classified = classified
        #: the kernel may move, resize or retype headers (False: it promises not to, and a
        #: pipeline's next vector stage reuses the burst's classification)
        self.restructures = restructures
        self._keep = np.ones(256, dtype=np.bool_)
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)

    @property
    def compiled(self) -> Callable[..., Any]:
        """The numba-compiled function (compiled on first use), or the Python one."""
        if self._compiled is None:
            # one numba dispatcher per function, shared by every bound copy (a kernel bound
            # again, e.g. once per core or per table, must not compile again)
            d = _DISPATCHERS.get(self.py_func)
            if d is None:
                d = _DISPATCHERS[self.py_func] = _jit(self.py_func)
            self._compiled = d
        return self._compiled

    def bind(self, *arrays: Any) -> "Kernel":
        """The same kernel with extra arguments (tables, state) passed after ``keep``."""
        return Kernel(self.py_func, self.extra + arrays, self._compiled, self.classified,
                      self.restructures)

    def run(self, pool: Any, slots: np.ndarray, python: bool = False,
            records: np.ndarray | None = None) -> np.ndarray:
        """Run over ``slots`` of ``pool``; returns the keep mask -- a view of a buffer the
        kernel reuses, valid until its next run (copy it to keep it).  ``records``: the
        burst's classification if it has one (a kernel that takes it gets it in
        ``pool.meta``; without, the burst is classified first)."""
        n = len(slots)
        if n > len(self._keep):
            self._keep = np.ones(max(n, 2 * len(self._keep)), dtype=np.bool_)
        keep = self._keep[:n]           # reused: the caller consumes it before the next run
        keep.fill(True)
        extra = self.extra
        if self.classified:
            if records is None:
                _classify.classify(pool, slots, compiled=not python, store=True)
            else:
                pool.meta[slots] = records
            extra = (pool.meta,) + extra
        if python or not HAVE_NUMBA:
            # as Python: integer arithmetic wraps silently, as it does compiled
            with np.errstate(over="ignore"):
                self.py_func(pool.data, slots, pool.data_off, pool.data_len, keep, *extra)
        else:
            self.compiled(pool.data, slots, pool.data_off, pool.data_len, keep, *extra)
        return keep

    def __call__(self, *args: Any) -> Any:
        return self.compiled(*args)

    def __repr__(self) -> str:
        return f"<nfkit kernel {self.__qualname__}{' (numba)' if HAVE_NUMBA else ' (python)'}>"


def kernel(fn: Callable[..., Any] | None = None, *, classified: bool = False,
           restructures: bool = True) -> Any:
    """Make ``fn(data, slots, data_off, data_len, keep, *extra)`` a pipeline kernel.

    ``@kernel(classified=True)``: ``fn(data, slots, data_off, data_len, keep, meta, *extra)``
    gets the burst's classification, ``meta[slot]`` a :data:`~nfkit.buffers.CLASSIFICATION`
    record (read it with :func:`classified_flow_key`), computed once per burst however many
    stages read it.  ``restructures=False``: the kernel only rewrites fields the
    classification does not read (addresses, ports, TTLs, checksums, MACs) and moves no
    header, so the burst stays classified for the stages after it."""
    if fn is None:
        return lambda f: Kernel(f, classified=classified, restructures=restructures)
    return Kernel(fn, classified=classified, restructures=restructures)


# -- parsing inside kernels -----------------------------------------------------------------

#: ``flow_key`` status: the frame is not IP (ARP, LLDP...), IPv4, IPv6, or malformed (too
#: short for Ethernet, a VLAN tag or IP header cut or inconsistent, a TCP/UDP header cut).
NOT_IP, FLOW_IPV4, FLOW_IPV6, MALFORMED = 0, 4, 6, -1


@_jit
def _be32(data: np.ndarray, s: int, pos: int) -> int:
    return ((np.int64(data[s, pos]) << 24) | (np.int64(data[s, pos + 1]) << 16)
            | (np.int64(data[s, pos + 2]) << 8) | np.int64(data[s, pos + 3]))


@_jit
def _be64(data: np.ndarray, s: int, pos: int) -> np.uint64:
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(data[s, pos + k])
    return v


@_jit
def _key(data: np.ndarray, s: int, o: int, et: int, l3: int, l4: int, proto: int, flags: int):  # noqa: ANN202
    """The flow key of a classified frame (see :func:`flow_key`)."""
    z = np.uint64(0)
    if not flags & ETH:
        return MALFORMED, -1, 0, 0, z, z, z, z, -1, -1
    if not flags & (V4 | V6):
        return (MALFORMED if et == 0x0800 or et == 0x86DD else NOT_IP), -1, l3, 0, z, z, z, z, -1, -1
    if flags & V4:
        status = FLOW_IPV4
        src_hi, dst_hi = z, z
        src_lo = np.uint64(_be32(data, s, o + l3 + 12))
        dst_lo = np.uint64(_be32(data, s, o + l3 + 16))
    else:
        status = FLOW_IPV6
        src_hi, src_lo = _be64(data, s, o + l3 + 8), _be64(data, s, o + l3 + 16)
        dst_hi, dst_lo = _be64(data, s, o + l3 + 24), _be64(data, s, o + l3 + 32)
    if (proto == 6 and not flags & TCP) or (proto == 17 and not flags & UDP):
        return MALFORMED, proto, l3, l4, src_hi, src_lo, dst_hi, dst_lo, -1, -1
    if proto == 6 or proto == 17:
        return (status, proto, l3, l4, src_hi, src_lo, dst_hi, dst_lo, be16(data, s, o + l4),
                be16(data, s, o + l4 + 2))
    return status, proto, l3, l4, src_hi, src_lo, dst_hi, dst_lo, -1, -1


@_jit
def flow_key(data: np.ndarray, s: int, o: int, n: int):  # noqa: ANN201
    """Classify the frame at ``data[s, o:o + n]`` as :class:`~nfkit.vector.BatchView` does
    (VLAN tags, IPv4 options, IPv6 extension headers, fragments) and return its flow key::

        (status, proto, l3, l4, src_hi, src_lo, dst_hi, dst_lo, src_port, dst_port)

    ``status`` is NOT_IP, FLOW_IPV4, FLOW_IPV6 or MALFORMED; ``l3``/``l4`` are offsets from
    ``o``; addresses are 128-bit as two uint64 halves (IPv4: ``src_lo`` only); ``proto``
    is the transport protocol after the extension headers, -1 for a non-initial fragment
    or an unfinished extension chain; ports are -1 unless the packet carries a whole
    TCP or UDP header.  Every read is bounded by ``n``.  The same rules as the burst
    classifier's walk (:func:`nfkit.vector._classify.walk_py`; the tests hold the two equal),
    written out again: calling the walk made this 1.7x slower (a kernel over 256 packets
    5.2 -> 9 us, measured); a kernel declared ``classified=True`` reads the burst's
    classification instead (:func:`classified_flow_key`).
    """
    z = np.uint64(0)
    if n < 14:
        return MALFORMED, -1, 0, 0, z, z, z, z, -1, -1
    et_off = 12
    et = be16(data, s, o + 12)
    for _ in range(MAX_VLAN_TAGS):
        if et not in VLAN_TPIDS:
            break
        if n < et_off + 6:
            break
        et_off += 4
        et = be16(data, s, o + et_off)
    if et in VLAN_TPIDS:
        return MALFORMED, -1, 0, 0, z, z, z, z, -1, -1
    l3 = et_off + 2
    if et == 0x0800:
        if n < l3 + 20:
            return MALFORMED, -1, l3, 0, z, z, z, z, -1, -1
        vi = data[s, o + l3]
        ihl = np.int64(vi & 0x0F) * 4       # as Python, a uint8 here made end - l4 overflow
        tl = be16(data, s, o + l3 + 2)
        if vi >> 4 != 4 or ihl < 20 or l3 + ihl > n or (tl != 0 and (tl < ihl or l3 + tl > n)):
            return MALFORMED, -1, l3, 0, z, z, z, z, -1, -1
        end = l3 + tl if tl > 0 else n
        proto = np.int64(data[s, o + l3 + 9])
        if be16(data, s, o + l3 + 6) & 0x1FFF:
            proto = -1
        status = FLOW_IPV4
        src_hi, dst_hi = z, z
        src_lo = np.uint64(_be32(data, s, o + l3 + 12))
        dst_lo = np.uint64(_be32(data, s, o + l3 + 16))
        l4 = l3 + ihl
    elif et == 0x86DD:
        if n < l3 + 40:
            return MALFORMED, -1, l3, 0, z, z, z, z, -1, -1
        pl = be16(data, s, o + l3 + 4)
        if data[s, o + l3] >> 4 != 6 or (pl != 0 and l3 + 40 + pl > n):
            return MALFORMED, -1, l3, 0, z, z, z, z, -1, -1
        end = l3 + 40 + pl if pl > 0 else n
        proto = np.int64(data[s, o + l3 + 6])
        status = FLOW_IPV6
        src_hi, src_lo = _be64(data, s, o + l3 + 8), _be64(data, s, o + l3 + 16)
        dst_hi, dst_lo = _be64(data, s, o + l3 + 24), _be64(data, s, o + l3 + 32)
        l4 = l3 + 40
        initial = True
        for _ in range(MAX_IPV6_EXT):
            if proto not in IPV6_EXTENSION_HEADERS or l4 + IPV6_EXT_UNIT > end:
                break
            if proto == 44:
                if be16(data, s, o + l4 + 2) & 0xFFF8:
                    initial = False
                size = 8
            else:
                size = (np.int64(data[s, o + l4 + 1]) + 1) * 8
            proto = np.int64(data[s, o + l4])
            l4 += size
        if proto in IPV6_EXTENSION_HEADERS or not initial or l4 > end:
            proto = -1
    else:
        return NOT_IP, -1, l3, 0, z, z, z, z, -1, -1
    if l4 > end:
        proto = -1
    sport = -1
    dport = -1
    avail = end - l4
    if proto == 6:
        if avail < 20 or (data[s, o + l4 + 12] >> 4) * 4 < 20 or (data[s, o + l4 + 12] >> 4) * 4 > avail:
            return MALFORMED, proto, l3, l4, src_hi, src_lo, dst_hi, dst_lo, -1, -1
        sport, dport = be16(data, s, o + l4), be16(data, s, o + l4 + 2)
    elif proto == 17:
        if avail < 8:
            return MALFORMED, proto, l3, l4, src_hi, src_lo, dst_hi, dst_lo, -1, -1
        sport, dport = be16(data, s, o + l4), be16(data, s, o + l4 + 2)
    return status, proto, l3, l4, src_hi, src_lo, dst_hi, dst_lo, sport, dport


@_jit
def classified_flow_key(data: np.ndarray, meta: np.ndarray, s: int, o: int):  # noqa: ANN201
    """:func:`flow_key` of slot ``s`` (its packet at ``o = data_off[s]``) from the burst's
    classification ``meta`` (a ``classified=True`` kernel's argument): no walk, only the
    address and port reads."""
    r = meta[s]
    flags = ((ETH if r["eth_valid"] else 0) | (V4 if r["ipv4_valid"] else 0)
             | (V6 if r["ipv6_valid"] else 0) | (TCP if r["tcp_valid"] else 0)
             | (UDP if r["udp_valid"] else 0))
    return _key(data, s, o, r["ether_type"], r["l3"], r["l4"], r["l4_proto"], flags)
