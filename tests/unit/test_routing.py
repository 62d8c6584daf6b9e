"""Routing and the outbox (worker/services/outbox/write.py): per kind,
on-call assignee, write-back, cancel."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import PACKAGED_POLICY
from schemas.policy import PolicyFile
from worker.domain.clock import ManualClock
from worker.services.fire import fire
from worker.services.ingest import apply_batch
from worker.services.policy_loader import load_policy
from worker.services.uow import Units
from worker.store.models import Deadline, Issue, OutboxMessage

from .factories import T0, event_json, minutes


def outbound_policies(**extra: Any) -> PolicyFile:
    """Two tiers: L1 (a fixed roster) routes per kind; L2 (a daily rotation) takes a list."""
    data: dict[str, Any] = {
        "channels": {
            "log": {"type": "log"},
            "chat": {"type": "apprise", "url": "slack://{secret:slack}"},
            "pager": {"type": "webhook", "url": "https://pager.example.com/hook"},
        },
        "rosters": {
            "first": {"members": ["ana", "ben"]},
            "second": {
                "members": ["cat", "dan"],
                "shift": "1d",
                "handoff": "08:00",
                "timezone": "Europe/Berlin",
                "start": "2024-03-04",
            },
        },
        "tiers": [
            {
                "name": "L1",
                "roster": "first",
                "channels": {"assigned": ["chat"], "resolved": ["log"], "default": ["log"]},
            },
            {"name": "L2", "roster": "second", "channels": ["chat", "pager"]},
        ],
        "policies": [
            {
                "name": "p",
                "acknowledge": {
                    "ladder": [{"tier": "L1", "within": "5m"}, {"tier": "L2", "within": "10m"}]
                },
            }
        ],
        "default": "p",
        "writeback": {"jira": "jira"},
    }
    data.update(extra)
    return PolicyFile.model_validate(data)


def rows(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    """(kind, channel, state) of every outbox row, sorted."""
    with sessions() as s:
        return sorted(
            (r.kind, r.channel, r.state)
            for r in s.scalars(
                select(OutboxMessage).order_by(OutboxMessage.created_at, OutboxMessage.id)
            )
        )


def test_existing_policy_files_stay_valid() -> None:
    """The packaged policy (channels as lists) still loads, and a list routes every kind."""
    packaged = load_policy(PACKAGED_POLICY)
    assert packaged.tiers[0].channels_for("breach") == ("log",)
    assert packaged.rosters == {} and packaged.writeback == {}


def test_mapping_routes_each_kind_with_a_default() -> None:
    """A mapping sends each kind to its channels; unlisted kinds go to `default`."""
    tier = outbound_policies().tier("L1")
    assert tier is not None
    assert tier.channels_for("assigned") == ("chat",)
    assert tier.channels_for("breach") == ("log",)


def test_unknown_channel_in_a_mapping_and_bad_template_key_are_refused() -> None:
    """A mapping naming a missing channel, or a template for no kind, fails validation."""
    with pytest.raises(ValidationError, match="no channel named 'nope'"):
        outbound_policies(tiers=[{"name": "L1", "channels": {"breach": ["nope"]}}, {"name": "L2"}])
    with pytest.raises(ValidationError, match="no kind or channel"):
        outbound_policies(templates={"escalated.nope": {"title": "x"}})
    with pytest.raises(ValidationError):
        outbound_policies(
            tiers=[{"name": "L1", "channels": {"sometimes": ["log"]}}, {"name": "L2"}]
        )


def test_opening_assigns_on_call_routes_by_kind_and_writes_back(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """issue.opened: the roster's person is assignee; `assigned` goes to chat; Jira write-back."""
    policies = outbound_policies()
    apply_batch(Units(sessions), [("1-0", event_json(at=T0))], policies, clock)
    with sessions() as s:
        issue = s.scalars(select(Issue)).one()
        assert (issue.tier, issue.assignee) == ("L1", "ana")
        payloads = {r.channel: r.payload for r in s.scalars(select(OutboxMessage))}
    assert rows(sessions) == [
        ("assigned", "chat", "pending"),
        ("assigned", "writeback:jira", "pending"),
    ]
    assert payloads["chat"]["people"] == ["ana", "ben"]
    assert payloads["chat"]["due_at"] is not None  # L1's deadline, for `time left`


def test_escalation_assigns_whoever_is_on_call_at_that_moment(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """Escalating to L2 at 09:05 UTC (10:05 Berlin, day 1) assigns the rotation's cat."""
    policies = outbound_policies()
    batch = apply_batch(Units(sessions), [("1-0", event_json(at=T0))], policies, clock)
    [(deadline_id, due)] = [a for a in batch.effects.arm]
    clock.set(due)
    result = fire(Units(sessions), policies, clock, deadline_id)
    assert result.fired
    with sessions() as s:
        issue = s.scalars(select(Issue)).one()
        # 2024-03-04 08:00 Berlin starts cat's shift; on 2024-03-04 10:05 Berlin it is cat's.
        assert (issue.tier, issue.assignee) == ("L2", "cat")
    escalated = sorted(r for r in rows(sessions) if r[0] == "escalated")
    assert escalated == [
        ("escalated", "chat", "pending"),
        ("escalated", "pager", "pending"),
        ("escalated", "writeback:jira", "pending"),
    ]


def test_acknowledge_cancels_pending_escalations_but_not_writebacks_or_resolved(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """issue.acknowledged cancels unsent escalated messages; write-backs and resolved stay."""
    policies = outbound_policies()
    batch = apply_batch(Units(sessions), [("1-0", event_json(at=T0))], policies, clock)
    [(deadline_id, due)] = batch.effects.arm
    clock.set(due)
    fire(Units(sessions), policies, clock, deadline_id)
    clock.advance(minutes(1))
    apply_batch(
        Units(sessions),
        [
            ("2-0", event_json("issue.acknowledged", at=due + minutes(1))),
            ("3-0", event_json("issue.resolved", at=due + minutes(2))),
        ],
        policies,
        clock,
    )
    states = rows(sessions)
    assert ("escalated", "chat", "cancelled") in states
    assert ("escalated", "pager", "cancelled") in states
    assert ("escalated", "writeback:jira", "pending") in states
    assert ("assigned", "chat", "pending") in states  # assigned is not cancelled
    assert sorted(r for r in states if r[0] == "resolved") == [
        ("resolved", "chat", "pending"),
        ("resolved", "pager", "pending"),
    ]
    with sessions() as s:
        assert all(d.state != "armed" for d in s.scalars(select(Deadline)))


def test_open_and_acknowledge_in_one_batch_cancels_the_unflushed_rows(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """Rows written earlier in the same transaction are cancelled too (cancel_pending)."""
    policies = outbound_policies(
        tiers=[
            {"name": "L1", "assignee": "x", "channels": {"default": ["log"]}},
            {"name": "L2", "channels": ["log"]},
        ]
    )
    apply_batch(
        Units(sessions),
        [
            ("1-0", event_json(at=T0)),
            ("2-0", event_json("issue.acknowledged", at=T0 + minutes(1))),
        ],
        policies,
        clock,
    )
    assert ("assigned", "log", "pending") in rows(sessions)  # only escalated/reminder/warning go


def test_a_firing_indexes_the_deadlines_it_arms_by_their_stored_ids(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """The next step's deadline that an escalation arms goes to the index with its database
    id (the unit flushes before it hands the effects on), never without one."""
    policies = outbound_policies()
    apply_batch(Units(sessions), [("1-0", event_json(at=T0))], policies, clock)
    with sessions() as s:
        first = s.scalars(
            select(Deadline).where(Deadline.kind == "escalate").order_by(Deadline.due_at)
        ).first()
        assert first is not None
        deadline_id, due = first.id, first.due_at
    clock.set(due)
    result = fire(Units(sessions), policies, clock, deadline_id)
    assert result.fired and result.effects.arm
    with sessions() as s:
        stored = {
            d.id: d.due_at for d in s.scalars(select(Deadline).where(Deadline.state == "armed"))
        }
    assert all(isinstance(i, int) for i, _ in result.effects.arm)
    assert {i for i, _ in result.effects.arm} <= set(stored)
