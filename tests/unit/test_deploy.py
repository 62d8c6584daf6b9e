"""The monitoring files in deploy/: Prometheus alert rules and scrape config, the Grafana
dashboard; checked with promtool where it is installed, and by their structure always; every
metric they use is one docs/metrics.md documents."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "escalator.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
PROMTOOL = shutil.which("promtool")
SEVERITIES = {"critical", "warning", "info"}
# What issue 13 asks the rules to catch, each by at least one alert.
REQUIRED_ALERTS = {
    "EscalatorEscalationsStopped",
    "EscalatorLatenessHigh",
    "EscalatorDeadLettersGrowing",
    "EscalatorDeadNotificationsGrowing",
    "EscalatorRoleSilent",
    "EscalatorTierNobodyOnCall",
}
# What the dashboard must show (the names the metrics contract fixes).
REQUIRED_ON_DASHBOARD = {
    "escalator_events_ingested_total",
    "escalator_stream_lag",
    "escalator_stream_pending",
    "escalator_dead_letters",
    "escalator_deadlines_armed",
    "escalator_deadlines_inflight",
    "escalator_escalations_total",
    "escalator_escalation_lateness_seconds_bucket",
    "escalator_sla_breaches_total",
    "escalator_open_issues",
    "escalator_notifications_total",
    "escalator_notification_delivery_seconds_bucket",
    "escalator_writebacks_total",
    "escalator_role_heartbeat_age_seconds",
    "escalator_canary_lateness_seconds",
    "escalator_engine_healthy",
    "escalator_tier_unreachable",
    "escalator_http_requests_total",
}
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip


def documented() -> dict[str, str]:
    """Every series name docs/metrics.md documents, histograms with their three series."""
    names: dict[str, str] = {}
    for name, kind in re.findall(
        r"^\| `(escalator_[a-z0-9_]+)` \| (\w+) \|", METRICS_DOC.read_text(), re.M
    ):
        names[name] = kind
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                names[name + suffix] = kind
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels aside)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = match.group()
        if token.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword or a function call
        names.add(token)
    return names


def rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    """Every query of every panel."""
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", ())
        if "expr" in target
    ]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool; the caller skips when it is not installed."""
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)"
)
def test_promtool_accepts_the_rules_and_the_config() -> None:
    """`promtool check rules` and `promtool check config` (which loads the rules) succeed."""
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", str(PROMETHEUS))
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)"
)
def test_the_alerts_fire_as_their_unit_tests_say() -> None:
    """`promtool test rules` on deploy/prometheus/alerts_test.yml: escalations stopped, no
    metrics, a silent role, a tier with nobody on call and dead letters fire, with their
    labels and texts, only after their `for:`."""
    tested = promtool("test", "rules", str(RULES.with_name("alerts_test.yml")))
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)"
)
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each dashboard query, as a recording rule ($__rate_interval as 5m), is valid PromQL."""
    exprs = [e.replace("$__rate_interval", "5m") for e in dashboard_exprs()]
    body = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{n}", "expr": e} for n, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(body))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_rule_has_the_fields_an_operator_needs() -> None:
    """Schema: groups with a name and rules; each alert has expr, for, a severity, a summary,
    a description and a runbook that is a section of docs/metrics.md."""
    data = yaml.safe_load(RULES.read_text())
    assert isinstance(data["groups"], list) and data["groups"]
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", METRICS_DOC.read_text(), re.M)
    }
    for group in data["groups"]:
        assert group["name"] and group["rules"], group
    for rule in rules():
        name = rule["alert"]
        assert str(rule["expr"]).strip(), name
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        doc, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert doc == "docs/metrics.md" and anchor in headings, name
    assert {rule["alert"] for rule in rules()} >= REQUIRED_ALERTS


def test_the_scrape_config_loads_the_rules_and_scrapes_every_role() -> None:
    """prometheus.yml loads alerts.yml and scrapes the api on 8080 and the other roles on 9100,
    never labelling targets `role` (a label of Escalator's own series)."""
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    found: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", ()):
            found.update({name: sd["port"] for name in sd["names"]})
        for relabel in job.get("relabel_configs", ()):
            assert relabel.get("target_label") != "role", job["job_name"]
    assert found == {
        "api": 8080,
        "ingest": 9100,
        "scheduler": 9100,
        "worker-escalations": 9100,
        "worker-outbox": 9100,
    }


def test_the_dashboard_uses_a_datasource_variable_everywhere() -> None:
    """The JSON parses, schemaVersion >= 36, a `datasource` Prometheus variable, and every
    panel (rows aside) and target names `${datasource}`, never a fixed uid."""
    board = dashboard()
    assert board["schemaVersion"] >= 36
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]
    uids = re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text())
    assert set(uids) <= {"${datasource}", board["uid"]}


def test_every_metric_used_is_documented() -> None:
    """Each metric name in the rules (their expressions and annotations) and the dashboard is
    a name docs/metrics.md documents; the dashboard shows what the contract asks for."""
    known = documented()
    assert len(known) >= 30
    used_rules = set().union(*(metric_names(str(r["expr"])) for r in rules()))
    used_rules |= set(re.findall(r"escalator_[a-z0-9_]+", RULES.read_text()))
    used_board = set().union(*(metric_names(e) for e in dashboard_exprs()))
    used_board |= set(re.findall(r"escalator_[a-z0-9_]+", DASHBOARD.read_text()))
    assert not used_rules - known.keys(), f"undocumented in rules: {used_rules - known.keys()}"
    assert not used_board - known.keys(), f"undocumented on dashboard: {used_board - known.keys()}"
    assert used_board >= REQUIRED_ON_DASHBOARD, REQUIRED_ON_DASHBOARD - used_board


def test_the_promql_name_extraction_sees_metrics_and_only_metrics() -> None:
    """The helper finds selected metrics and skips functions, groupings, labels and ranges."""
    expr = (
        'histogram_quantile(0.99, sum by (le, kind) (rate(a_bucket{kind="x"}[5m]))) > 30 '
        "or time() - max(b) > 120 or absent(c) and on (tier) d offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}
    assert metric_names("up == 0") == {"up"}
