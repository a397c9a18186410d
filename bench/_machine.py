"""The machine line every benchmark section carries (CPU, cores, kernel, Python)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(load: bool = False) -> str:
    """``CPU, N cores, Linux X, Python Y`` (and the load average, where it matters)."""
    text = (f"{cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}")
    if load:
        text += f"; load average {os.getloadavg()[0]:.2f} when the run started"
    return text
