"""What a dry run reads before it rolls back: the events the change recorded, who keeps any
access, and which credentials would stop."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.audit import AuditEvent
from access_api.repositories.audit import to_event
from access_api.repositories.orm import (
    agents,
    api_keys,
    audit_events,
    authorizations,
    sessions,
    tenant_closure,
    tenants,
)


class DryRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def events(self, root_id: UUID, since: datetime, request_id: str) -> list[AuditEvent]:
        """The events this request recorded (an index range on the tree's recent events)."""
        rows = await self.session.execute(
            sa.select(audit_events)
            .where(
                audit_events.c.root_id == root_id,
                audit_events.c.at >= since,
                audit_events.c.request_id == request_id,
            )
            .order_by(audit_events.c.at, audit_events.c.id)
        )
        return [to_event(row) for row in rows]

    async def reaching(self, root_id: UUID, now: datetime) -> set[UUID]:
        """The tree's users who hold a live grant on a live tenant no disabled tenant sits
        above: who can do anything in it at all."""
        above = tenants.alias("above")
        disabled_above = sa.exists().where(
            tenant_closure.c.descendant_id == authorizations.c.tenant_id,
            above.c.id == tenant_closure.c.ancestor_id,
            above.c.status == "disabled",
        )
        rows = await self.session.execute(
            sa.select(authorizations.c.user_id)
            .join(tenants, tenants.c.id == authorizations.c.tenant_id)
            .where(
                authorizations.c.root_id == root_id,
                sa.or_(authorizations.c.expires_at.is_(None), authorizations.c.expires_at > now),
                tenants.c.deleted_at.is_(None),
                ~disabled_above,
            )
            .distinct()
        )
        return set(rows.scalars())

    async def credentials_of(
        self, root_id: UUID, user_ids: Iterable[UUID], now: datetime
    ) -> tuple[list[UUID], list[UUID], int]:
        """Live API keys and registered agents of these users in the tree, and their open
        sessions: what stops working for them there."""
        ids = set(user_ids)
        if not ids:
            return [], [], 0
        keys = await self.session.execute(
            sa.select(api_keys.c.id).where(
                api_keys.c.root_id == root_id,
                api_keys.c.user_id.in_(ids),
                api_keys.c.revoked_at.is_(None),
                sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
            )
        )
        running = await self.session.execute(
            sa.select(agents.c.id).where(
                agents.c.root_id == root_id,
                agents.c.user_id.in_(ids),
                agents.c.status == "registered",
            )
        )
        count = await self.session.scalar(
            sa.select(sa.func.count())
            .select_from(sessions)
            .where(sessions.c.user_id.in_(ids), sessions.c.ended_at.is_(None))
        )
        return sorted(keys.scalars()), sorted(running.scalars()), int(count or 0)
