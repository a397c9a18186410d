"""The ``nfkit`` command: run an NF app on a config, dump pcap files.

``nfkit run APP.py -c CONFIG.toml`` imports ``APP.py`` and calls the function it must
define::

    def main(runtime: nfkit.Runtime) -> None:
        runtime.add_pipeline_to_port("eth1", install)

then runs the runtime until a signal, ``duration``, or (``stop_when_drained``) the end of
its pcap inputs (a pcap port that could not read all its input makes the exit status 1).
``nfkit dump FILE.pcap`` prints one line per packet, like tcpdump: any link type nfkit
decodes, records of any size, ``-`` for stdin and FIFOs as the packets arrive.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .log_levels import LOG_LEVELS

__all__ = ["main", "load_app", "run_app"]

log = logging.getLogger("nfkit.cli")


class AppError(click.ClickException):
    """An app file that cannot be loaded or lacks its entry point."""


def load_module(path: str | Path) -> Any:
    """Import the Python file at ``path`` (an app, an example) as a module and return it."""
    p = Path(path)
    if not p.is_file():
        raise AppError(f"{p}: no such app file")
    name = f"nfkit_app_{p.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise AppError(f"{p}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module            # so pickling installers by reference works later
    sys.path.insert(0, str(p.parent.resolve()))  # the app may import helpers beside it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise AppError(f"{p}: importing the app failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_app(path: str | Path) -> Callable[[Any], Any]:
    """Import the app module at ``path`` and return its ``main(runtime)`` function."""
    p = Path(path)
    entry = getattr(load_module(p), "main", None)
    if not callable(entry):
        raise AppError(f"{p}: the app must define main(runtime) -> None, which adds its pipelines "
                       "(see docs/writing-an-nf.md)")
    return entry


def run_app(app: str | Path | Callable[[Any], Any], config: str | Path, *,
            duration: int | None = None, log_level: str | None = None,
            status: bool | None = None, pcap_dump: bool | None = None) -> Any:
    """Build the runtime from ``config``, let the app add its pipelines, execute.

    Returns the :class:`~nfkit.runtime.RunResult`.
    """
    from .config import load_config
    from .runtime import Runtime

    cfg = load_config(config)
    if duration is not None:
        cfg.duration = duration or None
    if log_level is not None:
        cfg.log_level = log_level
    if pcap_dump is not None:
        cfg.pcap_dump = pcap_dump
    entry = load_app(app) if not callable(app) else app
    runtime = Runtime.build(cfg)
    try:
        entry(runtime)
    except Exception as exc:
        runtime.close()
        from .runtime import RunError
        raise RunError(f"{getattr(entry, '__module__', 'app')}: main(runtime) failed: "
                       f"{type(exc).__name__}: {exc}\n"
                       + "".join(traceback.format_exception(exc)[1:])) from exc
    if not (sys.stdout.isatty() if status is None else status):
        return runtime.execute()
    from .status import StatusLine
    with StatusLine(runtime):
        return runtime.execute()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nfkit")
def main() -> None:
    """nfkit: network functions in Python."""


# Explicit one-line summaries for `nfkit --help`: click cuts a docstring's first sentence to
# fit 80 columns ("Print FILE (pcap or pcapng; - for stdin, FIFOs as packets arrive)...").
@main.command(short_help="Run an NF app (a Python file with main(runtime)) on a config.")
@click.argument("app", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False),
              help="runtime config (TOML, capsule's fields)")
@click.option("-d", "--duration", type=int, help="stop after this many seconds (overrides the config)")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="overrides the config's log_level")
@click.option("--status/--no-status", default=None, help="live packet rates (default: on a terminal)")
@click.option("--pcap-dump", "pcap_dump", is_flag=True, default=None,
              help="capture every port queue's rx and tx to port-<port>-core<core>-{rx,tx}.pcap")
@click.option("--fail-on-abort/--no-fail-on-abort", default=None,
              help="exit 1 when any packet was aborted (for tests and CI; overrides the config's "
                   "fail_on_abort)")
def run(app: str, config: str, duration: int | None, log_level: str | None, status: bool | None,
        pcap_dump: bool | None, fail_on_abort: bool | None) -> None:
    """Run the NF defined in APP (a Python file with main(runtime)) on CONFIG."""
    from .config import load_config
    from .errors import NfkitError
    try:
        result = run_app(app, config, duration=duration, log_level=log_level, status=status,
                         pcap_dump=pcap_dump)
    except NfkitError as exc:
        if getattr(exc, "result", None) is not None:    # it ran: say what it did first
            _summary(exc.result)  # type: ignore[attr-defined]
        raise click.ClickException(str(exc)) from exc
    _summary(result)
    failed = _input_errors(result, config)
    aborted = _abort_warnings(result)
    if fail_on_abort is None:
        fail_on_abort, why = load_config(config).fail_on_abort, "fail_on_abort"
    else:
        why = "--fail-on-abort"
    if fail_on_abort and aborted:
        failed.append(f"{aborted} packet(s) aborted ({why}); the log above says where")
    if failed:
        raise click.ClickException("; ".join(failed))


def _summary(result: Any) -> None:
    click.echo(f"stopped: {result.reason} after {result.seconds:.2f}s")
    for name, c in result.ports.items():
        click.echo(f"  port {name}: rx {c['rx_packets']} tx {c['tx_packets']} "
                   f"dropped rx {c['rx_dropped']} tx {c['tx_dropped']} errors rx {c['rx_errors']}")
    for name, s in result.pipelines.items():
        click.echo(f"  pipeline {name}: received {s['received']} sent {s['act']} emitted {s['emit']} "
                   f"dropped {s['drop']} aborted {s['abort']} replaced {s['replaced']}")


def _abort_warnings(result: Any) -> int:
    """Warn about each pipeline that aborted most of its packets (a stage that raises on
    every packet looks like a quiet run otherwise); returns how many packets aborted."""
    total = 0
    for name, s in result.pipelines.items():
        total += s["abort"]
        if s["abort"] * 2 > s["received"]:
            click.echo(f"warning: pipeline {name} aborted {s['abort']} of {s['received']} "
                       "packets: the log above names the stage and the file:line that raised "
                       "(--log-level debug: the tracebacks)", err=True)
    return total


def _input_errors(result: Any, config: str) -> list[str]:
    """The pcap ports that could not read all their input (a damaged capture, packets of a
    link type they cannot carry, a receive error): a run that lost input is not a success,
    even when it drained.  What was wrong is in the log above, file by file."""
    from .config import load_config
    from .ports.base import driver_of
    cfg = load_config(config)
    return [f"port {pc.name}: {n} input error(s): its input could not be read whole "
            "(the log above says what and where)"
            for pc in cfg.ports
            if driver_of(pc.device, cfg.backend) == "pcap"
            and (n := result.ports.get(pc.name, {}).get("rx_errors", 0))]


#: dump's buffers hold the largest record the reader takes (a pcapng block, 16 MiB): every
#: record is decoded whole, GRO / BIG TCP super-packets too.  Two buffers of an anonymous
#: mapping whose pages are touched only as far as the packets reach.
_DUMP_BUF = 16 << 20


def _describe_record(pool: Any, data: bytes, linktype: int) -> tuple[list[Any], str]:
    """Decode one record: its headers (those of an Ethernet header standing in for
    another link layer left out) and its one-line summary."""
    from .buffers import Mbuf
    from .linktype import ETHERNET, LinkTypeError, to_ethernet
    from .packets.dissect import dissect
    m = Mbuf.from_bytes(data[:_DUMP_BUF], pool)
    try:
        parts = []
        try:
            link = to_ethernet(m, linktype)
        except LinkTypeError as exc:
            layers, err = [], None
            parts.append(f"[{exc}]")
        else:
            layers, err = dissect(m)
            if linktype != ETHERNET:
                layers = layers[1:]
            if link:
                parts.append(link)
        parts += [p.summary() for p in layers]
        if err is not None:
            parts.append(f"[{err}]")
        if not layers and err is None:
            parts.append(f"{len(data)} bytes")
        if len(data) > _DUMP_BUF:
            parts.append(f"[a {len(data)}-byte record: the first {_DUMP_BUF} decoded]")
        return layers, " / ".join(parts)
    finally:
        m.free()


def _hms(seconds: int) -> str:
    """``seconds`` as HH:MM:SS (hours beyond 23 kept: tcpdump's -ttt wraps them at a day)."""
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Timestamps:
    """tcpdump's timestamp column: ``tflag`` counts ``-t`` as tcpdump does (0: local
    HH:MM:SS.ffffff, 1: none, 2: seconds since the epoch, 3: delta from the previous packet,
    4: local date and time, 5: delta from the first packet); ``nano``: nine digits of
    fraction instead of six (tcpdump's --time-stamp-precision=nano).  Fractions are cut,
    not rounded, as tcpdump does; deltas beyond a day keep their hours (tcpdump wraps them)."""

    def __init__(self, tflag: int = 0, nano: bool = False) -> None:
        self.tflag, self.nano = tflag, nano
        self.first: int | None = None
        self.prev: int | None = None

    def _frac(self, ns: int) -> str:
        return f"{ns:09d}" if self.nano else f"{ns // 1000:06d}"

    def __call__(self, ts: int) -> str:
        """The column for a packet at ``ts`` (ns since the epoch), with its trailing space;
        each call is the next packet (deltas refer to the ones before)."""
        ts -= ts % (1 if self.nano else 1000)     # deltas of cut times, as libpcap's
        first = self.first = ts if self.first is None else self.first
        prev, self.prev = (ts if self.prev is None else self.prev), ts
        sec, ns = divmod(ts, 1_000_000_000)
        if self.tflag == 1:
            return ""
        if self.tflag == 2:
            return f"{sec}.{self._frac(ns)} "
        if self.tflag in (3, 5):
            delta = ts - (prev if self.tflag == 3 else first)
            sign = "-" if delta < 0 else " "
            dsec, dns = divmod(abs(delta), 1_000_000_000)
            return f"{sign}{_hms(dsec)}.{self._frac(dns)} "
        try:
            local = time.localtime(sec)
        except (OverflowError, OSError, ValueError):   # beyond the platform's time_t
            return f"{sec}.{self._frac(ns)} "
        day = time.strftime("%Y-%m-%d ", local) if self.tflag >= 4 else ""
        return f"{day}{time.strftime('%H:%M:%S', local)}.{self._frac(ns)} "


@main.command(short_help="Print a pcap or pcapng file, one decoded packet per line.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-f", "--filter", "expr", help="only packets matching a tcpdump-like expression, "
                                             "e.g. 'tcp and dst port 80'")
@click.option("-c", "--count", type=click.IntRange(min=1), help="stop after this many matching packets")
@click.option("-v", "--verbose", is_flag=True, help="every field of every header")
@click.option("-t", "tflag", count=True,
              help="timestamps as tcpdump's -t flags: local HH:MM:SS.ffffff by default; -t none, "
                   "-tt seconds since the epoch, -ttt delta from the previous packet, -tttt date "
                   "and time, -ttttt delta from the first packet")
@click.option("--time-stamp-precision", "precision", type=click.Choice(["micro", "nano"]),
              default="micro", show_default=True, help="digits of the timestamps' fraction")
def dump(file: str, expr: str | None, count: int | None, verbose: bool, tflag: int,
         precision: str) -> None:
    """Print FILE (pcap or pcapng; - for stdin, FIFOs as packets arrive) one decoded packet
    per line, like tcpdump."""
    from .buffers import Mempool
    from .errors import NfkitError
    from .pcap import PcapReader

    try:
        match = None
        if expr:
            from .filter import compile_filter
            match = compile_filter(expr)
        if tflag > 5:
            raise click.UsageError("-t can be given at most 5 times (-ttttt)")
        stamp = Timestamps(tflag, precision == "nano")
        pool = Mempool(capacity=2, buf_size=_DUMP_BUF, headroom=64, name="dump")
        shown = n = noted = 0
        counted = True      # n is the file's whole count (not when -c stopped a stream)
        with PcapReader("/dev/stdin" if file == "-" else file) as reader:
            records = reader.records()
            for ts, data, linktype in records:
                n += 1
                layers, text = _describe_record(pool, data, linktype)
                if match is None or match.match_layers(layers, len(data)):
                    shown += 1
                    click.echo(f"{stamp(ts)}{text}")
                    if verbose:
                        for layer in layers:
                            click.echo(f"    {layer!r}")
                for err in reader.damage[noted:]:
                    if err is not reader.fatal:       # skipped, reading goes on
                        click.echo(f"warning: {err}; skipped", err=True)
                noted = len(reader.damage)
                if count is not None and shown >= count:
                    # a file: count the rest, undecoded ("2 of 9"); a stream may not end
                    if reader.is_stream:
                        counted = False
                    else:
                        n += sum(1 for _ in records)
                    break
                if reader.is_stream:
                    sys.stdout.flush()                # a stream: each packet as it comes
            for err in reader.damage[noted:]:
                if err is not reader.fatal:
                    click.echo(f"warning: {err}; skipped", err=True)
            if reader.fatal is not None:
                click.echo(f"warning: {reader.fatal} (after {reader.packets_read} packets)",
                           err=True)
        click.echo(f"{shown} of {n} packets shown" if counted
                   else f"the first {shown} packets shown (-c {count})", err=True)
    except NfkitError as exc:
        raise click.ClickException(str(exc)) from exc
    except BrokenPipeError:  # `nfkit dump x.pcap | head`
        os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="nfkit")
