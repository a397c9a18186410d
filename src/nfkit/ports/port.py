"""What every port driver builds on: :class:`Port` (one ``[[ports]]`` entry) with one
:class:`PortQueue` per core that serves it, as in capsule (run-to-completion: queue ``i``
belongs to the port's ``i``-th core), their counters and errors, and the :class:`Driver`
record each driver module declares.

Drivers import this module only; the registry that lists them and opens ports is
:mod:`nfkit.ports.base` (docs/architecture.md, "Add a port driver").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .. import _accel
from ..buffers import Mbuf, Mempool
from ..devargs import is_pci_address
from ..errors import NfkitError
from ..net import MacAddr

if TYPE_CHECKING:  # pragma: no cover
    from ..slots import SlotBatch
    from ..config import PortConfig, RuntimeConfig
    from .kni import Kni, KniTx

log = logging.getLogger("nfkit.ports")

__all__ = ["PortError", "KniError", "KniDisabled", "KniNotAcquired", "PortCounters", "PortQueue",
           "Port", "Driver", "not_applicable"]


class PortError(NfkitError):
    """A port cannot be opened or used (unknown device, bad arguments, missing file...)."""


class KniError(PortError):
    """A KNI request the port cannot satisfy (capsule's ``KniError``)."""


class KniDisabled(KniError):
    """The port has no KNI: ``kni = true`` is not set in its ``[[ports]]`` entry."""


class KniNotAcquired(KniError):
    """The KNI receive handle was already taken (capsule: "Another core owns the handle")."""


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

    #: (packets, octets) the queue's output already held when a restarted worker reopened
    #: it (a driver that continues an output file sets it; see :mod:`nfkit.multicore`)
    resumed: tuple[int, int] = (0, 0)

    def __init__(self, port: "Port", core: int, index: int) -> None:
        self.port = port
        self.core = core
        self.index = index
        self.counters = PortCounters()

    @property
    def mac_addr(self) -> MacAddr:
        """The MAC address of the queue's port (the source of the frames an NF answers with)."""
        return self.port.mac_addr

    @property
    def pool(self) -> Mempool:
        """The mempool the queue's port receives into."""
        return self.port.pool

    def receive(self, max_packets: int | None = None) -> list[Mbuf]:
        """Up to ``max_packets`` (default: the configured batch size) received packets."""
        mbufs = self._rx(self.port.batch_size if max_packets is None else max_packets)
        if mbufs:
            c = self.counters
            c.rx_packets += len(mbufs)
            lens = self.pool._len_mv
            c.rx_octets += sum(lens[m.slot] for m in mbufs)
        return mbufs

    def receive_slots(self, max_packets: int | None = None) -> "SlotBatch":
        """Like :meth:`receive`, as slots of the port's pool (no Mbuf objects): what a
        pipeline that starts with a vector stage asks for."""
        from ..slots import SlotBatch
        slots = self._rx_slots(self.port.batch_size if max_packets is None else max_packets)
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

    def kni(self) -> "KniTx":
        """The handle that sends packets to the port's kernel interface (``kni = true``; see
        :mod:`nfkit.ports.kni`): a pipeline sink, e.g. ``splice(q, q.kni())``.  Raises
        :class:`KniDisabled` when the port has no KNI."""
        if self.port.kni is None:
            raise KniDisabled(f"KNI is not enabled for port {self.port.name} "
                              "(set kni = true in its [[ports]] entry)")
        return self.port.kni.tx_for(self)

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
    #: the cores this process opens queues for (None: all of the port's cores).  With one
    #: process per core each process opens only its own queues: a driver's opener skips a
    #: core for which :meth:`serves` is False (queue indexes stay those of the full config).
    only_cores: frozenset[int] | None = None
    #: the kernel interface of a port with ``kni = true`` (see :mod:`nfkit.ports.kni`)
    kni: "Kni | None" = None
    #: the device's own counters (DPDK ports: ``rte_eth_stats``), see :meth:`hw_counters`
    hw_stats: "Callable[[], dict[str, int]] | None" = None
    #: the queues are reopened by a restarted worker: drivers continue their output files
    #: instead of starting them afresh (see :mod:`nfkit.multicore`)
    resume: bool = False

    def hw_counters(self) -> dict[str, int]:
        """The device's hardware counters (``ipackets``, ``opackets``, ``ibytes``, ``obytes``,
        ``imissed``, ``ierrors``, ``oerrors``, ``rx_nombuf`` for a DPDK port); ``{}`` for
        drivers without any."""
        return self.hw_stats() if self.hw_stats is not None else {}

    def serves(self, core: int) -> bool:
        """Whether this process opens the queue of ``core`` (see ``only_cores``)."""
        return self.only_cores is None or core in self.only_cores

    def counters(self) -> PortCounters:
        total = PortCounters()
        for q in self.queues.values():
            total += q.counters
        if self.hw_stats is not None:
            # What only the device sees: packets it missed or had no buffer for, errors.
            hw = self.hw_stats()
            total.rx_dropped += hw.get("imissed", 0) + hw.get("rx_nombuf", 0)
            total.rx_errors += hw.get("ierrors", 0)
            total.tx_errors += hw.get("oerrors", 0)
        return total

    def close(self) -> None:
        """Close every queue (flushing output files); errors are collected, not swallowed."""
        errors = []
        for q in self.queues.values():
            try:
                q.close()
            except Exception as exc:  # keep closing the others
                errors.append(exc)
        if self.kni is not None:
            self.kni.close()
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


#: ``open(cfg, port, args)`` fills ``port.queues`` -- one queue per core of ``cfg.cores`` that
#: ``port.serves`` -- and may set ``port.mac_addr``; bad arguments raise :class:`PortError`.
#: ``args`` are ``cfg.args`` parsed once (``(key, value)`` pairs, see
#: :func:`nfkit.config.parse_device_args`).
Opener = Callable[["PortConfig", Port, list[tuple[str, str]]], None]
#: ``prepare(config, entries)``: once per process, before the first of ``entries`` (this
#: driver's ``[[ports]]``) opens -- DPDK's EAL learns its devices at initialisation.
Preparer = Callable[["RuntimeConfig", list["PortConfig"]], None]


@dataclass(frozen=True)
class Driver:
    """One port driver, declared once in its module (``DRIVER = Driver(...)``) and listed in
    :data:`nfkit.ports.base.DRIVERS`.  That record is all the runtime knows of a driver."""

    name: str
    #: the device names it handles (a regular expression matched against the whole name)
    pattern: str
    open: Opener
    #: why its queues cannot be used from another process ("" when they can): a config with
    #: such a port runs every core in one process (docs/runtime.md)
    process_local: str = ""
    prepare: Preparer | None = None
    #: "native" (nfkit's own) or "dpdk": the config's ``backend`` picks between them
    #: (:func:`via_dpdk`)
    backend: str = "native"


def int_device_arg(where: str, opts: dict[str, str], key: str, default: int,
                   check: Callable[[int], bool], what: str) -> int:
    """The integer device argument ``key`` of ``opts`` (decimal, or 0x/0o/0b), ``default``
    when absent; a :class:`PortError` starting with ``where`` (the port) naming the key, what
    was expected and what was given when it is not a number or ``check`` refuses it."""
    if key not in opts:
        return default
    try:
        value: int | None = int(opts[key], 0)
    except ValueError:
        value = None
    if value is None or not check(value):
        raise PortError(f"{where}: {key} must be {what}, got {opts[key]!r}")
    return value


def device_iface(where: str, device: str, prefix: str, opts: dict[str, str]) -> str:
    """The interface a kernel-socket port (``af_packet:IF``, ``af_xdp:IF``, or DPDK's
    ``iface=IF`` argument) works on: from the device name after ``prefix:`` or from ``iface``;
    a :class:`PortError` starting with ``where`` when neither or two different ones are given."""
    plain = device.partition(":")[2] if device.startswith(prefix + ":") else None
    iface = opts.get("iface")
    if plain and iface and iface != plain:
        raise PortError(f"{where}: iface={iface} contradicts the device name's interface "
                        f"{plain!r}; give one")
    iface = plain or iface
    if not iface:
        raise PortError(f"{where}: needs iface=IF (the interface), or the device form "
                        f"\"{prefix}:IF\"")
    return iface


def read_sys_net(iface: str, what: str) -> str | None:
    """``/sys/class/net/IFACE/WHAT`` stripped (``mtu``, ``address``...), None if unreadable."""
    try:
        with open(f"/sys/class/net/{iface}/{what}") as f:
            return f.read().strip()
    except OSError:
        return None


#: The config's ``backend`` values: which ports go through DPDK.
BACKENDS = ("auto", "dpdk", "native")


def via_dpdk(device: str, backend: str) -> bool:
    """Whether ``backend`` lets DPDK take ``device``: ``"auto"`` PCI addresses only (nfkit's
    own drivers serve the virtual devices), ``"dpdk"`` every device, ``"native"`` none."""
    if backend not in BACKENDS:
        raise PortError(f"unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    if backend == "auto":
        return is_pci_address(device)
    return backend == "dpdk"
