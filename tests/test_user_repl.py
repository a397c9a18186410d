"""The REPL as a packet explorer and `nfkit dump`'s counts (#15): ``Mbuf.summary()`` is one
line, ``Mbuf.show()`` every layer and field from the declarations; ``dump -c 2`` on a
9-packet file says 2 of 9."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nfkit import Mbuf, Mempool
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.pcap import PcapWriter


def udp(pool: Mempool, dport: int = 53) -> Mbuf:
    m = Mbuf.alloc(pool)
    e = m.push(Ethernet)
    e.src, e.dst = "02:00:00:00:00:02", "02:00:00:00:00:01"
    ip = e.push(Ipv4)
    ip.src, ip.dst = "10.0.0.1", "10.0.0.2"
    u = ip.push(Udp)
    u.src_port, u.dst_port = 1000, dport
    u.reconcile_all()
    return m


def test_mbuf_summary_is_one_line(pool: Mempool) -> None:
    m = udp(pool)
    try:
        assert m.summary() == ("02:00:00:00:00:02 > 02:00:00:00:00:01 / 10.0.0.1 > 10.0.0.2 "
                               "ttl 64 / UDP 1000 > 53 len 0")
    finally:
        m.free()
    junk = Mbuf.from_bytes(b"\x01\x02\x03", pool)
    try:
        assert junk.summary().startswith("[") and "\n" not in junk.summary()
    finally:
        junk.free()


def test_mbuf_show_prints_every_layer_and_field(pool: Mempool,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    m = udp(pool)
    try:
        m.show()
    finally:
        m.free()
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("###")] == [
        "###[ Ethernet ]###", "###[ IPv4 ]###", "###[ UDP ]###"]
    fields = {}
    for line in out:
        if not line.startswith("###"):
            name, _, value = line.partition("=")
            fields.setdefault(name.strip(), value.strip())
    for cls in (Ethernet, Ipv4, Udp):
        for f in cls.ALL_FIELDS:
            assert f.name in fields, (cls.NAME, f.name, out)
    assert fields["ttl"] == "64" and fields["protocol"] == "UDP"
    assert fields["dst_port"] == "53" and fields["ether_type"] == "IPV4"


def test_mbuf_show_of_a_damaged_packet_says_where_decoding_stopped(
        pool: Mempool, capsys: pytest.CaptureFixture[str]) -> None:
    m = udp(pool)
    data = m.to_bytes()
    m.free()
    cut = Mbuf.from_bytes(data[:14 + 10], pool)    # IPv4 cut short
    try:
        cut.show()
    finally:
        cut.free()
    out = capsys.readouterr().out
    assert "###[ Ethernet ]###" in out and "###[ IPv4 ]###" not in out
    assert out.rstrip().splitlines()[-1].startswith("[") and "IPv4" in out


def test_dump_count_says_how_many_the_file_holds(tmp_path: Path, pool: Mempool) -> None:
    ms = [udp(pool, 100 + i) for i in range(9)]
    with PcapWriter(tmp_path / "nine.pcap") as w:
        for i, m in enumerate(ms):
            w.write(m, 1_700_000_000_000_000_000 + i)
    Mbuf.free_bulk(ms)
    proc = subprocess.run([sys.executable, "-m", "nfkit", "dump", "nine.pcap", "-c", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert proc.stderr.strip() == "2 of 9 packets shown", proc.stderr
