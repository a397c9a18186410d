"""Ethernet II with 802.1Q / 802.1ad (QinQ) VLAN tags."""

from __future__ import annotations

import struct

from ..errors import FieldValueError, MalformedError, TruncatedError
from .base import KEY_ETHERTYPE, Packet
from . import constants
from .constants import EtherType
from .fields import Bits, Flag, Mac, U16
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Ethernet", "VlanTag", "VLAN_TPIDS"]

_MACS = struct.Struct("6s6s").unpack_from
_PUT_MACS = struct.Struct("6s6s").pack_into

#: Tag protocol identifiers recognised as VLAN tags (from :mod:`.constants`, as a set).
VLAN_TPIDS = frozenset(constants.VLAN_TPIDS)
_MIN_TPID = min(VLAN_TPIDS)     # most frames' type is below every TPID: one compare


class VlanTag(Packet):
    """One 4-byte VLAN tag inside an Ethernet header (a view; see :attr:`Ethernet.vlans`)."""

    __slots__ = ()
    NAME = "VLAN"
    SIZE = 4
    FIELDS = (
        U16("tpid", 0, default=EtherType.DOT1Q, fmt="hex", doc="tag protocol identifier"),
        Bits("pcp", 2, 2, 0xE000, doc="priority code point"),
        Flag("dei", 2, 2, 0x1000, doc="drop eligible indicator"),
        Bits("vid", 2, 2, 0x0FFF, doc="VLAN identifier"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        tpid = _ft.Int()
        pcp = _ft.Int()
        dei = _ft.Flag()
        vid = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        return f"vlan {self.vid}" + (f" p{self.pcp}" if self.pcp else "")


class Ethernet(Packet):
    """Ethernet II header: ``dst src [tags...] ether_type``.

    ``ether_type`` is VLAN-aware: with tags present it reads and writes the type after the
    last tag, so ``eth.parse(Ipv4)`` works on tagged frames.  :attr:`vlans` lists the tags
    (outermost first); :meth:`push_vlan` / :meth:`pop_vlan` add and strip them.
    """

    __slots__ = ()
    NAME = "Ethernet"
    FIELD_PREFIX = "eth"
    SIZE = 14
    OUTERMOST = True
    ETHERTYPE = EtherType.TEB
    FIELDS = (
        Mac("dst", 0, doc="destination MAC address"),
        Mac("src", 6, doc="source MAC address"),
        U16("ether_type", 12, enum=EtherType, derived=True,
            doc="EtherType of the payload (after any VLAN tags)"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        dst = _ft.Mac()
        src = _ft.Mac()
    # -- end of generated accessors

    # The declared ether_type sits at byte 12 of an untagged frame; with tags it moves to
    # header_len - 2.  This property is the VLAN-aware form of that one declaration.
    @property
    def ether_type(self) -> int:
        """The EtherType of the payload: the last tag's when the frame has VLAN tags (an :class:`EtherType` value)."""
        a = self._abs + self._hlen - 2
        b = self._buf
        return (b[a] << 8) | b[a + 1]

    @ether_type.setter
    def ether_type(self, value: int) -> None:
        v = int(value)
        if not 0 <= v <= 0xFFFF:
            raise FieldValueError(f"ether_type must be in 0..65535, got {v}")
        a = self._abs + self._hlen - 2
        b = self._buf
        old = (b[a] << 8) | b[a + 1]
        b[a] = v >> 8
        b[a + 1] = v & 0xFF
        self._next = KEY_ETHERTYPE | v
        if v != old:
            self._ripple(v - old)    # an inner frame (VXLAN): an outer checksum covers it

    def _validate(self, avail: int) -> None:
        b = self._buf
        a = self._abs
        t = (b[a + 12] << 8) | b[a + 13]      # two byte reads: cheaper than a struct call here
        if t >= _MIN_TPID and t in VLAN_TPIDS:
            self._hlen = h = self._compute_hlen()
            t = (b[a + h - 2] << 8) | b[a + h - 1]
        self._next = 0x10000 | t  # KEY_ETHERTYPE | t, as a literal on this hot path

    def _compute_next(self) -> int:
        return KEY_ETHERTYPE | self.ether_type

    def _compute_hlen(self) -> int:
        b = self._buf
        a = self._abs
        end = self._end
        h = 14
        while ((b[a + h - 2] << 8) | b[a + h - 1]) in VLAN_TPIDS:
            if a + h + 4 > end:
                raise TruncatedError(self.NAME, f"VLAN tag at offset {h - 2} needs {h + 4} "
                                                f"bytes, {end - a} remain")
            h += 4
        return h

    # -- VLAN tags --------------------------------------------------------------------
    @property
    def vlans(self) -> list[VlanTag]:
        """The VLAN tags, outermost first (views: setting ``vid`` writes the frame)."""
        out = []
        for i in range((self._hlen - 14) // 4):
            t = object.__new__(VlanTag._RO if self._READONLY else VlanTag)
            t._env, t._buf, t._next = self, self._buf, None
            t._abs = self._abs + 12 + 4 * i
            t._end = self._end
            t._hlen = 4
            out.append(t)
        return out

    @property
    def is_dot1q(self) -> bool:
        """Exactly one 802.1Q tag."""
        return self._hlen == 18

    @property
    def is_qinq(self) -> bool:
        """Two or more tags (802.1ad service tag + customer tag)."""
        return self._hlen >= 22

    @property
    def vlan_id(self) -> int | None:
        """The VID of the outermost tag, or None for an untagged frame."""
        if self._hlen == 14:
            return None
        return ((self._buf[self._abs + 14] << 8) | self._buf[self._abs + 15]) & 0x0FFF

    def push_vlan(self, vid: int, pcp: int = 0, dei: bool = False, tpid: int | None = None) -> VlanTag:
        """Insert a new outermost tag.  ``tpid`` defaults to 802.1Q (0x8100) on an untagged
        frame and 802.1ad (0x88a8) when the frame is already tagged (QinQ)."""
        self._check_writable("push a VLAN tag onto")
        if tpid is None:
            tpid = EtherType.DOT1Q if self._hlen == 14 else EtherType.DOT1AD
        if tpid not in VLAN_TPIDS:
            raise FieldValueError(f"tpid {tpid:#06x} is not a VLAN tag protocol "
                                  f"(expected one of {sorted(hex(t) for t in VLAN_TPIDS)})")
        self._resize_header(12, 4)
        tag = self.vlans[0]
        tag.tpid = tpid
        tag.vid = vid
        tag.pcp = pcp
        tag.dei = dei
        return tag

    def pop_vlan(self) -> int:
        """Strip the outermost tag; returns its VID."""
        self._check_writable("pop a VLAN tag from")
        vid = self.vlan_id
        if vid is None:
            raise MalformedError(self.NAME, "pop_vlan on an untagged frame")
        self._resize_header(12, -4)
        return vid

    def swap_addresses(self) -> None:
        """Exchange source and destination MAC addresses in place."""
        if self._READONLY:
            self._check_writable("swap the addresses of")
        b = self._buf
        a = self._abs
        dst, src = _MACS(b, a)
        _PUT_MACS(b, a, src, dst)

    # -- envelope protocol ------------------------------------------------------------
    def _carries(self, cls: type) -> bool:
        return cls.ETHERTYPE is not None and cls.ETHERTYPE == self.ether_type  # type: ignore[attr-defined]

    def _can_carry(self, cls: type) -> bool:
        return cls.ETHERTYPE is not None  # type: ignore[attr-defined]

    def _set_next(self, cls: type) -> None:
        self.ether_type = cls.ETHERTYPE  # type: ignore[attr-defined]

    def _describe_next(self) -> str:
        t = self.ether_type
        try:
            name = f" ({EtherType(t).name})"
        except ValueError:
            name = ""
        return f"ether type is {t:#06x}{name}"

    def _extra_repr(self) -> list[str]:
        return [f"vlans=[{', '.join(v.summary() for v in self.vlans)}]"] if self._hlen > 14 else []

    def summary(self) -> str:
        tags = "".join(f" {v.summary()}" for v in self.vlans)
        return f"{self.src} > {self.dst}{tags}"

