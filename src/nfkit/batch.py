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
"""

from __future__ import annotations

import logging
import time
from enum import IntEnum
from typing import Any, Callable, Hashable, Iterable, Protocol, Sequence

import numpy as np

from .buffers import Mbuf, Mempool

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

    def receive(self, max_packets: int = DEFAULT_BATCH_SIZE) -> list[Mbuf]: ...


class PacketTx(Protocol):
    """A sink of packets.  ``transmit`` takes ownership: what it cannot send it frees and
    counts as dropped."""

    def transmit(self, mbufs: list[Mbuf]) -> None: ...


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

    def __call__(self, key: Hashable, msg: str, *args: Any) -> None:
        now = time.monotonic()
        due = self._next.get(key)
        if due is not None and now < due:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        n = self._suppressed.pop(key, 0)
        if n:
            self.logger.warning(msg + " (and %d more like it in the last %.0fs)", *args, n,
                                self.interval)
        else:
            self.logger.warning(msg, *args)
        self._next[key] = now + self.interval


def _mbuf_of(p: Any) -> Mbuf:
    """The buffer a pipeline item lives in (an Mbuf, or a parsed header)."""
    return p if p.__class__ is Mbuf else p.reset()


def vectorized(f: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``f`` as a vector stage: combinators call it once per burst with a
    :class:`~nfkit.vector.BatchView` instead of once per packet.

    For ``map``/``for_each`` it acts on the columns and returns ``None`` or a boolean keep
    mask; for ``filter`` it returns the keep mask; for ``group_by`` it returns the key
    column.  An exception aborts every packet of that burst.
    """
    f.__nfkit_vectorized__ = True  # type: ignore[attr-defined]
    return f


def _is_vectorized(f: Any) -> bool:
    return bool(getattr(f, "__nfkit_vectorized__", False))


class SlotBatch:
    """A burst as slots of one pool: what vector stages work on, with no Mbuf objects."""

    __slots__ = ("pool", "slots")

    def __init__(self, pool: Mempool, slots: np.ndarray) -> None:
        self.pool = pool
        self.slots = slots

    def __len__(self) -> int:
        return len(self.slots)

    def mbufs(self) -> list[Mbuf]:
        pool = self.pool
        return [Mbuf(pool, s) for s in self.slots.tolist()]


def _as_items(items: Any) -> list[Any]:
    return items.mbufs() if isinstance(items, SlotBatch) else items


def _as_slots(items: Any, ctx: "_Run", label: str) -> SlotBatch | None:
    """The burst as slots of one pool (packets from another pool are aborted)."""
    if isinstance(items, SlotBatch):
        return items
    if not items:
        return None
    mbufs = []
    for p in items:
        try:
            mbufs.append(_mbuf_of(p))
        except Exception as exc:
            ctx.abort(p, exc, label)
    if not mbufs:
        return None
    pool = mbufs[0].pool
    slots = []
    for m in mbufs:
        if m.pool is pool:
            slots.append(m.slot)
        else:
            ctx.abort(m, ValueError("a vector stage needs one mempool per burst"), label)
    return SlotBatch(pool, np.array(slots, dtype=np.int64))


class _Run:
    """Per-``run_once`` bookkeeping shared by the stages."""

    __slots__ = ("pipeline", "to_free", "slots_to_free", "emitted", "dropped", "aborted", "finished")

    def __init__(self, pipeline: "Pipeline", record: bool) -> None:
        self.pipeline = pipeline
        self.to_free: list[Mbuf] = []
        #: dropped slots of vector stages, freed in bulk (no Mbuf objects)
        self.slots_to_free: list[SlotBatch] = []
        self.emitted = 0
        self.dropped = 0
        self.aborted = 0
        # (disposition, item) of packets that left the chain, for inspect stages
        self.finished: list[tuple[Disposition, Any]] | None = [] if record else None

    def drop(self, p: Any) -> None:
        m = _mbuf_of(p)
        self.to_free.append(m)
        self.dropped += 1
        if self.finished is not None:
            self.finished.append((Disposition.DROP, m))

    def abort(self, p: Any, exc: BaseException, stage: str) -> None:
        try:
            m = _mbuf_of(p)
        except Exception:  # the item is not a packet at all: nothing we can free
            m = None
        if m is not None:
            self.to_free.append(m)
        self.aborted += 1
        pl = self.pipeline
        pl._log((pl.name, stage, type(exc).__name__), "pipeline %r: %s aborted a packet: %s: %s",
                pl.name, stage, type(exc).__name__, exc)
        if self.finished is not None:
            self.finished.append((Disposition.ABORT, exc))

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
        pl = self.pipeline
        pl._log((pl.name, stage, type(exc).__name__),
                "pipeline %r: vector stage %s aborted a burst of %d: %s: %s", pl.name, stage,
                len(mbufs), type(exc).__name__, exc)
        if self.finished is not None:
            self.finished.extend((Disposition.ABORT, exc) for _ in mbufs)

    def emit(self, n: int, items: list[Any]) -> None:
        self.emitted += n
        if self.finished is not None:
            self.finished.extend((Disposition.EMIT, p) for p in items)


Stage = Callable[[list[Any], _Run], list[Any]]


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)


def _map_stage(f: Callable[[Any], Any]) -> Stage:
    label = f"map({_name(f)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        out = []
        append = out.append
        for p in items:
            try:
                append(f(p))
            except Exception as exc:
                ctx.abort(p, exc, label)
        return out
    return run


def _filter_stage(pred: Callable[[Any], bool]) -> Stage:
    label = f"filter({_name(pred)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        out = []
        for p in items:
            try:
                keep = pred(p)
            except Exception as exc:
                ctx.abort(p, exc, label)
                continue
            if keep:
                out.append(p)
            else:
                ctx.drop(p)
        return out
    return run


def _filter_map_stage(f: Callable[[Any], Any]) -> Stage:
    label = f"filter_map({_name(f)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        out = []
        for p in items:
            try:
                r = f(p)
            except Exception as exc:
                ctx.abort(p, exc, label)
                continue
            if r is None:
                ctx.drop(p)
            else:
                out.append(r)
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
            ctx.pipeline._log((ctx.pipeline.name, label, type(exc).__name__),
                              "pipeline %r: %s raised %s: %s", ctx.pipeline.name, label,
                              type(exc).__name__, exc)
        return items
    return run


def _replace_stage(f: Callable[[Any], Any]) -> Stage:
    label = f"replace({_name(f)})"

    def run(items: list[Any], ctx: _Run) -> list[Any]:
        items = _as_items(items)
        out = []
        for p in items:
            try:
                new = f(p)
            except Exception as exc:
                ctx.abort(p, exc, label)
                continue
            out.append(new)
            om = _mbuf_of(p)
            nm = _mbuf_of(new)
            if nm.slot != om.slot or nm.pool is not om.pool:
                ctx.drop(om)  # the original is dropped once replaced (capsule counts it so)
        return out
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
            tx.transmit(mbufs)
            ctx.emit(len(mbufs), mbufs)
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
            stages = arms.get(k, default)
            if stages is not None:
                for stage in stages:
                    if not group:
                        break
                    group = stage(group, ctx)
            out.extend(_as_items(group))
        return out
    return run


# -- vector stages ------------------------------------------------------------------------

def _view(batch: SlotBatch) -> Any:
    from .vector.view import BatchView
    return BatchView(batch.pool, batch.slots)


def _burst_stage(keep_of: Callable[[SlotBatch], Any], label: str) -> Stage:
    """A stage run once per burst: ``keep_of(batch)`` acts on the burst and returns a keep
    mask (or ``None``: keep all).  An exception aborts the whole burst."""

    def run(items: Any, ctx: _Run) -> Any:
        batch = _as_slots(items, ctx, label)
        if batch is None:
            return []
        try:
            keep = keep_of(batch)
        except Exception as exc:
            ctx.abort_all(batch, exc, label)
            return []
        if keep is None or keep.all():
            return batch
        ctx.drop_slots(batch, ~keep)
        return SlotBatch(batch.pool, batch.slots[keep])
    run.vector = True  # type: ignore[attr-defined]
    return run


def _vector_stage(f: Callable[[Any], Any], kind: str) -> Stage:
    """``kind``: map / for_each (None or a keep mask), filter (a keep mask)."""

    def keep_of(batch: SlotBatch) -> Any:
        r = f(_view(batch))
        if r is None:
            if kind == "filter":
                raise TypeError("a vectorized filter must return a boolean keep mask")
            return None
        keep = np.asarray(r)
        if keep.dtype != bool or keep.shape != (len(batch),):
            raise TypeError(f"expected a boolean mask of {len(batch)}, got {keep.dtype} {keep.shape}")
        return keep
    return _burst_stage(keep_of, f"{kind}(@vectorized {_name(f)})")


def _kernel_stage(k: Any, kind: str) -> Stage:
    """A JIT kernel (:mod:`nfkit.vector.jit`): one call per burst over the raw arrays."""
    return _burst_stage(lambda batch: k.run(batch.pool, batch.slots), f"{kind}(kernel {_name(k)})")


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
        batch = _as_slots(items, ctx, label)
        if batch is None:
            return []
        try:
            keys = np.asarray(selector(_view(batch)))
            if keys.shape != (len(batch),):
                raise TypeError(f"expected a key column of {len(batch)}, got shape {keys.shape}")
        except Exception as exc:
            ctx.abort_all(batch, exc, label)
            return []
        out: list[Any] = []
        for k in np.unique(keys).tolist():
            group: Any = SlotBatch(batch.pool, batch.slots[keys == k])
            stages = arms.get(k, default)
            if stages is not None:
                for stage in stages:
                    if not len(group):
                        break
                    group = stage(group, ctx)
            out.extend(_as_items(group))
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
        """Replace each packet by ``f(packet)`` (e.g. a parsed header); an exception aborts.
        A :func:`vectorized` ``f`` gets the burst's columns instead."""
        return self._then(_stage_for(f, "map", _map_stage))

    def filter(self, pred: Callable[[Any], bool]) -> "Batch":
        """Keep packets for which ``pred`` is true; drop the others (a :func:`vectorized`
        ``pred`` returns the keep mask of the burst)."""
        return self._then(_stage_for(pred, "filter", _filter_stage))

    def filter_map(self, f: Callable[[Any], Any]) -> "Batch":
        """``f`` returns the packet to keep (possibly transformed) or ``None`` to drop it
        (capsule's ``Either::Keep`` / ``Either::Drop``)."""
        return self._then(_filter_map_stage(f))

    def for_each(self, f: Callable[[Any], Any]) -> "Batch":
        """Call ``f`` on each packet for its side effects; the packet continues unchanged."""
        return self._then(_stage_for(f, "for_each", _for_each_stage))

    def inspect(self, f: Callable[[Disposition, Any], Any]) -> "Batch":
        """Call ``f(disposition, item)`` for every packet of the burst whatever happened to
        it so far (Drop/Emit items are Mbufs, Abort items the exception); changes nothing."""
        return self._then(_inspect_stage(f), inspects=True)

    def replace(self, f: Callable[[Any], Any]) -> "Batch":
        """Continue with the new packet ``f(packet)`` returns; the original is dropped."""
        return self._then(_replace_stage(f))

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
    __slots__ = ("f",)

    def __init__(self, f: Callable[[], Iterable[Mbuf]]) -> None:
        self.f = f

    def receive(self, max_packets: int = DEFAULT_BATCH_SIZE) -> list[Mbuf]:
        return list(self.f())


def poll_fn(f: Callable[[], Iterable[Mbuf]]) -> Batch:
    """Start a pipeline at a function that produces packets (a generator, e.g. allocating
    and filling new Mbufs); used with periodic pipelines."""
    return Batch(_FnRx(f))


def splice(rx: PacketRx, tx: PacketTx) -> "Pipeline":
    """Plain forwarding from ``rx`` to ``tx``."""
    return Poll(rx).send(tx)


class PipelineStats:
    """Counters of one pipeline (capsule's pipeline metrics)."""

    __slots__ = ("runs", "idle_runs", "received", "act", "emit", "drop", "abort")

    def __init__(self) -> None:
        self.runs = self.idle_runs = self.received = 0
        self.act = self.emit = self.drop = self.abort = 0

    def as_dict(self) -> dict[str, int]:
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
        n = len(items)
        if not n:
            st.idle_runs += 1
            return 0
        st.received += n
        ctx = _Run(self, self._record)
        for stage in self.stages:
            items = stage(items, ctx)
            if not len(items) and not self._record:
                break
        if isinstance(items, SlotBatch):
            if len(items):
                st.act += len(items)
                if self._tx_slots:
                    self.tx.transmit_slots(items.pool, items.slots)
                else:
                    self.tx.transmit(items.mbufs())
        elif items:
            out = []
            for p in items:
                try:
                    out.append(p if p.__class__ is Mbuf else p.reset())
                except Exception as exc:
                    ctx.abort(p, TypeError(f"the chain produced {type(p).__name__}, not a packet "
                                           f"({exc})"), "send")
            if out:
                st.act += len(out)
                self.tx.transmit(out)
        if ctx.to_free:
            Mbuf.free_bulk(ctx.to_free)
        for gone in ctx.slots_to_free:
            gone.pool.free_slots(gone.slots)
        st.emit += ctx.emitted
        st.drop += ctx.dropped
        st.abort += ctx.aborted
        return n

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {len(self.stages)} stages, {self.stats})"
