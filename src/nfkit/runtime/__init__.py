"""The runtime: :class:`Runtime` (the public API, :mod:`nfkit.runtime.api`), core control
(:mod:`nfkit.runtime.core`: executors, the one run loop) and the process supervisor
(:mod:`nfkit.runtime.processes`).  docs/runtime.md tells the story; docs/architecture.md
how the parts fit.
"""

from .api import Runtime
from .core import (CoreError, CoreExecutor, HookError, RunError, RunResult, UnixSignal,
                   WorkerError, run_core, with_result)

__all__ = ["Runtime", "RunError", "CoreError", "HookError", "WorkerError", "UnixSignal",
           "CoreExecutor", "RunResult", "run_core", "with_result"]
