"""The contents of every processed event, kept compactly beside its dedup record, so that a
backtest can replay real history under another policy (`escalator policy backtest`).

A `processed_events` row already holds the event's id, type and time; `body` holds the rest
(source, issue snapshot, snooze end, actor) as JSON without default values, compressed with
zlib at level 1: some 120-200 bytes an event, packed in ~10 µs on the ingest path. Bodies older
than `ESCALATOR_EVENT_RETENTION_DAYS` are dropped by the scheduler's housekeeping (`prune`);
the row itself stays, as the dedup record it always was.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from schemas.events import IssueEvent
from worker.store.models import ProcessedEvent

PROCESSED = cast(Table, ProcessedEvent.__table__)
_ON_THE_ROW = {"event_id", "type", "occurred_at"}
LEVEL = 1  # zlib: the fastest level; the JSON is short and repetitive enough


def pack(event: IssueEvent) -> bytes:
    """The event minus what its row holds, as compressed JSON."""
    text = event.model_dump_json(exclude=_ON_THE_ROW, exclude_defaults=True)
    return zlib.compress(text.encode(), LEVEL)


def unpack(event_id: str, type: str, occurred_at: datetime, body: bytes) -> IssueEvent:
    """The event as it was applied (a parked event: at the time it was applied at)."""
    data: dict[str, Any] = json.loads(zlib.decompress(body))
    data.update(event_id=event_id, type=type, occurred_at=occurred_at)
    return IssueEvent.model_validate(data)


def prune(session: Session, before: datetime) -> int:
    """Drop the bodies of events that occurred before `before`; how many rows lost theirs."""
    result = session.execute(
        update(PROCESSED)
        .where(PROCESSED.c.occurred_at < before, PROCESSED.c.body.is_not(None))
        .values(body=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)
