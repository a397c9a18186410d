"""The ACL classifies a batch the same way with numpy, in a compiled kernel, as a Python
kernel and per packet (the reference built on the per-packet API)."""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np
import pytest
from hypothesis import given, strategies as st

from doubles import ListRx, ListTx
from nfkit import Mbuf, Poll
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp, Udp
from nfkit.vector import BatchView
from nfkit.vector.acl import (MALFORMED_RULE, Acl, AclError, AclRule, acl_first_match,
                              packet_flow_key)
from nfkit.vector.jit import FLOW_IPV4, FLOW_IPV6, MALFORMED, NOT_IP, flow_key

from test_vector_view import load, raw_batches


def reference_match(acl: Acl, m: Mbuf) -> int:
    """The per-packet API's answer (dissect, then the rules in order)."""
    return acl.match_packet(m)


NETS4 = ["0.0.0.0/0", "10.0.0.0/8", "192.0.2.0/24", "192.0.2.1/32", "198.51.100.0/25"]
NETS6 = ["::/0", "2001:db8::/32", "2001:db8::1/128", "fe80::/10"]


@st.composite
def rules(draw: Any) -> Acl:
    out = []
    for _ in range(draw(st.integers(0, 12))):
        fam = draw(st.sampled_from([0, 4, 6]))
        nets = NETS4 if fam == 4 else NETS6 if fam == 6 else []
        net = lambda: ipaddress.ip_network(draw(st.sampled_from(nets))) if nets and draw(st.booleans()) else None  # noqa: E731
        rng = lambda: (lambda a, b: (min(a, b), max(a, b)))(draw(st.integers(0, 65535)), draw(st.integers(0, 65535))) if draw(st.booleans()) else None  # noqa: E731
        protos = draw(st.sampled_from([None, (6,), (17,), (1, 58), (6, 17)]))
        out.append(AclRule(draw(st.booleans()), protos, net(), net(), rng(), rng()))
    return Acl(out, default_allow=draw(st.booleans()))


@given(raw_batches())
def test_flow_key_kernel_equals_per_packet(raws: list[bytes]) -> None:
    pool, slots, ms = load(raws)
    for s, m in zip(slots.tolist(), ms):
        for fn in (flow_key, getattr(flow_key, "py_func", flow_key)):
            got = fn(pool.data, s, int(pool.data_off[s]), int(pool.data_len[s]))
            want = packet_flow_key(m)
            if want[0] in (MALFORMED, NOT_IP):
                assert got[0] == want[0]
            else:
                fam = 4 if got[0] == FLOW_IPV4 else 6
                src = (int(got[4]) << 64) | int(got[5])
                dst = (int(got[6]) << 64) | int(got[7])
                assert (got[0], got[1], src, dst, got[8], got[9]) == want, fam


@given(raw_batches(), rules())
def test_acl_numpy_kernel_and_per_packet_agree(raws: list[bytes], acl: Acl) -> None:
    pool, slots, ms = load(raws)
    want = [reference_match(acl, m) for m in ms]
    got = BatchView(pool, slots)
    assert acl.classify(got).tolist() == want
    keep = acl.verdicts(np.array(want, dtype=np.int64)).tolist()
    assert [acl.allows_packet(m) for m in ms] == keep
    assert acl.allows(BatchView(pool, slots)).tolist() == keep
    assert acl.kernel().run(pool, slots).tolist() == keep
    assert acl.kernel().run(pool, slots, python=True).tolist() == keep
    # the kernels' rule lookup names the same rule, not just the same verdict
    for s, m, w in zip(slots.tolist(), ms, want):
        st_, pr, _, _, sh, sl, dh, dl, sp, dp = flow_key(pool.data, s, int(pool.data_off[s]),
                                                          int(pool.data_len[s]))
        if st_ in (FLOW_IPV4, FLOW_IPV6):
            got_rule = acl_first_match(*acl.tables(), st_, pr, np.uint64(sh), np.uint64(sl),
                                       np.uint64(dh), np.uint64(dl), sp, dp)
            assert got_rule == w


def test_first_match_wins_and_malformed_is_denied() -> None:
    acl = Acl([AclRule(False, (6,), dst_ports=(22, 22)),
               AclRule(True, (6,)),
               AclRule(True, src=ipaddress.ip_network("2001:db8::/32"))], default_allow=False)
    frames = []
    for dport, src in ((22, "10.0.0.1"), (80, "10.0.0.1")):
        m = Mbuf.alloc()
        t = m.push(Ethernet).push(Ipv4).push(Tcp)
        t.envelope.src, t.dst_port = src, dport
        t.reconcile_all()
        frames.append(m.to_bytes())
        m.free()
    m = Mbuf.alloc()
    u = m.push(Ethernet).push(Ipv6).push(Udp)
    u.envelope.src = "2001:db8::5"
    u.reconcile_all()
    frames.append(m.to_bytes())
    frames.append(frames[1][:40])         # TCP cut short: malformed, denied
    m.free()
    pool, slots, _ = load(frames)
    assert acl.classify(BatchView(pool, slots)).tolist() == [0, 1, 2, MALFORMED_RULE]
    assert acl.kernel().run(pool, slots).tolist() == [False, True, True, False]


def test_bad_rules_are_typed_errors() -> None:
    with pytest.raises(AclError, match="different IP versions"):
        AclRule(True, src=ipaddress.ip_network("10.0.0.0/8"), dst=ipaddress.ip_network("::/0"))
    with pytest.raises(AclError, match="dst_ports"):
        AclRule(True, dst_ports=(10, 5))
    with pytest.raises(AclError, match="protos"):
        AclRule(True, protos=(1, 2, 3))


def test_acl_kernel_in_a_pipeline_counts_drops() -> None:
    acl = Acl([AclRule(True, (17,))])
    m = Mbuf.alloc()
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.reconcile_all()
    udp = m.to_bytes()
    m.free()
    m = Mbuf.alloc()
    t = m.push(Ethernet).push(Ipv4).push(Tcp)
    t.reconcile_all()
    tcp = m.to_bytes()
    m.free()
    rx = ListRx([Mbuf.from_bytes(f) for f in (udp, tcp, udp, tcp, tcp)])
    tx = ListTx()
    p = Poll(rx).filter(acl.kernel()).send(tx)
    p.run_once()
    assert [m.to_bytes() for m in tx.sent] == [udp, udp]
    assert p.stats.drop == 3
    Mbuf.free_bulk(tx.sent)


def test_many_rules_span_several_bitmap_words() -> None:
    import random
    rnd = random.Random(3)
    rules = []
    for i in range(150):
        dst = ipaddress.ip_network((rnd.getrandbits(32) & 0xFFFFFF00, rnd.choice([8, 16, 24])), strict=False)
        rules.append(AclRule(i % 3 == 0, rnd.choice([(6,), (17,), None]), None, dst,
                             None, (53, 53) if rnd.random() < 0.3 else None))
    rules.append(AclRule(True, (17,)))
    acl = Acl(rules)
    assert acl.bitmaps.shape[1] == 3
    frames = []
    for i in range(300):
        m = Mbuf.alloc()
        u = m.push(Ethernet).push(Ipv4).push(Udp)
        target = rules[rnd.randrange(150)].dst
        u.envelope.dst = int(target.network_address) + rnd.randrange(target.num_addresses)
        u.dst_port = rnd.choice([53, 80])
        u.reconcile_all()
        frames.append(m.to_bytes())
        m.free()
    from nfkit import Mempool
    pool = Mempool(capacity=512)
    ms = [Mbuf.from_bytes(f, pool) for f in frames]
    slots = np.array([m.slot for m in ms])
    want = [acl.match_packet(m) for m in ms]
    assert acl.classify(BatchView(pool, slots)).tolist() == want
    assert acl.kernel().run(pool, slots).tolist() == acl.verdicts(np.array(want)).tolist()
    assert len(set(want)) > 50


# -- found by mutation testing (tools/mutation.py) ---------------------------------------------

from scapy.layers.inet import IP as S_IP, TCP as S_TCP, UDP as S_UDP      # noqa: E402
from scapy.layers.inet6 import IPv6 as S_IPv6                               # noqa: E402
from scapy.layers.l2 import Dot1Q, Ether as S_Ether                         # noqa: E402

from test_vector_classify import reference, template_frames, variants        # noqa: E402
from nfkit import Mempool                                                    # noqa: E402
from nfkit.vector import jit                                                 # noqa: E402


def all_ways(acl: Acl, frames: list[bytes]) -> list[int]:
    """The rule each frame matches, checked equal across the per-packet reference, the numpy
    batch path, the kernels (compiled and Python) and acl_first_match itself."""
    pool = Mempool(capacity=len(frames))
    ms = [Mbuf.from_bytes(f, pool) for f in frames]
    slots = np.array([m.slot for m in ms], dtype=np.int64)
    want = [acl.match_packet(m) for m in ms]
    allowed = acl.allows(BatchView(pool, slots))
    assert allowed.dtype == np.bool_
    assert acl.classify(BatchView(pool, slots)).tolist() == want
    keep = acl.verdicts(np.array(want, dtype=np.int64)).tolist()
    assert allowed.tolist() == keep == [acl.allows_packet(m) for m in ms]
    for python in (False, True):
        assert acl.kernel().run(pool, slots, python=python).tolist() == keep
    for fn in (acl_first_match, getattr(acl_first_match, "py_func", acl_first_match)):
        for s, w in zip(slots.tolist(), want):
            k = flow_key(pool.data, s, int(pool.data_off[s]), int(pool.data_len[s]))
            if k[0] in (FLOW_IPV4, FLOW_IPV6):
                assert fn(*acl.tables(), k[0], k[1], np.uint64(k[4]), np.uint64(k[5]),
                          np.uint64(k[6]), np.uint64(k[7]), k[8], k[9]) == w
    return want


def frame(src: str, dst: str, sport: int = 1000, dport: int = 80, proto: str = "tcp") -> bytes:
    ip = (S_IPv6 if ":" in src else S_IP)(src=src, dst=dst)
    l4 = S_TCP(sport=sport, dport=dport) if proto == "tcp" else S_UDP(sport=sport, dport=dport)
    return bytes(S_Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4)


def test_flow_key_on_every_cut_and_byte_change() -> None:
    """flow_key (compiled and Python) against the classification reference of
    test_vector_classify, on the same ~6,000 frames."""
    frames = [v for t in template_frames() for v in variants(t)]
    pool = Mempool(capacity=len(frames))
    slots = [Mbuf.from_bytes(f, pool).slot for f in frames]
    for fn in (flow_key, getattr(flow_key, "py_func", flow_key)):
        for f, s in zip(frames, slots):
            r = reference(f)
            k = fn(pool.data, s, int(pool.data_off[s]), int(pool.data_len[s]))
            ip = r["ipv4_valid"] or r["ipv6_valid"]
            proto = r["l4_proto"] if ip else None
            if not r["eth_valid"] or (r["ether_type"] in (0x0800, 0x86DD) and not ip) \
                    or (proto == 6 and not r["tcp_valid"]) or (proto == 17 and not r["udp_valid"]):
                assert (k[0], k[8], k[9]) == (MALFORMED, -1, -1), f.hex()   # no whole header: no ports
            elif not ip:
                assert (k[0], k[8], k[9]) == (NOT_IP, -1, -1), f.hex()
            else:
                l3 = r["l3"]
                if r["ipv4_valid"]:
                    addrs = (0, int.from_bytes(f[l3 + 12:l3 + 16], "big"), 0, int.from_bytes(f[l3 + 16:l3 + 20], "big"))
                else:
                    addrs = tuple(int.from_bytes(f[l3 + a:l3 + a + 8], "big") for a in (8, 16, 24, 32))
                ports = (be16(f, r["l4"]), be16(f, r["l4"] + 2)) if proto in (6, 17) else (-1, -1)
                want = (FLOW_IPV4 if r["ipv4_valid"] else FLOW_IPV6, proto, l3, *addrs, *ports)
                got = (k[0], k[1], k[2], *(int(x) for x in k[4:8]), k[8], k[9])
                assert got == want, f.hex()
                if proto >= 0:
                    assert k[3] == r["l4"]


def be16(f: bytes, p: int) -> int:
    return (f[p] << 8) | f[p + 1]


def test_acl_on_every_cut_and_byte_change() -> None:
    """A rule set that tells protocols, ports and address families apart, on every cut and
    byte change of the template frames (cut transport headers are malformed: denied)."""
    acl = Acl([AclRule(False, (6,), dst_ports=(0, 1023)), AclRule(True, (17,)),
               AclRule(True, (1, 58)), AclRule(False, src=ipaddress.ip_network("::/1")),
               AclRule(True, protos=(6,), src_ports=(0, 0x7FFF)), AclRule(True, None)],
              default_allow=True)
    frames = [v for t in template_frames() for v in variants(t)]
    frames += [bytes(S_Ether() / S_IP(proto=253) / b"data"), bytes(S_Ether() / S_IPv6(nh=59))]
    want = all_ways(acl, frames)
    assert set(want) == {MALFORMED_RULE, -1, 0, 1, 2, 3, 4, 5}
    assert want[-2:] == [5, 3]               # an IP packet with no transport header matches


def test_port_range_edges_and_the_whole_range() -> None:
    acl = Acl([AclRule(True, (6,), src_ports=(1000, 2000)), AclRule(True, (17,), dst_ports=(0, 65535)),
               AclRule(True, (6,), dst_ports=(65535, 65535)), AclRule(False, None)])
    frames = [frame("10.0.0.1", "10.0.0.2", sport=p) for p in (999, 1000, 2000, 2001)]
    frames += [frame("10.0.0.1", "10.0.0.2", sport=5, dport=p, proto="udp") for p in (0, 65535)]
    frames += [frame("10.0.0.1", "10.0.0.2", sport=5, dport=p) for p in (65534, 65535)]
    assert all_ways(acl, frames) == [3, 0, 0, 3, 1, 1, 3, 2]
    with pytest.raises(AclError, match=r"^src_ports: expected 0 <= low <= high <= 65535, got \(0, 65536\)$"):
        AclRule(True, src_ports=(0, 65536))


def test_addresses_differing_in_their_lowest_bits() -> None:
    """IPv6 halves above 2**53 and 2**63 (fe80::, 2001:db8::8000:...), next to each other:
    exact 64-bit comparisons in every path; address 0 outside a rule starting at 1."""
    nets = ["fe80::/64", "fe80:0:0:1::/64", "2001:db8::8000:0:0:1/128", "2001:db8::8000:0:0:0/127",
            "0.0.0.1/32", "::1/128"]
    acl = Acl([AclRule(True, src=ipaddress.ip_network(n)) for n in nets], default_allow=False)
    frames = [frame("fe80::1", "::2"), frame("fe80:0:0:1::1", "::2"), frame("fe80:0:0:2::1", "::2"),
              frame("2001:db8::8000:0:0:1", "::2"), frame("2001:db8::8000:0:0:0", "::2"),
              frame("2001:db8::8000:0:0:2", "::2"), frame("0.0.0.0", "10.0.0.1"),
              frame("0.0.0.1", "10.0.0.1"), frame("::", "::2"), frame("::1", "::2")]
    assert all_ways(acl, frames) == [0, 1, -1, 2, 3, -1, -1, 4, -1, 5]
    # the same as destinations (the kernel's destination intervals of each family)
    acl = Acl([AclRule(True, dst=ipaddress.ip_network(n)) for n in nets], default_allow=False)
    swapped = [frame("::2" if ":" in s else "10.0.0.1", s) for s in
               ("fe80::1", "fe80:0:0:1::1", "fe80:0:0:2::1", "2001:db8::8000:0:0:1", "2001:db8::8000:0:0:0",
                "2001:db8::8000:0:0:2", "0.0.0.0", "0.0.0.1", "::", "::1")]
    assert all_ways(acl, swapped) == [0, 1, -1, 2, 3, -1, -1, 4, -1, 5]


@pytest.mark.parametrize("n", [1, 53, 54, 63, 64, 65, 128, 129])
def test_rule_counts_around_bitmap_words(n: int) -> None:
    """The last rule of n is the one that matches: every bit position of the words counts."""
    rules = [AclRule(False, (17,), dst_ports=(i, i)) for i in range(n - 1)] + [AclRule(True, (6,))]
    udp = frame("10.0.0.1", "10.0.0.2", dport=max(n - 2, 0), proto="udp")
    want = all_ways(Acl(rules), [frame("10.0.0.1", "10.0.0.2"), udp])
    assert want == [n - 1, n - 2 if n > 1 else -1]


def test_default_allow_and_repr() -> None:
    acl = Acl([AclRule(False, (17,))], default_allow=True)
    assert all_ways(acl, [frame("10.0.0.1", "10.0.0.2"), bytes(S_Ether() / b"not ip at all")]) == [-1, -1]
    pool, slots, _ = load([frame("10.0.0.1", "10.0.0.2")])
    assert acl.allows(BatchView(pool, slots)).tolist() == [True]
    assert repr(acl) == "<Acl 1 rules, default allow>" and repr(Acl([])) == "<Acl 0 rules, default deny>"


def test_kernel_repr_says_how_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    k = jit.kernel(lambda data, slots, data_off, data_len, keep: None)
    assert repr(k) == f"<nfkit kernel {k.__qualname__} ({'numba' if jit.HAVE_NUMBA else 'python'})>"
    monkeypatch.setattr(jit, "HAVE_NUMBA", False)
    assert repr(k) == f"<nfkit kernel {k.__qualname__} (python)>"
    monkeypatch.setattr(jit, "HAVE_NUMBA", True)
    assert repr(k) == f"<nfkit kernel {k.__qualname__} (numba)>"


def test_flow_key_as_python_takes_python_ints() -> None:
    """Without numba flow_key runs as Python; given its frame length as a Python int (its
    signature's n: int), an IPv4 header with total length 0 in a frame of 256 bytes or more
    made `end - l4` mix an int above 255 with the uint8 header length: OverflowError."""
    f = bytes(S_Ether() / S_IP(len=0) / S_TCP() / (b"x" * 300))
    pool = Mempool(capacity=1)
    s = Mbuf.from_bytes(f, pool).slot
    py = getattr(flow_key, "py_func", flow_key)
    for n in (len(f), np.uint32(len(f))):
        k = py(pool.data, s, int(pool.data_off[s]), n)
        assert (k[0], k[1], k[3], k[8], k[9]) == (FLOW_IPV4, 6, 34, 20, 80)


def test_per_packet_path_walks_extension_headers_it_has_no_class_for() -> None:
    """Hop-by-hop and destination options (and routing types other than SRH) have no
    per-packet class: match_packet stopped there (no transport: a 'deny TCP 22' rule did not
    match) while the kernels and the numpy path walk them and deny."""
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
    acl = Acl([AclRule(False, (6,), dst_ports=(22, 22)), AclRule(True, None)])
    e = S_Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = [bytes(e / S_IPv6() / IPv6ExtHdrHopByHop() / S_TCP(dport=22)),
              bytes(e / S_IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / S_TCP(dport=22)),
              bytes(e / S_IPv6() / IPv6ExtHdrRouting(type=0) / S_TCP(dport=22)),
              bytes(e / S_IPv6() / IPv6ExtHdrHopByHop() / S_TCP(dport=80)),
              bytes(e / S_IPv6() / IPv6ExtHdrHopByHop() / S_TCP(dport=22))[:70]]   # TCP cut
    assert all_ways(acl, frames) == [0, 0, 0, 1, MALFORMED_RULE]


def test_more_vlan_tags_than_walked_are_malformed_everywhere() -> None:
    """The compiled paths walk four VLAN tags; the per-packet Ethernet parses any number,
    so a five-tag frame was a UDP packet to match_packet and malformed to the others."""
    tagged = S_Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    for v in range(5):
        tagged = tagged / Dot1Q(vlan=v)
    frames = [bytes(tagged / S_IP() / S_UDP())]
    acl = Acl([AclRule(True, (17,))], default_allow=True)
    assert all_ways(acl, frames) == [MALFORMED_RULE]


def test_bound_kernels_compile_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bound copy of a kernel (one per core, per table...) shares one compiled function:
    the compiler is asked once, whatever numba does or does not do."""
    calls = []
    real = jit._jit
    monkeypatch.setattr(jit, "_jit", lambda f: calls.append(f) or real(f))
    k = jit.kernel(lambda data, slots, data_off, data_len, keep, x: None)
    copies = [k.bind(np.zeros(1)) for _ in range(3)]
    assert all(c.compiled is copies[0].compiled for c in copies) and len(calls) == 1
