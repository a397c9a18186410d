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

import logging
import mmap
import pickle
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .batch import PipelineStats
from .errors import NfkitError

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["MetricsError", "Snapshot", "SnapshotSlots", "Metrics", "collect", "serve"]

log = logging.getLogger("nfkit.metrics")

PORT_FIELDS = ("rx_packets", "rx_octets", "tx_packets", "tx_octets", "rx_dropped", "tx_dropped",
               "rx_errors", "tx_errors")
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


def collect(runtime: "Runtime") -> Snapshot:
    """The numbers of this process: its ports' queues, its pipelines, executors and pool."""
    snap = Snapshot(time=time.time())
    for name, p in runtime.ports.items():
        for core, q in p.queues.items():
            snap.ports[(name, core)] = q.counters.as_dict()
    for label, core, pl in runtime._placed:
        snap.pipelines[(label, core)] = pl.stats.as_dict()
    for core in runtime._local_cores():
        ex = runtime.executors[core]
        snap.cores[core] = (ex.busy_polls, ex.idle_polls)
    pool = runtime.pool
    for core in runtime._local_cores()[:1]:
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
        self._mem.close()


class Metrics:
    """What ``runtime.metrics`` gives: the merged numbers of every core, any time.

    ``snapshot()`` -> :class:`Snapshot` (the master's live numbers plus each worker's last
    published snapshot, at most ``[metrics] interval`` old); ``prometheus_text()`` -> the
    exposition text the HTTP endpoint serves.
    """

    def __init__(self, runtime: "Runtime") -> None:
        self._runtime = runtime
        #: extra sources (the multi-core runner adds its workers' snapshots here)
        self.sources: list[Callable[[], Iterator[Snapshot]]] = []

    def snapshot(self) -> Snapshot:
        total = Snapshot()
        total.add(collect(self._runtime))
        for source in self.sources:
            for snap in source():
                total.add(snap)
        return total

    def prometheus_text(self) -> str:
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


def serve(metrics: Metrics, host: str, port: int) -> Callable[[], None]:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns a function that
    stops the server.  Raises :class:`MetricsError` when the address cannot be bound."""
    from prometheus_client import CollectorRegistry, start_http_server
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(metrics))
    try:
        started = start_http_server(port, addr=host, registry=reg)
    except OSError as exc:
        raise MetricsError(f"[metrics] listen = \"{host}:{port}\": cannot serve: "
                           f"{exc.strerror or exc}") from None
    server = started[0] if isinstance(started, tuple) else None
    log.info("metrics: serving http://%s:%d/metrics", host, port)

    def stop() -> None:
        if server is not None:
            server.shutdown()
            server.server_close()
    return stop
