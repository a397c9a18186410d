"""Address helpers: a small :class:`MacAddr` type and conversions to the standard library's.

IP addresses and networks are the standard library's :mod:`ipaddress` types; nfkit only adds
what it lacks, a MAC address.  Setters across nfkit accept an address object, its text form,
its integer value or its packed bytes, converted by the functions here.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Union

from .errors import FieldValueError

__all__ = ["MacAddr", "IPv4Address", "IPv6Address", "to_mac", "to_ipv4", "to_ipv6", "AddrLike"]

AddrLike = Union[str, int, bytes, bytearray, memoryview, IPv4Address, IPv6Address]
_HEX = set("0123456789abcdefABCDEF")


class MacAddr(bytes):
    """A 48-bit Ethernet address: immutable 6 bytes that print as ``aa:bb:cc:dd:ee:ff``.

    ``MacAddr("aa:bb:cc:dd:ee:ff")`` (``-`` also accepted), ``MacAddr(b"\\xaa...")`` and
    ``MacAddr(0xaabbccddeeff)`` all work; anything else raises :class:`FieldValueError`
    (unlike capsule, a bad octet is never skipped silently).
    """

    __slots__ = ()

    def __new__(cls, value: "str | int | bytes | bytearray | memoryview" = b"\0" * 6) -> "MacAddr":
        if isinstance(value, str):
            parts = value.replace("-", ":").split(":")
            if len(parts) != 6 or any(not 1 <= len(p) <= 2 or not set(p) <= _HEX for p in parts):
                raise FieldValueError(f"{value!r} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
            return super().__new__(cls, bytes(int(p, 16) for p in parts))
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < 1 << 48:
                raise FieldValueError(f"{value:#x} does not fit a 48-bit MAC address")
            return super().__new__(cls, value.to_bytes(6, "big"))
        if isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) != 6:
                raise FieldValueError(f"a MAC address is 6 bytes, got {len(value)}")
            return super().__new__(cls, value)
        raise FieldValueError(f"cannot make a MAC address from {type(value).__name__}")

    BROADCAST: "MacAddr"
    UNSPECIFIED: "MacAddr"

    def __str__(self) -> str:
        return self.hex(":")

    def __repr__(self) -> str:
        return f"MacAddr('{self.hex(':')}')"

    # No __int__: it would make bytearray/memoryview slice assignment refuse MacAddr values.
    def to_int(self) -> int:
        """The address as a 48-bit integer (big-endian: ``02:00:00:00:00:01`` is ``0x020000000001``)."""
        return int.from_bytes(self, "big")

    @property
    def is_multicast(self) -> bool:
        """True for group addresses (the I/G bit of the first octet), broadcast included."""
        return bool(self[0] & 1)

    @property
    def is_broadcast(self) -> bool:
        """True for ``ff:ff:ff:ff:ff:ff``."""
        return self == b"\xff" * 6


MacAddr.BROADCAST = MacAddr(b"\xff" * 6)
MacAddr.UNSPECIFIED = MacAddr(b"\0" * 6)


def to_mac(value: object) -> bytes:
    """Convert a MAC-like value to its 6 packed bytes."""
    if isinstance(value, MacAddr):
        return value
    return MacAddr(value)  # type: ignore[arg-type]


def to_ipv4(value: object) -> int:
    """Convert an IPv4-like value (address, text, int, 4 bytes) to its integer value."""
    try:
        if isinstance(value, IPv4Address):
            return int(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) != 4:
                raise FieldValueError(f"an IPv4 address is 4 bytes, got {len(value)}")
            return int.from_bytes(value, "big")
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return int(IPv4Address(value))
    except ValueError as exc:  # ipaddress.AddressValueError is a ValueError
        raise FieldValueError(f"{value!r} is not an IPv4 address: {exc}") from None
    raise FieldValueError(f"{value!r} is not an IPv4 address")


def to_ipv6(value: object) -> bytes:
    """Convert an IPv6-like value (address, text, int, 16 bytes) to its 16 packed bytes."""
    try:
        if isinstance(value, IPv6Address):
            return value.packed
        if isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) != 16:
                raise FieldValueError(f"an IPv6 address is 16 bytes, got {len(value)}")
            return bytes(value)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return IPv6Address(value).packed
    except ValueError as exc:
        raise FieldValueError(f"{value!r} is not an IPv6 address: {exc}") from None
    raise FieldValueError(f"{value!r} is not an IPv6 address")
