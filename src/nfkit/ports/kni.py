"""capsule's KNI (``kni = true`` in a ``[[ports]]`` entry), made of a TAP interface.

capsule gives a port with ``kni = true`` a Kernel NIC Interface named after the port,
with the port's MAC address; nfkit gives it a TAP interface (same name, same MAC, brought
up; add an address yourself, as with capsule).  ``queue.kni()`` is the handle that sends
packets to the kernel (a pipeline sink, from any core); the packets the kernel sends are
polled by the pipeline ``runtime.add_kni_rx_pipeline_to_port(port, installer)`` installs,
``installer(kni_rx, queue)`` -- capsule's API and errors (:class:`KniDisabled`,
:class:`KniNotAcquired`).  Differences from capsule: no kernel module is needed; transmit to
the kernel writes at once instead of going through a channel and a TX pipeline; the kernel
may change the interface's MTU and MAC (capsule's KNI refuses); and the receive pipeline
runs on the port's *first* core, always (capsule picks one arbitrarily).

Any driver's port can have one: :func:`nfkit.ports.base.open_port` attaches it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .port import KniDisabled, KniError, KniNotAcquired, Port, PortCounters, PortQueue
from .tap import KniRx, KniTx, TapDevice

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig

__all__ = ["Kni", "KniRx", "KniTx", "KniError", "KniDisabled", "KniNotAcquired", "attach_kni"]

log = logging.getLogger("nfkit.ports.kni")

class Kni:
    """The kernel interface of a port with ``kni = true``: a TAP interface named after the
    port, with the port's MAC, brought up.  ``counters`` count what went to the kernel (tx)
    and came from it (rx).

    It has one queue, owned by the port's first core (``owner_core``): the kernel's packets
    are polled there only (a multi-queue TAP would spread them over queues nobody reads).
    In one process every core's queue can send to it; with one process per core, only the
    owner's process has it (``local`` is False elsewhere and :meth:`tx_for` says so).
    """

    def __init__(self, port: Port, owner_core: int, name: str | None = None) -> None:
        self.port = port
        self.owner_core = owner_core
        self.name = name or port.name
        self.who = f"port {port.name}: KNI {self.name}"
        self.local = port.serves(owner_core)
        self.fd = -1
        self.device: TapDevice | None = None
        if self.local:
            self.device = TapDevice(self.name, 1, f"port {port.name}: KNI", multi_queue=False)
            try:
                self.device.set_mac(port.mac_addr)
                self.device.set_up()
            except BaseException:
                self.device.close()
                raise
            self.fd = self.device.fds[0]
        self.counters = PortCounters()
        self.tx = KniTx(self)
        self._rx: KniRx | None = KniRx(self)

    def tx_for(self, queue: PortQueue) -> KniTx:
        """The transmit handle for ``queue`` (what :meth:`PortQueue.kni` returns)."""
        if not self.local:
            raise KniError(f"port {self.port.name}: the KNI belongs to the process of core "
                           f"{self.owner_core}; with one process per core, queue of core "
                           f"{queue.core} cannot send to it")
        return self.tx

    def take_rx(self) -> KniRx:
        """The receive handle, once (:class:`KniNotAcquired` the second time)."""
        if not self.local:
            raise KniError(f"port {self.port.name}: the KNI belongs to the process of core "
                           f"{self.owner_core}")
        rx, self._rx = self._rx, None
        if rx is None:
            raise KniNotAcquired(f"port {self.port.name}: the KNI receive handle is taken "
                                 "already (another core owns the handle)")
        return rx

    def close(self) -> None:
        self.fd = -1
        if self.device is not None:
            self.device.close()

    def __repr__(self) -> str:
        return f"<Kni {self.name} of port {self.port.name}>"


def attach_kni(port: Port, cfg: "PortConfig") -> Kni:
    """Give ``port`` its KNI (called by :func:`nfkit.ports.open_port` for ``kni = true``)."""
    kni = Kni(port, cfg.cores[0])
    port.kni = kni
    if kni.local:
        log.info("port %s: KNI %s (TAP) with mac %s", port.name, kni.name, port.mac_addr)
    return kni
