"""AF_XDP benchmark: rxdrop, txonly and l2fwd over veth for nfkit's af_xdp driver, nfkit's
af_packet driver and a C program over the same AF_XDP sockets (bench/c/xsk_bench.c).

Topology (root needed; two network namespaces, two veth pairs)::

    gen ns: [afp_gen] --g0====f0--> [device under test] --f1====g1--> [afp_gen's sink]

The device under test (DUT) runs in the fwd namespace pinned to its own core; the C
generator afp_gen (bench/c/afp_gen.c, an AF_PACKET ring) is pinned to another.  Modes:

- rxdrop: the DUT receives on f0 and frees every frame;
- txonly: the DUT sends 64-byte UDP frames on f1 as fast as it can (no generator);
- l2fwd: the DUT receives on f0, swaps the Ethernet addresses, sends on f1; the sink on g1
  checks every frame (byte for byte, addresses swapped).

nfkit runs the driver alone (``receive_slots`` / ``transmit_slots``, a numba swap for
l2fwd): the port path, no pipeline.  Each DUT counts its own packets and CPU time over its
measured window (``time.process_time`` / ``CLOCK_PROCESS_CPUTIME_ID``: user + system, the
copy-mode kernel work of its ``sendto`` included), so *per CPU-second* stays meaningful
when other work shares the core.  Every (mode, DUT) runs ``--repeat`` times, interleaved;
medians are reported.

    sudo .venv/bin/python bench/af_xdp.py --out /tmp/xdp.md [--seconds 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import _machine  # noqa: E402

MODES = ["rxdrop", "txonly", "l2fwd"]
#: seconds a DUT runs before its measured window (JIT compiles, the generator starts)
WARMUP = 1.0
DUTS = ("xdp", "afp", "c")
LABELS = {"xdp": "nfkit af_xdp driver", "afp": "nfkit af_packet driver",
          "c": "C xsk_bench (libxdp, same sockets)"}


# -- the nfkit DUT (a child process in the fwd namespace) -------------------------------

def child(kind: str, mode: str, rx_if: str, tx_if: str, seconds: float, batch: int) -> None:
    import numpy as np

    from nfkit import _accel
    from nfkit.buffers import Mempool
    from nfkit.config import PortConfig
    from nfkit.ports.base import open_port

    pool = Mempool(capacity=16384)
    dev = "af_xdp" if kind == "xdp" else "af_packet"
    rings = dict(rxd=2048, txd=2048) if kind == "xdp" else dict(rxd=8192, txd=4096)
    qin = open_port(PortConfig(name="in", device=f"{dev}:{rx_if}", cores=[0], **rings),
                    pool, batch).queues[0]
    qout = qin if tx_if == rx_if else open_port(
        PortConfig(name="out", device=f"{dev}:{tx_if}", cores=[0], **rings), pool, batch).queues[0]
    swap = _swap_kernel() if _accel.AVAILABLE else _swap_numpy
    frame = np.frombuffer(_frame(), dtype=np.uint8)
    o = int(pool.headroom)
    pool.data[:, o:o + 60] = frame           # txonly: every slot holds the frame, as in C
    print("ready", flush=True)
    # The first WARMUP seconds are not measured: numba compiles the drivers' kernels on
    # their first packets (seconds of CPU), and the generator is starting.
    rx = tx = polls = 0
    warm = True
    t0, c0 = time.monotonic(), time.process_time()
    end = t0 + WARMUP
    while True:
        polls += 1
        if not polls & 255 and time.monotonic() >= end:
            if not warm:
                break
            warm = False
            rx = tx = 0
            t0, c0 = time.monotonic(), time.process_time()
            end = t0 + seconds
        if mode == "txonly":
            if pool.available < batch + 256:
                pool.free_slots(qin.receive_slots(0).slots)   # reaps completions (af_xdp)
                continue
            s = pool.alloc_slots(batch, 60)
            before = qout.counters.tx_packets
            qout.transmit_slots(pool, s)
            tx += qout.counters.tx_packets - before
            continue
        b = qin.receive_slots(batch)
        n = len(b.slots)
        if not n:
            continue
        rx += n
        if mode == "rxdrop":
            pool.free_slots(b.slots)
            continue
        swap(pool.data, b.slots, pool.data_off)
        before = qout.counters.tx_packets
        qout.transmit_slots(pool, b.slots)
        tx += qout.counters.tx_packets - before
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    counters = {"in": qin.counters.as_dict(), "out": qout.counters.as_dict()}
    qin.port.close()
    if qout is not qin:
        qout.port.close()
    print(json.dumps({"rx": rx, "tx": tx, "seconds": wall, "cpu": cpu, "ports": counters,
                      "idle_pool": pool.in_use == 0}), flush=True)


def _frame() -> bytes:
    """A 60-byte Ethernet/IPv4/UDP frame (the one xsk_bench sends), IPv4 checksum set."""
    f = bytearray(60)
    f[:42] = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17,
                    0, 0, 198, 18, 0, 1, 198, 19, 0, 1, 4, 0, 4, 0, 0, 26, 0, 0])
    s = sum((f[i] << 8) | f[i + 1] for i in range(14, 34, 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    f[24], f[25] = (~s >> 8) & 0xFF, ~s & 0xFF
    return bytes(f)


def _swap_numpy(data, slots, off) -> None:  # noqa: ANN001
    """The MAC swap without numba (per packet: slow, but the same work)."""
    for s in slots.tolist():
        b = int(off[s])
        t = data[s, b:b + 6].copy()
        data[s, b:b + 6] = data[s, b + 6:b + 12]
        data[s, b + 6:b + 12] = t


def _swap_kernel():  # noqa: ANN202
    from nfkit import _accel

    @_accel.numba.njit(cache=True, nogil=True)
    def swap(data, slots, off):  # noqa: ANN001
        for i in range(slots.shape[0]):
            s = slots[i]
            b = off[s]
            for k in range(6):
                t = data[s, b + k]
                data[s, b + k] = data[s, b + 6 + k]
                data[s, b + 6 + k] = t
    return swap


# -- the harness ----------------------------------------------------------------------

def build_c(tmp: Path) -> dict[str, Path]:
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libxdp", "libbpf"],
                           capture_output=True, text=True, check=True).stdout.split()
    out = {}
    for name, extra in (("afp_gen", []), ("xsk_bench", flags)):
        exe = tmp / name
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(ROOT / "bench/c" / f"{name}.c"),
                        *extra], check=True)
        out[name] = exe
    return out


def rx_packets(ns, iface: str) -> int:
    return int(ns.run(["cat", f"/sys/class/net/{iface}/statistics/rx_packets"]).stdout)


def run_one(lab, gen_ns, fwd_ns, exes: dict, dut: str, mode: str, ifs: tuple[str, str, str, str],
            seconds: float, batch: int, gen_core: int, dut_core: int) -> dict:
    g0, f0, f1, g1 = ifs
    pin = ["taskset", "-c", str(dut_core)]
    rx_if, tx_if = (f1, f1) if mode == "txonly" else (f0, f1 if mode == "l2fwd" else f0)
    if dut == "c":
        args = [mode, rx_if, tx_if] if mode == "l2fwd" else [mode, rx_if]
        cmd = pin + [str(exes["xsk_bench"]), *args, str(seconds), str(batch)]
    else:
        cmd = pin + [sys.executable, __file__, "--child", dut, mode, rx_if, tx_if, str(seconds),
                     "--batch", str(batch)]
    proc = lab.popen(fwd_ns, cmd)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"{dut} {mode} did not start: {line}{proc.stderr.read()}")
    g1_before = rx_packets(gen_ns, g1)
    gen = None
    if mode != "txonly":                     # offer load over the whole measured window
        gen = lab.popen(gen_ns, ["taskset", "-c", str(gen_core), str(exes["afp_gen"]), g0, g1,
                                 str(seconds + WARMUP + 1.5), "256", "60",
                                 "swapped" if mode == "l2fwd" else "same"])
    out, err = proc.communicate(timeout=seconds + 60)
    g1_after = rx_packets(gen_ns, g1)
    gen_total = None
    if gen is not None:
        gout, _ = gen.communicate(timeout=seconds + 30)
        for ln in gout.splitlines():
            w = ln.split()
            if w and w[0] == "total":
                gen_total = {"sent": int(w[2]), "received": int(w[4]), "bad": int(w[10])}
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if dut == "c":
        w = last.split()
        if not w or w[0] != "total":
            raise RuntimeError(f"xsk_bench {mode}: {out}{err}")
        res = {"rx": int(w[2]), "tx": int(w[4]), "seconds": float(w[6]), "cpu": float(w[8])}
    else:
        res = json.loads(last)
    res["count"] = res["rx"] if mode == "rxdrop" else res["tx"]
    res["g1_rx"] = g1_after - g1_before
    res["gen"] = gen_total
    res["stderr"] = err[-1500:]
    return res


def bench(seconds: float, repeat: int, batch: int, gen_core: int, dut_core: int) -> dict:
    from nfkit.testing.netns import NetLab

    results: dict = {m: {d: [] for d in DUTS} for m in MODES}
    with NetLab() as lab, tempfile.TemporaryDirectory() as tmpd:
        exes = build_c(Path(tmpd))
        gen_ns = lab.namespace("gen")
        fwd_ns = lab.namespace("fwd")
        a = lab.veth(ns=gen_ns, peer_ns=fwd_ns)     # g0 (gen) -> f0 (fwd)
        b = lab.veth(ns=fwd_ns, peer_ns=gen_ns)     # f1 (fwd) -> g1 (gen)
        ifs = (a.name, a.peer, b.name, b.peer)
        for _ in range(repeat):
            for mode in MODES:
                for dut in DUTS:
                    results[mode][dut].append(run_one(lab, gen_ns, fwd_ns, exes, dut, mode, ifs,
                                                      seconds, batch, gen_core, dut_core))
    return results


def summary(runs: list[dict]) -> tuple[float, float, float]:
    """(median pps, median CPU share, median pps per CPU-second) over the repeats."""
    pps = statistics.median(r["count"] / r["seconds"] for r in runs)
    util = statistics.median(r["cpu"] / r["seconds"] for r in runs)
    per_cpu = statistics.median(r["count"] / r["cpu"] if r["cpu"] else float("nan") for r in runs)
    return pps, util, per_cpu


def check_failed(mode: str, runs: list[dict]) -> str | None:
    for r in runs:
        if not r["count"]:
            return "nothing counted"
        if r.get("idle_pool") is False:
            return "the pool was not idle after close"
        if mode == "l2fwd" and r["gen"] is not None and r["gen"]["bad"]:
            return f"{r['gen']['bad']} bad frames at the sink"
    return None


def report(res: dict, seconds: float, repeat: int, batch: int, cmd: str, where: str) -> str:
    lines = [
        "## AF_XDP: rxdrop, txonly, l2fwd over veth",
        "",
        f"Burst {batch}, {seconds:g} s per run, {repeat} runs per row interleaved, medians.  The "
        "device under test (DUT) is pinned to its own core; for rxdrop and l2fwd the C "
        "generator afp_gen (AF_PACKET ring) offers 64-byte UDP frames from another namespace on "
        "another core; txonly has no generator.  *pps* is what the DUT counted (received for "
        "rxdrop, sent for txonly and l2fwd) over its measured window; *per CPU-second* divides "
        "by the DUT's own CPU time over that window (user + system: the copy-mode kernel work "
        "of its sendto calls included; the veth receive work runs on the sender's core).  On "
        "veth AF_XDP runs in copy mode with native XDP; the zero-copy win of NICs with AF_XDP "
        "drivers cannot be shown here.  nfkit runs the driver alone (receive_slots -> "
        "transmit_slots, a numba MAC swap for l2fwd).",
        "",
        "| mode | DUT | pps | DUT CPU | pps per CPU-second | vs C AF_XDP (per CPU-s) | vs nfkit af_packet (per CPU-s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for mode in MODES:
        s = {d: summary(res[mode][d]) for d in DUTS}
        failed = {d: check_failed(mode, res[mode][d]) for d in DUTS}
        for d in DUTS:
            pps, util, per = s[d]
            if failed[d]:
                lines.append(f"| {mode} | {LABELS[d]} | check failed: {failed[d]} | - | - | - | - |")
                continue
            lines.append(f"| {mode} | {LABELS[d]} | {pps:,.0f} | {util:.0%} | {per:,.0f} | "
                         f"{per / s['c'][2]:.2f}x | {per / s['afp'][2]:.2f}x |")
        if not any(failed.values()):
            vs_c, vs_afp = s["xdp"][2] / s["c"][2], s["xdp"][2] / s["afp"][2]
            verdicts.append(f"{mode}: {vs_c:.2f}x C ({'met' if vs_c >= 0.8 else '**not met**'}), "
                            f"{vs_afp:.2f}x af_packet ({'met' if vs_afp >= 1 else '**not met**'})")
    lines += ["", "Targets of issue #18 (nfkit AF_XDP >= 0.8x the C AF_XDP program and >= nfkit "
              "AF_PACKET, per CPU-second): " + "; ".join(verdicts) + "."]
    l2 = res.get("l2fwd", {}).get("xdp", [])
    lines += ["", "l2fwd sink (afp_gen on g1, every frame checked): nfkit af_xdp runs received "
              + ", ".join(f"{r['gen']['received']:,} of {r['gen']['sent']:,} sent"
                          for r in l2 if r["gen"]) + ".  txonly: g1 received "
              + ", ".join(f"{r['g1_rx']:,}" for r in res.get("txonly", {}).get("xdp", []))
              + " frames in the nfkit af_xdp runs.", "", f"Machine: {where}.", "",
              f"Command: `{cmd}`", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the markdown section here (default: stdout)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--gen-core", type=int, default=0)
    ap.add_argument("--dut-core", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--modes", default=",".join(MODES), help="modes to run (comma-separated)")
    ap.add_argument("--child", nargs=5, metavar=("KIND", "MODE", "RX_IF", "TX_IF", "SECONDS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, mode, rx_if, tx_if, secs = args.child
        child(kind, mode, rx_if, tx_if, float(secs), args.batch)
        return
    if os.geteuid() != 0:
        sys.exit("bench/af_xdp.py needs root (namespaces, veth pairs, AF_XDP sockets)")
    for tool in ("gcc", "ip", "taskset", "pkg-config"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/af_xdp.py needs {tool}")
    cmd = " ".join(["python", "bench/af_xdp.py", *sys.argv[1:]])
    where = _machine.machine(load=True)
    MODES[:] = [m for m in args.modes.split(",") if m]
    res = bench(args.seconds, args.repeat, args.batch, args.gen_core, args.dut_core)
    text = report(res, args.seconds, args.repeat, args.batch, cmd, where)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    print(text)
    if any(check_failed(m, res[m][d]) for m in MODES for d in DUTS):
        sys.exit("output check failed")


if __name__ == "__main__":
    main()
