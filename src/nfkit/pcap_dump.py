"""pcap capture of every port queue (capsule's ``pcap-dump`` feature), without stalling
pipelines.

With ``pcap_dump = true`` in the config (or ``nfkit run --pcap-dump``), each process that
serves a port queue writes what the queue received and what was handed to it for
transmission to two files::

    port-<port>-core<core>-rx.pcap
    port-<port>-core<core>-tx.pcap

in ``pcap_dump_dir`` (default: the working directory, as capsule; a relative directory is
taken from the config file's directory).  The files are created anew when the queue is
opened -- an old file of that name, or a symbolic link planted there, is removed, never
written through -- and are complete once the runtime has stopped.  A worker restarted
after a failure continues its files (repairing a record the killed worker left half
written) instead of starting them afresh.

How it differs from capsule: capsule opened, appended to and closed the file on every burst
(a known cost, capsule-0.1.5-behaviour.md section 9); nfkit keeps each file open and
buffers records in memory (``buffer_bytes``, 256 KiB by default), handing them to the OS
in one write when the buffer fills and at shutdown.  A burst is copied into the buffer with
numpy (one copy per burst), so a capture costs a few microseconds per burst, measured in
docs/runtime.md.  TX capture happens when the pipeline hands the burst to the queue, before
the driver sends it, so packets the driver then drops (counted in ``tx_dropped``) are in
the capture too -- capsule records at the same point.  Timestamps are the capture time.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .pcap import PcapWriteError, PcapWriter

if TYPE_CHECKING:  # pragma: no cover
    from .buffers import Mbuf, Mempool
    from .ports.base import Port, PortQueue

__all__ = ["BufferedPcapWriter", "QueueDump", "dump_file_names", "attach_dumps"]

log = logging.getLogger("nfkit.pcap_dump")


class BufferedPcapWriter(PcapWriter):
    """A :class:`PcapWriter` that gathers records in memory and writes them in large
    chunks (on :meth:`flush`, when ``buffer_bytes`` is reached, and on :meth:`close`).

    Unlike the plain writer, a process killed between flushes loses what was buffered: the
    runtime closes dump writers on every orderly stop (signal, duration, error) first.
    """

    def __init__(self, path: str | os.PathLike[str], buffer_bytes: int = 256 * 1024,
                 **kwargs: Any) -> None:
        self._pending: list[bytes | memoryview] = []
        self._pending_bytes = 0
        self.buffer_bytes = buffer_bytes
        super().__init__(path, **kwargs)
        self._flush_pending()     # the global header is on disk from the start
        if self.failed is not None:
            self.close()          # raises it: a dump that cannot even start is an error

    #: the write that failed (a full disk): the file ends at the record boundary before
    #: it, later records are not written, and :meth:`close` raises it
    failed: PcapWriteError | None = None

    def _write(self, data: bytes | memoryview) -> None:
        if self._f.closed:
            raise ValueError(f"{self.path}: write to a closed PcapWriter")
        if self.failed is not None:
            return
        # PcapWriter hands over freshly built records (a new array or bytes per call), so
        # keeping a reference is safe without a copy.
        mv = memoryview(data).cast("B")
        self._pending.append(mv)
        self._pending_bytes += len(mv)
        if self._pending_bytes >= self.buffer_bytes:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            try:
                PcapWriter._write(self, data)
            except PcapWriteError as exc:   # never into the pipeline that captured it
                if self.failed is None and len(data) > 24:
                    log.error("pcap dump: %s; the capture stops there", exc)
                self.failed = exc

    def flush(self, sync: bool = False) -> None:
        """Hand every buffered record to the OS (``sync``: and wait for the disk)."""
        self._flush_pending()
        super().flush(sync)

    def close(self) -> None:
        """Write what is buffered and close the file (idempotent)."""
        if not self._f.closed:
            try:
                self._flush_pending()
            finally:
                super().close()
            if self.failed is not None:
                raise PcapWriteError(self.path, f"{self.failed.reason}: the capture ends at "
                                     "the record before, later packets were not captured",
                                     self.failed.os_error)


def _open_dump(path: Path, resume: bool) -> BufferedPcapWriter:
    """A dump file: continued (a restarted worker), else created anew -- the name is ours,
    so whatever holds it is removed first (a planted link unlinked, not followed)."""
    return BufferedPcapWriter(path, mode="a" if resume else "n")


def dump_file_names(port: str, core: int) -> tuple[str, str]:
    """The rx and tx capture file names of ``port``'s queue on ``core`` (capsule's names)."""
    return f"port-{port}-core{core}-rx.pcap", f"port-{port}-core{core}-tx.pcap"


class QueueDump:
    """Captures one queue: wraps its receive/transmit methods (instance attributes, so
    queues that are not captured pay nothing) and writes to two buffered pcap files."""

    def __init__(self, q: "PortQueue", directory: Path, resume: bool = False) -> None:
        rx_name, tx_name = dump_file_names(q.port.name, q.core)
        directory.mkdir(parents=True, exist_ok=True)
        self.queue = q
        self.rx = _open_dump(directory / rx_name, resume)
        try:
            self.tx = _open_dump(directory / tx_name, resume)
        except BaseException:
            self.rx.close()
            raise
        self._wrap()

    def _wrap(self) -> None:
        q = self.queue
        rx_w, tx_w = self.rx, self.tx
        receive, receive_slots = q.receive, q.receive_slots
        transmit, transmit_slots = q.transmit, q.transmit_slots

        def dump_receive(max_packets: int | None = None) -> "list[Mbuf]":
            mbufs = receive(max_packets)
            if mbufs:
                rx_w.write_mbufs(mbufs, timestamps_ns=time.time_ns())
            return mbufs

        def dump_receive_slots(max_packets: int | None = None) -> Any:
            batch = receive_slots(max_packets)
            if len(batch):
                rx_w.write_mbufs(batch.slots, batch.pool, timestamps_ns=time.time_ns())
            return batch

        def dump_transmit(mbufs: "list[Mbuf]") -> None:
            if mbufs:
                tx_w.write_mbufs(mbufs, timestamps_ns=time.time_ns())
            transmit(mbufs)

        def dump_transmit_slots(pool: "Mempool", slots: np.ndarray) -> None:
            if len(slots):
                tx_w.write_mbufs(slots, pool, timestamps_ns=time.time_ns())
            transmit_slots(pool, slots)

        q.receive = dump_receive              # type: ignore[method-assign]
        q.receive_slots = dump_receive_slots  # type: ignore[method-assign]
        q.transmit = dump_transmit            # type: ignore[method-assign]
        q.transmit_slots = dump_transmit_slots  # type: ignore[method-assign]

    def close(self) -> None:
        """Flush and close both files (they are complete afterwards)."""
        try:
            self.rx.close()
        finally:
            self.tx.close()


def attach_dumps(ports: "dict[str, Port]", directory: str | os.PathLike[str] | None,
                 base_dir: Path | None = None, resume: bool = False) -> list[QueueDump]:
    """Capture every queue of ``ports`` (the queues this process serves) into ``directory``
    (None: the working directory, as capsule; relative: from ``base_dir``, the config
    file's directory, like the file names in port arguments).  ``resume``: continue the
    files (a restarted worker)."""
    d = Path.cwd() if directory is None else (base_dir or Path.cwd()) / directory
    dumps: list[QueueDump] = []
    for p in ports.values():
        for q in p.queues.values():
            try:
                dumps.append(QueueDump(q, d, resume))
            except BaseException:
                close_dumps(dumps)
                raise
            rx_name, tx_name = dump_file_names(p.name, q.core)
            log.info("pcap dump: port %s core %d -> %s, %s", p.name, q.core, d / rx_name,
                     d / tx_name)
    return dumps


def close_dumps(dumps: list[QueueDump]) -> list[Exception]:
    """Close every dump, collecting (not raising) errors."""
    errors: list[Exception] = []
    for dmp in dumps:
        try:
            dmp.close()
        except Exception as exc:
            errors.append(exc)
    return errors
