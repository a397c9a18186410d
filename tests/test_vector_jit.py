"""JIT kernels: the same results compiled and as plain Python, inside pipelines."""

from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from doubles import ListRx, ListTx
from nfkit import Mbuf, Mempool, Poll
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.testing import v4_udp
from nfkit.testing.skips import need
from nfkit.vector import HAVE_NUMBA, kernel
from nfkit.vector.jit import be16, csum_adjust, put_be16


@kernel
def route(data, slots, data_off, data_len, keep, counter):
    """Swap MACs, decrement the IPv4 TTL (checksum follows), drop at TTL <= 1."""
    for i in range(slots.shape[0]):
        s = slots[i]
        o = data_off[s]
        if data_len[s] < 34 or data[s, o + 12] != 8 or data[s, o + 13] != 0:
            continue
        ttl = data[s, o + 22]
        if ttl <= 1:
            keep[i] = False
            continue
        data[s, o + 22] = ttl - 1
        csum_adjust(data, s, o + 24, -256)
        for k in range(6):
            t = data[s, o + k]
            data[s, o + k] = data[s, o + 6 + k]
            data[s, o + 6 + k] = t
        counter[0] += 1


def load(raws: list[bytes]) -> tuple[Mempool, np.ndarray]:
    pool = Mempool(capacity=64)
    return pool, np.array([Mbuf.from_bytes(r, pool).slot for r in raws], dtype=np.int64)


@given(st.lists(v4_udp(ipv4_ttl=st.integers(0, 3)), min_size=1, max_size=20))
def test_compiled_and_python_kernels_agree(ms: list[Mbuf]) -> None:
    raws = [m.to_bytes() for m in ms]
    Mbuf.free_bulk(ms)
    (pa, sa), (pb, sb) = load(raws), load(raws)
    ca, cb = np.zeros(1, np.int64), np.zeros(1, np.int64)
    keep_a = route.bind(ca).run(pa, sa)
    keep_b = route.bind(cb).run(pb, sb, python=True)
    assert keep_a.tolist() == keep_b.tolist() and ca[0] == cb[0]
    out_a = [Mbuf(pa, int(s)).to_bytes() for s in sa]
    out_b = [Mbuf(pb, int(s)).to_bytes() for s in sb]
    assert out_a == out_b
    for s, k in zip(sa, keep_a):
        ip = Mbuf(pa, int(s)).parse(Ethernet).parse(Ipv4)
        assert ip.checksum_ok and ip.parse(Udp).checksum_ok
        assert k == (ip.ttl >= 1 and Mbuf(pa, int(s)).to_bytes() != raws[list(sa).index(s)])


def test_kernel_in_a_pipeline_drops_and_counts() -> None:
    pool = Mempool(capacity=64)
    ms = []
    for ttl in (1, 64, 64):
        m = Mbuf.alloc(pool)
        u = m.push(Ethernet).push(Ipv4).push(Udp)
        u.envelope.ttl = ttl
        u.reconcile_all()
        ms.append(m)

    tx = ListTx()
    sent = tx.sent
    counter = np.zeros(1, np.int64)
    pl = Poll(ListRx(ms)).map(route.bind(counter)).send(tx)
    pl.run_once()
    assert len(sent) == 2 and pl.stats.drop == 1 and counter[0] == 2
    assert all(m.parse(Ethernet).parse(Ipv4).ttl == 63 for m in sent)
    Mbuf.free_bulk(sent)
    assert pool.in_use == 0


def test_helpers() -> None:
    data = np.zeros((2, 8), np.uint8)
    put_be16(data, 1, 2, 0xBEEF)
    assert be16(data, 1, 2) == 0xBEEF and data[1, 2] == 0xBE


def test_numba_is_used_when_installed() -> None:
    need(HAVE_NUMBA, "numba is not installed", "pip install 'nfkit[jit]'")
    assert "numba" in repr(route) and hasattr(route.compiled, "signatures")


def test_router_kernel_equals_vector_router() -> None:
    """The benchmark's router kernel and the same router as a vector stage agree byte for
    byte (LPM, TTL, checksum, MACs) on random destinations."""
    import random
    import sys
    from pathlib import Path

    from nfkit.vector import BatchView
    from nfkit.vector.lpm import Lpm4
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from nf_table import route_k as ROUTER_KERNEL

    rnd = random.Random(3)
    lpm = Lpm4(max_tbl8_groups=64)
    lpm.add("10.0.0.0/8", 1)
    lpm.add("10.1.0.0/16", 2)
    lpm.add("10.1.2.0/25", 3)
    lpm.add("192.168.0.0/16", 4)
    macs = np.array([0x020000000100 + i for i in range(8)], dtype=np.uint64)
    raws = []
    for _ in range(200):
        m = Mbuf.alloc(Mempool(capacity=1))
        u = m.push(Ethernet).push(Ipv4).push(Udp)
        u.envelope.dst = rnd.choice([0x0A000000, 0x0A010000, 0x0A010200, 0xC0A80000, 0x08000000]) \
            | rnd.getrandbits(8)
        u.envelope.ttl = rnd.choice([0, 1, 2, 64])
        u.reconcile_all()
        raws.append(m.to_bytes())
    (pa, sa), (pb, sb) = load(raws[:64]), load(raws[:64])
    t24, t8 = lpm.tables()
    keep_k = ROUTER_KERNEL.bind(t24, t8, macs).run(pa, sa)
    b = BatchView(pb, sb)
    nh = lpm.lookup(b.ipv4.dst)
    keep_v = b.ipv4.valid & (nh >= 0) & (b.ipv4.ttl > 1)
    live = keep_v.copy()
    b.ipv4.set("ttl", b.ipv4.ttl.astype(np.int64) - 1, where=live)
    b.eth.set("src", b.eth.dst, where=live)
    b.eth.set("dst", macs[np.maximum(nh, 0)], where=live)
    assert keep_k.tolist() == keep_v.tolist()
    for s_a, s_b, k in zip(sa, sb, keep_k):
        if k:
            assert Mbuf(pa, int(s_a)).to_bytes() == Mbuf(pb, int(s_b)).to_bytes()


def test_bound_copies_share_one_compiled_function() -> None:
    counter = np.zeros(1, np.int64)
    a, b = route.bind(counter), route.bind(np.zeros(1, np.int64))
    assert a.compiled is b.compiled is route.bind(counter).compiled
