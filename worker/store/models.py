"""SQLAlchemy 2 models: the source of truth. Redis only mirrors what is armed here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from worker.domain.states import DeadlineState, OutboxState

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Key = tuple[str, str]  # an issue's (source, external id)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Issue(Base):
    """An issue of a ticket system, with its SLA clock."""

    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(50))
    external_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(100))
    assignee: Mapped[str | None] = mapped_column(String(200))
    labels: Mapped[list[str]] = mapped_column(default=list)
    url: Mapped[str | None] = mapped_column(Text)
    policy_name: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[str] = mapped_column(String(32), default="")
    lifecycle: Mapped[str] = mapped_column(String(20), index=True)
    tier_index: Mapped[int] = mapped_column(Integer, default=0)
    tier: Mapped[str] = mapped_column(String(100))
    clock_version: Mapped[int] = mapped_column(Integer, default=1)
    cycle_started_at: Mapped[datetime]
    lifecycle_at: Mapped[datetime]
    snapshot_at: Mapped[datetime]
    snoozed_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # One entry per SLA target of the current cycle (worker/store/repository.py maps them to
    # worker/domain/sla.py: TargetClock). Read and written with the issue, always.
    clocks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    @property
    def key(self) -> str:
        """`source:external_id`, how people name the issue."""
        return f"{self.source}:{self.external_id}"


class Deadline(Base):
    """A point in time at which something must happen unless the issue moves on first."""

    __tablename__ = "deadlines"
    __table_args__ = (Index("ix_deadlines_state_due_at", "state", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    issue: Mapped[Issue] = relationship()
    kind: Mapped[str] = mapped_column(String(20))  # warn|breach|escalate|remind|resume
    target: Mapped[str] = mapped_column(String(30), default="acknowledge")
    tier_index: Mapped[int] = mapped_column(Integer)  # the ladder step it was armed at
    budget_s: Mapped[float] = mapped_column(Float, default=0.0)  # target time at which it falls
    fraction: Mapped[float | None] = mapped_column(Float)  # warnings: the fraction of the target
    clock_version: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20), default=DeadlineState.ARMED)
    fired_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)


class PolicyVersion(Base):
    """A policy file as it was when issues were opened under it: issues keep their version."""

    __tablename__ = "policy_versions"

    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class TimelineEntry(Base):
    """Everything that happened to an issue, in order: events, escalations, notifications."""

    __tablename__ = "timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    issue: Mapped[Issue] = relationship()
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProcessedEvent(Base):
    """Every event id ever applied or ignored: the dedup record, and (for backtests) the event's
    contents until `ESCALATOR_EVENT_RETENTION_DAYS` (`worker.store.event_bodies`)."""

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_occurred_at", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    issue: Mapped[Issue | None] = relationship()
    stream_id: Mapped[str | None] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))  # applied|ignored
    processed_at: Mapped[datetime]
    # the event minus the columns above, zlib-compressed JSON; None once pruned (or before 0006)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)


class OutboxMessage(Base):
    """A notification written with the state change that caused it, delivered at least once."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        # outbound: digest windows and cancellations look rows up by channel
        Index("ix_outbox_channel_state_next_attempt_at", "channel", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    issue: Mapped[Issue] = relationship()
    channel: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    # the SLA target an escalation, reminder, warning or breach is about (None: not one of those,
    # an escalation request, or a row written before 0004)
    target: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    # pending|sent|dead, and (outbound) cancelled|merged (carried by a digest)
    state: Mapped[str] = mapped_column(String(20), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class ParkedEvent(Base):
    """An event that arrived before its issue's `issue.opened`: applied, in order of occurrence,
    when the open arrives; dead-lettered if it has not after the parking window."""

    __tablename__ = "parked_events"
    __table_args__ = (Index("ix_parked_events_source_external_id", "source", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(50))
    external_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    stream_id: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # the event's JSON, as validated at the door
    parked_at: Mapped[datetime] = mapped_column(index=True)
