"""Compiled fast paths for the mempool's bulk operations, used when numba is installed.

Each function does in one compiled pass what the numpy versions in :mod:`nfkit.buffers`
do in several array calls; results and error cases are the same (the tests run both).
Without numba, ``AVAILABLE`` is False and nothing here is used.
"""

from __future__ import annotations

import os

import numpy as np

try:
    if os.environ.get("NFKIT_NO_NUMBA"):
        raise ImportError("disabled by NFKIT_NO_NUMBA")
    import numba
    AVAILABLE = True
except ImportError:
    numba = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "alloc_slots", "free_slots", "sum_lengths", "fill_rows"]

if AVAILABLE:
    @numba.njit(cache=True, nogil=True)
    def alloc_slots(free, top, n, refcnt, data_off, data_len, timestamp, headroom, length):  # pragma: no cover
        """Pop ``n`` slots (caller checked ``n <= top``); reset their metadata (data
        length ``length``)."""
        out = np.empty(n, dtype=np.int32)
        for i in range(n):
            s = free[top - 1 - i]
            out[i] = s
            refcnt[s] = 1
            data_off[s] = headroom
            data_len[s] = length
            timestamp[s] = 0xFFFFFFFFFFFFFFFF   # buffers.NO_TIMESTAMP
        return out

    @numba.njit(cache=True, nogil=True)
    def free_slots(free, top, slots, refcnt, capacity):  # pragma: no cover
        """Push ``slots`` back; returns the new top, or -1 (out of range), -2 (not
        allocated), -3 (listed twice) with nothing freed."""
        n = slots.shape[0]
        for i in range(n):
            s = slots[i]
            if s < 0 or s >= capacity:
                for j in range(i):
                    refcnt[slots[j]] = 1
                return -1
            if refcnt[s] != 1:
                for j in range(i):
                    refcnt[slots[j]] = 1
                return -3 if refcnt[s] == 2 else -2
            refcnt[s] = 2          # mark: seen in this call
        for i in range(n):
            s = slots[i]
            refcnt[s] = 0
            free[top + i] = s
        return top + n

    @numba.njit(cache=True, nogil=True)
    def fill_rows(data, slots, start, frames, first):  # pragma: no cover
        """Copy ``frames[(first + i) % len(frames)]`` to ``data[slots[i], start:]``; returns
        the next frame index (what ``data[slots, a:b] = frames[idx]`` does, in one pass)."""
        nf, width = frames.shape
        j = first
        for i in range(slots.shape[0]):
            s = slots[i]
            for k in range(width):
                data[s, start + k] = frames[j, k]
            j += 1
            if j == nf:
                j = 0
        return j

    @numba.njit(cache=True, nogil=True)
    def sum_lengths(data_len, slots):  # pragma: no cover
        t = 0
        for i in range(slots.shape[0]):
            t += data_len[slots[i]]
        return t
else:  # pragma: no cover
    alloc_slots = free_slots = sum_lengths = None
