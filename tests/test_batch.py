"""Pipelines: capsule's combinator semantics, aborts, bulk frees, counters."""

from __future__ import annotations

import logging

import pytest

from nfkit import Mbuf, Mempool
from nfkit.batch import Disposition, Poll, RateLimitedLog, poll_fn, splice
from doubles import ListRx, ListTx
from nfkit.packets import EchoReply, EchoRequest, Ethernet, EtherType, Ipv4, Ipv6, Udp


def udp4(pool: Mempool, dport: int = 53) -> Mbuf:
    m = Mbuf.alloc(pool)
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.dst_port = dport
    u.reconcile_all()
    return m


def udp6(pool: Mempool) -> Mbuf:
    m = Mbuf.alloc(pool)
    m.push(Ethernet).push(Ipv6).push(Udp).reconcile_all()
    return m


def test_map_filter_send_and_counters(pool: Mempool) -> None:
    pkts = [udp4(pool, d) for d in (53, 80, 53, 443)]
    rx, tx = ListRx(pkts), ListTx()
    pl = (Poll(rx).map(lambda m: m.parse(Ethernet).parse(Ipv4).parse(Udp))
          .filter(lambda u: u.dst_port == 53).send(tx))
    assert pl.run_once() == 4
    assert [m.slot for m in tx.sent] == [pkts[0].slot, pkts[2].slot]
    assert all(isinstance(m, Mbuf) for m in tx.sent)          # reset to the Mbuf on send
    assert pl.stats.act == 2 and pl.stats.drop == 2 and pl.stats.abort == 0
    assert pool.in_use == 2                                   # the dropped ones were freed
    assert pl.run_once() == 0 and pl.stats.idle_runs == 1
    Mbuf.free_bulk(tx.sent)


def test_exception_aborts_only_that_packet(pool: Mempool, caplog: pytest.LogCaptureFixture) -> None:
    pkts = [udp4(pool), udp6(pool), udp4(pool), udp6(pool)]
    tx = ListTx()
    pl = Poll(ListRx(pkts)).map(lambda m: m.parse(Ethernet).parse(Ipv4)).send(tx)
    with caplog.at_level(logging.WARNING, "nfkit.batch"):
        pl.run_once()
    assert len(tx.sent) == 2 and pl.stats.abort == 2 and pool.in_use == 2
    # rate limited: one line for two aborts of the same kind
    lines = [r for r in caplog.records if "aborted" in r.getMessage()]
    assert len(lines) == 1 and "ProtocolMismatch" in lines[0].getMessage()
    Mbuf.free_bulk(tx.sent)


def test_filter_map_keep_or_drop(pool: Mempool) -> None:
    pkts = [udp4(pool), udp6(pool)]
    tx = ListTx()

    def v4_only(m: Mbuf):
        eth = m.parse(Ethernet)
        return eth.parse(Ipv4) if eth.ether_type == EtherType.IPV4 else None

    pl = Poll(ListRx(pkts)).filter_map(v4_only).send(tx)
    pl.run_once()
    assert [m.slot for m in tx.sent] == [pkts[0].slot] and pl.stats.drop == 1
    Mbuf.free_bulk(tx.sent)


def test_for_each_and_inspect_see_everything(pool: Mempool) -> None:
    pkts = [udp4(pool, 1), udp4(pool, 2), udp6(pool)]
    seen: list[tuple[Disposition, object]] = []
    tx = ListTx()
    calls = []
    pl = (Poll(ListRx(pkts))
          .map(lambda m: m.parse(Ethernet).parse(Ipv4).parse(Udp))      # v6 aborts
          .filter(lambda u: u.dst_port == 1)                             # port 2 dropped
          .for_each(lambda u: calls.append(u.dst_port))
          .inspect(lambda d, p: seen.append((d, p)))
          .send(tx))
    pl.run_once()
    assert calls == [1]
    assert sorted(d for d, _ in seen) == [Disposition.ACT, Disposition.DROP, Disposition.ABORT]
    assert isinstance(dict((d, p) for d, p in seen)[Disposition.ABORT], Exception)
    Mbuf.free_bulk(tx.sent)
    assert pool.in_use == 0


def test_replace_builds_new_and_frees_original(pool: Mempool) -> None:
    req = Mbuf.alloc(pool)
    echo = req.push(Ethernet).push(Ipv4).push(EchoRequest)
    echo.identifier = 9
    echo.reconcile_all()
    tx = ListTx()

    def reply(m: Mbuf) -> Mbuf:
        e = m.peek(Ethernet).peek(Ipv4).peek(EchoRequest)
        out = Mbuf.alloc(pool)
        r = out.push(Ethernet).push(Ipv4).push(EchoReply)
        r.identifier = e.identifier
        r.reconcile_all()
        return out

    pl = Poll(ListRx([req])).replace(reply).send(tx)
    pl.run_once()
    assert len(tx.sent) == 1 and tx.sent[0].slot != req.slot
    assert tx.sent[0].parse(Ethernet).parse(Ipv4).parse(EchoReply).identifier == 9
    # the original is freed, counted as replaced, not dropped: received == act (issue 11)
    assert pl.stats.act == 1 and pl.stats.replaced == 1 and pool.in_use == 1
    assert pl.stats.drop == 0 and pl.stats.received == 1
    Mbuf.free_bulk(tx.sent)


def test_replace_in_place_does_not_free_the_packet(pool: Mempool) -> None:
    tx = ListTx()
    pl = Poll(ListRx([udp4(pool)])).replace(lambda m: m).send(tx)
    pl.run_once()
    assert len(tx.sent) == 1 and pool.in_use == 1 and pl.stats.replaced == 0
    Mbuf.free_bulk(tx.sent)


def test_emit_sends_now_through_another_queue(pool: Mempool) -> None:
    other, tx = ListTx(), ListTx()
    pl = (Poll(ListRx([udp4(pool, 7), udp4(pool, 8)]))
          .group_by(lambda m: m.parse(Ethernet).parse(Ipv4).parse(Udp).dst_port,
                    {7: lambda g: g.emit(other)})
          .send(tx))
    pl.run_once()
    assert len(other.sent) == 1 and len(tx.sent) == 1 and other.calls == 1
    assert pl.stats.emit == 1 and pl.stats.act == 1
    Mbuf.free_bulk(other.sent + tx.sent)


def test_group_by_arms_default_and_passthrough(pool: Mempool) -> None:
    pkts = [udp4(pool), udp6(pool), udp4(pool)]
    tx = ListTx()
    kinds = []
    pl = (Poll(ListRx(pkts))
          .map(lambda m: m.parse(Ethernet))
          .group_by(lambda e: e.ether_type, {
              EtherType.IPV4: lambda g: g.map(lambda e: e.parse(Ipv4)).for_each(lambda i: kinds.append(4)),
              EtherType.IPV6: lambda g: g.filter(lambda e: False),
          })
          .send(tx))
    pl.run_once()
    assert kinds == [4, 4] and len(tx.sent) == 2 and pl.stats.drop == 1
    Mbuf.free_bulk(tx.sent)
    # no arm for a key and no default: the packet passes through unchanged (capsule's code)
    pl2 = Poll(ListRx([udp6(pool)])).group_by(lambda m: "x", {"y": lambda g: g.filter(lambda _: False)}).send(tx)
    tx.sent.clear()
    pl2.run_once()
    assert len(tx.sent) == 1
    # a default arm catches the rest
    pl3 = (Poll(ListRx([udp6(pool)])).group_by(lambda m: "x", {"y": lambda g: g},
                                               default=lambda g: g.filter(lambda _: False)).send(tx))
    pl3.run_once()
    assert pl3.stats.drop == 1
    Mbuf.free_bulk(tx.sent)
    assert pool.in_use == 0


def test_group_by_arm_with_replace_fans_out(pool: Mempool) -> None:
    tx = ListTx()
    pl = (Poll(ListRx([udp4(pool), udp4(pool)]))
          .group_by(lambda m: True, {True: lambda g: g.replace(lambda m: Mbuf.from_bytes(m.to_bytes(), pool))})
          .send(tx))
    pl.run_once()
    assert len(tx.sent) == 2 and pl.stats.replaced == 2 and pool.in_use == 2
    assert pl.stats.drop == 0 and pl.stats.act == pl.stats.received == 2
    Mbuf.free_bulk(tx.sent)


def test_poll_fn_generator_and_splice(pool: Mempool) -> None:
    tx = ListTx()
    pl = poll_fn(lambda: Mbuf.alloc_bulk(4, pool)).map(lambda m: m.push(Ethernet)).send(tx)
    pl.run_once()
    assert len(tx.sent) == 4 and all(m.data_len == 14 for m in tx.sent)
    rx = ListRx(tx.sent)
    out = ListTx()
    splice(rx, out).run_once()
    assert len(out.sent) == 4
    Mbuf.free_bulk(out.sent)


def test_batch_size_is_passed_to_the_source(pool: Mempool) -> None:
    rx = ListRx([udp4(pool) for _ in range(10)])
    tx = ListTx()
    pl = Poll(rx, batch_size=4).send(tx)
    assert pl.run_once() == 4 and rx.asked == [4]
    while pl.run_once():
        pass
    assert len(tx.sent) == 10
    Mbuf.free_bulk(tx.sent)


def test_non_packet_results_abort_not_crash(pool: Mempool) -> None:
    tx = ListTx()
    pl = Poll(ListRx([udp4(pool)])).map(lambda m: 42).send(tx)
    pl.run_once()
    assert pl.stats.abort == 1 and tx.sent == [] and pool.in_use == 0


def test_send_inside_arm_and_bad_arm_are_errors(pool: Mempool) -> None:
    tx = ListTx()
    with pytest.raises(TypeError, match="send\\(\\) inside a group_by arm"):
        Poll(ListRx([])).group_by(lambda m: 1, {1: lambda g: g.send(tx)})
    with pytest.raises(TypeError, match="must return the batch"):
        Poll(ListRx([])).group_by(lambda m: 1, {1: lambda g: None})


def test_rate_limited_log_summarises(caplog: pytest.LogCaptureFixture) -> None:
    rl = RateLimitedLog(logging.getLogger("t"), interval=0.0)
    with caplog.at_level(logging.WARNING, "t"):
        rl("k", "boom %s", 1)
        rl("k", "boom %s", 2)
    assert len(caplog.records) == 2
    rl2 = RateLimitedLog(logging.getLogger("t"), interval=3600)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "t"):
        for i in range(100):
            rl2(("a", i % 2), "kind %s", i % 2)
    assert len(caplog.records) == 2
