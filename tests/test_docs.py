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


def test_readme_nf_runs_as_documented(tmp_path) -> None:
    """The README's NF and config, saved as files and run with `nfkit run`."""
    from nfkit.pcap import PcapWriter
    text = (ROOT / "README.md").read_text()
    app = re.search(r"```python\n(# my_nf.py.*?)```", text, re.S).group(1)
    toml = re.search(r"```toml\n(# my_nf.toml.*?)```", text, re.S).group(1)
    (tmp_path / "my_nf.py").write_text(app)
    (tmp_path / "my_nf.toml").write_text(toml)
    sys.path.insert(0, str(ROOT / "bench"))
    from run import make_frame
    with PcapWriter(tmp_path / "in.pcap") as w:
        for _ in range(3):
            w.write(make_frame(), 1)
    proc = subprocess.run([sys.executable, "-m", "nfkit.cli", "run", "my_nf.py", "-c", "my_nf.toml",
                           "--no-status"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "received 3 sent 3" in proc.stdout
    dump = subprocess.run([sys.executable, "-m", "nfkit.cli", "dump", "out.pcap", "--filter",
                           "udp"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert dump.stdout.count("02:00:00:00:00:02 > 02:00:00:00:00:01") == 3


def test_readme_fast_snippet_runs() -> None:
    """The README's vector + kernel pipeline, on an in-memory port."""
    from nfkit.config import RuntimeConfig
    from nfkit.runtime import Runtime
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Fast: whole bursts at once\n\n```python\n(.*?)```", text, re.S).group(1)
    rt = Runtime.build(RuntimeConfig.from_toml_text(
        'app_name = "t"\nmaster_core = 0\nlog_level = "error"\n[[ports]]\nname = "p"\n'
        'device = "net_null0"\ncores = [0]\n'))
    q = rt.port("p").queues[0]
    env = {"q": q}
    exec(compile(code, "README.md", "exec"), env)
    assert env["pipeline"].run_once() == 32
    stats = env["pipeline"].stats
    assert stats.act == 32 and stats.drop == 0
    rt.close()
