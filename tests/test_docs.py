"""The README's code and the demo run as documented."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_taste_runs() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from run import make_frame
    code = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    exec(compile(code, "README.md", "exec"), {"frame": make_frame()})


def test_demo_runs_and_frees_everything() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "packets_demo.py")], capture_output=True,
                         text=True, check=True).stdout
    assert out.count("ICMP echo reply") == 3 and "[checksums ok]" in out
    assert "5 packets in, 3 replies out, 2 dropped; mempool buffers still in use: 0" in out
