"""invitations and the mail outbox: offers of grants by email, their roles, outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 13:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_available_at_id_unsent",
            ["available_at", "id"],
            unique=False,
            postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
        )

    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("invited_by", sa.Uuid(), nullable=True),
        sa.Column("expires_in_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_user_id", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'expired', 'revoked')",
            name=op.f("ck_invitations_status"),
        ),
        sa.CheckConstraint(
            "expires_in_days BETWEEN 1 AND 30", name=op.f("ck_invitations_expires_in_days")
        ),
        sa.ForeignKeyConstraint(
            ["accepted_user_id"], ["users.id"], name=op.f("fk_invitations_accepted_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"], ["users.id"], name=op.f("fk_invitations_invited_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["root_id"], ["tenants.id"], name=op.f("fk_invitations_root_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invitations_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invitations_tenant_id_created_at_id",
            ["tenant_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_invitations_tenant_id_email_key_id", ["tenant_id", "email_key", "id"], unique=False
        )
        batch_op.create_index(
            "ix_invitations_tenant_id_expires_at_id",
            ["tenant_id", "expires_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_invitations_tenant_id_email_key_pending",
            ["tenant_id", "email_key"],
            unique=True,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "invitation_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("invitation_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("include_descendants", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_invitation_grants_invitation_id_invitations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invitation_grants_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation_grants")),
        sa.UniqueConstraint(
            "invitation_id", "tenant_id", name=op.f("uq_invitation_grants_invitation_id_tenant_id")
        ),
    )
    with op.batch_alter_table("invitation_grants", schema=None) as batch_op:
        batch_op.create_index("ix_invitation_grants_tenant_id", ["tenant_id"], unique=False)

    op.create_table(
        "invitation_grant_roles",
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("role_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["invitation_grants.id"],
            name=op.f("fk_invitation_grant_roles_grant_id_invitation_grants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["roles.id"],
            name=op.f("fk_invitation_grant_roles_role_id_roles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("grant_id", "role_id", name=op.f("pk_invitation_grant_roles")),
    )
    with op.batch_alter_table("invitation_grant_roles", schema=None) as batch_op:
        batch_op.create_index("ix_invitation_grant_roles_role_id", ["role_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invitation_grant_roles", schema=None) as batch_op:
        batch_op.drop_index("ix_invitation_grant_roles_role_id")

    op.drop_table("invitation_grant_roles")
    with op.batch_alter_table("invitation_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_invitation_grants_tenant_id")

    op.drop_table("invitation_grants")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_invitations_tenant_id_email_key_pending",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index("ix_invitations_tenant_id_expires_at_id")
        batch_op.drop_index("ix_invitations_tenant_id_email_key_id")
        batch_op.drop_index("ix_invitations_tenant_id_created_at_id")

    op.drop_table("invitations")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_available_at_id_unsent",
            postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
        )

    op.drop_table("outbox")
