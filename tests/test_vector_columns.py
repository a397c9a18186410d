"""BatchView columns, field by field: every declared field of every header read and written
as a column (masked fields, flags, addresses, with a `where` mask) gives what the
per-packet accessors give; column dtypes, zeros where a header is absent, range checks;
checksums kept valid as Scapy recomputes them, including zero checksums.

Mutation testing found the columns tested only on a few unmasked fields (TTL, addresses,
ports): writes to masked fields (DSCP, flags, flow label...) were never exercised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether

from nfkit import Mbuf, Mempool
from nfkit.errors import FieldValueError
from nfkit.packets import Ethernet, Fragment, Icmpv4, Icmpv6, Ipv4, Ipv6, SegmentRouting, Tcp, Udp
from nfkit.packets.dissect import dissect
from nfkit.vector import BatchView

from test_vector_classify import template_frames
from test_vector_view import load, raw_batches

HEADERS = {"eth": Ethernet, "ipv4": Ipv4, "ipv6": Ipv6, "tcp": Tcp, "udp": Udp,
           "icmpv4": Icmpv4, "icmpv6": Icmpv6}
FIELDS = [(h, f) for h, cls in HEADERS.items() for f in cls.ALL_FIELDS]
PLAIN = [(h, f) for h, f in FIELDS if not f.structural]   # writing these keeps the layout


def headers_of(m: Mbuf) -> dict[str, Any]:
    """The per-packet header objects where the view looks for each header."""
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
            for name in ("tcp", "udp", "icmpv4", "icmpv6"):
                if isinstance(p, HEADERS[name]):
                    found[name] = p
            break
    return found


def random_values(f: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    if f.kind == "ipv6":
        return rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    if f.kind == "flag":
        return rng.integers(0, 2, size=n).astype(bool)
    # the field's whole range, its ends included
    vals = rng.integers(0, f.max, size=n, dtype=np.uint64, endpoint=True)
    vals[: min(n, 2)] = [0, f.max][: min(n, 2)]
    return vals


def per_packet_value(f: Any, v: Any) -> Any:
    if f.kind == "mac":
        return int(v).to_bytes(6, "big")
    if f.kind == "ipv6":
        return bytes(v)
    if f.kind == "flag":
        return bool(v)
    return int(v)


def write_both(raws: list[bytes], writes: list[tuple[str, Any]], seed: int) -> None:
    """Apply ``writes`` as columns and with the per-packet setters; the bytes must agree."""
    pool, slots, ms = load(raws)
    ref = [Mbuf.from_bytes(r, Mempool(capacity=1)) for r in raws]
    per = [headers_of(m) for m in ref]
    b = BatchView(pool, slots)
    rng = np.random.default_rng(seed)
    for hdr, f in writes:
        cols = getattr(b, hdr)
        present = np.array([hdr in p for p in per])
        # where the per-packet API finds no such header (a cut ICMP message the view still
        # counts as 4 bytes of ICMP) there is nothing to compare with: leave those alone
        where = rng.integers(0, 2, size=len(raws)).astype(bool) & present
        vals = random_values(f, len(raws), rng)
        refused = np.zeros(len(raws), dtype=bool)
        for i, p in enumerate(per):
            if where[i] and cols.valid[i]:
                try:
                    setattr(p[hdr], f.name, per_packet_value(f, vals[i]))
                except FieldValueError:
                    refused[i] = True     # a structural value past the header's bounds (#11)
        if refused.any():
            # the column write refuses the same values, naming the column, and writes nothing
            before = [m.to_bytes() for m in ms]
            with pytest.raises(FieldValueError, match=rf"^{HEADERS[hdr].NAME}\.{f.name}: "):
                cols.set(f.name, vals, where=where)
            assert [m.to_bytes() for m in ms] == before
        cols.set(f.name, vals, where=where & ~refused)
    for i, (m, r) in enumerate(zip(ms, ref)):
        assert m.to_bytes() == r.to_bytes(), f"packet {i} after {[(h, f.name) for h, f in writes]}"


@given(raw_batches(), st.lists(st.sampled_from(PLAIN), min_size=1, max_size=8), st.integers(0, 2**32))
def test_writing_any_fields_equals_per_packet_setters(raws: list[bytes], writes: list[Any], seed: int) -> None:
    write_both(raws, writes, seed)


@pytest.mark.parametrize("hdr, f", [(h, f) for h, f in FIELDS if f.structural],
                         ids=lambda x: getattr(x, "name", x))
def test_writing_a_structural_field_equals_per_packet_setter(hdr: str, f: Any) -> None:
    raws = template_frames()                              # a fixed, varied batch
    raws += [r[:k] for r in raws[:6] for k in (20, 40, 60)]
    for seed in range(3):
        write_both(raws, [(hdr, f)], seed)


@given(raw_batches())
def test_every_column_reads_as_per_packet_with_zeros_elsewhere(raws: list[bytes]) -> None:
    pool, slots, ms = load(raws)
    b = BatchView(pool, slots)
    per = [headers_of(m) for m in ms]
    for hdr, f in FIELDS:
        cols = getattr(b, hdr)
        col = cols.get(f.name)
        if f.kind == "ipv6":
            assert col.dtype == np.uint8 and col.shape == (len(raws), 16)
        elif f.kind == "flag":
            assert col.dtype == np.bool_
        else:
            bits = f.bits if f.is_masked else 8 * f.width
            assert col.dtype == (np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else
                                 np.uint32 if bits <= 32 else np.uint64), (hdr, f.name)
        for i, p in enumerate(per):
            got = bytes(col[i]) if col.ndim == 2 else int(col[i])
            if not cols.valid[i]:
                assert got in (0, bytes(16)), f"{hdr}.{f.name} of packet {i} without {hdr}"
            elif hdr in p:
                want = getattr(p[hdr], f.name)
                want = (bytes(want.packed) if f.kind == "ipv6" else int(want) if f.kind == "ipv4"
                        else int.from_bytes(want, "big") if f.kind == "mac" else int(want))
                assert got == want, f"{hdr}.{f.name} of packet {i}"


def test_range_checks_name_the_field() -> None:
    # 60 bytes of payload: the largest IHL and data offset (60-byte headers) fit the packet
    pool, slots, _ = load([bytes(Ether() / IP() / TCP() / (b"x" * 60)), bytes(Ether() / IPv6() / UDP())])
    b = BatchView(pool, slots)
    for hdr, f in FIELDS:
        if f.kind in ("ipv6", "flag"):
            continue
        cols = getattr(b, hdr)
        if not cols.valid.any():
            continue
        cols.set(f.name, f.max)                          # the largest value is accepted
        assert int(cols.get(f.name)[cols.valid][0]) == f.max
        for bad in (f.max + 1, -1):
            with pytest.raises(ValueError, match=rf"^{HEADERS[hdr].NAME}\.{f.name}: values must be "
                                                 rf"in 0\.\.{f.max}$"):
                cols.set(f.name, np.full(2, bad, dtype=np.int64))


def test_header_length_columns_stay_inside_the_packet() -> None:
    """IHL and the TCP data offset, written as columns, are bounded as the per-packet setters
    bound them: the header must hold its fixed part and end inside its IP packet."""
    frames = [bytes(Ether() / IP() / TCP() / (b"x" * 8)), bytes(Ether() / IP() / TCP())]
    pool, slots, ms = load(frames)
    b = BatchView(pool, slots)
    for cols, name, ok, bad in ((b.ipv4, "ihl", [7, 10], [7, 11]), (b.ipv4, "ihl", [5, 5], [4, 5]),
                                (b.tcp, "data_offset", [7, 5], [7, 6]),
                                (b.tcp, "data_offset", [5, 5], [5, 4])):
        with pytest.raises(FieldValueError, match=rf"^{cols._cls.NAME}\.{name}: "):
            cols.set(name, np.array(bad))
        assert [m.to_bytes() for m in ms] == frames                 # nothing written
        cols.set(name, np.array(ok), where=np.array([True, False]))
        assert int(cols.get(name)[0]) == ok[0]
        cols.set(name, cols.get(name) * 0 + 5)                      # back to 5 words
    pool2, slots2, _ = load([bytes(Ether() / IP()), bytes(Ether() / IP() / b"four")])
    b2 = BatchView(pool2, slots2)
    with pytest.raises(FieldValueError, match=r"^IPv4\.ihl: 6 words \(24 bytes\) in packet 0; it needs 20 to 20 "
                                              r"there \(set options instead\)$"):
        b2.ipv4.set("ihl", 6)                      # 24 bytes > the 20 of the first packet
    b2.ipv4.set("ihl", 6, where=np.array([False, True]))
    assert b2.ipv4.get("ihl").tolist() == [5, 6]


def test_attribute_errors() -> None:
    pool, slots, _ = load([bytes(Ether() / IP() / TCP())])
    b = BatchView(pool, slots)
    with pytest.raises(AttributeError, match=r"^BatchView has no attribute 'nope'$"):
        b.nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"^_private$"):
        b.ipv4._private  # noqa: B018
    with pytest.raises(AttributeError, match=r"^IPv4 has no field 'nope'; fields: version, ihl,"):
        b.ipv4.nope  # noqa: B018
    with pytest.raises(AttributeError, match=r"^IPv4 columns have no swap_addresses$"):
        b.ipv4.swap_addresses()
    assert repr(b.tcp) == "<TCP columns: 1 of 1 packets>" and repr(b.udp) == "<UDP columns: 0 of 1 packets>"


def scapy_valid(raw: bytes) -> bool:
    """Scapy recomputes every checksum (a stored UDP 0 stays: no checksum); same bytes?"""
    p = Ether(raw)
    for layer, name in ((IP, "chksum"), (TCP, "chksum"), (UDP, "chksum"), (ICMPv6EchoRequest, "cksum")):
        if layer in p and not (layer is UDP and p[UDP].chksum == 0):
            delattr(p[layer], name)
    return bytes(p) == raw


def summing_to_zero(pkt: Any, layer: Any) -> bytes:
    """``pkt`` plus two payload bytes that make its data sum to ones'-complement -0, so its
    computed checksum is 0 (TCP and ICMPv6 store 0; UDP stores 0xFFFF, 0 meaning none)."""
    name = "cksum" if layer is ICMPv6EchoRequest else "chksum"
    first = getattr(Ether(bytes(pkt / b"\x00\x00"))[layer], name)
    return bytes(pkt / first.to_bytes(2, "big"))


def test_address_writes_keep_checksums_as_scapy_computes_them() -> None:
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    old4, new4 = dict(src="10.0.0.1", dst="10.0.0.2"), dict(src="192.0.2.1", dst="198.51.100.7")
    old6, new6 = dict(src="2001:db8::1", dst="2001:db8::2"), dict(src="2001:db8::9", dst="2001:db8::2")
    tcp0 = summing_to_zero(e / IP(**old4) / TCP(sport=1, dport=2) / b"payload!", TCP)
    icmp0 = summing_to_zero(e / IPv6(**old6) / ICMPv6EchoRequest() / b"ping", ICMPv6EchoRequest)
    udp_to_zero = summing_to_zero(e / IP(**new4) / UDP(sport=1, dport=2) / b"tail", UDP)
    frames = [
        bytes(e / IP(**old4) / TCP(sport=1, dport=2) / b"payload!"),
        bytes(e / IP(**old4) / UDP(sport=1, dport=2, chksum=0) / b"no checksum"),
        bytes(e / IP(**old4) / UDP(sport=1, dport=2) / b"with checksum"),
        bytes(e / IPv6(**old6) / ICMPv6EchoRequest() / b"ping"),
        bytes(e / IPv6(**old6) / TCP() / b"v6"),
        tcp0, icmp0,
        bytes(Ether(udp_to_zero)[Ether].copy().__class__(udp_to_zero)),   # replaced below
    ]
    # the UDP frame whose checksum, once its addresses are rewritten, computes to 0
    before = Ether(udp_to_zero)
    before[IP].src, before[IP].dst = old4["src"], old4["dst"]
    del before[IP].chksum, before[UDP].chksum
    frames[7] = bytes(before)
    assert Ether(tcp0)[TCP].chksum == 0 and Ether(icmp0)[ICMPv6EchoRequest].cksum == 0
    assert Ether(udp_to_zero)[UDP].chksum == 0xFFFF and Ether(frames[1])[UDP].chksum == 0
    assert all(scapy_valid(f) for f in frames)
    pool, slots, ms = load(frames)
    b = BatchView(pool, slots)
    b.ipv4.set("src", np.full(len(frames), 0xC0000201, dtype=np.uint32))     # 192.0.2.1
    b.ipv4.dst = "198.51.100.7"
    b.ipv6.set("src", np.frombuffer(bytes.fromhex("20010db8" + "00" * 11 + "09"), np.uint8))
    out = [m.to_bytes() for m in ms]
    assert [scapy_valid(f) for f in out] == [True] * len(frames)
    assert Ether(out[1])[UDP].chksum == 0                      # no checksum stays none
    assert out[7] == udp_to_zero                               # a computed 0 is sent as 0xFFFF


def test_decrement_ttl_edges() -> None:
    e = Ether()
    frames = [bytes(e / IP(ttl=t) / UDP()) for t in (0, 1, 2, 3, 255)] + \
             [bytes(e / IPv6(hlim=h) / UDP()) for h in (0, 1, 2, 3, 255)] + [bytes(e / b"not ip")]
    pool, slots, ms = load(frames)
    keep = BatchView(pool, slots).decrement_ttl()
    assert keep.tolist() == [False, False, True, True, True] * 2 + [True]
    got = [Ether(m.to_bytes()) for m in ms[:10]]
    assert [p[IP].ttl for p in got[:5]] == [0, 1, 1, 2, 254]
    assert [p[IPv6].hlim for p in got[5:]] == [0, 1, 1, 2, 254]
    assert all(scapy_valid(m.to_bytes()) for m in ms[:10])


def test_flow_hash_dtype_families_and_key() -> None:
    from nfkit.vector.hash import SYMMETRIC_RSS_KEY, rss_hash_ipv4
    # explicit MACs: with Ether() Scapy resolves the IPv6 destination's MAC by sending a
    # neighbour solicitation (network I/O, and a select() that failed past fd 1024)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = [bytes(e / IP(src="10.0.0.1", dst="10.0.0.2") / (b"\x00" * 8)),    # IPv4, no ports
              bytes(e / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=7, dport=9)),
              bytes(e / IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=9, dport=7))]
    pool, slots, _ = load(frames)
    b = BatchView(pool, slots)
    h = b.flow_hash()
    assert h.dtype == np.uint32
    assert h[0] == rss_hash_ipv4(np.array([0x0A000001]), np.array([0x0A000002]))[0] != 0
    s = b.flow_hash(SYMMETRIC_RSS_KEY)
    assert s[1] == s[2] and h[1] != h[2]
    assert s[0] == rss_hash_ipv4(np.array([0x0A000001]), np.array([0x0A000002]), key=SYMMETRIC_RSS_KEY)[0]


def test_a_write_that_changes_no_byte_leaves_the_checksum_alone() -> None:
    """A column write of the value a field already holds changes no byte, as the per-packet
    setter (which skips the checksum when the raw value stays).  The modular update
    ``(HC - 0) % 0xFFFF`` would turn a stored 0xFFFF into 0: wrong for an all-zero ICMPv4
    message, whose full RFC 1071 recomputation (Scapy's too) is 0xFFFF, and for an IPv4
    header a change of bytes the caller did not ask for (0xFFFF and 0 both verify there)."""
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    zero_icmp = e / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=0, code=0, id=0, seq=0)
    assert ICMP(bytes(zero_icmp[ICMP])).chksum == 0xFFFF          # Scapy: all-zero data
    ipv4_ffff = bytearray(bytes(e / IP(src="10.0.0.1", dst="10.0.0.2") / TCP()))
    ipv4_ffff[24:26] = b"\xff\xff"
    frames = [bytes(zero_icmp), bytes(ipv4_ffff)]
    for hdr, name in (("icmpv4", "msg_type"), ("icmpv4", "code"), ("ipv4", "reserved_flag"),
                      ("ipv4", "ttl"), ("ipv4", "src")):
        pool, slots, ms = load(frames)
        cols = getattr(BatchView(pool, slots), hdr)
        cols.set(name, cols.get(name))
        assert [m.to_bytes() for m in ms] == frames, f"{hdr}.{name}"
        f = next(f for f in HEADERS[hdr].ALL_FIELDS if f.name == name)
        write_both(frames, [(hdr, f)], seed=0)
