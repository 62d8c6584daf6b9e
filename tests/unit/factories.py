"""Builders shared by the unit tests: events, policies and a hand-made Container."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import IssueEvent
from schemas.policy import PolicyFile
from worker.bootstrap import Container
from worker.broker.effects import BrokerEffects
from worker.services.uow import Effects
from worker.store.models import Issue

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def event_dict(
    type_: str = "issue.opened",
    issue_id: str = "OPS-1",
    at: datetime = T0,
    severity: str = "P1",
    event_id: str | None = None,
    source: str = "jira",
    **issue: Any,
) -> dict[str, Any]:
    """A valid event as producers send it (JSON-ready)."""
    return {
        "event_id": event_id or f"evt-{next(_ids)}",
        "type": type_,
        "occurred_at": at.isoformat(),
        "source": source,
        "issue": {"id": issue_id, "title": f"{issue_id} is down", "severity": severity, **issue},
    }


def event_json(*args: Any, **kwargs: Any) -> str:
    """A valid event as the raw stream field value."""
    return json.dumps(event_dict(*args, **kwargs))


def event(*args: Any, **kwargs: Any) -> IssueEvent:
    """A valid, parsed event."""
    return IssueEvent.model_validate(event_dict(*args, **kwargs))


def ladder_policies(
    steps: tuple[tuple[str, str], ...] = (("L1", "5m"), ("L2", "10m"), ("L3", "15m")),
    renotify: str | None = "15m",
    resolve: str | None = "4h",
    channels: tuple[str, ...] = ("log",),
) -> PolicyFile:
    """A one-policy file whose ladder is `steps` (tier name, within)."""
    acknowledge: dict[str, Any] = {"ladder": [{"tier": t, "within": w} for t, w in steps]}
    if renotify:
        acknowledge["renotify_every"] = renotify
    policy: dict[str, Any] = {"name": "only", "acknowledge": acknowledge}
    if resolve:
        policy["resolve"] = {"within": resolve}
    return PolicyFile.model_validate(
        {
            "channels": {name: {"type": "log"} for name in ("log", *channels)},
            "tiers": [
                {"name": t, "assignee": f"{t.lower()}-oncall", "channels": list(channels)}
                for t, _ in steps
            ],
            "policies": [policy],
            "default": "only",
        }
    )


def minutes(n: float) -> timedelta:
    """`n` minutes."""
    return timedelta(minutes=n)


def run_effects(c: Container, effects: Effects) -> None:
    """Run effects as a unit of work does after its commit, on the container as it is now."""
    BrokerEffects(c.index, c.marks, c.tasks, c.clock, c.settings)(effects)


def issue_row(external_id: str = "OPS-1", **fields: Any) -> Issue:
    """An issue row as the store holds one, open at L1 since T0 (for tests of the store and
    the unit of work, which need a row, not an issue's history)."""
    return Issue(**issue_fields(external_id, **fields))


def issue_fields(external_id: str = "OPS-1", **fields: Any) -> dict[str, Any]:
    """The columns of `issue_row`: also what a write path's `IssueRow` is built from."""
    values: dict[str, Any] = {
        "source": "jira",
        "external_id": external_id,
        "severity": "P1",
        "status": "open",
        "policy_name": "default",
        "lifecycle": "open",
        "tier": "L1",
        "cycle_started_at": T0,
        "lifecycle_at": T0,
        "snapshot_at": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    return values | fields
