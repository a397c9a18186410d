"""The metrics endpoint (nfkit.metrics.serve): one thread whatever the number of connections,
idle connections closed, bounded requests and connections, rendering cached for the
publish interval, the thread off the forwarding cores.  Throughput under scraping is
measured in docs/runtime.md (the numbers depend on the machine, so no test asserts them)."""

from __future__ import annotations

import gzip
import os
import select
import socket
import threading
import time
import urllib.request

import pytest

from nfkit import metrics as nfmetrics
from nfkit.config import RuntimeConfig
from nfkit.metrics import MetricsError, serve
from nfkit.runtime import Runtime
from nfkit.testing import skips


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def runtime(cores: str = "[0]", interval: float = 0.5) -> Runtime:
    return Runtime.build(RuntimeConfig.from_toml_text(
        f'app_name = "m"\nmaster_core = 0\nlog_level = "error"\n[workers]\nmode = "single"\n'
        f'[metrics]\ninterval = {interval}\n[[ports]]\nname = "eth1"\ndevice = "net_null0"\n'
        f'cores = {cores}\n'))


def scrape_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def tasks() -> int:
    """Threads of this process, as the kernel counts them."""
    return len(os.listdir("/proc/self/task"))


def closed_by_peer(s: socket.socket, timeout: float) -> bool:
    ready, _, _ = select.select([s], [], [], timeout)
    if not ready:
        return False
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def http(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            out += data
        return out


def test_idle_connections_share_one_thread_and_are_closed_after_the_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: 150 idle connections held 150 threads in the master, forever."""
    monkeypatch.setattr(nfmetrics, "IDLE_TIMEOUT_S", 1.0, raising=False)
    rt = runtime()
    port = free_port()
    before = tasks()
    stop = serve(rt.metrics, "127.0.0.1", port)
    idle: list[socket.socket] = []
    try:
        for _ in range(150):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.3)
        assert tasks() <= before + 1, f"{tasks() - before} threads for 150 connections"
        assert "nfkit_port_packets_total" in scrape_text(port)   # served while they are open
        t0 = time.monotonic()
        closed = [closed_by_peer(s, 3.0) for s in idle]
        assert all(closed), f"{closed.count(False)} idle connections still open"
        assert time.monotonic() - t0 < 3.0
        assert "nfkit_port_packets_total" in scrape_text(port)
    finally:
        for s in idle:
            s.close()
        stop()
        rt.close()
    assert tasks() <= before


def test_connections_beyond_the_bound_close_the_longest_idle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nfmetrics, "MAX_CONNECTIONS", 4)
    rt = runtime()
    port = free_port()
    stop = serve(rt.metrics, "127.0.0.1", port)
    try:
        first = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        time.sleep(0.1)
        late = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert closed_by_peer(first[0], 2.0)                   # the oldest made room
        assert not any(closed_by_peer(s, 0.1) for s in first[1:])
        late.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert late.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
        for s in (*first, late):
            s.close()
    finally:
        stop()
        rt.close()


def test_requests_are_bounded_and_answered_as_http() -> None:
    rt = runtime()
    port = free_port()
    stop = serve(rt.metrics, "127.0.0.1", port)
    try:
        big = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 9000
        out = http(port, big)
        assert out.startswith(b"HTTP/1.1 431 ") and b"limited to 8192 bytes" in out
        assert http(port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
        assert http(port, b"GET /nope HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        assert http(port, b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        head = http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
        # keep-alive: two requests on one connection (HTTP/1.1), pipelined
        two = http(port, b"GET /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close"
                         b"\r\n\r\n")
        assert two.count(b"HTTP/1.1 200 OK") == 2 and two.count(b"nfkit_port_packets") >= 2
        # gzip when asked (Prometheus asks)
        gz = http(port, b"GET /metrics HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
        head, _, body = gz.partition(b"\r\n\r\n")
        assert b"Content-Encoding: gzip" in head
        assert b"nfkit_port_packets_total" in gzip.decompress(body)
        # a client that half-closes after its request still gets the answer
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            out = b""
            while data := s.recv(65536):
                out += data
        assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out
    finally:
        stop()
        rt.close()


def test_the_text_is_rendered_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime(interval=0.5)
    calls = []
    real = rt.metrics.prometheus_text

    def counted() -> str:
        calls.append(time.monotonic())
        return real()
    monkeypatch.setattr(rt.metrics, "prometheus_text", counted)
    port = free_port()
    stop = serve(rt.metrics, "127.0.0.1", port)
    try:
        t0 = time.monotonic()
        texts = {scrape_text(port) for _ in range(10)}
        if time.monotonic() - t0 < 0.5:
            assert len(calls) == 1 and len(texts) == 1
        time.sleep(0.6)
        scrape_text(port)
        assert len(calls) >= 2                      # an old text is rendered again
    finally:
        stop()
        rt.close()


def _server_thread() -> int:
    for t in threading.enumerate():
        if t.name == "nfkit-metrics":
            assert t.native_id is not None
            return t.native_id
    raise AssertionError("no nfkit-metrics thread")


def test_the_thread_runs_on_cpus_no_forwarding_core_uses() -> None:
    skips.need(len(os.sched_getaffinity(0)) >= 2, "needs 2 CPUs to leave one free")
    rt = runtime(cores="[0]")
    stop = serve(rt.metrics, "127.0.0.1", free_port())
    try:
        cpus = os.sched_getaffinity(_server_thread())
        assert 0 not in cpus and cpus
        assert rt.metrics.server.placement == f"CPUs {sorted(cpus)}"
    finally:
        stop()
        rt.close()


def test_without_a_free_cpu_the_thread_runs_at_the_lowest_priority() -> None:
    every = sorted(range(os.cpu_count() or 1))
    rt = runtime(cores=str(every))
    stop = serve(rt.metrics, "127.0.0.1", free_port())
    try:
        assert os.getpriority(os.PRIO_PROCESS, _server_thread()) == 19
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19
        assert rt.metrics.server.placement.startswith("nice 19")
    finally:
        stop()
        rt.close()


def test_an_address_in_use_is_a_metrics_error() -> None:
    rt = runtime()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(MetricsError, match=rf'\[metrics\] listen = "127.0.0.1:{port}": '
                                               r'cannot serve: Address already in use'):
            serve(rt.metrics, "127.0.0.1", port)
    rt.close()


def test_the_log_says_when_the_address_is_every_interface(caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime()
    caplog.set_level("INFO", logger="nfkit.metrics")
    for host, every in (("0", True), ("127.0.0.1", False)):
        caplog.clear()
        stop = serve(rt.metrics, host, free_port())
        stop()
        line = next(r.getMessage() for r in caplog.records if "serving" in r.getMessage())
        assert ("(every interface)" in line) is every, line
    rt.close()
