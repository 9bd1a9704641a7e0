"""Tenants and their closure table: reading, creating, and removing accounts of a tree."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.errors import DomainPrefixTaken
from access_api.domain.tenants import Subtree, Tenant, TenantKind, TenantStatus
from access_api.repositories.dialect import insert
from access_api.repositories.orm import (
    authorizations,
    invitation_grants,
    invitations,
    tenant_closure,
    tenants,
)
from access_api.repositories.pagination import After, Page, SortKey, fetch_page

TENANT_SORTS: dict[str, SortKey] = {
    "name": SortKey(tenants.c.name),
    "domain_prefix": SortKey(tenants.c.domain_prefix),
    "kind": SortKey(tenants.c.kind),
    "status": SortKey(tenants.c.status),
    "created_at": SortKey(tenants.c.created_at),
    "updated_at": SortKey(tenants.c.updated_at),
    "street_address": SortKey(tenants.c.street_address, nullable=True),
}

_LIVE = tenants.c.deleted_at.is_(None)


def matching(q: str, table: sa.FromClause) -> sa.ColumnElement[bool]:
    """A tenant whose name (in any case) or domain prefix holds q, wildcards taken literally."""
    pattern = f"%{escape_like(q.lower())}%"
    return sa.or_(
        sa.func.lower(table.c.name).like(pattern, escape="\\"),
        table.c.domain_prefix.like(pattern, escape="\\"),
    )


def to_tenant(row: Row[Any] | Any) -> Tenant:
    return Tenant(
        id=row.id,
        root_id=row.root_id,
        parent_id=row.parent_id,
        kind=TenantKind(row.kind),
        name=row.name,
        domain_prefix=row.domain_prefix,
        street_address=row.street_address,
        status=TenantStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "root_id": tenant.root_id,
        "parent_id": tenant.parent_id,
        "kind": tenant.kind.value,
        "name": tenant.name,
        "domain_prefix": tenant.domain_prefix,
        "street_address": tenant.street_address,
        "status": tenant.status.value,
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    }


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: UUID) -> Tenant | None:
        row = (
            await self.session.execute(sa.select(tenants).where(tenants.c.id == tenant_id, _LIVE))
        ).first()
        return to_tenant(row) if row else None

    async def by_prefix(self, domain_prefix: str) -> Tenant | None:
        row = (
            await self.session.execute(
                sa.select(tenants).where(tenants.c.domain_prefix == domain_prefix, _LIVE)
            )
        ).first()
        return to_tenant(row) if row else None

    async def insert(self, tenant: Tenant) -> None:
        """Insert a tenant and its closure rows. The live-prefix unique index decides races:
        of two creations with one prefix, the second inserts nothing and is refused."""
        statement = (
            insert(self.session, tenants)
            .values(_values(tenant))
            .on_conflict_do_nothing(index_elements=["domain_prefix"], index_where=_LIVE)
            .returning(tenants.c.id)
        )
        if (await self.session.execute(statement)).first() is None:
            raise DomainPrefixTaken(f"the domain prefix {tenant.domain_prefix!r} is in use")
        closure = [{"ancestor_id": tenant.id, "descendant_id": tenant.id, "depth": 0}]
        if tenant.parent_id is not None:
            ancestors = await self.session.execute(
                sa.select(tenant_closure.c.ancestor_id, tenant_closure.c.depth).where(
                    tenant_closure.c.descendant_id == tenant.parent_id
                )
            )
            closure += [
                {"ancestor_id": a.ancestor_id, "descendant_id": tenant.id, "depth": a.depth + 1}
                for a in ancestors
            ]
        await self.session.execute(sa.insert(tenant_closure), closure)
        above = [row["ancestor_id"] for row in closure[1:]]
        if above:  # callers hold the tree's lock (lock_tree): no two changes race on these
            await self.session.execute(
                sa.update(tenants)
                .where(tenants.c.id.in_(above))
                .values(live_descendants=tenants.c.live_descendants + 1)
            )

    async def lock_tree(self, root_id: UUID) -> None:
        """Serialize changes to a tree's access (last admin): whoever holds the root row's lock
        reads the admins as they are, not as they were when the request began."""
        await self.session.execute(
            sa.select(tenants.c.id).where(tenants.c.id == root_id).with_for_update()
        )

    async def chain(self, tenant_id: UUID) -> list[UUID]:
        """The tenant and its ancestors, nearest first."""
        rows = await self.session.execute(
            sa.select(tenant_closure.c.ancestor_id)
            .where(tenant_closure.c.descendant_id == tenant_id)
            .order_by(tenant_closure.c.depth)
        )
        return list(rows.scalars())

    async def live_descendants(self, tenant_ids: Iterable[UUID]) -> dict[UUID, int]:
        """For each live tenant among these: how many live tenants are below it."""
        ids = list(set(tenant_ids))
        if not ids:
            return {}
        rows = await self.session.execute(
            sa.select(tenants.c.id, tenants.c.live_descendants).where(tenants.c.id.in_(ids), _LIVE)
        )
        return {row.id: row.live_descendants for row in rows}

    async def chains(self, tenant_ids: Iterable[UUID]) -> dict[UUID, list[UUID]]:
        ids = list(set(tenant_ids))
        if not ids:
            return {}
        rows = await self.session.execute(
            sa.select(tenant_closure.c.descendant_id, tenant_closure.c.ancestor_id)
            .where(tenant_closure.c.descendant_id.in_(ids))
            .order_by(tenant_closure.c.descendant_id, tenant_closure.c.depth)
        )
        found: dict[UUID, list[UUID]] = {i: [] for i in ids}
        for row in rows:
            found[row.descendant_id].append(row.ancestor_id)
        return found

    async def below(
        self, context_id: UUID, ids: Sequence[UUID], *, for_update: bool = False
    ) -> dict[UUID, Tenant]:
        """Those of ids that are live tenants strictly below the context."""
        if not ids:
            return {}
        statement = (
            sa.select(tenants)
            .join(tenant_closure, tenant_closure.c.descendant_id == tenants.c.id)
            .where(
                tenant_closure.c.ancestor_id == context_id,
                tenant_closure.c.depth > 0,
                tenants.c.id.in_(set(ids)),
                _LIVE,
            )
        )
        if for_update:
            statement = statement.with_for_update(of=tenants)
        return {row.id: to_tenant(row) for row in await self.session.execute(statement)}

    async def at_or_below(self, context_id: UUID, ids: Iterable[UUID]) -> frozenset[UUID]:
        """Those of ids that are live tenants at or below the context."""
        wanted = set(ids)
        if not wanted:
            return frozenset()
        rows = await self.session.execute(
            sa.select(tenants.c.id)
            .join(tenant_closure, tenant_closure.c.descendant_id == tenants.c.id)
            .where(
                tenant_closure.c.ancestor_id == context_id,
                tenants.c.id.in_(wanted),
                _LIVE,
            )
        )
        return frozenset(rows.scalars())

    async def subtrees(
        self, context_id: UUID, ids: Sequence[UUID], *, for_update: bool = False
    ) -> dict[UUID, Subtree]:
        """Those of ids strictly below the context, each with its live descendants."""
        targets = await self.below(context_id, ids, for_update=for_update)
        if not targets:
            return {}
        rows = await self.session.execute(
            sa.select(tenant_closure.c.ancestor_id, tenant_closure.c.descendant_id)
            .join(tenants, tenants.c.id == tenant_closure.c.descendant_id)
            .where(
                tenant_closure.c.ancestor_id.in_(list(targets)),
                tenant_closure.c.depth > 0,
                _LIVE,
            )
        )
        below: dict[UUID, set[UUID]] = {tenant_id: set() for tenant_id in targets}
        for row in rows:
            below[row.ancestor_id].add(row.descendant_id)
        return {
            tenant_id: Subtree(tenant=tenant, descendant_ids=frozenset(below[tenant_id]))
            for tenant_id, tenant in targets.items()
        }

    async def update(self, tenant: Tenant) -> None:
        await self.session.execute(
            sa.update(tenants)
            .where(tenants.c.id == tenant.id)
            .values(
                name=tenant.name,
                street_address=tenant.street_address,
                status=tenant.status.value,
                updated_at=tenant.updated_at,
            )
        )

    async def delete(self, tenant_ids: Iterable[UUID], now: datetime) -> None:
        """Soft-delete, so the audit trail keeps its subjects; the prefix is free at once
        because uniqueness only counts live tenants. Grants on them go with them, and so do
        invitations: those made in them are revoked (their links die), offers on them are
        withdrawn, and a pending invitation left offering nothing is revoked too."""
        ids = list(tenant_ids)
        if not ids:
            return
        await self.session.execute(
            sa.delete(authorizations).where(authorizations.c.tenant_id.in_(ids))
        )
        await self.session.execute(
            sa.delete(invitation_grants).where(invitation_grants.c.tenant_id.in_(ids))
        )
        offers_nothing = ~sa.exists().where(invitation_grants.c.invitation_id == invitations.c.id)
        await self.session.execute(
            sa.update(invitations)
            .where(
                invitations.c.status == "pending",
                sa.or_(invitations.c.tenant_id.in_(ids), offers_nothing),
            )
            .values(status="revoked", token_hash=None, revoked_at=now, updated_at=now)
        )
        # Each tenant above one that goes counts it no more (read while it is still live, so a
        # tenant already deleted is not taken off twice). Callers hold the tree's lock.
        below = tenant_closure.alias("gone")
        gone = tenants.alias("gone_tenant")
        leaving = (
            sa.select(sa.func.count())
            .select_from(below.join(gone, gone.c.id == below.c.descendant_id))
            .where(
                below.c.ancestor_id == tenants.c.id,
                below.c.depth > 0,
                below.c.descendant_id.in_(ids),
                gone.c.deleted_at.is_(None),
            )
            .scalar_subquery()
        )
        above = (
            sa.select(tenant_closure.c.ancestor_id)
            .where(tenant_closure.c.descendant_id.in_(ids), tenant_closure.c.depth > 0)
            .scalar_subquery()
        )
        await self.session.execute(
            sa.update(tenants)
            .where(tenants.c.id.in_(above))
            .values(live_descendants=tenants.c.live_descendants - leaving)
        )
        await self.session.execute(
            sa.update(tenants).where(tenants.c.id.in_(ids)).values(deleted_at=now, updated_at=now)
        )

    async def list_below(
        self,
        context_id: UUID,
        *,
        descendants: bool,
        q: str | None,
        kind: TenantKind | None,
        status: TenantStatus | None,
        sort: str,
        descending: bool,
        after: After | None,
        limit: int,
    ) -> Page[Tenant]:
        if descendants:
            statement = (
                sa.select(tenants)
                .join(tenant_closure, tenant_closure.c.descendant_id == tenants.c.id)
                .where(tenant_closure.c.ancestor_id == context_id, tenant_closure.c.depth > 0)
            )
        else:
            statement = sa.select(tenants).where(tenants.c.parent_id == context_id)
        statement = statement.where(_LIVE)
        if q:
            statement = statement.where(matching(q, tenants))
        if kind is not None:
            statement = statement.where(tenants.c.kind == kind.value)
        if status is not None:
            statement = statement.where(tenants.c.status == status.value)
        return await fetch_page(
            self.session,
            statement,
            key=TENANT_SORTS[sort],
            id_column=tenants.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_tenant,
        )
