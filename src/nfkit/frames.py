"""Run a per-packet function over frames you hold -- a list of ``bytes`` or a capture file --
without writing a pipeline.

::

    from nfkit.frames import map_frames
    from nfkit.packets import Ethernet, Ipv4

    def route(m):
        ip = m.parse(Ethernet).parse(Ipv4)
        if ip.decrement_ttl() == 0:
            return False                     # drop (counted)
        m.parse(Ethernet).swap_addresses()

    run = map_frames(route, frames)          # or map_frames(route, "in.pcap")
    run.frames                               # the kept frames' bytes, in order
    run.dropped, run.errors                  # {"TruncatedError": 3, ...}

Each frame is copied into a buffer (:meth:`Mbuf.from_bytes`), handed to ``fn``, copied out
and freed.  ``fn`` returns ``False`` to drop the frame; anything else keeps it.  A frame
``fn`` cannot handle because it is not what it parses (an :class:`~nfkit.NfkitError`:
truncated, malformed, another protocol, a field value out of range) is dropped and counted
by error class, as a pipeline counts it; any other exception is a bug and propagates (the
buffer is freed either way).  Nothing is dropped without a count.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .buffers import Mbuf, Mempool, default_pool
from .errors import NfkitError

__all__ = ["map_frames", "FrameRun"]


@dataclass
class FrameRun:
    """What :func:`map_frames` did: the kept frames and the counts."""

    frames: list[bytes] = field(default_factory=list)
    #: frames ``fn`` returned ``False`` for
    dropped: int = 0
    #: frames dropped because ``fn`` raised an nfkit error, by error class name
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        """How many frames ``fn`` kept."""
        return len(self.frames)

    @property
    def seen(self) -> int:
        """How many frames were given: kept + dropped + dropped on errors."""
        return len(self.frames) + self.dropped + sum(self.errors.values())


def map_frames(fn: Callable[[Mbuf], Any], frames: "Iterable[Any] | str | os.PathLike[str]",
               pool: Mempool | None = None) -> FrameRun:
    """Run ``fn(mbuf)`` on every frame of ``frames``: ``bytes``-like objects, ``(timestamp_ns,
    bytes)`` pairs (what iterating a :class:`~nfkit.pcap.PcapReader` gives; the time goes
    into the buffer's timestamp), or the path of a pcap/pcapng file.  Returns a
    :class:`FrameRun`."""
    if isinstance(frames, (str, os.PathLike)):
        from .pcap import PcapReader
        reader = PcapReader(frames)
        try:
            return map_frames(fn, reader, pool)
        finally:
            reader.close()
    if pool is None:
        pool = default_pool()
    run = FrameRun()
    out = run.frames
    errors = run.errors
    for item in frames:
        if isinstance(item, tuple):
            ts, data = item
            m = Mbuf.from_bytes(data, pool)
            pool.timestamp[m.slot] = ts
        else:
            m = Mbuf.from_bytes(item, pool)
        try:
            keep = fn(m)
        except NfkitError as exc:
            errors[type(exc).__name__] += 1
            m.free()
            continue
        except BaseException:
            m.free()
            raise
        if keep is False:
            run.dropped += 1
        else:
            out.append(m.to_bytes())
        m.free()
    return run
