"""The alert rules (docs/alerts.yaml) and the Grafana dashboard (docs/dashboard.json) stay true to the
metrics: promtool accepts the rules, each alert fires on the series it is about (``promtool test
rules``, worked examples below), and every metric and label either file names is one of
``federation/metrics.py``. The end-to-end check against a real Prometheus is tests/e2e/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from federation import metrics
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "alerts.yaml"
DASHBOARD = ROOT / "docs" / "dashboard.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
PROMETHEUS_LABELS = {"instance", "job", "le"}
ALERT_NAMES = {
    "FederationClusterOffline",
    "FederationFailover",
    "FederationReplicasUnschedulable",
    "FederationPropagationFailing",
    "FederationDriftCorrectedRepeatedly",
    "FederationTrafficWeightZero",
    "FederationServiceNoRegion",
    "FederationNoControllerLeader",
}


def exposed() -> dict[str, set[str]]:
    """Every sample name /metrics can show for federation/metrics.py, with its labels."""
    names: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            labels = set(metric._labelnames)
            suffixes = SUFFIXES.get(metric._type, ("",))
            for suffix in suffixes:
                names[metric._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def check_expression(expr: str, extra_labels: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    """The labels ``expr``'s federation metrics carry; fails on an unknown metric or matcher label."""
    known = exposed()
    used = re.findall(r"\b(federation_[a-z_]+)\s*(\{[^}]*\})?", expr)
    assert used, f"no federation metric in {expr!r}"
    labels: set[str] = set()
    for name, matchers in used:
        assert name in known, f"{name} (in {expr!r}) is not a metric of federation/metrics.py"
        labels |= known[name]
        for label in re.findall(r"([a-zA-Z_]+)\s*[=!]~?", matchers):
            assert label in known[name] | extra_labels, f"{name} has no label {label!r} ({expr!r})"
    return labels


def test_promtool_accepts_the_rules() -> None:
    promtool = require_tool("promtool", "it checks docs/alerts.yaml (Debian's package prometheus)")
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in done.stdout, done.stdout


def test_every_alert_is_complete_and_names_real_metrics() -> None:
    found = rules()
    assert {r["alert"] for r in found} == ALERT_NAMES
    for rule in found:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        labels = check_expression(rule["expr"])
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.([a-z_]+)", text):
                assert label in labels, f"{rule['alert']}: {label!r} is not a label of {rule['expr']!r}"


def test_every_dashboard_query_names_real_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    templating = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert templating["datasource"]["type"] == "datasource"
    assert templating["datasource"]["query"] == "prometheus"
    titles = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        titles.append(panel["title"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            labels = check_expression(target["expr"])
            for label in re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", target["legendFormat"]):
                assert label in labels | PROMETHEUS_LABELS, f"{panel['title']}: legend names {label!r}"
    for wanted in (
        "Cluster health",
        "Replica spread by cluster (ready)",
        "Traffic weights",
        "Propagation latency",
        "Failed requests",
        "Leader",
    ):
        assert wanted in titles
    check_expression(templating["namespace"]["definition"])


# -- promtool test rules: each alert on a worked example (a minute per step).


def humanize(value: float) -> str:
    """Prometheus's ``humanize`` for the values of these examples."""
    for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u")):
        if abs(value) >= factor or prefix == "u":
            return f"{value / factor:.4g}{prefix}"
    raise AssertionError(value)


def annotations(alert: str, labels: dict[str, str], value: float) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for ``labels`` and ``value``."""
    (rule,) = [r for r in rules() if r["alert"] == alert]

    def render(text: str) -> str:
        text = re.sub(r"\{\{ \$labels\.([a-z_]+) \}\}", lambda m: labels[m.group(1)], text)
        text = text.replace("{{ $value | humanize }}", humanize(value))
        return text.replace("{{ $value }}", f"{value:g}")

    return {key: render(text) for key, text in rule["annotations"].items()}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    """One input series of a promtool test: ``name{labels}`` and its values, a minute apart."""
    matchers = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


EXAMPLES: list[tuple[str, list[dict[str, str]], int, dict[str, str], float]] = [
    # alert, input series, eval minute, the alert's own labels, its value
    (
        "FederationClusterOffline",
        [
            series("federation_cluster_ready", "1 0 0 0", cluster="us-central1"),
            series("federation_cluster_ready", "1 1 1 1", cluster="asia-east1"),
        ],
        3,
        {"cluster": "us-central1"},
        0,
    ),
    (
        "FederationFailover",
        [series("federation_failovers_total", "_ _ 1 1 1", cluster="us-central1")],
        4,
        {"cluster": "us-central1"},
        1,
    ),
    (
        "FederationReplicasUnschedulable",
        [
            series(
                "federation_replicaset_unschedulable_replicas", "0 4x10", namespace="shop", replicaset="web"
            )
        ],
        8,
        {"namespace": "shop", "replicaset": "web"},
        4,
    ),
    (
        "FederationPropagationFailing",
        [
            series(
                "federation_propagation_total",
                "0+1x20",
                cluster="asia-east1",
                kind="ReplicaSet",
                result="error",
            ),
            series(
                "federation_propagation_total",
                "3x20",
                cluster="us-central1",
                kind="ReplicaSet",
                result="error",
            ),
        ],
        16,
        {"cluster": "asia-east1", "kind": "ReplicaSet"},
        1 / 60,
    ),
    (
        "FederationDriftCorrectedRepeatedly",
        [series("federation_drift_corrections_total", "0+1x10", cluster="asia-east1", kind="Secret")],
        6,
        {"cluster": "asia-east1", "kind": "Secret"},
        6,
    ),
    (
        "FederationTrafficWeightZero",
        [
            series(
                "federation_traffic_weight", "2 0x10", namespace="shop", service="web", cluster="asia-east1"
            ),
            series(
                "federation_traffic_weight", "2x10", namespace="shop", service="web", cluster="us-central1"
            ),
        ],
        7,
        {"namespace": "shop", "service": "web", "cluster": "asia-east1"},
        0,
    ),
    (
        "FederationServiceNoRegion",
        [
            series(
                "federation_traffic_weight", "2 0x10", namespace="shop", service="web", cluster="asia-east1"
            ),
            series(
                "federation_traffic_weight", "2 0x10", namespace="shop", service="web", cluster="us-central1"
            ),
        ],
        3,
        {"namespace": "shop", "service": "web"},
        0,
    ),
    (
        "FederationNoControllerLeader",
        [
            series("federation_controller_leader", "1 0x5", instance="a"),
            series("federation_controller_leader", "0 0x5", instance="b"),
        ],
        3,
        {},
        0,
    ),
]


@pytest.mark.parametrize(
    ("alert", "inputs", "minute", "labels", "value"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_the_alert_fires_on_its_example(
    tmp_path: Path,
    alert: str,
    inputs: list[dict[str, str]],
    minute: int,
    labels: dict[str, str],
    value: float,
) -> None:
    promtool = require_tool("promtool", "it runs the alert rules on examples (Debian's package prometheus)")
    (rule,) = [r for r in rules() if r["alert"] == alert]
    expected = {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": annotations(alert, labels, value),
    }
    quiet_at = 0  # before anything went wrong: nothing fires
    test = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": f"{quiet_at}m", "alertname": alert, "exp_alerts": []},
                    {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": [expected]},
                ],
            }
        ],
    }
    path = tmp_path / "alerts_test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_leader_fires_when_no_process_is_scraped(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "it runs the alert rules on examples (Debian's package prometheus)")
    test = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [series("up", "0x5", job="federation")],
                "alert_rule_test": [
                    {
                        "eval_time": "3m",
                        "alertname": "FederationNoControllerLeader",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": annotations("FederationNoControllerLeader", {}, 1),
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "absent_test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
