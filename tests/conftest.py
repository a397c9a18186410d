"""Shared test setup: a small private pool per test, and leak checks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

import nfkit
from nfkit.testing.skips import in_ci

settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if in_ci() else "dev")


@pytest.fixture
def pool() -> nfkit.Mempool:
    """A private 1023-buffer pool (capsule's test pools are as small)."""
    return nfkit.Mempool(capacity=1023, name="testpool")
