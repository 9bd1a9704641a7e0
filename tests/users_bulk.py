"""Many users at once, straight into the tables: for export tests and benchmarks."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from access_api.ids import new_id
from access_api.repositories.orm import authorization_roles, authorizations, members, roles, users

# A real argon2id hash of a throwaway password: nobody logs in as these users.
_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0i7Kk0x9mKj6Yv8n6mJ2yQ"


async def add_users(
    connection: AsyncConnection,
    root_id: UUID,
    tenant_id: UUID | str,
    count: int,
    now: datetime,
    *,
    batch: int = 5000,
    prefix: str = "bulk",
) -> None:
    """count members of the tree, each with read_only on tenant_id. Some names start with
    characters a spreadsheet would run as a formula."""
    tenant_id = UUID(str(tenant_id))
    (read_only,) = (
        await connection.execute(
            sa.select(roles.c.id).where(roles.c.root_id == root_id, roles.c.key == "read_only")
        )
    ).scalars()
    for start in range(0, count, batch):
        people, belongs, grants, granted = [], [], [], []
        for n in range(start, min(start + batch, count)):
            user_id, grant_id = new_id(), new_id()
            email = f"{prefix}-{n:07d}@example.com"
            people.append(
                {
                    "id": user_id,
                    "email": email,
                    "email_key": email,
                    "password_hash": _HASH,
                    "first_name": "=HYPERLINK(1)" if n % 1000 == 0 else f"First{n}",
                    "last_name": f"Last{n}",
                    "phone": None,
                    "session_timeout_minutes": 60,
                    "two_factor": "disabled",
                    "created_at": now - timedelta(seconds=n),
                    "updated_at": now,
                    "last_login_at": None,
                    "password_changed_at": now,
                }
            )
            belongs.append({"root_id": root_id, "user_id": user_id, "created_at": now})
            grants.append(
                {
                    "id": grant_id,
                    "root_id": root_id,
                    "user_id": user_id,
                    "tenant_id": tenant_id,
                    "include_descendants": False,
                    "expires_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            granted.append({"authorization_id": grant_id, "role_id": read_only})
        await connection.execute(sa.insert(users), people)
        await connection.execute(sa.insert(members), belongs)
        await connection.execute(sa.insert(authorizations), grants)
        await connection.execute(sa.insert(authorization_roles), granted)
    if connection.dialect.name == "postgresql":
        # What autovacuum does after a bulk load: without statistics the planner takes these
        # tables for empty and scans instead of walking the indexes.
        for table in ("users", "members", "authorizations", "authorization_roles"):
            await connection.exec_driver_sql(f"ANALYZE {table}")
