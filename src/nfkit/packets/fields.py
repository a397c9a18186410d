"""Header field declarations: the one source every view of a header derives from.

A protocol declares its header once, as a tuple of :class:`Field` s -- name, byte offset,
width, bit mask, kind, default.  From that tuple nfkit derives

* the per-packet accessors (properties generated as straight-line code, so a field read is
  one or two buffer reads, and a setter keeps the covering checksums valid incrementally),
* the read-only variants returned by ``peek``,
* ``repr`` and the one-line dumps,
* the default bytes written by ``push``,
* the hypothesis strategies of :mod:`nfkit.testing`,
* (in the vector path) the numpy column gathers: ``(offset, width, mask)`` is all a column
  needs.

No accessor is written by hand for a declared field.
"""

from __future__ import annotations

import linecache
import struct
from dataclasses import dataclass, field as dc_field
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Callable

from ..errors import FieldValueError, ReadOnlyError
from ..net import MacAddr, to_ipv4, to_ipv6, to_mac

__all__ = ["presence_flag", "Field", "U8", "U16", "U24", "U32", "Bits", "Flag", "Mac", "Ip4", "Ip6", "ANY",
           "install_accessors", "readonly_property", "default_bytes", "format_value", "bit_diagram",
           "accessor_filename"]


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: ``Field.gen`` value meaning "any value of the field's range" in generated packets.
ANY: Any = _Any()

KINDS = ("int", "flag", "mac", "ipv4", "ipv6")


@dataclass(frozen=True)
class Field:
    """One header field.

    ``offset``/``width`` are in bytes from the header start; ``mask`` selects bits of the
    big-endian integer of those bytes (0 means all of them).  ``kind`` is one of ``int``,
    ``flag`` (a one-bit mask read as bool), ``mac``, ``ipv4``, ``ipv6``.
    ``derived`` marks fields that ``reconcile`` computes (lengths, checksums); ``gen`` is the
    value test strategies use (:data:`ANY` = the whole range); ``pseudo`` marks fields of
    the transport pseudo-header (IP addresses); ``structural`` marks fields that set the
    header length (IPv4 IHL, TCP data offset, ...); ``alias`` marks another view of bits
    that other fields already declare (IPv6 traffic class = DSCP + ECN): it gets accessors
    but is left out of ``repr`` and of generated packets.  ``bounded``: the setter asks the
    header's ``_bound`` first, which refuses values that would put the header past its
    packet or change its layout (IPv4 IHL, SRH ``last_entry``, GRE's routing bit).
    """

    name: str
    offset: int
    width: int
    mask: int = 0
    kind: str = "int"
    default: Any = 0
    derived: bool = False
    fmt: str = ""
    enum: type[IntEnum] | None = None
    gen: Any = ANY
    doc: str = ""
    pseudo: bool = False
    structural: bool = False
    alias: bool = False
    bounded: bool = False
    shift: int = dc_field(init=False, default=0)
    max: int = dc_field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name}: unknown kind {self.kind!r}")
        full = (1 << (8 * self.width)) - 1
        mask = self.mask or full
        if mask & ~full:
            raise ValueError(f"field {self.name}: mask {mask:#x} wider than {self.width} bytes")
        shift = (mask & -mask).bit_length() - 1
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "max", mask >> shift)
        if self.kind == "flag" and self.max != 1:
            raise ValueError(f"field {self.name}: a flag needs a one-bit mask")

    @property
    def bits(self) -> int:
        """The field's width in bits (of its mask when it has one)."""
        return self.max.bit_length()

    @property
    def is_masked(self) -> bool:
        """True when the field is some of the bits of its bytes (a mask narrower than them)."""
        return bool(self.mask) and self.mask != (1 << (8 * self.width)) - 1

    def narrowed(self) -> tuple[int, int, int]:
        """``(offset, width, mask)`` over the fewest bytes that hold the mask."""
        if not self.is_masked:
            return self.offset, self.width, 0
        mask = self.mask
        w = self.width
        lo_byte = (mask & -mask).bit_length() - 1 >> 3      # counted from the right
        hi_byte = (mask.bit_length() - 1) >> 3
        off = self.offset + (w - 1 - hi_byte)
        width = hi_byte - lo_byte + 1
        m = (mask >> (8 * lo_byte)) & ((1 << (8 * width)) - 1)
        if m == (1 << (8 * width)) - 1:
            m = 0
        return off, width, m


def U8(name: str, offset: int, **kw: Any) -> Field:
    """A one-byte unsigned field at byte ``offset`` (``kw``: the other :class:`Field` attributes)."""
    return Field(name, offset, 1, **kw)


def U16(name: str, offset: int, **kw: Any) -> Field:
    """A two-byte big-endian unsigned field at byte ``offset``."""
    return Field(name, offset, 2, **kw)


def U24(name: str, offset: int, **kw: Any) -> Field:
    """A three-byte big-endian unsigned field at byte ``offset`` (VXLAN's VNI, GTP's sequence)."""
    return Field(name, offset, 3, **kw)


def U32(name: str, offset: int, **kw: Any) -> Field:
    """A four-byte big-endian unsigned field at byte ``offset``."""
    return Field(name, offset, 4, **kw)


def Bits(name: str, offset: int, width: int, mask: int, **kw: Any) -> Field:
    """The bits ``mask`` of the ``width`` bytes at ``offset``, read as an unsigned integer."""
    return Field(name, offset, width, mask=mask, **kw)


def Flag(name: str, offset: int, width: int, mask: int, **kw: Any) -> Field:
    """One bit (``mask``) of the ``width`` bytes at ``offset``, read as a bool."""
    kw.setdefault("default", False)
    return Field(name, offset, width, mask=mask, kind="flag", **kw)


def Mac(name: str, offset: int, **kw: Any) -> Field:
    """A MAC address (6 bytes) at ``offset``, read as a :class:`MacAddr`."""
    kw.setdefault("default", MacAddr.UNSPECIFIED)
    return Field(name, offset, 6, kind="mac", **kw)


def Ip4(name: str, offset: int, **kw: Any) -> Field:
    """An IPv4 address (4 bytes) at ``offset``, read as an ``IPv4Address``."""
    kw.setdefault("default", IPv4Address(0))
    return Field(name, offset, 4, kind="ipv4", **kw)


def Ip6(name: str, offset: int, **kw: Any) -> Field:
    """An IPv6 address (16 bytes) at ``offset``, read as an ``IPv6Address``."""
    kw.setdefault("default", IPv6Address(0))
    return Field(name, offset, 16, kind="ipv6", **kw)


# -- code generation --------------------------------------------------------------------

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_U64 = struct.Struct("!Q").unpack_from
_P16 = struct.Struct("!H").pack_into
_P32 = struct.Struct("!I").pack_into

_NS: dict[str, Any] = {
    "_U16": _U16, "_U32": _U32, "_U64": _U64, "_P16": _P16, "_P32": _P32,
    "_MacAddr": MacAddr, "_IPv4Address": IPv4Address, "_IPv6Address": IPv6Address,
    "_to_mac": to_mac, "_to_ipv4": to_ipv4, "_to_ipv6": to_ipv6,
    "FieldValueError": FieldValueError,
    "_from_bytes": int.from_bytes,
}


def _read_int_expr(off: int, width: int) -> str:
    if width == 1:
        return f"b[a + {off}]"
    if width == 2:
        return f"_U16(b, a + {off})[0]"
    if width == 4:
        return f"_U32(b, a + {off})[0]"
    if width == 8:
        return f"_U64(b, a + {off})[0]"
    return f"_from_bytes(b[a + {off}:a + {off + width}], 'big')"


def _write_int_stmt(off: int, width: int, expr: str) -> str:
    if width == 1:
        return f"b[a + {off}] = {expr}"
    if width == 2:
        return f"_P16(b, a + {off}, {expr})"
    if width == 4:
        return f"_P32(b, a + {off}, {expr})"
    return f"b[a + {off}:a + {off + width}] = ({expr}).to_bytes({width}, 'big')"


def _getter_source(f: Field) -> str:
    off, width, mask = f.narrowed()
    if f.kind == "mac":
        body = f"return _MacAddr(b[a + {off}:a + {off + 6}])"
    elif f.kind == "ipv4":
        body = f"return _IPv4Address(_U32(b, a + {off})[0])"
    elif f.kind == "ipv6":
        body = f"return _IPv6Address(b[a + {off}:a + {off + 16}].tobytes())"
    else:
        raw = _read_int_expr(off, width)
        if mask:
            shift = (mask & -mask).bit_length() - 1
            raw = f"({raw} & {mask:#x})" + (f" >> {shift}" if shift else "")
        body = f"return bool({raw})" if f.kind == "flag" else f"return {raw}"
    return f"def get(self):\n    b = self._buf\n    a = self._abs\n    {body}\n"


def _as_int(value: Any, name: str) -> int:
    try:
        return value.__index__()
    except (AttributeError, TypeError):
        raise FieldValueError(f"{name} takes an integer, got {type(value).__name__}") from None


_NS["_as_int"] = _as_int


def _raw_read(f: Field, off: int, width: int) -> str:
    if f.kind in ("mac", "ipv6"):
        return f"_from_bytes(b[a + {off}:a + {off + width}], 'big')"
    return _read_int_expr(off, width)


def _setter_source(f: Field, csum: int | None, csum_method: bool, zero_means_none: bool) -> str:
    """Straight-line setter code for one field.

    Checksums: the ones'-complement sum of a region is its big-endian integer modulo
    0xFFFF, and 256**2 = 1 (mod 0xFFFF); so bytes ending at an odd header offset weigh 256,
    at an even one 1.  Changing a field from raw value ``o`` to ``n`` changes the sum by
    ``(n - o) * weight`` and the checksum by minus that (RFC 1624, in modular form: the
    result equals a full recomputation).  The header's own checksum absorbs the change when
    it covers the field; otherwise the change (and that of a transport checksum fixed
    through the pseudo-header) goes to the enclosing checksums: ``Packet._ripple``.
    """
    off, width, mask = f.narrowed()
    lines = ["def set(self, value):"]
    if f.kind == "mac":
        lines.append("    v = _to_mac(value)")
    elif f.kind == "ipv4":
        lines.append("    v = _to_ipv4(value)")
    elif f.kind == "ipv6":
        lines.append("    v = _to_ipv6(value)")
    elif f.kind == "flag":
        lines.append("    v = 1 if value else 0")
    else:
        lines += [
            "    v = value if value.__class__ is int else _as_int(value, " + repr(f.name) + ")",
            f"    if v < 0 or v > {f.max}:",
            f"        raise FieldValueError(f'{f.name} must be in 0..{f.max}, got {{v}}')",
        ]
    if f.bounded:
        lines.append(f"    self._bound({f.name!r}, v)")
    lines += ["    b = self._buf", "    a = self._abs"]
    own = csum is not None and f.offset != csum
    if not (own or csum_method or f.pseudo):
        # No checksum of this header covers the field: only an enclosing UDP or GRE may
        # (a tunnel).  Look for one first, so that a plain packet's MAC write stays a
        # plain write (the walk is a loop over 2-3 envelopes, no call).
        lines += ["    p = self._env", "    while p._env is not None:",
                  "        if p.COVERS_PAYLOAD:", "            break", "        p = p._env",
                  "    else:", "        " + _plain_write(f, off, width, mask)]
        if f.structural:
            lines.append("        self._refresh()")
        lines.append("        return")
    lines.append(f"    o = {_raw_read(f, off, width)}")
    # the write itself; `n` is the new raw value of the narrowed bytes
    if f.kind in ("mac", "ipv6"):
        lines += [f"    b[a + {off}:a + {off + width}] = v", "    n = _from_bytes(v, 'big')"]
    elif f.kind == "ipv4":
        lines += [f"    _P32(b, a + {off}, v)", "    n = v"]
    elif mask:
        shift = (mask & -mask).bit_length() - 1
        keep = ~mask & ((1 << (8 * width)) - 1)
        lines.append(f"    n = (o & {keep:#x}) | (v << {shift})")
        lines.append("    " + _write_int_stmt(off, width, "n"))
    else:
        lines += ["    " + _write_int_stmt(off, width, "v"), "    n = v"]
    weight = 256 if (off + width) % 2 else 1
    delta = f"(n - o) * {weight}" if weight != 1 else "(n - o)"
    outer = []          # sum changes that no checksum of this header absorbs
    if own:
        # (the `n != o` guard: a no-op write must not turn a stored 0xFFFF into 0)
        lines += ["    if n != o:", f"        c = a + {csum}", "        hc = (b[c] << 8) | b[c + 1]"]
        if zero_means_none:
            lines += ["        if hc:",
                      f"            hc = (hc - {delta}) % 65535 or 65535",
                      "            b[c] = hc >> 8", "            b[c + 1] = hc & 255",
                      "        else:  # no checksum here: the next one out covers the field",
                      f"            self._ripple({delta})"]
        else:
            lines += [f"        hc = (hc - {delta}) % 65535", "        b[c] = hc >> 8",
                      "        b[c + 1] = hc & 255"]
    elif csum_method:
        lines += ["    if n != o:", f"        self._csum_fix(o * {weight}, n * {weight})"]
    else:
        outer.append(delta)     # no checksum of its own (or the checksum field itself)
    if f.pseudo:
        outer.append(f"self._pseudo_fix(o * {weight}, n * {weight}, {f.offset})")
    if outer:
        lines += [f"    r = {' + '.join(outer)}", "    if r % 65535:", "        self._ripple(r)"]
    if f.structural:
        lines.append("    self._refresh()")
    return "\n".join(lines) + "\n"


def _plain_write(f: Field, off: int, width: int, mask: int) -> str:
    """One statement writing ``v`` into the field, with no checksum bookkeeping."""
    if f.kind in ("mac", "ipv6"):
        return f"b[a + {off}:a + {off + width}] = v"
    if f.kind == "ipv4":
        return f"_P32(b, a + {off}, v)"
    if mask:
        shift = (mask & -mask).bit_length() - 1
        keep = ~mask & ((1 << (8 * width)) - 1)
        return _write_int_stmt(off, width, f"({_read_int_expr(off, width)} & {keep:#x}) | (v << {shift})")
    return _write_int_stmt(off, width, "v")


def accessor_filename(qual: str) -> str:
    """The code-object filename (and :mod:`linecache` key) of the generated accessors of
    field ``qual`` (``"Ipv4.ttl"``): ``<nfkit field Ipv4.ttl>``; its getter's code is named
    ``get``, its setter's ``set`` (tools/mutate_compiled.py finds them by these names)."""
    return f"<nfkit field {qual}>"


def _compile(src: str, name: str, qual: str) -> Callable[..., Any]:
    """Compile one generated accessor (``def get`` or ``def set``) of field ``qual`` under
    :func:`accessor_filename`, and register its source with :mod:`linecache` so tracebacks,
    ``pdb`` and ``inspect.getsource`` show it.  A field's getter and setter share the
    filename: the getter's lines come first, the setter is compiled after as many blank
    lines so that its line numbers point into the same text.  (tools/mutate_compiled.py
    wraps this function with this signature.)"""
    filename = accessor_filename(qual)
    lines = [] if src.startswith("def get") else _SOURCES.get(filename, [])
    ns: dict[str, Any] = {}
    exec(compile("\n" * len(lines) + src, filename, "exec"), _NS, ns)  # noqa: S102 - generated code
    lines = lines + src.splitlines(keepends=True) + ["\n"]
    _SOURCES[filename] = lines
    # mtime None: linecache.checkcache keeps the entry (there is no file to compare with)
    linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    fn = next(iter(ns.values()))
    fn.__name__ = name
    fn.__qualname__ = qual
    return fn


#: accessor_filename -> the generated source lines registered with linecache
_SOURCES: dict[str, list[str]] = {}


def install_accessors(cls: type, fields: tuple[Field, ...], csum: int | None,
                      csum_method: bool, zero_means_none: bool) -> None:
    """Add a property per declared field to ``cls`` (unless the class body defines one)."""
    for f in fields:
        if f.name in cls.__dict__:
            continue
        qual = f"{cls.__name__}.{f.name}"
        getter = _compile(_getter_source(f), f.name, qual)
        setter = _compile(_setter_source(f, csum, csum_method, zero_means_none), f.name, qual)
        getter.__module__ = setter.__module__ = cls.__module__
        doc = f.doc or f"{f.name} ({_describe(f)})"
        setattr(cls, f.name, property(getter, setter, doc=doc))


def _bit_span(f: Field) -> tuple[int, int]:
    """The field's first and last bit, counted from the header's first bit (RFC order)."""
    full = 8 * f.width
    mask = f.mask or (1 << full) - 1
    hi = mask.bit_length() - 1
    return 8 * f.offset + full - 1 - hi, 8 * f.offset + full - 1 - f.shift


def bit_diagram(fields: "tuple[Field, ...]") -> str:
    """An RFC-style diagram of the declared fields, 32 bits a row (generated: the class
    docstrings show it; tests/test_perpacket.py reads it back).  Aliases are left out; bits
    no field declares show as empty cells; a field wider than a row continues on the next."""
    spans = []
    for f in fields:
        if f.alias:
            continue
        first, last = _bit_span(f)
        if spans and first <= spans[-1][1]:
            continue        # overlaps an earlier field (a second view): the first one is drawn
        spans.append((first, last, f.name))
    spans.sort()
    if not spans:
        return ""
    end = spans[-1][1] + 1          # the last row stops where the last field does
    cells: list[list[tuple[int, str]]] = [[] for _ in range(-(-end // 32))]     # (bits, label)
    pos = 0
    for first, last, name in spans + [(end, end - 1, "")]:
        for a, b, label in ((pos, first - 1, ""), (first, last, name)):
            while a <= b:       # cut at row ends
                row_end = (a // 32) * 32 + 31
                cut = min(b, row_end)
                cells[a // 32].append((cut - a + 1, label))
                a = cut + 1
        pos = max(pos, last + 1)
    out = [" " + "".join(f"{i:<20}" for i in range(4)).rstrip(),
           " " + " ".join(str(i % 10) for i in range(32)), "+" + "-+" * 32]
    for row in cells:
        line = "|"
        for bits, label in row:
            width = 2 * bits - 1
            line += (label[:width]).center(width) + "|"
        out += [line, "+" + "-+" * sum(bits for bits, _ in row)]
    return "\n".join(out)


def _describe(f: Field) -> str:
    if f.kind in ("mac", "ipv4", "ipv6"):
        return f"{f.kind} address at byte {f.offset}"
    bits = f"{f.bits}-bit" if f.is_masked else f"{8 * f.width}-bit"
    return f"{bits} {'flag' if f.kind == 'flag' else 'field'} at byte {f.offset}"


def presence_flag(bit: int, field: str, doc: str = "") -> property:
    """A flag in the header's first byte that says whether an optional field is there
    (GRE key/sequence, GTP-U sequence/N-PDU): reading tests the bit; setting it adds the
    field (with value 0) or removes it, through the field's own setter, so the flag never
    disagrees with the bytes."""

    def get(self: Any) -> bool:
        return bool(self._buf[self._abs] & bit)

    def put(self: Any, value: bool) -> None:
        if bool(value) != get(self):
            setattr(self, field, 0 if value else None)

    return property(get, put, doc=doc or f"whether the optional {field} field is present")


def readonly_property(name: str, prop: property) -> property:
    """The same getter, with a setter that refuses (for peeked views)."""

    def refuse(self: Any, value: Any) -> None:
        raise ReadOnlyError(f"cannot set {type(self).__name__}.{name}: "
                            "the header was obtained with peek() and is read-only")

    return property(prop.fget, refuse, doc=prop.__doc__)


def default_bytes(size: int, fields: tuple[Field, ...]) -> bytes:
    """The header bytes ``push`` writes: every field at its default."""
    out = bytearray(size)
    for f in fields:
        if f.offset + f.width > size:
            continue  # fields past the fixed part (optional parts) start out absent
        d = f.default
        if f.kind == "mac":
            out[f.offset:f.offset + 6] = to_mac(d)
        elif f.kind == "ipv4":
            out[f.offset:f.offset + 4] = to_ipv4(d).to_bytes(4, "big")
        elif f.kind == "ipv6":
            out[f.offset:f.offset + 16] = to_ipv6(d)
        else:
            v = int(d)
            if not v:
                continue
            raw = int.from_bytes(out[f.offset:f.offset + f.width], "big")
            raw |= (v << f.shift) & (f.mask or (1 << (8 * f.width)) - 1)
            out[f.offset:f.offset + f.width] = raw.to_bytes(f.width, "big")
    return bytes(out)


def format_value(f: Field, value: Any) -> str:
    """How a field value prints in ``repr`` and dumps."""
    if f.kind in ("mac", "ipv4", "ipv6"):
        return str(value)
    if f.kind == "flag":
        return "1" if value else "0"
    if f.enum is not None:
        try:
            return f.enum(value).name
        except ValueError:
            pass
    if f.fmt == "hex":
        return f"{value:#0{2 + 2 * f.width}x}" if not f.is_masked else f"{value:#x}"
    return str(value)
