"""Packet filters: a small tcpdump-like expression language compiled to a Python predicate.

``compile_filter("tcp and dst port 80")`` parses the text once and returns a :class:`Filter`,
a callable ``Filter(mbuf) -> bool`` usable wherever a predicate is (``nfkit dump FILE
--filter EXPR``, ``Poll(q).filter(compile_filter(...))``).  Each call dissects the packet
once (:func:`~nfkit.packets.dissect.dissect`) and evaluates the expression over the headers
found.  The language is a useful subset of tcpdump's (pcap-filter(7)) expressions, evaluated
in Python -- not BPF.

Grammar
-------
Keywords are case-insensitive; ``and``/``&&``, ``or``/``||`` and ``not``/``!`` are
synonyms::

    filter    := <empty> | expr                       (empty: every packet matches)
    expr      := term (('or' | '||') term)*
    term      := factor (('and' | '&&') factor)*
    factor    := ('not' | '!') factor | '(' expr ')' | primitive

    primitive := PROTO                                protocol present
               | [aqual] [dir] 'host' ADDR            IPv4/IPv6 address
               | [aqual] [dir] 'net' CIDR             address inside a network
               | [aqual] dir (ADDR | CIDR)            'host'/'net' implied after a direction
               | [pqual] [dir] 'port' N               TCP/UDP port
               | [pqual] [dir] 'portrange' N-M        TCP/UDP port in N..M (inclusive)
               | 'ether' [dir] ['host'] MAC           Ethernet address ('ether host MAC' or
                                                      'ether src MAC' ...; a direction or
                                                      'host' is required)
               | 'vlan' [VID]                         tagged frame / any tag has this VID
               | 'vni' N | 'teid' N                   VXLAN network id / GTP-U tunnel id
               | 'tcp-syn' | 'tcp-ack' | 'tcp-rst' | 'tcp-fin'    TCP flag set
               | 'icmp-echo'                          ICMP or ICMPv6 echo request or reply
               | 'len' CMP N | 'greater' N | 'less' N frame length (greater: >=, less: <=)
               | 'true' | 'false'
    PROTO     := ether | vlan | arp | ip | ip6 | tcp | udp | icmp | icmp6 | gre | vxlan
               | gtp | ndp | frag | srh
    aqual     := ip | ip6 | arp                       (restricts host/net to that header)
    pqual     := tcp | udp                            (restricts port/portrange)
    dir       := src | dst | src or dst | src and dst (default: src or dst)
    CMP       := > | < | >= | <= | = | == | !=

Numbers are decimal or ``0x`` hexadecimal.  Addresses are literal (no name resolution);
a CIDR must have no host bits set.  ``and`` binds tighter than ``or`` and ``not`` tighter
than both, as in most languages (see the tcpdump differences below).

Limits
------
A filter is at most :data:`MAX_LENGTH` (65,536) characters long, nests at most
:data:`MAX_DEPTH` (100) levels of parentheses and ``not`` around a primitive, and its
numbers have at most :data:`MAX_DIGITS` (20) digits (leading zeros included, ``0x`` not).
Beyond a limit compiling raises :class:`FilterError` naming the column and the limit, so
neither compiling nor calling a filter can run out of stack: at the depth limit a call
needs about 200 Python frames.  Long flat filters (``host A or host B or ...`` over
thousands of hosts) are fine: ``and``/``or`` chains do not nest.

What the primitives match
-------------------------
* **Any layer.**  Inside tunnels (VXLAN, GRE, GTP-U, IP-in-IP, IPv6-in-IPv4...) a primitive
  matches when *any* header of the packet matches it: ``tcp port 80`` selects HTTP carried
  in a VXLAN tunnel, ``host 10.0.0.1`` selects the packet whether 10.0.0.1 is an outer or an
  inner address, and ``ether host MAC`` looks at inner Ethernet headers too.  Each primitive
  is evaluated on its own, so ``host A and port 80`` may take the address from the outer
  header and the port from the inner one.
* **Protocol names** match a parsed header of that protocol, or a parsed header that names
  it as its payload (an EtherType, a GRE protocol type, an IPv4 protocol, or any next-header
  value along an IPv6 extension-header chain).  So, as in tcpdump, ``tcp`` selects a
  non-initial fragment of a TCP datagram and a TCP segment too short to parse, while
  ``port 80`` -- which needs the TCP header itself -- does not.  ``ether`` means "has an
  Ethernet header", ``vlan`` "has an Ethernet header with a VLAN tag", ``ndp`` any NDP
  message (ICMPv6 types 133-137), ``frag`` an IPv4 fragment (MF set or non-zero offset) or
  an IPv6 Fragment header, ``srh`` an IPv6 Segment Routing Header.
* **host / net** look at the IPv4 and IPv6 source and destination addresses and at the ARP
  sender (src) and target (dst) protocol addresses; ``src and dst`` needs both addresses
  of one header to match.  An IPv4 address or network matches IPv4 and ARP headers, an
  IPv6 one IPv6 headers.
* **port / portrange** look at TCP and UDP headers (through IPv6 Fragment and Segment
  Routing headers too).
* **Malformed packets** are matched on the headers that did parse: the dissector stops at
  the first header it cannot parse, and primitives needing that header (or anything
  after it) simply do not match.  A filter never raises on a packet.

Differences from tcpdump
------------------------
* tcpdump gives ``and`` and ``or`` *equal* precedence, left to right: its ``a or b and c``
  is ``(a or b) and c``; here it is ``a or (b and c)``.  Parenthesise mixed expressions
  to mean the same thing in both.
* tcpdump looks at the outer headers only, needs the ``vlan`` keyword before it looks
  inside a VLAN-tagged frame, and reads TCP/UDP ports only right after the fixed IPv6
  header; nfkit sees through tunnels, VLAN tags and IPv6 extension headers.
* tcpdump reads header bytes wherever they would be, even in a truncated or malformed
  header; nfkit matches fields of headers that parsed only.
* Not supported: host names and service names, byte-offset expressions (``tcp[13]``),
  ``proto``, ``broadcast``/``multicast``, ``net ... mask ...``, ``sctp`` and the other
  protocols nfkit does not parse.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from ipaddress import (IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address,
                       ip_network)
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

from .errors import FieldValueError, NfkitError
from .net import MacAddr
from .packets.arp import Arp
from .packets.base import Packet
from .packets.constants import IPV6_EXT_UNIT, IpProtocol
from .packets.dissect import dissect
from .packets.ethernet import Ethernet
from .packets.gre import Gre
from .packets.gtpu import GtpU
from .packets.icmpv4 import EchoReply, EchoRequest, Icmpv4
from .packets.icmpv6 import EchoReply as Icmpv6EchoReply
from .packets.icmpv6 import EchoRequest as Icmpv6EchoRequest
from .packets.icmpv6 import Icmpv6
from .packets.ipv4 import Ipv4
from .packets.ipv6 import EXTENSION_HEADERS, Ipv6
from .packets.ipv6ext import Fragment, SegmentRouting
from .packets.ndp import NdpMessage
from .packets.tcp import Tcp
from .packets.udp import Udp
from .packets.vxlan import Vxlan

__all__ = ["compile_filter", "Filter", "FilterError", "MAX_LENGTH", "MAX_DEPTH", "MAX_DIGITS"]

#: characters a filter may have
MAX_LENGTH = 65536
#: levels of parentheses and ``not`` around a primitive.  The parser and the compiled filter
#: recurse once or twice per level; Python stops at 1,000 frames (330 parentheses or ~1,000
#: ``not`` s raised RecursionError), so 100 leaves room for the caller's own stack.
MAX_DEPTH = 100
#: digits of a number (Python's int() refuses more than 4,300; no field needs more than 10)
MAX_DIGITS = 20


class FilterError(NfkitError, ValueError):
    """A filter expression could not be compiled.

    The message says where (1-based ``column``, ``None`` when not tied to one place) and
    what was expected, e.g. ``filter 'tcp and': expected a primitive after 'and' at column
    8``.  ``expression`` is the text as given, ``reason`` the message without the prefix.
    It is also a :class:`ValueError`, as a bad argument is.
    """

    def __init__(self, expression: str, reason: str, column: int | None) -> None:
        super().__init__(f"filter '{_excerpt(expression, column)}': {reason}")
        self.expression = expression
        self.reason = reason
        self.column = column


def _excerpt(text: str, column: int | None, width: int = 120) -> str:
    """``text``, or for a long one the part around ``column`` (messages stay short)."""
    if len(text) <= width:
        return text
    start = max(0, min((column or 1) - 1 - width // 2, len(text) - width))
    return (f"{'...' if start else ''}{text[start:start + width]}"
            f"{'...' if start + width < len(text) else ''} ({len(text)} characters)")


def _show(word: str) -> str:
    """A token as quoted in a message: at most 40 characters of it."""
    return word if len(word) <= 40 else f"{word[:32]}...({len(word)} characters)"


# ---------------------------------------------------------------------------------------
# Evaluation: one _Frame per packet, closures over it
# ---------------------------------------------------------------------------------------

_MAX_EXT_HEADERS = 32  # bound on the walk: a filter names every next-header value it meets,
                       # further than the classifier's MAX_IPV6_EXT transport search goes


class _Frame:
    """What the primitives of one filter call look at: the dissected headers, the frame
    length, and (computed on first use, at most once per packet) the protocol numbers the
    headers declare for their payloads."""

    __slots__ = ("layers", "length", "_ethertypes", "_protocols")

    def __init__(self, layers: Sequence[Packet], length: int) -> None:
        self.layers = layers
        self.length = length
        self._ethertypes: set[int] | None = None
        self._protocols: set[int] = set()

    def declared(self) -> tuple[set[int], set[int]]:
        """``(ethertypes, ip_protocols)`` named by the headers as their payloads."""
        if self._ethertypes is None:
            ets: set[int] = set()
            protos = self._protocols
            for p in self.layers:
                try:
                    if isinstance(p, Ethernet):
                        ets.add(int(p.ether_type))
                    elif isinstance(p, Gre):
                        ets.add(int(p.protocol_type))
                    elif isinstance(p, Ipv4):
                        protos.add(int(p.protocol))
                    elif isinstance(p, Ipv6):
                        protos.update(_ipv6_chain(p))
                except Exception:  # a header we cannot read declares nothing
                    continue
            self._ethertypes = ets
        return self._ethertypes, self._protocols


def _ipv6_chain(ip: Ipv6) -> Iterator[int]:
    """Every next-header value from the fixed IPv6 header along its extension-header
    chain, as far as the bytes go (bounded; extension headers nfkit does not model, such
    as hop-by-hop options, are walked too)."""
    nxt = int(ip.next_header)
    yield nxt
    data = ip.payload_view()
    pos = 0
    for _ in range(_MAX_EXT_HEADERS):
        if nxt not in EXTENSION_HEADERS or pos + IPV6_EXT_UNIT > len(data):
            return
        size = IPV6_EXT_UNIT if nxt == IpProtocol.IPV6_FRAG else (data[pos + 1] + 1) * IPV6_EXT_UNIT
        nxt = data[pos]
        yield nxt
        pos += size


Test = Callable[[_Frame], bool]


def _safe(test: Test) -> Test:
    """A primitive that fails on a packet (an unreadable header) does not match it."""
    def run(frame: _Frame) -> bool:
        try:
            return bool(test(frame))
        except Exception:
            return False
    return run


def _has(*classes: type) -> Test:
    """Some header is an instance of one of ``classes``."""
    def test(frame: _Frame) -> bool:
        for p in frame.layers:
            if isinstance(p, classes):
                return True
        return False
    return test


def _protocol(classes: tuple[type, ...], ethertypes: tuple[int, ...] = (),
              protocols: tuple[int, ...] = ()) -> Test:
    """A protocol name: a parsed header of the protocol, or a header declaring it."""
    def test(frame: _Frame) -> bool:
        for p in frame.layers:
            if isinstance(p, classes):
                return True
        if ethertypes or protocols:
            ets, protos = frame.declared()
            return any(e in ets for e in ethertypes) or any(n in protos for n in protocols)
        return False
    return test


def _vlan(frame: _Frame) -> bool:
    return any(isinstance(p, Ethernet) and p.vlan_id is not None for p in frame.layers)


def _vlan_id(vid: int) -> Test:
    def test(frame: _Frame) -> bool:
        for p in frame.layers:
            if isinstance(p, Ethernet) and any(t.vid == vid for t in p.vlans):
                return True
        return False
    return test


def _frag(frame: _Frame) -> bool:
    for p in frame.layers:
        if isinstance(p, Fragment) or (isinstance(p, Ipv4) and p.is_fragment):
            return True
    return IpProtocol.IPV6_FRAG in frame.declared()[1]


def _ndp(frame: _Frame) -> bool:
    for p in frame.layers:
        if isinstance(p, NdpMessage) or (isinstance(p, Icmpv6) and 133 <= p.msg_type <= 137):
            return True
    return False


_ECHO_CLASSES = (EchoRequest, EchoReply, Icmpv6EchoRequest, Icmpv6EchoReply)


def _icmp_echo(frame: _Frame) -> bool:
    for p in frame.layers:
        if isinstance(p, _ECHO_CLASSES):
            return True
        if isinstance(p, Icmpv4) and p.msg_type in (0, 8):
            return True
        if isinstance(p, Icmpv6) and p.msg_type in (128, 129):
            return True
    return False


def _tcp_flag(name: str) -> Test:
    def test(frame: _Frame) -> bool:
        return any(isinstance(p, Tcp) and getattr(p, name) for p in frame.layers)
    return test


def _field_equals(cls: type, field: str, value: int) -> Test:
    def test(frame: _Frame) -> bool:
        return any(isinstance(p, cls) and getattr(p, field) == value for p in frame.layers)
    return test


def _length(op: Callable[[int, int], bool], n: int) -> Test:
    def test(frame: _Frame) -> bool:
        return op(frame.length, n)
    return test


Pairs = Callable[[_Frame], Iterable[tuple[Any, Any]]]


def _address_pairs(version: int, ip: bool, arp: bool) -> Pairs:
    """``(source, destination)`` of every IP header of ``version`` (if ``ip``) and every
    ARP header (sender, target; if ``arp``)."""
    cls = Ipv4 if version == 4 else Ipv6

    def pairs(frame: _Frame) -> Iterator[tuple[Any, Any]]:
        for p in frame.layers:
            if ip and isinstance(p, cls):
                yield p.src, p.dst
            elif arp and isinstance(p, Arp):
                yield p.sender_ip, p.target_ip
    return pairs


def _port_pairs(classes: tuple[type, ...]) -> Pairs:
    def pairs(frame: _Frame) -> Iterator[tuple[int, int]]:
        for p in frame.layers:
            if isinstance(p, classes):
                yield p.src_port, p.dst_port
    return pairs


def _mac_pairs(frame: _Frame) -> Iterator[tuple[bytes, bytes]]:
    for p in frame.layers:
        if isinstance(p, Ethernet):
            yield p.src, p.dst


def _directed(pairs: Pairs, ok: Callable[[Any], bool], direction: str) -> Test:
    """Some header's source / destination / either / both satisfy ``ok``."""
    if direction == "src":
        return lambda frame: any(ok(s) for s, _ in pairs(frame))
    if direction == "dst":
        return lambda frame: any(ok(d) for _, d in pairs(frame))
    if direction == "src and dst":
        return lambda frame: any(ok(s) and ok(d) for s, d in pairs(frame))
    return lambda frame: any(ok(s) or ok(d) for s, d in pairs(frame))


# ---------------------------------------------------------------------------------------
# The syntax tree: nodes know their normalised text and build their test
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prim:
    text: str
    test: Test


@dataclass(frozen=True)
class _Not:
    item: "_Node"


@dataclass(frozen=True)
class _And:
    items: tuple["_Node", ...]


@dataclass(frozen=True)
class _Or:
    items: tuple["_Node", ...]


_Node = Union[_Prim, _Not, _And, _Or]


def _render(node: _Node) -> str:
    """Normalised text: keywords spelled out, redundant parentheses dropped, and an
    ``and`` inside an ``or`` parenthesised so the grouping reads the same in tcpdump."""
    if isinstance(node, _Prim):
        return node.text
    if isinstance(node, _Not):
        inner = _render(node.item)
        return f"not ({inner})" if isinstance(node.item, (_And, _Or)) else f"not {inner}"
    if isinstance(node, _And):
        return " and ".join(f"({_render(i)})" if isinstance(i, _Or) else _render(i)
                            for i in node.items)
    return " or ".join(f"({_render(i)})" if isinstance(i, _And) else _render(i)
                       for i in node.items)


def _build(node: _Node) -> Test:
    """The test of a node; ``and``/``or`` short-circuit left to right."""
    if isinstance(node, _Prim):
        return _safe(node.test)
    if isinstance(node, _Not):
        inner = _build(node.item)
        return lambda frame: not inner(frame)
    tests = tuple(_build(i) for i in node.items)
    if isinstance(node, _And):
        if len(tests) == 2:
            a, b = tests
            return lambda frame: a(frame) and b(frame)
        return lambda frame: all(t(frame) for t in tests)
    if len(tests) == 2:
        a, b = tests
        return lambda frame: a(frame) or b(frame)
    return lambda frame: any(t(frame) for t in tests)


# ---------------------------------------------------------------------------------------
# Lexer and parser
# ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"(?P<ws>\s+)|(?P<op>&&|\|\||!=|==|>=|<=|[()!<>=])|(?P<word>[\w.:/\-]+)")


@dataclass(frozen=True)
class _Tok:
    kind: str   # "word", "op" or "end"
    text: str
    col: int    # 1-based; the end token sits one past the last character

    @property
    def low(self) -> str:
        return self.text.lower()

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def _is_and(t: _Tok) -> bool:
    return t.is_word("and") or (t.kind == "op" and t.text == "&&")


def _is_or(t: _Tok) -> bool:
    return t.is_word("or") or (t.kind == "op" and t.text == "||")


def _is_not(t: _Tok) -> bool:
    return t.is_word("not") or (t.kind == "op" and t.text == "!")


_PROTOCOLS: dict[str, Test] = {
    "ether": _has(Ethernet),
    "vlan": _vlan,
    "arp": _protocol((Arp,), ethertypes=(0x0806,)),
    "ip": _protocol((Ipv4,), ethertypes=(0x0800,), protocols=(4,)),
    "ip6": _protocol((Ipv6,), ethertypes=(0x86DD,), protocols=(41,)),
    "tcp": _protocol((Tcp,), protocols=(6,)),
    "udp": _protocol((Udp,), protocols=(17,)),
    "icmp": _protocol((Icmpv4,), protocols=(1,)),
    "icmp6": _protocol((Icmpv6,), protocols=(58,)),
    "gre": _protocol((Gre,), protocols=(47,)),
    "vxlan": _has(Vxlan),
    "gtp": _has(GtpU),
    "ndp": _ndp,
    "frag": _frag,
    "srh": _has(SegmentRouting),
}
_SIMPLE: dict[str, Test] = {
    "true": lambda frame: True,
    "false": lambda frame: False,
    "tcp-syn": _tcp_flag("syn"),
    "tcp-ack": _tcp_flag("ack"),
    "tcp-rst": _tcp_flag("rst"),
    "tcp-fin": _tcp_flag("fin"),
    "icmp-echo": _icmp_echo,
}
_CMP: dict[str, tuple[str, Callable[[int, int], bool]]] = {
    ">": (">", lambda a, b: a > b),
    "<": ("<", lambda a, b: a < b),
    ">=": (">=", lambda a, b: a >= b),
    "<=": ("<=", lambda a, b: a <= b),
    "=": ("=", lambda a, b: a == b),
    "==": ("=", lambda a, b: a == b),
    "!=": ("!=", lambda a, b: a != b),
}
_DIRS = ("src", "dst")
_KINDS = ("host", "net", "port", "portrange")
_ADDR_QUALS = ("ip", "ip6", "arp")
_PORT_QUALS = ("tcp", "udp")
#: what "did you mean" suggestions are drawn from
_VOCABULARY = sorted(set(_PROTOCOLS) | set(_SIMPLE) | set(_DIRS) | set(_KINDS)
                     | {"len", "greater", "less", "vni", "teid", "and", "or", "not"})
#: tcpdump words a user may reach for, and what to say about them
_UNSUPPORTED = {
    "sctp": "nfkit does not parse it",
    "rarp": "nfkit does not parse it",
    "proto": "use a protocol name such as tcp",
    "broadcast": "use 'ether dst ff:ff:ff:ff:ff:ff'",
    "multicast": "nfkit filters have no multicast primitive",
    "gateway": "nfkit filters have no gateway primitive",
    "mask": "write the network as CIDR, e.g. 'net 10.0.0.0/8'",
}
_INT = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]+")


def _int(text: str) -> int | None:
    """A decimal or 0x-hexadecimal number, or None (also for more than MAX_DIGITS digits:
    :meth:`_Parser.integer` says so)."""
    if not _INT.fullmatch(text) or _digits(text) > MAX_DIGITS:
        return None
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text, 10)


def _digits(text: str) -> int:
    return len(text) - 2 if text[:2] in ("0x", "0X") else len(text)


class _Parser:
    """Recursive descent over the token list; every error names a column."""

    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_LENGTH:
            raise self.error(f"the filter is {len(text)} characters long; at most {MAX_LENGTH} "
                             f"(the limit) at column {MAX_LENGTH + 1}", MAX_LENGTH + 1)
        self.toks = self._tokenize(text)
        self.i = 0
        self.depth = 0          # parentheses and 'not' around the current position

    # -- tokens -------------------------------------------------------------------------
    def _tokenize(self, text: str) -> list[_Tok]:
        out: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                ch = text[pos]
                hint = {"&": " (did you mean '&&' or 'and'?)",
                        "|": " (did you mean '||' or 'or'?)"}.get(ch, "")
                raise self.error(f"unexpected character {ch!r} at column {pos + 1}{hint}", pos + 1)
            kind = m.lastgroup
            if kind != "ws":
                out.append(_Tok(kind or "word", m.group(), pos + 1))
            pos = m.end()
        out.append(_Tok("end", "", len(text) + 1))
        return out

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind != "end":
            self.i += 1
        return t

    def error(self, reason: str, column: int | None) -> FilterError:
        return FilterError(self.text, reason, column)

    @staticmethod
    def found(t: _Tok) -> str:
        return "" if t.kind == "end" else f", found '{_show(t.text)}'"

    # -- expressions --------------------------------------------------------------------
    def parse(self) -> _Node | None:
        """The whole filter (None: empty, matches everything)."""
        if self.peek().kind == "end":
            return None
        node = self.expr(None)
        t = self.peek()
        if t.kind != "end":
            if t.kind == "op" and t.text == ")":
                raise self.error(f"unexpected ')' at column {t.col} (no '(' to close)", t.col)
            raise self.error(f"unexpected '{_show(t.text)}' at column {t.col} (expected 'and', "
                             "'or' or the end of the filter)", t.col)
        return node

    def expr(self, after: _Tok | None) -> _Node:
        items = [self.term(after)]
        while _is_or(self.peek()):
            op = self.next()
            items.append(self.term(op))
        if len(items) == 1:
            return items[0]
        flat: list[_Node] = []
        for n in items:
            flat.extend(n.items if isinstance(n, _Or) else (n,))
        return _Or(tuple(flat))

    def term(self, after: _Tok | None) -> _Node:
        items = [self.factor(after)]
        while _is_and(self.peek()):
            op = self.next()
            items.append(self.factor(op))
        if len(items) == 1:
            return items[0]
        flat: list[_Node] = []
        for n in items:
            flat.extend(n.items if isinstance(n, _And) else (n,))
        return _And(tuple(flat))

    def factor(self, after: _Tok | None) -> _Node:
        t = self.peek()
        if _is_not(t):
            self.next()
            self.enter(t)
            node: _Node = _Not(self.factor(t))
            self.depth -= 1
            return node
        if t.kind == "op" and t.text == "(":
            self.next()
            self.enter(t)
            node = self.expr(t)
            self.depth -= 1
            close = self.peek()
            if not (close.kind == "op" and close.text == ")"):
                what = "the end of the filter" if close.kind == "end" \
                    else f"'{_show(close.text)}'"
                raise self.error(f"expected ')' to close the '(' at column {t.col}, found "
                                 f"{what} at column {close.col}", close.col)
            self.next()
            return node
        if t.kind != "word" or _is_and(t) or _is_or(t):
            where = f" after '{after.text}'" if after is not None else ""
            raise self.error(f"expected a primitive{where} at column {t.col}{self.found(t)}",
                             t.col)
        return self.primitive()

    def enter(self, t: _Tok) -> None:
        """One more level of nesting (at ``t``), within MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"'{t.text}' at column {t.col}: nesting deeper than {MAX_DEPTH} "
                             "levels of parentheses and 'not' (the limit)", t.col)

    # -- primitives ---------------------------------------------------------------------
    def primitive(self) -> _Prim:
        t = self.next()
        w = t.low
        if w in _SIMPLE:
            return _Prim(w, _SIMPLE[w])
        if w == "len":
            return self.length(t)
        if w in ("greater", "less"):
            n = self.number(self.next(), t, "length", 0, 2**32 - 1)
            op = ">=" if w == "greater" else "<="
            return _Prim(f"len {op} {n}", _length(_CMP[op][1], n))
        if w == "vlan":
            v = self.peek()
            if v.kind == "word" and v.text[:1].isdigit():
                vid = self.number(self.next(), t, "VLAN ID", 0, 4095)
                return _Prim(f"vlan {vid}", _vlan_id(vid))
            return _Prim("vlan", _vlan)
        if w == "vni":
            n = self.number(self.next(), t, "VNI", 0, 2**24 - 1)
            return _Prim(f"vni {n}", _field_equals(Vxlan, "vni", n))
        if w == "teid":
            n = self.number(self.next(), t, "TEID", 0, 2**32 - 1)
            return _Prim(f"teid {n}", _field_equals(GtpU, "teid", n))
        qualified = self.peek().is_word(*_DIRS, *_KINDS)
        if w == "ether" and qualified:
            return self.ether(t)
        if w in _ADDR_QUALS + _PORT_QUALS and qualified:
            return self.qualified(t)
        if w in _DIRS or w in _KINDS:
            self.i -= 1
            return self.qualified(None)
        if w in _PROTOCOLS:
            return _Prim(w, _PROTOCOLS[w])
        raise self.error(f"unknown primitive '{_show(t.text)}' at column "
                         f"{t.col}{self.suggest(t.text)}", t.col)

    def suggest(self, word: str) -> str:
        """A "(did you mean ...?)" hint for an unknown word, or ''."""
        if len(word) > 64:                   # nothing it could be a typo of
            return ""
        if word.lower() in _UNSUPPORTED:
            return f" (not supported: {_UNSUPPORTED[word.lower()]})"
        try:
            ip_network(word, strict=False)
            return f" (did you mean '{'net' if '/' in word else 'host'} {word}'?)"
        except ValueError:
            pass
        try:
            MacAddr(word)
            return f" (did you mean 'ether host {word}'?)"
        except FieldValueError:
            pass
        if _int(word) is not None:
            return f" (did you mean 'port {word}'?)"
        close = difflib.get_close_matches(word.lower(), _VOCABULARY, n=1, cutoff=0.6)
        return f" (did you mean '{close[0]}'?)" if close else ""

    def number(self, t: _Tok, after: _Tok, what: str, lo: int, hi: int) -> int:
        """Parse a number token in ``lo..hi`` following ``after``."""
        if t.kind != "word":
            raise self.error(f"expected a {what} after '{after.text}' at column {t.col}"
                             f"{self.found(t)}", t.col)
        return self.integer(t.text, t.col, what, lo, hi)

    def check_digits(self, text: str, col: int, what: str) -> None:
        if _INT.fullmatch(text) and _digits(text) > MAX_DIGITS:
            raise self.error(f"bad {what} '{_show(text)}' at column {col}: longer than "
                             f"{MAX_DIGITS} digits (the limit)", col)

    def integer(self, text: str, col: int, what: str, lo: int, hi: int) -> int:
        """``text`` (at ``col``) as a number in ``lo..hi``."""
        self.check_digits(text, col, what)
        n = _int(text)
        if n is None:
            raise self.error(f"bad {what} '{_show(text)}' at column {col}: expected a number "
                             f"{lo}-{hi}", col)
        if not lo <= n <= hi:
            raise self.error(f"bad {what} '{_show(text)}' at column {col}: out of range "
                             f"{lo}-{hi}", col)
        return n

    def length(self, t: _Tok) -> _Prim:
        op = self.peek()
        if not (op.kind == "op" and op.text in _CMP):
            raise self.error(f"expected a comparison (>, <, >=, <=, =, !=) after 'len' at "
                             f"column {op.col}{self.found(op)}", op.col)
        self.next()
        n = self.number(self.next(), op, "length", 0, 2**32 - 1)
        text, fn = _CMP[op.text]
        return _Prim(f"len {text} {n}", _length(fn, n))

    def direction(self) -> str | None:
        """``src``, ``dst``, ``src and dst``, ``src or dst`` or None (no direction)."""
        t = self.peek()
        if not t.is_word(*_DIRS):
            return None
        self.next()
        op, other = self.peek(), self.peek(1)
        if (_is_and(op) or _is_or(op)) and other.is_word(*_DIRS) and other.low != t.low:
            self.next()
            self.next()
            return "src and dst" if _is_and(op) else "src or dst"
        return t.low

    def value(self, after: _Tok, what: str) -> _Tok:
        """The operand word after ``after`` (an address, network, port...)."""
        v = self.next()
        if v.kind != "word" or _is_and(v) or _is_or(v) or _is_not(v):
            raise self.error(f"expected {what} after '{after.text}' at column {v.col}"
                             f"{self.found(v)}", v.col)
        return v

    def ether(self, qual: _Tok) -> _Prim:
        direction = self.direction()
        last = self.toks[self.i - 1]
        k = self.peek()
        if k.is_word("host"):
            last = self.next()
        elif k.is_word(*_KINDS):
            raise self.error(f"'ether' cannot qualify '{_show(k.text)}' at column {k.col} (use "
                             "'ether host', 'ether src' or 'ether dst')", k.col)
        v = self.value(last, "a MAC address")
        try:
            mac = MacAddr(v.text)
        except FieldValueError:
            raise self.error(f"bad MAC address '{_show(v.text)}' at column {v.col}: expected "
                             "aa:bb:cc:dd:ee:ff", v.col) from None
        word = direction if direction in ("src", "dst", "src and dst") else "host"
        return _Prim(f"ether {word} {mac}",
                     _directed(_mac_pairs, lambda a: a == mac, direction or ""))

    def qualified(self, qual_tok: _Tok | None) -> _Prim:
        """``[qual] [dir] host|net|port|portrange VALUE`` and ``[qual] dir VALUE``."""
        qual = qual_tok.low if qual_tok is not None else None
        direction = self.direction()
        last = self.toks[self.i - 1] if direction else qual_tok
        k = self.peek()
        if k.is_word(*_KINDS):
            kind = self.next().low
            last = k
        elif qual in _PORT_QUALS:
            raise self.error(f"expected 'port' or 'portrange' after '{last.text}' at column "
                             f"{k.col}{self.found(k)}", k.col)
        else:
            kind = "implied"  # after a direction: host or net, by the value's form
        if kind in ("port", "portrange") and qual is not None and qual not in _PORT_QUALS:
            raise self.error(f"'{qual}' cannot qualify '{kind}' at column {k.col} (use tcp "
                             "or udp)", k.col)
        if kind in ("host", "net", "implied") and qual in _PORT_QUALS:
            raise self.error(f"'{qual}' cannot qualify '{kind}' at column {k.col} (use ip, "
                             "ip6 or arp)", k.col)
        assert last is not None
        words = [w for w in (qual, direction if direction != "src or dst" else None) if w]
        if kind in ("port", "portrange"):
            return self.ports(kind, qual, direction or "", words, last)
        what = {"host": "an address", "net": "a network"}.get(kind, "")
        if kind == "implied":
            what = ("'host', 'net', 'port', 'portrange' or an address" if qual is None
                    else "'host', 'net' or an address")
        v = self.value(last, what)
        if kind == "net" or (kind == "implied" and "/" in v.text):
            return self.network(v, qual, direction or "", words)
        return self.host(v, qual, direction or "", words)

    def family_check(self, version: int, qual: str | None, kind: str, v: _Tok) -> None:
        want = {"ip": 4, "arp": 4, "ip6": 6}.get(qual or "")
        if want is not None and want != version:
            raise self.error(f"'{qual} {kind}' takes an IPv{want} address, got "
                             f"'{_show(v.text)}' at column {v.col}", v.col)

    def host(self, v: _Tok, qual: str | None, direction: str, words: list[str]) -> _Prim:
        try:
            addr: IPv4Address | IPv6Address = ip_address(v.text)
        except ValueError:
            raise self.error(f"bad address '{_show(v.text)}' at column {v.col}: not an IPv4 or "
                             "IPv6 address (host names are not resolved)", v.col) from None
        self.family_check(addr.version, qual, "host", v)
        pairs = _address_pairs(addr.version, ip=qual != "arp", arp=qual in (None, "arp"))
        return _Prim(" ".join(words + ["host", str(addr)]),
                     _directed(pairs, lambda a: a == addr, direction))

    def network(self, v: _Tok, qual: str | None, direction: str, words: list[str]) -> _Prim:
        try:
            net: IPv4Network | IPv6Network = ip_network(v.text)
        except ValueError as exc:
            try:
                loose = ip_network(v.text, strict=False)
            except ValueError:
                raise self.error(f"bad network '{_show(v.text)}' at column {v.col}: expected a "
                                 "CIDR network such as 10.0.0.0/8 or 2001:db8::/32",
                                 v.col) from None
            raise self.error(f"bad network '{_show(v.text)}' at column {v.col}: host bits set (did "
                             f"you mean '{loose}'?)", v.col) from exc
        self.family_check(net.version, qual, "net", v)
        pairs = _address_pairs(net.version, ip=qual != "arp", arp=qual in (None, "arp"))
        return _Prim(" ".join(words + ["net", str(net)]),
                     _directed(pairs, lambda a: a in net, direction))

    def ports(self, kind: str, qual: str | None, direction: str, words: list[str],
              last: _Tok) -> _Prim:
        classes: tuple[type, ...] = {"tcp": (Tcp,), "udp": (Udp,)}.get(qual or "", (Tcp, Udp))
        pairs = _port_pairs(classes)
        if kind == "port":
            v = self.value(last, "a port number")
            n = self.number(v, last, "port", 0, 65535)
            return _Prim(" ".join(words + ["port", str(n)]),
                         _directed(pairs, lambda p: p == n, direction))
        v = self.value(last, "a port range N-M")
        parts = v.text.split("-")
        if len(parts) == 2 and all(_INT.fullmatch(p) for p in parts):
            col = v.col
            for p in parts:                  # each bound at its own column
                self.check_digits(p, col, "port range bound")
                col += len(p) + 1
        bounds = [_int(p) for p in parts]
        if len(parts) != 2 or None in bounds:
            raise self.error(f"bad port range '{_show(v.text)}' at column {v.col}: expected "
                             "N-M, e.g. 1024-65535", v.col)
        lo, hi = sorted(b for b in bounds if b is not None)
        if hi > 65535:
            raise self.error(f"bad port range '{_show(v.text)}' at column {v.col}: ports are "
                             "0-65535", v.col)
        return _Prim(" ".join(words + ["portrange", f"{lo}-{hi}"]),
                     _directed(pairs, lambda p: lo <= p <= hi, direction))


# ---------------------------------------------------------------------------------------
# The public API
# ---------------------------------------------------------------------------------------


class Filter:
    """A compiled filter: call it on a packet to know whether it matches.

    ``expression`` is the normalised text (keywords spelled out, addresses in canonical
    form, grouping made explicit), which compiles to the same filter.  The packet may be an
    :class:`~nfkit.Mbuf` or any parsed header (its whole buffer is examined).  A call never
    raises: packets that cannot be read match no primitive.
    """

    __slots__ = ("expression", "_test")

    def __init__(self, expression: str, test: Test) -> None:
        self.expression = expression
        self._test = test

    def __call__(self, packet: Any) -> bool:
        """Dissect ``packet`` once and evaluate the filter on its headers.

        Raises :class:`TypeError` only for something that is not a packet at all."""
        try:
            mbuf = packet.mbuf
        except AttributeError:
            raise TypeError(f"a filter takes an Mbuf or a parsed header, got "
                            f"{type(packet).__name__}") from None
        try:
            length = len(mbuf)
            layers: Sequence[Packet] = dissect(mbuf)[0]
        except Exception:  # whatever the bytes, a packet does not make the filter raise
            layers, length = [], 0
        return self._test(_Frame(layers, length))

    def match_layers(self, layers: Sequence[Packet], length: int) -> bool:
        """Evaluate on headers already dissected (``dissect(mbuf)[0]``) of a frame of
        ``length`` bytes -- for callers that dissect anyway, such as dumps."""
        return self._test(_Frame(layers, length))

    def __repr__(self) -> str:
        return f"Filter({self.expression!r})"


def compile_filter(text: str) -> Filter:
    """Compile a filter expression (grammar in the module docstring) into a predicate over
    packets.  An empty expression matches every packet, as in tcpdump.

    Raises :class:`FilterError` naming the column and what was expected.
    """
    if not isinstance(text, str):
        raise TypeError(f"a filter expression is a str, got {type(text).__name__}")
    node = _Parser(text).parse()
    if node is None:
        return Filter("true", lambda frame: True)
    return Filter(_render(node), _build(node))
