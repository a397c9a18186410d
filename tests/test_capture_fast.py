"""The capture-file fast path (issue #13): bursts move between pcap files and pipelines as
slot arrays -- no per-packet Python object -- with the same bytes, timestamps and counters
as the per-packet path."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nfkit
from nfkit import Mbuf
from nfkit.config import RuntimeConfig
from nfkit.pcap import PcapReader, PcapWriter
from nfkit.runtime import Runtime
from nfkit.testing import skips


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


def classic_pcap(rng: np.random.Generator, order: str, ns: bool, n: int,
                 damage: str | None) -> bytes:
    """A classic pcap in byte order ``order`` with ``n`` records of random sizes (some
    longer than a 2048-byte buffer), then ``damage``: a cut record, a corrupt length."""
    import struct
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)]
    for _ in range(n):
        c = int(rng.choice([0, 14, 60, 64, 1514, 3000, int(rng.integers(0, 2100))]))
        sec, frac = int(rng.integers(0, 1 << 32)), int(rng.integers(0, 10**9 if ns else 10**6))
        out.append(struct.pack(order + "IIII", sec, frac, c, c + int(rng.integers(0, 3))))
        out.append(rng.integers(0, 256, c, dtype=np.uint8).tobytes())
    if damage == "cut":
        out.append(struct.pack(order + "IIII", 1, 2, 100, 100) + bytes(40))
    elif damage == "corrupt":
        out.append(struct.pack(order + "IIII", 1, 2, 1 << 30, 1 << 30) + bytes(40))
    return b"".join(out)


def read_all(path: Path, compiled: bool, burst: int) -> tuple[list, tuple]:
    """Every burst read_into gives (bytes, lengths, timestamps) and the reader's end state."""
    pool = nfkit.Mempool(capacity=256, name="cmp")
    got = []
    with PcapReader(path) as r:
        r.compiled = compiled
        while not r.at_end:
            s = r.read_into(pool, burst)
            got.append([(Mbuf(pool, x).to_bytes(), int(pool.timestamp[x])) for x in s.tolist()])
            pool.free_slots(s)
        end = (r.packets_read, r.skipped_oversize, r.error and (type(r.error), r.error.offset,
               str(r.error)), r.fatal is not None)
    return got, end


@pytest.mark.parametrize("seed", range(12))
def test_compiled_reader_equals_the_reference(tmp_path: Path, seed: int) -> None:
    """The compiled record walk and copy (numba) give what the numpy/Python reference
    gives: same packets, lengths, timestamps, oversize counts and damage reports, both byte
    orders, us and ns, bursts of several sizes."""
    skips.need_numba()
    rng = np.random.default_rng(seed)
    path = tmp_path / "x.pcap"
    path.write_bytes(classic_pcap(rng, "<>"[seed % 2], bool(seed & 2), int(rng.integers(0, 300)),
                                  (None, "cut", "corrupt")[seed % 3]))
    for burst in (1, 7, 32, 256):
        assert read_all(path, True, burst) == read_all(path, False, burst)


@pytest.mark.parametrize("snaplen, ns", [(65535, False), (65535, True), (100, False)])
def test_compiled_writer_equals_the_reference(tmp_path: Path, snaplen: int, ns: bool) -> None:
    """The compiled record building writes the bytes the numpy path writes: timestamps
    from the slots (past 2106: clamped and counted), snaplen cuts, mixed sizes."""
    skips.need_numba()
    pool = nfkit.Mempool(capacity=64, name="cmpw")
    rng = np.random.default_rng(5)
    slots = pool.alloc_slots(40)
    for i, s in enumerate(slots.tolist()):
        n = int(rng.choice([0, 60, 99, 100, 101, 1514, 2048]))
        pool.data_len[s] = n
        pool.data[s, pool.headroom:pool.headroom + n] = rng.integers(0, 256, n, dtype=np.uint8)
        pool.timestamp[s] = int(rng.integers(0, 1 << 62))
    outs, clamped = [], []
    for compiled in (True, False):
        p = tmp_path / f"{compiled}.pcap"
        with PcapWriter(p, snaplen=snaplen, nanosecond=ns) as w:
            w.compiled = compiled
            w.write_mbufs(slots, pool)
        outs.append(p.read_bytes())
        clamped.append(w.timestamps_clamped)
    pool.free_slots(slots)
    assert outs[0] == outs[1]
    assert clamped[0] == clamped[1] > 0


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("ns", [False, True])
def test_pcapng_output_holds_the_packets_and_times(tmp_path: Path, compiled: bool,
                                                   ns: bool) -> None:
    """PcapWriter(pcapng=True) writes a section header, one interface description (link
    type, snap length, if_tsresol) and an Enhanced Packet Block per packet: read back,
    the packets, lengths and times are the input's; the compiled and reference builders
    write the same bytes; tcpdump reads it."""
    if compiled:
        skips.need_numba()
    data = frames(50, (60, 61, 62, 63, 1514, 0))
    times = [1_700_000_000_123_456_789 + i * 1001 for i in range(50)]
    pool = nfkit.Mempool(capacity=64, name="ng")
    slots = pool.alloc_slots(50)
    for s, f, t in zip(slots.tolist(), data, times):
        pool.data_len[s] = len(f)
        pool.data[s, pool.headroom:pool.headroom + len(f)] = np.frombuffer(f, np.uint8)
        pool.timestamp[s] = t
    out = tmp_path / "out.pcapng"
    with PcapWriter(out, pcapng=True, nanosecond=ns) as w:
        w.compiled = compiled
        w.write_mbufs(slots[:20], pool)
        w.write_mbufs(slots[20:], pool)
        w.write(b"\x01\x02\x03", 5_000_000_123)
    pool.free_slots(slots)
    with PcapReader(out) as r:
        got = list(r.records())
        assert (r.format, r.linktype, r.error) == ("pcapng", 1, None)
    div = 1 if ns else 1000
    assert got == [(t // div * div, f, 1) for t, f in zip(times, data)] + \
        [(5_000_000_123 // div * div, b"\x01\x02\x03", 1)]
    tcpdump = skips.need_tool("tcpdump")
    p = subprocess.run([tcpdump, "-nn", "-r", str(out)], capture_output=True, text=True)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 51, p.stderr


def test_pcapng_builders_write_the_same_bytes(tmp_path: Path) -> None:
    """The compiled EPB builder writes byte for byte what the reference writes."""
    skips.need_numba()
    pool = nfkit.Mempool(capacity=64, name="ngb")
    rng = np.random.default_rng(3)
    slots = pool.alloc_slots(40)
    for s in slots.tolist():
        n = int(rng.choice([0, 1, 2, 3, 60, 99, 100, 101, 1514, 2048]))
        pool.data_len[s] = n
        pool.data[s, pool.headroom:pool.headroom + n] = rng.integers(0, 256, n, dtype=np.uint8)
        pool.timestamp[s] = int(rng.integers(0, 1 << 63))
    outs = []
    for compiled in (True, False):
        p = tmp_path / f"{compiled}.pcapng"
        with PcapWriter(p, pcapng=True, snaplen=100) as w:
            w.compiled = compiled
            w.write_mbufs(slots, pool)
        outs.append(p.read_bytes())
    pool.free_slots(slots)
    assert outs[0] == outs[1]


def test_tx_pcapng_and_pcapng_suffix_write_pcapng(tmp_path: Path) -> None:
    """net_pcap writes pcapng for tx_pcapng=FILE and for a tx_pcap name ending .pcapng;
    the packets are the input's."""
    data = frames(40, (60, 1514))
    write(tmp_path / "in.pcap", data)
    for i, arg in enumerate(("tx_pcapng=a.out", "tx_pcap=b.pcapng")):
        rt = Runtime.build(cfg(f"""
            app_name = "ng{i}"
            master_core = 0
            stop_when_drained = true
            [[ports]]
            name = "eth1"
            device = "net_pcap0"
            args = "rx_pcap=in.pcap,{arg}"
            cores = [0]
            """, tmp_path))
        rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
        assert rt.execute().reason == "drained"
        with PcapReader(tmp_path / arg.split("=")[1]) as r:
            assert r.format == "pcapng"
            assert [f for _, f in r] == data


def test_compiled_copies_check_their_bounds() -> None:
    """The compiled passes copy with memcpy, so they check every bound first and refuse
    (-1, nothing written) what would leave a row or the source -- the callers then take
    the reference path -- instead of writing out of bounds."""
    skips.need_numba()
    from nfkit.pcap import _jit
    pool = nfkit.Mempool(capacity=4, buf_size=64, headroom=0, name="bounds")
    slots = pool.alloc_slots(2)
    src = np.arange(200, dtype=np.uint8)
    ts = np.zeros(2, dtype=np.uint64)
    args = (pool.data, pool.data_len, pool.timestamp, slots, 0, src)
    assert _jit.fill_slots(*args, np.array([0, 190]), np.array([10, 20]), ts) == -1  # source
    assert _jit.fill_slots(*args, np.array([0, 10]), np.array([10, 65]), ts) == -1   # row
    assert _jit.fill_slots(*args, np.array([0, 10]), np.array([10, 64]), ts) == 0
    assert bytes(pool.data[slots[1], :64]) == bytes(range(10, 74))
    out = np.zeros(100, dtype=np.uint8)
    size, _ = _jit.build_pcap(pool.data, pool.data_off, pool.data_len, pool.timestamp, slots,
                              65535, 1000, np.uint64(0), np.uint64(1 << 62), out)
    assert size == -1                                  # 2 x 16 + 74 bytes > 100
    pool.free_slots(slots)


def _eth_frames(n: int) -> list[bytes]:
    """Ethernet/IPv4 and Ethernet/IPv6 frames (zero MACs, as a conversion makes them)."""
    out = []
    for i in range(n):
        if i % 2:
            ip = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(32) + bytes(8)
            out.append(bytes(12) + b"\x86\xdd" + ip)
        else:
            ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]) + bytes(8) + bytes(8)
            out.append(bytes(12) + b"\x08\x00" + ip[:2] + i.to_bytes(2, "big") + ip[4:])
    return out


def _as_link(linktype: int, frame: bytes) -> bytes:
    """``frame``'s IP packet behind the link header of ``linktype``."""
    import struct
    ip, proto = frame[14:], frame[12:14]
    v6 = proto == b"\x86\xdd"
    if linktype in (101, 228, 229):
        return ip
    if linktype == 113:
        return struct.pack(">HHH8s", 0, 1, 6, b"\x02\x00\x00\x00\x00\x01") + proto + ip
    if linktype == 276:
        return proto + bytes(2) + struct.pack(">IHBB8s", 3, 1, 0, 6, bytes(8)) + ip
    if linktype == 0:
        return struct.pack("<I", 30 if v6 else 2) + ip
    if linktype == 108:
        return struct.pack(">I", 30 if v6 else 2) + ip
    raise AssertionError(linktype)


def _run_port(tmp_path: Path, args: str) -> "nfkit.runtime.RunResult":
    rt = Runtime.build(cfg(f"""
        app_name = "conv"
        master_core = 0
        stop_when_drained = true
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "{args}"
        cores = [0]
        """, tmp_path))
    rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
    res = rt.execute()
    res.counters = rt.ports["eth1"].counters()          # type: ignore[attr-defined]
    return res


@pytest.mark.parametrize("linktype", [101, 228, 229, 113, 276, 0, 108])
def test_linktype_ethernet_converts_other_link_layers(tmp_path: Path, linktype: int) -> None:
    """``linktype=ethernet``: raw IP, SLL, SLL2, NULL and LOOP captures reach the pipeline
    as Ethernet frames (zero addresses, the EtherType the link header names); tx_pcap
    writes them as Ethernet (link type 1).  Without it the port refuses the file, naming
    its link type and the way to convert."""
    want = _eth_frames(10)
    if linktype == 228:
        want = want[0::2]
    elif linktype == 229:
        want = want[1::2]
    with PcapWriter(tmp_path / "in.pcap", linktype=linktype) as w:
        for i, f in enumerate(want):
            w.write(_as_link(linktype, f), 1_000_000_000 * (i + 1))
    with pytest.raises(nfkit.NfkitError, match=rf"link type {linktype} .*linktype=ethernet"):
        _run_port(tmp_path, "rx_pcap=in.pcap,tx_pcap=out.pcap")
    res = _run_port(tmp_path, "rx_pcap=in.pcap,tx_pcap=out.pcap,linktype=ethernet")
    assert res.reason == "drained"
    with PcapReader(tmp_path / "out.pcap") as r:
        assert r.linktype == 1
        got = list(r)
    assert [f for _, f in got] == want
    assert [t for t, _ in got] == [1_000_000_000 * (i + 1) for i in range(len(want))]


def test_linktype_ethernet_drops_what_it_cannot_convert(tmp_path: Path) -> None:
    """An SLL frame whose protocol field is no EtherType is dropped and counted (the
    others go through); a link type nfkit does not decode is refused by name."""
    frames_ = _eth_frames(4)
    bad = bytearray(_as_link(113, frames_[1]))
    bad[14:16] = b"\x00\x04"                       # 802.2, not an EtherType
    with PcapWriter(tmp_path / "in.pcap", linktype=113) as w:
        for i, f in enumerate(frames_):
            w.write(bytes(bad) if i == 1 else _as_link(113, f), 1_000_000_000)
    res = _run_port(tmp_path, "rx_pcap=in.pcap,tx_pcap=out.pcap,linktype=ethernet")
    c = res.counters                                      # type: ignore[attr-defined]
    assert (c.rx_packets, c.tx_packets, c.rx_dropped) == (3, 3, 1)
    with PcapReader(tmp_path / "out.pcap") as r:
        assert [f for _, f in r] == [frames_[0], frames_[2], frames_[3]]
    with PcapWriter(tmp_path / "wifi.pcap", linktype=105) as w:
        w.write(b"\x00" * 30, 1)
    with pytest.raises(nfkit.NfkitError, match=r"link type 105 \(IEEE802_11\)"):
        _run_port(tmp_path, "rx_pcap=wifi.pcap,tx_pcap=out.pcap,linktype=ethernet")
