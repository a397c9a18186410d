"""Compiled per-packet code never reads or writes past a frame: run it with numba's bounds
checking on (NUMBA_BOUNDSCHECK=1, in a subprocess with its own compile cache) over
truncated and mangled frames that end exactly where the pool's memory ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nfkit.testing.skips import need
from nfkit.vector import HAVE_NUMBA


def test_compiled_readers_stay_inside_the_frame(tmp_path: Path) -> None:
    need(HAVE_NUMBA, "numba is not installed: nothing is compiled", "pip install 'nfkit[jit]'")
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "kernel_bounds" / "run.py")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.startswith("ok ")
