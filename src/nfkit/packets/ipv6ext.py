"""IPv6 extension headers with a typed API: Fragment (RFC 8200 4.5) and the Segment
Routing Header (RFC 8754).

Both sit between IPv6 (or another extension header) and the transport, and behave as an IP
layer of their own: they carry a protocol by ``next_header``, and the transport's
pseudo-header goes through them (the SRH supplies the final destination, RFC 8200 8.1).
Push and remove keep the ``next_header`` chain intact.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any, Sequence

from ..errors import FieldValueError, MalformedError, ProtocolMismatch, TruncatedError
from ..net import to_ipv6
from .base import KEY_IPV6_PROTO, P, Packet
from .constants import IpProtocol
from .fields import Bits, Flag, U8, U16, U32
from .ip import IpCarrier, l4_checksum_fix
from .ipv6 import walk_extension_headers
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["Fragment", "SegmentRouting", "SRH_ROUTING_TYPE"]

_M = 0xFFFF
#: Routing type of a Segment Routing Header (RFC 8754 2).
SRH_ROUTING_TYPE = 4


class _Ipv6Extension(IpCarrier):
    """What Fragment and SegmentRouting share: the next-header chain and delegation of the
    IP-level questions (addresses, pseudo-header) to the envelope.  A mixin, like
    :class:`IpCarrier`, so that it is not itself a registered header class.

    The payload key (``_next``) follows ``next_header``, which is structural so that its
    setter refreshes the key; a non-initial fragment keys nothing (-1).
    """

    __slots__ = ()
    IP_FAMILY = 6
    _NEXT = 0
    _FAMILY = 6
    _NEXT_NAME = "next_header"

    @classmethod
    def _try_push(cls: type[P], env: Any) -> P:
        """Push, taking over the envelope's old next-protocol value: IPv6 / TCP becomes
        IPv6 / this header / TCP."""
        nxt = env._next_protocol() if env._can_carry(cls) else None
        p = super()._try_push(env)  # type: ignore[misc]
        if nxt is not None:
            setattr(p, p._NEXT_NAME, nxt)
        return p

    def _compute_next(self) -> int:
        return KEY_IPV6_PROTO | self._buf[self._abs] if self._is_initial_fragment() else -1

    def remove(self) -> Any:
        """Strip this header; the envelope's ``next_header`` takes over this one's."""
        self._check_writable("remove")
        nxt = self._buf[self._abs]
        env = Packet.remove(self)
        setattr(env, env._NEXT_NAME, nxt)
        return env

    def _ip(self) -> Any:
        return self._env._ip()

    def _is_initial_fragment(self) -> bool:
        return bool(self._env._is_initial_fragment())

    def _pseudo_sum(self, protocol: int, length: int) -> int:
        return int(self._env._pseudo_sum(protocol, length))

    def _final_dst(self) -> IPv6Address:
        return self._env._final_dst()  # type: ignore[no-any-return]

    @property
    def src(self) -> IPv6Address:
        """The IPv6 source address (read-only here: set it on the IPv6 header)."""
        return self._ip().src  # type: ignore[no-any-return]

    @property
    def dst(self) -> IPv6Address:
        """The final destination of the packet (read-only here)."""
        return self._final_dst()


class Fragment(_Ipv6Extension, Packet):
    """IPv6 Fragment header (8 bytes).  Only the first fragment (offset 0) carries the
    transport header, so parsing TCP/UDP after a later fragment is a ProtocolMismatch."""

    __slots__ = ()
    NAME = "IPv6-Frag"
    FIELD_PREFIX = "frag"
    SIZE = 8
    IP_PROTOCOL = IpProtocol.IPV6_FRAG
    FIELDS = (
        U8("next_header", 0, enum=IpProtocol, derived=True, structural=True),
        U8("reserved", 1, gen=0),
        Bits("fragment_offset", 2, 2, 0xFFF8, gen=0, structural=True,
             doc="fragment offset in 8-byte units"),
        Bits("res", 2, 2, 0x0006, gen=0),
        Flag("more_fragments", 2, 2, 0x0001, gen=False),
        U32("identification", 4, fmt="hex"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        next_header = _ft.Int()
        reserved = _ft.Int()
        fragment_offset = _ft.Int()
        res = _ft.Int()
        more_fragments = _ft.Flag()
        identification = _ft.Int()
    # -- end of generated accessors

    def _is_initial_fragment(self) -> bool:
        b = self._buf
        a = self._abs
        offset = ((b[a + 2] << 8) | b[a + 3]) & 0xFFF8
        return offset == 0 and bool(self._env._is_initial_fragment())

    def _validate(self, avail: int) -> None:
        self._next = self._compute_next()

    def summary(self) -> str:
        mf = " MF" if self.more_fragments else ""
        return f"frag id {self.identification:#x} off {self.fragment_offset * 8}{mf}"


class SegmentRouting(_Ipv6Extension, Packet):
    """Segment Routing Header: a routing header (type 4) with a list of 16-byte segments.

    ``segments[0]`` is the final destination (the list is stored last hop first), and is
    what the transport pseudo-header uses (RFC 8200 8.1, whatever ``segments_left`` says;
    Linux and Scapy use the IPv6 destination once it is 0, the same address in a packet that
    followed its segment list).  Unlike capsule, TLVs after the segment list are accepted and kept (:attr:`tlvs`).  Changing ``segments[0]`` keeps the transport checksum
    after this header valid, as IP address setters do.
    """

    __slots__ = ()
    NAME = "SRH"
    FIELD_PREFIX = "sr"
    PUSH_SIZE = 24  # the fixed part and one segment (::), as capsule pushes it
    SIZE = 8
    IP_PROTOCOL = IpProtocol.IPV6_ROUTE
    FIELDS = (
        U8("next_header", 0, enum=IpProtocol, derived=True, structural=True),
        U8("hdr_ext_len", 1, default=2, derived=True, structural=True, bounded=True,
           doc="header length in 8-byte units, not counting the first 8 bytes"),
        U8("routing_type", 2, default=SRH_ROUTING_TYPE, gen=SRH_ROUTING_TYPE),
        U8("segments_left", 3),
        U8("last_entry", 4, derived=True, bounded=True, doc="index of the last segment"),
        U8("flags", 5, fmt="hex"),
        U16("tag", 6, fmt="hex"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        next_header = _ft.Int()
        hdr_ext_len = _ft.Int()
        routing_type = _ft.Int()
        segments_left = _ft.Int()
        last_entry = _ft.Int()
        flags = _ft.Int()
        tag = _ft.Int()
    # -- end of generated accessors
    #: RFC 8754 allows 256 entries by last_entry, but hdr_ext_len (2 per segment) caps it.
    MAX_SEGMENTS = 127

    def _compute_hlen(self) -> int:
        return 8 + 8 * self._buf[self._abs + 1]

    def _validate(self, avail: int) -> None:
        b = self._buf
        a = self._abs
        rt = b[a + 2]
        if rt != SRH_ROUTING_TYPE:
            raise ProtocolMismatch(self.NAME, f"routing type {rt} is not a segment routing header")
        ext, last = b[a + 1], b[a + 4]
        if ext < 2 * (last + 1):
            raise MalformedError(self.NAME, f"hdr_ext_len {ext} cannot hold {last + 1} segments "
                                            f"(last_entry {last})")
        hlen = 8 + 8 * ext
        if hlen > avail:
            raise TruncatedError(self.NAME, f"header length {hlen} exceeds remaining {avail} bytes")
        self._hlen = hlen
        self._next = self._compute_next()

    def _bound(self, name: str, value: int) -> None:
        b = self._buf
        a = self._abs
        if name == "last_entry":
            if 2 * (value + 1) > b[a + 1]:
                raise FieldValueError(f"last_entry {value}: {value + 1} segments do not fit "
                                      f"hdr_ext_len {b[a + 1]} (set segments instead)")
        elif 8 + 8 * value > self._end - a or value < 2 * (b[a + 4] + 1):
            raise FieldValueError(f"hdr_ext_len {value}: {8 + 8 * value} bytes must hold the "
                                  f"{b[a + 4] + 1} segments and fit the {self._end - a} bytes "
                                  "left in the packet (set segments or tlvs instead)")

    # -- segments -----------------------------------------------------------------------
    @property
    def segment_count(self) -> int:
        """The number of segments in the list (``last_entry + 1``)."""
        n = self._buf[self._abs + 4] + 1
        if 8 + 16 * n > self._hlen:     # only after raw writes: parse and setters refuse it
            raise MalformedError(self.NAME, f"last_entry {n - 1} runs past the "
                                            f"{self._hlen}-byte header")
        return n

    def segment(self, i: int) -> IPv6Address:
        """Segment ``i`` (0 = the final destination)."""
        n = self.segment_count
        if not -n <= i < n:
            raise IndexError(f"segment {i} out of range: the list has {n} segments")
        s = self._abs + 8 + 16 * (i % n)
        return IPv6Address(self._buf[s:s + 16].tobytes())

    @property
    def segments(self) -> list[IPv6Address]:
        """The segment list, final destination first."""
        b = self._buf
        s = self._abs + 8
        return [IPv6Address(b[s + 16 * i:s + 16 * i + 16].tobytes())
                for i in range(self.segment_count)]

    @segments.setter
    def segments(self, value: Sequence[Any]) -> None:
        self.set_segments(value)

    def set_segments(self, segments: Sequence[Any]) -> None:
        """Replace the segment list, resizing the header; ``hdr_ext_len`` and
        ``last_entry`` follow, TLVs are kept, ``segments_left`` is left alone."""
        self._check_writable("set the segments of")
        packed = [to_ipv6(s) for s in segments]
        n = len(packed)
        if n == 0:
            raise FieldValueError("the segment list cannot be empty")
        old_n = self.segment_count
        new_ext = self._buf[self._abs + 1] + 2 * (n - old_n)
        if n > self.MAX_SEGMENTS or new_ext > 0xFF:
            raise FieldValueError(f"{n} segments do not fit hdr_ext_len (with "
                                  f"{len(self.tlvs)} bytes of TLVs)")
        old_dst = self._buf[self._abs + 8:self._abs + 24].tobytes()
        s0 = self._header_sum()
        if n != old_n:  # grow or shrink at the end of the list, before the TLVs
            self._resize_header(8 + 16 * min(n, old_n), 16 * (n - old_n))
        b = self._buf
        a = self._abs
        b[a + 8:a + 8 + 16 * n] = b"".join(packed)
        b[a + 1] = new_ext
        b[a + 4] = n - 1
        d = self._final_dst_changed(old_dst, packed[0])
        if n == old_n:
            self._ripple(self._header_sum() - s0 + d)

    @property
    def tlvs(self) -> bytes:
        """The raw TLV bytes after the segment list (RFC 8754 2.1), padding included."""
        return self._buf[self._abs + 8 + 16 * self.segment_count:self._abs + self._hlen].tobytes()

    @tlvs.setter
    def tlvs(self, value: bytes) -> None:
        """Replace the TLVs; zero bytes (Pad1) pad them to a multiple of 8 bytes."""
        self._check_writable("set the TLVs of")
        self._rewrite(self._write_tlvs, value)

    def _write_tlvs(self, value: bytes) -> None:
        data = bytes(value)
        data += bytes(-len(data) % 8)
        start = 8 + 16 * self.segment_count
        new_ext = (start - 8 + len(data)) // 8
        if new_ext > 0xFF:
            raise FieldValueError(f"{len(data)} bytes of TLVs do not fit hdr_ext_len")
        delta = start + len(data) - self._hlen
        if delta:
            self._resize_header(start, delta)
        a = self._abs
        self._buf[a + start:a + start + len(data)] = data
        self._buf[a + 1] = new_ext

    def _final_dst_changed(self, old: bytes, new: bytes) -> int:
        """Fix the transport checksum after this header for a new pseudo-header destination
        (skipped when a later routing header holds the final destination); returns the
        change of the checksum word (header lengths are multiples of 8: weight 1 here)."""
        if old == new:
            return 0
        b = self._buf
        a = self._abs
        pos, proto, routing, initial = walk_extension_headers(b, a + self._hlen, self._end, b[a])
        if pos >= 0 and initial and not routing:
            return l4_checksum_fix(b, pos, self._end, proto, int.from_bytes(old, "big"),
                                   int.from_bytes(new, "big"))
        return 0

    # -- the IP layer ---------------------------------------------------------------------
    def _final_dst(self) -> IPv6Address:
        return IPv6Address(self._buf[self._abs + 8:self._abs + 24].tobytes())

    def _pseudo_sum(self, protocol: int, length: int) -> int:
        src = self._ip()
        b = self._buf
        s = int.from_bytes(b[src._abs + 8:src._abs + 24], "big")
        d = int.from_bytes(b[self._abs + 8:self._abs + 24], "big")
        return (s + d + protocol + length) % _M

    def remove(self) -> Any:
        """Strip the SRH; the transport checksum follows the pseudo-header destination
        going back to the envelope's."""
        self._check_writable("remove")
        old = self._buf[self._abs + 8:self._abs + 24].tobytes()
        env = super().remove()
        new = env._final_dst().packed
        if old != new:
            b = self._buf
            start = env._abs + env._hlen
            nxt = b[env._abs + env._NEXT]
            pos, proto, routing, initial = walk_extension_headers(b, start, env._end, nxt)
            if pos >= 0 and initial and not routing and env._is_initial_fragment():
                l4_checksum_fix(b, pos, env._end, proto, int.from_bytes(old, "big"),
                                int.from_bytes(new, "big"))
        return env

    def _extra_repr(self) -> list[str]:
        try:
            out = [f"segments=[{', '.join(str(s) for s in self.segments)}]"]
            if self._hlen > 8 + 16 * self.segment_count:
                out.append(f"tlvs={self.tlvs.hex()}")
        except MalformedError as exc:  # repr never raises
            return [f"segments=<{exc.reason}>"]
        return out

    def summary(self) -> str:
        segs = ", ".join(f"[{i}]{s}" for i, s in enumerate(self.segments))
        return f"SRH segleft {self.segments_left} {segs}"


# A pushed SRH holds one unspecified segment (::), as in capsule, so it parses right away.
