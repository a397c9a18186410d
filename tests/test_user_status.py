"""The status line of ``nfkit run`` on a real terminal (a pseudo-terminal of 60 and 200
columns, #15): it never wraps (no piece of it is wider than the terminal) and what the app
prints -- print() and logging -- comes out as whole lines of its own, never glued to it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from nfkit.status import fit, status_parts

APP = '''
import logging
import nfkit

log = logging.getLogger("statusapp")
n = 0


def tick() -> None:
    global n
    n += 1
    print(f"app line {n}")
    log.info("logged %d", n)


def main(runtime: nfkit.Runtime) -> None:
    runtime.add_periodic_task_to_core(0, tick, 0.25)
'''

CONFIG = '''
app_name = "statustest"
master_core = 0
duration = 3
log_level = "info"

[[ports]]
name = "eth1"
device = "net_ring0"
cores = [0]
'''

CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]")


def run_in_pty(tmp_path: Path, columns: int) -> str:
    """``nfkit run`` with stdin, stdout and stderr on a pty of ``columns`` columns; what the
    terminal received."""
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "app.toml").write_text(CONFIG)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-m", "nfkit", "run", "app.py", "-c", "app.toml"],
                            cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    out = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:          # EIO: the child's side closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        rc = proc.wait(timeout=60)
    text = out.decode(errors="replace")
    assert rc == 0, text
    return text


@pytest.mark.parametrize("columns", [60, 200])
def test_status_line_fits_and_app_output_goes_around_it(tmp_path: Path, columns: int) -> None:
    text = run_in_pty(tmp_path, columns)
    pieces = [p for p in re.split(r"[\r\n]", CSI.sub("", text)) if p.strip()]
    status = [p for p in pieces if p.startswith("statustest  in ")]
    assert status, text
    assert all(len(p) < columns for p in status), [p for p in status if len(p) >= columns]
    assert all(("(total in" in p) == (columns == 200) for p in status), status
    printed = [p for p in pieces if "app line" in p]
    assert len(printed) >= 8 and all(re.fullmatch(r"app line \d+", p) for p in printed), printed
    logged = [p for p in pieces if "logged" in p]
    assert len(logged) >= 8, text
    assert all(re.fullmatch(r"\S+ \S+ INFO statusapp: logged \d+", p) for p in logged), logged
    assert "stopped: duration" in text


def test_fit_drops_the_least_useful_parts_first() -> None:
    parts = status_parts("nf", (1234.4, 2.0, 0.0), (10_000, 20, 3))
    assert parts[0] == "nf" and parts[1] == "in 1,234 pps"
    whole = "  ".join(parts)
    assert fit(parts, len(whole) + 1) == whole
    assert fit(parts, len(whole)) == "  ".join(parts[:-1])
    assert fit(parts, 20) == "nf  in 1,234 pps"
    assert fit(["a-very-long-app-name"], 10) == "a-very-l…"
    assert fit(parts, 1) == "n" and fit([], 40) == ""
