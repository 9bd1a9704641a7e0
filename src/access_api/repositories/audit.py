"""The audit trail: append-only, written in the same transaction as the change it records."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.audit import AuditEvent
from access_api.repositories.orm import audit_events


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, events: Iterable[AuditEvent]) -> None:
        rows = [
            {
                "id": event.id,
                "at": event.at,
                "actor_user_id": event.actor.user_id,
                "actor_kind": event.actor.kind.value,
                "root_id": event.root_id,
                "tenant_id": event.tenant_id,
                "action": event.action,
                "target_type": event.target_type,
                "target_id": event.target_id,
                "changes": event.changes,
                "request_id": event.request_id,
                "ip": event.ip,
            }
            for event in events
        ]
        if rows:
            await self.session.execute(sa.insert(audit_events), rows)
