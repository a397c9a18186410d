"""The vector path gives byte for byte what the per-packet API gives (differential tests on
hypothesis-generated batches of mixed packets), and vector stages run inside pipelines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, strategies as st

from nfkit import Mbuf, Mempool, Poll, vectorized
from nfkit.packets import (Arp, Ethernet, Fragment, Ipv4, Ipv6, SegmentRouting, Tcp, Udp)
from nfkit.packets.dissect import dissect
from nfkit.testing import sr_tcp, v4_icmp, v4_tcp, v4_udp, v6_icmp, v6_tcp, v6_udp
from nfkit.testing.skips import need
from nfkit.testing.strategies import packet
from nfkit.vector import BatchView

from doubles import ListRx, ListTx

@pytest.fixture(scope="module", autouse=True, params=["compiled", "numpy"])
def classification(request: pytest.FixtureRequest) -> Any:
    """Every test here runs with the compiled burst classification and the numpy one."""
    from nfkit.vector import _classify, view
    if request.param == "compiled":
        need(_classify.AVAILABLE, "numba is not installed: no compiled classification",
             "pip install 'nfkit[jit]'")
    old = view.COMPILED
    view.COMPILED = request.param == "compiled"
    yield request.param
    view.COMPILED = old


ONE = st.one_of(v4_udp(payload=st.binary(max_size=20)), v4_tcp(), v6_udp(), v6_tcp(), sr_tcp(),
                v4_icmp(), v6_icmp(), packet(Ethernet, Arp), packet(Ethernet, Ipv6, Fragment, Udp),
                packet(Ethernet, Ipv4, Udp, payload=b"x" * 30))


@st.composite
def mangled(draw: Any, packets: Any) -> bytes:
    """A frame from the Mbuf strategy ``packets``: maybe VLAN-tagged, padded or cut."""
    m = draw(packets)
    eth = m.parse(Ethernet)
    for _ in range(draw(st.integers(0, 2))):
        eth.push_vlan(draw(st.integers(0, 4095)))
    raw = m.to_bytes()
    m.free()
    how = draw(st.sampled_from(["whole", "whole", "whole", "padded", "cut"]))
    if how == "padded":
        raw += bytes(draw(st.integers(1, 20)))
    elif how == "cut":
        raw = raw[:draw(st.integers(0, len(raw)))]
    return raw


def raw_batches() -> Any:
    """Bursts of frames: valid packets, some VLAN-tagged, some with Ethernet padding, some cut."""
    return st.lists(mangled(ONE), min_size=1, max_size=24)


def load(raws: list[bytes]) -> tuple[Mempool, np.ndarray, list[Mbuf]]:
    pool = Mempool(capacity=64)
    ms = [Mbuf.from_bytes(r, pool) for r in raws]
    return pool, np.array([m.slot for m in ms]), ms


def layers_of(m: Mbuf) -> dict[str, Any]:
    """What the per-packet API finds where the view looks: Ethernet, the IP header right
    after it, and the transport header after IP and its known extension headers."""
    layers, _ = dissect(m)
    found: dict[str, Any] = {}
    if not layers or not isinstance(layers[0], Ethernet):
        return found
    found["eth"] = layers[0]
    if len(layers) > 1 and isinstance(layers[1], (Ipv4, Ipv6)):
        found["ipv4" if isinstance(layers[1], Ipv4) else "ipv6"] = layers[1]
        for p in layers[2:]:
            if isinstance(p, (Fragment, SegmentRouting)):
                continue
            if isinstance(p, (Tcp, Udp)):
                found["tcp" if isinstance(p, Tcp) else "udp"] = p
            break
    return found


COLUMNS = {
    "eth": ["dst", "src", "ether_type"],
    "ipv4": ["version", "ihl", "dscp", "ecn", "total_length", "identification", "dont_fragment",
             "more_fragments", "fragment_offset", "ttl", "protocol", "checksum", "src", "dst"],
    "ipv6": ["dscp", "ecn", "flow_label", "payload_length", "next_header", "hop_limit", "src", "dst"],
    "tcp": ["src_port", "dst_port", "seq_no", "ack_no", "data_offset", "syn", "ack", "fin",
            "window", "checksum"],
    "udp": ["src_port", "dst_port", "length", "checksum"],
}


def as_int(v: Any) -> Any:
    if hasattr(v, "packed"):
        return int.from_bytes(v.packed, "big") if v.version == 4 else bytes(v.packed)
    if isinstance(v, bytes):       # MacAddr
        return int.from_bytes(v, "big")
    return int(v)


@given(raw_batches())
def test_columns_equal_per_packet_fields(raws: list[bytes]) -> None:
    pool, slots, ms = load(raws)
    b = BatchView(pool, slots)
    per = [layers_of(m) for m in ms]
    for hdr, names in COLUMNS.items():
        cols = getattr(b, hdr)
        assert cols.valid.tolist() == [hdr in p for p in per], hdr
        for name in names:
            col = cols.get(name)
            for i, p in enumerate(per):
                if hdr not in p:
                    continue
                want = as_int(getattr(p[hdr], name))
                got = bytes(col[i]) if col.ndim == 2 else int(col[i])
                assert got == want, f"{hdr}.{name} packet {i}: column {got!r}, per-packet {want!r}"


def twins(raws: list[bytes]) -> tuple[tuple[Mempool, np.ndarray, list[Mbuf]], list[Mbuf]]:
    vec = load(raws)
    ref = [Mbuf.from_bytes(r, Mempool(capacity=1)) for r in raws]
    return vec, ref


@given(raw_batches(), st.integers(0, 255), st.ip_addresses(v=4), st.ip_addresses(v=6),
       st.integers(0, 65535))
def test_setting_columns_equals_per_packet_setters(raws: list[bytes], ttl: int, a4: Any, a6: Any,
                                                   port: int) -> None:
    (pool, slots, ms), ref = twins(raws)
    b = BatchView(pool, slots)
    b.ipv4.ttl = ttl
    b.ipv4.src = a4
    b.ipv6.dst = a6
    b.udp.dst_port = port
    b.tcp.src_port = port
    b.eth.swap_addresses()
    for m in ref:
        p = layers_of(m)
        if "eth" in p:
            p["eth"].swap_addresses()
        if "ipv4" in p:
            p["ipv4"].ttl = ttl
            p["ipv4"].src = a4
        if "ipv6" in p:
            p["ipv6"].dst = a6
        if "udp" in p:
            p["udp"].dst_port = port
        if "tcp" in p:
            p["tcp"].src_port = port
    for i, (m, r) in enumerate(zip(ms, ref)):
        assert m.to_bytes() == r.to_bytes(), f"packet {i} differs"


@given(raw_batches())
def test_decrement_ttl_equals_per_packet(raws: list[bytes]) -> None:
    (pool, slots, ms), ref = twins(raws)
    keep = BatchView(pool, slots).decrement_ttl()
    want = []
    for m in ref:
        p = layers_of(m)
        ip = p.get("ipv4") or p.get("ipv6")
        if ip is None:
            want.append(True)
        elif isinstance(ip, Ipv4):
            want.append(ip.ttl > 1)
            if ip.ttl > 1:
                ip.decrement_ttl()
        else:
            want.append(ip.hop_limit > 1)
            if ip.hop_limit > 1:
                ip.decrement_hop_limit()
    assert keep.tolist() == want
    assert [m.to_bytes() for m in ms] == [r.to_bytes() for r in ref]


def test_vector_and_per_packet_stages_mix_in_one_pipeline() -> None:
    pool = Mempool(capacity=64)
    ms = []
    for ttl in (1, 5, 64):
        m = Mbuf.alloc(pool)
        u = m.push(Ethernet).push(Ipv4).push(Udp)
        u.envelope.ttl = ttl
        u.reconcile_all()
        ms.append(m)

    @vectorized
    def route(b: BatchView) -> np.ndarray:
        b.eth.swap_addresses()
        return b.decrement_ttl()

    seen = []
    tx = ListTx()
    pl = (Poll(ListRx(ms)).map(route)
          .for_each(lambda m: seen.append(m.parse(Ethernet).parse(Ipv4).ttl))
          .filter(vectorized(lambda b: b.ipv4.ttl > 4))
          .send(tx))
    pl.run_once()
    assert seen == [4, 63] and pl.stats.drop == 2 and len(tx.sent) == 1   # TTL 1, then 4
    assert tx.sent[0].parse(Ethernet).parse(Ipv4).checksum_ok
    Mbuf.free_bulk(tx.sent)
    assert pool.in_use == 0


def test_vector_group_by_and_abort() -> None:
    pool = Mempool(capacity=64)
    ms = []
    for port in (53, 80, 53, 443):
        m = Mbuf.alloc(pool)
        u = m.push(Ethernet).push(Ipv4).push(Udp)
        u.dst_port = port
        u.reconcile_all()
        ms.append(m)
    tx = ListTx()
    pl = (Poll(ListRx(ms))
          .group_by(vectorized(lambda b: b.udp.dst_port), {53: lambda g: g.filter(vectorized(lambda b: b.udp.dst_port < 0))})
          .send(tx))
    pl.run_once()
    assert len(tx.sent) == 2 and pl.stats.drop == 2
    Mbuf.free_bulk(tx.sent)
    boom = Poll(ListRx([Mbuf.from_bytes(b"\0" * 60, pool)])).map(vectorized(lambda b: 1 / 0)).send(tx)
    tx.sent.clear()
    boom.run_once()
    assert boom.stats.abort == 1 and tx.sent == [] and pool.in_use == 0


def test_flow_hash_matches_the_rss_reference_per_packet() -> None:
    from ipaddress import ip_address
    from nfkit.vector.hash import rss_hash_ipv4, rss_hash_ipv6
    pool = Mempool(capacity=16)
    specs = [(4, Udp, "66.9.149.187", "161.142.100.80", 2794, 1766),
             (6, Tcp, "3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766),
             (4, None, "10.0.0.1", "10.0.0.2", 0, 0)]
    ms = []
    for fam, l4, s, d, sp, dp in specs:
        m = Mbuf.alloc(pool)
        ip = m.push(Ethernet).push(Ipv4 if fam == 4 else Ipv6)
        ip.src, ip.dst = s, d
        if l4 is not None:
            t = ip.push(l4)
            t.src_port, t.dst_port = sp, dp
            t.reconcile_all()
        else:
            ip.reconcile_all()
        ms.append(m)
    h = BatchView(pool, np.array([m.slot for m in ms])).flow_hash()
    assert h[0] == 0x51CCC178                                     # Microsoft's RSS vector
    assert h[1] == rss_hash_ipv6(np.frombuffer(ip_address(specs[1][2]).packed, np.uint8)[None],
                                 np.frombuffer(ip_address(specs[1][3]).packed, np.uint8)[None],
                                 np.array([2794]), np.array([1766]))[0]
    assert h[2] == rss_hash_ipv4(np.array([0x0A000001]), np.array([0x0A000002]))[0]
