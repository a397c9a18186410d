"""Hypothesis strategies that build valid packets (capsule's ``testils::proptest``).

Every strategy here derives from the header declarations: the fields a header declares
(minus the ``derived`` ones that ``reconcile`` computes, and the ``alias`` views) are
drawn from their declared range, or fixed where the declaration says ``gen=<value>``.

Overrides name a field either with its layer prefix (``ipv4_ttl=1``, ``eth_src=...``,
``udp_dst_port=53``) or, where only one layer of the packet has that field, bare
(``dst_port=53``).  A value may be a constant or a hypothesis strategy.  ``payload`` sets
the transport payload (default: empty, like capsule).

The strategies yield :class:`~nfkit.Mbuf` s allocated from ``pool`` (default: the process
pool).  Free them when done (``mbuf.free()``), as with any Mbuf.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from hypothesis import strategies as st

from ..buffers import Mbuf, Mempool
from ..net import MacAddr
from ..packets.base import Packet
from ..packets.fields import ANY, Field

__all__ = ["field_strategy", "header_fields", "packet", "v4_udp", "v4_tcp", "v6_udp", "v6_tcp",
           "sr_tcp", "v4_icmp", "v6_icmp", "prefix_of", "mac_addrs"]

#: Strategy for MAC addresses.
mac_addrs = st.binary(min_size=6, max_size=6).map(MacAddr)


def field_strategy(f: Field) -> st.SearchStrategy[Any]:
    """The values a declared field may take in generated packets."""
    if f.gen is not ANY:
        return st.just(f.gen)
    if f.kind == "flag":
        return st.booleans()
    if f.kind == "mac":
        return mac_addrs
    if f.kind == "ipv4":
        return st.ip_addresses(v=4)
    if f.kind == "ipv6":
        return st.ip_addresses(v=6)
    return st.integers(0, f.max)


def generated_fields(cls: type[Packet]) -> tuple[Field, ...]:
    """The fields of ``cls`` that strategies draw (not derived, not aliases)."""
    return tuple(f for f in cls.ALL_FIELDS if not f.derived and not f.alias)


def prefix_of(cls: type[Packet]) -> str:
    """The override prefix of a header class: ``FIELD_PREFIX`` or its lower-case name."""
    return getattr(cls, "FIELD_PREFIX", None) or re.sub(r"[^a-z0-9]", "", cls.NAME.lower())


def header_fields(cls: type[Packet], **overrides: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A strategy for ``{field: value}`` covering the generated fields of ``cls``."""
    names = {f.name for f in generated_fields(cls)}
    unknown = set(overrides) - names - set(_extras(cls))
    if unknown:
        raise TypeError(f"{cls.NAME} has no generated field(s) {sorted(unknown)}; "
                        f"fields: {sorted(names)}")
    spec = {f.name: _as_strategy(overrides.get(f.name, field_strategy(f)))
            for f in generated_fields(cls)}
    for name, (strategy, _apply) in _extras(cls).items():
        spec[name] = _as_strategy(overrides.get(name, strategy))
    return st.fixed_dictionaries(spec)


def _as_strategy(v: Any) -> st.SearchStrategy[Any]:
    return v if isinstance(v, st.SearchStrategy) else st.just(v)


# Values that are not plain fields but that a header's strategy must draw (SRH segments).
_EXTRAS: dict[str, Callable[[], dict[str, tuple[st.SearchStrategy[Any], Callable[[Any, Any], None]]]]] = {}


def register_extra(class_name: str, name: str, strategy: st.SearchStrategy[Any],
                   apply: Callable[[Any, Any], None]) -> None:
    """Let a header's strategy draw a non-field value (e.g. the SRH segment list)."""
    prev = _EXTRAS.get(class_name)
    table = dict(prev()) if prev else {}
    table[name] = (strategy, apply)
    _EXTRAS[class_name] = lambda: table


def _extras(cls: type[Packet]) -> dict[str, tuple[st.SearchStrategy[Any], Callable[[Any, Any], None]]]:
    out: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any, Any], None]]] = {}
    for klass in reversed(cls.__mro__):
        f = _EXTRAS.get(getattr(klass, "__qualname__", ""))
        if f:
            out.update(f())
    return out


register_extra("SegmentRouting", "segments",
               st.lists(st.ip_addresses(v=6), min_size=1, max_size=8),
               lambda p, v: p.set_segments(v))


def _split_overrides(classes: tuple[type[Packet], ...], overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Route each override to the layer it names."""
    per = [dict() for _ in classes]  # type: list[dict[str, Any]]
    names = [{f.name for f in generated_fields(c)} | set(_extras(c)) for c in classes]
    prefixes = [prefix_of(c) for c in classes]
    for key, value in overrides.items():
        placed = False
        for i, p in enumerate(prefixes):
            if key.startswith(p + "_") and key[len(p) + 1:] in names[i]:
                per[i][key[len(p) + 1:]] = value
                placed = True
                break
        if placed:
            continue
        owners = [i for i, n in enumerate(names) if key in n]
        if len(owners) == 1:
            per[owners[0]][key] = value
        elif not owners:
            raise TypeError(f"no layer of {'/'.join(c.NAME for c in classes)} has a field {key!r}")
        else:
            raise TypeError(f"{key!r} is ambiguous here: say "
                            + " or ".join(f"{prefixes[i]}_{key}" for i in owners))
    return per


def build(classes: tuple[type[Packet], ...], values: list[dict[str, Any]], payload: bytes,
          pool: Mempool | None = None) -> Mbuf:
    """Push ``classes`` in order onto a new Mbuf, set ``values``, add ``payload``, reconcile."""
    m = Mbuf.alloc(pool)
    try:
        p: Any = m
        for cls, vals in zip(classes, values):
            p = p.push(cls)
            extras = _extras(cls)
            for name, v in vals.items():
                if name in extras:
                    extras[name][1](p, v)
                else:
                    setattr(p, name, v)
        if payload:
            p.set_payload(payload)
        p.reconcile_all()
    except BaseException:
        m.free()
        raise
    return m


@st.composite
def _packet(draw: Any, classes: tuple[Any, ...], overrides: dict[str, Any],
            payload: st.SearchStrategy[bytes], pool: Mempool | None) -> Mbuf:
    chosen = tuple(draw(c) if isinstance(c, st.SearchStrategy) else c for c in classes)
    per = _split_overrides(chosen, overrides)
    values = [draw(header_fields(c, **o)) for c, o in zip(chosen, per)]
    m = build(chosen, values, draw(payload), pool)
    _free_if_discarded(m)
    return m


def _free_if_discarded(m: Mbuf) -> None:
    """Hypothesis discards examples half drawn (out of data, a later draw rejected): the
    packets built so far never reach the test, and nobody else would free them (measured:
    3 to 5 buffers per 30 examples of a list of packets).  Freed when the example ends,
    if it was discarded and they are still allocated; a test that ran owns its packets."""
    try:
        from hypothesis.control import cleanup, current_build_context
        from hypothesis.internal.conjecture.data import Status
        data = current_build_context().data
    except Exception:  # outside a test (.example()), another Hypothesis: the caller frees
        return
    discarded = (Status.OVERRUN, Status.INVALID)

    def free() -> None:
        if data.status in discarded and m.pool.refcnt[m.slot]:
            m.free()
    cleanup(free)


def packet(*classes: "type[Packet] | st.SearchStrategy[type[Packet]]", payload: Any = b"",
           pool: Mempool | None = None, **overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Packets of the given header classes, outermost first (a class may also be a strategy
    over classes, e.g. ``st.sampled_from([EchoRequest, EchoReply])``).

    Overrides that name no field, or an ambiguous one, raise ``TypeError`` here, when the
    classes are fixed, rather than at the first draw."""
    if not any(isinstance(c, st.SearchStrategy) for c in classes):
        _split_overrides(classes, overrides)  # type: ignore[arg-type]
    return _packet(classes, overrides, _as_strategy(payload), pool)


def _protos() -> Any:
    from .. import packets as p
    return p


def v4_udp(**overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Ethernet / IPv4 / UDP."""
    p = _protos()
    return packet(p.Ethernet, p.Ipv4, p.Udp, **overrides)


def v4_tcp(**overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Ethernet / IPv4 / TCP."""
    p = _protos()
    return packet(p.Ethernet, p.Ipv4, p.Tcp, **overrides)


def v6_udp(**overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Ethernet / IPv6 / UDP."""
    p = _protos()
    return packet(p.Ethernet, p.Ipv6, p.Udp, **overrides)


def v6_tcp(**overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Ethernet / IPv6 / TCP."""
    p = _protos()
    return packet(p.Ethernet, p.Ipv6, p.Tcp, **overrides)


def sr_tcp(**overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Ethernet / IPv6 / Segment Routing Header / TCP (override ``sr_segments`` with a list)."""
    p = _protos()
    return packet(p.Ethernet, p.Ipv6, p.SegmentRouting, p.Tcp, **overrides)


def v4_icmp(**overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Ethernet / IPv4 / an ICMPv4 echo request or reply (``icmp=`` picks the class)."""
    p = _protos()
    msg = overrides.pop("icmp", st.sampled_from([p.EchoRequest, p.EchoReply]))
    overrides.setdefault("payload", st.binary(max_size=64))
    return packet(p.Ethernet, p.Ipv4, msg, **overrides)


def v6_icmp(**overrides: Any) -> st.SearchStrategy[Mbuf]:
    """Ethernet / IPv6 / an ICMPv6 echo request or reply (``icmp=`` picks the class)."""
    p = _protos()
    msg = overrides.pop("icmp", st.sampled_from([p.Icmpv6EchoRequest, p.Icmpv6EchoReply]))
    overrides.setdefault("payload", st.binary(max_size=64))
    return packet(p.Ethernet, p.Ipv6, msg, **overrides)
