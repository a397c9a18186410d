"""skeleton: the smallest nfkit app (capsule's skeleton) -- no pipelines.

It shows the runtime's life cycle in the log: mempool, cores and ports initialised, a run
of ``duration`` seconds, then a clean shutdown.  Copy it to start a new NF.
"""

from __future__ import annotations

import logging

import nfkit

log = logging.getLogger("skeleton")


def main(runtime: nfkit.Runtime) -> None:
    log.info("skeleton: %d port(s), cores %s; add pipelines here", len(runtime.ports),
             runtime.config.all_cores())
