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
