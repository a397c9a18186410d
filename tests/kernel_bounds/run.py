"""Run by tests/test_kernel_bounds.py with NUMBA_BOUNDSCHECK=1: every compiled per-packet
reader (flow_key, the BatchView classification, the ACL and NAT64 kernels, the l2fwd
kernel) over truncated and mangled frames placed at the very end of the pool's last
buffer row, so a read past a frame's end raises IndexError instead of reading garbage."""

from __future__ import annotations

import ipaddress
import random
import sys
from pathlib import Path

import numpy as np

from nfkit import Mbuf, Mempool
from nfkit.cli import load_module
from nfkit.packets import Ethernet, Fragment, Ipv4, Ipv6, SegmentRouting, Tcp, Udp
from nfkit.vector import BatchView
from nfkit.vector.acl import Acl, AclRule
from nfkit.vector.jit import flow_key

ROOT = Path(__file__).resolve().parents[2]


def example(name: str, file: str):
    return load_module(ROOT / "examples" / name / file)


def frames() -> list[bytes]:
    pool = Mempool(capacity=4)
    out = []
    for chain in ((Ethernet, Ipv4, Tcp), (Ethernet, Ipv4, Udp), (Ethernet, Ipv6, Tcp),
                  (Ethernet, Ipv6, Fragment, Udp), (Ethernet, Ipv6, SegmentRouting, Tcp)):
        for vlans in (0, 1, 2):
            m = Mbuf.alloc(pool)
            p = m.push(chain[0])
            top = p
            for cls in chain[1:]:
                top = top.push(cls)
            if chain[1] is Ipv6:
                p.parse(Ipv6).dst = "64:ff9b::c000:201"
            top.reconcile_all()
            eth = m.parse(Ethernet)
            for _ in range(vlans):
                eth.push_vlan(7)
            out.append(m.to_bytes())
            m.free()
    return out


def main() -> int:
    rnd = random.Random(5)
    base = frames()
    cases = []
    for raw in base:
        cases += [raw[:k] for k in range(len(raw) + 1)]
        for _ in range(30):
            b = bytearray(raw)
            for _ in range(3):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            cases.append(bytes(b[:rnd.randrange(len(b) + 1)]))
    acl = Acl([AclRule(True, (6,), dst=ipaddress.ip_network("10.0.0.0/8"), dst_ports=(80, 80)),
               AclRule(False, (17,), src=ipaddress.ip_network("2001:db8::/32"))])
    nat = example("nat64", "nat64.py").KernelNat64()
    l2fwd = example("l2fwd", "l2fwd.py").swap_kernel
    pool = Mempool(capacity=8, buf_size=256, headroom=64)
    last = pool.capacity - 1
    for raw in cases:
        for k in (acl.kernel(), nat.six_to_four, nat.four_to_six, l2fwd):
            # the frame ends exactly where the pool's memory ends
            pool.data_off[last] = pool.stride - len(raw)
            pool.data_len[last] = len(raw)
            pool.data[last, pool.stride - len(raw):] = np.frombuffer(raw, np.uint8)
            slots = np.array([last], dtype=np.int64)
            flow_key(pool.data, last, int(pool.data_off[last]), len(raw))
            BatchView(pool, slots)
            pool.refcnt[last] = 1
            k.run(pool, slots)
    print(f"ok {len(cases)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
