"""ICMPv6 (RFC 4443): the generic header and the echo and error messages.

The model is shared with ICMPv4 (:mod:`nfkit.packets.icmp`): a generic :class:`Icmpv6` header that
parses any type, concrete message classes whose ``header_len`` covers their fixed body, and
``downcast``.  The checksum includes the IPv6 pseudo-header (RFC 8200 8.1), taken from the
envelope, so it is right over extension headers (a routing header's final destination)
and stays right when the IPv6 addresses change.  NDP messages are in
:mod:`nfkit.packets.ndp`.

Error messages reconcile by trimming the IPv6 packet to 1280 bytes (RFC 4443 2.4 (c)), as
capsule does.  Unlike capsule, ``Icmpv6Type`` prints Destination Unreachable by name, and
Parameter Problem exists.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

from .constants import IPV6_MIN_MTU, IpProtocol
from .fields import U8, U16, U32
from .icmp import ECHO_FIELDS, DataMixin, EchoMixin, IcmpMessage
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Icmpv6Type", "Icmpv6", "EchoRequest", "EchoReply", "DestinationUnreachable",
           "PacketTooBig", "TimeExceeded", "ParameterProblem"]


class Icmpv6Type(IntEnum):
    """ICMPv6 message types (IANA); ``str()`` gives the RFC name (every one of them,
    Destination Unreachable included)."""

    DESTINATION_UNREACHABLE = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAMETER_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136
    REDIRECT = 137

    def __str__(self) -> str:
        return self.name.replace("_", " ").title()


_UNREACH_CODES = {0: "no route", 1: "administratively prohibited", 2: "beyond scope",
                  3: "address unreachable", 4: "port unreachable",
                  5: "source address failed policy", 6: "reject route"}
_PARAM_CODES = {0: "erroneous header field", 1: "unrecognized next header",
                2: "unrecognized option"}


class Icmpv6(IcmpMessage):
    """The generic ICMPv6 header: type, code, checksum.  Any type parses; it cannot be
    pushed (push a message class).  The checksum covers the IPv6 pseudo-header and the
    whole message."""

    __slots__ = ()
    NAME = "ICMPv6"
    IP_PROTOCOL = IpProtocol.ICMPV6
    IP_FAMILY = 6
    _MESSAGES: ClassVar[dict[int, type[IcmpMessage]]] = {}
    _TYPES = Icmpv6Type
    _FAMILY_NAME = "ICMPv6"
    _TAG = "ICMP6"
    FIELDS = (
        U8("msg_type", 0, enum=Icmpv6Type, derived=True, doc="message type (set by the message class)"),
        U8("code", 1),
        U16("checksum", 2, fmt="hex", derived=True),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        msg_type = _ft.Int()
        code = _ft.Int()
        checksum = _ft.Int()
    # -- end of generated accessors

    def _pseudo(self, length: int) -> int:
        return int(self._env._pseudo_sum(IpProtocol.ICMPV6, length))


Icmpv6._ROOT = Icmpv6


class EchoRequest(EchoMixin, Icmpv6):
    """ICMPv6 echo request (type 128): identifier, sequence number, then ``data``."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.ECHO_REQUEST
    SIZE = 8
    FIELDS = ECHO_FIELDS
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        identifier = _ft.Int()
        seq_no = _ft.Int()
    # -- end of generated accessors


class EchoReply(EchoMixin, Icmpv6):
    """ICMPv6 echo reply (type 129): identifier, sequence number, then ``data``."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.ECHO_REPLY
    SIZE = 8
    FIELDS = ECHO_FIELDS
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        identifier = _ft.Int()
        seq_no = _ft.Int()
    # -- end of generated accessors


class DestinationUnreachable(DataMixin, Icmpv6):
    """ICMPv6 destination unreachable (type 1).  ``data`` is the invoking packet;
    reconcile trims the IPv6 packet to 1280 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.DESTINATION_UNREACHABLE
    SIZE = 8
    TRIM_TO = IPV6_MIN_MTU
    FIELDS = (U32("unused", 4, gen=0),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        unused = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        code = self.code
        kind = f" ({_UNREACH_CODES[code]})" if code in _UNREACH_CODES else ""
        return f"ICMP6 destination unreachable code {code}{kind}"


class PacketTooBig(DataMixin, Icmpv6):
    """ICMPv6 packet too big (type 2): the ``mtu`` of the next hop.  ``data`` is the
    invoking packet; reconcile trims the IPv6 packet to 1280 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.PACKET_TOO_BIG
    SIZE = 8
    TRIM_TO = IPV6_MIN_MTU
    FIELDS = (U32("mtu", 4, default=IPV6_MIN_MTU),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        mtu = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        return f"ICMP6 packet too big mtu {self.mtu}"


class TimeExceeded(DataMixin, Icmpv6):
    """ICMPv6 time exceeded (type 3; code 0 hop limit, 1 reassembly).  ``data`` is the
    invoking packet; reconcile trims the IPv6 packet to 1280 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.TIME_EXCEEDED
    SIZE = 8
    TRIM_TO = IPV6_MIN_MTU
    FIELDS = (U32("unused", 4, gen=0),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        unused = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        what = {0: "in-transit", 1: "reassembly"}.get(self.code, f"code {self.code}")
        return f"ICMP6 time exceeded {what}"


class ParameterProblem(DataMixin, Icmpv6):
    """ICMPv6 parameter problem (type 4): ``pointer`` is the offset of the bad octet in
    the invoking packet (``data``); reconcile trims the IPv6 packet to 1280 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.PARAMETER_PROBLEM
    SIZE = 8
    TRIM_TO = IPV6_MIN_MTU
    FIELDS = (U32("pointer", 4),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        pointer = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        code = self.code
        kind = f" ({_PARAM_CODES[code]})" if code in _PARAM_CODES else ""
        return f"ICMP6 parameter problem code {code}{kind} pointer {self.pointer}"
