"""Neighbor Discovery for IPv6 (RFC 4861): the five messages and their options.

The messages are ICMPv6 message classes (:mod:`nfkit.packets.icmpv6`): ``header_len`` is
the fixed part, so the payload is the options area.  Options are small views over the
message bytes (``envelope`` is the message); their field setters keep the ICMPv6 checksum
valid, and so do the option edits of :class:`NdpMessage` (``add_option``,
``prepend_option``, ``remove_option``, ``retain_options``) and ``data`` setters: each
updates the checksum incrementally, including the pseudo-header length.

Views go stale on resize: adding, removing or resizing an option moves the bytes after it,
so option views listed *before* the edit (other than the one an edit returns or acts on)
must not be used afterwards -- list them again.  (capsule forbids holding them at compile
time.)

Differences from capsule: an option with length 0, or one running past the message, makes
:meth:`NdpMessage.options` raise :class:`~nfkit.MalformedError` instead of looping forever;
``add_option`` appends after the last option (capsule: at the end of the buffer, which is
the same place here because a message ends where its IPv6 packet does).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Callable, ClassVar, Iterator, TypeVar

from ..errors import FieldValueError, MalformedError, ProtocolMismatch
from .base import Packet
from .constants import IPV6_MIN_MTU
from .fields import Bits, Field, Flag, Ip6, Mac, U8, U16, U32
from .icmpv6 import Icmpv6, Icmpv6Type
from . import _fieldtypes as _ft  # typed field accessors (python -m nfkit.packets._stubs)

__all__ = ["NdpOptionType", "NdpOption", "LinkLayerAddress", "PrefixInformation", "Mtu",
           "RedirectedHeader", "NdpMessage", "RouterSolicitation", "RouterAdvertisement",
           "NeighborSolicitation", "NeighborAdvertisement", "Redirect"]

_new = object.__new__
O = TypeVar("O", bound="NdpOption")

#: the largest option the 8-bit length field can describe
_MAX_OPTION = 255 * 8


class NdpOptionType(IntEnum):
    """NDP option types (RFC 4861 4.6)."""

    SOURCE_LINK_LAYER_ADDRESS = 1
    TARGET_LINK_LAYER_ADDRESS = 2
    PREFIX_INFORMATION = 3
    REDIRECTED_HEADER = 4
    MTU = 5

    def __str__(self) -> str:
        return self.name.replace("_", " ").lower()


#: option type -> the class that views it (filled as the classes are defined)
_OPTION_CLASSES: dict[int, type["NdpOption"]] = {}


class NdpOption(Packet):
    """One NDP option (type, length in 8-byte units, body), viewed in place.

    The generic class views any option; the typed subclasses declare their fixed part as
    fields.  ``len(option)`` is its size in bytes; ``data`` is what follows its fixed part
    (setting it resizes the option to a multiple of 8 and updates ``length``).
    """

    __slots__ = ()
    NAME = "NDP option"
    SIZE = 2
    CHECKSUM_VIA_METHOD = True
    #: the option types this class views (the first is the default when adding one)
    OPTION_TYPES: ClassVar[tuple[int, ...]] = ()
    FIELDS: ClassVar[tuple[Field, ...]] = (
        U8("option_type", 0, enum=NdpOptionType),
        U8("length", 1, derived=True, doc="option length in 8-byte units"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        option_type = _ft.Int()
        length = _ft.Int()
    # -- end of generated accessors

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_readonly_variant"):
            return
        raw = bytearray(cls._DEFAULTS)
        if cls.OPTION_TYPES:
            raw[0] = cls.OPTION_TYPES[0]
        cls._DEFAULTS = bytes(raw)
        for t in cls.__dict__.get("OPTION_TYPES", ()):
            _OPTION_CLASSES.setdefault(t, cls)

    @classmethod
    def _template(cls) -> bytes:
        """The bytes ``add_option`` inserts: the defaults, padded to 8, length set."""
        raw = bytearray(cls._DEFAULTS)
        raw += bytes(-len(raw) % 8)
        raw[1] = len(raw) // 8
        return bytes(raw)

    @classmethod
    def _view(cls: type[O], msg: Any, pos: int, size: int, ro: bool) -> O:
        o = _new(cls._RO if ro else cls)
        o._env = msg
        o._buf = msg._buf
        o._abs = pos
        o._end = pos + size
        o._hlen = cls.SIZE
        o._next = None
        return o

    # -- checksum: the message's ----------------------------------------------------------
    def _csum_fix(self, old: int, new: int) -> None:
        # Options start 8-byte aligned in the message, so option-relative word sums are
        # message-relative ones.
        self._env._csum_fix(old, new)

    # -- body -------------------------------------------------------------------------------
    @property
    def data(self) -> bytes:
        """The option bytes after its fixed part (a Redirected Header's packet; padding)."""
        return self.payload

    @data.setter
    def data(self, value: "bytes | bytearray | memoryview") -> None:
        self.set_payload(value)

    def set_payload(self, data: "bytes | bytearray | memoryview") -> None:
        """Replace the bytes after the fixed part, zero-padding the option to a multiple of
        8 bytes and setting ``length``; the message checksum stays valid."""
        self._check_writable("set the data of")
        hl = self._hlen
        size = hl + len(data)
        size += -size % 8
        if size > _MAX_OPTION:
            raise FieldValueError(f"an NDP option is at most {_MAX_OPTION} bytes, {size} needed")
        raw = bytearray(self._buf[self._abs:self._abs + hl])
        raw += data
        raw += bytes(size - len(raw))
        raw[1] = size // 8
        msg = self._env
        rel = self._abs - msg._abs
        msg._splice(rel, self._end - self._abs, raw, "set the data of")
        self._abs = msg._abs + rel
        self._end = self._abs + size

    # -- the chain --------------------------------------------------------------------------
    def remove(self) -> Any:
        """Remove this option from its message; returns the message."""
        self._env.remove_option(self)
        return self._env

    def downcast(self, cls: type[O]) -> O:
        """This option viewed as the typed option class ``cls`` (no copy).

        :class:`ProtocolMismatch` when its type is not one ``cls`` views,
        :class:`MalformedError` when it is shorter than ``cls``'s fixed part."""
        if not (isinstance(cls, type) and issubclass(cls, NdpOption)):
            raise TypeError(f"{cls!r} is not an NDP option class")
        t = self._buf[self._abs]
        if cls.OPTION_TYPES and t not in cls.OPTION_TYPES:
            types = [int(x) for x in cls.OPTION_TYPES]
            raise ProtocolMismatch(cls.NAME, f"option type {t} is not one of {types}")
        size = self._end - self._abs
        if size < cls.SIZE:
            raise MalformedError(cls.NAME, f"option of {size} bytes is shorter than {cls.SIZE}")
        return cls._view(self._env, self._abs, size, self._READONLY)

    def summary(self) -> str:
        t = self._buf[self._abs]
        try:
            name = str(NdpOptionType(t))
        except ValueError:
            name = f"option {t}"
        return f"{name} len {self._end - self._abs}"


class LinkLayerAddress(NdpOption):
    """Source (type 1) or target (type 2) link-layer address option (RFC 4861 4.6.1).
    Adding one defaults to source; pass ``option_type=LinkLayerAddress.TARGET``."""

    __slots__ = ()
    NAME = "NDP link-layer address"
    SIZE = 8
    SOURCE: ClassVar[int] = NdpOptionType.SOURCE_LINK_LAYER_ADDRESS
    TARGET: ClassVar[int] = NdpOptionType.TARGET_LINK_LAYER_ADDRESS
    OPTION_TYPES = (SOURCE, TARGET)
    FIELDS = (Mac("addr", 2, doc="the link-layer (MAC) address"),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        addr = _ft.Mac()
    # -- end of generated accessors

    def summary(self) -> str:
        side = "source" if self._buf[self._abs] == self.SOURCE else "target"
        return f"{side} link-address {self.addr}"


class PrefixInformation(NdpOption):
    """Prefix information option (type 3, RFC 4861 4.6.2), 32 bytes."""

    __slots__ = ()
    NAME = "NDP prefix information"
    SIZE = 32
    OPTION_TYPES = (NdpOptionType.PREFIX_INFORMATION,)
    FIELDS = (
        U8("prefix_length", 2),
        Flag("on_link", 3, 1, 0x80, doc="L: the prefix is on-link"),
        Flag("autonomous", 3, 1, 0x40, doc="A: usable for SLAAC"),
        U32("valid_lifetime", 4),
        U32("preferred_lifetime", 8),
        U32("reserved", 12, gen=0),
        Ip6("prefix", 16),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        prefix_length = _ft.Int()
        on_link = _ft.Flag()
        autonomous = _ft.Flag()
        valid_lifetime = _ft.Int()
        preferred_lifetime = _ft.Int()
        reserved = _ft.Int()
        prefix = _ft.Ip6()
    # -- end of generated accessors

    def summary(self) -> str:
        flags = ("L" if self.on_link else "") + ("A" if self.autonomous else "")
        return (f"prefix {self.prefix}/{self.prefix_length} valid {self.valid_lifetime} "
                f"pref {self.preferred_lifetime}" + (f" [{flags}]" if flags else ""))


class Mtu(NdpOption):
    """MTU option (type 5, RFC 4861 4.6.4)."""

    __slots__ = ()
    NAME = "NDP MTU"
    SIZE = 8
    OPTION_TYPES = (NdpOptionType.MTU,)
    FIELDS = (
        U16("reserved", 2, gen=0),
        U32("mtu", 4, default=1500),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        reserved = _ft.Int()
        mtu = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        return f"mtu {self.mtu}"


class RedirectedHeader(NdpOption):
    """Redirected header option (type 4, RFC 4861 4.6.3): 6 reserved bytes, then ``data``,
    the start of the redirected packet.  :meth:`Redirect.reconcile` sizes it."""

    __slots__ = ()
    NAME = "NDP redirected header"
    SIZE = 8
    OPTION_TYPES = (NdpOptionType.REDIRECTED_HEADER,)
    FIELDS = (Field("reserved", 2, 6, gen=0),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        reserved = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        return f"redirected header len {self._end - self._abs}"


class NdpMessage:
    """Mixin of the NDP messages: the options area (the payload) as a list of views.

    Every edit resizes the packet in place and keeps a valid ICMPv6 checksum valid; option
    views taken before an edit are stale afterwards (see the module docstring).
    """

    __slots__ = ()

    def _walk(self: Any) -> Iterator[tuple[int, int, int]]:
        """``(position, type, size)`` of each option; :class:`MalformedError` for an
        option with length 0 or running past the message (so the walk always ends)."""
        b = self._buf
        a = self._abs
        end = self._end
        pos = a + self._hlen
        while pos < end:
            if end - pos < 2:
                raise MalformedError(self.NAME, f"{end - pos} stray byte at offset {pos - a} "
                                                "where an option should start")
            t = b[pos]
            size = b[pos + 1] * 8
            if not size:
                raise MalformedError(self.NAME, f"option type {t} at offset {pos - a} has length 0")
            if pos + size > end:
                raise MalformedError(self.NAME, f"option type {t} at offset {pos - a} "
                                                f"({size} bytes) runs {pos + size - end} bytes "
                                                "past the message")
            yield pos, t, size
            pos += size

    def _option_at(self: Any, pos: int, t: int, size: int) -> NdpOption:
        cls = _OPTION_CLASSES.get(t, NdpOption)
        if size < cls.SIZE:
            cls = NdpOption
        return cls._view(self, pos, size, self._READONLY)

    def options(self: Any) -> list[NdpOption]:
        """Every option, in order: typed views for known types, :class:`NdpOption` for
        the others (and for known types too short for their fields)."""
        return [self._option_at(pos, t, size) for pos, t, size in self._walk()]

    def option(self: Any, cls: type[O], option_type: int | None = None) -> O | None:
        """The first option that is a ``cls`` (and of ``option_type``, when given), or
        None.  Walks only as far as the match."""
        types = cls.OPTION_TYPES
        for pos, t, size in self._walk():
            if (option_type is not None and t != option_type) or (types and t not in types):
                continue
            o = self._option_at(pos, t, size)
            if isinstance(o, cls):
                return o
        return None

    def add_option(self: Any, cls: type[O], **values: Any) -> O:
        """Append a ``cls`` option after the last one, set ``values`` (field names, or
        ``data``), and return its view.  Nothing changes if a value is refused."""
        return self._insert_option(cls, self._end - self._abs, values)

    def prepend_option(self: Any, cls: type[O], **values: Any) -> O:
        """Insert a ``cls`` option before the first one (see :meth:`add_option`)."""
        return self._insert_option(cls, self._hlen, values)

    def _insert_option(self: Any, cls: type[O], at: int, values: dict[str, Any]) -> O:
        self._check_writable("add an option to")
        if not (isinstance(cls, type) and issubclass(cls, NdpOption)):
            raise TypeError(f"{cls!r} is not an NDP option class")
        for name in values:
            if not isinstance(getattr(cls, name, None), property):
                raise FieldValueError(f"{cls.__name__} has no field {name!r}")
        t = values.get("option_type")
        if t is not None and cls.OPTION_TYPES and t not in cls.OPTION_TYPES:
            raise FieldValueError(f"{cls.__name__} option_type must be one of "
                                  f"{[int(x) for x in cls.OPTION_TYPES]}, got {t}")
        raw = cls._template()
        self._splice(at, 0, raw, "add an option to")
        opt = cls._view(self, self._abs + at, len(raw), False)
        try:
            for name, value in values.items():
                setattr(opt, name, value)
        except BaseException:
            self._splice(opt._abs - self._abs, opt._end - opt._abs, b"")
            raise
        return opt

    def remove_option(self: Any, opt: NdpOption) -> None:
        """Remove ``opt`` (a view of one of this message's options)."""
        self._check_writable("remove an option from")
        if isinstance(opt, NdpOption) and opt._buf is self._buf:
            for pos, _t, size in self._walk():
                if pos == opt._abs:
                    self._splice(pos - self._abs, size, b"", "remove an option from")
                    return
                if pos > opt._abs:
                    break
        raise FieldValueError(f"{opt!r} is not an option of this {self.NAME} message "
                              "(or the view is stale: list the options again)")

    def retain_options(self: Any, predicate: Callable[[NdpOption], bool]) -> int:
        """Keep only the options ``predicate`` accepts (one resize); returns how many
        were removed."""
        self._check_writable("remove options from")
        opts = self.options()
        keep = [o for o in opts if predicate(o)]
        if len(keep) == len(opts):
            return 0
        raw = b"".join(self._buf[o._abs:o._end] for o in keep)
        self._splice(self._hlen, self._end - self._abs - self._hlen, raw, "remove options from")
        return len(opts) - len(keep)

    def _extra_repr(self: Any) -> list[str]:
        try:
            return [f"options=[{', '.join(o.summary() for o in self.options())}]"]
        except MalformedError as exc:
            return [f"options=<{exc.reason}>"]


class RouterSolicitation(NdpMessage, Icmpv6):
    """Router solicitation (type 133); options from byte 8."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.ROUTER_SOLICITATION
    SIZE = 8
    FIELDS = (U32("reserved", 4, gen=0),)
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        reserved = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        return "ICMP6 router solicitation"


class RouterAdvertisement(NdpMessage, Icmpv6):
    """Router advertisement (type 134); options from byte 16."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.ROUTER_ADVERTISEMENT
    SIZE = 16
    FIELDS = (
        U8("current_hop_limit", 4, default=64),
        Flag("managed_addr_cfg", 5, 1, 0x80, doc="M: addresses come from DHCPv6"),
        Flag("other_cfg", 5, 1, 0x40, doc="O: other configuration comes from DHCPv6"),
        U16("router_lifetime", 6, default=1800, doc="seconds; 0: not a default router"),
        U32("reachable_time", 8, doc="milliseconds"),
        U32("retrans_timer", 12, doc="milliseconds"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        current_hop_limit = _ft.Int()
        managed_addr_cfg = _ft.Flag()
        other_cfg = _ft.Flag()
        router_lifetime = _ft.Int()
        reachable_time = _ft.Int()
        retrans_timer = _ft.Int()
    # -- end of generated accessors

    def summary(self) -> str:
        flags = ("M" if self.managed_addr_cfg else "") + ("O" if self.other_cfg else "")
        return (f"ICMP6 router advertisement hlim {self.current_hop_limit} "
                f"lifetime {self.router_lifetime}" + (f" [{flags}]" if flags else ""))


class NeighborSolicitation(NdpMessage, Icmpv6):
    """Neighbor solicitation (type 135) for ``target``; options from byte 24."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.NEIGHBOR_SOLICITATION
    SIZE = 24
    FIELDS = (
        U32("reserved", 4, gen=0),
        Ip6("target", 8),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        reserved = _ft.Int()
        target = _ft.Ip6()
    # -- end of generated accessors

    def summary(self) -> str:
        return f"ICMP6 neighbor solicitation who has {self.target}"


class NeighborAdvertisement(NdpMessage, Icmpv6):
    """Neighbor advertisement (type 136) for ``target``; options from byte 24."""

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.NEIGHBOR_ADVERTISEMENT
    SIZE = 24
    FIELDS = (
        Flag("router", 4, 1, 0x80, doc="R: the sender is a router"),
        Flag("solicited", 4, 1, 0x40, doc="S: sent in response to a solicitation"),
        Flag("override", 4, 1, 0x20, doc="O: override an existing cache entry"),
        Bits("reserved", 4, 4, 0x1FFFFFFF, gen=0),
        Ip6("target", 8),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        router = _ft.Flag()
        solicited = _ft.Flag()
        override = _ft.Flag()
        reserved = _ft.Int()
        target = _ft.Ip6()
    # -- end of generated accessors

    def summary(self) -> str:
        on = (self.router, self.solicited, self.override)
        flags = "".join(c for c, set_ in zip("RSO", on) if set_)
        return (f"ICMP6 neighbor advertisement tgt is {self.target}"
                + (f" [{flags}]" if flags else ""))


class Redirect(NdpMessage, Icmpv6):
    """Redirect (type 137): packets for ``destination`` should go to ``target``; options
    from byte 40.

    :meth:`reconcile` sizes the first :class:`RedirectedHeader` option and keeps the IPv6
    packet within 1280 bytes (RFC 4861 4.5) by cutting the end of that option's data.  Two
    ways of building one work: ``add_option(RedirectedHeader, data=original_bytes)``, or
    capsule's -- push the Redirect onto a packet whose payload is the original packet and
    ``prepend_option(RedirectedHeader)``: a Redirected Header whose declared length does
    not line up with well-formed options after it is taken to run to the end of the
    message.  Without a Redirected Header nothing is trimmed (the options are kept whole).
    """

    __slots__ = ()
    MSG_TYPE = Icmpv6Type.REDIRECT
    SIZE = 40
    FIELDS = (
        U32("reserved", 4, gen=0),
        Ip6("target", 8, doc="the better first hop"),
        Ip6("destination", 24, doc="the destination being redirected"),
    )
    # -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs
    if _ft.TYPE_CHECKING:  # pragma: no cover
        reserved = _ft.Int()
        target = _ft.Ip6()
        destination = _ft.Ip6()
    # -- end of generated accessors

    def reconcile(self) -> None:
        """Size the Redirected Header (a multiple of 8, packet <= 1280 bytes), then set
        the checksum."""
        self._check_writable("reconcile")
        self._fit_redirected_header()
        self._write_checksum()

    def _well_formed(self, pos: int, end: int) -> bool:
        b = self._buf
        while pos < end:
            if end - pos < 2 or not b[pos + 1] or pos + 8 * b[pos + 1] > end:
                return False
            pos += 8 * b[pos + 1]
        return True

    def _fit_redirected_header(self) -> None:
        b = self._buf
        a = self._abs
        end = self._end
        pos = a + self._hlen
        while pos + 2 <= end and b[pos] != NdpOptionType.REDIRECTED_HEADER:
            size = 8 * b[pos + 1]
            if not size or pos + size > end:
                raise MalformedError(self.NAME, f"option type {b[pos]} at offset {pos - a} "
                                                "has a bad length")
            pos += size
        if pos + 2 > end:
            return  # no Redirected Header
        rel = pos - a
        declared = 8 * b[pos + 1]
        if declared and pos + declared <= end and self._well_formed(pos + declared, end):
            extent = declared
        else:
            extent = end - pos
        env = self._env
        ip = env._ip() if hasattr(env, "_ip") else env
        room = extent + IPV6_MIN_MTU - (ip._end - ip._abs)     # the most it may hold
        target = max(8, min(extent + (-extent % 8), room // 8 * 8))
        if target < extent:
            self._splice(rel + target, extent - target, b"")
        elif target > extent:
            self._splice(rel + extent, 0, bytes(target - extent))
        self._buf[self._abs + rel + 1] = target // 8

    def summary(self) -> str:
        return f"ICMP6 redirect {self.destination} to {self.target}"
