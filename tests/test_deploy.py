"""What ships under deploy/ reads as its tools read it and names only metrics the services export."""

from __future__ import annotations

import json
import re

import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
_METRIC = re.compile(r"\bimagegen_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _exported() -> set[str]:
    """Every metric name the services define (Counters without `_total`, as prometheus_client takes)."""
    sources = [p.read_text() for p in (REPO / "services").rglob("*.py")]
    return {name for text in sources for name in re.findall(r'"(imagegen_[a-z_]+)"', text)}


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _referenced(text: str) -> set[str]:
    return {_base(name) for name in _METRIC.findall(text)}


def test_alerting_rules_and_the_dashboard_name_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"ImagegenQueueWaitHigh", "ImagegenModelServerFailing", "ImagegenServerErrors"} <= {
        a["alert"] for a in alerts
    }
    dashboard = json.loads((DEPLOY / "grafana" / "imagegen.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exported = _exported()
    for expression in [rule["expr"] for rule in alerts] + expressions:
        unknown = _referenced(expression) - exported
        assert not unknown, (expression, unknown)
    assert yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["rule_files"] == [
        "alerts.yml"
    ]
