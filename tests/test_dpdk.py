"""The DPDK backend (issue 6): EAL arguments, backend choice, the examples on DPDK's PMDs
(checked against the native backend's output and with Scapy/tcpdump), net_ring with
leak checks, ping4d on net_af_packet answering Linux ``ping``, and start-up errors.

EAL can be initialised once per process, so everything that starts DPDK runs in a
subprocess (``python -m nfkit.cli run`` or a small driver script).  The tests that need
DPDK skip with the reason when it is not installed -- except under ``CI=true``, where they
fail: CI installs DPDK (``apt-get install dpdk libdpdk-dev pkg-config``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.utils import rdpcap

from nfkit.config import RuntimeConfig
from nfkit.ports.base import PortError, driver_of, uses_dpdk
from nfkit.ports.dpdk import eal_args, no_huge_megabytes
from nfkit.testing.skips import need, need_tool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NFKIT = [sys.executable, "-m", "nfkit.cli"]

_built: list[str | None] = []


def need_dpdk() -> None:
    """Build the shim once (in a subprocess: no DPDK in the test process); skip -- or under
    CI=true fail -- when DPDK, pkg-config, cffi or the compiler is missing."""
    if not _built:
        proc = subprocess.run([sys.executable, "-m", "nfkit.ports._dpdk_build"],
                              capture_output=True, text=True, timeout=300)
        _built.append(None if proc.returncode == 0 else (proc.stderr or proc.stdout).strip())
    need(_built[0] is None, f"the DPDK backend cannot be built: {_built[0]}",
         "apt-get install dpdk libdpdk-dev pkg-config gcc; pip install 'nfkit[dpdk]'")


def config(text: str, source: str = "t.toml") -> RuntimeConfig:
    return RuntimeConfig.from_toml_text(textwrap.dedent(text), source)


TWO = """
    app_name = "app"
    master_core = 1
    dpdk_args = "-v --log-level eal:8"
    #BACKEND
    [[ports]]
    name = "pci"
    device = "0000:00:08.0"
    args = "ignored=1"
    cores = [1]
    [[ports]]
    name = "pcap"
    device = "net_pcap0"
    args = "rx_pcap=in.pcap,tx_pcap=/abs/out.pcap"
    cores = [1]
"""


# -- pure: no DPDK needed --------------------------------------------------------------------

def test_backend_field_defaults_validates_and_dumps() -> None:
    assert config(TWO).backend == "auto"
    assert config(TWO.replace("#BACKEND", 'backend = "dpdk"')).backend == "dpdk"
    from nfkit.config import ConfigError
    with pytest.raises(ConfigError, match=r't.toml: backend: expected one of "auto", "dpdk", '
                                          r'"native", got "spdk"'):
        config(TWO.replace("#BACKEND", 'backend = "spdk"'))
    c = config(TWO.replace("#BACKEND", 'backend = "native"'))
    assert RuntimeConfig.from_toml_text(c.dump()) == c
    assert 'backend = "native"' in c.dump(exclude_defaults=True)


def test_backend_decides_the_driver() -> None:
    assert driver_of("0000:00:08.0") == "dpdk" and driver_of("0a:00.1") == "dpdk"
    assert driver_of("net_pcap0") == "pcap" and driver_of("net_ring0") == "memory"
    assert driver_of("net_foo0") is None                      # auto: vdevs stay native
    for dev in ("net_pcap0", "net_ring0", "net_null0", "net_af_packet0", "net_tap0",
                "net_vhost0", "0000:00:08.0"):
        assert driver_of(dev, "dpdk") == "dpdk"
        assert uses_dpdk(dev, "dpdk")
    assert driver_of("0000:00:08.0", "native") is None
    assert not uses_dpdk("net_pcap0") and not uses_dpdk("net_pcap0", "native")
    with pytest.raises(PortError, match="unknown backend 'spdk'"):
        driver_of("net_pcap0", "spdk")


def test_eal_args_are_capsules_for_the_dpdk_ports_plus_memory(tmp_path: Path) -> None:
    # auto: only the PCI port goes to DPDK; the pcap port must not be created in EAL too.
    c = config(TWO)
    argv, added = eal_args(c, hugepages=True)
    assert argv == ["app", "--proc-type", "primary", "--file-prefix", "app", "-a", "0000:00:08.0",
                    "--main-lcore", "1", "-l", "1", "-v", "--log-level", "eal:8"]
    assert added == []
    # dpdk: every port, capsule's order; no hugepages -> --no-huge and a sized -m, before
    # dpdk_args (which come last, as in capsule)
    c = config(TWO.replace("#BACKEND", 'backend = "dpdk"'))
    c._base_dir = tmp_path
    argv, added = eal_args(c, hugepages=False)
    m = str(no_huge_megabytes(c, 2))
    assert added == ["--no-huge", "-m", m]
    assert argv == ["app", "--proc-type", "primary", "--file-prefix", "app",
                    "-a", "0000:00:08.0",
                    "--vdev", f"net_pcap0,rx_pcap={tmp_path / 'in.pcap'},tx_pcap=/abs/out.pcap",
                    "--main-lcore", "1", "-l", "1", "--no-huge", "-m", m,
                    "-v", "--log-level", "eal:8"]
    # the pool decides -m: 65535 mbufs of 2176 bytes do not fit 256 MiB
    assert int(m) >= 65535 * 2176 // (1 << 20) + 64 and int(m) % 64 == 0
    # secondary + app_group; no PCI port -> --no-pci; the user's memory options win
    c = config("""
        app_name = "b"
        app_group = "grp"
        secondary = true
        master_core = 0
        backend = "dpdk"
        dpdk_args = "-m 512"
        [[ports]]
        name = "r"
        device = "net_ring0"
        cores = [0]
    """)
    argv, added = eal_args(c, hugepages=False)
    assert argv == ["b", "--proc-type", "secondary", "--file-prefix", "grp", "--vdev", "net_ring0",
                    "--main-lcore", "0", "-l", "0", "--no-pci", "-m", "512"]
    assert added == ["--no-pci"]


def test_without_dpdk_a_dpdk_port_says_what_to_install(tmp_path: Path) -> None:
    """No pkg-config/DPDK on PATH: importing works, opening a DPDK device is a clear error."""
    script = textwrap.dedent("""
        import nfkit.ports.dpdk as d          # importing never fails
        from nfkit.config import RuntimeConfig
        from nfkit.runtime import Runtime
        cfg = RuntimeConfig.from_toml_text('app_name = "x"\\nmaster_core = 0\\nbackend = "dpdk"\\n'
            '[[ports]]\\nname = "p"\\ndevice = "net_null0"\\ncores = [0]\\n')
        try:
            Runtime.build(cfg)
        except d.DpdkUnavailable as exc:
            print("ERR", exc)
    """)
    env = dict(os.environ, PATH=str(tmp_path), NFKIT_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ERR DPDK ports are not available" in proc.stdout
    assert "apt-get install dpdk libdpdk-dev pkg-config" in proc.stdout
    assert "pip install 'nfkit[dpdk]'" in proc.stdout


# -- the examples on DPDK's PMDs --------------------------------------------------------------

def run_example(tmp_path: Path, name: str, app: str, conf: str, backend: str,
                timeout: float = 60) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Copy the example, put ``backend`` at the top of its config and run it."""
    work = tmp_path / f"{name}-{backend}"
    shutil.copytree(EXAMPLES / name, work)
    cfg = work / conf
    cfg.write_text(f'backend = "{backend}"\n' + cfg.read_text())
    proc = subprocess.run(NFKIT + ["run", app, "-c", conf, "--no-status"], cwd=work,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work, proc


def summary(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The port and pipeline counter lines of ``nfkit run``."""
    return [line.strip() for line in proc.stdout.splitlines()
            if line.strip().startswith(("port ", "pipeline "))]


EXAMPLE_RUNS = [
    ("ping4d", "ping4d.py", "ping4d.toml", ["replies.pcap"]),
    ("l2fwd", "l2fwd.py", "l2fwd.toml", ["out.pcap"]),
    ("nat64", "nat64.py", "nat64.toml", ["to-v4.pcap", "to-v6.pcap"]),
    ("firewall", "firewall.py", "firewall.toml", ["allowed.pcap"]),
    ("pktdump", "pktdump.py", "pktdump.toml", ["out4.pcap", "out6.pcap"]),
]


@pytest.mark.parametrize("name,app,conf,outputs", EXAMPLE_RUNS, ids=[r[0] for r in EXAMPLE_RUNS])
def test_example_on_dpdk_pcap_matches_native(tmp_path: Path, name: str, app: str, conf: str,
                                             outputs: list[str]) -> None:
    need_dpdk()
    native, nproc = run_example(tmp_path, name, app, conf, "native")
    dpdk, dproc = run_example(tmp_path, name, app, conf, "dpdk")
    assert "stopped: drained" in dproc.stdout, dproc.stdout + dproc.stderr
    assert "EAL: " + name in dproc.stderr or "--vdev net_pcap0" in dproc.stderr
    assert summary(dproc) == summary(nproc)
    for out in outputs:
        want = [bytes(p) for p in rdpcap(str(native / out))]
        got = [bytes(p) for p in rdpcap(str(dpdk / out))]
        assert got == want and got, out
    if name == "pktdump":
        assert dproc.stdout.count("Ethernet(") == nproc.stdout.count("Ethernet(") == 20


def test_ping4d_on_dpdk_pcap_independently(tmp_path: Path) -> None:
    """The replies DPDK's pcap PMD wrote, judged by Scapy and tcpdump alone."""
    need_dpdk()
    work, proc = run_example(tmp_path, "ping4d", "ping4d.py", "ping4d.toml", "dpdk")
    assert "received 9 sent 4 emitted 0 dropped 0 aborted 5 replaced 4" in proc.stdout
    replies = rdpcap(str(work / "replies.pcap"))
    requests = [p for p in rdpcap(str(EXAMPLES / "ping4d" / "echo.pcap")) if IP in p]
    assert len(replies) == len(requests) == 4
    for req, rep in zip(requests, replies):
        assert rep[ICMP].type == 0 and (rep[ICMP].id, rep[ICMP].seq) == (req[ICMP].id, req[ICMP].seq)
        assert (rep[IP].src, rep[IP].dst, rep.src, rep.dst) == (req[IP].dst, req[IP].src, req.dst, req.src)
        assert bytes(rep[ICMP].payload) == bytes(req[ICMP].payload)
        rebuilt = rep.copy()
        del rebuilt[IP].chksum, rebuilt[ICMP].chksum
        assert bytes(rebuilt.__class__(bytes(rebuilt))) == bytes(rep)   # checksums valid
    out = subprocess.run([need_tool("tcpdump"), "-nn", "-r", str(work / "replies.pcap")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == 4 and all("ICMP echo reply" in line for line in out)


# -- net_ring: a long run, aborts, no leaks ---------------------------------------------------

RING_DRIVER = r"""
import json, sys
import nfkit
from nfkit.config import RuntimeConfig
from nfkit.packets import Ethernet
from nfkit.ports import dpdk
from nfkit.ports.null import udp_template
from nfkit.runtime import Runtime

cfg = RuntimeConfig.from_toml_text('''
app_name = "nfkit-test-ring"
master_core = 0
backend = "dpdk"
batch_size = 64
log_level = "warning"
[mempool]
capacity = 4095
cache_size = 64
[[ports]]
name = "r"
device = "net_ring0"
cores = [0]
''')
rt = Runtime.build(cfg)
port = rt.port("r")
q = port.queues[0]
pool = rt.pool
N = 300
frames = []
for i in range(N):
    f = bytearray(udp_template(64 + (i % 7)))
    f[-1] = i % 251
    frames.append(bytes(f))
q.transmit([nfkit.Mbuf.from_bytes(f, pool) for f in frames])
first = q.receive(512)
back = [m.to_bytes() for m in first]
nfkit.Mbuf.free_bulk(first)
assert back == frames, "net_ring changed or lost packets"
q.transmit([nfkit.Mbuf.from_bytes(f, pool) for f in frames])

aborted = [0]
def swap(m):
    eth = m.parse(Ethernet)
    if eth.envelope.to_bytes()[-1] % 5 == 0 and aborted[0] < 40:   # some packets abort
        aborted[0] += 1
        raise ValueError("aborted on purpose")
    eth.swap_addresses()
    return m

# a slot listed twice (or not allocated) is refused whole, as Mempool.free_slots does
import numpy as np
from nfkit.errors import DoubleFree
m = nfkit.Mbuf.from_bytes(frames[0], pool)
double_free = None
try:
    q.transmit_slots(pool, np.array([m.slot, m.slot], dtype=np.int32))
except DoubleFree as exc:
    double_free = str(exc)
assert pool.in_use == 1 and dpdk.mempool_in_use() == 300 + q.stashed, (pool.in_use, dpdk.mempool_in_use())
m.free()

p = nfkit.Poll(q).map(swap).send(q)
peak = 0
for i in range(4000):
    p.run_once()
    peak = max(peak, dpdk.mempool_in_use())
left = q.receive(1024)
alive = len(left)
nfkit.Mbuf.free_bulk(left)
before_close = dpdk.mempool_in_use()
stashed = q.stashed
rt.close()
print(json.dumps({"stashed": stashed, "double_free": double_free, "aborted": aborted[0], "alive": alive, "stats": p.stats.as_dict(),
                  "peak": peak, "nfkit_in_use": pool.in_use, "dpdk_before_close": before_close,
                  "dpdk_after_close": dpdk.mempool_in_use(), "hw": port.hw_counters(),
                  "counters": port.counters().as_dict(), "mac": str(port.mac_addr)}))
"""


def test_net_ring_long_run_with_aborts_leaks_nothing() -> None:
    need_dpdk()
    proc = subprocess.run([sys.executable, "-c", RING_DRIVER], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "appears twice" in r["double_free"]
    assert r["aborted"] == 40 and r["stats"]["abort"] == 40
    assert r["alive"] == 300 - 40                # every packet not aborted still circulates
    assert r["stats"]["received"] > 4000 * 64 // 2
    assert r["nfkit_in_use"] == 0                # nfkit's pool: nothing left
    # Between calls the only rte_mbufs in use are the ring's and the queue's stash...
    assert 0 < r["stashed"] <= 512 and r["dpdk_before_close"] == r["stashed"]
    assert r["peak"] <= 300 + 512
    assert r["dpdk_after_close"] == 0            # ...and close frees the stash too
    hw = r["hw"]
    assert hw["opackets"] == r["counters"]["tx_packets"] > 0
    assert hw["ipackets"] == r["counters"]["rx_packets"]
    assert r["counters"]["rx_dropped"] == hw["imissed"] + hw["rx_nombuf"] == 0


# -- net_af_packet on a veth pair: Linux ping gets answers -----------------------------------

def test_ping4d_on_af_packet_answers_linux_ping(tmp_path: Path, netlab) -> None:  # noqa: ANN001
    need_dpdk()
    client = netlab.namespace("cl")
    link = netlab.veth(peer_ns=client, peer_addr="10.77.0.2/24")
    client.ip("neigh", "replace", "10.77.0.1", "lladdr", link.mac, "dev", link.peer, "nud",
              "permanent")
    work = tmp_path / "ping4d"
    shutil.copytree(EXAMPLES / "ping4d", work)
    (work / "af.toml").write_text(textwrap.dedent(f"""
        app_name = "nfkit-test-afp{os.getpid()}"
        master_core = 0
        backend = "dpdk"
        [mempool]
        capacity = 4095
        cache_size = 64
        [[ports]]
        name = "eth1"
        device = "net_af_packet0"
        args = "iface={link.name}"
        cores = [0]
    """))
    nf = subprocess.Popen(NFKIT + ["run", "ping4d.py", "-c", "af.toml", "--no-status"], cwd=work,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        ok = None
        while time.monotonic() < deadline and nf.poll() is None:
            ok = client.run(["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.77.0.1"], timeout=20)
            if ok.returncode == 0:
                break
        assert nf.poll() is None, nf.communicate()
        assert ok is not None and ok.returncode == 0, ok.stdout + ok.stderr
        assert " 0% packet loss" in ok.stdout and "ttl=255" in ok.stdout
    finally:
        if nf.poll() is None:
            nf.send_signal(signal.SIGINT)
        out, err = nf.communicate(timeout=20)
    assert nf.returncode == 0, out + err
    assert "stopped: signal SIGINT" in out
    assert "net_af_packet0,iface=" + link.name in err


# -- errors: typed, clean, nothing half-initialised -------------------------------------------

def cli_error(tmp_path: Path, toml: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "ok.py").write_text(
        "import nfkit\n"
        "def main(rt):\n"
        "    rt.add_pipeline_to_port('eth1', lambda q: nfkit.Poll(q).send(q))\n")
    (tmp_path / "bad.toml").write_text(textwrap.dedent(toml))
    proc = subprocess.run(NFKIT + ["run", "ok.py", "-c", "bad.toml", "--no-status"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Error: " in proc.stderr, proc.stderr
    return proc


def test_unknown_pci_address_is_a_clear_error(tmp_path: Path) -> None:
    need_dpdk()
    proc = cli_error(tmp_path, f"""
        app_name = "nfkit-test-pci{os.getpid()}"
        master_core = 0
        [mempool]
        capacity = 1023
        [[ports]]
        name = "eth1"
        device = "0000:7f:1f.7"
        cores = [0]
        [[ports]]
        name = "eth2"
        device = "net_null0"
        cores = [0]
    """)
    assert "port eth1 (0000:7f:1f.7): no DPDK port for PCI device 0000:7f:1f.7" in proc.stderr
    assert "-a 0000:7f:1f.7" in proc.stderr and "--vdev" not in proc.stderr   # auto


def test_bad_vdev_args_name_the_port_and_dpdks_reason(tmp_path: Path) -> None:
    need_dpdk()
    proc = cli_error(tmp_path, f"""
        app_name = "nfkit-test-vdev{os.getpid()}"
        master_core = 0
        backend = "dpdk"
        [mempool]
        capacity = 1023
        [[ports]]
        name = "eth0"
        device = "net_null0"
        cores = [0]
        [[ports]]
        name = "eth1"
        device = "net_pcap1"
        args = "rx_pcap=missing.pcap"
        cores = [0]
    """)
    assert "port eth1 (net_pcap1,rx_pcap=missing.pcap): DPDK could not create the device" \
        in proc.stderr
    assert "missing.pcap" in proc.stderr.split("Error: ", 1)[1]   # DPDK's reason, quoted


def test_eal_failure_is_a_clear_error(tmp_path: Path) -> None:
    need_dpdk()
    proc = cli_error(tmp_path, f"""
        app_name = "nfkit-test-eal{os.getpid()}"
        secondary = true
        master_core = 0
        backend = "dpdk"
        [mempool]
        capacity = 1023
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0]
    """)
    assert "Error: rte_eal_init(nfkit-test-eal" in proc.stderr
    assert "--proc-type secondary" in proc.stderr
    assert "  DPDK: " in proc.stderr                                 # DPDK's own lines


def test_too_many_cores_for_the_device(tmp_path: Path) -> None:
    """DPDK's pcap PMD has one queue pair per rx_pcap/tx_pcap: two cores cannot have one each."""
    need_dpdk()
    from nfkit.pcap import PcapWriter
    PcapWriter(tmp_path / "in.pcap").close()
    proc = cli_error(tmp_path, f"""
        app_name = "nfkit-test-q{os.getpid()}"
        master_core = 0
        backend = "dpdk"
        [workers]
        mode = "single"
        [mempool]
        capacity = 1023
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=in.pcap,tx_pcap=out.pcap"
        cores = [0, 1]
    """)
    assert "port eth1 (net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap): 2 cores need 2 RX/TX queue " \
           "pairs; the device (net_pcap) has 1 RX and 1 TX queues" in proc.stderr


REOPEN_DRIVER = r"""
import nfkit
from nfkit.config import RuntimeConfig
from nfkit.ports import dpdk
from nfkit.runtime import Runtime
T = '''app_name = "nfkit-test-reopen"
master_core = 0
backend = "dpdk"
log_level = "warning"
[mempool]
capacity = 2047
[[ports]]
name = "p"
device = "net_null0"
args = "size=%d"
cores = [0]
'''
for size in (64, 128, 100):
    rt = Runtime.build(RuntimeConfig.from_toml_text(T % size))
    q = rt.port("p").queues[0]
    ms = q.receive(4)
    print(size, [len(m) for m in ms], dpdk.mempool_in_use() - q.stashed)
    nfkit.Mbuf.free_bulk(ms)
    rt.close()
print("after", dpdk.mempool_in_use())
"""


def test_a_second_runtime_in_one_process_recreates_its_devices() -> None:
    """EAL stays (once per process); closed virtual devices are removed and created again
    with the new runtime's arguments."""
    need_dpdk()
    proc = subprocess.run([sys.executable, "-c", REOPEN_DRIVER], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split("\n")[:4] == ["64 [64, 64, 64, 64] 0", "128 [128, 128, 128, 128] 0",
                                           "100 [100, 100, 100, 100] 0", "after 0"]
    assert proc.stderr.count("EAL: Detected CPU lcores") == 1


def test_mbuf_pool_too_big_for_eal_memory(tmp_path: Path) -> None:
    need_dpdk()
    proc = cli_error(tmp_path, f"""
        app_name = "nfkit-test-mem{os.getpid()}"
        master_core = 0
        backend = "dpdk"
        dpdk_args = "--no-huge -m 64"
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0]
    """)
    assert "Error: rte_pktmbuf_pool_create(65535 mbufs, cache 0) failed" in proc.stderr
    assert "lower [mempool] capacity or give EAL more memory" in proc.stderr


def test_one_queue_pair_per_core_of_the_port(tmp_path: Path) -> None:
    """Two cores on one DPDK port: two queue pairs (RSS where the device has it), each
    core's pipeline gets its own traffic; the device's counters are the port's."""
    need_dpdk()
    (tmp_path / "fwd.py").write_text(
        "import nfkit\n"
        "def main(rt):\n"
        "    rt.add_pipeline_to_port('eth1', lambda q: nfkit.Poll(q).send(q))\n")
    (tmp_path / "mq.toml").write_text(textwrap.dedent(f"""
        app_name = "nfkit-test-mq{os.getpid()}"
        master_core = 0
        backend = "dpdk"
        duration = 1
        [workers]
        mode = "single"
        [mempool]
        capacity = 2047
        cache_size = 64
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0, 1]
    """))
    proc = subprocess.run(NFKIT + ["run", "fwd.py", "-c", "mq.toml", "--no-status"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 queue(s) on cores [0, 1]" in proc.stderr
    from nfkit.ports.dpdk import hugepages_available
    if not hugepages_available():
        assert "no free hugepages mounted: EAL runs with --no-huge -m 256" in proc.stderr
    received = [int(line.split("received ")[1].split()[0]) for line in proc.stdout.splitlines()
                if line.strip().startswith("pipeline ")]
    assert len(received) == 2 and all(n > 1000 for n in received), proc.stdout


def test_a_failing_build_shows_the_compiler_output(tmp_path: Path) -> None:
    need_dpdk()
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\necho '_dpdk_shim.c:1:1: error: this compiler refuses' >&2\nexit 1\n")
    cc.chmod(0o755)
    env = dict(os.environ, CC=str(cc), NFKIT_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "nfkit.ports._dpdk_build"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "error: compiling nfkit's DPDK shim (DPDK 22.11" in proc.stderr
    assert "--- compiler output ---" in proc.stderr
    assert "_dpdk_shim.c:1:1: error: this compiler refuses" in proc.stderr
    assert not list((tmp_path / "cache").glob("_nfkit_dpdk_*"))   # nothing half-built kept


ZERO_DRIVER = r"""
import nfkit
from nfkit.config import RuntimeConfig
from nfkit.runtime import Runtime
rt = Runtime.build(RuntimeConfig.from_toml_text('''app_name = "nfkit-test-zero"
master_core = 0
backend = "dpdk"
batch_size = 16
log_level = "warning"
[mempool]
capacity = 2047
[[ports]]
name = "p"
device = "net_null0"
cores = [0]
'''))
q = rt.port("p").queues[0]
zero = (len(q.receive_slots(0)), len(q.receive(0)), q.counters.rx_packets, rt.pool.in_use)
batch = q.receive_slots()
print(zero, len(batch))
rt.pool.free_slots(batch.slots)
rt.close()
"""


def test_receive_of_zero_packets_receives_none() -> None:
    """``receive_slots(0)`` asks for no packets (0 is not "the batch size")."""
    need_dpdk()
    proc = subprocess.run([sys.executable, "-c", ZERO_DRIVER], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split("\n")[0] == "(0, 0, 0, 0) 16"
