"""on_start / on_stop hooks (#15): on every core, master included, in one process and with
worker processes; on_stop on a normal stop and on SIGINT/SIGTERM; a hook that raises is
reported with its core and file:line.  And the per-key-counts recipe of docs/runtime.md."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nfkit
from nfkit import Mbuf, Poll
from nfkit.config import RuntimeConfig
from nfkit.multicore import available_cpus, shared_array
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.pcap import PcapWriter
from nfkit.runtime import HookError, RunError, Runtime
from nfkit.testing.skips import need

need({0, 1} <= available_cpus(), "the hook tests run two cores: they need CPUs 0 and 1",
     "a machine (or cpuset) with two CPUs", module=True)

TWO_CORES = """
app_name = "hooks"
master_core = 0
duration = 20
stop_when_drained = true
[workers]
mode = "{mode}"
[[ports]]
name = "eth1"
device = "net_pcap0"
args = "rx_pcap=a.pcap,rx_pcap=b.pcap,tx_pcap=out.pcap"
cores = [0, 1]
"""


def udp_frame(dport: int) -> bytes:
    m = Mbuf.alloc(nfkit.Mempool(capacity=1))
    u = m.push(Ethernet).push(Ipv4).push(Udp)
    u.dst_port = dport
    u.reconcile_all()
    return m.to_bytes()


def write_pcap(path: Path, ports: list[int]) -> None:
    with PcapWriter(path) as w:
        for i, d in enumerate(ports):
            w.write(udp_frame(d), 1_000_000_000 + i)


def two_cores(tmp_path: Path, mode: str) -> Runtime:
    # core 0 reads a.pcap: 30 packets to port 53, 10 to 80; core 1 reads b.pcap: 5 to 53, 20 to 443
    write_pcap(tmp_path / "a.pcap", [53] * 30 + [80] * 10)
    write_pcap(tmp_path / "b.pcap", [53] * 5 + [443] * 20)
    c = RuntimeConfig.from_toml_text(TWO_CORES.format(mode=mode))
    c._base_dir = tmp_path
    rt = Runtime.build(c)
    assert rt.mode == ("processes" if mode == "processes" else "single")
    return rt


@pytest.mark.parametrize("mode", ["single", "processes"])
def test_hooks_run_on_every_core_master_included(tmp_path: Path, mode: str) -> None:
    """Each core's on_start runs in the process of that core before it polls, its on_stop
    after its last poll (a normal stop: the inputs drained); the master's on_stop last."""
    # per core: [pid at on_start, packets seen at on_start, pid at on_stop, packets at on_stop]
    log = shared_array((2, 4))
    order = shared_array(4)                 # the order the on_stop hooks ran in (1-based)
    seen = shared_array(2)

    def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
        def count(m: Mbuf) -> Mbuf:
            seen[q.core] += 1
            return m
        return Poll(q).map(count).send(q)

    def started(core: int) -> None:
        log[core, 0], log[core, 1] = os.getpid(), seen[core]

    def stopped(core: int) -> None:
        log[core, 2], log[core, 3] = os.getpid(), seen[core]
        order[3] += 1
        order[core] = order[3]

    rt = two_cores(tmp_path, mode)
    rt.add_pipeline_to_port("eth1", install).on_start(started).on_stop(stopped)
    res = rt.execute()
    assert res.reason == "drained"
    assert list(log[:, 1]) == [0, 0], "on_start runs before the core polls"
    assert list(log[:, 3]) == [40, 25], "on_stop runs after the core's last poll"
    assert log[0, 0] == log[0, 2] == os.getpid(), "the master's hooks run in the master"
    if mode == "processes":
        assert log[1, 0] == log[1, 2] != os.getpid(), "a worker's hooks run in the worker"
    else:
        assert log[1, 0] == log[1, 2] == os.getpid()
    assert order[0] == 2 and order[1] == 1, "the master's on_stop runs last"


@pytest.mark.parametrize("mode", ["single", "processes"])
def test_per_key_counts_across_cores_recipe(tmp_path: Path, mode: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """docs/runtime.md, "Per-key counts across cores", run as written: each core counts in
    its own dict, its on_stop copies the dict into its row of a shared array, and the
    master's on_stop -- the last to run -- prints the merged table.  Both cores' counts are
    in it (core 0's share alone would say 53: 30, 443: 0)."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "runtime.md").read_text()
    recipe = re.search(r"### Per-key counts across cores\n.*?```python\n(.*?)```", text, re.S)
    assert recipe is not None
    env: dict[str, object] = {}
    exec(compile(recipe.group(1), "docs/runtime.md", "exec"), env)
    rt = two_cores(tmp_path, mode)
    env["main"](rt)                                   # type: ignore[operator]
    assert rt.execute().reason == "drained"
    out = capsys.readouterr().out
    assert "53    35\n80    10\n443   20\n" in out, out


@pytest.mark.parametrize("mode,sig", [("single", signal.SIGINT), ("processes", signal.SIGTERM),
                                      ("processes", signal.SIGINT)])
def test_on_stop_runs_on_every_core_after_a_signal(tmp_path: Path, mode: str, sig: int) -> None:
    write_pcap(tmp_path / "a.pcap", [53] * 10)
    write_pcap(tmp_path / "b.pcap", [80] * 10)
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import os, nfkit
        def main(rt):
            rt.add_pipeline_to_port("eth1", lambda q: nfkit.Poll(q).send(q))
            rt.on_start(lambda core: print(f"start core {core} pid {os.getpid()}", flush=True))
            rt.on_stop(lambda core: print(f"stop core {core} pid {os.getpid()}", flush=True))
    """))
    (tmp_path / "app.toml").write_text(textwrap.dedent(f"""
        app_name = "hooksig"
        master_core = 0
        [workers]
        mode = "{mode}"
        [[ports]]
        name = "eth1"
        device = "net_pcap0"
        args = "rx_pcap=a.pcap,rx_pcap=b.pcap,infinite_rx=1,tx_pcap=out.pcap"
        cores = [0, 1]
    """))
    proc = subprocess.Popen([sys.executable, "-m", "nfkit.cli", "run", "app.py", "-c", "app.toml",
                             "--no-status"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        started = sorted(proc.stdout.readline().split()[2] for _ in range(2))
        assert started == ["0", "1"]
        time.sleep(0.3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    stops = sorted(line.split()[2] for line in out.splitlines() if line.startswith("stop core"))
    assert stops == ["0", "1"], (out, err)
    assert f"stopped: signal {signal.Signals(sig).name}" in out


@pytest.mark.parametrize("mode", ["single", "processes"])
def test_a_failing_on_stop_is_reported_with_core_and_file_line(tmp_path: Path, mode: str) -> None:
    flushed = shared_array(2)

    def bad(core: int) -> None:
        if core == 1:
            raise ValueError("table full")

    def good(core: int) -> None:
        flushed[core] = 1                  # runs although another hook failed

    rt = two_cores(tmp_path, mode)
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q)).on_stop(bad).on_stop(good)
    with pytest.raises(HookError) as info:
        rt.execute()
    msg = str(info.value)
    assert "core 1: on_stop hook" in msg and "ValueError: table full" in msg, msg
    assert f"test_hooks.py:{bad.__code__.co_firstlineno}" in msg, msg
    assert "core 0" not in msg.split("Traceback")[0]
    assert info.value.result.reason == "drained"        # type: ignore[attr-defined]
    assert list(flushed) == [1, 1]
    assert (tmp_path / "out-q1.pcap").exists()            # the ports were closed all the same


@pytest.mark.parametrize("mode", ["single", "processes"])
def test_a_failing_on_start_fails_the_start_up(tmp_path: Path, mode: str) -> None:
    stopped = shared_array(2)

    def bad(core: int) -> None:
        if core == 1:
            raise KeyError("no table")

    rt = two_cores(tmp_path, mode)
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q)).on_start(bad)
    rt.on_stop(lambda core: stopped.__setitem__(core, 1))
    with pytest.raises(RunError) as info:
        rt.execute()
    msg = str(info.value)
    assert "core 1: on_start hook" in msg and "KeyError" in msg, msg
    assert f"test_hooks.py:{bad.__code__.co_firstlineno}" in msg, msg
    assert not np.any(stopped), "no on_stop for cores that never started"
