"""The AF_XDP port (``net_af_xdp<N>``, ``af_xdp:IF``): a live Linux interface through XDP
sockets whose packet memory (UMEM) is nfkit's mempool, DPDK's af_xdp PMD arguments.

Config forms::

    device = "net_af_xdp0"             # DPDK / capsule style
    args = "iface=veth0,start_queue=0,queue_count=2"
    device = "af_xdp:veth0"            # plain form (args may still tune it)

Device arguments (all but ``iface`` optional):

- ``iface=IF``: the interface (required in the ``net_af_xdp<N>`` form);
- ``start_queue=Q`` (default 0), ``queue_count=N`` (default: the number of the port's
  cores, which it must equal): the port's ``i``-th core serves the interface queue ``Q + i``;
- ``force_copy=1``: bind in copy mode even where the driver offers zero-copy (DPDK's name);
  ``zero_copy=1``: require zero-copy (fails where the driver has none); default: what the
  kernel gives, zero-copy first -- the mode each queue got is logged and in :attr:`AfXdpQueue.zero_copy`;
- ``xdp_mode=native|skb``: where the XDP program runs (default: native, else skb);
- ``busy_budget=N``: busy polling (``SO_PREFER_BUSY_POLL``, ``SO_BUSY_POLL`` 20 us and
  ``SO_BUSY_POLL_BUDGET`` N; default 0: off).

How it works: every queue is one XSK socket with its own UMEM registered over the whole
buffer memory of the port's mempool, so a frame's address is ``slot * stride + offset`` and a
slot of the pool can be handed to the kernel as it is.  Receive: fill-ring slots are
allocated from the pool (the ring is kept full), the kernel writes each frame into one (in
copy mode with one copy, in zero-copy mode straight from the NIC) at ``XDP_PACKET_HEADROOM``
(256 bytes) into the row, and the RX ring gives the slot back with ``data_off``/``data_len``
set -- no copy in nfkit.  Transmit: slots go on the TX ring by address and return to the pool
from the completion ring.  A burst is one C call each way (``_xdp_shim.c``: completion
reaping, fill refill, RX or TX ring, the ``recvfrom``/``sendto`` kick when ``need_wakeup``
asks).  A pool whose stride is a power of two (see :func:`pool_geometry`) uses aligned chunks;
any other stride (nfkit's default 2176) is registered in unaligned-chunk mode, which copy mode
takes everywhere (zero-copy drivers need chunks that do not cross a page: use
:func:`pool_geometry`).

The XDP program is libxdp's default XSK redirect program, loaded at the first socket and
detached with the last (libxdp).  A program someone else attached is never replaced: the
open fails and says which.  Counters: ``rx_dropped`` gains the kernel's ``rx_dropped`` and
``rx_ring_full``, ``rx_errors``/``tx_errors`` the invalid descriptors; every
``XDP_STATISTICS`` field is :meth:`Port.hw_counters`.  Frame accounting (frames in the
kernel's rings = filled - received + sent - completed) is checked at close, then every frame
the kernel held goes back to the pool.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..buffers import Mbuf, Mempool
from ..net import MacAddr
from .port import Driver, Port, PortError, PortQueue, device_iface, int_device_arg, read_sys_net

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig

__all__ = ["AfXdpQueue", "XdpUnavailable", "XDP_STATS", "XDP_PACKET_HEADROOM", "pool_geometry"]

log = logging.getLogger("nfkit.ports.af_xdp")

#: the kernel keeps this much in front of every received frame (include/uapi/linux/bpf.h)
XDP_PACKET_HEADROOM = 256
#: XDP_STATISTICS fields, in the shim's order, then the kicks (syscalls) the queue made
XDP_STATS = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
             "fill_ring_empty", "tx_ring_empty", "kicks")
# <linux/if_link.h>, <linux/if_xdp.h>
XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE = 2, 4
XDP_COPY, XDP_ZEROCOPY, XDP_USE_NEED_WAKEUP = 2, 4, 8
ATTACH_MODES = {1: "native", 2: "skb", 3: "hw"}
#: program names libxdp attaches itself: its XSK redirect program and its dispatcher
LIBXDP_PROGS = ("xsk_def_prog", "xdp_dispatcher")
ETH_HLEN = 14
_KNOWN_ARGS = ("iface", "start_queue", "queue_count", "force_copy", "zero_copy", "xdp_mode",
               "busy_budget")
#: a completion reap takes at most this many per call (the rest wait for the next burst)
_DONE_MAX = 4096
#: how long a full TX ring is retried before the rest of a burst is dropped (s), as AF_PACKET
TX_RETRY_S = 0.0005
#: how long a queue the kernel still releases (a socket of a killed process) is retried (s)
BUSY_RETRY_S = 2.0


class XdpUnavailable(PortError):
    """AF_XDP cannot be used here: libxdp/libbpf, cffi or a compiler is missing."""


def pool_geometry(mtu: int = 1500) -> tuple[int, int]:
    """``(headroom, buf_size)`` of a mempool made for AF_XDP ports: 4096-byte rows (aligned
    chunks, one page each, what zero-copy drivers want) with the kernel's 256-byte headroom.
    Any pool works in copy mode; this one also in zero-copy mode."""
    if mtu + ETH_HLEN + 4 > 4096 - XDP_PACKET_HEADROOM:
        raise PortError(f"an MTU of {mtu} does not fit a 4096-byte AF_XDP chunk")
    return XDP_PACKET_HEADROOM, 4096 - XDP_PACKET_HEADROOM


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _shim() -> tuple[Any, Any]:
    from . import _xdp_build
    try:
        return _xdp_build.load()
    except _xdp_build.XdpBuildError as exc:
        raise XdpUnavailable(f"AF_XDP is unavailable: {exc}") from None


class AfXdpQueue(PortQueue):
    """One queue: one XSK socket (RX, TX, fill and completion rings) on one interface queue."""

    def __init__(self, port: Port, core: int, index: int, iface: str, qid: int, handle: Any,
                 info: Any, sizes: tuple[int, int, int, int], max_len: int) -> None:
        super().__init__(port, core, index)
        self.ffi, self.lib = _shim()
        self.iface, self.qid = iface, qid
        self._h = handle
        self.zero_copy = bool(info.zero_copy)
        self.xdp_mode = ATTACH_MODES.get(int(info.attach_mode), "unknown")
        self.prog_id = int(info.prog_id)
        self.fill_size, self.comp_size, self.rx_size, self.tx_size = sizes
        self.max_len = max_len
        pool = self.pool
        #: 1 while the kernel holds the slot (fill/RX ring or TX/completion ring)
        self.owned = np.zeros(pool.capacity, dtype=np.uint8)
        self.in_fill = 0                     # given to the fill ring, not yet received
        self.in_tx = 0                       # put on the TX ring, not yet completed
        self._rx_out = np.empty(max(4096, self.rx_size), dtype=np.int32)
        self._done = np.empty(_DONE_MAX, dtype=np.int32)
        self._fill = np.empty(self.fill_size, dtype=np.int32)
        self._txbuf = np.empty(max(4096, self.tx_size), dtype=np.int32)
        self._u32 = self.ffi.new("uint32_t[2]")
        self._stats = self.ffi.new("uint64_t[7]")
        self._seen = np.zeros(7, dtype=np.uint64)
        self._polls = 0
        self._closed = False
        self._logged_oversize = False
        #: the AF_PACKET socket holding promiscuous / all-multicast membership (queue 0)
        self.member: socket.socket | None = None
        c = self._cptr
        self._p_rx, self._p_done, self._p_fill = c("int32_t *", self._rx_out), \
            c("int32_t *", self._done), c("int32_t *", self._fill)
        self._p_tx, self._p_owned = c("int32_t *", self._txbuf), c("uint8_t *", self.owned)
        self._p_off, self._p_len = c("uint32_t *", pool.data_off), c("uint32_t *", pool.data_len)
        self._rx_slots(0)                    # fill the fill ring now: nothing dropped at start

    def _cptr(self, ctype: str, arr: np.ndarray) -> Any:
        return self.ffi.cast(ctype, arr.ctypes.data)

    # -- receive ------------------------------------------------------------------------
    def _rx_slots(self, max_packets: int) -> np.ndarray:
        if self._closed:
            return _EMPTY
        self._polls += 1
        if self._polls & 1023 == 0:
            self.refresh_stats()
        pool = self.pool
        # Keep the fill ring full; refill in bursts of a quarter ring (fewer calls), never
        # taking the pool's last buffers (the NF needs some to build packets).
        k = self.fill_size - self.in_fill
        if k >= self.fill_size >> 2:
            k = min(k, pool.available - 64)
        else:
            k = 0
        if k > 0:
            self._fill[:k] = pool.alloc_slots(k)
        max_rx = min(max_packets, len(self._rx_out))
        u = self._u32
        n = self.lib.nx_rx(self._h, self._p_fill, max(k, 0), u, self._p_rx, max_rx, self._p_off,
                           self._p_len, self._p_done, _DONE_MAX if self.in_tx else 0, u + 1,
                           self._p_owned)
        nfilled, ndone = int(u[0]), int(u[1])
        if k > nfilled:
            pool.free_slots(self._fill[nfilled:k])
        self.in_fill += nfilled - n
        if ndone:
            self._completed(ndone)
        return self._rx_out[:n].copy() if n else _EMPTY

    def _rx(self, max_packets: int) -> list[Mbuf]:
        pool = self.pool
        return [Mbuf(pool, s) for s in self._rx_slots(max_packets).tolist()]

    def _completed(self, ndone: int) -> None:
        self.in_tx -= ndone
        self.pool.free_slots(self._done[:ndone])

    # -- transmit -----------------------------------------------------------------------
    def _tx_slots(self, pool: Mempool, slots: np.ndarray) -> int:
        if self._closed:
            return 0
        if pool is not self.pool:            # not in this UMEM: copy into slots that are
            return self._tx_foreign(pool, slots)
        # The TX ring full: the kernel (copy mode) sends on the kick, so retry while it
        # takes some, for at most TX_RETRY_S; what is left is dropped by the caller.
        total = len(slots)
        done = 0
        deadline = 0.0
        while done < total:
            sent, rejected = self._tx_burst(slots[done:total])
            done += sent
            if rejected:                     # [sent | rejected | untried]: rejected to the end
                rest = slots[done:]
                slots[done:] = np.concatenate((rest[rejected:], rest[:rejected]))
                total -= rejected
            if done >= total:
                break
            if not sent:
                now = time.monotonic()
                if not deadline:
                    deadline = now + TX_RETRY_S
                elif now >= deadline:
                    break
        return done

    def _tx_burst(self, slots: np.ndarray) -> tuple[int, int]:
        """One shim call: (sent, rejected); ``slots`` reordered [sent | rejected | untried]."""
        u = self._u32
        if slots.dtype == np.int32 and slots.flags.c_contiguous and slots.flags.writeable:
            # reordered in place by the shim: no copies (saves ~1.5 us per burst)
            n = len(slots)
            sent = self.lib.nx_tx(self._h, self.ffi.from_buffer("int32_t[]", slots), n,
                                  self._p_off, self._p_len, self.max_len, u, self._p_done,
                                  _DONE_MAX, u + 1, self._p_owned)
        else:
            n = min(len(slots), len(self._txbuf))
            self._txbuf[:n] = slots[:n]
            sent = self.lib.nx_tx(self._h, self._p_tx, n, self._p_off, self._p_len,
                                  self.max_len, u, self._p_done, _DONE_MAX, u + 1,
                                  self._p_owned)
            slots[:n] = self._txbuf[:n]
        rejected, ndone = int(u[0]), int(u[1])
        self.in_tx += sent
        if ndone:
            self._completed(ndone)
        if rejected:
            self._note_oversize(rejected)
        return sent, rejected

    def _tx(self, mbufs: list[Mbuf]) -> int:
        if not mbufs:
            return 0
        pool = mbufs[0].pool
        if any(m.pool is not pool for m in mbufs):   # mixed pools: one pool at a time
            sent = 0
            for m in mbufs:
                if self._tx([m]) == 0:
                    break
                sent += 1
            return sent
        slots = np.fromiter((m.slot for m in mbufs), dtype=np.int32, count=len(mbufs))
        sent = self._tx_slots(pool, slots)
        if sent < len(mbufs):
            by_slot = {m.slot: m for m in mbufs}
            mbufs[:] = [by_slot[s] for s in slots.tolist()]
        return sent

    def _tx_foreign(self, pool: Mempool, slots: np.ndarray) -> int:
        """Slots of another pool: copied into slots of this one (the only copy nfkit makes
        on this driver) and sent; ``slots`` is reordered like the copies, and the originals
        of the sent ones are freed (the caller frees the rest)."""
        mine = self.pool
        k = min(len(slots), mine.available - 64)
        if k <= 0:
            return 0
        own = mine.alloc_slots(k)
        room = mine.stride - mine.headroom
        for s, d in zip(slots[:k].tolist(), own.tolist()):
            length = int(pool.data_len[s])
            if length > room:                # longer than a chunk: rejected as oversize
                mine.data_len[d] = self.max_len + 1
                continue
            o = int(pool.data_off[s])
            mine.data[d, mine.headroom:mine.headroom + length] = pool.data[s, o:o + length]
            mine.data_len[d] = length
        index = {d: j for j, d in enumerate(own.tolist())}
        sent = self._tx_slots(mine, own)
        slots[:k] = slots[:k][[index[d] for d in own.tolist()]]
        mine.free_slots(own[sent:])
        pool.free_slots(slots[:sent])
        return sent

    def _note_oversize(self, k: int) -> None:
        if not self._logged_oversize:
            self._logged_oversize = True
            log.warning("port %s: %d packet(s) longer than %d bytes (the %s MTU + Ethernet "
                        "header, or the chunk) or shorter than an Ethernet header dropped",
                        self.port.name, k, self.max_len, self.iface)

    # -- counters and close -------------------------------------------------------------
    def xdp_stats(self) -> dict[str, int]:
        """The socket's ``XDP_STATISTICS`` (and kicks), as the kernel counts them."""
        if self._closed:
            return dict(zip(XDP_STATS, (int(v) for v in self._seen)))
        if self.lib.nx_stats(self._h, self._stats) != 0:
            return dict(zip(XDP_STATS, (int(v) for v in self._seen)))
        return {k: int(self._stats[i]) for i, k in enumerate(XDP_STATS)}

    def refresh_stats(self) -> None:
        """Fold the kernel's drop and error counts into the queue's counters."""
        now = np.array([self.xdp_stats()[k] for k in XDP_STATS], dtype=np.uint64)
        d = [int(x) for x in now - self._seen]
        self._seen = now
        c = self.counters
        c.rx_dropped += d[0] + d[3]
        c.rx_errors += d[1]
        c.tx_errors += d[2]

    def close(self) -> None:
        """Read the last counts, delete the socket and UMEM, check the frame accounting and
        give every frame the kernel held back to the pool."""
        if self._closed:
            return
        self.refresh_stats()
        self._closed = True
        self.lib.nx_close(self._h)
        self._h = None
        _drop_orphan(self.lib, self.ffi, self.iface, socket.if_nametoindex(self.iface)
                     if os.path.exists(f"/sys/class/net/{self.iface}") else 0,
                     f"port {self.port.name}")
        held = np.flatnonzero(self.owned).astype(np.int32)
        expected = self.in_fill + self.in_tx
        self.owned[:] = 0
        if len(held):
            self.pool.free_slots(held)
        self.in_fill = self.in_tx = 0
        if self.member is not None:
            self.member.close()
        if len(held) != expected:
            raise PortError(f"port {self.port.name} queue {self.qid}: frame accounting is off at "
                            f"close: the kernel held {len(held)} frames, the counts say "
                            f"{expected} (fill + RX + TX + completion)")


_EMPTY = np.empty(0, dtype=np.int32)


# -- opening ----------------------------------------------------------------------------

def _rx_queues(iface: str) -> int:
    try:
        return len([d for d in os.listdir(f"/sys/class/net/{iface}/queues") if d.startswith("rx-")])
    except OSError:
        return 0


def _check_program(lib: Any, ffi: Any, where: str, iface: str, ifindex: int) -> None:
    """Refuse an interface with an XDP program that libxdp did not attach (never replace
    someone else's program)."""
    pid = ffi.new("uint32_t *")
    name = ffi.new("char[32]")
    err = lib.nx_attached_prog(ifindex, pid, name, 32)
    if err == -errno.EPERM:
        raise PortError(f"{where}: querying XDP on {iface} needs root or CAP_NET_ADMIN + CAP_BPF")
    prog = ffi.string(name).decode(errors="replace")
    if pid[0] and prog not in LIBXDP_PROGS:
        raise PortError(f"{where}: {iface} already has an XDP program attached by someone else "
                        f"(id {pid[0]}, name {prog!r}); nfkit does not replace it.  Detach it "
                        f"first (`ip link set dev {iface} xdp off`, or `xdp-loader unload "
                        f"{iface} --all`) or use another interface")


def xsk_sockets(iface: str) -> list[int]:
    """The queues of ``iface`` with an AF_XDP socket in the XSK map of libxdp's program (any
    process), [] without that program.  The program itself tells: it is test-run as if a
    frame came in on each queue and redirects where a socket is.  (The kernel's socket
    diagnostics for AF_XDP, CONFIG_XDP_SOCKETS_DIAG, are often not built.)"""
    ffi, lib = _shim()
    ifindex = socket.if_nametoindex(iface)
    pid = ffi.new("uint32_t *")
    name = ffi.new("char[32]")
    if lib.nx_attached_prog(ifindex, pid, name, 32) or not pid[0] \
            or ffi.string(name).decode(errors="replace") != LIBXDP_PROGS[0]:
        return []
    nq = max(1, _rx_queues(iface))
    bound = np.zeros(nq, dtype=np.uint8)
    err = lib.nx_bound_queues(ifindex, pid[0], nq, ffi.cast("uint8_t *", bound.ctypes.data))
    if err < 0:
        raise OSError(-err, f"test-running the XDP program on {iface}: {os.strerror(-err)}")
    return np.flatnonzero(bound).tolist()


def _drop_orphan(lib: Any, ffi: Any, iface: str, ifindex: int, when: str) -> None:
    """Detach libxdp's XSK program from ``iface`` when no AF_XDP socket is bound to it any
    more: the one a killed process left behind (the kernel keeps a program attached over
    netlink until someone detaches it), or the one this process reused and libxdp does not
    detach because it did not load it.  A socket of any other process keeps it."""
    pid = ffi.new("uint32_t *")
    name = ffi.new("char[32]")
    if lib.nx_attached_prog(ifindex, pid, name, 32) or not pid[0]:
        return
    if ffi.string(name).decode(errors="replace") != LIBXDP_PROGS[0]:
        return
    nq = max(1, _rx_queues(iface))
    bound = np.zeros(nq, dtype=np.uint8)
    if lib.nx_bound_queues(ifindex, pid[0], nq, ffi.cast("uint8_t *", bound.ctypes.data)) != 0:
        return                               # in use, or cannot tell: leave it be
    if lib.nx_detach(ifindex, pid[0]) == 0:
        log.info("%s: detached libxdp's XSK program %d from %s (no socket used it any more)",
                 when, pid[0], iface)


def _open_error(where: str, iface: str, qid: int, nq: int, err: int, stage: int, bind: int) -> PortError:
    e = -err
    what = {1: "registering the UMEM", 2: "creating the XSK socket", 3: "setting busy polling"}.get(stage, "")
    if e in (errno.EPERM, errno.EACCES):
        return PortError(f"{where}: {what} on {iface} was refused: AF_XDP needs root or the "
                         "capabilities CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW (and CAP_IPC_LOCK "
                         "or a memlock limit that covers the mempool)")
    if e == errno.EINVAL and qid >= nq:
        return PortError(f"{where}: {iface} has no queue {qid} (it has {nq} receive queue(s)); "
                         "lower start_queue/queue_count or add queues (ethtool -L)")
    if e == errno.EOPNOTSUPP and bind & XDP_ZEROCOPY:
        return PortError(f"{where}: zero_copy=1 but the {iface} driver has no AF_XDP zero-copy "
                         "support; drop zero_copy (copy mode)")
    if e == errno.EBUSY:
        return PortError(f"{where}: {iface} queue {qid} is busy (another AF_XDP socket is bound "
                         "to it, or an XDP program is being changed)")
    if e == errno.EAFNOSUPPORT:
        return PortError(f"{where}: this kernel has no AF_XDP sockets (Linux >= 4.18 with "
                         "CONFIG_XDP_SOCKETS)")
    return PortError(f"{where}: {what} on {iface} queue {qid} failed: {os.strerror(e)} (errno {e})")


def _membership_socket(iface: str, ifindex: int, promisc: bool, allmulti: bool) -> socket.socket | None:
    """An AF_PACKET socket (bound with protocol 0: receives nothing) holding promiscuous /
    all-multicast membership; the kernel undoes it when the socket closes."""
    if not (promisc or allmulti):
        return None
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.bind((iface, 0))
        for on, kind in ((promisc, 1), (allmulti, 2)):   # PACKET_MR_PROMISC, _ALLMULTI
            if on:
                s.setsockopt(263, 1, struct.pack("iHH8s", ifindex, kind, 0, b""))
    except BaseException:
        s.close()
        raise
    return s


def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    where = f"port {cfg.name} ({cfg.device})"
    unknown = sorted({k for k, _ in args} - set(_KNOWN_ARGS))
    if unknown:
        raise PortError(f"{where}: unknown argument(s) {unknown}; the af_xdp driver accepts: "
                        f"{', '.join(_KNOWN_ARGS)}")
    opts = dict(args)
    iface = device_iface(where, cfg.device, "af_xdp", opts)
    ncores = len(cfg.cores)
    start = int_device_arg(where, opts, "start_queue", 0, lambda v: 0 <= v < 1 << 16, "0..65535")
    int_device_arg(where, opts, "queue_count", ncores, lambda v: v == ncores,
             f"the number of the port's cores ({ncores}): nfkit opens one queue per core")
    force_copy = int_device_arg(where, opts, "force_copy", 0, lambda v: v in (0, 1), "0 or 1")
    zero_copy = int_device_arg(where, opts, "zero_copy", 0, lambda v: v in (0, 1), "0 or 1")
    if force_copy and zero_copy:
        raise PortError(f"{where}: force_copy=1 and zero_copy=1 contradict each other")
    busy = int_device_arg(where, opts, "busy_budget", 0, lambda v: 0 <= v <= 1024, "0..1024")
    mode = opts.get("xdp_mode", "")
    if mode not in ("", "native", "skb"):
        raise PortError(f"{where}: xdp_mode must be native or skb, got {mode!r}")
    try:
        ifindex = socket.if_nametoindex(iface)
    except OSError:
        raise PortError(f"{where}: interface {iface!r} does not exist (in this network "
                        "namespace)") from None
    ffi, lib = _shim()
    pool = port.pool
    mtu = int(read_sys_net(iface, "mtu") or 1500)
    room = pool.stride - XDP_PACKET_HEADROOM
    if mtu + ETH_HLEN > room:
        raise PortError(f"{where}: the MTU of {iface} ({mtu}) does not fit a chunk: a pool row of "
                        f"{pool.stride} bytes holds {room} after the kernel's "
                        f"{XDP_PACKET_HEADROOM}-byte headroom; lower the MTU or make the pool's "
                        "buffers larger (af_xdp.pool_geometry)")
    if not 2048 <= pool.stride <= os.sysconf("SC_PAGE_SIZE"):
        raise PortError(f"{where}: AF_XDP needs pool rows of 2048 bytes to a page; this pool's "
                        f"are {pool.stride} (af_xdp.pool_geometry gives one that fits)")
    _drop_orphan(lib, ffi, iface, ifindex, f"port {cfg.name}")
    _check_program(lib, ffi, where, iface, ifindex)
    mac = read_sys_net(iface, "address")
    if mac and len(mac) == 17:
        port.mac_addr = MacAddr(mac)
    aligned = pool.stride & (pool.stride - 1) == 0
    rx_size = _pow2(max(cfg.rxd, 64))
    tx_size = _pow2(max(cfg.txd, 64))
    sizes = (2 * rx_size, tx_size, rx_size, tx_size)   # fill, completion, RX, TX
    xdp_flags = {"": 0, "native": XDP_FLAGS_DRV_MODE, "skb": XDP_FLAGS_SKB_MODE}[mode]
    bind = XDP_USE_NEED_WAKEUP | (XDP_COPY if force_copy else 0) | (XDP_ZEROCOPY if zero_copy else 0)
    area = ffi.cast("void *", pool.data.ctypes.data)
    nq = _rx_queues(iface)
    served = [(i, core) for i, core in enumerate(cfg.cores) if port.serves(core)]
    member = None
    try:
        try:
            member = _membership_socket(iface, ifindex, cfg.promiscuous, cfg.multicast) \
                if any(i == 0 for i, _ in served) else None
        except PermissionError:
            raise _open_error(where, iface, 0, nq, -errno.EPERM, 0, bind) from None
        for i, core in served:
            qid = start + i
            h = ffi.new("struct nx_queue **")
            info = ffi.new("struct nx_info *")
            stage = ffi.new("int *")
            deadline = time.monotonic() + BUSY_RETRY_S
            while True:
                err = lib.nx_open(h, iface.encode(), qid, area, pool.capacity * pool.stride,
                                  pool.stride, 0 if aligned else 1, sizes[0], sizes[1], sizes[2],
                                  sizes[3], xdp_flags, bind, busy, info, stage)
                # EBUSY: the queue is still bound to a socket the kernel releases in the
                # background (a killed process's: measured ~10-100 ms here); wait for it
                if err != -errno.EBUSY or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if err:
                raise _open_error(where, iface, qid, nq, err, stage[0], bind)
            q = AfXdpQueue(port, core, i, iface, qid, h[0], info,
                           sizes, min(mtu + ETH_HLEN + 4, room))
            port.queues[core] = q
            log.info("port %s: %s queue %d via AF_XDP, %s mode, XDP program %d (%s), %s chunks "
                     "of %d B; rings fill %d, completion %d, rx %d, tx %d", cfg.name, iface, qid,
                     "zero-copy" if q.zero_copy else "copy", q.prog_id, q.xdp_mode,
                     "aligned" if aligned else "unaligned", pool.stride, *sizes)
    except BaseException:
        for q in port.queues.values():
            try:
                q.close()
            except PortError:
                pass
        port.queues.clear()
        if member is not None:
            member.close()
        raise
    port.hw_stats = lambda: _sum_stats(port)
    if member is not None:                   # held for the port's life (see _membership_socket)
        first = port.queues[served[0][1]]
        assert isinstance(first, AfXdpQueue)
        first.member = member


def _sum_stats(port: Port) -> dict[str, int]:
    total = dict.fromkeys(XDP_STATS, 0)
    for q in port.queues.values():
        if isinstance(q, AfXdpQueue):
            for k, v in q.xdp_stats().items():
                total[k] += v
    return total


DRIVER = Driver("af_xdp", r"net_af_xdp\d+|af_xdp:[^\s/]{1,15}", _open)
