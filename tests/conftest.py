"""Shared test setup: a small private pool per test, and leak checks."""

from __future__ import annotations

import os
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

import nfkit
from nfkit.testing.skips import in_ci

settings.register_profile("ci", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if in_ci() else "dev")

#: Test modules of the batch layer (pipelines, vector stages, kernels, the runtime): after
#: every test their pools must be back to idle -- the ``pool`` fixture's and the default
#: pool (the runtime's, when a test made one).  A test that keeps buffers frees them.
#: NFKIT_LEAK_CHECK_ALL=1 checks every module.
LEAK_CHECKED = ("test_batch", "test_vector_", "test_nat64_kernel", "test_kernel_bounds",
                "test_runtime", "test_multicore", "test_null_port")


def _leak_checked(request: pytest.FixtureRequest) -> bool:
    name = request.module.__name__.rpartition(".")[2]
    return os.environ.get("NFKIT_LEAK_CHECK_ALL") == "1" or name.startswith(LEAK_CHECKED)


def _current_default_pool() -> nfkit.Mempool | None:
    """The default pool if there is one (without creating it)."""
    prev = nfkit.set_default_pool(None)
    nfkit.set_default_pool(prev)
    return prev


@pytest.fixture
def pool(request: pytest.FixtureRequest) -> Iterator[nfkit.Mempool]:
    """A private 1023-buffer pool (capsule's test pools are as small)."""
    p = nfkit.Mempool(capacity=1023, name="testpool")
    yield p
    if _leak_checked(request):
        assert p.in_use == 0, f"{p.in_use} buffers of the test's pool still in use after the test"


@pytest.fixture(autouse=True)
def _default_pool_is_idle_after(request: pytest.FixtureRequest) -> Iterator[None]:
    if not _leak_checked(request):
        yield
        return
    before = _current_default_pool()
    idle = before.in_use if before is not None else 0
    yield
    if before is not None:
        assert before.in_use == idle, (f"default pool {before.name}: {before.in_use} buffers "
                                       f"in use after the test, {idle} before")
    after = _current_default_pool()
    if after is not None and after is not before:
        assert after.in_use == 0, (f"pool {after.name} (made the default during the test): "
                                   f"{after.in_use} buffers still in use")
