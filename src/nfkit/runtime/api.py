"""The runtime's public API (capsule's ``runtime/mod.rs``): build ports and the mempool
from a config, install pipelines, timers and hooks on cores, run them, handle signals and
shutdown.

With one core (or ``[workers] mode = "single"``, or in-process ring ports) every core's
executor runs in this process, in the one loop of :func:`nfkit.runtime.core.run_core`.
With more cores, ``execute()`` hands the install plan to the supervisor
(:mod:`nfkit.runtime.processes`), which forks one pinned worker process per core besides
the master (docs/runtime.md); the app's calls are the same either way.  What the runtime
checks is what capsule checks: a pipeline for a core that is not configured is an error
naming the core, and so is a port pipeline on a core that serves no port.
"""

from __future__ import annotations

import logging
import signal
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ..batch import Pipeline
from ..buffers import Mempool, set_default_pool
from ..config import RuntimeConfig, load_config
from ..metrics import Metrics, collect, serve
from ..pcap_dump import attach_dumps, close_dumps
from ..ports.base import (Port, PortError, PortPlan, PortQueue, open_port, placeholder_port,
                          plan_ports, prepare_drivers)
from ..ports.kni import Kni
from ..ports.port import KniDisabled, KniNotAcquired
from .core import (CoreError, CoreExecutor, CoreRun, Hook, HookError, RunError, RunResult,
                   UnixSignal, run_core, run_hooks, with_result)
from .processes import ProcessPlan, catch_signals, run_processes, use_processes

__all__ = ["Runtime", "RunError", "CoreError", "HookError", "UnixSignal", "CoreExecutor",
           "RunResult", "with_result"]

log = logging.getLogger("nfkit.runtime")

Installer = Callable[[Any], Pipeline]


class Runtime:
    """Build with :meth:`build`, add pipelines, tasks and hooks, then :meth:`execute`."""

    def __init__(self, config: RuntimeConfig, pool: Mempool, ports: dict[str, Port],
                 plans: list[PortPlan] | None = None) -> None:
        self.config = config
        self.pool = pool
        self.ports = ports
        #: every ``[[ports]]`` entry, resolved once (:func:`nfkit.ports.base.plan_ports`)
        self.plans = plans if plans is not None else plan_ports(config)
        self.executors = {c: CoreExecutor(c) for c in config.all_cores()}
        self._installs: list[tuple[int, str, Callable[[], Pipeline]]] = []
        self._periodic: list[tuple[int, str, Callable[[], Any], float, bool]] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._on_signal: Callable[[UnixSignal], bool] = lambda sig: True
        self._stop_requested: str | None = None
        self._kni_rx_taken: set[str] = set()
        self.pipelines: list[Pipeline] = []
        #: "single" (every core in this process) or "processes" (workers; nfkit.runtime.processes)
        self.mode = "single"
        #: (label "name#index", core, pipeline) of the pipelines this process installed
        self.placed: list[tuple[str, int, Pipeline]] = []
        self._dumps: list[Any] = []            # pcap dump writers (nfkit.pcap_dump)
        #: the cores whose executors run in this process (a worker: its own)
        self._process_cores: list[int] = sorted(self.executors)
        self._inherited: Any = None            # a worker keeps the master's objects alive
        self._metrics: Metrics | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, config: "RuntimeConfig | str | Path") -> "Runtime":
        """Create the mempool and open every port of ``config`` (a config or a TOML path)."""
        if not isinstance(config, RuntimeConfig):
            config = load_config(config)
        _setup_logging(config.log_level)
        plans = plan_ports(config)      # each device matched to its driver, once
        procs = use_processes(config, plans)
        master = config.master_core
        pool = Mempool(capacity=config.mempool.capacity,
                       name=f"mempool{master}" if procs else "mempool0")
        set_default_pool(pool)
        log.info("%s: mempool of %d buffers; cores %s (master %d)", config.app_name,
                 pool.capacity, config.all_cores(), master)
        ports: dict[str, Port] = {}
        try:
            prepare_drivers(config, plans)   # EAL, when a port goes through DPDK
            for plan in plans:
                if not procs:
                    port = open_port(plan, pool)
                elif master in plan.cores:   # the master's own queue; workers open theirs
                    port = open_port(plan, pool, frozenset({master}))
                else:
                    port = placeholder_port(plan, pool)
                ports[plan.name] = port
                log.info("port %s: %s (%s driver), %d queue(s) on cores %s, mac %s", plan.name,
                         plan.config.device, port.driver, len(port.queues), list(port.queues),
                         port.mac_addr)
        except BaseException:
            for p in ports.values():  # no half-open state: close what was opened
                try:
                    p.close()
                except Exception:
                    log.exception("port %s: close after a failed start", p.name)
            raise
        rt = cls(config, pool, ports, plans)
        if procs:
            rt.mode = "processes"
            rt._process_cores = [master]
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

    def local_cores(self) -> list[int]:
        """The cores whose executors run in this process: every core in one process; the
        master's core in the master, a worker's own core in a worker."""
        return list(self._process_cores)

    # -- what the app adds --------------------------------------------------------------
    def set_on_signal(self, handler: Callable[[UnixSignal], bool]) -> "Runtime":
        """``handler(sig)`` for SIGHUP, SIGINT, SIGTERM: return True to stop, False to keep
        running.  The default stops on any of them."""
        self._on_signal = handler
        return self

    def on_start(self, hook: Hook) -> "Runtime":
        """Call ``hook(core)`` on every core (master included, each in its own process with
        worker processes) after its pipelines are installed, before it polls.  A hook that
        raises fails the start-up: ``execute()`` raises a :class:`RunError` naming the core
        and the hook's file:line."""
        self._on_start.append(hook)
        return self

    def on_stop(self, hook: Hook) -> "Runtime":
        """Call ``hook(core)`` on every core when the run ends -- a normal stop, the
        duration, SIGINT/SIGTERM, a drained input -- after its last poll and before its
        ports close (a hook may still transmit): flush state, print final tables (the
        recipe in docs/runtime.md merges per-core tables).  Every hook runs even if one
        fails; failures are raised from ``execute()`` as :class:`HookError` (core, hook,
        file:line, traceback) with the run's ``result``."""
        self._on_stop.append(hook)
        return self

    def add_pipeline_to_port(self, port: str, installer: Callable[[PortQueue], Pipeline]) -> "Runtime":
        """``installer(queue)`` is called for each queue of ``port``, on that queue's core."""
        self.port(port)
        for core in self.config.port(port).cores:
            self._executor(core)
            # The queue is looked up when the installer runs: in the process of its core.
            self._installs.append((core, _name(installer), partial(self._install_on_queue,
                                                                   installer, port, core)))
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
        arbitrarily).  Errors are capsule's: :class:`~nfkit.ports.kni.KniDisabled` (no KNI),
        :class:`~nfkit.ports.kni.KniNotAcquired` (the receive handle is taken already)."""
        self.port(port)
        pc = self.config.port(port)
        if not pc.kni:
            raise KniDisabled(f"KNI is not enabled for port {port} (set kni = true in its [[ports]] entry)")
        if port in self._kni_rx_taken:
            raise KniNotAcquired(f"port {port}: the KNI receive handle is taken already "
                                 "(another core owns the handle)")
        self._kni_rx_taken.add(port)
        core = pc.cores[0]
        self._executor(core)
        # Looked up when the installer runs: in the process of the port's first core.
        self._installs.append((core, _name(installer), lambda: installer(
            self._kni_of(port).take_rx(), self.ports[port].queues[core])))
        return self

    def _install_on_queue(self, installer: Callable[[PortQueue], Pipeline], port: str,
                          core: int) -> Pipeline:
        return installer(self.ports[port].queues[core])

    def _kni_of(self, port: str) -> Kni:
        kni = self.ports[port].kni
        if kni is None:   # the plan has kni = true: open_port attached it
            raise KniDisabled(f"port {port}: no KNI was attached")
        return kni

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

    # -- the install plan: what a process runs ----------------------------------------------
    def _install(self, start: float, cores: set[int]) -> None:
        """Call the installers of ``cores``, in the order they were added; pipelines are
        labelled ``name#index`` by their place in that order, the same in every process."""
        index = 0
        for core, name, make in self._installs:
            if core in cores:
                pipeline = self._call_installer(core, name, make)
                self.executors[core].add_pipeline(pipeline)
                self.pipelines.append(pipeline)
                self.placed.append((f"{pipeline.name}#{index}", core, pipeline))
            index += 1
        for core, name, make, interval, is_pipeline in self._periodic:
            if core not in cores:
                index += is_pipeline
                continue
            obj = self._call_installer(core, name, make) if is_pipeline else make()
            if is_pipeline:
                self.pipelines.append(obj)
                self.placed.append((f"{obj.name}#{index}", core, obj))
                index += 1
                fn = obj.run_once
            else:
                fn = obj
            self.executors[core].add_timer(fn, interval, name, start)
        for core in sorted(cores):
            ex = self.executors[core]
            log.debug("core %d initialised: %d pipeline(s), %d timer(s)", core,
                      len(ex.pipelines), ex.timers)

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

    def _open_local(self, start: float) -> CoreRun:
        """Install the pipelines of this process's cores and start its pcap dumps."""
        cores = self._process_cores
        self._install(start, set(cores))
        if self.config.pcap_dump:
            self._dumps = attach_dumps(self.ports, self.config.pcap_dump_dir, self.config.base_dir)
        return self._core_run()

    def _open_worker(self, core: int, resume: bool) -> CoreRun:
        """In a forked worker process: serve ``core`` only -- a mempool of its own, its own
        port queues (``resume``: a restarted worker continues the output files), its
        pipelines.  What the master opened is kept alive, never closed here."""
        cfg = self.config
        self._inherited = (self.ports, self.pool, self._dumps)
        self._process_cores = [core]
        self.pool = Mempool(capacity=cfg.mempool.capacity, name=f"mempool{core}")
        set_default_pool(self.pool)
        self.ports, self._dumps, self.pipelines, self.placed = {}, [], [], []
        self._stop_requested = None
        self.executors = {c: CoreExecutor(c) for c in self.executors}
        only = frozenset({core})
        for plan in self.plans:
            self.ports[plan.name] = (open_port(plan, self.pool, only, resume=resume)
                                     if core in plan.cores else placeholder_port(plan, self.pool))
        if cfg.pcap_dump:
            self._dumps = attach_dumps(self.ports, cfg.pcap_dump_dir, cfg.base_dir, resume=resume)
        self._install(time.monotonic(), {core})
        return self._core_run()

    def _core_run(self) -> CoreRun:
        cores = list(self._process_cores)
        return CoreRun(
            cores=cores, ports=self.ports,
            executors=[self.executors[c] for c in cores],
            file_sources=[q for p in self.ports.values() for q in p.queues.values()
                          if _is_file_source(q)],
            take_stop=self._take_stop,
            snapshot=lambda: collect(self, self.local_cores()),
            start=lambda: run_hooks("on_start", self._on_start, cores),
            finish=lambda started: self._finish(cores, started))

    def _take_stop(self) -> str | None:
        reason, self._stop_requested = self._stop_requested, None
        return reason

    def _finish(self, cores: list[int], started: bool) -> tuple[list[str], list[Exception]]:
        """The end of a process's run: the on_stop hooks (when the cores started), the
        master's core last -- as with worker processes, where the master's hooks run after
        every worker has stopped: the place for merged tables --, then close the ports and
        dumps.  Returns (hook errors, closing errors)."""
        master = self.config.master_core
        last_master = sorted(cores, key=lambda c: (c == master, c))
        hook_errors = run_hooks("on_stop", self._on_stop, last_master) if started else []
        close_errors = self._close_ports()
        close_errors += close_dumps(self._dumps)
        self._dumps = []
        return hook_errors, close_errors

    @property
    def metrics(self) -> Metrics:
        """This runtime's :class:`~nfkit.metrics.Metrics`: ``runtime.metrics.snapshot()``
        sums every core's counters (workers' at most ``[metrics] interval`` old)."""
        if self._metrics is None:
            self._metrics = Metrics(self, self.local_cores)
        return self._metrics

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

    # -- running ------------------------------------------------------------------------
    def execute(self, idle_sleep: float = 0.0005) -> RunResult:
        """Run until a signal handler says stop, ``duration`` passes, the app calls
        :meth:`stop`, or (``stop_when_drained``) every pcap input is consumed.

        Every port is closed on the way out, whatever the reason, so output files are
        complete; the ``on_stop`` hooks run before.  An idle round (no packets anywhere)
        sleeps ``idle_sleep`` seconds after a run of empty polls, instead of burning a core
        (0: busy-poll).

        With worker processes (``self.mode == "processes"``) the supervisor runs it
        (:func:`nfkit.runtime.processes.run_processes`); ``[workers]`` then sets the idle
        back-off.
        """
        if self.mode == "processes":
            return run_processes(ProcessPlan(
                config=self.config, ports=self.plans, pool=self.pool, metrics=self.metrics,
                open_master=self._open_local, open_worker=self._open_worker,
                close_ports=self._close_ports, stop_reason=self._stop_reason))
        cfg = self.config
        start = time.monotonic()
        pending: list[int] = []
        reason = "stopped"
        stop_http = None
        run: CoreRun | None = None
        started = False
        hook_errors: list[str] = []
        try:
            with catch_signals(pending):
                run = self._open_local(start)
                errors = run.start()
                if errors:
                    raise HookError("start-up failed:\n" + "\n".join(errors))
                started = True
                if cfg.metrics.listen:
                    stop_http = serve(self.metrics, *cfg.metrics.address())
                deadline = start + cfg.duration if cfg.duration else None
                log.info("%s: running%s", cfg.app_name,
                         f" for {cfg.duration}s" if cfg.duration else " (Ctrl-C to stop)")
                # Inputs that end (pcap files); stop_when_drained waits for all of them.
                if cfg.stop_when_drained and not run.file_sources:
                    log.warning("stop_when_drained has no effect: no port reads pcap files")
                drained = run.drained if cfg.stop_when_drained and run.file_sources else None
                reason = run_core(
                    run.executors, lambda now: self._stop_reason(pending, now, deadline),
                    idle_sleep=idle_sleep, idle_polls=16,
                    on_idle=(lambda: "drained" if drained() else None) if drained else None)
        finally:
            if run is not None:
                hook_errors, close_errors = run.finish(started)
            else:
                close_errors = self._close_ports()
            if stop_http is not None:
                stop_http()
            elapsed = time.monotonic() - start
        result = RunResult(reason, elapsed,
                           {label: p.stats.as_dict() for label, _core, p in self.placed},
                           {n: p.counters().as_dict() for n, p in self.ports.items()})
        log.info("runtime terminated (%s) after %.2fs", reason, elapsed)
        raise_end_errors(result, hook_errors, [str(e) for e in close_errors])
        return result


def raise_end_errors(result: RunResult, hook_errors: list[str], close_errors: list[str]) -> None:
    """Raise what went wrong at the end of a run, with its ``result``: failed on_stop hooks
    (:class:`HookError`), else outputs that could not be closed (:class:`PortError`)."""
    if hook_errors:
        raise with_result(HookError("\n".join(hook_errors + close_errors)), result)
    if close_errors:
        raise with_result(PortError("; ".join(close_errors)), result)


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
