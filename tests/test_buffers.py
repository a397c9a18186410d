"""Mempool and Mbuf: allocation, the shared numpy storage, resizing, errors."""

from __future__ import annotations

import numpy as np
import pytest

import nfkit
from nfkit import _accel
from nfkit.testing.skips import need_numba
from nfkit import (BadOffset, DoubleFree, Mbuf, Mempool, MempoolExhausted, MbufError,
                   OutOfBuffer)


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def bulk_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the numba fast paths (when installed) and with plain numpy."""
    if request.param == "numpy":
        monkeypatch.setattr(_accel, "AVAILABLE", False)
    else:
        need_numba("the compiled bulk paths are not used")
    return request.param


def test_pool_layout_is_one_array(pool: Mempool) -> None:
    assert pool.data.shape == (1023, 128 + 2048)
    assert pool.data.dtype == np.uint8
    for arr in (pool.data_off, pool.data_len, pool.refcnt, pool.port, pool.rss_hash, pool.timestamp):
        assert arr.shape == (1023,)
    assert pool.available == 1023 and pool.in_use == 0


def test_alloc_free_roundtrip(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    assert m.data_len == 0 and m.headroom == 128 and m.tailroom == 2048
    assert pool.in_use == 1
    m.free()
    assert pool.in_use == 0


def test_bytes_visible_through_numpy_without_copy(pool: Mempool) -> None:
    m = Mbuf.from_bytes(b"\x01\x02\x03\x04", pool)
    row = pool.data[m.slot]
    off = pool.data_off[m.slot]
    assert bytes(row[off:off + pool.data_len[m.slot]]) == b"\x01\x02\x03\x04"
    row[off] = 0xAA                      # a numpy write...
    assert m.to_bytes()[0] == 0xAA       # ...is what the Mbuf sees
    m.write_data(1, b"\xbb")             # and the other way round
    assert pool.data[m.slot, off + 1] == 0xBB
    m.free()


def test_alloc_bulk_all_or_nothing(pool: Mempool) -> None:
    ms = Mbuf.alloc_bulk(1000, pool)
    assert len({m.slot for m in ms}) == 1000
    with pytest.raises(MempoolExhausted, match="cannot allocate 100 buffers, 23 of 1023 free"):
        Mbuf.alloc_bulk(100, pool)
    assert pool.in_use == 1000          # nothing leaked by the failed call
    Mbuf.free_bulk(ms)
    assert pool.in_use == 0
    again = Mbuf.alloc_bulk(1023, pool)  # the pool is fully usable again
    Mbuf.free_bulk(again)


def test_exhausted_single_alloc(pool: Mempool) -> None:
    ms = Mbuf.alloc_bulk(1023, pool)
    with pytest.raises(MempoolExhausted):
        Mbuf.alloc(pool)
    with pytest.raises(MempoolExhausted):
        Mbuf.from_bytes(b"x", pool)
    Mbuf.free_bulk(ms)
    Mbuf.alloc(pool).free()


def test_double_free_detected(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    m.free()
    with pytest.raises(DoubleFree):
        m.free()
    a, b = Mbuf.alloc_bulk(2, pool)
    with pytest.raises(DoubleFree, match="twice"):
        Mbuf.free_bulk([a, b, a])
    assert pool.in_use == 2              # the failed bulk free freed nothing
    Mbuf.free_bulk([a, b])
    with pytest.raises(DoubleFree):
        Mbuf.free_bulk([a])
    assert pool.in_use == 0


def test_free_bulk_across_pools(pool: Mempool) -> None:
    other = Mempool(capacity=7)
    ms = Mbuf.alloc_bulk(3, pool) + Mbuf.alloc_bulk(3, other)
    Mbuf.free_bulk(ms)
    assert pool.in_use == 0 and other.in_use == 0


def test_from_bytes_empty_and_too_big(pool: Mempool) -> None:
    m = Mbuf.from_bytes(b"", pool)       # capsule errors here; an empty packet is fine
    assert m.data_len == 0 and m.to_bytes() == b""
    m.free()
    with pytest.raises(OutOfBuffer):
        Mbuf.from_bytes(bytes(2049), pool)
    assert pool.in_use == 0


def test_read_write_bounds(pool: Mempool) -> None:
    m = Mbuf.from_bytes(b"abcdef", pool)
    assert m.read_data(2, 3) == b"cde"
    assert m.read_data(6, 0) == b""
    with pytest.raises(BadOffset):
        m.read_data(4, 3)
    with pytest.raises(BadOffset):
        m.read_data(-1, 1)
    with pytest.raises(BadOffset):
        m.write_data(5, b"xy")
    with pytest.raises(MbufError):       # the family catches both
        m.read_data(7, 0)
    with pytest.raises(BufferError):     # and it is a builtin BufferError too
        m.read_data(7, 0)
    m.write_data(0, b"AB")
    assert m.to_bytes() == b"ABcdef"
    m.free()


@pytest.mark.parametrize("offset", [0, 1, 3, 5, 6])
def test_extend_inserts_zeros_anywhere(pool: Mempool, offset: int) -> None:
    m = Mbuf.from_bytes(b"abcdef", pool)
    m.extend(offset, 4)
    assert m.to_bytes() == b"abcdef"[:offset] + b"\0" * 4 + b"abcdef"[offset:]
    m.shrink(offset, 4)
    assert m.to_bytes() == b"abcdef"
    m.free()


def test_extend_front_uses_headroom(pool: Mempool) -> None:
    m = Mbuf.from_bytes(b"payload", pool)
    m.extend(0, 14)
    assert m.headroom == 128 - 14 and m.data_len == 21
    assert m.to_bytes() == b"\0" * 14 + b"payload"
    m.free()


def test_extend_until_full_then_error(pool: Mempool) -> None:
    m = Mbuf.from_bytes(b"x" * 100, pool)
    m.extend(100, 2048 + 128 - 100)      # headroom and tailroom all used
    assert m.data_len == pool.stride
    with pytest.raises(OutOfBuffer, match="0 bytes of headroom and 0 of tailroom"):
        m.extend(10, 1)
    assert m.data_len == pool.stride     # unchanged after the error
    m.free()


def test_shrink_and_truncate_bounds(pool: Mempool) -> None:
    m = Mbuf.from_bytes(b"0123456789", pool)
    with pytest.raises(BadOffset):
        m.shrink(8, 3)
    m.shrink(8, 2)
    assert m.to_bytes() == b"01234567"
    m.truncate(8)                        # equal length is a no-op, not an error
    m.truncate(3)
    assert m.to_bytes() == b"012"
    with pytest.raises(BadOffset):
        m.truncate(4)
    m.free()


def test_default_pool_is_lazy_and_replaceable() -> None:
    prev = nfkit.set_default_pool(None)
    try:
        p = nfkit.default_pool()
        assert p is nfkit.default_pool() and p.capacity == 65535
        mine = Mempool(capacity=15)
        nfkit.set_default_pool(mine)
        m = Mbuf.alloc()
        assert m.pool is mine
        m.free()
    finally:
        nfkit.set_default_pool(prev)


def test_handles_are_values(pool: Mempool) -> None:
    m = Mbuf.alloc(pool)
    assert pool.mbuf(m.slot) == m and hash(pool.mbuf(m.slot)) == hash(m)
    m.free()


def test_bad_pool_arguments() -> None:
    with pytest.raises(ValueError):
        Mempool(capacity=0)
    with pytest.raises(ValueError):
        Mempool(capacity=4, buf_size=8)


def test_alloc_slots_with_a_data_length(pool: Mempool) -> None:
    slots = pool.alloc_slots(5, 60)
    assert pool.data_len[slots].tolist() == [60] * 5
    assert pool.data_off[slots].tolist() == [pool.headroom] * 5
    pool.free_slots(slots)
    assert pool.data_len[pool.alloc_slots(3)].tolist() == [0] * 3
    with pytest.raises(ValueError, match="outside 0..2048"):
        pool.alloc_slots(1, 2049)
    assert pool.in_use == 3
