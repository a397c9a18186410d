"""The ``nfkit`` command, run as a subprocess the way a user runs it: ``--version``, the help
of each command, ``dump`` (summaries, ``--filter``, ``-c``, ``-v``, damaged and wrong input)
and ``run`` (every start-up error, ``--duration``, ``--log-level``).

Every error must be one clear message and a non-zero exit, never a Python traceback --
except a failing installer, whose message carries the traceback of the user's code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nfkit
from nfkit import Mbuf
from nfkit.packets import Ethernet, Ipv4, Ipv6, Tcp, Udp
from nfkit.pcap import PcapWriter
from nfkit.testing import skips
from nfkit.testing.skips import need

ROOT = Path(__file__).resolve().parent.parent
NFKIT = [sys.executable, "-m", "nfkit.cli"]
T0 = 1_700_000_000_000_000_000          # ns; records are 1 ms apart
PEER_MAC, NF_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01"


def nfkit_cli(cwd: Path, *args: str, timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``nfkit ARGS`` in ``cwd``; in UTC (dump's timestamps are local time, as tcpdump's)."""
    env = {**os.environ, "TZ": "UTC"} if env is None else env
    return subprocess.run(NFKIT + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A non-zero exit with one ``Error:`` message holding every fragment, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Error: " in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


# -- packets and files --------------------------------------------------------------------

def frame(ip_cls: type, l4_cls: type, src: str, dst: str, sport: int, dport: int,
          payload: bytes = b"abc", syn: bool = False) -> bytes:
    """Ethernet / IP / TCP-or-UDP built with nfkit's push API."""
    m = Mbuf.alloc()
    try:
        eth = m.push(Ethernet)
        eth.src, eth.dst = PEER_MAC, NF_MAC
        ip = eth.push(ip_cls)
        ip.src, ip.dst = src, dst
        l4 = ip.push(l4_cls)
        l4.src_port, l4.dst_port = sport, dport
        if l4_cls is Tcp:
            l4.seq_no, l4.window, l4.syn = 1, 10, syn
        if payload:
            l4.set_payload(payload)
        l4.reconcile_all()
        return m.to_bytes()
    finally:
        m.free()


# The sample capture: index -> what it is
SAMPLE = [
    frame(Ipv4, Udp, "10.0.0.1", "10.0.0.2", 1000, 53),                     # 0 dns
    frame(Ipv4, Udp, "10.0.0.1", "10.0.0.3", 1001, 123),                    # 1 ntp
    frame(Ipv4, Tcp, "192.0.2.1", "192.0.2.80", 40000, 80, b"", syn=True),  # 2 http syn
    frame(Ipv4, Udp, "10.0.0.4", "10.0.0.2", 1002, 53, b"hello"),           # 3 dns
    frame(Ipv6, Udp, "2001:db8::1", "2001:db8::2", 5000, 53),               # 4 dns over v6
]
SUMMARIES = [
    "22:13:20.000000 02:00:00:00:00:02 > 02:00:00:00:00:01 / 10.0.0.1 > 10.0.0.2 ttl 64 / UDP 1000 > 53 len 3",
    "22:13:20.001000 02:00:00:00:00:02 > 02:00:00:00:00:01 / 10.0.0.1 > 10.0.0.3 ttl 64 / UDP 1001 > 123 len 3",
    "22:13:20.002000 02:00:00:00:00:02 > 02:00:00:00:00:01 / 192.0.2.1 > 192.0.2.80 ttl 64 / TCP 40000 > 80 [S] seq 1 win 10 len 0",
    "22:13:20.003000 02:00:00:00:00:02 > 02:00:00:00:00:01 / 10.0.0.4 > 10.0.0.2 ttl 64 / UDP 1002 > 53 len 5",
    "22:13:20.004000 02:00:00:00:00:02 > 02:00:00:00:00:01 / 2001:db8::1 > 2001:db8::2 hlim 64 / UDP 5000 > 53 len 3",
]


def write_pcap(path: Path, frames: list[bytes]) -> Path:
    with PcapWriter(path) as w:
        for i, f in enumerate(frames):
            w.write(f, T0 + i * 1_000_000)
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_pcap(tmp_path / "sample.pcap", SAMPLE)


# -- --version and --help -----------------------------------------------------------------

def test_version(tmp_path: Path) -> None:
    proc = nfkit_cli(tmp_path, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"nfkit, version {nfkit.__version__}\n"


USAGE = r"Usage: (nfkit|python -m nfkit\.cli)"


@pytest.mark.parametrize("command, expected", [
    ([], [USAGE + r" \[OPTIONS\] COMMAND", "--version", r"\n  run ", r"\n  dump "]),
    (["run"], [USAGE + r" run \[OPTIONS\] APP", r"-c, --config FILE +runtime config", r"\[required\]",
               "--duration", r"--log-level \[trace\|debug\|info\|warning\|error\]",
               "--status / --no-status"]),
    (["dump"], [USAGE + r" dump \[OPTIONS\] FILE", "-f, --filter TEXT", "-c, --count INTEGER",
                "-v, --verbose"]),
])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(tmp_path: Path, command: list[str], expected: list[str], flag: str) -> None:
    proc = nfkit_cli(tmp_path, *command, flag)
    assert proc.returncode == 0, proc.stderr
    for pattern in expected:
        assert re.search(pattern, proc.stdout), (pattern, proc.stdout)


def test_installed_script_is_named_nfkit(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "nfkit"
    need(script.exists(), "the nfkit console script is not installed beside this Python",
         "pip install -e .")
    proc = subprocess.run([str(script), "dump", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: nfkit dump [OPTIONS] FILE")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout == f"nfkit, version {nfkit.__version__}\n"


# -- dump -----------------------------------------------------------------------------------

def test_dump_prints_one_summary_per_packet(tmp_path: Path, sample: Path) -> None:
    proc = nfkit_cli(tmp_path, "dump", "sample.pcap")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == SUMMARIES
    assert proc.stderr.strip() == "5 of 5 packets shown"


@pytest.mark.parametrize("expr, selected", [
    ("udp dst port 53", [0, 3, 4]),
    ("ip and udp port 53", [0, 3]),
    ("ip6", [4]),
    ("tcp-syn and dst port 80", [2]),
    ("not udp", [2]),
    ("src host 10.0.0.1 or net 2001:db8::/32", [0, 1, 4]),
    ("udp and len > 45", [3, 4]),
    ("arp", []),
])
def test_dump_filter_selects_matching_packets(tmp_path: Path, sample: Path, expr: str,
                                              selected: list[int]) -> None:
    proc = nfkit_cli(tmp_path, "dump", "sample.pcap", "--filter", expr)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [SUMMARIES[i] for i in selected]
    assert proc.stderr.strip() == f"{len(selected)} of 5 packets shown"
    short = nfkit_cli(tmp_path, "dump", "sample.pcap", "-f", expr)
    assert short.stdout == proc.stdout


def test_dump_count_stops_after_n_matching_packets(tmp_path: Path, sample: Path) -> None:
    proc = nfkit_cli(tmp_path, "dump", "sample.pcap", "-c", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == SUMMARIES[:2]
    assert proc.stderr.strip().startswith("2 of ")
    both = nfkit_cli(tmp_path, "dump", "sample.pcap", "--filter", "udp port 53", "--count", "2")
    assert both.stdout.splitlines() == [SUMMARIES[0], SUMMARIES[3]]
    more = nfkit_cli(tmp_path, "dump", "sample.pcap", "-c", "99")
    assert more.stdout.splitlines() == SUMMARIES


def test_dump_count_summary_does_not_claim_a_wrong_total(tmp_path: Path) -> None:
    write_pcap(tmp_path / "big.pcap", [SAMPLE[0]] * 300)
    proc = nfkit_cli(tmp_path, "dump", "big.pcap", "-c", "3")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3
    assert "of 256 packets" not in proc.stderr, proc.stderr


def test_dump_negative_count_is_a_usage_error(tmp_path: Path, sample: Path) -> None:
    proc = nfkit_cli(tmp_path, "dump", "sample.pcap", "-c", "-1")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_dump_verbose_prints_every_header(tmp_path: Path, sample: Path) -> None:
    proc = nfkit_cli(tmp_path, "dump", "sample.pcap", "-v", "-c", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == SUMMARIES[0]
    assert [line.split("(")[0] for line in lines[1:]] == ["    Ethernet", "    IPv4", "    UDP"]
    assert "src=02:00:00:00:00:02" in lines[1] and "ether_type=IPV4" in lines[1]
    assert "ttl=64" in lines[2] and "protocol=UDP" in lines[2] and "src=10.0.0.1" in lines[2]
    assert "src_port=1000" in lines[3] and "dst_port=53" in lines[3] and "length=11" in lines[3]
    v6 = nfkit_cli(tmp_path, "dump", "sample.pcap", "--verbose", "--filter", "ip6")
    assert [line.split("(")[0] for line in v6.stdout.splitlines()] == [
        SUMMARIES[4].split("(")[0], "    Ethernet", "    IPv6", "    UDP"]


@pytest.mark.parametrize("expr, message", [
    ("udp port", "Error: filter 'udp port': expected a port number after 'port' at column 9"),
    ("host 10.0.0.999", "bad address '10.0.0.999'"),
    ("tcp and (port 80", "filter 'tcp and (port 80'"),
    ("frobnicate", "filter 'frobnicate'"),
])
def test_dump_bad_filter_is_a_clear_error(tmp_path: Path, sample: Path, expr: str,
                                          message: str) -> None:
    proc = nfkit_cli(tmp_path, "dump", "sample.pcap", "--filter", expr)
    assert_clean_error(proc, message)
    assert proc.stdout == ""


def test_dump_missing_file(tmp_path: Path) -> None:
    proc = nfkit_cli(tmp_path, "dump", "nope.pcap")
    assert_clean_error(proc, "Error: nope.pcap: cannot open: No such file or directory")


@pytest.mark.parametrize("content, message", [
    (b"hello, not a capture\n", "not a pcap or pcapng file (magic 0x68656c6c)"),
    (b"", "empty file (0 bytes): not a pcap or pcapng file"),
    (b"\xd4\xc3", "not a pcap or pcapng file (only 2 bytes)"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap file header cut short: 24 bytes needed, 6 found"),
])
def test_dump_non_pcap_file(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "x.pcap").write_bytes(content)
    proc = nfkit_cli(tmp_path, "dump", "x.pcap")
    assert_clean_error(proc, f"Error: x.pcap: {message}")
    assert proc.stdout == ""


def _record_offsets(frames: list[bytes]) -> list[int]:
    offsets, o = [], 24
    for f in frames:
        offsets.append(o)
        o += 16 + len(f)
    return offsets


@pytest.mark.parametrize("cut, what", [
    (10, "record at offset {offset} claims"),          # inside the last packet's data
    (None, "record header at offset {offset} cut short"),  # inside the last record header
])
def test_dump_truncated_pcap_prints_good_packets_and_warns(tmp_path: Path, cut: int | None,
                                                          what: str) -> None:
    data = write_pcap(tmp_path / "whole.pcap", SAMPLE).read_bytes()
    last = _record_offsets(SAMPLE)[-1]
    data = data[:-cut] if cut is not None else data[:last + 8]
    (tmp_path / "cut.pcap").write_bytes(data)
    proc = nfkit_cli(tmp_path, "dump", "cut.pcap")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.splitlines() == SUMMARIES[:-1]
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, proc.stderr
    assert "cut.pcap" in warning[0] and what.format(offset=last) in warning[0]
    assert "after 4 packets" in warning[0]


# -- run: start-up errors -------------------------------------------------------------------

RING_CONFIG = """\
app_name = "clitest"
master_core = 0

[[ports]]
name = "eth1"
device = "net_ring0"
cores = [0]
"""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder with a valid config (one net_ring0 port) and an app adding nothing."""
    (tmp_path / "ring.toml").write_text(RING_CONFIG)
    (tmp_path / "ok.py").write_text("def main(runtime):\n    pass\n")
    return tmp_path


def test_run_missing_app_file(work: Path) -> None:
    proc = nfkit_cli(work, "run", "nope.py", "-c", "ring.toml", "--no-status")
    assert_clean_error(proc, "Error: nope.py: no such app file")


def test_run_app_without_main(work: Path) -> None:
    (work / "nomain.py").write_text("x = 1\n")
    proc = nfkit_cli(work, "run", "nomain.py", "-c", "ring.toml", "--no-status")
    assert_clean_error(proc, "Error: nomain.py: the app must define main(runtime)")


@pytest.mark.parametrize("source, message", [
    ('raise RuntimeError("boom at import")\n', "RuntimeError: boom at import"),
    ("import no_such_module_for_nfkit_tests\n",
     "ModuleNotFoundError: No module named 'no_such_module_for_nfkit_tests'"),
    ("def main(runtime)\n    pass\n", "SyntaxError"),
])
def test_run_app_whose_import_raises(work: Path, source: str, message: str) -> None:
    (work / "broken.py").write_text(source)
    proc = nfkit_cli(work, "run", "broken.py", "-c", "ring.toml", "--no-status")
    assert_clean_error(proc, "Error: broken.py: importing the app failed: ", message)


def test_run_missing_config_file(work: Path) -> None:
    proc = nfkit_cli(work, "run", "ok.py", "-c", "nope.toml", "--no-status")
    assert_clean_error(proc, "Error: nope.toml: cannot read: [Errno 2] No such file or directory")


def test_run_config_unknown_field_names_file_and_field(work: Path) -> None:
    (work / "bad.toml").write_text(RING_CONFIG.replace("master_core = 0",
                                                       "master_core = 0\nbogus = 1")
                                   + "promiscous = true\n")
    proc = nfkit_cli(work, "run", "ok.py", "-c", "bad.toml", "--no-status")
    assert_clean_error(proc, "bad.toml: unknown field 'bogus' at the top level (known fields: ",
                       "bad.toml: unknown field 'promiscous' in ports[0] (known fields: ")


def test_run_config_missing_required_field_names_file_and_field(work: Path) -> None:
    (work / "bad.toml").write_text(RING_CONFIG.replace('app_name = "clitest"\n', "")
                                   .replace("cores = [0]\n", ""))
    proc = nfkit_cli(work, "run", "ok.py", "-c", "bad.toml", "--no-status")
    assert_clean_error(proc, "bad.toml: app_name: field required",
                       "bad.toml: ports[0].cores: field required")


def test_run_config_unknown_and_missing_fields_together(work: Path) -> None:
    (work / "bad.toml").write_text('app_name = "x"\nports = []\ncolour = "blue"\n')
    proc = nfkit_cli(work, "run", "ok.py", "-c", "bad.toml", "--no-status")
    assert_clean_error(proc, "bad.toml: master_core: field required",
                       "bad.toml: unknown field 'colour'")


def test_run_unknown_device_names_device_and_drivers(work: Path) -> None:
    (work / "dev.toml").write_text(RING_CONFIG.replace("net_ring0", "net_foo0"))
    proc = nfkit_cli(work, "run", "ok.py", "-c", "dev.toml", "--no-status")
    assert_clean_error(proc, "port eth1: unknown device 'net_foo0'", "known drivers: ",
                       "pcap (net_pcap", "memory (net_(ring|memory)", "null (net_null")


def test_run_failing_installer_names_core_and_installer(work: Path) -> None:
    (work / "badinst.py").write_text(
        "def install(q):\n"
        "    raise ValueError('installer exploded')\n"
        "\n"
        "def main(runtime):\n"
        "    runtime.add_pipeline_to_port('eth1', install)\n")
    proc = nfkit_cli(work, "run", "badinst.py", "-c", "ring.toml", "--no-status", "--duration", "5")
    assert proc.returncode != 0
    assert "Error: core 0: installer install failed: ValueError: installer exploded" in proc.stderr
    # the user's code is part of the message: its file, line and statement
    assert f'File "{work / "badinst.py"}", line 2, in install' in proc.stderr
    assert "raise ValueError('installer exploded')" in proc.stderr
    assert "click" not in proc.stderr          # but not the CLI's own frames
    assert "stopped:" not in proc.stdout


def test_run_installer_not_returning_a_pipeline(work: Path) -> None:
    (work / "nopipe.py").write_text(
        "def main(runtime):\n    runtime.add_pipeline_to_port('eth1', lambda q: 42)\n")
    proc = nfkit_cli(work, "run", "nopipe.py", "-c", "ring.toml", "--no-status", "--duration", "5")
    assert_clean_error(proc, "core 0: installer ", "returned int, not a Pipeline")


def test_run_app_naming_an_unknown_port(work: Path) -> None:
    (work / "badport.py").write_text(
        "def main(runtime):\n    runtime.add_pipeline_to_port('eth9', lambda q: None)\n")
    proc = nfkit_cli(work, "run", "badport.py", "-c", "ring.toml", "--no-status")
    assert_clean_error(proc, "Error: port eth9 is not found (configured ports: eth1)")


def test_run_main_raising_is_reported_without_cli_frames(work: Path) -> None:
    (work / "mainraises.py").write_text("def main(runtime):\n    raise ValueError('main exploded')\n")
    proc = nfkit_cli(work, "run", "mainraises.py", "-c", "ring.toml", "--no-status")
    assert proc.returncode != 0
    assert "Error: " in proc.stderr and "main exploded" in proc.stderr
    assert "click" not in proc.stderr, proc.stderr


# -- run: a clean run ---------------------------------------------------------------------

def test_run_duration_stops_after_about_that_long(work: Path) -> None:
    t0 = time.monotonic()
    proc = nfkit_cli(work, "run", "ok.py", "-c", "ring.toml", "--duration", "1", "--no-status")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert 1.0 <= elapsed < 30
    lines = proc.stdout.splitlines()
    m = re.fullmatch(r"stopped: duration after (\d+\.\d\d)s", lines[0])
    assert m and 1.0 <= float(m.group(1)) < 2.0, proc.stdout
    assert lines[1:] == ["  port eth1: rx 0 tx 0 dropped rx 0 tx 0 errors rx 0"]
    # the short option too, and the config's own duration
    (work / "dur.toml").write_text("duration = 1\n" + RING_CONFIG)
    assert "stopped: duration" in nfkit_cli(work, "run", "ok.py", "-c", "dur.toml").stdout
    assert "stopped: duration" in nfkit_cli(work, "run", "ok.py", "-c", "ring.toml", "-d", "1").stdout


def test_run_log_level(work: Path) -> None:
    debug = nfkit_cli(work, "run", "ok.py", "-c", "ring.toml", "--duration", "1", "--no-status",
                      "--log-level", "debug")
    assert debug.returncode == 0, debug.stderr
    assert re.search(r" DEBUG nfkit\.runtime: core 0 initialised: 0 pipeline\(s\), 0 timer\(s\)",
                     debug.stderr), debug.stderr
    assert " INFO nfkit.runtime: clitest: running for 1s" in debug.stderr
    info = nfkit_cli(work, "run", "ok.py", "-c", "ring.toml", "--duration", "1", "--no-status")
    assert " INFO nfkit.runtime: " in info.stderr and " DEBUG " not in info.stderr
    warning = nfkit_cli(work, "run", "ok.py", "-c", "ring.toml", "--duration", "1", "--no-status",
                        "--log-level", "warning")
    assert warning.returncode == 0 and " INFO " not in warning.stderr
    assert "stopped: duration" in warning.stdout
    bad = nfkit_cli(work, "run", "ok.py", "-c", "ring.toml", "--log-level", "loud")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "Invalid value for '--log-level'" in bad.stderr


def test_run_app_log_follows_log_level(work: Path) -> None:
    (work / "logs.py").write_text(
        "import logging\n"
        "log = logging.getLogger('myapp')\n"
        "def main(runtime):\n"
        "    log.debug('debug from the app')\n"
        "    log.info('info from the app')\n")
    debug = nfkit_cli(work, "run", "logs.py", "-c", "ring.toml", "-d", "1", "--log-level", "debug")
    assert "DEBUG myapp: debug from the app" in debug.stderr
    info = nfkit_cli(work, "run", "logs.py", "-c", "ring.toml", "-d", "1")
    assert "INFO myapp: info from the app" in info.stderr and "debug from the app" not in info.stderr


def test_run_stop_when_drained_without_pcap_inputs_keeps_running(work: Path) -> None:
    (work / "swd.toml").write_text("stop_when_drained = true\n" + RING_CONFIG)
    proc = nfkit_cli(work, "run", "ok.py", "-c", "swd.toml", "--duration", "1", "--no-status")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("stopped: duration"), proc.stdout


def test_run_config_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    """pcap file names in args are taken from the config's folder, not the working one."""
    nf = tmp_path / "nf"
    nf.mkdir()
    write_pcap(nf / "in.pcap", SAMPLE)
    (nf / "fwd.py").write_text(
        "import nfkit\n"
        "def main(runtime):\n"
        "    runtime.add_pipeline_to_port('eth1', lambda q: nfkit.Poll(q).send(q))\n")
    (nf / "fwd.toml").write_text(
        'app_name = "fwd"\nmaster_core = 0\nstop_when_drained = true\n\n[[ports]]\nname = "eth1"\n'
        'device = "net_pcap0"\nargs = "rx_pcap=in.pcap,tx_pcap=out.pcap"\ncores = [0]\n')
    proc = nfkit_cli(tmp_path, "run", "nf/fwd.py", "-c", "nf/fwd.toml", "--no-status")
    assert proc.returncode == 0, proc.stderr
    assert "stopped: drained" in proc.stdout
    assert "port eth1: rx 5 tx 5" in proc.stdout
    assert (nf / "out.pcap").is_file() and not (tmp_path / "out.pcap").exists()
    dump = nfkit_cli(tmp_path, "dump", "nf/out.pcap")
    assert dump.stdout.splitlines() == SUMMARIES


def test_run_missing_rx_pcap_is_a_clear_error(work: Path) -> None:
    (work / "pcap.toml").write_text(RING_CONFIG.replace('"net_ring0"', '"net_pcap0"\n'
                                                        'args = "rx_pcap=missing.pcap"'))
    proc = nfkit_cli(work, "run", "ok.py", "-c", "pcap.toml", "--no-status")
    assert_clean_error(proc, "port eth1 (net_pcap0): rx_pcap file ", "missing.pcap does not exist")


# -- the firewall example's rules file, through the CLI -------------------------------------

@pytest.mark.parametrize("rules", ["rules = 5\n", 'defualt = "allow"\n'])
def test_firewall_malformed_rules_file_is_a_clear_error(tmp_path: Path, rules: str) -> None:
    work = tmp_path / "firewall"          # a copy: the run opens (truncates) allowed.pcap
    shutil.copytree(ROOT / "examples" / "firewall", work)
    (tmp_path / "rules.toml").write_text(rules)
    env = {**os.environ, "NFKIT_RULES": str(tmp_path / "rules.toml")}
    proc = nfkit_cli(work, "run", "firewall.py", "-c", "firewall.toml", "--no-status", env=env)
    assert_clean_error(proc, "rules.toml")


# -- issue #11: capture files lose nothing and never crash ----------------------------------

import struct  # noqa: E402
import threading  # noqa: E402

from click.testing import CliRunner  # noqa: E402
from test_pcap import ng_epb, ng_idb, ng_shb  # noqa: E402

from nfkit.cli import main  # noqa: E402

MAC_PART = f"{PEER_MAC} > {NF_MAC} / "


def _pcap_bytes(records: list[bytes], linktype: int = 1, snaplen: int = 262144,
                ns: bool = False) -> bytes:
    """A classic pcap built with struct (any link type, any record size)."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, 2, 4, 0, 0, snaplen,
                       linktype)]
    for i, r in enumerate(records):
        out.append(struct.pack("<IIII", T0 // 10**9, i * (1000 if not ns else 10**6),
                               len(r), len(r)) + r)
    return b"".join(out)


def test_dump_shows_records_larger_than_64k(tmp_path: Path) -> None:
    """A 70 KB record between two small ones (GRO / BIG TCP): every record is shown, the
    big one decoded as far as its headers go (before: "2 of 2 packets shown")."""
    big = frame(Ipv4, Udp, "10.0.0.9", "10.0.0.2", 7, 9, b"x" * 8) + b"y" * (70_000 - 53)
    (tmp_path / "big.pcap").write_bytes(_pcap_bytes([SAMPLE[0], big, SAMPLE[1]]))
    proc = nfkit_cli(tmp_path, "dump", "big.pcap")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and lines[0] == SUMMARIES[0]
    assert lines[2] == SUMMARIES[1].replace(".001000 ", ".002000 ")
    assert "10.0.0.9 > 10.0.0.2" in lines[1], lines[1]
    assert proc.stderr.strip() == "3 of 3 packets shown"


def _link_frame(linktype: int, eth: bytes, i: int) -> bytes:
    """``eth`` (an Ethernet frame) as a frame of ``linktype``."""
    et, payload = eth[12:14], eth[14:]
    v6 = et == b"\x86\xdd"
    if linktype in (12, 14, 101, 228, 229):
        return payload
    if linktype == 113:
        return struct.pack(">HHH", i % 5, 1, 6) + eth[6:12] + b"\0\0" + et + payload
    if linktype == 276:
        return et + b"\0\0" + struct.pack(">IHBB", 3, 1, i % 5, 6) + eth[6:12] + b"\0\0" + payload
    if linktype == 0:
        return struct.pack("<I", 24 if v6 else 2) + payload
    if linktype == 108:
        return struct.pack(">I", 24 if v6 else 2) + payload
    return eth


_DIRS = ["In", "B", "M", "P", "Out"]


@pytest.mark.parametrize("linktype", [12, 14, 101, 228, 229, 113, 276, 0, 108])
def test_dump_decodes_link_types(tmp_path: Path, linktype: int) -> None:
    """Raw IP (and the BSD raw numbers), IPv4/IPv6-only, Linux cooked v1/v2 and loopback
    captures are decoded, not printed as garbage MACs."""
    is_v6 = [f[12:14] == b"\x86\xdd" for f in SAMPLE]
    keep = [i for i in range(len(SAMPLE))
            if linktype not in (228, 229) or is_v6[i] == (linktype == 229)]
    recs = [_link_frame(linktype, SAMPLE[i], i) for i in keep]
    (tmp_path / "lt.pcap").write_bytes(_pcap_bytes(recs, linktype))
    proc = nfkit_cli(tmp_path, "dump", "lt.pcap")
    assert proc.returncode == 0, proc.stderr
    want = []
    for n, i in enumerate(keep):
        stamp, rest = SUMMARIES[i].split(" ", 1)
        stamp = f"22:13:20.{n * 1000:06d}"              # T0 + n ms, in UTC
        rest = rest.replace(MAC_PART, "")
        if linktype == 113:
            rest = f"SLL {_DIRS[n % 5]} {PEER_MAC} / {rest}"
        elif linktype == 276:
            rest = f"SLL2 if 3 {_DIRS[n % 5]} {PEER_MAC} / {rest}"
        want.append(f"{stamp} {rest}")
    assert proc.stdout.splitlines() == want
    assert proc.stderr.strip() == f"{len(keep)} of {len(keep)} packets shown"


def _tcpdump_exe() -> str:
    return skips.need_tool("tcpdump")


def _mixed_frames() -> list[bytes]:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Ether
    e = Ether(src=PEER_MAC, dst=NF_MAC)
    pkts = [e / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000, dport=53) / b"abc",
            e / IP(src="192.0.2.1", dst="192.0.2.80") / TCP(sport=40000, dport=80, flags="S"),
            e / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5000, dport=53),
            e / IPv6(src="2001:db8::2", dst="2001:db8::1") / TCP(sport=443, dport=5001)
            / (b"z" * 40),
            e / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=8) / (b"p" * 64),
            Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2")]
    return [bytes(p) for p in pkts]


PARITY_FILTERS = ["ip", "ip6", "udp", "tcp", "icmp", "arp", "port 53", "tcp port 80",
                  "host 10.0.0.1", "src host 2001:db8::1", "net 192.0.2.0/24", "greater 70",
                  "less 70", "not udp", "udp and dst port 53", "dst port 5001 or icmp"]


@pytest.mark.parametrize("linktype", [1, 101, 228, 229, 113, 276, 0, 108])
def test_dump_filter_on_link_types_matches_tcpdump(tmp_path: Path, linktype: int) -> None:
    """``nfkit dump -f`` selects what ``tcpdump -r FILE EXPR`` selects, on every link
    type dump decodes (ARP only where the link header can name it)."""
    exe = _tcpdump_exe()
    frames = [f for f in _mixed_frames()
              if linktype in (1, 113, 276) or f[12:14] != b"\x08\x06"]
    if linktype in (228, 229):
        frames = [f for f in frames if (f[12:14] == b"\x86\xdd") == (linktype == 229)]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(_pcap_bytes([_link_frame(linktype, f, i) for i, f in enumerate(frames)],
                                 linktype))
    for expr in PARITY_FILTERS:
        td = subprocess.run([exe, "-r", str(path), "-nn", "-tt", expr], capture_output=True,
                            text=True, timeout=60)
        if td.returncode != 0:
            assert "rejects all packets" in td.stderr, (expr, td.stderr)
        want = [line.split(" ", 1)[0] for line in td.stdout.splitlines()]
        # in-process (the same command): 16 filters x 8 link types as subprocesses are slow
        nf = CliRunner().invoke(main, ["dump", str(path), "-tt", "-f", expr])
        assert nf.exit_code == 0, nf.output
        got = [line.split(" ", 1)[0] for line in nf.stdout.splitlines()]
        assert got == want, (linktype, expr, nf.stdout, td.stdout)


@pytest.mark.parametrize("path, message", [
    ("/dev/zero", "Error: /dev/zero: not a pcap or pcapng file (magic 0x00000000)"),
    ("/dev/urandom", "Error: /dev/urandom: not a pcap or pcapng file"),
])
def test_dump_endless_stream_is_not_a_capture_at_once(tmp_path: Path, path: str,
                                                      message: str) -> None:
    """Before: read whole first (MemoryError after 2.5 GB); the address space is limited
    so that a regression fails fast instead of eating the machine's memory."""
    import resource
    t0 = time.monotonic()
    proc = subprocess.run(NFKIT + ["dump", path], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, preexec_fn=lambda: resource.setrlimit(
                              resource.RLIMIT_AS, (3 << 29, 3 << 29)))
    assert_clean_error(proc, message)
    assert time.monotonic() - t0 < 30


def test_dump_fifo_prints_packets_as_they_arrive(tmp_path: Path) -> None:
    fifo = tmp_path / "live"
    os.mkfifo(fifo)
    data = write_pcap(tmp_path / "s.pcap", SAMPLE).read_bytes()
    split = _record_offsets(SAMPLE)[2]                  # the header and two packets first
    proc = subprocess.Popen(NFKIT + ["dump", str(fifo)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        with open(fifo, "wb", buffering=0) as f:
            f.write(data[:split])
            assert proc.stdout is not None
            first: list[str] = []
            reader = threading.Thread(target=lambda: first.extend(
                proc.stdout.readline().rstrip("\n") for _ in range(2)), daemon=True)
            reader.start()
            reader.join(30)                            # while the writer still holds the rest
            assert first == SUMMARIES[:2], "the first packets were not printed as they came"
            f.write(data[split:])
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == SUMMARIES[2:] and err.strip() == "5 of 5 packets shown"


def test_dump_reads_stdin(tmp_path: Path, sample: Path) -> None:
    data = sample.read_bytes()
    proc = subprocess.run(NFKIT + ["dump", "-", "-f", "udp"], cwd=tmp_path, input=data,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [SUMMARIES[i] for i in (0, 1, 3, 4)]
    bad = subprocess.run(NFKIT + ["dump", "-"], cwd=tmp_path, input=b"GET / HTTP/1.1\r\n",
                         capture_output=True, timeout=60)
    assert bad.returncode != 0 and b"not a pcap or pcapng file" in bad.stderr
    assert b"Traceback" not in bad.stderr


def _epb(ifid: int, i: int, data: bytes) -> bytes:
    """An EPB of interface ``ifid`` (microseconds), stamped like the i-th SAMPLE record."""
    return ng_epb("<", ifid, T0 // 1000 + i * 1000, data)


def test_dump_skips_a_bad_pcapng_block_and_goes_on(tmp_path: Path) -> None:
    blocks = [_epb(0, i, f) for i, f in enumerate(SAMPLE)]
    blocks[1] = _epb(5, 1, SAMPLE[1])                      # names an interface that is not there
    (tmp_path / "bad.pcapng").write_bytes(ng_shb("<") + ng_idb("<") + b"".join(blocks))
    proc = nfkit_cli(tmp_path, "dump", "bad.pcapng")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [SUMMARIES[i] for i in (0, 2, 3, 4)]
    assert "names interface 5, the section has 1; skipped" in proc.stderr
    assert proc.stderr.strip().endswith("4 of 4 packets shown")


# -- run: inputs a port cannot read are errors, not a quiet drain ----------------------------

FWD_APP = ("import nfkit\n"
           "def main(runtime):\n"
           "    runtime.add_pipeline_to_port('eth1', lambda q: nfkit.Poll(q).send(q))\n")


def _pcap_run(work: Path, args: str, extra: str = "") -> subprocess.CompletedProcess[str]:
    (work / "fwd.py").write_text(FWD_APP)
    (work / "fwd.toml").write_text(
        'app_name = "fwd"\nmaster_core = 0\nstop_when_drained = true\nduration = 60\n' + extra
        + f'\n[[ports]]\nname = "eth1"\ndevice = "net_pcap0"\nargs = "{args}"\ncores = [0]\n')
    return nfkit_cli(work, "run", "fwd.py", "-c", "fwd.toml", "--no-status")


@pytest.mark.parametrize("name, content, message", [
    ("text.pcap", b"this is not a capture\n", "not a pcap or pcapng file (magic 0x74686973)"),
    ("empty.pcap", b"", "empty file (0 bytes)"),
    ("dir.pcap", None, "is a directory"),
    ("/dev/zero", None, "/dev/zero is a character device, not a capture file"),
])
def test_run_input_that_is_not_a_capture_is_an_error(tmp_path: Path, name: str,
                                                     content: bytes | None, message: str) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    elif not name.startswith("/"):
        (tmp_path / name).mkdir()
    proc = _pcap_run(tmp_path, f"rx_pcap={name},tx_pcap=out.pcap")
    assert_clean_error(proc, "port eth1 (net_pcap0): rx_pcap file ", message)
    assert "stopped: drained" not in proc.stdout


def test_run_fifo_input_is_refused_saying_why(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "live.pcap")
    proc = _pcap_run(tmp_path, "rx_pcap=live.pcap")
    assert_clean_error(proc, "live.pcap is a FIFO, not a capture file")


def test_run_unreadable_input_is_an_error(tmp_path: Path) -> None:
    """As an unprivileged user (root reads anything): a file without read permission."""
    import tempfile
    skips.need_root("needs root, to switch to nobody")
    skips.need_tool("setpriv", "apt-get install util-linux")
    work = Path(tempfile.mkdtemp(prefix="nfkit-unreadable-"))
    try:
        work.chmod(0o777)
        write_pcap(work / "secret.pcap", SAMPLE).chmod(0)
        (work / "fwd.py").write_text(FWD_APP)
        (work / "fwd.toml").write_text(
            'app_name = "fwd"\nmaster_core = 0\nstop_when_drained = true\n\n[[ports]]\n'
            'name = "eth1"\ndevice = "net_pcap0"\nargs = "rx_pcap=secret.pcap"\ncores = [0]\n')
        env = {**os.environ, "HOME": str(work), "NUMBA_CACHE_DIR": str(work)}
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               *NFKIT, "run", "fwd.py", "-c", "fwd.toml", "--no-status"],
                              cwd=work, capture_output=True, text=True, timeout=120, env=env)
        assert_clean_error(proc, "secret.pcap: cannot open: Permission denied")
    finally:
        shutil.rmtree(work)


@pytest.mark.parametrize("cut", [10, 20])
def test_run_truncated_input_is_an_error_after_the_good_packets(tmp_path: Path, cut: int) -> None:
    data = write_pcap(tmp_path / "whole.pcap", SAMPLE).read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[:-cut])
    proc = _pcap_run(tmp_path, "rx_pcap=cut.pcap,tx_pcap=out.pcap")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "port eth1: rx 4 tx 4" in proc.stdout                 # the good packets went through
    assert "cut.pcap" in proc.stderr and "cut short" in proc.stderr or "claims" in proc.stderr
    assert re.search(r"Error: port eth1: 1 input error\(s\)", proc.stderr), proc.stderr
    dump = nfkit_cli(tmp_path, "dump", "out.pcap")
    assert dump.stdout.splitlines() == SUMMARIES[:4]


def test_run_refuses_a_link_type_the_port_cannot_carry(tmp_path: Path) -> None:
    (tmp_path / "raw.pcap").write_bytes(_pcap_bytes([f[14:] for f in SAMPLE], 101))
    proc = _pcap_run(tmp_path, "rx_pcap=raw.pcap,tx_pcap=out.pcap")
    assert_clean_error(proc, "raw.pcap: link type 101 (RAW): only link type 1 (ETHERNET)")
    mixed = (ng_shb("<") + ng_idb("<") + _epb(0, 0, SAMPLE[0]) + ng_idb("<", linktype=113)
             + b"".join(_epb(1, i, _link_frame(113, f, i)) for i, f in enumerate(SAMPLE))
             + _epb(0, 9, SAMPLE[1]))
    (tmp_path / "mixed.pcapng").write_bytes(mixed)
    proc = _pcap_run(tmp_path, "rx_pcap=mixed.pcapng,tx_pcap=out.pcap")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "port eth1: rx 2 tx 2 dropped rx 5" in proc.stdout
    assert "5 packets of link type 113 (LINUX_SLL)" in proc.stderr, proc.stderr
    assert nfkit_cli(tmp_path, "dump", "out.pcap").stdout.count("\n") == 2


def test_run_out_of_range_timestamps_do_not_crash_the_writer(tmp_path: Path) -> None:
    """ns pcap with sec = nsec = 0xFFFFFFFF, pcapng if_tsoffset near 2**63: clamped to the
    last pcap second, counted and logged, never lost (before: traceback, output empty)."""
    data = bytearray(write_pcap(tmp_path / "in.pcap", SAMPLE).read_bytes())
    data[:4] = struct.pack("<I", 0xA1B23C4D)                        # nanosecond pcap
    struct.pack_into("<II", data, _record_offsets(SAMPLE)[2], 0xFFFFFFFF, 0xFFFFFFFF)
    (tmp_path / "late.pcap").write_bytes(bytes(data))
    ng = (ng_shb("<") + ng_idb("<", tsoffset=(1 << 63) - 1)
          + b"".join(_epb(0, i, f) for i, f in enumerate(SAMPLE)))
    (tmp_path / "late.pcapng").write_bytes(ng)
    for name in ("late.pcap", "late.pcapng"):
        proc = _pcap_run(tmp_path, f"rx_pcap={name},tx_pcap=out.pcap")
        assert proc.returncode == 0, proc.stderr
        assert "port eth1: rx 5 tx 5" in proc.stdout
        assert "later than 2106" in proc.stderr, proc.stderr
        dump = nfkit_cli(tmp_path, "dump", "out.pcap", "-tt")
        assert len(dump.stdout.splitlines()) == 5
        assert "4294967295.999999" in dump.stdout


def test_run_tx_pcap_symlink_is_refused(tmp_path: Path) -> None:
    write_pcap(tmp_path / "in.pcap", SAMPLE)
    (tmp_path / "victim").write_text("precious")
    (tmp_path / "out.pcap").symlink_to(tmp_path / "victim")
    proc = _pcap_run(tmp_path, "rx_pcap=in.pcap,tx_pcap=out.pcap")
    assert_clean_error(proc, "out.pcap: is a symbolic link")
    assert (tmp_path / "victim").read_text() == "precious"
