"""The runtime: builds ports and the mempool from a config, installs pipelines on cores,
runs them, handles signals, timers and shutdown (capsule's ``Runtime``).

This release runs every core's executor in one process, round robin: each
:class:`CoreExecutor` owns its pipelines and timers, and the runtime polls them in turn.
The multi-process executor (one pinned process per core) slots in behind the same
interface later.  What the runtime checks is what capsule checks: a pipeline for a core
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
from .ports.base import Port, PortError, PortQueue, open_port

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
        self.pipelines.append(pipeline)

    def add_timer(self, fn: Callable[[], Any], interval: float, name: str, start: float) -> None:
        """Run ``fn`` every ``interval`` seconds, the first time ``interval`` after ``start``."""
        self._seq += 1
        heapq.heappush(self._timers, _Timer(start + interval, self._seq, interval, fn, name))

    def poll(self) -> int:
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
        return self._timers[0].due if self._timers else None


@dataclass
class RunResult:
    """How ``execute()`` ended and what went through."""

    reason: str
    seconds: float
    pipelines: dict[str, dict[str, int]]
    ports: dict[str, dict[str, int]]

    @property
    def signal(self) -> UnixSignal | None:
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

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, config: "RuntimeConfig | str | Path") -> "Runtime":
        """Create the mempool and open every port of ``config`` (a config or a TOML path)."""
        if not isinstance(config, RuntimeConfig):
            config = load_config(config)
        _setup_logging(config.log_level)
        pool = Mempool(capacity=config.mempool.capacity, name="mempool0")
        set_default_pool(pool)
        log.info("%s: mempool of %d buffers; cores %s (master %d)", config.app_name,
                 pool.capacity, config.all_cores(), config.master_core)
        ports: dict[str, Port] = {}
        try:
            for i, pc in enumerate(config.ports):
                port = open_port(pc, pool, config.batch_size, i, config.base_dir)
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
        return cls(config, pool, ports)

    def _executor(self, core: int) -> CoreExecutor:
        ex = self.executors.get(core)
        if ex is None:
            raise CoreError(f"core {core} is not found (configured cores: {sorted(self.executors)})")
        return ex

    def _queues_of(self, core: int) -> dict[str, PortQueue]:
        self._executor(core)
        qs = {name: p.queues[core] for name, p in self.ports.items() if core in p.queues}
        if not qs:
            raise CoreError(f"core {core} is not assigned to any ports")
        return qs

    def port(self, name: str) -> Port:
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
        p = self.port(port)
        for core, q in p.queues.items():
            self._executor(core)
            self._installs.append((core, _name(installer), lambda q=q: installer(q)))
        return self

    def add_pipeline_to_core(self, core: int, installer: Callable[[dict[str, PortQueue]], Pipeline]) -> "Runtime":
        """``installer({port name: queue})`` gets the queues of every port on ``core``."""
        qs = self._queues_of(core)
        self._installs.append((core, _name(installer), lambda: installer(qs)))
        return self

    def add_periodic_pipeline_to_core(self, core: int, installer: Callable[[dict[str, PortQueue]], Pipeline],
                                      interval: float) -> "Runtime":
        """Run the pipeline ``installer`` builds once every ``interval`` seconds (the first
        time after one interval): packet generators (see :func:`nfkit.poll_fn`)."""
        qs = self._queues_of(core)
        _check_interval(interval)
        self._periodic.append((core, _name(installer), lambda: installer(qs), float(interval), True))
        return self

    def add_periodic_task_to_core(self, core: int, task: Callable[[], Any], interval: float) -> "Runtime":
        """Call ``task()`` every ``interval`` seconds on ``core`` (any configured core)."""
        self._executor(core)
        _check_interval(interval)
        self._periodic.append((core, _name(task), lambda: task, float(interval), False))
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
    def _install(self, start: float) -> None:
        for core, name, make in self._installs:
            pipeline = self._call_installer(core, name, make)
            self.executors[core].add_pipeline(pipeline)
            self.pipelines.append(pipeline)
        for core, name, make, interval, is_pipeline in self._periodic:
            obj = self._call_installer(core, name, make) if is_pipeline else make()
            if is_pipeline:
                self.pipelines.append(obj)
                fn = obj.run_once
            else:
                fn = obj
            self.executors[core].add_timer(fn, interval, name, start)
        for core, ex in self.executors.items():
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

    def execute(self, idle_sleep: float = 0.0005) -> RunResult:
        """Run until a signal handler says stop, ``duration`` passes, the app calls
        :meth:`stop`, or (``stop_when_drained``) every pcap input is consumed.

        Every port is closed on the way out, whatever the reason, so output files are
        complete.  An idle round (no packets anywhere) sleeps ``idle_sleep`` seconds after
        a run of empty polls, instead of burning a core (0: busy-poll).
        """
        cfg = self.config
        start = time.monotonic()
        pending: list[int] = []
        old_handlers: dict[int, Any] = {}
        reason = "stopped"
        try:
            self._install(start)
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
                if pending:
                    sig = UnixSignal(pending.pop(0))
                    log.info("received %s", sig.name)
                    if self._on_signal(sig):
                        reason = f"signal {sig.name}"
                        break
                if self._stop_requested:
                    reason = self._stop_requested
                    break
                if deadline is not None and now >= deadline:
                    reason = "duration"
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
            elapsed = time.monotonic() - start
        result = RunResult(reason, elapsed,
                           {f"{p.name}#{i}": p.stats.as_dict() for i, p in enumerate(self.pipelines)},
                           {n: p.counters().as_dict() for n, p in self.ports.items()})
        log.info("runtime terminated (%s) after %.2fs", reason, elapsed)
        if close_errors:
            raise PortError("; ".join(str(e) for e in close_errors))
        return result


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
