"""The ``nfkit`` command: run an NF app on a config, dump pcap files.

``nfkit run APP.py -c CONFIG.toml`` imports ``APP.py`` and calls the function it must
define::

    def main(runtime: nfkit.Runtime) -> None:
        runtime.add_pipeline_to_port("eth1", install)

then runs the runtime until a signal, ``duration``, or (``stop_when_drained``) the end of
its pcap inputs.  ``nfkit dump FILE.pcap`` prints one line per packet, like tcpdump.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__

__all__ = ["main", "load_app", "run_app"]

log = logging.getLogger("nfkit.cli")
LOG_LEVELS = ["trace", "debug", "info", "warning", "error"]


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


def _status_line(runtime: Any, stop: threading.Event, console: Any) -> None:
    """Packets in/out/dropped per second, redrawn in place (only on a terminal)."""
    last = None
    last_t = time.monotonic()
    while not stop.wait(1.0):
        snap = runtime.metrics.snapshot()      # every core's counters, workers' included
        rx, tx = snap.total("rx_packets"), snap.total("tx_packets")
        dropped = snap.total("rx_dropped") + snap.total("tx_dropped")
        for st in snap.pipelines.values():
            dropped += st["drop"] + st["abort"]
        now = time.monotonic()
        if last is not None:
            dt = now - last_t
            console.print(f"\r[bold]{runtime.config.app_name}[/]  in {(rx - last[0]) / dt:,.0f} pps  "
                          f"out {(tx - last[1]) / dt:,.0f} pps  dropped {(dropped - last[2]) / dt:,.0f}/s  "
                          f"(total in {rx:,} out {tx:,} dropped {dropped:,})", end="")
        last, last_t = (rx, tx, dropped), now


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
    show = sys.stdout.isatty() if status is None else status
    stop = threading.Event()
    if show:
        from rich.console import Console
        threading.Thread(target=_status_line, args=(runtime, stop, Console()), daemon=True).start()
    try:
        return runtime.execute()
    finally:
        stop.set()
        if show:
            print()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nfkit")
def main() -> None:
    """nfkit: network functions in Python."""


@main.command()
@click.argument("app", type=click.Path(dir_okay=False))
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False),
              help="runtime config (TOML, capsule's fields)")
@click.option("-d", "--duration", type=int, help="stop after this many seconds (overrides the config)")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="overrides the config's log_level")
@click.option("--status/--no-status", default=None, help="live packet rates (default: on a terminal)")
@click.option("--pcap-dump", "pcap_dump", is_flag=True, default=None,
              help="capture every port queue's rx and tx to port-<port>-core<core>-{rx,tx}.pcap")
def run(app: str, config: str, duration: int | None, log_level: str | None, status: bool | None,
        pcap_dump: bool | None) -> None:
    """Run the NF defined in APP (a Python file with main(runtime)) on CONFIG."""
    from .errors import NfkitError
    try:
        result = run_app(app, config, duration=duration, log_level=log_level, status=status,
                         pcap_dump=pcap_dump)
    except NfkitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"stopped: {result.reason} after {result.seconds:.2f}s")
    for name, c in result.ports.items():
        click.echo(f"  port {name}: rx {c['rx_packets']} tx {c['tx_packets']} "
                   f"dropped rx {c['rx_dropped']} tx {c['tx_dropped']} errors rx {c['rx_errors']}")
    for name, s in result.pipelines.items():
        click.echo(f"  pipeline {name}: received {s['received']} sent {s['act']} emitted {s['emit']} "
                   f"dropped {s['drop']} aborted {s['abort']} replaced {s['replaced']}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-f", "--filter", "expr", help="only packets matching a tcpdump-like expression, "
                                             "e.g. 'tcp and dst port 80'")
@click.option("-c", "--count", type=click.IntRange(min=1), help="stop after this many matching packets")
@click.option("-v", "--verbose", is_flag=True, help="every field of every header")
def dump(file: str, expr: str | None, count: int | None, verbose: bool) -> None:
    """Print FILE (pcap or pcapng) one decoded packet per line, like tcpdump."""
    from .buffers import Mbuf, Mempool
    from .errors import NfkitError
    from .packets.dissect import dissect, summarize
    from .pcap import PcapReader

    try:
        match = None
        if expr:
            from .filter import compile_filter
            match = compile_filter(expr)
        pool = Mempool(capacity=1024, buf_size=65535, headroom=0, name="dump")
        shown = n = 0
        with PcapReader(file) as reader:
            while not reader.at_end and (count is None or shown < count):
                slots = reader.read_into(pool, 256)
                for s in slots.tolist():
                    m = Mbuf(pool, s)
                    try:
                        if count is not None and shown >= count:
                            continue   # read but not examined: free it and stop after the batch
                        n += 1
                        layers, err = dissect(m)
                        if match is not None and not match.match_layers(layers, len(m)):
                            continue
                        shown += 1
                        ts = int(pool.timestamp[s])
                        stamp = f"{ts // 1_000_000_000}.{ts % 1_000_000_000:09d}"
                        click.echo(f"{stamp} {summarize(m, (layers, err))}")
                        if verbose:
                            for layer in layers:
                                click.echo(f"    {layer!r}")
                    finally:
                        m.free()
            if reader.error is not None:
                click.echo(f"warning: {reader.error} (after {reader.packets_read} packets)", err=True)
        click.echo(f"{shown} of {n} packets shown", err=True)
    except NfkitError as exc:
        raise click.ClickException(str(exc)) from exc
    except BrokenPipeError:  # `nfkit dump x.pcap | head`
        os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="nfkit")
