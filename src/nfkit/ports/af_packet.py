"""The AF_PACKET port (``net_af_packet<N>``, ``af_packet:IF``): a live Linux interface
through memory-mapped packet rings (PACKET_MMAP), DPDK's af_packet PMD arguments.

Config forms::

    device = "net_af_packet0"          # DPDK / capsule style
    args = "iface=veth0"
    device = "af_packet:veth0"         # plain form (args may still tune the rings)

Device arguments (all but ``iface`` optional; DPDK's names and meanings):

- ``iface=IF``: the interface (required in the ``net_af_packet<N>`` form);
- ``qpairs=N``: queue pairs; nfkit opens one queue per core of the port, so ``N`` must equal
  the number of ``cores`` when given;
- ``blocksz=B``: ring block size in bytes, a multiple of the page size (default 32768;
  DPDK's is 4096, nfkit's receive ring is TPACKET_V3, which packs many frames per block);
- ``framesz=F``: frame size in bytes, a multiple of 16 (default 2048): the largest packet a
  transmit frame holds is ``F - 32``;
- ``framecnt=N``: frames per ring (default: ``rxd`` for receive, ``txd`` for transmit);
- ``qdisc_bypass=0|1``: send past the interface's qdisc (default 1, as DPDK).

Receive: a TPACKET_V3 ring per queue; blocks the kernel hands over (``TP_STATUS_USER``) are
walked frame by frame and copied, one copy per packet, into mempool buffers; the block then
goes back to the kernel.  A block is handed over when full or after a ~2 ms timeout, which
bounds the latency at low rates.  The socket ignores outgoing frames (PACKET_IGNORE_OUTGOING),
so a port does not receive what it (or the host) sends.  Kernel drops (the ring was full)
are read from PACKET_STATISTICS into ``rx_dropped``; frames the kernel truncated or longer
than a mempool buffer are dropped and counted there too.

Transmit: a TPACKET_V2 ring per queue; a burst is copied into ring frames and one
``send()`` hands the whole burst to the kernel.  When the ring is full the queue retries
briefly, then counts the rest in ``tx_dropped``.  Packets longer than a frame (or than the
interface MTU plus the Ethernet header) are dropped and counted, never truncated.  If the
interface goes down, sends fail with ENETDOWN: counted in ``tx_errors`` / ``tx_dropped``, and
the queue recovers when the link comes back; receive just sees nothing meanwhile.

Several cores: one queue per core, each with its own sockets; the receive sockets join one
PACKET_FANOUT_HASH group (an id unique to the port), so every packet lands on exactly one
queue, flows stay on one queue.  ``promiscuous`` and ``multicast`` (all-multicast) are set
with PACKET_ADD_MEMBERSHIP and undone by the kernel when the port closes.

The per-burst work (walking frames, copying) runs in numba kernels when numba is installed
and as the same Python code otherwise (both are tested to agree).
"""

from __future__ import annotations

import errno
import gc
import logging
import mmap
import os
import socket
import struct
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import _accel
from ..buffers import Mbuf, Mempool
from ..net import MacAddr
from .port import Driver, Port, PortError, PortQueue, device_iface, int_device_arg, read_sys_net

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig

__all__ = ["AfPacketQueue", "RingGeometry", "ring_geometry"]

log = logging.getLogger("nfkit.ports.af_packet")

# <linux/if_packet.h>, <linux/if_ether.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_FANOUT = 18
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
PACKET_MR_PROMISC = 1
PACKET_MR_ALLMULTI = 2
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
TPACKET_V2 = 1
TPACKET_V3 = 2
TP_FT_REQ_FILL_RXHASH = 0x1
ETH_P_ALL = 0x0003
ETH_HLEN = 14

#: where a TPACKET_V2 transmit frame's packet starts (TPACKET2_HDRLEN - sizeof(sockaddr_ll))
TX_DATA_OFFSET = 32
#: receive block timeout (ms): a block that is not full is handed over after this long
BLOCK_TIMEOUT_MS = 2
#: how long a full transmit ring is retried before the rest of a burst is dropped (s)
TX_RETRY_S = 0.0005
PAGE = mmap.PAGESIZE

DEFAULT_BLOCKSZ = 32768
DEFAULT_FRAMESZ = 2048
_KNOWN_ARGS = ("iface", "qpairs", "blocksz", "framesz", "framecnt", "qdisc_bypass")


# -- the per-burst kernels --------------------------------------------------------------
# Plain Python over arrays (numpy arrays or memoryviews); compiled with numba when it is
# installed.  Offsets (tpacket_block_desc / tpacket3_hdr / tpacket2_hdr, in 32-bit words
# unless noted): block status 2, num_pkts 3, offset_to_first_pkt 4; frame next_offset 0,
# sec 1, nsec 2, snaplen 3, len 4, rxhash 7, tp_mac (16-bit word) 12, sll_pkttype (byte) 58.

def _rx_ready(r32: Any, st: Any, block_size: int, block_nr: int, max_packets: int) -> int:
    """How many frames can be taken now (at most ``max_packets``), from block headers only.

    ``st`` is the cursor ``[block, offset in block (0: not started), frames left]``.  Empty
    blocks the kernel closed on timeout are given back on the way.
    """
    n = 0
    b = st[0]
    for _ in range(block_nr):
        w = (b * block_size) >> 2
        if (r32[w + 2] & 1) == 0:            # TP_STATUS_USER not set: the kernel's
            break
        if b == st[0] and st[1] != 0:
            n += st[2]
        else:
            k = r32[w + 3]
            if k == 0 and b == st[0]:        # empty block (timeout): give it back
                r32[w + 2] = 0
                b = (b + 1) % block_nr
                st[0] = b
                continue
            n += k
        if n >= max_packets:
            return max_packets
        b = (b + 1) % block_nr
    return n


def _rx_take(r8: Any, r16: Any, r32: Any, st: Any, block_size: int, block_nr: int, n: int,
             slots: Any, data: Any, stride: int, headroom: int, buf_size: int, data_len: Any,
             timestamp: Any, rss_hash: Any) -> tuple[int, int]:
    """Walk ``n`` ready frames, copy each into ``slots[got]`` (flat pool ``data``), give
    finished blocks back.  Returns ``(got, dropped)``: outgoing frames are skipped, truncated
    or oversize ones dropped."""
    got = 0
    dropped = 0
    b = st[0]
    off = st[1]
    left = st[2]
    for _ in range(n):
        base = b * block_size
        while off == 0:                      # start the next block (ready said it is ours)
            left = r32[(base >> 2) + 3]
            if left == 0:                    # empty (closed on timeout): give it back
                r32[(base >> 2) + 2] = 0
                b = (b + 1) % block_nr
                base = b * block_size
            else:
                off = r32[(base >> 2) + 4]
        f = base + off
        w = f >> 2
        snap = r32[w + 3]
        if r8[f + 58] == 4:                  # PACKET_OUTGOING: what this host sent
            pass
        elif snap != r32[w + 4] or snap > buf_size:
            dropped += 1
        else:
            s = slots[got]
            mac = f + r16[(f >> 1) + 12]
            dst = s * stride + headroom
            data[dst:dst + snap] = r8[mac:mac + snap]
            data_len[s] = snap
            timestamp[s] = r32[w + 1] * 1000000000 + r32[w + 2]
            rss_hash[s] = r32[w + 7]
            got += 1
        left -= 1
        if left == 0:                        # block done: back to the kernel
            r32[(base >> 2) + 2] = 0
            b = (b + 1) % block_nr
            off = 0
        else:
            off += r32[w]
    st[0] = b
    st[1] = off
    st[2] = left
    return got, dropped


def _tx_fill(r8: Any, r32: Any, st: Any, frame_nr: int, fpb: int, block_size: int,
             frame_size: int, data: Any, stride: int, data_off: Any, data_len: Any,
             slots: Any, max_len: int) -> tuple[int, int]:
    """Copy packets ``slots`` into free transmit frames from ``st[0]`` on, marking them
    SEND_REQUEST.  Packets longer than ``max_len`` (+4 for a VLAN-tagged frame) or shorter
    than an Ethernet header are rejected.  ``slots`` is reordered in place to [accepted | rejected | not tried (ring
    full)]; returns ``(accepted, rejected)`` and advances ``st[0]``."""
    head = st[0]
    acc = 0
    rej = 0
    n = len(slots)
    rejected = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        s = slots[i]
        length = data_len[s]
        src = s * stride + data_off[s]
        if length > max_len or length < 14:
            tag = (data[src + 12] << 8) | data[src + 13] if length >= 14 else 0
            if length < 14 or length > max_len + 4 or (tag != 0x8100 and tag != 0x88A8):
                rejected[rej] = s
                rej += 1
                i += 1
                continue
        fb = (head // fpb) * block_size + (head % fpb) * frame_size
        if r32[fb >> 2] != 0:                # not TP_STATUS_AVAILABLE: the ring is full
            break
        r32[(fb >> 2) + 1] = length          # tp_len
        r8[fb + 32:fb + 32 + length] = data[src:src + length]
        r32[fb >> 2] = 1                     # TP_STATUS_SEND_REQUEST
        head = (head + 1) % frame_nr
        slots[acc] = s
        acc += 1
        i += 1
    for j in range(rej):
        slots[acc + j] = rejected[j]
    st[0] = head
    return acc, rej


def _tx_rollback(r32: Any, st: Any, first: int, count: int, frame_nr: int, fpb: int,
                 block_size: int, frame_size: int) -> int:
    """After a failed send: frames ``first .. first+count`` still waiting for the kernel
    (SEND_REQUEST) are made free again and the head moves back to the first of them (the
    kernel walks the ring in order, so they are a tail of the burst).  Returns how many."""
    k = 0
    for i in range(count):
        idx = (first + i) % frame_nr
        fb = (idx // fpb) * block_size + (idx % fpb) * frame_size
        if r32[fb >> 2] == 1:
            if k == 0:
                st[0] = idx
            r32[fb >> 2] = 0
            k += 1
    return k


if _accel.AVAILABLE:
    _jit = _accel.numba.njit(cache=True, nogil=True)
    _rx_ready_jit = _jit(_rx_ready)
    _rx_take_jit = _jit(_rx_take)
    _tx_fill_jit = _jit(_tx_fill)
    _tx_rollback_jit = _jit(_tx_rollback)
else:  # pragma: no cover
    _rx_ready_jit = _rx_take_jit = _tx_fill_jit = _tx_rollback_jit = None


# -- ring geometry ----------------------------------------------------------------------

@dataclass(frozen=True)
class RingGeometry:
    """One ring: ``block_nr`` blocks of ``block_size`` bytes, ``frame_size``-byte frames."""

    block_size: int
    block_nr: int
    frame_size: int

    @property
    def frames_per_block(self) -> int:
        return self.block_size // self.frame_size

    @property
    def frame_nr(self) -> int:
        return self.frames_per_block * self.block_nr

    @property
    def size(self) -> int:
        return self.block_size * self.block_nr


def ring_geometry(frames: int, block_size: int, frame_size: int, min_blocks: int = 1) -> RingGeometry:
    """The smallest ring of whole blocks holding ``frames`` frames (at least ``min_blocks``)."""
    fpb = block_size // frame_size
    return RingGeometry(block_size, max(min_blocks, -(-frames // fpb)), frame_size)


# -- the queue --------------------------------------------------------------------------

class AfPacketQueue(PortQueue):
    """One queue: a receive socket with a TPACKET_V3 ring and a transmit socket with a
    TPACKET_V2 ring, both mapped into this process."""

    def __init__(self, port: Port, core: int, index: int, iface: str, rx_sock: socket.socket,
                 rx_geo: RingGeometry, tx_sock: socket.socket, tx_geo: RingGeometry,
                 mtu: int, fanout_id: int | None = None, use_jit: bool | None = None) -> None:
        super().__init__(port, core, index)
        self.iface = iface
        #: the PACKET_FANOUT group of the port's receive sockets (None: one queue, no group)
        self.fanout_id = fanout_id
        self.rx_sock, self.tx_sock = rx_sock, tx_sock
        self.rx_geo, self.tx_geo = rx_geo, tx_geo
        self.mtu = mtu
        #: the longest packet a transmit frame takes: frame room, and MTU + Ethernet header
        self.max_tx_len = min(tx_geo.frame_size - TX_DATA_OFFSET, mtu + ETH_HLEN)
        self._rx_map = _map(rx_sock, rx_geo.size)
        self._tx_map = _map(tx_sock, tx_geo.size)
        self._rx_state = np.zeros(3, dtype=np.int64)
        self._tx_state = np.zeros(1, dtype=np.int64)
        self._polls = 0
        self._closed = False
        self._logged_oversize = False
        self.use_jit = _accel.AVAILABLE if use_jit is None else use_jit
        self._set_kernels()

    def _set_kernels(self) -> None:
        """Bind the compiled kernels over numpy views, or the Python ones over memoryviews
        (whose items are Python ints, much faster to index from Python than numpy's)."""
        pool = self.pool
        if self.use_jit:
            if not _accel.AVAILABLE:
                raise PortError(f"port {self.port.name}: numba is not installed")
            rx = np.frombuffer(self._rx_map, dtype=np.uint8)
            tx = np.frombuffer(self._tx_map, dtype=np.uint8)
            self._rx8, self._rx16, self._rx32 = rx, rx.view(np.uint16), rx.view(np.uint32)
            self._tx8, self._tx32 = tx, tx.view(np.uint32)
            self._data = pool.data.reshape(-1)
            self._lens, self._ts, self._hash = pool.data_len, pool.timestamp, pool.rss_hash
            self._offs = pool.data_off
            self._k_ready, self._k_take = _rx_ready_jit, _rx_take_jit
            self._k_fill, self._k_rollback = _tx_fill_jit, _tx_rollback_jit
        else:
            rx = memoryview(self._rx_map)
            tx = memoryview(self._tx_map)
            self._rx8, self._rx16, self._rx32 = rx, rx.cast("H"), rx.cast("I")
            self._tx8, self._tx32 = tx, tx.cast("I")
            self._data = pool._buf
            self._lens, self._offs = pool._len_mv, pool._off_mv
            self._ts, self._hash = pool._ts_mv, memoryview(pool.rss_hash)
            self._k_ready, self._k_take = _rx_ready, _rx_take
            self._k_fill, self._k_rollback = _tx_fill, _tx_rollback

    def _release_views(self) -> None:
        for name in ("_rx8", "_rx16", "_rx32", "_tx8", "_tx32", "_data", "_lens", "_ts",
                     "_hash", "_offs"):
            v = self.__dict__.pop(name, None)
            if isinstance(v, memoryview) and name in ("_rx8", "_rx16", "_rx32", "_tx8", "_tx32"):
                v.release()

    # -- receive ------------------------------------------------------------------------
    def _rx_slots(self, max_packets: int) -> np.ndarray:
        g = self.rx_geo
        st = self._rx_state
        self._polls += 1
        if self._closed:
            return _EMPTY
        n = self._k_ready(self._rx32, st, g.block_size, g.block_nr, max_packets)
        if not n:
            if self._polls & 63 == 0:
                self.refresh_stats()
            return _EMPTY
        if self._polls & 1023 == 0:
            self.refresh_stats()
        pool = self.pool
        if n > pool.available:
            n = pool.available              # the rest waits in the ring
            if not n:
                return _EMPTY
        slots = pool.alloc_slots(n)
        got, dropped = self._k_take(self._rx8, self._rx16, self._rx32, st, g.block_size,
                                    g.block_nr, n, slots, self._data, pool.stride,
                                    pool.headroom, pool.buf_size, self._lens, self._ts,
                                    self._hash)
        if got < n:
            pool.free_slots(slots[got:])
            slots = slots[:got]
            self.counters.rx_dropped += dropped
        return slots

    def _rx(self, max_packets: int) -> list[Mbuf]:
        pool = self.pool
        return [Mbuf(pool, s) for s in self._rx_slots(max_packets).tolist()]

    def refresh_stats(self) -> None:
        """Add the kernel's drop count (ring full) to ``rx_dropped`` (reading resets it)."""
        if self._closed:
            return
        try:
            raw = self.rx_sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        except OSError:
            return
        _packets, drops, _freeze = struct.unpack("III", raw)
        self.counters.rx_dropped += drops

    # -- transmit -----------------------------------------------------------------------
    def _tx_slots(self, pool: Mempool, slots: np.ndarray) -> int:
        if self._closed:
            return 0
        sent = self._send(pool, slots)       # reorders slots: the base frees slots[sent:]
        if sent:
            pool.free_slots(slots[:sent])
        return sent

    def _tx(self, mbufs: list[Mbuf]) -> int:
        if self._closed or not mbufs:
            return 0
        pool = mbufs[0].pool
        if all(m.pool is pool for m in mbufs):
            return self._tx_run(pool, mbufs)
        # Several pools (rare): runs of one pool, in order, until one is not fully sent.
        sent = i = 0
        while i < len(mbufs):
            p = mbufs[i].pool
            j = i
            while j < len(mbufs) and mbufs[j].pool is p:
                j += 1
            run = mbufs[i:j]
            k = self._tx_run(p, run)
            mbufs[i:j] = run
            sent += k
            if k < len(run):
                break
            i = j
        return sent

    def _tx_run(self, pool: Mempool, mbufs: list[Mbuf]) -> int:
        """Send Mbufs of one pool; reorders ``mbufs`` like the slots (sent ones first)."""
        slots = np.fromiter((m.slot for m in mbufs), dtype=np.int64, count=len(mbufs))
        sent = self._send(pool, slots)
        if sent < len(mbufs):
            by_slot = {m.slot: m for m in mbufs}
            mbufs[:] = [by_slot[s] for s in slots.tolist()]
        if sent:
            pool.free_slots(slots[:sent])
        return sent

    def _pool_arrays(self, pool: Mempool) -> tuple[Any, Any, Any]:
        """(flat data, data_off, data_len) of ``pool`` in the form the kernels take."""
        if pool is self.pool:
            return self._data, self._offs, self._lens
        if self.use_jit:
            return pool.data.reshape(-1), pool.data_off, pool.data_len
        return pool._buf, pool._off_mv, pool._len_mv

    def _send(self, pool: Mempool, slots: np.ndarray) -> int:
        """Copy ``slots`` into transmit frames and kick the kernel.  ``slots`` is reordered
        in place, the ones handed to the kernel first; returns how many those are.

        A full ring is kicked and retried for up to ``TX_RETRY_S``; a failed send rolls
        back the frames the kernel did not take (their packets count as dropped)."""
        g = self.tx_geo
        st = self._tx_state
        data, offs, lens = self._pool_arrays(pool)
        args = (g.frame_nr, g.frames_per_block, g.block_size, g.frame_size, data, pool.stride,
                offs, lens)
        n = len(slots)
        first = int(st[0])
        acc, rej = self._k_fill(self._tx8, self._tx32, st, *args, slots, self.max_tx_len)
        pending = acc                        # frames of this burst not yet kicked
        deadline = 0.0
        while acc + rej < n:                 # the ring is full
            if pending:
                lost = self._kick(first, pending)
                if lost:
                    return self._done(acc - lost, rej)
                pending = 0
            now = time.monotonic()
            if not deadline:
                deadline = now + TX_RETRY_S
            elif now >= deadline:
                break
            first = int(st[0])
            rest = slots[acc + rej:]
            a2, r2 = self._k_fill(self._tx8, self._tx32, st, *args, rest, self.max_tx_len)
            if a2 or r2:
                # [acc | rej | a2 | r2 | untried] -> [acc + a2 | rej + r2 | untried]
                slots[acc:acc + rej + a2] = np.concatenate((rest[:a2], slots[acc:acc + rej]))
                acc += a2
                rej += r2
                pending = a2
        lost = self._kick(first, pending) if pending else 0
        return self._done(acc - lost, rej)

    def _done(self, sent: int, rejected: int) -> int:
        if rejected:
            self._note_oversize(rejected)
        return sent

    def _kick(self, first: int, count: int) -> int:
        """``send()`` the ``count`` pending frames from ``first``; on failure roll back the
        ones the kernel did not take and return how many (0: all taken)."""
        try:
            self.tx_sock.send(b"", socket.MSG_DONTWAIT)
            return 0
        except OSError as exc:
            g = self.tx_geo
            lost = self._k_rollback(self._tx32, self._tx_state, first, count, g.frame_nr,
                                    g.frames_per_block, g.block_size, g.frame_size)
            if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                self.counters.tx_errors += 1
                log.debug("port %s: send failed: %s", self.port.name, exc)
                try:                         # clear a pending socket error (ENETDOWN)
                    self.tx_sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                except OSError:
                    pass
            return int(lost)

    def _note_oversize(self, k: int) -> None:
        if not self._logged_oversize:
            self._logged_oversize = True
            log.warning("port %s: %d packet(s) longer than %d bytes (the transmit frame or the "
                        "%s MTU) or shorter than an Ethernet header dropped; raise framesz / "
                        "the MTU to send long ones", self.port.name, k, self.max_tx_len,
                        self.iface)

    # -- the rest -----------------------------------------------------------------------
    def close(self) -> None:
        """Read the last drop counts, unmap the rings and close the sockets."""
        if self._closed:
            return
        self.refresh_stats()
        self._closed = True
        self._release_views()
        errors = []
        for m in (self._rx_map, self._tx_map):
            try:
                m.close()
            except BufferError:
                # A view kept alive by a reference cycle (numba's compiler can leave one
                # behind on first use): collect it, then it closes.
                gc.collect()
                try:
                    m.close()
                except BufferError as exc:
                    errors.append(exc)
        for s in (self.rx_sock, self.tx_sock):
            s.close()
        if errors:
            raise PortError(f"port {self.port.name}: ring still in use at close: {errors[0]}")


_EMPTY = np.empty(0, dtype=np.int32)


def _map(sock: socket.socket, size: int) -> mmap.mmap:
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(sock.fileno(), size, flags, mmap.PROT_READ | mmap.PROT_WRITE)


# -- opening ----------------------------------------------------------------------------

def _packet_socket(cfg: "PortConfig", iface: str) -> socket.socket:
    try:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise PortError(f"port {cfg.name} ({cfg.device}): opening interface {iface} needs root or "
                        "the CAP_NET_RAW capability (e.g. sudo, or setcap cap_net_raw+ep on "
                        "the Python binary)") from None


#: ``_setup_rx``'s "make a new fanout group" request.  Not 0: the kernel's group ids are
#: 0..65535 and PACKET_FANOUT_FLAG_UNIQUEID hands out 0 first on a freshly booted machine,
#: which taken as "new group" made the port's second queue a second group (duplicates).
NEW_FANOUT_GROUP = -1


def _setup_rx(cfg: "PortConfig", iface: str, ifindex: int, geo: RingGeometry,
              fanout: int | None) -> tuple[socket.socket, int | None]:
    """A receive socket with its TPACKET_V3 ring, bound to ``iface``; joins group
    ``fanout`` (any id, 0 included), makes a new group (``NEW_FANOUT_GROUP``) or stays out
    of fanout (None).  Returns the socket and the group id."""
    s = _packet_socket(cfg, iface)
    try:
        s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        s.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack(
            "7I", geo.block_size, geo.block_nr, geo.frame_size, geo.frame_nr,
            BLOCK_TIMEOUT_MS, 0, TP_FT_REQ_FILL_RXHASH))
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:                      # before Linux 4.20: the kernels skip them
            pass
        s.bind((iface, ETH_P_ALL))
        if fanout == NEW_FANOUT_GROUP:
            try:
                s.setsockopt(SOL_PACKET, PACKET_FANOUT,
                             (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_UNIQUEID) << 16)
                fanout = struct.unpack("I", s.getsockopt(SOL_PACKET, PACKET_FANOUT, 4))[0] & 0xFFFF
            except OSError:                  # no UNIQUEID (before Linux 4.3): a pid-based id
                fanout = (os.getpid() * 31 + ifindex) & 0xFFFF
                s.setsockopt(SOL_PACKET, PACKET_FANOUT, fanout | PACKET_FANOUT_HASH << 16)
        elif fanout is not None:
            s.setsockopt(SOL_PACKET, PACKET_FANOUT, fanout | PACKET_FANOUT_HASH << 16)
        return s, fanout
    except BaseException:
        s.close()
        raise


def _setup_tx(cfg: "PortConfig", iface: str, geo: RingGeometry, bypass: bool) -> socket.socket:
    """A transmit socket with its TPACKET_V2 ring, bound to ``iface`` with protocol 0 (it
    receives nothing)."""
    s = _packet_socket(cfg, iface)
    try:
        s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        s.setsockopt(SOL_PACKET, PACKET_LOSS, 1)   # a malformed frame is skipped, not stuck
        if bypass:
            s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        s.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack(
            "4I", geo.block_size, geo.block_nr, geo.frame_size, geo.frame_nr))
        s.bind((iface, 0))
        return s
    except BaseException:
        s.close()
        raise


#: the process that loaded this driver: the runtime's master, whose forked workers inherit it
_TREE_ROOT = os.getpid()


def _shared_fanout_id(port_name: str, ifindex: int) -> int:
    """A fanout group id the master and its worker processes compute alike (from the
    master's pid, the port's name and the interface), different for other runs."""
    return zlib.crc32(f"{_TREE_ROOT}:{port_name}:{ifindex}".encode()) & 0xFFFF


def _membership(sock: socket.socket, ifindex: int, kind: int) -> None:
    # struct packet_mreq { int mr_ifindex; unsigned short mr_type, mr_alen; u8 mr_address[8]; }
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, kind, 0, b""))


def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    where = f"port {cfg.name} ({cfg.device})"
    unknown = sorted({k for k, _ in args} - set(_KNOWN_ARGS))
    if unknown:
        raise PortError(f"{where}: unknown argument(s) {unknown}; the af_packet driver "
                        f"accepts: {', '.join(_KNOWN_ARGS)}")
    opts = dict(args)
    iface = device_iface(where, cfg.device, "af_packet", opts)
    ncores = len(cfg.cores)
    int_device_arg(where, opts, "qpairs", ncores, lambda v: v == ncores,
             f"the number of the port's cores ({ncores}): nfkit opens one queue pair per core")
    blocksz = int_device_arg(where, opts, "blocksz", DEFAULT_BLOCKSZ,
                       lambda v: v > 0 and v % PAGE == 0 and v <= 1 << 22,
                       f"a multiple of the page size ({PAGE}) up to 4 MiB")
    framesz = int_device_arg(where, opts, "framesz", DEFAULT_FRAMESZ,
                       lambda v: v % 16 == 0 and 128 <= v <= blocksz,
                       f"a multiple of 16 from 128 to blocksz ({blocksz})")
    framecnt = int_device_arg(where, opts, "framecnt", 0, lambda v: 1 <= v <= 1 << 20, "1..1048576")
    bypass = int_device_arg(where, opts, "qdisc_bypass", 1, lambda v: v in (0, 1), "0 or 1")

    try:
        ifindex = socket.if_nametoindex(iface)
    except OSError:
        raise PortError(f"{where}: interface {iface!r} does not exist (in this network "
                        "namespace)") from None
    mtu = int(read_sys_net(iface, "mtu") or 1500)
    mac = read_sys_net(iface, "address")
    if mac and len(mac) == 17:
        port.mac_addr = MacAddr(mac)

    rx_geo = ring_geometry(framecnt or cfg.rxd, blocksz, framesz, min_blocks=2)
    tx_geo = ring_geometry(framecnt or cfg.txd, blocksz, framesz)
    served = [(i, core) for i, core in enumerate(cfg.cores) if port.serves(core)]
    fanout: int | None = None
    if ncores > 1:
        # One process opens every queue: the kernel picks a free group id.  One process per
        # core (the multi-core runtime's master and forked workers): each opens its own
        # queue, so the id is derived from what they share -- the master's pid, the port
        # and the interface.
        fanout = NEW_FANOUT_GROUP if len(served) == ncores else _shared_fanout_id(cfg.name, ifindex)
    try:
        for i, core in served:
            try:
                rx, fanout = _setup_rx(cfg, iface, ifindex, rx_geo, fanout)
            except OSError as exc:
                raise PortError(f"{where}: receive ring on {iface} ({rx_geo.block_nr} blocks of "
                                f"{rx_geo.block_size} bytes): {exc.strerror or exc}") from None
            try:
                tx = _setup_tx(cfg, iface, tx_geo, bool(bypass))
            except OSError as exc:
                rx.close()
                raise PortError(f"{where}: transmit ring on {iface} ({tx_geo.frame_nr} frames of "
                                f"{tx_geo.frame_size} bytes): {exc.strerror or exc}") from None
            try:
                if i == 0:
                    if cfg.promiscuous:
                        _membership(rx, ifindex, PACKET_MR_PROMISC)
                    if cfg.multicast:
                        _membership(rx, ifindex, PACKET_MR_ALLMULTI)
                q = AfPacketQueue(port, core, i, iface, rx, rx_geo, tx, tx_geo, mtu, fanout)
            except BaseException as exc:
                rx.close()
                tx.close()
                if isinstance(exc, OSError):
                    raise PortError(f"{where}: {iface}: {exc.strerror or exc}") from None
                raise
            port.queues[core] = q
    except BaseException:
        for q in port.queues.values():
            q.close()
        port.queues.clear()
        raise
    log.info("port %s: %s via AF_PACKET, %d queue(s)%s; per queue: rx ring %d blocks x %d B "
             "(TPACKET_V3, %d frames of %d B nominal), tx ring %d frames x %d B (TPACKET_V2, "
             "packets up to %d B), qdisc bypass %s", cfg.name, iface, len(served),
             f" in fanout group {fanout}" if fanout is not None else "", rx_geo.block_nr,
             rx_geo.block_size, rx_geo.frame_nr, rx_geo.frame_size, tx_geo.frame_nr,
             tx_geo.frame_size, min(tx_geo.frame_size - TX_DATA_OFFSET, mtu + ETH_HLEN),
             "on" if bypass else "off")


DRIVER = Driver("af_packet", r"net_af_packet\d+|af_packet:[^\s/]{1,15}", _open)
