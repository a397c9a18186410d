"""Vectorized batch processing: a burst of packets as numpy columns over the mempool.

- :class:`BatchView` -- header fields as columns, derived from the header declarations;
- :func:`~nfkit.slots.vectorized` -- mark a function as a vector stage of a pipeline;
- :class:`ExactMatchTable` -- flow tables / NAT bindings looked up a batch at a time;
- :func:`toeplitz`, :func:`rss_hash_ipv4`, :func:`rss_hash_ipv6` -- RSS-compatible flow hashes;
- :class:`Lpm4`, :class:`Lpm6` -- longest-prefix match for a whole batch;
- :func:`kernel` -- a per-packet loop over the raw arrays, compiled with numba when present.
"""

from ..slots import SlotBatch, vectorized
from .exact import ExactMatchTable, TableFull
from .hash import DEFAULT_RSS_KEY, rss_hash_ipv4, rss_hash_ipv6, symmetric_key, toeplitz
from .jit import HAVE_NUMBA, Kernel, kernel
from .lpm import BadPrefix, Lpm4, Lpm6, LpmError, RouteNotFound, Tbl8Exhausted
from .view import BatchView, HeaderColumns

__all__ = ["BatchView", "HeaderColumns", "SlotBatch", "vectorized", "ExactMatchTable", "TableFull",
           "DEFAULT_RSS_KEY", "toeplitz", "rss_hash_ipv4", "rss_hash_ipv6", "symmetric_key",
           "kernel", "Kernel", "HAVE_NUMBA", "Lpm4", "Lpm6", "LpmError", "BadPrefix",
           "RouteNotFound", "Tbl8Exhausted"]
