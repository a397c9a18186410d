"""ICMP for IPv4 (RFC 792, RFC 1191, RFC 1812); what ICMPv6 shares is in
:mod:`nfkit.packets.icmp`.

A message is read either through the generic :class:`Icmpv4` header (type, code, checksum;
any type parses) or as a concrete message class (:class:`EchoRequest`, ...), which checks the
type and declares its fixed body as fields.  ``Icmpv4.downcast(T)`` turns the first into the
second without copying.

Differences from capsule, deliberately:

* ``header_len`` of a concrete message covers the 4 common bytes *and* its fixed body
  (8 for an echo request); the payload is what follows (echo data, the invoking packet).
  capsule keeps ``header_len == 4`` and counts the body as payload.
* The error messages trim the enclosing IPv4 packet to 576 bytes (RFC 1812 4.3.2.3: as much
  of the invoking datagram as fits an ICMP datagram of 576 bytes); capsule trims to 68.
* Echo ``data`` works for empty data, and setting data of the same length works.
* There are Destination Unreachable and Parameter Problem messages.
* Setting the payload (``data``) keeps a valid checksum valid, like every field setter.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

from .constants import IpProtocol
from .fields import Ip4, U8, U16, U24, U32
from .icmp import ECHO_FIELDS, DataMixin, EchoMixin, IcmpMessage
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Icmpv4Type", "Icmpv4", "EchoRequest", "EchoReply", "DestinationUnreachable",
           "TimeExceeded", "Redirect", "ParameterProblem", "IcmpMessage", "DataMixin",
           "EchoMixin", "ICMPV4_ERROR_MAX_LEN"]

#: RFC 1812 4.3.2.3: an ICMP error datagram (IP header included) is at most 576 bytes.
ICMPV4_ERROR_MAX_LEN = 576

class Icmpv4Type(IntEnum):
    """ICMPv4 message types (IANA); ``str()`` gives the RFC name."""

    ECHO_REPLY = 0
    DESTINATION_UNREACHABLE = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    ROUTER_ADVERTISEMENT = 9
    ROUTER_SOLICITATION = 10
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14

    def __str__(self) -> str:
        return self.name.replace("_", " ").title()


_UNREACH_CODES = {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable",
                  3: "port unreachable", 4: "need to frag", 5: "source route failed",
                  6: "net unknown", 7: "host unknown", 9: "net prohibited",
                  10: "host prohibited", 13: "administratively prohibited"}
_REDIRECT_CODES = {0: "net", 1: "host", 2: "tos-net", 3: "tos-host"}


class Icmpv4(IcmpMessage):
    """The generic ICMPv4 header: type, code, checksum.  Any type parses; it cannot be
    pushed (push a message class).  The checksum covers the whole message."""

    __slots__ = ()
    NAME = "ICMPv4"
    IP_PROTOCOL = IpProtocol.ICMP
    IP_FAMILY = 4
    _MESSAGES: ClassVar[dict[int, type[IcmpMessage]]] = {}
    _TYPES = Icmpv4Type
    _FAMILY_NAME = "ICMPv4"
    _TAG = "ICMP"
    FIELDS = (
        U8("msg_type", 0, enum=Icmpv4Type, derived=True, doc="message type (set by the message class)"),
        U8("code", 1),
        U16("checksum", 2, fmt="hex", derived=True),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        msg_type = _ft.Int()
        code = _ft.Int()
        checksum = _ft.Int()
    # -- end of generated accessors


Icmpv4._ROOT = Icmpv4


class EchoRequest(EchoMixin, Icmpv4):
    """ICMPv4 echo request (type 8): identifier, sequence number, then ``data``."""

    __slots__ = ()
    MSG_TYPE = Icmpv4Type.ECHO_REQUEST
    SIZE = 8
    FIELDS = ECHO_FIELDS
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        identifier = _ft.Int()
        seq_no = _ft.Int()
    # -- end of generated accessors


class EchoReply(EchoMixin, Icmpv4):
    """ICMPv4 echo reply (type 0): identifier, sequence number, then ``data``."""

    __slots__ = ()
    MSG_TYPE = Icmpv4Type.ECHO_REPLY
    SIZE = 8
    FIELDS = ECHO_FIELDS
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        identifier = _ft.Int()
        seq_no = _ft.Int()
    # -- end of generated accessors


class DestinationUnreachable(DataMixin, Icmpv4):
    """ICMPv4 destination unreachable (type 3); ``next_hop_mtu`` is RFC 1191's (code 4).
    ``data`` is the invoking packet; reconcile trims the IPv4 packet to 576 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv4Type.DESTINATION_UNREACHABLE
    SIZE = 8
    TRIM_TO = ICMPV4_ERROR_MAX_LEN
    FIELDS = (
        U16("unused", 4, gen=0),
        U16("next_hop_mtu", 6),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        unused = _ft.Int()
        next_hop_mtu = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        code = self.code
        text = f"ICMP destination unreachable code {code}"
        if code in _UNREACH_CODES:
            text += f" ({_UNREACH_CODES[code]})"
        if code == 4:
            text += f" mtu {self.next_hop_mtu}"
        return text


class TimeExceeded(DataMixin, Icmpv4):
    """ICMPv4 time exceeded (type 11; code 0 in transit, 1 reassembly).  ``data`` is the
    invoking packet; reconcile trims the IPv4 packet to 576 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv4Type.TIME_EXCEEDED
    SIZE = 8
    TRIM_TO = ICMPV4_ERROR_MAX_LEN
    FIELDS = (U32("unused", 4, gen=0),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        unused = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        what = {0: "in-transit", 1: "reassembly"}.get(self.code, f"code {self.code}")
        return f"ICMP time exceeded {what}"


class Redirect(DataMixin, Icmpv4):
    """ICMPv4 redirect (type 5) to ``gateway``.  ``data`` is the invoking packet;
    reconcile trims the IPv4 packet to 576 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv4Type.REDIRECT
    SIZE = 8
    TRIM_TO = ICMPV4_ERROR_MAX_LEN
    FIELDS = (Ip4("gateway", 4),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        gateway = _ft.Ip4()
    # -- end of generated accessors

    def summary(self) -> str:
        code = self.code
        kind = f" ({_REDIRECT_CODES[code]})" if code in _REDIRECT_CODES else ""
        return f"ICMP redirect to {self.gateway} code {code}{kind}"


class ParameterProblem(DataMixin, Icmpv4):
    """ICMPv4 parameter problem (type 12): ``pointer`` is the offset of the bad octet in
    the invoking packet (``data``); reconcile trims the IPv4 packet to 576 bytes."""

    __slots__ = ()
    MSG_TYPE = Icmpv4Type.PARAMETER_PROBLEM
    SIZE = 8
    TRIM_TO = ICMPV4_ERROR_MAX_LEN
    FIELDS = (
        U8("pointer", 4),
        U24("unused", 5, gen=0),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        pointer = _ft.Int()
        unused = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        return f"ICMP parameter problem code {self.code} pointer {self.pointer}"

