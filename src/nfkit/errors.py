"""The nfkit exception family.

Every error nfkit raises on purpose derives from :class:`NfkitError`, so an NF can catch
"anything nfkit refused" in one place.  Packet parsing errors derive from :class:`ParseError`
and say which header failed and why; they never leave the buffer changed.
"""

from __future__ import annotations

import builtins

__all__ = [
    "NfkitError",
    "ParseError",
    "TruncatedError",
    "MalformedError",
    "ProtocolMismatch",
    "MbufError",
    "BadOffset",
    "OutOfBuffer",
    "MempoolExhausted",
    "DoubleFree",
    "ReadOnlyError",
    "FieldValueError",
]


class NfkitError(Exception):
    """Base class of every error nfkit raises deliberately."""


class ParseError(NfkitError):
    """A header could not be parsed or peeked; the buffer is unchanged.

    ``header`` names the protocol that failed (e.g. ``"IPv4"``).
    """

    def __init__(self, header: str, reason: str) -> None:
        super().__init__(f"{header}: {reason}")
        self.header = header
        self.reason = reason


class TruncatedError(ParseError):
    """The buffer ends before the header (or the length it declares) does."""


class MalformedError(ParseError):
    """A field holds a value the protocol does not allow (bad version, bad length...)."""


class ProtocolMismatch(ParseError):
    """The enclosing header says its payload is another protocol (e.g. not an IPv4 packet)."""


class MbufError(NfkitError, builtins.BufferError):
    """A buffer operation would read or write outside the packet or the buffer.

    It is also a builtin :class:`BufferError`, so either name catches it.
    """


class BadOffset(MbufError):
    """An offset lies outside the packet data."""


class OutOfBuffer(MbufError):
    """Growing the packet would need more room than the buffer has (headroom + tailroom)."""


class MempoolExhausted(NfkitError):
    """The mempool has fewer free buffers than requested; nothing was allocated."""


class DoubleFree(NfkitError):
    """A buffer was freed twice (or freed while not allocated); nothing was freed."""


class ReadOnlyError(NfkitError):
    """A packet obtained with ``peek`` was modified; peeked views are read-only."""


class FieldValueError(NfkitError, ValueError):
    """A value does not fit the header field it was assigned to."""
