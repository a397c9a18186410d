"""The nat64 example's JIT kernels give byte for byte what its per-packet version gives,
on hypothesis-generated mixes (VLAN tags, hop limits, prefixes, options, padding, cuts)."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import rdpcap

from nfkit import Mbuf, Mempool, NfkitError
from nfkit.cli import load_module, run_app
from nfkit.runtime import RunError
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp
from nfkit.testing import packet, sr_tcp, v4_tcp, v4_udp, v6_tcp, v6_udp

from test_vector_view import mangled

APP = Path(__file__).parents[1] / "examples" / "nat64" / "nat64.py"
nat64 = load_module(APP)

CLIENTS = st.sampled_from(["2001:db8::1", "2001:db8::2", "2001:db8:ffff::1234:5678", "fe80::1"])
V6_DST = st.sampled_from(["64:ff9b::c633:6407", "64:ff9b::a00:1", "64:ff9b:1::1", "2001:db8::80"])


SIX = st.one_of(v6_tcp(ipv6_src=CLIENTS, ipv6_dst=V6_DST, ipv6_hop_limit=st.integers(0, 3) | st.just(64),
                       src_port=st.integers(1000, 1003), payload=st.binary(max_size=12)),
                v6_udp(ipv6_dst=V6_DST), sr_tcp(), v4_tcp())
FOUR = st.one_of(v4_tcp(ipv4_ttl=st.integers(0, 3) | st.just(64), dst_port=st.integers(1024, 1030),
                        payload=st.binary(max_size=12)),
                 packet(Ethernet, Ipv4, Tcp, dst_port=1025, ipv4_more_fragments=st.booleans()),
                 v4_udp(dst_port=1025), v6_tcp())


def per_packet(fn: Any, raws: list[bytes]) -> list[bytes | None]:
    out = []
    for raw in raws:
        m = Mbuf.from_bytes(raw)
        try:
            r = fn(m)
        except NfkitError:      # a pipeline aborts (drops and counts) these
            r = None
        out.append(m.to_bytes() if r is not None else None)
        m.free()
    return out


def kernel(k: Any, raws: list[bytes], python: bool) -> list[bytes | None]:
    pool = Mempool(capacity=64)
    slots = np.array([Mbuf.from_bytes(r, pool).slot for r in raws], dtype=np.int64)
    keep = k.run(pool, slots, python=python)
    return [Mbuf(pool, int(s)).to_bytes() if kp else None for s, kp in zip(slots, keep)]


@given(st.lists(mangled(SIX), min_size=1, max_size=20), st.lists(mangled(FOUR), max_size=20))
def test_kernels_equal_per_packet_both_ways(six: list[bytes], four: list[bytes]) -> None:
    ref = nat64.Nat64()
    want6 = per_packet(ref.six_to_four, six)
    want4 = per_packet(ref.four_to_six, four)
    for python in (False, True):
        k = nat64.KernelNat64()
        assert kernel(k.six_to_four, six, python) == want6
        assert kernel(k.four_to_six, four, python) == want4
        assert len(k) == len(ref.port_to_v6)


def test_translated_packets_parse_with_valid_checksums() -> None:
    k = nat64.KernelNat64()
    m = Mbuf.alloc()
    t = m.push(Ethernet).push(Ipv6).push(Tcp)
    t.envelope.src, t.envelope.dst, t.src_port, t.dst_port = "2001:db8::7", "64:ff9b::c000:201", 4242, 80
    t.set_payload(b"hello")
    t.reconcile_all()
    raw = m.to_bytes()
    m.free()
    (out,) = kernel(k.six_to_four, [raw], python=False)
    v4 = Mbuf.from_bytes(out).parse(Ethernet).parse(Ipv4)
    tcp = v4.parse(Tcp)
    assert str(v4.src) == "203.0.113.1" and str(v4.dst) == "192.0.2.1" and tcp.src_port == 1025
    assert v4.checksum_ok and tcp.checksum_ok and v4.ttl == 63
    # and the reply comes back to the client
    v4.src, v4.dst = v4.dst, v4.src
    tcp.src_port, tcp.dst_port = 80, 1025
    (back,) = kernel(k.four_to_six, [v4.mbuf.to_bytes()], python=False)
    v6 = Mbuf.from_bytes(back).parse(Ethernet).parse(Ipv6)
    t6 = v6.parse(Tcp)
    assert str(v6.dst) == "2001:db8::7" and str(v6.src) == "64:ff9b::c000:201"
    assert t6.dst_port == 4242 and t6.checksum_ok and bytes(t6.payload) == b"hello"
    Mbuf.free_bulk([v4.mbuf, v6.mbuf])


# -- an independent oracle: the translation built with Scapy from the same values -----------
# The comparison above only tells the two implementations apart; these check each one (the
# per-packet reference, the compiled kernels, the kernels as Python) against frames Scapy
# builds from what the translation must produce, with every checksum Scapy's own.  Found
# needed by mutation testing: mutants of the reference or of both survived the comparison.

GW = "203.0.113.1"
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
TCP_FIELDS = st.fixed_dictionaries({
    "seq": st.integers(0, 2**32 - 1), "ack": st.integers(0, 2**32 - 1),
    "flags": st.sampled_from(["S", "SA", "A", "PA", "FA", "R"]), "window": st.integers(0, 65535),
    "options": st.sampled_from([[], [("MSS", 1460)], [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]]),
})


def l2(vlans: list[int]) -> Any:
    p = Ether(**MACS)
    for v in vlans:
        p = p / Dot1Q(vlan=v)
    return p


@st.composite
def v6_flow(draw: Any) -> dict[str, Any]:
    """A client's IPv6/TCP packet: mostly translatable, some not (hop limit, protocol, prefix)."""
    return {"client": draw(st.sampled_from(["2001:db8::1", "2001:db8::2", "2001:db8:ffff::1234:5678"])),
            "sport": draw(st.sampled_from([1000, 1001, 65535])),
            "dst4": draw(st.sampled_from(["198.51.100.7", "192.0.2.1", "10.0.0.1", "255.255.255.255"])),
            "prefix": draw(st.sampled_from(["64:ff9b::"] * 5 + ["64:ff9b:1::", "64:ff9b::1:", "2001:db8::"])),
            "proto": draw(st.sampled_from(["tcp"] * 6 + ["udp"])),
            "hops": draw(st.sampled_from([0, 1, 2, 3, 64, 255])), "tc": draw(st.integers(0, 255)),
            "fl": draw(st.integers(0, 0xFFFFF)), "dport": draw(st.sampled_from([80, 443])),
            "vlans": draw(st.lists(st.integers(0, 4095), max_size=2)),
            "payload": draw(st.binary(max_size=24)), "tcp": draw(TCP_FIELDS)}


@st.composite
def v4_reply(draw: Any) -> dict[str, Any]:
    """A server's IPv4/TCP packet to a gateway port (bound or not), some not translatable."""
    return {"src4": draw(st.sampled_from(["198.51.100.7", "192.0.2.1", "0.0.0.1"])),
            "dport": draw(st.sampled_from([1024, 1025, 1026, 1027, 1028, 65535])),
            "proto": draw(st.sampled_from(["tcp"] * 6 + ["udp"])),
            "ttl": draw(st.sampled_from([0, 1, 2, 64, 255])), "tos": draw(st.integers(0, 255)),
            "frag": draw(st.sampled_from([(0, 0)] * 4 + [(2, 0), (1, 0), (0, 1), (1, 8)])),
            "options": draw(st.integers(0, 3)), "sport": draw(st.sampled_from([80, 443])),
            "vlans": draw(st.lists(st.integers(0, 4095), max_size=2)),
            "payload": draw(st.binary(max_size=24)), "tcp": draw(TCP_FIELDS)}


def build6(f: dict[str, Any]) -> bytes:
    ip = IPv6(src=f["client"], dst=f["prefix"] + f["dst4"], hlim=f["hops"], tc=f["tc"], fl=f["fl"])
    l4 = TCP(sport=f["sport"], dport=f["dport"], **f["tcp"]) if f["proto"] == "tcp" \
        else UDP(sport=f["sport"], dport=f["dport"])
    return bytes(l2(f["vlans"]) / ip / l4 / Raw(f["payload"]))


def build4(r: dict[str, Any]) -> bytes:
    flags, frag = r["frag"]
    ip = IP(src=r["src4"], dst=GW, ttl=r["ttl"], tos=r["tos"], flags=flags, frag=frag, id=77,
            options=[IPOption_NOP()] * r["options"])
    l4 = TCP(sport=r["sport"], dport=r["dport"], **r["tcp"]) if r["proto"] == "tcp" \
        else UDP(sport=r["sport"], dport=r["dport"])
    return bytes(l2(r["vlans"]) / ip / l4 / Raw(r["payload"]))


def expected(flows: list[dict[str, Any]], replies: list[dict[str, Any]],
             first_port: int = 1025) -> tuple[list[bytes | None], list[bytes | None]]:
    """What the NAT must send: gateway ports from ``first_port`` up in order of first use,
    one per (client, port); the rest dropped (None)."""
    port_of: dict[tuple[str, int], int] = {}
    client_of: dict[int, tuple[str, int]] = {}
    out4: list[bytes | None] = []
    for f in flows:
        key = (f["client"], f["sport"])
        if f["proto"] != "tcp" or f["prefix"] != "64:ff9b::" or f["hops"] <= 1 \
                or (key not in port_of and first_port + len(port_of) > 65535):
            out4.append(None)
            continue
        port = port_of.setdefault(key, first_port + len(port_of))
        client_of[port] = key
        ip = IP(src=GW, dst=f["dst4"], ttl=f["hops"] - 1, tos=f["tc"], id=0, flags=0, proto=6)
        out4.append(bytes(l2(f["vlans"]) / ip / TCP(sport=port, dport=f["dport"], **f["tcp"])
                          / Raw(f["payload"])))
    out6: list[bytes | None] = []
    for r in replies:
        if r["proto"] != "tcp" or r["frag"] not in ((0, 0), (2, 0)) or r["ttl"] <= 1 \
                or r["dport"] not in client_of:
            out6.append(None)
            continue
        client, cport = client_of[r["dport"]]
        ip = IPv6(src="64:ff9b::" + r["src4"], dst=client, hlim=r["ttl"] - 1, tc=r["tos"], fl=0, nh=6)
        out6.append(bytes(l2(r["vlans"]) / ip / TCP(sport=r["sport"], dport=cport, **r["tcp"])
                          / Raw(r["payload"])))
    return out4, out6


@given(st.lists(v6_flow(), min_size=1, max_size=12), st.lists(v4_reply(), max_size=12))
def test_each_implementation_translates_as_scapy_builds_it(flows: list[dict[str, Any]],
                                                           replies: list[dict[str, Any]]) -> None:
    six, four = [build6(f) for f in flows], [build4(r) for r in replies]
    want4, want6 = expected(flows, replies)
    ref = nat64.Nat64()
    assert per_packet(ref.six_to_four, six) == want4
    assert per_packet(ref.four_to_six, four) == want6
    for python in (False, True):
        k = nat64.KernelNat64()
        assert kernel(k.six_to_four, six, python) == want4
        assert kernel(k.four_to_six, four, python) == want6
        assert len(k) == len(ref.port_to_v6) == len({(f["client"], f["sport"]) for f, w in
                                                     zip(flows, want4) if w is not None})


def test_the_last_gateway_port_is_used_then_clients_are_dropped() -> None:
    flows = [dict(client=c, sport=1000, dst4="192.0.2.1", prefix="64:ff9b::", proto="tcp", hops=64,
                  tc=0, fl=0, dport=80, vlans=[], payload=b"x", tcp={"flags": "S"})
             for c in ("2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::1")]
    replies = [dict(src4="192.0.2.1", dport=p, proto="tcp", ttl=64, tos=0, frag=(0, 0), options=0,
                    sport=80, vlans=[], payload=b"", tcp={"flags": "SA"}) for p in (65534, 65535)]
    six, four = [build6(f) for f in flows], [build4(r) for r in replies]
    want4, want6 = expected(flows, replies, first_port=65534)
    assert [w is not None for w in want4] == [True, True, False, True]
    ref = nat64.Nat64(first_port=65534)
    assert per_packet(ref.six_to_four, six) == want4
    assert per_packet(ref.four_to_six, four) == want6
    assert len(ref.port_to_v6) == 2 and ref.port_for(ipaddress.IPv6Address("2001:db8::9"), 1) is None
    for python in (False, True):
        k = nat64.KernelNat64(first_port=65534)
        assert kernel(k.six_to_four, six, python) == want4
        assert kernel(k.four_to_six, four, python) == want6
        assert len(k) == 2


@pytest.mark.parametrize("mode", ["kernel", "per-packet"])
def test_main_wires_either_implementation(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """main(runtime): eth1 (IPv6) -> 6to4 -> eth2 and back, in both modes, drops counted."""
    for f in ("nat64.toml", "v4-side.pcap", "v6-side.pcap"):
        shutil.copy(APP.parent / f, tmp_path / f)
    monkeypatch.chdir(tmp_path)                     # the config's pcap paths are relative
    monkeypatch.setenv("NFKIT_NAT64", mode)
    result = run_app(APP, tmp_path / "nat64.toml", status=False)
    ref = nat64.Nat64()
    for name, rx, tx, fn in (("6to4", "v6-side", "to-v4", ref.six_to_four),
                             ("4to6", "v4-side", "to-v6", ref.four_to_six)):
        ins = [bytes(p) for p in rdpcap(str(tmp_path / f"{rx}.pcap"))]
        want = [w for w in per_packet(fn, ins) if w is not None]
        assert [bytes(p) for p in rdpcap(str(tmp_path / f"{tx}.pcap"))] == want
        (stats,) = [v for k, v in result.pipelines.items() if k.startswith(name)]
        assert (stats["received"], stats["act"], stats["drop"]) == (len(ins), len(want), len(ins) - len(want))


def test_main_refuses_an_unknown_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for f in ("nat64.toml", "v4-side.pcap", "v6-side.pcap"):
        shutil.copy(APP.parent / f, tmp_path / f)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NFKIT_NAT64", "fast")
    with pytest.raises(RunError, match="NFKIT_NAT64: expected kernel or per-packet, got 'fast'"):
        run_app(APP, tmp_path / "nat64.toml", status=False)


def kernel_with(k: Any, mbufs: list[Mbuf], python: bool) -> list[bytes | None]:
    pool = mbufs[0].pool
    slots = np.array([m.slot for m in mbufs], dtype=np.int64)
    keep = k.run(pool, slots, python=python)
    return [Mbuf(pool, int(s)).to_bytes() if kp else None for s, kp in zip(slots, keep)]


def v6_flow_to(dst4: str, tc: int = 0) -> dict[str, Any]:
    return dict(client="2001:db8::1", sport=1000, dst4=dst4, prefix="64:ff9b::", proto="tcp",
                hops=64, tc=tc, fl=0, dport=80, vlans=[], payload=b"p" * 6, tcp={"flags": "S"})


def test_an_ipv4_header_sum_that_carries_twice() -> None:
    """The IPv4 header checksum folds its sum twice: find a destination whose sum still
    carries after the first fold (else the second fold is never exercised)."""
    def carries_twice(d: int) -> bool:
        words = [0x4500, 20 + 26, 0, 0, (63 << 8) | 6, 0xCB00, 0x7101, d >> 16, d & 0xFFFF]
        total = sum(words)
        return (total & 0xFFFF) + (total >> 16) > 0xFFFF
    dst = next(d for d in range(0xFFFF0000, 0xFFFFFFFF) if carries_twice(d))
    flows = [v6_flow_to(str(ipaddress.IPv4Address(dst)))]
    want4, _ = expected(flows, [])
    six = [build6(f) for f in flows]
    assert per_packet(nat64.Nat64().six_to_four, six) == want4
    for python in (False, True):
        assert kernel(nat64.KernelNat64().six_to_four, six, python) == want4


def test_payload_length_zero_means_the_rest_of_the_frame() -> None:
    six = build6(v6_flow_to("192.0.2.1"))
    unset = Ether(six)
    unset[IPv6].plen = 0
    want4, _ = expected([v6_flow_to("192.0.2.1")], [])
    for python in (False, True):
        assert kernel(nat64.KernelNat64().six_to_four, [bytes(unset)], python) == want4


def test_too_little_headroom_drops_and_the_burst_goes_on() -> None:
    """four_to_six grows the frame by 20 bytes at its front: with 19 bytes of headroom the
    packet is dropped (counted), the next one of the burst still translated; 20 suffice."""
    k = nat64.KernelNat64()
    kernel(k.six_to_four, [build6(v6_flow_to("192.0.2.1"))], python=True)     # binds 1025
    reply = dict(src4="192.0.2.1", dport=1025, proto="tcp", ttl=64, tos=0, frag=(0, 0), options=0,
                 sport=80, vlans=[], payload=b"r", tcp={"flags": "SA"})
    _, want6 = expected([v6_flow_to("192.0.2.1")], [reply])
    raw = build4(reply)
    for python in (False, True):
        for headroom, room in ((20, True), (19, False)):
            pool = Mempool(capacity=4, headroom=headroom)
            tight = Mbuf.from_bytes(raw, pool)
            roomy = Mbuf.from_bytes(bytes(40) + raw, pool)
            roomy.shrink(0, 40)                              # 40 bytes more headroom
            got = kernel_with(k.four_to_six, [tight, roomy], python)
            assert got == [want6[0] if room else None, want6[0]], (python, headroom)


def binding_home(hi: int, lo: np.ndarray, sport: int) -> np.ndarray:
    """The slot the kernel's binding table probes first for (hi, lo, sport) (its hash)."""
    with np.errstate(over="ignore"):
        h = (np.uint64(hi) * np.uint64(0x9E3779B97F4A7C15)) ^ (lo * np.uint64(0xC2B2AE3D27D4EB4F)) \
            ^ np.uint64(sport * 0x165667B1)
        h ^= h >> np.uint64(31)
    return h & np.uint64(nat64.SLOTS - 1)


def clients_sharing_a_slot(flows_from: list[tuple[int, int]], sport: int = 1000) -> list[bytes]:
    return [build6(dict(v6_flow_to("192.0.2.1"), client=str(ipaddress.IPv6Address((hi << 64) | lo)),
                        sport=sport)) for hi, lo in flows_from]


def test_clients_whose_bindings_collide_keep_their_own_ports() -> None:
    """Three clients (same address high half, same port) whose bindings hash to one slot
    of the kernel's table, and two whose address halves differ only below float64's
    precision: each gets its own gateway port, and replies find it."""
    hi = 0x20010DB800000000
    lo = np.arange(1, 1 << 22, dtype=np.uint64)
    homes = binding_home(hi, lo, 1000)
    chain = [(hi, int(x)) for x in lo[homes == homes[0]][:3]]
    base_hi, base_lo = 0x20010DB800000000, 0x8000000000000000
    near = [(base_hi, base_lo), (base_hi + 91, base_lo + 793)]   # same slot, same as floats
    assert binding_home(near[1][0], np.array([near[1][1]], np.uint64), 1000)[0] \
        == binding_home(near[0][0], np.array([near[0][1]], np.uint64), 1000)[0]
    for clients in (chain, near):
        six = clients_sharing_a_slot(clients)
        flows = [dict(v6_flow_to("192.0.2.1"), client=str(ipaddress.IPv6Address((h << 64) | lo_)))
                 for h, lo_ in clients]
        replies = [dict(src4="192.0.2.1", dport=1025 + i, proto="tcp", ttl=64, tos=0, frag=(0, 0),
                        options=0, sport=80, vlans=[], payload=b"", tcp={"flags": "SA"})
                   for i in range(len(clients))]
        want4, want6 = expected(flows, replies)
        for python in (False, True):
            k = nat64.KernelNat64()
            assert kernel(k.six_to_four, six + six, python) == want4 + want4   # again: same ports
            assert kernel(k.four_to_six, [build4(r) for r in replies], python) == want6
            assert len(k) == len(clients)


@pytest.mark.parametrize("have_numba", [True, False])
def test_main_chooses_the_kernels_when_numba_is_there(have_numba: bool, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_k, real_p = nat64.KernelNat64, nat64.Nat64
    monkeypatch.setattr(nat64, "KernelNat64", lambda: made.append("kernel") or real_k())
    monkeypatch.setattr(nat64, "Nat64", lambda: made.append("per-packet") or real_p())
    monkeypatch.setattr(nat64, "HAVE_NUMBA", have_numba)
    monkeypatch.delenv("NFKIT_NAT64", raising=False)
    for f in ("nat64.toml", "v4-side.pcap", "v6-side.pcap"):
        shutil.copy(APP.parent / f, tmp_path / f)
    monkeypatch.chdir(tmp_path)
    result = run_app(nat64.main, tmp_path / "nat64.toml", status=False)
    assert made == ["kernel" if have_numba else "per-packet"]
    assert sum(v["act"] for v in result.pipelines.values()) == 6
