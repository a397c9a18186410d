"""Ports and port queues: what pipelines receive from and transmit to.

A :class:`Port` is one configured device (``[[ports]]`` in the config) with one
:class:`PortQueue` per core that serves it, as in capsule: run-to-completion, queue ``i``
belongs to the port's ``i``-th core.  Drivers register the device names they handle
(``net_pcap0``, ``net_ring0``, ...); :func:`open_port` finds the driver for a config.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .. import _accel
from ..buffers import Mbuf, Mempool
from ..errors import NfkitError
from ..net import MacAddr

if TYPE_CHECKING:  # pragma: no cover
    from ..batch import SlotBatch
    from ..config import PortConfig

log = logging.getLogger("nfkit.ports")

__all__ = ["not_applicable", "PortError", "PortCounters", "PortQueue", "Port", "register_driver", "open_port",
           "known_drivers"]


class PortError(NfkitError):
    """A port cannot be opened or used (unknown device, bad arguments, missing file...)."""


@dataclass
class PortCounters:
    """Packet and octet counters of a queue (or, summed, of a port)."""

    rx_packets: int = 0
    rx_octets: int = 0
    tx_packets: int = 0
    tx_octets: int = 0
    rx_dropped: int = 0     #: received but not delivered (no buffer, oversize, damaged input)
    tx_dropped: int = 0     #: handed to transmit but not sent (and freed)
    rx_errors: int = 0
    tx_errors: int = 0

    def __iadd__(self, other: "PortCounters") -> "PortCounters":
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        return self

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class PortQueue:
    """One receive/transmit queue pair of a port, owned by one core.

    Drivers implement :meth:`_rx` and :meth:`_tx`; this class keeps the counters.
    ``transmit`` takes ownership of the buffers: what the driver does not send is freed
    and counted in ``tx_dropped`` -- never lost silently.
    """

    def __init__(self, port: "Port", core: int, index: int) -> None:
        self.port = port
        self.core = core
        self.index = index
        self.counters = PortCounters()

    @property
    def mac_addr(self) -> MacAddr:
        return self.port.mac_addr

    @property
    def pool(self) -> Mempool:
        return self.port.pool

    def receive(self, max_packets: int | None = None) -> list[Mbuf]:
        """Up to ``max_packets`` (default: the configured batch size) received packets."""
        mbufs = self._rx(max_packets or self.port.batch_size)
        if mbufs:
            c = self.counters
            c.rx_packets += len(mbufs)
            lens = self.pool._len_mv
            c.rx_octets += sum(lens[m.slot] for m in mbufs)
        return mbufs

    def receive_slots(self, max_packets: int | None = None) -> "SlotBatch":
        """Like :meth:`receive`, as slots of the port's pool (no Mbuf objects): what a
        pipeline that starts with a vector stage asks for."""
        from ..batch import SlotBatch
        slots = self._rx_slots(max_packets or self.port.batch_size)
        n = len(slots)
        if n:
            c = self.counters
            c.rx_packets += n
            c.rx_octets += _octets(self.pool, slots)
        return SlotBatch(self.pool, slots)

    def transmit_slots(self, pool: Mempool, slots: np.ndarray) -> None:
        """Like :meth:`transmit`, for slots of ``pool``."""
        n = len(slots)
        if not n:
            return
        octets = _octets(pool, slots)
        sent = self._tx_slots(pool, slots)
        c = self.counters
        c.tx_packets += sent
        c.tx_octets += octets if sent == n else _octets(pool, slots[:sent])
        if sent < n:
            c.tx_dropped += n - sent
            pool.free_slots(slots[sent:])

    def _rx_slots(self, max_packets: int) -> np.ndarray:
        return np.array([m.slot for m in self._rx(max_packets)], dtype=np.int64)

    def _tx_slots(self, pool: Mempool, slots: np.ndarray) -> int:
        return self._tx([Mbuf(pool, s) for s in slots.tolist()])

    def transmit(self, mbufs: list[Mbuf]) -> None:
        """Send ``mbufs`` (ownership passes to the queue)."""
        if not mbufs:
            return
        c = self.counters
        octets = 0
        for m in mbufs:
            octets += len(m)
        sent = self._tx(mbufs)
        if sent == len(mbufs):
            c.tx_packets += sent
            c.tx_octets += octets
            return
        # The driver sent the first `sent` buffers and kept them; free the rest.
        rest = mbufs[sent:]
        c.tx_packets += sent
        c.tx_octets += octets - sum(len(m) for m in rest)
        c.tx_dropped += len(rest)
        Mbuf.free_bulk(rest)

    # -- driver hooks ---------------------------------------------------------------------
    def _rx(self, max_packets: int) -> list[Mbuf]:
        return []

    def _tx(self, mbufs: list[Mbuf]) -> int:
        """Send buffers (taking ownership of those sent); return how many, from the front."""
        Mbuf.free_bulk(mbufs)
        return len(mbufs)

    @property
    def exhausted(self) -> bool:
        """True when this queue will never receive again (a finished pcap file)."""
        return False

    def close(self) -> None:
        """Flush and release what the queue holds (output files are complete after this)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.port.name} core {self.core} queue {self.index}>"


@dataclass
class Port:
    """A configured port: its queues (one per core), MAC address and counters."""

    name: str
    device: str
    args: str | None
    pool: Mempool
    batch_size: int
    mac_addr: MacAddr = field(default_factory=lambda: MacAddr("02:00:00:00:00:00"))
    queues: dict[int, PortQueue] = field(default_factory=dict)
    driver: str = ""
    #: where relative file names in the device arguments are taken from
    base_dir: Path | None = None

    def counters(self) -> PortCounters:
        total = PortCounters()
        for q in self.queues.values():
            total += q.counters
        return total

    def close(self) -> None:
        """Close every queue (flushing output files); errors are collected, not swallowed."""
        errors = []
        for q in self.queues.values():
            try:
                q.close()
            except Exception as exc:  # keep closing the others
                errors.append(exc)
        if errors:
            raise PortError(f"port {self.name}: closing failed: "
                            + "; ".join(f"{type(e).__name__}: {e}" for e in errors))

    @property
    def exhausted(self) -> bool:
        return all(q.exhausted for q in self.queues.values())


def _octets(pool: Mempool, slots: np.ndarray) -> int:
    """Bytes in the packets ``slots`` (before a transmit frees them)."""
    if _accel.AVAILABLE:
        return int(_accel.sum_lengths(pool.data_len, slots))
    return int(pool.data_len[slots].sum())


def not_applicable(cfg: "PortConfig", driver: str, fields: tuple[str, ...], why: str) -> None:
    """Say (once, at open) which configured fields a driver ignores, and why."""
    defaults = {k: f.default for k, f in type(cfg).model_fields.items()}
    for name in fields:
        if getattr(cfg, name) != defaults.get(name):
            log.warning("port %s (%s): %s = %r does not apply to %s; ignored", cfg.name,
                        cfg.device, name, getattr(cfg, name), why)


Opener = Callable[["PortConfig", Port, list[tuple[str, str]]], None]
_DRIVERS: list[tuple[re.Pattern[str], str, Opener]] = []


def register_driver(pattern: str, name: str, opener: Opener) -> None:
    """Register ``opener`` for devices whose name matches ``pattern`` (a regex).

    The opener fills ``port.queues`` (one queue per core of the config) and may set
    ``port.mac_addr``; it raises :class:`PortError` for bad arguments.
    """
    _DRIVERS.append((re.compile(pattern), name, opener))


def known_drivers() -> list[str]:
    return [f"{name} ({rx.pattern})" for rx, name, _ in _DRIVERS]


#: nfkit.ports modules that register drivers when imported
BUILTIN_DRIVER_MODULES = ("memory", "null", "pcap_port", "af_packet", "tap", "dpdk")


def _load_builtin_drivers() -> None:
    """Import the built-in driver modules (each registers itself); missing ones are skipped."""
    import importlib
    for mod in BUILTIN_DRIVER_MODULES:
        full = f"{__package__}.{mod}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                raise


def open_port(cfg: "PortConfig", pool: Mempool, batch_size: int, index: int = 0,
              base_dir: Path | None = None) -> Port:
    """Open the port a ``[[ports]]`` entry describes."""
    from ..config import parse_device_args
    _load_builtin_drivers()

    for rx, name, opener in _DRIVERS:
        if rx.fullmatch(cfg.device):
            port = Port(cfg.name, cfg.device, cfg.args, pool, batch_size, driver=name,
                        mac_addr=MacAddr(bytes([0x02, 0, 0, 0, 0, (index + 1) & 0xFF])),
                        base_dir=base_dir)
            opener(cfg, port, parse_device_args(cfg.args))
            return port
    raise PortError(f"port {cfg.name}: unknown device {cfg.device!r}; known drivers: "
                    + ", ".join(known_drivers())
                    + " (PCI devices, AF_PACKET, TAP and DPDK come with later releases)")
