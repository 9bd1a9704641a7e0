"""two-factor resets and email sign-in codes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 13:21:16.305882+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_codes")),
    )
    with op.batch_alter_table("email_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_codes_user_id_created_at", ["user_id", "created_at"], unique=False
        )

    op.create_table(
        "two_factor_resets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("confirm_token_hash", sa.String(length=64), nullable=True),
        sa.Column("deny_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'denied', 'expired')",
            name=op.f("ck_two_factor_resets_status"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_two_factor_resets_requested_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["root_id"], ["tenants.id"], name=op.f("fk_two_factor_resets_root_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_two_factor_resets_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_two_factor_resets_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_two_factor_resets")),
        sa.UniqueConstraint(
            "confirm_token_hash", name=op.f("uq_two_factor_resets_confirm_token_hash")
        ),
        sa.UniqueConstraint("deny_token_hash", name=op.f("uq_two_factor_resets_deny_token_hash")),
    )
    with op.batch_alter_table("two_factor_resets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_two_factor_resets_tenant_id_created_at_id",
            ["tenant_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_two_factor_resets_user_id_status", ["user_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("two_factor_resets", schema=None) as batch_op:
        batch_op.drop_index("ix_two_factor_resets_user_id_status")
        batch_op.drop_index("ix_two_factor_resets_tenant_id_created_at_id")

    op.drop_table("two_factor_resets")
    with op.batch_alter_table("email_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_email_codes_user_id_created_at")

    op.drop_table("email_codes")
