"""GRE (RFC 2784) with the key and sequence number extensions (RFC 2890).

Layout: a 4-byte base header (flags, version, protocol type), then, in this order and only
when their flag is set, checksum + reserved1 (4 bytes), key (4) and sequence number (4).
GRE carries its payload by EtherType, like Ethernet: IPv4, IPv6, or Ethernet itself
(transparent Ethernet bridging, 0x6558).
"""

from __future__ import annotations

from typing import Any

from ..checksum import checksum as _checksum, update as _update
from ..errors import FieldValueError, MalformedError, TruncatedError
from .base import KEY_ETHERTYPE, Packet
from .constants import EtherType, IpProtocol
from .fields import Bits, Flag, U16, presence_flag
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Gre"]

_C, _K, _S = 0x80, 0x20, 0x10          # flag bits in byte 0
_R = 0x4000                             # RFC 1701's routing-present bit (of bytes 0-1)


class Gre(Packet):
    """A GRE version 0 header (4 to 16 bytes).

    ``key`` and ``sequence`` are None when absent; assigning a number adds the field,
    assigning None removes it (the header resizes).  The checksum is switched on and off
    with :meth:`use_checksum`, filled in by :meth:`reconcile`, and kept valid by the field
    setters and the key/sequence changes.
    """

    __slots__ = ()
    NAME = "GRE"
    SIZE = 4
    IP_PROTOCOL = IpProtocol.GRE
    CHECKSUM_VIA_METHOD = True
    COVERS_PAYLOAD = True
    FIELDS = (
        Flag("checksum_present", 0, 2, 0x8000, derived=True, structural=True),
        Flag("routing_present", 0, 2, _R, gen=False, bounded=True,
             doc="RFC 1701 source routing: adds fields nfkit does not model, so it is refused "
                 "(parse, setter), as Linux does"),
        Flag("key_present", 0, 2, 0x2000, derived=True, structural=True),
        Flag("seq_present", 0, 2, 0x1000, derived=True, structural=True),
        Bits("reserved0", 0, 2, 0x0FF8, gen=0, doc="must be zero (RFC 2784)"),
        Bits("version", 0, 2, 0x0007, gen=0, bounded=True,
             doc="0 (RFC 2784); version 1 (PPTP) has another layout, so it is refused"),
        U16("protocol_type", 2, enum=EtherType, fmt="hex", derived=True, structural=True,
            doc="EtherType of the payload (keys the payload: structural refreshes it)"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        routing_present = _ft.Flag()
        reserved0 = _ft.Int()
        version = _ft.Int()
        protocol_type = _ft.Int()
    # -- end of generated accessors

    # -- geometry -------------------------------------------------------------------------
    def _compute_hlen(self) -> int:
        f = self._buf[self._abs]
        return 4 + 4 * (bool(f & _C) + bool(f & _K) + bool(f & _S))

    def _validate(self, avail: int) -> None:
        b = self._buf
        a = self._abs
        v = b[a + 1] & 0x07
        if v != 0:
            raise MalformedError(self.NAME, f"version is {v}, only version 0 (RFC 2784) "
                                            "is supported")
        if b[a] & (_R >> 8):
            raise MalformedError(self.NAME, "the routing bit (RFC 1701 source routing) is set: "
                                            "its fields are not supported")
        hlen = self._compute_hlen()
        if hlen > avail:
            raise TruncatedError(self.NAME, f"header length {hlen} (flags {b[a]:#04x}) exceeds "
                                            f"remaining {avail} bytes")
        self._hlen = hlen
        self._next = KEY_ETHERTYPE | (b[a + 2] << 8) | b[a + 3]

    def _compute_next(self) -> int:
        b = self._buf
        return KEY_ETHERTYPE | (b[self._abs + 2] << 8) | b[self._abs + 3]

    def _opt_offset(self, bit: int) -> int:
        """Header offset of the optional field that ``bit`` announces (present or not)."""
        f = self._buf[self._abs]
        off = 4
        for b in (_C, _K, _S):
            if b == bit:
                return off
            if f & b:
                off += 4
        raise AssertionError(bit)  # pragma: no cover

    def _bound(self, name: str, value: int) -> None:
        if value:
            raise FieldValueError(f"GRE {name} must be 0: only RFC 2784/2890 GRE is supported "
                                  "(RFC 1701 routing and PPTP's version 1 change the layout)")

    def _read_opt(self, bit: int) -> int | None:
        if not self._buf[self._abs] & bit:
            return None
        off = self._opt_offset(bit)
        if off + 4 > self._hlen:   # flags set by a raw write: the view has no such field
            raise MalformedError(self.NAME, f"flags {self._buf[self._abs]:#04x} announce more "
                                            f"than the {self._hlen}-byte header holds")
        p = self._abs + off
        return int.from_bytes(self._buf[p:p + 4], "big")

    def _write_opt(self, bit: int, value: int | None) -> None:
        """Add, change or remove the optional 4-byte field announced by ``bit``, keeping a
        present checksum valid (the 16-bit alignment of everything after is unchanged)."""
        self._check_writable("change")
        if value is not None:
            try:
                value = value.__index__()
            except (AttributeError, TypeError):
                raise FieldValueError(f"GRE optional fields take an integer or None, "
                                      f"got {type(value).__name__}") from None
            if not 0 <= value <= 0xFFFFFFFF:
                raise FieldValueError(f"GRE optional fields are 32-bit, got {value}")
        b = self._buf
        old_word = (b[self._abs] << 8) | b[self._abs + 1]
        old = self._read_opt(bit)
        off = self._opt_offset(bit)
        if old is None and value is not None:
            self._resize_header(off, 4)
            self._buf[self._abs] |= bit
        elif old is not None and value is None:
            self._resize_header(off, -4)
            self._buf[self._abs] &= ~bit & 0xFF
        if value is not None:
            p = self._abs + off
            self._buf[p:p + 4] = value.to_bytes(4, "big")
        b = self._buf
        new_word = (b[self._abs] << 8) | b[self._abs + 1]
        if bit != _C:
            d = new_word + (value or 0) - old_word - (old or 0)
            # an outer checksum covers GRE too, but after a resize lengths wait for
            # reconcile_all anyway
            if not self._absorb(d) and (old is None) == (value is None):
                self._ripple(d)

    # -- optional fields ----------------------------------------------------------------
    @property
    def checksum(self) -> int | None:
        """The GRE checksum (header + payload), or None when absent."""
        v = self._read_opt(_C)
        return None if v is None else v >> 16

    @property
    def reserved1(self) -> int | None:
        """The 16 bits after the checksum (zero on send), or None when absent."""
        v = self._read_opt(_C)
        return None if v is None else v & 0xFFFF

    def use_checksum(self, enabled: bool = True) -> None:
        """Add (and compute) or remove the checksum field."""
        present = self._read_opt(_C) is not None
        if enabled and not present:
            self._write_opt(_C, 0)
            self._write_checksum()
        elif not enabled and present:
            self._write_opt(_C, None)

    @property
    def key(self) -> int | None:
        """The 32-bit key (RFC 2890), or None when absent."""
        return self._read_opt(_K)

    @key.setter
    def key(self, value: int | None) -> None:
        self._write_opt(_K, value)

    @property
    def sequence(self) -> int | None:
        """The 32-bit sequence number (RFC 2890), or None when absent."""
        return self._read_opt(_S)

    @sequence.setter
    def sequence(self, value: int | None) -> None:
        self._write_opt(_S, value)

    # The presence flags add or remove their field rather than flip a bit: the header
    # never disagrees with the buffer.
    @property
    def checksum_present(self) -> bool:
        """True when the header carries the optional checksum (the C bit)."""
        return bool(self._buf[self._abs] & _C)

    @checksum_present.setter
    def checksum_present(self, value: bool) -> None:
        self.use_checksum(bool(value))

    key_present = presence_flag(_K, "key")
    seq_present = presence_flag(_S, "sequence")

    # -- checksum -------------------------------------------------------------------------
    def compute_checksum(self) -> int | None:
        """The checksum this packet should carry, or None without a checksum field."""
        if not self._buf[self._abs] & _C:
            return None
        a = self._abs
        b = self._buf
        c = a + 4
        old = b[c:c + 2].tobytes()
        b[c:c + 2] = b"\0\0"
        try:
            return _checksum(b[a:self._end])
        finally:
            b[c:c + 2] = old

    @property
    def checksum_ok(self) -> bool:
        """True when the checksum is right, or absent."""
        want = self.compute_checksum()
        return want is None or want == self.checksum or {want, self.checksum} == {0, 0xFFFF}

    def _write_checksum(self) -> None:
        v = self.compute_checksum()
        if v is not None:
            c = self._abs + 4
            self._buf[c] = v >> 8
            self._buf[c + 1] = v & 0xFF

    def _csum_fix(self, old: int, new: int) -> None:
        if not self._absorb(new - old):
            self._ripple(new - old)       # no checksum here: the next one out covers GRE

    def _absorb(self, d: int) -> bool:
        b = self._buf
        if not b[self._abs] & _C:
            return False
        c = self._abs + 4
        hc = _update((b[c] << 8) | b[c + 1], 0, d)
        b[c] = hc >> 8
        b[c + 1] = hc & 0xFF
        return True

    def reconcile(self) -> None:
        """Recompute the checksum over header and payload, when present."""
        self._check_writable("reconcile")
        self._write_checksum()

    # -- envelope protocol: the payload is named by an EtherType ---------------------------
    def _carries(self, cls: type) -> bool:
        t = cls.ETHERTYPE  # type: ignore[attr-defined]
        return t is not None and t == self.protocol_type

    def _can_carry(self, cls: type) -> bool:
        return cls.ETHERTYPE is not None  # type: ignore[attr-defined]

    def _set_next(self, cls: type) -> None:
        self.protocol_type = cls.ETHERTYPE  # type: ignore[attr-defined]

    def _describe_next(self) -> str:
        t = self.protocol_type
        try:
            name = f" ({EtherType(t).name})"
        except ValueError:
            name = ""
        return f"GRE protocol type is {t:#06x}{name}"

    def _extra_repr(self) -> list[str]:
        out = []
        for name in ("checksum", "key", "sequence"):
            v: Any = getattr(self, name)
            if v is not None:
                out.append(f"{name}={v:#x}" if name != "sequence" else f"{name}={v}")
        return out

    def summary(self) -> str:
        parts = ["GREv0"]
        if self.key is not None:
            parts.append(f"key={self.key:#x}")
        if self.sequence is not None:
            parts.append(f"seq {self.sequence}")
        t = self.protocol_type
        try:
            parts.append(f"proto {EtherType(t).name}")
        except ValueError:
            parts.append(f"proto {t:#06x}")
        return ", ".join(parts)
