"""VXLAN (RFC 7348): Ethernet frames tunnelled over UDP port 4789."""

from __future__ import annotations

from ..errors import MalformedError
from .base import KEY_OUTERMOST, Packet
from .constants import VXLAN_PORT
from .fields import Flag, U8, U24
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Vxlan"]

_I = 0x08  # "VNI valid" flag


class Vxlan(Packet):
    """The 8-byte VXLAN header; its payload is an Ethernet frame (any outermost-capable
    header).  Parse requires the I flag, as RFC 7348 section 5 does."""

    __slots__ = ()
    NAME = "VXLAN"
    SIZE = 8
    UDP_PORTS = (VXLAN_PORT,)
    FIELDS = (
        U8("flags", 0, default=_I, gen=_I, fmt="hex", doc="flags; 0x08 (I) = the VNI is valid"),
        Flag("vni_valid", 0, 1, _I, default=True, alias=True, doc="the I flag"),
        U24("reserved", 1, gen=0),
        U24("vni", 4, doc="VXLAN network identifier"),
        U8("reserved2", 7, gen=0),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        flags = _ft.Int()
        vni_valid = _ft.Flag()
        reserved = _ft.Int()
        vni = _ft.Int()
        reserved2 = _ft.Int()
    # -- end of generated accessors

    def _validate(self, avail: int) -> None:
        f = self._buf[self._abs]
        if not f & _I:
            raise MalformedError(self.NAME, f"the I flag is not set (flags {f:#04x}): no valid VNI")
        self._next = KEY_OUTERMOST

    def _compute_next(self) -> int:
        return KEY_OUTERMOST

    # -- envelope protocol: the payload is a link-layer frame -----------------------------
    def _carries(self, cls: type) -> bool:
        return bool(getattr(cls, "OUTERMOST", False))

    _can_carry = _carries

    def _describe_next(self) -> str:
        return "VXLAN carries Ethernet frames only"

    def summary(self) -> str:
        return f"VXLAN flags {self.flags:#04x} vni {self.vni}"
