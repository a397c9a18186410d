"""A burst as slots of one pool: what ports hand out and vector stages work on, no Mbufs.

It lives beside the buffers (not in :mod:`nfkit.batch`) so that ports and :mod:`nfkit.vector`
need not import the pipeline layer.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .buffers import Mbuf, Mempool

__all__ = ["SlotBatch", "vectorized"]


class SlotBatch:
    """The packets ``slots`` (an int array) of ``pool``.

    ``records``: the burst's classification (:mod:`nfkit.vector._classify`, one record per
    packet, in the order of ``slots``), or None.  The rule that keeps it true: a pipeline
    sets it when a vector stage has classified the burst, carries it (the rows kept) to the
    packets a stage keeps, and drops it when a stage may have changed packet structure --
    any per-packet stage (the burst leaves the slot form then), a kernel that does not
    declare ``restructures=False``, a vector stage that wrote a structural column or called
    ``invalidate()``.  A new SlotBatch (a port's burst) has none."""

    __slots__ = ("pool", "slots", "records")

    def __init__(self, pool: Mempool, slots: np.ndarray, records: np.ndarray | None = None) -> None:
        self.pool = pool
        self.slots = slots
        self.records = records

    def __len__(self) -> int:
        return len(self.slots)

    def mbufs(self) -> list[Mbuf]:
        """The batch's packets as :class:`Mbuf` handles, in order (no copy: views of the same slots)."""
        pool = self.pool
        return [Mbuf(pool, s) for s in self.slots.tolist()]


def vectorized(f: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``f`` as a vector stage: combinators call it once per burst with a
    :class:`~nfkit.vector.BatchView` instead of once per packet.

    For ``map``/``for_each`` it acts on the columns and returns ``None`` or a boolean keep
    mask; for ``filter`` it returns the keep mask; for ``group_by`` it returns the key
    column.  An exception aborts every packet of that burst.
    """
    f.__nfkit_vectorized__ = True  # type: ignore[attr-defined]
    return f
