"""The capture-file fast path (issue #13): bursts move between pcap files and pipelines as
slot arrays -- no per-packet Python object -- with the same bytes, timestamps and counters
as the per-packet path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import nfkit
from nfkit import Mbuf
from nfkit.config import RuntimeConfig
from nfkit.pcap import PcapReader, PcapWriter
from nfkit.runtime import Runtime


def cfg(text: str, base: Path) -> RuntimeConfig:
    c = RuntimeConfig.from_toml_text(textwrap.dedent(text))
    c._base_dir = base
    return c


def frames(n: int, sizes: tuple[int, ...] = (60,)) -> list[bytes]:
    """``n`` distinct frames (a counter in their first bytes), sizes cycling."""
    out = []
    for i in range(n):
        size = sizes[i % len(sizes)]
        out.append((i.to_bytes(4, "big") * (size // 4 + 1))[:size])
    return out


def write(path: Path, data: list[bytes], t0: int = 1_700_000_000_123_456_000) -> None:
    with PcapWriter(path) as w:
        for i, f in enumerate(data):
            w.write(f, t0 + i * 1000)


def test_pcap_port_moves_slots_without_mbuf_objects(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """receive_slots / transmit_slots of a net_pcap queue make no Mbuf (before: one per
    packet each way, the largest cost of a kernel pipeline over files); the output holds
    the input's bytes and timestamps and the counters add up."""
    data = frames(300, (60, 61, 1514, 64))
    write(tmp_path / "in.pcap", data)
    rt = Runtime.build(cfg("""
        app_name = "slots"
        master_core = 0
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=in.pcap,tx_pcap=out.pcap"
        cores = [0]
        """, tmp_path))
    q = rt.ports["eth1"].queues[0]
    made = []
    real_init = Mbuf.__init__

    def counting_init(self: Mbuf, pool: nfkit.Mempool, slot: int) -> None:
        made.append(slot)
        real_init(self, pool, slot)

    monkeypatch.setattr(Mbuf, "__init__", counting_init)
    while not q.exhausted:
        b = q.receive_slots(64)
        q.transmit_slots(b.pool, np.asarray(b.slots))
    monkeypatch.setattr(Mbuf, "__init__", real_init)
    q.close()
    assert made == []
    c = q.counters
    assert (c.rx_packets, c.tx_packets) == (300, 300)
    assert c.rx_octets == c.tx_octets == sum(map(len, data))
    assert q.pool.in_use == 0
    with PcapReader(tmp_path / "in.pcap") as a, PcapReader(tmp_path / "out.pcap") as b:
        assert list(a) == list(b)
