"""Members of a tree, and who a tenant can see: the facts behind "is this person here"."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.repositories.dialect import insert
from access_api.repositories.orm import authorizations, members, tenant_closure, users


def live(now: datetime | sa.BindParameter[datetime]) -> sa.ColumnElement[bool]:
    """A grant that has not ended."""
    return sa.or_(authorizations.c.expires_at.is_(None), authorizations.c.expires_at > now)


def reaching(context_id: UUID, root_id: UUID, now: datetime) -> sa.ColumnElement[bool]:
    """A live grant that reaches the context or lies below it (at the root: any in the tree)."""
    if context_id == root_id:
        return sa.and_(authorizations.c.root_id == root_id, live(now))
    below = sa.select(tenant_closure.c.descendant_id).where(
        tenant_closure.c.ancestor_id == context_id
    )
    above = sa.select(tenant_closure.c.ancestor_id).where(
        tenant_closure.c.descendant_id == context_id, tenant_closure.c.depth > 0
    )
    return sa.and_(
        live(now),
        sa.or_(
            authorizations.c.tenant_id.in_(below),
            sa.and_(authorizations.c.include_descendants, authorizations.c.tenant_id.in_(above)),
        ),
    )


def visible(
    user_id: sa.ColumnElement[UUID], context_id: UUID, root_id: UUID, now: datetime
) -> sa.ColumnElement[bool]:
    """The user is visible from the context: at the root every member of the tree (roleless
    ones too, so they can be given a role again); below it, those with a live grant on it or
    below, or an inheritable grant above it. The one definition, for lists and for checks."""
    if context_id == root_id:
        return sa.exists().where(members.c.root_id == root_id, members.c.user_id == user_id)
    return sa.exists().where(
        authorizations.c.user_id == user_id, reaching(context_id, root_id, now)
    )


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_member(self, root_id: UUID, user_id: UUID, now: datetime) -> None:
        await self.session.execute(
            insert(self.session, members)
            .values(root_id=root_id, user_id=user_id, created_at=now)
            .on_conflict_do_nothing(index_elements=["root_id", "user_id"])
        )

    async def members_among(self, root_id: UUID, user_ids: Iterable[UUID]) -> frozenset[UUID]:
        ids = set(user_ids)
        if not ids:
            return frozenset()
        rows = await self.session.execute(
            sa.select(members.c.user_id).where(
                members.c.root_id == root_id, members.c.user_id.in_(ids)
            )
        )
        return frozenset(rows.scalars())

    async def remove_members(self, root_id: UUID, user_ids: Iterable[UUID]) -> None:
        ids = set(user_ids)
        if ids:
            await self.session.execute(
                sa.delete(members).where(members.c.root_id == root_id, members.c.user_id.in_(ids))
            )

    async def with_live_grants(
        self, root_id: UUID, user_ids: Iterable[UUID], now: datetime
    ) -> frozenset[UUID]:
        """Those of the users with a live grant somewhere in the tree."""
        ids = set(user_ids)
        if not ids:
            return frozenset()
        rows = await self.session.execute(
            sa.select(authorizations.c.user_id)
            .where(
                authorizations.c.root_id == root_id,
                authorizations.c.user_id.in_(ids),
                live(now),
            )
            .distinct()
        )
        return frozenset(rows.scalars())

    async def grantable_users(
        self,
        caller_id: UUID,
        context_id: UUID,
        root_id: UUID,
        user_ids: Iterable[UUID],
        now: datetime,
    ) -> frozenset[UUID]:
        """Users a grant made from the context may name: those visible from the context, or
        from any account above it where the caller holds a grant themself (an MSP admin
        authorizes the MSP's users on a new client, seed 002; a client admin only the client's)."""
        ids = set(user_ids)
        ancestors = await self.session.execute(
            sa.select(tenant_closure.c.ancestor_id)
            .join(
                authorizations,
                sa.and_(
                    authorizations.c.tenant_id == tenant_closure.c.ancestor_id,
                    authorizations.c.user_id == caller_id,
                ),
            )
            .where(tenant_closure.c.descendant_id == context_id, live(now))
        )
        found: set[UUID] = set()
        for tenant_id in {context_id, *ancestors.scalars()}:
            found |= await self.visible_from(tenant_id, root_id, ids - found, now)
            if found == ids:
                break
        return frozenset(found)

    async def visible_from(
        self, context_id: UUID, root_id: UUID, user_ids: Iterable[UUID], now: datetime
    ) -> frozenset[UUID]:
        """Those of the users the context can see (see `visible`)."""
        ids = set(user_ids)
        if not ids:
            return frozenset()
        rows = await self.session.execute(
            sa.select(users.c.id).where(
                users.c.id.in_(ids), visible(users.c.id, context_id, root_id, now)
            )
        )
        return frozenset(rows.scalars())
