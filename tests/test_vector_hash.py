"""The vectorized Toeplitz (RSS) hash: Microsoft's verification vectors, a bit-by-bit
reference, the input builders and symmetric RSS."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nfkit.vector.hash import (DEFAULT_RSS_KEY, SYMMETRIC_RSS_KEY, rss_hash_ipv4, rss_hash_ipv6,
                               rss_input_ipv4, rss_input_ipv6, symmetric_key, toeplitz,
                               toeplitz_tables)


def reference_toeplitz(data: bytes, key: bytes) -> int:
    """The Toeplitz hash straight from its definition, one input bit at a time.

    A 32-bit window slides over the key one bit per input bit; each set input bit XORs the
    current window into the result.
    """
    result = 0
    window = int.from_bytes(key[:4], "big")
    next_bit = 32  # index of the key bit that enters the window next
    for byte in data:
        for b in range(7, -1, -1):
            if (byte >> b) & 1:
                result ^= window
            bit = (key[next_bit // 8] >> (7 - next_bit % 8)) & 1 if next_bit < 8 * len(key) else 0
            window = ((window << 1) | bit) & 0xFFFFFFFF
            next_bit += 1
    return result


# Microsoft, "Verifying the RSS hash calculation": (source, sport, destination, dport,
# hash without ports, hash with TCP ports), key DEFAULT_RSS_KEY.
IPV4_VECTORS = [
    ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323E8FC2, 0x51CCC178),
    ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xD718262A, 0xC626B0EA),
    ("24.19.198.95", 12898, "12.22.207.184", 38024, 0xD2D0A5DE, 0x5C2B394A),
    ("38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xAFC7327F),
    ("153.39.163.191", 44251, "202.188.127.2", 1303, 0x5D1809C5, 0x10E828A2),
]
IPV6_VECTORS = [
    ("3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2CC18CD5, 0x40207D3D),
    ("3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0F0C461C, 0xDDE51BBF),
    ("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024,
     0x4B61E985, 0x02D1FEEF),
]


def v4(s: str) -> int:
    return int(ipaddress.IPv4Address(s))


def v6(s: str) -> np.ndarray:
    return np.frombuffer(ipaddress.IPv6Address(s).packed, dtype=np.uint8)


def test_default_key() -> None:
    assert len(DEFAULT_RSS_KEY) == 40
    assert DEFAULT_RSS_KEY[:4] == bytes.fromhex("6d5a56da")
    assert DEFAULT_RSS_KEY[-4:] == bytes.fromhex("beac01fa")


@pytest.mark.parametrize("src, sport, dst, dport, h_ip, h_tcp", IPV4_VECTORS)
def test_reference_matches_ipv4_vectors(src: str, sport: int, dst: str, dport: int,
                                        h_ip: int, h_tcp: int) -> None:
    addrs = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    ports = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    assert reference_toeplitz(addrs, DEFAULT_RSS_KEY) == h_ip
    assert reference_toeplitz(addrs + ports, DEFAULT_RSS_KEY) == h_tcp


@pytest.mark.parametrize("src, sport, dst, dport, h_ip, h_tcp", IPV6_VECTORS)
def test_reference_matches_ipv6_vectors(src: str, sport: int, dst: str, dport: int,
                                        h_ip: int, h_tcp: int) -> None:
    addrs = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    ports = sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    assert reference_toeplitz(addrs, DEFAULT_RSS_KEY) == h_ip
    assert reference_toeplitz(addrs + ports, DEFAULT_RSS_KEY) == h_tcp


def test_rss_hash_ipv4_vectors_as_one_batch() -> None:
    src = np.array([v4(r[0]) for r in IPV4_VECTORS], dtype=np.uint32)
    dst = np.array([v4(r[2]) for r in IPV4_VECTORS], dtype=np.uint32)
    sport = np.array([r[1] for r in IPV4_VECTORS], dtype=np.uint16)
    dport = np.array([r[3] for r in IPV4_VECTORS], dtype=np.uint16)
    h_ip = rss_hash_ipv4(src, dst)
    h_tcp = rss_hash_ipv4(src, dst, sport, dport)
    assert h_ip.dtype == np.uint32 and h_tcp.dtype == np.uint32
    assert h_ip.tolist() == [r[4] for r in IPV4_VECTORS]
    assert h_tcp.tolist() == [r[5] for r in IPV4_VECTORS]


def test_rss_hash_ipv6_vectors_as_one_batch() -> None:
    src = np.stack([v6(r[0]) for r in IPV6_VECTORS])
    dst = np.stack([v6(r[2]) for r in IPV6_VECTORS])
    sport = np.array([r[1] for r in IPV6_VECTORS], dtype=np.uint16)
    dport = np.array([r[3] for r in IPV6_VECTORS], dtype=np.uint16)
    assert rss_hash_ipv6(src, dst).tolist() == [r[4] for r in IPV6_VECTORS]
    assert rss_hash_ipv6(src, dst, sport, dport).tolist() == [r[5] for r in IPV6_VECTORS]


def test_input_layout_ipv4() -> None:
    rows = rss_input_ipv4(np.array([0x01020304], np.uint32), np.array([0x05060708], np.uint32),
                          np.array([0x090A], np.uint16), np.array([0x0B0C], np.uint16))
    assert rows.dtype == np.uint8 and rows.shape == (1, 12)
    assert rows[0].tolist() == list(range(1, 13))
    assert rss_input_ipv4([0x01020304], [0x05060708]).shape == (1, 8)
    # (N, 4) network-order bytes are taken as they are
    b = np.array([[1, 2, 3, 4]], np.uint8)
    assert rss_input_ipv4(b, b).tolist() == [[1, 2, 3, 4, 1, 2, 3, 4]]


def test_input_layout_ipv6_and_broadcast() -> None:
    src = np.arange(32, dtype=np.uint8).reshape(2, 16)
    dst = np.arange(16, 32, dtype=np.uint8)  # one row, broadcast to the batch
    rows = rss_input_ipv6(src, dst, np.array([1, 2], np.uint16), 0x0304)
    assert rows.shape == (2, 36)
    assert rows[1, :16].tolist() == list(range(16, 32))
    assert rows[0, 16:32].tolist() == list(range(16, 32))
    assert rows[:, 32:].tolist() == [[0, 1, 3, 4], [0, 2, 3, 4]]
    assert rss_input_ipv6(src, dst).shape == (2, 32)


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="both"):
        rss_input_ipv4([1], [2], sport=[3])
    with pytest.raises(ValueError, match="range"):
        rss_input_ipv4([1 << 32], [2])
    with pytest.raises(ValueError, match="range"):
        rss_input_ipv4([1], [2], [70000], [1])
    with pytest.raises(ValueError, match="lengths"):
        rss_input_ipv4(np.arange(3, dtype=np.uint32), np.arange(2, dtype=np.uint32))
    with pytest.raises(ValueError):
        rss_input_ipv6(np.zeros((1, 4), np.uint8), np.zeros((1, 16), np.uint8))
    with pytest.raises(ValueError, match="at least 40"):
        toeplitz(np.zeros((1, 36), np.uint8), DEFAULT_RSS_KEY[:39])
    with pytest.raises(TypeError):
        toeplitz(np.zeros((1, 4), np.uint16))


def test_toeplitz_shapes() -> None:
    assert toeplitz(np.zeros((0, 12), np.uint8)).shape == (0,)
    assert toeplitz(np.zeros((3, 0), np.uint8)).tolist() == [0, 0, 0]
    one = bytes(range(12))
    assert toeplitz(one).tolist() == [reference_toeplitz(one, DEFAULT_RSS_KEY)]
    assert toeplitz(np.frombuffer(one, np.uint8)).tolist() == toeplitz(one).tolist()
    # a strided view (every other row) hashes like its copy
    rows = np.arange(10 * 12, dtype=np.uint8).reshape(10, 12)
    assert toeplitz(rows[::2]).tolist() == toeplitz(rows[::2].copy()).tolist()


def test_tables_are_cached_and_read_only() -> None:
    t1 = toeplitz_tables(12)
    t2 = toeplitz_tables(12, bytearray(DEFAULT_RSS_KEY))
    assert np.shares_memory(t1, t2)
    assert not t1.flags.writeable
    # a table entry is the hash of that byte alone at that position
    row = bytearray(12)
    row[5] = 0xA7
    assert int(t1[5, 0xA7]) == reference_toeplitz(bytes(row), DEFAULT_RSS_KEY)


@given(st.data())
def test_tables_match_reference(data: st.DataObject) -> None:
    length = data.draw(st.integers(0, 40), label="length")
    key = data.draw(st.binary(min_size=length + 4, max_size=length + 12), label="key")
    n = data.draw(st.integers(0, 6), label="n")
    rows = [data.draw(st.binary(min_size=length, max_size=length)) for _ in range(n)]
    arr = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(n, length)
    got = toeplitz(arr, key)
    assert got.dtype == np.uint32 and got.shape == (n,)
    assert got.tolist() == [reference_toeplitz(r, key) for r in rows]


u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
addr6 = st.binary(min_size=16, max_size=16)


@given(st.lists(st.tuples(u32, u32, u16, u16), min_size=1, max_size=20))
def test_symmetric_key_ipv4(flows: list[tuple[int, int, int, int]]) -> None:
    s, d, sp, dp = (np.array(c, dtype=t) for c, t in
                    zip(zip(*flows), (np.uint32, np.uint32, np.uint16, np.uint16)))
    k = SYMMETRIC_RSS_KEY
    assert rss_hash_ipv4(s, d, sp, dp, key=k).tolist() == rss_hash_ipv4(d, s, dp, sp, key=k).tolist()
    assert rss_hash_ipv4(s, d, key=k).tolist() == rss_hash_ipv4(d, s, key=k).tolist()


@given(st.lists(st.tuples(addr6, addr6, u16, u16), min_size=1, max_size=20))
def test_symmetric_key_ipv6(flows: list[tuple[bytes, bytes, int, int]]) -> None:
    s = np.frombuffer(b"".join(f[0] for f in flows), np.uint8).reshape(-1, 16)
    d = np.frombuffer(b"".join(f[1] for f in flows), np.uint8).reshape(-1, 16)
    sp = np.array([f[2] for f in flows], np.uint16)
    dp = np.array([f[3] for f in flows], np.uint16)
    k = SYMMETRIC_RSS_KEY
    assert rss_hash_ipv6(s, d, sp, dp, key=k).tolist() == rss_hash_ipv6(d, s, dp, sp, key=k).tolist()
    assert rss_hash_ipv6(s, d, key=k).tolist() == rss_hash_ipv6(d, s, key=k).tolist()


def test_default_key_is_not_symmetric() -> None:
    a, b = v4("66.9.149.187"), v4("161.142.100.80")
    assert rss_hash_ipv4(a, b, 2794, 1766)[0] != rss_hash_ipv4(b, a, 1766, 2794)[0]


def test_symmetric_key_shape() -> None:
    assert SYMMETRIC_RSS_KEY == bytes.fromhex("6d5a" * 20)
    assert symmetric_key(52) == bytes.fromhex("6d5a" * 26)
    with pytest.raises(ValueError):
        symmetric_key(41)


# -- found by mutation testing (tools/mutation.py): edges of the input checks ---------------

def test_symmetric_key_default_and_shortest() -> None:
    assert symmetric_key() == SYMMETRIC_RSS_KEY and len(symmetric_key()) == 40
    assert symmetric_key(4) == bytes.fromhex("6d5a6d5a")
    with pytest.raises(ValueError, match=r"^symmetric RSS key length must be even and >= 4, got 2$"):
        symmetric_key(2)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_negative_values_of_any_signed_width_are_refused(dtype: type) -> None:
    # a negative value cast to >u4 / >u2 would wrap to a valid-looking address or port
    one, neg = np.array([1], dtype), np.array([-1], dtype)
    with pytest.raises(ValueError, match=r"^src out of range for 32-bit values$"):
        rss_input_ipv4(neg, one)
    with pytest.raises(ValueError, match=r"^dport out of range for 16-bit values$"):
        rss_input_ipv4(one, one, one, neg)


def test_wide_unsigned_values_are_range_checked() -> None:
    one = np.array([1], np.uint64)
    with pytest.raises(ValueError, match=r"^dst out of range for 32-bit values$"):
        rss_input_ipv4(one, np.array([1 << 32], np.uint64))
    with pytest.raises(ValueError, match=r"^sport out of range for 16-bit values$"):
        rss_input_ipv4(one, one, np.array([1 << 16], np.uint32), one)
    with pytest.raises(ValueError, match=r"^dport out of range for 16-bit values$"):
        rss_input_ipv4(one, one, one, [70000])       # 17 bits


def test_zero_addresses_and_ports_are_valid() -> None:
    rows = rss_input_ipv4([0], [0], [0], [0])
    assert rows.tolist() == [[0] * 12]
    assert rss_hash_ipv4([0], [0], [0], [0]).tolist() == [0]


def test_empty_columns_give_empty_rows() -> None:
    empty = np.array([], np.int64)
    assert rss_input_ipv4(empty, empty, empty, empty).shape == (0, 12)
    assert rss_hash_ipv4(empty, empty).shape == (0,)


def test_input_errors_name_the_argument() -> None:
    with pytest.raises(TypeError, match=r"^sport must be integers, got float64$"):
        rss_input_ipv4([1], [2], [1.5], [1])
    with pytest.raises(ValueError, match=r"^dst must be a 1-D column, got shape \(1, 1, 1\)$"):
        rss_input_ipv4([1], np.ones((1, 1, 1), np.uint32))
    with pytest.raises(ValueError, match=r"^give both sport and dport, or neither$"):
        rss_input_ipv4([1], [2], dport=[3])
    with pytest.raises(ValueError, match=r"^column lengths differ: \[2, 3\]$"):
        rss_input_ipv4(np.arange(3, dtype=np.uint32), np.arange(2, dtype=np.uint32))


def test_two_d_addresses_must_be_rows_of_bytes() -> None:
    with pytest.raises(ValueError, match=r"^src: 2-D IPv4 addresses must be \(N, 4\) uint8, got "
                                         r"\(1, 4\) uint16$"):
        rss_input_ipv4(np.zeros((1, 4), np.uint16), [1])
    with pytest.raises(ValueError, match=r"^dst: 2-D IPv4 addresses must be \(N, 4\) uint8, got "
                                         r"\(1, 5\) uint8$"):
        rss_input_ipv4([1], np.zeros((1, 5), np.uint8))
    with pytest.raises(ValueError, match=r"^src16: IPv6 addresses must be \(N, 16\) uint8, got "
                                         r"\(1, 4\) uint8$"):
        rss_input_ipv6(np.zeros((1, 4), np.uint8), np.zeros((1, 16), np.uint8))
    with pytest.raises(ValueError, match=r"^dst16: IPv6 addresses must be \(N, 16\) uint8"):
        rss_input_ipv6(np.zeros((1, 16), np.uint8), np.zeros((1, 16), np.int16))


def test_toeplitz_input_errors() -> None:
    with pytest.raises(ValueError, match=r"^toeplitz input must be \(N, L\), got shape \(1, 1, 4\)$"):
        toeplitz(np.zeros((1, 1, 4), np.uint8))
    with pytest.raises(TypeError, match=r"^toeplitz input must be uint8, got uint16$"):
        toeplitz(np.zeros((1, 4), np.uint16))
    with pytest.raises(ValueError, match=r"^a Toeplitz key must be at least 16 bytes for 12-byte "
                                         r"inputs, got 15$"):
        toeplitz(np.zeros((1, 12), np.uint8), DEFAULT_RSS_KEY[:15])
