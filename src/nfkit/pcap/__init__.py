"""nfkit's own capture-file I/O: read pcap and pcapng into a mempool, write pcap from one.

Modules: :mod:`~nfkit.pcap.reader` (:class:`PcapReader`, classic pcap and streams),
:mod:`~nfkit.pcap.pcapng` (its pcapng blocks), :mod:`~nfkit.pcap.writer`
(:class:`PcapWriter`), ``_common`` (errors, constants), ``_jit`` (the compiled passes).

No libpcap and no Scapy: only the standard library and numpy.

Formats read by :class:`PcapReader`
    * classic pcap (the libpcap format): magic ``0xa1b2c3d4`` (microsecond timestamps) and
      ``0xa1b23c4d`` (nanosecond timestamps), in either byte order, version 2.x (2.4 in
      practice).  The ``thiszone``/``sigfigs`` header fields are ignored, as libpcap does.
    * pcapng (draft-ietf-opsawg-pcapng): Section Header Blocks in either byte order, any
      number of sections; Interface Description Blocks with their link type, snap length and
      the ``if_tsresol`` (power of 10 or power of 2; default microseconds) and
      ``if_tsoffset`` options; Enhanced Packet Blocks, Simple Packet Blocks (no timestamp:
      0) and the obsolete Packet Block.  Every other block type is skipped.  Every block's
      total length is checked against its trailing copy.

Format written by :class:`PcapWriter`
    classic pcap (or, ``pcapng=True``, pcapng: a section header, one interface
    description, Enhanced Packet Blocks), little-endian, microsecond or nanosecond
    timestamps; a new file, a
    truncated one, or (``mode="a"``) the continuation of one it wrote, repaired if its last
    record was cut short.  A symbolic link at the output path is refused, never followed.

Timestamps are integer nanoseconds since the Unix epoch everywhere (``Mempool.timestamp``
holds them as ``uint64``); a resolution coarser than 1 ns is converted exactly, a finer one
is rounded down, and values outside ``uint64`` (only possible with odd pcapng resolutions
or offsets) are clamped into it.  The writer clamps what it takes from the buffers to the
pcap format's range (32-bit seconds) and counts it: a packet is never refused for its time.

Streams
    A regular file is read with read() up to the size it had when opened (not mapped: a
    mapped file truncated meanwhile kills the reader with SIGBUS; a truncation is reported
    as damage).  Anything else -- a pipe, a FIFO, stdin, a device --
    is read as it comes: the header first (``/dev/zero`` is "not a capture" after its
    first read), then records as they arrive, each read handing out what is complete (a
    FIFO's packets come out while the writer is still writing, like ``tcpdump -r -``).
    Offsets in damage reports are offsets in the stream.  A stream cannot be rewound.

Behaviour on damage
    Opening a file that is not a capture (wrong magic, empty, header cut short, unsupported
    version, unreadable or missing path) raises :class:`PcapFormatError` naming the file and
    what was found; for an OS failure the :class:`OSError` is chained as ``__cause__`` and
    kept in ``os_error``.  Damage after the header -- a record or block cut short
    (:class:`PcapTruncated`) or one whose lengths or references make no sense
    (:class:`PcapCorrupt`) -- never loses the packets before it: they are all returned, the
    first damaged record is described in :attr:`PcapReader.error` (its byte offset and what
    is wrong) and the reader is then at its end.  A damaged pcapng packet block whose
    framing is intact (its total lengths agree: bad interface number, captured length
    larger than the block, too short) loses nothing else: it is skipped, counted in
    ``skipped_corrupt`` and listed in ``damage`` (with ``error``, the first damage), and
    reading goes on.  With ``strict=True`` the first damage is also raised, once, by the
    first read after the good packets before it were handed out, and ends the reading.  No
    other exception escapes a read on a damaged file.  A file is read as it was when opened
    (a capture still growing is not followed).

Speed
    Regular files are read with read() in 1 MiB chunks, like streams (see above).  With
    numba (``nfkit.pcap._jit``), each burst of a classic pcap file costs one compiled
    pass over its records (lengths and timestamps decoded there), one that copies the
    frames into the pool rows and sets their ``data_len`` and ``timestamp``, and on
    output one that lays out the burst's records (pcap or pcapng) in a buffer kept
    between bursts, handed to the OS in one ``write``.  The compiled walk takes only
    whole records within the length limit; the first other one (damage, an oversize
    record, the end of the buffer) goes to the reference walk below, so those cases
    behave identically.  Without numba (or ``reader.compiled = False``) the reference
    paths run: one ``struct.unpack_from`` per record (pcapng: one for the block header,
    one for its trailing length), numpy strided views wherever records have a fixed
    layout, numpy decoding per batch, a numpy gather or a slice assignment per packet for
    the copy, and ``b"".join`` / one ``(n, 16 + size)`` array for writing.  pcapng input
    always takes the reference walk (a compiled one is still to come).
"""

from ._common import (LINKTYPE_ETHERNET, PcapCorrupt, PcapDamaged, PcapError, PcapFormatError,
                      PcapTruncated, PcapWriteError)
from .reader import PcapReader
from .writer import PcapWriter

__all__ = [
    "PcapReader", "PcapWriter", "PcapError", "PcapFormatError", "PcapDamaged",
    "PcapTruncated", "PcapCorrupt", "PcapWriteError", "LINKTYPE_ETHERNET",
]
