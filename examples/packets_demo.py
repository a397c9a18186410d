"""nfkit demo: an ICMP echo responder (capsule's ping4d logic) on a few generated packets.

Runs the per-packet API end to end: build packets into the shared mempool, parse them,
build replies with push, reconcile checksums, and show every layer.  Bad packets are
counted and dropped, not crashed on.  (Pipelines, pcap ports and `nfkit run` come with the
pipelines issue; this demo is what the packet foundation can do on its own.)
"""

from __future__ import annotations

import nfkit
from nfkit import Mbuf, ParseError
from nfkit.packets import EchoReply, EchoRequest, Ethernet, Ipv4, Udp
from nfkit.packets.dissect import summarize


def request(i: int) -> Mbuf:
    m = Mbuf.alloc()
    eth = m.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:01", "02:00:00:00:00:02"
    ip = eth.push(Ipv4)
    ip.src, ip.dst = "192.0.2.1", "192.0.2.2"
    echo = ip.push(EchoRequest)
    echo.identifier, echo.seq_no = 0x4242, i
    echo.data = b"nfkit ping %d" % i
    echo.reconcile_all()
    return m


def other_traffic() -> list[Mbuf]:
    m = Mbuf.alloc()
    udp = m.push(Ethernet).push(Ipv4).push(Udp)
    udp.dst_port = 53
    udp.set_payload(b"\x12\x34")
    udp.reconcile_all()
    whole = request(9)
    broken = Mbuf.from_bytes(whole.to_bytes()[:30])   # cut inside the IPv4 header
    whole.free()
    return [m, broken]


def reply_echo(req: Mbuf) -> Mbuf:
    """ping4d's reply_echo: a fresh packet built from a peeked request."""
    eth = req.peek(Ethernet)
    ip = eth.peek(Ipv4)
    echo = ip.peek(EchoRequest)
    out = Mbuf.alloc()
    reth = out.push(Ethernet)
    reth.src, reth.dst = eth.dst, eth.src
    rip = reth.push(Ipv4)
    rip.src, rip.dst, rip.ttl = ip.dst, ip.src, 255
    rep = rip.push(EchoReply)
    rep.identifier, rep.seq_no, rep.data = echo.identifier, echo.seq_no, echo.data
    rep.reconcile_all()
    return out


def main() -> None:
    pool = nfkit.default_pool()
    inputs = [request(i) for i in range(3)] + other_traffic()
    replies, dropped = [], 0
    for m in inputs:
        print(f"in   {summarize(m)}")
        try:
            replies.append(reply_echo(m))
        except ParseError as exc:
            dropped += 1
            print(f"     dropped: {exc}")
    for r in replies:
        ip = r.parse(Ethernet).parse(Ipv4)
        ok = "checksums ok" if ip.checksum_ok and ip.parse(EchoReply).checksum_ok else "BAD CHECKSUM"
        print(f"out  {summarize(r)}  [{ok}]")
    Mbuf.free_bulk(inputs + replies)
    print(f"\n{len(inputs)} packets in, {len(replies)} replies out, {dropped} dropped; "
          f"mempool buffers still in use: {pool.in_use}")


if __name__ == "__main__":
    main()
