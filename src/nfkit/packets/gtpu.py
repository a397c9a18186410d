"""GTP-U version 1 (3GPP TS 29.281): user-plane tunnels over UDP port 2152.

Layout: 8 mandatory bytes (flags, message type, length, TEID); when any of the E, S or PN
flags is set, 4 more (sequence number, N-PDU number, next extension header type); then,
with E set, a chain of extension headers, each ``length (4-byte units) | content | next
type``, ending at next type 0.  ``length`` counts every byte after the first 8.
A G-PDU (message type 255) carries an IPv4 or IPv6 packet, told apart by its version nibble.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Sequence

from ..errors import FieldValueError, MalformedError, TruncatedError
from .base import Packet
from .constants import GTPU_PORT
from .fields import Bits, Flag, U8, U16, U32, presence_flag
from .ipv4 import Ipv4
from .ipv6 import Ipv6
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["GtpU", "GtpMessageType"]

_E, _S, _PN = 0x04, 0x02, 0x01
_OPT = _E | _S | _PN
_CARRIED = {4: Ipv4, 6: Ipv6}


class GtpMessageType(IntEnum):
    """GTP-U message types (TS 29.281 6.1)."""

    ECHO_REQUEST = 1
    ECHO_RESPONSE = 2
    ERROR_INDICATION = 26
    SUPPORTED_EXTENSION_HEADERS_NOTIFICATION = 31
    END_MARKER = 254
    G_PDU = 255


class GtpU(Packet):
    """A GTP-U v1 header, optional part and extension headers included in ``header_len``.

    ``sequence`` and ``npdu_number`` are None unless their flag is set; assigning a number
    sets the flag (adding the optional 4 bytes if needed), assigning None clears it.
    :attr:`extensions` reads and replaces the extension-header chain.
    """

    __slots__ = ()
    NAME = "GTP-U"
    SIZE = 8
    UDP_PORTS = (GTPU_PORT,)
    FIELDS = (
        Bits("version", 0, 1, 0xE0, default=1, gen=1),
        Flag("protocol_type", 0, 1, 0x10, default=True, gen=True, doc="1 = GTP (0 = GTP')"),
        Flag("spare", 0, 1, 0x08, gen=False),
        Flag("ext_present", 0, 1, _E, derived=True, structural=True, doc="E flag"),
        Flag("seq_present", 0, 1, _S, derived=True, structural=True, doc="S flag"),
        Flag("npdu_present", 0, 1, _PN, derived=True, structural=True, doc="PN flag"),
        U8("message_type", 1, default=GtpMessageType.G_PDU, enum=GtpMessageType,
           gen=GtpMessageType.G_PDU, doc="255 (G-PDU) when a user packet follows"),
        U16("length", 2, derived=True, doc="bytes after the first 8"),
        U32("teid", 4, fmt="hex", doc="tunnel endpoint identifier"),
        # the optional part (present when E, S or PN is set; absent from a pushed header)
        U16("sequence", 8),
        U8("npdu_number", 10),
        U8("next_ext_type", 11, derived=True),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        version = _ft.Int()
        protocol_type = _ft.Flag()
        spare = _ft.Flag()
        message_type = _ft.Int()
        length = _ft.Int()
        teid = _ft.Int()
    # -- end of generated accessors

    # -- geometry -------------------------------------------------------------------------
    def _compute_hlen(self) -> int:
        b = self._buf
        a = self._abs
        f = b[a]
        if not f & _OPT:
            return 8
        if not f & _E:
            return 12
        end = self._end
        pos = a + 12
        nxt = b[pos - 1] if pos <= end else 0
        while nxt:
            if pos >= end:
                raise TruncatedError(self.NAME, f"extension header {nxt:#04x} at offset "
                                                f"{pos - a} is past the end of the packet")
            n = 4 * b[pos]
            if n == 0:
                raise MalformedError(self.NAME, f"extension header {nxt:#04x} at offset "
                                                f"{pos - a} has length 0")
            if pos + n > end:
                raise TruncatedError(self.NAME, f"extension header {nxt:#04x} at offset "
                                                f"{pos - a} needs {n} bytes, {end - pos} remain")
            nxt = b[pos + n - 1]
            pos += n
        return pos - a

    def _validate(self, avail: int) -> None:
        b = self._buf
        a = self._abs
        v = b[a] >> 5
        if v != 1:
            raise MalformedError(self.NAME, f"version is {v}, expected 1 (GTP-U v1)")
        if b[a] & _OPT and avail < 12:
            raise TruncatedError(self.NAME, f"flags {b[a]:#04x} announce 12 header bytes, "
                                            f"{avail} remain")
        hlen = self._compute_hlen()
        length = (b[a + 2] << 8) | b[a + 3]
        if length:  # 0: not filled in yet
            if 8 + length < hlen:
                raise MalformedError(self.NAME, f"length {length} is below the header's "
                                                f"{hlen - 8} bytes after the first 8")
            if 8 + length > avail:
                raise TruncatedError(self.NAME, f"length {length} exceeds remaining "
                                                f"{avail - 8} bytes")
            self._end = a + 8 + length
        self._hlen = hlen

    def _set_flags(self, on: int, off: int) -> None:
        """Set and clear E/S/PN bits, adding or removing the optional part as needed."""
        self._check_writable("change")
        b = self._buf
        f = b[self._abs]
        new = (f | on) & ~off & 0xFF
        if new & _OPT and not f & _OPT:
            self._resize_header(8, 4)
        elif f & _OPT and not new & _OPT:
            self._resize_header(8, 8 - self._hlen)
        self._buf[self._abs] = new

    # -- optional fields ----------------------------------------------------------------
    def _opt_get(self, bit: int, off: int, width: int) -> int | None:
        if not self._buf[self._abs] & bit:
            return None
        self._check_optional_part()
        p = self._abs + off
        return int.from_bytes(self._buf[p:p + width], "big")

    def _opt_set(self, bit: int, off: int, width: int, value: int | None) -> None:
        self._rewrite(self._opt_write, bit, off, width, value)

    def _opt_write(self, bit: int, off: int, width: int, value: int | None) -> None:
        if value is None:
            self._set_flags(0, bit)
            if self._buf[self._abs] & _OPT:  # the field stays: zero it, as senders must
                p = self._abs + off
                self._buf[p:p + width] = bytes(width)
            return
        try:
            v = value.__index__()
        except (AttributeError, TypeError):
            raise FieldValueError(f"takes an integer or None, got {type(value).__name__}") from None
        if not 0 <= v < 1 << (8 * width):
            raise FieldValueError(f"{v} does not fit {8 * width} bits")
        self._set_flags(bit, 0)
        p = self._abs + off
        self._buf[p:p + width] = v.to_bytes(width, "big")

    @property
    def sequence(self) -> int | None:
        """The sequence number (S flag), or None."""
        return self._opt_get(_S, 8, 2)

    @sequence.setter
    def sequence(self, value: int | None) -> None:
        self._opt_set(_S, 8, 2, value)

    @property
    def npdu_number(self) -> int | None:
        """The N-PDU number (PN flag), or None."""
        return self._opt_get(_PN, 10, 1)

    @npdu_number.setter
    def npdu_number(self, value: int | None) -> None:
        self._opt_set(_PN, 10, 1, value)

    @property
    def next_ext_type(self) -> int | None:
        """Type of the first extension header (0: none), or None without the optional part."""
        if not self._buf[self._abs] & _OPT:
            return None
        self._check_optional_part()
        return self._buf[self._abs + 11]

    def _check_optional_part(self) -> None:
        """Reads stay inside the header: flags set by a raw write (not by the setters,
        which add the 4 bytes) announce an optional part the view does not have."""
        if self._hlen < 12:
            raise MalformedError(self.NAME, f"flags {self._buf[self._abs]:#04x} announce an "
                                            f"optional part, the header has {self._hlen} bytes")

    @property
    def ext_present(self) -> bool:
        """True when the E bit says extension headers follow."""
        return bool(self._buf[self._abs] & _E)

    @ext_present.setter
    def ext_present(self, value: bool) -> None:
        if value:
            self._rewrite(self._set_flags, _E, 0)
        elif self.ext_present:
            self.extensions = []

    seq_present = presence_flag(_S, "sequence")
    npdu_present = presence_flag(_PN, "npdu_number")

    # -- extension headers ------------------------------------------------------------------
    @property
    def extensions(self) -> list[tuple[int, bytes]]:
        """The extension headers as ``(type, content)`` pairs, in order (content excludes
        the length and next-type bytes)."""
        b = self._buf
        a = self._abs
        if not b[a] & _E:
            return []
        out = []
        pos = a + 12
        nxt = b[pos - 1]
        end = a + self._hlen
        while nxt and pos < end:
            n = 4 * b[pos]
            if n == 0 or pos + n > end:  # only after raw writes: parse refuses these
                break
            out.append((nxt, b[pos + 1:pos + n - 1].tobytes()))
            nxt = b[pos + n - 1]
            pos += n
        return out

    @extensions.setter
    def extensions(self, value: Sequence[tuple[int, bytes]]) -> None:
        """Replace the chain; each content must make its header a multiple of 4 bytes
        (``len(content) + 2``), e.g. 2 bytes for a PDU Session Container."""
        self._check_writable("set the extensions of")
        self._rewrite(self._write_extensions, value)

    def _write_extensions(self, value: Sequence[tuple[int, bytes]]) -> None:
        exts = [(int(t), bytes(c)) for t, c in value]
        raw = bytearray()
        for i, (t, c) in enumerate(exts):
            size = len(c) + 2
            if not 1 <= t <= 0xFF:
                raise FieldValueError(f"extension type {t} is not in 1..255")
            if size % 4 or size // 4 > 0xFF:
                raise FieldValueError(f"extension {t:#04x}: content of {len(c)} bytes does not "
                                      f"make a whole number of 4-byte units (len + 2)")
            nxt = exts[i + 1][0] if i + 1 < len(exts) else 0
            raw += bytes([size // 4]) + c + bytes([nxt])
        if not exts:
            if self.ext_present:
                self._resize_header(12, 12 - self._hlen)
                self._buf[self._abs + 11] = 0
                self._set_flags(0, _E)
            return
        self._set_flags(_E, 0)
        delta = 12 + len(raw) - self._hlen
        if delta:
            self._resize_header(12, delta)
        a = self._abs
        self._buf[a + 11] = exts[0][0]
        self._buf[a + 12:a + 12 + len(raw)] = raw

    def reconcile(self) -> None:
        """Set ``length`` from the packet (every byte after the first 8)."""
        self._check_writable("reconcile")
        n = self._end - self._abs - 8
        if n > 0xFFFF:
            raise MalformedError(self.NAME, f"{n} bytes after the header do not fit length")
        self._buf[self._abs + 2] = n >> 8
        self._buf[self._abs + 3] = n & 0xFF

    # -- envelope protocol: a G-PDU carries IPv4 or IPv6 ------------------------------------
    # No cached payload key (``_next`` stays None): the key would come from the payload's
    # first byte, which set_payload or an inner push/remove can change behind our back.
    def _carries(self, cls: type) -> bool:
        b = self._buf
        a = self._abs
        start = a + self._hlen
        if b[a + 1] != GtpMessageType.G_PDU or start >= self._end:
            return False
        want = _CARRIED.get(b[start] >> 4)
        return want is not None and issubclass(cls, want)

    def _can_carry(self, cls: type) -> bool:
        return issubclass(cls, (Ipv4, Ipv6))

    def _set_next(self, cls: type) -> None:
        self.message_type = GtpMessageType.G_PDU

    def _describe_next(self) -> str:
        mt = self._buf[self._abs + 1]
        if mt != GtpMessageType.G_PDU:
            return f"GTP-U message type {mt} is not a G-PDU"
        start = self._abs + self._hlen
        if start >= self._end:
            return "GTP-U G-PDU has no payload"
        return f"GTP-U payload has IP version {self._buf[start] >> 4}"

    def _extra_repr(self) -> list[str]:
        exts = self.extensions
        return [f"extensions=[{', '.join(f'{t:#04x}:{c.hex()}' for t, c in exts)}]"] if exts else []

    def summary(self) -> str:
        try:
            mt = GtpMessageType(self.message_type).name
        except ValueError:
            mt = f"type {self.message_type}"
        seq = f" seq {self.sequence}" if self.sequence is not None else ""
        return f"GTPv1-U {mt} teid {self.teid:#x}{seq} len {self.payload_len}"
