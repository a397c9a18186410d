"""Classify once (#12): a burst's header offsets are computed once, by one compiled
classifier with a numpy twin, kept with the burst (and in the pool's per-slot metadata for
kernels that read them); every later vector stage reuses them; a stage that may change
packet structure makes the next one classify again."""

from __future__ import annotations

import ast
import pathlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

import nfkit
from nfkit import Mbuf, Mempool, Poll
from nfkit.packets import Ethernet, Ipv4
from nfkit.testing.skips import need
from nfkit.vector import _classify
from nfkit.vector.acl import Acl, AclRule
from nfkit.vector.jit import classified_flow_key, flow_key, kernel

from doubles import ListRx, ListTx
from test_vector_view import load, mangled, ONE

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "nfkit"

_E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
EXTRA = [bytes(f) for f in (
    _E / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IP(options=[IPOption_NOP()] * 4) / TCP() / b"qinq",
    Ether(type=0x9100) / Dot1Q(vlan=4) / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting()
    / IPv6ExtHdrDestOpt() / UDP() / b"ext",
    _E / IPv6() / IPv6ExtHdrFragment(offset=3) / TCP(),
    _E / IP(frag=5, flags=0) / UDP() / b"later",
    _E / IP(len=0) / TCP() / (b"z" * 280),
    _E / Dot1Q(vlan=7) / ARP(),
)]


@st.composite
def frame(draw: Any) -> bytes:
    """The view tests' frames (VLAN tags, padding, cuts) and QinQ, IPv4 options, IPv6
    extension chains, later fragments, non-IP -- whole, padded or cut anywhere."""
    if draw(st.booleans()):
        return draw(mangled(ONE))
    raw = draw(st.sampled_from(EXTRA))
    how = draw(st.sampled_from(["whole", "padded", "cut"]))
    if how == "padded":
        return raw + bytes(draw(st.integers(1, 20)))
    return raw[:draw(st.integers(0, len(raw)))] if how == "cut" else raw


bursts = st.lists(frame(), min_size=1, max_size=24)


@given(bursts)
def test_compiled_classifier_and_numpy_twin_write_equal_records(raws: list[bytes]) -> None:
    need(_classify.AVAILABLE, "numba is not installed: no compiled classification",
         "pip install 'nfkit[jit]'")
    pool, slots, ms = load(raws)
    compiled = _classify.classify(pool, slots, compiled=True, store=True)
    assert pool.meta[slots].tolist() == compiled.tolist()
    assert _classify.classify_numpy(pool, slots).tolist() == compiled.tolist()
    Mbuf.free_bulk(ms)


@given(bursts)
def test_classified_flow_key_equals_flow_key(raws: list[bytes]) -> None:
    pool, slots, ms = load(raws)
    _classify.classify(pool, slots, store=True)
    for s in slots.tolist():
        o, n = int(pool.data_off[s]), int(pool.data_len[s])
        want = flow_key(pool.data, s, o, n)
        for fn in (classified_flow_key, getattr(classified_flow_key, "py_func", classified_flow_key)):
            assert tuple(int(x) for x in fn(pool.data, pool.meta, s, o)) == tuple(int(x) for x in want)
    Mbuf.free_bulk(ms)


# -- pipelines: once per burst, again after a structural change ---------------------------------

def _udp_frames(n: int, tagged: bool = False) -> list[bytes]:
    e = _E / Dot1Q(vlan=5) if tagged else _E
    return [bytes(e / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / UDP(sport=1000 + i, dport=53) / b"q")
            for i in range(n)]


def _run(pipeline_of: Any, raws: list[bytes]) -> list[bytes]:
    pool = Mempool(capacity=64)
    rx, tx = ListRx([Mbuf.from_bytes(r, pool) for r in raws]), ListTx()
    p = pipeline_of(Poll(rx, len(raws))).send(tx)
    p.run_once()
    out = [m.to_bytes() for m in tx.sent]
    Mbuf.free_bulk(tx.sent)
    assert pool.in_use == 0
    return out


@pytest.fixture
def classifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many packets each call of the burst classifier classified."""
    calls: list[int] = []
    real = _classify.classify

    def counting(pool: Mempool, slots: np.ndarray, *a: Any, **k: Any) -> Any:
        calls.append(len(slots))
        return real(pool, slots, *a, **k)
    monkeypatch.setattr(_classify, "classify", counting)
    return calls


@nfkit.vectorized
def _read_ports(b: Any) -> None:
    assert b.udp.valid.all()
    b.udp.dst_port


@nfkit.vectorized
def _ttl(b: Any) -> Any:
    return b.decrement_ttl()


@kernel(restructures=False)
def _nop_keeps(data, slots, data_off, data_len, keep):  # noqa: ANN001
    pass


def test_several_vector_stages_and_kernels_classify_a_burst_once(classifications: list[int]) -> None:
    acl = Acl([AclRule(True, (17,))], default_allow=False)
    out = _run(lambda b: b.map(_read_ports).filter(_ttl).map(_read_ports).filter(acl.kernel())
               .map(_nop_keeps).map(_read_ports), _udp_frames(8))
    assert len(out) == 8 and all(Ether(f)[IP].ttl == 8 for f in out)
    assert classifications == [8]


def test_a_filter_keeps_the_classification_of_the_packets_it_keeps(classifications: list[int]) -> None:
    @nfkit.vectorized
    def odd_ports(b: Any) -> Any:
        return b.udp.src_port % 2 == 1

    out = _run(lambda b: b.filter(odd_ports).map(_read_ports), _udp_frames(8))
    assert len(out) == 4 and classifications == [8]


def test_vector_then_per_packet_push_then_vector_sees_the_new_offsets(classifications: list[int]) -> None:
    """A per-packet stage pushes a VLAN tag: the next vector stage finds IPv4 4 bytes later."""
    seen: list[list[int]] = []

    @nfkit.vectorized
    def where_ip(b: Any) -> None:
        seen.append(b.ipv4.offset.tolist())
        b.ipv4.ttl = 1

    def tag(m: Mbuf) -> Mbuf:
        m.parse(Ethernet).push_vlan(3)
        return m

    out = _run(lambda b: b.map(where_ip).map(tag).map(where_ip), _udp_frames(4))
    assert seen == [[14] * 4, [18] * 4] and classifications == [4, 4]
    assert all(Ether(f)[Dot1Q].vlan == 3 and Ether(f)[IP].ttl == 1 and f[14 + 4 + 8] == 1
               for f in out)
    assert all(IP(bytes(Ether(f)[IP])).chksum == Ether(f)[IP].chksum for f in out)


def test_a_kernel_that_moves_headers_makes_the_next_stage_classify_again(
        classifications: list[int]) -> None:
    """A kernel (restructures by default) strips the VLAN tag and moves the packet start."""
    seen: list[list[int]] = []

    @nfkit.vectorized
    def where_ip(b: Any) -> None:
        seen.append(b.ipv4.offset.tolist())

    @kernel
    def untag(data, slots, data_off, data_len, keep):  # noqa: ANN001
        for i in range(slots.shape[0]):
            s = slots[i]
            o = data_off[s]
            for k in range(11, -1, -1):
                data[s, o + 4 + k] = data[s, o + k]
            data_off[s] = o + 4
            data_len[s] = data_len[s] - 4

    out = _run(lambda b: b.map(where_ip).map(untag).map(where_ip), _udp_frames(4, tagged=True))
    assert seen == [[18] * 4, [14] * 4] and classifications == [4, 4]
    assert all(Dot1Q not in Ether(f) and Ether(f)[UDP].dport == 53 for f in out)


def test_a_structural_column_write_makes_the_next_stage_classify_again(
        classifications: list[int]) -> None:
    """Writing the IPv4 protocol turns UDP into TCP-less 'protocol 6' packets: the next
    stage sees them as cut TCP, not UDP (a stale classification would say UDP)."""
    valid: list[tuple[list[bool], list[bool]]] = []

    @nfkit.vectorized
    def retype(b: Any) -> None:
        b.ipv4.protocol = 6

    @nfkit.vectorized
    def look(b: Any) -> None:
        valid.append((b.udp.valid.tolist(), b.tcp.valid.tolist()))
        assert (b.l4_proto == 6).all()

    _run(lambda b: b.map(retype).map(look), _udp_frames(3))
    assert valid == [([False] * 3, [False] * 3)] and classifications == [3, 3]


def test_a_field_write_that_keeps_structure_keeps_the_classification(
        classifications: list[int]) -> None:
    @nfkit.vectorized
    def rewrite(b: Any) -> None:
        b.ipv4.ttl = 3
        b.ipv4.src = "192.0.2.1"
        b.udp.dst_port = 5353
        b.eth.swap_addresses()

    out = _run(lambda b: b.map(rewrite).map(_read_ports), _udp_frames(3))
    assert classifications == [3] and all(Ether(f)[UDP].dport == 5353 for f in out)


def test_invalidate_makes_the_next_stage_classify_again(classifications: list[int]) -> None:
    @nfkit.vectorized
    def raw_edit(b: Any) -> None:
        for s in b.slots.tolist():          # per-packet calls inside a vector stage
            b.pool.mbuf(s).parse(Ethernet).push_vlan(1)
        b.invalidate()

    @nfkit.vectorized
    def look(b: Any) -> None:
        assert (b.ipv4.offset == 18).all() and b.udp.valid.all()

    _run(lambda b: b.map(raw_edit).map(look), _udp_frames(3))
    assert classifications == [3, 3]


def test_structural_fields_are_the_bytes_the_walk_reads() -> None:
    from nfkit.vector.view import _structural
    from nfkit.packets import Ipv6, Tcp, Udp
    names = {cls.NAME: [f.name for f in cls.ALL_FIELDS if _structural(cls, f)]
             for cls in (Ethernet, Ipv4, Ipv6, Tcp, Udp)}
    assert names["Ethernet"] == ["ether_type"]
    assert set(names["IPv4"]) >= {"version", "ihl", "total_length", "fragment_offset", "protocol"}
    assert "ttl" not in names["IPv4"] and "src" not in names["IPv4"]
    assert set(names["IPv6"]) >= {"version", "payload_length", "next_header"}
    assert names["TCP"] == ["data_offset"] and names["UDP"] == []


def test_a_kernel_taking_the_classification_outside_a_pipeline_classifies_first() -> None:
    @kernel(classified=True)
    def udp_only(data, slots, data_off, data_len, keep, meta):  # noqa: ANN001
        for i in range(slots.shape[0]):
            keep[i] = meta[slots[i]]["udp_valid"]

    pool, slots, ms = load(_udp_frames(2) + [bytes(_E / IP() / TCP())])
    for python in (False, True):
        pool.meta[slots] = np.zeros(1, dtype=pool.meta.dtype)
        assert udp_only.run(pool, slots, python=python).tolist() == [True, True, False]
    assert udp_only.bind().classified and not _nop_keeps.bind().restructures
    Mbuf.free_bulk(ms)


# -- one source of truth ------------------------------------------------------------------------

def _imports(path: pathlib.Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mods.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


def test_ports_and_vector_do_not_import_the_pipeline_layer() -> None:
    from nfkit.batch import SlotBatch as FromBatch
    from nfkit.slots import SlotBatch
    from nfkit.vector import SlotBatch as FromVector
    assert FromBatch is SlotBatch is FromVector
    for d in ("ports", "vector"):
        for path in (SRC / d).glob("*.py"):
            assert not {"..batch", "nfkit.batch"} & _imports(path), path


def test_tpids_are_written_once() -> None:
    """The VLAN TPIDs are numbers in packets/constants.py only, not in any walk's code."""
    for path in [*SRC.glob("packets/*.py"), *SRC.glob("vector/*.py"), SRC / "filter.py"]:
        if path.name == "constants.py":
            continue
        found = [n.lineno for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Constant) and type(n.value) is int
                 and n.value in (0x8100, 0x88A8, 0x9100)]
        assert not found, f"{path.name}, lines {found}"
