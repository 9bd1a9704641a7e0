"""Agents: found by the keyed digest of their token, listed per user below a tenant."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.agents import Agent, AgentStatus
from access_api.repositories.orm import agents, tenant_closure, users
from access_api.repositories.pagination import After, Page, SortKey, fetch_page

AGENT_SORTS: dict[str, SortKey] = {
    "created_at": SortKey(agents.c.created_at),
    "name": SortKey(agents.c.name),
}


def to_agent(row: Row[Any] | Any) -> Agent:
    return Agent(
        id=row.id,
        root_id=row.root_id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        name=row.name,
        status=AgentStatus(row.status),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_seen_at=row.last_seen_at,
        token_issued_at=row.token_issued_at,
    )


def _at_or_below(context_id: UUID) -> sa.ColumnElement[bool]:
    return agents.c.tenant_id.in_(
        sa.select(tenant_closure.c.descendant_id).where(tenant_closure.c.ancestor_id == context_id)
    )


class AgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, agent: Agent, token_digest: str) -> None:
        await self.session.execute(
            sa.insert(agents).values(
                id=agent.id,
                root_id=agent.root_id,
                tenant_id=agent.tenant_id,
                user_id=agent.user_id,
                name=agent.name,
                status=agent.status.value,
                token_hash=token_digest,
                created_by=agent.created_by,
                created_at=agent.created_at,
                updated_at=agent.updated_at,
                last_seen_at=agent.last_seen_at,
                token_issued_at=agent.token_issued_at,
            )
        )

    async def resolve(self, token_digest: str) -> tuple[Agent, str] | None:
        """The agent holding this token, and its user's email."""
        row = (
            await self.session.execute(
                sa.select(agents, users.c.email)
                .join(users, users.c.id == agents.c.user_id)
                .where(agents.c.token_hash == token_digest)
            )
        ).first()
        return (to_agent(row), row.email) if row else None

    async def get(
        self, agent_id: UUID, user_id: UUID, context_id: UUID, *, for_update: bool = False
    ) -> Agent | None:
        """One of a user's agents, provisioned at or below the context."""
        statement = sa.select(agents).where(
            agents.c.id == agent_id, agents.c.user_id == user_id, _at_or_below(context_id)
        )
        if for_update:
            statement = statement.with_for_update(of=agents)
        row = (await self.session.execute(statement)).first()
        return to_agent(row) if row else None

    async def list_for(
        self,
        user_id: UUID,
        context_id: UUID,
        *,
        sort: str,
        descending: bool,
        after: After | None,
        limit: int,
    ) -> Page[Agent]:
        statement = sa.select(agents).where(agents.c.user_id == user_id, _at_or_below(context_id))
        return await fetch_page(
            self.session,
            statement,
            key=AGENT_SORTS[sort],
            id_column=agents.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_agent,
        )

    async def update(self, agent: Agent, token_digest: str | None) -> None:
        """Write a transition; token_digest replaces the token (None: the agent has none)."""
        await self.session.execute(
            sa.update(agents)
            .where(agents.c.id == agent.id)
            .values(
                status=agent.status.value,
                token_hash=token_digest,
                updated_at=agent.updated_at,
                token_issued_at=agent.token_issued_at,
            )
        )

    async def seen(self, agent_id: UUID, now: datetime) -> None:
        await self.session.execute(
            sa.update(agents).where(agents.c.id == agent_id).values(last_seen_at=now)
        )

    async def deregister_for(
        self, user_ids: Iterable[UUID], within: UUID, now: datetime
    ) -> list[Agent]:
        """Deregister every registered agent of these users at or below a tenant (user
        deletion there): their tokens die at once. Returns them, for the audit trail."""
        users_ = set(user_ids)
        if not users_:
            return []
        return await self._deregister(
            sa.and_(agents.c.user_id.in_(users_), _at_or_below(within)), now
        )

    async def deregister_in(self, tenant_ids: Iterable[UUID], now: datetime) -> list[Agent]:
        """Deregister every registered agent provisioned in these tenants (tenant deletion)."""
        ids = set(tenant_ids)
        if not ids:
            return []
        return await self._deregister(agents.c.tenant_id.in_(ids), now)

    async def _deregister(self, which: sa.ColumnElement[bool], now: datetime) -> list[Agent]:
        rows = await self.session.execute(
            sa.update(agents)
            .where(which, agents.c.status == AgentStatus.REGISTERED.value)
            .values(
                status=AgentStatus.DEREGISTERED.value,
                token_hash=None,
                token_issued_at=None,
                updated_at=now,
            )
            .returning(*agents.c)
        )
        return sorted((to_agent(row) for row in rows), key=lambda agent: agent.id)
