"""outbox rows name the SLA target they are about

Revision ID: 0004_outbox_target
Revises: 0003_outbound
Create Date: 2026-11-23 16:00:00

An escalation, reminder, warning or breach belongs to one target's clock (acknowledge,
first_response, next_response, resolve). Meeting that target makes its unsent messages moot;
meeting another does not (an acknowledgement must not cancel the resolve ladder's escalation).
Rows written before this revision have no target: only resolving the issue makes them moot.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_outbox_target"
down_revision = "0003_outbound"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("target")
