"""pytest fixtures for NF tests, loaded automatically when nfkit is installed.

- ``netlab``: a :class:`nfkit.testing.netns.NetLab` (namespaces and veth pairs), torn down
  after the test even when it fails.  Without root or ``ip netns`` the test is skipped with
  the reason -- except under ``CI=true``, where it fails: CI must run these tests.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from .netns import NetLab, unavailable_reason

_reason: list[str | None] = []


def require_netns() -> None:
    """Skip (or, under CI=true, fail) the calling test when namespaces are unavailable."""
    if not _reason:
        _reason.append(unavailable_reason())
    why = _reason[0]
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    """Namespaces and veth pairs with unique names, removed after the test."""
    require_netns()
    lab = NetLab()
    try:
        yield lab
    finally:
        lab.close()
