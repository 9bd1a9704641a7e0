"""single sign-on connections, logins in flight, SCIM settings and directory

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 22:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sso_connections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("root_id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("client_secret", sa.String(length=1024), nullable=False),
        sa.Column("jit_enabled", sa.Boolean(), nullable=False),
        sa.Column("jit_roles", JSON, nullable=False),
        sa.Column("jit_include_descendants", sa.Boolean(), nullable=False),
        sa.Column("enforce", sa.Boolean(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_sso_connections_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["root_id"], ["tenants.id"], name=op.f("fk_sso_connections_root_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_connections")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_sso_connections_tenant_id")),
    )
    op.create_table(
        "sso_domains",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_domains_connection_id_sso_connections"),
        ),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_sso_domains")),
    )
    op.create_index("ix_sso_domains_connection_id", "sso_domains", ["connection_id"])
    op.create_table(
        "sso_logins",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("nonce", sa.String(length=1024), nullable=False),
        sa.Column("code_verifier", sa.String(length=1024), nullable=False),
        _at("created_at"),
        _at("expires_at"),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_logins_connection_id_sso_connections"),
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_sso_logins")),
    )
    op.create_table(
        "sso_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        _at("created_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sso_codes_user_id_users")),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_codes_connection_id_sso_connections"),
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_sso_codes")),
    )
    op.create_table(
        "scim_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("default_roles", JSON, nullable=False),
        sa.Column("include_descendants", sa.Boolean(), nullable=False),
        sa.Column("user_count", sa.Integer(), nullable=False),
        _at("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_scim_settings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_scim_settings")),
    )
    op.create_table(
        "scim_users",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("user_name", sa.String(length=320), nullable=False),
        sa.Column("user_name_key", sa.String(length=320), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_scim_users_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_scim_users_user_id_users")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_scim_users")),
    )
    op.create_index(
        "uq_scim_users_tenant_id_user_name_key",
        "scim_users",
        ["tenant_id", "user_name_key"],
        unique=True,
    )


def downgrade() -> None:
    for table in (
        "scim_users",
        "scim_settings",
        "sso_codes",
        "sso_logins",
        "sso_domains",
        "sso_connections",
    ):
        op.drop_table(table)
