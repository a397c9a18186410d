"""Access control lists: ordered 5-tuple rules, first match wins, for a whole batch.

An :class:`Acl` holds :class:`AclRule` s (protocols, source/destination prefixes IPv4 or
IPv6, source/destination port ranges) and a default action.  It classifies

- a :class:`~nfkit.vector.BatchView` with numpy (:meth:`Acl.classify`, :meth:`Acl.allows`),
- one packet inside a JIT kernel (:func:`acl_first_match` over :meth:`Acl.tables`; the
  ready-made :meth:`Acl.kernel` drops what the ACL denies),
- one packet through the per-packet API (:meth:`Acl.match_packet`, built on
  :func:`packet_flow_key`: the reference the others are tested against),

all with the same semantics:

- a rule matches when every field it sets matches; an unset field matches anything;
- a prefix matches only addresses of its own family (an IPv4 rule never matches IPv6);
- the protocol is the transport after IPv6 extension headers; a non-initial fragment has
  none (it matches only rules without ``protos`` and without ports);
- a port range matches only TCP and UDP packets that carry their whole header;
- frames that are not IP get the default action; malformed IP packets (a header cut short
  or inconsistent, a TCP/UDP header cut short) are denied whatever the rules say
  (:data:`MALFORMED_RULE`), so a truncated header can never slip past a port rule.

Rules are compiled into flat arrays: a batch is matched against all rules at once (a
packets x rules boolean matrix), a kernel walks them in order and stops at the first match.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import NfkitError
from .jit import FLOW_IPV4, FLOW_IPV6, MALFORMED, NOT_IP, _jit, flow_key, kernel

__all__ = ["AclRule", "Acl", "AclError", "acl_first_match", "packet_flow_key", "NO_MATCH",
           "MALFORMED_RULE"]

NO_MATCH = -1        #: no rule matched: the default action applies
MALFORMED_RULE = -2  #: the packet is malformed: denied

_ANY = -1
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AclError(NfkitError, ValueError):
    """A rule is inconsistent (e.g. an IPv4 source with an IPv6 destination)."""


@dataclass(frozen=True)
class AclRule:
    """One rule.  ``protos``: IP protocol numbers (at most two, e.g. ICMP and ICMPv6), or
    None for any; ``src``/``dst``: prefixes; ``src_ports``/``dst_ports``: inclusive
    ``(low, high)`` ranges."""

    allow: bool
    protos: tuple[int, ...] | None = None
    src: IpNetwork | None = None
    dst: IpNetwork | None = None
    src_ports: tuple[int, int] | None = None
    dst_ports: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.protos is not None and not 1 <= len(self.protos) <= 2:
            raise AclError(f"protos: expected one or two protocol numbers, got {self.protos!r}")
        if self.src is not None and self.dst is not None and self.src.version != self.dst.version:
            raise AclError(f"src {self.src} and dst {self.dst} are of different IP versions")
        for name in ("src_ports", "dst_ports"):
            r = getattr(self, name)
            if r is not None and not 0 <= r[0] <= r[1] <= 0xFFFF:
                raise AclError(f"{name}: expected 0 <= low <= high <= 65535, got {r!r}")

    @property
    def family(self) -> int:
        """4 or 6 when a prefix ties the rule to one IP version, else 0."""
        net = self.src or self.dst
        return net.version if net is not None else 0

    def matches(self, family: int, proto: int, src: int, dst: int, sport: int, dport: int) -> bool:
        """Whether the rule matches one IP packet's flow key (addresses as ints; proto
        and ports -1 where absent)."""
        if self.family and self.family != family:
            return False
        if self.protos is not None and proto not in self.protos:
            return False
        for net, addr in ((self.src, src), (self.dst, dst)):
            if net is not None and (addr & int(net.netmask)) != int(net.network_address):
                return False
        for rng, port in ((self.src_ports, sport), (self.dst_ports, dport)):
            if rng is not None and not rng[0] <= port <= rng[1]:
                return False
        return True


def _halves(value: int, family: int) -> tuple[int, int]:
    if family == 6:
        return value >> 64, value & 0xFFFFFFFFFFFFFFFF
    return 0, value


class Acl:
    """An ordered list of :class:`AclRule` (first match wins) and a default action."""

    def __init__(self, rules: Sequence[AclRule], default_allow: bool = False) -> None:
        self.rules = list(rules)
        self.default_allow = bool(default_allow)
        self._compile()

    def _compile(self) -> None:
        n = len(self.rules)
        self.fam = np.zeros(n, dtype=np.int64)
        self.proto = np.full((n, 2), _ANY, dtype=np.int64)
        # per rule: value and mask of the address halves (src hi, src lo, dst hi, dst lo)
        self.addr_val = np.zeros((n, 4), dtype=np.uint64)
        self.addr_mask = np.zeros((n, 4), dtype=np.uint64)
        self.ports = np.empty((n, 4), dtype=np.int64)     # src lo, src hi, dst lo, dst hi
        self.ports[:] = (_ANY, 0xFFFF, _ANY, 0xFFFF)
        self.allow = np.zeros(n, dtype=np.bool_)
        for i, r in enumerate(self.rules):
            self.fam[i] = r.family
            if r.protos is not None:
                self.proto[i] = (r.protos[0], r.protos[-1])
            for k, net in ((0, r.src), (2, r.dst)):
                if net is not None:
                    self.addr_val[i, k:k + 2] = _halves(int(net.network_address), net.version)
                    self.addr_mask[i, k:k + 2] = _halves(int(net.netmask), net.version)
            for k, rng in ((0, r.src_ports), (2, r.dst_ports)):
                if rng is not None:
                    self.ports[i, k:k + 2] = rng
            self.allow[i] = r.allow

        self._compile_bitmaps()

    def _compile_bitmaps(self) -> None:
        """Per-field rule bitmaps for kernels (the bit-vector scheme of Lakshman and
        Stiliadis): for each field, a table from the packet's value to the set of rules
        that field lets match, as ``words`` uint64s; a packet's candidates are the AND of
        its fields' sets, its rule the lowest bit.  Ports and protocols index tables
        directly; addresses find their elementary interval by binary search over the
        rules' prefix boundaries.  Cost per packet: ~2 x log2(2 x rules) probes, whatever
        the number of rules, instead of a walk over all of them."""
        n = len(self.rules)
        words = max(1, (n + 63) // 64)

        def bitmap(match: np.ndarray) -> np.ndarray:     # (..., n) bool -> (..., words) uint64
            padded = np.zeros(match.shape[:-1] + (words * 64,), dtype=np.uint64)
            padded[..., :n] = match
            weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
            return (padded.reshape(match.shape[:-1] + (words, 64)) * weights).sum(axis=-1,
                                                                                  dtype=np.uint64)

        values = np.arange(-1, 256)[:, None]
        ports = np.arange(-1, 65536)[:, None]
        parts = [
            bitmap(np.stack([(self.fam == 0) | (self.fam == 4), (self.fam == 0) | (self.fam == 6)])),
            bitmap((self.proto[:, 0] == _ANY) | (self.proto[:, 0] == values)
                   | (self.proto[:, 1] == values)),                           # [proto + 1]
            bitmap((self.ports[:, 0] <= ports) & (ports <= self.ports[:, 1])),  # [sport + 1]
            bitmap((self.ports[:, 2] <= ports) & (ports <= self.ports[:, 3])),  # [dport + 1]
        ]
        b_hi: list[np.ndarray] = []
        b_lo: list[np.ndarray] = []
        for fam, bits in ((4, 32), (6, 128)):
            for net_of in (lambda r: r.src, lambda r: r.dst):
                starts = {0}
                ranges: list[tuple[int, int] | None] = []
                for r in self.rules:
                    net = net_of(r)
                    if net is not None and net.version == fam:
                        lo = int(net.network_address)
                        hi = lo + net.num_addresses
                        ranges.append((lo, hi))
                        starts.add(lo)
                        if hi < 1 << bits:
                            starts.add(hi)
                    else:
                        ranges.append(None)
                bounds = sorted(starts)
                index = {x: j for j, x in enumerate(bounds)}
                match = np.zeros((len(bounds), n), dtype=bool)
                for j, rng in enumerate(ranges):
                    if rng is None:
                        match[:, j] = True
                    else:
                        match[index[rng[0]]:index.get(rng[1], len(bounds)), j] = True
                b_hi.append(np.array([x >> 64 for x in bounds], dtype=np.uint64))
                b_lo.append(np.array([x & 0xFFFFFFFFFFFFFFFF for x in bounds], dtype=np.uint64))
                parts.append(bitmap(match))
        # one bitmap table, one boundary table, and where each part starts: few arrays,
        # so a kernel's per-packet call does not pay reference counting on many
        rows = np.cumsum([0] + [len(p) for p in parts])
        starts_b = np.cumsum([0] + [len(b) for b in b_hi])
        self.bitmaps = np.ascontiguousarray(np.concatenate(parts))
        self.bounds = np.ascontiguousarray(np.stack([np.concatenate(b_hi), np.concatenate(b_lo)]))
        self.layout = np.concatenate([rows[:8], starts_b[:4], np.diff(starts_b)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"<Acl {len(self.rules)} rules, default {'allow' if self.default_allow else 'deny'}>"

    # -- one packet, plain Python (the reference) -----------------------------------------
    def first_match(self, family: int, proto: int, src: int, dst: int, sport: int, dport: int) -> int:
        """Index of the first rule matching this IP flow key, or :data:`NO_MATCH`."""
        for i, r in enumerate(self.rules):
            if r.matches(family, proto, src, dst, sport, dport):
                return i
        return NO_MATCH

    def match_packet(self, m: Any) -> int:
        """The matching rule of one :class:`~nfkit.Mbuf`, through the per-packet API."""
        key = packet_flow_key(m)
        if key[0] == MALFORMED:
            return MALFORMED_RULE
        if key[0] == NOT_IP:
            return NO_MATCH
        return self.first_match(*key)

    def allows_packet(self, m: Any) -> bool:
        """Whether the ACL allows one packet (the per-packet twin of :meth:`allows`)."""
        r = self.match_packet(m)
        if r == MALFORMED_RULE:
            return False
        return bool(self.allow[r]) if r >= 0 else self.default_allow

    # -- a batch with numpy --------------------------------------------------------------
    def classify(self, b: Any) -> np.ndarray:
        """The matching rule of every packet of the :class:`~nfkit.vector.BatchView` ``b``:
        its index, :data:`NO_MATCH` or :data:`MALFORMED_RULE`."""
        v4, v6 = b.ipv4_valid, b.ipv6_valid
        et = b.ether_type
        proto = b.l4_proto
        tcp, udp = b.tcp_valid, b.udp_valid
        malformed = ~b.eth_valid | ((et == 0x0800) & ~v4) | ((et == 0x86DD) & ~v6) \
            | ((proto == 6) & ~tcp) | ((proto == 17) & ~udp)
        out = np.where(malformed, MALFORMED_RULE, NO_MATCH).astype(np.int64)
        ip = (v4 | v6) & ~malformed
        if not ip.any() or not self.rules:
            return out
        rows = np.flatnonzero(ip)
        fam = np.where(v4, 4, 6)[rows]
        pr = proto[rows]
        has_ports = (tcp | udp)[rows]
        sport = np.where(has_ports, b.src_port[rows].astype(np.int64), _ANY)
        dport = np.where(has_ports, b.dst_port[rows].astype(np.int64), _ANY)
        addr = np.zeros((len(rows), 4), dtype=np.uint64)
        for k, name in ((0, "src"), (2, "dst")):
            a4 = b.ipv4.get(name)[rows].astype(np.uint64)
            a6 = b.ipv6.get(name)[rows].view(">u8").astype(np.uint64)   # (m, 2) halves
            is4 = fam == 4
            addr[:, k] = np.where(is4, 0, a6[:, 0])
            addr[:, k + 1] = np.where(is4, a4, a6[:, 1])
        # packets x rules
        m = (self.fam == 0) | (self.fam == fam[:, None])
        m &= (self.proto[:, 0] == _ANY) | (self.proto[:, 0] == pr[:, None]) | (self.proto[:, 1] == pr[:, None])
        for k in range(4):
            m &= (addr[:, k, None] & self.addr_mask[:, k]) == self.addr_val[:, k]
        m &= (self.ports[:, 0] <= sport[:, None]) & (sport[:, None] <= self.ports[:, 1])
        m &= (self.ports[:, 2] <= dport[:, None]) & (dport[:, None] <= self.ports[:, 3])
        first = m.argmax(axis=1)
        out[rows] = np.where(m[np.arange(len(rows)), first], first, NO_MATCH)
        return out

    def allows(self, b: Any) -> np.ndarray:
        """The keep mask of a batch: True where the ACL allows the packet."""
        return self.verdicts(self.classify(b))

    def verdicts(self, matched: np.ndarray) -> np.ndarray:
        """Allow (True) / deny for rule indices as :meth:`classify` returns them."""
        allow = np.append(self.allow, [False, self.default_allow])   # [-2] malformed, [-1] none
        return allow[matched]

    # -- inside kernels ----------------------------------------------------------------------
    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The compiled rules for :func:`acl_first_match` in a kernel: ``(bitmaps, bounds,
        layout)``.  They are this ACL's own arrays: to change the rules, build a new Acl."""
        return self.bitmaps, self.bounds, self.layout

    def kernel(self) -> Any:
        """A kernel that drops the packets this ACL denies (counted by the pipeline)."""
        allow = np.append(self.allow, [False, self.default_allow]).astype(np.bool_)
        return ACL_FILTER.bind(allow, *self.tables())


@_jit
def _interval(bounds: np.ndarray, start: int, count: int, hi: np.uint64, lo: np.uint64) -> int:
    """Index (from ``start``) of the last of ``count`` sorted boundaries <= (hi, lo); the
    first boundary is 0, so there is one."""
    a, b = 0, count
    while b - a > 1:
        m = (a + b) >> 1
        bh = bounds[0, start + m]
        if bh < hi or (bh == hi and bounds[1, start + m] <= lo):
            a = m
        else:
            b = m
    return a


@_jit
def acl_first_match(bitmaps: np.ndarray, bounds: np.ndarray, layout: np.ndarray, family: int,
                    pr: int, src_hi: np.uint64, src_lo: np.uint64, dst_hi: np.uint64,
                    dst_lo: np.uint64, sport: int, dport: int) -> int:
    """The first rule (of :meth:`Acl.tables`) matching an IP packet's flow key, or -1."""
    f = 0 if family == 4 else 1
    si = _interval(bounds, layout[8 + 2 * f], layout[12 + 2 * f], src_hi, src_lo)
    di = _interval(bounds, layout[9 + 2 * f], layout[13 + 2 * f], dst_hi, dst_lo)
    r_fam, r_proto, r_sport, r_dport = layout[0] + f, layout[1] + pr + 1, layout[2] + sport + 1, \
        layout[3] + dport + 1
    r_src, r_dst = layout[4 + 2 * f] + si, layout[5 + 2 * f] + di
    for w in range(bitmaps.shape[1]):
        c = bitmaps[r_fam, w] & bitmaps[r_proto, w] & bitmaps[r_sport, w] & bitmaps[r_dport, w] \
            & bitmaps[r_src, w] & bitmaps[r_dst, w]
        if c != 0:
            low = 0                                   # the lowest set bit
            while (c >> np.uint64(low)) & np.uint64(1) == 0:
                low += 1
            return 64 * w + low
    return -1


@kernel(restructures=False)
def ACL_FILTER(data, slots, data_off, data_len, keep, allow, bitmaps, bounds, layout):  # noqa: ANN001, N802
    """Keep the packets the ACL allows (``allow``: per rule, then malformed, then default).
    flow_key's walk, not the burst's classification: reading the classification (and
    classifying first when no vector stage did) made this kernel ~20% slower (5.6 -> 4.6
    Mpps at batch 256, measured); it changes no header, so the burst stays classified."""
    n_rules = allow.shape[0] - 2
    for i in range(slots.shape[0]):
        s = slots[i]
        status, pr, l3, l4, sh, sl, dh, dl, sp, dp = flow_key(data, s, data_off[s], data_len[s])
        if status == MALFORMED:
            keep[i] = allow[n_rules]
        elif status == NOT_IP:
            keep[i] = allow[n_rules + 1]
        else:
            r = acl_first_match(bitmaps, bounds, layout, status, pr, np.uint64(sh), np.uint64(sl),
                                np.uint64(dh), np.uint64(dl), sp, dp)
            keep[i] = allow[r] if r >= 0 else allow[n_rules + 1]


def packet_flow_key(m: Any) -> tuple[int, ...]:
    """``(status, proto, src, dst, src_port, dst_port)`` of one packet through the
    per-packet API (addresses as ints; see :func:`~nfkit.vector.jit.flow_key` for the
    meaning of each part).  For a non-IP or malformed packet only ``(status,)``."""
    from ..packets import Ethernet, Fragment, Ipv4, Ipv6, SegmentRouting, Tcp, Udp
    from ..packets.dissect import dissect
    from .view import MAX_VLAN_TAGS

    layers, _ = dissect(m)
    if not layers or not isinstance(layers[0], Ethernet) or len(layers[0].vlans) > MAX_VLAN_TAGS:
        return (MALFORMED,)                # (the compiled paths walk at most 4 VLAN tags)
    if layers[0].ether_type not in (0x0800, 0x86DD):
        return (NOT_IP,)
    if len(layers) < 2 or not isinstance(layers[1], (Ipv4, Ipv6)):
        return (MALFORMED,)
    ip = layers[1]
    nxt = 2
    if isinstance(ip, Ipv4):
        status, proto = FLOW_IPV4, (ip.protocol if ip.fragment_offset == 0 else -1)
    else:
        status, last, initial = FLOW_IPV6, ip, True
        while nxt < len(layers) and isinstance(layers[nxt], (Fragment, SegmentRouting)):
            last = layers[nxt]
            initial &= not (isinstance(last, Fragment) and last.fragment_offset != 0)
            nxt += 1
        proto = last.next_header if initial else -1
        if proto in _EXT:
            # a header nfkit has no class for (hop-by-hop, destination options, a routing
            # type other than SRH): walked on the bytes by flow_key's rules, so that every
            # path finds the same transport (the per-packet one stopped there, proto -1)
            return _rest_of_chain(m, proto, last.payload_offset, ip.offset + len(ip),
                                  8 - (nxt - 2), (status, int(ip.src), int(ip.dst)))
    sport = dport = -1
    if proto in (6, 17):
        l4 = layers[nxt] if nxt < len(layers) else None
        if not isinstance(l4, Tcp if proto == 6 else Udp):
            return (MALFORMED,)
        sport, dport = l4.src_port, l4.dst_port
    return status, proto, int(ip.src), int(ip.dst), sport, dport


_EXT = (0, 43, 44, 60)      # IPv6 extension headers: hop-by-hop, routing, fragment, dest. options


def _rest_of_chain(m: Any, proto: int, pos: int, end: int, budget: int,
                   ip: tuple[int, int, int]) -> tuple[int, ...]:
    """The flow key of an IPv6 packet whose extension chain continues at ``pos`` (up to
    ``end``) with headers the per-packet API does not parse, as :func:`flow_key` finds it."""
    b = m.view()
    initial = True
    for _ in range(budget):
        if proto not in _EXT or pos + 8 > end:
            break
        if proto == 44:
            initial &= ((b[pos + 2] << 8) | b[pos + 3]) & 0xFFF8 == 0
            size = 8
        else:
            size = (b[pos + 1] + 1) * 8
        proto, pos = b[pos], pos + size
    if proto in _EXT or not initial or pos > end:
        return (ip[0], -1, ip[1], ip[2], -1, -1)
    avail = end - pos
    if proto == 6 and (avail < 20 or not 20 <= (b[pos + 12] >> 4) * 4 <= avail) \
            or proto == 17 and avail < 8:
        return (MALFORMED,)
    ports = ((b[pos] << 8) | b[pos + 1], (b[pos + 2] << 8) | b[pos + 3]) if proto in (6, 17) else (-1, -1)
    return (ip[0], proto, ip[1], ip[2], *ports)
