"""Internet checksums (RFC 1071) and their incremental update (RFC 1624).

The ones'-complement sum of 16-bit words equals the big-endian integer of the data modulo
0xFFFF (2**16 ≡ 1 mod 0xFFFF), so a whole sum is one ``int.from_bytes`` and one ``%`` in C,
instead of a Python loop per word.  Sums here are kept in ``[0, 0xFFFE]`` (0 stands for both
ones'-complement zeros); every checksum over real headers is non-zero data, so the final
checksum is exact.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "ones_sum",
    "finish",
    "checksum",
    "update",
    "pseudo_header_sum",
    "verify",
]

_M = 0xFFFF


def ones_sum(data: "bytes | bytearray | memoryview", start: int = 0) -> int:
    """Ones'-complement sum of ``data`` as 16-bit big-endian words, plus ``start``.

    An odd final byte counts as the high byte of a last word (RFC 1071).
    """
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    return (n + start) % _M


def finish(total: int) -> int:
    """The checksum field value for a ones'-complement sum: its complement."""
    return (-total) % _M


def checksum(data: "bytes | bytearray | memoryview", start: int = 0) -> int:
    """RFC 1071 checksum of ``data`` (with a pseudo-header sum ``start``).

    All-zero input sums to +0, whose complement is 0xFFFF; any other input whose sum is
    a ones'-complement zero sums to -0 (0xFFFF), whose complement is 0.  The modular sum
    cannot tell the two apart, so the all-zero case is checked explicitly.
    """
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    n += start
    return (-n) % _M if n else _M


def update(old_checksum: int, old_sum: int, new_sum: int) -> int:
    """RFC 1624: the checksum after data summing to ``old_sum`` became ``new_sum``.

    ``old_sum``/``new_sum`` are sums of the changed 16-bit words (any integers congruent
    to them modulo 0xFFFF will do).  Computed as ``HC - (m' - m)`` modulo 0xFFFF, which is
    eqn. 3 of RFC 1624 and gives exactly what a full recomputation gives.
    """
    return (old_checksum - (new_sum - old_sum)) % _M


def pseudo_header_sum(src: "IPv4Address | IPv6Address | bytes", dst: "IPv4Address | IPv6Address | bytes",
                      protocol: int, length: int) -> int:
    """Sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793, RFC 8200 §8.1), not complemented."""
    s = src.packed if isinstance(src, (IPv4Address, IPv6Address)) else bytes(src)
    d = dst.packed if isinstance(dst, (IPv4Address, IPv6Address)) else bytes(dst)
    return (int.from_bytes(s, "big") + int.from_bytes(d, "big") + protocol + length) % _M


def verify(data: "bytes | bytearray | memoryview", start: int = 0) -> bool:
    """True when ``data`` (checksum field included) sums to ones'-complement zero."""
    return ones_sum(data, start) == 0
