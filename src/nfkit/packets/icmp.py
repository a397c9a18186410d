"""What ICMPv4 and ICMPv6 share (RFC 792, RFC 4443): the common 4 bytes, the checksum
over the whole message (ICMPv6's with the pseudo-header), concrete message classes chosen
by type, ``downcast``, the ``data`` and echo mixins and the echo fields.

The family roots are :class:`~nfkit.packets.icmpv4.Icmpv4` and
:class:`~nfkit.packets.icmpv6.Icmpv6`; the messages of each family live in its module.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar, TypeVar

from ..checksum import ones_sum, update as _update
from ..errors import ProtocolMismatch
from .base import Packet
from .fields import Field, U16

__all__ = ["IcmpMessage", "DataMixin", "EchoMixin", "ECHO_FIELDS"]

_M = 0xFFFF
_new = object.__new__

M = TypeVar("M", bound="IcmpMessage")


def _type_label(enum: type[IntEnum], value: int) -> str:
    """``'8 (Echo Request)'``, or just the number for an unknown type."""
    try:
        return f"{int(value)} ({enum(value)})"
    except ValueError:
        return str(value)


class IcmpMessage(Packet):
    """What ICMPv4 and ICMPv6 share: the common 4 bytes, the checksum, message classes.

    Subclasses of a family root (:class:`Icmpv4`, :class:`~nfkit.packets.icmpv6.Icmpv6`)
    that set ``MSG_TYPE`` are concrete messages: parsing checks the type, pushing writes it,
    and they are registered so :meth:`message` can find them.  ``TRIM_TO`` (error
    messages) is the length :meth:`reconcile` trims the enclosing IP packet to.
    """

    __slots__ = ()
    SIZE = 4
    CHECKSUM = 2
    #: the type a concrete message has (None: the generic header, any type)
    MSG_TYPE: ClassVar[int | None] = None
    #: error messages: the enclosing IP packet is trimmed to this many bytes on reconcile
    TRIM_TO: ClassVar[int | None] = None
    #: set by each family root
    _ROOT: ClassVar[type["IcmpMessage"]]
    _MESSAGES: ClassVar[dict[int, type["IcmpMessage"]]]
    _TYPES: ClassVar[type[IntEnum]]
    _FAMILY_NAME: ClassVar[str] = "ICMP"
    _TAG: ClassVar[str] = "ICMP"           # how summaries start, as tcpdump prints it

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_readonly_variant"):
            return
        mt = cls.MSG_TYPE
        if mt is None:
            return
        cls._claim = cls._message_claim
        cls._PARSE = cls._PARSE[:3] + (cls._claim,)
        # The type byte comes from MSG_TYPE, so push writes it with the defaults.
        raw = bytearray(cls._DEFAULTS)
        raw[0] = mt
        cls._DEFAULTS = bytes(raw)
        if "NAME" not in cls.__dict__:
            cls.NAME = f"{cls._FAMILY_NAME} {cls.__name__}"
        if "MSG_TYPE" in cls.__dict__:
            cls._MESSAGES.setdefault(mt, cls)

    # -- parse / push -------------------------------------------------------------------
    @classmethod
    def _message_claim(cls, buf: Any, start: int, end: int) -> None:
        """Before the size check: a too-short message of another type is a mismatch,
        not a truncated message of this type."""
        if end > start and buf[start] != cls.MSG_TYPE:
            raise ProtocolMismatch(cls.NAME, f"expected type {_type_label(cls._TYPES, cls.MSG_TYPE)}, "
                                             f"got type {_type_label(cls._TYPES, buf[start])}")

    def _validate(self, avail: int) -> None:
        mt = self.MSG_TYPE
        if mt is not None:
            t = self._buf[self._abs]
            if t != mt:
                raise ProtocolMismatch(self.NAME, f"expected type {_type_label(self._TYPES, mt)}, "
                                                  f"got type {_type_label(self._TYPES, t)}")

    @classmethod
    def _try_push(cls: type[M], env: Any) -> M:
        if cls.MSG_TYPE is None:
            raise ProtocolMismatch(cls.NAME, f"the generic {cls.NAME} header cannot be pushed: "
                                             "push a concrete message class (e.g. EchoRequest)")
        return super()._try_push(env)  # type: ignore[misc]

    def downcast(self, cls: type[M]) -> M:
        """The same bytes viewed as message class ``cls`` (no copy; a peeked header gives
        a read-only view).  :class:`ProtocolMismatch` if the type differs."""
        if not (isinstance(cls, type) and issubclass(cls, self._ROOT)):
            raise TypeError(f"{cls!r} is not a {self._ROOT.NAME} message class")
        return cls._try_parse(self._env, self._READONLY)

    def message(self) -> "IcmpMessage":
        """The concrete message view for this header's type, or the generic header when
        no message class is registered for it."""
        cls = self._MESSAGES.get(self._buf[self._abs])
        if cls is None or isinstance(self, cls):
            return self
        return self.downcast(cls)

    @property
    def type_name(self) -> str:
        """The type as text: ``'Echo Request'``, or ``'type 42'`` when unknown."""
        t = self._buf[self._abs]
        try:
            return str(self._TYPES(t))
        except ValueError:
            return f"type {t}"

    # -- checksum -----------------------------------------------------------------------
    def _pseudo(self, length: int) -> int:
        """Sum of the pseudo-header for a message of ``length`` bytes (none for ICMPv4)."""
        return 0

    def compute_checksum(self) -> int:
        """The checksum this message should carry (whole message, plus the IPv6
        pseudo-header for ICMPv6)."""
        b = self._buf
        a = self._abs
        end = self._end
        pseudo = self._pseudo(end - a)
        stored = (b[a + 2] << 8) | b[a + 3]
        v = (stored - ones_sum(b[a:end], pseudo)) % _M
        if v == 0 and not pseudo and not any(b[a:a + 2]) and not any(b[a + 4:end]):
            # All-zero data sums to +0, whose complement is 0xFFFF (the modular sum cannot
            # tell +0 from -0); RFC 1071 receivers reject a 0x0000 here.
            v = _M
        return v

    @property
    def checksum_ok(self) -> bool:
        """True when the stored checksum is right."""
        a = self._abs
        return ones_sum(self._buf[a:self._end], self._pseudo(self._end - a)) == 0

    def _write_checksum(self) -> None:
        v = self.compute_checksum()
        c = self._abs + 2
        self._buf[c] = v >> 8
        self._buf[c + 1] = v & 0xFF

    def _csum_fix(self, old: int, new: int) -> None:
        """Words of the message (an NDP option's) summing to ``old`` now sum to ``new``."""
        b = self._buf
        c = self._abs + 2
        hc = _update((b[c] << 8) | b[c + 1], old, new)
        b[c] = hc >> 8
        b[c + 1] = hc & 0xFF

    # -- resizing -----------------------------------------------------------------------
    def _splice(self, at: int, old_len: int, data: "bytes | bytearray | memoryview",
                what: str = "resize") -> None:
        """Replace ``old_len`` bytes at message offset ``at`` (>= 4) by ``data``, growing or
        shrinking the packet; a valid checksum stays valid (the sum of everything from
        ``at`` on, and the pseudo-header length, are updated incrementally)."""
        self._check_writable(what)
        if isinstance(data, memoryview):
            data = data.tobytes()     # it may view the bytes the resize is about to move
        b = self._buf
        a = self._abs
        w = at & ~1                   # sum from a word boundary: alignment stays right
        old_sum = ones_sum(b[a + w:self._end], self._pseudo(self._end - a))
        n = len(data)
        delta = n - old_len
        if delta:
            mbuf = self._mbuf
            rel = a + at - mbuf._abs
            d0, d1 = mbuf._resize(rel + (old_len if delta > 0 else n), delta)
            self._move(d0, d1)
            a = self._abs
        b[a + at:a + at + n] = data
        new_sum = ones_sum(b[a + w:self._end], self._pseudo(self._end - a))
        if new_sum != old_sum:
            self._csum_fix(old_sum, new_sum)

    def set_payload(self, data: "bytes | bytearray | memoryview") -> None:
        """Replace the payload (echo data, invoking packet, NDP options area), growing or
        shrinking the packet; a valid checksum stays valid."""
        self._splice(self._hlen, self._end - self._abs - self._hlen, data, "set the payload of")

    def _trim_ip(self, limit: int) -> None:
        """Cut the enclosing IP packet to ``limit`` bytes with its ``truncate`` when it is
        longer; this header and any headers between it and the IP header follow."""
        env = self._env
        ip = env._ip() if hasattr(env, "_ip") else env
        if ip._end - ip._abs <= limit:
            return
        a0, e0 = ip._abs, ip._end
        ip.truncate(limit)
        d0, d1 = ip._abs - a0, ip._end - e0
        p: Any = self
        while p is not ip:
            p._abs += d0
            p._end += d1
            p = p._env

    def reconcile(self) -> None:
        """Trim an error message's IP packet to ``TRIM_TO`` bytes, then set the checksum."""
        self._check_writable("reconcile")
        if self.TRIM_TO is not None:
            self._trim_ip(self.TRIM_TO)
        self._write_checksum()

    # -- display ------------------------------------------------------------------------
    def summary(self) -> str:
        return f"{self._TAG} {self.type_name.lower()} code {self._buf[self._abs + 1]}"


class DataMixin:
    """Mixin: ``data``, the bytes after the message's fixed part (echo data, or the
    invoking packet of an error message)."""

    __slots__ = ()

    @property
    def data(self: Any) -> bytes:
        """The bytes after the fixed part (possibly empty)."""
        return self.payload  # type: ignore[no-any-return]

    @data.setter
    def data(self: Any, value: "bytes | bytearray | memoryview") -> None:
        self.set_payload(value)


class EchoMixin(DataMixin):
    """Mixin of the echo request/reply messages of both families: ``data`` and the
    tcpdump-style summary (``ICMP echo request id 1 seq 2``)."""

    __slots__ = ()

    def summary(self: Any) -> str:
        """One line, as tcpdump prints it: ``ICMP echo request id 1 seq 2``."""
        kind = "request" if self.msg_type in (8, 128) else "reply"
        return f"{self._TAG} echo {kind} id {self.identifier} seq {self.seq_no}"


#: Fields shared by the echo messages of both families (declared once, used by four classes).
ECHO_FIELDS: tuple[Field, ...] = (
    U16("identifier", 4),
    U16("seq_no", 6),
)
