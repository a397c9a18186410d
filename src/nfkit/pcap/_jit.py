"""Compiled passes of the capture-file fast path (issue #13), used when numba is installed.

One call per burst each: :func:`scan_pcap` walks classic pcap records and decodes their
lengths and timestamps, :func:`fill_slots` copies the frames into pool rows and sets the
slots' length and timestamp columns, :func:`build_pcap` lays out a burst's records (headers
and frames) for one ``write``.  Measured on l2fwd pcap -> pcap (bench/pcap.py): per-burst
numpy calls and Python loops cost 100+ us a 32-packet burst before; a compiled call costs
~1 us plus its work.  The numpy/Python paths in :mod:`nfkit.pcap` are the reference and the
fallback without numba (``NFKIT_NO_NUMBA=1``); tests/test_capture_fast.py runs both and
compares.  ``scan_pcap`` takes only clean records (whole, within the length limit) and
stops at the first other one: the reference walk takes over there, so damage, oversize
records and streams waiting for more behave exactly as before.
"""

from __future__ import annotations

import numpy as np

from .._accel import AVAILABLE, numba

__all__ = ["AVAILABLE", "scan_pcap", "fill_slots", "build_pcap", "build_pcapng"]

if AVAILABLE:
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def _copy(typingctx, dst, doff, src, soff, n):  # pragma: no cover
        """``memcpy(dst + doff, src + soff, n)`` on C-contiguous ``uint8`` arrays (flat
        byte offsets; the caller checked the bounds).  A numba slice assignment copies
        byte by byte: measured 2-4x slower (60 and 1,500-byte frames)."""
        sig = types.void(dst, doff, src, soff, n)

        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            d = context.make_array(signature.args[0])(context, builder, args[0])
            s = context.make_array(signature.args[2])(context, builder, args[2])
            cgutils.raw_memcpy(builder, builder.gep(d.data, [args[1]]),
                               builder.gep(s.data, [args[3]]), args[4], 1)
            return context.get_dummy_value()
        return sig, codegen

    @numba.njit(cache=True, nogil=True, inline="always")
    def _u32(buf, o, big):  # pragma: no cover
        if big:
            return (np.uint64(buf[o]) << 24) | (np.uint64(buf[o + 1]) << 16) | \
                (np.uint64(buf[o + 2]) << 8) | np.uint64(buf[o + 3])
        return (np.uint64(buf[o + 3]) << 24) | (np.uint64(buf[o + 2]) << 16) | \
            (np.uint64(buf[o + 1]) << 8) | np.uint64(buf[o])

    @numba.njit(cache=True, nogil=True, inline="always")
    def _put32(out, o, v):  # pragma: no cover
        v = np.uint64(v)
        for b in range(4):
            out[o + b] = (v >> np.uint64(8 * b)) & np.uint64(0xFF)

    @numba.njit(cache=True, nogil=True)
    def _fits(data, data_off, data_len, slots, snaplen, per_record, out):  # pragma: no cover
        """Every slot in range, its bytes inside its row, the records inside ``out``."""
        need = 0
        for i in range(slots.shape[0]):
            s = slots[i]
            if not 0 <= s < data.shape[0] or data_off[s] + data_len[s] > data.shape[1]:
                return False
            need += per_record + min(data_len[s], snaplen)
        return need <= out.shape[0]

    @numba.njit(cache=True, nogil=True)
    def scan_pcap(buf, pos, end, n, big, frac_mul, limit, doff, cap, ts):  # pragma: no cover
        """Up to ``n`` clean classic records from ``pos`` (header and data before ``end``,
        captured length <= ``limit``): their data offsets, captured lengths and ns
        timestamps; returns (records, position after them)."""
        k = 0
        while k < n and pos + 16 <= end:
            c = _u32(buf, pos + 8, big)
            if c > limit or pos + 16 + c > end:
                break
            doff[k] = pos + 16
            cap[k] = c
            ts[k] = _u32(buf, pos, big) * np.uint64(1_000_000_000) + \
                _u32(buf, pos + 4, big) * np.uint64(frac_mul)
            k += 1
            pos += 16 + c
        return k, pos

    @numba.njit(cache=True, nogil=True)
    def fill_slots(data, data_len, timestamp, slots, headroom, src, doff, cap,
                   ts):  # pragma: no cover
        """Frame ``i`` (``src[doff[i]:][:cap[i]]``) into row ``slots[i]`` at the headroom,
        its length and timestamp (never ``NO_TIMESTAMP``: that means "not stamped") into
        the slot's columns; returns -1 (nothing done) if a frame would not fit."""
        top = np.uint64(0xFFFFFFFFFFFFFFFE)
        cap_, stride, size = data.shape[0], data.shape[1], src.shape[0]
        for i in range(slots.shape[0]):
            if not (0 <= slots[i] < cap_ and 0 <= cap[i] <= stride - headroom
                    and 0 <= doff[i] <= size - cap[i]):
                return -1
        for i in range(slots.shape[0]):
            s = slots[i]
            c = cap[i]
            _copy(data, np.int64(s) * stride + headroom, src, doff[i], c)
            data_len[s] = c
            timestamp[s] = ts[i] if ts[i] < top else top
        return 0

    @numba.njit(cache=True, nogil=True)
    def build_pcap(data, data_off, data_len, timestamp, slots, snaplen, frac_div, now,
                   latest, out):  # pragma: no cover
        """The burst's little-endian pcap records into ``out`` (room for all of them):
        timestamps from the slots (``NO_TIMESTAMP``: ``now``; later than ``latest``:
        ``latest``, counted); returns (bytes, clamped)."""
        p = 0
        clamped = 0
        unset = np.uint64(0xFFFFFFFFFFFFFFFF)
        if not _fits(data, data_off, data_len, slots, snaplen, 16, out):
            return -1, 0
        for i in range(slots.shape[0]):
            s = slots[i]
            n = data_len[s]
            c = n if n < snaplen else snaplen
            t = timestamp[s]
            if t == unset:
                t = now
            elif t > latest:
                t = latest
                clamped += 1
            sec = t // np.uint64(1_000_000_000)
            frac = (t - sec * np.uint64(1_000_000_000)) // np.uint64(frac_div)
            _put32(out, p, sec)
            _put32(out, p + 4, frac)
            _put32(out, p + 8, np.uint64(c))
            _put32(out, p + 12, np.uint64(n))
            _copy(out, p + 16, data, np.int64(s) * data.shape[1] + data_off[s], c)
            p += 16 + c
        return p, clamped

    @numba.njit(cache=True, nogil=True)
    def build_pcapng(data, data_off, data_len, timestamp, slots, snaplen, frac_div, now,
                     out):  # pragma: no cover
        """The burst's little-endian Enhanced Packet Blocks (interface 0) into ``out``:
        timestamps from the slots in units of ``frac_div`` ns (``NO_TIMESTAMP``: ``now``);
        returns the bytes written."""
        p = 0
        unset = np.uint64(0xFFFFFFFFFFFFFFFF)
        if not _fits(data, data_off, data_len, slots, snaplen, 35, out):
            return -1
        for i in range(slots.shape[0]):
            s = slots[i]
            n = data_len[s]
            c = n if n < snaplen else snaplen
            t = timestamp[s]
            if t == unset:
                t = now
            units = t // np.uint64(frac_div)
            pad = (4 - c % 4) % 4
            tl = 32 + c + pad
            _put32(out, p, np.uint64(6))
            _put32(out, p + 4, np.uint64(tl))
            _put32(out, p + 8, np.uint64(0))
            _put32(out, p + 12, units >> np.uint64(32))
            _put32(out, p + 16, units & np.uint64(0xFFFFFFFF))
            _put32(out, p + 20, np.uint64(c))
            _put32(out, p + 24, np.uint64(n))
            _copy(out, p + 28, data, np.int64(s) * data.shape[1] + data_off[s], c)
            for j in range(pad):
                out[p + 28 + c + j] = 0
            _put32(out, p + tl - 4, np.uint64(tl))
            p += tl
        return p
else:  # pragma: no cover
    scan_pcap = fill_slots = build_pcap = build_pcapng = None
