"""The runtime: builds ports and the mempool from a config, installs pipelines on cores,
runs them, handles signals, timers and shutdown (capsule's ``Runtime``).

With one core (or ``[workers] mode = "single"``, or in-process ring ports) every core's
executor runs in this process, round robin: each :class:`CoreExecutor` owns its pipelines
and timers, and the runtime polls them in turn.  With more cores, ``execute()`` forks one
pinned worker process per core besides the master (:mod:`nfkit.multicore`,
docs/runtime.md); the app's calls are the same either way.  What the runtime checks is what capsule checks: a pipeline for a core
that is not configured is an error naming the core, and so is a port pipeline on a core
that serves no port.
"""

from __future__ import annotations

import heapq
import logging
import signal
import time
import traceback
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable

from .batch import Pipeline
from .buffers import Mempool, set_default_pool
from .config import RuntimeConfig, load_config
from .errors import NfkitError
from .ports.base import Port, PortError, PortQueue, open_port, prepare_backends

__all__ = ["Runtime", "RunError", "CoreError", "UnixSignal", "CoreExecutor", "RunResult"]

log = logging.getLogger("nfkit.runtime")


class RunError(NfkitError):
    """The runtime cannot do what the app asked (unknown port, core, failing installer)."""


class CoreError(RunError):
    """A core id that the config does not have, or that serves no port."""


class UnixSignal(IntEnum):
    """The signals an app can react to (``set_on_signal``)."""

    SIGHUP = signal.SIGHUP
    SIGINT = signal.SIGINT
    SIGTERM = signal.SIGTERM


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    interval: float = field(compare=False)
    fn: Callable[[], Any] = field(compare=False)
    name: str = field(compare=False)


class CoreExecutor:
    """The work of one core: pipelines polled round robin, periodic work on timers.

    ``poll()`` runs every pipeline once and returns how many packets they received;
    ``run_timers(now)`` runs what is due.  Exceptions escaping a periodic task are logged
    (rate limited by the pipeline machinery for packets; here once per occurrence) and the
    task keeps its schedule.
    """

    def __init__(self, core: int) -> None:
        self.core = core
        self.pipelines: list[Pipeline] = []
        self._timers: list[_Timer] = []
        self._seq = 0
        self.busy_polls = 0
        self.idle_polls = 0

    def add_pipeline(self, pipeline: Pipeline) -> None:
        """Run ``pipeline`` on this core from now on (in the order added)."""
        self.pipelines.append(pipeline)

    def add_timer(self, fn: Callable[[], Any], interval: float, name: str, start: float) -> None:
        """Run ``fn`` every ``interval`` seconds, the first time ``interval`` after ``start``."""
        self._seq += 1
        heapq.heappush(self._timers, _Timer(start + interval, self._seq, interval, fn, name))

    def poll(self) -> int:
        """Run every pipeline once; the packets they handled (0: an idle round, counted as such)."""
        work = 0
        for p in self.pipelines:
            work += p.run_once()
        if work:
            self.busy_polls += 1
        else:
            self.idle_polls += 1
        return work

    def run_timers(self, now: float) -> int:
        """Run every timer that is due; returns how many ran."""
        ran = 0
        timers = self._timers
        while timers and timers[0].due <= now:
            t = heapq.heappop(timers)
            try:
                t.fn()
            except Exception:
                log.exception("core %d: periodic %s failed", self.core, t.name)
            ran += 1
            # Keep the cadence; if we fell far behind, skip missed ticks rather than burst.
            t.due += t.interval
            if t.due <= now:
                t.due = now + t.interval
            heapq.heappush(timers, t)
        return ran

    def next_due(self) -> float | None:
        """When the next timer is due (``time.monotonic()`` seconds), None without timers."""
        return self._timers[0].due if self._timers else None


@dataclass
class RunResult:
    """How ``execute()`` ended and what went through."""

    reason: str
    seconds: float
    pipelines: dict[str, dict[str, int]]
    ports: dict[str, dict[str, int]]
    #: with worker processes: how each core ended ("stopped", "failed", "killed after ...")
    cores: dict[int, str] = field(default_factory=dict)

    @property
    def signal(self) -> UnixSignal | None:
        """The signal that stopped the run, None when something else did."""
        for s in UnixSignal:
            if self.reason == f"signal {s.name}":
                return s
        return None


Installer = Callable[[Any], Pipeline]


class Runtime:
    """Build with :meth:`build`, add pipelines and tasks, then :meth:`execute`."""

    def __init__(self, config: RuntimeConfig, pool: Mempool, ports: dict[str, Port]) -> None:
        self.config = config
        self.pool = pool
        self.ports = ports
        self.executors = {c: CoreExecutor(c) for c in config.all_cores()}
        self._installs: list[tuple[int, str, Callable[[], Pipeline]]] = []
        self._periodic: list[tuple[int, str, Callable[[], Any], float, bool]] = []
        self._on_signal: Callable[[UnixSignal], bool] = lambda sig: True
        self._stop_requested: str | None = None
        self.pipelines: list[Pipeline] = []
        #: "single" (every core in this process) or "processes" (workers; nfkit.multicore)
        self.mode = "single"
        #: (label "name#index", core, pipeline) of the pipelines this process installed
        self._placed: list[tuple[str, int, Pipeline]] = []
        self._dumps: list[Any] = []            # pcap dump writers (nfkit.pcap_dump)
        self._worker_core: int | None = None   # set in a worker process
        self._metrics: Any = None
        self._runner: Any = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, config: "RuntimeConfig | str | Path") -> "Runtime":
        """Create the mempool and open every port of ``config`` (a config or a TOML path)."""
        if not isinstance(config, RuntimeConfig):
            config = load_config(config)
        _setup_logging(config.log_level)
        from .multicore import placeholder_port, use_processes
        procs = use_processes(config)
        pool = Mempool(capacity=config.mempool.capacity,
                       name=f"mempool{config.master_core}" if procs else "mempool0")
        set_default_pool(pool)
        log.info("%s: mempool of %d buffers; cores %s (master %d)", config.app_name,
                 pool.capacity, config.all_cores(), config.master_core)
        ports: dict[str, Port] = {}
        try:
            prepare_backends(config)   # EAL, when a port goes through DPDK (config.backend)
            for i, pc in enumerate(config.ports):
                if not procs:
                    port = open_port(pc, pool, config.batch_size, i, config.base_dir,
                                     backend=config.backend)
                elif config.master_core in pc.cores:   # the master's own queue; workers open theirs
                    port = open_port(pc, pool, config.batch_size, i, config.base_dir,
                                     cores=frozenset({config.master_core}), backend=config.backend)
                else:
                    port = placeholder_port(pc, pool, config, i)
                ports[pc.name] = port
                log.info("port %s: %s (%s driver), %d queue(s) on cores %s, mac %s", pc.name,
                         pc.device, port.driver, len(port.queues), list(port.queues), port.mac_addr)
        except BaseException:
            for p in ports.values():  # no half-open state: close what was opened
                try:
                    p.close()
                except Exception:
                    log.exception("port %s: close after a failed start", p.name)
            raise
        rt = cls(config, pool, ports)
        rt.mode = "processes" if procs else "single"
        return rt

    def _executor(self, core: int) -> CoreExecutor:
        ex = self.executors.get(core)
        if ex is None:
            raise CoreError(f"core {core} is not found (configured cores: {sorted(self.executors)})")
        return ex

    def _queues_of(self, core: int) -> dict[str, PortQueue]:
        """The queues of ``core`` in this process (checks the core serves a port)."""
        self._executor(core)
        if not any(core in pc.cores for pc in self.config.ports):
            raise CoreError(f"core {core} is not assigned to any ports")
        return {name: p.queues[core] for name, p in self.ports.items() if core in p.queues}

    def port(self, name: str) -> Port:
        """The port named ``name`` in the config; a :class:`PortError` naming the configured ports otherwise."""
        try:
            return self.ports[name]
        except KeyError:
            raise PortError(f"port {name} is not found (configured ports: "
                            f"{', '.join(self.ports) or 'none'})") from None

    # -- what the app adds --------------------------------------------------------------
    def set_on_signal(self, handler: Callable[[UnixSignal], bool]) -> "Runtime":
        """``handler(sig)`` for SIGHUP, SIGINT, SIGTERM: return True to stop, False to keep
        running.  The default stops on any of them."""
        self._on_signal = handler
        return self

    def add_pipeline_to_port(self, port: str, installer: Callable[[PortQueue], Pipeline]) -> "Runtime":
        """``installer(queue)`` is called for each queue of ``port``, on that queue's core."""
        self.port(port)
        for core in self.config.port(port).cores:
            self._executor(core)
            # The queue is looked up when the installer runs: in the process of its core.
            self._installs.append((core, _name(installer),
                                   lambda core=core: installer(self.ports[port].queues[core])))
        return self

    def add_pipeline_to_core(self, core: int, installer: Callable[[dict[str, PortQueue]], Pipeline]) -> "Runtime":
        """``installer({port name: queue})`` gets the queues of every port on ``core``."""
        self._queues_of(core)
        self._installs.append((core, _name(installer), lambda: installer(self._queues_of(core))))
        return self

    def add_periodic_pipeline_to_core(self, core: int, installer: Callable[[dict[str, PortQueue]], Pipeline],
                                      interval: float) -> "Runtime":
        """Run the pipeline ``installer`` builds once every ``interval`` seconds (the first
        time after one interval): packet generators (see :func:`nfkit.poll_fn`)."""
        self._queues_of(core)
        _check_interval(interval)
        self._periodic.append((core, _name(installer), lambda: installer(self._queues_of(core)),
                               float(interval), True))
        return self

    def add_periodic_task_to_core(self, core: int, task: Callable[[], Any], interval: float) -> "Runtime":
        """Call ``task()`` every ``interval`` seconds on ``core`` (any configured core)."""
        self._executor(core)
        _check_interval(interval)
        self._periodic.append((core, _name(task), lambda: task, float(interval), False))
        return self

    def add_kni_rx_pipeline_to_port(self, port: str, installer: Callable[[Any, PortQueue], Pipeline]) -> "Runtime":
        """``installer(kni_rx, queue)`` builds the pipeline that polls the packets the kernel
        sends out of ``port``'s KNI (``kni = true``), e.g. ``nfkit.splice`` to send them out
        of the port.  It runs on the port's first core, always (capsule picks a core
        arbitrarily).  Errors are capsule's: :class:`~nfkit.ports.tap.KniDisabled` (no KNI),
        :class:`~nfkit.ports.tap.KniNotAcquired` (the receive handle is taken already)."""
        from .ports.tap import KniDisabled, KniNotAcquired
        self.port(port)
        pc = self.config.port(port)
        if not pc.kni:
            raise KniDisabled(f"KNI is not enabled for port {port} (set kni = true in its [[ports]] entry)")
        taken: set[str] = self.__dict__.setdefault("_kni_rx_taken", set())
        if port in taken:
            raise KniNotAcquired(f"port {port}: the KNI receive handle is taken already "
                                 "(another core owns the handle)")
        taken.add(port)
        core = pc.cores[0]
        self._executor(core)
        # Looked up when the installer runs: in the process of the port's first core.
        self._installs.append((core, _name(installer), lambda: installer(
            self.ports[port].kni.take_rx(), self.ports[port].queues[core])))
        return self

    def _close_ports(self) -> list[Exception]:
        errors = []
        for p in self.ports.values():
            try:
                p.close()
            except Exception as exc:
                errors.append(exc)
        return errors

    def close(self) -> None:
        """Close every port without running (after a failed set-up); idempotent."""
        errors = self._close_ports()
        if errors:
            raise PortError("; ".join(str(e) for e in errors))

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run loop to end after the current round (from a task or pipeline)."""
        self._stop_requested = reason

    # -- running ------------------------------------------------------------------------
    def _install(self, start: float, cores: set[int] | None = None) -> None:
        """Call the installers of ``cores`` (None: every core), in the order they were
        added; pipelines are labelled ``name#index`` by their place in that order, the same
        in every process."""
        index = 0
        for core, name, make in self._installs:
            if cores is None or core in cores:
                pipeline = self._call_installer(core, name, make)
                self.executors[core].add_pipeline(pipeline)
                self.pipelines.append(pipeline)
                self._placed.append((f"{pipeline.name}#{index}", core, pipeline))
            index += 1
        for core, name, make, interval, is_pipeline in self._periodic:
            if cores is not None and core not in cores:
                index += is_pipeline
                continue
            obj = self._call_installer(core, name, make) if is_pipeline else make()
            if is_pipeline:
                self.pipelines.append(obj)
                self._placed.append((f"{obj.name}#{index}", core, obj))
                index += 1
                fn = obj.run_once
            else:
                fn = obj
            self.executors[core].add_timer(fn, interval, name, start)
        for core, ex in self.executors.items():
            if cores is not None and core not in cores:
                continue
            log.debug("core %d initialised: %d pipeline(s), %d timer(s)", core,
                      len(ex.pipelines), len(ex._timers))

    @staticmethod
    def _call_installer(core: int, name: str, make: Callable[[], Any]) -> Any:
        try:
            pipeline = make()
        except Exception as exc:
            raise RunError(f"core {core}: installer {name} failed: {type(exc).__name__}: {exc}\n"
                                + "".join(traceback.format_exception(exc))) from exc
        if not isinstance(pipeline, Pipeline):
            raise RunError(f"core {core}: installer {name} returned {type(pipeline).__name__}, "
                                "not a Pipeline (did it forget .send(...)?)")
        return pipeline

    @property
    def metrics(self) -> Any:
        """This runtime's :class:`~nfkit.metrics.Metrics`: ``runtime.metrics.snapshot()``
        sums every core's counters (workers' at most ``[metrics] interval`` old)."""
        if self._metrics is None:
            from .metrics import Metrics
            self._metrics = Metrics(self)
        return self._metrics

    def _local_cores(self) -> list[int]:
        """The cores whose executors run in this process."""
        if self._worker_core is not None:
            return [self._worker_core]
        if self.mode == "processes":
            return [self.config.master_core]
        return sorted(self.executors)

    def _stop_reason(self, pending: list[int], now: float, deadline: float | None) -> str | None:
        """Why a run loop must end now -- a signal the handler says stops on, :meth:`stop`,
        the duration -- or None to go on.  Takes one pending signal per call."""
        if pending:
            sig = UnixSignal(pending.pop(0))
            log.info("received %s", sig.name)
            if self._on_signal(sig):
                return f"signal {sig.name}"
        if self._stop_requested:
            return self._stop_requested
        if deadline is not None and now >= deadline:
            return "duration"
        return None

    def execute(self, idle_sleep: float = 0.0005) -> RunResult:
        """Run until a signal handler says stop, ``duration`` passes, the app calls
        :meth:`stop`, or (``stop_when_drained``) every pcap input is consumed.

        Every port is closed on the way out, whatever the reason, so output files are
        complete.  An idle round (no packets anywhere) sleeps ``idle_sleep`` seconds after
        a run of empty polls, instead of burning a core (0: busy-poll).

        With worker processes (``self.mode == "processes"``) this runs
        :func:`nfkit.multicore.run_processes`; ``[workers]`` then sets the idle back-off.
        """
        if self.mode == "processes":
            from .multicore import run_processes
            return run_processes(self)
        cfg = self.config
        start = time.monotonic()
        pending: list[int] = []
        old_handlers: dict[int, Any] = {}
        reason = "stopped"
        stop_http = None
        try:
            self._install(start)
            if cfg.pcap_dump:
                from .pcap_dump import attach_dumps
                self._dumps = attach_dumps(self.ports, cfg.pcap_dump_dir, cfg.base_dir)
            if cfg.metrics.listen:
                from .metrics import serve
                stop_http = serve(self.metrics, *cfg.metrics.address())
            try:
                for s in UnixSignal:
                    old_handlers[s] = signal.signal(s, lambda signum, frame: pending.append(signum))
            except ValueError:  # not the main thread: no signal handling
                log.warning("execute() outside the main thread: signals are not handled")
            deadline = start + cfg.duration if cfg.duration else None
            log.info("%s: running%s", cfg.app_name,
                     f" for {cfg.duration}s" if cfg.duration else " (Ctrl-C to stop)")
            executors = list(self.executors.values())
            # Inputs that end (pcap files); stop_when_drained waits for all of them.
            file_sources = [q for p in self.ports.values() for q in p.queues.values()
                            if _is_file_source(q)]
            drain = cfg.stop_when_drained and bool(file_sources)
            if cfg.stop_when_drained and not file_sources:
                log.warning("stop_when_drained has no effect: no port reads pcap files")
            empty_rounds = 0
            while True:
                work = 0
                for ex in executors:
                    work += ex.poll()
                now = time.monotonic()
                for ex in executors:
                    work += ex.run_timers(now)
                stop = self._stop_reason(pending, now, deadline)
                if stop is not None:
                    reason = stop
                    break
                if work:
                    empty_rounds = 0
                    continue
                empty_rounds += 1
                if drain and all(q.exhausted for q in file_sources):
                    reason = "drained"
                    break
                if idle_sleep and empty_rounds > 16:
                    nxt = min((t for t in (ex.next_due() for ex in executors) if t is not None),
                              default=now + idle_sleep)
                    time.sleep(max(0.0, min(idle_sleep, nxt - now)))
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            close_errors = self._close_ports()
            if self._dumps:
                from .pcap_dump import close_dumps
                close_errors += close_dumps(self._dumps)
                self._dumps = []
            if stop_http is not None:
                stop_http()
            elapsed = time.monotonic() - start
        result = RunResult(reason, elapsed,
                           {label: p.stats.as_dict() for label, _core, p in self._placed},
                           {n: p.counters().as_dict() for n, p in self.ports.items()})
        log.info("runtime terminated (%s) after %.2fs", reason, elapsed)
        if close_errors:
            raise with_result(PortError("; ".join(str(e) for e in close_errors)), result)
        return result


def with_result(exc: NfkitError, result: RunResult) -> NfkitError:
    """``exc`` carrying the counters of the run it ended (``exc.result``), as
    :class:`~nfkit.multicore.WorkerError` does: a run that failed at its end (an output it
    could not write) still reports what it did."""
    exc.result = result  # type: ignore[attr-defined]
    return exc


def _is_file_source(q: PortQueue) -> bool:
    return bool(getattr(q, "is_file_source", False))


def _check_interval(interval: float) -> None:
    if not interval > 0:
        raise RunError(f"a periodic interval must be positive, got {interval!r}")


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)


_LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def _setup_logging(level: str) -> None:
    """Apply the configured level to nfkit's loggers and, unless the app configured
    logging itself, to the root logger with a plain stderr handler (so the app's own
    loggers follow ``log_level`` too)."""
    logging.addLevelName(5, "TRACE")
    lvl = _LEVELS.get(level, logging.INFO)
    logging.getLogger("nfkit").setLevel(lvl)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=lvl)
