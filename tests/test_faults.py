"""Fault injection (issue #11): real ``nfkit run`` jobs -- two cores, pcap inputs, tx_pcap
outputs -- hit by process, disk and input faults.  Every case ends with outputs complete
and readable (nfkit's reader and ``tcpdump -r``, to the last record) and the run's totals
equal to what the files hold; the cases that are errors exit 1 with a message saying what.

Run only these: ``make faults`` (or ``pytest tests/test_faults.py``); docs/testing.md lists
what each case shows.  They need root (tmpfs mounts), tcpdump and CPUs 0 and 1.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

import nfkit
from nfkit import Mbuf
from nfkit.multicore import available_cpus
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.pcap import PcapReader, PcapWriter
from nfkit.testing import skips
from nfkit.testing.netns import NetLab

NFKIT = [sys.executable, "-m", "nfkit.cli"]
APP = "import nfkit\n\ndef main(runtime):\n" \
      "    runtime.add_pipeline_to_port('eth1', lambda q: nfkit.Poll(q).send(q))\n"
#: records per input file: ~0.1 s of reading at the measured 1-2 Mpps per core
N = 100_000


def _frame() -> bytes:
    m = Mbuf.alloc(nfkit.Mempool(capacity=1))
    m.push(Ethernet).push(Ipv4).push(Udp).reconcile_all()
    return m.to_bytes() + bytes(58)          # 100-byte frames


def write_input(path: Path, n: int = N) -> None:
    """``n`` records in one write (PcapWriter per record would take seconds)."""
    f = _frame()
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(hdr + b"".join(struct.pack("<IIII", 1_000_000 + i // 1000, i % 1000,
                                                len(f), len(f)) + f for i in range(n)))


def need_setup() -> str:
    skips.need_root("the fault-injection suite mounts file systems and signals processes")
    skips.need({0, 1} <= available_cpus(), "the fault-injection suite needs CPUs 0 and 1")
    return skips.need_tool("tcpdump")


def records(path: Path, tcpdump: str) -> int:
    """The records of a capture that must be whole: nfkit's reader finds no damage and
    tcpdump reads exactly as many, without complaint."""
    with PcapReader(path) as r:
        n = sum(1 for _ in r)
        assert r.error is None, f"{path}: {r.error}"
    p = subprocess.run([tcpdump, "-nn", "-r", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "truncated dump file" not in p.stderr, (path, p.stderr[-500:])
    # one line per record (tcpdump adds indented hex lines under frames it cannot decode)
    lines = [line for line in p.stdout.splitlines() if not line[:1].isspace()]
    assert len(lines) == n, (path, n)
    return n


def job(tmp: Path, *, ports: str, extra: str = "", workers: str = "") -> list[str]:
    (tmp / "app.py").write_text(APP)
    (tmp / "run.toml").write_text(f'app_name = "faults"\nmaster_core = 0\n{extra}\n'
                                  f"[workers]\n{workers}\n"
                                  f'[[ports]]\nname = "eth1"\n{ports}\ncores = [0, 1]\n')
    return NFKIT + ["run", "app.py", "-c", "run.toml", "--no-status"]


def start(tmp: Path, cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def worker_pid(master: subprocess.Popen[str], timeout: float = 20, writes: Path | None = None) -> int:
    """The pid of the worker (core 1) once it exists -- and, given the file it ``writes``,
    once it has written packets there: it is past start-up (a worker stopped during start-up
    holds the start until ``[workers] start_timeout``)."""
    deadline = time.monotonic() + timeout
    while writes is not None and time.monotonic() < deadline:
        if writes.exists() and writes.stat().st_size > 24:     # more than the pcap header
            break
        time.sleep(0.02)
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
        except OSError:
            kids = []
        for k in kids:
            try:
                if Path(f"/proc/{k}/comm").read_text().strip() == "faults-1":
                    return int(k)
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError("no worker process appeared")


def finish(p: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    assert "Traceback" not in err, err[-3000:]
    return p.returncode, out, err


def totals(out: str) -> dict[str, int]:
    """The run summary's port counters."""
    m = re.search(r"port eth1: rx (\d+) tx (\d+) dropped rx (\d+) tx (\d+) errors rx (\d+)", out)
    assert m, out
    return dict(zip(("rx", "tx", "rx_dropped", "tx_dropped", "rx_errors"), map(int, m.groups())))


def outputs(tmp: Path, tcpdump: str, name: str = "out") -> int:
    return sum(records(tmp / f"{name}-q{i}.pcap", tcpdump) for i in (0, 1))


@contextmanager
def tmpfs(path: Path, size: str = "1m", ro: bool = False) -> Iterator[Path]:
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        if ro:
            (path / "dumps").mkdir()
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


REPLAY = 'device = "net_pcap0"\nargs = "rx_pcap=a.pcap,rx_pcap=b.pcap,infinite_rx=1,tx_pcap=out.pcap"'


def replay_inputs(tmp: Path) -> None:
    write_input(tmp / "a.pcap", 2000)
    write_input(tmp / "b.pcap", 2000)


# -- process faults -------------------------------------------------------------------------

@pytest.mark.parametrize("restart", [False, True])
def test_worker_sigkill(tmp_path: Path, restart: bool) -> None:
    """SIGKILL of the worker mid-run.  Without restart: exit 1 naming the core and the
    signal, the summary still printed, and the dead worker's file repaired and counted by
    the master (its last record may have been cut short); with restart: exit 0, the new
    worker continues the file.  Either way tx == the records in the files; rx may be lower
    than tx by what the dead worker received after its last counter update (published every
    [metrics] interval), never higher."""
    tcpdump = need_setup()
    replay_inputs(tmp_path)
    p = start(tmp_path, job(tmp_path, ports=REPLAY, extra="duration = 3",
                            workers='restart = "on-failure"' if restart else ""))
    pid = worker_pid(p)
    time.sleep(1.2)
    os.kill(pid, signal.SIGKILL)
    code, out, err = finish(p)
    t = totals(out)
    assert t["tx"] == outputs(tmp_path, tcpdump) and t["tx"] > 0
    assert t["rx"] <= t["tx"]
    if restart:
        assert code == 0 and "restarting the worker" in err, err[-2000:]
    else:
        assert code == 1 and "core 1: the worker killed by SIGKILL" in err, err[-2000:]


def test_sigstop_of_worker_and_master(tmp_path: Path) -> None:
    """SIGSTOP (then SIGCONT after 0.5 s) of the worker, then of the master: the run goes
    on and ends normally, every counter equal to the files."""
    tcpdump = need_setup()
    replay_inputs(tmp_path)
    p = start(tmp_path, job(tmp_path, ports=REPLAY, extra="duration = 3"))
    pid = worker_pid(p)
    for target in (pid, p.pid):
        time.sleep(0.5)
        os.kill(target, signal.SIGSTOP)
        time.sleep(0.5)
        os.kill(target, signal.SIGCONT)
    code, out, err = finish(p)
    t = totals(out)
    assert code == 0, err[-2000:]
    assert t["rx"] == t["tx"] == outputs(tmp_path, tcpdump) > 0


def test_worker_stopped_through_shutdown_is_killed_and_its_file_repaired(tmp_path: Path) -> None:
    """A worker still SIGSTOPped when the run ends is killed after [workers] stop_timeout:
    exit 1 saying so; its file is whole and counted like a SIGKILLed worker's."""
    tcpdump = need_setup()
    replay_inputs(tmp_path)
    p = start(tmp_path, job(tmp_path, ports=REPLAY, extra="duration = 2",
                            workers="stop_timeout = 0.5"))
    os.kill(worker_pid(p, writes=tmp_path / "out-q1.pcap"), signal.SIGSTOP)
    code, out, err = finish(p)
    t = totals(out)
    assert code == 1 and "killed after 0.5s stop timeout" in err, err[-2000:]
    assert t["tx"] == outputs(tmp_path, tcpdump)


# -- input faults ---------------------------------------------------------------------------

def test_input_truncated_while_read(tmp_path: Path) -> None:
    """Both inputs cut short while the two cores read them: before, the reader (a memory
    mapping) died of SIGBUS.  Now every packet before the cut goes through, the cut is
    reported and counted as an input error (exit 1), and the totals equal the files."""
    tcpdump = need_setup()
    for f in ("a.pcap", "b.pcap"):
        write_input(tmp_path / f, 300_000)
    p = start(tmp_path, job(tmp_path, extra="stop_when_drained = true", ports=(
        'device = "net_pcap0"\nargs = "rx_pcap=a.pcap,rx_pcap=b.pcap,tx_pcap=out.pcap"')))
    worker_pid(p)
    time.sleep(0.3)
    for f, size in (("a.pcap", 10_000_000), ("b.pcap", 5_000_011)):
        os.truncate(tmp_path / f, size)
    code, out, err = finish(p)
    t = totals(out)
    assert code == 1 and "truncated while being read" in err, err[-2000:]
    assert t["rx"] == t["tx"] == outputs(tmp_path, tcpdump)
    assert t["rx_errors"] >= 1 and 0 < t["rx"] < 600_000


# -- disk faults ----------------------------------------------------------------------------

def test_output_disk_full(tmp_path: Path) -> None:
    """tx_pcap on a 1 MiB tmpfs: the run says the disk is full and exits 1; each file ends
    at a record boundary (before: mid-record, and exit 0 "drained"); tx counts exactly the
    records written and tx_dropped the packets that were not."""
    tcpdump = need_setup()
    write_input(tmp_path / "a.pcap", 20_000)
    write_input(tmp_path / "b.pcap", 20_000)
    with tmpfs(tmp_path / "full"):
        cmd = job(tmp_path, extra="stop_when_drained = true", ports=(
            'device = "net_pcap0"\nargs = "rx_pcap=a.pcap,rx_pcap=b.pcap,tx_pcap=full/out.pcap"'))
        code, out, err = finish(start(tmp_path, cmd))
        t = totals(out)
        assert code == 1 and "(the disk is full)" in err, err[-2000:]
        written = outputs(tmp_path / "full", tcpdump)
        assert t["rx"] == 40_000 and t["tx"] == written > 0
        assert t["tx_dropped"] == 40_000 - written
        lost = [int(n) for n in re.findall(r"(\d+) packets not written", err.splitlines()[-1])]
        assert sum(lost) == 40_000 - written, err[-2000:]


@pytest.mark.parametrize("what", ["tx_pcap", "pcap_dump_dir"])
def test_output_dir_read_only(tmp_path: Path, what: str) -> None:
    """A read-only output directory (root ignores chmod: a tmpfs remounted ro) is a
    start-up error naming the path, exit 1, nothing run."""
    need_setup()
    write_input(tmp_path / "a.pcap", 100)
    with tmpfs(tmp_path / "ro", ro=True):
        tx = "ro/out.pcap" if what == "tx_pcap" else "out.pcap"
        extra = 'pcap_dump = true\npcap_dump_dir = "ro/dumps"' if what != "tx_pcap" else ""
        cmd = job(tmp_path, extra="stop_when_drained = true\n" + extra, ports=(
            f'device = "net_pcap0"\nargs = "rx_pcap=a.pcap,tx_pcap={tx}"'))
        code, out, err = finish(start(tmp_path, cmd))
        assert code == 1 and "Read-only file system" in err, err[-2000:]
        assert str(tmp_path / "ro") in err and "stopped:" not in out


# -- timestamps -----------------------------------------------------------------------------

def test_timestamp_zero_is_kept(tmp_path: Path) -> None:
    """A record at 1970-01-01 00:00:00.000000 replayed through net_pcap keeps its time
    (before: 0 meant "not set" and the writer stamped the current time)."""
    f = _frame()
    with PcapWriter(tmp_path / "a.pcap") as w:
        w.write(f, 0)
        w.write(f, 1000)
    cmd = job(tmp_path, extra="stop_when_drained = true", ports=(
        'device = "net_pcap0"\nargs = "rx_pcap=a.pcap,tx_pcap=out.pcap"'))
    code, out, err = finish(start(tmp_path, cmd))
    assert code == 0, err[-2000:]
    got = [ts for i in (0, 1) for ts, _ in PcapReader(tmp_path / f"out-q{i}.pcap")]
    assert sorted(got) == [0, 1000]


# -- interface faults -----------------------------------------------------------------------

def test_interface_down_and_up_during_a_run(tmp_path: Path, netlab: NetLab) -> None:
    """An AF_PACKET port forwarding what its peer sends (with ``pcap_dump``) while its link
    goes down and up twice: the run ends normally; nothing arrives twice; the rx and tx
    dumps hold exactly the packets the port counted (rx, and tx + tx_dropped: a packet the
    down link refused is counted, and dumped as the NF sent it); the peer receives each
    frame the port sent, once."""
    import socket
    import threading
    from test_af_packet import marked, raw_socket, seq_of
    tcpdump = need_setup()
    pair = netlab.veth()
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "run.toml").write_text(
        'app_name = "faults"\nmaster_core = 0\nduration = 4\npcap_dump = true\n'
        f'pcap_dump_dir = "dumps"\n[[ports]]\nname = "eth1"\ndevice = "af_packet:{pair.name}"\n'
        "cores = [0]\n")
    (tmp_path / "dumps").mkdir()
    p = start(tmp_path, NFKIT + ["run", "app.py", "-c", "run.toml", "--no-status"])
    rx_dump = tmp_path / "dumps" / "port-eth1-core0-rx.pcap"
    deadline = time.monotonic() + 20
    while not rx_dump.exists() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)                                   # the run loop is polling

    tx_sock, rx_sock = raw_socket(pair.peer), raw_socket(pair.peer)
    rx_sock.settimeout(0.1)
    back: dict[int, int] = {}
    done = threading.Event()

    def collect() -> None:
        while not done.is_set():
            try:
                data, addr = rx_sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            k = seq_of(data) if addr[2] != socket.PACKET_OUTGOING else None
            if k is not None:
                back[k] = back.get(k, 0) + 1
    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    sent = 0
    t0 = time.monotonic()
    flips = [0.5, 0.9, 1.3, 1.7]                      # down, up, down, up
    while time.monotonic() - t0 < 2.2:
        if flips and time.monotonic() - t0 >= flips[0]:
            pair.set_up(len(flips) % 2 == 1)
            flips.pop(0)
        try:
            tx_sock.send(marked(sent))
        except OSError:
            pass                                      # the link is down: the frame is lost
        sent += 1
        if sent % 64 == 0:
            time.sleep(0.002)
    assert not flips, "the link did not go down and up twice while the peer sent"
    pair.set_up(True)
    code, out, err = finish(p)
    time.sleep(0.2)
    done.set()
    reader.join()
    tx_sock.close()
    rx_sock.close()
    assert code == 0, err[-2000:]
    t = totals(out)
    assert t["rx"] > 0 and t["tx"] > 0
    # (the kernel's own frames when the link comes up -- IPv6 MLD, router solicitations --
    # are received and counted too; only the test's marked frames carry a sequence)
    rx_seqs = [k for _, f in PcapReader(rx_dump) if (k := seq_of(f)) is not None]
    assert len(rx_seqs) == len(set(rx_seqs)) and set(rx_seqs) <= set(range(sent))
    assert records(rx_dump, tcpdump) == t["rx"]
    tx_dump = tmp_path / "dumps" / "port-eth1-core0-tx.pcap"
    assert records(tx_dump, tcpdump) == t["tx"] + t["tx_dropped"] == t["rx"]
    assert all(n == 1 for n in back.values()), "a frame came back twice"
    # the port also forwards the peer kernel's own frames (unmarked); of the marked ones it
    # received, the peer got back each one it sent: all but at most those the down link
    # refused (tx_dropped), none it did not receive
    assert set(back) <= set(rx_seqs)
    assert len(rx_seqs) - t["tx_dropped"] <= len(back) <= len(rx_seqs)
