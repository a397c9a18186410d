"""End to end against real Linux clients: the examples run as `nfkit run` inside a network
namespace, on one end of a veth pair; the kernel of another namespace (ping, TCP sockets)
talks to them through the other end, and tcpdump checks what is on the wire.

Each NF runs in its own namespace (``ip netns exec``), so a KNI interface named after its
port cannot clash with the host's interfaces.  Waits are bounded: the NF is started, its
log is watched for "running", the client runs with a timeout, and the NF is stopped with
SIGINT (its config has a ``duration`` as a backstop).  Root and ``ip netns`` are needed:
without them the tests skip (the ``netlab`` fixture), under CI=true they fail.

The ports use the AF_PACKET ring driver (``af_packet:IF``); NFKIT_E2E_DEVICE=pcap runs them
on the plain AF_PACKET socket of ``net_pcap`` instead.

The examples also run offline on their sample pcaps here (no root needed).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from nfkit.testing.netns import Namespace, NetLab
from nfkit.testing.skips import need_tool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
APPS = Path(__file__).resolve().parent / "e2e_apps"
NFKIT = [sys.executable, "-m", "nfkit.cli"]


def need(tool: str) -> str:
    """The path of ``tool``; skip without it (fail under CI=true)."""
    return need_tool(tool, "bash .ci/run installs it")


def device(iface: str) -> tuple[str, str | None]:
    """``(device, args)`` of a port on the live interface ``iface``."""
    if os.environ.get("NFKIT_E2E_DEVICE") == "pcap":
        return "net_pcap0", f"iface={iface}"
    return f"af_packet:{iface}", None


def port_toml(name: str, iface: str, kni: bool = False, index: int = 0) -> str:
    dev, args = device(iface)
    if dev == "net_pcap0":
        dev = f"net_pcap{index}"
    lines = ["[[ports]]", f'name = "{name}"', f'device = "{dev}"', "cores = [0]"]
    if args:
        lines.append(f'args = "{args}"')
    if kni:
        lines.append("kni = true")
    return "\n".join(lines) + "\n"


class RunningNf:
    """``nfkit run APP`` in namespace ``ns``, its output in a log file."""

    def __init__(self, lab: NetLab, ns: Namespace, app: Path, ports: str, work: Path,
                 env: dict[str, str] | None = None, backstop: int = 40) -> None:
        work.mkdir(parents=True, exist_ok=True)
        cfg = work / "nf.toml"
        cfg.write_text(f'app_name = "e2e"\nmaster_core = 0\nduration = {backstop}\n'
                       f'log_level = "info"\n\n{ports}')
        self.log_path = work / "nf.log"
        self._log = open(self.log_path, "w")
        self.proc = lab.popen(ns, [*NFKIT, "run", str(app), "-c", str(cfg), "--no-status"],
                              stdout=self._log, stderr=subprocess.STDOUT, cwd=work,
                              env={**os.environ, **(env or {})})

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_running(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ": running" in self.log():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"the NF exited ({self.proc.returncode}) before running:\n{self.log()}")
            time.sleep(0.05)
        pytest.fail(f"the NF did not start within {timeout}s:\n{self.log()}")

    def mac(self, port: str) -> str:
        found = re.search(rf"port {re.escape(port)}: .* mac ([0-9a-f:]{{17}})", self.log())
        assert found, self.log()
        return found.group(1)

    def stop(self, timeout: float = 15) -> str:
        """SIGINT, wait, and the log (the run must have ended cleanly)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"the NF did not stop within {timeout}s of SIGINT:\n{self.log()}")
        self._log.close()
        out = self.log()
        assert self.proc.returncode == 0, out
        assert "stopped: signal SIGINT" in out, out
        return out


def wait_for_line(stream: IO[str], needle: str, timeout: float, what: str) -> str:
    """Read ``stream`` until a line contains ``needle`` (bounded)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    pytest.fail(f"{what}: no {needle!r} within {timeout}s; got: {''.join(seen)!r}")


class Capture:
    """tcpdump on ``iface`` in ``ns`` writing ``path`` (started and stopped explicitly)."""

    def __init__(self, lab: NetLab, ns: Namespace, iface: str, path: Path, expr: str) -> None:
        self.path = path
        self.proc = lab.popen(ns, [need("tcpdump"), "-i", iface, "-nn", "-U", "--immediate-mode", "-w", str(path),
                                   *expr.split()])
        assert self.proc.stderr is not None
        wait_for_line(self.proc.stderr, "listening on", 10, "tcpdump")

    def stop(self) -> list[str]:
        """Stop and decode: the captured packets, one tcpdump line each."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=10)
        out = subprocess.run([need("tcpdump"), "-nn", "-e", "-r", str(self.path)],
                             capture_output=True, text=True, timeout=10)
        return [line for line in out.stdout.splitlines() if line.strip()]


def received(ping_output: str) -> int:
    found = re.search(r"(\d+) packets transmitted, (\d+) received", ping_output)
    assert found, ping_output
    return int(found.group(2))


# -- (a) ping4d answers the kernel's ping; tcpdump sees every reply --------------------------

def test_ping4d_answers_linux_ping(netlab: NetLab, tmp_path: Path) -> None:
    need("ping")
    nfns, client = netlab.namespace("nf"), netlab.namespace("cli")
    link = netlab.veth(ns=nfns, peer_ns=client, peer_addr="10.78.0.2/24")
    # ping4d answers echo requests only, not ARP: the client knows the NF's MAC statically.
    client.ip("neigh", "replace", "10.78.0.1", "lladdr", link.mac, "dev", link.peer,
              "nud", "permanent")
    nf = RunningNf(netlab, nfns, EXAMPLES / "ping4d" / "ping4d.py", port_toml("eth1", link.name),
                   tmp_path / "nf")
    nf.wait_running()
    cap = Capture(netlab, client, link.peer, tmp_path / "client.pcap", "icmp")
    out = client.run(["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.78.0.1"], timeout=30)
    lines = cap.stop()
    log = nf.stop()
    assert received(out.stdout) == 5, out.stdout + log
    assert "DUP!" not in out.stdout
    replies = [line for line in lines if "ICMP echo reply" in line]
    requests = [line for line in lines if "ICMP echo request" in line]
    assert len(requests) == 5 and len(replies) == 5, "\n".join(lines)
    # on the wire: from the NF's MAC, ttl 255 as ping4d sets it (-v is not needed: -e shows MACs)
    assert all(line.split()[1] == link.mac for line in replies), "\n".join(replies)
    assert re.search(r"pipeline default#0: received \d+ sent 5 ", log), log


# -- (b) nd-responder: the kernel resolves the NF's IPv6 address, ping -6 is answered -------

def test_nd_responder_resolves_and_answers_ping6(netlab: NetLab, tmp_path: Path) -> None:
    need("ping")
    nfns, client = netlab.namespace("nf"), netlab.namespace("cli")
    link = netlab.veth(ns=nfns, peer_ns=client, peer_addr="fd00:79::2/64")
    nf = RunningNf(netlab, nfns, EXAMPLES / "nd-responder" / "nd_responder.py",
                   port_toml("eth1", link.name), tmp_path / "nf",
                   env={"NFKIT_ND_ADDRESSES": "fd00:79::1,fd00:79::7"})
    nf.wait_running()
    cap = Capture(netlab, client, link.peer, tmp_path / "client.pcap", "icmp6")
    out = client.run(["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:79::1"], timeout=30)
    neigh = client.ip("-6", "neigh", "show", "fd00:79::1", "dev", link.peer)
    lines = cap.stop()
    log = nf.stop()
    port_mac = nf.mac("eth1")
    assert received(out.stdout) == 3, out.stdout + log
    assert f"lladdr {port_mac}" in neigh, neigh
    assert not re.search(r"FAILED|INCOMPLETE", neigh), neigh
    adverts = [line for line in lines if "neighbor advertisement" in line]
    assert adverts and all(line.split()[1] == port_mac for line in adverts), "\n".join(lines)
    assert sum("echo reply" in line for line in lines) == 3, "\n".join(lines)


# -- (c) nat64: a TCP client in an IPv6 namespace talks to a TCP server in an IPv4 one -------

SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.2", 7777)); s.listen(1); s.settimeout(20)
print("ready", flush=True)
c, peer = s.accept(); c.settimeout(10)
data = b""
while not data.endswith(b"\n"):
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
c.sendall(b"pong:" + data * 3)
c.close()
print("peer", peer[0], len(data), flush=True)
"""

CLIENT = r"""
import socket
c = socket.create_connection(("64:ff9b::c633:6402", 7777), timeout=10)
c.sendall(b"ping from v6 " + b"x" * 300 + b"\n")
data = b""
while True:
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
print(len(data), data[:18].decode(), flush=True)
"""


def test_nat64_tcp_between_v6_and_v4_namespaces(netlab: NetLab, tmp_path: Path) -> None:
    nfns, v6, v4 = netlab.namespace("nf"), netlab.namespace("v6"), netlab.namespace("v4")
    a = netlab.veth(ns=nfns, peer_ns=v6, peer_addr="fd00:64::2/64")
    b = netlab.veth(ns=nfns, peer_ns=v4, peer_addr="198.51.100.2/24")
    # No ARP/NDP through the NF: routes and permanent neighbour entries towards it.
    v6.ip("-6", "neigh", "replace", "fd00:64::1", "lladdr", a.mac, "dev", a.peer, "nud", "permanent")
    v6.ip("-6", "route", "add", "64:ff9b::/96", "via", "fd00:64::1", "dev", a.peer)
    v4.ip("route", "add", "203.0.113.1/32", "dev", b.peer)
    v4.ip("neigh", "replace", "203.0.113.1", "lladdr", b.mac, "dev", b.peer, "nud", "permanent")
    nf = RunningNf(netlab, nfns, APPS / "nat64_veth.py",
                   port_toml("eth1", a.name) + port_toml("eth2", b.name, index=1), tmp_path / "nf",
                   env={"NAT64_V6_PEER_MAC": a.peer_mac, "NAT64_V4_PEER_MAC": b.peer_mac})
    nf.wait_running()
    cap = Capture(netlab, v4, b.peer, tmp_path / "v4.pcap", "tcp port 7777")
    server = netlab.popen(v4, [sys.executable, "-c", SERVER])
    assert server.stdout is not None
    wait_for_line(server.stdout, "ready", 10, "the IPv4 server")
    client = v6.run([sys.executable, "-c", CLIENT], timeout=30)
    server_out, server_err = server.communicate(timeout=20)
    lines = cap.stop()
    log = nf.stop()
    reply_len = len(b"pong:") + 3 * len(b"ping from v6 " + b"x" * 300 + b"\n")
    assert client.returncode == 0, client.stdout + client.stderr + log
    assert client.stdout.split() == [str(reply_len), "pong:ping", "from", "v6"], client.stdout
    assert "peer 203.0.113.1 314" in server_out, server_out + server_err
    # on the IPv4 wire: the gateway address and a port allocated from 1025, both ways
    assert any("203.0.113.1.1025 > 198.51.100.2.7777" in line for line in lines), "\n".join(lines)
    assert any("198.51.100.2.7777 > 203.0.113.1.1025" in line for line in lines), "\n".join(lines)
    assert "pipeline 6to4" in log and "pipeline 4to6" in log


# -- KNI: packets from the port go to the kernel, the kernel's go back out ------------------

def test_kni_example_lets_the_kernel_answer_through_the_nf(netlab: NetLab, tmp_path: Path) -> None:
    need("ping")
    nfns, client = netlab.namespace("nf"), netlab.namespace("cli")
    link = netlab.veth(ns=nfns, peer_ns=client, peer_addr="10.80.0.2/24")
    # The veth end the NF reads has the port's MAC too (af_packet takes the interface's):
    # keep the NF namespace's kernel from answering on it directly (no address there, but
    # Linux answers for any local address on any interface unless told not to).
    for key in ("all.rp_filter=1", f"{link.name}.rp_filter=1", f"{link.name}.arp_ignore=1"):
        nfns.run(["sysctl", "-q", "-w", f"net.ipv4.conf.{key}"], check=True)
    nf = RunningNf(netlab, nfns, EXAMPLES / "kni" / "kni.py",
                   port_toml("kni0", link.name, kni=True), tmp_path / "nf")
    nf.wait_running()
    kni = nfns.ip("-o", "link", "show", "dev", "kni0")
    assert "UP" in kni and nf.mac("kni0") in kni, kni
    nfns.ip("addr", "add", "10.80.0.1/24", "dev", "kni0")
    out = client.run(["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.80.0.1"], timeout=30)
    neigh = client.ip("neigh", "show", "10.80.0.1", "dev", link.peer)
    log = nf.stop()
    assert received(out.stdout) == 5, out.stdout + log
    assert "DUP!" not in out.stdout, out.stdout
    assert f"lladdr {nf.mac('kni0')}" in neigh, neigh       # ARP went through the KNI too
    # both directions carried the 5 echoes and the ARP exchange (at least)
    sent = [int(n) for n in re.findall(r"pipeline default#\d: received \d+ sent (\d+) ", log)]
    assert len(sent) == 2 and min(sent) >= 6, log


# -- offline: the new examples on their sample pcaps --------------------------------------

def test_nd_responder_on_its_sample_pcap(tmp_path: Path) -> None:
    from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6)
    from scapy.utils import rdpcap
    work = tmp_path / "nd-responder"
    shutil.copytree(EXAMPLES / "nd-responder", work)
    env = {k: v for k, v in os.environ.items() if k != "NFKIT_ND_ADDRESSES"}
    proc = subprocess.run([*NFKIT, "run", "nd_responder.py", "-c", "nd-responder.toml",
                           "--no-status"], cwd=work, capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "received 5 sent 3 emitted 0 dropped 2 aborted 0 replaced 3" in proc.stdout, proc.stdout
    out = rdpcap(str(work / "replies.pcap"))
    na, dad, echo = out
    for p in (na, dad):
        assert p[ICMPv6ND_NA].tgt == "2001:db8:77::1" and p[ICMPv6ND_NA].O == 1
        assert p[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01" == p.src
        assert p[IPv6].hlim == 255
    assert na[ICMPv6ND_NA].S == 1 and na[IPv6].dst == "2001:db8:77::2" and na.dst == "02:00:00:00:77:02"
    assert dad[ICMPv6ND_NA].S == 0 and dad[IPv6].dst == "ff02::1"
    assert echo[ICMPv6EchoReply].id == 0x77 and echo[ICMPv6EchoReply].data == b"nd-responder"
    for p in out:   # Scapy recomputes the checksum: the same
        rebuilt = p.copy()
        del rebuilt[IPv6].payload.cksum
        assert bytes(type(p)(bytes(rebuilt))) == bytes(p)
