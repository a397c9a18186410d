"""The recipes of docs/architecture.md, followed as written.

"Add a header": the recipe's module is saved as a temporary module and imported in a fresh
interpreter (a header class registers itself for dissection, which must not leak into the
other tests' process); the checks below find each thing the recipe promises derived from the
one ``FIELDS`` declaration: accessor, column, pretty-print and hypothesis strategy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nfkit

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(nfkit.__file__).resolve().parent.parent


def _section(title: str) -> str:
    """The text of ``## title`` in docs/architecture.md, up to the next ``## ``."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/architecture.md has no '## {title}' section"
    return match.group(1)


CHECKS = '''
    import dataclasses

    import numpy as np
    from hypothesis import HealthCheck, given, settings

    from nfkit import Mbuf, Mempool
    from nfkit.errors import FieldValueError, MalformedError
    from nfkit.packets import Ethernet, Ipv4, Udp
    from nfkit.testing.strategies import header_fields, packet
    from nfkit.vector.view import BatchView, HeaderColumns

    from probe import Probe

    pool = Mempool(64)

    def probe_packet(seq):
        m = Mbuf.alloc(pool)
        p = m.push(Ethernet).push(Ipv4).push(Udp).push(Probe)
        p.seq = seq
        p.reconcile_all()
        return m, p

    # accessors: from the declaration, range-checked, the UDP checksum around follows
    m, p = probe_packet(7)
    assert (p.version, p.echo, p.seq, p.stamp) == (1, False, 7, 0)
    assert p.envelope.dst_port == 40000                  # push set the discriminator
    p.stamp = 0xDEADBEEF
    p.echo = True
    assert m.to_bytes()[42:50] == bytes([1, 0x80, 0, 7, 0xDE, 0xAD, 0xBE, 0xEF])
    udp = p.envelope
    kept = udp.checksum
    udp.reconcile()
    assert udp.checksum == kept, "a Probe setter left the UDP checksum stale"
    try:
        p.seq = 1 << 16
    except FieldValueError as exc:
        assert "seq" in str(exc)
    else:
        raise AssertionError("seq took a 17-bit value")
    bad = Mbuf.from_bytes(m.to_bytes()[:42] + bytes([2]) + m.to_bytes()[43:], pool)
    try:
        bad.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Probe)
    except MalformedError as exc:
        assert "version 2" in str(exc)
    else:
        raise AssertionError("version 2 parsed")
    bad.free()

    # pretty-print: repr, show() and the dissector's one-line summary
    assert repr(p).startswith("Probe(version=1, echo=1, seq=7, stamp=0xdeadbeef")
    import io
    out = io.StringIO()
    m.show(out)
    assert "###[ Probe ]###" in out.getvalue() and "stamp   = 0xdeadbeef" in out.getvalue()
    assert m.summary().endswith("/ Probe seq 7")
    m.free()

    # column: the same fields across a burst, read and written
    pkts = [probe_packet(seq)[0] for seq in (1, 2, 3)]
    slots = np.array([x.slot for x in pkts])
    view = BatchView(pool, slots)
    valid = view.udp_valid & (view.udp.dst_port == 40000)
    cols = HeaderColumns(view, Probe, view.l4 + Udp.SIZE, valid)
    assert cols.seq.tolist() == [1, 2, 3] and cols.version.tolist() == [1, 1, 1]
    cols.seq = np.array([10, 20, 30])
    assert [x.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Probe).seq for x in pkts] == [
        10, 20, 30]
    Mbuf.free_bulk(pkts)

    # hypothesis: generated packets draw every field but the pinned one
    drawn = []

    @settings(database=None, suppress_health_check=list(HealthCheck))
    @given(packet(Ethernet, Ipv4, Udp, Probe, pool=pool), header_fields(Probe))
    def generated(m, values):
        p = m.parse(Ethernet).parse(Ipv4).parse(Udp).parse(Probe)
        drawn.append((p.version, p.seq))
        assert set(values) == {"version", "echo", "seq", "stamp"} and values["version"] == 1
        m.free()

    generated()
    assert drawn and {v for v, _ in drawn} == {1} and len({s for _, s in drawn}) > 1
    assert pool.in_use == 0
    print("recipe ok")
'''


def test_add_a_header_recipe(tmp_path: Path) -> None:
    section = _section("Add a header")
    [module] = re.findall(r"```python\n(.*?)```", section, re.S)
    (tmp_path / "probe.py").write_text(module)
    (tmp_path / "check.py").write_text(textwrap.dedent(CHECKS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(SRC)])}
    r = subprocess.run([sys.executable, "check.py"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("recipe ok")


def test_recipes_name_the_files_they_touch() -> None:
    """Each recipe lists its files in a table, and those files exist (or are the new one)."""
    for title, files in (("Add a header", {"src/nfkit/packets/constants.py",
                                           "src/nfkit/packets/__init__.py"}),
                         ("Add a combinator", {"src/nfkit/batch.py", "tests/test_batch.py",
                                               "docs/writing-an-nf.md"})):
        listed = set(re.findall(r"^\| `([^`<]+)` \|", _section(title), re.M))
        assert files <= listed, (title, listed)
        assert all((ROOT / f).exists() for f in listed), (title, listed)


def test_add_a_combinator_recipe(pool: nfkit.Mempool) -> None:
    """The recipe's stage, compiled in batch.py's namespace as if added there, counts every
    packet it does not pass on, per packet and after a vector stage."""
    import nfkit.batch as batch
    from doubles import ListRx, ListTx
    from nfkit.packets import Ethernet, Ipv4, Udp

    [code] = re.findall(r"```python\n(.*?)```", _section("Add a combinator"), re.S)
    stage_source = code.split("\nclass Batch:")[0]
    namespace = dict(vars(batch))
    exec(compile(stage_source, "docs/architecture.md", "exec"), namespace)
    sample = namespace["_sample_stage"]

    def udp4() -> nfkit.Mbuf:
        m = nfkit.Mbuf.alloc(pool)
        m.push(Ethernet).push(Ipv4).push(Udp).reconcile_all()
        return m

    for head in (lambda b: b, lambda b: b.filter(batch.vectorized(lambda v: v.udp.valid))):
        pkts = [udp4() for _ in range(5)]
        tx = ListTx()
        pl = head(batch.Poll(ListRx(pkts)))._then(sample(2)).send(tx)
        assert pl.run_once() == 5
        assert [m.slot for m in tx.sent] == [pkts[0].slot, pkts[2].slot, pkts[4].slot]
        assert (pl.stats.act, pl.stats.drop, pool.in_use) == (3, 2, 3)
        nfkit.Mbuf.free_bulk(tx.sent)
