"""The AF_PACKET port driver (nfkit.ports.af_packet): rings over live veth pairs.

Tests with packets use the ``netlab`` fixture (root, network namespaces).  Frames the tests
send carry a marker and a sequence number, so kernel chatter on the links (IPv6 router
solicitations and the like) is told apart.  Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import nfkit
from nfkit.buffers import Mbuf, Mempool
from nfkit.config import PortConfig, RuntimeConfig
from nfkit.ports import af_packet as afp
from nfkit.ports.base import Port, PortError, open_port
from nfkit.runtime import Runtime
from nfkit.testing.netns import NetLab, Veth
from nfkit.testing.skips import need_numba, need_root, need_tool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MARK = 0x88B5                  # IEEE local experimental ethertype: the tests' frames
SRC, DST = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
JIT_MODES = [pytest.param(True, id="numba"), pytest.param(False, id="python")]


# -- helpers --------------------------------------------------------------------------

def marked(seq: int, size: int = 64, src: bytes = SRC, dst: bytes = DST) -> bytes:
    """An Ethernet frame of the tests' ethertype with ``seq`` in its payload."""
    head = dst + src + struct.pack("!HI", MARK, seq)
    return head + bytes((seq + i) & 0xFF for i in range(size - len(head)))


def seq_of(frame: bytes) -> int | None:
    if len(frame) >= 18 and struct.unpack_from("!H", frame, 12)[0] == MARK:
        return struct.unpack_from("!I", frame, 14)[0]
    return None


def udp_frame(seq: int, sport: int) -> bytes:
    """Ethernet/IPv4/UDP with ``seq`` in the payload; ``sport`` varies the flow (fanout hash)."""
    payload = struct.pack("!I", seq) + bytes(14)
    udp = struct.pack("!HHHH", sport, 9, 8 + len(payload), 0) + payload
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17,
                               0, bytes([198, 18, 0, 1]), bytes([198, 19, 0, 1])))
    s = sum(struct.unpack("!10H", ip))
    s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", ip, 10, ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF)
    return DST + SRC + b"\x08\x00" + bytes(ip) + udp


def udp_seq(frame: bytes) -> int | None:
    if len(frame) >= 46 and frame[12:14] == b"\x08\x00" and frame[23] == 17:
        return struct.unpack_from("!I", frame, 42)[0]
    return None


def port_on(iface: str, pool: Mempool, *, device: str | None = None, args: str | None = None,
            cores: list[int] | None = None, jit: bool = True, **fields) -> Port:
    cfg = PortConfig(name=f"p-{iface}", device=device or f"af_packet:{iface}", args=args,
                     cores=cores or [0], **fields)
    port = open_port(cfg, pool, 32)
    if not jit:
        for q in port.queues.values():
            q.use_jit = False
            q._set_kernels()
    return port


def raw_socket(iface: str) -> socket.socket:
    """A plain packet socket on ``iface`` (in this namespace): the independent oracle."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)     # SO_RCVBUFFORCE: room for bursts
    s.bind((iface, 0x0003))
    s.settimeout(0.2)
    return s


def raw_recv(s: socket.socket, want: Callable[[bytes], int | None], n: int,
             timeout: float = 5.0) -> dict[int, bytes]:
    """Frames ``want`` recognises (by sequence number), until ``n`` of them or the timeout;
    frames the socket itself sent are skipped."""
    got: dict[int, bytes] = {}
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            data, addr = s.recvfrom(65536)
        except TimeoutError:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        k = want(data)
        if k is not None:
            assert k not in got, f"frame {k} arrived twice"
            got[k] = data
    return got


def receive_all(queues, want: Callable[[bytes], int | None], n: int, timeout: float = 5.0,
                vector: bool = True) -> list[dict[int, bytes]]:
    """Poll every queue until ``n`` recognised frames in all (or the timeout); per queue
    ``{seq: bytes}``; duplicates fail the test.  Buffers are freed."""
    got: list[dict[int, bytes]] = [{} for _ in queues]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < n and time.monotonic() < deadline:
        idle = True
        for i, q in enumerate(queues):
            if vector:
                batch = q.receive_slots(32)
                frames = [bytes(q.pool.data[s, q.pool.data_off[s]:q.pool.data_off[s]
                                            + q.pool.data_len[s]]) for s in batch.slots.tolist()]
                q.pool.free_slots(batch.slots)
            else:
                ms = q.receive(32)
                frames = [m.to_bytes() for m in ms]
                Mbuf.free_bulk(ms)
            for f in frames:
                idle = False
                k = want(f)
                if k is not None:
                    assert all(k not in g for g in got), f"frame {k} received twice"
                    got[i][k] = f
        if idle:
            time.sleep(0.001)
    return got


def send_slots(q, pool: Mempool, frames: list[bytes], burst: int = 32) -> None:
    """Transmit ``frames`` through the vector path (slots), ``burst`` at a time."""
    for i in range(0, len(frames), burst):
        chunk = frames[i:i + burst]
        slots = pool.alloc_slots(len(chunk))
        for s, f in zip(slots.tolist(), chunk):
            h = pool.data_off[s]
            pool.data[s, h:h + len(f)] = np.frombuffer(f, dtype=np.uint8)
            pool.data_len[s] = len(f)
        q.transmit_slots(pool, slots)


def flags(iface: str) -> int:
    return int(Path(f"/sys/class/net/{iface}/flags").read_text(), 16)


@pytest.fixture
def pair(netlab: NetLab) -> Veth:
    """A veth pair with both ends in this namespace (no addresses)."""
    return netlab.veth()


# -- configuration errors (no root needed) --------------------------------------------

@pytest.mark.parametrize("device,args,match", [
    ("net_af_packet0", "iface=lo,bogus=1", r"port p \(net_af_packet0\): unknown argument\(s\) "
     r"\['bogus'\]; the af_packet driver accepts: iface, qpairs, blocksz, framesz, framecnt, "
     r"qdisc_bypass"),
    ("net_af_packet0", None, r"port p \(net_af_packet0\): needs iface=IF"),
    ("af_packet:lo", "iface=eth7", r"iface=eth7 contradicts the device name's interface 'lo'"),
    ("net_af_packet0", "iface=lo,qpairs=2", r"qpairs must be the number of the port's cores \(1\)"),
    ("net_af_packet0", "iface=lo,blocksz=5000", r"blocksz must be a multiple of the page size"),
    ("net_af_packet0", "iface=lo,framesz=1000", r"framesz must be a multiple of 16"),
    ("net_af_packet0", "iface=lo,framesz=65536", r"framesz must be a multiple of 16 from 128 to "
     r"blocksz \(32768\)"),
    ("net_af_packet0", "iface=lo,framecnt=0", r"framecnt must be 1..1048576, got '0'"),
    ("net_af_packet0", "iface=lo,qdisc_bypass=2", r"qdisc_bypass must be 0 or 1"),
    ("net_af_packet0", "iface=lo,blocksz=big", r"blocksz must be .*got 'big'"),
])
def test_bad_arguments_name_port_argument_and_what_is_accepted(device: str, args: str | None,
                                                               match: str) -> None:
    cfg = PortConfig(name="p", device=device, args=args, cores=[0])
    with pytest.raises(PortError, match=match):
        open_port(cfg, Mempool(capacity=64), 32)


def test_missing_interface_names_port_and_interface() -> None:
    for device, args in (("net_af_packet3", "iface=nfk-nosuch0"), ("af_packet:nfk-nosuch0", None)):
        cfg = PortConfig(name="uplink", device=device, args=args, cores=[0])
        with pytest.raises(PortError, match=r"port uplink \(.*\): interface 'nfk-nosuch0' does "
                                            r"not exist"):
            open_port(cfg, Mempool(capacity=64), 32)


def test_not_root_says_cap_net_raw_is_needed() -> None:
    need_root("needs root to drop to an unprivileged user")
    code = textwrap.dedent("""
        import os
        from nfkit.buffers import Mempool
        from nfkit.config import PortConfig
        from nfkit.ports.base import open_port, PortError, _load_builtin_drivers
        _load_builtin_drivers()             # imports first: the unprivileged user may not read them
        os.setgid(65534); os.setuid(65534)
        try:
            open_port(PortConfig(name="wan", device="af_packet:lo", cores=[0]), Mempool(capacity=64), 32)
        except PortError as e:
            print("ERR", e)
    """)
    env = dict(os.environ, NFKIT_NO_NUMBA="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=env, cwd="/")
    assert "ERR port wan (af_packet:lo): opening interface lo needs root or the CAP_NET_RAW " \
           "capability" in out.stdout, out.stdout + out.stderr


def test_ring_geometry_rounds_to_whole_blocks() -> None:
    g = afp.ring_geometry(100, 32768, 2048)
    assert (g.block_nr, g.frames_per_block, g.frame_nr, g.size) == (7, 16, 112, 7 * 32768)
    assert afp.ring_geometry(1, 4096, 2048, min_blocks=2).block_nr == 2
    assert afp.ring_geometry(3, 4096, 1536).frame_nr == 4      # 2 frames per block, 1 KiB wasted


# -- the kernels: numba and the Python fallback agree ----------------------------------

def synthetic_rx_ring(block_size: int, blocks: list[list[tuple[bytes, int, int]]]) -> np.ndarray:
    """A TPACKET_V3 ring as the kernel leaves it: ``blocks`` of frames ``(bytes, pkttype,
    wire length)``, each block handed to user space (an empty list: a timed-out empty block)."""
    r = np.zeros(block_size * len(blocks), dtype=np.uint8)
    r16, r32 = r.view(np.uint16), r.view(np.uint32)
    for b, frames in enumerate(blocks):
        base = b * block_size
        r32[(base >> 2) + 2] = 1
        r32[(base >> 2) + 3] = len(frames)
        r32[(base >> 2) + 4] = 48
        off = 48
        for i, (data, pkttype, wire) in enumerate(frames):
            f = base + off
            w = f >> 2
            step = (82 + len(data) + 15) & ~15
            r32[w] = step if i < len(frames) - 1 else 0
            r32[w + 1], r32[w + 2] = 1_700_000_000 + b, i * 1000
            r32[w + 3], r32[w + 4] = len(data), wire
            r32[w + 7] = 0xABC00000 + b * 256 + i
            r16[(f >> 1) + 12] = 82
            r[f + 58] = pkttype
            r[f + 82:f + 82 + len(data)] = np.frombuffer(data, dtype=np.uint8)
            off += step
            assert off < block_size
    return r


def test_rx_kernels_numba_and_python_agree() -> None:
    need_numba()
    big = marked(9, 300)
    blocks = [
        [(marked(0), 0, 64), (marked(1), 4, 64), (marked(2), 0, 64)],     # 1: outgoing
        [],                                                               # timed out, empty
        [(marked(3, 100), 3, 100), (big[:200], 0, 300), (marked(4), 0, 64)],  # truncated
        [(marked(5, 1500), 0, 1500), (marked(6), 0, 64)],                 # 1500 > buf_size
        [(marked(7 + i, 60 + i), 0, 60 + i) for i in range(40)],
    ]
    results = []
    for kernels in ((afp._rx_ready, afp._rx_take, "py"), (afp._rx_ready_jit, afp._rx_take_jit, "jit")):
        ready, take, kind = kernels
        ring = synthetic_rx_ring(8192, blocks)
        pool = Mempool(capacity=256, buf_size=1024)
        st = np.zeros(3, dtype=np.int64)
        if kind == "py":
            mv = memoryview(ring)
            r8, r16, r32 = mv, mv.cast("H"), mv.cast("I")
            arrs = (pool._buf, pool.stride, pool.headroom, pool.buf_size, pool._len_mv,
                    pool._ts_mv, memoryview(pool.rss_hash))
        else:
            r8, r16, r32 = ring, ring.view(np.uint16), ring.view(np.uint32)
            arrs = (pool.data.reshape(-1), pool.stride, pool.headroom, pool.buf_size,
                    pool.data_len, pool.timestamp, pool.rss_hash)
        out, log = [], []
        for burst in (2, 5, 7, 32, 32, 32):
            n = ready(r32, st, 8192, len(blocks), burst)
            slots = pool.alloc_slots(n)
            got, dropped = take(r8, r16, r32, st, 8192, len(blocks), n, slots, *arrs)
            log.append((n, got, dropped, tuple(st.tolist())))
            for s in slots[:got].tolist():
                out.append((bytes(pool.data[s, 128:128 + pool.data_len[s]]),
                            int(pool.timestamp[s]), int(pool.rss_hash[s])))
        if kind == "py":
            r8.release(), r16.release(), r32.release()
        results.append((out, log, ring.copy()))
    (py_out, py_log, py_ring), (jit_out, jit_log, jit_ring) = results
    assert py_log == jit_log
    assert py_out == jit_out
    assert np.array_equal(py_ring, jit_ring)
    seqs = [seq_of(f) for f, _, _ in py_out]
    assert seqs == [0, 2, 3, 4, 6] + list(range(7, 47))    # outgoing skipped, bad ones dropped
    assert sum(d for _, _, d, _ in py_log) == 2             # the truncated and the oversize
    assert py_out[0][1] == 1_700_000_000 * 10**9 and py_out[1][1] == 1_700_000_000 * 10**9 + 2000
    assert py_out[0][2] == 0xABC00000
    assert all(ring_status == 0 for ring_status in py_ring.view(np.uint32)[2::8192 // 4])


def test_tx_kernels_numba_and_python_agree() -> None:
    need_numba()
    rng = np.random.default_rng(7)
    lens = [60, 1514, 1515, 1518, 900, 2000, 64, 61, 1518, 100] * 4
    frames = []
    for i, n in enumerate(lens):
        f = bytearray(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        if n == 1518 and i % 20 == 3:
            f[12:14] = b"\x81\x00"                 # VLAN-tagged: 4 more bytes allowed
        else:
            f[12:14] = b"\x08\x00"
        frames.append(bytes(f))
    results = []
    for kind in ("py", "jit"):
        fill = afp._tx_fill if kind == "py" else afp._tx_fill_jit
        rollback = afp._tx_rollback if kind == "py" else afp._tx_rollback_jit
        pool = Mempool(capacity=64, buf_size=2048)
        slots = pool.alloc_slots(len(frames))
        for s, f in zip(slots.tolist(), frames):
            pool.data[s, 128:128 + len(f)] = np.frombuffer(f, dtype=np.uint8)
            pool.data_len[s] = len(f)
        geo = afp.ring_geometry(24, 8192, 2048)               # 4 frames per block, 6 blocks
        ring = np.zeros(geo.size, dtype=np.uint8)
        ring.view(np.uint32)[(5 * 8192) >> 2] = 2             # frame 20 still being sent
        st = np.array([3], dtype=np.int64)
        if kind == "py":
            mv = memoryview(ring)
            r8, r32 = mv, mv.cast("I")
            arrs = (pool._buf, pool.stride, pool._off_mv, pool._len_mv)
        else:
            r8, r32 = ring, ring.view(np.uint32)
            arrs = (pool.data.reshape(-1), pool.stride, pool.data_off, pool.data_len)
        order = slots.astype(np.int64)
        acc, rej = fill(r8, r32, st, geo.frame_nr, geo.frames_per_block, geo.block_size,
                        geo.frame_size, *arrs, order, 1514)
        head = int(st[0])
        lost = rollback(r32, st, 3 + acc - 2, 2, geo.frame_nr, geo.frames_per_block,
                        geo.block_size, geo.frame_size)
        if kind == "py":
            r8.release(), r32.release()
        results.append((acc, rej, head, int(st[0]), int(lost), order.tolist(), ring.copy(),
                        slots.tolist()))
    assert results[0][:6] == results[1][:6]
    assert np.array_equal(results[0][6], results[1][6])
    acc, rej, head, back, lost, order, ring, slot_ids = results[0]
    # frames 3..19 were free (17), frame 20 busy: the ring is full after 17 accepted
    assert acc == 17 and head == 20 and lost == 2 and back == 18
    ok = [n <= 1514 or (n == 1518 and frames[i][12:14] == b"\x81\x00") for i, n in enumerate(lens)]
    accepted, rejected = [], []
    for i in range(len(frames)):                      # the model: in order until the 18th fit
        if not ok[i]:
            rejected.append(i)
        elif len(accepted) == 17:
            break
        else:
            accepted.append(i)
    assert rej == len(rejected)
    # slots reordered in place: [accepted | rejected | not tried]
    assert order[:acc] == [slot_ids[i] for i in accepted]
    assert order[acc:acc + rej] == [slot_ids[i] for i in rejected]
    assert sorted(order) == sorted(slot_ids)
    r32 = ring.view(np.uint32)
    for j, i in enumerate(accepted):
        idx = 3 + j
        fb = (idx // 4) * 8192 + (idx % 4) * 2048
        assert r32[(fb >> 2) + 1] == len(frames[i])
        assert ring[fb + 32:fb + 32 + len(frames[i])].tobytes() == frames[i]
        assert r32[fb >> 2] == (0 if j >= 15 else 1)          # the last two rolled back


# -- live: round trips over a veth pair -----------------------------------------------

@pytest.mark.parametrize("jit", JIT_MODES)
def test_round_trip_between_two_af_packet_ports(pair: Veth, jit: bool) -> None:
    if jit:
        need_numba()
    pool = Mempool(capacity=8192)
    a = port_on(pair.name, pool, device="net_af_packet0", args=f"iface={pair.name}", jit=jit,
                rxd=1024)
    b = port_on(pair.peer, pool, jit=jit, rxd=4096)     # room for the whole test
    try:
        assert str(a.mac_addr) == pair.mac and str(b.mac_addr) == pair.peer_mac
        qa, qb = a.queues[0], b.queues[0]
        n = 2000
        frames = [marked(i, 60 + i % 1400) for i in range(n)]
        oracle = raw_socket(pair.peer)
        send_slots(qa, pool, frames[:1000])                       # vector path
        for i in range(1000, n, 50):                              # Mbuf path
            qa.transmit([Mbuf.from_bytes(f, pool) for f in frames[i:i + 50]])
            if i % 500 == 0:
                time.sleep(0.002)                                 # let the receiver keep up
        got = receive_all([qb], seq_of, n, vector=True)[0]
        assert qa.counters.tx_packets == n and qa.counters.tx_dropped == 0
        assert sorted(got) == list(range(n)), f"missing {sorted(set(range(n)) - set(got))[:10]}"
        assert all(got[i] == frames[i] for i in range(n))
        seen = raw_recv(oracle, seq_of, n)                        # an independent receiver
        assert len(seen) == n and all(seen[i] == frames[i] for i in range(n))
        # a port does not receive what it sent
        assert receive_all([qa], seq_of, 1, timeout=0.3) == [{}]
        # and the other way, through the Mbuf receive path
        qb.transmit([Mbuf.from_bytes(marked(10_000 + i), pool) for i in range(20)])
        back = receive_all([qa], seq_of, 20, vector=False)[0]
        assert sorted(back) == list(range(10_000, 10_020))
        oracle.close()
    finally:
        a.close()
        b.close()
    assert pool.in_use == 0


def test_receive_from_a_raw_socket_with_timestamps_and_counters(pair: Veth) -> None:
    pool = Mempool(capacity=1024)
    a = port_on(pair.name, pool)
    try:
        s = raw_socket(pair.peer)
        before = time.time_ns()
        for i in range(100):
            s.send(marked(i, 100))
        q = a.queues[0]
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 100 and time.monotonic() < deadline:
            for m in q.receive():
                if seq_of(m.to_bytes()) is not None:
                    got.append((seq_of(m.to_bytes()), pool.timestamp[m.slot]))
                m.free()
        assert [k for k, _ in got] == list(range(100))
        assert all(before - 10**9 < t < time.time_ns() + 10**9 for _, t in got)
        assert q.counters.rx_packets >= 100 and q.counters.rx_octets >= 100 * 100
        s.close()
    finally:
        a.close()


def test_rx_ring_overflow_is_counted_as_rx_dropped(pair: Veth) -> None:
    pool = Mempool(capacity=4096)
    a = port_on(pair.name, pool, args="blocksz=4096,framesz=2048", rxd=4)   # 2 blocks of 4 KiB
    try:
        s = raw_socket(pair.peer)
        for i in range(500):                     # ~14 frames of 200 B fit a 4 KiB block
            s.send(marked(i, 200))
        time.sleep(0.05)
        q = a.queues[0]
        got = receive_all([q], seq_of, 500, timeout=0.5)[0]
        q.refresh_stats()
        assert 0 < len(got) < 500
        assert q.counters.rx_dropped >= 500 - len(got) - 20    # kernel drops (+ chatter)
        s.close()
    finally:
        a.close()


def test_tx_larger_than_the_frame_or_mtu_is_dropped_and_counted(pair: Veth) -> None:
    pool = Mempool(capacity=1024)
    a = port_on(pair.name, pool, args="framesz=1024")          # room for 992-byte packets
    try:
        q = a.queues[0]
        assert q.max_tx_len == 992
        s = raw_socket(pair.peer)
        frames = [marked(0), marked(1, 993), marked(2, 992), marked(3, 1200), marked(4)]
        send_slots(q, pool, frames)
        assert (q.counters.tx_packets, q.counters.tx_dropped) == (3, 2)
        send_slots(q, pool, [b"", b"\x02" * 13])                 # not even a header
        assert (q.counters.tx_packets, q.counters.tx_dropped) == (3, 4)
        q.counters.tx_dropped = 2
        q.transmit([Mbuf.from_bytes(marked(10 + seq_of(f), len(f)), pool) for f in frames])
        assert (q.counters.tx_packets, q.counters.tx_dropped) == (6, 4)
        seen = raw_recv(s, seq_of, 7, timeout=1.0)
        assert sorted(seen) == [0, 2, 4, 10, 12, 14]           # never truncated copies
        assert len(seen[2]) == 992
        s.close()
    finally:
        a.close()
    b = port_on(pair.name, pool)                                # framesz 2048, MTU 1500
    try:
        q = b.queues[0]
        assert q.max_tx_len == 1514
        send_slots(q, pool, [marked(5, 1514), marked(6, 1515), marked(7, 2000)])
        assert (q.counters.tx_packets, q.counters.tx_dropped) == (1, 2)
    finally:
        b.close()
    assert pool.in_use == 0


def test_full_tx_ring_retries_then_drops(pair: Veth) -> None:
    pool = Mempool(capacity=4096)
    a = port_on(pair.name, pool, txd=8, args="blocksz=4096")   # 8 frames
    try:
        q = a.queues[0]
        assert q.tx_geo.frame_nr == 8
        frames = [marked(i) for i in range(400)]
        send_slots(q, pool, frames, burst=200)
        c = q.counters
        assert c.tx_packets + c.tx_dropped == 400 and c.tx_packets >= 8
    finally:
        a.close()
    assert pool.in_use == 0


# -- several queues: fanout -----------------------------------------------------------

def test_fanout_two_queues_every_packet_exactly_once(netlab: NetLab) -> None:
    pair = netlab.veth()
    other = netlab.veth()
    pool = Mempool(capacity=8192)
    a = port_on(pair.name, pool, cores=[0, 1], rxd=1024)
    b = port_on(other.name, pool, cores=[2, 3])
    try:
        assert len(a.queues) == 2 and [q.index for q in a.queues.values()] == [0, 1]
        ids = {q.fanout_id for q in a.queues.values()}
        assert len(ids) == 1 and None not in ids
        assert ids.isdisjoint({q.fanout_id for q in b.queues.values()})
        s = raw_socket(pair.peer)
        n = 1000
        for i in range(n):
            s.send(udp_frame(i, 1024 + i % 64))
            if i % 200 == 199:
                time.sleep(0.002)
        got = receive_all(list(a.queues.values()), udp_seq, n)
        assert sum(map(len, got)) == n                # exactly once: duplicates fail inside
        assert set(got[0]) | set(got[1]) == set(range(n))
        assert got[0] and got[1], "the hash put every flow on one queue"
        # a flow stays on one queue
        flows = [{k % 64 for k in g} for g in got]
        assert flows[0].isdisjoint(flows[1])
        s.close()
    finally:
        a.close()
        b.close()


class _KernelIdsFromZero(socket.socket):
    """A packet socket that shows the kernel's PACKET_FANOUT group ids shifted so the first
    group the kernel makes (PACKET_FANOUT_FLAG_UNIQUEID) reads as id 0 -- what a freshly
    booted machine hands out -- and shifts ids given back to join a group the other way, so
    the groups themselves stay real.  ``shift`` is learnt from that first group."""

    shift: int | None = None

    def getsockopt(self, level, opt, *args):  # type: ignore[override]
        value = super().getsockopt(level, opt, *args)
        if level == afp.SOL_PACKET and opt == afp.PACKET_FANOUT:
            (v,) = struct.unpack("I", value)
            cls = type(self)
            if cls.shift is None:
                cls.shift = v & 0xFFFF
            value = struct.pack("I", (v & ~0xFFFF) | ((v - cls.shift) & 0xFFFF))
        return value

    def setsockopt(self, level, opt, value, *args):  # type: ignore[override]
        shift = type(self).shift
        if (level == afp.SOL_PACKET and opt == afp.PACKET_FANOUT and shift is not None
                and not (value >> 16) & afp.PACKET_FANOUT_FLAG_UNIQUEID):
            value = (value & ~0xFFFF) | (((value & 0xFFFF) + shift) & 0xFFFF)
        return super().setsockopt(level, opt, value, *args)


def _send_udp_flows(iface: str, n: int, sport0: int) -> None:
    s = raw_socket(iface)
    for i in range(n):
        s.send(udp_frame(i, sport0 + i % 64))
        if i % 200 == 199:
            time.sleep(0.002)
    s.close()


def test_fanout_group_id_0_from_the_kernel_is_joined_not_made_again(
        pair: Veth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the kernel's first unique fanout group has id 0; the port's second queue
    took 0 for "make a new group", so two groups got every packet each (duplicates)."""
    sockets = type("KernelIdsFromZero", (_KernelIdsFromZero,), {"shift": None})
    monkeypatch.setattr(afp, "_packet_socket",
                        lambda cfg, iface: sockets(socket.AF_PACKET, socket.SOCK_RAW, 0))
    pool = Mempool(capacity=8192)
    a = port_on(pair.name, pool, cores=[0, 1], rxd=1024)
    try:
        assert [q.fanout_id for q in a.queues.values()] == [0, 0]
        n = 600
        _send_udp_flows(pair.peer, n, 1024)
        got = receive_all(list(a.queues.values()), udp_seq, n)   # a duplicate fails inside
        assert sorted(set(got[0]) | set(got[1])) == list(range(n))
        time.sleep(0.05)                                          # no late duplicates either
        assert receive_all(list(a.queues.values()), udp_seq, 1, timeout=0.2) == [{}, {}]
    finally:
        a.close()
    assert pool.in_use == 0


def test_fanout_shared_group_id_0_joins_one_group(pair: Veth,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The id the master and its workers derive may be 0 too: each process opening its own
    queue joins that group (here both queues in one process, one core each)."""
    monkeypatch.setattr(afp, "_shared_fanout_id", lambda name, ifindex: 0)
    pool = Mempool(capacity=8192)
    ports = [open_port(PortConfig(name="wan", device=f"af_packet:{pair.name}", cores=[0, 1],
                                  rxd=1024), pool, 32, cores=frozenset({c})) for c in (0, 1)]
    try:
        queues = [p.queues[c] for p, c in zip(ports, (0, 1))]
        assert [q.fanout_id for q in queues] == [0, 0]
        n = 600
        _send_udp_flows(pair.peer, n, 4000)
        got = receive_all(queues, udp_seq, n)
        assert sorted(set(got[0]) | set(got[1])) == list(range(n))
    finally:
        for p in ports:
            p.close()
    assert pool.in_use == 0


# -- promiscuous / all-multicast -----------------------------------------------------

def test_promiscuous_and_allmulti_follow_the_config_and_end_with_the_port(pair: Veth) -> None:
    pool = Mempool(capacity=64)
    IFF_PROMISC, IFF_ALLMULTI = 0x100, 0x200
    assert not flags(pair.name) & (IFF_PROMISC | IFF_ALLMULTI)
    a = port_on(pair.name, pool, promiscuous=True, multicast=True)
    try:
        assert flags(pair.name) & IFF_PROMISC and flags(pair.name) & IFF_ALLMULTI
        out = subprocess.run(["ip", "-d", "link", "show", "dev", pair.name], capture_output=True,
                             text=True).stdout
        assert "promiscuity 1" in out
    finally:
        a.close()
    assert not flags(pair.name) & (IFF_PROMISC | IFF_ALLMULTI)
    b = port_on(pair.name, pool, promiscuous=False, multicast=False)
    try:
        assert not flags(pair.name) & (IFF_PROMISC | IFF_ALLMULTI)
    finally:
        b.close()


# -- link down and up during a run ----------------------------------------------------

def test_link_down_and_up_counts_errors_and_recovers(pair: Veth) -> None:
    pool = Mempool(capacity=4096)
    a = port_on(pair.name, pool)
    try:
        q = a.queues[0]
        s = raw_socket(pair.peer)
        send_slots(q, pool, [marked(i) for i in range(10)])
        assert len(raw_recv(s, seq_of, 10)) == 10
        pair.set_up(False)                                    # our end goes down
        t0 = time.monotonic()
        send_slots(q, pool, [marked(100 + i) for i in range(64)])
        q.transmit([Mbuf.from_bytes(marked(200 + i), pool) for i in range(10)])
        assert receive_all([q], seq_of, 1, timeout=0.2) == [{}]   # nothing, and no error
        assert time.monotonic() - t0 < 2.0                    # no hang
        c = q.counters
        assert c.tx_errors >= 1 and c.tx_dropped == 74 and c.tx_packets == 10
        pair.set_up(True)
        NetLab.wait_up(pair)
        send_slots(q, pool, [marked(300 + i) for i in range(20)])
        seen = raw_recv(s, seq_of, 20)
        assert sorted(seen) == list(range(300, 320)), "nothing stale, nothing lost after up"
        for i in range(20):                                   # receive works again too
            s.send(marked(400 + i))
        got = receive_all([q], seq_of, 20)[0]
        assert sorted(got) == list(range(400, 420))
        # the peer end going down: veth drops in the kernel, the port keeps going
        pair.set_up(False, peer=True)
        send_slots(q, pool, [marked(500 + i) for i in range(10)])
        pair.set_up(True, peer=True)
        NetLab.wait_up(pair)
        s.close()
    finally:
        a.close()
    assert pool.in_use == 0


def test_runtime_survives_link_flap(pair: Veth) -> None:
    """A forwarding runtime keeps running while its link goes down and up."""
    rt = Runtime.build(RuntimeConfig.from_toml_text(textwrap.dedent(f"""
        app_name = "flap"
        master_core = 0
        duration = 3
        [[ports]]
        name = "eth1"
        device = "af_packet:{pair.name}"
        cores = [0]
    """)))
    rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
    state = {"n": 0}

    def flap() -> None:
        state["n"] += 1
        pair.set_up(state["n"] % 2 == 0)
        q = rt.port("eth1").queues[0]
        q.transmit([Mbuf.from_bytes(marked(i)) for i in range(8)])

    rt.add_periodic_task_to_core(0, flap, 0.25)
    t0 = time.monotonic()
    res = rt.execute()
    assert res.reason == "duration" and time.monotonic() - t0 < 10
    c = res.ports["eth1"]
    assert c["tx_errors"] >= 1 and c["tx_dropped"] >= 8 and c["tx_packets"] >= 8
    pair.set_up(True)


# -- through the Runtime and the examples ----------------------------------------------

def test_runtime_l2fwd_vector_pipeline_over_af_packet(netlab: NetLab) -> None:
    """examples/l2fwd's vector stage on an af_packet port: every frame the peer sends comes
    back with its addresses swapped."""
    from nfkit.cli import load_module
    l2fwd = load_module(EXAMPLES / "l2fwd" / "l2fwd.py")
    pair = netlab.veth()
    rt = Runtime.build(RuntimeConfig.from_toml_text(textwrap.dedent(f"""
        app_name = "l2fwd-afp"
        master_core = 0
        duration = 20
        [[ports]]
        name = "eth1"
        device = "net_af_packet0"
        args = "iface={pair.name}"
        cores = [0]
        rxd = 1024
    """)))
    n = 500
    s = raw_socket(pair.peer)
    for i in range(n):                         # queued in the ring before the run starts
        s.send(udp_frame(i, 2000 + i % 16))
    rt.add_pipeline_to_port("eth1", l2fwd.install)
    last = [-1]

    def done() -> None:
        # every frame was queued before the start: n sent and nothing new for 50 ms
        tx = rt.port("eth1").counters().tx_packets
        if tx >= n and tx == last[0]:
            rt.stop("all sent")
        last[0] = tx

    rt.add_periodic_task_to_core(0, done, 0.05)
    res = rt.execute()
    assert res.reason == "all sent"
    back = raw_recv(s, udp_seq, n)
    assert sorted(back) == list(range(n))
    for i, f in back.items():
        sent = udp_frame(i, 2000 + i % 16)
        assert f[:6] == sent[6:12] and f[6:12] == sent[:6] and f[12:] == sent[12:]
    assert res.ports["eth1"]["rx_dropped"] == 0
    s.close()


def _tcpdump() -> str:
    return need_tool("tcpdump")


def test_ping4d_answers_linux_ping_over_af_packet(netlab: NetLab, tmp_path: Path) -> None:
    """examples/ping4d on an af_packet port answers the Linux ping; the client has a static
    neighbour entry (ping4d does not answer ARP); tcpdump on the client's end sees the
    replies."""
    ping = need_tool("ping", "apt-get install iputils-ping")
    tcpdump = _tcpdump()
    nf = netlab.namespace("nf")
    client = netlab.namespace("cli")
    link = netlab.veth(ns=nf, peer_ns=client, peer_addr="10.77.0.2/24")   # NF end: no address
    client.ip("neigh", "add", "10.77.0.1", "lladdr", link.mac, "dev", link.peer, "nud",
              "permanent")
    work = tmp_path / "ping4d"
    shutil.copytree(EXAMPLES / "ping4d", work)
    (work / "afp.toml").write_text(textwrap.dedent(f"""
        app_name = "ping4d"
        master_core = 0
        duration = 30
        [[ports]]
        name = "eth1"
        device = "af_packet:{link.name}"
        cores = [0]
    """))
    nfp = netlab.popen(nf, [sys.executable, "-m", "nfkit.cli", "run", "ping4d.py", "-c",
                            "afp.toml", "--no-status"], cwd=work)
    dump = netlab.popen(client, [tcpdump, "-n", "-l", "-i", link.peer, "-c", "10",
                                 "icmp[icmptype] == icmp-echoreply"])
    started = time.monotonic()
    while time.monotonic() - started < 10:       # capture before the first ping
        ready, _, _ = select.select([dump.stderr], [], [], 1.0)
        if ready and "listening on" in dump.stderr.readline():
            break
    try:
        # wait until the NF is up: a ping that is answered
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if client.run([ping, "-c", "1", "-W", "1", "10.77.0.1"]).returncode == 0:
                break
            assert nfp.poll() is None, nfp.communicate()
        out = client.run([ping, "-c", "9", "-i", "0.2", "-W", "2", "10.77.0.1"], timeout=30)
        assert re.search(r"9 packets transmitted, 9 received", out.stdout), out.stdout
        assert out.stdout.count("bytes from 10.77.0.1") == 9
        dump_out, _ = dump.communicate(timeout=10)
        replies = [ln for ln in dump_out.splitlines() if "ICMP echo reply" in ln]
        assert len(replies) == 10 and all("10.77.0.1 > 10.77.0.2" in ln for ln in replies)
    finally:
        nfp.send_signal(signal.SIGINT)
        stdout, stderr = nfp.communicate(timeout=20)
    assert nfp.returncode == 0, stdout + stderr
    m = re.search(r"port eth1: rx (\d+) tx (\d+)", stdout)
    assert m and int(m.group(2)) >= 10, stdout


def _worker(iface: str, core: int, conn, n: int) -> None:
    """One 'worker process' of the multi-core runtime: opens only its own queue."""
    pool = Mempool(capacity=4096)
    cfg = PortConfig(name="wan", device=f"af_packet:{iface}", cores=[0, 1], rxd=1024)
    port = open_port(cfg, pool, 32, cores=frozenset({core}))
    q = port.queues[core]
    conn.send(("ready", list(port.queues), q.index, q.fanout_id))
    got = receive_all([q], udp_seq, n, timeout=float(conn.recv()))[0]
    port.close()
    conn.send(sorted(got))


def test_fanout_across_worker_processes_each_opening_its_own_queue(pair: Veth) -> None:
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    n = 600
    workers = []
    for core in (0, 1):
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(pair.name, core, child_end, n), daemon=True)
        p.start()
        workers.append((p, parent_end))
    try:
        hello = [conn.recv() if conn.poll(30) else None for _, conn in workers]
        assert hello[0] is not None and hello[1] is not None, "a worker did not start"
        assert [h[1] for h in hello] == [[0], [1]] and [h[2] for h in hello] == [0, 1]
        assert hello[0][3] == hello[1][3] is not None      # one fanout group
        for _, conn in workers:
            conn.send(1.5)
        s = raw_socket(pair.peer)
        for i in range(n):
            s.send(udp_frame(i, 3000 + i % 64))
        s.close()
        seqs = [conn.recv() if conn.poll(30) else None for _, conn in workers]
    finally:
        for p, _ in workers:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    assert seqs[0] is not None and seqs[1] is not None
    assert sorted(seqs[0] + seqs[1]) == list(range(n))     # each exactly once
    assert seqs[0] and seqs[1]


def test_runtime_with_two_cores_on_one_port_forwards_every_packet_once(pair: Veth) -> None:
    """Through the Runtime: two cores on one af_packet port (with worker processes, the
    master's queue and the worker's share one fanout group): each packet forwarded once,
    and the Prometheus endpoint (scraped over HTTP) sums both cores' counters."""
    import threading

    from test_multicore import free_port, scrape, total

    mport = free_port()
    rt = Runtime.build(RuntimeConfig.from_toml_text(textwrap.dedent(f"""
        app_name = "afp-2cores"
        master_core = 0
        duration = 12
        [metrics]
        listen = "127.0.0.1:{mport}"
        interval = 0.05
        [[ports]]
        name = "eth1"
        device = "af_packet:{pair.name}"
        cores = [0, 1]
        rxd = 1024
    """)))
    rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
    s = raw_socket(pair.peer)
    n = 500
    sent = threading.Event()
    seen: dict[str, object] = {}

    def sender() -> None:
        time.sleep(1.5)                      # the run (and any worker) has started
        for i in range(n):
            s.send(udp_frame(i, 5000 + i % 64))
        sent.set()

    def check() -> None:
        if not sent.is_set():
            return
        if rt.metrics.snapshot().total("tx_packets") < n and time.monotonic() < deadline:
            return                           # not all published yet: look again next tick
        time.sleep(0.2)                      # > 2 publish intervals: every core up to date
        seen["samples"] = scrape(mport)
        rt.stop("checked")

    rt.add_periodic_task_to_core(0, check, 0.1)
    deadline = time.monotonic() + 10
    t = threading.Thread(target=sender)
    t.start()
    try:
        res = rt.execute()
    finally:
        t.join()
    back = raw_recv(s, udp_seq, n, timeout=3)          # a frame seen twice fails here
    s.close()
    assert sorted(back) == list(range(n))
    assert res.reason == "checked", res.reason
    assert res.ports["eth1"]["tx_packets"] >= n and res.ports["eth1"]["tx_dropped"] == 0
    samples = seen["samples"]
    rx = total(samples, "nfkit_port_packets_total", port="eth1", dir="rx")
    per_core = [total(samples, "nfkit_port_packets_total", port="eth1", dir="rx", core=c)
                for c in ("0", "1")]
    assert rx >= n and sum(per_core) == rx       # the kernel may add its own (IPv6 ND) frames
    assert all(c > 0 for c in per_core), per_core   # the fanout spread the 64 flows
    assert total(samples, "nfkit_port_packets_total", port="eth1", dir="tx") == rx
