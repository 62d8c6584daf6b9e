"""outbound: an outbox index for digest windows and per-channel look-ups

Revision ID: 0003_outbound
Revises: 0002
Create Date: 2026-11-23 13:30:00

The outbox gains no column: digests, cancellations and write-backs are rows with states
`merged` and `cancelled` and channels `writeback:ADAPTER`, which fit the existing columns.
"""

from alembic import op

revision = "0003_outbound"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_channel_state_next_attempt_at",
            ["channel", "state", "next_attempt_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_channel_state_next_attempt_at")
