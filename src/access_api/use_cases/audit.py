"""Reading the audit trail of a tenant and everything below it."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from access_api.domain.access import Scope
from access_api.domain.audit import AuditEvent
from access_api.pagination import After, Page
from access_api.use_cases.work import Work


async def list_events(
    work: Work,
    scope: Scope,
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
    """Events recorded in the scope's tenant and below it, filtered, newest first by default."""
    return await work.audit.list(
        scope.tenant,
        action=action,
        actor_id=actor_id,
        target_id=target_id,
        since=since,
        until=until,
        descending=descending,
        after=after,
        limit=limit,
    )
