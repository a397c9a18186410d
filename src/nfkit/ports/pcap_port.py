"""The pcap port (``net_pcap<N>``): receive from pcap/pcapng files, transmit to a pcap file
or a live interface -- DPDK's pcap PMD arguments, so capsule configs load unchanged.

Device arguments:

- ``rx_pcap=FILE`` (may repeat): packets to receive, files read one after another (with
  several queues, files are dealt to the queues round robin: a file is read by one core);
- ``tx_pcap=FILE``: transmitted packets are written there (with several queues, queue ``i``
  writes ``FILE`` with ``-q<i>`` before the extension); pcapng when ``FILE`` ends in
  ``.pcapng``, classic pcap otherwise; ``tx_pcapng=FILE``: the same, always pcapng;
- ``rx_iface=IF`` / ``tx_iface=IF`` / ``iface=IF``: receive from / send to a live interface
  through a plain AF_PACKET socket (root needed; the fast ring-based driver is the
  ``af_packet`` one);
- ``infinite_rx=1`` (DPDK's name): replay the rx files forever; ``loop=N`` (nfkit's): play
  them ``N`` times -- for load generation;
- ``linktype=ethernet``: rx files of raw IP (101, 228, 229, 12, 14), Linux SLL / SLL2
  (``tcpdump -i any``) or BSD NULL / LOOP are received as Ethernet frames: the link header
  is replaced by an Ethernet header with zero addresses and the EtherType it names
  (:func:`nfkit.linktype.to_ethernet`, per packet: not the fast path); a frame it cannot
  convert is dropped, counted in ``rx_dropped`` and logged once.  Without it such a file
  is refused when the port opens, with the way to convert it in the error.

Relative file names are taken from the directory of the config file (DPDK takes them from
the working directory; a config that worked there still works when run from its folder).

Inputs are checked when the port opens: a missing file, a directory, a device or FIFO, a
file that is not a capture, cannot be read or holds another link type than Ethernet (the
frames this port carries) is a :class:`PortError` naming the file and what is wrong.  A
damaged record found later ends that file: every packet before it is delivered, the damage
is logged with its offset and counted in ``rx_errors`` (a damaged pcapng packet block with
intact framing is skipped the same way, and reading goes on); packets of a later pcapng
interface of another link type, or longer than a buffer, are logged and counted in
``rx_dropped`` (the former also as an ``rx_error``: the port refused part of its input).

Output files are complete after ``close()``; they are never followed through a symbolic
link.  A queue reopened by a restarted worker (``Port.resume``) appends to its ``tx_pcap``
file -- repairing a record the killed worker left half written -- instead of truncating
it, and reports what the file already held (``PcapQueue.resumed``) so the run's counters
can match the file.  Packets whose timestamps the pcap format cannot hold (past 2106) are
written with its last second, counted and logged.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..buffers import Mbuf, Mempool
from ..linktype import DECODED, ETHERNET, LinkTypeError, describe, to_ethernet
from ..pcap import PcapError, PcapFormatError, PcapReader, PcapWriteError, PcapWriter
from .port import Driver, Port, PortError, PortQueue, not_applicable

if TYPE_CHECKING:  # pragma: no cover
    from ..config import PortConfig

__all__ = ["PcapQueue"]

log = logging.getLogger("nfkit.ports.pcap")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
#: damaged records logged per file (all are counted)
_LOGGED_DAMAGE = 10
_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))


class PcapQueue(PortQueue):
    """One queue of a pcap port."""

    is_file_source = True

    def __init__(self, port: Port, core: int, index: int, rx_files: list[Path], loops: int,
                 writer: PcapWriter | None, tx_sock: socket.socket | None,
                 rx_sock: socket.socket | None,
                 linktypes: dict[Path, int] | None = None) -> None:
        super().__init__(port, core, index)
        self.rx_files = rx_files
        #: the link type of each rx file that is not Ethernet (converted: linktype=ethernet)
        self.linktypes = linktypes or {}
        self._convert_failed = 0
        self.loops = loops                  # 0: forever
        self.writer = writer
        self.tx_sock = tx_sock
        self.rx_sock = rx_sock
        #: why the tx file stopped taking packets (a full disk), None while it takes them
        self.write_error: PcapWriteError | None = None
        self._file_index = 0
        self._pass = 1
        self._pass_packets = 0
        self._reader: PcapReader | None = None
        self._done = not rx_files
        self.is_file_source = bool(rx_files)
        #: (packets, octets) the tx file already held when a restarted worker reopened it
        self.resumed = (writer.resumed_packets, writer.resumed_octets) if writer else (0, 0)

    # -- receive ----------------------------------------------------------------------
    def _open_next(self) -> bool:
        failures = 0
        while not self._done:
            if self._file_index >= len(self.rx_files):
                if self.loops and self._pass >= self.loops:
                    self._done = True
                    return False
                if not self._pass_packets:
                    # A replay whose files hold no packets would spin here forever.
                    log.warning("port %s: the rx files gave no packets in a whole pass; "
                                "replay stops", self.port.name)
                    self._done = True
                    return False
                self._pass += 1
                self._pass_packets = 0
                self._file_index = 0
            path = self.rx_files[self._file_index]
            self._file_index += 1
            try:
                self._reader = PcapReader(path, linktype=self.linktypes.get(path, ETHERNET))
                return True
            except PcapFormatError as exc:     # it was fine when the port opened
                log.error("port %s: %s", self.port.name, exc)
                self.counters.rx_errors += 1
                failures += 1
                if failures >= len(self.rx_files):   # every file failed in a row: stop
                    self._done = True
        return False

    def _finish_reader(self) -> None:
        """Count (and, on the first pass of a replay, log) what the file did not deliver."""
        r = self._reader
        if r is None:
            return
        name, c = self.port.name, self.counters
        say = self._pass == 1            # a replay repeats the same damage every pass
        self._pass_packets += r.packets_read
        errors = r.skipped_corrupt + (r.fatal is not None)
        for err in r.damage[:_LOGGED_DAMAGE] if say else ():
            if err is r.fatal:
                log.warning("port %s: %s; %d packets before it were received", name, err,
                            r.packets_read)
            else:
                log.warning("port %s: %s; skipped", name, err)
        if say and errors > _LOGGED_DAMAGE:
            log.warning("port %s: %s: %d more damaged records", name, r.path,
                        errors - _LOGGED_DAMAGE)
        c.rx_errors += errors
        for lt, n in sorted(r.skipped_linktype.items()):
            if say:
                log.error("port %s: %s: %d packets of link type %s dropped: this port "
                          "carries link type %s frames", name, r.path, n, describe(lt),
                          describe(ETHERNET))
            c.rx_dropped += n
            c.rx_errors += 1
        if r.skipped_oversize:
            if say:
                log.warning("port %s: %s: %d packets longer than the %d-byte buffers were "
                            "dropped", name, r.path, r.skipped_oversize, self.pool.buf_size)
            c.rx_dropped += r.skipped_oversize
        r.close()
        self._reader = None

    def _rx(self, max_packets: int) -> list[Mbuf]:
        pool = self.pool
        return [Mbuf(pool, s) for s in self._rx_slots(max_packets).tolist()]

    def _rx_slots(self, max_packets: int) -> np.ndarray:
        """The burst as slots: no per-packet object (a kernel pipeline never needs one;
        making one per packet each way held l2fwd at burst 1024 to 0.82 Mpps, 3.3 without)."""
        parts = []
        n = 0
        if self.rx_sock is not None:
            got = [m.slot for m in self._rx_socket(max_packets)]
            parts.append(np.array(got, dtype=np.int64))
            n = len(got)
        while n < max_packets and not self._done:
            if self._reader is None and not self._open_next():
                break
            r = self._reader
            assert r is not None
            if not self.pool.available:
                break                           # nothing lost: the file waits for buffers
            slots = r.read_into(self.pool, max_packets - n)
            if r.linktype != ETHERNET and slots.size:
                slots = self._to_ethernet(slots, r.linktype)
            parts.append(slots)
            n += slots.size
            if r.at_end:
                self._finish_reader()
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _to_ethernet(self, slots: np.ndarray, linktype: int) -> np.ndarray:
        """``linktype=ethernet``: each frame's link header replaced by an Ethernet header;
        those that cannot be converted dropped (counted, the first logged)."""
        pool = self.pool
        keep, bad = [], []
        for s in slots.tolist():
            try:
                to_ethernet(Mbuf(pool, s), linktype)
                keep.append(s)
            except LinkTypeError as exc:
                bad.append(s)
                if not self._convert_failed:
                    log.warning("port %s: a frame of link type %s cannot be received as "
                                "Ethernet (%s): such frames are dropped (rx_dropped)",
                                self.port.name, describe(linktype), exc)
                self._convert_failed += 1
        if bad:
            pool.free_slots(np.array(bad, dtype=np.int64))
            self.counters.rx_dropped += len(bad)
        return np.array(keep, dtype=np.int64)

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
        if mbufs and all(m.pool is mbufs[0].pool for m in mbufs):
            slots = np.fromiter((m.slot for m in mbufs), dtype=np.int64, count=len(mbufs))
            return self._tx_slots(mbufs[0].pool, slots)
        return self._send(mbufs, None)             # several pools: written one by one

    def _tx_slots(self, pool: Mempool, slots: np.ndarray) -> int:
        """The burst written from its slots in one call (no per-packet object)."""
        return self._send(slots, pool)

    def _send(self, items: "list[Mbuf] | np.ndarray", pool: Mempool | None) -> int:
        """Write (all or nothing) and send ``items`` -- slots of ``pool``, or Mbufs when
        ``pool`` is None -- and free them; returns how many were taken."""
        k = len(items)
        w = self.writer
        if w is not None and self.write_error is None:
            try:                            # all or nothing: the file ends at a record
                w.write_mbufs(items, pool)
            except PcapWriteError as exc:
                self.write_error = exc
                log.error("port %s: %s; %d packets written, the packets sent from now on "
                          "are not written (counted in tx_errors and tx_dropped)",
                          self.port.name, exc, w.packets_written)
        if w is not None and self.write_error is not None:
            self.counters.tx_errors += k
            if self.tx_sock is None:
                return 0                    # the caller counts them dropped and frees them
        if self.tx_sock is not None:
            for m in (items if pool is None else [Mbuf(pool, s) for s in items.tolist()]):
                try:
                    self.tx_sock.send(m.view())
                except OSError as exc:
                    self.counters.tx_errors += 1
                    log.debug("port %s: send failed: %s", self.port.name, exc)
        if pool is not None:
            pool.free_slots(items)
        else:
            Mbuf.free_bulk(items)
        return k

    def close(self) -> None:
        self._finish_reader()
        self._done = True
        for s in {id(s): s for s in (self.tx_sock, self.rx_sock) if s is not None}.values():
            s.close()
        w = self.writer
        if w is not None:
            w.close()
            if self.write_error is not None:
                raise PcapWriteError(w.path, f"{self.write_error.reason}: {w.packets_written} "
                                     f"packets written (the file ends at a record boundary), "
                                     f"{self.counters.tx_errors} packets not written",
                                     self.write_error.os_error)
            if w.timestamps_clamped:
                log.warning("port %s: %s: %d packets had timestamps later than 2106, more "
                            "than a pcap file holds: written with its last second",
                            self.port.name, w.path, w.timestamps_clamped)


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


def _input_problem(path: Path, convert: bool) -> tuple[str | None, int]:
    """Why ``path`` cannot be replayed (None: it can), and its link type: checked when the
    port opens, so that a run never "drains" an input it could not read.  ``convert``:
    ``linktype=ethernet`` was given (link types :mod:`nfkit.linktype` decodes are read)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return " does not exist", ETHERNET
    except OSError as exc:
        return f": cannot be examined: {exc.strerror or exc}", ETHERNET
    for test, kind in _KINDS:
        if test(mode):
            return (" is a directory" if kind == "directory" else
                    f" is a {kind}, not a capture file (net_pcap replays files; "
                    "`nfkit dump` reads streams)"), ETHERNET
    try:
        with PcapReader(path) as r:
            lt = ETHERNET if r.linktype is None else r.linktype
    except PcapFormatError as exc:
        return f": {exc.reason}", ETHERNET
    if lt == ETHERNET or (convert and lt in DECODED):
        return None, lt
    if convert:
        return (f": link type {describe(lt)}: linktype=ethernet converts raw IP, LINUX_SLL, "
                "LINUX_SLL2, NULL and LOOP, not this one"), lt
    return (f": link type {describe(lt)}: only link type {describe(ETHERNET)} is read here"
            + (" (add linktype=ethernet to the port's args to receive its packets as "
               "Ethernet frames)" if lt in DECODED else "")), lt


def _writer(cfg: "PortConfig", path: Path, generated: bool, resume: bool,
            pcapng: bool) -> PcapWriter:
    """The tx file of a queue: new, or (a restarted worker) continued -- or, when it cannot
    be continued, a new file beside it, said in the log.  A name the config gives is
    opened in place (it may be a FIFO or a device), never through a link; a per-queue
    name nfkit made up is replaced whatever holds it."""
    if not resume:
        return PcapWriter(path, mode="n" if generated else "w", pcapng=pcapng)
    try:
        w = PcapWriter(path, mode="a", pcapng=pcapng)
    except PcapWriteError as exc:
        if exc.os_error is not None:
            raise
        for n in range(1, 1000):
            other = path.with_name(f"{path.stem}.{n}{path.suffix}")
            if not os.path.lexists(other):
                log.warning("port %s: %s; writing %s instead", cfg.name, exc, other)
                return PcapWriter(other, mode="x", pcapng=pcapng)
        raise
    log.info("port %s: %s continued after a restart (%d packets there%s)", cfg.name, path,
             w.resumed_packets, f", a cut-short last record of {w.repaired_bytes} bytes "
             "removed" if w.repaired_bytes else "")
    return w


def _open(cfg: "PortConfig", port: Port, args: list[tuple[str, str]]) -> None:
    known = {"rx_pcap", "tx_pcap", "tx_pcapng", "rx_iface", "tx_iface", "iface", "infinite_rx",
             "loop", "linktype"}
    unknown = sorted({k for k, _ in args} - known)
    if unknown:
        raise PortError(f"port {cfg.name} ({cfg.device}): unknown argument(s) {unknown}; "
                        f"known: {', '.join(sorted(known))}")
    base = port.base_dir or Path(os.getcwd())
    rx = [base / v for k, v in args if k == "rx_pcap"]
    txs = [base / v for k, v in args if k in ("tx_pcap", "tx_pcapng")]
    pcapng = any(k == "tx_pcapng" or (k == "tx_pcap" and v.endswith(".pcapng"))
                 for k, v in args)
    opts = dict(args)
    if len(txs) > 1:
        raise PortError(f"port {cfg.name} ({cfg.device}): tx_pcap given {len(txs)} times; "
                        "give it once (queues write one file each)")
    convert = opts.get("linktype", "").lower()
    if convert not in ("", "ethernet"):
        raise PortError(f"port {cfg.name} ({cfg.device}): linktype={opts['linktype']}: the "
                        "port carries Ethernet frames; linktype=ethernet converts to them")
    linktypes: dict[Path, int] = {}
    for f in rx:
        problem, lt = _input_problem(f, bool(convert))
        if problem is not None:
            raise PortError(f"port {cfg.name} ({cfg.device}): rx_pcap file {f}{problem}")
        if lt != ETHERNET:
            linktypes[f] = lt
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
            writer = (_writer(cfg, _queue_file(txs[0], i, n), n > 1, port.resume, pcapng)
                      if txs else None)
            rx_sock = _raw_socket(cfg, rx_if, True) if rx_if and i == 0 else None
            if tx_if and tx_if == rx_if and rx_sock is not None:
                tx_sock = rx_sock      # one socket: it does not receive what it sends
            else:
                tx_sock = _raw_socket(cfg, tx_if, False) if tx_if else None
            port.queues[core] = PcapQueue(port, core, i, rx[i::n] if rx else [], loops, writer,
                                          tx_sock, rx_sock, linktypes)
    except (OSError, PcapError) as exc:
        for q in port.queues.values():
            q.close()
        raise PortError(f"port {cfg.name} ({cfg.device}): {exc}") from None


DRIVER = Driver("pcap", r"net_pcap\d+", _open)
