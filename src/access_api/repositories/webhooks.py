"""Webhook endpoints and their delivery attempts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from access_api.domain.webhooks import Attempt, Endpoint, EndpointStatus
from access_api.repositories.dialect import is_postgresql
from access_api.repositories.orm import (
    tenant_closure,
    tenants,
    webhook_attempts,
    webhook_endpoints,
)
from access_api.repositories.pagination import After, Page, SortKey, fetch_page

ERROR_MAX_LENGTH = 500


def to_endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        root_id=row.root_id,
        tenant_id=row.tenant_id,
        url=row.url,
        description=row.description,
        event_types=frozenset(row.event_types),
        status=EndpointStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        failing_since=row.failing_since,
        disabled_at=row.disabled_at,
    )


def to_attempt(row: Any) -> Attempt:
    return Attempt(
        id=row.id,
        endpoint_id=row.endpoint_id,
        message_id=row.message_id,
        event_type=row.event_type,
        attempt=row.attempt,
        at=row.at,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        succeeded=row.succeeded,
        error=row.error,
    )


_ENDPOINT_COLUMNS = [c for c in webhook_endpoints.c if c.name != "secret"]


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Subscribers by tenant, for this transaction: a bulk change recording an event per
        # item asks once per tenant, not once per event. Any write here forgets them.
        self._subscribers: dict[UUID, list[Endpoint]] = {}

    async def insert(self, endpoint: Endpoint, sealed_secret: bytes) -> None:
        self._subscribers.clear()
        await self.session.execute(
            sa.insert(webhook_endpoints).values(
                **_values(endpoint), secret=sealed_secret, deleted_at=None
            )
        )

    async def update(self, endpoint: Endpoint) -> None:
        self._subscribers.clear()
        await self.session.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint.id)
            .values(_values(endpoint))
        )

    async def set_secret(self, endpoint_id: UUID, sealed_secret: bytes, now: datetime) -> None:
        await self.session.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(secret=sealed_secret, updated_at=now)
        )

    async def delete(self, endpoint_id: UUID, now: datetime) -> None:
        self._subscribers.clear()
        await self.session.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(deleted_at=now, updated_at=now, status=EndpointStatus.DISABLED.value)
        )

    async def get(
        self, tenant_id: UUID, endpoint_id: UUID, *, lock: bool = False
    ) -> Endpoint | None:
        """A live endpoint made in this tenant."""
        statement = sa.select(*_ENDPOINT_COLUMNS).where(
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.tenant_id == tenant_id,
            webhook_endpoints.c.deleted_at.is_(None),
        )
        if lock and is_postgresql(self.session):
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).one_or_none()
        return to_endpoint(row) if row else None

    async def for_delivery(self, endpoint_id: UUID) -> tuple[Endpoint, bytes] | None:
        """An endpoint and its sealed secret, locked while a delivery's outcome is recorded;
        None once deleted."""
        statement = sa.select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.deleted_at.is_(None)
        )
        if is_postgresql(self.session):
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).one_or_none()
        return (to_endpoint(row), row.secret) if row else None

    async def in_tenant(
        self, tenant_id: UUID, *, descending: bool, after: After | None, limit: int
    ) -> Page[Endpoint]:
        statement = sa.select(*_ENDPOINT_COLUMNS).where(
            webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.deleted_at.is_(None)
        )
        return await fetch_page(
            self.session,
            statement,
            key=SortKey(webhook_endpoints.c.created_at),
            id_column=webhook_endpoints.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_endpoint,
        )

    async def subscribers(self, tenant_ids: Iterable[UUID]) -> list[tuple[Endpoint, UUID]]:
        """Enabled endpoints of these tenants or of any tenant above them, each with the
        tenant (of those asked) it sits above: one indexed query per change."""
        wanted = set(tenant_ids)
        missing = wanted - self._subscribers.keys()
        if missing:
            for tenant_id in missing:
                self._subscribers[tenant_id] = []
            rows = await self.session.execute(
                sa.select(*_ENDPOINT_COLUMNS, tenant_closure.c.descendant_id)
                .join(tenant_closure, tenant_closure.c.ancestor_id == webhook_endpoints.c.tenant_id)
                .join(tenants, tenants.c.id == webhook_endpoints.c.tenant_id)
                .where(
                    tenant_closure.c.descendant_id.in_(missing),
                    webhook_endpoints.c.status == EndpointStatus.ENABLED.value,
                    webhook_endpoints.c.deleted_at.is_(None),
                    tenants.c.deleted_at.is_(None),
                )
            )
            for row in rows:
                self._subscribers[row.descendant_id].append(to_endpoint(row))
        return [
            (endpoint, tenant_id)
            for tenant_id in wanted
            for endpoint in self._subscribers[tenant_id]
        ]

    async def add_attempt(self, attempt: Attempt) -> None:
        await self.session.execute(
            sa.insert(webhook_attempts).values(
                id=attempt.id,
                endpoint_id=attempt.endpoint_id,
                message_id=attempt.message_id,
                event_type=attempt.event_type,
                attempt=attempt.attempt,
                at=attempt.at,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                succeeded=attempt.succeeded,
                error=attempt.error[:ERROR_MAX_LENGTH] if attempt.error else None,
            )
        )

    async def attempts(
        self, endpoint_id: UUID, *, descending: bool, after: After | None, limit: int
    ) -> Page[Attempt]:
        return await fetch_page(
            self.session,
            sa.select(webhook_attempts).where(webhook_attempts.c.endpoint_id == endpoint_id),
            key=SortKey(webhook_attempts.c.at),
            id_column=webhook_attempts.c.id,
            descending=descending,
            after=after,
            limit=limit,
            build=to_attempt,
        )


def _values(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "root_id": endpoint.root_id,
        "tenant_id": endpoint.tenant_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": sorted(endpoint.event_types),
        "status": endpoint.status.value,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
        "failing_since": endpoint.failing_since,
        "disabled_at": endpoint.disabled_at,
    }
