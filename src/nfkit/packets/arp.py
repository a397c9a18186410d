"""ARP for IPv4 over Ethernet (RFC 826), capsule's ``Arp4``."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from ..errors import FieldValueError, MalformedError
from .base import Packet
from .constants import EtherType
from .fields import Ip4, Mac, U8, U16
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Arp", "ArpOp"]


class ArpOp(IntEnum):
    """ARP operation codes (RFC 826, RFC 903 for the reverse ones)."""

    REQUEST = 1
    REPLY = 2
    REQUEST_REVERSE = 3
    REPLY_REVERSE = 4


#: (field, offset, width, required value, what the value means) checked on parse
_FIXED = (("hardware_type", 0, 2, 1, "Ethernet"),
          ("protocol_type", 2, 2, EtherType.IPV4, "IPv4"),
          ("hardware_addr_len", 4, 1, 6, "a MAC address"),
          ("protocol_addr_len", 5, 1, 4, "an IPv4 address"))


class Arp(Packet):
    """An ARP message mapping IPv4 addresses to Ethernet addresses (28 bytes).

    Only the Ethernet/IPv4 flavour is modelled: parse refuses other hardware or protocol
    types and address lengths, so the address fields always sit where declared.
    """

    __slots__ = ()
    NAME = "ARP"
    SIZE = 28
    ETHERTYPE = EtherType.ARP
    FIELDS = (
        U16("hardware_type", 0, default=1, derived=True, doc="1 = Ethernet"),
        U16("protocol_type", 2, default=EtherType.IPV4, derived=True, fmt="hex",
            enum=EtherType, doc="EtherType of the protocol addresses"),
        U8("hardware_addr_len", 4, default=6, derived=True, bounded=True,
           doc="6: the address fields sit where declared only for MAC addresses"),
        U8("protocol_addr_len", 5, default=4, derived=True, bounded=True,
           doc="4: the address fields sit where declared only for IPv4 addresses"),
        U16("operation", 6, default=ArpOp.REQUEST, enum=ArpOp),
        Mac("sender_hw_addr", 8),
        Ip4("sender_ip", 14),
        Mac("target_hw_addr", 18),
        Ip4("target_ip", 24),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        hardware_type = _ft.Int()
        protocol_type = _ft.Int()
        hardware_addr_len = _ft.Int()
        protocol_addr_len = _ft.Int()
        operation = _ft.Int()
        sender_hw_addr = _ft.Mac()
        sender_ip = _ft.Ip4()
        target_hw_addr = _ft.Mac()
        target_ip = _ft.Ip4()
    # -- end of generated accessors

    def _validate(self, avail: int) -> None:
        b = self._buf
        a = self._abs
        for name, off, width, want, meaning in _FIXED:
            got = int.from_bytes(b[a + off:a + off + width], "big")
            if got != want:
                raise MalformedError(self.NAME, f"{name} is {got:#x}, expected {want:#x} "
                                                f"({meaning})")

    def _bound(self, name: str, value: int) -> None:
        want = 6 if name == "hardware_addr_len" else 4
        if value != want:
            raise FieldValueError(f"ARP {name} {value}: only Ethernet/IPv4 ARP is modelled "
                                  f"({want}); other lengths move every address field")

    @property
    def is_request(self) -> bool:
        """True for a request (``who-has``)."""
        return self.operation == ArpOp.REQUEST

    @property
    def is_reply(self) -> bool:
        """True for a reply (``is-at``)."""
        return self.operation == ArpOp.REPLY

    def make_reply(self, hw_addr: Any) -> None:
        """Turn a request into its reply in place: ``hw_addr`` answers for the target IP.

        The Ethernet header is left to the caller (``swap_addresses`` and a new source)."""
        self._check_writable("rewrite")
        sha, spa = self.sender_hw_addr, self.sender_ip
        tpa = self.target_ip
        self.operation = ArpOp.REPLY
        self.sender_hw_addr, self.sender_ip = hw_addr, tpa
        self.target_hw_addr, self.target_ip = sha, spa

    def summary(self) -> str:
        """tcpdump's wording: ``ARP who-has T tell S`` / ``ARP S is-at MAC``."""
        op = self.operation
        if op == ArpOp.REQUEST:
            return f"ARP who-has {self.target_ip} tell {self.sender_ip}"
        if op == ArpOp.REPLY:
            return f"ARP {self.sender_ip} is-at {self.sender_hw_addr}"
        try:
            name = ArpOp(op).name.lower().replace("_", "-")
        except ValueError:
            name = f"op {op}"
        return f"ARP {name} {self.sender_hw_addr} > {self.target_hw_addr}"
