"""What type checkers see of a declared header field (nothing here runs in a packet path).

The accessors of a :class:`~nfkit.packets.fields.Field` are generated at class creation, so
mypy and editors cannot see them.  Each header class therefore carries a generated block

    if _ft.TYPE_CHECKING:
        ttl = _ft.Int()
        src = _ft.Ip4()

written by ``python -m nfkit.packets._stubs`` from its ``FIELDS`` (and checked to be up to
date by tests/test_typing.py).  The block never runs; for a type checker each name is a
descriptor whose ``__get__``/``__set__`` give the accessor's types: ``ip.ttl`` is an ``int``,
``eth.src`` a :class:`~nfkit.net.MacAddr` that accepts text, ints and bytes when set.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any, Generic, SupportsIndex, TypeVar, Union, overload

from ..net import MacAddr

__all__ = ["TYPE_CHECKING", "Accessor", "Int", "Flag", "Mac", "Ip4", "Ip6", "KIND_TYPES"]

G = TypeVar("G")
S = TypeVar("S")

_Bytes = Union[bytes, bytearray, memoryview]


class Accessor(Generic[G, S]):
    """A field accessor as type checkers see it: reads give ``G``, writes take ``S``."""

    @overload
    def __get__(self, obj: None, owner: Any) -> property: ...
    @overload
    def __get__(self, obj: object, owner: Any) -> G: ...

    def __get__(self, obj: object, owner: Any) -> Any:
        raise NotImplementedError  # typing only: the real accessors are properties

    def __set__(self, obj: object, value: S) -> None:
        raise NotImplementedError


# One per Field kind (fields.KINDS); the setters take what nfkit.net's conversions take.
Int = Accessor[int, SupportsIndex]
Flag = Accessor[bool, Union[bool, int]]
Mac = Accessor[MacAddr, Union[str, int, _Bytes]]
Ip4 = Accessor[IPv4Address, Union[IPv4Address, str, int, _Bytes]]
Ip6 = Accessor[IPv6Address, Union[IPv6Address, str, int, _Bytes]]

#: Field.kind -> the alias above the generated blocks use.
KIND_TYPES = {"int": "Int", "flag": "Flag", "mac": "Mac", "ipv4": "Ip4", "ipv6": "Ip6"}
