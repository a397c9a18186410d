"""The live status line of ``nfkit run`` on a terminal: packet rates in, out and dropped,
redrawn once a second, never wider than the terminal, with the app's own output (``print``,
logging to stderr) routed above it.

Before (#15) it was a ``\\r``-redrawn line of ~110 columns: on an 80-column terminal it
wrapped, left fragments of itself behind, and a line the app printed was glued to it.  Now
rich's live display draws it: it erases the line before anything else is written and draws
it again below, and :func:`fit` drops the least useful parts first (the totals, then the
drop rate, ...) so it always fits in one line, the terminal's width read at every redraw.

Output written straight to the file descriptors by worker processes (multi-core runs with
processes) does not go through Python's ``sys.stdout`` and is not routed; the master's is.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

__all__ = ["StatusLine", "fit", "status_parts"]


def status_parts(name: str, rates: tuple[float, float, float],
                 totals: tuple[int, int, int]) -> list[str]:
    """The status line's parts, most useful first: the app's name, the in, out and drop
    rates, the totals."""
    rx, tx, dropped = rates
    return [name, f"in {rx:,.0f} pps", f"out {tx:,.0f} pps", f"dropped {dropped:,.0f}/s",
            f"(total in {totals[0]:,} out {totals[1]:,} dropped {totals[2]:,})"]


def fit(parts: list[str], width: int, sep: str = "  ") -> str:
    """As many leading ``parts`` as fit in ``width`` columns (the last column left free, so a
    terminal never wraps); a first part alone too long is cut and ends with ``…``."""
    width = max(width - 1, 1)
    out = ""
    for part in parts:
        line = f"{out}{sep}{part}" if out else part
        if len(line) > width:
            break
        out = line
    if not out and parts:
        out = parts[0][:width - 1] + "…" if width > 1 else parts[0][:1]
    return out


def _counts(runtime: Any) -> tuple[int, int, int]:
    """Packets received, sent and dropped so far (every core's, through the runtime's
    public metrics snapshot; a pipeline's drops and aborts count as dropped)."""
    snap = runtime.metrics.snapshot()
    rx, tx = snap.total("rx_packets"), snap.total("tx_packets")
    dropped = snap.total("rx_dropped") + snap.total("tx_dropped")
    for st in snap.pipelines.values():
        dropped += st["drop"] + st["abort"]
    return rx, tx, dropped


class StatusLine:
    """``with StatusLine(runtime): runtime.execute()`` shows the line while the runtime
    runs (``console``: a rich console, by default one on stdout; ``interval``: seconds
    between samples).  The line is transient: it is gone when the block ends, before the
    run's summary is printed."""

    def __init__(self, runtime: Any, console: Any = None, interval: float = 1.0) -> None:
        from rich.console import Console
        self.runtime = runtime
        self.console = console if console is not None else Console()
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._rebound: list[tuple[logging.StreamHandler[Any], Any]] = []
        self.text = ""

    def render(self, rates: tuple[float, float, float], totals: tuple[int, int, int]) -> Any:
        """The line for these numbers at the console's current width, as rich text that
        never wraps."""
        from rich.text import Text
        self.text = fit(status_parts(self.runtime.config.app_name, rates, totals),
                        self.console.width)
        return Text(self.text, no_wrap=True, overflow="ellipsis")

    def _sample(self) -> None:
        last, last_t = _counts(self.runtime), time.monotonic()
        while not self._stop.wait(self.interval):
            now_counts, now = _counts(self.runtime), time.monotonic()
            dt = max(now - last_t, 1e-9)
            rates = tuple((a - b) / dt for a, b in zip(now_counts, last))
            self._live.update(self.render(rates, now_counts), refresh=True)  # type: ignore[arg-type]
            last, last_t = now_counts, now

    def _route_logging(self) -> None:
        """Handlers writing to the real stdout/stderr (logging.basicConfig's, made before
        the display started) write through the display's proxies while it runs."""
        real = {id(sys.__stdout__): sys.stdout, id(sys.__stderr__): sys.stderr}
        for logger in (logging.getLogger(), logging.getLogger("nfkit")):
            for h in logger.handlers:
                if type(h) is logging.StreamHandler and id(h.stream) in real:
                    self._rebound.append((h, h.setStream(real[id(h.stream)])))

    def __enter__(self) -> "StatusLine":
        from rich.live import Live
        self._live = Live(self.render((0.0, 0.0, 0.0), (0, 0, 0)), console=self.console,
                          auto_refresh=False, transient=True, redirect_stdout=True,
                          redirect_stderr=True)
        self._live.start()
        self._route_logging()
        self._thread = threading.Thread(target=self._sample, name="nfkit-status", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for h, stream in self._rebound:
            h.setStream(stream)
        self._rebound.clear()
        self._live.stop()
