"""The multi-core runtime's public names, kept where apps and tests import them from.

The supervisor itself is :mod:`nfkit.runtime.processes` (docs/runtime.md,
"Multi-core"); ``shared_array`` is the cross-core memory of the per-key-counts recipe.
"""

from .runtime.processes import (WorkerError, available_cpus, run_processes, set_process_name,
                                shared_array, use_processes)

__all__ = ["WorkerError", "use_processes", "available_cpus", "set_process_name", "shared_array",
           "run_processes"]
