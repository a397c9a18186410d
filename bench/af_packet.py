"""AF_PACKET benchmark: l2fwd over veth pairs, nfkit's af_packet driver next to a C forwarder.

Topology (root needed; two network namespaces, two veth pairs)::

    gen ns: [afp_gen] --g0====f0--> [forwarder] --f1====g1--> [afp_gen's sink]   (fwd ns)

``afp_gen`` (C, bench/c/afp_gen.c) sends 64-byte UDP frames as fast as its TPACKET_V2 ring
takes them and counts what comes back on g1; the forwarder swaps the Ethernet addresses
and sends every packet from f0 out of f1.  The forwarder is (1) nfkit: a Runtime with two
``af_packet`` ports and the l2fwd kernel of examples/l2fwd (its vector stage without numba), and (2) afp_fwd
(C, bench/c/afp_fwd.c) over the same rings.  Generator and forwarder are pinned to
different cores.  Rates are what the sink receives per second (median over the run), i.e.
what the forwarder's single core sustains.  The sink checks every frame it counts: the
frame sent, byte for byte, with its Ethernet addresses swapped (unchanged for the driver
alone, which does no header work); a frame of ours that is not is counted as bad, and a
row with bad frames is reported as failed, not as a rate.

    sudo .venv/bin/python bench/af_packet.py --out /tmp/afp.md [--seconds 5]
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


# -- the nfkit forwarder (run as a child process inside the forwarder namespace) --------

def child_forward(rx_if: str, tx_if: str, seconds: float, batch: int, cores: str = "0") -> None:
    """Forward rx_if -> tx_if with examples/l2fwd's default stage (the JIT kernel with
    numba, else the vector stage) for ``seconds``; print the port counters as JSON."""
    import nfkit
    from nfkit.cli import load_module
    from nfkit.config import RuntimeConfig
    from nfkit.runtime import Runtime

    l2fwd = load_module(ROOT / "examples/l2fwd/l2fwd.py")
    cfg = RuntimeConfig.from_toml_text(f"""
app_name = "afp_l2fwd"
master_core = 0
duration = {int(seconds)}
batch_size = {batch}
log_level = "warning"
[[ports]]
name = "in"
device = "af_packet:{rx_if}"
cores = [{cores}]
rxd = 8192
[[ports]]
name = "out"
device = "af_packet:{tx_if}"
cores = [{cores}]
txd = 4096
""")
    rt = Runtime.build(cfg)
    stage = l2fwd.swap_kernel if l2fwd.HAVE_NUMBA else l2fwd.swap
    for core in cfg.port("in").cores:      # one pipeline per core: its own queue of each port
        rt.add_pipeline_to_core(core, lambda qs: nfkit.Poll(qs["in"]).map(stage).send(qs["out"]))
    print("ready", flush=True)
    res = rt.execute(idle_sleep=0)
    print(json.dumps(res.ports), flush=True)


def child_driver_only(rx_if: str, tx_if: str, seconds: float, batch: int) -> None:
    """The driver alone: ``receive_slots`` on one port, ``transmit_slots`` on the other, no
    pipeline and no header work -- what the af_packet driver costs by itself."""
    from nfkit.buffers import Mempool
    from nfkit.config import PortConfig
    from nfkit.ports.base import open_port

    pool = Mempool(capacity=65535)
    qin = open_port(PortConfig(name="in", device=f"af_packet:{rx_if}", cores=[0], rxd=8192),
                    pool, batch).queues[0]
    qout = open_port(PortConfig(name="out", device=f"af_packet:{tx_if}", cores=[0], txd=4096),
                     pool, batch).queues[0]
    print("ready", flush=True)
    end = time.monotonic() + seconds
    polls = 0
    while True:
        b = qin.receive_slots(batch)
        if len(b):
            qout.transmit_slots(pool, b.slots)
        polls += 1
        if not polls & 1023 and time.monotonic() >= end:
            break
    qin.close()
    qout.close()
    print(json.dumps({"in": qin.counters.as_dict(), "out": qout.counters.as_dict()}), flush=True)


# -- the harness ----------------------------------------------------------------------

def machine() -> str:
    return _machine.machine(load=True)


def build_c(tmp: Path) -> dict[str, Path]:
    out = {}
    for name in ("afp_gen", "afp_fwd"):
        exe = tmp / name
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(ROOT / "bench/c" / f"{name}.c")],
                       check=True)
        out[name] = exe
    return out


#: prefix for the generator and forwarder commands (``--rt``: SCHED_FIFO)
RT: list[str] = []


def run_gen(ns, gen: Path, tx_if: str, rx_if: str, seconds: float, core: int,
            expect: str = "swapped") -> dict:
    """Run afp_gen; ``expect``: the frames come back with their MACs "swapped" or the "same"."""
    res = ns.run(RT + ["taskset", "-c", str(core), str(gen), tx_if, rx_if, str(seconds), "256",
                       "60", expect], timeout=seconds + 30)
    if res.returncode != 0:
        raise RuntimeError(f"afp_gen failed: {res.stderr}")
    per_s = []
    total = {}
    for line in res.stdout.splitlines():
        w = line.split()
        if w[0] == "t":
            per_s.append({"sent": int(w[3]), "received": int(w[5])})
        elif w[0] == "total":
            total = {"sent": int(w[2]), "received": int(w[4]), "seconds": float(w[8]),
                     "bad": int(w[10]), "other": int(w[12])}
    return {"per_s": per_s, "total": total}


def check_failed(gen: dict) -> str | None:
    """Why the sink's frames fail the check (bad frames, or none received), else None."""
    t = gen["total"]
    if t["bad"] or not t["received"]:
        return f"{t['received']:,} frames as expected, {t['bad']:,} bad"
    return None


def rate(gen: dict) -> tuple[float, float]:
    """(median received/s, median sent/s) over the whole seconds, the first one left out."""
    secs = gen["per_s"][1:] or gen["per_s"]
    return (statistics.median(s["received"] for s in secs),
            statistics.median(s["sent"] for s in secs))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (softirq work done on its core is charged to it when the
    kernel has no IRQ time accounting, the common configuration)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(ns, gen_ns, exes: dict, g0: str, g1: str, proc, seconds: float, gen_core: int,
            expect: str = "swapped") -> dict:
    """Run the generator against the forwarder ``proc``; the forwarder's CPU time over the
    same window gives packets per CPU-second, which holds when other work shares its core."""
    c0 = cpu_seconds(proc.pid)
    t0 = time.monotonic()
    gen = run_gen(gen_ns, exes["afp_gen"], g0, g1, seconds, gen_core, expect)
    cpu = cpu_seconds(proc.pid) - c0
    wall = time.monotonic() - t0
    return {"gen": gen, "cpu": cpu, "wall": wall}


def bench(seconds: float, batches: list[int], gen_core: int, fwd_core: int) -> dict:
    from nfkit.testing.netns import NetLab

    results: dict = {"nfkit": {}, "c": {}}
    with NetLab() as lab, tempfile.TemporaryDirectory() as tmpd:
        exes = build_c(Path(tmpd))
        gen_ns = lab.namespace("gen")
        fwd_ns = lab.namespace("fwd")
        a = lab.veth(ns=gen_ns, peer_ns=fwd_ns)     # g0 (gen) -> f0 (fwd)
        b = lab.veth(ns=fwd_ns, peer_ns=gen_ns)     # f1 (fwd) -> g1 (gen)
        g0, f0, f1, g1 = a.name, a.peer, b.name, b.peer
        pin = RT + ["taskset", "-c", str(fwd_core)]
        for batch in batches:
            # (1) nfkit: the l2fwd pipeline through the runtime, and the driver alone
            for kind, mode in (("nfkit", "--child-fwd"), ("driver", "--child-driver")):
                child = lab.popen(fwd_ns, pin + [sys.executable, __file__, mode, f0, f1,
                                                 str(seconds + 8), "--batch", str(batch)])
                assert child.stdout is not None
                line = child.stdout.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"nfkit forwarder did not start: {line}"
                                       f"{child.stderr.read()}")
                time.sleep(1.0)
                m = measure(fwd_ns, gen_ns, exes, g0, g1, child, seconds, gen_core,
                            "same" if kind == "driver" else "swapped")
                out, err = child.communicate(timeout=60)
                m["ports"] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
                m["stderr"] = err[-2000:]
                results.setdefault(kind, {})[batch] = m

            # (2) the C forwarder over the same rings, same burst
            cfwd = lab.popen(fwd_ns, pin + [str(exes["afp_fwd"]), f0, f1, str(seconds + 30),
                                            str(batch)])
            time.sleep(0.5)
            m = measure(fwd_ns, gen_ns, exes, g0, g1, cfwd, seconds, gen_core)
            cfwd.send_signal(2)
            out, _ = cfwd.communicate(timeout=30)
            m["fwd"] = out.strip()
            results["c"][batch] = m

        # (3) nfkit on two cores: both ports' queues on cores 0 and 1, spread by
        # PACKET_FANOUT, one worker process per core (the generator shares a core with one)
        batch = max(batches)
        child = lab.popen(fwd_ns, RT + [sys.executable, __file__, "--child-fwd", f0, f1,
                                        str(seconds + 8), "--batch", str(batch), "--cores", "0,1"])
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"nfkit 2-core forwarder did not start: {line}{child.stderr.read()}")
        time.sleep(1.5)
        gen = run_gen(gen_ns, exes["afp_gen"], g0, g1, seconds, gen_core)
        out, err = child.communicate(timeout=60)
        results["fanout2"] = {"batch": batch, "gen": gen, "stderr": err[-2000:]}

        # (4) the generator alone (nothing listening on f0): its ceiling on this machine
        results["gen_alone"] = {"gen": run_gen(gen_ns, exes["afp_gen"], g0, g1,
                                               min(seconds, 3), gen_core)}
    return results


def report(res: dict, seconds: float, cmd: str, where: str) -> str:
    lines = [
        "## AF_PACKET: l2fwd over veth",
        "",
        "64-byte UDP frames (256 flows) from a C generator (TPACKET_V2 ring) in one namespace, "
        "through a forwarder in another (swap the Ethernet addresses, veth f0 -> veth f1), back "
        "to the generator's sink (TPACKET_V3 ring).  Generator and forwarder are pinned to "
        f"different cores; {seconds:g} s per run.  *Forwarded* is the median of the sink's "
        "per-second counts (first second left out); *per CPU-second* divides everything the "
        "sink received by the CPU time the forwarder process used over the run (it includes "
        "the kernel's transmit work done on its core, and stays meaningful when other "
        "processes share the core).  The sink counts a frame only if it is the frame sent, "
        "byte for byte, with its Ethernet addresses swapped (unchanged for the driver alone, "
        "which does no header work): every counted frame is checked.",
        "",
        "| forwarder | burst | forwarded (pps) | forwarder CPU | pps per CPU-second | vs C (per CPU-s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for batch in sorted(res["nfkit"]):
        rows: list = []
        for kind, label in (("nfkit", "nfkit: af_packet ports, l2fwd kernel pipeline (Runtime)"),
                            ("driver", "nfkit: af_packet driver alone (receive_slots -> "
                                       "transmit_slots, no header work)"),
                            ("c", "C afp_fwd, same rings")):
            m = res[kind][batch]
            fwd, _ = rate(m["gen"])
            per_cpu = m["gen"]["total"]["received"] / m["cpu"] if m["cpu"] else float("nan")
            rows.append((label, fwd, m["cpu"] / m["wall"], per_cpu, check_failed(m["gen"])))
        c_per = rows[-1][3] if not rows[-1][4] else float("nan")
        for label, fwd, util, per_cpu, failed in rows:
            if failed:
                lines.append(f"| {label} | {batch} | check failed: {failed} | {util:.0%} | - | - |")
                continue
            lines.append(f"| {label} | {batch} | {fwd:,.0f} | {util:.0%} | {per_cpu:,.0f} | "
                         f"{per_cpu / c_per:.2f}x |")
    verdicts = []
    for batch in sorted(res["nfkit"]):
        n, c = res["nfkit"][batch], res["c"][batch]
        if check_failed(n["gen"]) or check_failed(c["gen"]) or not n["cpu"] or not c["cpu"]:
            continue
        fwd, _ = rate(n["gen"])
        vs_c = (n["gen"]["total"]["received"] / n["cpu"]) / (c["gen"]["total"]["received"] / c["cpu"])
        verdicts.append(f"burst {batch}: {fwd / 1e6:.2f} Mpps {'met' if fwd >= 1e6 else '**not met**'}, "
                        f"{vs_c:.2f}x C {'met' if vs_c >= 0.7 else '**not met**'}")
    if verdicts:
        lines += ["", "Targets of issue #5 for the nfkit l2fwd pipeline (>= 1 Mpps per core, >= 0.7x "
                  "the C forwarder per CPU-second): " + "; ".join(verdicts) + "."]
    if "fanout2" in res:
        f2 = res["fanout2"]
        fwd2, _ = rate(f2["gen"])
        one, _ = rate(res["nfkit"][f2["batch"]]["gen"])
        failed = check_failed(f2["gen"])
        lines += ["", f"Two cores (PACKET_FANOUT, one worker process per core, burst {f2['batch']}): "
                  + (f"check failed: {failed}." if failed else
                     f"{fwd2:,.0f} pps forwarded, {fwd2 / one:.2f}x the one-core nfkit run above")
                  + " -- with the generator outside nfkit but on this 2-core machine, so one "
                  "forwarder core shares its CPU with the generator: not a scaling figure.  A "
                  "fair one needs the generator on cores of its own (a third core, or traffic "
                  "from another machine through a NIC with RSS)."]
    _, g_tx = rate(res["gen_alone"]["gen"])
    offered = {b: rate(res["nfkit"][b]["gen"])[1] for b in res["nfkit"]}
    first = min(res["nfkit"])
    ports = res["nfkit"][first]["ports"]
    lines += [
        "",
        "Offered load (generator, pps, median): "
        + ", ".join(f"{offered[b]:,.0f} during the nfkit run at burst {b}" for b in sorted(offered))
        + f"; the generator alone, nothing receiving on f0: {g_tx:,.0f}.  "
        f"nfkit's ports (burst {first}) counted rx_dropped "
        f"{ports.get('in', {}).get('rx_dropped', 0):,} (receive ring full), tx_dropped "
        f"{ports.get('out', {}).get('tx_dropped', 0):,}; the C forwarder: "
        f"`{res['c'][first]['fwd']}`.  Frames of ours that failed the sink's check: "
        + ", ".join(f"{k} burst {b}: {res[k][b]['gen']['total']['bad']:,}"
                    for k in ("nfkit", "driver", "c") for b in sorted(res[k])) + ".",
        "",
        f"Machine: {where}.",
        "",
        f"Command: `{cmd}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the markdown section here (default: stdout)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--cores", default="0", help=argparse.SUPPRESS)
    ap.add_argument("--batches", default="32,128", help="burst sizes to run (comma-separated)")
    ap.add_argument("--gen-core", type=int, default=0)
    ap.add_argument("--fwd-core", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--rt", action="store_true",
                    help="run generator and forwarders SCHED_FIFO (chrt -f 50): steadier numbers "
                         "when other work shares the cores (which then gets little CPU)")
    ap.add_argument("--child-fwd", nargs=3, metavar=("RX_IF", "TX_IF", "SECONDS"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--child-driver", nargs=3, metavar=("RX_IF", "TX_IF", "SECONDS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_driver:
        child_driver_only(args.child_driver[0], args.child_driver[1],
                          float(args.child_driver[2]), args.batch)
        return
    if args.child_fwd:
        child_forward(args.child_fwd[0], args.child_fwd[1], float(args.child_fwd[2]), args.batch,
                      args.cores)
        return
    if os.geteuid() != 0:
        sys.exit("bench/af_packet.py needs root (namespaces, veth pairs, packet sockets)")
    for tool in ("gcc", "ip", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/af_packet.py needs {tool}")
    cmd = " ".join(["python", "bench/af_packet.py", *sys.argv[1:]])
    started = machine()
    if args.rt:
        RT[:] = ["chrt", "-f", "50"]
    batches = [int(b) for b in args.batches.split(",")]
    res = bench(args.seconds, batches, args.gen_core, args.fwd_core)
    text = report(res, args.seconds, cmd, started)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    print(text)
    runs = [res[k][b]["gen"] for k in ("nfkit", "driver", "c") for b in res[k]]
    if "fanout2" in res:
        runs.append(res["fanout2"]["gen"])
    if any(check_failed(g) for g in runs):
        sys.exit("output check failed: the sink got bad frames (or none)")


if __name__ == "__main__":
    main()
