"""The counters add up: every packet received ends in exactly one of act, emit, drop and
abort, whatever the pipeline does -- replace included -- and the pool is idle afterwards.

The property runs hypothesis-generated pipelines mixing every combinator (map, filter,
filter_map, for_each, inspect, replace, group_by with arms and defaults, emit, vectorized
stages, kernels) with stages that abort, drop, return non-packets, return packets in new
buffers (of the same pool or another), hand the same buffer to several packets, and sinks
that raise; the source mixes in non-packets and duplicates.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from hypothesis import given, strategies as st

from nfkit import Mbuf, Mempool, vectorized
from nfkit.batch import Batch, Poll
from nfkit.config import RuntimeConfig
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.runtime import Runtime
from nfkit.vector import kernel
from doubles import ListRx, ListTx


def udp4(pool: Mempool, dport: int) -> Mbuf:
    m = Mbuf.alloc(pool)
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.dst_port = dport
    u.reconcile_all()
    return m


def port(p: Any) -> int:
    return p.reset().peek(Ethernet).peek(Ipv4).peek(Udp).dst_port


def identity_holds(st_: Any) -> bool:
    return st_.received == st_.act + st_.emit + st_.drop + st_.abort


def test_replace_is_not_a_drop(pool: Mempool) -> None:
    tx = ListTx()
    pl = Poll(ListRx([udp4(pool, 1), udp4(pool, 2)])).replace(
        lambda m: Mbuf.from_bytes(m.to_bytes(), pool)).send(tx)
    pl.run_once()
    st_ = pl.stats
    assert st_.received == st_.act == st_.replaced == 2 and st_.drop == 0 and identity_holds(st_)
    Mbuf.free_bulk(tx.sent)


def test_replaced_in_the_run_result_and_the_metrics() -> None:
    """The runtime's RunResult and the Prometheus text carry ``replaced`` with the others
    (``nfkit run`` prints it: tests/test_examples.py, ping4d)."""
    rt = Runtime.build(RuntimeConfig.from_toml_text(
        'app_name = "t"\nmaster_core = 0\n'
        '[[ports]]\nname = "eth1"\ndevice = "net_ring0"\ncores = [0]\n'))
    q = rt.port("eth1").queues[0]
    q.inject([udp4(rt.pool, d) for d in (1, 2, 3)])
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).filter(lambda m: port(m) != 2).replace(
        lambda m: Mbuf.from_bytes(m.to_bytes(), rt.pool)).send(q))
    rt.add_periodic_task_to_core(
        0, lambda: rt.stop("done") if q.counters.tx_packets == 2 else None, 0.01)
    res = rt.execute()
    text = rt.metrics.prometheus_text()
    Mbuf.free_bulk(q.drain())
    assert res.pipelines["default#0"] == dict(res.pipelines["default#0"], received=3, act=2, drop=1,
                                              replaced=2, abort=0, emit=0)
    assert 'nfkit_pipeline_replaced_total{core="0",pipeline="default#0"} 2.0' in text, text
    assert rt.pool.in_use == 0


# -- the property ---------------------------------------------------------------------------

@kernel
def k_drop_odd(data, slots, data_off, data_len, keep):  # noqa: ANN001, ANN201
    for i in range(slots.shape[0]):
        s = slots[i]
        o = data_off[s]
        if data_len[s] >= 38 and data[s, o + 37] % 2 == 1:     # UDP destination port odd
            keep[i] = False


class Env:
    """What the stages of one example share: pools, sinks, the run number."""

    def __init__(self) -> None:
        self.pool = Mempool(capacity=1023, name="p")
        self.other = Mempool(capacity=255, name="other")
        self.sinks: list[ListTx] = []
        self.run = 0

    def sink(self) -> ListTx:
        tx = ListTx()
        self.sinks.append(tx)
        return tx


class First:
    """Every packet of a run becomes the first one this stage saw in that run."""

    def __init__(self, env: Env) -> None:
        self.env, self.run, self.first = env, -1, None

    def __call__(self, p: Any) -> Any:
        if self.run != self.env.run:
            self.run, self.first = self.env.run, p
        return self.first


class RaisingTx:
    def transmit(self, mbufs: list[Mbuf]) -> None:
        Mbuf.free_bulk(mbufs[:1])
        raise OSError("link is down")


def _raise_if(k: int) -> Callable[[Any], Any]:
    def f(p: Any) -> Any:
        if port(p) % k == 0:
            raise ValueError("no")
        return p
    return f


def _filter_map(env: Env, k: int) -> Callable[[Any], Any]:
    def f(p: Any) -> Any:
        r = port(p) % k
        return None if r == 0 else Mbuf.from_bytes(p.reset().to_bytes(), env.pool) if r == 1 else p
    return f


OPS: dict[str, Callable[[Batch, int, Env], Batch]] = {
    "map same": lambda b, k, e: b.map(lambda p: p),
    "map parse": lambda b, k, e: b.map(lambda p: p.reset().parse(Ethernet).parse(Ipv4)),
    "map reset": lambda b, k, e: b.map(lambda p: p.reset()),
    "map None": lambda b, k, e: b.map(lambda p: None if port(p) % k == 0 else p),
    "map 42": lambda b, k, e: b.map(lambda p: 42 if port(p) % k == 0 else p),
    "map raises": lambda b, k, e: b.map(_raise_if(k)),
    "map new": lambda b, k, e: b.map(lambda p: Mbuf.from_bytes(p.reset().to_bytes(), e.pool)),
    "filter": lambda b, k, e: b.filter(lambda p: port(p) % k != 0),
    "filter raises": lambda b, k, e: b.filter(_raise_if(k)),
    "filter_map": lambda b, k, e: b.filter_map(_filter_map(e, k)),
    "for_each": lambda b, k, e: b.for_each(lambda p: None),
    "inspect": lambda b, k, e: b.inspect(lambda d, p: None),
    "replace new": lambda b, k, e: b.replace(
        lambda p: Mbuf.from_bytes(p.reset().to_bytes(), e.pool)),
    "replace same": lambda b, k, e: b.replace(lambda p: p),
    "replace other pool": lambda b, k, e: b.replace(
        lambda p: Mbuf.from_bytes(p.reset().to_bytes(), e.other) if port(p) % k else p),
    "replace None": lambda b, k, e: b.replace(lambda p: None if port(p) % k == 0 else p),
    "same buffer twice": lambda b, k, e: b.map(First(e)),
    "emit": lambda b, k, e: b.filter(lambda p: port(p) % k != 0).group_by(
        lambda p: port(p) % 2, {0: lambda g: g.emit(e.sink())}),
    "emit raises": lambda b, k, e: b.group_by(
        lambda p: port(p) % k, {0: lambda g: g.emit(RaisingTx())}),
    "vector filter": lambda b, k, e: b.filter(vectorized(lambda v: v.udp.dst_port % k != 0)),
    "vector map aborts": lambda b, k, e: b.map(vectorized(lambda v: 42)),
    "kernel": lambda b, k, e: b.filter(k_drop_odd),
}

Op = tuple[str, int, Any]
OP = st.tuples(st.sampled_from(sorted(OPS)), st.integers(2, 4), st.none())


def _chains(children: st.SearchStrategy[list[Op]]) -> st.SearchStrategy[list[Op]]:
    group_by = st.tuples(st.sampled_from(["group_by", "vector group_by"]), st.integers(2, 3),
                         st.tuples(children, children, st.none() | children))
    return st.lists(st.one_of(OP, group_by), max_size=4)


CHAINS = st.recursive(st.lists(OP, max_size=4), _chains, max_leaves=10)


def build(b: Batch, ops: list[Op], env: Env) -> Batch:
    for name, k, arms in ops:
        if name in OPS:
            b = OPS[name](b, k, env)
            continue
        a0, a1, dflt = arms
        arm = {0: (lambda g, a=a0: build(g, a, env)), 1: (lambda g, a=a1: build(g, a, env))}
        default = None if dflt is None else (lambda g, a=dflt: build(g, a, env))
        if name == "group_by":
            b = b.group_by(lambda p, k=k: port(p) % k, arm, default)
        else:
            b = b.group_by(vectorized(lambda v, k=k: v.udp.dst_port % k), arm, default)
    return b


@given(ops=CHAINS, ports=st.lists(st.integers(1, 40), max_size=12),
       junk=st.lists(st.sampled_from(["non-packet", "duplicate"]), max_size=2))
def test_counters_add_up_and_nothing_leaks(ops: list[Op], ports: list[int],
                                           junk: list[str]) -> None:
    env = Env()
    rx, tx = ListRx([]), ListTx()
    pl = build(Poll(rx), ops, env).send(tx)
    for run in range(2):
        env.run = run
        items: list[Any] = [udp4(env.pool, p) for p in ports]
        for j in junk:
            items.append(42 if j == "non-packet" or not ports else items[0])
        rx.mbufs = items
        assert pl.run_once() == len(items)
        assert identity_holds(pl.stats), pl.stats
        sent = tx.sent + [m for s in env.sinks for m in s.sent]
        keys = [(m.pool.name, m.slot) for m in sent]
        assert len(set(keys)) == len(keys), f"a buffer left twice: {sorted(keys)}"
        Mbuf.free_bulk(sent)
        tx.sent.clear()
        for s in env.sinks:
            s.sent.clear()
        assert env.pool.in_use == 0 and env.other.in_use == 0, (env.pool, env.other, pl.stats)
    st_ = pl.stats
    assert st_.received == 2 * (len(ports) + len(junk)) and st_.act >= 0
    assert np.all(np.array([st_.act, st_.emit, st_.drop, st_.abort, st_.replaced]) >= 0)
