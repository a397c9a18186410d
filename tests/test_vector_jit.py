"""JIT kernels: the same results compiled and as plain Python, inside pipelines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nfkit import Mbuf, Mempool, Poll
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.testing import v4_udp
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
@settings(max_examples=30)
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

    class Rx:
        def receive(self, n=32):
            out, ms[:] = list(ms), []
            return out

    sent: list[Mbuf] = []

    class Tx:
        def transmit(self, mbufs):
            sent.extend(mbufs)

    counter = np.zeros(1, np.int64)
    pl = Poll(Rx()).map(route.bind(counter)).send(Tx())
    pl.run_once()
    assert len(sent) == 2 and pl.stats.drop == 1 and counter[0] == 2
    assert all(m.parse(Ethernet).parse(Ipv4).ttl == 63 for m in sent)
    Mbuf.free_bulk(sent)
    assert pool.in_use == 0


def test_helpers() -> None:
    data = np.zeros((2, 8), np.uint8)
    put_be16(data, 1, 2, 0xBEEF)
    assert be16(data, 1, 2) == 0xBEEF and data[1, 2] == 0xBE


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed (pip install nfkit[jit])")
def test_numba_is_used_when_installed() -> None:
    assert "numba" in repr(route) and hasattr(route.compiled, "signatures")
