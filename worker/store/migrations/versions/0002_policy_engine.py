"""policy engine: SLA target clocks on issues, policy versions, warnings and snoozes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policy_versions")),
    )
    with op.batch_alter_table("issues") as batch:
        batch.add_column(
            sa.Column("policy_version", sa.String(length=32), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("clocks", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("deadlines") as batch:
        batch.add_column(
            sa.Column("target", sa.String(length=30), nullable=False, server_default="acknowledge")
        )
        batch.add_column(sa.Column("budget_s", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("fraction", sa.Float(), nullable=True))
    # 0.1's resolve deadlines are the resolve target's breach. Issues of 0.1 have no target
    # clocks yet: `escalator policy apply --replan` plans them under the current file.
    op.execute("UPDATE deadlines SET kind = 'breach', target = 'resolve' WHERE kind = 'resolve'")


def downgrade() -> None:
    with op.batch_alter_table("deadlines") as batch:
        batch.drop_column("fraction")
        batch.drop_column("budget_s")
        batch.drop_column("target")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("clocks")
        batch.drop_column("snoozed_until")
        batch.drop_column("policy_version")
    op.drop_table("policy_versions")
