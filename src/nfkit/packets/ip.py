"""What IPv4, IPv6 and the IPv6 extension headers share: carrying a transport protocol,
the pseudo-header, and the 5-tuple :class:`Flow`."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Union

from ..checksum import checksum as _checksum
from .constants import IpProtocol

__all__ = ["IpCarrier", "Transport", "Flow", "IpAddr"]

IpAddr = Union[IPv4Address, IPv6Address]
_M = 0xFFFF


@dataclass(frozen=True)
class Flow:
    """A transport 5-tuple; hashable, so it can key a flow table -- in one process: its
    ``hash()`` is salted per process (addresses hash as text), so to pick a backend or a
    core use the RSS hash (docs/writing-an-nf.md, "Spreading flows")."""

    src_ip: IpAddr
    src_port: int
    dst_ip: IpAddr
    dst_port: int
    protocol: int

    def reverse(self) -> "Flow":
        """The flow of the replies."""
        return Flow(self.dst_ip, self.dst_port, self.src_ip, self.src_port, self.protocol)

    def __str__(self) -> str:
        try:
            proto = IpProtocol(self.protocol).name
        except ValueError:
            proto = str(self.protocol)
        return f"{proto} {self.src_ip}:{self.src_port} > {self.dst_ip}:{self.dst_port}"


class IpCarrier:
    """Mixin for headers whose payload is named by an IP protocol number.

    Subclasses set ``_NEXT`` (header-relative offset of the protocol / next-header byte)
    and ``_FAMILY`` (4 or 6), and implement :meth:`_pseudo_sum`.
    """

    __slots__ = ()
    _NEXT: int
    _FAMILY: int
    _NEXT_NAME: str

    def _next_protocol(self: Any) -> int:
        return self._buf[self._abs + self._NEXT]

    def _carries(self: Any, cls: type) -> bool:
        proto = cls.IP_PROTOCOL  # type: ignore[attr-defined]
        fam = cls.IP_FAMILY  # type: ignore[attr-defined]
        return (proto is not None and self._buf[self._abs + self._NEXT] == proto
                and (fam is None or fam == self._FAMILY) and self._is_initial_fragment())

    def _can_carry(self: Any, cls: type) -> bool:
        fam = cls.IP_FAMILY  # type: ignore[attr-defined]
        return cls.IP_PROTOCOL is not None and (fam is None or fam == self._FAMILY)  # type: ignore[attr-defined]

    def _set_next(self: Any, cls: type) -> None:
        setattr(self, self._NEXT_NAME, cls.IP_PROTOCOL)  # type: ignore[attr-defined]

    def _is_initial_fragment(self) -> bool:
        return True

    def _describe_next(self: Any) -> str:
        if not self._is_initial_fragment():
            return f"{self.NAME} packet is a non-initial fragment (no transport header)"
        p = self._next_protocol()
        try:
            name = f" ({IpProtocol(p).name})"
        except ValueError:
            name = ""
        return f"{self.NAME} next protocol is {p}{name}"

    def _pseudo_sum(self, protocol: int, length: int) -> int:
        """Ones'-complement sum of the transport pseudo-header for this packet."""
        raise NotImplementedError

    def _ip(self: Any) -> Any:
        """The IPv4/IPv6 header this header belongs to."""
        return self


class Transport:
    """Mixin for TCP and UDP: the flow, address changes, and checksum computation."""

    __slots__ = ()

    def _ip(self: Any) -> Any:
        return self._env._ip()

    def flow(self: Any) -> Flow:
        """The 5-tuple of this packet."""
        ip = self._ip()
        return Flow(ip.src, self.src_port, self._env._final_dst(), self.dst_port, self.IP_PROTOCOL)

    def set_src_ip(self: Any, addr: Any) -> None:
        """Set the IP source address; the transport checksum follows (RFC 1624)."""
        self._ip().src = addr

    def set_dst_ip(self: Any, addr: Any) -> None:
        """Set the IP destination address; the transport checksum follows (RFC 1624)."""
        self._ip().dst = addr

    def compute_checksum(self: Any) -> int:
        """The checksum this segment should carry (pseudo-header included)."""
        a = self._abs
        c = a + self.CHECKSUM
        b = self._buf
        old = b[c:c + 2].tobytes()
        b[c:c + 2] = b"\0\0"
        try:
            s = _checksum(b[a:self._end], self._env._pseudo_sum(self.IP_PROTOCOL, self._end - a))
        finally:
            b[c:c + 2] = old
        return s

    @property
    def checksum_ok(self: Any) -> bool:
        """True when the stored checksum is right (a zero UDP checksum counts as right)."""
        stored = (self._buf[self._abs + self.CHECKSUM] << 8) | self._buf[self._abs + self.CHECKSUM + 1]
        if stored == 0 and self.CHECKSUM_ZERO_MEANS_NONE:
            return True
        want = self.compute_checksum()
        return stored == want or (stored == 0xFFFF and want == 0) or (stored == 0 and want == 0xFFFF)

    def _write_checksum(self: Any) -> None:
        v = self.compute_checksum()
        if v == 0 and self.CHECKSUM_ZERO_MEANS_NONE:
            v = 0xFFFF
        c = self._abs + self.CHECKSUM
        self._buf[c] = v >> 8
        self._buf[c + 1] = v & 0xFF


def l4_checksum_fix(buf: memoryview, pos: int, end: int, protocol: int, old: int, new: int) -> int:
    """Incrementally fix the checksum of the transport header at ``pos`` (TCP, UDP or
    ICMPv6) after pseudo-header words summing to ``old`` became ``new``.  Returns how much
    the checksum word changed (an enclosing checksum covers it: ``Packet._ripple``); the
    checksum sits at an even offset of the transport header, so its weight there is 1."""
    if protocol == 6:
        c = pos + 16
    elif protocol == 17:
        c = pos + 6
    elif protocol == 58:
        c = pos + 2
    else:
        return 0
    if c + 2 > end:
        return 0
    old_hc = (buf[c] << 8) | buf[c + 1]
    if protocol == 17:
        if old_hc == 0:
            return 0  # no checksum: keep it that way
        hc = (old_hc - (new - old)) % _M or 0xFFFF
    else:
        hc = (old_hc - (new - old)) % _M
    buf[c] = hc >> 8
    buf[c + 1] = hc & 0xFF
    return hc - old_hc


def to_ip(value: Any) -> IpAddr:
    return value if isinstance(value, (IPv4Address, IPv6Address)) else ip_address(value)
