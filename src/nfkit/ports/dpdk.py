"""The DPDK backend: ports through DPDK 22.11's poll-mode drivers (PCI NICs and every
DPDK virtual device: ``net_pcap``, ``net_ring``, ``net_null``, ``net_af_packet``,
``net_tap``...), bound with cffi over a small C shim (``_dpdk_shim.c``).

Which ports go through DPDK is the config's ``backend`` (see :func:`nfkit.ports.base.open_port`):
``"auto"`` sends PCI addresses here and virtual devices to nfkit's own drivers, ``"dpdk"``
sends every port here, ``"native"`` none.

How it works, in capsule's order (capsule-0.1.5 sections 1.2 and 2.1):

1. :func:`prepare` (called by the runtime before any port opens) initialises EAL once per
   process with :func:`~nfkit.ports._eal.capsule_eal_args` of the DPDK ports -- app name,
   primary / secondary, file prefix, main core, ``-a`` for PCI and ``--vdev`` for virtual devices,
   ``dpdk_args`` last -- plus what nfkit adds: ``--no-huge -m <MiB>`` when no hugepages are
   mounted and free (logged), ``--no-pci`` when no DPDK port is a PCI device, and absolute
   paths for relative ``rx_pcap``/``tx_pcap`` files (nfkit takes them from the config's
   directory).  Then one ``rte_pktmbuf_pool_create`` of ``[mempool] capacity`` and
   ``cache_size``, 2048 + 128 bytes per buffer.
2. Each port: ``rte_eth_dev_get_port_by_name``, one RX/TX queue pair per core of the port
   (RSS over IP/TCP/UDP/SCTP when there are several), ``rxd``/``txd`` adjusted to the
   device, ``MBUF_FAST_FREE`` where offered, start, promiscuous and all-multicast as
   configured; the port's MAC comes from the device.
3. A receive burst is one C call: ``rte_eth_rx_burst``, each packet copied into a slot of
   the nfkit :class:`~nfkit.buffers.Mempool` (popped from its free stack in C), the
   rte_mbufs kept in the queue's stash (at most 512) for its next transmit, or freed.  A
   transmit is one C call: rte_mbufs from the stash or ``rte_pktmbuf_alloc_bulk``, copy
   from the nfkit slots, ``rte_eth_tx_burst`` (retried while the device takes some, as
   capsule does), unsent rte_mbufs freed, the nfkit slots freed.  No rte_mbuf is ever
   handed to the NF, so nothing an NF does (aborts, drops, exceptions) can leak one; the
   stashes are freed at close.  Why copy rather than zero-copy: docs/dpdk.md has the
   measurement.
4. The device's counters (``ipackets``, ``opackets``, ``ibytes``, ``obytes``, ``imissed``,
   ``ierrors``, ``oerrors``, ``rx_nombuf``) are :meth:`Port.hw_counters`; the drop and
   error ones are folded into the port's ``rx_dropped``/``rx_errors``/``tx_errors``.

Importing this module never fails: without DPDK, pkg-config, cffi or a compiler, opening
a DPDK port raises :class:`DpdkUnavailable` saying what to install.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..buffers import Mbuf, Mempool
from ..devargs import PCI_ADDRESS
from ..net import MacAddr
from ..slots import SlotBatch
from .port import Driver, Port, PortError, PortQueue, via_dpdk

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig, RuntimeConfig

__all__ = ["DpdkError", "DpdkUnavailable", "DpdkQueue", "DEVICE_PATTERN", "prepare", "eal_args",
           "hugepages_available", "eal_initialised", "mempool_in_use", "HW_COUNTERS"]

log = logging.getLogger("nfkit.ports.dpdk")

#: Devices the DPDK driver takes: PCI addresses and DPDK-style virtual device names.
DEVICE_PATTERN = PCI_ADDRESS.pattern + r"|net_[A-Za-z0-9_]+"

#: The device counters a DPDK port exposes (``rte_eth_stats``), in the shim's order.
HW_COUNTERS = ("ipackets", "opackets", "ibytes", "obytes", "imissed", "ierrors", "oerrors",
               "rx_nombuf")

#: rte_mbuf data room: RTE_MBUF_DEFAULT_BUF_SIZE (2048 + 128 headroom), as capsule.
MBUF_DATA_ROOM = 2048 + 128
#: Bytes an rte_mbuf costs in its pool (data room + struct rte_mbuf + mempool header/trailer,
#: rounded up), for sizing ``-m`` without hugepages.
_MBUF_FOOTPRINT = MBUF_DATA_ROOM + 128 + 128
#: Largest burst one shim call handles (the nfkit batch size is at most 4096).
_MAX_BURST = 4096

# devargs whose values are file names, made absolute from the config's directory.
_PATH_ARGS = {"rx_pcap", "tx_pcap"}
# EAL options that choose memory; when dpdk_args has one, nfkit adds none of its own.
_MEMORY_OPTS = ("--no-huge", "-m", "--socket-mem", "--huge-dir", "--legacy-mem")
_PCI_OPTS = ("-a", "--allow", "-b", "--block", "--no-pci", "--pci-whitelist", "--pci-blacklist",
             "-w")


class DpdkError(PortError):
    """EAL or a DPDK device failed; the message ends with DPDK's own log lines."""


class DpdkUnavailable(DpdkError):
    """DPDK (or cffi, pkg-config, a C compiler) is not installed: what to install."""


# ------------------------------------------------------------------------------------------
# EAL arguments (pure functions: testable without DPDK)
# ------------------------------------------------------------------------------------------

def hugepages_available() -> bool:
    """Whether a hugetlbfs is mounted and has free pages (else EAL runs with ``--no-huge``)."""
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        return False
    if not any(line.split()[2:3] == ["hugetlbfs"] for line in mounts.splitlines()):
        return False
    for d in Path("/sys/kernel/mm/hugepages").glob("hugepages-*"):
        try:
            if int((d / "free_hugepages").read_text()) > 0:
                return True
        except (OSError, ValueError):
            continue
    return False


def no_huge_megabytes(config: "RuntimeConfig", n_ports: int) -> int:
    """``-m`` for a ``--no-huge`` EAL: the mbuf pool plus room for EAL, rings and queues,
    rounded up to 64 MiB."""
    pool = config.mempool.capacity * _MBUF_FOOTPRINT
    need = pool + (128 << 20) + n_ports * (8 << 20)
    mib = -(-need // (1 << 20))
    return max(256, -(-mib // 64) * 64)


def _absolute_args(args: str | None, base_dir: Path | None) -> str | None:
    """``args`` with relative ``rx_pcap``/``tx_pcap`` file names made absolute from
    ``base_dir`` (nfkit's rule; DPDK would take them from the working directory)."""
    if not args or base_dir is None:
        return args
    from ..config import parse_device_args
    out = []
    for key, value in parse_device_args(args):
        if key in _PATH_ARGS and not os.path.isabs(value):
            value = str(base_dir / value)
        out.append(f"{key}={value}")
    return ",".join(out)


def _dpdk_port_configs(config: "RuntimeConfig") -> list["PortConfig"]:
    """The ports ``config``'s ``backend`` sends to DPDK (the registry's rule, :func:`via_dpdk`,
    for callers without a port plan)."""
    return [p for p in config.ports
            if via_dpdk(p.device, config.backend) and re.fullmatch(DEVICE_PATTERN, p.device)]


def eal_args(config: "RuntimeConfig", ports: list["PortConfig"] | None = None,
             hugepages: bool | None = None) -> tuple[list[str], list[str]]:
    """The EAL argv for ``config``'s DPDK ports (``ports``; default: the ones its
    ``backend`` sends to DPDK), and what nfkit added to capsule's mapping (for the log).

    capsule's mapping is :func:`~nfkit.ports._eal.capsule_eal_args` of a copy of the config holding
    only those ports (native ones must not be created a second time inside DPDK).
    """
    if ports is None:
        ports = _dpdk_port_configs(config)
    base_dir = config.base_dir
    fixed = [p.model_copy(update={"args": _absolute_args(p.args, base_dir)}) if not p.is_pci
             else p for p in ports]
    sub = config.model_copy(update={"ports": fixed})
    from ._eal import capsule_eal_args
    argv = capsule_eal_args(sub)
    user = argv[argv.index("-l") + 2:]          # the dpdk_args tokens
    head = argv[:argv.index("-l") + 2]
    added: list[str] = []

    def has(opts: tuple[str, ...]) -> bool:
        """Whether dpdk_args has one of ``opts`` (``--opt``, ``--opt=v``, ``-m``, ``-m512``)."""
        return any(t == o or t.startswith(o + "=") or (len(o) == 2 and t.startswith(o))
                   for t in user for o in opts)
    if not has(_MEMORY_OPTS):
        if hugepages is None:
            hugepages = hugepages_available()
        if not hugepages:
            added += ["--no-huge", "-m", str(no_huge_megabytes(config, len(ports)))]
    if not any(p.is_pci for p in ports) and not has(_PCI_OPTS):
        added.append("--no-pci")
    return head + added + user, added


# ------------------------------------------------------------------------------------------
# EAL state (one per process)
# ------------------------------------------------------------------------------------------

@dataclass
class _Eal:
    ffi: Any = None
    lib: Any = None
    argv: list[str] = field(default_factory=list)
    vdevs: set[str] = field(default_factory=set)   # devices EAL was asked to create
    mp: Any = None                                 # the rte_mempool
    devices: dict[int, "_Device"] = field(default_factory=dict)
    failed: str | None = None
    keep: list[Any] = field(default_factory=list)  # cffi objects EAL may still point to
    pid: int = field(default_factory=os.getpid)    # the process that owns this EAL


_eal: _Eal | None = None


def _load() -> tuple[Any, Any]:
    from ._dpdk_build import DpdkBuildError, UnsafeCacheError, load
    try:
        return load()
    except UnsafeCacheError as exc:      # installed, but its cache cannot be trusted
        raise DpdkError(f"DPDK ports: {exc}") from None
    except DpdkBuildError as exc:
        raise DpdkUnavailable(f"DPDK ports are not available: {exc}") from None


def _log_tail(lib: Any, ffi: Any, lines: int = 12) -> str:
    buf = ffi.new("char[]", 8192)
    lib.nfk_log_tail(buf, 8192)
    text = ffi.string(buf).decode(errors="replace").strip().splitlines()
    return "\n".join("  DPDK: " + line for line in text[-lines:])


def eal_initialised() -> bool:
    """Whether this process's EAL is up (it can be initialised only once per process)."""
    return _eal is not None and _eal.failed is None


def prepare(config: "RuntimeConfig", ports: list["PortConfig"] | None = None) -> None:
    """Initialise EAL and the DPDK mbuf pool for ``config`` when any of its ports goes
    through DPDK (the runtime calls this before opening ports, with the ports its plan sends
    to DPDK; default: :func:`_dpdk_port_configs`); a no-op otherwise."""
    if ports is None:
        ports = _dpdk_port_configs(config)
    if ports:
        _init(config, ports)


def _init(config: "RuntimeConfig", ports: list["PortConfig"]) -> _Eal:
    global _eal
    if _eal is not None:
        if _eal.failed is not None:
            raise DpdkError(f"EAL initialisation failed earlier in this process and cannot be "
                            f"retried (DPDK allows one per process):\n{_eal.failed}")
        return _eal
    ffi, lib = _load()
    argv, added = eal_args(config, ports)
    st = _Eal(ffi=ffi, lib=lib, argv=argv)
    st.vdevs = {p.device for p in ports if not p.is_pci}
    lib.nfk_log_capture(1)
    lib.nfk_log_clear()
    if "--no-huge" in added:
        log.info("no free hugepages mounted: EAL runs with --no-huge -m %s "
                 "(see docs/dpdk.md to use hugepages)", added[added.index("-m") + 1])
    log.info("EAL: %s", " ".join(argv))
    cargs = [ffi.new("char[]", a.encode()) for a in argv]
    cargv = ffi.new("char *[]", cargs)
    st.keep += [*cargs, cargv]
    ret = lib.nfk_eal_init(len(cargs), cargv)
    if ret < 0:
        err = lib.nfk_errno()
        st.failed = (f"rte_eal_init({' '.join(argv)}) failed: "
                     f"{ffi.string(lib.nfk_strerror(err)).decode()} (rte_errno {err})\n"
                     f"{_log_tail(lib, ffi)}")
        _eal = st
        raise DpdkError(st.failed)
    _eal = st
    atexit.register(_shutdown)
    mp = lib.nfk_pool_create(b"nfkit_mbufs", config.mempool.capacity,
                             config.mempool.cache_size, MBUF_DATA_ROOM, -1)
    if mp == ffi.NULL:
        err = lib.nfk_errno()
        st.failed = (f"rte_pktmbuf_pool_create({config.mempool.capacity} mbufs, cache "
                     f"{config.mempool.cache_size}) failed: "
                     f"{ffi.string(lib.nfk_strerror(err)).decode()}; lower [mempool] capacity "
                     "or give EAL more memory (dpdk_args = \"-m <MiB>\" or hugepages)\n"
                     + _log_tail(lib, ffi))
        raise DpdkError(st.failed)
    st.mp = mp
    return st


def _shutdown() -> None:
    """At exit: close what is still open, then rte_eal_cleanup (capsule's Drop order)."""
    st = _eal
    if st is None or st.failed is not None or st.pid != os.getpid():
        return
    for dev in list(st.devices.values()):
        try:
            dev.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass
    if st.mp is not None:
        st.lib.nfk_pool_free(st.mp)
        st.mp = None
    st.lib.nfk_eal_cleanup()


def mempool_in_use() -> int | None:
    """rte_mbufs currently allocated from the DPDK pool (None before EAL): what leak checks
    look at.  Between calls nfkit holds only its queues' stashes (``DpdkQueue.stashed``,
    at most 512 each); the PMDs hold what is in their rings.  0 once every port is closed."""
    if not eal_initialised() or _eal is None or _eal.mp is None:
        return None
    return int(_eal.lib.nfk_pool_in_use(_eal.mp))


# ------------------------------------------------------------------------------------------
# Devices and queues
# ------------------------------------------------------------------------------------------

def _pci_name(device: str) -> str:
    """DPDK names a PCI port by its full address, domain included, lower case."""
    d = device.lower()
    return d if re.match(r"[0-9a-f]{4}:", d) else "0000:" + d


class _Device:
    """One started DPDK port: its id, the nfkit pool views and the counter snapshot."""

    def __init__(self, st: _Eal, port_id: int, name: str, nq: int, vdev: bool) -> None:
        self.st = st
        self.vdev = vdev
        self.port_id = port_id
        self.name = name
        self.open_queues = nq
        self.closed = False
        self._final: dict[str, int] | None = None
        self._views: dict[int, tuple[Mempool, Any]] = {}
        self.stashes: list[Any] = []      # the queues' nfk_stash, freed before closing
        self._keep: list[np.ndarray] = []  # arrays the C views point into
        self._stats = st.ffi.new("uint64_t[8]")

    def view(self, pool: Mempool) -> Any:
        """The C view of an nfkit pool (pointers into its numpy arrays), cached per pool."""
        v = self._views.get(id(pool))
        if v is not None and v[0] is pool:
            return v[1]
        ffi = self.st.ffi
        pv = ffi.new("struct nfk_pool_view *")
        keep = []

        def ptr(ctype: str, arr: np.ndarray) -> Any:
            assert arr.flags.c_contiguous
            keep.append(arr)
            return ffi.cast(ctype, arr.ctypes.data)
        pv.data = ptr("uint8_t *", pool.data)
        pv.stride = pool.stride
        pv.headroom = pool.headroom
        pv.capacity = pool.capacity
        pv.data_off = ptr("uint32_t *", pool.data_off)
        pv.data_len = ptr("uint32_t *", pool.data_len)
        pv.refcnt = ptr("uint8_t *", pool.refcnt)
        pv.free_stack = ptr("int32_t *", pool._free)
        pv.timestamp = ptr("uint64_t *", pool.timestamp)
        pv.port = ptr("uint16_t *", pool.port)
        pv.rss_hash = ptr("uint32_t *", pool.rss_hash)
        for dtype, arr in ((np.uint32, pool.data_off), (np.uint32, pool.data_len),
                           (np.uint8, pool.refcnt), (np.int32, pool._free),
                           (np.uint64, pool.timestamp), (np.uint16, pool.port),
                           (np.uint32, pool.rss_hash)):
            assert arr.dtype == dtype, "nfkit Mempool layout changed; update _dpdk_shim.h"
        self._views[id(pool)] = (pool, pv)
        self._keep += keep
        return pv

    def stats(self) -> dict[str, int]:
        """The device's counters (after close: their last values)."""
        if self._final is not None:
            return dict(self._final)
        if self.st.lib.nfk_port_stats(self.port_id, self._stats) != 0:
            return {k: 0 for k in HW_COUNTERS}
        return dict(zip(HW_COUNTERS, (int(x) for x in self._stats)))

    def queue_closed(self) -> None:
        self.open_queues -= 1
        if self.open_queues <= 0:
            self.close()

    def close(self) -> None:
        """Snapshot the counters, stop and close the device (idempotent)."""
        if self.closed:
            return
        self._final = self.stats()
        self.closed = True
        for stash in self.stashes:
            self.st.lib.nfk_stash_free(stash)
        self.st.devices.pop(self.port_id, None)
        ret = self.st.lib.nfk_port_close(self.port_id)
        if ret != 0:
            log.warning("DPDK port %s: close returned %d", self.name, ret)
        if self.vdev:
            # Remove the virtual device too, so a later runtime in this process can create
            # it again (with its arguments then) instead of finding a closed one.
            self.st.lib.nfk_vdev_remove(self.name.encode())
            self.st.vdevs.discard(self.name)


class DpdkQueue(PortQueue):
    """One RX/TX queue pair of a DPDK port, owned by one core."""

    def __init__(self, port: Port, core: int, index: int, dev: _Device,
                 file_source: bool) -> None:
        super().__init__(port, core, index)
        self.dev = dev
        st = dev.st
        self._lib = st.lib
        self._ffi = st.ffi
        self._mp = st.mp
        self._pid = dev.port_id
        self._qid = index
        self._out = np.empty(_MAX_BURST, dtype=np.int32)
        self._out_c = st.ffi.from_buffer("int32_t[]", self._out)
        self._extra = st.ffi.new("struct nfk_rx_extra *")
        self._tx_extra = st.ffi.new("struct nfk_tx_extra *")
        #: received rte_mbufs kept for the next transmit (at most 512; freed at close)
        self._stash = st.ffi.new("struct nfk_stash *")
        dev.stashes.append(self._stash)
        self._oversize_seen = 0
        self._rx_view = dev.view(port.pool)
        self._rx_pool = port.pool
        self.is_file_source = file_source
        self._exhausted = False
        self._closed = False
        self._tx_failures = 0

    # -- receive ------------------------------------------------------------------------
    def _rx_slots(self, max_packets: int) -> np.ndarray:
        pool = self._rx_pool
        top = pool._top
        if top == 0 or self._closed:
            return self._out[:0].copy()
        n = max_packets if max_packets < _MAX_BURST else _MAX_BURST
        k = self._lib.nfk_rx(self._pid, self._qid, self._rx_view, top, self._out_c, n,
                             self._pid, self._extra, self._mp, self._stash)
        if k:
            pool._top = top - k
        elif self.is_file_source:
            self._exhausted = True   # the pcap PMD reads its file inside rx_burst: 0 is EOF
        over = self._extra.oversize
        if over != self._oversize_seen:
            self.counters.rx_dropped += over - self._oversize_seen
            self._oversize_seen = over
        return self._out[:k].copy()

    def _rx(self, max_packets: int) -> list[Mbuf]:
        pool = self._rx_pool
        return [Mbuf(pool, s) for s in self._rx_slots(max_packets).tolist()]

    def receive_slots(self, max_packets: int | None = None) -> "SlotBatch":
        """One shim call; the octets come from C (no second pass over the lengths)."""
        slots = self._rx_slots(self.port.batch_size if max_packets is None else max_packets)
        n = len(slots)
        if n:
            c = self.counters
            c.rx_packets += n
            c.rx_octets += self._extra.octets
        return SlotBatch(self._rx_pool, slots)

    # -- transmit -----------------------------------------------------------------------
    def _send(self, pool: Mempool, slots: np.ndarray, free_unsent: bool) -> int:
        """The shim's transmit; nfkit slots of sent packets (and, with ``free_unsent``,
        of the others) go back to ``pool`` in the same call."""
        s = slots if (slots.dtype == np.int32 and slots.flags.c_contiguous) \
            else np.ascontiguousarray(slots, dtype=np.int32)
        n = len(s)
        view = self._rx_view if pool is self._rx_pool else self.dev.view(pool)
        x = self._tx_extra
        sent = self._lib.nfk_tx(self._pid, self._qid, self._mp, view,
                                self._ffi.from_buffer("int32_t[]", s), n, pool._top,
                                int(free_unsent), x, self._stash)
        if sent == -2:   # a slot not allocated or listed twice: nothing was done
            pool.free_slots(s)   # raises DoubleFree, saying which
            raise AssertionError("nfk_tx refused slots that free_slots accepts")
        pool._top = x.top
        if sent < n and not self._closed:
            self._tx_failures += 1
            if self._tx_failures == 1:
                log.warning("port %s: the device took %d of %d packets (full TX ring or "
                            "DPDK mbuf pool exhausted); the rest are dropped and counted",
                            self.port.name, sent, n)
        return sent

    def transmit_slots(self, pool: Mempool, slots: np.ndarray) -> None:
        """One shim call: copy, send, free every nfkit slot, count."""
        n = len(slots)
        if not n:
            return
        if self._closed:
            pool.free_slots(slots)
            self.counters.tx_dropped += n
            return
        sent = self._send(pool, slots, True)
        c = self.counters
        c.tx_packets += sent
        c.tx_octets += self._tx_extra.octets
        if sent < n:
            c.tx_dropped += n - sent

    def _tx_slots(self, pool: Mempool, slots: np.ndarray) -> int:
        """The base contract (for :meth:`transmit`): unsent slots stay the caller's."""
        if self._closed or not len(slots):
            return 0
        return self._send(pool, slots, False)

    def _tx(self, mbufs: list[Mbuf]) -> int:
        sent = 0
        i = 0
        n = len(mbufs)
        while i < n:                     # runs of one pool (usually the whole burst)
            pool = mbufs[i].pool
            j = i + 1
            while j < n and mbufs[j].pool is pool:
                j += 1
            run = np.fromiter((m.slot for m in mbufs[i:j]), dtype=np.int32, count=j - i)
            s = self._tx_slots(pool, run)
            sent += s
            if s < j - i:
                break
            i = j
        return sent

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    @property
    def stashed(self) -> int:
        """rte_mbufs this queue keeps for its next transmit (see ``struct nfk_stash``)."""
        return int(self._stash.n)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lib.nfk_stash_free(self._stash)
            self.dev.queue_closed()


def _lazy_config(cfg: "PortConfig", port: Port) -> "RuntimeConfig":
    """A config for EAL when a DPDK port is opened without the runtime's :func:`prepare`
    (scripts and tests calling :func:`open_port`): this port only, its first core as main."""
    from ..config import RuntimeConfig
    rc = RuntimeConfig(app_name=f"nfkit{os.getpid()}", master_core=cfg.cores[0], ports=[cfg],
                       mempool={"capacity": max(port.pool.capacity, 8191)})
    rc._base_dir = port.base_dir
    return rc


def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    st = _eal if eal_initialised() else _init(_lazy_config(cfg, port), [cfg])
    assert st is not None
    if st.pid != os.getpid():
        raise DpdkError(f"port {cfg.name} ({cfg.device}): DPDK ports are served by the process "
                        "that initialised EAL, not by a forked worker; run this config with "
                        '[workers] mode = "single"')
    ffi, lib = st.ffi, st.lib
    name = _pci_name(cfg.device) if cfg.is_pci else cfg.device
    where = f"port {cfg.name} ({cfg.device}{',' + cfg.args if cfg.args else ''})"
    pid = ffi.new("uint16_t *")
    lib.nfk_log_clear()
    if lib.nfk_port_by_name(name.encode(), pid) != 0 and not cfg.is_pci \
            and cfg.device not in st.vdevs:
        # Not created at EAL start (opened after it): hot-plug the virtual device.
        devargs = cfg.device + ("," + _absolute_args(cfg.args, port.base_dir)
                                if cfg.args else "")
        st.vdevs.add(cfg.device)
        if lib.nfk_dev_probe(devargs.encode()) != 0:
            raise DpdkError(f"{where}: DPDK could not create the device (bad device "
                            f"arguments?)\n{_log_tail(lib, ffi)}")
    if lib.nfk_port_by_name(name.encode(), pid) != 0:
        if cfg.is_pci:
            raise DpdkError(f"{where}: no DPDK port for PCI device {name}: it does not exist "
                            "or is not bound to a DPDK-compatible driver (vfio-pci, "
                            "uio_pci_generic; see dpdk-devbind.py --status)\n" + _log_tail(lib, ffi))
        raise DpdkError(f"{where}: DPDK could not create the device (bad device arguments, "
                        f"or an unknown driver?)\n{_log_tail(lib, ffi)}")
    port_id = int(pid[0])
    if port_id in st.devices:
        raise DpdkError(f"{where}: DPDK port {port_id} is already open")
    nq = len(cfg.cores)
    rxd = ffi.new("uint16_t *", min(cfg.rxd, 65535))
    txd = ffi.new("uint16_t *", min(cfg.txd, 65535))
    msg = ffi.new("char[]", 512)
    ret = lib.nfk_port_setup(port_id, nq, rxd, txd, st.mp, int(cfg.promiscuous),
                             int(cfg.multicast), msg, 512)
    if ret < 0:
        lib.nfk_port_close(port_id)
        if not cfg.is_pci:
            lib.nfk_vdev_remove(name.encode())
            st.vdevs.discard(cfg.device)
        raise DpdkError(f"{where}: {ffi.string(msg).decode()}\n{_log_tail(lib, ffi)}")
    # A device that cannot leave a mode it never had (virtual ones) is not worth a warning;
    # one that cannot enter a mode the config asked for is.
    for bit, mode, wanted in ((1, "promiscuous", cfg.promiscuous),
                              (2, "all-multicast", cfg.multicast)):
        if ret & bit:
            log.log(logging.WARNING if wanted else logging.DEBUG, "%s: the device cannot %s "
                    "%s mode", where, "enable" if wanted else "disable", mode)
    if (rxd[0], txd[0]) != (cfg.rxd, cfg.txd):
        log.info("%s: descriptors adjusted to the device: rxd %d -> %d, txd %d -> %d", where,
                 cfg.rxd, rxd[0], cfg.txd, txd[0])
    dev = _Device(st, port_id, name, nq, not cfg.is_pci)
    st.devices[port_id] = dev
    mac = ffi.new("uint8_t[6]")
    if lib.nfk_port_mac(port_id, mac) == 0:
        port.mac_addr = MacAddr(bytes(ffi.buffer(mac, 6)))
    drv = ffi.new("char[]", 64)
    lib.nfk_port_driver(port_id, drv, 64)
    #: the DPDK poll-mode driver behind the port (net_pcap, net_ixgbe...)
    port.pmd = ffi.string(drv).decode()  # type: ignore[attr-defined]
    opts = dict(args)
    file_source = (cfg.device.startswith("net_pcap") and "rx_pcap" in opts
                   and opts.get("infinite_rx", "0") in ("0", ""))
    port.hw_stats = dev.stats
    for i, core in enumerate(cfg.cores):
        port.queues[core] = DpdkQueue(port, core, i, dev, file_source)


def _open_typed(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    """:func:`_open`, with any unexpected failure (cffi, OS) still a typed error."""
    try:
        _open(cfg, port, args)
    except PortError:
        raise
    except Exception as exc:
        raise DpdkError(f"port {cfg.name} ({cfg.device}): {type(exc).__name__}: {exc}") from exc


DRIVER = Driver("dpdk", DEVICE_PATTERN, _open_typed, backend="dpdk", prepare=prepare,
                process_local="belong to the process that started DPDK's EAL")
