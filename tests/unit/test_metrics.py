"""Prometheus metrics: names and labels, what each recording helper counts, the multiprocess
directory, the state collector (also with Redis and the database away), the HTTP middleware's
route templates, and docs/metrics.md listing exactly the metrics the code registers."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import fakeredis
import pytest
from fastapi import FastAPI
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from config.settings import PACKAGED_POLICY, Settings
from schemas.policy import PolicyFile
from worker.broker import canary
from worker.broker.heartbeats import beat
from worker.domain.clock import ManualClock
from worker.gateway import metrics as m
from worker.gateway import metrics_record as record
from worker.gateway.metrics_http import HttpMetrics, template
from worker.gateway.metrics_state import STATE_GAUGES, StateCollector, scrape_client
from worker.roles.supervisor import ROLES, role_env
from worker.services.firing import Happened
from worker.services.history import Outcome
from worker.services.ingest import EntryResult
from worker.services.outbox import Delivery
from worker.services.policy_loader import PolicySource
from worker.store.db import make_engine, reader_factory

from .factories import T0

DOC = Path(__file__).parents[2] / "docs" / "metrics.md"


@pytest.fixture(autouse=True)
def in_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with fresh in-memory metrics, and leaves no multiprocess set-up."""
    monkeypatch.setenv(m.MULTIPROC_ENV, "unset")
    monkeypatch.delenv(m.MULTIPROC_ENV)
    monkeypatch.setattr(values, "ValueClass", values.MutexValue)
    monkeypatch.setattr(m, "_directory", None)
    monkeypatch.setattr(m, "_metrics", None)
    monkeypatch.setattr(record, "_failures", set())
    yield


def scrape(*extra: object) -> dict[str, float]:
    """Every sample of a scrape of this process, `name{label="value",...}` -> value."""
    text = m.render(m.scrape_registry(*extra)).decode()  # type: ignore[arg-type]
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            found[f"{s.name}{{{labels}}}"] = s.value
    return found


def happened(kind: str, late_s: float, escalated: bool = False, breached: bool = False) -> Happened:
    return Happened(
        kind, "acknowledge", "P1", "L2", escalated, breached, T0, T0 + timedelta(seconds=late_s)
    )


def test_names_and_labels_are_the_contract() -> None:
    """The registered counters and histograms carry exactly the names and labels agreed."""
    got = {
        f.name: tuple((f.samples and sorted(f.samples[0].labels)) or ())
        for f in m.metrics().registry.collect()
    }
    assert set(m.metrics().names()) == {
        "escalator_events_ingested_total",
        "escalator_dead_letters_total",
        "escalator_deadlines_claimed_total",
        "escalator_deadlines_reclaimed_total",
        "escalator_escalations_total",
        "escalator_escalation_lateness_seconds",
        "escalator_sla_breaches_total",
        "escalator_notifications_total",
        "escalator_notification_delivery_seconds",
        "escalator_writebacks_total",
        "escalator_http_requests_total",
        "escalator_http_request_duration_seconds",
    }
    assert m.metrics().lateness._labelnames == ("kind",)
    assert m.metrics().escalations._labelnames == ("tier", "severity", "target")
    assert m.metrics().notifications._labelnames == ("channel", "kind", "result")
    assert m.metrics().http_requests._labelnames == ("route", "method", "status")
    assert list(m.metrics().lateness._upper_bounds[:-1]) == list(m.LATENESS_BUCKETS)
    assert got  # collected without error


def test_docs_list_every_metric_and_no_other() -> None:
    """docs/metrics.md has a table row for each metric the code registers, and no row for one
    it does not."""
    documented = set(re.findall(r"^\| `(escalator_[a-z0-9_]+)`", DOC.read_text(), re.M))
    assert documented == set(m.metrics().names()) | set(STATE_GAUGES)


def test_ingested_counts_a_batch_by_type_and_outcome() -> None:
    """One increment per (type, outcome) with the batch's count; unparsed entries are `unknown`."""
    results = [
        EntryResult("1-0", Outcome.APPLIED, "", "e1", "t:1", "issue.opened"),
        EntryResult("2-0", Outcome.APPLIED, "", "e2", "t:2", "issue.opened"),
        EntryResult("3-0", Outcome.DUPLICATE, "", "e1", "t:1", "issue.opened"),
        EntryResult("4-0", Outcome.DEAD, "invalid event: body: bad"),
    ]
    record.ingested(results)
    record.dead_lettered(record.dead_reason(r) for r in results if r.outcome is Outcome.DEAD)
    got = scrape()
    assert got['escalator_events_ingested_total{outcome="applied",type="issue.opened"}'] == 2
    assert got['escalator_events_ingested_total{outcome="duplicate",type="issue.opened"}'] == 1
    assert got['escalator_events_ingested_total{outcome="dead",type="unknown"}'] == 1
    assert got['escalator_dead_letters_total{reason="invalid"}'] == 1


@pytest.mark.parametrize(
    ("note", "event_type", "reason"),
    [
        ("gave up after 6 deliveries: applying it kept failing", None, "gave_up"),
        ("entry is not UTF-8 text: invalid start byte at byte 0", None, "undecodable"),
        ("invalid event: issue.id: Field required", None, "invalid"),
        ("no such tier", "issue.escalated", "rejected"),
    ],
)
def test_dead_letter_reasons_are_a_small_set(
    note: str, event_type: str | None, reason: str
) -> None:
    """The reason label is one of four words, never the error's text."""
    assert (
        record.dead_reason(EntryResult("1-0", Outcome.DEAD, note, None, None, event_type)) == reason
    )


def test_claims_leave_canaries_out() -> None:
    """Claimed and reclaimed deadlines are counted; canaries (negative ids) are not."""
    record.claimed([1, 2, canary.canary_id(1e9)], [3])
    record.claimed([], [])
    got = scrape()
    assert got["escalator_deadlines_claimed_total{}"] == 2
    assert got["escalator_deadlines_reclaimed_total{}"] == 1


def test_fired_records_lateness_escalations_and_breaches() -> None:
    """Each firing's lateness goes to its kind's histogram; escalations and breaches count
    with the tier taken, severity and target."""
    record.fired(
        [
            happened("escalate", 0.003, escalated=True),
            happened("warn", 42),
            happened("breach", 0.2, breached=True),
        ]
    )
    got = scrape()
    assert got['escalator_escalation_lateness_seconds_count{kind="escalation"}'] == 1
    assert got['escalator_escalation_lateness_seconds_bucket{kind="escalation",le="0.005"}'] == 1
    assert got['escalator_escalation_lateness_seconds_bucket{kind="escalation",le="0.0025"}'] == 0
    assert got['escalator_escalation_lateness_seconds_count{kind="warning"}'] == 1
    assert got['escalator_escalations_total{severity="P1",target="acknowledge",tier="L2"}'] == 1
    assert got['escalator_sla_breaches_total{severity="P1",target="acknowledge"}'] == 1


def test_delivered_splits_notifications_and_writebacks() -> None:
    """Notifications by channel, kind and result (moot for cancelled), with their latency when
    sent; write-backs by ticket system; held and skipped are not attempts."""
    record.delivered(
        [
            Delivery("sent", None, "slack", "escalated", 1.5),
            Delivery("retry", 2.0, "slack", "escalated"),
            Delivery("dead", None, "email", "warning"),
            Delivery("cancelled", None, "email", "reminder"),
            Delivery("sent", None, "writeback:jira", "escalated", 0.4),
            Delivery("held", 5.0, "slack", "escalated"),
            Delivery("skipped"),
        ]
    )
    got = scrape()
    assert got['escalator_notifications_total{channel="slack",kind="escalated",result="sent"}'] == 1
    assert (
        got['escalator_notifications_total{channel="slack",kind="escalated",result="retry"}'] == 1
    )
    assert got['escalator_notifications_total{channel="email",kind="warning",result="dead"}'] == 1
    assert got['escalator_notifications_total{channel="email",kind="reminder",result="moot"}'] == 1
    assert got['escalator_notification_delivery_seconds_count{channel="slack"}'] == 1
    assert got['escalator_writebacks_total{result="sent",source="jira"}'] == 1
    assert not any("writeback" in k for k in got if k.startswith("escalator_notification"))


def count_in_child(n: int) -> None:
    record.claimed(list(range(1, n + 1)), [])


def test_multiprocess_adds_up_processes_and_cleans_at_start(tmp_path: Path) -> None:
    """Under prepare(), forked processes' counts are summed by one scrape; a role started alone
    empties its directory first, one under `escalator run` (metrics_dir) never does."""
    directory = tmp_path / "mp"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run")
    m.prepare(Settings(_env_file=None, PROMETHEUS_MULTIPROC_DIR=directory))
    assert not (directory / "counter_1.db").exists()
    record.claimed([1], [])
    fork = multiprocessing.get_context("fork")
    for n in (2, 3):
        child = fork.Process(target=count_in_child, args=(n,))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        m.process_dead(child.pid or 0)
    assert scrape()["escalator_deadlines_claimed_total{}"] == 6
    m.prepare(Settings(_env_file=None, metrics_dir=directory))  # shared: kept
    assert scrape()["escalator_deadlines_claimed_total{}"] == 6


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    target = tmp_path / "policy.yaml"
    target.write_text(PACKAGED_POLICY.read_text())
    return target


def collector(
    redis: object, engine: Engine | None, settings: Settings, policy_file: Path
) -> StateCollector:
    return StateCollector(
        redis,  # type: ignore[arg-type]
        reader_factory(engine) if engine is not None else None,
        settings,
        ManualClock(T0 + timedelta(seconds=100)),
        PolicySource(policy_file),
    )


def test_state_gauges_are_read_at_scrape_time(
    redis: fakeredis.FakeRedis,
    engine: Engine,
    settings: Settings,
    policy_file: Path,
    policies: PolicyFile,
) -> None:
    """A scrape reads heartbeats, the canary, the outbox, open issues and the tiers' coverage
    now: every state gauge the docs list appears."""
    now = T0.timestamp() + 100
    beat(redis, "scheduler", "h:1", now - 60, now=now - 5)
    beat(redis, "ingest", "h:2", now - 60, now=now - 45)
    canary.record(redis, [canary.canary_id(now - 3)], now - 2.9)
    state = collector(redis, engine, settings, policy_file)
    got = scrape(state)
    text = m.render(m.scrape_registry(state)).decode()
    families = {f.name for f in text_string_to_metric_families(text)}
    # no group on the stream yet: its lag is unknown; no policy version stored: no info
    assert set(STATE_GAUGES) - {"escalator_stream_lag", "escalator_policy_info"} <= families
    assert got['escalator_role_up{role="scheduler"}'] == 1
    assert got['escalator_role_up{role="ingest"}'] == 0
    assert got['escalator_role_up{role="worker-outbox"}'] == 0  # never seen: 0, not absent
    assert got[
        'escalator_role_heartbeat_age_seconds{instance="h:2",role="ingest"}'
    ] == pytest.approx(45)
    assert got["escalator_canary_lateness_seconds{}"] == pytest.approx(0.1, abs=0.01)
    assert got["escalator_deadlines_armed{}"] == 0
    for tier in policies.tiers:
        assert f'escalator_tier_gaps_next_14d{{tier="{tier.name}"}}' in got


def test_a_scrape_with_redis_and_the_database_away_skips_their_gauges(
    settings: Settings, policy_file: Path, tmp_path: Path
) -> None:
    """Redis refusing connections and no database: the scrape still answers, with the counters
    and the tiers' gauges, and says so once at warning, not at every scrape."""
    away = scrape_client(f"unix://{tmp_path / 'nobody.sock'}")
    missing = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}")  # never opens
    state = collector(away, missing, settings, policy_file)
    with capture_logs() as logs:
        first = scrape(state)
        second = scrape(state)
    for got in (first, second):
        assert "escalator_stream_pending{}" not in got and "escalator_open_issues" not in str(got)
        assert any(k.startswith("escalator_tier_unreachable") for k in got)
    warnings = [e for e in logs if e["event"] == "metrics.state_unavailable"]
    assert {e["source"] for e in warnings} == {"operations", "open_issues"}
    assert len(warnings) == 2 and all(e["log_level"] == "warning" for e in warnings)


def test_route_templates_label_requests() -> None:
    """Requests are labelled by the route template (converters dropped), literal paths by
    themselves, unknown paths as `unmatched`: never the raw path."""
    app = FastAPI()

    @app.get("/issues/{key:path}")
    async def issue(key: str) -> dict[str, str]:
        return {"key": key}

    @app.post("/v1/events")
    async def events() -> dict[str, str]:
        return {}

    app.add_middleware(HttpMetrics, routes=app.router.routes)
    with TestClient(app) as client:
        assert client.get("/issues/jira:OPS-1").status_code == 200
        assert client.get("/issues/jira:OPS-2").status_code == 200
        assert client.post("/v1/events").status_code == 200
        assert client.get("/nothing/here").status_code == 404
    got = scrape()
    assert (
        got['escalator_http_requests_total{method="GET",route="/issues/{key}",status="200"}'] == 2
    )
    assert got['escalator_http_requests_total{method="POST",route="/v1/events",status="200"}'] == 1
    assert got['escalator_http_requests_total{method="GET",route="unmatched",status="404"}'] == 1
    assert got['escalator_http_request_duration_seconds_count{route="/issues/{key}"}'] == 2
    assert not any("OPS-1" in k or "/nothing" in k for k in got)
    assert template("/a/{b:path}/{c}") == "/a/{b}/{c}"


def test_escalator_run_gives_each_non_api_role_its_port(tmp_path: Path) -> None:
    """Under `escalator run` every role shares the directory; with a base port the non-api
    roles get base + 1, + 2, ... and the api none (its /metrics is on its own port)."""
    env = {"ESCALATOR_METRICS_PORT": "9100", "PROMETHEUS_MULTIPROC_DIR": "/elsewhere"}
    ports = {}
    for role in ROLES:
        child = role_env(env, tmp_path, 9100, ROLES, role)
        assert child["ESCALATOR_METRICS_DIR"] == str(tmp_path.resolve())
        assert "PROMETHEUS_MULTIPROC_DIR" not in child
        ports[" ".join(role)] = child.get("ESCALATOR_METRICS_PORT")
    assert ports["api"] is None
    assert sorted(p for p in ports.values() if p) == ["9101", "9102", "9103", "9104"]
    assert "ESCALATOR_METRICS_PORT" not in role_env(env, tmp_path, None, ROLES, ("ingest",))


def test_a_metric_that_cannot_be_recorded_never_fails_the_work(tmp_path: Path) -> None:
    """The directory removed under a role (a /tmp cleaner): recording fails quietly, logged
    once per helper at error level, and the caller goes on."""
    directory = tmp_path / "gone"
    m.prepare(Settings(_env_file=None, PROMETHEUS_MULTIPROC_DIR=directory))
    directory.rmdir()
    with capture_logs() as logs:
        record.claimed([1], [])
        record.claimed([2], [])
        record.ingested([EntryResult("1-0", Outcome.APPLIED, "", "e1", "t:1", "issue.opened")])
    failed = [e for e in logs if e["event"] == "metrics.record_failed"]
    assert [e["helper"] for e in failed] == ["claimed", "ingested"]
    assert all(e["log_level"] == "error" for e in failed)
