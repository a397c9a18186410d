"""UDP (RFC 768)."""

from __future__ import annotations

from .base import Packet
from .constants import IpProtocol
from .fields import U16
from .ip import Transport
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Udp"]


class Udp(Transport, Packet):
    """UDP header over IPv4, IPv6 or an IPv6 extension header.

    A zero checksum means "none" (IPv4): setters and address changes leave it zero.  UDP
    also carries the tunnels that declare ``UDP_PORTS`` (VXLAN, GTP-U): they parse when
    either port matches, and pushing one sets the destination port.
    """

    __slots__ = ()
    NAME = "UDP"
    SIZE = 8
    CHECKSUM = 6
    CHECKSUM_ZERO_MEANS_NONE = True
    COVERS_PAYLOAD = True
    IP_PROTOCOL = IpProtocol.UDP
    FIELDS = (
        U16("src_port", 0),
        U16("dst_port", 2),
        U16("length", 4, derived=True, doc="header + payload length in bytes"),
        U16("checksum", 6, fmt="hex", derived=True),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        src_port = _ft.Int()
        dst_port = _ft.Int()
        length = _ft.Int()
        checksum = _ft.Int()
    # -- end of generated accessors

    def no_checksum(self) -> None:
        """Write checksum 0: no checksum (allowed over IPv4 only)."""
        self._check_writable("change")
        b = self._buf
        c = self._abs + 6
        old = (b[c] << 8) | b[c + 1]
        b[c] = 0
        b[c + 1] = 0
        self._ripple(-old)

    def _absorb(self, d: int) -> bool:
        """A change ``d`` of the payload's sum (a tunnelled header's setter): the checksum
        follows, unless it is 0 (none: the next checksum out covers the payload)."""
        b = self._buf
        c = self._abs + 6
        hc = (b[c] << 8) | b[c + 1]
        if not hc:
            return False
        hc = (hc - d) % 0xFFFF or 0xFFFF
        b[c] = hc >> 8
        b[c + 1] = hc & 0xFF
        return True

    def reconcile(self) -> None:
        """Set ``length``, then the checksum (a computed 0 is sent as 0xFFFF)."""
        self._check_writable("reconcile")
        n = self._end - self._abs
        self._buf[self._abs + 4] = n >> 8
        self._buf[self._abs + 5] = n & 0xFF
        self._write_checksum()

    # UDP carries tunnels by port.
    def _carries(self, cls: type) -> bool:
        ports = cls.UDP_PORTS  # type: ignore[attr-defined]
        return bool(ports) and (self.dst_port in ports or self.src_port in ports)

    def _can_carry(self, cls: type) -> bool:
        return bool(cls.UDP_PORTS)  # type: ignore[attr-defined]

    def _set_next(self, cls: type) -> None:
        self.dst_port = cls.UDP_PORTS[0]  # type: ignore[attr-defined]

    def _describe_next(self) -> str:
        return f"UDP ports are {self.src_port} > {self.dst_port}"

    def summary(self) -> str:
        return f"UDP {self.src_port} > {self.dst_port} len {self.payload_len}"
