"""Compile nfkit's DPDK shim (``_dpdk_shim.c``) with cffi in API mode, on first use.

Why on first use rather than at ``pip install`` (``cffi_modules``): an editable install
never runs the build step again when the shim changes, and a machine without DPDK must
still install nfkit.  So the extension is compiled the first time a DPDK port is opened
(or ahead of time with ``python -m nfkit.ports._dpdk_build``) into a cache directory:

    $NFKIT_CACHE_DIR, else $XDG_CACHE_HOME/nfkit, else ~/.cache/nfkit

The module name carries a hash of the shim source, the cdef, the DPDK version and flags
(``pkg-config libdpdk``) and the Python ABI, so a changed shim, a DPDK upgrade or another
Python get their own build and a stale one is never loaded (a new build deletes the older
ones of the same Python).  Concurrent first uses (tests in parallel processes) serialise on
a lock file.  A failed build raises
:class:`DpdkBuildError` with the compiler's output.

The cache holds code that is loaded into the process (as root, usually), so it is used only
when nobody else can change it, as ssh does with its files: the directory, every directory
above it (a world-writable one only with the sticky bit, like /tmp) and the extension must
be owned by this user or root and not writable by group or others; the lock file is opened
without following symbolic links.  Otherwise :class:`UnsafeCacheError` names the path and
what is wrong.  Missing directories are created 0700.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from ..errors import NfkitError

__all__ = ["DpdkBuildError", "UnsafeCacheError", "INSTALL_HINT", "cache_dir", "dpdk_version",
           "build", "load"]

HERE = Path(__file__).resolve().parent
SHIM_C = HERE / "_dpdk_shim.c"
SHIM_H = HERE / "_dpdk_shim.h"

INSTALL_HINT = ("install DPDK 22.11 with its headers and the cffi extra: "
                "`apt-get install dpdk libdpdk-dev pkg-config gcc` and "
                "`pip install 'nfkit[dpdk]'`")


class DpdkBuildError(NfkitError):
    """DPDK, pkg-config, cffi or a C compiler is missing, or the shim did not compile."""


class UnsafeCacheError(DpdkBuildError):
    """The shim cache could be changed by another user (owner, permissions, a symbolic link
    where a file should be): nothing from it is loaded."""


def cache_dir() -> Path:
    """Where compiled shims live (created on demand, checked by :func:`_secure_dir`)."""
    env = os.environ.get("NFKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nfkit"


def _pkg_config(*args: str) -> str:
    exe = shutil.which("pkg-config")
    if exe is None:
        raise DpdkBuildError(f"DPDK support needs pkg-config, which is not installed; {INSTALL_HINT}")
    res = subprocess.run([exe, *args, "libdpdk"], capture_output=True, text=True)
    if res.returncode != 0:
        raise DpdkBuildError("DPDK was not found (`pkg-config libdpdk` failed: "
                             f"{res.stderr.strip() or 'no output'}); {INSTALL_HINT}")
    return res.stdout.strip()


def dpdk_version() -> str:
    """The installed DPDK's version (``pkg-config --modversion libdpdk``)."""
    return _pkg_config("--modversion")


def _cdef() -> str:
    """The header as cffi's cdef: without preprocessor lines (cffi parses plain C)."""
    return "\n".join(line for line in SHIM_H.read_text().splitlines()
                     if not line.lstrip().startswith("#"))


def _flags() -> tuple[str, list[str], list[str]]:
    version = dpdk_version()
    cflags = _pkg_config("--cflags").split()
    libs = _pkg_config("--libs").split()
    return version, cflags, libs


def _module_name(version: str, cflags: list[str], libs: list[str]) -> str:
    h = hashlib.sha256()
    for part in (SHIM_C.read_bytes(), SHIM_H.read_bytes(), version.encode(),
                 " ".join(cflags + libs).encode(), sys.implementation.cache_tag.encode(),
                 (sysconfig.get_config_var("EXT_SUFFIX") or "").encode()):
        h.update(part)
        h.update(b"\0")
    return f"_nfkit_dpdk_{h.hexdigest()[:16]}"


def _find_built(directory: Path, name: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = directory / (name + suffix)
        if os.path.lexists(p):               # a link too: _check_file refuses it
            return p
    return None


_FIX = ("; a library planted there would run as this user.  Use a directory only you can "
        "write (NFKIT_CACHE_DIR, XDG_CACHE_HOME)")


def _refuse(what: str, path: Path, problem: str) -> UnsafeCacheError:
    return UnsafeCacheError(f"refusing the DPDK shim cache: {what} {path} {problem}{_FIX}")


def _check_owner_mode(what: str, path: Path, st: os.stat_result, sticky_ok: bool = False) -> None:
    """Owned by this user or root, and not writable by group or others (``sticky_ok``: a
    world-writable directory with the sticky bit, where nobody can replace others' entries)."""
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise _refuse(what, path, f"is owned by uid {st.st_uid}, not by this user (uid {me}) "
                                  "or root")
    writable = st.st_mode & 0o022
    if writable and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        who = {0o022: "its group and others", 0o020: "its group", 0o002: "others"}[writable]
        raise _refuse(what, path, f"is writable by {who} (mode "
                                  f"{stat.S_IMODE(st.st_mode):04o}; chmod go-w {path})")


def _secure_dir(directory: Path) -> Path:
    """``directory`` resolved (symbolic links followed once, here, so nothing can swap them
    later), missing parts created 0700, and checked with every directory above it."""
    real = Path(os.path.realpath(directory))
    missing = []
    p = real
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass                             # made meanwhile: checked below like the rest
        except OSError as exc:
            raise DpdkBuildError(f"cannot create the DPDK shim cache {d}: "
                                 f"{exc.strerror or exc}") from None
    for d in (*reversed(real.parents), real):
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode):
            raise _refuse("directory", d, "is not a directory (a symbolic link made after "
                                          "it was resolved?)")
        _check_owner_mode("directory", d, st, sticky_ok=d != real)
    return real


def _check_file(path: Path) -> None:
    """A built shim may be loaded: a regular file (not a link) nobody else can change."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse("file", path, "is not a regular file")
    _check_owner_mode("file", path, st)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the cache's lock file: created 0600, never through a symbolic link (a link
    planted as ``.lock`` would make ``open("w")`` truncate whatever it points to)."""
    path = directory / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse("lock file", path, "is a symbolic link") from None
        raise DpdkBuildError(f"cannot open the DPDK shim cache's lock file {path}: "
                             f"{exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refuse("lock file", path, "is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _captured_output() -> Iterator[Path]:
    """Redirect fds 1 and 2 (the compiler's output) into a file, whose path is yielded."""
    fd, name = tempfile.mkstemp(prefix="nfkit-dpdk-build-", suffix=".log")
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield Path(name)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)


def build(force: bool = False) -> Path:
    """Compile the shim into :func:`cache_dir` unless an up-to-date build is there; returns
    the extension's path.  Raises :class:`DpdkBuildError` saying what is missing, or with
    the compiler's output."""
    try:
        import cffi
    except ImportError:
        raise DpdkBuildError(f"DPDK support needs cffi, which is not installed; {INSTALL_HINT}") \
            from None
    version, cflags, libs = _flags()
    name = _module_name(version, cflags, libs)
    out = _secure_dir(cache_dir())
    with _locked(out):
        found = _find_built(out, name)
        if found is not None and not force:
            _check_file(found)
            return found
        ffi = cffi.FFI()
        ffi.cdef(_cdef())
        # DPDK's pkg-config flags carry -include rte_config.h and -march; keep them as given.
        ffi.set_source(name, '#include "_dpdk_shim.h"', sources=[str(SHIM_C)],
                       include_dirs=[str(HERE)], extra_compile_args=cflags + ["-O3", "-Wall"],
                       extra_link_args=libs)
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=out))
        log_path: Path | None = None
        try:
            with _captured_output() as log_path:
                try:
                    built = Path(ffi.compile(tmpdir=str(tmp), verbose=True))
                except Exception as exc:  # distutils/setuptools CompileError, LinkError...
                    failure: Exception | None = exc
                else:
                    failure = None
            output = log_path.read_text(errors="replace")
            if failure is not None:
                raise DpdkBuildError(
                    f"compiling nfkit's DPDK shim (DPDK {version}) failed: {failure}\n"
                    f"--- compiler output ---\n{output[-6000:]}")
            target = out / built.name
            os.replace(built, target)
            _prune(out, target)
            return target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if log_path is not None:
                log_path.unlink(missing_ok=True)


def _prune(directory: Path, keep: Path) -> None:
    """Delete older builds for this Python (a process that loaded one keeps its mapping)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    for old in directory.glob(f"_nfkit_dpdk_*{suffix}"):
        if old != keep:
            old.unlink(missing_ok=True)


_loaded: ModuleType | None = None


def load() -> tuple[Any, Any]:
    """``(ffi, lib)`` of the compiled shim, building it first when needed."""
    global _loaded
    if _loaded is None:
        path = build()
        _check_file(path)                    # what is loaded is what was checked
        name = path.name.split(".")[0]
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except ImportError as exc:
            raise DpdkBuildError(f"cannot load the compiled DPDK shim {path}: {exc}; "
                                 f"{INSTALL_HINT}") from None
        _loaded = mod
    return _loaded.ffi, _loaded.lib


def main() -> int:
    """``python -m nfkit.ports._dpdk_build [--force]``: build ahead of time."""
    force = "--force" in sys.argv[1:]
    try:
        path = build(force=force)
    except DpdkBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"DPDK {dpdk_version()} shim: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
