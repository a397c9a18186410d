"""The AF_XDP port driver (nfkit.ports.af_xdp): XSK sockets whose UMEM is the mempool.

Tests with packets use the ``netlab`` fixture (root, network namespaces) and veth pairs, on
which the kernel runs XDP natively and AF_XDP in copy mode.  Frames carry a marker and a
sequence number (helpers shared with test_af_packet), so kernel chatter is told apart.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nfkit
from nfkit.buffers import Mbuf, Mempool
from nfkit.config import PortConfig, RuntimeConfig
from nfkit.ports import _xdp_build
from nfkit.ports import af_xdp as axp
from nfkit.ports.base import Port, PortError, open_port
from nfkit.runtime import Runtime
from nfkit.testing.netns import NetLab, Veth
from nfkit.testing.skips import need, need_root, need_tool
from test_af_packet import marked, raw_recv, raw_socket, receive_all, send_slots, seq_of, udp_frame, udp_seq

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu/bpf")


def need_xdp() -> None:
    """The shim builds (libxdp, libbpf, cffi, gcc)."""
    try:
        _xdp_build.load()
    except _xdp_build.XdpBuildError as exc:
        need(False, f"AF_XDP shim unavailable: {exc}", "apt-get install libxdp-dev libbpf-dev gcc")


def xdp_prog(iface: str, ns: str | None = None, with_id: bool = False) -> str | None:
    """The name (``with_id``: "id name") of the XDP program on ``iface`` as ``ip link``
    shows it (None: none)."""
    cmd = ["ip", "link", "show", "dev", iface]
    if ns:
        cmd = ["ip", "-n", ns, *cmd[1:]]
    m = re.search(r"prog/xdp id (\d+) name (\S+)", subprocess.run(cmd, capture_output=True,
                                                                    text=True).stdout)
    return None if not m else f"{m.group(1)} {m.group(2)}" if with_id else m.group(2)


def xport(iface: str, pool: Mempool, *, device: str | None = None, args: str | None = None,
          cores: list[int] | None = None, **fields) -> Port:
    cfg = PortConfig(name=f"x-{iface}", device=device or f"af_xdp:{iface}", args=args,
                     cores=cores or [0], **fields)
    return open_port(cfg, pool, 32)


@pytest.fixture
def pair(netlab: NetLab) -> Veth:
    need_xdp()
    return netlab.veth()


# -- arguments and errors -----------------------------------------------------------------

@pytest.mark.parametrize("device,args,match", [
    ("net_af_xdp0", None, r"needs iface=IF"),
    ("net_af_xdp0", "iface=lo,bogus=1", r"unknown argument\(s\) \['bogus'\].*accepts: iface"),
    ("net_af_xdp0", "iface=lo,queue_count=2", r"queue_count must be the number of the port's cores \(1\)"),
    ("af_xdp:lo", "iface=eth9", r"iface=eth9 contradicts the device name's interface 'lo'"),
    ("af_xdp:lo", "force_copy=1,zero_copy=1", r"contradict each other"),
    ("af_xdp:lo", "xdp_mode=hw", r"xdp_mode must be native or skb"),
    ("af_xdp:lo", "start_queue=x", r"start_queue must be 0..65535, got 'x'"),
])
def test_bad_arguments_name_port_argument_and_what_is_accepted(device: str, args: str | None,
                                                               match: str) -> None:
    with pytest.raises(PortError, match=match):
        xport("lo", Mempool(capacity=8), device=device, args=args)


def test_missing_interface_names_port_and_interface() -> None:
    with pytest.raises(PortError, match=r"port x-nfkno0 \(af_xdp:nfkno0\): interface 'nfkno0' "
                                        r"does not exist"):
        xport("nfkno0", Mempool(capacity=8))


def test_no_libxdp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_xdp_build, "_loaded", None)
    monkeypatch.setattr(_xdp_build, "_PKGS", ("libxdp-not-installed",))
    with pytest.raises(axp.XdpUnavailable, match=r"apt-get install libxdp-dev libbpf-dev"):
        xport("lo", Mempool(capacity=8))


def test_mtu_larger_than_a_chunk_is_refused(netlab: NetLab) -> None:
    need_xdp()
    link = netlab.veth(mtu=3000)
    with pytest.raises(PortError, match=r"MTU of nfa\S+ \(3000\) does not fit a chunk: a pool row "
                                        r"of 2176 bytes holds 1920"):
        xport(link.name, Mempool(capacity=64))
    headroom, buf_size = axp.pool_geometry(3000)         # the pool that fits
    port = xport(link.name, Mempool(capacity=64, headroom=headroom, buf_size=buf_size))
    port.close()


def test_program_attached_by_someone_else_is_not_replaced(pair: Veth) -> None:
    subprocess.run(["ip", "link", "set", "dev", pair.name, "xdpgeneric", "obj",
                    str(LIBDIR / "xdpfilt_alw_all.o"), "sec", "xdp"], check=True)
    with pytest.raises(PortError, match=r"already has an XDP program attached by someone else "
                                        r"\(id \d+, name 'xdpfilt_alw_all'\); nfkit does not "
                                        r"replace it"):
        xport(pair.name, Mempool(capacity=64))
    assert xdp_prog(pair.name) == "xdpfilt_alw_all"


def test_without_privilege_says_which_capabilities(pair: Veth) -> None:
    need_root()
    setpriv = need_tool("setpriv", "apt-get install util-linux")
    code = textwrap.dedent(f"""
        from nfkit.buffers import Mempool
        from nfkit.config import PortConfig
        from nfkit.ports.base import PortError, open_port
        try:
            open_port(PortConfig(name="p", device="af_xdp:{pair.name}", cores=[0]),
                      Mempool(capacity=64), 32)
        except PortError as exc:
            print(exc)
    """)
    out = subprocess.run([setpriv, "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c",
                          code], capture_output=True, text=True, timeout=60)
    assert re.search(r"needs root or CAP_NET_ADMIN \+ CAP_BPF|CAP_NET_ADMIN, CAP_BPF and "
                     r"CAP_NET_RAW", out.stdout), out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr


# -- packets --------------------------------------------------------------------------

def test_received_frames_land_in_pool_slots_and_go_back_by_address(pair: Veth) -> None:
    """Frames from the peer land in pool slots (the kernel writes them 256 bytes into the
    row: no copy in nfkit), go back out by address, the XDP program is libxdp's and is
    detached at close, the frame accounting holds and the pool is idle again."""
    pool = Mempool(capacity=2048)
    port = xport(pair.name, pool, rxd=512, txd=256)
    q = port.queues[0]
    assert isinstance(q, axp.AfXdpQueue)
    assert q.zero_copy is False and q.xdp_mode == "native"     # veth: copy mode, native XDP
    assert xdp_prog(pair.name) == "xsk_def_prog"
    assert pool.in_use == q.in_fill == q.fill_size                # the fill ring is full
    s = raw_socket(pair.peer)
    frames = [marked(i, 60 + i) for i in range(200)]
    for f in frames:
        s.send(f)
    got: dict[int, int] = {}
    deadline = time.monotonic() + 5
    while len(got) < 200 and time.monotonic() < deadline:
        for slot in q.receive_slots(32).slots.tolist():
            k = seq_of(bytes(pool.data[slot, pool.data_off[slot]:pool.data_off[slot]
                                       + pool.data_len[slot]]))
            if k is None:
                pool.free_slots([slot])
            else:
                got[k] = slot
    assert sorted(got) == list(range(200))
    for k, slot in got.items():
        assert pool.data_off[slot] == axp.XDP_PACKET_HEADROOM
        o = int(pool.data_off[slot])
        assert bytes(pool.data[slot, o:o + pool.data_len[slot]]) == frames[k]
    q.transmit_slots(pool, np.array([got[k] for k in range(200)], dtype=np.int32))
    back = raw_recv(s, seq_of, 200, timeout=5)
    s.close()
    assert sorted(back) == list(range(200)) and all(back[k] == frames[k] for k in back)
    c = port.counters()
    assert (c.rx_packets, c.tx_packets, c.tx_dropped) == (len(got) + c.rx_packets - 200, 200, 0)
    assert c.tx_octets == sum(map(len, frames))
    port.close()
    assert pool.in_use == 0
    assert xdp_prog(pair.name) is None


def test_oversize_tx_is_dropped_and_counted(pair: Veth) -> None:
    pool = Mempool(capacity=512)
    port = xport(pair.name, pool)
    q = port.queues[0]
    frames = [marked(1, 60), marked(2, 1600), marked(3, 60)[:10], marked(4, 60)]
    slots = pool.alloc_slots(4)
    for s, f in zip(slots.tolist(), frames):
        pool.data[s, pool.data_off[s]:pool.data_off[s] + len(f)] = np.frombuffer(f, np.uint8)
        pool.data_len[s] = len(f)
    rs = raw_socket(pair.peer)
    q.transmit_slots(pool, slots)
    back = raw_recv(rs, seq_of, 2, timeout=3)
    rs.close()
    assert sorted(back) == [1, 4]
    c = port.counters()
    assert (c.tx_packets, c.tx_dropped) == (2, 2)
    port.close()
    assert pool.in_use == 0


def test_packets_of_another_pool_are_copied_into_the_umem(pair: Veth) -> None:
    pool, other = Mempool(capacity=512), Mempool(capacity=64)
    port = xport(pair.name, pool)
    rs = raw_socket(pair.peer)
    send_slots(port.queues[0], other, [marked(i) for i in range(20)], burst=8)
    assert other.in_use == 0
    ms = [Mbuf.from_bytes(marked(100 + i), other) for i in range(5)]
    port.queues[0].transmit(ms)
    back = raw_recv(rs, seq_of, 25, timeout=3)
    rs.close()
    assert sorted(back) == list(range(20)) + list(range(100, 105))
    port.close()
    assert pool.in_use == 0 and other.in_use == 0


def test_rx_ring_overflow_is_counted_as_rx_dropped(pair: Veth) -> None:
    pool = Mempool(capacity=1024)
    port = xport(pair.name, pool, rxd=64)
    s = raw_socket(pair.peer)
    for i in range(300):                     # nobody polls meanwhile: the 64-slot ring overflows
        s.send(marked(i))
    s.close()
    time.sleep(0.2)
    got = receive_all([port.queues[0]], seq_of, 300, timeout=1)[0]
    port.close()
    c = port.counters()
    assert 0 < len(got) < 300
    assert c.rx_dropped >= 300 - len(got)
    assert port.hw_counters()["rx_ring_full"] + port.hw_counters()["rx_dropped"] == c.rx_dropped
    assert pool.in_use == 0


def test_killed_process_leaves_its_program_and_the_next_open_cleans_it_up(pair: Veth) -> None:
    """SIGKILL gives libxdp no chance to detach: the XDP program stays on the interface
    (the kernel keeps a netlink-attached program).  The next open sees libxdp's program with
    no AF_XDP socket bound to the interface, detaches it and attaches a fresh one, which its
    close detaches again."""
    code = textwrap.dedent(f"""
        import sys, time
        from nfkit.buffers import Mempool
        from nfkit.config import PortConfig
        from nfkit.ports.base import open_port
        open_port(PortConfig(name="p", device="af_xdp:{pair.name}", cores=[0]),
                  Mempool(capacity=256), 32)
        print("open", flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "open"
        assert axp.xsk_sockets(pair.name) == [0]
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    left = xdp_prog(pair.name, with_id=True)
    assert left is not None and left.endswith(" xsk_def_prog")     # left behind
    pool = Mempool(capacity=256)
    port = xport(pair.name, pool)
    now = xdp_prog(pair.name, with_id=True)
    assert now is not None and now.endswith(" xsk_def_prog") and now != left   # a fresh one
    rs = raw_socket(pair.peer)
    rs.send(marked(7))
    got = receive_all([port.queues[0]], seq_of, 1, timeout=3)[0]
    rs.close()
    assert list(got) == [7]
    port.close()
    assert xdp_prog(pair.name) is None and pool.in_use == 0


# -- end to end: real clients, the runtime ------------------------------------------------

def xdp_port_toml(name: str, iface: str) -> str:
    return (f'[[ports]]\nname = "{name}"\ndevice = "net_af_xdp0"\n'
            f'args = "iface={iface},start_queue=0,queue_count=1"\ncores = [0]\n')


def test_ping4d_answers_linux_ping_over_af_xdp(netlab: NetLab, tmp_path: Path) -> None:
    """examples/ping4d on net_af_xdp0 answers every echo of the Linux ping (ping's own count)
    and tcpdump on the client's end sees each reply once, from the NF's MAC."""
    from test_e2e_linux import Capture, RunningNf, received
    need_xdp()
    need_tool("ping", "apt-get install iputils-ping")
    nfns, client = netlab.namespace("nf"), netlab.namespace("cli")
    link = netlab.veth(ns=nfns, peer_ns=client, peer_addr="10.79.0.2/24")
    client.ip("neigh", "replace", "10.79.0.1", "lladdr", link.mac, "dev", link.peer,
              "nud", "permanent")                # ping4d answers echo requests, not ARP
    nf = RunningNf(netlab, nfns, EXAMPLES / "ping4d" / "ping4d.py",
                   xdp_port_toml("eth1", link.name), tmp_path / "nf")
    nf.wait_running()
    assert xdp_prog(link.name, nfns.name) == "xsk_def_prog"
    cap = Capture(netlab, client, link.peer, tmp_path / "client.pcap", "icmp")
    out = client.run(["ping", "-c", "10", "-i", "0.2", "-W", "2", "10.79.0.1"], timeout=30)
    lines = cap.stop()
    log = nf.stop()
    assert received(out.stdout) == 10, out.stdout + log
    assert "DUP!" not in out.stdout
    replies = [line for line in lines if "ICMP echo reply" in line]
    assert len(replies) == 10 and all(line.split()[1] == link.mac for line in replies), lines
    assert "via AF_XDP, copy mode" in log, log
    assert xdp_prog(link.name, nfns.name) is None          # detached at the end of the run


def test_nd_responder_answers_ping6_over_af_xdp(netlab: NetLab, tmp_path: Path) -> None:
    from test_e2e_linux import Capture, RunningNf, received
    need_xdp()
    need_tool("ping", "apt-get install iputils-ping")
    nfns, client = netlab.namespace("nf"), netlab.namespace("cli")
    link = netlab.veth(ns=nfns, peer_ns=client, peer_addr="fd00:7a::2/64")
    nf = RunningNf(netlab, nfns, EXAMPLES / "nd-responder" / "nd_responder.py",
                   xdp_port_toml("eth1", link.name), tmp_path / "nf",
                   env={"NFKIT_ND_ADDRESSES": "fd00:7a::1"})
    nf.wait_running()
    cap = Capture(netlab, client, link.peer, tmp_path / "client.pcap", "icmp6")
    out = client.run(["ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", "fd00:7a::1"], timeout=30)
    neigh = client.ip("-6", "neigh", "show", "fd00:7a::1", "dev", link.peer)
    lines = cap.stop()
    log = nf.stop()
    assert received(out.stdout) == 5, out.stdout + log
    assert f"lladdr {nf.mac('eth1')}" in neigh, neigh
    assert sum("echo reply" in line for line in lines) == 5, "\n".join(lines)


def multiqueue_veth(netlab: NetLab, queues: int) -> Veth:
    """A veth pair with ``queues`` receive/transmit queues on each end (both here); the
    sender's flow hash picks the queue a frame arrives on."""
    n = len(netlab.links)
    name, peer = f"nfq{os.getpid() % 10000}{n}"[:15], f"nfr{os.getpid() % 10000}{n}"[:15]
    q = ["numrxqueues", str(queues), "numtxqueues", str(queues)]
    subprocess.run(["ip", "link", "add", name, *q, "type", "veth", "peer", "name", peer, *q],
                   check=True)
    link = Veth(name, peer, None, None)
    netlab.links.append(link)
    for end in (name, peer):
        subprocess.run(["ip", "link", "set", "dev", end, "up"], check=True)
    netlab.wait_up(link)
    return link


def test_two_queues_two_cores_forward_every_packet_exactly_once(netlab: NetLab) -> None:
    """Two cores on interface queues 0 and 1 (with worker processes: the master opens one,
    a worker the other, each its own pool and UMEM): every frame sent is forwarded back
    exactly once and both queues took a share of the 64 flows."""
    import threading

    from test_multicore import free_port, scrape, total
    need_xdp()
    pair = multiqueue_veth(netlab, 2)
    mport = free_port()
    rt = Runtime.build(RuntimeConfig.from_toml_text(textwrap.dedent(f"""
        app_name = "xdp-2q"
        master_core = 0
        duration = 15
        [metrics]
        listen = "127.0.0.1:{mport}"
        interval = 0.05
        [[ports]]
        name = "eth1"
        device = "net_af_xdp0"
        args = "iface={pair.name},start_queue=0,queue_count=2"
        cores = [0, 1]
        rxd = 1024
    """)))
    rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
    s = raw_socket(pair.peer)
    n = 600
    sent = threading.Event()

    def sender() -> None:
        time.sleep(1.5)                      # the run (and the worker) has started
        for i in range(n):
            s.send(udp_frame(i, 7000 + i % 64))
        sent.set()

    seen: dict[str, object] = {}

    def check() -> None:
        if sent.is_set() and (rt.metrics.snapshot().total("tx_packets") >= n
                              or time.monotonic() > deadline):
            time.sleep(0.2)                  # > 2 publish intervals: every core up to date
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
    assert res.ports["eth1"]["tx_dropped"] == 0
    per_core = [total(seen["samples"], "nfkit_port_packets_total", port="eth1", dir="rx", core=c)
                for c in ("0", "1")]
    assert all(c > 0 for c in per_core), per_core     # RSS (the flow hash) used both queues
    assert xdp_prog(pair.name) is None


# -- backends -------------------------------------------------------------------------

def test_net_af_xdp0_is_nfkits_driver_unless_the_backend_is_dpdk() -> None:
    from nfkit.ports.base import driver_of
    assert driver_of("net_af_xdp0", "auto") == driver_of("net_af_xdp0", "native") == "af_xdp"
    assert driver_of("af_xdp:eth0", "auto") == "af_xdp"
    assert driver_of("net_af_xdp0", "dpdk") == "dpdk"


DPDK_ECHO = """
import socket, sys, textwrap, threading, time
import nfkit
from nfkit.config import RuntimeConfig
from nfkit.runtime import Runtime
iface, peer = sys.argv[1:3]
rt = Runtime.build(RuntimeConfig.from_toml_text(textwrap.dedent(f'''
    app_name = "dpdk-xdp"
    master_core = 0
    duration = 8
    backend = "dpdk"
    [[ports]]
    name = "eth1"
    device = "net_af_xdp0"
    args = "iface={iface},start_queue=0,queue_count=1"
    cores = [0]
''')))
print("driver", rt.ports["eth1"].driver, flush=True)
rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
s.bind((peer, 0x88B5))
def send():
    time.sleep(1.5)
    for i in range(50):
        s.send(bytes.fromhex("020000000002020000000001") + b"\\x88\\xb5" + i.to_bytes(4, "big") + bytes(50))
    time.sleep(1)
    rt.stop("sent")
threading.Thread(target=send).start()
res = rt.execute()
print("ports", res.ports["eth1"]["rx_packets"], res.ports["eth1"]["tx_packets"], flush=True)
"""


def test_backend_dpdk_opens_net_af_xdp0_through_dpdks_pmd(pair: Veth) -> None:
    """backend = "dpdk": the same config goes through DPDK 22.11's af_xdp PMD (in a child
    process: EAL once per process) and echoes the frames back."""
    from test_dpdk import need_dpdk
    need_dpdk()
    need(Path("/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0/librte_net_af_xdp.so").exists()
         or bool(subprocess.run(["sh", "-c", "ls /usr/lib/*/dpdk/*/librte_net_af_xdp.so"],
                                capture_output=True).stdout),
         "the system DPDK has no af_xdp PMD", "apt-get install dpdk (librte-net-af-xdp23)")
    rs = raw_socket(pair.peer)
    proc = subprocess.run([sys.executable, "-c", DPDK_ECHO, pair.name, pair.peer],
                          capture_output=True, text=True, timeout=120)
    back = raw_recv(rs, seq_of, 50, timeout=2)
    rs.close()
    assert "driver dpdk" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert sorted(back) == list(range(50))   # each echoed once (the kernel may add chatter)
    m = re.search(r"ports (\d+) (\d+)", proc.stdout)
    assert m and int(m.group(1)) == int(m.group(2)) >= 50, proc.stdout


def test_frame_accounting_is_checked_at_close(pair: Veth) -> None:
    """Counts that disagree with the frames the kernel held fail the close (a driver bug
    must not pass silently); the frames still go back to the pool."""
    pool = Mempool(capacity=512)
    port = xport(pair.name, pool)
    q = port.queues[0]
    assert isinstance(q, axp.AfXdpQueue)
    q.in_fill += 1                           # what a lost frame would look like
    with pytest.raises(PortError, match=r"frame accounting is off at close: the kernel held "
                                        r"\d+ frames, the counts say \d+"):
        port.close()
    assert pool.in_use == 0


def test_oversize_packets_in_a_burst_larger_than_the_tx_ring(pair: Veth) -> None:
    """Rejected (oversize) packets early in a burst that needs several TX ring fills: every
    good packet still goes out, and only the oversize ones are dropped."""
    pool = Mempool(capacity=1024)
    port = xport(pair.name, pool, txd=64)
    frames = [marked(i, 1600 if i in (1, 70) else 60) for i in range(200)]
    slots = pool.alloc_slots(len(frames))
    for s, f in zip(slots.tolist(), frames):
        pool.data[s, pool.data_off[s]:pool.data_off[s] + len(f)] = np.frombuffer(f, np.uint8)
        pool.data_len[s] = len(f)
    rs = raw_socket(pair.peer)
    port.queues[0].transmit_slots(pool, slots)
    back = raw_recv(rs, seq_of, 198, timeout=3)
    rs.close()
    c = port.counters()
    port.close()
    assert sorted(back) == [i for i in range(200) if i not in (1, 70)]
    assert (c.tx_packets, c.tx_dropped) == (198, 2)
    assert pool.in_use == 0


def test_zero_copy_required_on_a_driver_without_it_says_so(pair: Veth) -> None:
    pool = Mempool(capacity=256)
    with pytest.raises(PortError, match=r"zero_copy=1 but the nfa\S+ driver has no AF_XDP "
                                        r"zero-copy support"):
        xport(pair.name, pool, args="zero_copy=1")
    assert pool.in_use == 0 and xdp_prog(pair.name) is None


def test_force_copy_busy_polling_and_promiscuous(pair: Veth) -> None:
    """force_copy and busy_budget open and receive; promiscuous mode is on while the port
    is open and off after it."""
    pool = Mempool(capacity=512)
    port = xport(pair.name, pool, args="force_copy=1,busy_budget=64,xdp_mode=native",
                 promiscuous=True)
    assert int(Path(f"/sys/class/net/{pair.name}/flags").read_text(), 16) & 0x100   # IFF_PROMISC
    rs = raw_socket(pair.peer)
    for i in range(10):
        rs.send(marked(i))
    got = receive_all([port.queues[0]], seq_of, 10, timeout=3)[0]
    rs.close()
    assert sorted(got) == list(range(10))
    assert port.queues[0].zero_copy is False
    port.close()
    assert not int(Path(f"/sys/class/net/{pair.name}/flags").read_text(), 16) & 0x100
    assert pool.in_use == 0
