"""Webhook endpoints of a tenant, their secrets and their delivery attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import status
from pydantic import BaseModel, Field

from access_api.dependencies import CurrentCaller, Work, requires
from access_api.domain.access import Scope
from access_api.domain.audit import catalog
from access_api.domain.permissions import Permission
from access_api.domain.webhooks import URL_MAX_LENGTH, Attempt, Endpoint, EndpointStatus
from access_api.routers.common import (
    AUTHENTICATED_PROBLEMS,
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
)
from access_api.use_cases import webhooks
from access_api.use_cases.webhooks import WithSecret

router = api_router(prefix="/v1/tenants", tags=["webhooks"], responses=SCOPED_PROBLEMS)
catalog_router = api_router(prefix="/v1/webhooks", tags=["webhooks"])

ManageWebhooks = Annotated[Scope, requires(Permission.WEBHOOKS_MANAGE)]
EventTypes = Field(
    min_length=1,
    max_length=200,
    description="Audit actions to receive (GET /v1/webhooks/event-types), for this tenant "
    "and every tenant below it",
)


class EndpointIn(Body):
    url: str = Field(
        min_length=1, max_length=URL_MAX_LENGTH, examples=["https://psa.example.com/hooks"]
    )
    event_types: list[str] = EventTypes
    description: str | None = Field(default=None, max_length=500)


class EndpointPatch(Body):
    url: str | None = Field(default=None, min_length=1, max_length=URL_MAX_LENGTH)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    status: EndpointStatus | None = Field(
        default=None, description="disabled stops deliveries; enabled resumes them"
    )


class EndpointOut(BaseModel):
    id: UUID
    tenant_id: UUID
    url: str
    description: str | None
    event_types: list[str]
    status: EndpointStatus
    failing_since: datetime | None = Field(
        description="Every delivery has failed since then; after 3 days the endpoint is disabled"
    )
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointOut:
        return cls(
            id=endpoint.id,
            tenant_id=endpoint.tenant_id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=sorted(endpoint.event_types),
            status=endpoint.status,
            failing_since=endpoint.failing_since,
            disabled_at=endpoint.disabled_at,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class EndpointWithSecret(EndpointOut):
    secret: str = Field(
        description="The Standard Webhooks signing secret (whsec_…): shown once, here"
    )

    @classmethod
    def made(cls, made: WithSecret) -> EndpointWithSecret:
        return cls(**EndpointOut.of(made.endpoint).model_dump(), secret=made.secret)


class AttemptOut(BaseModel):
    id: UUID
    webhook_id: str = Field(description="The message's webhook-id header, the same on retries")
    event_type: str
    attempt: int
    at: datetime
    status_code: int | None = Field(description="The receiver's answer; null if none came")
    latency_ms: int
    succeeded: bool
    error: str | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            id=attempt.id,
            webhook_id=attempt.message_id,
            event_type=attempt.event_type,
            attempt=attempt.attempt,
            at=attempt.at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            succeeded=attempt.succeeded,
            error=attempt.error,
        )


class EventType(BaseModel):
    action: str
    target_type: str


@catalog_router.get(
    "/event-types",
    summary="The event types webhooks can subscribe to (the audit catalog)",
    responses=AUTHENTICATED_PROBLEMS,
)
async def list_event_types(caller: CurrentCaller) -> list[EventType]:
    return [EventType(**entry) for entry in catalog()]


@router.post(
    "/{tenant_id}/webhooks",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe an endpoint to events of this tenant and below (secret shown once)",
)
async def create_webhook(body: EndpointIn, scope: ManageWebhooks, work: Work) -> EndpointWithSecret:
    made = await webhooks.create(work, scope, body.url, body.event_types, body.description)
    return EndpointWithSecret.made(made)


@router.get("/{tenant_id}/webhooks", summary="Webhook endpoints made in this tenant")
async def list_webhooks(
    scope: ManageWebhooks,
    work: Work,
    sort: Literal["created_at", "-created_at"] = "created_at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[EndpointOut]:
    page = await webhooks.listed(work, scope, sort=sort, cursor=cursor, limit=limit)
    return page_of(page, EndpointOut.of, work.state.cursors, sort)


@router.get("/{tenant_id}/webhooks/{webhook_id}", summary="One webhook endpoint")
async def get_webhook(webhook_id: UUID, scope: ManageWebhooks, work: Work) -> EndpointOut:
    return EndpointOut.of(await webhooks.get(work, scope, webhook_id))


@router.patch("/{tenant_id}/webhooks/{webhook_id}", summary="Change, disable or enable an endpoint")
async def update_webhook(
    webhook_id: UUID, body: EndpointPatch, scope: ManageWebhooks, work: Work
) -> EndpointOut:
    changes = body.model_dump(exclude_unset=True)
    changed = await webhooks.update(work, scope, webhook_id, **changes, fields=frozenset(changes))
    return EndpointOut.of(changed)


@router.delete(
    "/{tenant_id}/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unsubscribe an endpoint",
)
async def delete_webhook(webhook_id: UUID, scope: ManageWebhooks, work: Work) -> None:
    await webhooks.delete(work, scope, webhook_id)


@router.post(
    "/{tenant_id}/webhooks/{webhook_id}/rotate-secret",
    summary="A new signing secret (shown once); the old one stops at once",
)
async def rotate_webhook_secret(
    webhook_id: UUID, scope: ManageWebhooks, work: Work
) -> EndpointWithSecret:
    return EndpointWithSecret.made(await webhooks.rotate_secret(work, scope, webhook_id))


@router.get(
    "/{tenant_id}/webhooks/{webhook_id}/deliveries",
    summary="Every delivery attempt: the receiver's status code and the latency",
)
async def list_webhook_deliveries(
    webhook_id: UUID,
    scope: ManageWebhooks,
    work: Work,
    sort: Literal["at", "-at"] = "-at",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[AttemptOut]:
    page = await webhooks.attempts(work, scope, webhook_id, sort=sort, cursor=cursor, limit=limit)
    return page_of(page, AttemptOut.of, work.state.cursors, sort)
