"""API keys: found by the keyed digest of their secret, listed per user and tree."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.api_keys import TOUCH_INTERVAL, ApiKey
from access_api.repositories.orm import api_keys, audit_events, members, users
from access_api.repositories.pagination import After, Page, SortKey, fetch_page

API_KEY_SORTS: dict[str, SortKey] = {
    "created_at": SortKey(api_keys.c.created_at),
    "name": SortKey(api_keys.c.name),
}


# What to_api_key reads: every column but the secret's digest.
KEY_KEYS = tuple(column.key for column in api_keys.c if column.key != "secret_hash")


def to_api_key(row: Row[Any] | Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        root_id=row.root_id,
        user_id=row.user_id,
        name=row.name,
        prefix=row.prefix,
        created_by=row.created_by,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        permissions=frozenset(row.permissions) if row.permissions is not None else None,
        tenant_ids=(
            frozenset(UUID(t) for t in row.tenant_ids) if row.tenant_ids is not None else None
        ),
    )


def _scope_values(key: ApiKey) -> dict[str, Any]:
    return {
        "permissions": sorted(key.permissions) if key.permissions is not None else None,
        "tenant_ids": sorted(map(str, key.tenant_ids)) if key.tenant_ids is not None else None,
    }


def key_user_is_member() -> sa.Exists:
    """Whether a key's user still belongs to the tree the key was made in (a key works only
    while they do), read beside the key."""
    return sa.exists().where(
        members.c.root_id == api_keys.c.root_id, members.c.user_id == api_keys.c.user_id
    )


# Built once: this runs on every request made with a key.
_RESOLVE = (
    sa.select(api_keys, users.c.email, key_user_is_member().label("member"))
    .join(users, users.c.id == api_keys.c.user_id)
    .where(api_keys.c.secret_hash == sa.bindparam("digest"))
)


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, key: ApiKey, secret_digest: str) -> None:
        await self.session.execute(
            sa.insert(api_keys).values(
                id=key.id,
                root_id=key.root_id,
                user_id=key.user_id,
                name=key.name,
                prefix=key.prefix,
                secret_hash=secret_digest,
                created_by=key.created_by,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
                expires_at=key.expires_at,
                revoked_at=key.revoked_at,
                **_scope_values(key),
            )
        )

    async def resolve(self, secret_digest: str) -> tuple[ApiKey, str, bool] | None:
        """The key, its user's email, and whether that user still belongs to the key's tree:
        one indexed query per request."""
        row = (await self.session.execute(_RESOLVE, {"digest": secret_digest})).first()
        if row is None:
            return None
        return to_api_key(row), row.email, bool(row.member)

    async def touch(self, key_id: UUID, now: datetime) -> None:
        """Record a use, at most once a minute per key, even when requests race."""
        await self.session.execute(
            sa.update(api_keys)
            .where(
                api_keys.c.id == key_id,
                sa.or_(
                    api_keys.c.last_used_at.is_(None),
                    api_keys.c.last_used_at <= now - TOUCH_INTERVAL,
                ),
            )
            .values(last_used_at=now)
        )

    async def get(self, key_id: UUID, user_id: UUID, root_id: UUID) -> tuple[ApiKey, str] | None:
        """One of a user's keys in one tree, with the digest of its current secret."""
        row = (
            await self.session.execute(
                sa.select(api_keys).where(
                    api_keys.c.id == key_id,
                    api_keys.c.user_id == user_id,
                    api_keys.c.root_id == root_id,
                )
            )
        ).first()
        return (to_api_key(row), row.secret_hash) if row else None

    async def list_live(
        self,
        user_id: UUID,
        root_id: UUID,
        *,
        sort: str,
        descending: bool,
        after: After | None,
        limit: int,
    ) -> Page[ApiKey]:
        """A user's keys in one tree that were not revoked (expired ones are listed, so people
        see why an integration stopped)."""
        statement = sa.select(api_keys).where(
            api_keys.c.user_id == user_id,
            api_keys.c.root_id == root_id,
            api_keys.c.revoked_at.is_(None),
        )
        return await fetch_page(
            self.session,
            statement,
            key=API_KEY_SORTS[sort],
            id_column=api_keys.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_api_key,
        )

    async def last_regenerated_at(self, key_id: UUID) -> datetime | None:
        """When the key's secret was last replaced, as the audit trail (same transactions)
        records it."""
        found: datetime | None = await self.session.scalar(
            sa.select(audit_events.c.at)
            .where(
                audit_events.c.target_id == key_id,
                audit_events.c.action == "api_key.regenerated",
            )
            .order_by(audit_events.c.at.desc())
            .limit(1)
        )
        return found

    async def replace_secret(self, key: ApiKey, *, old_digest: str, new_digest: str) -> bool:
        """Swap the secret only if nobody else changed it since it was read (nor revoked the
        key): of parallel regenerations, each answer either holds the secret that works or
        learns it lost. The row count decides."""
        result = await self.session.execute(
            sa.update(api_keys)
            .where(
                api_keys.c.id == key.id,
                api_keys.c.secret_hash == old_digest,
                api_keys.c.revoked_at.is_(None),
            )
            .values(secret_hash=new_digest, prefix=key.prefix, **_scope_values(key))
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke(self, key_id: UUID, now: datetime) -> bool:
        result = await self.session.execute(
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_for_users(
        self, user_ids: Iterable[UUID], root_id: UUID, now: datetime
    ) -> list[ApiKey]:
        """Revoke every live key of these users in one tree (bulk revoke, user deletion);
        returns the keys revoked, for the audit trail."""
        ids = set(user_ids)
        if not ids:
            return []
        rows = await self.session.execute(
            sa.update(api_keys)
            .where(
                api_keys.c.user_id.in_(ids),
                api_keys.c.root_id == root_id,
                api_keys.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(*api_keys.c)
        )
        return sorted((to_api_key(row) for row in rows), key=lambda key: key.id)
