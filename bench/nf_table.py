"""The NF table of ``make bench``: five jobs, five implementations, three batch sizes.

Jobs (issue #4): parse the 5-tuple; l2fwd (MAC swap); IPv4 router (LPM over 10,000 routes,
TTL - 1 with checksum, next-hop MACs); ACL firewall (100 rules, first match); NAT64
(IPv6/TCP -> IPv4/TCP with bindings).  Implementations: nfkit's vector path (numpy
columns), a nfkit JIT kernel (numba), nfkit per-packet, dpkt and Scapy.

nfkit runs real pipelines ``Poll(q).<stage>.send(q)`` on a ``net_null`` port (in memory:
receive hands out a burst of the job's frames, transmit frees it; no I/O), so its numbers
include the pipeline: receive, the stage, dispositions, transmit.  The headline rows have
the port write the next frames of the job's 4096 into the burst's buffers on every
receive (``refill=True``), as a NIC writes what it received.  Jobs that only read or
reversibly change packets also get a row *in cache*: the frames written into the buffers
once, so the same few buffers (the pool hands back the last freed first) come back
unchanged every burst -- faster, and not what a port delivers.

dpkt and Scapy have no pipeline: they get the same frames as a list of bytes and do the
job the way those libraries do it (parse into objects, change, serialise); batch size
does not change how they work, they are measured on lists of that many frames.

Every row is checked before it is timed (:func:`check`): the first two bursts of the very
port and stage that are then timed (or the peer on the first two lists of frames) must
give what an independent reference gives -- the 5-tuples from a struct parse, the frames
with swapped MACs, the router's lookup, TTL and checksum in plain Python, the ACL's rules
evaluated one by one, and for NAT64 nfkit per-packet (cross-checked by dpkt and Scapy).
"""

from __future__ import annotations

import ipaddress
import random
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import nfkit
from nfkit import Mbuf, Mempool
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp, Udp
from nfkit.vector import HAVE_NUMBA, kernel
from nfkit.vector.acl import Acl, AclRule
from nfkit.vector.jit import csum_adjust, flow_key
from nfkit.vector.lpm import Lpm4, lpm4_lookup

BATCHES = (32, 256, 1024)
N_FRAMES = 4096
IMPLS = ("vector", "JIT kernel", "per-packet", "dpkt", "Scapy")


@dataclass
class Job:
    name: str
    frames: list[bytes]
    # the stages change packets for good (TTL, NAT): no in-cache row, where every burst
    # would get back the frames the last one changed
    rewrites: bool
    # the expected output of a list of input frames: the frames sent, in order (or, for
    # the parse job, the 5-tuples as ints)
    reference: Callable[[list[bytes]], list[Any]]
    stages: dict[str, tuple[str, Any]] = field(default_factory=dict)   # impl -> (kind, fn)
    peers: dict[str, Callable[[list[bytes]], Any]] = field(default_factory=dict)
    note: str = ""
    # jobs whose stages record results instead of sending changed frames (parse): clear
    # the record, and read the tuples of the last n packets
    reset: Callable[[], None] | None = None
    recorded: Callable[[int], list[Any]] | None = None
    # a peer's result as the reference states it (default: the list of frames it made)
    peer_output: Callable[[list[bytes], Any], list[Any]] = lambda frames, out: list(out)
    # issue #4's target for the best nfkit stage at batch 256, fresh frames (Mpps)
    target: float | None = None


def _frame(build: Callable[[Any], Any]) -> bytes:
    pool = Mempool(capacity=1)
    m = Mbuf.alloc(pool)
    top = build(m)
    top.reconcile_all()
    raw = m.to_bytes()
    m.free()
    return raw


def _udp4(rnd: random.Random, pad_to: int = 60) -> bytes:
    def build(m: Mbuf) -> Any:
        eth = m.push(Ethernet)
        eth.src, eth.dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
        ip = eth.push(Ipv4)
        ip.src, ip.dst, ip.ttl = rnd.getrandbits(32), rnd.getrandbits(32), 64
        u = ip.push(Udp)
        u.src_port, u.dst_port = rnd.randrange(1024, 65536), rnd.choice([53, 80, 443, 123, 5000])
        u.set_payload(bytes(pad_to - 42))
        return u
    return _frame(build)


# -- peers -----------------------------------------------------------------------------------

def _dpkt() -> Any:
    try:
        import dpkt
        return dpkt
    except ImportError:
        return None


def _scapy() -> Any:
    try:
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether
        return Ether, IP, IPv6, TCP, UDP
    except ImportError:
        return None


# -- 1. parse the 5-tuple ---------------------------------------------------------------------

def ref_tuples(frames: list[bytes]) -> list[tuple[int, ...]]:
    """The reference 5-tuples (src, dst, protocol, source port, destination port) of
    Ethernet/IPv4/UDP-or-TCP frames, read with struct: independent of every implementation."""
    out = []
    for f in frames:
        ihl = (f[14] & 0x0F) * 4
        src, dst = struct.unpack_from("!II", f, 26)
        sport, dport = struct.unpack_from("!HH", f, 14 + ihl)
        out.append((src, dst, f[23], sport, dport))
    return out


def _as_int(v: Any) -> int:
    if isinstance(v, (bytes, bytearray)):
        return int.from_bytes(v, "big")
    if isinstance(v, str):
        return int(ipaddress.ip_address(v))
    return int(v)


def job_parse(rnd: random.Random) -> Job:
    """Every implementation extracts every packet's 5-tuple into a table (numpy rows for
    nfkit, a list of tuples for dpkt and Scapy): what a flow table or a load balancer reads."""
    frames = [_udp4(rnd) for _ in range(N_FRAMES)]
    cap = max(BATCHES)
    rec = np.full((cap, 5), -1, dtype=np.int64)     # one burst's 5-tuples
    pos = [0]                                       # per-packet: the next row

    @nfkit.vectorized
    def five_v(b: Any) -> None:
        n = len(b)
        ip = b.ipv4
        rec[:n, 0] = ip.src
        rec[:n, 1] = ip.dst
        rec[:n, 2] = b.l4_proto
        rec[:n, 3] = b.src_port
        rec[:n, 4] = b.dst_port

    @kernel
    def five_k(data, slots, data_off, data_len, keep, out):  # noqa: ANN001
        for i in range(slots.shape[0]):
            s = slots[i]
            st, pr, l3, l4, sh, sl, dh, dl, sp, dp = flow_key(data, s, data_off[s], data_len[s])
            out[i, 0] = np.int64(sl)
            out[i, 1] = np.int64(dl)
            out[i, 2] = pr
            out[i, 3] = sp
            out[i, 4] = dp

    def five_p(m: Mbuf) -> None:
        ip = m.parse(Ethernet).parse(Ipv4)
        u = ip.parse(Udp)
        k = pos[0]
        rec[k] = (int(ip.src), int(ip.dst), ip.protocol, u.src_port, u.dst_port)
        pos[0] = k + 1 if k + 1 < cap else 0

    def reset() -> None:
        rec[:] = -1
        pos[0] = 0

    job = Job("parse 5-tuple", frames, False, ref_tuples, {
        "vector": ("for_each", five_v), "JIT kernel": ("for_each", five_k.bind(rec)),
        "per-packet": ("for_each", five_p)},
        reset=reset, recorded=lambda n: [tuple(int(x) for x in r) for r in rec[:n]],
        peer_output=lambda frames, out: [tuple(_as_int(x) for x in t) for t in out])
    dpkt = _dpkt()
    if dpkt:
        def parse_dpkt(raws: list[bytes]) -> Any:
            out = []
            for raw in raws:
                ip = dpkt.ethernet.Ethernet(raw).data
                u = ip.data
                out.append((ip.src, ip.dst, ip.p, u.sport, u.dport))
            return out
        job.peers["dpkt"] = parse_dpkt
    sc = _scapy()
    if sc:
        Ether, IP, _, _, UDP = sc

        def parse_scapy(raws: list[bytes]) -> Any:
            out = []
            for raw in raws:
                p = Ether(raw)
                ip, u = p[IP], p[UDP]
                out.append((ip.src, ip.dst, ip.proto, u.sport, u.dport))
            return out
        job.peers["Scapy"] = parse_scapy
    return job


# -- 2. l2fwd ---------------------------------------------------------------------------------

def job_l2fwd(rnd: random.Random) -> Job:
    l2fwd_k = _load_example("l2fwd", "l2fwd.py").swap_kernel

    @nfkit.vectorized
    def l2fwd_v(b: Any) -> None:
        b.eth.swap_addresses()

    def l2fwd_p(m: Mbuf) -> Mbuf:
        m.parse(Ethernet).swap_addresses()
        return m

    def ref_swap(frames: list[bytes]) -> list[bytes]:
        return [f[6:12] + f[:6] + f[12:] for f in frames]

    job = Job("l2fwd (MAC swap)", [_udp4(rnd) for _ in range(N_FRAMES)], False, ref_swap, {
        "vector": ("map", l2fwd_v), "JIT kernel": ("map", l2fwd_k), "per-packet": ("map", l2fwd_p)},
        target=20)
    dpkt = _dpkt()
    if dpkt:
        def l2fwd_dpkt(raws: list[bytes]) -> list[bytes]:
            out = []
            for raw in raws:
                e = dpkt.ethernet.Ethernet(raw)
                e.src, e.dst = e.dst, e.src
                out.append(bytes(e))
            return out
        job.peers["dpkt"] = l2fwd_dpkt
    sc = _scapy()
    if sc:
        Ether = sc[0]

        def l2fwd_scapy(raws: list[bytes]) -> list[bytes]:
            out = []
            for raw in raws:
                p = Ether(raw)
                p.src, p.dst = p.dst, p.src
                out.append(bytes(p))
            return out
        job.peers["Scapy"] = l2fwd_scapy
    return job


# -- 3. IPv4 router ---------------------------------------------------------------------------

@kernel
def route_k(data, slots, data_off, data_len, keep, tbl24, tbl8, macs):  # noqa: ANN001
    """LPM on the destination, TTL - 1 (checksum follows), the old destination MAC becomes
    the source, the next hop's MAC the destination; no route or TTL <= 1: drop."""
    for i in range(slots.shape[0]):
        s = slots[i]
        o = data_off[s]
        if data_len[s] < 34 or data[s, o + 12] != 8 or data[s, o + 13] != 0 \
                or (data[s, o + 14] >> 4) != 4:
            keep[i] = False
            continue
        dst = ((np.int64(data[s, o + 30]) << 24) | (np.int64(data[s, o + 31]) << 16)
               | (np.int64(data[s, o + 32]) << 8) | np.int64(data[s, o + 33]))
        nh = lpm4_lookup(tbl24, tbl8, dst, -1)
        ttl = data[s, o + 22]
        if nh < 0 or ttl <= 1:
            keep[i] = False
            continue
        data[s, o + 22] = ttl - 1
        csum_adjust(data, s, o + 24, -256)
        m = macs[nh]
        for k in range(6):
            data[s, o + 6 + k] = data[s, o + k]
            data[s, o + k] = (m >> np.uint64(40 - 8 * k)) & np.uint64(0xFF)


class PyLpm:
    """What a dpkt or Scapy user writes for LPM: one dict per prefix length, longest first."""

    def __init__(self, routes: list[tuple[int, int, int]]) -> None:
        self.by_len: dict[int, dict[int, int]] = {}
        for net, length, nh in routes:
            self.by_len.setdefault(length, {})[net >> (32 - length) if length else 0] = nh
        self.lengths = sorted(self.by_len, reverse=True)

    def lookup(self, addr: int) -> int:
        for length in self.lengths:
            nh = self.by_len[length].get(addr >> (32 - length) if length else 0)
            if nh is not None:
                return nh
        return -1


def job_router(rnd: random.Random) -> Job:
    lpm = Lpm4(max_tbl8_groups=4096)
    routes: dict[tuple[int, int], int] = {}
    while len(routes) < 10_000:
        length = rnd.choice([8, 12, 16, 16, 20, 24, 24, 24, 28, 32])
        net = rnd.getrandbits(32) & ((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF)
        routes[(net, length)] = rnd.randrange(16)
    for (net, length), nh in routes.items():
        lpm.add(f"{ipaddress.IPv4Address(net)}/{length}", nh)
    lpm.add("0.0.0.0/0", 0)
    py_lpm = PyLpm([(n, ln, nh) for (n, ln), nh in routes.items()] + [(0, 0, 0)])
    macs = np.array([0x020000000100 + i for i in range(16)], dtype=np.uint64)
    mac_objs = [nfkit.MacAddr(int(x)) for x in macs]
    mac_bytes = [bytes(x) for x in mac_objs]

    @nfkit.vectorized
    def route_v(b: Any) -> Any:
        nh = lpm.lookup(b.ipv4.dst)
        keep = b.decrement_ttl() & b.ipv4.valid & (nh >= 0)
        b.eth.src = b.eth.dst
        b.eth.dst = macs[np.maximum(nh, 0)]
        return keep

    def route_p(m: Mbuf) -> Any:
        eth = m.parse(Ethernet)
        ip = eth.parse(Ipv4)
        nh = lpm.lookup_one(int(ip.dst))
        if nh < 0 or ip.decrement_ttl() == 0:
            return None
        eth.src = eth.dst
        eth.dst = mac_objs[nh]
        return m

    def ref_route(frames: list[bytes]) -> list[bytes]:
        """The router in plain Python: the dict-per-prefix-length lookup, TTL - 1, the
        header checksum summed anew (RFC 1071), the MACs; no route or TTL <= 1: dropped."""
        out = []
        for f in frames:
            ttl = f[22]
            nh = py_lpm.lookup(int.from_bytes(f[30:34], "big"))
            if f[12:14] != b"\x08\x00" or nh < 0 or ttl <= 1:
                continue
            hdr = bytearray(f[14:14 + (f[14] & 0x0F) * 4])
            hdr[8] = ttl - 1
            hdr[10:12] = b"\0\0"
            total = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
            while total >> 16:
                total = (total & 0xFFFF) + (total >> 16)
            hdr[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
            out.append(mac_bytes[nh] + f[0:6] + f[12:14] + bytes(hdr) + f[14 + len(hdr):])
        return out

    tbl24, tbl8 = lpm.tables()
    job = Job("IPv4 router (LPM 10k routes + TTL + checksum)", [_udp4(rnd) for _ in range(N_FRAMES)], True, ref_route, {
        "vector": ("map", route_v), "JIT kernel": ("map", route_k.bind(tbl24, tbl8, macs)),
        "per-packet": ("filter_map", route_p)},
        note="dpkt/Scapy look routes up in a dict per prefix length (longest first).", target=10)
    dpkt = _dpkt()
    if dpkt:
        def route_dpkt(raws: list[bytes]) -> list[bytes]:
            out = []
            for raw in raws:
                e = dpkt.ethernet.Ethernet(raw)
                ip = e.data
                nh = py_lpm.lookup(int.from_bytes(ip.dst, "big"))
                if nh < 0 or ip.ttl <= 1:
                    continue
                ip.ttl -= 1
                ip.sum = 0
                e.src, e.dst = e.dst, mac_bytes[nh]
                out.append(bytes(e))
            return out
        job.peers["dpkt"] = route_dpkt
    sc = _scapy()
    if sc:
        Ether, IP = sc[0], sc[1]

        def route_scapy(raws: list[bytes]) -> list[bytes]:
            out = []
            for raw in raws:
                p = Ether(raw)
                ip = p[IP]
                nh = py_lpm.lookup(int(ipaddress.IPv4Address(ip.dst)))
                if nh < 0 or ip.ttl <= 1:
                    continue
                ip.ttl -= 1
                del ip.chksum
                p.src, p.dst = p.dst, str(mac_objs[nh])
                out.append(bytes(p))
            return out
        job.peers["Scapy"] = route_scapy
    return job


# -- 4. ACL firewall --------------------------------------------------------------------------

class PyAcl:
    """What a dpkt or Scapy user writes for a first-match ACL: the rules as plain ints,
    and for each (IP version, protocol, destination port) seen the rules that can match
    it, in order, so a packet is tested only against those (a dict lookup, then a short
    loop over prefix and source-port tests).  Same verdicts as the rules one by one."""

    def __init__(self, rules: list[AclRule], default_allow: bool) -> None:
        self.default_allow = default_allow
        self.rules = []
        for r in rules:
            sm, sv = (int(r.src.netmask), int(r.src.network_address)) if r.src else (0, 0)
            dm, dv = (int(r.dst.netmask), int(r.dst.network_address)) if r.dst else (0, 0)
            sp = r.src_ports or (-1, 0xFFFF)
            dp = r.dst_ports or (-1, 0xFFFF)
            self.rules.append((r.family, r.protos, dp, (sm, sv, dm, dv, sp[0], sp[1], r.allow)))
        self.by_key: dict[tuple[int, int, int], list[tuple[Any, ...]]] = {}

    def allows(self, family: int, proto: int, src: int, dst: int, sport: int, dport: int) -> bool:
        key = (family, proto, dport)
        cands = self.by_key.get(key)
        if cands is None:
            cands = self.by_key[key] = [
                t for fam, protos, (dlo, dhi), t in self.rules
                if fam in (0, family) and (protos is None or proto in protos) and dlo <= dport <= dhi]
        for sm, sv, dm, dv, slo, shi, allow in cands:
            if src & sm == sv and dst & dm == dv and slo <= sport <= shi:
                return allow
        return self.default_allow


def job_acl(rnd: random.Random) -> Job:
    rules = []
    for i in range(99):
        proto = rnd.choice([(6,), (17,), None])
        dst = ipaddress.IPv4Network((rnd.getrandbits(32) & 0xFFFFFF00, rnd.choice([16, 24, 28])),
                                    strict=False)
        src = ipaddress.IPv4Network((rnd.getrandbits(32), rnd.choice([8, 16])), strict=False) \
            if rnd.random() < 0.5 else None
        port = rnd.choice([53, 80, 443, 123, 5000])
        dports = (port, port) if proto else None
        rules.append(AclRule(rnd.random() < 0.5, proto, src, dst, None, dports))
    rules.append(AclRule(True, (17,), dst_ports=(53, 53)))       # the 100th: allow DNS
    acl = Acl(rules, default_allow=False)
    py_acl = PyAcl(rules, default_allow=False)
    # traffic: a third aimed at rules (random depth), the rest falls through most rules
    frames = []
    for _ in range(N_FRAMES):
        raw = bytearray(_udp4(rnd))
        if rnd.random() < 0.33:
            r = rnd.choice(rules[:99])
            net = int(r.dst.network_address) + rnd.randrange(r.dst.num_addresses)
            raw[30:34] = net.to_bytes(4, "big")
        frames.append(_reframe(bytes(raw)))

    def ref_acl(frames: list[bytes]) -> list[bytes]:
        """The frames the rules allow, taken one by one in order (AclRule.matches)."""
        out = []
        for f, (src, dst, proto, sport, dport) in zip(frames, ref_tuples(frames)):
            r = acl.first_match(4, proto, src, dst, sport, dport)
            if (rules[r].allow if r >= 0 else acl.default_allow):
                out.append(f)
        return out

    @nfkit.vectorized
    def acl_v(b: Any) -> Any:
        return acl.allows(b)

    job = Job("ACL firewall (100 rules, first match)", frames, False, ref_acl, {
        "vector": ("filter", acl_v), "JIT kernel": ("filter", acl.kernel()),
        "per-packet": ("filter", acl.allows_packet)},
        note="dpkt/Scapy classify with what a user of those libraries would write (PyAcl: "
             "the rules as ints, indexed by protocol and destination port); nfkit per-packet "
             "runs nfkit's plain reference (every rule in turn, AclRule.matches).",
        peer_output=lambda frames, verdicts: [f for f, v in zip(frames, verdicts) if v], target=5)
    dpkt = _dpkt()
    if dpkt:
        def acl_dpkt(raws: list[bytes]) -> list[bool]:
            out = []
            for raw in raws:
                ip = dpkt.ethernet.Ethernet(raw).data
                l4 = ip.data
                sp, dp = (l4.sport, l4.dport) if ip.p in (6, 17) else (-1, -1)
                out.append(py_acl.allows(4, ip.p, int.from_bytes(ip.src, "big"),
                                         int.from_bytes(ip.dst, "big"), sp, dp))
            return out
        job.peers["dpkt"] = acl_dpkt
    sc = _scapy()
    if sc:
        Ether, IP = sc[0], sc[1]

        def acl_scapy(raws: list[bytes]) -> list[bool]:
            out = []
            for raw in raws:
                ip = Ether(raw)[IP]
                l4 = ip.payload
                sp, dp = (l4.sport, l4.dport) if ip.proto in (6, 17) else (-1, -1)
                out.append(py_acl.allows(4, ip.proto, int(ipaddress.IPv4Address(ip.src)),
                                         int(ipaddress.IPv4Address(ip.dst)), sp, dp))
            return out
        job.peers["Scapy"] = acl_scapy
    return job


def _reframe(raw: bytes) -> bytes:
    """Recompute the checksums of an Ethernet/IPv4/UDP frame whose bytes were edited."""
    m = Mbuf.from_bytes(raw, Mempool(capacity=1))
    m.parse(Ethernet).parse(Ipv4).parse(Udp).reconcile_all()
    return m.to_bytes()


# -- 5. NAT64 ---------------------------------------------------------------------------------

def _load_example(name: str, file: str) -> Any:
    """An example app's module (examples/<name>/<file>)."""
    from nfkit.cli import load_module
    return load_module(Path(__file__).resolve().parents[1] / "examples" / name / file)


def job_nat64(rnd: random.Random) -> Job:
    nat64 = _load_example("nat64", "nat64.py")
    clients = [ipaddress.IPv6Address(0x20010DB8 << 96 | rnd.getrandbits(64)) for _ in range(256)]

    def build(m: Mbuf) -> Any:
        eth = m.push(Ethernet)
        v6 = eth.push(Ipv6)
        v6.src = rnd.choice(clients)
        v6.dst = nat64.PREFIX[rnd.getrandbits(32)]
        t = v6.push(Tcp)
        t.src_port, t.dst_port = rnd.randrange(1024, 1040), 80
        return t

    frames = [_frame(build) for _ in range(N_FRAMES)]
    kn, pn, ref = nat64.KernelNat64(), nat64.Nat64(), nat64.Nat64()
    job = Job("NAT64 (IPv6/TCP -> IPv4/TCP, 74-byte frames)", frames, True,
              lambda fs: run_stage("filter_map", ref.six_to_four, fs), {
                  "JIT kernel": ("map", kn.six_to_four), "per-packet": ("filter_map", pn.six_to_four)},
              note="no numpy-column NAT64: header removal/insertion is a kernel's job (see "
                   "docs/vector.md).  The reference is nfkit per-packet (its own bindings), "
                   "checked against by dpkt and Scapy too.", target=3)
    gw = nat64.GATEWAY_V4.packed
    dpkt = _dpkt()
    if dpkt:
        bindings: dict[tuple[bytes, int], int] = {}

        def nat_dpkt(raws: list[bytes]) -> list[bytes]:
            out = []
            for raw in raws:
                e = dpkt.ethernet.Ethernet(raw)
                v6 = e.data
                t = v6.data
                if v6.nxt != 6 or v6.hlim <= 1 or v6.dst[:12] != nat64.PREFIX.network_address.packed[:12]:
                    continue
                key = (v6.src, t.sport)
                port = bindings.get(key)
                if port is None:
                    port = bindings[key] = 1025 + len(bindings)
                t.sport = port
                t.sum = 0
                ip = dpkt.ip.IP(src=gw, dst=v6.dst[12:], p=6, ttl=v6.hlim - 1,
                                tos=(v6.fc if hasattr(v6, "fc") else 0), data=t)
                ip.len = 20 + len(t)
                e.type, e.data = 0x0800, ip
                out.append(bytes(e))
            return out
        job.peers["dpkt"] = nat_dpkt
    sc = _scapy()
    if sc:
        Ether, IP, IPv6, TCP, _ = sc
        sbind: dict[tuple[str, int], int] = {}

        def nat_scapy(raws: list[bytes]) -> list[bytes]:
            out = []
            for raw in raws:
                p = Ether(raw)
                v6 = p[IPv6]
                t = v6[TCP]
                key = (v6.src, t.sport)
                port = sbind.get(key)
                if port is None:
                    port = sbind[key] = 1025 + len(sbind)
                t.sport = port
                del t.chksum
                dst4 = str(ipaddress.IPv4Address(ipaddress.IPv6Address(v6.dst).packed[12:]))
                q = Ether(src=p.src, dst=p.dst) / IP(src=str(nat64.GATEWAY_V4), dst=dst4, ttl=v6.hlim - 1,
                                                     tos=v6.tc, flags=0, id=0) / t
                out.append(bytes(q))
            return out
        job.peers["Scapy"] = nat_scapy
    return job


# -- running ----------------------------------------------------------------------------------

def _queue(batch: int, frames: list[bytes], fresh: bool) -> Any:
    """A net_null queue that hands out ``frames``: written into every burst (``fresh``),
    or into the pool's buffers once (in cache)."""
    from nfkit.config import RuntimeConfig
    from nfkit.runtime import Runtime
    cfg = RuntimeConfig.from_toml_text(
        f'app_name = "bench"\nmaster_core = 0\nbatch_size = {batch}\nlog_level = "error"\n'
        f'[mempool]\ncapacity = 8191\n'
        f'[[ports]]\nname = "p"\ndevice = "net_null0"\ncores = [0]\n')
    rt = Runtime.build(cfg)
    q = rt.port("p").queues[0]
    q.set_frames(frames, refill=fresh)
    return rt, q


def pipeline_rate(pipeline: Any, seconds: float, warmup: int = 3, rounds: int = 8) -> float:
    """Packets per second through ``pipeline.run_once()`` over ``seconds`` (after ``warmup``
    untimed runs: numba compiles on first use; the clock is read every ``rounds`` runs)."""
    n = 0
    for _ in range(warmup):
        pipeline.run_once()
    t0 = time.perf_counter()
    while True:
        for _ in range(rounds):
            n += pipeline.run_once()
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def _peer_rate(fn: Callable[[list[bytes]], Any], frames: list[bytes], batch: int, seconds: float) -> float:
    n = 0
    i = 0
    t0 = time.perf_counter()
    while True:
        chunk = frames[i:i + batch]
        i = (i + batch) % (len(frames) - batch)
        fn(chunk)
        n += len(chunk)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


class _Sink:
    """A transmit queue that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[Mbuf] = []

    def transmit(self, mbufs: list[Mbuf]) -> None:
        self.sent.extend(mbufs)


def _through(kind: str, fn: Any, burst: list[Mbuf]) -> list[bytes]:
    """Run one burst through ``<kind>(fn)`` into a sink; the frames sent (freed)."""
    sink = _Sink()
    getattr(nfkit.poll_fn(lambda: burst), kind)(fn).send(sink).run_once()
    out = [m.to_bytes() for m in sink.sent]
    Mbuf.free_bulk(sink.sent)
    return out


def run_stage(kind: str, fn: Any, frames: list[bytes]) -> list[bytes]:
    """What the stage ``<kind>(fn)`` sends for ``frames`` (one burst, a private pool)."""
    pool = Mempool(capacity=len(frames) + 1)
    return _through(kind, fn, [Mbuf.from_bytes(f, pool) for f in frames])


CHECK_BURSTS = 2


def check_stage(job: Job, impl: str, q: Any, batch: int, fresh: bool) -> list[str]:
    """The first CHECK_BURSTS bursts of the port ``q`` through ``impl``'s stage, as the row
    will be timed: what they give must equal the job's reference on what the port
    delivered, and with ``fresh`` frames the port must deliver the job's frames in turn."""
    kind, fn = job.stages[impl]
    inputs: list[bytes] = []
    got: list[Any] = []
    for _ in range(CHECK_BURSTS):
        burst = q.receive(batch)
        frames = [m.to_bytes() for m in burst]
        inputs += frames
        if job.recorded is not None:
            assert job.reset is not None
            job.reset()
            _through(kind, fn, burst)
            got += job.recorded(len(frames))
        else:
            got += _through(kind, fn, burst)
    where = f"{job.name}, {impl}, batch {batch}{'' if fresh else ' in cache'}"
    if len(inputs) != CHECK_BURSTS * batch:
        return [f"{where}: the port delivered {len(inputs)} frames, not {CHECK_BURSTS} x {batch}"]
    if fresh and inputs != job.frames[:len(inputs)]:
        return [f"{where}: the port did not deliver the job's frames in turn"]
    if got != job.reference(inputs):
        return [f"{where}: output differs from the reference"]
    return []


def check_peer(job: Job, impl: str, batch: int) -> list[str]:
    """The peer on the first CHECK_BURSTS lists of ``batch`` frames against the reference."""
    frames = job.frames[:CHECK_BURSTS * batch]
    got: list[Any] = []
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        got += job.peer_output(chunk, job.peers[impl](chunk))
    if got != job.reference(frames):
        return [f"{job.name}, {impl}, batch {batch}: output differs from the reference"]
    return []


IN_CACHE_BATCHES = (256,)


def job_rows(job: Job) -> list[tuple[int, bool]]:
    """The table rows of ``job``: (batch, fresh frames?) -- fresh at every batch size, and
    in cache at IN_CACHE_BATCHES for jobs that do not rewrite packets for good."""
    rows = [(batch, True) for batch in BATCHES]
    if not job.rewrites:
        rows += [(batch, False) for batch in IN_CACHE_BATCHES]
    return rows


def check(job: Job) -> list[str]:
    """Check every row of ``job`` as :func:`run` does before timing it, without timing:
    the problems found (an empty list when every implementation gives the reference)."""
    problems: list[str] = []
    for batch, fresh in job_rows(job):
        for impl in IMPLS:
            if impl in job.stages:
                rt, q = _queue(batch, job.frames, fresh)
                problems += check_stage(job, impl, q, batch, fresh)
                rt.close()
            elif impl in job.peers and fresh:
                problems += check_peer(job, impl, batch)
    return problems


@kernel
def nop_k(data, slots, data_off, data_len, keep):  # noqa: ANN001
    pass


def overhead(seconds: float) -> list[str]:
    """Where a burst's time goes: the pipeline alone (receive, transmit, dispositions), with
    an empty kernel, with an empty vector stage."""
    rnd = random.Random(1)
    frames = [_udp4(rnd) for _ in range(N_FRAMES)]

    @nfkit.vectorized
    def nop_v(b: Any) -> None:
        return None

    @nfkit.vectorized
    def eth_only(b: Any) -> None:
        b.eth.valid

    @nfkit.vectorized
    def read_udp(b: Any) -> Any:
        return b.udp.dst_port != 0

    @nfkit.vectorized
    def swap(b: Any) -> None:
        b.eth.swap_addresses()

    def three_and_kernel(p: Any) -> Any:     # the burst is classified once, by the first stage
        return p.map(eth_only).filter(read_udp).map(swap).map(nop_k)

    lines = ["", "Fixed costs per burst (microseconds), the same pipeline (fresh frames written into",
             "every burst, as in the rows above) with stages that do nothing:", "",
             "| stage | batch 32 | batch 256 | batch 1024 |", "|---|---:|---:|---:|"]
    for label, fn in (("empty kernel (receive + kernel call + transmit)", nop_k),
                      ("empty vector stage (+ BatchView)", nop_v),
                      ("vector stage reading one column (+ Ethernet classification)", eth_only),
                      ("3 vector stages (a column read, a filter, a MAC swap) + empty kernel",
                       three_and_kernel)):
        cells = []
        for batch in BATCHES:
            rt, q = _queue(batch, frames, True)
            p = fn(nfkit.Poll(q)) if fn is three_and_kernel else nfkit.Poll(q).map(fn)
            r = pipeline_rate(p.send(q), seconds)
            rt.close()
            cells.append(f"{batch / r * 1e6:.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def targets(jobs: list[Job], results: dict[tuple[str, int, bool], dict[str, float | None]]) -> str:
    """Issue #4's targets, judged on the fresh-frame rows at batch 256 (best nfkit stage):
    a rate per job, and 50x dpkt."""
    said = []
    for job in jobs:
        cells = results.get((job.name, 256, True), {})
        best = max(cells.get("vector") or 0, cells.get("JIT kernel") or 0)
        dpkt = cells.get("dpkt")
        parts = []
        if job.target:
            parts.append(f"{best / 1e6:.1f} Mpps (target {job.target:g}: "
                         f"{'met' if best >= job.target * 1e6 else '**not met**'})")
        if dpkt:
            parts.append(f"{best / dpkt:.0f}x dpkt (target 50x: "
                         f"{'met' if best >= 50 * dpkt else '**not met**'})")
        if parts:
            said.append(f"{job.name.split(' (')[0]} " + ", ".join(parts))
    return ("Targets of issue #4 on these rows (fresh frames, batch 256, best nfkit stage): "
            + "; ".join(said) + ".")


def run(quick: bool) -> tuple[list[str], list[str]]:
    """The section's lines, and the output checks that failed (their rows are not timed)."""
    rnd = random.Random(7)
    seconds = 0.3 if quick else 1.0
    jobs = [job_parse(rnd), job_l2fwd(rnd), job_router(rnd), job_acl(rnd), job_nat64(rnd)]
    lines = [
        "## Network functions: nfkit (vector, JIT, per-packet) side by side with dpkt and Scapy",
        "",
        "One run, one core, in-memory port (`net_null`, no I/O), 64-byte Ethernet/IPv4/UDP",
        "frames (NAT64: 74-byte IPv6/TCP frames, the smallest there are), 4096 distinct frames.",
        "nfkit numbers are whole pipelines (receive, stage, dispositions, transmit), and the",
        "port writes the next of the 4096 frames into the buffers of every burst it hands out,",
        "as a NIC writes what it received (that write is part of the numbers).  Rows marked",
        "*in cache* are the same jobs with the frames written into the buffers once: the pool",
        "hands the same few buffers back every burst, unchanged and in the CPU cache -- faster,",
        "and not what a port delivers; they show what the write of fresh frames costs.",
        "dpkt and Scapy parse, change and serialise each frame of a list of that many frames",
        "(the parse job: every implementation puts every packet's 5-tuple into a table).",
        f"Mpps; each cell one run of {seconds:.1f} s.  JIT kernels "
        + ("compiled with numba." if HAVE_NUMBA else "run as plain Python (numba not installed)."),
        "",
        "| job | batch | nfkit vector | nfkit JIT kernel | nfkit per-packet | dpkt | Scapy | best nfkit / dpkt |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    problems: list[str] = []
    results: dict[tuple[str, int, bool], dict[str, float | None]] = {}
    for job in jobs:
        for batch, fresh in job_rows(job):
            cells = results[(job.name, batch, fresh)] = {}
            for impl in IMPLS:
                if impl in job.stages:
                    kind, fn = job.stages[impl]
                    rt, q = _queue(batch, job.frames, fresh)
                    bad = check_stage(job, impl, q, batch, fresh)
                    problems += bad
                    cells[impl] = None if bad else \
                        pipeline_rate(getattr(nfkit.Poll(q), kind)(fn).send(q), seconds)
                    rt.close()
                elif impl in job.peers and fresh:
                    bad = check_peer(job, impl, batch)
                    problems += bad
                    t = seconds if impl == "dpkt" else seconds / 2
                    cells[impl] = None if bad else _peer_rate(job.peers[impl], job.frames, batch, t)
            best = max(cells.get("vector") or 0, cells.get("JIT kernel") or 0)
            ratio = f"{best / cells['dpkt']:.0f}x" if cells.get("dpkt") and best else "-"
            row = ["check failed" if i in cells and cells[i] is None
                   else f"{cells[i] / 1e6:.3f}" if i in cells else "-" for i in IMPLS]
            name = job.name if fresh else f"{job.name}, *in cache*"
            lines.append(f"| {name} | {batch} | " + " | ".join(row) + f" | {ratio} |")
            print(lines[-1], flush=True)
    lines.append("")
    for job in jobs:
        if job.note:
            lines.append(f"- {job.name}: {job.note}")
    lines += ["", targets(jobs, results)]
    lines += overhead(seconds)
    lines.append("")
    if problems:
        lines += ["", "**Output checks failed** (those cells were not timed): " + "; ".join(problems)]
    else:
        lines += ["- Output check before timing, every row: the first two bursts of the port and",
                  "  stage that are then timed (dpkt, Scapy: the first two lists of frames) gave",
                  "  what an independent reference gives (the parse job: the 5-tuples read with",
                  "  struct; l2fwd: the frames with their MACs swapped; the router and the ACL:",
                  "  the same job in plain Python; NAT64: nfkit per-packet, itself checked",
                  "  against by dpkt and Scapy), and fresh rows got the job's frames in turn."]
    lines.append("")
    return lines, problems
