"""The :class:`Packet` base: capsule's parse / peek / push / remove semantics over an Mbuf.

A parsed header is a small object ``(mbuf, envelope, offset, end, header_len)`` viewing one
shared buffer; it copies nothing.  ``envelope`` is the enclosing header (an
:class:`~nfkit.Mbuf` for the outermost one), so ``tcp.envelope.envelope`` is the Ethernet
header of an Ethernet/IPv4/TCP packet.

Positions are absolute indices in the pool's flat buffer.  Operations that resize the packet
(``push``, ``remove``, setting options or segments...) move the headers of the chain they are
called on; other views of the same buffer taken before the resize are stale afterwards (in
capsule the borrow checker forbids holding them; in Python: do not keep them).

Lengths: a header extends to the end of its envelope, except that IPv4 and IPv6 stop where
their own length field says -- Ethernet padding after a short IP packet is *not* payload (a
fix over capsule, which counts it).
"""

from __future__ import annotations

import inspect
import types
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, TypeVar

from ..checksum import ones_sum as _ones_sum
from ..errors import (FieldValueError, MalformedError, ProtocolMismatch, ReadOnlyError,
                      TruncatedError)
from .fields import (Field, bit_diagram, default_bytes, format_value, install_accessors,
                     readonly_property)

if TYPE_CHECKING:  # pragma: no cover
    from ..buffers import Mbuf

P = TypeVar("P", bound="Packet")

__all__ = ["Packet", "P", "KEY_ETHERTYPE", "KEY_IPV4_PROTO", "KEY_IPV6_PROTO", "KEY_OUTERMOST"]

# A header caches in ``_next`` what its payload is, as one int "key": the discriminator's
# space in the high bits and its value in the low 16 (``None``: ask ``_carries``).  A class
# lists in ``_KEYS`` every key it can be the payload of, so ``parse`` checks the protocol with
# one set lookup instead of method calls.
KEY_ETHERTYPE = 0x10000     # | ether type   (Ethernet, GRE, GTP-U by IP version)
KEY_IPV4_PROTO = 0x20000    # | protocol     (IPv4)
KEY_IPV6_PROTO = 0x30000    # | next header  (IPv6 and its extension headers)
KEY_OUTERMOST = 0x40000     # an Mbuf or a VXLAN header: an Ethernet frame follows

_new = object.__new__

#: Every header class, in definition order (what :mod:`nfkit.packets.dissect` tries).
REGISTRY: list[type["Packet"]] = []


def _a(name: str) -> str:
    """'an IPv4', 'a UDP': the article as the name is spoken."""
    return ("an " if name[:1] in "AEFHILMNORSX" else "a ") + name


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _specialised_copy(fn: Any) -> Any:
    """The same function over a new code object (with its own inline caches)."""
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__,
                              fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__
    copy.__doc__ = fn.__doc__
    copy.__annotations__ = fn.__annotations__
    return copy


def _readonly_parse(self: "Packet", cls: type[P]) -> P:
    """``parse`` on a peeked header: the payload is read-only too."""
    p = Packet.parse(self, cls)
    p.__class__ = cls._RO
    return p


class Packet:
    """Base class of every protocol header.

    Subclasses declare ``NAME``, ``FIELDS`` and ``SIZE`` (the fixed part), optionally
    ``CHECKSUM`` (offset of the checksum covering the header, kept valid by setters), and the
    discriminators they are known by in an envelope: ``ETHERTYPE``, ``IP_PROTOCOL``,
    ``UDP_PORTS``.  Variable-length headers override :meth:`_compute_hlen`; extra checks go
    in :meth:`_validate`.
    """

    __slots__ = ("_env", "_buf", "_abs", "_end", "_hlen", "_next")

    NAME: ClassVar[str] = "packet"
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    ALL_FIELDS: ClassVar[tuple[Field, ...]] = ()
    SIZE: ClassVar[int] = 0
    #: bytes ``push`` writes when more than the fixed part (e.g. an SRH with one segment)
    PUSH_SIZE: ClassVar[int | None] = None
    CHECKSUM: ClassVar[int | None] = None
    CHECKSUM_ZERO_MEANS_NONE: ClassVar[bool] = False
    #: the covering checksum is found by :meth:`_csum_fix` (e.g. NDP options in ICMPv6)
    CHECKSUM_VIA_METHOD: ClassVar[bool] = False
    #: the header's checksum covers its payload too (UDP, GRE): see :meth:`_ripple`
    COVERS_PAYLOAD: ClassVar[bool] = False
    ETHERTYPE: ClassVar[int | None] = None
    IP_PROTOCOL: ClassVar[int | None] = None
    IP_FAMILY: ClassVar[int | None] = None
    UDP_PORTS: ClassVar[tuple[int, ...]] = ()
    OUTERMOST: ClassVar[bool] = False
    _READONLY: ClassVar[bool] = False
    _RO: ClassVar[type]
    _DEFAULTS: ClassVar[bytes] = b""
    _KEYS: ClassVar[frozenset[int]] = frozenset()
    _CHECKS: ClassVar[bool] = True
    #: what parse needs, in one class-attribute load: keys, SIZE, the validator (or None), _claim
    _PARSE: ClassVar[tuple[frozenset[int], int, Any, Any]]
    #: optional classmethod ``(buf, start, end)`` run before the size check, raising
    #: ProtocolMismatch when the bytes are not this header (ICMP message types)
    _claim: ClassVar[Any] = None

    if TYPE_CHECKING:  # pragma: no cover
        _next: int | None
        _env: Any
        _buf: memoryview
        _abs: int
        _end: int
        _hlen: int

    # -- class construction: derive everything from FIELDS -----------------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_readonly_variant"):
            return
        own = cls.__dict__.get("FIELDS", ())
        if own:
            inherited = tuple(f for f in cls.ALL_FIELDS if f.name not in {g.name for g in own})
            cls.ALL_FIELDS = inherited + tuple(own)
            install_accessors(cls, tuple(own), cls.CHECKSUM, cls.CHECKSUM_VIA_METHOD,
                              cls.CHECKSUM_ZERO_MEANS_NONE)
            # the header's layout, drawn from the declaration (one source of truth)
            cls.__doc__ = (inspect.cleandoc(cls.__doc__ or cls.NAME) + "\n\nHeader layout (generated "
                           "from FIELDS)::\n\n" + _indent(bit_diagram(cls.ALL_FIELDS)) + "\n")
        cls._DEFAULTS = default_bytes(cls.PUSH_SIZE or cls.SIZE, cls.ALL_FIELDS)
        keys = set()
        if cls.ETHERTYPE is not None:
            keys.add(KEY_ETHERTYPE | cls.ETHERTYPE)
        if cls.IP_PROTOCOL is not None:
            if cls.IP_FAMILY in (None, 4):
                keys.add(KEY_IPV4_PROTO | cls.IP_PROTOCOL)
            if cls.IP_FAMILY in (None, 6):
                keys.add(KEY_IPV6_PROTO | cls.IP_PROTOCOL)
        if cls.OUTERMOST:
            keys.add(KEY_OUTERMOST)
        cls._KEYS = frozenset(keys)
        # Fixed-size headers with nothing to check skip the _validate call when parsed.
        cls._CHECKS = (cls._validate is not Packet._validate
                       or cls._compute_hlen is not Packet._compute_hlen)
        # parse calls the validator as a plain function: ``p._validate`` would be a method
        # lookup whose cache misses as the payload class varies (measured ~40 ns a header)
        cls._PARSE = (cls._KEYS, cls.SIZE, cls._validate if cls._CHECKS else None, cls._claim)
        if not cls.__name__.startswith("_"):
            REGISTRY.append(cls)
        if "parse" not in cls.__dict__:
            # Each header class gets its own copy of parse's code: CPython 3.11+ specialises
            # attribute access per code object, and one shared parse for every header type
            # would keep missing those caches (measured: about 25% of a parse chain).
            cls.parse = _specialised_copy(Packet.parse)
        # The read-only variant peek() returns: same class for isinstance, setters refuse.
        ns: dict[str, Any] = {"__slots__": (), "_READONLY": True, "_readonly_variant": True,
                              "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                              "__doc__": cls.__doc__}
        seen: set[str] = set()
        for klass in cls.__mro__:
            for name, attr in vars(klass).items():
                if name in seen:
                    continue
                seen.add(name)
                if isinstance(attr, property) and attr.fset is not None:
                    ns[name] = readonly_property(name, attr)
        ns["parse"] = _readonly_parse
        cls._RO = type(cls.__name__, (cls,), ns)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def _try_parse(cls: type[P], env: Any, ro: bool) -> P:
        """Parse a ``cls`` header as the payload of ``env`` (a packet or an Mbuf)."""
        p = env.parse(cls)
        if ro and not p._READONLY:
            p.__class__ = cls._RO
        return p

    def _validate(self, avail: int) -> None:
        """Check the header beyond its fixed size; set ``_hlen`` and ``_end`` if they vary,
        and ``_next`` if the class keys its payload (see ``KEY_*``)."""
        hlen = self._compute_hlen()
        if hlen != self._hlen:
            if hlen < self.SIZE:
                raise MalformedError(self.NAME, f"header length {hlen} is below the minimum {self.SIZE}")
            if hlen > avail:
                raise TruncatedError(self.NAME, f"header length {hlen} exceeds remaining {avail} bytes")
            self._hlen = hlen

    def _compute_hlen(self) -> int:
        """The header length as the header's own fields give it (fixed by default)."""
        return self.SIZE

    def _compute_next(self) -> int | None:
        """The key of the payload protocol (``None``: :meth:`_carries` decides)."""
        return None

    def _refresh(self) -> None:
        """Re-derive cached header state after a structural field changed."""
        self._hlen = self._compute_hlen()
        self._next = self._compute_next()

    @classmethod
    def _try_push(cls: type[P], env: Any) -> P:
        """Insert a default ``cls`` header right after ``env``'s header."""
        if env._READONLY:
            raise ReadOnlyError(f"cannot push onto a peeked {type(env).__name__}")
        if not env._can_carry(cls):
            raise ProtocolMismatch(cls.NAME, f"{_a(cls.NAME)} header cannot follow "
                                             f"{getattr(env, 'NAME', type(env).__name__)}")
        mbuf = env._mbuf
        at = env._abs + env._hlen
        size = len(cls._DEFAULTS)
        d0, d1 = mbuf._resize(at - mbuf._abs, size)
        env._move(d0, d1)
        at += d0
        p = _new(cls)
        p._env = env
        buf = p._buf = env._buf
        p._abs = at
        p._end = env._end
        p._hlen = size
        buf[at:at + size] = cls._DEFAULTS
        p._next = None
        env._set_next(cls)
        p._refresh()
        p._on_push()
        return p

    def _on_push(self) -> None:
        """Hook run after a default header was pushed and the envelope points at it."""

    # -- the chain ----------------------------------------------------------------------
    def parse(self, cls: type[P]) -> P:
        """Parse the payload as a ``cls`` header.  Raises a :class:`~nfkit.ParseError`
        (and leaves the buffer unchanged) when it is not one or is malformed.  The payload
        of a peeked (read-only) header parses read-only too."""
        # Hot path: one class-attribute lookup (the interpreter's caches miss when the
        # payload class varies, so fewer lookups matter more than they seem to).
        keys, size, check, claim = cls._PARSE
        nxt = self._next
        if nxt is None:
            if not self._carries(cls):
                raise ProtocolMismatch(cls.NAME, f"not {_a(cls.NAME)} packet: {self._describe_next()}")
        elif nxt not in keys:
            raise ProtocolMismatch(cls.NAME, f"not {_a(cls.NAME)} packet: {self._describe_next()}")
        start = self._abs + self._hlen
        end = self._end
        if claim is not None:
            claim(self._buf, start, end)
        if end - start < size:
            raise TruncatedError(cls.NAME, f"header needs {size} bytes, {end - start} remain")
        p = _new(cls)
        p._env = self
        p._buf = self._buf
        p._abs = start
        p._end = end
        p._hlen = size
        p._next = None
        if check is not None:
            check(p, end - start)
        return p

    def peek(self, cls: type[P]) -> P:
        """Like :meth:`parse`, but the result is read-only (its setters refuse)."""
        p = self.parse(cls)
        p.__class__ = cls._RO
        return p

    def push(self, cls: type[P]) -> P:
        """Insert a default ``cls`` header after this one and point this header's
        next-protocol field at it.  The old payload becomes the new header's payload."""
        return cls._try_push(self)

    def remove(self) -> Any:
        """Strip this header from the packet and return the envelope."""
        self._check_writable("remove")
        env = self._env
        mbuf = self._mbuf
        d0, d1 = mbuf._resize(self._abs - mbuf._abs, -self._hlen)
        env._move(d0, d1)
        return env

    def remove_payload(self) -> None:
        """Cut everything after this header (up to this header's end)."""
        self.set_payload(b"")

    def deparse(self) -> Any:
        """The envelope (no buffer change)."""
        return self._env

    def reset(self) -> "Mbuf":
        """Back to the Mbuf."""
        return self._mbuf

    @property
    def envelope(self) -> Any:
        """The header (or :class:`Mbuf`) this one was parsed or pushed from."""
        return self._env

    @property
    def _mbuf(self) -> "Mbuf":
        p = self._env
        while p._env is not None:
            p = p._env
        return p

    @property
    def mbuf(self) -> "Mbuf":
        """The buffer this header lives in."""
        return self._mbuf

    def layers(self) -> list["Packet"]:
        """The headers of the chain, outermost first, ending with this one."""
        out = []
        p: Any = self
        while p._env is not None:
            out.append(p)
            p = p._env
        out.reverse()
        return out

    def _move(self, d0: int, d1: int) -> None:
        """The packet was resized inside this header: shift start by d0, end by d1 --
        for this header and every envelope."""
        p: Any = self
        while p._env is not None:
            p._abs += d0
            p._end += d1
            p = p._env

    def _check_writable(self, what: str) -> None:
        if self._READONLY:
            raise ReadOnlyError(f"cannot {what} a {self.NAME} header obtained with peek()")

    # -- geometry -----------------------------------------------------------------------
    @property
    def offset(self) -> int:
        """Where this header starts, from the start of the packet."""
        return self._abs - self._mbuf._abs

    @property
    def header_len(self) -> int:
        """The header's length in bytes (options and extensions included)."""
        return self._hlen

    @property
    def payload_offset(self) -> int:
        """Where the header's payload starts, in bytes from the start of the packet."""
        return self._abs + self._hlen - self._mbuf._abs

    @property
    def payload_len(self) -> int:
        """The payload's length in bytes (up to the end of this header's packet)."""
        return self._end - self._abs - self._hlen

    def __len__(self) -> int:
        """Bytes from the start of this header to the end of its packet."""
        return self._end - self._abs

    @property
    def payload(self) -> bytes:
        """A copy of the payload bytes."""
        s = self._abs + self._hlen
        return self._buf[s:self._end].tobytes()

    def payload_view(self) -> memoryview:
        """A writable zero-copy view of the payload (valid until the packet is resized)."""
        return self._buf[self._abs + self._hlen:self._end]

    def header_bytes(self) -> bytes:
        """A copy of the header's bytes."""
        return self._buf[self._abs:self._abs + self._hlen].tobytes()

    def set_payload(self, data: "bytes | bytearray | memoryview") -> None:
        """Replace the payload, growing or shrinking the packet as needed."""
        self._check_writable("set the payload of")
        start = self._abs + self._hlen
        delta = len(data) - (self._end - start)
        if delta:
            mbuf = self._mbuf
            rel = start - mbuf._abs
            if delta > 0:
                d0, d1 = mbuf._resize(rel + (self._end - start), delta)
            else:
                d0, d1 = mbuf._resize(rel + len(data), delta)
            self._move(d0, d1)
            start = self._abs + self._hlen
        self._buf[start:start + len(data)] = data

    def _resize_header(self, at: int, n: int) -> None:
        """Grow (n > 0) or shrink (n < 0) this header at header-relative offset ``at``."""
        self._check_writable("resize")
        mbuf = self._mbuf
        d0, d1 = mbuf._resize(self._abs + at - mbuf._abs, n)
        self._move(d0, d1)
        self._hlen += n

    def _replace_options(self, data: "bytes | bytearray | memoryview", limit: int = 40) -> int:
        """Replace the option area (from ``SIZE`` to ``header_len``) by ``data`` padded with
        zeros to 32-bit words; returns the new header length in words.  IPv4 and TCP
        options work this way (EOL is 0, so zero padding ends the list)."""
        self._check_writable("set the options of")
        padded = bytes(data) + b"\0" * (-len(data) % 4)
        if len(padded) > limit:
            raise FieldValueError(f"{self.NAME} options are at most {limit} bytes, got {len(data)}")
        delta = len(padded) - (self._hlen - self.SIZE)
        if delta:
            self._resize_header(self.SIZE, delta)
        a = self._abs + self.SIZE
        self._buf[a:a + len(padded)] = padded
        return self._hlen // 4

    # -- envelope protocol: what may follow this header ---------------------------------
    def _carries(self, cls: type) -> bool:
        return False

    def _can_carry(self, cls: type) -> bool:
        return False

    def _set_next(self, cls: type) -> None:
        pass

    def _describe_next(self) -> str:
        return f"{self.NAME} does not carry another known header"

    # -- checksums ----------------------------------------------------------------------
    # Sums below are ones'-complement sums of 16-bit words counted from this header's first
    # byte (a byte at an even header offset is a high byte): what the generated setters
    # compute, see fields.py.
    def _csum_fix(self, old: int, new: int) -> None:
        """Adjust the checksum covering this header after words summing to ``old`` became
        ``new`` (classes without a fixed ``CHECKSUM`` offset override it)."""

    def _pseudo_fix(self, old: int, new: int, offset: int) -> int:
        """The pseudo-header address at header offset ``offset`` changed from ``old`` to
        ``new`` (IP headers override this to fix the transport checksum).  Returns how much
        that fix changed the sum of the bytes after this header's start (for :meth:`_ripple`)."""
        return 0

    def _bound(self, name: str, value: int) -> None:
        """Refuse (:class:`FieldValueError`) a value of field ``name`` (declared with
        ``bounded``) that would put the header past its packet or break its layout."""

    def _header_sum(self) -> int:
        """The ones'-complement sum of this header's bytes."""
        return _ones_sum(self._buf[self._abs:self._abs + self._hlen])

    def _rewrite(self, change: Any, *args: Any) -> None:
        """Run ``change(*args)``, a hand-written change of this header's bytes; when the
        header kept its length, pass the change of its sum on to the enclosing checksums
        (a resize changes lengths: those wait for ``reconcile_all``)."""
        h0 = self._hlen
        s0 = self._header_sum()
        change(*args)
        if self._hlen == h0:
            self._ripple(self._header_sum() - s0)

    def _ripple(self, d: int) -> None:
        """Bytes of this header changed the sum of its words by ``d`` and no checksum of its
        own absorbed that: fix the innermost enclosing checksum that covers them.

        Only a UDP (with a checksum) or GRE (with the C bit) envelope covers its payload.
        The one that absorbs the change ends the walk: its checksum moves by ``-d``, so the
        sum of everything it covers -- all that any checksum further out sees -- is
        unchanged.  A UDP without a checksum (0) passes the change on outwards.
        """
        d %= 0xFFFF
        if not d:
            return
        a = self._abs
        p = self._env
        while p._env is not None:
            # an envelope starting an odd number of bytes earlier sees our high bytes as low
            if p.COVERS_PAYLOAD and p._absorb(d * 256 if (a - p._abs) & 1 else d):
                return
            p = p._env

    def _absorb(self, d: int) -> bool:
        """Move this header's payload-covering checksum by ``-d``; False when it has none
        (see :meth:`_ripple`)."""
        return False

    def reconcile(self) -> None:
        """Recompute this header's derived fields (lengths, next-header, checksums)."""
        self._check_writable("reconcile")

    def reconcile_all(self) -> None:
        """Reconcile this header, then every envelope outwards (inner layers first)."""
        p: Any = self
        while p._env is not None:
            p.reconcile()
            p = p._env

    # -- display ------------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """Every declared field and its current value."""
        return {f.name: getattr(self, f.name) for f in self.ALL_FIELDS}

    def _extra_repr(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        try:
            parts = [f"{f.name}={format_value(f, getattr(self, f.name))}"
                     for f in self.ALL_FIELDS if not f.alias]
        except Exception as exc:  # a stale view must still print
            parts = [f"<unreadable: {exc}>"]
        parts += self._extra_repr()
        ro = " (peek)" if self._READONLY else ""
        return (f"{self.NAME}{ro}({', '.join(parts)}; offset={self.offset}, "
                f"header_len={self._hlen}, len={len(self)})")

    def summary(self) -> str:
        """A short one-line description (used by dumps)."""
        return self.NAME

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - guard against list(packet)
        raise TypeError(f"{self.NAME} headers are not iterable")
