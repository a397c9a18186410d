"""Runtime metrics: per port queue, pipeline, core and mempool, summed over every process,
readable from Python (``runtime.metrics``) and served to Prometheus (``[metrics] listen``).

How the numbers travel (docs/runtime.md, "Metrics"): the hot paths only bump plain Python
integers that already exist (:class:`~nfkit.ports.base.PortCounters`,
:class:`~nfkit.batch.PipelineStats`, the executors' poll counts), so metrics cost nothing
per packet.  Every ``[metrics] interval`` seconds each worker process copies its numbers into
its slot of a shared-memory block (:class:`SnapshotSlots`, a seqlock per slot, so neither
side ever waits for the other); the master reads its own numbers live and the workers'
from their slots.  This is the equivalent of prometheus-client's multiprocess mode without
its per-increment file writes.  A worker's last snapshot is also kept when it exits or is
restarted, so counters never go backwards.

Metric names (Prometheus adds ``_total`` to counters):

==================================  ======================  ==================================
name                                labels                  what
==================================  ======================  ==================================
``nfkit_port_packets_total``        port, core, dir         packets received (rx) / sent (tx)
``nfkit_port_octets_total``         port, core, dir         bytes received / sent
``nfkit_port_dropped_total``        port, core, dir         rx: no buffer / oversize; tx: not sent
``nfkit_port_errors_total``         port, core, dir         receive / transmit errors
``nfkit_pipeline_runs_total``       pipeline, core          bursts polled
``nfkit_pipeline_received_total``   pipeline, core          packets taken in
``nfkit_pipeline_packets_total``    pipeline, core,         packets by how they left:
                                    disposition             act (sent), emit, drop, abort
``nfkit_core_polls_total``          core, kind              poll rounds with work (busy) / not (idle)
``nfkit_mempool_in_use``            pool, core              allocated buffers (gauge)
``nfkit_mempool_capacity``          pool, core              buffers in the pool (gauge)
``nfkit_worker_restarts_total``     core                    workers started again after a failure
==================================  ======================  ==================================
"""

from __future__ import annotations

import collections
import gzip
import ipaddress
import logging
import mmap
import os
import pickle
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .batch import PipelineStats
from .errors import NfkitError
from .ports.base import PortCounters

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["MetricsError", "Snapshot", "SnapshotSlots", "Metrics", "MetricsServer", "collect",
           "serve"]

log = logging.getLogger("nfkit.metrics")

#: The per-queue port counters, as :class:`~nfkit.ports.base.PortCounters` declares them.
PORT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PortCounters))
PIPELINE_FIELDS: tuple[str, ...] = PipelineStats.__slots__


class MetricsError(NfkitError):
    """The metrics endpoint cannot be served (address in use, bad address...)."""


@dataclass
class Snapshot:
    """The numbers of one process (or, merged, of all): plain, picklable data.

    ``ports[(port, core)]`` and ``pipelines[(label, core)]`` map to counter dicts
    (:data:`PORT_FIELDS`, :data:`PIPELINE_FIELDS`); ``cores[core] = (busy, idle)`` polls;
    ``mempools[(pool, core)] = (capacity, in_use)``; ``restarts[core]``.
    """

    ports: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    pipelines: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    cores: dict[int, tuple[int, int]] = field(default_factory=dict)
    mempools: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    restarts: dict[int, int] = field(default_factory=dict)
    time: float = 0.0

    def add(self, other: "Snapshot", counters_only: bool = False) -> None:
        """Sum ``other`` into this one (keys present in both are added up).  With
        ``counters_only`` gauges (mempools) are left out: a retired worker's pool is gone."""
        for key, c in other.ports.items():
            mine = self.ports.setdefault(key, dict.fromkeys(PORT_FIELDS, 0))
            for k, v in c.items():
                mine[k] = mine.get(k, 0) + v
        for key, c in other.pipelines.items():
            mine = self.pipelines.setdefault(key, dict.fromkeys(PIPELINE_FIELDS, 0))
            for k, v in c.items():
                mine[k] = mine.get(k, 0) + v
        for core, (busy, idle) in other.cores.items():
            b, i = self.cores.get(core, (0, 0))
            self.cores[core] = (b + busy, i + idle)
        if not counters_only:
            self.mempools.update(other.mempools)
        for core, n in other.restarts.items():
            self.restarts[core] = self.restarts.get(core, 0) + n
        self.time = max(self.time, other.time)

    # -- summaries ------------------------------------------------------------------------
    def port_totals(self) -> dict[str, dict[str, int]]:
        """Counters per port, summed over its queues (cores): what ``RunResult.ports`` holds."""
        out: dict[str, dict[str, int]] = {}
        for (port, _core), c in sorted(self.ports.items()):
            mine = out.setdefault(port, dict.fromkeys(PORT_FIELDS, 0))
            for k in PORT_FIELDS:
                mine[k] += c.get(k, 0)
        return out

    def pipeline_totals(self) -> dict[str, dict[str, int]]:
        """Counters per pipeline label (``name#index``), summed over cores."""
        out: dict[str, dict[str, int]] = {}
        for (label, _core), c in sorted(self.pipelines.items(), key=_label_order):
            mine = out.setdefault(label, dict.fromkeys(PIPELINE_FIELDS, 0))
            for k in PIPELINE_FIELDS:
                mine[k] += c.get(k, 0)
        return out

    def total(self, counter: str) -> int:
        """One port counter summed over every port and queue, e.g. ``total("tx_packets")``."""
        return sum(c.get(counter, 0) for c in self.ports.values())


def _label_order(item: tuple[tuple[str, int], Any]) -> tuple[int, str, int]:
    """Pipelines in install order: labels end in ``#<index>``."""
    (label, core), _ = item
    _, _, idx = label.rpartition("#")
    return (int(idx) if idx.isdigit() else 1 << 30, label, core)


def collect(runtime: "Runtime", cores: list[int]) -> Snapshot:
    """The numbers of this process: its ports' queues, its pipelines, the executors of
    ``cores`` (the cores this process runs) and its pool (under its first core)."""
    snap = Snapshot(time=time.time())
    for name, p in runtime.ports.items():
        for core, q in p.queues.items():
            snap.ports[(name, core)] = q.counters.as_dict()
    for label, core, pl in runtime.placed:
        snap.pipelines[(label, core)] = pl.stats.as_dict()
    for core in cores:
        ex = runtime.executors[core]
        snap.cores[core] = (ex.busy_polls, ex.idle_polls)
    pool = runtime.pool
    for core in cores[:1]:
        snap.mempools[(pool.name, core)] = (pool.capacity, pool.in_use)
    return snap


class SnapshotSlots:
    """Fixed-size slots in an anonymous shared mapping, one per worker, created before the
    workers are forked.  A worker :meth:`publish` es pickled snapshots into its slot; the
    master :meth:`read` s them.  Each slot is a seqlock: an even sequence number means the
    slot is stable; the reader retries while it is odd or changed under it, the writer never
    waits.  ``slot_bytes`` bounds one snapshot (a larger one is skipped with a warning).
    """

    _HDR = struct.Struct("<QQ")   # sequence, length

    def __init__(self, n: int, slot_bytes: int = 1 << 20) -> None:
        self.n = n
        self.slot_bytes = slot_bytes
        self._mem = mmap.mmap(-1, max(1, n) * slot_bytes)
        self._warned = False

    def publish(self, index: int, snap: Snapshot) -> None:
        """Write ``snap`` into slot ``index`` (a worker's own slot; a snapshot too large for the slot is skipped and logged once)."""
        data = pickle.dumps(snap, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) + self._HDR.size > self.slot_bytes:
            if not self._warned:
                log.warning("metrics snapshot of %d bytes does not fit its %d-byte slot; skipped",
                            len(data), self.slot_bytes)
                self._warned = True
            return
        base = index * self.slot_bytes
        mem = self._mem
        seq, _ = self._HDR.unpack_from(mem, base)
        self._HDR.pack_into(mem, base, seq + 1, 0)            # odd: being written
        mem[base + 16:base + 16 + len(data)] = data
        self._HDR.pack_into(mem, base, seq + 2, len(data))    # even: stable

    def clear(self, index: int) -> None:
        """Empty slot ``index`` (its writer is gone): :meth:`read` gives None until the
        next :meth:`publish`."""
        self._HDR.pack_into(self._mem, index * self.slot_bytes, 0, 0)

    def read(self, index: int) -> Snapshot | None:
        """The last snapshot published in slot ``index`` (None: none yet)."""
        base = index * self.slot_bytes
        mem = self._mem
        for _ in range(1000):
            seq, n = self._HDR.unpack_from(mem, base)
            if seq & 1:
                time.sleep(0)
                continue
            if seq == 0:
                return None
            data = bytes(mem[base + 16:base + 16 + n])
            if self._HDR.unpack_from(mem, base)[0] != seq:
                continue
            try:
                return pickle.loads(data)
            except Exception:   # torn read that kept the sequence: try again
                continue
        return None

    def close(self) -> None:
        """Release the shared-memory block."""
        self._mem.close()


class Metrics:
    """What ``runtime.metrics`` gives: the merged numbers of every core, any time.

    ``snapshot()`` -> :class:`Snapshot` (the master's live numbers plus each worker's last
    published snapshot, at most ``[metrics] interval`` old); ``prometheus_text()`` -> the
    exposition text the HTTP endpoint serves.
    """

    def __init__(self, runtime: "Runtime", cores: Callable[[], list[int]]) -> None:
        self._runtime = runtime
        #: the provider of the cores this process runs (``Runtime.local_cores``)
        self._cores = cores
        #: extra sources (the multi-core runner adds its workers' snapshots here)
        self.sources: list[Callable[[], Iterable[Snapshot]]] = []
        #: the HTTP endpoint while :func:`serve` runs one (None otherwise)
        self.server: MetricsServer | None = None

    def runtime_config(self) -> Any:
        """The runtime's :class:`~nfkit.config.RuntimeConfig`."""
        return self._runtime.config

    def snapshot(self) -> Snapshot:
        """Every core's counters summed: the master's read live, the workers' from their slots (at most ``[metrics] interval`` old)."""
        total = Snapshot()
        total.add(collect(self._runtime, self._cores()))
        for source in self.sources:
            for snap in source():
                total.add(snap)
        return total

    def prometheus_text(self) -> str:
        """The metrics in Prometheus' text exposition format (what the endpoint serves)."""
        from prometheus_client import CollectorRegistry, generate_latest
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collector(self))
        return generate_latest(reg).decode()


class _Collector:
    """A prometheus-client custom collector over :meth:`Metrics.snapshot`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        s = self.metrics.snapshot()
        fams = {
            "packets": CounterMetricFamily("nfkit_port_packets", "Packets received (rx) or sent (tx) by a port queue",
                                           labels=["port", "core", "dir"]),
            "octets": CounterMetricFamily("nfkit_port_octets", "Bytes received (rx) or sent (tx) by a port queue",
                                          labels=["port", "core", "dir"]),
            "dropped": CounterMetricFamily("nfkit_port_dropped", "Packets a port queue dropped",
                                           labels=["port", "core", "dir"]),
            "errors": CounterMetricFamily("nfkit_port_errors", "Receive or transmit errors of a port queue",
                                          labels=["port", "core", "dir"]),
        }
        for (port, core), c in sorted(s.ports.items()):
            for d in ("rx", "tx"):
                for k in fams:
                    fams[k].add_metric([port, str(core), d], c.get(f"{d}_{k}", 0))
        yield from fams.values()
        runs = CounterMetricFamily("nfkit_pipeline_runs", "Bursts a pipeline polled",
                                   labels=["pipeline", "core"])
        rec = CounterMetricFamily("nfkit_pipeline_received", "Packets a pipeline took in",
                                  labels=["pipeline", "core"])
        pk = CounterMetricFamily("nfkit_pipeline_packets", "Packets by disposition (act: sent)",
                                 labels=["pipeline", "core", "disposition"])
        rep = CounterMetricFamily("nfkit_pipeline_replaced",
                                  "Packets replaced by a new buffer (the original freed; not a "
                                  "disposition)", labels=["pipeline", "core"])
        for (label, core), c in sorted(s.pipelines.items()):
            runs.add_metric([label, str(core)], c.get("runs", 0))
            rec.add_metric([label, str(core)], c.get("received", 0))
            for d in ("act", "emit", "drop", "abort"):
                pk.add_metric([label, str(core), d], c.get(d, 0))
            rep.add_metric([label, str(core)], c.get("replaced", 0))
        yield from (runs, rec, pk, rep)
        polls = CounterMetricFamily("nfkit_core_polls", "Poll rounds with work (busy) or without (idle)",
                                    labels=["core", "kind"])
        for core, (busy, idle) in sorted(s.cores.items()):
            polls.add_metric([str(core), "busy"], busy)
            polls.add_metric([str(core), "idle"], idle)
        yield polls
        used = GaugeMetricFamily("nfkit_mempool_in_use", "Allocated buffers", labels=["pool", "core"])
        cap = GaugeMetricFamily("nfkit_mempool_capacity", "Buffers in the pool", labels=["pool", "core"])
        for (pool, core), (capacity, in_use) in sorted(s.mempools.items()):
            used.add_metric([pool, str(core)], in_use)
            cap.add_metric([pool, str(core)], capacity)
        yield from (used, cap)
        rs = CounterMetricFamily("nfkit_worker_restarts", "Workers started again after a failure",
                                 labels=["core"])
        for core, n in sorted(s.restarts.items()):
            rs.add_metric([str(core)], n)
        yield rs


# -- the HTTP endpoint ------------------------------------------------------------------------
# One thread runs a selector loop over every connection (docs/runtime.md, "The metrics
# endpoint").  A thread per connection (prometheus-client's server) let 150 idle connections
# hold 153 threads, and four scrapers in a loop cut the master core's forwarding from 7.5 M to
# 2.2 M packets in 4 s: every request rendered the text again, each render and each request
# taking the GIL from the forwarding loop.  Now the work scraping can cause is bounded: one
# render per ``[metrics] interval`` at most (the workers' numbers are that old anyway), one
# response per MIN_GAP_S, and a fixed number of connections, each closed when idle.

#: connections served at once; one more closes the connection that has been idle longest
MAX_CONNECTIONS = 32
#: seconds a connection may stay without sending a complete request (or reading its answer)
IDLE_TIMEOUT_S = 10.0
#: bytes of request line + headers a request may have
MAX_REQUEST_BYTES = 8192
#: seconds between two responses, whoever asks (at most 20 responses per second in all)
MIN_GAP_S = 0.05

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            505: "HTTP Version Not Supported"}


class _Conn:
    __slots__ = ("sock", "inbuf", "out", "active", "close_after", "events")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.out = memoryview(b"")
        self.active = now            # last progress (bytes in or out)
        self.close_after = False     # close once ``out`` is sent (asked, or the peer's EOF)
        self.events = 0              # what the selector watches for


class MetricsServer:
    """``/metrics`` over HTTP/1.1 from one daemon thread (see the bounds above); the text is
    rendered at most once per ``cache_s``.  :meth:`stop` ends the thread and closes every
    connection.  Use :func:`serve`."""

    def __init__(self, metrics: Metrics, host: str, port: int, *, cache_s: float,
                 avoid_cpus: set[int]) -> None:
        self.metrics = metrics
        self.cache_s = cache_s
        self.avoid_cpus = set(avoid_cpus)
        # the module's bounds as they are now (tests lower them)
        self.idle_timeout = IDLE_TIMEOUT_S
        self.max_connections = MAX_CONNECTIONS
        self.max_request = MAX_REQUEST_BYTES
        self.min_gap = MIN_GAP_S
        where = f"[metrics] listen = \"{host}:{port}\""
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            self._listen = socket.socket(family, kind, proto)
        except OSError as exc:
            raise MetricsError(f"{where}: cannot serve: {exc.strerror or exc}") from None
        try:
            self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listen.bind(addr)
            self._listen.listen(256)
            self._listen.setblocking(False)
        except OSError as exc:
            self._listen.close()
            raise MetricsError(f"{where}: cannot serve: {exc.strerror or exc}") from None
        self.address: tuple[str, int] = self._listen.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listen, selectors.EVENT_READ)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._conns: dict[socket.socket, _Conn] = {}
        self._pending: collections.deque[_Conn] = collections.deque()
        self._next_response = 0.0
        self._body = b""
        self._body_gz = b""
        self._rendered = -1e9
        self._stopping = False
        #: where the thread runs: "CPUs [..]" or "nice 19 ..." (logged, and for the tests)
        self.placement = ""
        self._placed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="nfkit-metrics", daemon=True)
        self.thread.start()
        self._placed.wait(5)

    # -- the thread ----------------------------------------------------------------------
    def _place(self) -> None:
        """Off the forwarding cores: pinned to the CPUs no core of the config uses when there
        are any, else on the same CPUs at the lowest priority (nice 19: the scheduler gives
        a busy forwarding thread ~98 % of a shared CPU).  Linux sets both per thread."""
        tid = threading.get_native_id()
        free = set(range(os.cpu_count() or 1)) - self.avoid_cpus
        try:
            if not free:
                raise OSError("no CPU without a forwarding core")
            os.sched_setaffinity(tid, free)
            self.placement = f"CPUs {sorted(os.sched_getaffinity(tid))}"
        except OSError:                      # none free, or not ours (cgroup cpuset)
            try:
                os.setpriority(os.PRIO_PROCESS, tid, 19)
                self.placement = "nice 19, sharing the forwarding CPUs"
            except OSError as exc:
                self.placement = f"unchanged ({exc.strerror or exc})"
        self._placed.set()

    def _run(self) -> None:
        self._place()
        try:
            while not self._stopping:
                now = time.monotonic()
                timeout = min(1.0, self.idle_timeout / 4)
                if self._pending:
                    timeout = max(0.0, self._next_response - now)
                for key, mask in self._sel.select(timeout):
                    sock = key.fileobj
                    if sock is self._listen:
                        self._accept()
                    elif sock is self._wake_r:
                        self._stopping = True
                    elif sock in self._conns:
                        conn = self._conns[sock]          # type: ignore[index]
                        if mask & selectors.EVENT_READ:
                            self._read(conn)
                        if mask & selectors.EVENT_WRITE and sock in self._conns:
                            self._write(conn)
                now = time.monotonic()
                if self._pending and now >= self._next_response:
                    self._respond(self._pending.popleft(), now)
                    self._next_response = now + self.min_gap
                self._expire(now)
        except Exception:  # pragma: no cover - a bug here must not take the runtime down
            log.exception("metrics: the endpoint failed; it is no longer served")
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._sel.close()
            self._listen.close()
            self._wake_r.close()

    def _accept(self) -> None:
        # A bounded batch; the rest on the next round.  The thread gets the GIL about every
        # 5 ms from a busy forwarding loop, so a batch must outpace a connect loop, or the
        # backlog fills and the kernel drops SYNs (the client retries only after 1 s).
        for _ in range(64):
            try:
                sock, _ = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:           # EMFILE and the like: try again later
                log.warning("metrics: accept failed: %s", exc.strerror or exc)
                return
            if len(self._conns) >= self.max_connections:
                idle = [c for c in self._conns.values() if c not in self._pending]
                if not idle:
                    sock.close()
                    continue
                self._close(min(idle, key=lambda c: c.active))
            sock.setblocking(False)
            conn = _Conn(sock, time.monotonic())
            self._conns[sock] = conn
            self._watch(conn, selectors.EVENT_READ)

    def _watch(self, conn: _Conn, events: int) -> None:
        if events == conn.events:
            return
        if not events:
            self._sel.unregister(conn.sock)
        elif not conn.events:
            self._sel.register(conn.sock, events)
        else:
            self._sel.modify(conn.sock, events)
        conn.events = events

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._close(conn)
        if not data:                         # the peer is done sending: answer, then close
            if conn not in self._pending and not conn.out:
                return self._close(conn)
            conn.close_after = True
            return self._watch(conn, selectors.EVENT_WRITE if conn.out else 0)
        conn.active = time.monotonic()
        conn.inbuf += data
        if len(conn.inbuf) > 2 * self.max_request:   # far more than one request ahead
            self._close(conn)
        elif conn not in self._pending and not conn.out and (
                b"\r\n\r\n" in conn.inbuf or len(conn.inbuf) > self.max_request):
            self._pending.append(conn)

    def _respond(self, conn: _Conn, now: float) -> None:
        if conn.sock not in self._conns:
            return
        end = conn.inbuf.find(b"\r\n\r\n")
        if end < 0 or end + 4 > self.max_request:
            return self._send(conn, 431, b"request line and headers are limited to "
                              b"%d bytes\n" % self.max_request, close=True)
        head = bytes(conn.inbuf[:end]).decode("latin-1")
        del conn.inbuf[:end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return self._send(conn, 400 if len(parts) != 3 else 505, b"bad request line\n",
                              close=True)
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip().lower()
        keep = headers.get("connection", "keep-alive" if version == "HTTP/1.1" else "close")
        close = "close" in keep or "content-length" in headers or \
            "transfer-encoding" in headers   # a body we do not read: end the connection
        if method not in ("GET", "HEAD"):
            return self._send(conn, 405, b"only GET and HEAD\n", close=True,
                              extra="Allow: GET, HEAD\r\n")
        if target.split("?", 1)[0] not in ("/", "/metrics"):
            return self._send(conn, 404, b"the metrics are at /metrics\n", close=close)
        gzip_ok = "gzip" in headers.get("accept-encoding", "")
        try:
            body = self._text(now, gzip_ok)
        except Exception as exc:     # a collector bug: say so, keep serving
            log.exception("metrics: rendering the exposition text failed")
            return self._send(conn, 500, f"rendering failed: {exc}\n".encode(), close=close)
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
        self._send(conn, 200, body, close=close, head_only=method == "HEAD",
                   extra=f"Content-Type: {CONTENT_TYPE_LATEST}\r\n"
                   + ("Content-Encoding: gzip\r\n" if gzip_ok else ""))

    def _text(self, now: float, gzipped: bool) -> bytes:
        if now - self._rendered >= self.cache_s:
            self._body = self.metrics.prometheus_text().encode()
            self._body_gz = b""
            self._rendered = now
        if not gzipped:
            return self._body
        if not self._body_gz:
            self._body_gz = gzip.compress(self._body, compresslevel=1)
        return self._body_gz

    def _send(self, conn: _Conn, status: int, body: bytes, *, close: bool,
              head_only: bool = False, extra: str = "") -> None:
        if "Content-Type" not in extra:
            extra += "Content-Type: text/plain; charset=utf-8\r\n"
        head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Length: {len(body)}\r\n"
                f"{extra}Connection: {'close' if close or conn.close_after else 'keep-alive'}"
                "\r\n\r\n")
        conn.out = memoryview(head.encode("latin-1") + (b"" if head_only else body))
        conn.close_after = conn.close_after or close
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            return self._close(conn)
        if n:
            conn.active = time.monotonic()
            conn.out = conn.out[n:]
        if conn.out:
            return self._watch(conn, selectors.EVENT_WRITE)
        if conn.close_after:
            return self._close(conn)
        self._watch(conn, selectors.EVENT_READ)
        if b"\r\n\r\n" in conn.inbuf:        # a pipelined request is waiting
            self._pending.append(conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values()
                     if now - c.active > self.idle_timeout and c not in self._pending]:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if self._conns.pop(conn.sock, None) is None:
            return
        self._watch(conn, 0)
        conn.sock.close()

    def stop(self) -> None:
        """End the thread; every connection and the listening socket are closed."""
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self.thread.join(5)
        self._wake_w.close()


def serve(metrics: Metrics, host: str, port: int) -> Callable[[], None]:
    """Serve ``/metrics`` on ``host:port`` (``"0"`` or ``"0.0.0.0"``: every interface) from
    one thread off the forwarding cores (:class:`MetricsServer`); returns a function that
    stops it.  Raises :class:`MetricsError` when the address cannot be bound."""
    cfg = metrics.runtime_config()
    server = MetricsServer(metrics, host, port, cache_s=cfg.metrics.interval,
                           avoid_cpus=set(cfg.all_cores()))
    every = " (every interface)" if ipaddress.ip_address(server.address[0]).is_unspecified \
        else ""
    log.info("metrics: serving http://%s:%d/metrics%s; thread on %s",
             f"[{host}]" if ":" in host else host, port, every, server.placement)
    metrics.server = server

    def stop() -> None:
        server.stop()
        if metrics.server is server:
            metrics.server = None
    return stop
