"""The namespace harness itself: links come up, addresses work, everything is removed."""

from __future__ import annotations

import subprocess

from nfkit.testing.netns import NetLab


def test_veth_between_two_namespaces_pings_and_is_torn_down(netlab: NetLab) -> None:
    a = netlab.namespace("a")
    b = netlab.namespace("b")
    link = netlab.veth(ns=a, peer_ns=b, addr=["10.9.0.1/24", "fd00:9::1/64"],
                       peer_addr=["10.9.0.2/24", "fd00:9::2/64"])
    assert link.mac and link.peer_mac and link.mac != link.peer_mac
    out = a.run(["ping", "-c", "1", "-W", "2", "10.9.0.2"])
    assert out.returncode == 0, out.stdout + out.stderr
    out6 = a.run(["ping", "-6", "-c", "1", "-W", "2", "fd00:9::2"])
    assert out6.returncode == 0, out6.stdout + out6.stderr
    names = [a.name, b.name]
    netlab.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)


def test_teardown_after_a_failure() -> None:
    lab = NetLab()
    try:
        with lab:
            ns = lab.namespace("x")
            link = lab.veth(peer_ns=ns)
            raise RuntimeError("test failed half way")
    except RuntimeError:
        pass
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns.name not in listed
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert link.name + "@" not in links and link.name + ":" not in links
