"""Zero is a value, not "unset": asking a queue for 0 packets gives none (``receive(0)`` and
``receive_slots(0)`` used to be read as "the batch size").  The AF_PACKET fanout group id 0
is in tests/test_af_packet.py, DPDK's receive in tests/test_dpdk.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import nfkit
from nfkit.config import RuntimeConfig
from nfkit.ports import tap
from nfkit.ports.base import PortCounters
from nfkit.runtime import Runtime


def _runtime(device: str) -> Runtime:
    return Runtime.build(RuntimeConfig.from_toml_text(
        f'app_name = "t"\nmaster_core = 0\nlog_level = "error"\nbatch_size = 16\n'
        f'[mempool]\ncapacity = 255\n[[ports]]\nname = "p"\ndevice = "{device}"\ncores = [0]\n'))


def test_receive_of_zero_packets_receives_none() -> None:
    rt = _runtime("net_null0")                  # always has packets to give
    try:
        q = rt.port("p").queues[0]
        assert q.receive(0) == []
        assert len(q.receive_slots(0)) == 0
        assert q.counters.rx_packets == 0 and rt.pool.in_use == 0
        ms = q.receive()                        # None: the batch size
        assert len(ms) == 16
        nfkit.Mbuf.free_bulk(ms)
    finally:
        rt.close()


def test_ring_port_receive_of_zero_leaves_the_packets_queued() -> None:
    rt = _runtime("net_ring0")
    try:
        q = rt.port("p").queues[0]
        q.inject([nfkit.Mbuf.from_bytes(bytes(60), rt.pool) for _ in range(5)])
        assert q.receive(0) == [] and len(q.receive_slots(0)) == 0
        assert len(q.rx_ring) == 5 and q.counters.rx_packets == 0
        nfkit.Mbuf.free_bulk(q.receive())
    finally:
        rt.close()
    assert rt.pool.in_use == 0


def test_kni_receive_of_zero_reads_nothing(monkeypatch) -> None:  # noqa: ANN001
    asked: list[int] = []

    def read_burst(fd, pool, max_packets, counters, who):  # noqa: ANN001, ANN202
        asked.append(max_packets)
        return np.empty(0, dtype=np.int64)
    monkeypatch.setattr(tap, "read_burst", read_burst)
    kni = SimpleNamespace(fd=7, counters=PortCounters(), who="kni t",
                          port=SimpleNamespace(pool=nfkit.Mempool(capacity=63), batch_size=32))
    rx = tap.KniRx(kni)                         # type: ignore[arg-type]
    rx.receive_slots(0)
    rx.receive(0)
    rx.receive_slots()
    assert asked == [0, 0, 32]
