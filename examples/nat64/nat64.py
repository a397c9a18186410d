"""nat64: stateful IPv6 <-> IPv4 translation of TCP with the well-known prefix 64:ff9b::/96
(capsule's nat64, RFC 6146 in miniature).

``eth1`` faces IPv6 clients, ``eth2`` the IPv4 internet.  A client's packet to
64:ff9b::a.b.c.d leaves as an IPv4 packet from 203.0.113.1 to a.b.c.d with a source port
allocated for the client's (address, port) -- from 1025 up, as capsule does; replies to
that port are translated back.  Anything else (non-TCP, fragments, unknown bindings,
expired hop limits) is dropped and counted.  Unlike capsule, a hop limit / TTL of 1 or 0 is
dropped instead of wrapping around, and running out of ports drops instead of panicking.

Two implementations, tested to give the same bytes:

- ``Nat64``: the per-packet one (typed headers, ``remove``/``push``), the reference;
- ``KernelNat64``: JIT kernels (``nfkit.vector.kernel``) that translate a whole burst in
  place -- the header swap moves the Ethernet header by 20 bytes (``data_off``), the TCP
  checksum follows the pseudo-header incrementally -- with the bindings in flat arrays
  (an open-addressing table, probed inside the kernel).  It runs when numba is installed
  (set NFKIT_NAT64=per-packet or kernel to choose).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import numpy as np

import nfkit
from nfkit.packets import EtherType, Ethernet, IpProtocol, Ipv4, Ipv6, Tcp
from nfkit.vector import HAVE_NUMBA, kernel
from nfkit.vector.jit import FLOW_IPV4, FLOW_IPV6, _jit, be16, csum_adjust, flow_key, put_be16

PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
GATEWAY_V4 = ipaddress.IPv4Address("203.0.113.1")


class Nat64:
    """The bindings: (IPv6 address, port) <-> IPv4 port of the gateway."""

    def __init__(self, first_port: int = 1025) -> None:
        self.next_port = first_port
        self.v6_to_port: dict[tuple[ipaddress.IPv6Address, int], int] = {}
        self.port_to_v6: dict[int, tuple[ipaddress.IPv6Address, int]] = {}

    def port_for(self, addr: ipaddress.IPv6Address, port: int) -> int | None:
        key = (addr, port)
        p = self.v6_to_port.get(key)
        if p is None:
            if self.next_port > 65535:
                return None
            p = self.next_port
            self.next_port += 1
            self.v6_to_port[key] = p
            self.port_to_v6[p] = key
        return p

    def six_to_four(self, m: nfkit.Mbuf) -> Any:
        eth = m.parse(Ethernet)
        if eth.ether_type != EtherType.IPV6:
            return None
        v6 = eth.parse(Ipv6)
        if v6.next_header != IpProtocol.TCP or v6.hop_limit <= 1 or v6.dst not in PREFIX:
            return None
        dscp, ecn, ttl = v6.dscp, v6.ecn, v6.hop_limit - 1
        src, sport = v6.src, v6.parse(Tcp).src_port
        dst = ipaddress.IPv4Address(int(v6.dst) & 0xFFFFFFFF)
        port = self.port_for(src, sport)
        if port is None:
            return None
        v4 = v6.remove().push(Ipv4)
        v4.dscp, v4.ecn, v4.ttl, v4.protocol = dscp, ecn, ttl, IpProtocol.TCP
        v4.src, v4.dst = GATEWAY_V4, dst
        tcp = v4.parse(Tcp)
        tcp.src_port = port
        tcp.reconcile_all()
        return tcp

    def four_to_six(self, m: nfkit.Mbuf) -> Any:
        eth = m.parse(Ethernet)
        if eth.ether_type != EtherType.IPV4:
            return None
        v4 = eth.parse(Ipv4)
        if v4.protocol != IpProtocol.TCP or v4.is_fragment or v4.ttl <= 1:
            return None
        binding = self.port_to_v6.get(v4.parse(Tcp).dst_port)
        if binding is None:
            return None
        dscp, ecn, hops, src = v4.dscp, v4.ecn, v4.ttl - 1, v4.src
        v6 = v4.remove().push(Ipv6)
        v6.dscp, v6.ecn, v6.hop_limit, v6.next_header = dscp, ecn, hops, IpProtocol.TCP
        v6.src = PREFIX[int(src)]
        v6.dst = binding[0]
        tcp = v6.parse(Tcp)
        tcp.dst_port = binding[1]
        tcp.reconcile_all()
        return tcp


# -- the kernel version ------------------------------------------------------------------

PREFIX_HI = int(PREFIX.network_address) >> 64            # 0x0064ff9b00000000
GATEWAY = int(GATEWAY_V4)
SLOTS = 1 << 17          # forward table: > 2x the 64511 bindings there can be, load < 0.5


@_jit
def _words_sum(v: np.uint64) -> int:
    """Sum of the four 16-bit words of ``v``."""
    t = 0
    for k in range(4):
        t += np.int64((v >> np.uint64(16 * k)) & np.uint64(0xFFFF))
    return t


@_jit
def _put64(data: np.ndarray, s: int, pos: int, v: np.uint64) -> None:
    for k in range(8):
        data[s, pos + k] = (v >> np.uint64(56 - 8 * k)) & np.uint64(0xFF)


@_jit
def _bind(table: np.ndarray, rev: np.ndarray, hi: np.uint64, lo: np.uint64, sport: int) -> int:
    """The gateway port bound to (address, port), allocating the next one if new; -1 when
    the ports are used up.  ``table`` rows are (address hi, lo, port, gateway port), 0 in
    the last column = empty (one cache line per probe); open addressing, linear probing.
    ``rev[port]`` is the client a gateway port is bound to; ``rev[0, 0]`` the next port."""
    mask = table.shape[0] - 1
    h = (hi * np.uint64(0x9E3779B97F4A7C15)) ^ (lo * np.uint64(0xC2B2AE3D27D4EB4F)) \
        ^ np.uint64(sport * 0x165667B1)
    h ^= h >> np.uint64(31)
    i = np.int64(h & np.uint64(mask))
    sp = np.uint64(sport)
    while True:
        p = table[i, 3]
        if p == 0:
            break
        if table[i, 0] == hi and table[i, 1] == lo and table[i, 2] == sp:
            return np.int64(p)
        i = (i + 1) & mask
    nxt = np.int64(rev[0, 0])
    if nxt > 65535:
        return -1
    rev[0, 0] = np.uint64(nxt + 1)
    table[i, 0], table[i, 1], table[i, 2], table[i, 3] = hi, lo, sp, np.uint64(nxt)
    rev[nxt, 0], rev[nxt, 1], rev[nxt, 2], rev[nxt, 3] = hi, lo, sp, np.uint64(1)
    return nxt


@kernel
def six_to_four_k(data, slots, data_off, data_len, keep, table, rev):  # noqa: ANN001
    """IPv6/TCP to 64:ff9b::a.b.c.d -> IPv4/TCP from the gateway, in place."""
    for i in range(slots.shape[0]):
        s = slots[i]
        o = data_off[s]
        st, pr, l3, l4, sh, sl, dh, dl, sp, dp = flow_key(data, s, o, data_len[s])
        sh, sl, dh, dl = np.uint64(sh), np.uint64(sl), np.uint64(dh), np.uint64(dl)
        if st != FLOW_IPV6 or pr != 6 or l4 != l3 + 40 or data[s, o + l3 + 7] <= 1 \
                or dh != np.uint64(PREFIX_HI) or (dl >> np.uint64(32)) != np.uint64(0):
            keep[i] = False
            continue
        port = _bind(table, rev, sh, sl, sp)
        if port < 0:
            keep[i] = False
            continue
        a = o + l3
        tc = (be16(data, s, a) >> 4) & 0xFF
        plen = be16(data, s, a + 4)
        if plen == 0:                                # unset: the rest of the frame
            plen = data_len[s] - l3 - 40
        hops = data[s, a + 7] - 1
        dst4 = np.int64(dl & np.uint64(0xFFFFFFFF))
        # TCP checksum: the pseudo-header addresses and the source port change
        old = _words_sum(sh) + _words_sum(sl) + _words_sum(dh) + _words_sum(dl) + sp
        new = (GATEWAY >> 16) + (GATEWAY & 0xFFFF) + (dst4 >> 16) + (dst4 & 0xFFFF) + port
        put_be16(data, s, o + l4, port)
        csum_adjust(data, s, o + l4 + 16, new - old)
        # the IPv4 header takes the last 20 bytes of the IPv6 one; L2 moves up by 20
        b = a + 20
        data[s, b] = 0x45
        data[s, b + 1] = tc
        put_be16(data, s, b + 2, 20 + plen)
        for k in range(4, 12):
            data[s, b + k] = 0                     # id, flags, fragment offset, checksum
        data[s, b + 8] = hops
        data[s, b + 9] = 6
        put_be16(data, s, b + 12, GATEWAY >> 16)
        put_be16(data, s, b + 14, GATEWAY & 0xFFFF)
        put_be16(data, s, b + 16, dst4 >> 16)
        put_be16(data, s, b + 18, dst4 & 0xFFFF)
        total = 0
        for k in range(0, 20, 2):
            total += be16(data, s, b + k)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        put_be16(data, s, b + 10, 0xFFFF - total)
        for k in range(l3 - 1, -1, -1):             # move Ethernet (+ VLAN tags) up 20 bytes
            data[s, o + 20 + k] = data[s, o + k]
        put_be16(data, s, o + 20 + l3 - 2, 0x0800)
        data_off[s] = o + 20
        data_len[s] = l3 + 20 + plen


@kernel
def four_to_six_k(data, slots, data_off, data_len, keep, table, rev):  # noqa: ANN001
    """IPv4/TCP to a bound gateway port -> IPv6/TCP to the client, in place."""
    for i in range(slots.shape[0]):
        s = slots[i]
        o = np.int64(data_off[s])   # signed: as Python, uint32 - 40 wrapped past the headroom check
        st, pr, l3, l4, sh, sl, dh, dl, sp, dp = flow_key(data, s, o, data_len[s])
        sl, dl = np.uint64(sl), np.uint64(dl)
        a = o + l3
        if st != FLOW_IPV4 or pr != 6 or (be16(data, s, a + 6) & 0x3FFF) != 0 \
                or data[s, a + 8] <= 1 or rev[dp, 3] == 0:
            keep[i] = False
            continue
        ihl = l4 - l3
        new_o = o + ihl - 40
        if new_o < 0:                                # no headroom left: drop (counted)
            keep[i] = False
            continue
        tl = be16(data, s, a + 2)
        tos = data[s, a + 1]
        hops = data[s, a + 8] - 1
        src4 = np.int64(sl)
        hi, lo, cport = rev[dp, 0], rev[dp, 1], np.int64(rev[dp, 2])
        new_src_lo = np.uint64(src4)                  # 64:ff9b::a.b.c.d
        old = (src4 >> 16) + (src4 & 0xFFFF) + _words_sum(dl) + dp
        new = _words_sum(np.uint64(PREFIX_HI)) + _words_sum(new_src_lo) + _words_sum(hi) \
            + _words_sum(lo) + cport
        put_be16(data, s, o + l4 + 2, cport)
        csum_adjust(data, s, o + l4 + 16, new - old)
        for k in range(l3):                          # move Ethernet (+ VLAN tags) down
            data[s, new_o + k] = data[s, o + k]
        put_be16(data, s, new_o + l3 - 2, 0x86DD)
        b = new_o + l3
        put_be16(data, s, b, 0x6000 | (np.int64(tos) << 4))
        put_be16(data, s, b + 2, 0)
        put_be16(data, s, b + 4, tl - ihl)
        data[s, b + 6] = 6
        data[s, b + 7] = hops
        _put64(data, s, b + 8, np.uint64(PREFIX_HI))
        _put64(data, s, b + 16, new_src_lo)
        _put64(data, s, b + 24, hi)
        _put64(data, s, b + 32, lo)
        data_off[s] = new_o
        data_len[s] = l3 + 40 + tl - ihl


class KernelNat64:
    """The bindings in flat arrays, shared by the two translation kernels."""

    def __init__(self, first_port: int = 1025) -> None:
        self.table = np.zeros((SLOTS, 4), dtype=np.uint64)     # client addr hi, lo, port -> gw port
        self.rev = np.zeros((65536, 4), dtype=np.uint64)       # gw port -> client addr, port, bound
        self.rev[0, 0] = first_port                             # (port 0 is never bound: next port)
        self.first_port = first_port
        self.six_to_four = six_to_four_k.bind(self.table, self.rev)
        self.four_to_six = four_to_six_k.bind(self.table, self.rev)

    def __len__(self) -> int:
        return int(self.rev[0, 0]) - self.first_port


def main(runtime: nfkit.Runtime) -> None:
    mode = os.environ.get("NFKIT_NAT64") or ("kernel" if HAVE_NUMBA else "per-packet")
    if mode not in ("kernel", "per-packet"):
        raise nfkit.NfkitError(f"NFKIT_NAT64: expected kernel or per-packet, got {mode!r}")
    nat: Any = KernelNat64() if mode == "kernel" else Nat64()
    stage = "map" if mode == "kernel" else "filter_map"
    core = runtime.config.port("eth1").cores[0]
    runtime.add_pipeline_to_core(
        core, lambda qs: getattr(nfkit.Poll(qs["eth1"]), stage)(nat.six_to_four).send(qs["eth2"], "6to4"))
    runtime.add_pipeline_to_core(
        core, lambda qs: getattr(nfkit.Poll(qs["eth2"]), stage)(nat.four_to_six).send(qs["eth1"], "4to6"))
