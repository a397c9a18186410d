"""Push, pop and remove at their edges, and the exact errors of refused edits: mutation
testing found the link-layer padding removed with an IP header untested at 1 byte (``extra
<= 0`` -> ``extra <= 1`` survived), push_vlan's defaults unchecked, and the messages of the
read-only and untagged-frame errors never read."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from nfkit import Mbuf, Mempool
from nfkit.errors import FieldValueError, MalformedError, ReadOnlyError
from nfkit.packets import Ethernet, Ipv4, Ipv6

E = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def mbuf(raw: bytes) -> Mbuf:
    return Mbuf.from_bytes(raw, Mempool(capacity=1))


@pytest.mark.parametrize("pad", [0, 1, 2, 6])
@pytest.mark.parametrize("family", [4, 6])
def test_remove_takes_the_padding_after_the_ip_packet(pad: int, family: int) -> None:
    ip: Any = IP(src="10.0.0.1", dst="10.0.0.2") if family == 4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    inner = bytes(UDP(sport=1, dport=2) / b"ab")
    packet = bytes(Ether(**E) / ip / UDP(sport=1, dport=2) / b"ab")
    m = mbuf(packet + b"\xee" * pad)
    h = m.parse(Ethernet).parse(Ipv4 if family == 4 else Ipv6)
    assert isinstance(h.remove(), Ethernet)
    assert m.to_bytes() == packet[:14] + packet[-len(inner):]        # no padding left
    m.free()


def test_push_vlan_defaults_and_pop() -> None:
    raw = bytes(Ether(**E) / IP(src="10.0.0.1", dst="10.0.0.2") / b"x")
    m = mbuf(raw)
    eth = m.parse(Ethernet)
    tag = eth.push_vlan(5)                                  # 802.1Q, priority 0, DEI 0
    assert m.to_bytes() == raw[:12] + b"\x81\x00\x00\x05" + raw[12:]
    assert m.to_bytes() == bytes(Ether(**E) / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.2") / b"x")
    assert (tag.vid, tag.pcp, tag.dei) == (5, 0, False)
    eth.push_vlan(7, pcp=3, dei=True)                       # QinQ: 802.1ad outside
    tci = (3 << 13) | (1 << 12) | 7
    assert m.to_bytes() == raw[:12] + b"\x88\xa8" + tci.to_bytes(2, "big") + b"\x81\x00\x00\x05" + raw[12:]
    assert eth.pop_vlan() == 7 and eth.pop_vlan() == 5 and m.to_bytes() == raw
    with pytest.raises(MalformedError, match=r"^Ethernet: pop_vlan on an untagged frame$"):
        eth.pop_vlan()
    with pytest.raises(FieldValueError, match=r"^tpid 0x0800 is not a VLAN tag protocol \(expected one of "
                                              r"\['0x8100', '0x88a8', '0x9100'\]\)$"):
        eth.push_vlan(5, tpid=0x0800)
    assert m.to_bytes() == raw
    m.free()


def test_edits_of_peeked_headers_are_refused_by_name() -> None:
    tagged = bytes(Ether(**E) / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.2") / b"x")
    v6 = bytes(Ether(**E) / IPv6(src="2001:db8::1", dst="2001:db8::2") / b"x")
    cases = [(tagged, lambda m: m.peek(Ethernet).push_vlan(1), "push a VLAN tag onto", "Ethernet"),
             (tagged, lambda m: m.peek(Ethernet).pop_vlan(), "pop a VLAN tag from", "Ethernet"),
             (tagged, lambda m: m.parse(Ethernet).peek(Ipv4).remove(), "remove", "IPv4"),
             (v6, lambda m: m.parse(Ethernet).peek(Ipv6).remove(), "remove", "IPv6")]
    for raw, edit, what, name in cases:
        m = mbuf(raw)
        with pytest.raises(ReadOnlyError, match=rf"^cannot {what} a {name} header obtained with peek\(\)$"):
            edit(m)
        assert m.to_bytes() == raw
        m.free()
