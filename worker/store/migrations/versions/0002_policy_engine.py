"""policy engine: SLA target clocks, policy versions, warnings and snoozes

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
        "sla_clocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("running_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("spent_s", sa.Float(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_base_s", sa.Float(), nullable=False),
        sa.Column("reminded", sa.Integer(), nullable=False),
        sa.Column("warned", sa.JSON(), nullable=False),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_sla_clocks_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_clocks")),
        sa.UniqueConstraint("issue_id", "target", name=op.f("uq_sla_clocks_issue_id")),
    )
    op.create_index(op.f("ix_sla_clocks_issue_id"), "sla_clocks", ["issue_id"], unique=False)
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
        batch.drop_column("snoozed_until")
        batch.drop_column("policy_version")
    op.drop_table("policy_versions")
    op.drop_index(op.f("ix_sla_clocks_issue_id"), table_name="sla_clocks")
    op.drop_table("sla_clocks")
