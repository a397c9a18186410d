"""pytest fixtures for NF tests, loaded automatically when nfkit is installed.

- ``netlab``: a :class:`nfkit.testing.netns.NetLab` (namespaces and veth pairs), torn down
  after the test even when it fails.  Without root or ``ip netns`` the test is skipped with
  the reason -- except under ``CI=true``, where it fails: CI must run these tests
  (:mod:`nfkit.testing.skips`, which your own tests can use for the same rule).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from .netns import NetLab, unavailable_reason
from .skips import need

_reason: list[str | None] = []


def require_netns() -> None:
    """Skip (or, under CI=true, fail) the calling test when namespaces are unavailable."""
    if not _reason:
        _reason.append(unavailable_reason())
    need(_reason[0] is None, str(_reason[0]), "root and iproute2 (apt-get install iproute2)")


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    """Namespaces and veth pairs with unique names, removed after the test."""
    require_netns()
    lab = NetLab()
    try:
        yield lab
    finally:
        lab.close()
