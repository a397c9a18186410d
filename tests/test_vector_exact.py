"""The vectorized exact-match table, checked against a Python dict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nfkit.errors import NfkitError
from nfkit.vector.exact import ExactMatchTable, TableFull


class CollidingTable(ExactMatchTable):
    """Every key hashes to one of two home slots: long clusters, many probe rounds."""

    def _hash(self, words: np.ndarray) -> np.ndarray:
        return (words[-1] & np.uint64(1)) * np.uint64(3)


def rows(keys: list[bytes], width: int) -> np.ndarray:
    """Byte strings as an ``(N, width)`` uint8 batch."""
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width)


def check_same(table: ExactMatchTable, ref: dict[bytes, int], probe: list[bytes]) -> None:
    """The table holds exactly ``ref``: lookups over ``probe``, len, items."""
    w = table.key_width
    got = table.lookup(rows(probe, w))
    assert got.tolist() == [ref.get(k, -1) for k in probe]
    assert table.contains(rows(probe, w)).tolist() == [k in ref for k in probe]
    assert len(table) == len(ref)
    keys, values = table.items()
    assert keys.shape == (len(ref), w) and keys.dtype == np.uint8
    assert dict(zip((r.tobytes() for r in keys), values.tolist())) == ref
    assert table.load_factor <= 0.75
    # bookkeeping matches the slot states (white box: it drives the rehash decisions)
    assert table._count == np.count_nonzero(table._state == 1)
    assert table._tombs == np.count_nonzero(table._state == 2)


WIDTHS = [1, 3, 4, 8, 9, 13, 16, 37]


def key_pool(width: int) -> st.SearchStrategy[list[bytes]]:
    """A few distinct keys, plus near twins differing in one byte (first or last word)."""
    def with_twins(base: list[bytes]) -> list[bytes]:
        out = list(base)
        for k in base[:3]:
            for pos in {0, width - 1}:
                t = bytearray(k)
                t[pos] ^= 0x01
                out.append(bytes(t))
        return list(dict.fromkeys(out))
    return st.lists(st.binary(min_size=width, max_size=width), min_size=1, max_size=10,
                    unique=True).map(with_twins)


def run_ops(data: st.DataObject, table: ExactMatchTable, pool: list[bytes], n_ops: int) -> None:
    """Random batch inserts/updates/deletes/lookups, each checked against a dict."""
    ref: dict[bytes, int] = {}
    w = table.key_width
    idx = st.lists(st.integers(0, len(pool) - 1), max_size=12)
    for _ in range(n_ops):
        op = data.draw(st.sampled_from(["insert", "insert", "delete", "lookup", "scalar"]))
        batch = [pool[i] for i in data.draw(idx)]
        if op == "insert":
            vals = data.draw(st.lists(st.integers(-2**40, 2**40), min_size=len(batch),
                                      max_size=len(batch)))
            after = dict(ref)
            after.update(zip(batch, vals))  # last duplicate wins, like the table
            if not table.growable and len(after) > table.max_entries:
                before = table.items()
                with pytest.raises(TableFull):
                    table.insert(rows(batch, w), np.array(vals, dtype=np.int64))
                assert table.items()[0].tolist() == before[0].tolist()
            else:
                table.insert(rows(batch, w), np.array(vals, dtype=np.int64))
                ref = after
        elif op == "delete":
            present = table.delete(rows(batch, w))
            assert present.tolist() == [k in ref for k in batch]
            for k in batch:
                ref.pop(k, None)
        elif op == "scalar" and batch:
            k = batch[0]
            if k in ref:
                assert k in table and table[k] == ref[k]
                del table[k]
                del ref[k]
                assert k not in table
            else:
                with pytest.raises(KeyError):
                    table[k]
                if table.growable or len(ref) < table.max_entries:
                    table[k] = 7
                    ref[k] = 7
        check_same(table, ref, pool)


@given(st.data())
def test_differential_growable(data: st.DataObject) -> None:
    width = data.draw(st.sampled_from(WIDTHS), label="width")
    pool = data.draw(key_pool(width), label="pool")
    table = ExactMatchTable(width, data.draw(st.integers(1, 6)), seed=data.draw(st.integers(0, 2**64 - 1)))
    run_ops(data, table, pool, 12)


@given(st.data())
def test_differential_fixed_size(data: st.DataObject) -> None:
    width = data.draw(st.sampled_from(WIDTHS), label="width")
    pool = data.draw(key_pool(width), label="pool")
    table = ExactMatchTable(width, data.draw(st.integers(1, 6)), growable=False,
                            seed=data.draw(st.integers(0, 2**64 - 1)))
    run_ops(data, table, pool, 12)


@given(st.data())
def test_differential_colliding_hash(data: st.DataObject) -> None:
    width = data.draw(st.sampled_from(WIDTHS), label="width")
    pool = data.draw(key_pool(width), label="pool")
    growable = data.draw(st.booleans())
    table = CollidingTable(width, data.draw(st.integers(1, 12)), growable=growable)
    run_ops(data, table, pool, 12)


@pytest.mark.parametrize("width", [4, 8, 13, 37])
def test_many_keys_and_growth(width: int) -> None:
    rng = np.random.default_rng(width)
    keys = np.unique(rng.integers(0, 256, size=(3000, width), dtype=np.uint8), axis=0)
    table = ExactMatchTable(width, 1, seed=1)
    assert table.slots == 2
    for chunk in np.array_split(np.arange(len(keys)), 7):  # growth in the middle of batches
        table.insert(keys[chunk], chunk)
    assert len(table) == len(keys)
    assert table.slots >= len(keys) / 0.75 and table.slots & (table.slots - 1) == 0
    assert table.lookup(keys).tolist() == list(range(len(keys)))
    absent = keys.copy()
    absent[:, 0] ^= 0x80
    absent = absent[~np.isin(absent.view(f"V{width}").ravel(), keys.view(f"V{width}").ravel())]
    assert (table.lookup(absent) == -1).all()
    # delete every other key, then look everything up again
    table.delete(keys[::2])
    expect = np.arange(len(keys))
    expect[::2] = -1
    assert table.lookup(keys).tolist() == expect.tolist()
    assert len(table) == len(keys) // 2


def test_capacity_means_entries() -> None:
    table = ExactMatchTable(13, 100, growable=False)
    assert table.slots == 256 and table.max_entries == 192
    assert ExactMatchTable(4, 3).slots == 4
    assert ExactMatchTable(4, 4).slots == 8
    assert ExactMatchTable(4, 1).slots == 2
    with pytest.raises(ValueError):
        ExactMatchTable(4, 0)
    with pytest.raises(ValueError):
        ExactMatchTable(0, 4)


def test_table_full_is_atomic() -> None:
    table = ExactMatchTable(4, 3, growable=False, seed=3)
    table.insert(np.array([1, 2], np.uint32), [10, 20])
    with pytest.raises(TableFull, match="load limit"):
        table.insert(np.array([1, 3, 4], np.uint32), [11, 30, 40])
    assert issubclass(TableFull, NfkitError)
    assert table.lookup(np.array([1, 2, 3, 4], np.uint32)).tolist() == [10, 20, -1, -1]
    table.insert(np.array([3], np.uint32), [30])  # exactly full is fine
    table.insert(np.array([1, 2, 3], np.uint32), [1, 2, 3])  # updates need no room
    assert table.lookup(np.array([1, 2, 3], np.uint32)).tolist() == [1, 2, 3]
    with pytest.raises(TableFull):
        table[4] = 4


def test_tombstone_churn_in_a_fixed_table() -> None:
    """Insert/delete cycles never pass the limit: tombstones are reused or purged."""
    table = ExactMatchTable(8, 96, growable=False, seed=5)
    slots = table.slots
    live: dict[int, int] = {}
    rng = np.random.default_rng(0)
    for step in range(200):
        new = rng.integers(0, 2**63, size=8, dtype=np.uint64)
        if len(live) + 8 > table.max_entries:
            drop = list(live)[:40]
            table.delete(np.array(drop, np.uint64))
            for k in drop:
                del live[k]
        table.insert(new, step)
        live.update((int(k), step) for k in new)
    assert table.slots == slots
    ks = np.array(list(live), np.uint64)
    assert table.lookup(ks).tolist() == list(live.values())


def test_duplicates_in_a_batch_last_wins() -> None:
    table = ExactMatchTable(13, 4, seed=9)
    k = np.zeros((5, 13), np.uint8)
    k[1, 12] = 1
    k[3, 12] = 1
    table.insert(k, [1, 2, 3, 4, 5])
    assert len(table) == 2
    assert table.lookup(k[:2]).tolist() == [5, 4]
    table.insert(k, np.array([6, 7, 8, 9, 10]))  # the same with both keys already present
    assert table.lookup(k[:2]).tolist() == [10, 9]
    assert table.delete(k).tolist() == [True] * 5
    assert len(table) == 0


def test_empty_batches() -> None:
    table = ExactMatchTable(37, 8)
    empty = np.zeros((0, 37), np.uint8)
    assert table.lookup(empty).shape == (0,)
    assert table.contains(empty).shape == (0,)
    table.insert(empty, [])
    table.insert(np.array([]), np.array([]))
    assert table.delete(empty).shape == (0,)
    table.insert(np.ones((1, 37), np.uint8), 3)  # a scalar value broadcasts
    table.insert(empty, [])
    assert len(table) == 1 and table.lookup(empty).shape == (0,)


def test_integer_keys_equal_big_endian_bytes() -> None:
    table = ExactMatchTable(4, 8, value_dtype=np.uint16, default=0)
    ips = np.array([0x0A000001, 0xC0A80101, 0xFFFFFFFF], dtype=np.uint32)
    table.insert(ips, [1, 2, 3])
    as_bytes = ips.astype(">u4").view(np.uint8).reshape(-1, 4)
    assert table.lookup(as_bytes).tolist() == [1, 2, 3]
    assert table[b"\x0a\x00\x00\x01"] == 1 and table[0xC0A80101] == 2
    assert table.lookup(np.array([5], np.int64)).tolist() == [0]
    keys, _ = table.items(integer_keys=True)
    assert sorted(keys.tolist()) == sorted(ips.tolist())
    k8 = ExactMatchTable(8, 4)
    k8.insert(np.array([2**64 - 1], np.uint64), [1])
    assert k8[bytes([0xFF] * 8)] == 1
    with pytest.raises(ValueError, match="fit"):
        table.insert(np.array([2**32], np.uint64), [1])
    with pytest.raises(ValueError, match="non-negative"):
        table.lookup(np.array([-1], np.int64))
    with pytest.raises(ValueError, match="key_width <= 8"):
        ExactMatchTable(13, 4).lookup(np.array([1], np.uint64))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        table.lookup(np.zeros((2, 5), np.uint8))


def test_scalar_conveniences() -> None:
    table = ExactMatchTable(13, 4)
    k = bytes(range(13))
    assert k not in table and table.get(k) is None and table.get(k, 5) == 5
    table[k] = 42
    assert k in table and table[k] == 42 and table.get(k) == 42
    assert table[np.frombuffer(k, np.uint8)] == 42 and table[list(k)] == 42
    table[k] = 43
    assert len(table) == 1 and table[k] == 43
    assert list(table) == [k]
    del table[k]
    assert k not in table and len(table) == 0
    with pytest.raises(KeyError):
        del table[k]
    with pytest.raises(KeyError):
        table[k]
    with pytest.raises(ValueError):
        table[b"short"]


def test_structured_values_for_nat_bindings() -> None:
    binding = np.dtype([("addr", "u4"), ("port", "u2")])
    nat = ExactMatchTable(13, 16, value_dtype=binding, default=(0, 0))
    flows = np.arange(3 * 13, dtype=np.uint8).reshape(3, 13)
    nat.insert(flows[:2], np.array([(0x0A000001, 4000), (0x0A000002, 4001)], dtype=binding))
    got = nat.lookup(flows)
    assert got["port"].tolist() == [4000, 4001, 0]
    assert got["addr"].tolist() == [0x0A000001, 0x0A000002, 0]
    nat[flows[2]] = (7, 8)
    assert nat[flows[2]]["port"] == 8


def test_lookup_default_override_and_clear() -> None:
    table = ExactMatchTable(4, 4, default=-7)
    table.insert(np.array([1], np.uint32), [1])
    assert table.lookup(np.array([1, 2], np.uint32)).tolist() == [1, -7]
    assert table.lookup(np.array([1, 2], np.uint32), default=0).tolist() == [1, 0]
    table.clear()
    assert len(table) == 0 and table.lookup(np.array([1], np.uint32)).tolist() == [-7]


def test_probe_loop_is_bounded_by_max_probe() -> None:
    table = CollidingTable(4, 64, seed=0)
    keys = np.arange(0, 80, 2, dtype=np.uint32)  # all even: one home slot, one cluster
    table.insert(keys, keys)
    assert table.max_probe == len(keys) - 1
    assert table.lookup(keys).tolist() == keys.tolist()
    assert (table.lookup(keys + 100) == -1).all()
    table.delete(keys[:-1])
    assert table.lookup(keys[-1:]).tolist() == [keys[-1]]
    table.delete(keys[-1:])
    assert table.max_probe == 0  # an emptied table forgets its tombstones


def test_full_to_the_load_limit() -> None:
    """At load 0.75 linear probing has long probes: windowed lookups must still be exact."""
    table = ExactMatchTable(13, 6000, growable=False, seed=11)
    rng = np.random.default_rng(2)
    keys = np.unique(rng.integers(0, 256, size=(table.max_entries + 500, 13), dtype=np.uint8),
                     axis=0)[: table.max_entries]
    rng.shuffle(keys)
    for chunk in np.array_split(np.arange(len(keys)), 5):
        table.insert(keys[chunk], chunk)
    assert table.load_factor == 0.75 and table.max_probe > 8
    assert table.lookup(keys).tolist() == list(range(len(keys)))
    other = keys.copy()
    other[:, 12] ^= 0xFF  # mostly absent keys (a few may collide with real ones)
    index = {k.tobytes(): i for i, k in enumerate(keys)}
    assert table.lookup(other).tolist() == [index.get(k.tobytes(), -1) for k in other]
    fresh = [i for i, k in enumerate(other) if k.tobytes() not in index][:1]
    with pytest.raises(TableFull):
        table.insert(other[fresh], [0])
