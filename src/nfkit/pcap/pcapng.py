"""The pcapng side of :class:`~nfkit.pcap.reader.PcapReader`: section and interface
blocks (per-interface link type, snap length, ``if_tsresol``, ``if_tsoffset``) and the
block walk (EPB, SPB, the obsolete PB; every other block type skipped).  A mixin of the
reader: it shares the reader's buffer, position and damage state."""

from __future__ import annotations

import struct

import numpy as np

from ._common import (_BOM, _CHUNK, _DEFAULT_TSRESOL, _EPB, _IDB, _MAX_BLOCK, _NS, _PB,
                      _RUN_ROOM, _SHB, _SPB, _U64, PcapCorrupt, PcapDamaged, PcapTruncated,
                      _Iface, _ts_array)


class PcapngBlocks:
    """pcapng parsing for :class:`~nfkit.pcap.reader.PcapReader` (see there)."""

    def _start_pcapng(self) -> None:
        if self._size >= 12:     # a stream: the whole section header block
            bo = "<" if struct.unpack_from("<I", self._map, 8)[0] == _BOM else ">"
            self._fill(min(struct.unpack_from(bo + "I", self._map, 4)[0], _MAX_BLOCK))
        err = self._section(0)
        if err is not None:
            raise self._fail(f"bad pcapng section header: {err.reason}")
        self._first = 0
        self._reset()
        self._check_linktype()

    # -- pcapng section state --------------------------------------------------------------
    def _section(self, o: int) -> PcapDamaged | None:
        """Enter the section whose header block is at ``o``: set the byte order, forget the
        interfaces.  Returns the damage found (not raised) or ``None``."""
        end = self._size
        at = o + self._base         # the offset in the file (a stream's buffer starts later)
        if o + 12 > end:
            return PcapTruncated(self.path, at, f"section header block at offset {at} cut "
                                 f"short: 28 bytes needed, only {end - o} remain")
        bom_le = struct.unpack_from("<I", self._map, o + 8)[0]
        if bom_le == _BOM:
            bo = "<"
        elif struct.unpack_from(">I", self._map, o + 8)[0] == _BOM:
            bo = ">"
        else:
            return PcapCorrupt(self.path, at, f"section header block at offset {at} has a bad "
                               f"byte-order magic 0x{bom_le:08x}")
        tl = struct.unpack_from(bo + "I", self._map, o + 4)[0]
        if tl < 28 or tl & 3 or tl > _MAX_BLOCK:
            return PcapCorrupt(self.path, at, f"section header block at offset {at} has an "
                               f"invalid total length {tl}")
        if o + tl > end:
            return PcapTruncated(self.path, at, f"section header block at offset {at} claims "
                                 f"{tl} bytes, only {end - o} remain")
        trail = struct.unpack_from(bo + "I", self._map, o + tl - 4)[0]
        if trail != tl:
            return PcapCorrupt(self.path, at, f"block at offset {at}: total length {tl} does "
                               f"not match its trailing copy {trail}")
        major, minor = struct.unpack_from(bo + "HH", self._map, o + 12)
        if major != 1:
            return PcapCorrupt(self.path, at, f"section header block at offset {at}: "
                               f"unsupported pcapng version {major}.{minor}")
        self._bo = bo
        self._u4 = np.dtype(bo + "u4")
        self._blk = struct.Struct(bo + "7I").unpack_from
        self._blk2 = struct.Struct(bo + "2I").unpack_from
        self._u32 = struct.Struct(bo + "I").unpack_from
        self._ifaces: list[_Iface] = []
        #: per interface: ns per timestamp unit when a plain product gives the time, else 0
        self._muls: list[int] = []
        #: per interface: its link type, and whether its packets are read (``linktype=``)
        self._lts: list[int] = []
        self._keep: list[bool] = []
        self._sec_end = o + tl
        return None

    def _interface(self, o: int, tl: int) -> None:
        """Record the Interface Description Block at ``o`` (``tl`` bytes, already checked)."""
        bo = self._bo
        buf = self._map
        linktype, _res, snaplen = struct.unpack_from(bo + "HHI", buf, o + 8)
        base, exp = _DEFAULT_TSRESOL
        offset_ns = 0
        p, stop = o + 16, o + tl - 4
        opt = struct.Struct(bo + "HH").unpack_from
        while p + 4 <= stop:
            code, length = opt(buf, p)
            p += 4
            if code == 0 or p + length > stop:
                break  # end of options (a malformed option list ends it too)
            if code == 9 and length >= 1:  # if_tsresol
                v = buf[p]
                base, exp = (2, v & 0x7F) if v & 0x80 else (10, v)
            elif code == 14 and length >= 8:  # if_tsoffset, seconds
                offset_ns = struct.unpack_from(bo + "q", buf, p)[0] * _NS
            p += (length + 3) & ~3
        iface = _Iface(linktype, snaplen, base, exp, offset_ns)
        self._ifaces.append(iface)
        self._muls.append(iface.mul if not offset_ns else 0)
        self._lts.append(linktype)
        self._keep.append(self.only_linktype is None or linktype == self.only_linktype)
        if self.linktype is None:
            self.linktype = linktype
            self.snaplen = snaplen
            self.nanosecond = exp > 6 if base == 10 else exp >= 20

    # -- pcapng scanning -----------------------------------------------------------------
    def _scan_ng(self, n: int, limit: int,
                 want_lt: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`_scan_pcap` for pcapng: walks blocks, applies section and interface
        blocks, returns data offsets, captured lengths and ns timestamps of packets; with
        ``want_lt`` their link types in ``_batch_lt`` (only :meth:`records` needs them:
        building them costs the fixed-size path ~10%)."""
        buf = self._map
        end = self._size
        at = self._base
        o = self._pos
        blk, u32 = self._blk, self._u32
        ifaces = self._ifaces
        doffs: list[int] = []
        caps: list[int] = []
        tss: list[int] = []
        lts: list[int] = []
        dap, cap_ap, tap, lap = doffs.append, caps.append, tss.append, lts.append
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        k = 0
        chunk = _CHUNK
        stop = min(n, chunk)
        skipped = 0
        muls, lt_of, keep = self._muls, self._lts, self._keep
        foreign = self.skipped_linktype
        path = self.path
        while True:
            try:
                bt, tl, a, b, c, d, _e = blk(buf, o)
            except struct.error:
                if o == end:
                    self._end_of_data()
                    break
                if o + 8 > end:
                    self._cut_short(PcapTruncated(
                        path, o + at, f"block header at offset {o + at} cut short: 8 bytes "
                        f"needed, only {end - o} remain"))
                    break
                bt, tl = self._blk2(buf, o)
                a = u32(buf, o + 8)[0] if o + 12 <= end else 0
                b = c = d = 0
            if bt == _SHB:
                err = self._section(o)
                if isinstance(err, PcapTruncated):
                    self._cut_short(err)
                    break
                if err is not None:
                    self._damage(err)
                    break
                blk, u32 = self._blk, self._u32
                ifaces, muls, lt_of, keep = self._ifaces, self._muls, self._lts, self._keep
                o = self._sec_end
                continue
            if tl < 12 or tl & 3 or tl > _MAX_BLOCK:
                self._damage(PcapCorrupt(path, o + at, f"block at offset {o + at} has an "
                                         f"invalid total length {tl}"))
                break
            nxt = o + tl
            if nxt > end:
                self._cut_short(PcapTruncated(path, o + at, f"block at offset {o + at} claims "
                                              f"{tl} bytes, only {end - o} remain"))
                break
            trail = u32(buf, nxt - 4)[0]
            if trail != tl:
                self._damage(PcapCorrupt(path, o + at, f"block at offset {o + at}: total "
                                         f"length {tl} does not match its trailing copy {trail}"))
                break
            if bt == _EPB or bt == _PB:
                if bt == _PB:
                    a = a & 0xFFFF if self._bo == "<" else a >> 16
                bad = (f"is too short ({tl} bytes)" if tl < 32 else
                       f"names interface {a}, the section has {len(ifaces)}"
                       if a >= len(ifaces) else
                       f"claims {d} captured bytes, the block holds {tl - 32}"
                       if d > tl - 32 else None)
                if bad is not None:
                    if self._bad_block(PcapCorrupt(path, o + at, f"packet block at offset "
                                                   f"{o + at} {bad}")):
                        o = nxt
                        continue
                    break
                if not keep[a]:
                    foreign[lt_of[a]] = foreign.get(lt_of[a], 0) + 1
                    o = nxt
                    continue
                if d > limit:
                    skipped += 1
                    o = nxt
                    continue
                if k >= stop:
                    if k >= n:
                        break
                    room = min(n - k, (end - o) // tl)
                    if (bt == _EPB and room >= _RUN_ROOM and len(doffs) >= 8
                            and o + 28 - doffs[-8] == 8 * tl):
                        # Same-sized EPBs: check the rest of the batch in one numpy pass.
                        w = np.ndarray((room, tl // 4), self._u4, self._mv, o, (tl, 4))
                        ok = ((w[:, 0] == _EPB) & (w[:, 1] == tl) & (w[:, 2] == a)
                              & (w[:, 5] == d) & (w[:, -1] == tl))
                        m = room if ok.all() else int(ok.argmin())  # >= 1: this block
                        pieces.append((np.array(doffs, dtype=np.int64),
                                       np.array(caps, dtype=np.int64), _ts_array(tss)))
                        doffs.clear()
                        caps.clear()
                        tss.clear()
                        units = ((w[:m, 3].astype(np.uint64) << _U64(32))
                                 | w[:m, 4].astype(np.uint64))
                        pieces.append((np.arange(o + 28, o + 28 + m * tl, tl, dtype=np.int64),
                                       np.full(m, d, dtype=np.int64), ifaces[a].to_ns_np(units)))
                        if want_lt:
                            lts.extend([lt_of[a]] * m)
                        o += m * tl
                        k += m
                        chunk = _CHUNK if m == room or m >= 256 else min(chunk * 2, 1 << 16)
                        stop = min(n, k + chunk)
                        continue
                    stop = min(n, k + chunk)
                dap(o + 28)
                cap_ap(d)
                units = (b << 32) | c
                mul = muls[a]
                tap(units * mul if mul else ifaces[a].to_ns(units))
                if want_lt:
                    lap(lt_of[a])
                k += 1
                o = nxt
                continue
            if bt == _SPB:
                bad = (f"is too short ({tl} bytes)" if tl < 16 else
                       "but the section has no interface" if not ifaces else None)
                if bad is not None:
                    if self._bad_block(PcapCorrupt(path, o + at, f"simple packet block at "
                                                   f"offset {o + at} {bad}")):
                        o = nxt
                        continue
                    break
                cap = min(a, tl - 16)
                snap = ifaces[0].snaplen
                if snap and cap > snap:
                    cap = snap
                if not keep[0]:
                    foreign[lt_of[0]] = foreign.get(lt_of[0], 0) + 1
                    o = nxt
                    continue
                if cap > limit:
                    skipped += 1
                    o = nxt
                    continue
                if k >= n:
                    break
                dap(o + 12)
                cap_ap(cap)
                tap(0)
                if want_lt:
                    lap(lt_of[0])
                k += 1
            elif bt == _IDB:
                if tl < 20:
                    self._damage(PcapCorrupt(path, o + at, f"interface description block "
                                             f"at offset {o + at} is too short ({tl} bytes)"))
                    break
                self._interface(o, tl)
            o = nxt
        self._pos = o
        self.skipped_oversize += skipped
        self._batch_lt = lts if want_lt else None
        if doffs or not pieces:
            pieces.append((np.array(doffs, dtype=np.int64), np.array(caps, dtype=np.int64),
                           _ts_array(tss)))
        if len(pieces) == 1:
            return pieces[0]
        return (np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]),
                np.concatenate([p[2] for p in pieces]))
