"""tenants.live_descendants: how many live tenants are below each one, so that GET /v1/me
counts the tenants a caller reaches without reading them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 11:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("live_descendants", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE tenants SET live_descendants = ("
        " SELECT count(*) FROM tenant_closure"
        " JOIN tenants AS below ON below.id = tenant_closure.descendant_id"
        " WHERE tenant_closure.ancestor_id = tenants.id AND tenant_closure.depth > 0"
        " AND below.deleted_at IS NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("live_descendants")
