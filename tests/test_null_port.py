"""The null port's generated frames: the template, or given frames in turn (refilled every
burst, or written once), with and without the compiled copy."""

from __future__ import annotations

import pytest

from nfkit import Mbuf, _accel
from nfkit.config import RuntimeConfig
from nfkit.runtime import Runtime
from nfkit.testing.skips import need_numba


def null_queue(copy: int = 1, capacity: int = 255):
    cfg = RuntimeConfig.from_toml_text(
        f'app_name = "t"\nmaster_core = 0\nlog_level = "error"\n[mempool]\ncapacity = {capacity}\n'
        f'[[ports]]\nname = "p"\ndevice = "net_null0"\nargs = "copy={copy}"\ncores = [0]\n')
    rt = Runtime.build(cfg)
    return rt, rt.port("p").queues[0]


FRAMES = [bytes([i]) * 60 for i in range(5)]


@pytest.mark.parametrize("compiled", [True, False])
def test_set_frames_refill_hands_out_the_frames_in_turn(compiled: bool, monkeypatch) -> None:
    if not compiled:
        monkeypatch.setattr(_accel, "AVAILABLE", False)
    else:
        need_numba()
    rt, q = null_queue()
    q.set_frames(FRAMES)
    got = []
    for burst in (3, 4, 6):
        ms = q.receive(burst)
        got += [m.to_bytes() for m in ms]
        Mbuf.free_bulk(ms)
    assert got == [FRAMES[i % 5] for i in range(13)]
    rt.close()


def test_set_frames_written_once() -> None:
    rt, q = null_queue(capacity=10)
    q.set_frames(FRAMES, refill=False)
    ms = q.receive(10)
    assert sorted(m.to_bytes() for m in ms) == sorted(FRAMES * 2)
    Mbuf.free_bulk(ms)
    rt.close()


def test_set_frames_rejects_mixed_lengths() -> None:
    rt, q = null_queue()
    with pytest.raises(ValueError, match="one length"):
        q.set_frames([b"x" * 60, b"y" * 61])
    rt.close()
