"""IPv4 (RFC 791), options preserved."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address
from typing import Any

from ..checksum import checksum as _checksum
from ..errors import FieldValueError, MalformedError, TruncatedError
from .base import KEY_IPV4_PROTO, Packet
from .constants import IPV4_MIN_MTU, EtherType, IpProtocol
from .fields import Bits, Flag, Ip4, U8, U16
from .ip import IpCarrier, l4_checksum_fix
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Ipv4"]

# version/IHL, TOS, total length, id, flags/fragment offset, TTL, protocol
_HDR = struct.Struct("!BBHHHBB").unpack_from

_M = 0xFFFF


class Ipv4(IpCarrier, Packet):
    """IPv4 header.  ``header_len`` follows IHL, so options are part of the header
    (:attr:`options`), not of the payload; the packet ends where ``total_length`` says."""

    __slots__ = ()
    NAME = "IPv4"
    SIZE = 20
    CHECKSUM = 10
    ETHERTYPE = EtherType.IPV4
    IP_PROTOCOL = IpProtocol.IPIP
    _NEXT = 9
    _FAMILY = 4
    _NEXT_NAME = "protocol"
    FIELDS = (
        Bits("version", 0, 1, 0xF0, default=4, gen=4),
        Bits("ihl", 0, 1, 0x0F, default=5, derived=True, structural=True, bounded=True,
             doc="header length in 32-bit words (5..15, within the packet)"),
        Bits("dscp", 1, 1, 0xFC, doc="differentiated services code point"),
        Bits("ecn", 1, 1, 0x03, doc="explicit congestion notification"),
        U16("total_length", 2, derived=True, doc="header + payload length in bytes"),
        U16("identification", 4),
        Flag("reserved_flag", 6, 2, 0x8000, gen=False, doc="the reserved (evil) bit"),
        Flag("dont_fragment", 6, 2, 0x4000),
        Flag("more_fragments", 6, 2, 0x2000, gen=False),
        Bits("fragment_offset", 6, 2, 0x1FFF, gen=0, structural=True,
             doc="fragment offset in 8-byte units"),
        U8("ttl", 8, default=64),
        U8("protocol", 9, enum=IpProtocol, derived=True, structural=True),
        U16("checksum", 10, fmt="hex", derived=True),
        Ip4("src", 12, pseudo=True),
        Ip4("dst", 16, pseudo=True),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        version = _ft.Int()
        ihl = _ft.Int()
        dscp = _ft.Int()
        ecn = _ft.Int()
        total_length = _ft.Int()
        identification = _ft.Int()
        reserved_flag = _ft.Flag()
        dont_fragment = _ft.Flag()
        more_fragments = _ft.Flag()
        fragment_offset = _ft.Int()
        ttl = _ft.Int()
        protocol = _ft.Int()
        checksum = _ft.Int()
        src = _ft.Ip4()
        dst = _ft.Ip4()
    # -- end of generated accessors

    def _compute_hlen(self) -> int:
        return (self._buf[self._abs] & 0x0F) * 4

    def _bound(self, name: str, value: int) -> None:
        _check_words(self, name, value)

    def _validate(self, avail: int) -> None:
        b = self._buf
        a = self._abs
        vi, _, tl, _, fo, _, proto = _HDR(b, a)
        if vi != 0x45:  # the common case, version 4 and no options, skips the checks
            if vi >> 4 != 4:
                raise MalformedError(self.NAME, f"version is {vi >> 4}, expected 4")
            hlen = (vi & 0x0F) * 4
            if hlen < 20:
                raise MalformedError(self.NAME, f"header length {hlen} (IHL {hlen // 4}) is below 20")
            if hlen > avail:
                raise TruncatedError(self.NAME, f"header length {hlen} exceeds remaining {avail} bytes")
            self._hlen = hlen
        if tl:  # 0: not filled in yet (freshly built, or segmentation offload)
            if tl < self._hlen:
                raise MalformedError(self.NAME, f"total length {tl} is below the header length {self._hlen}")
            if tl > avail:
                raise TruncatedError(self.NAME, f"total length {tl} exceeds remaining {avail} bytes")
            self._end = a + tl
        # The payload key: the protocol, unless this is a non-initial fragment.
        self._next = -1 if fo & 0x1FFF else KEY_IPV4_PROTO | proto

    def _compute_next(self) -> int:
        return KEY_IPV4_PROTO | self._buf[self._abs + 9] if self._is_initial_fragment() else -1

    def decrement_ttl(self) -> int:
        """Decrement the TTL (a router's job), keeping the header checksum valid; returns
        the new TTL.  A TTL already 0 stays 0 (the caller drops on 0 either way)."""
        if self._READONLY:
            self._check_writable("change the TTL of")
        b = self._buf
        a = self._abs
        t = b[a + 8]
        if t == 0:
            return 0
        b[a + 8] = t - 1
        hc = (((b[a + 10] << 8) | b[a + 11]) + 256) % 65535
        b[a + 10] = hc >> 8
        b[a + 11] = hc & 255
        return t - 1

    # -- fragments ----------------------------------------------------------------------
    def _is_initial_fragment(self) -> bool:
        b = self._buf
        a = self._abs
        return not (((b[a + 6] << 8) | b[a + 7]) & 0x1FFF)

    @property
    def is_fragment(self) -> bool:
        """True for any fragment (MF set or a non-zero offset)."""
        b = self._buf
        return bool(((b[self._abs + 6] << 8) | b[self._abs + 7]) & 0x3FFF)

    # -- options ------------------------------------------------------------------------
    @property
    def options(self) -> bytes:
        """The raw option bytes (header bytes 20 to IHL*4)."""
        return self._buf[self._abs + 20:self._abs + self._hlen].tobytes()

    @options.setter
    def options(self, value: bytes) -> None:
        self._buf[self._abs] = 0x40 | self._replace_options(value)
        self._fix_header_checksum()

    # -- checksums ----------------------------------------------------------------------
    def compute_checksum(self) -> int:
        """The header checksum this header should carry."""
        a = self._abs
        b = self._buf
        hdr = bytearray(b[a:a + self._hlen])
        hdr[10:12] = b"\0\0"
        return _checksum(hdr)

    def _fix_header_checksum(self) -> None:
        v = self.compute_checksum()
        c = self._abs + 10
        self._buf[c] = v >> 8
        self._buf[c + 1] = v & 0xFF

    @property
    def checksum_ok(self) -> bool:
        """True when the header checksum is right."""
        from ..checksum import verify
        return verify(self._buf[self._abs:self._abs + self._hlen])

    def _pseudo_sum(self, protocol: int, length: int) -> int:
        b = self._buf
        a = self._abs
        return (int.from_bytes(b[a + 12:a + 20], "big") + protocol + length) % _M

    def _final_dst(self) -> IPv4Address:
        return self.dst

    def _pseudo_fix(self, old: int, new: int, offset: int) -> int:
        if not self._is_initial_fragment():
            return 0
        b = self._buf
        a = self._abs
        # the transport starts IHL*4 bytes in: its words align with ours
        return l4_checksum_fix(b, a + self._hlen, self._end, b[a + 9], old, new)

    def reconcile(self) -> None:
        """Set ``total_length`` and ``ihl`` from the packet, then the header checksum."""
        self._check_writable("reconcile")
        b = self._buf
        a = self._abs
        tl = self._end - a
        if tl > 0xFFFF:
            raise MalformedError(self.NAME, f"packet of {tl} bytes does not fit total_length")
        b[a] = (b[a] & 0xF0) | (self._hlen // 4)
        b[a + 2] = tl >> 8
        b[a + 3] = tl & 0xFF
        self._fix_header_checksum()

    # -- resizing -----------------------------------------------------------------------
    def remove(self) -> Any:
        """Strip the IPv4 header (and any link-layer padding after the packet)."""
        self._check_writable("remove")
        _drop_trailer(self)
        return Packet.remove(self)

    def truncate(self, mtu: int) -> None:
        """Cut the packet to ``mtu`` bytes (>= 68, the IPv4 minimum MTU); lengths and
        checksums are left to :meth:`reconcile`."""
        if mtu < IPV4_MIN_MTU:
            raise FieldValueError(f"IPv4 MTU must be at least {IPV4_MIN_MTU}, got {mtu}")
        _cut_tail(self, len(self) - mtu)

    def summary(self) -> str:
        frag = ""
        if self.is_fragment:
            frag = f" frag off={self.fragment_offset * 8}{' MF' if self.more_fragments else ''}"
        return f"{self.src} > {self.dst} ttl {self.ttl}{frag}"


def _check_words(p: Any, name: str, words: int) -> None:
    """A header length in 32-bit words (IPv4 IHL, TCP data offset) must cover the fixed
    header and end inside the packet."""
    if words * 4 < p.SIZE or words * 4 > p._end - p._abs:
        raise FieldValueError(f"{p.NAME} {name} {words}: the header would be {words * 4} bytes; "
                              f"it needs {p.SIZE} to {min(60, p._end - p._abs)} here "
                              "(set options instead)")


def _cut_tail(p: Any, n: int) -> None:
    """Remove the last ``n`` bytes of ``p``'s packet (n <= 0: nothing)."""
    if n <= 0:
        return
    p._check_writable("truncate")
    mbuf = p._mbuf
    d0, d1 = mbuf._resize(p._end - n - mbuf._abs, -n)
    p._move(d0, d1)


def _drop_trailer(p: Any) -> None:
    """Remove bytes between the end of IP packet ``p`` and the end of its envelope."""
    env = p._env
    extra = env._end - p._end
    if extra <= 0:
        return
    mbuf = p._mbuf
    d0, d1 = mbuf._resize(p._end - mbuf._abs, -extra)
    env._move(d0, d1)
    # p lies wholly before the cut: it moves with the front, if the front moved.
    p._abs += d0
    p._end += d0
