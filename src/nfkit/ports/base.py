"""The port registry: which driver serves a device, the port plan, and :func:`open_port`.

Every driver is one module of :mod:`nfkit.ports` that declares ``DRIVER = Driver(...)``
(:class:`~nfkit.ports.port.Driver`: name, device pattern, opener, process-local or not,
prepare); :data:`DRIVERS` lists them, and nothing else in nfkit names a driver.  A
``[[ports]]`` entry is resolved once, when the runtime is built, into a :class:`PortPlan`
(driver, parsed device arguments, cores, MAC, base directory); every process then opens
its queues from the plan with ``open_port(plan, pool, cores)``.  Adding a driver: one new
file plus one line here (docs/architecture.md, "Add a port driver").

The classes a driver builds on (:class:`Port`, :class:`PortQueue`, :class:`PortError`...)
live in :mod:`nfkit.ports.port` and are re-exported here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..buffers import Mempool
from ..net import MacAddr
from . import af_packet, af_xdp, dpdk, memory, null, pcap_port, tap
from .kni import attach_kni
from .port import (BACKENDS, Driver, KniDisabled, KniError, KniNotAcquired, Port, PortCounters,
                   PortError, PortQueue, not_applicable, via_dpdk)

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig, RuntimeConfig

log = logging.getLogger("nfkit.ports")

__all__ = ["DRIVERS", "PortPlan", "plan_port", "plan_ports", "open_port", "prepare_drivers",
           "driver_of", "uses_dpdk", "known_drivers", "Driver", "Port", "PortQueue",
           "PortCounters", "PortError", "KniError", "KniDisabled", "KniNotAcquired",
           "not_applicable", "BACKENDS"]

#: Every port driver, in the order a device name is tried: nfkit's own drivers, then DPDK
#: (its pattern takes any ``net_*`` name; the config's ``backend`` decides, :func:`via_dpdk`).
#: A new driver: its module declares ``DRIVER``; add it to the import above and here.
DRIVERS: tuple[Driver, ...] = (
    memory.DRIVER,
    null.DRIVER,
    pcap_port.DRIVER,
    af_packet.DRIVER,
    af_xdp.DRIVER,
    tap.DRIVER,
    dpdk.DRIVER,
)



def _driver_for(device: str, backend: str) -> Driver | None:
    """The driver that serves ``device`` under ``backend`` -- the one place a device name is
    matched against the drivers (once per ``[[ports]]`` entry: not a hot path; ``re``
    caches the compiled patterns)."""
    dpdk_ok = via_dpdk(device, backend)
    for d in DRIVERS:
        if (d.backend == "dpdk") == dpdk_ok and re.fullmatch(d.pattern, device):
            return d
    return None


@dataclass(frozen=True)
class PortPlan:
    """One ``[[ports]]`` entry, resolved: what every process needs to open its queues."""

    config: "PortConfig"
    driver: Driver
    #: ``config.args`` parsed (``(key, value)`` pairs, in order)
    args: tuple[tuple[str, str], ...]
    #: the entry's position in the config (queue labels, DPDK's default MACs)
    index: int
    batch_size: int
    #: the MAC a driver keeps unless the device has its own: ``02:00:00:00:00:<index + 1>``
    mac: MacAddr
    #: where relative file names in the device arguments are taken from
    base_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def cores(self) -> list[int]:
        return self.config.cores


def plan_port(cfg: "PortConfig", index: int = 0, batch_size: int = 32,
              base_dir: Path | None = None, backend: str = "auto") -> PortPlan:
    """Resolve one ``[[ports]]`` entry; :class:`PortError` names the known drivers when no
    driver serves its device."""
    from ..config import parse_device_args
    driver = _driver_for(cfg.device, backend)
    if driver is None:
        hint = ""
        if backend != "dpdk" and _driver_for(cfg.device, "dpdk") is not None:
            hint = (f' (backend = "{backend}": nfkit has no driver of its own for it; '
                    'backend = "dpdk" opens it through DPDK)')
        raise PortError(f"port {cfg.name}: unknown device {cfg.device!r}{hint}; known drivers: "
                        + ", ".join(known_drivers()))
    return PortPlan(cfg, driver, tuple(parse_device_args(cfg.args)), index, batch_size,
                    MacAddr(bytes([0x02, 0, 0, 0, 0, (index + 1) & 0xFF])), base_dir)


def plan_ports(config: "RuntimeConfig") -> list[PortPlan]:
    """Every ``[[ports]]`` entry of ``config``, resolved (in config order)."""
    return [plan_port(pc, i, config.batch_size, config.base_dir, config.backend)
            for i, pc in enumerate(config.ports)]


def prepare_drivers(config: "RuntimeConfig", plans: list[PortPlan]) -> None:
    """Run each planned driver's ``prepare`` once, before any port opens (DPDK's EAL, when
    some port goes through DPDK; nothing is imported or started otherwise)."""
    for d in DRIVERS:
        mine = [p.config for p in plans if p.driver is d]
        if mine and d.prepare is not None:
            d.prepare(config, mine)


def open_port(plan: "PortPlan | PortConfig", pool: Mempool, *args: Any, **kwargs: Any) -> Port:
    """Open a port's queues: ``open_port(plan, pool, cores=None, resume=False)``.

    ``cores``: open only the queues of these cores (a worker process opens its own; the
    others are opened by their own processes).  Drivers skip the other cores through
    :meth:`Port.serves`; queues a driver opened anyway are closed again here.
    ``resume``: a restarted worker reopens its queues (:attr:`Port.resume`).

    Scripts may pass a ``[[ports]]`` entry instead of a plan, as
    ``open_port(cfg, pool, batch_size, index=0, base_dir=None, cores=None, backend="auto",
    resume=False)``: it is planned first (:func:`plan_port`).
    """
    if isinstance(plan, PortPlan):
        return _open(plan, pool, *args, **kwargs)
    return _open_entry(plan, pool, *args, **kwargs)


def _open_entry(cfg: "PortConfig", pool: Mempool, batch_size: int, index: int = 0,
                base_dir: Path | None = None, cores: frozenset[int] | None = None,
                backend: str = "auto", resume: bool = False) -> Port:
    return _open(plan_port(cfg, index, batch_size, base_dir, backend), pool, cores, resume)


def _open(plan: PortPlan, pool: Mempool, cores: frozenset[int] | None = None,
          resume: bool = False) -> Port:
    cfg, driver = plan.config, plan.driver
    port = Port(cfg.name, cfg.device, cfg.args, pool, plan.batch_size, driver=driver.name,
                mac_addr=plan.mac, base_dir=plan.base_dir, only_cores=cores, resume=resume)
    driver.open(cfg, port, list(plan.args))
    foreign = [c for c in port.queues if not port.serves(c)]
    if foreign:
        log.warning("port %s: the %s driver opened queues for cores %s that another "
                    "process serves; closing them here", cfg.name, driver.name, foreign)
        for c in foreign:
            port.queues.pop(c).close()
    if cfg.kni:
        try:
            attach_kni(port, cfg)
        except BaseException:
            port.close()
            raise
    return port


def placeholder_port(plan: PortPlan, pool: Mempool) -> Port:
    """A process's view of a port it serves no queue of (other processes open the queues)."""
    cfg = plan.config
    return Port(cfg.name, cfg.device, cfg.args, pool, plan.batch_size, driver=plan.driver.name,
                mac_addr=plan.mac, base_dir=plan.base_dir, only_cores=frozenset())


def driver_of(device: str, backend: str = "auto") -> str | None:
    """The name of the driver that handles ``device`` under ``backend`` (None: no driver
    does)."""
    d = _driver_for(device, backend)
    return None if d is None else d.name


def uses_dpdk(device: str, backend: str = "auto") -> bool:
    """Whether ``device`` goes through DPDK under ``backend`` (so EAL must know it)."""
    d = _driver_for(device, backend)
    return d is not None and d.backend == "dpdk"


def known_drivers() -> list[str]:
    """Every driver with its device pattern, in the order they are tried."""
    return [f"{d.name} ({d.pattern})" for d in DRIVERS]


def _load_builtin_drivers() -> None:
    """Kept for scripts that imported the drivers before dropping privileges: the registry
    imports every driver module already."""
