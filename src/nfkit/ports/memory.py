"""In-process ports (``net_ring<N>``, ``net_memory<N>``): queues in memory, for tests and
for chaining network functions inside one process.

Device arguments (all optional):

- ``rx_ring=NAME`` / ``tx_ring=NAME``: use the named in-process ring (shared by every port
  that names it) instead of a private one, so one port's transmit feeds another's receive;
  with several queues, queue ``i`` uses ``NAME-i``;
- ``loopback=1``: what the port transmits it receives again;
- ``size=N``: ring capacity in packets (default 65536); a full ring drops and counts.

Tests reach the rings through the queue: ``q.inject(mbufs)`` queues packets for receive,
``q.drain()`` takes what was transmitted.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..buffers import Mbuf
from .port import Driver, Port, PortError, PortQueue, not_applicable

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig

__all__ = ["Ring", "MemoryQueue", "ring"]


class Ring:
    """A bounded FIFO of Mbufs."""

    __slots__ = ("name", "capacity", "_q")

    def __init__(self, name: str, capacity: int = 65536) -> None:
        self.name = name
        self.capacity = capacity
        self._q: deque[Mbuf] = deque()

    def put(self, mbufs: list[Mbuf]) -> int:
        """Enqueue as many as fit, from the front; returns how many."""
        room = self.capacity - len(self._q)
        n = min(room, len(mbufs))
        self._q.extend(mbufs[:n] if n < len(mbufs) else mbufs)
        return n

    def get(self, n: int) -> list[Mbuf]:
        q = self._q
        k = min(n, len(q))
        return [q.popleft() for _ in range(k)]

    def __len__(self) -> int:
        return len(self._q)


_rings: dict[str, Ring] = {}


def ring(name: str, capacity: int = 65536) -> Ring:
    """The process-wide ring called ``name`` (created on first use)."""
    r = _rings.get(name)
    if r is None:
        r = _rings[name] = Ring(name, capacity)
    return r


class MemoryQueue(PortQueue):
    """A queue whose receive side reads one ring and transmit side writes another."""

    def __init__(self, port: Port, core: int, index: int, rx: Ring, tx: Ring) -> None:
        super().__init__(port, core, index)
        self.rx_ring = rx
        self.tx_ring = tx

    def _rx(self, max_packets: int) -> list[Mbuf]:
        return self.rx_ring.get(max_packets)

    def _tx(self, mbufs: list[Mbuf]) -> int:
        return self.tx_ring.put(mbufs)

    def inject(self, mbufs: list[Mbuf]) -> None:
        """Queue packets for :meth:`receive` (tests, generators)."""
        n = self.rx_ring.put(mbufs)
        if n < len(mbufs):
            self.counters.rx_dropped += len(mbufs) - n
            Mbuf.free_bulk(mbufs[n:])

    def drain(self, max_packets: int | None = None) -> list[Mbuf]:
        """Take what was transmitted (all of it by default)."""
        return self.tx_ring.get(len(self.tx_ring) if max_packets is None else max_packets)

    # close(): the rings keep their packets, so what was transmitted can still be drained
    # after the runtime stopped (they are the reader's to free).

def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    opts = dict(args)
    unknown = set(opts) - {"rx_ring", "tx_ring", "loopback", "size"}
    if unknown:
        raise PortError(f"port {cfg.name} ({cfg.device}): unknown argument(s) {sorted(unknown)}; "
                        "known: rx_ring, tx_ring, loopback, size")
    try:
        size = int(opts.get("size", "65536"))
        if size < 1:
            raise ValueError
    except ValueError:
        raise PortError(f"port {cfg.name} ({cfg.device}): size must be a positive integer, "
                        f"got {opts['size']!r}") from None
    not_applicable(cfg, "memory", ("rxd", "txd", "promiscuous", "multicast"), "in-process rings")
    for i, core in enumerate(cfg.cores):
        def named(key: str, default: str) -> Ring:
            if key in opts:
                return ring(opts[key] if len(cfg.cores) == 1 else f"{opts[key]}-{i}", size)
            return Ring(f"private:{cfg.name}:{default}:{i}", size)
        rx = named("rx_ring", "rx")
        tx = rx if opts.get("loopback") in ("1", "true", "yes") else named("tx_ring", "tx")
        port.queues[core] = MemoryQueue(port, core, i, rx, tx)


DRIVER = Driver("memory", r"net_(ring|memory)\d+", _open,
                process_local="use in-process rings (net_ring/net_memory), which cannot cross processes")
