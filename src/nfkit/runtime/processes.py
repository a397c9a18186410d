"""The process supervisor: one pinned worker process per core besides the master core.

It receives the install plan (:class:`ProcessPlan`: the config, the port plans, a callback
that opens a core's queues and installs its pipelines) and never touches the
:class:`~nfkit.runtime.Runtime`; every process runs the one loop,
:func:`nfkit.runtime.core.run_core`.  What :meth:`nfkit.Runtime.execute` does when the config has more than one core (see
docs/runtime.md for the full story):

* The **master** process stays pinned to ``master_core``: it owns signal handling
  (``set_on_signal``), runs the master core's own pipelines and tasks, the metrics endpoint,
  and watches the workers.
* Each **worker** is forked (start method ``fork``), so the app's installers -- closures in
  the app module included -- are inherited as they are and never pickled.  A worker pins
  itself to its core, names itself ``<app_name>-<core>`` (``ps``, ``top``), creates its own
  mempool, opens its own port queues, calls the installers of its core and *parks*.
* **Handshake**: only when every worker (and the master) has installed its pipelines do
  they all start (``on_start`` hooks run before a core parks).  If any fails, all stop,
  and the error -- core, installer or hook, traceback -- is raised from ``execute()`` as a
  :class:`~nfkit.runtime.RunError`.
* **Shutdown**: a stop flag per worker in shared memory; each worker runs its ``on_stop``
  hooks, closes its ports and pcap dumps (outputs complete), sends its final counters, and
  exits.  The master waits at
  most ``[workers] stop_timeout`` seconds, then kills what is left and says so.
* **Failure**: a worker that dies is seen within ``_WATCH_INTERVAL`` (20 ms) through its
  process sentinel, reported with its core and exit cause; the runtime stops the others
  cleanly and ``execute()`` raises :class:`WorkerError` -- or, with ``[workers] restart =
  "on-failure"``, the worker is started again (``max_restarts`` times per core).

Nothing given to the runtime needs to be picklable: workers inherit everything by fork,
and only plain data (counters, error texts) crosses between processes.  The fork start
method is Linux/Unix only; elsewhere the multi-core runtime refuses with a clear error
(use ``[workers] mode = "single"``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import multiprocessing
import multiprocessing.connection as mpc
import os
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..buffers import Mempool
from ..metrics import PORT_FIELDS, Metrics, Snapshot, SnapshotSlots, serve
from ..pcap_dump import close_dumps
from ..ports.base import PortError, PortPlan, open_port, plan_ports
from .core import (CoreError, CoreRun, HookError, RunError, RunResult, UnixSignal, WorkerError,
                   run_core, with_result)

if TYPE_CHECKING:  # pragma: no cover
    from ..config import RuntimeConfig

__all__ = ["WorkerError", "ProcessPlan", "use_processes", "available_cpus", "set_process_name",
           "shared_array", "run_processes"]

log = logging.getLogger("nfkit.runtime")
#: how often the master checks its workers (deaths, messages)
_WATCH_INTERVAL = 0.02
#: how often a worker checks that its master is still alive
_PARENT_CHECK = 0.5
#: how often a worker checks its stop flag, the app's stop() and its inputs' end (1 ms: far
#: below the stop timeout, and a check per round would cost an empty round 15%)
_CHECK_INTERVAL = 0.001

_RUN, _STOP = 0, 1


@dataclass
class ProcessPlan:
    """What the supervisor is given by :meth:`Runtime.execute` (and all it uses of it)."""

    config: "RuntimeConfig"
    ports: list[PortPlan]
    #: the master's pool (a worker that died for good gets its output files checked with it)
    pool: Mempool
    metrics: Metrics
    #: ``open_master(start)``: install the master core's pipelines (in the master, after the
    #: workers are forked)
    open_master: Callable[[float], CoreRun]
    #: ``open_worker(core, resume)``: in a forked worker, open this core's queues and install
    #: its pipelines (``resume``: a restarted worker continues its output files)
    open_worker: Callable[[int, bool], CoreRun]
    #: close the master's ports when its core never got installed (``open_master`` failed)
    close_ports: Callable[[], list[Exception]]
    #: ``stop_reason(pending_signals, now, deadline)``: the app's signal handler, stop(),
    #: the duration
    stop_reason: Callable[[list[int], float, "float | None"], "str | None"]


# -- deciding and checking ----------------------------------------------------------------------

def _cpu_list(text: str) -> set[int]:
    """``"0-3,6"`` -> ``{0, 1, 2, 3, 6}`` (the kernel's CPU list format)."""
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _cpuset_cpus() -> set[int] | None:
    """The CPUs of this process's cgroup cpuset (v2 or v1), None when unknown."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            cand = [Path("/sys/fs/cgroup") / path.lstrip("/") / "cpuset.cpus.effective"]
        elif "cpuset" in ctrls.split(","):
            cand = [Path("/sys/fs/cgroup/cpuset") / path.lstrip("/") / "cpuset.effective_cpus",
                    Path("/sys/fs/cgroup/cpuset") / path.lstrip("/") / "cpuset.cpus"]
        else:
            continue
        for f in cand:
            try:
                text = f.read_text().strip()
            except OSError:
                continue
            if text:
                return _cpu_list(text)
    return None


def available_cpus() -> set[int]:
    """The online CPUs this process may be pinned to: its affinity mask, plus the other
    online CPUs of its cgroup cpuset (a library such as DPDK's EAL may have narrowed the
    mask of this thread to one CPU; a worker can still be pinned anywhere in the cpuset)."""
    cpus = set(os.sched_getaffinity(0))
    try:
        online = _cpu_list(Path("/sys/devices/system/cpu/online").read_text())
    except OSError:
        return cpus
    cpuset = _cpuset_cpus()
    return cpus | (online & cpuset if cpuset is not None else set())


def use_processes(config: "RuntimeConfig", plans: list[PortPlan] | None = None) -> bool:
    """Whether ``config`` runs with worker processes (see ``[workers] mode``).

    ``NFKIT_SINGLE_PROCESS=1`` in the environment forces one process.  Raises
    :class:`~nfkit.runtime.CoreError` when a core is not an online CPU this process may use,
    and :class:`~nfkit.runtime.RunError` for ``mode = "processes"`` with an in-process port.
    """
    mode = config.workers.mode
    cores = config.all_cores()
    if mode == "single" or len(cores) < 2 or os.environ.get("NFKIT_SINGLE_PROCESS", "") not in ("", "0"):
        return False
    if plans is None:
        plans = plan_ports(config)
    local = [p for p in plans if p.driver.process_local]
    if local:
        # the reason of the last such driver (DPDK's is listed last, and says the most)
        why = local[-1].driver.process_local
        names = ", ".join(p.name for p in local)
        if mode == "processes":
            raise RunError(f"[workers] mode = \"processes\": port(s) {names} {why}; "
                           "use mode = \"auto\" or \"single\"")
        log.info("%s: port(s) %s %s: running every core in one process",
                 config.app_name, names, why)
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        raise RunError("the multi-core runtime needs the fork start method (Linux/Unix); "
                       "set [workers] mode = \"single\" to run every core in one process")
    cpus = available_cpus()
    missing = [c for c in cores if c not in cpus]
    if missing:
        raise CoreError(f"core(s) {missing} are not online CPUs this process may use "
                        f"(allowed: {sorted(cpus)}); fix master_core / cores / ports[*].cores, "
                        "or set [workers] mode = \"single\"")
    return True


# -- process plumbing ---------------------------------------------------------------------------

_PR_SET_NAME = 15


def set_process_name(name: str) -> None:
    """Name this process ``name`` (at most 15 bytes) for ``ps``/``top``: prctl(PR_SET_NAME)
    and /proc/self/comm.  Best effort: failures are logged at debug level."""
    raw = name.encode()[:15]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0)
    except OSError as exc:  # pragma: no cover - no libc
        log.debug("prctl(PR_SET_NAME) failed: %s", exc)
    try:
        with open("/proc/self/comm", "wb") as f:
            f.write(raw)
    except OSError as exc:  # pragma: no cover
        log.debug("/proc/self/comm: %s", exc)


def shared_array(shape: int | tuple[int, ...], dtype: Any = np.int64) -> np.ndarray:
    """A zeroed numpy array in shared memory, visible to every core's process.

    Create it in ``main(runtime)`` (before ``execute()`` forks the workers); every worker
    then sees the same memory.  There are no locks: give each core its own row (write only
    ``arr[core]`` on ``core``, read the sum anywhere) -- the flow-affine pattern of
    docs/runtime.md.  A ``multiprocessing`` lock created in ``main`` also works across
    workers for rare updates that must be atomic.
    """
    dt = np.dtype(dtype)
    shp = (shape,) if isinstance(shape, int) else tuple(shape)
    n = int(np.prod(shp)) * dt.itemsize
    mem = mmap.mmap(-1, max(1, n))
    return np.frombuffer(mem, dtype=dt, count=int(np.prod(shp))).reshape(shp)


def _exit_cause(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class _Worker:
    """The master's handle on one worker process."""

    core: int
    index: int
    proc: Any = None
    conn: Any = None
    state: str = "starting"       # starting, ready, running, stopping, done, dead
    has_files: bool = False
    drained: bool = False
    final: Snapshot | None = None
    restarts: int = 0
    error: str | None = None       # what it reported before dying (traceback)
    retired: Snapshot = field(default_factory=Snapshot)


# -- the worker side ----------------------------------------------------------------------------

def _worker_main(plan: ProcessPlan, w: _Worker, conn: Any, ctrl: memoryview, slots: SnapshotSlots,
                 parent: int) -> None:
    """What a forked worker runs; never returns (``os._exit``), so nothing inherited from
    the master (its ports, open files, buffered writers) is flushed or closed here."""
    core = w.core
    cfg = plan.config
    term: list[int] = []
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # the master owns Ctrl-C and SIGHUP
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda s, f: term.append(s))
        set_process_name(f"{cfg.app_name}-{core}")
        os.sched_setaffinity(0, {core})
        resume = w.restarts > 0          # a restarted worker continues the output files
        run = plan.open_worker(core, resume)
        if resume:
            _count_resumed_outputs(run, w)
        failed = run.start()
        if failed:
            raise HookError("\n".join(failed))
    except BaseException as exc:
        if isinstance(exc, RunError):
            text = str(exc)
        else:
            text = (f"core {core}: initialisation failed: {type(exc).__name__}: {exc}\n"
                    + "".join(traceback.format_exception(exc)))
        try:
            conn.send(("failed", text))
        finally:
            os._exit(3)
    installed_at = time.monotonic()
    (ex,) = run.executors
    log.info("core %d initialised (pid %d, %d pipeline(s), %d timer(s)); parked", core,
             os.getpid(), len(ex.pipelines), ex.timers)
    try:
        conn.send(("ready", bool(run.file_sources)))
        msg = conn.recv()
    except (EOFError, OSError):
        os._exit(4)
    if msg != "start":
        run.finish(False)
        os._exit(0)
    log.info("core %d unparked", core)
    start = time.monotonic()
    ex.shift_timers(start - installed_at)               # timers count from the start
    idx = w.index
    wk = cfg.workers
    interval = cfg.metrics.interval
    next_check = start
    next_pub = start
    next_parent = start + _PARENT_CHECK
    drained_sent = not run.file_sources

    def should_stop(now: float) -> str | None:
        # Checked once per round: the fast path is one comparison (measured: a call per
        # round for the stop flag and the app's stop() cost 15% of an empty round).
        nonlocal next_check, next_pub, next_parent, drained_sent
        if now < next_check:
            return None
        next_check = now + _CHECK_INTERVAL
        if ctrl[idx] != _RUN:
            return "stopped"
        if term:
            return "SIGTERM"
        asked = run.take_stop()
        if asked is not None:
            conn.send(("stop", asked))
        if not drained_sent and run.drained():          # the master decides when to stop
            conn.send(("drained",))
            drained_sent = True
        if now >= next_pub:
            slots.publish(idx, run.snapshot())
            next_pub = now + interval
            if now >= next_parent:
                next_parent = now + _PARENT_CHECK
                if os.getppid() != parent:
                    log.error("core %d: the master process is gone; stopping", core)
                    return "master gone"
        return None

    reason = "stopped"
    try:
        reason = run_core(run.executors, should_stop,
                          idle_sleep=0.0 if wk.busy_poll else wk.idle_sleep,
                          idle_polls=wk.idle_polls)
    except BaseException as exc:
        code = 5
        try:
            conn.send(("crashed", f"core {core}: the worker loop failed: "
                       + "".join(traceback.format_exception(exc))))
        except Exception:
            pass
    hook_errors, errors = run.finish(True)
    snap = run.snapshot()
    slots.publish(idx, snap)
    try:
        conn.send(("final", snap, reason, [f"{type(e).__name__}: {e}" for e in errors],
                   hook_errors))
    except Exception:
        pass
    log.info("core %d stopped (%s)", core, reason)
    os._exit(code)


def _count_resumed_outputs(run: CoreRun, w: _Worker) -> None:
    """A restarted worker's output files hold all its predecessors wrote -- some of it
    after their last published counters (published every ``[metrics] interval``; a
    SIGKILL comes between).  Count those packets in the new queues' counters, so that the
    run's totals (the retired snapshots plus this worker's) match the files."""
    for name, port in run.ports.items():
        for core, q in port.queues.items():
            packets, octets = q.resumed
            if not packets:
                continue
            counted = w.retired.ports.get((name, core), {})
            extra = packets - counted.get("tx_packets", 0)
            if extra < 0:
                log.warning("core %d: port %s: its output holds %d packets, %d were counted "
                            "as sent", core, name, packets, counted.get("tx_packets", 0))
                continue
            q.counters.tx_packets += extra
            q.counters.tx_octets += max(0, octets - counted.get("tx_octets", 0))
            log.info("core %d: port %s: %d packets the failed worker wrote after its last "
                     "counter update are counted now", core, name, extra)
    if run.file_sources:
        log.warning("core %d: the restarted worker reads its rx files again from the start",
                    w.core)


# -- the master side ----------------------------------------------------------------------------

class _Runner:
    """Runs one ``execute()`` with workers; see the module docstring."""

    def __init__(self, plan: ProcessPlan) -> None:
        self.plan = plan
        self.cfg = plan.config
        self.master_run: CoreRun | None = None
        self.ctx = multiprocessing.get_context("fork")
        self.master = self.cfg.master_core
        cores = [c for c in self.cfg.all_cores() if c != self.master]
        self.workers = {c: _Worker(c, i) for i, c in enumerate(cores)}
        self._ctrl_mem = mmap.mmap(-1, max(1, len(cores)))
        self.ctrl = memoryview(self._ctrl_mem)
        self.slots = SnapshotSlots(len(cores))
        self.pid = os.getpid()
        #: the workers' on_stop failures (texts), reported when the run ends
        self.hook_errors: list[str] = []

    # -- workers ----------------------------------------------------------------------------
    def _spawn(self, w: _Worker) -> None:
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        self.ctrl[w.index] = _RUN
        proc = self.ctx.Process(target=_worker_main, name=f"{self.cfg.app_name}-{w.core}",
                                args=(self.plan, w, child_conn, self.ctrl, self.slots, self.pid),
                                daemon=False)
        proc.start()
        child_conn.close()
        w.proc, w.conn, w.state, w.drained, w.final, w.error = proc, parent_conn, "starting", False, None, None

    def snapshots(self) -> list[Snapshot]:
        out = []
        for w in self.workers.values():
            s = w.final if w.final is not None else (self.slots.read(w.index) if w.proc else None)
            snap = Snapshot()
            snap.add(w.retired, counters_only=True)
            if s is not None:
                snap.add(s, counters_only=w.state == "dead")
            if w.restarts:
                snap.restarts[w.core] = w.restarts
            out.append(snap)
        return out

    def _receive(self, w: _Worker) -> list[Any]:
        msgs = []
        try:
            while w.conn is not None and w.conn.poll():
                msgs.append(w.conn.recv())
        except (EOFError, OSError):
            pass
        return msgs

    def _kill(self, w: _Worker) -> None:
        if w.proc is not None and w.proc.is_alive():
            w.proc.kill()
            w.proc.join(2)

    def _trigger_stop(self, abort_state: str) -> float:
        """Pull every worker's stop trigger, and tell those still in ``abort_state`` (not
        yet running: they wait on their pipe) to abort; returns the deadline to wait to."""
        for w in self.workers.values():
            self.ctrl[w.index] = _STOP
            if w.state == abort_state and w.conn is not None:
                try:
                    w.conn.send("abort")
                except OSError:
                    pass
        return time.monotonic() + self.cfg.workers.stop_timeout

    def _abort_start(self, failures: list[str], master_error: BaseException | None) -> None:
        """Stop every worker after a failed start-up and raise the failure(s)."""
        deadline = self._trigger_stop(abort_state="ready")
        for w in self.workers.values():
            if w.proc is not None:
                w.proc.join(max(0.0, deadline - time.monotonic()))
                self._kill(w)
        msg = "start-up failed, every core stopped:\n" + "\n".join(failures)
        raise RunError(msg) from master_error

    def start(self, start: float) -> None:
        """Fork the workers, install the master's pipelines, run the handshake."""
        log.info("%s: starting %d worker process(es) for cores %s (master core %d)",
                 self.cfg.app_name, len(self.workers), list(self.workers), self.master)
        for w in self.workers.values():
            self._spawn(w)
        failures: list[str] = []
        master_error: BaseException | None = None
        try:
            self.master_run = self.plan.open_master(start)
            errors = self.master_run.start()
            if errors:
                raise HookError("\n".join(errors))
        except Exception as exc:
            failures.append(str(exc))
            master_error = exc
        deadline = time.monotonic() + self.cfg.workers.start_timeout
        while not failures and any(w.state == "starting" for w in self.workers.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                late = [w.core for w in self.workers.values() if w.state == "starting"]
                failures.append(f"core(s) {late}: not initialised after "
                                f"{self.cfg.workers.start_timeout}s ([workers] start_timeout)")
                break
            self._wait_start_events(min(left, 0.5), failures)
        if failures:
            self._abort_start(failures, master_error)
        for w in self.workers.values():
            w.conn.send("start")
            w.state = "running"

    def _wait_start_events(self, timeout: float, failures: list[str]) -> None:
        starting = [w for w in self.workers.values() if w.state == "starting"]
        ready = mpc.wait([w.conn for w in starting] + [w.proc.sentinel for w in starting], timeout)
        for w in starting:
            for msg in self._receive(w) if w.conn in ready else []:
                if msg[0] == "ready":
                    w.state, w.has_files = "ready", msg[1]
                elif msg[0] == "failed":
                    w.state = "dead"
                    failures.append(msg[1])
            if w.state == "starting" and w.proc.sentinel in ready:
                w.proc.join(1)
                w.state = "dead"
                failures.append(f"core {w.core}: the worker {_exit_cause(w.proc.exitcode)} "
                                "during start-up")

    def watch(self) -> tuple[str | None, tuple[int, str] | None]:
        """Handle what the workers said or did since the last call.  Returns a stop reason
        asked for by a worker (or None) and a fatal ``(core, cause)`` (or None)."""
        ws = [w for w in self.workers.values() if w.state in ("running", "starting")]
        if not ws:
            return None, None
        ready = mpc.wait([w.conn for w in ws] + [w.proc.sentinel for w in ws], 0)
        if not ready:
            return None, None
        stop_reason = None
        for w in ws:
            if w.conn in ready:
                for msg in self._receive(w):
                    kind = msg[0]
                    if kind == "stop":
                        stop_reason = msg[1]
                    elif kind == "drained":
                        w.drained = True
                    elif kind in ("crashed", "failed"):
                        w.error = msg[1]
                    elif kind == "final":
                        w.final = msg[1]
                        if msg[2] == "SIGTERM":
                            w.error = f"core {w.core}: the worker was stopped by SIGTERM"
                    elif kind == "ready" and w.state == "starting":   # a restarted worker
                        w.has_files = msg[1]
                        w.conn.send("start")
                        w.state = "running"
                        log.info("core %d: restarted worker running", w.core)
            if w.proc.sentinel in ready or not w.proc.is_alive():
                w.proc.join(1)
                cause = _exit_cause(w.proc.exitcode)
                if w.error and "SIGTERM" not in w.error:
                    cause += "\n" + w.error
                elif w.error:
                    cause = w.error.split(": ", 1)[1]
                fatal = self._died(w, cause)
                if fatal is not None:
                    return stop_reason, fatal
        return stop_reason, None

    def _died(self, w: _Worker, cause: str) -> tuple[int, str] | None:
        log.error("core %d: worker (pid %s) %s", w.core, w.proc.pid, cause)
        last = w.final or self.slots.read(w.index)
        if last is not None:
            w.retired.add(last, counters_only=True)
        # its counters are the retired ones now: the slot must not count them a second time
        # (a dead worker's totals were doubled; a restarted one's until its first publish)
        self.slots.clear(w.index)
        w.final = None
        w.state = "dead"
        policy = self.cfg.workers
        if policy.restart == "on-failure" and w.restarts < policy.max_restarts:
            w.restarts += 1
            log.warning("core %d: restarting the worker (%d of at most %d)", w.core, w.restarts,
                        policy.max_restarts)
            self._spawn(w)
            return None
        self._settle_outputs(w)
        return w.core, cause

    def _settle_outputs(self, w: _Worker) -> None:
        """A worker that died for good (killed, not restarted) may have cut its last
        ``tx_pcap`` record short, and written packets after its last published counters:
        reopen its files as a restarted worker would (the cut record removed), count what
        they hold beyond its counters, close them.  Then its files are whole and the run's
        tx totals equal them.  Ports with a live interface are not reopened."""
        for plan in self.plan.ports:
            pc = plan.config
            keys = {k for k, _ in plan.args}
            if (w.core not in pc.cores or plan.driver.name != "pcap" or "iface" in keys
                    or "tx_pcap" not in keys):
                continue
            try:
                port = open_port(plan, self.plan.pool, frozenset({w.core}), resume=True)
            except Exception as exc:
                log.error("core %d: port %s: its output files cannot be checked: %s", w.core,
                          pc.name, exc)
                continue
            (known,) = [s for s in self.snapshots() if s is not None][w.index:w.index + 1]
            for core, q in port.queues.items():
                packets, octets = q.resumed
                counted = known.ports.get((pc.name, core), dict.fromkeys(PORT_FIELDS, 0))
                extra = packets - counted["tx_packets"]
                if extra > 0:
                    mine = w.retired.ports.setdefault((pc.name, core), dict.fromkeys(PORT_FIELDS, 0))
                    mine["tx_packets"] += extra
                    mine["tx_octets"] += max(0, octets - counted["tx_octets"])
                    log.info("core %d: port %s: %d packets the dead worker wrote after its "
                             "last counter update are counted", core, pc.name, extra)
            port.close()

    def drained(self, master_files: list[Any]) -> bool | None:
        """None when no core reads files; else whether every file reader has finished."""
        readers = [w for w in self.workers.values() if w.has_files]
        if not readers and not master_files:
            return None
        return all(w.drained for w in readers) and all(q.exhausted for q in master_files)

    def stop(self) -> dict[int, str]:
        """Trigger every worker's stop and wait (bounded) for its final counters and exit."""
        deadline = self._trigger_stop(abort_state="starting")
        ended: dict[int, str] = {}
        live = [w for w in self.workers.values() if w.proc is not None and w.state != "dead"]
        while live:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready = mpc.wait([w.conn for w in live] + [w.proc.sentinel for w in live], left)
            for w in list(live):
                if w.conn in ready:
                    for msg in self._receive(w):
                        if msg[0] == "final":
                            w.final = msg[1]
                            if msg[3]:
                                ended[w.core] = "closing failed: " + "; ".join(msg[3])
                            self.hook_errors += msg[4]
                        elif msg[0] == "crashed":
                            w.error = msg[1]
                if w.proc.sentinel in ready:
                    w.proc.join(1)
                    self._receive(w)
                    live.remove(w)
                    w.state = "done"
                    ended.setdefault(w.core, "stopped" if w.proc.exitcode == 0
                                     else _exit_cause(w.proc.exitcode))
        for w in live:
            log.error("core %d: the worker did not stop within %ss; killing it", w.core,
                      self.cfg.workers.stop_timeout)
            self._kill(w)
            self._settle_outputs(w)
            w.state = "done"
            ended[w.core] = f"killed after {self.cfg.workers.stop_timeout}s stop timeout"
        for w in self.workers.values():
            ended.setdefault(w.core, "failed" if w.state == "dead" else "stopped")
            if w.conn is not None:
                w.conn.close()
        return ended

    def close(self) -> None:
        self.slots.close()
        self.ctrl.release()
        self._ctrl_mem.close()


def run_processes(plan: ProcessPlan) -> RunResult:
    """``Runtime.execute()`` with worker processes (the module docstring says how)."""
    cfg = plan.config
    metrics = plan.metrics
    start = time.monotonic()
    old_affinity = os.sched_getaffinity(0)
    runner = _Runner(plan)
    metrics.sources.append(runner.snapshots)
    stop_http = None
    pending: list[int] = []
    reason = "stopped"
    fatal: list[tuple[int, str]] = []
    ended: dict[int, str] = {}
    hook_errors: list[str] = []
    close_errors: list[Exception] = []
    started = False
    try:
        try:
            os.sched_setaffinity(0, {cfg.master_core})
        except OSError as exc:
            log.warning("cannot pin the master to core %d: %s", cfg.master_core, exc)
        with catch_signals(pending):
            if cfg.metrics.listen:
                import prometheus_client  # noqa: F401  (imported before the workers start)
            runner.start(start)
            started = True
            run = runner.master_run
            assert run is not None
            if cfg.metrics.listen:
                host, port = cfg.metrics.address()
                stop_http = serve(metrics, host, port)
            now = time.monotonic()
            for ex in run.executors:                     # timers count from the start
                ex.shift_timers(now - start)
            deadline = now + cfg.duration if cfg.duration else None
            log.info("%s: running on cores %s%s", cfg.app_name, cfg.all_cores(),
                     f" for {cfg.duration}s" if cfg.duration else " (Ctrl-C to stop)")
            next_watch = [now]

            def should_stop(now: float) -> str | None:
                stop = plan.stop_reason(pending, now, deadline)
                if stop is not None or now < next_watch[0]:
                    return stop
                next_watch[0] = now + _WATCH_INTERVAL
                asked, dead = runner.watch()
                if dead is not None:
                    fatal.append(dead)
                    return f"core {dead[0]} failed"
                return asked

            def on_idle() -> str | None:
                return "drained" if runner.drained(run.file_sources) else None

            reason = run_core(run.executors, should_stop,
                              idle_sleep=0.0 if cfg.workers.busy_poll else cfg.workers.idle_sleep,
                              idle_polls=cfg.workers.idle_polls,
                              on_idle=on_idle if cfg.stop_when_drained else None,
                              wake_by=lambda: next_watch[0])
    finally:
        if started:
            ended = runner.stop()
        if runner.master_run is not None:
            hook_errors, close_errors = runner.master_run.finish(started)
        else:
            close_errors = plan.close_ports()
        if stop_http is not None:
            stop_http()
        try:
            os.sched_setaffinity(0, old_affinity)
        except OSError:
            pass
    elapsed = time.monotonic() - start
    finals = runner.snapshots() if started else []
    metrics.sources.remove(runner.snapshots)
    metrics.sources.append(lambda: iter(finals))   # what the workers ended with
    snap = metrics.snapshot()
    ended[cfg.master_core] = "stopped"
    result = RunResult(reason, elapsed, snap.pipeline_totals(), _ports_of(cfg, snap),
                       cores=dict(sorted(ended.items())))
    runner.close()
    log.info("runtime terminated (%s) after %.2fs", reason, elapsed)
    if fatal:
        core, cause = fatal[0]
        raise WorkerError(f"core {core}: the worker {cause}; the other cores were stopped "
                          f"cleanly (outputs complete)", core, cause, result)
    hook_errors += runner.hook_errors
    if hook_errors:
        raise with_result(HookError("\n".join(hook_errors)), result)
    bad = {c: e for c, e in ended.items() if e not in ("stopped",)}
    if close_errors or bad:
        raise with_result(PortError("; ".join([str(e) for e in close_errors]
                                              + [f"core {c}: {e}" for c, e in bad.items()])),
                          result)
    return result


def _ports_of(cfg: "RuntimeConfig", snap: Snapshot) -> dict[str, dict[str, int]]:
    """Per port totals, every configured port listed (zeros for ports nothing touched)."""
    totals = snap.port_totals()
    return {pc.name: totals.get(pc.name, dict.fromkeys(PORT_FIELDS, 0)) for pc in cfg.ports}


@contextmanager
def catch_signals(pending: list[int]) -> Iterator[None]:
    """Queue SIGHUP/SIGINT/SIGTERM in ``pending`` (the run loop reads them), the old
    handlers restored on the way out."""
    old: dict[int, Any] = {}
    try:
        for s in UnixSignal:
            old[s] = signal.signal(s, lambda signum, frame: pending.append(signum))
    except ValueError:  # not the main thread: no signal handling
        log.warning("execute() outside the main thread: signals are not handled")
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
