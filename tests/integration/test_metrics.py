"""Metrics end to end: after scripted escalations through the real roles, the scraped counters
and the lateness histogram match what the database says happened, with a prefork worker of
concurrency 2; each role alone (compose) and all of them under `escalator run`."""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.support.fixtures import StackFactory
from tests.support.stack import Stack, event
from tests.support.webhooks import TOKEN
from worker.store.models import OutboxMessage, TimelineEntry

pytestmark = pytest.mark.integration

TIER_S = 4.0  # time to resolve the three at L3 before the manager's step falls due
ISSUES = ("MET-1", "MET-2", "MET-3")
Samples = dict[str, list[tuple[dict[str, str], float]]]


def free_ports(n: int) -> list[int]:
    """n ports free now, consecutive (`escalator run` numbers its roles from a base port)."""
    for base in range(20000, 60000, 97):
        ports = list(range(base, base + n))
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return ports
    raise AssertionError("no free ports")


def scrape(port: int) -> Samples:
    """Every sample of a target, by name: [(labels, value), ...]."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[s.name].append((s.labels, s.value))
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(
        v for got, v in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())
    )


def escalate_three(stack: Stack, api_port: int) -> None:
    """Three P1 issues escalate L1 → L2 → L3; each is then resolved through POST /v1/events (the
    intake fast path), and every message they caused is sent."""
    for key in ISSUES:
        stack.producer.send(event("issue.opened", key, at=datetime.now(UTC)))
    for key in ISSUES:
        stack.wait_for(partial(at_tier, stack, key, "L3"), 60, f"{key} to reach L3")
    headers = {"authorization": f"Bearer {TOKEN}"}
    for key in ISSUES:
        body = event("issue.resolved", key, at=datetime.now(UTC)).model_dump(mode="json")
        answer = httpx.post(
            f"http://127.0.0.1:{api_port}/v1/events", json=body, headers=headers, timeout=10
        )
        assert answer.status_code == 202, answer.text
    for key in ISSUES:
        stack.wait_for(partial(settled, stack, key), 30, f"{key} resolved, its messages sent")


def at_tier(stack: Stack, key: str, tier: str) -> bool:
    return stack.tier(key) == tier


def settled(stack: Stack, key: str) -> bool:
    """Resolved, and none of its messages waits to be sent."""
    issue = stack.issue(key)
    done = all(m.state in ("sent", "cancelled") for m in stack.outbox(key))
    return issue is not None and issue.lifecycle == "resolved" and done


def truth(stack: Stack) -> dict[str, int]:
    """What happened, from the database."""
    with stack.sessions() as s:
        escalations = s.scalar(
            select(func.count()).select_from(TimelineEntry).where(TimelineEntry.kind == "escalate")
        )
        sent = s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == "sent")
        )
    return {"escalations": int(escalations or 0), "sent": int(sent or 0)}


def check(samples: Callable[[], Samples], stack: Stack) -> Samples:
    """Wait until a scrape shows every firing, then check every counter against the database."""
    facts = truth(stack)  # two escalations each (a third if one was resolved too late)
    assert facts["escalations"] >= 2 * len(ISSUES)
    stack.wait_for(
        lambda: total(samples(), "escalator_escalations_total") == facts["escalations"],
        30,
        "the escalations counted",
    )
    got = samples()
    assert total(got, "escalator_escalations_total", tier="L2", severity="P1") == len(ISSUES)
    assert total(got, "escalator_escalations_total", tier="L3", target="acknowledge") == len(ISSUES)
    lateness = total(got, "escalator_escalation_lateness_seconds_count", kind="escalation")
    assert lateness == facts["escalations"]
    assert total(got, "escalator_deadlines_claimed_total") >= facts["escalations"]
    applied = total(got, "escalator_events_ingested_total", outcome="applied")
    assert total(got, "escalator_events_ingested_total", type="issue.opened") == len(ISSUES)
    assert total(got, "escalator_events_ingested_total", type="issue.resolved") == len(ISSUES)
    assert applied == 2 * len(ISSUES)
    assert total(got, "escalator_notifications_total", result="sent") == facts["sent"]
    assert total(got, "escalator_notification_delivery_seconds_count") == facts["sent"]
    assert total(got, "escalator_dead_letters_total") == 0
    return got


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # DB-agnostic: CI time
def test_each_role_alone_serves_its_own_counts(make_stack: StackFactory) -> None:
    """Roles started one per process (as compose runs them), each with its metrics port and a
    directory of its own: summed over the targets, the counters match the database, the
    escalations worker's two pool processes added up; every target serves the state gauges."""
    api, ingest, scheduler, escalations, outbox = free_ports(5)
    stack = make_stack(
        roles=(), tier_s=TIER_S, ESCALATOR_API_PORT=str(api), ESCALATOR_API_TOKEN=TOKEN
    )
    for role, port in (
        (("api",), None),
        (("ingest",), ingest),
        (("scheduler",), scheduler),
        (("worker", "--queue", "escalations", "--concurrency", "2"), escalations),
        (("worker", "--queue", "outbox"), outbox),
    ):
        stack.env_extra.pop("ESCALATOR_METRICS_PORT", None)
        if port is not None:
            stack.env_extra["ESCALATOR_METRICS_PORT"] = str(port)
        stack.start(*role)
    stack.wait_ready()
    escalate_three(stack, api)
    targets = (api, ingest, scheduler, escalations, outbox)

    def every_target() -> Samples:  # counters add up over the targets
        merged: Samples = defaultdict(list)
        for port in targets:
            for name, values in scrape(port).items():
                merged[name] += values
        return merged

    check(every_target, stack)
    assert total(scrape(escalations), "escalator_escalations_total") == truth(stack)["escalations"]
    assert total(scrape(ingest), "escalator_escalations_total") == 0  # none fired by catch-up
    http = scrape(api)
    assert total(http, "escalator_http_requests_total", route="/v1/events", status="202") == 3
    for port in targets:
        assert "escalator_deadlines_armed" in scrape(port)  # the state gauges, everywhere


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the embedded default
def test_escalator_run_shows_the_whole_stack_on_the_api(make_stack: StackFactory) -> None:
    """Under `escalator run`, every role writes to one directory: the api's /metrics alone
    shows every role's counts, and each role's port (base + 1, ...) the same totals."""
    base, api = free_ports(6)[0], free_ports(1)[0]
    stack = make_stack(
        roles=(),
        tier_s=TIER_S,
        ESCALATOR_API_PORT=str(api),
        ESCALATOR_API_TOKEN=TOKEN,
        ESCALATOR_METRICS_PORT=str(base),
        ESCALATOR_WORKER_CONCURRENCY="2",
    )
    stack.start("run")
    stack.wait_for(lambda: _answers(api), 60, "the api of `escalator run`")
    escalate_three(stack, api)
    got = check(lambda: scrape(api), stack)
    assert total(got, "escalator_http_requests_total", route="/v1/events") == 3
    for port in range(base + 1, base + 5):
        role = scrape(port)
        assert total(role, "escalator_escalations_total") == total(
            got, "escalator_escalations_total"
        )


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
