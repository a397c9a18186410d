"""Tests of nfkit.config: capsule's example configs, EAL argv, errors, devargs, dump.

The example configs are written out from the capsule 0.1.5 behaviour reference (section 7,
"Examples"); they must load unchanged with capsule's documented defaults.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest

from nfkit.config import (ConfigError, MempoolConfig, PortConfig, PortNotFound, RuntimeConfig,
                          is_pci_address, load_config, parse_device_args)
from nfkit.errors import NfkitError
from nfkit.ports._eal import capsule_eal_args

# --------------------------------------------------------------------------------------------
# capsule's example configs
# --------------------------------------------------------------------------------------------

SKELETON = """\
app_name = "skeleton"
master_core = 0
dpdk_args = "-v --log-level eal:8"
duration = 5

[[ports]]
    name = "eth1"
    device = "net_ring0"
    cores = [0]
"""

SIGNALS = """\
app_name = "signals"
master_core = 0
ports = []
"""

PING4D = """\
app_name = "ping4d"
master_core = 0
duration = 5

[mempool]
    capacity = 65535
    cache_size = 256

[[ports]]
    name = "eth1"
    device = "net_pcap0"
    args = "rx_pcap=echo.pcap,tx_iface=lo"
    cores = [0]
"""

PKTDUMP = """\
app_name = "pktdump"
master_core = 0
duration = 5

[[ports]]
    name = "eth1"
    device = "net_pcap0"
    args = "rx_pcap=tcp4.pcap,tx_iface=lo"
    cores = [0]

[[ports]]
    name = "eth2"
    device = "net_pcap1"
    args = "rx_pcap=tcp6.pcap,tx_iface=lo"
    cores = [0]
"""

NAT64 = """\
app_name = "nat64"
master_core = 0

[[ports]]
    name = "eth1"
    device = "0000:00:08.0"
    cores = [1]

[[ports]]
    name = "eth2"
    device = "0000:00:09.0"
    cores = [1]
"""

SYN_FLOOD = """\
app_name = "syn-flood"
master_core = 0

[[ports]]
    name = "eth1"
    device = "0000:00:08.0"
    cores = [1]
    rxd = 512
    txd = 512
"""

KNI = """\
app_name = "kni"
master_core = 0

[mempool]
    capacity = 65535
    cache_size = 256

[[ports]]
    name = "kni0"
    device = "0000:00:08.0"
    cores = [1]
    kni = true
"""

EXAMPLES = {
    "skeleton": SKELETON,
    "signals": SIGNALS,
    "ping4d": PING4D,
    "pktdump": PKTDUMP,
    "nat64": NAT64,
    "syn-flood": SYN_FLOOD,
    "kni": KNI,
}


def load(text: str, source: str = "app.toml") -> RuntimeConfig:
    return RuntimeConfig.from_toml_text(text, source)


def errors_of(text: str, source: str = "app.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text, source)
    return info.value


def assert_port_defaults(port: PortConfig, *, rxd: int = 128, txd: int = 128,
                         kni: bool = False) -> None:
    assert (port.rxd, port.txd) == (rxd, txd)
    assert port.promiscuous is False
    assert port.multicast is True
    assert port.kni is kni


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_with_top_level_defaults(name: str) -> None:
    cfg = load(EXAMPLES[name], f"{name}.toml")
    assert cfg.app_name == name
    assert cfg.master_core == 0
    assert cfg.secondary is False
    assert cfg.app_group is None
    assert cfg.cores == []
    assert cfg.batch_size == 32
    assert cfg.log_level == "info"
    assert cfg.stop_when_drained is False


def test_skeleton() -> None:
    cfg = load(SKELETON)
    assert cfg.mempool == MempoolConfig(capacity=65535, cache_size=0)
    assert cfg.dpdk_args == "-v --log-level eal:8"
    assert cfg.duration == 5
    [port] = cfg.ports
    assert (port.name, port.device, port.args, port.cores) == ("eth1", "net_ring0", None, [0])
    assert not port.is_pci
    assert_port_defaults(port)
    assert capsule_eal_args(cfg) == ["skeleton", "--proc-type", "primary", "--file-prefix",
                                 "skeleton", "--vdev", "net_ring0", "--main-lcore", "0",
                                 "-l", "0", "-v", "--log-level", "eal:8"]


def test_signals_has_no_ports() -> None:
    cfg = load(SIGNALS)
    assert cfg.ports == []
    assert cfg.duration is None
    assert cfg.dpdk_args is None
    assert cfg.all_cores() == [0]
    assert capsule_eal_args(cfg) == ["signals", "--proc-type", "primary", "--file-prefix",
                                 "signals", "--main-lcore", "0", "-l", "0"]


def test_ping4d() -> None:
    cfg = load(PING4D)
    assert cfg.mempool == MempoolConfig(capacity=65535, cache_size=256)
    assert cfg.duration == 5
    port = cfg.port("eth1")
    assert (port.device, port.args, port.cores) == ("net_pcap0",
                                                    "rx_pcap=echo.pcap,tx_iface=lo", [0])
    assert port.device_args() == [("rx_pcap", "echo.pcap"), ("tx_iface", "lo")]
    assert_port_defaults(port)
    assert cfg.all_cores() == [0]
    assert capsule_eal_args(cfg)[5:7] == ["--vdev", "net_pcap0,rx_pcap=echo.pcap,tx_iface=lo"]


def test_pktdump_two_ports() -> None:
    cfg = load(PKTDUMP)
    assert [p.name for p in cfg.ports] == ["eth1", "eth2"]
    assert [p.device for p in cfg.ports] == ["net_pcap0", "net_pcap1"]
    assert cfg.port("eth2").device_args() == [("rx_pcap", "tcp6.pcap"), ("tx_iface", "lo")]
    for port in cfg.ports:
        assert port.cores == [0]
        assert_port_defaults(port)
    assert cfg.mempool == MempoolConfig()
    assert cfg.all_cores() == [0]


def test_nat64_pci_devices() -> None:
    cfg = load(NAT64)
    assert [p.device for p in cfg.ports] == ["0000:00:08.0", "0000:00:09.0"]
    assert all(p.is_pci for p in cfg.ports)
    for port in cfg.ports:
        assert port.cores == [1]
        assert_port_defaults(port)  # the README's 512 descriptors are not in the toml
    assert cfg.duration is None
    assert cfg.all_cores() == [0, 1]
    assert capsule_eal_args(cfg) == ["nat64", "--proc-type", "primary", "--file-prefix", "nat64",
                                 "-a", "0000:00:08.0", "-a", "0000:00:09.0",
                                 "--main-lcore", "0", "-l", "0"]


def test_syn_flood() -> None:
    cfg = load(SYN_FLOOD)
    [port] = cfg.ports
    assert port.is_pci
    assert_port_defaults(port, rxd=512, txd=512)
    assert cfg.all_cores() == [0, 1]


def test_kni() -> None:
    cfg = load(KNI)
    port = cfg.port("kni0")
    assert_port_defaults(port, kni=True)
    assert cfg.mempool.cache_size == 256


# --------------------------------------------------------------------------------------------
# EAL arguments, cores, duration
# --------------------------------------------------------------------------------------------

EAL_TEST = """\
app_name = "myapp"
app_group = "mygroup"
master_core = 0
dpdk_args = "-v --log-level eal:8"

[[ports]]
    name = "pci"
    device = "0000:00:01.0"
    cores = [0]

[[ports]]
    name = "pcap"
    device = "net_pcap0"
    args = "rx=lo,tx=lo"
    cores = [0]
"""


def test_eal_args_order_matches_capsule_with_dpdk_22_11_spelling() -> None:
    # capsule: myapp --proc-type primary --file-prefix mygroup --pci-whitelist 0000:00:01.0
    #          --vdev net_pcap0,rx=lo,tx=lo --master-lcore 0 -l 0 -v --log-level eal:8
    expected = ("myapp --proc-type primary --file-prefix mygroup -a 0000:00:01.0 "
                "--vdev net_pcap0,rx=lo,tx=lo --main-lcore 0 -l 0 -v --log-level eal:8")
    assert capsule_eal_args(load(EAL_TEST)) == expected.split(" ")


def test_eal_args_secondary_prefix_pci_args_and_whitespace() -> None:
    cfg = load("""\
app_name = "second"
secondary = true
master_core = 3
dpdk_args = "  --no-huge\\t-m 512\\n\\n--log-level=8 "
[[ports]]
name = "p"
device = "0a:00.1"
args = "ignored=for-pci"
cores = [4]
""")
    assert cfg.file_prefix == "second"
    assert capsule_eal_args(cfg) == ["second", "--proc-type", "secondary", "--file-prefix",
                                 "second", "-a", "0a:00.1", "--main-lcore", "3", "-l", "3",
                                 "--no-huge", "-m", "512", "--log-level=8"]


@pytest.mark.parametrize("device, pci", [
    ("0000:00:08.0", True), ("0000:0a:1f.7", True), ("0a:00.0", True), ("ABCD:EF:01.2", True),
    ("net_pcap0", False), ("net_ring0", False), ("0000:00:08.8", False), ("0000:0:08.0", False),
    ("0000:00:08.0 ", False), ("0000:00:08", False),
])
def test_pci_address_detection(device: str, pci: bool) -> None:
    assert is_pci_address(device) is pci


def test_all_cores_is_sorted_union() -> None:
    cfg = load("""\
app_name = "a"
master_core = 5
cores = [3, 1, 3]
[[ports]]
name = "p0"
device = "net_null0"
cores = [2, 1, 2]
[[ports]]
name = "p1"
device = "net_null1"
cores = [7, 5]
""")
    assert cfg.all_cores() == [1, 2, 3, 5, 7]
    assert cfg.port("p0").cores == [1, 2]  # sorted and de-duplicated, like capsule
    assert cfg.port("p1").cores == [5, 7]
    assert cfg.cores == [3, 1, 3]  # top-level cores are kept as written


@pytest.mark.parametrize("line, expected", [("duration = 0", None), ("", None),
                                            ("duration = 7", 7)])
def test_duration(line: str, expected: int | None) -> None:
    assert load(f"app_name = 'a'\nmaster_core = 0\nports = []\n{line}\n").duration == expected


def test_nfkit_keys() -> None:
    cfg = load("app_name = 'a'\nmaster_core = 0\nports = []\nbatch_size = 4096\n"
               "log_level = 'trace'\nstop_when_drained = true\n")
    assert (cfg.batch_size, cfg.log_level, cfg.stop_when_drained) == (4096, "trace", True)


def test_port_lookup() -> None:
    cfg = load(PKTDUMP)
    assert cfg.port("eth2") is cfg.ports[1]
    with pytest.raises(PortNotFound) as info:
        cfg.port("eth9")
    assert str(info.value) == "port 'eth9' is not found (known ports: eth1, eth2)"
    assert isinstance(info.value, KeyError) and isinstance(info.value, NfkitError)
    with pytest.raises(KeyError):
        load(SIGNALS).port("eth1")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

MINIMAL = "app_name = 'a'\nmaster_core = 0\n"


def test_error_empty_port_cores() -> None:
    error = errors_of(PING4D.replace("cores = [0]", "cores = []"), "ping4d.toml")
    assert str(error) == ("ping4d.toml: ports[0].cores: expected a non-empty list of core ids,"
                          " got []")
    assert error.path == "ping4d.toml"
    assert error.errors == [("ports[0].cores", "expected a non-empty list of core ids, got []")]
    assert isinstance(error, NfkitError) and isinstance(error, ValueError)


def test_error_unknown_port_field() -> None:
    error = errors_of(PKTDUMP.replace('device = "net_pcap1"', 'device = "net_pcap1"\ncolour = 1'))
    assert str(error) == ("app.toml: unknown field 'colour' in ports[1] (known fields: name, "
                          "device, args, cores, rxd, txd, promiscuous, multicast, kni)")
    assert error.errors[0][0] == "ports[1].colour"


def test_error_unknown_mempool_and_top_level_fields() -> None:
    # capsule ignores unknown keys inside [mempool]; nfkit does not.
    error = errors_of(MINIMAL + "ports = []\nduraton = 5\n[mempool]\nsize = 3\n")
    assert str(error).splitlines() == [
        "app.toml: unknown field 'size' in mempool (known fields: capacity, cache_size)",
        "app.toml: unknown field 'duraton' at the top level (known fields: app_name, "
        "secondary, app_group, master_core, cores, mempool, ports, dpdk_args, duration, "
        "batch_size, log_level, stop_when_drained, backend, pcap_dump, pcap_dump_dir, "
        "fail_on_abort, metrics, workers)",
    ]


def test_error_missing_required_fields() -> None:
    error = errors_of("app_name = 'a'\nports = []\n")
    assert str(error) == "app.toml: master_core: field required"
    assert error.errors == [("master_core", "field required")]
    assert str(errors_of(MINIMAL)) == "app.toml: ports: field required"
    error = errors_of(MINIMAL + "[[ports]]\nname = 'p'\n")
    assert str(error).splitlines() == ["app.toml: ports[0].device: field required",
                                       "app.toml: ports[0].cores: field required"]


def test_error_invalid_toml() -> None:
    error = errors_of('app_name = "a"\nmaster_core = 0\nports x= []\n')
    assert str(error) == ("app.toml: line 3, column 7: invalid TOML (Expected '=' after a key "
                          "in a key/value pair)")
    assert error.errors == [("", "line 3, column 7: invalid TOML (Expected '=' after a key in "
                                 "a key/value pair)")]


def test_error_invalid_toml_at_end_of_file() -> None:
    # tomllib reports "at end of document" without a position; nfkit gives the end's position.
    error = errors_of('app_name = "a"\ncores = [1,\n')
    assert re.fullmatch(r"app\.toml: line 3, column 1: invalid TOML \(.+, at end of file\)",
                        str(error))


def test_error_duplicate_toml_key() -> None:
    assert str(errors_of(MINIMAL + "master_core = 1\n")) == (
        "app.toml: line 3, column 16: invalid TOML (Cannot overwrite a value)")


def test_load_config_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("app.toml")
    assert str(info.value) == "app.toml: cannot read: [Errno 2] No such file or directory"
    assert info.value.path == "app.toml"
    assert info.value.errors == [("", "cannot read: [Errno 2] No such file or directory")]


def test_load_config_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "ping4d.toml"
    path.write_text(PING4D, encoding="utf-8")
    assert load_config(path) == load(PING4D)
    path.write_text(PING4D.replace("cores = [0]", "cores = [-1]"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (f"{os.fspath(path)}: ports[0].cores[0]: expected a core id "
                               "(an integer >= 0), got -1")
    assert info.value.path == os.fspath(path)


def test_load_config_not_utf8_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"app_name = '\xff'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML \(not UTF-8 text: byte 12 "
                                          r"is 0xff\)$"):
        load_config(path)
    with pytest.raises(ConfigError, match=r": cannot read: \[Errno 21\] Is a directory$"):
        load_config(tmp_path)


def test_several_errors_at_once() -> None:
    text = """\
app_name = 3
master_core = -1
cores = [1, "a"]
duration = true
log_level = "verbose"
batch_size = 0

[mempool]
capacity = 0

[[ports]]
name = "eth1"
device = "net_pcap0"
args = "rx_pcap=echo.pcap,foo"
cores = []

[[ports]]
name = "eth1"
device = "net_null0"
cores = [1]
rxd = 1.0
promiscuous = "yes"
colour = "red"
"""
    error = errors_of(text)
    assert error.errors == [
        ("app_name", "expected a string, got 3"),
        ("master_core", "expected a core id (an integer >= 0), got -1"),
        ("cores[1]", 'expected a core id (an integer >= 0), got "a"'),
        ("mempool.capacity", "expected an integer >= 1, got 0"),
        ("ports[0].args", "malformed device argument 'foo' (expected key=value)"),
        ("ports[0].cores", "expected a non-empty list of core ids, got []"),
        ("ports[1].rxd", "expected an integer >= 1, got 1.0"),
        ("ports[1].promiscuous", 'expected a boolean, got "yes"'),
        ("ports[1].colour", "unknown field 'colour' in ports[1] (known fields: name, device, "
                            "args, cores, rxd, txd, promiscuous, multicast, kni)"),
        ("duration", "expected a number of seconds (an integer >= 0), got true"),
        ("batch_size", "expected an integer from 1 to 4096, got 0"),
        ("log_level", 'expected one of "trace", "debug", "info", "warning", "error", '
                      'got "verbose"'),
        ("ports[1].name", "duplicate port name 'eth1' (already used by ports[0])"),
    ]
    lines = str(error).splitlines()
    assert len(lines) == len(error.errors)
    assert all(line.startswith("app.toml: ") for line in lines)
    assert lines[0] == "app.toml: app_name: expected a string, got 3"


def test_duplicate_port_names_alone() -> None:
    text = PKTDUMP.replace('name = "eth2"', 'name = "eth1"')
    assert str(errors_of(text)) == ("app.toml: ports[1].name: duplicate port name 'eth1' "
                                    "(already used by ports[0])")


@pytest.mark.parametrize("line, message", [
    ('master_core = "0"', 'master_core: expected a core id (an integer >= 0), got "0"'),
    ("master_core = true", "master_core: expected a core id (an integer >= 0), got true"),
    ("master_core = 0\ncores = 2", "cores: expected a list of core ids, got 2"),
    ("master_core = 0\nmempool = 5", "mempool: expected a table, got 5"),
    ("master_core = 0\nduration = -3",
     "duration: expected a number of seconds (an integer >= 0), got -3"),
    ("master_core = 0\nbatch_size = 4097", "batch_size: expected an integer from 1 to 4096, "
                                           "got 4097"),
    ("master_core = 0\nlog_level = 'INFO'", 'log_level: expected one of "trace", "debug", '
                                            '"info", "warning", "error", got "INFO"'),
    ("master_core = 0\n[mempool]\ncache_size = -1",
     "mempool.cache_size: expected an integer >= 0, got -1"),
])
def test_strict_values(line: str, message: str) -> None:
    text = f"app_name = 'a'\nports = []\n{line}\n"
    assert str(errors_of(text)) == f"app.toml: {message}"


def test_ports_must_be_an_array_of_tables() -> None:
    error = errors_of(MINIMAL + "[ports]\nname = 'p'\n")
    assert str(error) == ("app.toml: ports: expected an array of tables ([[ports]]), "
                          'got { name = "p" }')
    error = errors_of(MINIMAL + "ports = [1]\n")
    assert str(error) == "app.toml: ports[0]: expected a table, got 1"
    error = errors_of(MINIMAL + "[[ports]]\nname = ''\ndevice = 'net_null0'\ncores = [0]\n")
    assert str(error) == 'app.toml: ports[0].name: expected a non-empty string, got ""'


def test_from_mapping() -> None:
    cfg = RuntimeConfig.from_mapping({"app_name": "a", "master_core": 1, "ports": []})
    assert cfg.all_cores() == [1]
    with pytest.raises(ConfigError) as info:
        RuntimeConfig.from_mapping({"app_name": "a", "ports": []}, "cli")
    assert str(info.value) == "cli: master_core: field required"


# --------------------------------------------------------------------------------------------
# Device arguments
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, pairs", [
    (None, []),
    ("", []),
    ("rx_pcap=a.pcap,tx_pcap=b.pcap", [("rx_pcap", "a.pcap"), ("tx_pcap", "b.pcap")]),
    ("rx_pcap=a.pcap,rx_pcap=b.pcap,tx_iface=lo",
     [("rx_pcap", "a.pcap"), ("rx_pcap", "b.pcap"), ("tx_iface", "lo")]),
    ("nodeaction=r1:0:CREATE", [("nodeaction", "r1:0:CREATE")]),
    ("representor=[0,2-3],x=1", [("representor", "[0,2-3]"), ("x", "1")]),
    ("a=1,,b=2,", [("a", "1"), ("b", "2")]),
    ("path=/tmp/a=b.pcap", [("path", "/tmp/a=b.pcap")]),
])
def test_parse_device_args(args: str | None, pairs: list[tuple[str, str]]) -> None:
    assert parse_device_args(args) == pairs


@pytest.mark.parametrize("args, message", [
    ("rx_pcap=a.pcap,foo", "malformed device argument 'foo' (expected key=value)"),
    ("=x", "malformed device argument '=x' (the key must be letters, digits, '_', '.' or '-')"),
    ("a=1, b=2", "malformed device argument ' b=2' (the key must be letters, digits, '_', '.' "
                 "or '-')"),
    ("iface=", "malformed device argument 'iface=' (the value is empty)"),
    ("x=1,list=[1,2", "malformed device argument 'list=[1,2' ('[' without a matching ']')"),
    ("list=1],x=2", "malformed device argument 'list=1]' (']' without a matching '[')"),
])
def test_parse_device_args_malformed(args: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_device_args(args)
    assert info.value.errors == [("args", message)]
    assert str(info.value) == f"<string>: args: {message}"


def test_device_args_checked_for_vdevs_only() -> None:
    text = NAT64.replace('device = "0000:00:08.0"', 'device = "0000:00:08.0"\nargs = "junk"')
    assert load(text).ports[0].args == "junk"  # ignored for PCI devices, as in capsule
    with pytest.raises(ConfigError) as info:
        load(text).ports[0].device_args()
    assert str(info.value) == ("<string>: port 'eth1' args: malformed device argument 'junk' "
                               "(expected key=value)")
    error = errors_of(PING4D.replace("tx_iface=lo", "tx_iface"), "ping4d.toml")
    assert str(error) == ("ping4d.toml: ports[0].args: malformed device argument 'tx_iface' "
                          "(expected key=value)")


# --------------------------------------------------------------------------------------------
# dump and __str__
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_dump_round_trip(name: str) -> None:
    cfg = load(EXAMPLES[name])
    assert load(cfg.dump()) == cfg
    assert load(cfg.dump(exclude_defaults=True)) == cfg


def test_dump_shows_effective_config() -> None:
    assert load(PING4D).dump() == """\
app_name = "ping4d"
secondary = false
master_core = 0
cores = []
duration = 5
batch_size = 32
log_level = "info"
stop_when_drained = false
backend = "auto"
pcap_dump = false
fail_on_abort = false

[mempool]
capacity = 65535
cache_size = 256

[metrics]
interval = 0.5

[workers]
mode = "auto"
busy_poll = false
idle_sleep = 0.0005
idle_polls = 16
restart = "never"
max_restarts = 3
stop_timeout = 5.0
start_timeout = 60.0

[[ports]]
name = "eth1"
device = "net_pcap0"
args = "rx_pcap=echo.pcap,tx_iface=lo"
cores = [0]
rxd = 128
txd = 128
promiscuous = false
multicast = true
kni = false
"""


def test_dump_exclude_defaults() -> None:
    assert load(SIGNALS).dump(exclude_defaults=True) == (
        'app_name = "signals"\nmaster_core = 0\nports = []\n')
    assert load(SYN_FLOOD).dump(exclude_defaults=True) == """\
app_name = "syn-flood"
master_core = 0

[[ports]]
name = "eth1"
device = "0000:00:08.0"
cores = [1]
rxd = 512
txd = 512
"""


def test_dump_escapes_strings() -> None:
    cfg = RuntimeConfig.from_mapping({
        "app_name": 'odd "name" \\ with\ttab\nnewline\x01 é',
        "master_core": 2, "cores": [4, 3], "app_group": "g", "secondary": True,
        "dpdk_args": "--log-level 'eal:8'", "ports": [], "log_level": "debug",
        "stop_when_drained": True, "batch_size": 64,
    })
    text = cfg.dump()
    assert 'app_name = "odd \\"name\\" \\\\ with\\ttab\\nnewline\\u0001 é"' in text
    assert load(text) == cfg
    assert load(cfg.dump(exclude_defaults=True)) == cfg


def test_str() -> None:
    assert str(load(PKTDUMP)) == (
        "pktdump: master core 0, ports eth1: net_pcap0,rx_pcap=tcp4.pcap,tx_iface=lo on cores "
        "[0]; eth2: net_pcap1,rx_pcap=tcp6.pcap,tx_iface=lo on cores [0], mempool capacity "
        "65535, cache size 0, duration 5 s")
    assert str(load(SIGNALS)) == ("signals: master core 0, no ports, mempool capacity 65535, "
                                  "cache size 0")
    assert str(load(KNI).ports[0]) == "kni0: 0000:00:08.0 on cores [1] (kni)"


def test_errors_pickle() -> None:
    error = errors_of(MINIMAL + "ports = []\nduration = -1\n")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.path, copy.errors, str(copy)) == (ConfigError, error.path,
                                                               error.errors, str(error))
    missing = PortNotFound("eth9", ["eth1"])
    copy = pickle.loads(pickle.dumps(missing))
    assert (copy.name, copy.known, str(copy)) == ("eth9", ["eth1"], str(missing))


# --------------------------------------------------------------------------------------------
# nfkit's multi-core keys: [metrics], [workers], pcap_dump
# --------------------------------------------------------------------------------------------

def test_metrics_and_workers_tables_load_and_round_trip() -> None:
    cfg = load(MINIMAL + 'ports = []\npcap_dump = true\npcap_dump_dir = "caps"\n'
               '[metrics]\nlisten = "127.0.0.1:9100"\ninterval = 1\n'
               '[workers]\nmode = "processes"\nbusy_poll = true\nidle_sleep = 0\n'
               'restart = "on-failure"\nmax_restarts = 2\nstop_timeout = 2.5\n')
    assert cfg.pcap_dump and cfg.pcap_dump_dir == "caps"
    assert cfg.metrics.address() == ("127.0.0.1", 9100) and cfg.metrics.interval == 1.0
    w = cfg.workers
    assert (w.mode, w.busy_poll, w.idle_sleep, w.restart, w.max_restarts, w.stop_timeout) == (
        "processes", True, 0.0, "on-failure", 2, 2.5)
    assert load(cfg.dump()) == cfg
    assert load(cfg.dump(exclude_defaults=True)) == cfg
    assert load(MINIMAL + 'ports = []\n[metrics]\nlisten = "[::1]:9100"\n').metrics.address() == (
        "::1", 9100)


def test_metrics_and_workers_errors_name_file_field_and_expected() -> None:
    error = errors_of(MINIMAL + 'ports = []\npcap_dump = "yes"\n'
                      '[metrics]\nlisten = "localhost"\ninterval = 0\n'
                      '[workers]\nmode = "threads"\nidle_sleep = -1\nrestart = "always"\n'
                      'colour = 1\n')
    assert str(error).splitlines() == [
        'app.toml: pcap_dump: expected a boolean, got "yes"',
        'app.toml: metrics.listen: expected host:port (e.g. "127.0.0.1:9100"), got "localhost"',
        "app.toml: metrics.interval: expected a number of seconds (> 0, at most 60), got 0",
        'app.toml: workers.mode: expected one of "auto", "processes", "single", got "threads"',
        "app.toml: workers.idle_sleep: expected a number of seconds from 0 to 1, got -1",
        'app.toml: workers.restart: expected one of "never", "on-failure", got "always"',
        "app.toml: unknown field 'colour' in workers (known fields: mode, busy_poll, idle_sleep, "
        "idle_polls, restart, max_restarts, stop_timeout, start_timeout)",
    ]
    assert errors_of(MINIMAL + 'ports = []\n[metrics]\nlisten = "h:70000"\n').errors == [
        ("metrics.listen", 'expected host:port (e.g. "127.0.0.1:9100"), got "h:70000"')]


# --------------------------------------------------------------------------------------------
# Error texts derived from the field declarations (#12): a limit is written once, in the model
# --------------------------------------------------------------------------------------------

def _toy_models() -> type:
    """A model using every kind of declaration the config's models use, with limits that
    appear nowhere else, so each message can only come from the declaration."""
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field

    from nfkit.config.messages import Noun

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class Sub(Strict):
        size: Annotated[int, Field(ge=3)] = 3

    class Toy(Strict):
        count: Annotated[int, Field(ge=7)] = 7
        depth: Annotated[int, Field(ge=2, le=9)] = 2
        cap: Annotated[int, Field(le=11)] = 0
        below: Annotated[int, Field(lt=13)] = 0
        ratio: Annotated[float, Field(gt=0.25, lt=0.75)] = 0.5
        wait: Annotated[float, Field(ge=1, le=5), Noun("a number of seconds")] = 1.0
        limit: Annotated[float, Field(gt=0, le=17), Noun("a number of seconds")] = 1.0
        slot: Annotated[int, Field(ge=5), Noun("a slot")] = 5
        label: Annotated[str, Field(min_length=1)] = "x"
        short: Annotated[str, Field(max_length=3)] = ""
        place: Annotated[str, Field(min_length=1), Noun("a directory")] | None = None
        slots: Annotated[list[Annotated[int, Field(ge=5), Noun("a slot")]],
                         Field(min_length=1)] = [5]
        names: list[str] = []
        mode: Literal["fast", "slow"] = "fast"
        on: bool = False
        sub: Sub = Sub()
        subs: list[Sub] = []

    return Toy


@pytest.mark.parametrize("key, value, path, expected", [
    ("count", 6, "count", "an integer >= 7"),
    ("depth", 10, "depth", "an integer from 2 to 9"),
    ("cap", 12, "cap", "an integer at most 11"),
    ("below", 13, "below", "an integer < 13"),
    ("ratio", 0.8, "ratio", "a number (> 0.25, < 0.75)"),
    ("wait", 6.0, "wait", "a number of seconds from 1 to 5"),
    ("limit", 0.0, "limit", "a number of seconds (> 0, at most 17)"),
    ("slot", 4, "slot", "a slot (an integer >= 5)"),
    ("slot", "5", "slot", "a slot (an integer >= 5)"),
    ("label", "", "label", "a non-empty string"),
    ("short", "abcd", "short", "a string of at most 3 characters"),
    ("place", "", "place", "a directory (a non-empty string)"),
    ("slots", [], "slots", "a non-empty list of slots"),
    ("slots", [5, 1], "slots[1]", "a slot (an integer >= 5)"),
    ("names", [1], "names[0]", "a string"),
    ("mode", "medium", "mode", 'one of "fast", "slow"'),
    ("on", 1, "on", "a boolean"),
    ("sub", 1, "sub", "a table"),
    ("sub", {"size": 2}, "sub.size", "an integer >= 3"),
    ("subs", {"size": 3}, "subs", "an array of tables ([[subs]])"),
    ("subs", [1], "subs[0]", "a table"),
])
def test_error_text_derives_from_the_declaration(key: str, value: object, path: str,
                                                 expected: str) -> None:
    """Each kind of constraint gives a message naming the file, the field and what the field
    declaration expects, with no table of texts to keep in step."""
    from pydantic import ValidationError

    from nfkit.config.messages import problems
    from nfkit.config.toml import render

    toy = _toy_models()
    with pytest.raises(ValidationError) as info:
        toy.model_validate({key: value})
    error = ConfigError("toy.toml", problems(info.value, toy))
    got = render(info.value.errors()[0]["input"])
    assert error.errors == [(path, f"expected {expected}, got {got}")]
    assert str(error) == f"toy.toml: {path}: expected {expected}, got {got}"


def _constrained_fields() -> list[tuple[dict[str, object], str, str]]:
    """``(raw config, field path, limit)`` for every numeric limit of the real models: a value
    just past the limit, where the field lives."""
    from annotated_types import Ge, Gt, Le, Lt
    from pydantic import BaseModel

    from nfkit.config import MetricsConfig, WorkersConfig
    base: dict[str, object] = {"app_name": "a", "master_core": 0, "ports": []}
    port = {"name": "p", "device": "net_null0", "cores": [0]}
    cases = []
    tables: list[tuple[type[BaseModel], str]] = [
        (RuntimeConfig, ""), (MempoolConfig, "mempool"), (MetricsConfig, "metrics"),
        (WorkersConfig, "workers"), (PortConfig, "ports[0]")]
    for model, where in tables:
        for name, info in model.model_fields.items():
            for limit in info.metadata:
                past = {Ge: lambda n: n - 1, Gt: lambda n: n, Le: lambda n: n + 1,
                        Lt: lambda n: n}.get(type(limit))
                if past is None:
                    continue
                number = getattr(limit, type(limit).__name__.lower())  # Ge(ge=0).ge
                bad = past(number)
                if info.annotation is float:
                    bad = float(bad)
                raw = {**base}
                if where == "ports[0]":
                    raw["ports"] = [{**port, name: bad}]
                elif where:
                    raw[where] = {name: bad}
                else:
                    raw[name] = bad
                cases.append((raw, f"{where}.{name}" if where else name, str(number)))
    return cases


def test_every_numeric_limit_of_the_config_is_in_its_message() -> None:
    cases = _constrained_fields()
    assert len(cases) >= 12  # batch_size (2), rxd, txd, capacity, cache_size, the workers' ...
    for raw, path, limit in cases:
        with pytest.raises(ConfigError) as info:
            RuntimeConfig.from_mapping(raw, "app.toml")
        [(field, message)] = info.value.errors
        assert field == path
        assert re.search(rf"(?<![\d.]){re.escape(limit)}(?![\d.])", message), (path, message)
        assert str(info.value).startswith(f"app.toml: {path}: expected ")


def test_no_hand_kept_table_of_expected_texts() -> None:
    """The "expected" texts come from the declarations: the old per-path table is gone."""
    import nfkit.config.messages as messages
    assert not any(isinstance(v, dict) and ("batch_size",) in v for v in vars(messages).values())


def test_eal_argv_lives_with_the_dpdk_driver() -> None:
    """config keeps the schema; the EAL argv is built next to the DPDK driver (#12)."""
    from nfkit.ports._eal import capsule_eal_args
    assert not hasattr(RuntimeConfig, "to_eal_args")
    assert capsule_eal_args(load(SIGNALS))[:5] == ["signals", "--proc-type", "primary",
                                                   "--file-prefix", "signals"]


def test_log_levels_declared_once() -> None:
    """The config's log_level, `nfkit run --log-level` and the Literal are one declaration."""
    from typing import get_args

    import nfkit.cli
    from nfkit.config import LOG_LEVELS, LogLevel
    from nfkit.log_levels import LOG_LEVELS as declared
    assert LOG_LEVELS is declared and get_args(LogLevel) == declared
    assert nfkit.cli.LOG_LEVELS is declared
    assert RuntimeConfig.model_fields["log_level"].annotation is LogLevel
