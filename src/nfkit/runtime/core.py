"""Core control (capsule's ``core_map.rs``): what one core runs and the one loop that runs it.

A :class:`CoreExecutor` is one core's work: pipelines polled round robin and periodic work
on timers.  :func:`run_core` is the run loop -- the only one: the single-process runtime
runs it over every core's executor, the master of the multi-process runtime over its own
core's, and every worker process over its core's (:mod:`nfkit.runtime.processes`).  What
differs between them (signals, the workers' control flag, metrics publishing) is the
``should_stop`` callback, checked once per round.

A :class:`CoreRun` is what a process runs: its executors, and the start/stop steps around
the loop (the app's ``on_start`` / ``on_stop`` hooks, closing ports).  The public API that
builds them is :mod:`nfkit.runtime.api`.
"""

from __future__ import annotations

import heapq
import inspect
import logging
import signal
import time
import traceback
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Callable

from ..batch import Pipeline
from ..errors import NfkitError

if TYPE_CHECKING:  # pragma: no cover
    from ..metrics import Snapshot
    from ..ports.port import Port, PortQueue

__all__ = ["RunError", "CoreError", "HookError", "WorkerError", "UnixSignal", "CoreExecutor",
           "RunResult", "CoreRun", "run_core", "with_result", "Hook"]

log = logging.getLogger("nfkit.runtime")


class RunError(NfkitError):
    """The runtime cannot do what the app asked (unknown port, core, failing installer)."""


class CoreError(RunError):
    """A core id that the config does not have, or that serves no port."""


class HookError(RunError):
    """An ``on_start`` / ``on_stop`` hook raised: the message names the core, the hook and
    its file:line, then the traceback."""


class WorkerError(RunError):
    """A worker process died or failed while running.  ``core`` and ``cause`` say which and
    why; ``result`` is the :class:`RunResult` of the run up to the clean stop that followed
    (outputs of the other cores are complete)."""

    def __init__(self, message: str, core: int, cause: str, result: "RunResult | None") -> None:
        super().__init__(message)
        self.core = core
        self.cause = cause
        self.result = result

    def __reduce__(self) -> Any:
        return type(self), (str(self), self.core, self.cause, self.result)


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

    @property
    def timers(self) -> int:
        """How many timers this core has."""
        return len(self._timers)

    def shift_timers(self, by: float) -> None:
        """Move every timer ``by`` seconds later (timers count from the start of the run,
        not from the install)."""
        for t in self._timers:
            t.due += by

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


def run_core(executors: list[CoreExecutor], should_stop: Callable[[float], str | None], *,
             idle_sleep: float, idle_polls: int,
             on_idle: Callable[[], str | None] | None = None,
             wake_by: Callable[[], float] | None = None) -> str:
    """Poll ``executors`` until ``should_stop(now)`` (checked after every round) or
    ``on_idle()`` (checked after every empty round) returns a reason; returns it.

    After more than ``idle_polls`` empty rounds in a row, sleep up to ``idle_sleep``
    seconds (0: busy-poll), no longer than the next timer or ``wake_by()``.  This is the
    loop of every core, master included (DPDK's ``l2fwd_main_loop`` shape)."""
    timed = [ex for ex in executors if ex.timers]
    empty = 0
    while True:
        work = 0
        for ex in executors:
            work += ex.poll()
        now = time.monotonic()
        for ex in timed:
            work += ex.run_timers(now)
        reason = should_stop(now)
        if reason is not None:
            return reason
        if work:
            empty = 0
            continue
        empty += 1
        if on_idle is not None:
            reason = on_idle()
            if reason is not None:
                return reason
        if idle_sleep and empty > idle_polls:
            wake = wake_by() if wake_by is not None else now + idle_sleep
            for ex in timed:
                due = ex.next_due()
                if due is not None and due < wake:
                    wake = due
            time.sleep(max(0.0, min(idle_sleep, wake - now)))


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


def with_result(exc: NfkitError, result: RunResult) -> NfkitError:
    """``exc`` carrying the counters of the run it ended (``exc.result``), as
    :class:`WorkerError` does: a run that failed at its end (an output it could not write)
    still reports what it did."""
    exc.result = result  # type: ignore[attr-defined]
    return exc


#: ``hook(core)``: an app's ``on_start`` / ``on_stop`` (see :meth:`Runtime.on_start`)
Hook = Callable[[int], Any]


def where(fn: Any) -> str:
    """``name (file:line)`` of a function, for messages about the app's code."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    try:
        target = inspect.unwrap(fn)
        code = getattr(target, "__code__", None) or target.__call__.__code__
        return f"{name} ({code.co_filename}:{code.co_firstlineno})"
    except (AttributeError, TypeError, ValueError):
        return name


def run_hooks(kind: str, hooks: list[Hook], cores: list[int]) -> list[str]:
    """Call every hook for every core of ``cores``; returns one error text per failure (the
    core, the hook with its file:line, the traceback) -- each hook runs even if one before
    it failed, so an on_stop that flushes a table is not skipped by another's bug."""
    errors = []
    for core in cores:
        for hook in hooks:
            try:
                hook(core)
            except Exception as exc:
                text = (f"core {core}: {kind} hook {where(hook)} failed: {type(exc).__name__}: "
                        f"{exc}\n" + "".join(traceback.format_exception(exc)))
                log.error("%s", text)
                errors.append(text)
    return errors


@dataclass
class CoreRun:
    """What one process runs around :func:`run_core`: built by the API
    (:meth:`Runtime._core_run`), run by the single-process path and the supervisor alike."""

    cores: list[int]
    #: this process's ports (queues of the other processes' cores are not open here)
    ports: dict[str, "Port"]
    executors: list[CoreExecutor]
    #: the queues whose input ends (pcap files): ``stop_when_drained`` waits for them
    file_sources: list["PortQueue"]
    #: the app's :meth:`Runtime.stop` request, consumed (None: none)
    take_stop: Callable[[], str | None]
    #: this process's numbers (:func:`nfkit.metrics.collect`)
    snapshot: Callable[[], "Snapshot"]
    #: the on_start hooks of these cores; error texts
    start: Callable[[], list[str]]
    #: ``finish(started)``: the on_stop hooks (if the cores started), then close the ports
    #: and dumps; returns (hook error texts, closing errors)
    finish: Callable[[bool], tuple[list[str], list[Exception]]]

    def drained(self) -> bool:
        """Whether every file source of this process has ended (``stop_when_drained``)."""
        return bool(self.file_sources) and all(q.exhausted for q in self.file_sources)
