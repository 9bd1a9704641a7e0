"""The audit trail: append-only, written in the same transaction as the change it records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.audit import Actor, ActorKind, AuditEvent
from access_api.domain.tenants import Tenant
from access_api.repositories.bulk import insert_rows
from access_api.repositories.orm import audit_events, tenant_closure
from access_api.repositories.pagination import After, Page, SortKey, fetch_page


def to_event(row: Any) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        actor=Actor(user_id=row.actor_user_id, kind=ActorKind(row.actor_kind)),
        root_id=row.root_id,
        tenant_id=row.tenant_id,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        changes=row.changes,
        request_id=row.request_id,
        ip=row.ip,
    )


def audit_row(event: AuditEvent) -> dict[str, Any]:
    """An event as the values of its audit_events row."""
    return {
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


def insert_one() -> tuple[sa.Insert, Callable[[AuditEvent], dict[str, Any]]]:
    """An INSERT of one event with parameters named apart from any other statement's (to
    ride in another statement's WITH), and the function giving an event's parameters."""
    statement = sa.insert(audit_events).values(
        {
            column: sa.bindparam(f"audit_{column.name}", type_=column.type)
            for column in audit_events.columns
        }
    )

    def parameters(event: AuditEvent) -> dict[str, Any]:
        return {f"audit_{name}": value for name, value in audit_row(event).items()}

    return statement, parameters


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, events: Iterable[AuditEvent]) -> None:
        await insert_rows(self.session, audit_events, [audit_row(event) for event in events])

    async def list(
        self,
        context: Tenant,
        *,
        action: str | None,
        actor_id: UUID | None,
        target_id: UUID | None,
        since: datetime | None,
        until: datetime | None,
        descending: bool,
        after: After | None,
        limit: int,
    ) -> Page[AuditEvent]:
        """Events of the context tenant and every tenant below it (deleted ones included)."""
        statement = sa.select(audit_events)
        if context.parent_id is None:
            statement = statement.where(audit_events.c.root_id == context.id)
        else:
            statement = statement.where(
                audit_events.c.tenant_id.in_(
                    sa.select(tenant_closure.c.descendant_id).where(
                        tenant_closure.c.ancestor_id == context.id
                    )
                )
            )
        if action is not None:
            statement = statement.where(audit_events.c.action == action)
        if actor_id is not None:
            statement = statement.where(audit_events.c.actor_user_id == actor_id)
        if target_id is not None:
            statement = statement.where(audit_events.c.target_id == target_id)
        if since is not None:
            statement = statement.where(audit_events.c.at >= since)
        if until is not None:
            statement = statement.where(audit_events.c.at < until)
        return await fetch_page(
            self.session,
            statement,
            key=SortKey(audit_events.c.at),
            id_column=audit_events.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_event,
        )
