"""The pcap port (``net_pcap<N>``): receive from pcap/pcapng files, transmit to a pcap file
or a live interface -- DPDK's pcap PMD arguments, so capsule configs load unchanged.

Device arguments:

- ``rx_pcap=FILE`` (may repeat): packets to receive, files read one after another (with
  several queues, files are dealt to the queues round robin: a file is read by one core);
- ``tx_pcap=FILE``: transmitted packets are written there (with several queues, queue ``i``
  writes ``FILE`` with ``-q<i>`` before the extension);
- ``rx_iface=IF`` / ``tx_iface=IF`` / ``iface=IF``: receive from / send to a live interface
  through a plain AF_PACKET socket (root needed; the fast ring-based driver is the
  ``af_packet`` one);
- ``infinite_rx=1`` (DPDK's name): replay the rx files forever; ``loop=N`` (nfkit's): play
  them ``N`` times -- for load generation.

Relative file names are taken from the directory of the config file (DPDK takes them from
the working directory; a config that worked there still works when run from its folder).
A damaged record ends that file: every packet before it is delivered, the damage is logged
with its offset and counted in ``rx_errors``.  Output files are complete after ``close()``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from ..buffers import Mbuf
from ..pcap import PcapFormatError, PcapReader, PcapWriter
from .base import Port, PortError, PortQueue, not_applicable, register_driver

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig

__all__ = ["PcapQueue"]

log = logging.getLogger("nfkit.ports.pcap")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class PcapQueue(PortQueue):
    """One queue of a pcap port."""

    is_file_source = True

    def __init__(self, port: Port, core: int, index: int, rx_files: list[Path], loops: int,
                 writer: PcapWriter | None, tx_sock: socket.socket | None,
                 rx_sock: socket.socket | None) -> None:
        super().__init__(port, core, index)
        self.rx_files = rx_files
        self.loops = loops                  # 0: forever
        self.writer = writer
        self.tx_sock = tx_sock
        self.rx_sock = rx_sock
        self._file_index = 0
        self._pass = 1
        self._reader: PcapReader | None = None
        self._done = not rx_files
        self.is_file_source = bool(rx_files)

    # -- receive ----------------------------------------------------------------------
    def _open_next(self) -> bool:
        while not self._done:
            if self._file_index >= len(self.rx_files):
                if self.loops and self._pass >= self.loops:
                    self._done = True
                    return False
                self._pass += 1
                self._file_index = 0
            path = self.rx_files[self._file_index]
            self._file_index += 1
            try:
                self._reader = PcapReader(path)
                return True
            except PcapFormatError as exc:
                log.error("port %s: %s", self.port.name, exc)
                self.counters.rx_errors += 1
                if len(self.rx_files) == 1 and self._pass > 1:
                    self._done = True
        return False

    def _finish_reader(self) -> None:
        r = self._reader
        if r is None:
            return
        if r.error is not None:
            log.warning("port %s: %s: %s; %d packets before it were received", self.port.name,
                        r.path, r.error, r.packets_read)
            self.counters.rx_errors += 1
        if r.skipped_oversize:
            log.warning("port %s: %s: %d packets longer than the %d-byte buffers were dropped",
                        self.port.name, r.path, r.skipped_oversize, self.pool.buf_size)
            self.counters.rx_dropped += r.skipped_oversize
        r.close()
        self._reader = None

    def _rx(self, max_packets: int) -> list[Mbuf]:
        out: list[Mbuf] = []
        if self.rx_sock is not None:
            out = self._rx_socket(max_packets)
        while len(out) < max_packets and not self._done:
            if self._reader is None and not self._open_next():
                break
            r = self._reader
            assert r is not None
            if not self.pool.available:
                self.counters.rx_dropped += 0  # nothing lost: the file waits for buffers
                break
            slots = r.read_into(self.pool, max_packets - len(out))
            pool = self.pool
            out.extend(Mbuf(pool, s) for s in slots.tolist())
            if r.at_end:
                self._finish_reader()
        return out

    def _rx_socket(self, max_packets: int) -> list[Mbuf]:
        sock = self.rx_sock
        assert sock is not None
        pool = self.pool
        out = []
        while len(out) < max_packets and pool.available:
            m = Mbuf.alloc(pool)
            base = m.slot * pool.stride + pool.headroom
            try:
                n, addr = sock.recvfrom_into(pool._buf[base:base + pool.buf_size], pool.buf_size)
                if addr[2] == PACKET_OUTGOING:   # what this host sent (ours included): skip
                    m.free()
                    continue
            except BlockingIOError:
                m.free()
                break
            except OSError as exc:
                m.free()
                self.counters.rx_errors += 1
                log.error("port %s: receive failed: %s", self.port.name, exc)
                break
            pool.data_len[m.slot] = n
            out.append(m)
        return out

    @property
    def exhausted(self) -> bool:
        return self._done and self.rx_sock is None

    # -- transmit ---------------------------------------------------------------------
    def _tx(self, mbufs: list[Mbuf]) -> int:
        if self.writer is not None:
            self.writer.write_mbufs(mbufs)
        if self.tx_sock is not None:
            for m in mbufs:
                try:
                    self.tx_sock.send(m.view())
                except OSError as exc:
                    self.counters.tx_errors += 1
                    log.debug("port %s: send failed: %s", self.port.name, exc)
        Mbuf.free_bulk(mbufs)
        return len(mbufs)

    def close(self) -> None:
        self._finish_reader()
        self._done = True
        for s in {id(s): s for s in (self.tx_sock, self.rx_sock) if s is not None}.values():
            s.close()
        if self.writer is not None:
            self.writer.close()


def _raw_socket(cfg: "PortConfig", iface: str, receive: bool) -> socket.socket:
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError:
        raise PortError(f"port {cfg.name}: a live interface ({iface}) needs root or CAP_NET_RAW") from None
    try:
        s.bind((iface, ETH_P_ALL if receive else 0))
    except OSError as exc:
        s.close()
        raise PortError(f"port {cfg.name}: interface {iface!r}: {exc.strerror or exc}") from None
    s.setblocking(False)
    return s


def _queue_file(path: Path, index: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}-q{index}{path.suffix}")


def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    known = {"rx_pcap", "tx_pcap", "rx_iface", "tx_iface", "iface", "infinite_rx", "loop"}
    unknown = sorted({k for k, _ in args} - known)
    if unknown:
        raise PortError(f"port {cfg.name} ({cfg.device}): unknown argument(s) {unknown}; "
                        f"known: {', '.join(sorted(known))}")
    base = port.base_dir or Path(os.getcwd())
    rx = [base / v for k, v in args if k == "rx_pcap"]
    txs = [base / v for k, v in args if k == "tx_pcap"]
    opts = dict(args)
    if len(txs) > 1:
        raise PortError(f"port {cfg.name} ({cfg.device}): tx_pcap given {len(txs)} times; "
                        "give it once (queues write one file each)")
    for f in rx:
        if not f.is_file():
            raise PortError(f"port {cfg.name} ({cfg.device}): rx_pcap file {f} does not exist")
    loops = 1
    if opts.get("infinite_rx") in ("1", "true", "yes"):
        loops = 0
    if "loop" in opts:
        try:
            loops = int(opts["loop"])
            if loops < 0:
                raise ValueError
        except ValueError:
            raise PortError(f"port {cfg.name} ({cfg.device}): loop must be a count >= 0 "
                            f"(0: forever), got {opts['loop']!r}") from None
    rx_if = opts.get("rx_iface") or opts.get("iface")
    tx_if = opts.get("tx_iface") or opts.get("iface")
    if not (rx or txs or rx_if or tx_if):
        raise PortError(f"port {cfg.name} ({cfg.device}): needs rx_pcap, tx_pcap, rx_iface, "
                        "tx_iface or iface")
    not_applicable(cfg, "pcap", ("rxd", "txd", "promiscuous", "multicast"), "pcap files")
    n = len(cfg.cores)
    try:
        for i, core in enumerate(cfg.cores):
            if not port.serves(core):   # another process opens this core's queue
                continue
            writer = PcapWriter(_queue_file(txs[0], i, n)) if txs else None
            rx_sock = _raw_socket(cfg, rx_if, True) if rx_if and i == 0 else None
            if tx_if and tx_if == rx_if and rx_sock is not None:
                tx_sock = rx_sock      # one socket: it does not receive what it sends
            else:
                tx_sock = _raw_socket(cfg, tx_if, False) if tx_if else None
            port.queues[core] = PcapQueue(port, core, i, rx[i::n] if rx else [], loops, writer,
                                          tx_sock, rx_sock)
    except (OSError, PcapFormatError) as exc:
        for q in port.queues.values():
            q.close()
        raise PortError(f"port {cfg.name} ({cfg.device}): {exc}") from None


register_driver(r"net_pcap\d+", "pcap", _open)
