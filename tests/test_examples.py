"""End to end: every example runs through ``nfkit run`` on its bundled pcap, and its output
is checked independently of nfkit -- with Scapy, and with tcpdump where it is installed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from nfkit.testing.skips import need_tool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NFKIT = [sys.executable, "-m", "nfkit.cli"]


def need_tcpdump() -> str:
    return need_tool("tcpdump")


def run_example(tmp_path: Path, name: str, app: str, config: str, *extra: str,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Copy the example to tmp_path (outputs land there) and run it."""
    work = tmp_path / name
    shutil.copytree(EXAMPLES / name, work)
    proc = subprocess.run(NFKIT + ["run", app, "-c", config, "--no-status", *extra], cwd=work,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def tcpdump_lines(pcap: Path) -> list[str]:
    out = subprocess.run([need_tcpdump(), "-nn", "-r", str(pcap)], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def valid_checksums(pkt: Ether) -> bool:
    """Scapy recomputes every checksum; the bytes must not change."""
    rebuilt = pkt.copy()
    for layer in (IP, TCP, UDP, ICMP):
        if layer in rebuilt:
            del rebuilt[layer].chksum
    if IPv6 in rebuilt:
        for layer in (TCP, UDP):
            if layer in rebuilt:
                del rebuilt[layer].chksum
    return bytes(Ether(bytes(rebuilt))) == bytes(pkt)


def test_ping4d_answers_every_ipv4_echo(tmp_path: Path) -> None:
    proc = run_example(tmp_path, "ping4d", "ping4d.py", "ping4d.toml")
    assert "stopped: drained" in proc.stdout
    assert "received 9 sent 4 emitted 0 dropped 0 aborted 5 replaced 4" in proc.stdout
    replies = rdpcap(str(tmp_path / "ping4d" / "replies.pcap"))
    requests = rdpcap(str(EXAMPLES / "ping4d" / "echo.pcap"))
    v4_requests = [p for p in requests if IP in p]
    assert len(replies) == len(v4_requests) == 4
    for req, rep in zip(v4_requests, replies):
        assert rep[ICMP].type == 0 and rep[ICMP].id == req[ICMP].id and rep[ICMP].seq == req[ICMP].seq
        assert rep[IP].src == req[IP].dst and rep[IP].dst == req[IP].src and rep[IP].ttl == 255
        assert rep.src == req.dst and rep.dst == req.src
        assert bytes(rep[ICMP].payload) == bytes(req[ICMP].payload)
        assert valid_checksums(rep)
    lines = tcpdump_lines(tmp_path / "ping4d" / "replies.pcap")
    assert len(lines) == 4 and all("ICMP echo reply" in line for line in lines)


def test_pktdump_prints_and_forwards(tmp_path: Path) -> None:
    proc = run_example(tmp_path, "pktdump", "pktdump.py", "pktdump.toml")
    out = proc.stdout
    assert out.count("Ethernet(") == 20 and out.count("IPv4 (peek)(") == 10 and out.count("IPv6 (peek)(") == 10
    assert out.count("flow TCP 10.0.0.1:1025 > 10.0.0.2:1024") == 10
    assert out.count("flow TCP fe80::1:1025 > fe80::2:1024") == 10
    assert len(rdpcap(str(tmp_path / "pktdump" / "out4.pcap"))) == 10
    assert len(rdpcap(str(tmp_path / "pktdump" / "out6.pcap"))) == 10


@pytest.mark.parametrize("variant", ["kernel", "vector", "per-packet"])
def test_l2fwd_swaps_macs(tmp_path: Path, variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NFKIT_L2FWD", variant)
    run_example(tmp_path, "l2fwd", "l2fwd.py", "l2fwd.toml")
    ins = rdpcap(str(EXAMPLES / "l2fwd" / "in.pcap"))
    outs = rdpcap(str(tmp_path / "l2fwd" / "out.pcap"))
    assert len(ins) == len(outs) == 10
    for a, b in zip(ins, outs):
        assert (b.src, b.dst) == (a.dst, a.src) and bytes(a)[12:] == bytes(b)[12:]


def test_nat64_translates_both_ways(tmp_path: Path) -> None:
    proc = run_example(tmp_path, "nat64", "nat64.py", "nat64.toml")
    to_v4 = rdpcap(str(tmp_path / "nat64" / "to-v4.pcap"))
    to_v6 = rdpcap(str(tmp_path / "nat64" / "to-v6.pcap"))
    assert len(to_v4) == 3 and len(to_v6) == 3, proc.stdout
    for i, p in enumerate(to_v4):
        assert p[IP].src == "203.0.113.1" and p[IP].dst == "198.51.100.7"
        assert p[TCP].sport == 1025 + i and p[TCP].dport == 80 and p[IP].ttl == 63
        assert bytes(p[TCP].payload) == b"GET /" and valid_checksums(p)
    for i, p in enumerate(to_v6):
        assert IPv6Address(p[IPv6].src) == IPv6Address("64:ff9b::c633:6407")
        assert IPv6Address(p[IPv6].dst) == IPv6Address(f"2001:db8::{i + 1:x}")
        assert p[TCP].dport == 40000 + i and p[TCP].sport == 80 and p[IPv6].hlim == 63
        assert bytes(p[TCP].payload) == b"200 OK" and valid_checksums(p)


@pytest.mark.parametrize("variant", ["kernel", "vector", "per-packet"])
def test_firewall_applies_rules_in_order(tmp_path: Path, variant: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NFKIT_FIREWALL", variant)
    proc = run_example(tmp_path, "firewall", "firewall.py", "firewall.toml")
    allowed = rdpcap(str(tmp_path / "firewall" / "allowed.pcap"))
    ins = rdpcap(str(EXAMPLES / "firewall" / "in.pcap"))
    assert [bytes(p) for p in allowed] == [bytes(ins[i]) for i in (0, 2, 3, 5, 6)]
    assert "dropped 3" in proc.stdout


def test_firewall_bad_rules_name_file_rule_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\naction = "allow"\nproto = "tcp"\ndst_port = "http"\n')
    work = tmp_path / "fw"
    shutil.copytree(EXAMPLES / "firewall", work)
    proc = subprocess.run(NFKIT + ["run", "firewall.py", "-c", "firewall.toml", "--no-status"],
                          cwd=work, capture_output=True, text=True,
                          env={**os.environ, "NFKIT_RULES": str(bad)})
    assert proc.returncode != 0
    assert f"{bad}: rules[0].dst_port: expected a port" in proc.stderr


def test_syn_flood_generates_incrementing_sources(tmp_path: Path) -> None:
    proc = run_example(tmp_path, "syn-flood", "syn_flood.py", "syn-flood.toml", "--duration", "1")
    assert "syn-flood: sent" in proc.stdout
    pkts = rdpcap(str(tmp_path / "syn-flood" / "syn.pcap"))
    assert len(pkts) >= 128 and len(pkts) % 128 == 0
    for i, p in enumerate(pkts[:300]):
        assert IPv4Address(p[IP].src) == IPv4Address("10.0.0.1") + i
        assert p[IP].dst == "10.100.1.255" and p[TCP].dport == 80 and p[TCP].flags == "S"
    assert all(valid_checksums(p) for p in pkts[:50])
    lines = tcpdump_lines(tmp_path / "syn-flood" / "syn.pcap")
    assert len(lines) == len(pkts) and "10.0.0.1.0 > 10.100.1.255.80: Flags [S]" in lines[0]


def test_skeleton_runs_for_its_duration(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = run_example(tmp_path, "skeleton", "skeleton.py", "skeleton.toml")
    assert "stopped: duration" in proc.stdout and time.monotonic() - t0 >= 1.0
    assert "add pipelines here" in proc.stderr


def test_signals_hup_reloads_term_stops(tmp_path: Path) -> None:
    work = tmp_path / "signals"
    shutil.copytree(EXAMPLES / "signals", work)
    proc = subprocess.Popen(NFKIT + ["run", "signals.py", "-c", "signals.toml", "--no-status"],
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "Ctrl-C to stop" in proc.stdout.readline()
        time.sleep(0.3)
        proc.send_signal(signal.SIGHUP)
        assert proc.stdout.readline().strip() == "reloaded 1"
        assert proc.poll() is None                      # still running
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopping on SIGTERM" in out and "stopped: signal SIGTERM" in out
