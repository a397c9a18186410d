"""JIT kernels: a per-packet loop over the raw mempool arrays, compiled once with numba.

Some logic is per packet by nature (stateful NAT, parsers with branches) and numpy columns
express it poorly.  A kernel is a plain Python function over the pool's arrays::

    @nfkit.vector.kernel
    def l2fwd(data, slots, data_off, data_len, keep):
        for i in range(slots.shape[0]):
            s = slots[i]
            o = data_off[s]
            for k in range(6):
                t = data[s, o + k]
                data[s, o + k] = data[s, o + 6 + k]
                data[s, o + 6 + k] = t

    pipeline = Poll(q).map(l2fwd).send(q)

``data`` is ``pool.data`` (one row per buffer), ``slots`` the burst, ``data_off`` /
``data_len`` the pool's metadata arrays, ``keep`` a boolean array (all True) the kernel
clears for packets to drop.  Extra arrays (tables, counters) are bound with
``kernel.bind(*arrays)`` and passed after ``keep``.

With numba installed (``pip install nfkit[jit]``) the function is compiled on first use;
without it the very same function runs as Python, with the same results, only slower.
The helpers below (``be16``, ``put_be16``, ``csum_adjust``...) are kernels' building blocks
and are compiled the same way.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

__all__ = ["kernel", "Kernel", "HAVE_NUMBA", "be16", "put_be16", "csum_adjust"]

log = logging.getLogger("nfkit.vector.jit")

try:  # numba is optional
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    numba = None
    HAVE_NUMBA = False


def _jit(f: Callable[..., Any]) -> Callable[..., Any]:
    return numba.njit(cache=False, nogil=True)(f) if HAVE_NUMBA else f


@_jit
def be16(data: np.ndarray, s: int, pos: int) -> int:
    """The big-endian 16-bit value at ``pos`` of row ``s``."""
    return (np.int64(data[s, pos]) << 8) | np.int64(data[s, pos + 1])


@_jit
def put_be16(data: np.ndarray, s: int, pos: int, v: int) -> None:
    data[s, pos] = (v >> 8) & 0xFF
    data[s, pos + 1] = v & 0xFF


@_jit
def csum_adjust(data: np.ndarray, s: int, pos: int, delta: int) -> None:
    """The words a checksum at ``pos`` covers grew by ``delta``: adjust it (RFC 1624,
    modular form, as the per-packet setters do)."""
    hc = be16(data, s, pos)
    put_be16(data, s, pos, (hc - delta) % 0xFFFF)


class Kernel:
    """A compiled (or, without numba, plain) per-packet function over a burst."""

    __nfkit_kernel__ = True

    def __init__(self, fn: Callable[..., Any], extra: tuple[Any, ...] = (), compiled: Any = None) -> None:
        self.py_func = fn
        self.extra = extra
        self._compiled = compiled
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)

    @property
    def compiled(self) -> Callable[..., Any]:
        """The numba-compiled function (compiled on first use), or the Python one."""
        if self._compiled is None:
            self._compiled = _jit(self.py_func)
        return self._compiled

    def bind(self, *arrays: Any) -> "Kernel":
        """The same kernel with extra arguments (tables, state) passed after ``keep``."""
        return Kernel(self.py_func, self.extra + arrays, self._compiled)

    def run(self, pool: Any, slots: np.ndarray, python: bool = False) -> np.ndarray:
        """Run over ``slots`` of ``pool``; returns the keep mask."""
        keep = np.ones(len(slots), dtype=np.bool_)
        fn = self.py_func if python else self.compiled
        fn(pool.data, slots, pool.data_off, pool.data_len, keep, *self.extra)
        return keep

    def __call__(self, *args: Any) -> Any:
        return self.compiled(*args)

    def __repr__(self) -> str:
        return f"<nfkit kernel {self.__qualname__}{' (numba)' if HAVE_NUMBA else ' (python)'}>"


def kernel(fn: Callable[..., Any]) -> Kernel:
    """Make ``fn(data, slots, data_off, data_len, keep, *extra)`` a pipeline kernel."""
    return Kernel(fn)
