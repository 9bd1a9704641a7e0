"""ix_tenants_root_id_name_id: a tree's tenants by name, for GET /v1/me/tenants to walk a tree
page by page; it replaces ix_tenants_root_id, its first column

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 13:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.create_index("ix_tenants_root_id_name_id", ["root_id", "name", "id"], unique=False)
        batch_op.drop_index("ix_tenants_root_id")


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.create_index("ix_tenants_root_id", ["root_id"], unique=False)
        batch_op.drop_index("ix_tenants_root_id_name_id")
