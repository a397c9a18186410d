"""Pipelines never leak, duplicate or crash on what a stage, a source or a sink does wrong.

Every case runs several bursts through a pipeline and checks, after each, that the pool is
back to idle (what was sent is freed by the test), that every received packet is counted in
exactly one disposition, and that no buffer left the pipeline twice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from nfkit import DoubleFree, Mbuf, Mempool, set_default_pool, vectorized
from nfkit.batch import Batch, Poll, poll_fn
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.vector import kernel
from doubles import ListRx, ListTx

pytest_plugins = ["pytester"]

BURST = 16


def udp4(pool: Mempool, dport: int = 53) -> Mbuf:
    m = Mbuf.alloc(pool)
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.dst_port = dport
    u.reconcile_all()
    return m


def counted(st: Any) -> int:
    return st.act + st.emit + st.drop + st.abort


def unique(mbufs: list[Mbuf]) -> bool:
    return len({(id(m.pool), m.slot) for m in mbufs}) == len(mbufs)


def run_bursts(pool: Mempool, build: Callable[[Batch], Batch], bursts: int = 4,
               others: tuple[ListTx, ...] = ()) -> tuple[Any, list[Mbuf]]:
    """Run ``bursts`` bursts of BURST fresh packets; after each, free what was sent and
    check the pool is idle.  Returns the pipeline and every buffer sent (freed)."""
    rx, tx = ListRx([]), ListTx()
    pl = build(Poll(rx)).send(tx)
    sent: list[Mbuf] = []
    for _ in range(bursts):
        rx.mbufs = [udp4(pool, 1000 + i) for i in range(BURST)]
        pl.run_once()
        out = tx.sent + [m for o in others for m in o.sent]
        assert unique(out), "a buffer left the pipeline twice"
        Mbuf.free_bulk(out)
        sent += out
        tx.sent.clear()
        for o in others:
            o.sent.clear()
        assert pool.in_use == 0, f"{pool.in_use} buffers leaked"
    assert pl.stats.received == counted(pl.stats) == bursts * BURST
    return pl, sent


@vectorized
def v_map_42(b: Any) -> Any:
    return 42


@vectorized
def v_filter_none(b: Any) -> Any:
    return None


@vectorized
def v_filter_short(b: Any) -> Any:
    return np.ones(b.n - 1, dtype=bool)


@vectorized
def v_filter_int(b: Any) -> Any:
    return np.ones(b.n, dtype=np.int64)


@vectorized
def v_key_short(b: Any) -> Any:
    return np.zeros(b.n - 1)


@vectorized
def v_key_unsortable(b: Any) -> Any:
    return np.array([1 if i % 2 else "a" for i in range(b.n)], dtype=object)


@kernel
def k_raises(data, slots, data_off, data_len, keep):  # noqa: ANN001, ANN201
    if slots.shape[0] > 0:
        raise ValueError("kernel says no")


# (stage chain, what one log line must say)
ABORTING: dict[str, tuple[Callable[[Batch], Batch], tuple[str, ...]]] = {
    "map returns None": (lambda b: b.map(lambda m: None), ("map(", "returned None")),
    "map returns 42": (lambda b: b.map(lambda m: 42), ("map(", "returned int 42")),
    "map after parse returns a str": (
        lambda b: b.map(lambda m: m.parse(Ethernet)).map(lambda e: "x"),
        ("map(", "returned str 'x'")),
    "filter_map returns 42": (
        lambda b: b.filter_map(lambda m: 42), ("filter_map(", "returned int 42")),
    "replace returns None": (lambda b: b.replace(lambda m: None), ("replace(", "returned None")),
    "replace returns 42": (lambda b: b.replace(lambda m: 42), ("replace(", "returned int 42")),
    "filter truth raises": (
        lambda b: b.filter(lambda m: np.array([True, False])), ("filter(", "ambiguous")),
    "group_by unhashable key": (
        lambda b: b.group_by(lambda m: [], {}), ("group_by(", "unhashable")),
    "group_by arm map returns None": (
        lambda b: b.group_by(lambda m: 1, {1: lambda g: g.map(lambda m: None)}),
        ("map(", "returned None")),
    "group_by default arm returns 42": (
        lambda b: b.group_by(lambda m: 2, {1: lambda g: g}, default=lambda g: g.map(lambda m: 42)),
        ("map(", "returned int 42")),
    "group_by arm then emit": (
        lambda b: b.group_by(lambda m: 1, {1: lambda g: g.map(lambda m: None).emit(ListTx())}),
        ("map(", "returned None")),
    "vector map returns 42": (lambda b: b.map(v_map_42), ("map(@vectorized v_map_42)", "int")),
    "vector filter returns None": (
        lambda b: b.filter(v_filter_none), ("filter(@vectorized v_filter_none)", "keep mask")),
    "vector filter mask too short": (
        lambda b: b.filter(v_filter_short), ("filter(@vectorized", "expected a boolean mask")),
    "vector filter int mask": (
        lambda b: b.filter(v_filter_int), ("filter(@vectorized", "expected a boolean mask")),
    "vector group_by key too short": (
        lambda b: b.group_by(v_key_short, {}), ("group_by(@vectorized v_key_short)", "key column")),
    "vector group_by unsortable keys": (
        lambda b: b.group_by(v_key_unsortable, {}),
        ("group_by(@vectorized v_key_unsortable)", "not supported")),
    "kernel raises": (lambda b: b.map(k_raises), ("map(kernel k_raises)", "kernel says no")),
    "kernel as filter raises": (
        lambda b: b.filter(k_raises), ("filter(kernel k_raises)", "kernel says no")),
    "vector stage after a per-packet stage": (
        lambda b: b.map(lambda m: m.parse(Ethernet)).filter(v_filter_none),
        ("filter(@vectorized v_filter_none)", "keep mask")),
}


@pytest.mark.parametrize("case", list(ABORTING))
def test_a_stage_returning_a_non_packet_frees_and_aborts(
        case: str, pool: Mempool, caplog: pytest.LogCaptureFixture) -> None:
    build, says = ABORTING[case]
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        pl, sent = run_bursts(pool, build)
    assert pl.stats.abort == pl.stats.received and sent == []
    lines = [r.getMessage() for r in caplog.records]
    assert any(all(w in line for w in says) for line in lines), lines


def test_for_each_return_value_does_not_matter(pool: Mempool) -> None:
    pl, sent = run_bursts(pool, lambda b: b.for_each(lambda m: 42))
    assert pl.stats.act == len(sent) == pl.stats.received


def test_vector_group_by_nan_keys_lose_nothing(pool: Mempool) -> None:
    """np.unique gives NaN once, and NaN == NaN is False: the packets must still go on."""
    keys = vectorized(lambda b: np.where(np.arange(b.n) % 2, np.nan, 1.0))
    seen: list[int] = []
    pl, sent = run_bursts(pool, lambda b: b.group_by(
        keys, {1.0: lambda g: g}, default=lambda g: g.for_each(lambda m: seen.append(1))))
    assert pl.stats.act == len(sent) == pl.stats.received and len(seen) == pl.stats.received // 2


# -- a packet in another buffer: the original is replaced ---------------------------------

def test_map_returning_another_buffer_replaces_the_original(pool: Mempool) -> None:
    pl, sent = run_bursts(pool, lambda b: b.map(lambda m: Mbuf.from_bytes(m.to_bytes(), pool)))
    assert pl.stats.act == len(sent) == pl.stats.received
    assert pl.stats.replaced == pl.stats.received and pl.stats.drop == 0


def test_filter_map_returning_a_header_in_another_buffer_replaces(pool: Mempool) -> None:
    def copy_v4(m: Mbuf) -> Any:
        return Mbuf.from_bytes(m.to_bytes(), pool).parse(Ethernet).parse(Ipv4)
    pl, sent = run_bursts(pool, lambda b: b.filter_map(copy_v4))
    assert pl.stats.act == pl.stats.replaced == pl.stats.received and pl.stats.drop == 0


def test_headers_of_the_same_buffer_are_not_replacements(pool: Mempool) -> None:
    pl, _ = run_bursts(pool, lambda b: b.map(lambda m: m.parse(Ethernet).parse(Ipv4))
                       .map(lambda i: i.reset().peek(Ethernet)).map(lambda e: e.reset()))
    assert pl.stats.act == pl.stats.received and pl.stats.replaced == 0


def test_replacement_from_another_pool_then_a_vector_stage(pool: Mempool) -> None:
    """A burst mixing two pools: the vector stage runs once per pool, nothing is aborted."""
    other = Mempool(capacity=64, name="other")
    odd = iter(range(10**6))
    pl, sent = run_bursts(pool, lambda b: b.replace(
        lambda m: Mbuf.from_bytes(m.to_bytes(), other) if next(odd) % 2 else m)
        .filter(vectorized(lambda v: v.udp.dst_port >= 1000)))
    assert pl.stats.act == len(sent) == pl.stats.received and pl.stats.abort == 0
    assert {m.pool.name for m in sent} == {"testpool", "other"} and other.in_use == 0


# -- the same buffer twice in one burst ---------------------------------------------------

class First:
    """Returns the first packet it saw (in this burst) for every packet."""

    def __init__(self) -> None:
        self.first: Any = None

    def __call__(self, p: Any) -> Any:
        if self.first is None:
            self.first = p
        return self.first


@pytest.mark.parametrize("how", ["map", "replace", "filter_map"])
def test_the_same_buffer_twice_leaves_once(how: str, pool: Mempool,
                                           caplog: pytest.LogCaptureFixture) -> None:
    firsts: list[First] = []

    def build(b: Batch) -> Batch:
        f = First()
        firsts.append(f)
        return getattr(b, how)(f)
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        rx, tx = ListRx([]), ListTx()
        pl = build(Poll(rx)).send(tx)
        for _ in range(3):
            firsts[0].first = None
            rx.mbufs = [udp4(pool) for _ in range(BURST)]
            pl.run_once()
            assert len(tx.sent) == 1
            Mbuf.free_bulk(tx.sent)
            tx.sent.clear()
            assert pool.in_use == 0
    st = pl.stats
    assert st.act == 3 and st.abort == 3 * (BURST - 1) and st.received == counted(st)
    assert any("twice" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("keeps", [(False, True), (False, False), (True, False)])
def test_two_packets_on_one_buffer_dropped_or_sent(keeps: tuple[bool, bool], pool: Mempool,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Packet 2 continues on packet 1's buffer; then one is dropped and the other sent, or
    both are dropped: the buffer is freed or sent once, never both, never twice."""
    verdicts = iter(keeps)
    rx, tx = ListRx([udp4(pool, 1), udp4(pool, 2)]), ListTx()
    pl = Poll(rx).map(First()).filter(lambda m: next(verdicts)).send(tx)
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        pl.run_once()
    assert not any("freed a packet" in r.getMessage() for r in caplog.records)
    assert len(tx.sent) <= 1
    Mbuf.free_bulk(tx.sent)
    assert pool.in_use == 0 and pl.stats.received == counted(pl.stats) == 2
    assert pl.stats.drop == keeps.count(False) and pl.stats.replaced == 1


def test_an_emitted_buffer_is_not_sent_again(pool: Mempool) -> None:
    other = ListTx()
    pl, sent = run_bursts(pool, lambda b: b.group_by(
        lambda m: m.parse(Ethernet).parse(Ipv4).parse(Udp).dst_port % 2,
        {1: lambda g: g.emit(other)}).map(lambda m: other.sent[0]), others=(other,), bursts=1)
    st = pl.stats
    assert st.emit == st.abort == st.replaced == BURST // 2
    assert st.act == 0 and len(sent) == BURST // 2


def test_a_stage_returning_a_freed_buffer_aborts(pool: Mempool) -> None:
    other = Mempool(capacity=4, name="other")     # nothing reallocates the freed slot
    stale = Mbuf.alloc(other)
    stale.free()
    pl, sent = run_bursts(pool, lambda b: b.replace(lambda m: stale))
    assert pl.stats.abort == pl.stats.received and sent == []


def test_a_stage_freeing_the_packet_itself_does_not_crash(pool: Mempool,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    n = iter(range(10**6))
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        pl, _ = run_bursts(pool, lambda b: b.filter(
            lambda m: m.free() if next(n) % 4 == 0 else False))
    assert pl.stats.drop == pl.stats.received
    assert any("freed" in r.getMessage() for r in caplog.records)


# -- sources and sinks --------------------------------------------------------------------

def test_poll_fn_yielding_non_packets_and_duplicates(pool: Mempool,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    def gen() -> Any:
        m = udp4(pool)
        yield m
        yield 42
        yield None
        yield m          # the same buffer again
        yield Mbuf(pool, 10**6)     # no such buffer
        yield udp4(pool).parse(Ethernet)
    tx = ListTx()
    for chain in (lambda b: b, lambda b: b.map(lambda p: p)):
        pl = chain(poll_fn(gen)).send(tx)
        with caplog.at_level(logging.WARNING, "nfkit.batch"):
            assert pl.run_once() == 6
        assert len(tx.sent) == 2 and unique(tx.sent)
        Mbuf.free_bulk(tx.sent)
        tx.sent.clear()
        assert pool.in_use == 0
        assert pl.stats.act == 2 and pl.stats.abort == 4
        assert any("gen) produced int 42, not a packet" in r.getMessage() for r in caplog.records)


def test_poll_fn_generator_raising_keeps_what_it_made(pool: Mempool,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def gen() -> Any:
        yield udp4(pool)
        yield udp4(pool)
        raise RuntimeError("generator broke")
    tx = ListTx()
    pl = poll_fn(gen).send(tx)
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        assert pl.run_once() == 2
    assert len(tx.sent) == 2 and pl.stats.act == 2
    assert any("generator broke" in r.getMessage() for r in caplog.records)
    Mbuf.free_bulk(tx.sent)


class RaisingTx:
    """Frees the first ``frees`` packets it is given, then raises."""

    def __init__(self, frees: int = 0) -> None:
        self.frees = frees
        self.calls = 0

    def transmit(self, mbufs: list[Mbuf]) -> None:
        self.calls += 1
        Mbuf.free_bulk(mbufs[:self.frees])
        raise OSError("link is down")


class RaisingSlotTx(RaisingTx):
    def transmit_slots(self, pool: Mempool, slots: np.ndarray) -> None:
        self.calls += 1
        pool.free_slots(slots[:self.frees])
        raise OSError("link is down")


@pytest.mark.parametrize("frees", [0, 3])
@pytest.mark.parametrize("where", ["send", "emit", "send slots"])
def test_a_raising_transmit_gives_the_packets_back(where: str, frees: int, pool: Mempool,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A sink that raises keeps nothing: the pipeline frees what is still allocated and
    counts the packets as aborted; the run goes on."""
    bad = RaisingSlotTx(frees) if where == "send slots" else RaisingTx(frees)
    rx = ListRx([])
    if where == "emit":
        pl = Poll(rx).map(lambda m: m).emit(bad).send(ListTx())
    else:
        pl = Poll(rx).filter(vectorized(lambda b: b.udp.dst_port > 0)).send(bad)
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        for _ in range(3):
            rx.mbufs = [udp4(pool) for _ in range(BURST)]
            pl.run_once()
            assert pool.in_use == 0
    assert bad.calls == 3 and pl.stats.abort == pl.stats.received == 3 * BURST
    assert any("link is down" in r.getMessage() for r in caplog.records)


def test_free_bulk_of_a_freed_buffer_still_raises(pool: Mempool) -> None:
    """The guard is the pipeline's: Mbuf.free_bulk itself stays strict."""
    m = Mbuf.alloc(pool)
    m.free()
    with pytest.raises(DoubleFree):
        Mbuf.free_bulk([m])


# -- the leak check itself ----------------------------------------------------------------


def test_the_fixture_level_leak_check_catches_a_leak(pytester: pytest.Pytester) -> None:
    """tests/conftest.py fails a batch-layer test that leaves a buffer allocated, in the
    ``pool`` fixture's pool or the default pool, at teardown; other modules are not checked."""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    leaky = """
        from nfkit import Mbuf
        def test_pool_fixture(pool):
            Mbuf.alloc(pool)
        def test_default_pool():
            Mbuf.alloc()
        def test_clean(pool):
            Mbuf.alloc(pool).free()
    """
    pytester.makepyfile(test_batch_leaky=leaky, test_elsewhere=leaky)
    prev = set_default_pool(None)        # in process: the inner tests' default pool is theirs
    try:
        res = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    finally:
        set_default_pool(prev)
    res.assert_outcomes(passed=6, errors=2)
    res.stdout.fnmatch_lines(["*ERROR at teardown of test_pool_fixture*",
                              "*1 buffers of the test's pool still in use*"])
    res.stdout.fnmatch_lines(["*ERROR at teardown of test_default_pool*"])
    assert "test_elsewhere" not in "".join(line for line in res.stdout.lines if "ERROR" in line)


def test_strategies_free_the_packets_of_discarded_examples() -> None:
    """Hypothesis stops drawing some examples half way (out of data); the Mbufs built so
    far never reach the test, so the strategy frees them when the example ends."""
    from hypothesis import given, settings, strategies as st
    from nfkit.testing import v4_udp
    p = Mempool(capacity=1023, name="strategies")
    ran = []

    @given(st.lists(v4_udp(pool=p), min_size=1, max_size=30))
    @settings(derandomize=True, database=None)
    def owns_what_it_gets(ms: list[Mbuf]) -> None:
        ran.append(len(ms))
        Mbuf.free_bulk(ms)
    owns_what_it_gets()
    assert len(ran) >= settings.default.max_examples and p.in_use == 0
