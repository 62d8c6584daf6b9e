"""events that arrive before their issue's open are parked, not dead-lettered

Revision ID: 0005_parked_events
Revises: 0004_outbox_target
Create Date: 2026-12-01 04:00:00

An acknowledgement, update or resolve for an issue whose `issue.opened` has not been applied yet
(it is in another consumer's batch, or the source sent it first) waits here, durably, and is
applied in order of occurrence right after the open; after the parking window it becomes a dead
letter with that reason.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_parked_events"
down_revision = "0004_outbox_target"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stream_id", sa.String(length=40), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parked_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_parked_events_event_id")),
    )
    op.create_index(
        "ix_parked_events_source_external_id",
        "parked_events",
        ["source", "external_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_parked_events_parked_at"), "parked_events", ["parked_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_parked_events_parked_at"), table_name="parked_events")
    op.drop_index("ix_parked_events_source_external_id", table_name="parked_events")
    op.drop_table("parked_events")
