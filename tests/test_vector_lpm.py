"""nfkit.vector.lpm: Lpm4 (DIR-24-8) and Lpm6 checked against naive references.

The differential tests run random sequences of adds, deletes and lookups on a table and on
a reference that scans every route with :mod:`ipaddress` and keeps the longest containing
prefix.  Prefixes are drawn around a few seed addresses so that they overlap, nest, and
straddle the /24 (IPv4) and /16 (IPv6 first stage) boundaries; addresses are drawn at and
just outside every route's edges.  After each sequence the tables' internal state is also
compared with a table built from scratch with the same routes (depth fields, tbl8 groups,
first-stage bitmaps), which lookups alone would not reveal.

The 10,000-route tests use a faster reference (a dict per prefix length, longest first).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import event, given, strategies as st

from nfkit import NfkitError
from nfkit.vector import lpm
from nfkit.vector.lpm import (NEXT_HOP_MAX, BadNextHop, BadPrefix, Lpm4, Lpm6, LpmError,
                              RouteNotFound, Tbl8Exhausted)

# ---------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------


class NaiveLpm:
    """Routes in a dict; a lookup scans them all with ipaddress, longest containing wins."""

    def __init__(self, version: int, default: int = -1) -> None:
        self.version = version
        self.default = default
        self.routes: dict[IPv4Network | IPv6Network, int] = {}

    def lookup(self, addr: int) -> int:
        ip = IPv4Address(addr) if self.version == 4 else IPv6Address(addr)
        best, best_len = self.default, -1
        for net, nh in self.routes.items():
            if ip in net and net.prefixlen > best_len:
                best, best_len = nh, net.prefixlen
        return best


def fast_reference(routes: dict[tuple[int, int], int], addrs: list[int], bits: int,
                   default: int = -1) -> list[int]:
    """LPM by a dict per length, probed longest first (for the 10,000-route tests)."""
    by_len: dict[int, dict[int, int]] = {}
    for (net, length), nh in routes.items():
        by_len.setdefault(length, {})[net >> (bits - length)] = nh
    order = sorted(by_len.items(), reverse=True)
    out = []
    for a in addrs:
        for length, table in order:
            found = table.get(a >> (bits - length))
            if found is not None:
                out.append(found)
                break
        else:
            out.append(default)
    return out


def v6_rows(addrs: list[int]) -> np.ndarray:
    """(N, 16) uint8 network-order rows of IPv6 addresses given as ints."""
    return np.array([list(a.to_bytes(16, "big")) for a in addrs], dtype=np.uint8).reshape(-1, 16)


# ---------------------------------------------------------------------------------------
# Strategies: prefixes that overlap, addresses on their edges
# ---------------------------------------------------------------------------------------

SEEDS4 = [0x0A00_0000, 0x0A01_0100, 0x0A01_01FF, 0xC0A8_0100, 0x0000_0000, 0xFFFF_FFFF,
          0x0AFF_0080]
LENS4 = [0, 1, 7, 8, 9, 15, 16, 22, 23, 24, 25, 26, 28, 30, 31, 32]

SEEDS6 = [0x2001_0db8 << 96, (0x2001_0db8 << 96) | (1 << 64), 0xFE80 << 112, 0,
          (1 << 128) - 1, 0x2001_0db9 << 96, (0x2001_0db8_00ff << 80) | 0xABCD]
LENS6 = [0, 1, 8, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 63, 64, 65, 96, 120, 127, 128]


def mask(length: int, bits: int) -> int:
    return ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)


@st.composite
def prefixes4(draw: st.DrawFn) -> IPv4Network:
    base = draw(st.sampled_from(SEEDS4))
    base ^= draw(st.integers(0, 3)) << draw(st.sampled_from([0, 6, 7, 8, 9, 16, 24, 30]))
    base &= 0xFFFF_FFFF
    length = draw(st.sampled_from(LENS4) | st.integers(0, 32))
    return IPv4Network((base & mask(length, 32), length))


@st.composite
def prefixes6(draw: st.DrawFn) -> IPv6Network:
    base = draw(st.sampled_from(SEEDS6))
    base ^= draw(st.integers(0, 0xFF)) << draw(st.sampled_from([0, 8, 56, 64, 100, 108, 112]))
    base &= (1 << 128) - 1
    length = draw(st.sampled_from(LENS6) | st.integers(0, 128))
    return IPv6Network((base & mask(length, 128), length))


def probe_addresses(routes: Any, bits: int, seeds: list[int], extra: list[int]) -> list[int]:
    """Every route's first and last address and the ones just outside, plus seeds."""
    top = (1 << bits) - 1
    out = set(seeds) | set(extra) | {0, top}
    for net in routes:
        first, last = int(net.network_address), int(net.broadcast_address)
        out |= {first, last, (first - 1) & top, (last + 1) & top}
    return sorted(out)


def next_hop(data: st.DataObject, step: int) -> int:
    """A next hop no earlier step used (so a wrong route never answers right by chance),
    from either end of the 24-bit range."""
    return step if data.draw(st.booleans(), label="low next hop") else NEXT_HOP_MAX - step


def nesting(ref: NaiveLpm) -> str:
    """How many routes the most nested route sits in (bucketed), for hypothesis events."""
    deepest = max((sum(n.subnet_of(m) for m in ref.routes)  # type: ignore[arg-type]
                   for n in ref.routes), default=0)
    return str(min(deepest, 4)) + ("+" if deepest >= 4 else "")

# ---------------------------------------------------------------------------------------
# Lpm4
# ---------------------------------------------------------------------------------------


_MADE: list[Lpm4] = []


def new_lpm4(**kwargs: int) -> Lpm4:
    """An Lpm4 whose tables :func:`released_tables` drops at the end of the example."""
    table = Lpm4(**kwargs)
    _MADE.append(table)
    return table


@contextmanager
def released_tables() -> Iterator[None]:
    """Drop the tables of the Lpm4s :func:`new_lpm4` made in the block, failed or not.

    Hypothesis keeps the frames of failing examples (and so their tables: 64 MiB of tbl24
    each, all touched once a /0 is added) while it shrinks; without this a regression made
    the test grow past 20 GB and get OOM-killed.
    """
    start = len(_MADE)
    try:
        yield
    finally:
        while len(_MADE) > start:
            table = _MADE.pop()
            table._tbl24 = table._tbl8 = np.zeros(0, dtype=np.uint32)
            table._groups = table._tbl8.reshape(0, 256)


def groups_needed(ref: NaiveLpm) -> set[int]:
    """The /24s holding a route longer than /24: each needs a tbl8 group."""
    return {int(n.network_address) >> 8 for n in ref.routes if n.prefixlen > 24}


def assert_same_state4(table: Lpm4) -> None:
    """The tables equal those of a table built from scratch with the same routes."""
    with released_tables():
        same_state4(table, new_lpm4(max_tbl8_groups=max(table.max_tbl8_groups, 1)))


def same_state4(table: Lpm4, fresh: Lpm4) -> None:
    for net, nh in table.routes():
        fresh.add(net, nh)
    assert table.tbl8_groups_used == fresh.tbl8_groups_used
    ext_a = table._tbl24 >= lpm._EXT_MIN
    ext_b = fresh._tbl24 >= lpm._EXT_MIN
    assert np.array_equal(ext_a, ext_b)
    assert np.array_equal(table._tbl24[~ext_a], fresh._tbl24[~ext_b])
    ga = table._groups[table._tbl24[ext_a] & lpm._LOW24]
    gb = fresh._groups[fresh._tbl24[ext_b] & lpm._LOW24]
    assert np.array_equal(ga, gb)


def check_lookups4(table: Lpm4, ref: NaiveLpm, addrs: list[int]) -> None:
    got = table.lookup(np.array(addrs, dtype=np.uint32))
    assert got.dtype == np.int64 and got.shape == (len(addrs),)
    want = [ref.lookup(a) for a in addrs]
    assert got.tolist() == want
    for a, w in list(zip(addrs, want))[::7]:
        assert table.lookup_one(a) == w


@given(data=st.data(), groups=st.sampled_from([1, 2, 3, 256]),
       default=st.sampled_from([-1, 0, 12345]))
def test_lpm4_matches_naive_reference(data: st.DataObject, groups: int, default: int) -> None:
    with released_tables():
        lpm4_sequence(data, groups, default)


def lpm4_sequence(data: st.DataObject, groups: int, default: int) -> None:
    table, ref = new_lpm4(max_tbl8_groups=groups, default=default), NaiveLpm(4, default)
    for step in range(data.draw(st.integers(1, 30), label="ops")):
        op = data.draw(st.sampled_from(["add", "add", "add", "delete", "delete_absent",
                                        "lookup"]))
        if op == "add":
            net, nh = data.draw(prefixes4()), next_hop(data, step)
            need = groups_needed(ref)
            exhausted = (net.prefixlen > 24 and int(net.network_address) >> 8 not in need
                         and len(need) == groups)
            if exhausted:
                before = table.lookup(np.array(probe_addresses(ref.routes, 32, SEEDS4, []),
                                               dtype=np.uint32))
                with pytest.raises(Tbl8Exhausted, match="max_tbl8_groups"):
                    table.add(net, nh)
                event("tbl8 groups exhausted")
                after = table.lookup(np.array(probe_addresses(ref.routes, 32, SEEDS4, []),
                                              dtype=np.uint32))
                assert np.array_equal(before, after)
            else:
                table.add(str(net) if data.draw(st.booleans()) else net, nh)
                ref.routes[net] = nh
        elif op == "delete" and ref.routes:
            net = data.draw(st.sampled_from(sorted(ref.routes)))
            table.delete(str(net))
            del ref.routes[net]
        elif op == "delete_absent":
            net = data.draw(prefixes4())
            if net not in ref.routes:
                with pytest.raises(RouteNotFound):
                    table.delete(net)
        else:
            extra = data.draw(st.lists(st.integers(0, 0xFFFF_FFFF), max_size=20))
            check_lookups4(table, ref, probe_addresses(ref.routes, 32, SEEDS4, extra))
        assert len(table) == len(ref.routes)
        assert table.tbl8_groups_used == len(groups_needed(ref))
    assert dict(table.routes()) == ref.routes
    event(f"deepest nesting: {nesting(ref)}")
    check_lookups4(table, ref, probe_addresses(ref.routes, 32, SEEDS4, []))
    assert_same_state4(table)


def test_lpm4_example() -> None:
    t = Lpm4()
    t.add("10.0.0.0/8", 1)
    t.add("10.1.0.0/16", 2)
    t.add(IPv4Network("10.1.1.128/25"), 3)
    t.add("10.1.1.200/32", 4)
    addrs = ["10.2.3.4", "10.1.2.3", "10.1.1.1", "10.1.1.129", "10.1.1.200", "11.0.0.0"]
    col = np.array([int(IPv4Address(a)) for a in addrs], dtype=np.uint32)
    assert t.lookup(col).tolist() == [1, 2, 2, 3, 4, -1]
    assert [t.lookup_one(a) for a in addrs] == [1, 2, 2, 3, 4, -1]
    assert t.lookup_one(IPv4Address("10.1.1.129")) == 3
    assert t.lookup_one(np.uint32(int(IPv4Address("10.1.1.129")))) == 3
    assert len(t) == 4 and "10.1.0.0/16" in t and "10.1.0.0/17" not in t and "junk" not in t
    assert t.routes() == [(IPv4Network("10.0.0.0/8"), 1), (IPv4Network("10.1.0.0/16"), 2),
                          (IPv4Network("10.1.1.128/25"), 3), (IPv4Network("10.1.1.200/32"), 4)]
    assert t.tbl8_groups_used == 1
    assert "routes=4" in repr(t)


def test_lpm4_default_route_host_route_and_replacement() -> None:
    t = Lpm4(default=-7)
    a = np.array([0, 0xFFFF_FFFF, int(IPv4Address("192.0.2.1"))], dtype=np.uint32)
    assert t.lookup(a).tolist() == [-7, -7, -7]
    t.add("0.0.0.0/0", 9)
    assert t.lookup(a).tolist() == [9, 9, 9]
    t.add("192.0.2.1/32", 5)
    assert t.lookup(a).tolist() == [9, 9, 5]
    t.add("192.0.2.1/32", 6)                      # same prefix: replaced
    assert len(t) == 2 and t.lookup(a).tolist() == [9, 9, 6]
    t.add("0.0.0.0/0", NEXT_HOP_MAX)
    assert t.lookup(a).tolist() == [NEXT_HOP_MAX, NEXT_HOP_MAX, 6]
    t.delete("0.0.0.0/0")
    assert t.lookup(a).tolist() == [-7, -7, 6]
    t.delete("192.0.2.1/32")
    assert t.lookup(a).tolist() == [-7, -7, -7] and t.tbl8_groups_used == 0


def test_lpm4_delete_covering_route_and_readd() -> None:
    t = Lpm4()
    for p, nh in [("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.2.0/24", 3), ("10.1.2.64/26", 4)]:
        t.add(p, nh)
    ips = ["10.1.2.70", "10.1.2.1", "10.1.3.1", "10.9.9.9"]
    col = np.array([int(IPv4Address(x)) for x in ips], dtype=np.uint32)
    assert t.lookup(col).tolist() == [4, 3, 2, 1]
    t.delete("10.1.0.0/16")                        # a covering route, under longer ones
    assert t.lookup(col).tolist() == [4, 3, 1, 1]
    t.delete("10.1.2.0/24")                        # the /26's group now falls back to /8
    assert t.lookup(col).tolist() == [4, 1, 1, 1]
    t.add("10.1.0.0/16", 12)                       # re-added under the group
    assert t.lookup(col).tolist() == [4, 12, 12, 1]
    t.delete("10.1.2.64/26")
    assert t.lookup(col).tolist() == [12, 12, 12, 1] and t.tbl8_groups_used == 0
    assert_same_state4(t)


def test_lpm4_around_24() -> None:
    t = Lpm4()
    t.add("10.0.0.0/23", 23)
    t.add("10.0.1.0/24", 24)
    t.add("10.0.1.128/25", 25)
    base = int(IPv4Address("10.0.0.0"))
    col = np.array([base + 5, base + 256 + 5, base + 256 + 130, base + 512], dtype=np.uint32)
    assert t.lookup(col).tolist() == [23, 24, 25, -1]
    t.delete("10.0.1.0/24")
    assert t.lookup(col).tolist() == [23, 23, 25, -1]
    assert t.tbl8_groups_used == 1
    t.delete("10.0.1.128/25")
    assert t.lookup(col).tolist() == [23, 23, 23, -1] and t.tbl8_groups_used == 0
    assert_same_state4(t)


def test_lpm4_two_halves_with_one_next_hop_keep_their_group() -> None:
    # The group holds 256 equal next hops, but of depth 25: it must not fold into tbl24.
    t = Lpm4()
    t.add("10.0.0.0/25", 1)
    t.add("10.0.0.128/25", 1)
    t.add("10.0.0.0/26", 9)
    t.delete("10.0.0.0/26")                        # the group is uniform after this delete
    assert t.tbl8_groups_used == 1 and t.lookup_one("10.0.0.1") == 1
    assert_same_state4(t)
    t.add("10.0.0.0/24", 2)
    assert t.tbl8_groups_used == 1
    t.delete("10.0.0.0/25")
    assert t.lookup_one("10.0.0.1") == 2 and t.lookup_one("10.0.0.200") == 1
    t.delete("10.0.0.128/25")
    assert t.lookup_one("10.0.0.200") == 2 and t.tbl8_groups_used == 0
    assert_same_state4(t)


def test_lpm4_tbl8_exhaustion() -> None:
    t = Lpm4(max_tbl8_groups=2)
    t.add("10.0.0.0/25", 1)
    t.add("10.0.1.0/25", 2)
    with pytest.raises(Tbl8Exhausted, match=r"all 2 tbl8 groups.*max_tbl8_groups") as info:
        t.add("10.0.2.0/25", 3)
    assert isinstance(info.value, LpmError) and isinstance(info.value, NfkitError)
    assert len(t) == 2 and "10.0.2.0/25" not in t and t.lookup_one("10.0.2.1") == -1
    t.add("10.0.1.192/26", 4)                      # a /24 that has a group: fine
    t.add("10.0.2.0/24", 5)                        # /24 and shorter never need one
    t.delete("10.0.0.0/25")
    t.add("10.0.2.0/25", 3)                        # the freed group is reused
    assert t.lookup(np.array([int(IPv4Address(x)) for x in
                              ["10.0.0.1", "10.0.1.1", "10.0.1.200", "10.0.2.1", "10.0.2.200"]],
                             dtype=np.uint32)).tolist() == [-1, 2, 4, 3, 5]
    none = Lpm4(max_tbl8_groups=0)
    with pytest.raises(Tbl8Exhausted):
        none.add("1.2.3.4/32", 1)
    with pytest.raises(ValueError):
        Lpm4(max_tbl8_groups=-1)


def test_lpm4_bad_prefixes_and_next_hops() -> None:
    t = Lpm4()
    with pytest.raises(BadPrefix, match=r"host bits set.*10\.0\.0\.0/8") as info:
        t.add("10.0.0.1/8", 1)
    assert isinstance(info.value, ValueError)
    with pytest.raises(BadPrefix, match="IPv6 prefix; Lpm4 holds IPv4"):
        t.add("2001:db8::/32", 1)
    with pytest.raises(BadPrefix, match="IPv6 prefix"):
        t.add("2001:db8::1/32", 1)                  # the family is the first complaint
    with pytest.raises(BadPrefix, match="IPv6 prefix"):
        t.add(IPv6Network("2001:db8::/32"), 1)  # type: ignore[arg-type]
    for junk in ["10.0.0.0/33", "10.0.0/8", "hello", "", "10.0.0.0/-1"]:
        with pytest.raises(BadPrefix, match="not a prefix"):
            t.add(junk, 1)
    with pytest.raises(TypeError, match="10.0.0.0/8"):
        t.add(0x0A000000, 1)  # type: ignore[arg-type]
    for nh in [-1, NEXT_HOP_MAX + 1, 1 << 40]:
        with pytest.raises(BadNextHop, match="outside 0..16777215"):
            t.add("10.0.0.0/8", nh)
    for bad in [True, 1.0, "1"]:
        with pytest.raises(TypeError):
            t.add("10.0.0.0/8", bad)  # type: ignore[arg-type]
    with pytest.raises(BadPrefix, match="host bits"):
        t.delete("10.0.0.1/8")
    with pytest.raises(RouteNotFound, match="no route for 10.0.0.0/8") as missing:
        t.delete("10.0.0.0/8")
    assert isinstance(missing.value, KeyError) and str(missing.value).startswith("Lpm4")
    assert len(t) == 0 and not t._tbl24.any()
    t.add("10.0.0.0/255.0.0.0", np.int64(7))       # netmask form, numpy int next hop
    t.add(" 10.1.0.0/16 ", 8)
    assert t.routes() == [(IPv4Network("10.0.0.0/8"), 7), (IPv4Network("10.1.0.0/16"), 8)]


def test_lpm4_lookup_inputs() -> None:
    t = Lpm4(default=-1)
    t.add("10.0.0.0/8", 1)
    assert t.lookup(np.zeros(0, dtype=np.uint32)).shape == (0,)
    assert t.lookup([0x0A000001, 0x0B000000]).tolist() == [1, -1]           # int64 list
    grid = np.array([[0x0A000001, 0], [1, 0x0AFFFFFF]], dtype=np.uint32)
    assert t.lookup(grid).tolist() == [[1, -1], [-1, 1]]
    assert t.lookup(np.array([0x0A000001], dtype=np.uint64)).tolist() == [1]
    with pytest.raises(ValueError, match="outside"):
        t.lookup(np.array([-1], dtype=np.int64))
    with pytest.raises(ValueError, match="outside"):
        t.lookup(np.array([1 << 32], dtype=np.uint64))
    with pytest.raises(TypeError, match="integer"):
        t.lookup(np.array([1.0]))
    with pytest.raises(ValueError):
        t.lookup_one("10.0.0.256")


def test_lpm4_10000_random_routes() -> None:
    rng = np.random.default_rng(2024)
    lengths = rng.choice(np.arange(8, 33), size=10_000)
    nets = rng.integers(0, 1 << 32, size=10_000, dtype=np.uint64)
    routes: dict[tuple[int, int], int] = {}
    t = Lpm4(max_tbl8_groups=8192)
    start = time.perf_counter()
    for i, (net, length) in enumerate(zip(nets.tolist(), lengths.tolist())):
        net &= mask(length, 32)
        t.add(IPv4Network((net, length)), i)
        routes[(net, length)] = i
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"adding 10,000 routes took {elapsed:.1f} s"
    assert len(t) == len(routes)
    inside = [net | int(rng.integers(0, 1 << (32 - length))) for net, length in
              list(routes)[:5000]]
    addrs = inside + rng.integers(0, 1 << 32, size=5000).tolist()
    got = t.lookup(np.array(addrs, dtype=np.uint32)).tolist()
    assert got == fast_reference(routes, addrs, 32)
    assert [t.lookup_one(a) for a in addrs[::50]] == got[::50]
    # Delete half, in random order, and check again.
    keys = list(routes)
    for k in rng.permutation(len(keys))[:5000].tolist():
        net, length = keys[k]
        t.delete(IPv4Network((net, length)))
        del routes[(net, length)]
    got = t.lookup(np.array(addrs, dtype=np.uint32)).tolist()
    assert got == fast_reference(routes, addrs, 32)
    assert t.tbl8_groups_used == len({n >> 8 for n, length in routes if length > 24})


# ---------------------------------------------------------------------------------------
# Lpm6
# ---------------------------------------------------------------------------------------


def assert_same_state6(table: Lpm6) -> None:
    """First stage, bitmaps and hash table equal those of a table built from scratch."""
    fresh = Lpm6()
    for net, nh in table.routes():
        fresh.add(net, nh)
    assert np.array_equal(table._tbl16, fresh._tbl16)
    assert np.array_equal(table._cand, fresh._cand)
    assert np.array_equal(table._filters, fresh._filters)
    assert table._marks == fresh._marks
    long_routes = {(int(n.network_address), n.prefixlen): nh for n, nh in table.routes()
                   if n.prefixlen > 16}
    assert table._table.count == len(long_routes)
    if long_routes:
        keys = list(long_routes)
        found = table._table.probe(np.array([k[0] >> 64 for k in keys], dtype=np.uint64),
                                   np.array([k[0] & ((1 << 64) - 1) for k in keys],
                                            dtype=np.uint64),
                                   np.array([k[1] for k in keys], dtype=np.uint8))
        assert found.tolist() == list(long_routes.values())
    assert table.prefix_lengths == tuple(sorted({n.prefixlen for n, _ in table.routes()},
                                                reverse=True))


def check_lookups6(table: Lpm6, ref: NaiveLpm, addrs: list[int]) -> None:
    got = table.lookup(v6_rows(addrs))
    assert got.dtype == np.int64 and got.shape == (len(addrs),)
    want = [ref.lookup(a) for a in addrs]
    assert got.tolist() == want
    for a, w in list(zip(addrs, want))[::7]:
        assert table.lookup_one(a) == w


@given(data=st.data(), default=st.sampled_from([-1, 0, 12345]),
       bucket_bits=st.sampled_from([16, 16, 1]))
def test_lpm6_matches_naive_reference(data: st.DataObject, default: int,
                                      bucket_bits: int) -> None:
    # With 2 filter buckets a level, nearly every route shares its buckets with others.
    with mock.patch.object(lpm, "_FILTER_BUCKET_BITS", bucket_bits):
        lpm6_sequence(data, default)


def lpm6_sequence(data: st.DataObject, default: int) -> None:
    table, ref = Lpm6(default=default), NaiveLpm(6, default)
    for step in range(data.draw(st.integers(1, 40), label="ops")):
        op = data.draw(st.sampled_from(["add", "add", "add", "delete", "delete_absent",
                                        "lookup"]))
        if op == "add":
            net, nh = data.draw(prefixes6()), next_hop(data, step)
            table.add(str(net) if data.draw(st.booleans()) else net, nh)
            ref.routes[net] = nh
        elif op == "delete" and ref.routes:
            net = data.draw(st.sampled_from(sorted(ref.routes)))
            table.delete(net)
            del ref.routes[net]
        elif op == "delete_absent":
            net = data.draw(prefixes6())
            if net not in ref.routes:
                with pytest.raises(RouteNotFound):
                    table.delete(str(net))
        else:
            extra = data.draw(st.lists(st.integers(0, (1 << 128) - 1), max_size=20))
            check_lookups6(table, ref, probe_addresses(ref.routes, 128, SEEDS6, extra))
        assert len(table) == len(ref.routes)
    assert dict(table.routes()) == ref.routes
    event(f"deepest nesting: {nesting(ref)}")
    check_lookups6(table, ref, probe_addresses(ref.routes, 128, SEEDS6, []))
    assert_same_state6(table)


def colliding_hash(hi: np.ndarray, lo: np.ndarray, length: np.ndarray) -> np.ndarray:
    """A terrible hash: every key homes in the last 4 slots, so clusters wrap around."""
    return ~((hi ^ lo ^ length) & np.uint64(3))


@given(ops=st.lists(st.tuples(st.sampled_from(["insert", "remove", "probe"]),
                              st.integers(0, 40), st.integers(0, 7)), max_size=120))
def test_prefix_table_with_colliding_hash(ops: list[tuple[str, int, int]]) -> None:
    """Linear probing, growth and backward-shift deletion, under long wrapping clusters;
    keys differing only in length (17 vs 21...) share a hash, so the full-key check runs."""
    with mock.patch.object(lpm, "_hash_keys", colliding_hash):
        table, model = lpm._PrefixTable(capacity=8), {}
        for value, (op, hi, length) in enumerate(ops):     # values all differ
            key = (hi << 40, hi % 3, length + 17)
            if op == "insert":
                table.insert(*key, value)
                model[key] = value
            elif op == "remove" and key in model:
                table.remove(*key)
                del model[key]
            elif op == "remove":
                with pytest.raises(KeyError):
                    table.remove(*key)
            probe_keys = list(model) + [key]
            got = table.probe(np.array([k[0] for k in probe_keys], dtype=np.uint64),
                              np.array([k[1] for k in probe_keys], dtype=np.uint64),
                              np.array([k[2] for k in probe_keys], dtype=np.uint8))
            assert got.tolist() == [model.get(k, -1) for k in probe_keys]
            assert table.count == len(model) and 2 * table.count <= table.mask + 1


def test_lpm6_with_colliding_hash() -> None:
    rng = np.random.default_rng(6)
    with mock.patch.object(lpm, "_hash_keys", colliding_hash):
        t, routes = Lpm6(), {}
        for i in range(300):
            length = int(rng.choice([20, 32, 48, 64, 128]))
            net = (0x2001 << 112 | int(rng.integers(0, 1 << 20)) << 88) & mask(length, 128)
            t.add(IPv6Network((net, length)), i)
            routes[(net, length)] = i
        for k in list(routes)[::2]:
            t.delete(IPv6Network(k))
            del routes[k]
        addrs = [n | 1 for n, _ in routes] + [n for n, _ in list(routes)[:50]]
        assert t.lookup(v6_rows(addrs)).tolist() == fast_reference(routes, addrs, 128)


def test_lpm6_example() -> None:
    t = Lpm6()
    t.add("2001:db8::/32", 1)
    t.add("2001:db8:1::/48", 2)
    t.add(IPv6Network("2001:db8:1::1/128"), 3)
    t.add("2000::/3", 4)
    t.add("::/0", 7)
    addrs = ["2001:db8::5", "2001:db8:1::1", "2001:db8:1::2", "2002::1", "fe80::1"]
    rows = np.array([list(IPv6Address(a).packed) for a in addrs], dtype=np.uint8)
    assert t.lookup(rows).tolist() == [1, 3, 2, 4, 7]
    assert [t.lookup_one(a) for a in addrs] == [1, 3, 2, 4, 7]
    assert t.lookup_one(IPv6Address("2001:db8:1::1").packed) == 3
    assert t.lookup_one(int(IPv6Address("2001:db8:1::1"))) == 3
    assert t.prefix_lengths == (128, 48, 32, 3, 0) and len(t) == 5
    assert "2001:db8::/32" in t and "2001:db8::/33" not in t and "10.0.0.0/8" not in t
    t.delete("::/0")
    t.delete("2001:db8:1::/48")
    assert t.lookup(rows).tolist() == [1, 3, 1, 4, -1]
    assert t.prefix_lengths == (128, 32, 3)
    assert [str(n) for n, _ in t.routes()] == ["2000::/3", "2001:db8::/32", "2001:db8:1::1/128"]
    assert "routes=3" in repr(t)
    assert_same_state6(t)


def test_lpm6_around_first_stage() -> None:
    t = Lpm6(default=0)
    for length in (15, 16, 17):
        t.add(IPv6Network((0x2001 << 112 & mask(length, 128), length)), length)
    a = [0x2001 << 112, 0x2000 << 112, 0x2002 << 112, 0x2001_8000 << 96]
    assert t.lookup(v6_rows(a)).tolist() == [17, 15, 0, 16]
    t.delete("2001::/16")
    assert t.lookup(v6_rows(a)).tolist() == [17, 15, 0, 15]
    t.delete("2001::/17")
    assert t.lookup(v6_rows(a)).tolist() == [15, 15, 0, 15]
    assert_same_state6(t)


def test_lpm6_bad_prefixes_and_inputs() -> None:
    t = Lpm6()
    with pytest.raises(BadPrefix, match="host bits set.*2001:db8::/32"):
        t.add("2001:db8::1/32", 1)
    with pytest.raises(BadPrefix, match="IPv4 prefix; Lpm6 holds IPv6"):
        t.add("10.0.0.0/8", 1)
    with pytest.raises(BadPrefix, match="IPv4 prefix"):
        t.add(IPv4Network("10.0.0.0/8"), 1)  # type: ignore[arg-type]
    with pytest.raises(BadPrefix, match="not a prefix"):
        t.add("2001:db8::/129", 1)
    with pytest.raises(BadNextHop):
        t.add("2001:db8::/32", NEXT_HOP_MAX + 1)
    with pytest.raises(RouteNotFound, match="no route for 2001:db8::/32"):
        t.delete("2001:db8::/32")
    assert len(t) == 0
    assert t.lookup(np.zeros((0, 16), dtype=np.uint8)).shape == (0,)
    assert t.lookup(np.zeros((3, 16), dtype=np.uint8)).tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        t.lookup(np.zeros((3, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        t.lookup(np.zeros(16, dtype=np.uint8))
    with pytest.raises(ValueError, match="outside"):
        t.lookup(np.full((1, 16), 256, dtype=np.int64))
    t.add("2001:db8::/32", 5)
    assert t.lookup(np.array([list(IPv6Address("2001:db8::9").packed)])).tolist() == [5]
    rows = np.zeros((4, 32), dtype=np.uint8)[:, ::2]          # not contiguous
    rows[1, :4] = [0x20, 0x01, 0x0D, 0xB8]
    assert t.lookup(rows).tolist() == [-1, 5, -1, -1]


def test_lpm6_10000_random_routes() -> None:
    rng = np.random.default_rng(66)
    t, routes = Lpm6(), {}
    start = time.perf_counter()
    for i, length in enumerate(rng.choice(np.arange(0, 129), size=10_000).tolist()):
        net = ((0x2 << 124) | int.from_bytes(rng.bytes(16), "big") >> 4) & mask(length, 128)
        t.add(IPv6Network((net, length)), i)
        routes[(net, length)] = i
    assert time.perf_counter() - start < 10
    inside = [net | int.from_bytes(rng.bytes(16), "big") & ((1 << (128 - length)) - 1)
              for net, length in list(routes)[:3000]]
    addrs = inside + [int.from_bytes(rng.bytes(16), "big") for _ in range(2000)]
    assert t.lookup(v6_rows(addrs)).tolist() == fast_reference(routes, addrs, 128)
    keys = list(routes)
    for k in rng.permutation(len(keys))[:5000].tolist():
        t.delete(IPv6Network(keys[k]))
        del routes[keys[k]]
    assert t.lookup(v6_rows(addrs)).tolist() == fast_reference(routes, addrs, 128)
    assert_same_state6(t)


# ---------------------------------------------------------------------------------------
# Edges found by mutation testing (tools/mutation.py)
# ---------------------------------------------------------------------------------------


def test_next_hop_zero_is_a_route_at_every_depth() -> None:
    # an entry of depth d and next hop 0 is (0x80 | d) << 24 exactly: the bound of both the
    # "valid" comparison and the "empty, or no longer than d - 1" one
    for t in (Lpm4(), Lpm6()):
        four = isinstance(t, Lpm4)
        t.add("0.0.0.0/0" if four else "::/0", 0)
        assert t.lookup_one("10.1.0.1" if four else "2001::1") == 0
        rows = (np.array([int(IPv4Address("10.1.0.1"))], np.uint32) if four
                else v6_rows([int(IPv6Address("2001::1"))]))
        assert t.lookup(rows).tolist() == [0]
    # a route one bit longer, with next hop 0, must survive adding its covering route:
    # in tbl24/tbl16, in a tbl8 group (/25 under a /24), and inside a group (/26 under a /25)
    for t, narrow, wide, a_in, a_out in (
            (Lpm4(), "10.0.0.0/9", "10.0.0.0/8", "10.1.0.1", "10.200.0.1"),
            (Lpm4(), "10.0.0.0/25", "10.0.0.0/24", "10.0.0.1", "10.0.0.200"),
            (Lpm4(), "10.0.0.0/26", "10.0.0.0/25", "10.0.0.1", "10.0.0.100"),
            (Lpm6(), "2000::/9", "2000::/8", "2001::1", "20ff::1")):
        t.add(narrow, 0)
        t.add(wide, 5)
        addrs = [a_in, a_out]
        rows = (np.array([int(IPv4Address(a)) for a in addrs], dtype=np.uint32)
                if isinstance(t, Lpm4) else v6_rows([int(IPv6Address(a)) for a in addrs]))
        assert t.lookup(rows).tolist() == [0, 5]
        assert [t.lookup_one(a) for a in addrs] == [0, 5]


def test_lpm4_group_of_equal_longer_routes_with_next_hop_zero_stays() -> None:
    # as test_lpm4_two_halves_with_one_next_hop_keep_their_group, with next hop 0: the
    # uniform group's entries are (0x80 | 25) << 24, the bound of "no longer than /24"
    t = Lpm4()
    t.add("10.0.0.0/25", 0)
    t.add("10.0.0.128/25", 0)
    t.add("10.0.0.0/26", 9)
    t.delete("10.0.0.0/26")
    assert t.tbl8_groups_used == 1 and t.lookup_one("10.0.0.1") == 0
    assert_same_state4(t)


def test_lpm4_defaults_and_group_bounds() -> None:
    assert Lpm4().max_tbl8_groups == 256
    with pytest.raises(ValueError, match=r"^Lpm4: max_tbl8_groups 16777217 outside 0\.\.2\*\*24$"):
        Lpm4(max_tbl8_groups=(1 << 24) + 1)
    for cls in (Lpm4, Lpm6):
        assert cls(default=-(1 << 63)).default == -(1 << 63)
        with pytest.raises(ValueError, match="does not fit int64"):
            cls(default=-(1 << 63) - 1)


def test_lpm4_lookup_of_a_grid_through_groups() -> None:
    t = Lpm4()
    t.add("10.0.0.0/8", 1)
    t.add("10.0.0.128/25", 2)                          # an extended tbl24 entry
    grid = np.array([[int(IPv4Address("10.0.0.129")), int(IPv4Address("10.0.0.1"))],
                     [int(IPv4Address("10.0.1.1")), int(IPv4Address("11.0.0.1"))]], np.uint32)
    assert t.lookup(grid).tolist() == [[2, 1], [1, -1]]


def test_lpm4_lookup_kernel_helper_answers_as_lookup() -> None:
    """lpm4_lookup (compiled, and its Python form) over the live tables, route by route."""
    t = Lpm4(default=-1)
    for prefix, nh in (("0.0.0.0/0", 0), ("10.0.0.0/8", 1), ("10.0.0.0/24", 2),
                       ("10.0.0.128/25", NEXT_HOP_MAX), ("10.0.0.200/32", 0), ("10.0.1.0/26", 4)):
        t.add(prefix, nh)
    t.delete("0.0.0.0/0")
    t.add("192.0.0.0/8", 0)
    addrs = [int(IPv4Address(a)) for a in ("10.0.0.1", "10.0.0.129", "10.0.0.200", "10.0.0.255",
                                           "10.0.1.1", "10.0.1.64", "10.9.9.9", "192.0.2.1",
                                           "11.0.0.1", "0.0.0.0", "255.255.255.255")]
    want = t.lookup(np.array(addrs, np.uint32)).tolist()
    assert want == [2, NEXT_HOP_MAX, 0, NEXT_HOP_MAX, 4, 1, 1, 0, -1, -1, -1]
    tbl24, tbl8 = t.tables()
    for fn in (lpm.lpm4_lookup, getattr(lpm.lpm4_lookup, "py_func", lpm.lpm4_lookup)):
        assert [int(fn(tbl24, tbl8, a, -1)) for a in addrs] == want
        assert int(fn(tbl24, tbl8, addrs[-1], 77)) == 77
    everything = Lpm4()
    everything.add("0.0.0.0/0", 0)                    # the entry 0x80000000 exactly
    assert int(lpm.lpm4_lookup(*everything.tables(), 1, -1)) == 0
    assert int(getattr(lpm.lpm4_lookup, "py_func", lpm.lpm4_lookup)(*everything.tables(), 1, -1)) == 0


def test_messages_name_what_was_given() -> None:
    with pytest.raises(TypeError, match=r"^Lpm4: a prefix is a string like '10\.0\.0\.0/8' or an "
                                        r"IPv4Network, not int$"):
        Lpm4().add(167772160, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Lpm6: a prefix is a string like '2001:db8::/32' or an "
                                        r"IPv6Network, not bytes$"):
        Lpm6().add(b"2001:db8::/32", 1)  # type: ignore[arg-type]
    with pytest.raises(BadPrefix, match=r"^Lpm4: '2001:db8::/32' is an IPv6 prefix; Lpm4 holds IPv4 routes$"):
        Lpm4().add("2001:db8::/32", 1)


def test_lpm6_keys_differing_in_low_bits_of_high_words() -> None:
    # hi/lo words above 2**53 that differ in their lowest bit: kept apart exactly
    t = Lpm6()
    routes = {"2001:db8::/64": 1, "2001:db8:0:1::/64": 2,
              "2001:db8::8000:0:0:0/128": 3, "2001:db8::8000:0:0:1/128": 4}
    for p, nh in routes.items():
        t.add(p, nh)
    addrs = ["2001:db8::5", "2001:db8:0:1::5", "2001:db8::8000:0:0:0", "2001:db8::8000:0:0:1"]
    assert t.lookup(v6_rows([int(IPv6Address(a)) for a in addrs])).tolist() == [1, 2, 3, 4]
    assert_same_state6(t)


def test_length_bitmaps() -> None:
    """The bitmap helpers the lookup's candidate lengths come from (built at import)."""
    assert lpm._length_bit(128) == (0, 1 << 63) and lpm._length_bit(65) == (0, 1)
    assert lpm._length_bit(64) == (1, 1 << 63) and lpm._length_bit(17) == (1, 1 << 16)
    b = lpm._bitmap(range(17, 24))
    assert b.dtype == np.uint64 and b.tolist() == [0, sum(1 << (63 - (128 - n - 64)) for n in range(17, 24))]
    assert lpm._bitmap(range(0)).tolist() == [0, 0]
    assert lpm._bitmap([128, 65, 64]).tolist() == [(1 << 63) | 1, 1 << 63]
    assert np.array_equal(lpm._LEVEL_PASS, np.stack([lpm._bitmap(range(17, b)) for b in (24, 32, 48, 64)]))


def test_lpm6_deleting_a_short_route_restores_the_shortest_cover() -> None:
    for cover in ("::/0", "::/1"):
        t = Lpm6()
        t.add(cover, 7)
        t.add("2001::/16", 2)
        t.add("2000::/15", 3)
        t.delete("2001::/16")
        t.delete("2000::/15")
        assert t.lookup_one("2001::1") == 7
        assert t.lookup(v6_rows([0x2001 << 112])).tolist() == [7]
        assert_same_state6(t)


def test_lpm6_lookup_one_takes_numpy_integers() -> None:
    t = Lpm6()
    t.add("::/64", 4)
    t.add("::1/128", 5)
    assert t.lookup_one(np.uint64(1)) == 5 and t.lookup_one(np.int64(2)) == 4


def test_errors_name_the_table() -> None:
    for cls in (Lpm4, Lpm6):
        name = cls.__name__
        with pytest.raises(TypeError, match=rf"^{name}: default must be an int$"):
            cls(default="x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=rf"^{name}: default {1 << 63} does not fit int64$"):
            cls(default=1 << 63)
        t = cls()
        prefix = "10.0.0.0/8" if cls is Lpm4 else "2001:db8::/32"
        with pytest.raises(BadNextHop, match=rf"^{name}: next hop -1 outside 0..16777215 \(24 bits\)$"):
            t.add(prefix, -1)
        with pytest.raises(TypeError, match=rf"^{name}: next hop must be an int, not bool$"):
            t.add(prefix, True)
        with pytest.raises(TypeError, match=rf"^{name}: next hop must be an int, not str$"):
            t.add(prefix, "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^Lpm6\.lookup: addresses: values outside 0\.\.2\*\*8-1$"):
        Lpm6().lookup(np.full((1, 16), 256, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^Lpm4\.lookup: addresses: values outside 0\.\.2\*\*32-1$"):
        Lpm4().lookup(np.array([-1], dtype=np.int64))


def test_route_not_found_prints_its_message_or_nothing() -> None:
    assert str(RouteNotFound("Lpm4: no route for 10.0.0.0/8")) == "Lpm4: no route for 10.0.0.0/8"
    assert str(RouteNotFound()) == ""


def test_prefix_table_hash_is_splitmix64() -> None:
    """The documented hash (the splitmix64 finalizer over hi ^ lo*c1 ^ length*c2), against
    a plain-int reference: a weaker mix returns the same lookups, only slower (longer probe
    sequences), so only this pins it."""
    m = (1 << 64) - 1

    def ref(hi: int, lo: int, length: int) -> int:
        h = hi ^ (lo * 0x9E3779B97F4A7C15 & m) ^ (length * 0xD6E8FEB86659FD93 & m)
        h ^= h >> 30
        h = h * 0xBF58476D1CE4E5B9 & m
        h ^= h >> 27
        h = h * 0x94D049BB133111EB & m
        return h ^ (h >> 31)

    rng = np.random.default_rng(64)
    hi, lo = (rng.integers(0, 1 << 64, size=200, dtype=np.uint64) for _ in range(2))
    length = rng.integers(17, 129, size=200).astype(np.uint64)
    got = lpm._hash_keys(hi, lo, length)
    assert got.tolist() == [ref(*k) for k in zip(hi.tolist(), lo.tolist(), length.tolist())]
    assert lpm._hash_one(1, 2, 3) == ref(1, 2, 3)


def home_is_lo(hi: np.ndarray, lo: np.ndarray, length: np.ndarray) -> np.ndarray:
    """A hash that puts a key's home slot where the test wants it: its low word."""
    return lo.copy()


def test_prefix_table_backward_shift_across_the_end() -> None:
    # capacity 8: A homes in 7 (slot 7), B homes in 7 too (wraps to slot 0); removing A must
    # move B into 7 -- B's home is the hole itself, with the cluster wrapped (i > j)
    with mock.patch.object(lpm, "_hash_keys", home_is_lo):
        t = lpm._PrefixTable(capacity=8)
        t.insert(0, 7, 17, 1)
        t.insert(0, 15, 17, 2)
        t.remove(0, 7, 17)
        assert t.probe(*(np.array([x], np.uint64) for x in (0, 15, 17))).tolist() == [2]
        with pytest.raises(KeyError) as info:
            t.remove(0, 7, 17)
        assert info.value.args == ((0, 7, 17),)


def test_prefix_table_values_zero_are_entries_not_holes() -> None:
    # a cluster of four keys homed in slot 2, all mapping to 0 (next hop 0): removing the
    # first must shift the others back past the zero values
    with mock.patch.object(lpm, "_hash_keys", home_is_lo):
        t = lpm._PrefixTable(capacity=16)
        keys = [(0, 2 + 16 * k, 17) for k in range(4)]
        for k in keys:
            t.insert(*k, 0)
        t.insert(0, 6, 17, 9)                      # homed after the cluster, pushed along
        t.remove(*keys[0])
        t.remove(*keys[2])
        rest = keys[1:2] + keys[3:] + [(0, 6, 17)]
        got = t.probe(*(np.array(c, np.uint64) for c in zip(*rest)))
        assert got.tolist() == [0, 0, 9]
