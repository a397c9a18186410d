"""nfkit.checksum against an independent reference: RFC 1071's word loop with end-around
carry (written here, not nfkit's modular form) and Scapy's ``checksum``.

Mutation testing found the module's public functions (finish, pseudo_header_sum, the
``start`` of ones_sum) reached by no test, and the all-zero case of ``checksum`` unchecked.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, strategies as st
from scapy.utils import checksum as scapy_checksum

from nfkit.checksum import checksum, finish, ones_sum, pseudo_header_sum, update, verify


def rfc1071_sum(data: bytes, start: int = 0) -> int:
    """The ones'-complement sum, word by word, folding each carry back (RFC 1071 4.1)."""
    if len(data) % 2:
        data += b"\x00"
    s = start
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return s


def same_sum(a: int, b: int) -> bool:
    """Equal as ones'-complement numbers (0 and 0xFFFF are both zero)."""
    return a % 0xFFFF == b % 0xFFFF


@given(st.binary(max_size=64), st.integers(0, 0xFFFF))
def test_ones_sum_and_checksum_equal_rfc1071(data: bytes, start: int) -> None:
    ref = rfc1071_sum(data, start)
    assert 0 <= ones_sum(data, start) < 0xFFFF and same_sum(ones_sum(data, start), ref)
    assert same_sum(ones_sum(data), rfc1071_sum(data))          # start defaults to 0
    want = ~ref & 0xFFFF                                         # RFC 1071: the complement
    got = checksum(data, start)
    assert got == want or (ref == 0xFFFF and got == 0)           # -0 sums: 0 is what IP sends
    assert finish(ones_sum(data, start)) == got or not any(data) and not start
    assert checksum(data) == scapy_checksum(data) or scapy_checksum(data) == 0xFFFF and checksum(data) == 0


def test_edges() -> None:
    assert ones_sum(b"") == 0 and ones_sum(b"", 5) == 5
    assert ones_sum(b"\x12") == 0x1200 and ones_sum(b"\x12\x34\x56") == 0x1234 + 0x5600
    assert checksum(b"") == checksum(b"\x00\x00\x00") == 0xFFFF      # all zero: +0 -> 0xFFFF
    assert checksum(b"\xff\xff") == 0 and checksum(b"\x80\x00\x7f\xff") == 0   # -0 -> 0
    assert checksum(b"\x00\x01", 0xFFFE) == 0 and checksum(b"\x00\x01") == 0xFFFE
    assert finish(0) == 0 and finish(1) == 0xFFFE and finish(0x1234) == 0xEDCB
    assert checksum(b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7") == 0x220D             # RFC 1071 3.


@given(st.binary(min_size=2, max_size=40).filter(any), st.integers(0, 19), st.integers(0, 0xFFFF))
def test_update_equals_full_recomputation(data: bytes, word: int, new: int) -> None:
    """RFC 1624 eqn. 3, modular form: one 16-bit word changed, the checksum moved."""
    data = data + bytes(len(data) % 2)
    i = 2 * (word % (len(data) // 2))
    old = int.from_bytes(data[i:i + 2], "big")
    changed = data[:i] + new.to_bytes(2, "big") + data[i + 2:]
    if any(changed):
        assert update(checksum(data), old, new) == checksum(changed)
    with_sum = data + checksum(data).to_bytes(2, "big")
    assert verify(with_sum) and (not verify(with_sum, 1))


def test_pseudo_header_sum_equals_the_rfc_layout() -> None:
    """RFC 793 / RFC 768 (IPv4: src, dst, zero, protocol, length) and RFC 8200 8.1
    (IPv6: src, dst, 32-bit length, 3 zero bytes, next header), summed word by word."""
    s4, d4 = IPv4Address("192.0.2.1"), IPv4Address("198.51.100.200")
    ref4 = rfc1071_sum(s4.packed + d4.packed + bytes([0, 17]) + (1234).to_bytes(2, "big"))
    for s, d in ((s4, d4), (s4.packed, d4.packed)):
        assert same_sum(pseudo_header_sum(s, d, 17, 1234), ref4)
    s6, d6 = IPv6Address("2001:db8::1"), IPv6Address("2001:db8:ffff::fe")
    ref6 = rfc1071_sum(s6.packed + d6.packed + (70000).to_bytes(4, "big") + bytes(3) + bytes([58]))
    assert same_sum(pseudo_header_sum(s6, d6, 58, 70000), ref6)
    assert same_sum(pseudo_header_sum(bytearray(s6.packed), d6, 58, 70000), ref6)
    assert pseudo_header_sum(d4, s4, 6, 20) == pseudo_header_sum(s4, d4, 6, 20) != \
        pseudo_header_sum(s4, d4, 17, 20)
