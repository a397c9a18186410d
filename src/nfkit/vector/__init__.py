"""Vectorized batch processing: a burst of packets as numpy columns over the mempool.

- :class:`BatchView` -- header fields as columns, derived from the header declarations;
- :func:`~nfkit.batch.vectorized` -- mark a function as a vector stage of a pipeline.
"""

from ..batch import SlotBatch, vectorized
from .view import BatchView, HeaderColumns

__all__ = ["BatchView", "HeaderColumns", "SlotBatch", "vectorized"]
