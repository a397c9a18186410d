"""Network namespaces and veth pairs for end-to-end tests (root needed).

A :class:`NetLab` creates namespaces and veth pairs with unique names and removes every one
of them on :meth:`NetLab.close` -- also when the test failed half way.  The pytest fixture
``netlab`` (from :mod:`nfkit.testing.pytest_plugin`, loaded automatically when nfkit is
installed) wraps it::

    def test_ping(netlab):
        client = netlab.namespace("client")
        link = netlab.veth(peer_ns=client, addr="10.0.0.1/24", peer_addr="10.0.0.2/24")
        # link.name is in this process's namespace (where the NF runs),
        # link.peer in the client namespace
        out = client.run(["ping", "-c", "3", "10.0.0.1"])

IPv6 addresses are added with ``nodad`` so they are usable at once.  Without root or without
``ip netns``, :func:`unavailable_reason` says why; the fixture skips with that reason,
except under ``CI=true`` where it fails (CI machines must run these tests).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import NfkitError

__all__ = ["NetLabError", "Namespace", "Veth", "NetLab", "unavailable_reason", "interface_mac"]

_counter = itertools.count()


class NetLabError(NfkitError):
    """A namespace or link could not be set up (the command and its output are in the message)."""


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and res.returncode != 0:
        raise NetLabError(f"`{' '.join(cmd)}` failed ({res.returncode}): {res.stderr.strip()}")
    return res


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    name = f"nfkprobe{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        return f"`ip netns add` fails here: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def interface_mac(name: str, ns: str | None = None) -> str:
    """The MAC address of interface ``name`` (in namespace ``ns``)."""
    out = _ip("-o", "link", "show", "dev", name, ns=ns).stdout
    words = out.split()
    return words[words.index("link/ether") + 1]


@dataclass
class Namespace:
    """A network namespace made by a :class:`NetLab`."""

    name: str

    def run(self, cmd: Sequence[str], timeout: float = 30, check: bool = False,
            ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace; output captured as text."""
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True,
                              text=True, timeout=timeout, check=check)

    def popen(self, cmd: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``cmd`` inside the namespace (the lab kills it on close if still running)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kwargs)

    def ip(self, *args: str) -> str:
        """``ip ARGS`` inside the namespace; its output (raises NetLabError on failure)."""
        return _ip(*args, ns=self.name).stdout


@dataclass
class Veth:
    """A veth pair: ``name`` in ``ns`` (None: this process's namespace), ``peer`` in ``peer_ns``."""

    name: str
    peer: str
    ns: Namespace | None
    peer_ns: Namespace | None
    mac: str = ""
    peer_mac: str = ""

    def set_up(self, up: bool = True, peer: bool = False) -> None:
        """Bring one end up or down (to test link loss during a run)."""
        ns = self.peer_ns if peer else self.ns
        _ip("link", "set", "dev", self.peer if peer else self.name, "up" if up else "down",
            ns=ns.name if ns else None)


@dataclass
class NetLab:
    """Namespaces and links with unique names, all removed by :meth:`close`."""

    prefix: str = field(default_factory=lambda: f"nfk{os.getpid() % 100000}")
    namespaces: list[Namespace] = field(default_factory=list)
    links: list[Veth] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def _unique(self, tag: str) -> str:
        return f"{self.prefix}{tag}{next(_counter)}"

    def namespace(self, tag: str = "ns") -> Namespace:
        """A new namespace with its loopback up."""
        ns = Namespace(self._unique(tag[:8]))
        _ip("netns", "add", ns.name)
        self.namespaces.append(ns)
        _ip("link", "set", "lo", "up", ns=ns.name)
        return ns

    def veth(self, ns: Namespace | None = None, peer_ns: Namespace | None = None,
             addr: str | Sequence[str] = (), peer_addr: str | Sequence[str] = (),
             mtu: int | None = None) -> Veth:
        """A veth pair, both ends up, with optional addresses (CIDR strings, IPv4 or IPv6)."""
        n = next(_counter)
        tag = f"{os.getpid() % 10000}{n}"
        name, peer = f"nfa{tag}"[:15], f"nfb{tag}"[:15]
        _ip("link", "add", name, "type", "veth", "peer", "name", peer)
        link = Veth(name, peer, ns, peer_ns)
        self.links.append(link)
        for end, where, addrs in ((name, ns, addr), (peer, peer_ns, peer_addr)):
            nsname = where.name if where else None
            if where is not None:
                _ip("link", "set", end, "netns", where.name)
            if mtu:
                _ip("link", "set", "dev", end, "mtu", str(mtu), ns=nsname)
            for a in [addrs] if isinstance(addrs, str) else addrs:
                extra = ["nodad"] if ":" in a else []
                _ip("addr", "add", a, "dev", end, *extra, ns=nsname)
            _ip("link", "set", "dev", end, "up", ns=nsname)
        link.mac = interface_mac(name, ns.name if ns else None)
        link.peer_mac = interface_mac(peer, peer_ns.name if peer_ns else None)
        self.wait_up(link)
        return link

    @staticmethod
    def wait_up(link: Veth, timeout: float = 3.0) -> None:
        """Wait until both ends report carrier (veth needs both ends up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [_ip("-o", "link", "show", "dev", end, ns=where.name if where else None).stdout
                      for end, where in ((link.name, link.ns), (link.peer, link.peer_ns))]
            if all("LOWER_UP" in s for s in states):
                return
            time.sleep(0.02)

    def popen(self, ns: Namespace, cmd: Sequence[str], **kwargs) -> subprocess.Popen:
        """Like :meth:`Namespace.popen`, and the process is killed on :meth:`close`."""
        p = ns.popen(cmd, **kwargs)
        self.processes.append(p)
        return p

    def close(self) -> None:
        """Kill started processes, delete links and namespaces (errors ignored: best effort)."""
        for p in self.processes:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=5)
            except Exception:
                pass
        for link in self.links:
            where = link.ns.name if link.ns else None
            _ip("link", "del", link.name, ns=where, check=False)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True)
            _ip("netns", "del", ns.name, check=False)
        self.links.clear()
        self.namespaces.clear()
        self.processes.clear()

    def __enter__(self) -> "NetLab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
