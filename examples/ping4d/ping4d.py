"""ping4d: an ICMPv4 echo responder (capsule's ping4d).

Every packet of the port is replaced by a reply built from scratch: requests become replies
sent back out the same port; anything that is not an IPv4 echo request aborts (counted and
logged once per kind of error), like capsule's.
"""

from __future__ import annotations

import nfkit
from nfkit.packets import EchoReply, EchoRequest, Ethernet, Ipv4


def reply_echo(req: nfkit.Mbuf) -> nfkit.Mbuf:
    """A new packet answering the echo request ``req`` (peeked, never modified)."""
    eth = req.peek(Ethernet)
    ip = eth.peek(Ipv4)
    echo = ip.peek(EchoRequest)
    out = nfkit.Mbuf.alloc()
    try:
        reth = out.push(Ethernet)
        reth.src, reth.dst = eth.dst, eth.src
        rip = reth.push(Ipv4)
        rip.src, rip.dst, rip.ttl = ip.dst, ip.src, 255
        rep = rip.push(EchoReply)
        rep.identifier, rep.seq_no, rep.data = echo.identifier, echo.seq_no, echo.data
        rep.reconcile_all()
    except BaseException:
        out.free()
        raise
    return out


def install(q: nfkit.PortQueue) -> nfkit.Pipeline:
    return nfkit.Poll(q).replace(reply_echo).send(q)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_pipeline_to_port("eth1", install)
