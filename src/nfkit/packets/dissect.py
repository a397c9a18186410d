"""Decode a whole packet: parse every header nfkit knows, outermost first.

Used by ``Mbuf.reconcile_all()``, by dumps and by tests.  Candidates for each payload come
from the envelope's payload key (``_next``) where it has one, else from asking every known
header class (:data:`~nfkit.packets.base.REGISTRY`) -- so a new protocol module is found
without any table to edit.
"""

from __future__ import annotations

from typing import Any

from ..errors import ParseError, ProtocolMismatch
from .base import REGISTRY, Packet

__all__ = ["dissect", "summarize"]

_by_key: dict[int, list[type[Packet]]] = {}
_indexed = 0


def _index() -> None:
    """(Re)build the key -> classes index when new header classes were defined."""
    global _indexed
    if _indexed == len(REGISTRY):
        return
    _by_key.clear()
    # Most specific first: an ICMP echo request is tried before generic ICMP.
    ordered = sorted(REGISTRY, key=lambda c: -len(c.__mro__))
    for cls in ordered:
        for k in cls._KEYS:
            _by_key.setdefault(k, []).append(cls)
    _indexed = len(REGISTRY)


def _candidates(env: Any) -> list[type[Packet]]:
    _index()
    nxt = env._next
    if nxt is not None:
        return _by_key.get(nxt, [])
    return [c for c in sorted(REGISTRY, key=lambda c: -len(c.__mro__))
            if env._can_carry(c) and env._carries(c)]


def dissect(mbuf: Any) -> tuple[list[Packet], ParseError | None]:
    """All the headers of ``mbuf`` nfkit can parse, and the error that stopped the walk
    (``None`` when it ended on a payload no known header claims)."""
    layers: list[Packet] = []
    env: Any = mbuf
    for _ in range(64):  # bounded: every header is at least one byte
        found = None
        for cls in _candidates(env):
            try:
                found = env.parse(cls)
                break
            except ProtocolMismatch:
                continue
            except ParseError as exc:
                if cls.UDP_PORTS:
                    # Found by port number only: a guess.  Bytes that are not a valid
                    # tunnel header are plain UDP payload, not an error.
                    return layers, None
                return layers, exc
        if found is None:
            return layers, None
        layers.append(found)
        env = found
    return layers, None


def summarize(mbuf: Any, dissected: tuple[list[Packet], ParseError | None] | None = None) -> str:
    """A one-line description of every layer (tcpdump style); pass ``dissected`` when
    the packet was already dissected."""
    layers, err = dissected if dissected is not None else dissect(mbuf)
    parts = [p.summary() for p in layers]
    if err is not None:
        parts.append(f"[{err}]")
    return " / ".join(parts) if parts else f"{len(mbuf)} bytes"
