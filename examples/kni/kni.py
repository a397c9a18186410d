"""kni: the port's packets go to the kernel, the kernel's packets go out of the port
(capsule's kni example).

With ``kni = true`` the port gets a kernel interface named after it (``kni0``, a TAP
interface with the port's MAC address).  Give it an address and the machine's own stack
answers on the port: ``ip addr add 10.0.0.1/24 dev kni0``.  Every second the packet
counts of both directions are logged (capsule prints its metrics).
"""

from __future__ import annotations

import logging

import nfkit

PORT = "kni0"
log = logging.getLogger("kni")


def to_kernel(q: nfkit.PortQueue) -> nfkit.Pipeline:
    """Everything the port receives goes to the kernel (capsule: ``splice(q, q.kni())``)."""
    return nfkit.splice(q, q.kni())


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port(PORT, to_kernel)
    # What the kernel sends out of kni0 leaves through the port (on the port's first core).
    runtime.add_kni_rx_pipeline_to_port(PORT, nfkit.splice)

    port = runtime.port(PORT)
    last: list[tuple[int, int]] = []

    def report() -> None:
        k = port.kni.counters if port.kni is not None else None
        if k is None:
            return
        now = (k.tx_packets, k.rx_packets)
        if not last or now != last[0]:
            log.info("port %s -> kernel %d packets (%d dropped); kernel -> port %d packets",
                     PORT, k.tx_packets, k.tx_dropped, k.rx_packets)
            last[:] = [now]

    runtime.add_periodic_task_to_core(runtime.config.master_core, report, 1.0)
