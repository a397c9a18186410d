"""Compile nfkit's AF_XDP shim (``_xdp_shim.c``, over libxdp/libbpf) with cffi on first use.

The same scheme as the DPDK shim (:mod:`nfkit.ports._dpdk_build`, whose cache checks this
reuses): built into the same cache directory, under a module name hashed from the shim
source, the libxdp/libbpf versions and flags and the Python ABI, serialised on the cache's
lock file, loaded only if nobody else can change it.  ``python -m nfkit.ports._xdp_build``
builds ahead of time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from . import _dpdk_build as _cache
from ..errors import NfkitError

__all__ = ["XdpBuildError", "INSTALL_HINT", "build", "load", "versions"]

HERE = Path(__file__).resolve().parent
SHIM_C = HERE / "_xdp_shim.c"
SHIM_H = HERE / "_xdp_shim.h"
_PKGS = ("libxdp", "libbpf")

INSTALL_HINT = ("install libxdp and libbpf with their headers, a C compiler and cffi: "
                "`apt-get install libxdp-dev libbpf-dev pkg-config gcc` and "
                "`pip install 'nfkit[dpdk]'` (for cffi)")


class XdpBuildError(NfkitError):
    """libxdp, libbpf, pkg-config, cffi or a C compiler is missing, the shim did not compile,
    or its cache is unsafe."""


def _pkg_config(*args: str) -> str:
    exe = shutil.which("pkg-config")
    if exe is None:
        raise XdpBuildError(f"AF_XDP support needs pkg-config, which is not installed; {INSTALL_HINT}")
    res = subprocess.run([exe, *args, *_PKGS], capture_output=True, text=True)
    if res.returncode != 0:
        raise XdpBuildError("libxdp/libbpf were not found (`pkg-config libxdp libbpf` failed: "
                            f"{res.stderr.strip() or 'no output'}); {INSTALL_HINT}")
    return res.stdout.strip()


def versions() -> str:
    """``libxdp X libbpf Y`` as pkg-config reports them."""
    v = _pkg_config("--modversion").split()
    return " ".join(f"{p} {x}" for p, x in zip(_PKGS, v))


def _cdef() -> str:
    return "\n".join(line for line in SHIM_H.read_text().splitlines()
                     if not line.lstrip().startswith("#"))


def _module_name(version: str, flags: list[str]) -> str:
    h = hashlib.sha256()
    for part in (SHIM_C.read_bytes(), SHIM_H.read_bytes(), version.encode(), " ".join(flags).encode(),
                 sys.implementation.cache_tag.encode(),
                 (sysconfig.get_config_var("EXT_SUFFIX") or "").encode()):
        h.update(part)
        h.update(b"\0")
    return f"_nfkit_xdp_{h.hexdigest()[:16]}"


def build(force: bool = False) -> Path:
    """Compile the shim into the cache unless an up-to-date build is there; its path."""
    try:
        import cffi
    except ImportError:
        raise XdpBuildError(f"AF_XDP support needs cffi, which is not installed; {INSTALL_HINT}") \
            from None
    version = versions()
    cflags = _pkg_config("--cflags").split()
    libs = _pkg_config("--libs").split()
    name = _module_name(version, cflags + libs)
    try:
        out = _cache._secure_dir(_cache.cache_dir())
        with _cache._locked(out):
            found = _cache._find_built(out, name)
            if found is not None and not force:
                _cache._check_file(found)
                return found
            return _compile(cffi, out, name, version, cflags, libs)
    except _cache.DpdkBuildError as exc:     # the shared cache's checks (UnsafeCacheError...)
        raise XdpBuildError(str(exc).replace("DPDK shim", "shim")) from None


def _compile(cffi: Any, out: Path, name: str, version: str, cflags: list[str],
             libs: list[str]) -> Path:
    ffi = cffi.FFI()
    ffi.cdef(_cdef())
    ffi.set_source(name, '#include "_xdp_shim.h"', sources=[str(SHIM_C)],
                   include_dirs=[str(HERE)], extra_compile_args=cflags + ["-O2", "-Wall"],
                   extra_link_args=libs)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=out))
    try:
        with _cache._captured_output() as log_path:
            try:
                built = Path(ffi.compile(tmpdir=str(tmp), verbose=True))
                failure: Exception | None = None
            except Exception as exc:  # CompileError, LinkError...
                failure = exc
        output = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
        if failure is not None:
            raise XdpBuildError(f"compiling nfkit's AF_XDP shim ({version}) failed: {failure}\n"
                                f"--- compiler output ---\n{output[-6000:]}")
        target = out / built.name
        os.replace(built, target)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        for old in out.glob(f"_nfkit_xdp_*{suffix}"):
            if old != target:
                old.unlink(missing_ok=True)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_loaded: ModuleType | None = None


def load() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the compiled shim, building it first when needed."""
    global _loaded
    if _loaded is None:
        path = build()
        try:
            _cache._check_file(path)
        except _cache.DpdkBuildError as exc:
            raise XdpBuildError(str(exc)) from None
        spec = importlib.util.spec_from_file_location(path.name.split(".")[0], path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except ImportError as exc:
            raise XdpBuildError(f"cannot load the compiled AF_XDP shim {path}: {exc}; "
                                f"{INSTALL_HINT}") from None
        _loaded = mod
    return _loaded.ffi, _loaded.lib


def main() -> int:
    """``python -m nfkit.ports._xdp_build [--force]``: build ahead of time."""
    try:
        path = build(force="--force" in sys.argv[1:])
    except XdpBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"AF_XDP shim ({versions()}): {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
