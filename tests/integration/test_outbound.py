"""Outbound end to end: signed webhook, email over SMTP and ticket write-back from real roles."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.support.stack import SECRET, Stack, event
from tests.support.vendors import SmtpServer, VendorServer
from worker.store.models import OutboxMessage

pytestmark = pytest.mark.integration

OutboundStack = Callable[..., Stack]


@pytest.fixture
def vendor() -> Iterator[VendorServer]:
    """A Jira/GitHub/Zendesk/webhook-shaped HTTP server on 127.0.0.1."""
    server = VendorServer(secret=SECRET)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def policy_yaml(vendor: VendorServer, smtp: SmtpServer, tier_s: float, extra: str = "") -> str:
    """L1 (dana) escalates to L2 after `tier_s`; L2's rotation is overridden to finn right now."""
    now = datetime.now(UTC)
    override_from = (now - timedelta(hours=1)).isoformat()
    override_to = (now + timedelta(hours=1)).isoformat()
    mail = (
        f"mailto://127.0.0.1:{smtp.port}?from=escalator@example.com&to=oncall@example.com&secure=no"
    )
    return f"""version: 1
channels:
  log: {{type: log}}
  sink: {{type: webhook, url: '{vendor.url}/hook', secret: sink, timeout: 10s}}
  mail: {{type: apprise, url: '{mail}', format: text}}
people:
  erin: {{jira: acc-erin}}
  finn: {{jira: acc-finn}}
rosters:
  first: {{members: [dana]}}
  second:
    members: [erin, finn]
    shift: 1d
    handoff: "09:00"
    timezone: Europe/Berlin
    start: 2026-01-05
    overrides: [{{who: finn, start: '{override_from}', end: '{override_to}'}}]
tiers:
  - {{name: L1, roster: first, channels: [log]}}
  - {{name: L2, roster: second, channels: {{escalated: [sink, mail], default: [log]}}}}
policies:
  - name: fast
    acknowledge:
      ladder:
        - {{tier: L1, within: {tier_s}s}}
        - {{tier: L2, within: 1h}}
default: fast
writeback: {{jira: jira, github: github, zendesk: zendesk}}
{extra}"""


@pytest.fixture
def outbound_stack(
    tmp_path: Path, redis_url: str, database_url: str, vendor: VendorServer, smtp: SmtpServer
) -> Iterator[OutboundStack]:
    """Start ingest, scheduler and worker with the outbound policy and vendor credentials."""
    stacks: list[Stack] = []

    def _make(tier_s: float = 3.0, **env: str) -> Stack:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_yaml(vendor, smtp, tier_s))
        settings = {
            "ESCALATOR_JIRA_URL": vendor.url,
            "ESCALATOR_JIRA_USER": "bot@example.com",
            "ESCALATOR_JIRA_TOKEN": "jira-token",
            "ESCALATOR_GITHUB_API_URL": vendor.url,
            "ESCALATOR_GITHUB_TOKEN": "ghp_test",
            "ESCALATOR_GITHUB_REPO": "acme/shop",
            "ESCALATOR_ZENDESK_URL": vendor.url,
            "ESCALATOR_ZENDESK_EMAIL": "bot@example.com",
            "ESCALATOR_ZENDESK_TOKEN": "zd-token",
            "ESCALATOR_PUBLIC_URL": "https://escalator.example.com",
            **env,
        }
        stack = Stack(tmp_path, redis_url, database_url, policy, env_extra=settings)
        stacks.append(stack)
        for role in ("ingest", "scheduler", "worker"):
            stack.start(role)
        stack.wait_ready()
        return stack

    yield _make
    for stack in stacks:
        stack.stop()


def _tier(stack: Stack, key: str, source: str) -> str | None:
    issue = stack.issue(key, source)
    return issue.tier if issue else None


def test_escalation_reaches_webhook_email_and_jira_exactly_once_with_the_on_call_person(
    outbound_stack: OutboundStack, vendor: VendorServer, smtp: SmtpServer
) -> None:
    """Done when: one signed webhook, one email, one Jira write-back, each for finn (on call)."""
    stack = outbound_stack(tier_s=3.0)
    stack.producer.send(event("issue.opened", "OPS-7", source="jira", title="Checkout is down"))
    stack.wait_for(lambda: _tier(stack, "OPS-7", "jira") == "L2", 30, "the escalation to L2")
    issue = stack.issue("OPS-7", "jira")
    assert issue is not None and issue.assignee == "finn"  # the override, not the rotation
    stack.wait_for(
        lambda: {m.state for m in stack.outbox("OPS-7")} == {"sent"}, 30, "every message sent"
    )
    stack.wait_for(lambda: len(smtp.messages) >= 1, 10, "the email")
    time.sleep(2.0)  # room for a duplicate to show up, if there were one

    hooks = vendor.delivered("/hook")
    assert len(hooks) == 1, hooks
    [(hook_id, [hook])] = hooks.items()
    Webhook(SECRET).verify(json_bytes(hook.body), hook.headers)
    assert (hook.body["kind"], hook.body["tier"], hook.body["assignee"]) == (
        "escalated",
        "L2",
        "finn",
    )

    [mail] = smtp.messages
    [body] = smtp.bodies()
    assert "escalated to L2" in str(mail["subject"]) and "On call: finn" in body
    assert "https://escalator.example.com/issues/jira:OPS-7" in body
    escalated_mail = [m.id for m in stack.outbox("OPS-7") if m.channel == "mail"]
    assert f"Ref: {escalated_mail[0]}" in body

    jira = vendor.delivered("/rest/api/3/")
    assert len(jira) == 2  # the assignment to L1 and the escalation to L2, once each
    puts = [c for calls in jira.values() for c in calls if c.method == "PUT"]
    assert sorted(c.body["accountId"] for c in puts) == ["acc-finn", "dana"]
    assert all(len(calls) == 2 for calls in jira.values())  # PUT assignee + POST comment
    assert hook_id not in jira


def json_bytes(body: object) -> bytes:
    """The body as the receiver got it (compact JSON, as the channel sends it)."""
    import json

    return json.dumps(body, separators=(",", ":")).encode()


def test_writeback_retries_500_and_429_and_shows_failures_on_the_timeline(
    outbound_stack: OutboundStack, vendor: VendorServer
) -> None:
    """Jira answers 500, then 429 Retry-After: 2; the write-back lands once, after >= 2 s."""
    vendor.fail_next(500)
    vendor.fail_next(429, retry_after="2")
    stack = outbound_stack(tier_s=3600.0)
    stack.producer.send(event("issue.opened", "OPS-8", source="jira"))
    stack.wait_for(
        lambda: any(
            m.channel == "writeback:jira" and m.state == "sent" for m in stack.outbox("OPS-8")
        ),
        30,
        "the write-back after its retries",
    )
    calls = [c for c in vendor.calls if c.path.startswith("/rest/api/3/")]
    assert [c.status for c in calls] == [500, 429, 200, 200]
    assert calls[2].at - calls[1].at >= 1.9  # Retry-After honoured
    [row] = [m for m in stack.outbox("OPS-8") if m.channel == "writeback:jira"]
    assert row.attempts == 3
    failures = [e for e in stack.timeline("OPS-8", "jira") if e.kind == "writeback_failed"]
    assert len(failures) == 2 and "HTTP 429" in failures[1].message


def test_github_and_zendesk_writebacks_have_the_documented_shape(
    outbound_stack: OutboundStack, vendor: VendorServer
) -> None:
    """Opened issues from GitHub and Zendesk are written back; the server accepts every call."""
    stack = outbound_stack(tier_s=3600.0)
    stack.producer.send_many(
        [
            event("issue.opened", "42", source="github"),
            event("issue.opened", "99", source="zendesk"),
        ]
    )
    stack.wait_for(
        lambda: (
            all(m.state == "sent" for key in ("42", "99") for m in stack.outbox(key))
            and len(stack.outbox("42")) == 2
            and len(stack.outbox("99")) == 2
        ),
        30,
        "both write-backs sent",
    )
    assert all(c.status == 200 for c in vendor.calls), [(c.path, c.status) for c in vendor.calls]
    paths = sorted({(c.method, c.path) for c in vendor.calls})
    assert ("PUT", "/api/v2/tickets/99.json") in paths
    assert ("POST", "/repos/acme/shop/issues/42/labels") in paths
    assert ("POST", "/repos/acme/shop/issues/42/comments") in paths


def test_acknowledged_during_retry_backoff_the_escalation_is_still_delivered(
    outbound_stack: OutboundStack, vendor: VendorServer, smtp: SmtpServer
) -> None:
    """The escalated webhook fails; the issue is acknowledged in the backoff; the retry still
    delivers it, once: the escalation happened, and L2 holds the issue now."""
    for _ in range(2):  # the first attempts of the escalated webhook and email go... to 500
        vendor.fail_next(500)
    stack = outbound_stack(
        tier_s=2.0, ESCALATOR_DELIVERY_BACKOFF_S="5", ESCALATOR_DELIVERY_BACKOFF_MAX_S="5"
    )
    stack.producer.send(event("issue.opened", "OPS-9", source="custom"))
    stack.wait_for(
        lambda: any(c.path == "/hook" and c.status == 500 for c in vendor.calls),
        30,
        "the failed escalated webhook",
    )
    stack.producer.send(event("issue.acknowledged", "OPS-9", source="custom"))

    def acknowledged() -> bool:
        issue = stack.issue("OPS-9", source="custom")
        assert issue is not None
        return issue.lifecycle == "acknowledged"

    stack.wait_for(acknowledged, 15, "the ack")

    def escalated_to_l2() -> OutboxMessage | None:
        return next(
            (
                m
                for m in stack.outbox("OPS-9")
                if m.channel == "sink" and m.kind == "escalated" and m.payload["tier"] == "L2"
            ),
            None,
        )

    stack.wait_for(  # received, then recorded as sent
        lambda: (row := escalated_to_l2()) is not None and row.state == "sent",
        60,
        "the escalated webhook's retry",
    )
    row = escalated_to_l2()
    assert row is not None and row.attempts >= 2
    assert len(vendor.delivered("/hook")[row.id]) == 1  # once, after its failure
