"""The Prometheus rules and the Grafana dashboard in deploy/ against what the worker exports."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import orjson
import pytest
import yaml

from streams.apps.metrics import WorkerMetrics
from streams.apps.review.metrics import ReviewMetrics
from streams.core.settings import REPO_ROOT
from streams.cost.pricing import PriceTable, Pricing

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
_METRIC = re.compile(r"\bkeel_[a-z_]+")
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


@pytest.fixture(scope="module")
def promtool() -> Path:
    path = REPO_ROOT / os.environ.get(
        "KEEL_PROMTOOL", ".keel/tools/prometheus/usr/bin/promtool"
    )  # relative: to the repo
    if not path.exists():
        pytest.fail(f"promtool not found at {path}: `make promtool` unpacks it from Debian's prometheus package")
    return path


def _run(promtool: Path, *args: str) -> str:
    done = subprocess.run([str(promtool), *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_alert_rules_are_valid(promtool: Path) -> None:
    assert "SUCCESS" in _run(promtool, "check", "rules", "alerts.yml")


def test_the_alert_rules_fire_on_the_series_they_are_meant_for(promtool: Path) -> None:
    _run(promtool, "test", "rules", "alerts_test.yml")


def _exported() -> set[str]:
    """What workers and the review service export."""
    metrics = WorkerMetrics(Pricing(PriceTable(version="v", prices=())))
    review = ReviewMetrics(["a"], dict)
    names = {family.name for registry in (metrics.registry, review.registry) for family in registry.collect()}
    return names | {"keel_in_flight", "keel_circuit_state", "keel_consumer_lag"}  # read at scrape time


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_metric_the_rules_use_is_exported() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {_base(name) for expr in exprs for name in _METRIC.findall(expr)}
    assert used and used <= _exported()


def test_every_metric_the_dashboard_uses_is_exported() -> None:
    dashboard = orjson.loads((REPO_ROOT / "deploy" / "grafana" / "dashboard.json").read_bytes())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {_base(name) for expr in exprs for name in _METRIC.findall(expr)}
    assert used and used <= _exported()


def test_every_alert_links_a_runbook_that_exists() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    links = [rule["annotations"]["runbook_url"] for group in rules["groups"] for rule in group["rules"]]
    runbooks = (REPO_ROOT / "docs" / "runbooks.md").read_text()
    assert links and all(link.startswith("docs/runbooks.md#runbook-") for link in links)
    missing = [link for link in links if f'<a id="{link.partition("#")[2]}"></a>' not in runbooks]
    assert not missing


def test_every_exported_metric_is_in_the_metrics_table_of_the_operations_page() -> None:
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    table = {_base(name) for name in re.findall(r"^\| `(keel_[a-z_]+)`", operations, re.MULTILINE)}
    missing = sorted(_exported() - table)
    assert table and not missing
