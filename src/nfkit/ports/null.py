"""The null port (``net_null<N>``): transmit discards (counted as sent), receive generates.

As DPDK's null PMD, receive hands out a full burst of ``size``-byte frames on every call
(``size=0`` or ``no-rx=1``: nothing).  nfkit's frames are a valid Ethernet/IPv4/UDP packet
padded to ``size`` bytes (default 64, the minimum Ethernet frame with its FCS), so
benchmarks can parse and forward them.  By default every burst is filled with the frame
(one numpy copy); ``copy=0`` writes it into every buffer once at start and then only sets
lengths, so received frames carry whatever an NF last wrote there (fine for forwarding
benchmarks, not for ones that count down TTLs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _accel

from ..buffers import Mbuf, Mempool
from .port import Driver, Port, PortError, PortQueue, not_applicable

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig

__all__ = ["NullQueue", "udp_template"]


def udp_template(size: int) -> bytes:
    """A valid Ethernet/IPv4/UDP frame of ``size`` bytes (4 of them the FCS the NIC adds)."""
    from ..packets import Ethernet, Ipv4, Udp
    pool = Mempool(capacity=1, buf_size=max(2048, size))
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
    ip = eth.push(Ipv4)
    ip.src, ip.dst = "198.18.0.1", "198.19.0.1"
    udp = ip.push(Udp)
    udp.src_port, udp.dst_port = 1024, 1024
    udp.set_payload(bytes(max(0, size - 4 - 42)))
    udp.reconcile_all()
    return m.to_bytes()


class NullQueue(PortQueue):
    def __init__(self, port: Port, core: int, index: int, frame: bytes, copy: bool = True) -> None:
        super().__init__(port, core, index)
        self.frame = np.frombuffer(frame, dtype=np.uint8)
        self.frames: np.ndarray | None = None
        self._next_frame = 0
        self.copy = copy
        if not copy and len(frame):
            # Write the frame into every buffer once; receive then only sets lengths.
            h = self.pool.headroom
            self.pool.data[:, h:h + len(frame)] = self.frame

    def _rx_slots(self, max_packets: int) -> np.ndarray:
        n = len(self.frame)
        pool = self.pool
        k = min(max_packets, pool.available) if n else 0
        if n and k < max_packets:
            self.counters.rx_dropped += max_packets - k  # no buffers: DPDK's rx_nombuf
        if not k:
            return np.empty(0, dtype=np.int64)
        slots = pool.alloc_slots(k, n)
        if self.frames is not None:
            h = pool.headroom
            if _accel.AVAILABLE:
                self._next_frame = _accel.fill_rows(pool.data, slots, h, self.frames, self._next_frame)
            else:
                idx = (self._next_frame + np.arange(k)) % len(self.frames)
                self._next_frame = int(idx[-1] + 1) % len(self.frames)
                pool.data[slots, h:h + n] = self.frames[idx]
        elif self.copy:
            h = pool.headroom
            pool.data[slots, h:h + n] = self.frame
        return slots

    def set_frames(self, frames: list[bytes], refill: bool = True) -> None:
        """Receive these frames (all of one length) in turn instead of the one template:
        for benchmarks that need varied headers (e.g. destinations for a router).

        ``refill=True`` copies each burst's frames into its buffers on receive (what an NF
        that rewrites packets needs: every burst starts fresh).  ``refill=False`` writes
        the frames into every buffer of the pool once, now (buffer ``i`` gets frame
        ``i mod len(frames)``), and receive then only sets lengths, like ``copy=0``: for
        jobs that read packets or change them reversibly (a MAC swap)."""
        if not frames or len({len(f) for f in frames}) != 1:
            raise ValueError("set_frames needs a non-empty list of frames of one length")
        arr = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), -1)
        self.frame = arr[0]
        self._next_frame = 0
        if refill:
            self.frames = arr
            return
        self.frames = None
        self.copy = False
        pool = self.pool
        h = pool.headroom
        rows = np.arange(pool.capacity) % len(arr)
        pool.data[:, h:h + arr.shape[1]] = arr[rows]

    def _rx(self, max_packets: int) -> list[Mbuf]:
        pool = self.pool
        return [Mbuf(pool, s) for s in self._rx_slots(max_packets).tolist()]

    def _tx_slots(self, pool: Mempool, slots: np.ndarray) -> int:
        pool.free_slots(slots)
        return len(slots)

    def _tx(self, mbufs: list[Mbuf]) -> int:
        Mbuf.free_bulk(mbufs)
        return len(mbufs)


def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    opts = dict(args)
    unknown = set(opts) - {"size", "no-rx", "copy"}
    if unknown:
        raise PortError(f"port {cfg.name} ({cfg.device}): unknown argument(s) {sorted(unknown)}; "
                        "known: size, no-rx, copy")
    try:
        size = int(opts.get("size", "64"))
        if not 0 <= size <= port.pool.buf_size + 4:
            raise ValueError
    except ValueError:
        raise PortError(f"port {cfg.name} ({cfg.device}): size must be 0..{port.pool.buf_size + 4}, "
                        f"got {opts.get('size')!r}") from None
    not_applicable(cfg, "null", ("rxd", "txd", "promiscuous", "multicast"), "the null device")
    frame = b"" if size == 0 or opts.get("no-rx") in ("1", "true") else udp_template(size)
    copy = opts.get("copy", "1") not in ("0", "false", "no")
    for i, core in enumerate(cfg.cores):
        if port.serves(core):
            port.queues[core] = NullQueue(port, core, i, frame, copy)


DRIVER = Driver("null", r"net_null\d+", _open)
