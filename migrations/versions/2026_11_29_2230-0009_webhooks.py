"""webhook endpoints, their delivery attempts, an outbox shared by mail and webhooks, and
scoped API keys, and time-limited offers in invitations

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 22:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNSENT = sa.text("sent_at IS NULL AND failed_at IS NULL")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("invitation_grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("permissions", _JSON, nullable=True))
        batch_op.add_column(sa.Column("tenant_ids", _JSON, nullable=True))

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=16), nullable=False, server_default="mail")
        )
        batch_op.drop_index("ix_outbox_available_at_id_unsent")
        batch_op.create_index(
            "ix_outbox_channel_available_at_id_unsent",
            ["channel", "available_at", "id"],
            unique=False,
            postgresql_where=_UNSENT,
            sqlite_where=_UNSENT,
        )

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("event_types", _JSON, nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('enabled', 'disabled')", name=op.f("ck_webhook_endpoints_status")
        ),
        sa.ForeignKeyConstraint(
            ["root_id"], ["tenants.id"], name=op.f("fk_webhook_endpoints_root_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_webhook_endpoints_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_endpoints_tenant_id_created_at_id",
            ["tenant_id", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_attempts_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_attempts_endpoint_id_at_id", ["endpoint_id", "at", "id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_channel_available_at_id_unsent")
        batch_op.create_index(
            "ix_outbox_available_at_id_unsent",
            ["available_at", "id"],
            unique=False,
            postgresql_where=_UNSENT,
            sqlite_where=_UNSENT,
        )
        batch_op.drop_column("channel")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("tenant_ids")
        batch_op.drop_column("permissions")
    with op.batch_alter_table("invitation_grants", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
