"""The per-packet API with frames in hand (#17) and debuggable generated accessors (#12):
bulk entry and exit, map_frames over a list or a capture, the one-buffer fast paths keeping
their errors, linecache-registered accessors and the generated bit diagrams."""

from __future__ import annotations

import inspect
import linecache
import traceback

import pytest

from nfkit import (DoubleFree, FieldValueError, Mbuf, Mempool, MempoolExhausted, OutOfBuffer,
                   TruncatedError)
from nfkit.buffers import NO_TIMESTAMP
from nfkit.frames import map_frames
from nfkit.packets import Ethernet, Ipv4, Udp
from nfkit.packets.base import REGISTRY
from nfkit.packets.fields import _bit_span, accessor_filename
from nfkit.pcap import PcapWriter


def frame(i: int = 0, ttl: int = 64) -> bytes:
    pool = Mempool(capacity=1)
    m = Mbuf.alloc(pool)
    eth = m.push(Ethernet)
    eth.src, eth.dst = "02:00:00:00:00:01", f"02:00:00:00:00:{i & 255:02x}"
    ip = eth.push(Ipv4)
    ip.src, ip.dst, ip.ttl = "10.0.0.1", f"10.0.0.{i & 255}", ttl
    udp = ip.push(Udp)
    udp.src_port, udp.dst_port = 1000 + i, 53
    udp.set_payload(bytes(18))
    udp.reconcile_all()
    raw = m.to_bytes()
    m.free()
    return raw


def route(m: Mbuf) -> bool | None:
    eth = m.parse(Ethernet)
    ip = eth.parse(Ipv4)
    ip.parse(Udp)
    if ip.decrement_ttl() == 0:
        return False
    eth.swap_addresses()
    return None


# -- bulk entry and exit --------------------------------------------------------------------

def test_from_bytes_bulk_round_trip(pool: Mempool) -> None:
    frames = [frame(i) for i in range(5)] + [b"", b"\x01" * pool.buf_size]
    mbufs = Mbuf.from_bytes_bulk(frames, pool)
    assert [len(m) for m in mbufs] == [len(f) for f in frames]
    assert Mbuf.to_bytes_bulk(mbufs) == frames
    assert all(m.data_off == pool.headroom for m in mbufs)
    assert all(int(pool.timestamp[m.slot]) == NO_TIMESTAMP for m in mbufs)
    Mbuf.free_bulk(mbufs)
    assert pool.in_use == 0
    assert Mbuf.from_bytes_bulk([], pool) == []


def test_from_bytes_bulk_is_all_or_nothing() -> None:
    pool = Mempool(capacity=4)
    with pytest.raises(OutOfBuffer, match="frame 1 of 2"):
        Mbuf.from_bytes_bulk([b"x", bytes(pool.buf_size + 1)], pool)
    assert pool.in_use == 0
    with pytest.raises(MempoolExhausted):
        Mbuf.from_bytes_bulk([b"x"] * 5, pool)
    assert pool.in_use == 0


def test_one_buffer_fast_paths_keep_their_errors_and_reset_metadata() -> None:
    pool = Mempool(capacity=1)
    m = Mbuf.from_bytes(b"abc", pool)
    pool.timestamp[m.slot] = 5
    m.view()  # no effect; the handle stays valid
    with pytest.raises(MempoolExhausted):
        Mbuf.from_bytes(b"x", pool)
    m.shrink(0, 1)                      # moves data_off
    assert m.to_bytes() == b"bc"
    m.free()
    with pytest.raises(DoubleFree):
        m.free()
    with pytest.raises(OutOfBuffer):
        Mbuf.from_bytes(bytes(pool.buf_size + 1), pool)
    assert pool.in_use == 0
    again = Mbuf.from_bytes(b"xyz", pool)       # the same slot: metadata reset
    assert (again.data_off, len(again), again.to_bytes()) == (pool.headroom, 3, b"xyz")
    assert int(pool.timestamp[again.slot]) == NO_TIMESTAMP
    again.free()
    with pytest.raises(DoubleFree):
        Mbuf(pool, 7).free()


# -- map_frames -----------------------------------------------------------------------------

def test_map_frames_over_a_list_counts_every_drop(pool: Mempool) -> None:
    frames = [frame(1), frame(2, ttl=1), frame(3)[:20], frame(4)]
    run = map_frames(route, frames, pool)
    want = []
    for f in (frames[0], frames[3]):
        m = Mbuf.from_bytes(f, pool)
        route(m)
        want.append(m.to_bytes())
        m.free()
    assert run.frames == want
    assert (run.kept, run.dropped, dict(run.errors), run.seen) == (2, 1, {"TruncatedError": 1}, 4)
    assert pool.in_use == 0


def test_map_frames_over_a_capture(tmp_path, pool: Mempool) -> None:
    path = tmp_path / "in.pcap"
    w = PcapWriter(str(path))
    for i in range(3):
        w.write(frame(i), timestamp_ns=1_000_000_000 * (i + 1))
    w.close()
    stamps = []

    def fn(m: Mbuf) -> None:
        stamps.append(int(pool.timestamp[m.slot]))
        route(m)

    run = map_frames(fn, path, pool)
    assert run.kept == 3 and stamps == [1_000_000_000, 2_000_000_000, 3_000_000_000]
    assert pool.in_use == 0


def test_map_frames_lets_bugs_through_and_frees(pool: Mempool) -> None:
    def buggy(m: Mbuf) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        map_frames(buggy, [frame()], pool)
    assert pool.in_use == 0


# -- generated accessors: debuggable, and their layout drawn from the declaration -----------

def test_traceback_through_a_setter_shows_the_source_line(pool: Mempool) -> None:
    m = Mbuf.from_bytes(frame(), pool)
    ip = m.parse(Ethernet).parse(Ipv4)
    with pytest.raises(FieldValueError) as info:
        ip.ttl = 300
    m.free()
    text = "".join(traceback.format_exception(info.value))
    assert 'File "<nfkit field Ipv4.ttl>"' in text
    assert "raise FieldValueError(f'ttl must be in 0..255, got {v}')" in text


def test_inspect_getsource_of_generated_accessors() -> None:
    linecache.checkcache()              # what tracebacks do first: must keep the entries
    src = inspect.getsource(Ipv4.ttl.fset)
    assert src.startswith("def set(self, value):") and "hc = (hc - (n - o) * 256) % 65535" in src
    assert inspect.getsource(Udp.dst_port.fget).startswith("def get(self):")
    # the names tools/mutate_compiled.py traces by
    code = Ipv4.ttl.fset.__code__
    assert (code.co_filename, code.co_name) == (accessor_filename("Ipv4.ttl"), "set")
    assert Ipv4.ttl.fget.__code__.co_name == "get"
    assert Ipv4.ttl.fset.__qualname__ == "Ipv4.ttl"


def test_the_accessor_compiler_keeps_the_mutation_tools_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """tools/mutate_compiled.py replaces fields._compile by a wrapper taking (src, name,
    qual) with one accessor per source, and keys them by qual and src[4:7]."""
    from nfkit.packets import fields
    from nfkit.packets.base import Packet
    seen: dict[str, str] = {}
    real = fields._compile

    def hook(src: str, name: str, qual: str):  # type: ignore[no-untyped-def]
        seen[f"{qual}|{src[4:7]}"] = src
        return real(src, name, qual)

    monkeypatch.setattr(fields, "_compile", hook)

    class _Probe(Packet):
        NAME = "probe"
        SIZE = 2
        FIELDS = (fields.U16("word", 0),)

    assert sorted(seen) == ["_Probe.word|get", "_Probe.word|set"]
    assert inspect.getsource(_Probe.word.fset).startswith("def set(self, value):")
    assert inspect.getsource(_Probe.word.fget).startswith("def get(self):")


def _read_diagram(doc: str) -> list[tuple[int, int, str]]:
    """The cells of the diagram in ``doc``: (first bit, bits, label)."""
    rows = [line.strip() for line in doc.split("Header layout (generated from FIELDS)::")[1].splitlines()
            if line.strip().startswith("|")]
    cells = []
    for r, row in enumerate(rows):
        bit = 32 * r
        for cell in row.strip("|").split("|"):
            bits = (len(cell) + 1) // 2
            cells.append((bit, bits, cell.strip()))
            bit += bits
    return cells


@pytest.mark.parametrize("cls", [c for c in REGISTRY if c.ALL_FIELDS], ids=lambda c: c.__name__)
def test_bit_diagram_matches_the_declaration(cls: type) -> None:
    cells = [c for c in _read_diagram(cls.__doc__) if c[2]]
    drawn: dict[str, list[int]] = {}
    for first, bits, label in cells:
        name = next(f.name for f in cls.ALL_FIELDS if f.name.startswith(label) and not f.alias
                    and _bit_span(f)[0] <= first <= _bit_span(f)[1])
        drawn.setdefault(name, []).extend(range(first, first + bits))
    for f in cls.ALL_FIELDS:
        if f.alias or f.name not in drawn:
            # not drawn: an alias, or a second view of bits an earlier field declares
            assert f.alias or any(set(range(_bit_span(f)[0], _bit_span(f)[1] + 1)) & set(b)
                                  for b in drawn.values()), f.name
            continue
        first, last = _bit_span(f)
        assert drawn[f.name] == list(range(first, last + 1)), f.name
    assert "Header layout" in cls._RO.__doc__


def test_parse_errors_unchanged(pool: Mempool) -> None:
    m = Mbuf.from_bytes(frame()[:30], pool)
    with pytest.raises(TruncatedError, match="IPv4"):
        m.parse(Ethernet).parse(Ipv4)
    m.free()


# -- the benchmark's output check (bench/per_packet.py) -------------------------------------

def test_the_bytes_in_bytes_out_benchmark_checks_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import per_packet

    lines, problems = per_packet.run(n=300)
    assert problems == [] and any(line.startswith("| nfkit per-packet") for line in lines)

    def no_ttl(frames: list[bytes], pool: Mempool) -> list[bytes]:
        return [per_packet.bare_job([f])[0][:22] + f[22:] for f in frames]  # TTL not decremented

    monkeypatch.setattr(per_packet, "nfkit_job", no_ttl)
    lines, problems = per_packet.run(n=300)
    assert any("nfkit per-packet (from_bytes" in p and "Scapy" in p for p in problems)
    assert any(line.startswith("**not timed") for line in lines)


def test_the_documented_map_frames_example_runs() -> None:
    """docs/packets.md's map_frames example, on three good frames, one with TTL 1 and a
    truncated one."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "packets.md").read_text()
    code = next(c for c in re.findall(r"```python\n(.*?)```", text, re.S) if "map_frames(route" in c)
    env = {"frames": [frame(1), frame(2), frame(3, ttl=1), frame(4)[:20], frame(5)]}
    exec(compile(code, "docs/packets.md", "exec"), env)  # noqa: S102 - the documented example
    run = env["run"]
    assert (run.kept, run.dropped, dict(run.errors)) == (3, 1, {"TruncatedError": 1})
