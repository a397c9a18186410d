"""The config schema: the TOML file's tables and keys as pydantic models, and loading.

The file format is capsule's (``capsule::config``), so every capsule example config loads
unchanged, plus three nfkit keys.  A minimal file::

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

Where nfkit deliberately differs from capsule:

* Unknown keys are rejected everywhere.  capsule rejects them only at the top level and silently
  ignores them inside ``[mempool]`` and ``[[ports]]``, so a typo such as ``promiscous = true``
  went unnoticed; nfkit names the key and lists the known ones.
* Values are checked strictly as TOML gives them: ``master_core = "0"`` or ``rxd = 1.0`` is an
  error rather than being coerced, and ``true`` is not an integer.
* ``ports[*].args`` of a virtual device must be well-formed devargs (see
  :func:`parse_device_args`); capsule hands any string to DPDK.  Port names must be unique,
  which capsule does not check.
* PCI addresses may use hexadecimal digits and may omit the domain (``0000:0a:00.0``,
  ``0a:00.0``).  capsule's pattern accepts decimal digits only, so it passed such devices to
  ``--vdev`` as if they were virtual devices, which cannot work.
* The EAL argv (:func:`nfkit.ports._eal.capsule_eal_args`, next to the DPDK driver) spells
  the options the DPDK 22.11 way (see there).
* Every problem is reported at once, one line each, naming the file, the field and what was
  expected: a :class:`ConfigError`.

Kept as capsule does it: ``ports`` is a required key but may be empty (capsule's own
``signals.toml`` has ``ports = []``), ``duration = 0`` means "no duration", port cores are
sorted and de-duplicated, and ``args`` of a PCI device are not passed to EAL.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, PrivateAttr, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator)

from ..log_levels import LogLevel
from . import toml
from .devargs import DevargsProblem, is_pci_address, parse_device_args, split_devargs
from .messages import ConfigError, Noun, PortNotFound, describe_toml_error, invalid, \
    invalid_many
from .messages import problems as _problems

__all__ = ["MempoolConfig", "MetricsConfig", "WorkersConfig", "PortConfig", "RuntimeConfig",
           "Backend", "CoreId", "load_config"]

#: Which ports go through DPDK: PCI ones only (auto), all of them, or none.
Backend = Literal["auto", "dpdk", "native"]

#: A CPU core id as EAL and the OS number it (DPDK's lcore id == the CPU id here).
CoreId = Annotated[int, Field(ge=0), Noun("a core id")]

#: Seconds, in messages: "a number of seconds (> 0, at most 60)".
_SECONDS = Noun("a number of seconds")


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

class _Strict(BaseModel):
    """Base of the config models: unknown keys rejected, no type coercion.

    TOML values are already typed, so a string where a number belongs is a mistake worth
    reporting rather than something to guess about.
    """

    model_config = ConfigDict(extra="forbid", strict=True)


class MempoolConfig(_Strict):
    """``[mempool]``: the packet buffer pool (one per NUMA socket in capsule).

    Unlike capsule, unknown keys in this table are rejected.
    """

    #: Number of buffers; the optimum for DPDK's ring is 2**n - 1.
    capacity: Annotated[int, Field(ge=1)] = 65535
    #: Per-core cache of free buffers; 0 disables it.
    cache_size: Annotated[int, Field(ge=0)] = 0

    def __str__(self) -> str:
        return f"mempool capacity {self.capacity}, cache size {self.cache_size}"


_LISTEN = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(?P<port>\d{1,5})", re.ASCII)


class MetricsConfig(_Strict):
    """``[metrics]`` (nfkit): the Prometheus endpoint and how often cores publish counters.

    ``listen = "127.0.0.1:9100"`` serves ``/metrics`` over HTTP from the master process, summing
    every core's counters (see docs/runtime.md); absent: no endpoint (the counters can still be
    read from Python through ``runtime.metrics``).  ``interval`` is how often each core copies
    its counters to the shared snapshot the endpoint reads (seconds).
    """

    listen: Annotated[str, Noun("host:port")] | None = None
    interval: Annotated[float, Field(gt=0, le=60), _SECONDS] = 0.5

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, listen: str | None) -> str | None:
        """``host:port`` with a port from 0 to 65535 (an IPv6 host in brackets)."""
        if listen is None:
            return None
        m = _LISTEN.fullmatch(listen)
        if m is None or int(m["port"]) > 65535:
            raise invalid(f'expected host:port (e.g. "127.0.0.1:9100"), got {toml.render(listen)}')
        return listen

    def address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)`` (brackets of an IPv6 host removed)."""
        assert self.listen is not None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class WorkersConfig(_Strict):
    """``[workers]`` (nfkit): how cores other than the master run (docs/runtime.md).

    ``mode``
        ``"auto"`` (default): one pinned worker process per core other than ``master_core``
        when the config has more than one core and no port uses an in-process driver
        (``net_ring``/``net_memory`` rings live in one process); else everything runs in
        the master process, round robin.  ``"processes"`` forces workers (an in-process
        port is then an error), ``"single"`` forces one process.
    ``busy_poll``
        Never sleep: poll 100% of the time, as capsule does (lowest latency).
    ``idle_sleep``
        Seconds to sleep after ``idle_polls`` empty poll rounds in a row (default 0.0005).
    ``idle_polls``
        Empty rounds before sleeping (default 16).
    ``restart``
        ``"never"`` (default): a worker that dies stops the runtime with an error;
        ``"on-failure"``: it is started again (at most ``max_restarts`` times per core).
    ``stop_timeout``
        Seconds the master waits for the workers to flush and exit before killing them.
    ``start_timeout``
        Seconds the master waits for every worker to initialise and install its pipelines.
    """

    mode: Literal["auto", "processes", "single"] = "auto"
    busy_poll: bool = False
    idle_sleep: Annotated[float, Field(ge=0, le=1), _SECONDS] = 0.0005
    idle_polls: Annotated[int, Field(ge=0)] = 16
    restart: Literal["never", "on-failure"] = "never"
    max_restarts: Annotated[int, Field(ge=0)] = 3
    stop_timeout: Annotated[float, Field(gt=0, le=600), _SECONDS] = 5.0
    start_timeout: Annotated[float, Field(gt=0, le=3600), _SECONDS] = 60.0


class PortConfig(_Strict):
    """One ``[[ports]]`` entry: a DPDK device and the cores that run its pipelines.

    ``device`` is a PCI address (``0000:00:08.0``) or a virtual device name (``net_pcap0``,
    ``net_null0``, ``net_tap0``, ``net_ring0``...).  ``args`` are the virtual device's devargs;
    as in capsule they are ignored for PCI devices, and nfkit checks that a virtual device's
    args are well-formed ``key=value`` items.  ``cores`` are sorted and de-duplicated and may
    overlap the master core.  Unlike capsule, unknown keys in this table are rejected.
    """

    name: Annotated[str, Field(min_length=1)]
    device: str
    args: str | None = None
    cores: Annotated[list[CoreId], Field(min_length=1)]
    #: RX / TX descriptors per queue (the runtime may adjust them to the device limits).
    rxd: Annotated[int, Field(ge=1)] = 128
    txd: Annotated[int, Field(ge=1)] = 128
    promiscuous: bool = False
    multicast: bool = True
    #: Create a Kernel NIC Interface for the port.
    kni: bool = False

    @field_validator("cores")
    @classmethod
    def _sort_cores(cls, cores: list[int]) -> list[int]:
        """Sort and de-duplicate, as capsule does, so each core gets one queue."""
        return sorted(set(cores))

    @field_validator("args")
    @classmethod
    def _check_args(cls, args: str | None, info: ValidationInfo) -> str | None:
        """Reject malformed devargs of a virtual device at load time, where the error can
        still name the file and the port.  (A PCI device's args are not used.)"""
        device = info.data.get("device")
        if args is not None and isinstance(device, str) and not is_pci_address(device):
            try:
                split_devargs(args)
            except DevargsProblem as problem:
                raise invalid(str(problem)) from None
        return args

    @property
    def is_pci(self) -> bool:
        """Whether ``device`` is a PCI address (else a DPDK virtual device)."""
        return is_pci_address(self.device)

    def device_args(self) -> list[tuple[str, str]]:
        """``args`` split into ``(key, value)`` pairs (see :func:`parse_device_args`)."""
        return parse_device_args(self.args, field=f"port {self.name!r} args")

    def __str__(self) -> str:
        device = self.device if self.is_pci or not self.args else f"{self.device},{self.args}"
        flags = [flag for flag in ("promiscuous", "kni") if getattr(self, flag)]
        if not self.multicast:
            flags.append("no multicast")
        extra = f" ({', '.join(flags)})" if flags else ""
        cores = ", ".join(map(str, self.cores))
        return f"{self.name}: {device} on cores [{cores}]{extra}"


def _duplicate_port_names(names: Iterable[object]) -> list[tuple[str, str]]:
    """``(field_path, message)`` for every port whose name an earlier port already has.

    Works on validated names and on raw TOML values alike (non-strings are skipped: they get
    their own type error).
    """
    first_index: dict[str, int] = {}
    problems: list[tuple[str, str]] = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in first_index:
            problems.append((f"ports[{index}].name",
                             f"duplicate port name {name!r} "
                             f"(already used by ports[{first_index[name]}])"))
        else:
            first_index[name] = index
    return problems


class RuntimeConfig(_Strict):
    """The whole runtime configuration: capsule's ``RuntimeConfig`` plus nfkit's keys.

    Build it with :func:`load_config` or :meth:`from_toml_text`; both raise
    :class:`ConfigError` listing every problem.  The top-level keys:

    ``app_name``
        EAL program name and default shared-memory file prefix (required).
    ``secondary``
        Run as a DPDK secondary process (default ``false``).
    ``app_group``
        File prefix shared by cooperating processes (default: ``app_name``).
    ``master_core``
        The core running the main thread (required).  The key keeps capsule's name.
    ``cores``
        Extra general-purpose cores (default ``[]``).
    ``mempool``
        :class:`MempoolConfig`.
    ``ports``
        :class:`PortConfig` list; the key is required but the list may be empty.
    ``dpdk_args``
        More EAL arguments, split on whitespace (no shell quoting).
    ``duration``
        Stop after this many seconds; ``0`` or absent means run until stopped.
    ``batch_size``
        nfkit: packets per receive burst and per pipeline turn, 1..4096 (default 32, capsule's
        fixed burst size).
    ``log_level``
        nfkit: ``trace``, ``debug``, ``info`` (default), ``warning`` or ``error``.
    ``stop_when_drained``
        nfkit: for offline runs, stop once every rx pcap is exhausted and every pipeline is
        idle (default ``false``).
    ``backend``
        nfkit: which ports go through DPDK (docs/dpdk.md).  ``"auto"`` (default): PCI
        addresses through DPDK, virtual devices (``net_pcap0``...) through nfkit's own
        drivers; ``"dpdk"``: every port through DPDK's drivers; ``"native"``: never DPDK.
    ``pcap_dump``
        nfkit: write every port queue's received and transmitted packets to
        ``port-<port>-core<core>-rx.pcap`` / ``-tx.pcap`` (capsule's pcap-dump feature),
        in ``pcap_dump_dir`` (default: the working directory, as capsule).
    ``fail_on_abort``
        nfkit: ``nfkit run`` exits non-zero when any packet was aborted (for tests and CI;
        also ``nfkit run --fail-on-abort``).
    ``metrics``
        nfkit: :class:`MetricsConfig` (``[metrics] listen = "127.0.0.1:9100"``).
    ``workers``
        nfkit: :class:`WorkersConfig` (multi-core process options).
    """

    # The directory of the file the config came from: relative file names in port
    # arguments (rx_pcap=...) are taken from there.  None for configs built from text.
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path | None:
        """The directory of the config file (relative port arguments are taken from there); None for configs built from text."""
        return self._base_dir

    def __eq__(self, other: object) -> bool:
        """Configs with the same values are equal wherever they were read from."""
        if not isinstance(other, RuntimeConfig):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    app_name: str
    secondary: bool = False
    app_group: str | None = None
    master_core: CoreId
    cores: list[CoreId] = Field(default_factory=list)
    mempool: MempoolConfig = Field(default_factory=MempoolConfig)
    ports: list[PortConfig]
    dpdk_args: str | None = None
    duration: Annotated[int, Field(ge=0), _SECONDS] | None = None
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    log_level: LogLevel = "info"
    stop_when_drained: bool = False
    backend: Backend = "auto"
    pcap_dump: bool = False
    pcap_dump_dir: Annotated[str, Field(min_length=1), Noun("a directory")] | None = None
    fail_on_abort: bool = False
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)

    @field_validator("duration")
    @classmethod
    def _zero_is_no_duration(cls, duration: int | None) -> int | None:
        """capsule treats ``duration = 0`` as no duration; so does nfkit."""
        return duration or None

    @field_validator("ports")
    @classmethod
    def _unique_port_names(cls, ports: list[PortConfig]) -> list[PortConfig]:
        """Port names are the keys pipelines are attached by, so two ports cannot share one."""
        problems = _duplicate_port_names(port.name for port in ports)
        if problems:
            raise invalid_many(problems)
        return ports

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_toml_text(cls, text: str, source: str = "<string>") -> RuntimeConfig:
        """Parse and validate TOML text; ``source`` names it in error messages."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, [("", describe_toml_error(exc, text))]) from None
        return cls.from_mapping(data, source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<mapping>") -> RuntimeConfig:
        """Validate already-parsed data (a dict shaped like the TOML file).

        Raises :class:`ConfigError` with every problem, each as ``(field_path, message)``.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            found = _problems(exc, cls)
        # Pydantic skips the port-name check when any port is invalid; run it on the raw data
        # so one pass reports everything.
        raw_ports = data.get("ports") if isinstance(data, Mapping) else None
        if isinstance(raw_ports, list):
            raw_names = [p.get("name") if isinstance(p, Mapping) else None for p in raw_ports]
            for problem in _duplicate_port_names(raw_names):
                if problem not in found:
                    found.append(problem)
        raise ConfigError(source, found)

    # -- queries -------------------------------------------------------------------------------

    def all_cores(self) -> list[int]:
        """Every core the runtime uses: the sorted, de-duplicated union of ``master_core``,
        ``cores`` and each port's ``cores`` (capsule's ``all_cores``)."""
        used = {self.master_core, *self.cores}
        for port in self.ports:
            used.update(port.cores)
        return sorted(used)

    def port(self, name: str) -> PortConfig:
        """The port called ``name``; raises :class:`PortNotFound` (a ``KeyError``)."""
        for port in self.ports:
            if port.name == name:
                return port
        raise PortNotFound(name, [port.name for port in self.ports])

    @property
    def file_prefix(self) -> str:
        """The EAL shared-memory file prefix: ``app_group``, else ``app_name``."""
        return self.app_group if self.app_group is not None else self.app_name

    # -- output --------------------------------------------------------------------------------

    def dump(self, *, exclude_defaults: bool = False) -> str:
        """The configuration as TOML text that :meth:`from_toml_text` reads back equal.

        By default every field is written, defaults included, so the text shows the effective
        configuration; ``exclude_defaults=True`` writes only what differs (``app_name``,
        ``master_core`` and ``ports``, which have no default, are always written).  Absent
        optional values (``None``) are left out, as TOML has no null.  See
        :func:`nfkit.config.toml.dump`.
        """
        return toml.dump(self, exclude_defaults=exclude_defaults)

    def __str__(self) -> str:
        parts = [f"{self.app_name}: master core {self.master_core}"]
        if self.cores:
            parts.append(f"cores [{', '.join(map(str, self.cores))}]")
        if self.ports:
            parts.append("ports " + "; ".join(str(port) for port in self.ports))
        else:
            parts.append("no ports")
        parts.append(str(self.mempool))
        if self.duration is not None:
            parts.append(f"duration {self.duration} s")
        if self.secondary:
            parts.append("secondary process")
        return ", ".join(parts)


def load_config(path: str | os.PathLike[str]) -> RuntimeConfig:
    """Read, parse and validate the TOML file at ``path``.

    Raises :class:`ConfigError` whose ``path`` is ``path`` as given, for an unreadable file
    (``cannot read: [Errno 2] No such file or directory``), a syntax error (``line 3, column
    7: invalid TOML (...)``) or invalid values (every one listed).
    """
    source = os.fspath(path)
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc)
        raise ConfigError(source, [("", f"cannot read: {reason}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [("", f"invalid TOML (not UTF-8 text: byte {exc.start} is "
                                        f"0x{raw[exc.start]:02x})")]) from None
    cfg = RuntimeConfig.from_toml_text(text, source)
    cfg._base_dir = Path(path).resolve().parent
    return cfg
