"""TAP ports (``net_tap<N>``, ``tap:NAME``) and capsule's KNI counterpart (``kni = true``).

A TAP port is a Linux TAP interface: what the NF transmits, the kernel receives on that
interface as if it came from a wire; what the kernel sends out of the interface, the NF
receives.  The device arguments are DPDK's ``net_tap`` ones where they exist:

- ``iface=NAME``: the interface name (default: the port's name; at most 15 characters).
  ``tap:NAME`` is the plain spelling of ``net_tap0`` with ``iface=NAME``;
- ``mac=fixed`` (DPDK's ``00:64:74:61:70:<port index>``) or ``mac=AA:BB:CC:DD:EE:FF``: the
  port's MAC address.  As in DPDK's ``net_tap``, the kernel interface gets the same address;
  without ``mac`` the interface keeps the address the kernel gave it and the port reads it;
- ``addr=CIDR`` (nfkit, may repeat): add this IPv4 or IPv6 address to the interface
  (``ip addr add``; IPv6 without duplicate address detection, so it is usable at once).

The interface is created with ``IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE``: one file descriptor
(queue) per core of the port, non-blocking, and brought up.  It disappears when the port is
closed (it is not persistent).  Receive drains up to a burst of frames per call, each
``read`` straight into a buffer of the mempool (allocated in bulk, the unused ones given
back); transmit writes each frame (the kernel copies it, so the buffers are freed at once).
A write the kernel refuses with ``EAGAIN`` ends the burst: the rest is freed and counted in
``tx_dropped`` (other errors also count in ``tx_errors``).  Frames that fill a whole
buffer may have been cut by the kernel: they are dropped and counted in ``rx_dropped``.

KNI (``kni = true``) is a TAP interface too: :mod:`nfkit.ports.kni` (its handles, :class:`KniTx`/:class:`KniRx`, are here).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
from typing import TYPE_CHECKING

import numpy as np

from ..buffers import Mbuf, Mempool
from ..net import MacAddr
from .port import (Driver, KniDisabled, KniError, KniNotAcquired, Port, PortCounters, PortError,
                   PortQueue, not_applicable)

if TYPE_CHECKING:  # pragma: no cover
    from ..slots import SlotBatch
    from ..config import PortConfig
    from .kni import Kni

__all__ = ["TapDevice", "TapQueue", "KniRx", "KniTx", "KniError", "KniDisabled",
           "KniNotAcquired", "DRIVER"]

log = logging.getLogger("nfkit.ports.tap")

# linux/if_tun.h and linux/sockios.h
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFHWADDR = 0x8927
SIOCSIFHWADDR = 0x8924
IFF_UP = 0x1
ARPHRD_ETHER = 1
IFNAMSIZ = 16
TUN_PATH = "/dev/net/tun"

_IFNAME = re.compile(r"[^\s/:]{1,15}")
_EMPTY = np.empty(0, dtype=np.int64)





# -- the interface ------------------------------------------------------------------------

def _ifreq(name: str, payload: bytes = b"") -> bytearray:
    """A ``struct ifreq`` (40 bytes): the name, then the union."""
    req = bytearray(40)
    raw = name.encode()
    req[:len(raw)] = raw
    req[IFNAMSIZ:IFNAMSIZ + len(payload)] = payload
    return req


class TapDevice:
    """A TAP interface and its queue file descriptors (non-blocking), created on open.

    Raises :class:`PortError` saying why when the interface cannot be made: no
    ``/dev/net/tun``, no privilege (``CAP_NET_ADMIN``), a bad name, or a name an interface
    of another kind already has.
    """

    def __init__(self, name: str, queues: int, who: str, multi_queue: bool = True) -> None:
        if not _IFNAME.fullmatch(name):
            raise PortError(f"{who}: {name!r} is not a valid interface name (1 to 15 characters, "
                            "no spaces, '/' or ':')")
        self.name = name
        self.who = who
        self.fds: list[int] = []
        flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
        req = _ifreq(name, struct.pack("H", flags))
        try:
            for _ in range(queues):
                try:
                    fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise PortError(f"{who}: {TUN_PATH} does not exist (the tun module is not "
                                    "loaded: modprobe tun; in a container, pass the device in)") from None
                except PermissionError:
                    raise PortError(f"{who}: {TUN_PATH} cannot be opened: permission denied "
                                    "(run as root or with CAP_NET_ADMIN)") from None
                self.fds.append(fd)
                try:
                    fcntl.ioctl(fd, TUNSETIFF, req)
                except OSError as exc:
                    raise PortError(f"{who}: cannot create TAP interface {name!r}: "
                                    + _tunsetiff_reason(exc)) from None
        except BaseException:
            self.close()
            raise

    # -- interface settings (through an ordinary socket of this namespace) ----------------
    def _ioctl(self, request: int, req: bytearray) -> bytearray:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), request, req)
        return req

    @property
    def mac(self) -> MacAddr:
        """The interface's MAC address (read from the kernel)."""
        req = self._ioctl(SIOCGIFHWADDR, _ifreq(self.name))
        return MacAddr(bytes(req[IFNAMSIZ + 2:IFNAMSIZ + 8]))

    def set_mac(self, mac: MacAddr) -> None:
        try:
            self._ioctl(SIOCSIFHWADDR, _ifreq(self.name, struct.pack("H", ARPHRD_ETHER) + bytes(mac)))
        except OSError as exc:
            raise PortError(f"{self.who}: cannot set the MAC address of {self.name} to {mac}: "
                            f"{exc.strerror or exc}") from None

    def set_up(self, up: bool = True) -> None:
        try:
            req = self._ioctl(SIOCGIFFLAGS, _ifreq(self.name))
            flags = struct.unpack_from("H", req, IFNAMSIZ)[0]
            flags = flags | IFF_UP if up else flags & ~IFF_UP
            self._ioctl(SIOCSIFFLAGS, _ifreq(self.name, struct.pack("H", flags)))
        except OSError as exc:
            raise PortError(f"{self.who}: cannot bring {self.name} {'up' if up else 'down'}: "
                            f"{exc.strerror or exc}") from None

    def add_address(self, cidr: str) -> None:
        """``ip addr add CIDR dev NAME`` (IPv6 with ``nodad``)."""
        ip = shutil.which("ip")
        if ip is None:
            raise PortError(f"{self.who}: addr={cidr} needs the `ip` command (iproute2)")
        cmd = [ip, "addr", "add", cidr, "dev", self.name] + (["nodad"] if ":" in cidr else [])
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise PortError(f"{self.who}: addr={cidr}: {res.stderr.strip() or 'ip addr add failed'}")

    def close(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _tunsetiff_reason(exc: OSError) -> str:
    if exc.errno == errno.EPERM:
        return "operation not permitted (run as root or with CAP_NET_ADMIN)"
    if exc.errno in (errno.EBUSY, errno.EINVAL):
        return (f"{exc.strerror} (an interface of that name exists and is not a multi-queue TAP, "
                "or it has all its queues attached)")
    return exc.strerror or str(exc)


# -- burst I/O shared by the TAP queues and the KNI handles --------------------------------

def read_burst(fd: int, pool: Mempool, max_packets: int, counters: PortCounters,
               who: str) -> np.ndarray:
    """Read up to ``max_packets`` frames from ``fd`` into new buffers of ``pool``; returns
    their slots.  Counts truncated frames in ``rx_dropped``, read errors in ``rx_errors``."""
    n = min(max_packets, pool.available)
    if n <= 0:
        return _EMPTY
    slots = pool.alloc_slots(n)
    buf, stride, head, size = pool._buf, pool.stride, pool.headroom, pool.buf_size
    lens = pool._len_mv
    keep = []
    for s in slots.tolist():
        base = s * stride + head
        try:
            k = os.readv(fd, [buf[base:base + size]])
        except BlockingIOError:
            break
        except InterruptedError:
            continue
        except OSError as exc:
            counters.rx_errors += 1
            log.error("%s: read failed: %s", who, exc.strerror or exc)
            break
        if k >= size:                 # may have been cut to the buffer: do not pass it on
            counters.rx_dropped += 1
            continue
        lens[s] = k
        keep.append(s)
    got = np.asarray(keep, dtype=np.int64)
    if len(keep) < n:
        pool.free_slots(np.setdiff1d(slots, got, assume_unique=True) if keep else slots)
    return got


def write_slots(fd: int, pool: Mempool, slots: np.ndarray, counters: PortCounters,
                who: str) -> int:
    """Write each frame to ``fd`` until one is refused; frees what was written and returns
    how many (from the front).  An error other than ``EAGAIN`` counts in ``tx_errors``."""
    buf, stride = pool._buf, pool.stride
    offs, lens = pool._off_mv, pool._len_mv
    sent = 0
    for s in slots.tolist():
        a = s * stride + offs[s]
        try:
            os.write(fd, buf[a:a + lens[s]])
        except BlockingIOError:
            break
        except OSError as exc:
            counters.tx_errors += 1
            log.debug("%s: write failed: %s", who, exc.strerror or exc)
            break
        sent += 1
    if sent:
        pool.free_slots(slots[:sent])
    return sent


def _slots_of(mbufs: list[Mbuf]) -> tuple[Mempool, np.ndarray] | None:
    """The slots of ``mbufs`` when they share one pool (the usual case), else None."""
    pool = mbufs[0].pool
    if all(m.pool is pool for m in mbufs):
        return pool, np.fromiter((m.slot for m in mbufs), dtype=np.int64, count=len(mbufs))
    return None


def write_mbufs(fd: int, mbufs: list[Mbuf], counters: PortCounters, who: str) -> int:
    """:func:`write_slots` for Mbufs (which may come from several pools)."""
    one = _slots_of(mbufs)
    if one is not None:
        return write_slots(fd, one[0], one[1], counters, who)
    sent = 0
    for m in mbufs:
        if write_slots(fd, m.pool, np.array([m.slot], dtype=np.int64), counters, who) != 1:
            break
        sent += 1
    return sent


# -- the port -------------------------------------------------------------------------------

class TapQueue(PortQueue):
    """One queue of a TAP port: one file descriptor of the multi-queue interface."""

    def __init__(self, port: Port, core: int, index: int, device: TapDevice, fd: int) -> None:
        super().__init__(port, core, index)
        self.device = device
        self.fd = fd
        self._who = f"port {port.name} ({device.name}) queue {index}"

    def _rx_slots(self, max_packets: int) -> np.ndarray:
        return read_burst(self.fd, self.pool, max_packets, self.counters, self._who)

    def _rx(self, max_packets: int) -> list[Mbuf]:
        pool = self.pool
        return [Mbuf(pool, s) for s in self._rx_slots(max_packets).tolist()]

    def _tx_slots(self, pool: Mempool, slots: np.ndarray) -> int:
        return write_slots(self.fd, pool, slots, self.counters, self._who)

    def _tx(self, mbufs: list[Mbuf]) -> int:
        return write_mbufs(self.fd, mbufs, self.counters, self._who)

    def close(self) -> None:
        # The device closes every queue's descriptor; the first queue to close does it.
        self.device.close()


def _parse_mac(value: str, index: int, who: str) -> MacAddr:
    if value == "fixed":
        return MacAddr(bytes([0x00, 0x64, 0x74, 0x61, 0x70, index & 0xFF]))  # DPDK's "\0dtap"
    try:
        return MacAddr(value)
    except Exception:
        raise PortError(f"{who}: mac must be 'fixed' or a MAC address like 02:00:00:00:00:01, "
                        f"got {value!r}") from None


def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    who = f"port {cfg.name} ({cfg.device})"
    known = {"iface", "mac", "addr"}
    unknown = sorted({k for k, _ in args} - known)
    if unknown:
        raise PortError(f"{who}: unknown argument(s) {unknown}; known: addr, iface, mac")
    opts = dict(args)
    if cfg.device.startswith("tap:"):
        if "iface" in opts:
            raise PortError(f"{who}: the interface is named in the device already; "
                            "drop iface= or use net_tap0")
        iface = cfg.device[4:]
    else:
        iface = opts.get("iface", cfg.name)
    # mac=fixed ends in the device's unit number, as DPDK's does (tap:NAME: the port's
    # position in the config, which open_port puts in the default MAC's last byte, minus 1).
    unit = re.fullmatch(r"net_tap(\d+)", cfg.device)
    index = int(unit.group(1)) if unit else int(port.mac_addr[-1]) - 1
    mac = _parse_mac(opts["mac"], index, who) if "mac" in opts else None
    not_applicable(cfg, "tap", ("rxd", "txd", "promiscuous", "multicast"),
                   "a TAP interface (the kernel hands over every frame)")
    if cfg.kni:
        raise PortError(f"{who}: kni = true on a TAP port: the TAP interface is the kernel's "
                        "side already")
    # With one process per core, each process attaches the queues of its own cores; the
    # interface exists while any is attached.  The first core's process adds the addresses.
    served = [(i, core) for i, core in enumerate(cfg.cores) if port.serves(core)]
    if not served:
        if mac is not None:
            port.mac_addr = mac
        return
    dev = TapDevice(iface, len(served), who)
    try:
        if mac is not None:
            dev.set_mac(mac)
        port.mac_addr = dev.mac
        dev.set_up()
        if served[0][0] == 0:
            for k, v in args:
                if k == "addr":
                    dev.add_address(v)
    except BaseException:
        dev.close()
        raise
    for fd, (i, core) in zip(dev.fds, served):
        port.queues[core] = TapQueue(port, core, i, dev, fd)


DRIVER = Driver("tap", r"net_tap\d+|tap:.+", _open)


# -- the KNI's handles (the KNI itself, made of a TapDevice, is nfkit.ports.kni) -------------

class KniTx:
    """Sends packets to the kernel (capsule's ``KniTxQueue``): a pipeline sink usable from
    any core (``send(q.kni())``, ``emit(q.kni())``).  What the kernel refuses is freed and
    counted in the KNI's ``tx_dropped``."""

    def __init__(self, kni: "Kni") -> None:
        self.kni = kni

    def transmit(self, mbufs: list[Mbuf]) -> None:
        if not mbufs:
            return
        k = self.kni
        c = k.counters
        octets = [len(m) for m in mbufs]
        sent = write_mbufs(k.fd, mbufs, c, k.who) if k.fd >= 0 else 0
        c.tx_packets += sent
        c.tx_octets += sum(octets[:sent])
        if sent < len(mbufs):
            c.tx_dropped += len(mbufs) - sent
            Mbuf.free_bulk(mbufs[sent:])

    def transmit_slots(self, pool: Mempool, slots: np.ndarray) -> None:
        n = len(slots)
        if not n:
            return
        k = self.kni
        c = k.counters
        sent = write_slots(k.fd, pool, slots, c, k.who) if k.fd >= 0 else 0
        lens = pool.data_len
        c.tx_packets += sent
        c.tx_octets += int(lens[slots[:sent]].sum()) if sent else 0
        if sent < n:
            c.tx_dropped += n - sent
            pool.free_slots(slots[sent:])

    def __repr__(self) -> str:
        return f"<KniTx {self.kni.name}>"


class KniRx:
    """The packets the kernel sends out of the KNI (capsule's ``KniRx``): a pipeline source.
    There is one per KNI, taken by :meth:`Runtime.add_kni_rx_pipeline_to_port`."""

    def __init__(self, kni: "Kni") -> None:
        self.kni = kni

    def receive_slots(self, max_packets: int | None = None) -> "SlotBatch":
        from ..slots import SlotBatch
        k = self.kni
        pool = k.port.pool
        n = k.port.batch_size if max_packets is None else max_packets
        slots = read_burst(k.fd, pool, n, k.counters, k.who) if k.fd >= 0 else _EMPTY
        if len(slots):
            k.counters.rx_packets += len(slots)
            k.counters.rx_octets += int(pool.data_len[slots].sum())
        return SlotBatch(pool, slots)

    def receive(self, max_packets: int | None = None) -> list[Mbuf]:
        return self.receive_slots(max_packets).mbufs()

    def __repr__(self) -> str:
        return f"<KniRx {self.kni.name}>"
