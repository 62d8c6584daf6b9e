"""every processed event keeps its contents (compressed) for backtests

Revision ID: 0006_event_bodies
Revises: 0005_parked_events
Create Date: 2026-12-01 13:00:00

`processed_events.body` holds the event minus its id, type and time, as zlib-compressed JSON
(`worker/store/event_bodies.py`), so that `escalator policy backtest` can replay real history
under another policy; the housekeeping drops bodies older than ESCALATOR_EVENT_RETENTION_DAYS.
The index on `occurred_at` finds a period's events and the bodies to prune.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_event_bodies"
down_revision = "0005_parked_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
    op.create_index(
        "ix_processed_events_occurred_at", "processed_events", ["occurred_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_processed_events_occurred_at", table_name="processed_events")
    with op.batch_alter_table("processed_events") as batch:
        batch.drop_column("body")
