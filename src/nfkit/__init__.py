"""nfkit: network functions in Python, after the Rust framework capsule.

Packets live in one shared numpy buffer pool (:class:`Mempool`); :class:`Mbuf` handles and
the typed headers of :mod:`nfkit.packets` read and write them in place.  Pipelines
(:func:`Poll` ... ``.send(q)``) process bursts of packets; the :class:`Runtime` runs them
on the ports of a TOML config.
"""

from .batch import Batch, Disposition, Pipeline, Poll, poll_fn, splice, vectorized
from .buffers import Mbuf, Mempool, default_pool, set_default_pool
from .errors import (BadOffset, DoubleFree, FieldValueError, MalformedError, MbufError,
                     MempoolExhausted, NfkitError, OutOfBuffer, ParseError, ProtocolMismatch,
                     ReadOnlyError, TruncatedError)
from .net import MacAddr

__version__ = "0.1.0"

__all__ = [
    "Mbuf", "Mempool", "default_pool", "set_default_pool", "MacAddr",
    "Batch", "Disposition", "Pipeline", "Poll", "poll_fn", "splice", "vectorized",
    "Runtime", "UnixSignal", "PortQueue", "RuntimeConfig", "load_config",
    "NfkitError", "ParseError", "TruncatedError", "MalformedError", "ProtocolMismatch",
    "MbufError", "BadOffset", "OutOfBuffer", "MempoolExhausted", "DoubleFree",
    "ReadOnlyError", "FieldValueError", "__version__",
]


def __getattr__(name: str) -> object:
    """The runtime, ports and config load on first use (they pull in pydantic)."""
    if name in ("Runtime", "UnixSignal"):
        from . import runtime
        return getattr(runtime, name)
    if name == "PortQueue":
        from .ports.base import PortQueue
        return PortQueue
    if name in ("RuntimeConfig", "load_config"):
        from . import config
        return getattr(config, name)
    raise AttributeError(f"module 'nfkit' has no attribute {name!r}")
