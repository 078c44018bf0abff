"""deploy/prometheus/alerts.yml: valid rules over series relay really exports.

``promtool check rules`` when Prometheus's tool is installed; always, the file is
parsed and every metric name in every expression is checked against the series
``relay.metrics`` defines (what ``/metrics`` serves), so a renamed metric cannot
leave an alert that never fires.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import relay.metrics  # noqa: F401 - defines the series in the default registry

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml"

#: PromQL words that look like metric names.
PROMQL = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "by", "without", "on",
    "ignoring", "group_left", "group_right", "histogram_quantile", "and", "or", "unless",
    "le", "bool", "offset", "abs", "clamp_min", "clamp_max", "time",
}


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_groupings))
    return words - PROMQL


def test_every_expression_uses_only_exported_series() -> None:
    known = exported()
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} not exported by relay.metrics"


def test_the_conditions_operators_need_are_there() -> None:
    by_severity: dict[str, set[str]] = {}
    for rule in rules():
        assert rule["annotations"]["summary"], rule["alert"]
        by_severity.setdefault(rule["labels"]["severity"], set()).add(rule["alert"])
    assert by_severity["critical"] == {
        "RelayDatabasePoolExhausted", "RelaySmtpConnectionsNearLimit", "RelayApiErrors",
        "RelayQueueDepthCritical", "RelayOldestMessageStuck", "RelayCertificateExpiring",
        "RelayProviderCircuitOpen",
    }
    assert by_severity["warning"] == {
        "RelayDatabasePoolBusy", "RelayApiSlow", "RelayQueueDepthHigh", "RelayAuthFailures",
    }


def test_the_metric_name_check_catches_a_typo() -> None:
    assert metric_names('sum by (instance) (rate(smtp_replies_totl{code="550"}[5m]))') == {
        "smtp_replies_totl"
    }


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
