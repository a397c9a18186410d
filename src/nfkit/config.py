"""nfkit's runtime configuration: a TOML file validated into pydantic models.

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
* :meth:`RuntimeConfig.to_eal_args` spells the options the DPDK 22.11 way (see there).
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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, PrivateAttr, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator)
from pydantic_core import PydanticCustomError

from .devargs import DevargsError, is_pci_address, split_device_args
from .errors import NfkitError

__all__ = [
    "ConfigError",
    "PortNotFound",
    "MempoolConfig",
    "MetricsConfig",
    "WorkersConfig",
    "PortConfig",
    "RuntimeConfig",
    "LogLevel",
    "load_config",
    "parse_device_args",
    "is_pci_address",
]

#: The log levels nfkit understands, from the most to the least verbose.
LogLevel = Literal["trace", "debug", "info", "warning", "error"]
_LOG_LEVELS: tuple[str, ...] = ("trace", "debug", "info", "warning", "error")

#: Which ports go through DPDK: PCI ones only (auto), all of them, or none.
Backend = Literal["auto", "dpdk", "native"]

#: A CPU core id as EAL and the OS number it (DPDK's lcore id == the CPU id here).
CoreId = Annotated[int, Field(ge=0)]

# The whitespace Rust's split_ascii_whitespace splits dpdk_args on (no vertical tab).
_ASCII_WHITESPACE = re.compile(r"[ \t\n\x0c\r]+")
# tomllib appends the position of a syntax error to its message in one of these two forms.
_TOML_POSITION = re.compile(r"^(?P<reason>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$",
                            re.DOTALL)
_TOML_AT_END = re.compile(r"^(?P<reason>.*) \(at end of document\)$", re.DOTALL)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

class ConfigError(NfkitError, ValueError):
    """A configuration could not be read, parsed or validated.

    ``path`` is the file (or the ``source`` label given for text) and ``errors`` every problem
    found, as ``(field_path, message)`` pairs such as ``("ports[0].cores", "expected a non-empty
    list of core ids, got []")``.  ``field_path`` is ``""`` for problems with the file as a
    whole (unreadable, not TOML).  The exception's text has one line per problem, each
    starting with the file, so it can be printed as is (an unknown-field message already says
    where the field is, so its line omits the field path).  It is also a :class:`ValueError`,
    and it pickles, so it can cross process boundaries.
    """

    def __init__(self, path: str, errors: Sequence[tuple[str, str]]) -> None:
        self.path = path
        self.errors: list[tuple[str, str]] = list(errors)
        super().__init__("\n".join(_format_problem(path, field, message)
                                   for field, message in self.errors))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[tuple[str, str]]]]:
        """Rebuild from ``path`` and ``errors`` (the default would pass the message only)."""
        return type(self), (self.path, self.errors)


def _format_problem(path: str, field: str, message: str) -> str:
    """One line of a :class:`ConfigError`: ``file: field: message``.

    An unknown-field message already says where the field is ("... in ports[1]"), so it is
    printed without the field path rather than repeating it.
    """
    if not field or message.startswith("unknown field "):
        return f"{path}: {message}"
    return f"{path}: {field}: {message}"


class PortNotFound(NfkitError, KeyError):
    """:meth:`RuntimeConfig.port` was asked for a name no port has (capsule's
    ``PortError::NotFound``).  It is also a :class:`KeyError`."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = list(known)

    def __reduce__(self) -> tuple[type[PortNotFound], tuple[str, list[str]]]:
        """Rebuild from ``name`` and ``known`` (the default would pass the name only)."""
        return type(self), (self.name, self.known)

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "none"
        return f"port {self.name!r} is not found (known ports: {known})"


# --------------------------------------------------------------------------------------------
# Device arguments and PCI addresses
# --------------------------------------------------------------------------------------------

def parse_device_args(args: str | None, *, source: str = "<string>",
                      field: str = "args") -> list[tuple[str, str]]:
    """Split DPDK devargs such as ``"rx_pcap=a.pcap,tx_pcap=b.pcap"`` into ordered pairs.

    Returns ``[("rx_pcap", "a.pcap"), ("tx_pcap", "b.pcap")]``; ``None`` or ``""`` gives
    ``[]``.  Keys may repeat (``rx_pcap=a.pcap,rx_pcap=b.pcap`` opens two rx queues in DPDK's
    pcap driver), so the result is a list rather than a dict.  Commas inside ``[...]`` do not
    split, and empty items are skipped, both as DPDK does.

    Raises :class:`ConfigError` naming the malformed item (no ``=``, an empty or odd key, an
    empty value, unbalanced brackets); ``source`` and ``field`` label the error.
    """
    if not args:
        return []
    try:
        return split_device_args(args)
    except DevargsError as problem:
        raise ConfigError(source, [(field, str(problem))]) from None


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

    listen: str | None = None
    interval: Annotated[float, Field(gt=0, le=60)] = 0.5

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, listen: str | None) -> str | None:
        """``host:port`` with a port from 0 to 65535 (an IPv6 host in brackets)."""
        if listen is None:
            return None
        m = _LISTEN.fullmatch(listen)
        if m is None or int(m["port"]) > 65535:
            raise PydanticCustomError("listen", "expected host:port (e.g. \"127.0.0.1:9100\"), "
                                      "got {value}", {"value": _render(listen)})
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
    idle_sleep: Annotated[float, Field(ge=0, le=1)] = 0.0005
    idle_polls: Annotated[int, Field(ge=0)] = 16
    restart: Literal["never", "on-failure"] = "never"
    max_restarts: Annotated[int, Field(ge=0)] = 3
    stop_timeout: Annotated[float, Field(gt=0, le=600)] = 5.0
    start_timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0


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
                split_device_args(args)
            except DevargsError as problem:
                raise PydanticCustomError("devargs", "{detail}",
                                          {"detail": str(problem)}) from None
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
        """The directory of the config file (relative paths in it are taken from there); None for a config made from text."""
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
    duration: Annotated[int, Field(ge=0)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    log_level: LogLevel = "info"
    stop_when_drained: bool = False
    backend: Backend = "auto"
    pcap_dump: bool = False
    pcap_dump_dir: Annotated[str, Field(min_length=1)] | None = None
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
            raise PydanticCustomError("duplicate_port_name", "{detail}", {
                "detail": "; ".join(f"{path}: {message}" for path, message in problems),
                "problems": problems,
            })
        return ports

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_toml_text(cls, text: str, source: str = "<string>") -> RuntimeConfig:
        """Parse and validate TOML text; ``source`` names it in error messages."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, [("", _describe_toml_error(exc, text))]) from None
        return cls.from_mapping(data, source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<mapping>") -> RuntimeConfig:
        """Validate already-parsed data (a dict shaped like the TOML file).

        Raises :class:`ConfigError` with every problem, each as ``(field_path, message)``.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = _translate(exc)
        # Pydantic skips the port-name check when any port is invalid; run it on the raw data
        # so one pass reports everything.
        raw_ports = data.get("ports") if isinstance(data, Mapping) else None
        if isinstance(raw_ports, list):
            raw_names = [p.get("name") if isinstance(p, Mapping) else None for p in raw_ports]
            for problem in _duplicate_port_names(raw_names):
                if problem not in problems:
                    problems.append(problem)
        raise ConfigError(source, problems)

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

    def to_eal_args(self) -> list[str]:
        """The EAL argv, in capsule's order, with DPDK 22.11 option names.

        1. ``app_name --proc-type primary|secondary --file-prefix <app_group or app_name>``
        2. per port, in order: ``-a <pci>`` for a PCI device (its ``args`` are not passed, as
           in capsule), else ``--vdev <device>[,<args>]``
        3. ``--main-lcore <master_core> -l <master_core>``: EAL only knows the main core; the
           runtime pins its other threads itself
        4. the ``dpdk_args`` tokens, split on ASCII whitespace (no shell quoting)

        capsule targeted DPDK 19.11; nfkit targets 22.11.  DPDK 20.11 renamed two of these
        options (the old names became deprecated; the PCI whitelist ones were removed in 21.11):

        ==============================  =========================
        capsule (DPDK 19.11)            nfkit (DPDK 22.11)
        ==============================  =========================
        ``--pci-whitelist <pci>``       ``-a <pci>`` (``--allow``)
        ``--master-lcore <n>``          ``--main-lcore <n>``
        ==============================  =========================

        Everything else is spelled as in capsule.  Option names inside ``dpdk_args`` are
        passed through untouched, so an old spelling there reaches DPDK as written.
        """
        argv = [self.app_name,
                "--proc-type", "secondary" if self.secondary else "primary",
                "--file-prefix", self.file_prefix]
        for port in self.ports:
            if port.is_pci:
                argv += ["-a", port.device]
            elif port.args:
                argv += ["--vdev", f"{port.device},{port.args}"]
            else:
                argv += ["--vdev", port.device]
        argv += ["--main-lcore", str(self.master_core), "-l", str(self.master_core)]
        if self.dpdk_args:
            argv += [token for token in _ASCII_WHITESPACE.split(self.dpdk_args) if token]
        return argv

    # -- output --------------------------------------------------------------------------------

    def dump(self, *, exclude_defaults: bool = False) -> str:
        """The configuration as TOML text that :meth:`from_toml_text` reads back equal.

        By default every field is written, defaults included, so the text shows the effective
        configuration; ``exclude_defaults=True`` writes only what differs (``app_name``,
        ``master_core`` and ``ports``, which have no default, are always written).  Absent
        optional values (``None``) are left out, as TOML has no null.
        """
        lines: list[str] = []
        for field, value in self._items(self, exclude_defaults, always={"app_name",
                                                                        "master_core"}):
            if field in ("mempool", "metrics", "workers"):
                continue
            if field == "ports":
                if not self.ports:
                    lines.append("ports = []")
                continue
            lines.append(f"{field} = {_render(value)}")

        mempool = [f"{field} = {_render(value)}"
                   for field, value in self._items(self.mempool, exclude_defaults)]
        if mempool:
            lines += ["", "[mempool]", *mempool]
        for table in ("metrics", "workers"):
            items = [f"{field} = {_render(value)}"
                     for field, value in self._items(getattr(self, table), exclude_defaults)]
            if items:
                lines += ["", f"[{table}]", *items]
        for port in self.ports:
            lines += ["", "[[ports]]"]
            lines += [f"{field} = {_render(value)}"
                      for field, value in self._items(port, exclude_defaults,
                                                      always={"name", "device", "cores"})]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _items(model: BaseModel, exclude_defaults: bool,
               always: frozenset[str] | set[str] = frozenset()) -> Iterable[tuple[str, Any]]:
        """``(field, value)`` of ``model`` in declaration order, for :meth:`dump`."""
        for field, info in type(model).model_fields.items():
            value = getattr(model, field)
            if value is None:
                continue
            if exclude_defaults and field not in always and field != "ports":
                if info.default_factory is not None:
                    default = info.default_factory()  # type: ignore[call-arg]
                else:
                    default = info.default
                if value == default:
                    continue
            yield field, value

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


# --------------------------------------------------------------------------------------------
# Error translation and TOML rendering
# --------------------------------------------------------------------------------------------

def _describe_toml_error(exc: tomllib.TOMLDecodeError, text: str) -> str:
    """``line L, column C: invalid TOML (reason)`` from tomllib's message.

    tomllib (Python 3.11) has no position attributes; it appends ``(at line L, column C)`` or
    ``(at end of document)`` to the message.  The latter is turned into the position just
    after the last character, so every syntax error reads the same way.
    """
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match:
        return (f"line {match['line']}, column {match['col']}: "
                f"invalid TOML ({match['reason']})")
    match = _TOML_AT_END.match(message)
    if match:
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        return f"line {line}, column {column}: invalid TOML ({match['reason']}, at end of file)"
    return f"invalid TOML ({message})"


def _field_path(loc: Sequence[int | str]) -> str:
    """``("ports", 0, "cores")`` -> ``"ports[0].cores"``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


# What each field expects, in words, for error messages; "[]" stands for a list index.
_EXPECTED: dict[tuple[str, ...], str] = {
    ("app_name",): "a string",
    ("secondary",): "a boolean",
    ("app_group",): "a string",
    ("master_core",): "a core id (an integer >= 0)",
    ("cores",): "a list of core ids",
    ("cores", "[]"): "a core id (an integer >= 0)",
    ("mempool",): "a table",
    ("mempool", "capacity"): "an integer >= 1",
    ("mempool", "cache_size"): "an integer >= 0",
    ("ports",): "an array of tables ([[ports]])",
    ("ports", "[]"): "a table",
    ("ports", "[]", "name"): "a non-empty string",
    ("ports", "[]", "device"): "a string",
    ("ports", "[]", "args"): "a string",
    ("ports", "[]", "cores"): "a non-empty list of core ids",
    ("ports", "[]", "cores", "[]"): "a core id (an integer >= 0)",
    ("ports", "[]", "rxd"): "an integer >= 1",
    ("ports", "[]", "txd"): "an integer >= 1",
    ("ports", "[]", "promiscuous"): "a boolean",
    ("ports", "[]", "multicast"): "a boolean",
    ("ports", "[]", "kni"): "a boolean",
    ("dpdk_args",): "a string",
    ("duration",): "a number of seconds (an integer >= 0)",
    ("batch_size",): "an integer from 1 to 4096",
    ("log_level",): "one of " + ", ".join(_LOG_LEVELS),
    ("stop_when_drained",): "a boolean",
    ("backend",): 'one of "auto", "dpdk", "native"',
    ("pcap_dump",): "a boolean",
    ("pcap_dump_dir",): "a non-empty string (a directory)",
    ("fail_on_abort",): "a boolean",
    ("metrics",): "a table",
    ("metrics", "interval"): "a number of seconds (> 0, at most 60)",
    ("metrics", "listen"): 'a string "host:port"',
    ("workers",): "a table",
    ("workers", "mode"): 'one of "auto", "processes", "single"',
    ("workers", "busy_poll"): "a boolean",
    ("workers", "idle_sleep"): "a number of seconds from 0 to 1",
    ("workers", "idle_polls"): "an integer >= 0",
    ("workers", "restart"): 'one of "never", "on-failure"',
    ("workers", "max_restarts"): "an integer >= 0",
    ("workers", "stop_timeout"): "a number of seconds (> 0, at most 600)",
    ("workers", "start_timeout"): "a number of seconds (> 0, at most 3600)",
}

# The model each table path validates into, to list its fields in unknown-field messages.
_TABLES: dict[tuple[str, ...], type[BaseModel]] = {
    (): RuntimeConfig,
    ("mempool",): MempoolConfig,
    ("metrics",): MetricsConfig,
    ("workers",): WorkersConfig,
    ("ports", "[]"): PortConfig,
}


def _translate(exc: ValidationError) -> list[tuple[str, str]]:
    """pydantic's errors as nfkit's ``(field_path, message)`` pairs, in pydantic's order."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        shape = tuple("[]" if isinstance(part, int) else part for part in loc)
        kind = error["type"]
        path = _field_path(loc)
        if kind == "missing":
            message = "field required"
        elif kind == "extra_forbidden":
            parent = shape[:-1]
            model = _TABLES.get(parent)
            known = ", ".join(model.model_fields) if model else "?"
            where = f"in {_field_path(loc[:-1])}" if parent else "at the top level"
            message = f"unknown field {str(loc[-1])!r} {where} (known fields: {known})"
        elif kind == "duplicate_port_name":
            problems += [p for p in error["ctx"]["problems"] if p not in problems]
            continue
        elif kind == "devargs":
            message = error["ctx"]["detail"]
        elif kind == "listen":
            message = error["msg"]
        elif shape in _EXPECTED:
            message = f"expected {_EXPECTED[shape]}, got {_render(error['input'])}"
        else:  # a shape this table does not know: fall back to pydantic's own words
            message = f"{error['msg']}, got {_render(error['input'])}"
        problems.append((path, message))
    return problems


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
                 "\f": "\\f", "\r": "\\r"}


def _render(value: Any) -> str:
    """``value`` written as TOML, for :meth:`RuntimeConfig.dump` and for "got ..." in error
    messages (so the user sees their value as they would type it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value != value:
            return "nan"
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            _TOML_ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7f
                                      else ch)
            for ch in value)
        return f'"{escaped}"'
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_render_key(k)} = {_render(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if hasattr(value, "isoformat"):  # TOML dates and times
        return value.isoformat()
    return repr(value)


def _render_key(key: object) -> str:
    """A TOML key: bare when it can be, else quoted."""
    text = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]+", text):
        return text
    return _render(text)
