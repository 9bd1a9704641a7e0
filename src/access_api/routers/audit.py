"""The audit trail of a tenant and everything below it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel

from access_api.dependencies import Work, requires
from access_api.domain.access import Scope
from access_api.domain.audit import ActorKind, AuditEvent, catalog
from access_api.domain.permissions import Permission
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
    split_sort,
)
from access_api.use_cases import audit

router = api_router(prefix="/v1/tenants", tags=["audit"], responses=SCOPED_PROBLEMS)

ReadAudit = Annotated[Scope, requires(Permission.AUDIT_READ)]


def _catalog_description() -> str:
    """The action catalog, from the code: every `action` an event can carry, and what its
    target is. Webhooks publish the same catalog."""
    rows = "\n".join(f"| `{a['action']}` | `{a['target_type']}` |" for a in catalog())
    return (
        "Events are filtered with `action`, `actor_id`, `target_id`, `since` and `until`.\n\n"
        "The actions an event can record, each with the type of its `target`:\n\n"
        "| action | target type |\n| --- | --- |\n" + rows + "\n"
    )


class ActorOut(BaseModel):
    user_id: UUID | None
    kind: ActorKind


class TargetOut(BaseModel):
    type: str
    id: UUID | None


class AuditEventOut(BaseModel):
    id: UUID
    at: datetime
    actor: ActorOut
    tenant_id: UUID | None
    action: str
    target: TargetOut
    changes: dict[str, Any]
    request_id: str | None
    ip: str | None

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            at=event.at,
            actor=ActorOut(user_id=event.actor.user_id, kind=event.actor.kind),
            tenant_id=event.tenant_id,
            action=event.action,
            target=TargetOut(type=event.target_type, id=event.target_id),
            changes=event.changes,
            request_id=event.request_id,
            ip=event.ip,
        )


@router.get(
    "/{tenant_id}/audit-events",
    summary="Every change in this account and below it",
    description=_catalog_description(),
)
async def list_audit_events(
    scope: ReadAudit,
    work: Work,
    action: Annotated[str | None, Query(max_length=64, examples=["user.deleted"])] = None,
    actor_id: UUID | None = None,
    target_id: UUID | None = None,
    since: Annotated[datetime | None, Query(description="From this time, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="Before this time")] = None,
    sort: Literal["at", "-at"] = "-at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[AuditEventOut]:
    _, descending = split_sort(sort)
    page = await audit.list_events(
        work,
        scope,
        action=action,
        actor_id=actor_id,
        target_id=target_id,
        since=since,
        until=until,
        descending=descending,
        after=work.state.cursors.decode(cursor, sort),
        limit=limit,
    )
    return page_of(page, AuditEventOut.of, work.state.cursors, sort)
