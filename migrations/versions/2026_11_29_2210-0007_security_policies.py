"""security policy per tenant

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 22:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "security_policies",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("require_two_factor", sa.Boolean(), nullable=True),
        sa.Column(
            "allowed_ip_ranges",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=True,
        ),
        sa.Column("max_session_timeout_minutes", sa.Integer(), nullable=True),
        sa.Column("password_min_length", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_id"], ["tenants.id"], name=op.f("fk_security_policies_root_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_security_policies_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_security_policies")),
    )
    with op.batch_alter_table("security_policies", schema=None) as batch_op:
        batch_op.create_index("ix_security_policies_root_id", ["root_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("security_policies", schema=None) as batch_op:
        batch_op.drop_index("ix_security_policies_root_id")
    op.drop_table("security_policies")
