"""Which unsent messages an event makes moot: those about the target it met, nothing else.

An acknowledgement ends the acknowledge ladder; it must not silence the resolve ladder's
escalation to the manager, a warning about the resolve time, or an escalation someone asked
for. Resolving ends everything. Checked when the event is applied and again at send time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from schemas.policy import PolicyFile
from worker.domain.clock import ManualClock
from worker.errors import DeliveryError
from worker.services.deliver import deliver, deliver_many
from worker.services.fire import fire
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.models import Deadline, OutboxMessage

from .factories import T0, event_json
from .test_dispatcher import FakeChannel, fails, ok

_events = iter(range(1, 10_000))


def policies() -> PolicyFile:
    """Acknowledge: L1 for 5m (warn at 60%). First response: 30m (warn at 50%).
    Resolve: L1 for 1h, then the manager (M) for 1h (warn at 25%)."""
    return PolicyFile.model_validate(
        {
            "channels": {"log": {"type": "log"}},
            "tiers": [
                {"name": "L1", "assignee": "ana", "channels": ["log"]},
                {"name": "L2", "assignee": "ben", "channels": ["log"]},
                {"name": "M", "assignee": "max", "channels": ["log"]},
            ],
            "policies": [
                {
                    "name": "p",
                    "acknowledge": {
                        "warn_at": [0.6],
                        "ladder": [{"tier": "L1", "within": "5m"}, {"tier": "L2", "within": "5m"}],
                    },
                    "first_response": {"within": "30m", "warn_at": [0.5]},
                    "resolve": {
                        "warn_at": [0.25],
                        "ladder": [{"tier": "L1", "within": "1h"}, {"tier": "M", "within": "1h"}],
                    },
                }
            ],
            "default": "p",
        }
    )


def send(
    sessions: sessionmaker[Session], clock: ManualClock, type_: str, **fields: object
) -> list[str]:
    """Apply one event at the clock's time; the ids of the messages it wrote."""
    line = event_json(type_, at=clock.now(), **fields)
    return apply_batch(
        Units(sessions), [(f"{next(_events)}-0", line)], POLICIES, clock
    ).effects.outbox


def fire_next(
    sessions: sessionmaker[Session], clock: ManualClock, target: str, kind: str
) -> list[str]:
    """Move the clock to the armed `kind` deadline of `target` and fire it; the messages."""
    with sessions() as s:
        deadline = s.scalars(
            select(Deadline).where(
                Deadline.target == target, Deadline.kind == kind, Deadline.state == "armed"
            )
        ).one()
    clock.set(max(clock.now(), deadline.due_at))
    result = fire(Units(sessions), POLICIES, clock, deadline.id)
    assert result.fired, result.note
    return result.effects.outbox


def row(sessions: sessionmaker[Session], message_id: str) -> OutboxMessage:
    """The stored outbox row."""
    with sessions() as s:
        return s.get_one(OutboxMessage, message_id)


POLICIES = policies()


@pytest.fixture
def opened(sessions: sessionmaker[Session], clock: ManualClock) -> datetime:
    """OPS-1 opened at T0 under POLICIES (its `assigned` message stays pending)."""
    send(sessions, clock, "issue.opened")
    return T0


def test_messages_name_their_target(
    sessions: sessionmaker[Session], clock: ManualClock, opened: datetime
) -> None:
    """A fired deadline's messages carry its target, in the row and in the payload."""
    [mid] = fire_next(sessions, clock, "acknowledge", "warn")
    stored = row(sessions, mid)
    assert stored.kind == "warning" and stored.target == "acknowledge"
    assert stored.payload["target"] == "acknowledge"


@pytest.mark.parametrize("path", ["deliver", "deliver_many"])
def test_resolve_ladder_escalation_after_acknowledgement_is_sent(
    sessions: sessionmaker[Session],
    clock: ManualClock,
    settings: Settings,
    opened: datetime,
    path: str,
) -> None:
    """Acknowledged but not resolved in 1h: the manager hears of it (the issue is acknowledged
    when the message is sent, which silences only acknowledge-ladder messages)."""
    clock.set(T0 + timedelta(minutes=1))
    send(sessions, clock, "issue.acknowledged")
    [mid] = fire_next(sessions, clock, "resolve", "escalate")
    channel = FakeChannel(ok)
    if path == "deliver":
        outcome = deliver(Units(sessions), {"log": channel}, clock, settings, mid)
    else:
        outcome = deliver_many(Units(sessions), {"log": channel}, clock, settings, [mid])[mid]
    assert outcome.state == "sent"
    [message] = channel.received
    assert (message.kind.value, message.tier, message.target) == ("escalated", "M", "resolve")


def test_acknowledgement_cancels_the_acknowledge_warning_in_its_backoff(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, opened: datetime
) -> None:
    """The 60% acknowledge warning failed once; acknowledging cancels it before its retry."""
    [mid] = fire_next(sessions, clock, "acknowledge", "warn")
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "retry"
    send(sessions, clock, "issue.acknowledged")
    stored = row(sessions, mid)
    assert stored.state == "cancelled" and "acknowledge met" in (stored.last_error or "")
    clock.advance(timedelta(minutes=5))
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "skipped"
    assert len(channel.received) == 1  # only the failed first attempt


def test_acknowledgement_keeps_a_resolve_warning_and_resolving_cancels_it(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, opened: datetime
) -> None:
    """A warning about the resolve time survives the acknowledgement; the resolution ends it."""
    clock.set(T0 + timedelta(minutes=1))
    send(sessions, clock, "issue.acknowledged")
    [mid] = fire_next(sessions, clock, "resolve", "warn")
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "retry"
    send(sessions, clock, "issue.acknowledged", event_id="ack-again")  # a repeat changes nothing
    assert row(sessions, mid).state == "pending"
    send(sessions, clock, "issue.resolved")
    assert row(sessions, mid).state == "cancelled"


def test_response_cancels_the_first_response_warning_not_the_resolve_one(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, opened: datetime
) -> None:
    """`issue.responded` meets first response (and acknowledge): only their messages go."""
    clock.set(T0 + timedelta(minutes=1))
    send(sessions, clock, "issue.acknowledged")
    [resolve_warning] = fire_next(sessions, clock, "resolve", "warn")
    [response_warning] = fire_next(sessions, clock, "first_response", "warn")
    send(sessions, clock, "issue.responded")
    assert row(sessions, response_warning).state == "cancelled"
    assert row(sessions, resolve_warning).state == "pending"
    channel = FakeChannel(ok)
    outcomes = deliver_many(
        Units(sessions), {"log": channel}, clock, settings, [resolve_warning, response_warning]
    )
    assert outcomes[resolve_warning].state == "sent"
    assert [m.target for m in channel.received] == ["resolve"]


def test_a_breach_notice_is_sent_though_its_target_is_met_late(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, opened: datetime
) -> None:
    """First response breached at 30m; the notice waits for a retry when the response comes.
    The breach happened: the notice is still sent (only resolving silences breaches)."""
    [mid] = fire_next(sessions, clock, "first_response", "breach")
    channel = FakeChannel(fails(DeliveryError("down")), ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "retry"
    send(sessions, clock, "issue.responded")
    assert row(sessions, mid).state == "pending"
    clock.advance(timedelta(minutes=5))
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "sent"
    send(sessions, clock, "issue.resolved")
    assert row(sessions, mid).state == "sent"


def test_requested_escalation_after_acknowledgement_is_sent(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, opened: datetime
) -> None:
    """Someone asks to escalate an acknowledged issue: that message is not silenced."""
    clock.set(T0 + timedelta(minutes=1))
    send(sessions, clock, "issue.acknowledged")
    [mid] = send(sessions, clock, "issue.escalation_requested")
    channel = FakeChannel(ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "sent"
    assert channel.received[0].kind.value == "escalated"


def test_moot_at_send_time_when_no_event_cancelled_it(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, opened: datetime
) -> None:
    """Written after the acknowledgement's cancel ran (a late firing racing it), an
    acknowledge warning is still not sent: the dispatcher checks the clocks."""
    [mid] = fire_next(sessions, clock, "acknowledge", "warn")
    with sessions() as s, s.begin():  # as if the acknowledgement had committed first
        s.get_one(OutboxMessage, mid).state = "sending"
    send(sessions, clock, "issue.acknowledged")
    with sessions() as s, s.begin():
        s.get_one(OutboxMessage, mid).state = "pending"
    channel = FakeChannel(ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "cancelled"
    assert channel.received == []
    assert "acknowledge target met" in (row(sessions, mid).last_error or "")


def test_an_escalation_is_sent_after_the_acknowledgement_that_followed_it(
    sessions: sessionmaker[Session], clock: ManualClock, settings: Settings, opened: datetime
) -> None:
    """L1's deadline passed before the acknowledgement: L2 holds the issue now and is told so,
    even when the notice is sent after the acknowledgement was applied."""
    [mid] = fire_next(sessions, clock, "acknowledge", "escalate")
    send(sessions, clock, "issue.acknowledged")
    channel = FakeChannel(ok)
    assert deliver(Units(sessions), {"log": channel}, clock, settings, mid).state == "sent"
    assert [(m.kind.value, m.tier) for m in channel.received] == [("escalated", "L2")]
