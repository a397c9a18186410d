"""IPv6 (RFC 8200) and a walker over its extension-header chain."""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

from ..errors import FieldValueError, MalformedError, TruncatedError
from .base import KEY_IPV6_PROTO, Packet
from .constants import IPV6_EXT_UNIT, IPV6_EXTENSION_HEADERS, IPV6_MIN_MTU, EtherType, IpProtocol
from .fields import Bits, Ip6, U8, U16
from .ip import IpCarrier, l4_checksum_fix
from .ipv4 import _cut_tail, _drop_trailer
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Ipv6", "walk_extension_headers", "EXTENSION_HEADERS"]

_M = 0xFFFF

#: Next-header values that are IPv6 extension headers with the generic (next, len) layout,
#: plus the Fragment header (fixed 8 bytes).
EXTENSION_HEADERS = frozenset(IPV6_EXTENSION_HEADERS)


def walk_extension_headers(buf: memoryview, pos: int, end: int, nxt: int) -> tuple[int, int, bool, bool]:
    """Skip extension headers starting at ``pos`` whose type is ``nxt``.

    Returns ``(position, protocol, saw_routing_header, initial_fragment)`` of the first
    non-extension header; ``position`` is -1 when the chain runs past ``end``.  Bounded:
    every step advances by at least 8 bytes.
    """
    routing = False
    initial = True
    while nxt in EXTENSION_HEADERS:
        if pos + IPV6_EXT_UNIT > end:
            return -1, nxt, routing, initial
        if nxt == IpProtocol.IPV6_FRAG:
            if ((buf[pos + 2] << 8) | buf[pos + 3]) & 0xFFF8:
                initial = False
            size = IPV6_EXT_UNIT
        else:
            size = (buf[pos + 1] + 1) * IPV6_EXT_UNIT
            if nxt == IpProtocol.IPV6_ROUTE:
                routing = True
        nxt = buf[pos]
        pos += size
    if pos > end:
        return -1, nxt, routing, initial
    return pos, nxt, routing, initial


class Ipv6(IpCarrier, Packet):
    """IPv6 fixed header.  The packet ends where ``payload_length`` says (0: at the end of
    the frame, as for a header not yet reconciled or a jumbogram)."""

    __slots__ = ()
    NAME = "IPv6"
    SIZE = 40
    ETHERTYPE = EtherType.IPV6
    IP_PROTOCOL = IpProtocol.IPV6
    _NEXT = 6
    _FAMILY = 6
    _NEXT_NAME = "next_header"
    FIELDS = (
        Bits("version", 0, 4, 0xF0000000, default=6, gen=6),
        Bits("dscp", 0, 4, 0x0FC00000),
        Bits("ecn", 0, 4, 0x00300000),
        Bits("traffic_class", 0, 4, 0x0FF00000, alias=True, doc="DSCP and ECN together"),
        Bits("flow_label", 0, 4, 0x000FFFFF),
        U16("payload_length", 4, derived=True),
        U8("next_header", 6, enum=IpProtocol, derived=True, structural=True),
        U8("hop_limit", 7, default=64),
        Ip6("src", 8, pseudo=True),
        Ip6("dst", 24, pseudo=True),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        version = _ft.Int()
        dscp = _ft.Int()
        ecn = _ft.Int()
        traffic_class = _ft.Int()
        flow_label = _ft.Int()
        payload_length = _ft.Int()
        next_header = _ft.Int()
        hop_limit = _ft.Int()
        src = _ft.Ip6()
        dst = _ft.Ip6()
    # -- end of generated accessors

    def _validate(self, avail: int) -> None:
        b = self._buf
        a = self._abs
        v = b[a] >> 4
        if v != 6:
            raise MalformedError(self.NAME, f"version is {v}, expected 6")
        pl = (b[a + 4] << 8) | b[a + 5]
        if pl:
            if 40 + pl > avail:
                raise TruncatedError(self.NAME, f"payload length {pl} exceeds remaining "
                                                f"{avail - 40} bytes")
            self._end = a + 40 + pl
        self._next = KEY_IPV6_PROTO | b[a + 6]

    def _compute_next(self) -> int:
        return KEY_IPV6_PROTO | self._buf[self._abs + 6]

    def decrement_hop_limit(self) -> int:
        """Decrement the hop limit (a router's job); returns the new value.  A hop limit
        already 0 stays 0 (the caller drops on 0 either way)."""
        if self._READONLY:
            self._check_writable("change the hop limit of")
        b = self._buf
        a = self._abs + 7
        h = b[a]
        if h:
            b[a] = h - 1
            p = self._env
            while p._env is not None:       # inside a tunnel an outer checksum covers it
                if p.COVERS_PAYLOAD:
                    self._ripple(-1)        # (byte 7: a low byte, weight 1)
                    break
                p = p._env
            return h - 1
        return 0

    def _pseudo_sum(self, protocol: int, length: int) -> int:
        b = self._buf
        a = self._abs
        return (int.from_bytes(b[a + 8:a + 40], "big") + protocol + length) % _M

    def _final_dst(self) -> IPv6Address:
        return self.dst

    def _pseudo_fix(self, old: int, new: int, offset: int) -> int:
        b = self._buf
        a = self._abs
        pos, proto, routing, initial = walk_extension_headers(b, a + 40, self._end, b[a + 6])
        if pos < 0 or not initial:
            return 0
        if routing and offset == 24:
            return 0  # with a routing header the pseudo-header holds the final destination
        # extension headers are multiples of 8 bytes: the transport's words align with ours
        return l4_checksum_fix(b, pos, self._end, proto, old, new)

    def reconcile(self) -> None:
        """Set ``payload_length`` from the packet."""
        self._check_writable("reconcile")
        pl = self._end - self._abs - 40
        if pl > 0xFFFF:
            raise MalformedError(self.NAME, f"payload of {pl} bytes needs a jumbogram")
        self._buf[self._abs + 4] = pl >> 8
        self._buf[self._abs + 5] = pl & 0xFF

    def remove(self) -> Any:
        """Strip the IPv6 header (and any link-layer padding after the packet)."""
        self._check_writable("remove")
        _drop_trailer(self)
        return Packet.remove(self)

    def truncate(self, mtu: int) -> None:
        """Cut the packet to ``mtu`` bytes (>= 1280, the IPv6 minimum MTU)."""
        if mtu < IPV6_MIN_MTU:
            raise FieldValueError(f"IPv6 MTU must be at least {IPV6_MIN_MTU}, got {mtu}")
        _cut_tail(self, len(self) - mtu)

    def summary(self) -> str:
        return f"{self.src} > {self.dst} hlim {self.hop_limit}"
