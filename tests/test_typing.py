"""Types for editors and type checkers (#15): the typed accessor blocks follow FIELDS, mypy
sees the header fields, and the package says it is typed (py.typed)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import nfkit
from nfkit.testing.skips import need

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(nfkit.__file__).resolve().parent.parent

GOOD = '''
    from ipaddress import IPv4Address

    import nfkit
    from nfkit.net import MacAddr
    from nfkit.packets import Ethernet, Ipv4, Tcp, Udp, VlanTag

    def check(mbuf: nfkit.Mbuf) -> nfkit.Mbuf:
        eth = mbuf.parse(Ethernet)
        ip = eth.parse(Ipv4)
        udp = ip.parse(Udp)
        ttl: int = ip.ttl
        ip.ttl = ttl - 1
        port: int = udp.dst_port
        udp.dst_port = port + 1
        src: MacAddr = eth.src
        eth.src = "02:00:00:00:00:01"
        eth.dst = src
        dst: IPv4Address = ip.dst
        ip.src, ip.dst = dst, "10.0.0.1"
        df: bool = ip.dont_fragment
        ip.dont_fragment = not df
        ro = mbuf.peek(Ethernet).peek(Ipv4)
        total: int = ro.total_length + ip.ihl * 4
        syn: bool = mbuf.peek(Ethernet).peek(Ipv4).peek(Tcp).syn
        vid: int = eth.vlans[0].vid if eth.vlans else VlanTag.SIZE
        print(total, syn, vid, udp.flow())
        return mbuf
'''

# (line, what) of each error mypy must report in BAD (1-based, after dedent)
BAD = '''
    import nfkit
    from nfkit.packets import Ethernet, Ipv4, Udp

    def check(mbuf: nfkit.Mbuf) -> None:
        ip = mbuf.parse(Ethernet).parse(Ipv4)
        name: str = ip.ttl
        ip.ttl = "64"
        mbuf.parse(Ethernet).parse(Ipv4).parse(Udp).dst_port = 53.0
        mbuf.parse(Ethernet).src = 3.5
        ip.no_such_field = 1
'''
BAD_LINES = [6, 7, 8, 9, 10]


def test_generated_accessor_blocks_are_up_to_date() -> None:
    """Every header module's typed block matches its FIELDS (regenerated in memory)."""
    from nfkit.packets import _stubs
    stale = [p.name for p in _stubs.module_paths() if _stubs.render(p) != p.read_text()]
    assert not stale, f"run `python -m nfkit.packets._stubs` (or make stubs): {stale} are stale"


def test_every_declared_field_has_a_typed_accessor() -> None:
    """Every generated accessor of every header class is named in a typed block."""
    from nfkit.packets import _stubs
    from nfkit.packets.base import REGISTRY
    text = "".join(p.read_text() for p in _stubs.module_paths())
    for cls in REGISTRY:
        for f in cls.__dict__.get("FIELDS", ()):
            if _stubs._generated(cls.__dict__.get(f.name)):
                assert f"        {f.name} = _ft." in text, f"{cls.__name__}.{f.name}"


def test_package_is_marked_typed() -> None:
    assert (SRC / "nfkit" / "py.typed").is_file()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["nfkit"]


def _mypy(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    need(importlib.util.find_spec("mypy"), "mypy is not installed", "pip install 'nfkit[dev]'")
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    # MYPYPATH: the nfkit under test (not whichever one the venv installed); errors inside
    # nfkit itself are not this test's subject (silent), the user's file is checked strictly.
    env = {**os.environ, "MYPYPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
         "--cache-dir", str(tmp_path / ".mypy_cache"), "--no-error-summary", str(path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


def test_mypy_accepts_an_nf_using_header_fields(tmp_path: Path) -> None:
    r = _mypy(tmp_path, "good_nf.py", GOOD)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_rejects_wrong_field_types(tmp_path: Path) -> None:
    r = _mypy(tmp_path, "bad_nf.py", BAD)
    assert r.returncode == 1, r.stdout + r.stderr
    flagged = {int(line.split(":")[1]) for line in r.stdout.splitlines() if ": error:" in line}
    assert flagged == set(BAD_LINES), r.stdout
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' \
        in r.stdout
