"""Pipelines of batch combinators (capsule's ``batch``).

A pipeline is built declaratively from a source, a chain of combinators and a sink::

    pipeline = Poll(q).map(parse_ip).filter(not_expired).replace(reply).send(q)
    pipeline.run_once()

Every packet of a burst carries a disposition (:class:`Disposition`): *Act* (keep
processing), *Emit* (already sent elsewhere), *Drop* (intentionally dropped) or *Abort* (an
error occurred).  Only Act packets go through the next combinator; Drop, Emit and Abort skip
the rest of the chain (``inspect`` still sees them), as in capsule.

How nfkit runs it differs from capsule on purpose: capsule pulls one packet at a time
through the whole chain; nfkit runs each combinator over the whole burst before the next
(as VPP's graph nodes do), which costs one Python call per packet and stage instead of a
chain of generator frames.  Per-packet effects are the same; what changes is only the
interleaving *between* packets of one burst (stage 2 of packet 1 runs after stage 1 of
packet 2), and ``group_by`` hands its arms their packets key by key.

An exception raised by a user function aborts that packet only: it is freed, counted, and
logged at most once per error kind and interval (:class:`RateLimitedLog`); the pipeline
keeps running.  Dropped and aborted packets go back to the pool in one bulk free per run.

Every buffer a run takes in leaves it exactly once -- transmitted, or freed -- whatever the
user functions return: a stage that returns something other than a packet aborts the
packet it was given (freed); one that returns a packet in another buffer *replaces* the
packet (the original is freed and counted in ``replaced``); a buffer that two packets of a
burst end up carrying leaves once, the other packet is aborted.  So after every run::

    received == act + emit + drop + abort
"""

from __future__ import annotations

import logging
import os
import sysconfig
import time
from enum import IntEnum
from typing import Any, Callable, Hashable, Iterable, Protocol, Sequence

import numpy as np

from .buffers import Mbuf, Mempool
from .errors import DoubleFree
from .packets.base import Packet
from .slots import SlotBatch, vectorized

__all__ = [
    "vectorized", "SlotBatch", "Disposition", "PacketRx", "PacketTx", "Batch", "Pipeline", "PipelineStats", "Poll",
    "poll_fn", "splice", "RateLimitedLog", "DEFAULT_BATCH_SIZE",
]

log = logging.getLogger("nfkit.batch")

#: Packets per receive burst unless configured otherwise (DPDK's customary 32).
DEFAULT_BATCH_SIZE = 32


class Disposition(IntEnum):
    """What happened to a packet in a pipeline."""

    ACT = 0     #: keep processing
    EMIT = 1    #: already sent through another queue
    DROP = 2    #: dropped on purpose (freed in bulk)
    ABORT = 3   #: an error occurred (freed, counted, logged)


class PacketRx(Protocol):
    """A source of packets: a port queue, a channel, a generator."""

    def receive(self, max_packets: int = DEFAULT_BATCH_SIZE) -> list[Mbuf]:
        """Up to ``max_packets`` received packets (an empty list when none are waiting)."""


class PacketTx(Protocol):
    """A sink of packets.  ``transmit`` takes ownership: what it cannot send it frees and
    counts as dropped.  One that raises keeps nothing: the pipeline counts the packets as
    aborted and frees those still allocated."""

    def transmit(self, mbufs: list[Mbuf]) -> None:
        """Send ``mbufs``; the queue owns them from then on (frees what it cannot send, counted)."""


class RateLimitedLog:
    """Log one line per error kind per ``interval`` seconds, then how many were suppressed.

    A pipeline that aborts every packet of a 10 Mpps stream must not write 10 million
    lines; the first occurrence of each kind is logged at once, later ones are counted and
    summarised when the interval has passed.
    """

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self.logger = logger
        self.interval = interval
        self._next: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def __call__(self, key: Hashable, msg: str, *args: Any) -> bool:
        """Log (True) or count as suppressed (False)."""
        now = time.monotonic()
        due = self._next.get(key)
        if due is not None and now < due:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        n = self._suppressed.pop(key, 0)
        if n:
            self.logger.warning(msg + " (and %d more like it in the last %.0fs)", *args, n,
                                self.interval)
        else:
            self.logger.warning(msg, *args)
        self._next[key] = now + self.interval
        return True


_NFKIT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIB_DIRS = tuple({os.path.join(sysconfig.get_paths()[k], "")
                   for k in ("stdlib", "purelib", "platlib")})
_OWNER: dict[str, int] = {}       # file name -> 0 nfkit (or generated), 1 a library, 2 the user's


def _owner(filename: str) -> int:
    kind = _OWNER.get(filename)
    if kind is None:
        if filename.startswith(_NFKIT_DIR) or filename.startswith("<"):
            kind = 0                  # "<nfkit field ...>" accessors, "<frozen ...>"
        else:
            kind = 1 if filename.startswith(_LIB_DIRS) else 2
        _OWNER[filename] = kind
    return kind


def user_location(exc: BaseException) -> str | None:
    """``file:line in function`` of the innermost frame of the user's code in ``exc``'s
    traceback (not nfkit's, nor the standard library's or an installed package's, unless
    no other frame is there), or None for an exception nfkit made itself (no traceback)."""
    best = None
    tb = exc.__traceback__
    while tb is not None:
        kind = _owner(tb.tb_frame.f_code.co_filename)
        if kind == 2 or (kind == 1 and (best is None or best[0] == 1)):
            best = (kind, tb)
        tb = tb.tb_next
    if best is None:
        return None
    tb = best[1]
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"


def _mbuf_of(p: Any) -> Mbuf:
    """The buffer a pipeline item lives in (an Mbuf, or a parsed header); TypeError for
    anything else."""
    if p.__class__ is Mbuf:
        return p
    if isinstance(p, Packet):
        return p._mbuf
    raise TypeError(f"{_describe(p)} is not a packet")


def _describe(x: Any) -> str:
    """What a user function returned, for a log line: ``None``, ``int 42``..."""
    if x is None:
        return "None"
    text = repr(x)
    return f"{type(x).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _key(m: Mbuf) -> tuple[int, int]:
    return id(m.pool), m.slot


def _allocated(m: Mbuf) -> bool:
    pool = m.pool
    return 0 <= m.slot < pool.capacity and bool(pool.refcnt[m.slot])


def _is_vectorized(f: Any) -> bool:
    return bool(getattr(f, "__nfkit_vectorized__", False))


def _as_items(items: Any) -> list[Any]:
    return items.mbufs() if isinstance(items, SlotBatch) else items


def _slot_batches(items: Any, ctx: "_Run", label: str) -> list[SlotBatch]:
    """The burst as slots, one :class:`SlotBatch` per mempool (nearly always one): a
    replacement allocated from another pool goes through the stage with its own pool."""
    if isinstance(items, SlotBatch):
        return [items] if len(items) else []
    by_pool: dict[int, tuple[Mempool, list[int]]] = {}
    for p in items:
        try:
            m = _mbuf_of(p)
        except Exception as exc:
            ctx.abort(p, exc, label)
            continue
        entry = by_pool.get(id(m.pool))
        if entry is None:
            by_pool[id(m.pool)] = (m.pool, [m.slot])
        else:
            entry[1].append(m.slot)
    return [SlotBatch(pool, np.array(slots, dtype=np.int64)) for pool, slots in by_pool.values()]


_NOTHING: frozenset[Any] = frozenset()


class _Run:
    """Per-``run_once`` bookkeeping shared by the stages.

    Ownership: the run owns the buffers it received; each leaves once, through a transmit
    (``emit``, the sink) or the bulk free at the end (``to_free``, ``slots_to_free``).  As
    long as every stage goes on with the buffer it was given (``moved`` False) no buffer
    can be carried twice, and nothing is checked; once a stage returned another buffer,
    every exit checks that no buffer leaves twice.
    """

    __slots__ = ("pipeline", "to_free", "slots_to_free", "emitted", "dropped", "aborted",
                 "replaced", "finished", "moved", "sent_ids", "held")

    def __init__(self, pipeline: "Pipeline", record: bool) -> None:
        self.pipeline = pipeline
        self.to_free: list[Mbuf] = []
        #: dropped slots of vector stages, freed in bulk (no Mbuf objects)
        self.slots_to_free: list[SlotBatch] = []
        self.emitted = 0
        self.dropped = 0
        self.aborted = 0
        self.replaced = 0
        # (disposition, item) of packets that left the chain, for inspect stages
        self.finished: list[tuple[Disposition, Any]] | None = [] if record else None
        #: a stage went on with a buffer other than the one it was given
        self.moved = False
        #: ids of the Mbuf objects emitted (a stage handing one back is caught by identity:
        #: a sink may have freed it and a new allocation reused the slot, so keys cannot tell)
        self.sent_ids: set[int] | frozenset[int] = _NOTHING      # (made on the first emit)
        #: keys of emitted buffers their sink still held after the transmit (checked once moved)
        self.held: set[tuple[int, int]] | frozenset[tuple[int, int]] = _NOTHING

    def _log(self, stage: str, exc: BaseException, msg: str, *args: Any) -> None:
        """One warning per error kind and place (rate limited), with the user's file:line;
        the whole traceback at debug level, with each warning logged."""
        pl = self.pipeline
        where = user_location(exc)
        if where is not None:
            msg += " (at %s)"
            args += (where,)
        if (pl._log((pl.name, stage, type(exc).__name__, where), "pipeline %r: " + msg,
                    pl.name, *args)
                and exc.__traceback__ is not None and log.isEnabledFor(logging.DEBUG)):
            log.debug("pipeline %r: %s: the traceback of that %s", pl.name, stage,
                      type(exc).__name__, exc_info=exc)

    def drop(self, p: Any) -> None:
        m = _mbuf_of(p)
        self.to_free.append(m)
        self.dropped += 1
        if self.finished is not None:
            self.finished.append((Disposition.DROP, m))

    def abort(self, p: Any, exc: BaseException, stage: str, free: bool = True) -> None:
        """Count ``p`` as aborted and free its buffer (``free=False``: the buffer is not
        ``p``'s to free -- another packet carries it, or it is not a packet at all)."""
        if free:
            try:
                self.to_free.append(_mbuf_of(p))
            except TypeError:  # not a packet: nothing to free
                pass
        self.aborted += 1
        self._log(stage, exc, "%s aborted a packet: %s: %s", stage, type(exc).__name__, exc)
        if self.finished is not None:
            self.finished.append((Disposition.ABORT, exc))

    def follow(self, p: Any, r: Any, stage: str) -> Any:
        """``r`` is what ``stage`` returned for the packet ``p`` (and is not ``p``): the item
        to go on with, or None when ``p`` was aborted (freed) instead."""
        if isinstance(r, Packet):
            q = r._env
            while True:     # usually a header parsed from p: p is among its envelopes
                if q is p:
                    return r
                e = q._env
                if e is None:
                    break
                q = e
        elif r.__class__ is Mbuf:
            q = r
        else:
            self.abort(p, TypeError(f"{stage} returned {_describe(r)}, not a packet"), stage)
            return None
        mp = p              # q is r's buffer; p's:
        while (e := mp._env) is not None:
            mp = e
        if q is mp or (q.slot == mp.slot and q.pool is mp.pool):
            return r
        if not _allocated(q):
            why = (f"{stage} returned a packet in buffer {q.slot} of {q.pool.name}, which is "
                   "not allocated (freed already?)")
            self.abort(p, ValueError(why), stage)
            return None
        # Another buffer: the packet is replaced; the original goes back to the pool.
        self.to_free.append(mp)
        self.replaced += 1
        self.moved = True
        return r

    def drop_slots(self, batch: SlotBatch, mask: np.ndarray) -> None:
        """Drop the packets of ``batch`` where ``mask`` is True."""
        gone = batch.slots[mask]
        if len(gone):
            self.dropped += len(gone)
            if self.finished is not None:       # inspect stages see the packets
                dropped = SlotBatch(batch.pool, gone).mbufs()
                self.to_free.extend(dropped)
                self.finished.extend((Disposition.DROP, m) for m in dropped)
            else:
                self.slots_to_free.append(SlotBatch(batch.pool, gone))

    def abort_all(self, batch: SlotBatch, exc: BaseException, stage: str) -> None:
        mbufs = batch.mbufs()
        self.to_free.extend(mbufs)
        self.aborted += len(mbufs)
        self._log(stage, exc, "vector stage %s aborted a burst of %d: %s: %s", stage, len(mbufs),
                  type(exc).__name__, exc)
        if self.finished is not None:
            self.finished.extend((Disposition.ABORT, exc) for _ in mbufs)

    # -- exits ---------------------------------------------------------------------------
    def once(self, mbufs: list[Mbuf], stage: str) -> list[Mbuf]:
        """``mbufs`` without the buffers that already left or are leaving twice (each such
        packet is aborted, its buffer left to the packet that goes first).  Only needed
        once ``moved``."""
        gone = self._leaving()
        out = []
        for m in mbufs:
            k = _key(m)
            if k in gone or id(m) in self.sent_ids:
                why = (f"buffer {m.slot} of {m.pool.name} is carried by two packets of the burst "
                       "(a stage returned it twice?)")
                self.abort(m, ValueError(why), stage, free=False)
                continue
            gone.add(k)
            out.append(m)
        return out

    def _leaving(self) -> set[tuple[int, int]]:
        """Keys of the buffers that left or are to be freed: the latter made unique (a
        packet whose buffer is already among them needs no second free)."""
        seen = set(self.held)
        free = []
        for m in self.to_free:
            k = _key(m)
            if k not in seen and id(m) not in self.sent_ids:
                seen.add(k)
                free.append(m)
        self.to_free = free
        batches = []
        for b in self.slots_to_free:
            pid = id(b.pool)
            slots = []
            for s in b.slots.tolist():
                if (pid, s) not in seen:
                    seen.add((pid, s))
                    slots.append(s)
            batches.append(SlotBatch(b.pool, np.array(slots, dtype=np.int64)))
        self.slots_to_free = batches
        return seen

    def transmit(self, tx: PacketTx, mbufs: list[Mbuf], stage: str) -> bool:
        """``tx.transmit(mbufs)``; False when it raised: the packets are counted as aborted
        and the pipeline frees those the sink left allocated (a sink that fails keeps
        nothing; :class:`PacketTx`)."""
        try:
            tx.transmit(mbufs)
            return True
        except Exception as exc:
            live = []
            seen = set()
            for m in mbufs:
                if _allocated(m) and _key(m) not in seen:
                    seen.add(_key(m))
                    live.append(m)
            self._take_back(len(mbufs), exc, stage)
            Mbuf.free_bulk(live)
            return False

    def transmit_slots(self, tx: Any, batch: SlotBatch, stage: str) -> bool:
        try:
            tx.transmit_slots(batch.pool, batch.slots)
            return True
        except Exception as exc:
            live = np.unique(batch.slots[batch.pool.refcnt[batch.slots] != 0])
            self._take_back(len(batch), exc, stage)
            batch.pool.free_slots(live)
            return False

    def _take_back(self, n: int, exc: BaseException, stage: str) -> None:
        self.aborted += n
        self._log(stage, exc, "%s: transmit raised %s: %s; %d packet(s) aborted and freed",
                  stage, type(exc).__name__, exc, n)
        if self.finished is not None:
            self.finished.extend((Disposition.ABORT, exc) for _ in range(n))

    def emit(self, tx: PacketTx, mbufs: list[Mbuf], stage: str) -> None:
        if self.moved:
            mbufs = self.once(mbufs, stage)
        if not mbufs or not self.transmit(tx, mbufs, stage):
            return
        self.emitted += len(mbufs)
        if self.sent_ids is _NOTHING:
            self.sent_ids = set()
        self.sent_ids.update(id(m) for m in mbufs)   # type: ignore[union-attr]
        if self.moved:      # buffers the sink holds must not leave again through this run
            if self.held is _NOTHING:
                self.held = set()
            self.held.update(_key(m) for m in mbufs if _allocated(m))  # type: ignore[union-attr]
        if self.finished is not None:
            self.finished.extend((Disposition.EMIT, m) for m in mbufs)

    def release(self) -> None:
        """Free what was dropped and aborted, in bulk.  A stage that freed a packet itself
        (the pipeline still owned it) makes the bulk free refuse: then each buffer still
        allocated is freed, and it is logged -- nothing else leaks, nothing is freed twice."""
        if self.moved:
            self._leaving()     # a buffer two dropped packets carried is freed once
        if self.to_free:
            try:
                Mbuf.free_bulk(self.to_free)
            except DoubleFree as exc:
                live = {_key(m): m for m in self.to_free if _allocated(m)}
                Mbuf.free_bulk(list(live.values()))
                self._freed_twice(exc)
        for gone in self.slots_to_free:
            try:
                gone.pool.free_slots(gone.slots)
            except DoubleFree as exc:
                s = gone.slots
                gone.pool.free_slots(np.unique(s[gone.pool.refcnt[s] != 0]))
                self._freed_twice(exc)

    def _freed_twice(self, exc: DoubleFree) -> None:
        self._log("free", exc, "a stage freed a packet the pipeline still owned (%s); the others "
                  "were freed (a stage must not free the packets it is given)", exc)


Stage = Callable[[list[Any], _Run], list[Any]]


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)


def _map_stage(f: Callable[[Any], Any], kind: str = "map") -> Stage:
    """``map`` and ``replace`` (the same thing: a packet in another buffer replaces the
    one given), and ``filter_map`` (``None`` drops)."""
    label = f"{kind}({_name(f)})"
    none_drops = kind == "filter_map"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        out = []
        append = out.append
        follow = ctx.follow
        for p in items:
            try:
                r = f(p)
            except Exception as exc:
                ctx.abort(p, exc, label)
                continue
            # the usual results first, checked inline: p itself, or a header parsed from p
            if r is p or (isinstance(r, Packet) and r._env is p):
                append(r)
            elif r is None and none_drops:
                ctx.drop(p)
            elif (r := follow(p, r, label)) is not None:
                append(r)
        return out
    return run


def _filter_stage(pred: Callable[[Any], bool]) -> Stage:
    label = f"filter({_name(pred)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        out = []
        for p in items:
            try:
                # the truth test inside the try: a predicate returning e.g. a numpy array,
                # whose truth raises, aborts the packet
                keep = True if pred(p) else False
            except Exception as exc:
                ctx.abort(p, exc, label)
                continue
            if keep:
                out.append(p)
            else:
                ctx.drop(p)
        return out
    return run


def _for_each_stage(f: Callable[[Any], Any]) -> Stage:
    label = f"for_each({_name(f)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        out = []
        for p in items:
            try:
                f(p)
            except Exception as exc:
                ctx.abort(p, exc, label)
                continue
            out.append(p)
        return out
    return run


def _inspect_stage(f: Callable[[Disposition, Any], Any]) -> Stage:
    label = f"inspect({_name(f)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        try:
            for d, p in ctx.finished or ():
                f(d, p)
            for p in _as_items(items):
                f(Disposition.ACT, p)
        except Exception as exc:  # inspect changes nothing, not even on error
            ctx._log(label, exc, "%s raised %s: %s", label, type(exc).__name__, exc)
        return items
    return run


def _emit_stage(tx: PacketTx) -> Stage:
    label = f"emit({type(tx).__name__})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        if items:
            mbufs = []
            for p in items:
                try:
                    mbufs.append(_mbuf_of(p))
                except Exception as exc:
                    ctx.abort(p, exc, label)
            ctx.emit(tx, mbufs, label)
        return []
    return run


def _group_by_stage(selector: Callable[[Any], Hashable],
                    arms: dict[Hashable, list[Stage]], default: list[Stage] | None) -> Stage:
    label = f"group_by({_name(selector)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        groups: dict[Hashable, list[Any]] = {}
        for p in items:
            try:
                k = selector(p)
                g = groups.get(k)
                if g is None:
                    groups[k] = [p]
                else:
                    g.append(p)
            except Exception as exc:
                ctx.abort(p, exc, label)
        out: list[Any] = []
        for k, group in groups.items():
            _run_arm(arms.get(k, default), group, ctx, out)
        return out
    return run


def _run_arm(stages: list[Stage] | None, group: Any, ctx: _Run, out: list[Any]) -> None:
    """Run one key's packets through its arm (None: pass through); add what is left to ``out``."""
    if stages is not None:
        for stage in stages:
            if not len(group):
                break
            group = stage(group, ctx)
    out.extend(_as_items(group))


# -- vector stages ------------------------------------------------------------------------

def _view(batch: SlotBatch) -> Any:
    """The burst's BatchView; its classification is reused when the burst still has one."""
    from .vector.view import BatchView
    return BatchView(batch.pool, batch.slots, records=batch.records)


def _burst_stage(keep_of: Callable[[SlotBatch], Any], label: str) -> Stage:
    """A stage run once per burst (per pool of the burst): ``keep_of(batch)`` acts on it
    and returns ``(keep mask or None: keep all, the burst's classification after it or None)``.
    An exception aborts the burst."""

    def run(items: Any, ctx: _Run) -> Any:
        kept = []
        for batch in _slot_batches(items, ctx, label):
            try:
                keep, records = keep_of(batch)
            except Exception as exc:
                ctx.abort_all(batch, exc, label)
                continue
            if keep is None or keep.all():
                batch.records = records
                kept.append(batch)
            else:
                ctx.drop_slots(batch, ~keep)
                kept.append(SlotBatch(batch.pool, batch.slots[keep],
                                      None if records is None else records[keep]))
        if len(kept) == 1:
            return kept[0]
        return [m for b in kept for m in b.mbufs()]
    run.vector = True  # type: ignore[attr-defined]
    return run


def _vector_stage(f: Callable[[Any], Any], kind: str) -> Stage:
    """``kind``: map / for_each (None or a keep mask), filter (a keep mask)."""

    def keep_of(batch: SlotBatch) -> Any:
        view = _view(batch)
        r = f(view)
        still = None if view.restructured else view.records
        if r is None:
            if kind == "filter":
                raise TypeError("a vectorized filter must return a boolean keep mask")
            return None, still
        keep = np.asarray(r)
        if keep.dtype != bool or keep.shape != (len(batch),):
            raise TypeError(f"expected a boolean mask of {len(batch)}, got {keep.dtype} {keep.shape}")
        return keep, still
    return _burst_stage(keep_of, f"{kind}(@vectorized {_name(f)})")


def _kernel_stage(k: Any, kind: str) -> Stage:
    """A JIT kernel (:mod:`nfkit.vector.jit`): one call per burst over the raw arrays.  The
    burst stays classified after it only if the kernel says it keeps packet structure."""
    def keep_of(batch: SlotBatch) -> Any:
        keep = k.run(batch.pool, batch.slots, records=batch.records)
        return keep, None if k.restructures else batch.records
    return _burst_stage(keep_of, f"{kind}(kernel {_name(k)})")


def _stage_for(f: Any, kind: str, per_packet: Callable[[Any], Stage]) -> Stage:
    if getattr(f, "__nfkit_kernel__", False):
        return _kernel_stage(f, kind)
    if _is_vectorized(f):
        return _vector_stage(f, kind)
    return per_packet(f)


def _vector_group_by_stage(selector: Callable[[Any], Any], arms: dict[Hashable, list[Stage]],
                           default: list[Stage] | None) -> Stage:
    label = f"group_by(@vectorized {_name(selector)})"

    def run(items: Any, ctx: _Run) -> Any:
        out: list[Any] = []
        for batch in _slot_batches(items, ctx, label):
            try:
                view = _view(batch)
                keys = np.asarray(selector(view))
                records = None if view.restructured else view.records
                if keys.shape != (len(batch),):
                    raise TypeError(f"expected a key column of {len(batch)}, "
                                    f"got shape {keys.shape}")
                # grouped by position in the unique keys, not by ``keys == k``: NaN != NaN
                uniq, which = np.unique(keys, return_inverse=True)
                chosen = [arms.get(k, default) for k in uniq.tolist()]
            except Exception as exc:
                ctx.abort_all(batch, exc, label)
                continue
            for i, stages in enumerate(chosen):
                rows = which == i
                _run_arm(stages, SlotBatch(batch.pool, batch.slots[rows],
                                           None if records is None else records[rows]), ctx, out)
        return out
    run.vector = True  # type: ignore[attr-defined]
    return run


class _Bridge:
    """The source of a ``group_by`` arm: the arm's packets come from the enclosing batch."""

    def receive(self, max_packets: int = DEFAULT_BATCH_SIZE) -> list[Mbuf]:  # pragma: no cover
        raise RuntimeError("a group_by arm has no source of its own")


class Batch:
    """A pipeline being built: a source and the combinators so far.

    Each combinator returns a new :class:`Batch`; :meth:`send` ends the chain and gives the
    runnable :class:`Pipeline`.
    """

    __slots__ = ("source", "stages", "batch_size", "_inspects")

    def __init__(self, source: PacketRx, stages: Sequence[Stage] = (), batch_size: int | None = None,
                 inspects: bool = False) -> None:
        self.source = source
        self.stages = tuple(stages)
        self.batch_size = batch_size
        self._inspects = inspects

    def _then(self, stage: Stage, inspects: bool = False) -> "Batch":
        return Batch(self.source, self.stages + (stage,), self.batch_size, self._inspects or inspects)

    def map(self, f: Callable[[Any], Any]) -> "Batch":
        """Go on with ``f(packet)``: the packet or a header parsed from it (a packet in
        another buffer replaces it, as :meth:`replace`); an exception or a result that is
        not a packet aborts.  A :func:`vectorized` ``f`` gets the burst's columns instead."""
        return self._then(_stage_for(f, "map", _map_stage))

    def filter(self, pred: Callable[[Any], bool]) -> "Batch":
        """Keep packets for which ``pred`` is true; drop the others (a :func:`vectorized`
        ``pred`` returns the keep mask of the burst)."""
        return self._then(_stage_for(pred, "filter", _filter_stage))

    def filter_map(self, f: Callable[[Any], Any]) -> "Batch":
        """``f`` returns the packet to keep (possibly transformed, or in another buffer: as
        :meth:`map`) or ``None`` to drop it (capsule's ``Either::Keep`` / ``Either::Drop``)."""
        return self._then(_map_stage(f, "filter_map"))

    def for_each(self, f: Callable[[Any], Any]) -> "Batch":
        """Call ``f`` on each packet for its side effects; the packet continues unchanged."""
        return self._then(_stage_for(f, "for_each", _for_each_stage))

    def inspect(self, f: Callable[[Disposition, Any], Any]) -> "Batch":
        """Call ``f(disposition, item)`` for every packet of the burst whatever happened to
        it so far (Drop/Emit items are Mbufs, Abort items the exception); changes nothing."""
        return self._then(_inspect_stage(f), inspects=True)

    def replace(self, f: Callable[[Any], Any]) -> "Batch":
        """Continue with the new packet ``f(packet)`` returns; the original is freed and
        counted in ``replaced`` (the new packet carries on the original's disposition)."""
        return self._then(_map_stage(f, "replace"))

    def emit(self, tx: PacketTx) -> "Batch":
        """Send the packets through ``tx`` now (one transmit per burst); they are done."""
        return self._then(_emit_stage(tx))

    def group_by(self, selector: Callable[[Any], Hashable],
                 arms: dict[Hashable, Callable[["Batch"], "Batch"]],
                 default: Callable[["Batch"], "Batch"] | None = None) -> "Batch":
        """Split packets by ``selector(packet)``; each key's packets go through the arm built
        by ``arms[key](batch)``; unmatched keys go through ``default`` if given, else pass
        through unchanged (what capsule's code does); the results are merged."""
        built = {k: self._arm(b) for k, b in arms.items()}
        dflt = self._arm(default) if default is not None else None
        inspects = any(i for _, i in built.values()) or bool(dflt and dflt[1])
        make = _vector_group_by_stage if _is_vectorized(selector) else _group_by_stage
        return self._then(make(selector, {k: s for k, (s, _) in built.items()},
                               dflt[0] if dflt else None), inspects)

    @staticmethod
    def _arm(builder: Callable[["Batch"], "Batch"]) -> tuple[list[Stage], bool]:
        b = builder(Batch(_Bridge()))
        if not isinstance(b, Batch):
            raise TypeError(f"a group_by arm must return the batch it was given with combinators "
                            f"added, got {type(b).__name__}")
        return list(b.stages), b._inspects

    def send(self, tx: PacketTx, name: str = "default") -> "Pipeline":
        """End the chain: Act packets go to ``tx`` (one transmit per burst)."""
        if isinstance(self.source, _Bridge):
            raise TypeError("send() inside a group_by arm: arms end where the group_by ends")
        return Pipeline(self, tx, name)

    def send_named(self, name: str, tx: PacketTx) -> "Pipeline":
        """capsule's spelling of ``send(tx, name=...)``."""
        return self.send(tx, name)


def Poll(rx: PacketRx, batch_size: int | None = None) -> Batch:  # noqa: N802 - capsule's name
    """Start a pipeline at a packet source (a port queue, a channel...)."""
    return Batch(rx, batch_size=batch_size)


class _FnRx:
    """The source of :func:`poll_fn`: what ``f()`` yields, up to an exception (logged by
    the pipeline: what was yielded before it goes on)."""

    __slots__ = ("f", "label", "error")

    def __init__(self, f: Callable[[], Iterable[Mbuf]]) -> None:
        self.f = f
        self.label = f"poll_fn({_name(f)})"
        self.error: Exception | None = None

    def receive(self, max_packets: int = DEFAULT_BATCH_SIZE) -> list[Mbuf]:
        out: list[Mbuf] = []
        try:
            out.extend(self.f())
        except Exception as exc:
            self.error = exc
        return out


def poll_fn(f: Callable[[], Iterable[Mbuf]]) -> Batch:
    """Start a pipeline at a function that produces packets (a generator, e.g. allocating
    and filling new Mbufs); used with periodic pipelines."""
    return Batch(_FnRx(f))


def splice(rx: PacketRx, tx: PacketTx) -> "Pipeline":
    """Plain forwarding from ``rx`` to ``tx``."""
    return Poll(rx).send(tx)


class PipelineStats:
    """Counters of one pipeline (capsule's pipeline metrics)."""

    __slots__ = ("runs", "idle_runs", "received", "act", "emit", "drop", "abort", "replaced")

    def __init__(self) -> None:
        self.runs = self.idle_runs = self.received = 0
        #: every packet received ends in exactly one: received == act + emit + drop + abort
        self.act = self.emit = self.drop = self.abort = 0
        #: originals freed because a stage went on with a packet in another buffer (replace);
        #: not a disposition: the replacement carries on and is counted where it ends
        self.replaced = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (``received``, ``act``, ``drop``, ...; the keys of ``RunResult.pipelines``)."""
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self) -> str:
        return "PipelineStats(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"


class Pipeline:
    """A runnable pipeline: ``run_once()`` processes one burst from the source."""

    def __init__(self, batch: Batch, tx: PacketTx, name: str = "default",
                 log_interval: float = 1.0) -> None:
        self.name = name
        self.source = batch.source
        self.tx = tx
        self.stages = batch.stages
        #: None: the source's own burst size (a port queue's is the config's batch_size)
        self.batch_size = batch.batch_size
        self._record = batch._inspects
        # Bursts start as slots (no Mbuf objects) when the chain starts with a vector stage
        # and the source can hand out slots; likewise at the end for the sink.
        first = batch.stages[0] if batch.stages else None
        self._rx_slots = (getattr(first, "vector", False)
                          and hasattr(self.source, "receive_slots"))
        self._tx_slots = hasattr(tx, "transmit_slots")
        # A port queue hands out distinct allocated buffers; anything else (poll_fn, a
        # channel, a test double) is user code, and what it yields is checked.
        self._check_rx = not hasattr(self.source, "receive_slots")
        self._rx_label = (getattr(self.source, "label", None)
                          or f"source {type(self.source).__name__}")
        self.stats = PipelineStats()
        self._log = RateLimitedLog(log, log_interval)

    def run_once(self) -> int:
        """Receive one burst, run it through the chain, transmit what is left, free what
        was dropped or aborted.  Returns the number of packets received."""
        st = self.stats
        st.runs += 1
        if self._rx_slots:
            items: Any = self.source.receive_slots(self.batch_size)
        else:
            items = (self.source.receive() if self.batch_size is None
                     else self.source.receive(self.batch_size))
        ctx = _Run(self, self._record)
        if self._check_rx:
            items = self._checked(items, ctx)
        n = len(items) + ctx.aborted
        if not n:
            st.idle_runs += 1
            return 0
        st.received += n
        for stage in self.stages:
            items = stage(items, ctx)
            if not len(items) and not self._record:
                break
        if isinstance(items, SlotBatch) and ctx.moved:
            items = items.mbufs()
        if isinstance(items, SlotBatch):
            if len(items):
                ok = (ctx.transmit_slots(self.tx, items, "send") if self._tx_slots
                      else ctx.transmit(self.tx, items.mbufs(), "send"))
                if ok:
                    st.act += len(items)
        elif items:
            out = []
            append = out.append
            for p in items:
                if p.__class__ is Mbuf:
                    append(p)
                elif isinstance(p, Packet):
                    append(p._mbuf)
                else:       # only from a source with no stage (stages check what they return)
                    ctx.abort(p, TypeError(f"send got {_describe(p)}, not a packet"), "send")
            if ctx.moved:
                out = ctx.once(out, "send")
            if out and ctx.transmit(self.tx, out, "send"):
                st.act += len(out)
        ctx.release()
        st.emit += ctx.emitted
        st.drop += ctx.dropped
        st.abort += ctx.aborted
        st.replaced += ctx.replaced
        return n

    def _checked(self, items: list[Any], ctx: _Run) -> list[Any]:
        """The packets of a burst from user code: anything that is not a packet, not
        allocated, or a buffer already in the burst is aborted (counted as received; not
        freed: it is nobody's or another packet's).  A poll_fn that raised is logged."""
        label = self._rx_label
        err = getattr(self.source, "error", None)
        if err is not None:
            self.source.error = None
            ctx._log(label, err, "%s raised %s: %s (the %d packets yielded before go on)", label,
                     type(err).__name__, err, len(items))
        if items:   # the usual case first: distinct allocated Mbufs of one pool (100 ns a
            pool = getattr(items[0], "pool", None)  # packet instead of 260, measured)
            slots = [p.slot for p in items if p.__class__ is Mbuf and p.pool is pool]
            try:
                if (len(slots) == len(items) and len(set(slots)) == len(slots)
                        and pool.refcnt.take(slots).all()):
                    return items
            except IndexError:  # a slot out of range: said below
                pass
        out = []
        seen: set[tuple[int, int]] = set()
        for p in items:
            try:
                m = _mbuf_of(p)
            except TypeError:
                ctx.abort(p, TypeError(f"{label} produced {_describe(p)}, not a packet"), label)
                continue
            k = _key(m)
            if k in seen or not _allocated(m):
                what = "twice" if k in seen else "but it is not allocated"
                why = f"{label} produced buffer {m.slot} of {m.pool.name} {what}"
                ctx.abort(p, ValueError(why), label, free=False)
                continue
            seen.add(k)
            out.append(p)
        return out

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {len(self.stages)} stages, {self.stats})"
