"""The per-packet job of issue #17, bytes in and bytes out, side by side in one process.

The job: 64-byte Ethernet/IPv4/UDP frames given as ``bytes``; parse to UDP, swap the MACs,
decrement the TTL with the header checksum, produce the frame's bytes.  Rows: a bare
``bytearray`` + ``struct`` loop (the floor of pure Python), nfkit per-packet (``Mbuf.from_bytes``
... ``to_bytes``, ``free``), nfkit in-pool (frames already in buffers: the NF case), dpkt,
pypacker and Scapy.  Every row's output is checked against Scapy's (the oracle) on a sample
and against the bare loop's on all frames before anything is timed.

``python bench/per_packet.py [--quick]`` prints the table; ``bench/run.py`` includes it.
``python bench/per_packet.py --steps``: where the time goes, the job built up step by step
(docs/packets.md quotes it).
"""

from __future__ import annotations

import os
import statistics
import struct
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from nfkit import Mbuf, Mempool  # noqa: E402
from nfkit.packets import Ethernet, Ipv4, Udp  # noqa: E402


def make_frames(n: int) -> list[bytes]:
    """``n`` distinct 60-byte (64 with FCS) Ethernet/IPv4/UDP frames (ports and addresses
    vary), built with nfkit and checked by Scapy in :func:`check`."""
    pool = Mempool(capacity=1)
    out = []
    for i in range(n):
        m = Mbuf.alloc(pool)
        eth = m.push(Ethernet)
        eth.src, eth.dst = f"02:00:00:00:{i >> 8 & 255:02x}:{i & 255:02x}", "02:00:00:00:00:02"
        ip = eth.push(Ipv4)
        ip.src, ip.dst, ip.ttl = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "10.0.0.2", 64
        udp = ip.push(Udp)
        udp.src_port, udp.dst_port = 1024 + i % 60000, 5678
        udp.set_payload(bytes(range(18)))
        udp.reconcile_all()
        out.append(m.to_bytes())
        m.free()
    return out


# -- the rows -------------------------------------------------------------------------------

_HDR = struct.Struct("!6s6sHBxHxxxxBB").unpack_from   # macs, type, ver/ihl, total len, ttl, proto
_MACS = struct.Struct("6s6s").pack_into


def bare_job(frames: list[bytes]) -> list[bytes]:
    """What a careful user writes by hand: the same checks nfkit's parse makes on this frame
    (ether type, version/IHL, total length, protocol, room for UDP), then the edits."""
    out = []
    append = out.append
    for raw in frames:
        b = bytearray(raw)
        dst, src, et, vi, tl, ttl, proto = _HDR(b, 0)
        if et != 0x0800 or vi != 0x45 or proto != 17 or tl > len(b) - 14 or tl < 28:
            raise ValueError("not an Ethernet/IPv4/UDP frame")
        _MACS(b, 0, src, dst)
        if ttl:
            b[22] = ttl - 1
            hc = (((b[24] << 8) | b[25]) + 256) % 65535
            b[24] = hc >> 8
            b[25] = hc & 255
        append(bytes(b))
    return out


def nfkit_job(frames: list[bytes], pool: Mempool) -> list[bytes]:
    """The README's per-packet style, bytes in and bytes out."""
    out = []
    append = out.append
    for raw in frames:
        m = Mbuf.from_bytes(raw, pool)
        eth = m.parse(Ethernet)
        ip = eth.parse(Ipv4)
        ip.parse(Udp)
        eth.swap_addresses()
        ip.decrement_ttl()
        append(m.to_bytes())
        m.free()
    return out


def nfkit_bulk_job(frames: list[bytes], pool: Mempool, burst: int = 256) -> list[bytes]:
    """The same through ``Mbuf.from_bytes_bulk`` / ``to_bytes_bulk`` (one pool call each way
    per burst; bursts keep the buffers in cache: 100,000 frames at once touch 217 MB of
    buffers and ran at half the rate)."""
    out: list[bytes] = []
    for i in range(0, len(frames), burst):
        mbufs = Mbuf.from_bytes_bulk(frames[i:i + burst], pool)
        for m in mbufs:
            eth = m.parse(Ethernet)
            ip = eth.parse(Ipv4)
            ip.parse(Udp)
            eth.swap_addresses()
            ip.decrement_ttl()
        out += Mbuf.to_bytes_bulk(mbufs)
        Mbuf.free_bulk(mbufs)
    return out


def nfkit_inpool_job(mbufs: list[Mbuf]) -> None:
    """Frames already in buffers (what an NF's receive gives): the job in place."""
    for m in mbufs:
        eth = m.parse(Ethernet)
        ip = eth.parse(Ipv4)
        ip.parse(Udp)
        eth.swap_addresses()
        ip.decrement_ttl()


def dpkt_job(frames: list[bytes]) -> list[bytes]:
    import dpkt
    out = []
    for raw in frames:
        e = dpkt.ethernet.Ethernet(raw)
        ip = e.data
        if not isinstance(ip.data, dpkt.udp.UDP):
            raise ValueError("not UDP")
        e.src, e.dst = e.dst, e.src
        ip.ttl -= 1
        ip.sum = 0           # dpkt recomputes a zero checksum when serialising
        out.append(bytes(e))
    return out


def pypacker_job(frames: list[bytes]) -> list[bytes]:
    from pypacker.layer12 import ethernet
    from pypacker.layer4 import udp
    out = []
    for raw in frames:
        e = ethernet.Ethernet(raw)
        if e[udp.UDP] is None:
            raise ValueError("not UDP")
        e.src, e.dst = e.dst, e.src
        e.upper_layer.ttl -= 1
        out.append(e.bin())  # pypacker recomputes the IPv4 checksum of a changed header
    return out


def scapy_job(frames: list[bytes]) -> list[bytes]:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    out = []
    for raw in frames:
        p = Ether(raw)
        p[UDP]
        p.src, p.dst = p.dst, p.src
        p[IP].ttl -= 1
        del p[IP].chksum
        out.append(bytes(p))
    return out


# -- checking and timing --------------------------------------------------------------------

def _time(fn: Callable[[], object], setup: Callable[[], object] | None = None) -> float:
    if setup is not None:
        setup()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(quick: bool = False, n: int | None = None) -> tuple[list[str], list[str]]:
    """The Markdown section and a list of failed checks (empty when all rows agree)."""
    n = n or (20_000 if quick else 100_000)
    repeat = 3
    frames = make_frames(n)
    pool = Mempool(capacity=n + 16)
    # Slow peers run on a prefix (the same frames); their rate is per packet all the same.
    sizes = {"dpkt": n, "pypacker": n // 5, "Scapy": max(1000, n // 50)}

    rows: dict[str, Callable[[list[bytes]], list[bytes]]] = {
        "bare Python (bytearray + struct)": bare_job,
        "nfkit per-packet (from_bytes .. to_bytes, free)": lambda fr: nfkit_job(fr, pool),
        "nfkit per-packet, bulk entry/exit (from_bytes_bulk .. to_bytes_bulk, bursts of 256)":
            lambda fr: nfkit_bulk_job(fr, pool),
        "dpkt": dpkt_job,
        "pypacker": pypacker_job,
        "Scapy": scapy_job,
    }
    problems: list[str] = []
    missing: list[str] = []
    sample = frames[:300]
    oracle = scapy_job(sample)
    want = bare_job(frames)
    if want[:300] != oracle:
        problems.append("per-packet: the bare loop differs from Scapy")
    for name, fn in list(rows.items()):
        try:
            if fn(sample) != oracle:
                problems.append(f"per-packet: {name} differs from Scapy")
            k = sizes.get(name.split(" ")[0], n)
            if fn(frames[:k]) != want[:k]:
                problems.append(f"per-packet: {name} differs from the bare loop")
        except (ImportError, AttributeError):   # a peer not installed; an older nfkit
            missing.append(name)
            del rows[name]
    # the in-pool variant: frames already in buffers, rewritten (untimed) before each run
    held = Mempool(capacity=n)     # default geometry: 2048 + 128 bytes a buffer
    mbufs = [Mbuf.from_bytes(f, held) for f in frames]
    slots = [m.slot for m in mbufs]
    off = int(held.data_off[slots[0]])
    block = [list(f) for f in frames]

    def refill() -> None:
        held.data[slots, off:off + 60] = block

    refill()
    nfkit_inpool_job(mbufs)
    if [m.to_bytes() for m in mbufs] != want:
        problems.append("per-packet: nfkit in-pool differs from the bare loop")
    inpool = f"nfkit in-pool (frames already in {n:,} buffers, {n * held.stride // 10**6} MB: not in cache)"

    times: dict[str, list[float]] = {name: [] for name in rows}
    times[inpool] = []
    if not problems:
        for _ in range(repeat):     # interleaved: every row sees the same machine state
            for name, fn in rows.items():
                k = sizes.get(name.split(" ")[0], n)
                part = frames[:k]
                times[name].append(k / _time(lambda: fn(part)))
            times[inpool].append(n / _time(lambda: nfkit_inpool_job(mbufs), refill))
    Mbuf.free_bulk(mbufs)
    if pool.in_use or held.in_use:
        problems.append(f"per-packet: {pool.in_use + held.in_use} buffers leaked")

    lines = [
        "## Per-packet API, bytes in and bytes out (issue #17)",
        "",
        f"{n:,} distinct 64-byte Ethernet/IPv4/UDP frames given as `bytes`; the job: parse to",
        "UDP, swap the MACs, decrement the TTL with the IPv4 checksum, produce the frame's",
        "bytes.  One process, one core; the rows interleaved, 3 runs each, the median and the",
        f"range.  dpkt runs all frames, pypacker the first {sizes['pypacker']:,}, Scapy the first",
        f"{sizes['Scapy']:,} (their per-packet rate is the same).  Every row's output is checked",
        "against Scapy's on 300 frames and against the bare loop's on all, before timing.",
        "",
        "| implementation | pkt/s (median) | range | vs bare loop | nfkit per-packet is ... x |",
        "|---|---:|---:|---:|---:|",
    ]
    if problems:
        lines += [f"**not timed: {p}**" for p in problems]
        return lines, problems
    med = {name: statistics.median(v) for name, v in times.items()}
    bare = med["bare Python (bytearray + struct)"]
    ours = med["nfkit per-packet (from_bytes .. to_bytes, free)"]
    for name, v in times.items():
        lines.append(f"| {name} | {med[name] / 1e3:,.0f}k | {min(v) / 1e3:,.0f}k-{max(v) / 1e3:,.0f}k | "
                     f"{med[name] / bare:.2f} | {ours / med[name]:.1f} |")
    for name in missing:
        lines.append(f"| {name} | not installed | | | |")
    verdicts = [f"{ours / bare:.2f}x the bare loop (target 0.6x: {'met' if ours >= 0.6 * bare else '**not met**'})"]
    for peer, target in (("dpkt", 8), ("Scapy", 150)):
        if peer in med:
            x = ours / med[peer]
            verdicts.append(f"{x:.1f}x {peer} (target {target}x: {'met' if x >= target else '**not met**'})")
    lines += ["", "Targets of issue #17 for nfkit per-packet: " + ", ".join(verdicts) + ".", ""]
    return lines, problems


# -- where the time goes: the job built up one step at a time ---------------------------------

def _steps(pool: Mempool) -> dict[str, Callable[[list[bytes]], None]]:
    Udp_ = Udp
    _new = object.__new__

    def entry_exit(fr: list[bytes]) -> None:
        for raw in fr:
            m = Mbuf.from_bytes(raw, pool)
            m.to_bytes()
            m.free()

    def eth(fr: list[bytes]) -> None:
        for raw in fr:
            m = Mbuf.from_bytes(raw, pool)
            m.parse(Ethernet)
            m.to_bytes()
            m.free()

    def ipv4(fr: list[bytes]) -> None:
        for raw in fr:
            m = Mbuf.from_bytes(raw, pool)
            m.parse(Ethernet).parse(Ipv4)
            m.to_bytes()
            m.free()

    def udp(fr: list[bytes]) -> None:
        for raw in fr:
            m = Mbuf.from_bytes(raw, pool)
            m.parse(Ethernet).parse(Ipv4).parse(Udp)
            m.to_bytes()
            m.free()

    def floor_bytes(fr: list[bytes]) -> None:       # entry and exit, nothing else
        for raw in fr:
            bytes(bytearray(raw))

    class Hdr:                                       # the least a header object can be
        __slots__ = ("_env", "_buf", "_abs", "_end", "_hlen", "_next")

    def make(env: object, buf: object, a: int, end: int) -> Hdr:
        p = _new(Hdr)
        p._env = env
        p._buf = buf
        p._abs = a
        p._end = end
        p._hlen = 8
        p._next = None
        return p

    def floor_objects(fr: list[bytes]) -> None:     # three header objects, no checks
        for raw in fr:
            make(make(make(raw, raw, 0, 60), raw, 14, 60), raw, 34, 60)

    del Udp_
    return {"bare loop": bare_job, "from_bytes + to_bytes + free": entry_exit,
            "+ parse Ethernet": eth, "+ parse IPv4": ipv4, "+ parse UDP": udp,
            "+ swap_addresses + decrement_ttl (the whole job)": lambda fr: nfkit_job(fr, pool),
            "in-pool (frames already in buffers, in cache)": None,
            "dpkt (the whole job)": dpkt_job, "pypacker (the whole job)": pypacker_job,
            "Scapy (the whole job, 20 frames a pass)": scapy_job,
            "floor: bytes(bytearray(frame))": floor_bytes,
            "floor: three bare header objects (a call, a new object, 6 slots each)": floor_objects}


def steps(passes: int = 400) -> list[str]:
    """Each step's cost per packet: the minimum over ``passes`` interleaved passes over 200
    frames.  The minimum of short passes filters out a shared machine's preemptions (passes
    of 2,000 frames, ~5 ms, were preempted often enough on a loaded 2-core machine to
    double the longer steps' minimum)."""
    frames = make_frames(200)
    pool = Mempool(capacity=256)
    fns = _steps(pool)
    held = Mbuf.from_bytes_bulk(frames, pool)
    fns["in-pool (frames already in buffers, in cache)"] = lambda fr: nfkit_inpool_job(held)
    for name in [n for n in fns if n.split(" ")[0] in ("dpkt", "pypacker", "Scapy")]:
        try:
            fns[name]([frames[0]])
        except ImportError:
            del fns[name]
    best = {name: float("inf") for name in fns}
    for _ in range(passes):
        for name, fn in fns.items():
            part = frames[:20] if name.startswith(("Scapy", "pypacker")) else frames
            if name.startswith("in-pool"):
                Mbuf.free_bulk(held)
                held[:] = Mbuf.from_bytes_bulk(frames, pool)     # fresh TTLs, untimed
            t0 = time.perf_counter()
            fn(part)
            best[name] = min(best[name], (time.perf_counter() - t0) / len(part) * 1e9)
    Mbuf.free_bulk(held)
    bare = best["bare loop"]
    job = best["+ swap_addresses + decrement_ttl (the whole job)"]
    lines = ["| step | ns/packet | step adds | in bare loops | nfkit's job is ... x faster |",
             "|---|---:|---:|---:|---:|"]
    prev = 0.0
    for name, ns in best.items():
        alone = name.startswith(("bare", "floor", "in-pool", "dpkt", "pypacker", "Scapy"))
        add = "" if alone else f"{ns - prev:+.0f}"
        lines.append(f"| {name} | {ns:.0f} | {add} | {ns / bare:.2f} | {ns / job:.2f} |")
        if not alone:
            prev = ns
    return lines


def main() -> None:
    if "--steps" in sys.argv:
        print(f"Python {sys.version.split()[0]}")
        print("\n".join(steps()))
        return
    lines, problems = run("--quick" in sys.argv)
    print("\n".join(lines))
    if problems:
        sys.exit("output check failed: " + "; ".join(problems))


if __name__ == "__main__":
    main()
