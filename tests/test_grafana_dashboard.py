"""docs/grafana (#15): the Grafana dashboard for nfkit's Prometheus metrics is valid for
Grafana's import without a Grafana -- checked against Grafana's published dashboard JSON
schema and its Prometheus query schema (tests/data/grafana, from grafana-foundation-sdk,
Apache-2.0) -- and every metric and label its queries use is one nfkit serves."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from nfkit import Poll
from nfkit.config import RuntimeConfig
from nfkit.runtime import Runtime
from nfkit.testing import skips

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "nfkit-dashboard.json"
SCHEMAS = ROOT / "tests" / "data" / "grafana"
#: labels Prometheus adds to every scraped series (not nfkit's)
TARGET_LABELS = {"job", "instance"}


def validator(name: str) -> Any:
    try:
        import jsonschema
    except ImportError:
        skips.unavailable("jsonschema is not installed", "pip install -e '.[dev]'")
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft7Validator(schema)


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def targets(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for p in dash["panels"] for t in p.get("targets", [])]


def errors(v: Any, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in v.iter_errors(doc)]


def test_dashboard_is_valid_for_grafanas_schema() -> None:
    dash = dashboard()
    assert errors(validator("dashboard.jsonschema.json"), dash) == []
    prom = validator("prometheus.jsonschema.json")
    assert {t["refId"] for p in dash["panels"] for t in p.get("targets", [])}
    for p in dash["panels"]:
        for t in p.get("targets", []):
            assert errors(prom, t) == [], (p["title"], t)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_the_schema_check_can_fail() -> None:
    """The validator is not vacuous: what Grafana's import refuses, it refuses."""
    v = validator("dashboard.jsonschema.json")
    for path, bad in [(("graphTooltip",), 5), (("panels", 1, "gridPos"), {"h": 8}),
                      (("templating", "list", 0, "hide"), "no"), (("panels", 2, "bogus"), 1)]:
        dash = dashboard()
        node = dash
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        assert errors(v, dash), path
    dash = dashboard()
    del dash["schemaVersion"]
    assert any("schemaVersion" in e for e in errors(v, dash))


def test_dashboard_covers_what_the_issue_asks() -> None:
    exprs = " ".join(t["expr"] for t in targets(dashboard()))
    for needed in ("nfkit_port_packets_total", "nfkit_port_dropped_total",
                   'disposition=~"drop|abort"', "nfkit_mempool_in_use", 'kind="busy"',
                   "by (port, core, dir)"):
        assert needed in exprs, needed


@functools.cache
def served() -> dict[str, set[str]]:
    """Every metric nfkit's endpoint serves, with the labels of its samples, scraped during
    a run with a pipeline on a worker process that is killed once and restarted (the restart
    counter has samples only then)."""
    rt = Runtime.build(RuntimeConfig.from_toml_text(
        'app_name = "g"\nmaster_core = 0\nlog_level = "error"\nduration = 3\n'
        '[workers]\nmode = "processes"\nrestart = "on-failure"\nmax_restarts = 1\n'
        '[metrics]\ninterval = 0.05\n'
        '[[ports]]\nname = "eth1"\ndevice = "net_null0"\ncores = [1]\n'))
    rt.add_pipeline_to_port("eth1", lambda q: Poll(q).send(q))
    texts: list[str] = []           # scraped on the master while the worker runs
    killed: list[int] = []

    def scrape() -> None:
        texts.append(rt.metrics.prometheus_text())
        if not killed and "nfkit_port_packets_total{" in texts[-1]:   # once it forwarded
            (child,) = multiprocessing.active_children()
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)

    rt.add_periodic_task_to_core(0, scrape, 0.3)
    rt.execute()
    assert killed, "the worker never published its counters"
    out: dict[str, set[str]] = {}
    for name, labels in re.findall(r"^([a-z_]+)\{([^}]*)\}", "\n".join(texts), re.M):
        out.setdefault(name, set()).update(re.findall(r'(\w+)="', labels))
    return out


def _labels_used(expr: str) -> set[str]:
    used = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        used.update(x.strip() for x in group.split(",") if x.strip())
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        used.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    return used - TARGET_LABELS


def test_every_metric_and_label_in_the_queries_is_served() -> None:
    metrics = served()
    assert {"nfkit_port_packets_total", "nfkit_mempool_in_use", "nfkit_worker_restarts_total",
            "nfkit_pipeline_packets_total"} <= set(metrics)
    for t in targets(dashboard()):
        expr = t["expr"]
        names = set(re.findall(r"\bnfkit_\w+", expr))
        assert names, expr
        missing = names - set(metrics)
        assert not missing, f"{expr}: not served by nfkit: {missing}"
        labels = set().union(*(metrics[n] for n in names))
        assert _labels_used(expr) <= labels, (expr, _labels_used(expr) - labels)
        for legend in re.findall(r"\{\{(\w+)\}\}", t["legendFormat"]):
            assert legend in labels, (expr, legend)


@pytest.mark.parametrize("bad", ["nfkit_port_packet_total", "nfkit_core_polls_total{state=\"busy\"}"])
def test_the_metric_check_can_fail(bad: str) -> None:
    metrics = served()
    names = set(re.findall(r"\bnfkit_\w+", bad))
    ok = names <= set(metrics) and _labels_used(bad) <= set().union(*(metrics[n] for n in names))
    assert not ok


def test_the_scrape_config_points_at_the_metrics_endpoint() -> None:
    try:
        import yaml
    except ImportError:
        skips.unavailable("PyYAML is not installed", "pip install -e '.[dev]'")
    cfg = yaml.safe_load((ROOT / "docs" / "grafana" / "prometheus.yml").read_text())
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "nfkit")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9100"]
    readme = (ROOT / "docs" / "grafana" / "README.md").read_text()
    assert 'listen = "127.0.0.1:9100"' in readme and "nfkit-dashboard.json" in readme
