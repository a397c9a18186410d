"""nfkit: network functions in Python, after the Rust framework capsule.

Packets live in one shared numpy buffer pool (:class:`Mempool`); :class:`Mbuf` handles and
the typed headers of :mod:`nfkit.packets` read and write them in place.
"""

from .buffers import Mbuf, Mempool, default_pool, set_default_pool
from .errors import (BadOffset, DoubleFree, FieldValueError, MalformedError, MbufError,
                     MempoolExhausted, NfkitError, OutOfBuffer, ParseError, ProtocolMismatch,
                     ReadOnlyError, TruncatedError)
from .net import MacAddr

__version__ = "0.1.0"

__all__ = [
    "Mbuf", "Mempool", "default_pool", "set_default_pool", "MacAddr",
    "NfkitError", "ParseError", "TruncatedError", "MalformedError", "ProtocolMismatch",
    "MbufError", "BadOffset", "OutOfBuffer", "MempoolExhausted", "DoubleFree",
    "ReadOnlyError", "FieldValueError", "__version__",
]
