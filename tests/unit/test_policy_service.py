"""Policy versions on stored issues: kept per issue, moved by `apply --replan`, explained."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from worker.domain.clock import ManualClock
from worker.services.ingest import apply_batch
from worker.services.policy import explain, open_issue_count, replan_open
from worker.services.uow import Units
from worker.store.models import Deadline, Issue, PolicyVersion, TimelineEntry
from worker.store.policy_versions import version_of

from .factories import T0, event_json, ladder_policies, minutes


def breaches(sessions: sessionmaker[Session], issue_id: str) -> list[tuple[str, object]]:
    with sessions() as session:
        return [
            (d.state, d.due_at)
            for d in session.scalars(
                select(Deadline)
                .join(Issue)
                .where(Issue.external_id == issue_id, Deadline.kind == "breach")
                .order_by(Deadline.id)
            )
        ]


def test_an_issue_keeps_its_version_until_apply_replan_moves_it(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """Resolve 4 h → 1 h: a new issue gets 1 h, the open one keeps 4 h until it is re-planned."""
    old, new = ladder_policies(resolve="4h"), ladder_policies(resolve="1h")
    apply_batch(Units(sessions), [("1-0", event_json(issue_id="OLD-1", at=T0))], old, clock)
    clock.set(T0 + minutes(10))
    opened = event_json(issue_id="NEW-1", at=T0 + minutes(10))
    apply_batch(Units(sessions), [("2-0", opened)], new, clock)
    update = event_json("issue.updated", issue_id="OLD-1", at=T0 + minutes(11))
    apply_batch(Units(sessions), [("2-1", update)], new, clock)  # an event under the new file
    assert breaches(sessions, "OLD-1") == [("armed", T0 + timedelta(hours=4))]
    assert breaches(sessions, "NEW-1") == [("armed", T0 + minutes(70))]
    with sessions() as session:
        versions = set(session.scalars(select(PolicyVersion.version)))
    assert versions == {version_of(old), version_of(new)}
    assert open_issue_count(sessions, version_of(new)) == 1

    report = replan_open(Units(sessions), new, T0 + minutes(12))
    assert report.replanned == 1 and report.version == version_of(new)
    assert report.effects.arm and all(isinstance(i, int) for i, _ in report.effects.arm)
    assert report.effects.disarm  # the 4 h breach, dropped from the index
    assert breaches(sessions, "OLD-1") == [
        ("cancelled", T0 + timedelta(hours=4)),
        ("armed", T0 + timedelta(hours=1)),  # from the original start, not from now
    ]
    assert open_issue_count(sessions, version_of(new)) == 0
    with sessions() as session:
        notes = list(
            session.scalars(select(TimelineEntry.message).where(TimelineEntry.kind == "policy"))
        )
    assert len(notes) == 1 and "policy applied" in notes[0]
    assert replan_open(Units(sessions), new, T0 + minutes(13)).replanned == 0  # idempotent


def test_explain_names_the_matching_conditions_and_each_target(
    sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    """The explanation shows why the policy matched and each target's clock and next deadline."""
    policies = ladder_policies()
    apply_batch(Units(sessions), [("1-0", event_json(issue_id="EX-1", at=T0))], policies, clock)
    with sessions() as session:
        issue = session.scalars(select(Issue)).one()
        lines = explain(session, issue, policies, T0 + minutes(2))
    text = "\n".join(lines)
    assert "is under policy 'only'" in text and "(the current file)" in text
    assert "→ only: no conditions" in text
    assert "acknowledge (24x7): running, 3m left; 2m of 5m counted, held by L1" in text
    assert "resolve (24x7): running, 3h58m left; 2m of 4h counted" in text
    assert "next: escalate at 2024-03-04T09:05:00+00:00" in text
