"""The NF table's output check (bench/nf_table.py) catches broken implementations: every
row, the parse job included, is compared with an independent reference before it is timed."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

import nfkit
from nfkit import Mbuf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import nf_table  # noqa: E402


@pytest.fixture(autouse=True)
def one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows at batch 32 only: the check is the same at every size, and this keeps it quick."""
    monkeypatch.setattr(nf_table, "BATCHES", (32,))
    monkeypatch.setattr(nf_table, "IN_CACHE_BATCHES", (32,), raising=False)


@pytest.fixture(scope="module")
def parse_job() -> nf_table.Job:
    return nf_table.job_parse(random.Random(7))


@pytest.fixture(scope="module")
def l2fwd_job() -> nf_table.Job:
    return nf_table.job_l2fwd(random.Random(7))


def test_the_real_implementations_pass(parse_job: nf_table.Job, l2fwd_job: nf_table.Job) -> None:
    assert nf_table.check(parse_job) == []
    assert nf_table.check(l2fwd_job) == []


def test_a_parse_peer_returning_garbage_fails(parse_job: nf_table.Job,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(parse_job.peers, "dpkt", lambda raws: [(b"\0" * 4, b"\0" * 4, 17, 1, 2)] * len(raws))
    assert nf_table.check(parse_job) == ["parse 5-tuple, dpkt, batch 32: output differs from the reference"]


def test_an_empty_vector_stage_fails(parse_job: nf_table.Job, monkeypatch: pytest.MonkeyPatch) -> None:
    @nfkit.vectorized
    def nothing(b: Any) -> None:
        return None

    monkeypatch.setitem(parse_job.stages, "vector", ("for_each", nothing))
    assert nf_table.check(parse_job) == [
        "parse 5-tuple, vector, batch 32: output differs from the reference",
        "parse 5-tuple, vector, batch 32 in cache: output differs from the reference"]


def test_a_stage_that_parses_one_packet_of_the_burst_fails(parse_job: nf_table.Job,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    kind, five_p = parse_job.stages["per-packet"]
    first = []

    def only_first(m: Mbuf) -> None:
        if not first or first[0] is m:
            first[:] = [m]
            five_p(m)

    monkeypatch.setitem(parse_job.stages, "per-packet", (kind, only_first))
    assert len(nf_table.check(parse_job)) == 2


def test_an_l2fwd_that_does_not_swap_fails(l2fwd_job: nf_table.Job,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(l2fwd_job.stages, "per-packet", ("map", lambda m: m))
    monkeypatch.setitem(l2fwd_job.peers, "Scapy", lambda raws: list(raws))
    assert nf_table.check(l2fwd_job) == [
        "l2fwd (MAC swap), per-packet, batch 32: output differs from the reference",
        "l2fwd (MAC swap), Scapy, batch 32: output differs from the reference",
        "l2fwd (MAC swap), per-packet, batch 32 in cache: output differs from the reference"]


def test_a_port_that_does_not_write_fresh_frames_fails(l2fwd_job: nf_table.Job,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A headline row must get the job's frames in turn, written into every burst."""
    queue = nf_table._queue
    monkeypatch.setattr(nf_table, "_queue", lambda batch, frames, fresh: queue(batch, frames, False))
    problems = nf_table.check(l2fwd_job)
    assert "l2fwd (MAC swap), JIT kernel, batch 32: the port did not deliver the job's frames in turn" \
        in problems
