"""signals: reacting to Unix signals (capsule's signals example).

SIGHUP reloads (here: logs and keeps running, counting reloads); SIGINT and SIGTERM stop
the runtime cleanly.  ``kill -HUP <pid>`` / ``kill -TERM <pid>`` or Ctrl-C to try it.
"""

from __future__ import annotations

import logging

import nfkit
from nfkit import UnixSignal

log = logging.getLogger("signals")
reloads = 0


def on_signal(sig: UnixSignal) -> bool:
    global reloads
    if sig == UnixSignal.SIGHUP:
        reloads += 1
        log.warning("SIGHUP: reloading (reload #%d); still running", reloads)
        print(f"reloaded {reloads}", flush=True)
        return False
    log.warning("%s: stopping", sig.name)
    print(f"stopping on {sig.name}", flush=True)
    return True


def main(runtime: nfkit.Runtime) -> None:
    runtime.set_on_signal(on_signal)
    print("Ctrl-C to stop...", flush=True)
