"""Delivery of the outbound features: Retry-After, cancellation at send time, digests."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from schemas.messages import Notification
from schemas.policy import PolicyFile, WebhookChannel
from tests.support.posters import HttpxPoster
from worker.domain.clock import ManualClock
from worker.errors import DeliveryError, PermanentError, RateLimited
from worker.notify.channels import SignedWebhook
from worker.notify.http import check, parse_retry_after
from worker.services.deliver import deliver, deliver_many
from worker.services.ingest import apply_batch
from worker.services.outbox import Outbox, cancel_pending
from worker.services.uow import Units
from worker.store.models import Issue, OutboxMessage, TimelineEntry
from worker.store.sql import SqlStore

from .factories import T0, event_json
from .test_dispatcher import FakeChannel, fails, ok


def digest_policies(window: str = "30s") -> PolicyFile:
    """One tier whose only channel `chat` digests messages for `window`."""
    return PolicyFile.model_validate(
        {
            "channels": {"chat": {"type": "log", "digest": window}},
            "tiers": [{"name": "L1", "assignee": "ana", "channels": ["chat"]}],
            "policies": [
                {"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]}}
            ],
            "default": "p",
        }
    )


def state(sessions: sessionmaker[Session], message_id: str) -> OutboxMessage:
    """The stored row."""
    with sessions() as s:
        return s.get_one(OutboxMessage, message_id)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("0", 0.0), (None, None), ("soon", None), ("999999", 3600.0)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    """Retry-After in delta-seconds is read as is (capped at an hour); junk is ignored."""
    assert parse_retry_after(header, T0) == expected


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date is the time from now until then."""
    assert parse_retry_after(format_datetime(T0 + timedelta(seconds=90), usegmt=True), T0) == 90.0
    assert parse_retry_after(format_datetime(T0 - timedelta(seconds=90), usegmt=True), T0) == 0.0


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (429, {"retry-after": "7"}, RateLimited),
        (503, {"retry-after": "7"}, RateLimited),
        (429, {}, DeliveryError),
        (500, {}, DeliveryError),
        (404, {}, PermanentError),
    ],
)
def test_http_answers_map_to_errors(
    status: int, headers: dict[str, str], error: type[Exception]
) -> None:
    """429/503 with Retry-After are RateLimited; other 5xx and 429 retried; 4xx refused."""
    with pytest.raises(error) as caught:
        check("x", status, httpx.Headers(headers), T0)
    if error is RateLimited:
        assert isinstance(caught.value, RateLimited) and caught.value.retry_after == 7.0


def test_webhook_429_is_retried_no_sooner_than_retry_after(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, policies: PolicyFile
) -> None:
    """A 429 with Retry-After: 120 puts the next attempt 120 s away, past the 2 s backoff."""
    [mid] = apply_batch(
        Units(sessions), [("1-0", event_json(at=T0))], policies, clock
    ).effects.outbox
    transport = httpx.MockTransport(lambda _: httpx.Response(429, headers={"retry-after": "120"}))
    with httpx.Client(transport=transport) as http:
        hook = SignedWebhook(
            "log", WebhookChannel(url="https://h.example.com/x"), None, clock, HttpxPoster(http)
        )
        result = deliver(Units(sessions), {"log": hook}, clock, settings, mid)
    assert result.state == "retry" and result.retry_in == 120.0
    assert state(sessions, mid).next_attempt_at == T0 + timedelta(seconds=120)


def test_message_of_an_acknowledged_issue_is_cancelled_at_send_time(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, policies: PolicyFile
) -> None:
    """A reminder whose target was met since is not sent, even if never cancelled."""
    [mid] = apply_batch(
        Units(sessions), [("1-0", event_json(at=T0))], policies, clock
    ).effects.outbox
    with sessions() as s, s.begin():
        s.execute(update(OutboxMessage).values(kind="reminder", target="acknowledge"))
        meet(s.scalars(select(Issue)).one(), "acknowledge")
    channel = FakeChannel(ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "cancelled"
    assert channel.received == [] and state(sessions, mid).state == "cancelled"


def meet(issue: Issue, target: str) -> None:
    """Mark the issue's `target` clock met in its stored clocks, as an event meeting it would."""
    issue.lifecycle = "acknowledged"
    issue.clocks = [{**c, "state": "met"} if c["target"] == target else c for c in issue.clocks]


def test_acknowledged_during_backoff_the_retry_sends_nothing(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, policies: PolicyFile
) -> None:
    """A failed reminder, cancelled by cancel_pending in its backoff, is never retried."""
    [mid] = apply_batch(
        Units(sessions), [("1-0", event_json(at=T0))], policies, clock
    ).effects.outbox
    with sessions() as s, s.begin():
        s.execute(update(OutboxMessage).values(kind="reminder", target="acknowledge"))
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "retry"
    with sessions() as s, s.begin():
        store = SqlStore(s)
        [issue] = store.issues.lock([("jira", "OPS-1")])
        met = frozenset({"acknowledge"})
        assert cancel_pending(Outbox(store.outbox), issue, met, clock.now()) == 1
        store.flush()
    clock.advance(timedelta(hours=1))
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "skipped"
    assert len(channel.received) == 1 and state(sessions, mid).state == "cancelled"


def test_burst_to_a_digest_channel_is_held_then_sent_once_with_every_id(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings
) -> None:
    """Three issues within the window: held until it closes, then one message covering all."""
    policies = digest_policies("30s")
    ids: list[str] = []
    for n in range(3):
        batch = apply_batch(
            Units(sessions), [(f"{n}-0", event_json(issue_id=f"OPS-{n}", at=T0))], policies, clock
        )
        ids += batch.effects.outbox
        clock.advance(timedelta(seconds=5))
    channel = FakeChannel(ok)
    held = deliver(Units(sessions), {"chat": channel}, clock, settings, ids[0])
    assert held.state == "held" and held.retry_in == pytest.approx(15.0)
    clock.set(T0 + timedelta(seconds=30))
    assert deliver(Units(sessions), {"chat": channel}, clock, settings, ids[1]).state == "sent"
    for other in (ids[0], ids[2]):
        assert (
            deliver(Units(sessions), {"chat": channel}, clock, settings, other).state == "skipped"
        )
    [digest] = channel.received
    assert digest.id == ids[1] and sorted(digest.covers) == sorted(ids)
    assert len(digest.items) == 3 and digest.text.startswith("3 notifications")
    assert {state(sessions, i).state for i in ids} == {"sent"}
    with sessions() as s:
        notified = s.scalars(select(TimelineEntry).where(TimelineEntry.kind == "notified")).all()
    assert sorted(e.data["message_id"] for e in notified) == sorted(ids)


def two_in_one_window(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> list[str]:
    """OPS-0 and OPS-1 opened at T0, their messages held in one digest window; their ids."""
    ids = []
    for n in range(2):
        ids += apply_batch(
            Units(sessions), [(f"{n}-0", event_json(issue_id=f"OPS-{n}", at=T0))], policies, clock
        ).effects.outbox
    return ids


def test_digest_retry_keeps_its_id_and_contents(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings
) -> None:
    """A digest that fails is retried with the same id and the same messages."""
    policies = digest_policies("10s")
    ids = two_in_one_window(sessions, clock, policies)
    clock.set(T0 + timedelta(seconds=10))
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    assert deliver(Units(sessions), {"chat": channel}, clock, settings, ids[0]).state == "retry"
    clock.set(state(sessions, ids[0]).next_attempt_at)
    assert deliver(Units(sessions), {"chat": channel}, clock, settings, ids[0]).state == "sent"
    first, again = channel.received
    assert first == again and first.covers == (ids[0], ids[1])


@pytest.mark.parametrize("path", ["deliver", "deliver_many"])
def test_digest_retry_is_not_cancelled_for_one_moot_message(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, path: str
) -> None:
    """A digest waiting for its retry carries an escalation of OPS-0 and a message of OPS-1.
    OPS-0 is acknowledged meanwhile: the digest is still sent, else OPS-1's message is lost."""
    policies = digest_policies("10s")
    ids = two_in_one_window(sessions, clock, policies)
    with sessions() as s, s.begin():
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[0])
            .values(kind="reminder", target="acknowledge")
        )
    clock.set(T0 + timedelta(seconds=10))
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    assert deliver(Units(sessions), {"chat": channel}, clock, settings, ids[0]).state == "retry"
    ack = event_json("issue.acknowledged", issue_id="OPS-0", at=clock.now())
    apply_batch(Units(sessions), [("9-0", ack)], policies, clock)  # cancels OPS-0's own messages
    assert state(sessions, ids[0]).state == "pending"  # not the digest carrying OPS-1's
    clock.set(state(sessions, ids[0]).next_attempt_at)
    if path == "deliver":
        outcome = deliver(Units(sessions), {"chat": channel}, clock, settings, ids[0])
    else:
        outcome = deliver_many(Units(sessions), {"chat": channel}, clock, settings, [ids[0]])[
            ids[0]
        ]
    assert outcome.state == "sent"
    assert channel.received[-1].covers == (ids[0], ids[1])


def test_digest_retry_is_cancelled_when_every_message_in_it_is_moot(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings
) -> None:
    """Both issues of a digest waiting for its retry are resolved: nothing is sent."""
    policies = digest_policies("10s")
    ids = two_in_one_window(sessions, clock, policies)
    with sessions() as s, s.begin():
        s.execute(update(OutboxMessage).values(kind="reminder", target="acknowledge"))
    clock.set(T0 + timedelta(seconds=10))
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    assert deliver(Units(sessions), {"chat": channel}, clock, settings, ids[0]).state == "retry"
    with sessions() as s, s.begin():
        for issue in s.scalars(select(Issue)):
            issue.lifecycle = "resolved"
    clock.set(state(sessions, ids[0]).next_attempt_at)
    assert deliver(Units(sessions), {"chat": channel}, clock, settings, ids[0]).state == "cancelled"
    assert len(channel.received) == 1


def test_a_lone_message_in_its_window_is_sent_plainly(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings
) -> None:
    """A window with one message sends that message, not a digest of one."""
    [mid] = apply_batch(
        Units(sessions), [("1-0", event_json(at=T0))], digest_policies(), clock
    ).effects.outbox
    clock.advance(timedelta(seconds=30))
    channel = FakeChannel(ok)
    assert deliver(Units(sessions), {"chat": channel}, clock, settings, mid).state == "sent"
    assert channel.received[0].covers == () and isinstance(channel.received[0], Notification)


def test_deliver_many_sends_records_and_falls_back_like_deliver(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, policies: PolicyFile
) -> None:
    """The batch path sends each due message once, retries failures, cancels moot ones."""
    ids = []
    for n in range(4):
        ids += apply_batch(
            Units(sessions), [(f"{n}-0", event_json(issue_id=f"B-{n}", at=T0))], policies, clock
        ).effects.outbox
    with sessions() as s, s.begin():  # B-3's message is a reminder about an acknowledged issue
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[3])
            .values(kind="reminder", target="acknowledge")
        )
        meet(s.scalars(select(Issue).where(Issue.external_id == "B-3")).one(), "acknowledge")
    channel = FakeChannel(ok, fails(DeliveryError("down")), ok)
    outcomes = deliver_many(
        Units(sessions), {"log": channel}, clock, settings, [*ids, "msg_unknown"]
    )
    assert [outcomes[i].state for i in ids] == ["sent", "retry", "sent", "cancelled"]
    assert outcomes["msg_unknown"].state == "skipped"
    assert [m.id for m in channel.received] == ids[:3]
    assert [state(sessions, i).state for i in ids] == ["sent", "pending", "sent", "cancelled"]
    again = deliver_many(Units(sessions), {"log": channel}, clock, settings, ids)
    assert {o.state for o in again.values()} == {"skipped"}  # nothing sent twice
