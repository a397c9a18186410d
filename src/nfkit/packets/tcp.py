"""TCP (RFC 9293), options preserved."""

from __future__ import annotations

from ..errors import MalformedError
from .base import Packet
from .constants import IpProtocol
from .fields import Bits, Flag, U16, U32
from .ip import Transport
from .ipv4 import _check_words
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Tcp", "TCP_OPTION_NAMES"]

TCP_OPTION_NAMES = {0: "EOL", 1: "NOP", 2: "MSS", 3: "WS", 4: "SACK_PERMITTED", 5: "SACK",
                    8: "TIMESTAMP", 28: "USER_TIMEOUT", 29: "TCP_AO", 30: "MPTCP", 34: "TFO"}


class Tcp(Transport, Packet):
    """TCP header over IPv4, IPv6 or an IPv6 extension header.

    ``header_len`` follows the data offset, so options belong to the header
    (:attr:`options`, :meth:`option_list`).  Every field setter keeps the checksum valid
    incrementally; so do address changes on the IP header below.
    """

    __slots__ = ()
    NAME = "TCP"
    SIZE = 20
    CHECKSUM = 16
    IP_PROTOCOL = IpProtocol.TCP
    FIELDS = (
        U16("src_port", 0),
        U16("dst_port", 2),
        U32("seq_no", 4),
        U32("ack_no", 8),
        Bits("data_offset", 12, 1, 0xF0, default=5, derived=True, structural=True,
             bounded=True, doc="header length in 32-bit words (5..15, within the packet)"),
        Bits("reserved", 12, 1, 0x0E, gen=0),
        Flag("ns", 12, 1, 0x01),
        Flag("cwr", 13, 1, 0x80),
        Flag("ece", 13, 1, 0x40),
        Flag("urg", 13, 1, 0x20),
        Flag("ack", 13, 1, 0x10),
        Flag("psh", 13, 1, 0x08),
        Flag("rst", 13, 1, 0x04),
        Flag("syn", 13, 1, 0x02),
        Flag("fin", 13, 1, 0x01),
        Bits("flags", 12, 2, 0x01FF, alias=True, fmt="hex", doc="all nine flags (NS..FIN)"),
        U16("window", 14),
        U16("checksum", 16, fmt="hex", derived=True),
        U16("urgent_pointer", 18),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        src_port = _ft.Int()
        dst_port = _ft.Int()
        seq_no = _ft.Int()
        ack_no = _ft.Int()
        data_offset = _ft.Int()
        reserved = _ft.Int()
        ns = _ft.Flag()
        cwr = _ft.Flag()
        ece = _ft.Flag()
        urg = _ft.Flag()
        ack = _ft.Flag()
        psh = _ft.Flag()
        rst = _ft.Flag()
        syn = _ft.Flag()
        fin = _ft.Flag()
        flags = _ft.Int()
        window = _ft.Int()
        checksum = _ft.Int()
        urgent_pointer = _ft.Int()
    # -- end of generated accessors

    def _compute_hlen(self) -> int:
        return (self._buf[self._abs + 12] >> 4) * 4

    def _bound(self, name: str, value: int) -> None:
        _check_words(self, name, value)

    def _validate(self, avail: int) -> None:
        hlen = (self._buf[self._abs + 12] >> 4) * 4
        if hlen < 20:
            raise MalformedError(self.NAME, f"data offset {hlen // 4} is below 5")
        if hlen > avail:
            from ..errors import TruncatedError
            raise TruncatedError(self.NAME, f"header length {hlen} exceeds remaining {avail} bytes")
        self._hlen = hlen

    @property
    def syn_ack(self) -> bool:
        """True when both SYN and ACK are set (the second packet of a handshake)."""
        return self.syn and self.ack

    @property
    def options(self) -> bytes:
        """The raw option bytes (header bytes 20 to data_offset*4)."""
        return self._buf[self._abs + 20:self._abs + self._hlen].tobytes()

    @options.setter
    def options(self, value: bytes) -> None:
        words = self._replace_options(value)
        b = self._buf
        b[self._abs + 12] = (b[self._abs + 12] & 0x0F) | (words << 4)
        self._write_checksum()

    def option_list(self) -> list[tuple[int, bytes]]:
        """The options as ``(kind, data)`` pairs, NOP and EOL left out.

        Raises :class:`MalformedError` for an option whose length runs past the header."""
        raw = self.options
        out = []
        i = 0
        while i < len(raw):
            kind = raw[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
                raise MalformedError(self.NAME, f"option {kind} at offset {20 + i} has a bad length")
            out.append((kind, raw[i + 2:i + raw[i + 1]]))
            i += raw[i + 1]
        return out

    def reconcile(self) -> None:
        """Recompute the checksum (pseudo-header included)."""
        self._check_writable("reconcile")
        self._write_checksum()

    def summary(self) -> str:
        names = "".join(c for c, on in zip("NCEUAPRSF", (self.ns, self.cwr, self.ece, self.urg, self.ack,
                                                           self.psh, self.rst, self.syn, self.fin)) if on)
        return (f"TCP {self.src_port} > {self.dst_port} [{names or '.'}] seq {self.seq_no}"
                + (f" ack {self.ack_no}" if self.ack else "") + f" win {self.window}"
                + f" len {self.payload_len}")
