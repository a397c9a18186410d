"""The burst classification of :class:`~nfkit.vector.BatchView` as one compiled pass.

The numpy version in ``view.py`` makes tens of array calls per burst (a microsecond or more
each); this does the same walk per packet in one numba call, with the same results for every
packet that carries the header in question (the tests run both).  Used when numba is
installed and not disabled (``NFKIT_NO_NUMBA``).
"""

from __future__ import annotations

import numpy as np

from .. import _accel

__all__ = ["AVAILABLE", "classify"]

AVAILABLE = _accel.AVAILABLE

if AVAILABLE:  # pragma: no branch
    import numba

    @numba.njit(cache=True, nogil=True)
    def _u16(data, s, pos):  # noqa: ANN001, ANN202
        return (np.int64(data[s, pos]) << 8) | np.int64(data[s, pos + 1])

    @numba.njit(cache=True, nogil=True)
    def classify(data, slots, data_off, data_len, stride):  # noqa: ANN001, ANN201  # pragma: no cover
        """Per packet: Ethernet type after VLAN tags, IPv4/IPv6 header checks, the IPv6
        extension chain, the transport header; returns the arrays BatchView keeps."""
        n = slots.shape[0]
        i64 = np.int64
        base_a = np.empty(n, i64)
        len_a = np.empty(n, i64)
        eth_valid = np.zeros(n, np.bool_)
        et_off_a = np.full(n, 12, i64)
        ether_type = np.full(n, -1, i64)
        l3_a = np.full(n, 14, i64)
        v4_a = np.zeros(n, np.bool_)
        v6_a = np.zeros(n, np.bool_)
        l3_end_a = np.zeros(n, i64)
        ihl_a = np.zeros(n, i64)
        fo_a = np.zeros(n, i64)
        l4_a = np.zeros(n, i64)
        proto_a = np.full(n, -1, i64)
        routing_a = np.zeros(n, np.bool_)
        tcp_a = np.zeros(n, np.bool_)
        udp_a = np.zeros(n, np.bool_)
        icmp4_a = np.zeros(n, np.bool_)
        icmp6_a = np.zeros(n, np.bool_)
        for i in range(n):
            s = slots[i]
            o = data_off[s]
            ln = i64(data_len[s])
            base_a[i] = i64(s) * stride + o
            len_a[i] = ln
            l3_end_a[i] = ln
            l4_a[i] = 54
            if ln < 14:
                continue
            et_off = 12
            et = _u16(data, s, o + 12)
            for _ in range(4):
                if not (et == 0x8100 or et == 0x88A8 or et == 0x9100) or ln < et_off + 6:
                    break
                et_off += 4
                et = _u16(data, s, o + et_off)
            et_off_a[i] = et_off
            l3 = et_off + 2
            l3_a[i] = l3
            l4_a[i] = l3 + 40
            if et == 0x8100 or et == 0x88A8 or et == 0x9100:
                continue
            eth_valid[i] = True
            ether_type[i] = et
            v4 = False
            v6 = False
            if et == 0x0800 and ln >= l3 + 20:
                vi = data[s, o + l3]
                ihl = i64(vi & 0x0F) * 4
                tl = _u16(data, s, o + l3 + 2)
                ihl_a[i] = ihl
                fo_a[i] = _u16(data, s, o + l3 + 6) & 0x1FFF
                v4 = (vi >> 4) == 4 and ihl >= 20 and l3 + ihl <= ln \
                    and (tl == 0 or (tl >= ihl and l3 + tl <= ln))
                if v4:
                    l3_end_a[i] = l3 + tl if tl > 0 else ln
            elif et == 0x86DD and ln >= l3 + 40:
                pl = _u16(data, s, o + l3 + 4)
                v6 = (data[s, o + l3] >> 4) == 6 and (pl == 0 or l3 + 40 + pl <= ln)
                if v6:
                    l3_end_a[i] = l3 + 40 + pl if pl > 0 else ln
            v4_a[i] = v4
            v6_a[i] = v6
            if not (v4 or v6):
                continue
            end = l3_end_a[i]
            if v4:
                proto = i64(data[s, o + l3 + 9])
                l4 = l3 + ihl_a[i]
                initial = fo_a[i] == 0
            else:
                proto = i64(data[s, o + l3 + 6])
                l4 = l3 + 40
                initial = True
            routing = False
            for _ in range(8):
                if not (v6 and (proto == 0 or proto == 43 or proto == 60 or proto == 44)
                        and l4 + 8 <= end):
                    break
                if proto == 44:
                    size = 8
                    if _u16(data, s, o + l4 + 2) & 0xFFF8:
                        initial = False
                else:
                    size = (i64(data[s, o + l4 + 1]) + 1) * 8
                    if proto == 43:
                        routing = True
                proto = i64(data[s, o + l4])
                l4 += size
            l4_a[i] = l4
            routing_a[i] = routing
            unfinished = v6 and (proto == 0 or proto == 43 or proto == 60 or proto == 44)
            if not initial or unfinished or l4 > end:
                continue
            proto_a[i] = proto
            avail = end - l4
            if proto == 6 and avail >= 20:
                hl = i64(data[s, o + l4 + 12] >> 4) * 4
                tcp_a[i] = hl >= 20 and hl <= avail
            elif proto == 17:
                udp_a[i] = avail >= 8
            elif proto == 1:
                icmp4_a[i] = v4 and avail >= 4
            elif proto == 58:
                icmp6_a[i] = v6 and avail >= 4
        return (base_a, len_a, eth_valid, et_off_a, ether_type, l3_a, v4_a, v6_a, l3_end_a, ihl_a, fo_a, l4_a,
                proto_a, routing_a, tcp_a, udp_a, icmp4_a, icmp6_a)
else:  # pragma: no cover
    classify = None
