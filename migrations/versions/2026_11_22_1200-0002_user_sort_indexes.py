"""user list indexes for every sort

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 12:22:04.186364+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_users_email_key_id", ["email_key", "id"], unique=False)
        batch_op.create_index("ix_users_first_name_id", ["first_name", "id"], unique=False)
        batch_op.create_index("ix_users_last_login_at_id", ["last_login_at", "id"], unique=False)
        batch_op.create_index("ix_users_last_name_id", ["last_name", "id"], unique=False)
        batch_op.create_index(
            "ix_users_two_factor_email_key_id", ["two_factor", "email_key", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_two_factor_email_key_id")
        batch_op.drop_index("ix_users_last_name_id")
        batch_op.drop_index("ix_users_last_login_at_id")
        batch_op.drop_index("ix_users_first_name_id")
        batch_op.drop_index("ix_users_email_key_id")
        batch_op.drop_index("ix_users_created_at_id")
