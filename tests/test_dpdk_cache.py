"""The DPDK shim cache (nfkit.ports._dpdk_build) loads code into the process, so it is used
only when nobody else can change it (as ssh treats its files): the directory, the
directories above it and the built extension must be owned by this user or root and not
writable by group or others; the lock file is never opened through a symbolic link."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nfkit.ports import _dpdk_build
from nfkit.testing import skips
from test_dpdk import NFKIT, need_dpdk

OTHER_UID = 65534                      # nobody


def need_root() -> None:
    skips.need_root("these tests need root to make files owned by another user")


def build_in(cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m nfkit.ports._dpdk_build`` with ``cache`` as NFKIT_CACHE_DIR."""
    return subprocess.run([sys.executable, "-m", "nfkit.ports._dpdk_build", *extra],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, NFKIT_CACHE_DIR=str(cache)))


def load_in(cache: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``_dpdk_build.load()`` in a fresh process with ``cache`` as NFKIT_CACHE_DIR."""
    code = "from nfkit.ports._dpdk_build import load\nload()\nprint('loaded')\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=dict(os.environ, NFKIT_CACHE_DIR=str(cache)))


@pytest.mark.parametrize("mode,who", [(0o777, "its group and others"), (0o770, "its group"),
                                      (0o703, "others")], ids=["0777", "0770", "0703"])
def test_a_cache_dir_writable_by_others_is_refused(tmp_path: Path, mode: int, who: str) -> None:
    need_dpdk()
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(mode)
    proc = build_in(cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (f"error: refusing the DPDK shim cache: directory {cache} is writable by {who} "
            f"(mode {mode:04o}; chmod go-w {cache}); a library planted there would run as "
            "this user") in proc.stderr
    assert not list(cache.iterdir())                     # nothing built, nothing loaded


def test_a_cache_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    need_dpdk()
    need_root()
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    os.chown(cache, OTHER_UID, OTHER_UID)
    proc = build_in(cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (f"refusing the DPDK shim cache: directory {cache} is owned by uid {OTHER_UID}, not "
            f"by this user (uid {os.geteuid()}) or root") in proc.stderr


def test_a_directory_above_writable_by_others_is_refused_unless_sticky(tmp_path: Path) -> None:
    need_dpdk()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)                                  # anyone can rename cache/ away
    proc = build_in(shared / "cache")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"directory {shared} is writable by its group and others (mode 0777" in proc.stderr
    sticky = tmp_path / "sticky"                          # like /tmp: entries stay their owners'
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert _dpdk_build._secure_dir(sticky / "cache") == sticky / "cache"


PLANTED_C = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void)
{
    int fd = open("PLANTED_RAN", O_CREAT | O_WRONLY, 0600);
    if (fd >= 0)
        close(fd);
}
"""


def plant(cache: Path, tmp_path: Path) -> Path:
    """A shared library under the name the shim's build would have, whose constructor
    leaves a file in the working directory when it is loaded."""
    cc = shutil.which("gcc") or shutil.which("cc")
    skips.need(cc, "no C compiler", "apt-get install gcc")
    name = _dpdk_build._module_name(*_dpdk_build._flags())
    src = tmp_path / "planted.c"
    src.write_text(PLANTED_C)
    so = cache / (name + (_dpdk_build.sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True, timeout=60)
    return so


@pytest.mark.parametrize("how", ["owned by another user", "group-writable"])
def test_a_planted_library_is_not_loaded(tmp_path: Path, how: str) -> None:
    """Regression: a library planted in the cache under the expected name was loaded (its
    constructor ran as this user)."""
    need_dpdk()
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    so = plant(cache, tmp_path)
    if how == "owned by another user":
        need_root()
        os.chown(so, OTHER_UID, OTHER_UID)
        problem = f"is owned by uid {OTHER_UID}, not by this user"
    else:
        so.chmod(0o664)
        problem = "is writable by its group (mode 0664"
    work = tmp_path / "work"
    work.mkdir()
    proc = load_in(cache, work)
    assert not (work / "PLANTED_RAN").exists(), "the planted library was loaded"
    assert proc.returncode != 0 and "loaded" not in proc.stdout
    assert f"UnsafeCacheError: refusing the DPDK shim cache: file {so} {problem}" in proc.stderr


def test_opening_a_port_over_an_unsafe_cache_says_why(tmp_path: Path) -> None:
    need_dpdk()
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    (tmp_path / "fwd.py").write_text("import nfkit\ndef main(rt):\n"
                                     "    rt.add_pipeline_to_port('eth1', lambda q: nfkit.Poll(q).send(q))\n")
    (tmp_path / "c.toml").write_text(textwrap.dedent(f"""
        app_name = "nfkit-test-cache{os.getpid()}"
        master_core = 0
        backend = "dpdk"
        duration = 1
        [[ports]]
        name = "eth1"
        device = "net_null0"
        cores = [0]
    """))
    proc = subprocess.run(NFKIT + ["run", "fwd.py", "-c", "c.toml", "--no-status"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, NFKIT_CACHE_DIR=str(cache)))
    assert proc.returncode != 0
    assert f"DPDK ports: refusing the DPDK shim cache: directory {cache} is writable by its " \
           "group and others" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_symlinked_lock_file_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    """Regression: ``open(".lock", "w")`` followed a planted link and truncated its target."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (cache / ".lock").symlink_to(victim)
    with pytest.raises(_dpdk_build.DpdkBuildError, match=rf"refusing the DPDK shim cache: lock "
                                                         rf"file {cache}/.lock is a symbolic "
                                                         "link") as err:
        with _dpdk_build._locked(cache):
            pass
    assert isinstance(err.value, _dpdk_build.UnsafeCacheError)
    assert victim.read_text() == "precious\n"


def test_the_lock_file_is_created_private(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    old = os.umask(0)
    try:
        with _dpdk_build._locked(cache):
            pass
    finally:
        os.umask(old)
    assert (cache / ".lock").stat().st_mode & 0o777 == 0o600


def test_missing_cache_dirs_are_created_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)                                 # group-writable by default
    try:
        got = _dpdk_build._secure_dir(tmp_path / "xdg" / "nfkit")
    finally:
        os.umask(old)
    assert got == tmp_path / "xdg" / "nfkit"
    for d in (tmp_path / "xdg", got):
        assert d.stat().st_mode & 0o777 == 0o700
