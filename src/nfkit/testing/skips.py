"""Environment skips that cannot hide a missing test under CI.

A test that needs something of the machine (root, a tool such as tcpdump, numba, DPDK, two
CPUs) asks for it here.  When it is missing the test is skipped with the reason -- except
under ``CI=true``, where it fails with the same reason and what to install: a CI run must
run every test, and a skip there would hide a test that never ran.  Every environment skip
of nfkit's own tests and of the ``netlab`` fixture goes through this module (a test checks
that no test file calls ``pytest.skip`` / ``skipif`` / ``importorskip`` itself).

Needs only pytest (not hypothesis), so the pytest plugin can use it::

    from nfkit.testing.skips import need_tool, need_root, need

    def test_with_tcpdump():
        tcpdump = need_tool("tcpdump", "apt-get install tcpdump")
        need_root("raw sockets need root")
        need(have_numba, "numba is not installed", "pip install 'nfkit[jit]'")
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ["in_ci", "unavailable", "need", "need_tool", "need_root", "need_numba"]

# Root's tools (tcpdump, ip) live in the sbin directories, which a user's PATH may lack.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def in_ci() -> bool:
    """True when the environment says CI (``CI=true``): skips become failures there."""
    return os.environ.get("CI") == "true"


def unavailable(reason: str, install: str | None = None, *, module: bool = False) -> NoReturn:
    """Skip the calling test (or, with ``module=True``, the whole module being imported)
    because ``reason``; under ``CI=true`` fail instead, saying ``reason`` and ``install``
    (what to install or set up)."""
    how = f" ({install})" if install else ""
    if in_ci():
        pytest.fail(f"CI=true but {reason}{how}: CI must run this test", pytrace=False)
    pytest.skip(f"{reason}{how}", allow_module_level=module)


def need(ok: object, reason: str, install: str | None = None, *, module: bool = False) -> None:
    """:func:`unavailable` unless ``ok`` is true."""
    if not ok:
        unavailable(reason, install, module=module)


def need_tool(name: str, install: str | None = None) -> str:
    """The path of the executable ``name`` (PATH, then the sbin directories); skip -- under
    CI fail -- when it is not installed.  ``install`` defaults to ``apt-get install NAME``."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if path is None:
        unavailable(f"{name} is not installed", install or f"apt-get install {name}")
    return path


def need_root(reason: str = "this test needs root") -> None:
    """Skip -- under CI fail -- unless running as root."""
    need(os.geteuid() == 0, reason, "run the tests as root")


def need_numba(what: str = "the compiled path is not tested") -> None:
    """Skip -- under CI fail -- when numba is missing (or disabled by NFKIT_NO_NUMBA)."""
    from nfkit import _accel
    need(_accel.AVAILABLE, f"numba is not installed (or NFKIT_NO_NUMBA is set): {what}",
         "pip install 'nfkit[jit]'")
