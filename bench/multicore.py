"""Multi-core scaling: examples/l2fwd on one and then two cores, each core's queue fed by
an in-process generator (the ``net_null`` port), so no traffic source competes for a CPU.

    python bench/multicore.py --out FILE [--seconds 5]

appends (or writes) a markdown section ``## Multi-core scaling`` to FILE.  Run 1 puts the
port's only queue on a worker (core 1; the master on core 0 idles); run 2 puts one queue on
the master (core 0) and one on a worker (core 1).  The rate is the forwarded packets per
second between 1 s after start (warm-up) and the end, from the runtime's own metrics.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import _machine  # noqa: E402

from nfkit.cli import load_app  # noqa: E402
from nfkit.config import RuntimeConfig  # noqa: E402
from nfkit.runtime import Runtime  # noqa: E402

CONFIG = """
app_name = "l2fwd-bench"
master_core = 0
duration = {duration}
log_level = "warning"
[metrics]
interval = 0.02
[[ports]]
name = "eth1"
device = "net_null0"
args = "size=64,copy=0"
cores = {cores}
"""


def run(cores: list[int], seconds: float) -> tuple[float, dict[int, float]]:
    """Forwarded packets per second (total, and per core) with the port on ``cores``."""
    cfg = RuntimeConfig.from_toml_text(CONFIG.format(duration=int(seconds) + 1, cores=cores))
    rt = Runtime.build(cfg)
    load_app(ROOT / "examples" / "l2fwd" / "l2fwd.py")(rt)
    samples: list[tuple[float, int, dict[int, int]]] = []

    def sample() -> None:
        snap = rt.metrics.snapshot()
        per = {core: c["tx_packets"] for (_, core), c in snap.ports.items()}
        samples.append((time.monotonic(), sum(per.values()), per))

    rt.add_periodic_task_to_core(0, sample, 0.25)
    res = rt.execute()
    assert res.reason == "duration", res
    warm = [s for s in samples if s[0] - samples[0][0] >= 0.75]
    (t0, n0, p0), (t1, n1, p1) = warm[0], warm[-1]
    return (n1 - n0) / (t1 - t0), {c: (p1[c] - p0.get(c, 0)) / (t1 - t0) for c in p1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="markdown file to write the section to")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    one, one_per = run([1], args.seconds)
    two, two_per = run([0, 1], args.seconds)
    cpu = _machine.cpu_model()
    text = f"""## Multi-core scaling

`python bench/multicore.py --out {args.out} --seconds {args.seconds:g}` on {cpu},
{os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}.
examples/l2fwd (its default stage: the JIT kernel with numba), 64-byte frames from the in-process `net_null` generator
(`copy=0`), bursts of 32, one queue per core; rates measured after 1 s of warm-up from the
runtime's metrics.

| cores | forwarded (Mpps) | per core (Mpps) | speed-up |
|---|---:|---|---:|
| 1 (worker on core 1) | {one / 1e6:.2f} | {", ".join(f"core {c}: {v / 1e6:.2f}" for c, v in sorted(one_per.items()))} | 1.00x |
| 2 (master core 0 + worker core 1) | {two / 1e6:.2f} | {", ".join(f"core {c}: {v / 1e6:.2f}" for c, v in sorted(two_per.items()))} | {two / one:.2f}x |
"""
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    if "## Multi-core scaling" in old:
        head, _, rest = old.partition("## Multi-core scaling")
        nxt = rest.find("\n## ")
        old = head + (rest[nxt + 1:] if nxt >= 0 else "")
    out.write_text((old.rstrip() + "\n\n" if old.strip() else "") + text)
    print(text)


if __name__ == "__main__":
    main()
