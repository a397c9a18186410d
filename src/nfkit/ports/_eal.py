"""capsule's mapping of a config to the DPDK EAL argv, next to the DPDK driver that uses it.

:func:`capsule_eal_args` is the mapping alone (what capsule passes to ``rte_eal_init``);
:func:`nfkit.ports.dpdk.eal_args` applies it to the ports that go through DPDK and adds what
nfkit needs (``--no-huge``, ``--no-pci``...).  The config itself keeps only the schema.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RuntimeConfig

__all__ = ["capsule_eal_args"]

# The whitespace Rust's split_ascii_whitespace splits dpdk_args on (no vertical tab).
_ASCII_WHITESPACE = re.compile(r"[ \t\n\x0c\r]+")


def capsule_eal_args(config: RuntimeConfig) -> list[str]:
    """The EAL argv of ``config``, in capsule's order, with DPDK 22.11 option names.

    1. ``app_name --proc-type primary|secondary --file-prefix <app_group or app_name>``
    2. per port, in order: ``-a <pci>`` for a PCI device (its ``args`` are not passed, as
       in capsule), else ``--vdev <device>[,<args>]``
    3. ``--main-lcore <master_core> -l <master_core>``: EAL only knows the main core; the
       runtime pins its other threads itself
    4. the ``dpdk_args`` tokens, split on ASCII whitespace (no shell quoting)

    capsule targeted DPDK 19.11; nfkit targets 22.11.  DPDK 20.11 renamed two of these
    options (the old names became deprecated; the PCI whitelist ones were removed in 21.11):

    ==============================  =========================
    capsule (DPDK 19.11)            nfkit (DPDK 22.11)
    ==============================  =========================
    ``--pci-whitelist <pci>``       ``-a <pci>`` (``--allow``)
    ``--master-lcore <n>``          ``--main-lcore <n>``
    ==============================  =========================

    Everything else is spelled as in capsule.  Option names inside ``dpdk_args`` are
    passed through untouched, so an old spelling there reaches DPDK as written.
    """
    argv = [config.app_name,
            "--proc-type", "secondary" if config.secondary else "primary",
            "--file-prefix", config.file_prefix]
    for port in config.ports:
        if port.is_pci:
            argv += ["-a", port.device]
        elif port.args:
            argv += ["--vdev", f"{port.device},{port.args}"]
        else:
            argv += ["--vdev", port.device]
    argv += ["--main-lcore", str(config.master_core), "-l", str(config.master_core)]
    if config.dpdk_args:
        argv += [token for token in _ASCII_WHITESPACE.split(config.dpdk_args) if token]
    return argv
