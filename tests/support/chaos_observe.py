"""What did happen in a chaos run: read from the database, the dead-letter stream and the sink."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from tests.support.chaos_load import SOURCE, TIERS
from tests.support.sink import Sink
from tests.support.stack import Stack
from tests.support.streams import entries
from worker.broker.keys import DEAD_STREAM
from worker.store.models import Deadline, Issue, OutboxMessage, ProcessedEvent, TimelineEntry

MOVE = re.compile(r"escalated ([^\s:]+) → ([^\s:]+)")


@dataclass(frozen=True)
class Move:
    """One `escalate` timeline entry: the tiers it moved between, when, by which deadline."""

    frm: str
    to: str
    at: float
    deadline_id: int | None

    def steps(self) -> range:
        """The ladder steps it covers (step k: the move to TIERS[k])."""
        if self.frm not in TIERS or self.to not in TIERS:
            return range(0)
        return range(TIERS.index(self.frm) + 1, TIERS.index(self.to) + 1)


@dataclass(frozen=True)
class Fired:
    """A deadline row of a chaos issue."""

    id: int
    issue: str
    kind: str
    target: str
    step: int
    budget_s: float
    cycle: int
    due_at: float
    state: str
    fired_at: float | None


class Row(NamedTuple):
    """An outbox message of a chaos issue."""

    channel: str
    state: str
    attempts: int
    kind: str
    issue: str
    tier: str  # the tier the message names (for `escalated`: the tier that took the issue)


@dataclass
class Observed:
    moves: dict[str, list[Move]] = field(default_factory=lambda: defaultdict(list))
    reminds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    fired_by_entry: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    deadlines: list[Fired] = field(default_factory=list)
    processed: set[str] = field(default_factory=set)
    outbox: dict[str, Row] = field(default_factory=dict)
    unparsed: list[str] = field(default_factory=list)  # escalate entries we could not read
    state: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (lifecycle, tier)


def processed_ids(stack: Stack) -> set[str]:
    with stack.sessions() as s:
        return set(s.scalars(select(ProcessedEvent.event_id)))


def pending_sink(stack: Stack) -> int:
    """Sink-channel messages of chaos issues still pending."""
    with stack.sessions() as s:
        rows = s.scalars(
            select(OutboxMessage.id)
            .join(Issue)
            .where(Issue.source == SOURCE, OutboxMessage.state == "pending")
        )
        return len(list(rows))


def observe(stack: Stack) -> Observed:
    """Everything the oracle needs from the database, in one pass."""
    seen = Observed()
    with stack.sessions() as s:
        rows = s.execute(
            select(Issue.external_id, TimelineEntry)
            .join(TimelineEntry, TimelineEntry.issue_id == Issue.id)
            .where(Issue.source == SOURCE, TimelineEntry.kind.in_(("escalate", "remind")))
            .order_by(TimelineEntry.id)
        )
        for key, entry in rows:
            deadline_id = (entry.data or {}).get("deadline_id")
            if deadline_id is not None:
                seen.fired_by_entry[int(deadline_id)] += 1
            if entry.kind == "remind":
                seen.reminds[key].append(entry.at.timestamp())
                continue
            found = MOVE.search(entry.message)
            if not found:
                seen.unparsed.append(f"{key}: {entry.message}")
                continue
            seen.moves[key].append(Move(found[1], found[2], entry.at.timestamp(), deadline_id))
        for key, d in s.execute(
            select(Issue.external_id, Deadline).join(Deadline).where(Issue.source == SOURCE)
        ):
            fired = d.fired_at.timestamp() if d.fired_at else None
            seen.deadlines.append(
                Fired(d.id, key, d.kind, d.target, d.tier_index, d.budget_s, d.clock_version,
                      d.due_at.timestamp(), d.state, fired)
            )  # fmt: skip
        for key, m in s.execute(
            select(Issue.external_id, OutboxMessage).join(Issue).where(Issue.source == SOURCE)
        ):
            tier = str((m.payload or {}).get("tier", ""))
            seen.outbox[m.id] = Row(m.channel, m.state, m.attempts, m.kind, key, tier)
        seen.processed = set(s.scalars(select(ProcessedEvent.event_id)))
        for key, lifecycle, tier in s.execute(
            select(Issue.external_id, Issue.lifecycle, Issue.tier).where(Issue.source == SOURCE)
        ):
            seen.state[key] = (lifecycle, tier)
    return seen


def dead_letters(redis: Redis) -> list[dict[str, Any]]:
    """Every entry of the dead-letter stream now (empty if Redis does not answer)."""
    try:
        return [dict(fields) for _, fields in entries(redis.xrange(DEAD_STREAM))]
    except RedisError:
        return []


def dead_event_id(entry: dict[str, Any]) -> str:
    """The event id a dead letter carries, if its JSON has one."""
    try:
        return str(json.loads(entry.get("event", "")).get("event_id", ""))
    except (ValueError, AttributeError):
        return ""


def sink_ids(sink: Sink, path: str) -> tuple[dict[str, str], int, int]:
    """What the sink has received on `path` (this run's own) so far: each webhook-id
    (deduplicated) with its kind and issue, how many requests in all, and how many came to
    another path (from another test session's worker, posting to a port reused since)."""
    everything = list(sink.received)
    ours = [r for r in everything if r.path == path]
    about = {}
    for r in ours:
        try:
            body = r.json()
            what = f"{body.get('kind')} {body.get('issue', {}).get('key')}"
        except (ValueError, AttributeError):
            what = "(body not JSON)"
        about[r.headers.get("webhook-id", "")] = what
    return about, len(ours), len(everything) - len(ours)
