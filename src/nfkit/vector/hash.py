"""The Toeplitz hash of NIC receive-side scaling (RSS), vectorized over a batch.

What and why
------------
A NIC spreads received packets over its queues by hashing each packet's addresses (and
ports) with the Toeplitz hash under a secret key, then indexing an indirection table with
the low bits.  A software NF that wants to shard flows exactly as the hardware does (or to
predict which queue a flow lands on, or to emulate RSS on a port without it) needs the same
hash, and needs it for a whole batch of packets at once.

The hash
--------
For an input of ``L`` bytes (``8L`` bits, most significant bit of byte 0 first) and a key of
at least ``L + 4`` bytes, input bit ``i`` selects the 32-bit window of the key that starts at
key bit ``i``; the hash is the XOR of the selected windows.

The algorithm here
------------------
The hash is linear over GF(2), so the contribution of byte ``p`` depends only on ``p`` and the
byte's value.  For each byte position ``p`` we precompute a 256-entry ``uint32`` table whose
entry ``v`` is the XOR of the windows ``8p + b`` for the set bits ``b`` of ``v``.  The hash of a
row is then the XOR of ``L`` table lookups; for a batch that is one gather into the ``L``
stacked tables, giving an ``(N, L)`` array, and one ``np.bitwise_xor.reduce`` along the rows.
There is no Python loop per packet.  The tables (``L * 1 KiB``) are cached per ``(key, L)``.

Building the input like a NIC
-----------------------------
Microsoft's RSS specification hashes, in network byte order, the source address, the
destination address, then (for TCP/UDP) the source port and the destination port:
12 bytes for IPv4 with ports, 8 without, 36 for IPv6 with ports, 32 without.
:func:`rss_input_ipv4` and :func:`rss_input_ipv6` build those rows from columns.

Symmetric RSS
-------------
If the key repeats with a period of 16 bits (``0x6d5a`` repeated, :data:`SYMMETRIC_RSS_KEY`),
the key window at bit ``i`` equals the window at bit ``i + 16k``.  Swapping source and
destination moves each address by 32 (IPv4) or 128 (IPv6) bits and each port by 16 bits,
all multiples of 16, so the same set of windows is XORed: both directions of a flow hash
alike and land on the same queue.  The price is a weaker hash (e.g. ``a ^ b`` symmetric
inputs collide more), which is usually acceptable for flow sharding.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "DEFAULT_RSS_KEY",
    "SYMMETRIC_RSS_KEY",
    "symmetric_key",
    "toeplitz",
    "toeplitz_tables",
    "rss_input_ipv4",
    "rss_input_ipv6",
    "rss_hash_ipv4",
    "rss_hash_ipv6",
]

DEFAULT_RSS_KEY: bytes = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa"
)
"""The 40-byte key of Microsoft's RSS verification suite (the default of many NICs)."""


def symmetric_key(length: int = 40) -> bytes:
    """A key of ``length`` bytes (even) repeating ``0x6d5a``: both flow directions hash alike.

    Any key whose bytes repeat with period 2 is symmetric (see the module docstring); the
    ``0x6d5a`` pattern is the one commonly used with NICs that take a programmable key.
    """
    if length < 4 or length % 2:
        raise ValueError(f"symmetric RSS key length must be even and >= 4, got {length}")
    return b"\x6d\x5a" * (length // 2)


SYMMETRIC_RSS_KEY: bytes = symmetric_key(40)
"""The 40-byte symmetric key ``0x6d5a`` repeated."""


def _as_key(key: bytes | bytearray | memoryview) -> bytes:
    """The key as immutable ``bytes`` (so it can be a cache key)."""
    return bytes(key)


@lru_cache(maxsize=64)
def _tables(key: bytes, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-byte lookup tables for inputs of ``length`` bytes under ``key``.

    Returns ``(tables, offsets)``: ``tables`` is the ``(length * 256,)`` flat ``uint32`` array
    of the ``length`` stacked 256-entry tables, ``offsets[p] == 256 * p``.  Both read-only.
    """
    if len(key) < length + 4:
        raise ValueError(
            f"a Toeplitz key must be at least {length + 4} bytes for {length}-byte inputs, "
            f"got {len(key)}"
        )
    nbits = 8 * len(key)
    k = int.from_bytes(key, "big")
    # windows[i]: the 32 key bits starting at key bit i (bit 0 = MSB of key byte 0).
    windows = np.array(
        [(k >> (nbits - 32 - i)) & 0xFFFFFFFF for i in range(8 * length)], dtype=np.uint32
    ).reshape(length, 8)
    values = np.arange(256, dtype=np.uint32)
    tables = np.zeros((length, 256), dtype=np.uint32)
    for b in range(8):  # b = 0 is the most significant bit of the byte
        selected = ((values >> np.uint32(7 - b)) & np.uint32(1)).astype(bool)
        tables ^= np.where(selected[None, :], windows[:, b : b + 1], np.uint32(0))
    flat = tables.reshape(-1)
    offsets = np.arange(length, dtype=np.intp) * 256
    flat.setflags(write=False)
    offsets.setflags(write=False)
    return flat, offsets


def toeplitz_tables(length: int, key: bytes | bytearray | memoryview = DEFAULT_RSS_KEY) -> np.ndarray:
    """The ``(length, 256)`` ``uint32`` byte tables of ``key`` (read-only, cached).

    Entry ``[p, v]`` is the hash contribution of byte value ``v`` at byte position ``p``.
    """
    flat, _ = _tables(_as_key(key), int(length))
    return flat.reshape(int(length), 256)


def toeplitz(
    data: np.ndarray | bytes | bytearray | memoryview,
    key: bytes | bytearray | memoryview = DEFAULT_RSS_KEY,
) -> np.ndarray:
    """The Toeplitz hash of each row of ``data`` under ``key``, as a ``(N,)`` ``uint32`` array.

    ``data`` is an ``(N, L)`` ``uint8`` array (one input per row); a 1-D array or a
    bytes-like object is a batch of one row.  ``key`` must be at least ``L + 4`` bytes.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        rows = np.frombuffer(bytes(data), dtype=np.uint8).reshape(1, -1)
    else:
        rows = np.asarray(data)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            raise ValueError(f"toeplitz input must be (N, L), got shape {rows.shape}")
        if rows.dtype != np.uint8:
            raise TypeError(f"toeplitz input must be uint8, got {rows.dtype}")
    n, length = rows.shape
    flat, offsets = _tables(_as_key(key), length)
    if n == 0 or length == 0:
        return np.zeros(n, dtype=np.uint32)
    gathered = flat[rows + offsets]  # (N, L) uint32: one gather for the whole batch
    return np.bitwise_xor.reduce(gathered, axis=1)


def _column(values: object, dtype: str, bits: int, name: str) -> np.ndarray:
    """``values`` as a 1-D array of unsigned ``bits``-bit integers in ``dtype`` (big-endian)."""
    a = np.atleast_1d(np.asarray(values))
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D column, got shape {a.shape}")
    if a.size and a.dtype.kind not in "ui":
        raise TypeError(f"{name} must be integers, got {a.dtype}")
    if a.size and (a.dtype.kind == "i" or a.dtype.itemsize * 8 > bits):
        if int(a.min()) < 0 or int(a.max()) >> bits:
            raise ValueError(f"{name} out of range for {bits}-bit values")
    return a.astype(dtype)


def _addr4(values: object, name: str) -> np.ndarray:
    """IPv4 addresses as ``(N, 4)`` bytes in network order.

    Accepts a column of integers (``uint32``, host value) or an ``(N, 4)`` ``uint8`` array
    already in network order.
    """
    a = np.asarray(values)
    if a.ndim == 2:
        if a.shape[1] != 4 or a.dtype != np.uint8:
            raise ValueError(f"{name}: 2-D IPv4 addresses must be (N, 4) uint8, got {a.shape} {a.dtype}")
        return a
    return _column(a, ">u4", 32, name).view(np.uint8).reshape(-1, 4)


def _addr6(values: object, name: str) -> np.ndarray:
    """IPv6 addresses as ``(N, 16)`` ``uint8`` (network order); a single ``(16,)`` row is allowed."""
    a = np.asarray(values)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != 16 or a.dtype != np.uint8:
        raise ValueError(f"{name}: IPv6 addresses must be (N, 16) uint8, got {a.shape} {a.dtype}")
    return a


def _ports(sport: object, dport: object) -> list[np.ndarray]:
    """The port columns as ``(N, 2)`` network-order bytes, or ``[]`` when both are ``None``."""
    if sport is None and dport is None:
        return []
    if sport is None or dport is None:
        raise ValueError("give both sport and dport, or neither")
    return [
        _column(sport, ">u2", 16, "sport").view(np.uint8).reshape(-1, 2),
        _column(dport, ">u2", 16, "dport").view(np.uint8).reshape(-1, 2),
    ]


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate byte columns side by side, broadcasting batches of one row."""
    n = max(p.shape[0] for p in parts)
    for p in parts:
        if p.shape[0] not in (1, n):
            raise ValueError(f"column lengths differ: {sorted({q.shape[0] for q in parts})}")
    width = sum(p.shape[1] for p in parts)
    out = np.empty((n, width), dtype=np.uint8)
    col = 0
    for p in parts:
        out[:, col : col + p.shape[1]] = p
        col += p.shape[1]
    return out


def rss_input_ipv4(
    src: object, dst: object, sport: object = None, dport: object = None
) -> np.ndarray:
    """RSS input rows for IPv4: ``src, dst[, sport, dport]`` in network order.

    ``src``/``dst`` are integer columns (e.g. ``uint32``) or ``(N, 4)`` ``uint8`` arrays;
    ports are integer columns.  Returns ``(N, 8)`` without ports, ``(N, 12)`` with.
    Columns of length 1 (or scalars) broadcast against the others.
    """
    return _concat([_addr4(src, "src"), _addr4(dst, "dst"), *_ports(sport, dport)])


def rss_input_ipv6(
    src16: object, dst16: object, sport: object = None, dport: object = None
) -> np.ndarray:
    """RSS input rows for IPv6: ``src, dst[, sport, dport]`` in network order.

    ``src16``/``dst16`` are ``(N, 16)`` ``uint8`` arrays.  Returns ``(N, 32)`` without ports,
    ``(N, 36)`` with.  Columns of length 1 broadcast against the others.
    """
    return _concat([_addr6(src16, "src16"), _addr6(dst16, "dst16"), *_ports(sport, dport)])


def rss_hash_ipv4(
    src: object,
    dst: object,
    sport: object = None,
    dport: object = None,
    key: bytes | bytearray | memoryview = DEFAULT_RSS_KEY,
) -> np.ndarray:
    """The RSS hash (``uint32``) of IPv4 packets, with ports when both are given."""
    return toeplitz(rss_input_ipv4(src, dst, sport, dport), key)


def rss_hash_ipv6(
    src16: object,
    dst16: object,
    sport: object = None,
    dport: object = None,
    key: bytes | bytearray | memoryview = DEFAULT_RSS_KEY,
) -> np.ndarray:
    """The RSS hash (``uint32``) of IPv6 packets, with ports when both are given."""
    return toeplitz(rss_input_ipv6(src16, dst16, sport, dport), key)
