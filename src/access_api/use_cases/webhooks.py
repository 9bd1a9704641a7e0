"""Webhook endpoints: subscribe a URL to audit actions of a tenant and below, rotate its
secret, switch it off and on, and see every delivery attempt."""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID

from access_api.domain import webhooks
from access_api.domain.access import Scope
from access_api.domain.audit import Action, created, diff
from access_api.domain.errors import NotFound
from access_api.domain.webhooks import Attempt, Endpoint, EndpointStatus
from access_api.ids import new_id
from access_api.pagination import Page
from access_api.services import webhooks as delivery
from access_api.use_cases.work import Work

_SHOWN = ("url", "event_types", "description", "status")


@dataclass(frozen=True, slots=True, kw_only=True)
class WithSecret:
    """An endpoint and its signing secret: shown here, once, never again."""

    endpoint: Endpoint
    secret: str


def _seal(work: Work, secret: str) -> bytes:
    return work.keyring.seal(secret.encode(), delivery.SEAL_PURPOSE)


async def create(
    work: Work, scope: Scope, url: str, event_types: list[str], description: str | None
) -> WithSecret:
    """Subscribe a URL to events of this tenant and every tenant below it."""
    wanted = webhooks.check_event_types(event_types)
    await delivery.check_target(url, work.settings)
    tenant = scope.tenant
    endpoint = Endpoint(
        id=new_id(),
        root_id=tenant.root_id,
        tenant_id=tenant.id,
        url=url,
        description=description,
        event_types=wanted,
        status=EndpointStatus.ENABLED,
        created_at=work.now,
        updated_at=work.now,
    )
    secret = delivery.new_secret()
    await work.webhooks.insert(endpoint, _seal(work, secret))
    await work.record(
        scope.caller.actor,
        Action.WEBHOOK_CREATED,
        tenant=tenant,
        target_id=endpoint.id,
        changes=created(endpoint, _SHOWN),
    )
    return WithSecret(endpoint=endpoint, secret=secret)


async def listed(
    work: Work, scope: Scope, *, sort: str, cursor: str | None, limit: int
) -> Page[Endpoint]:
    return await work.webhooks.in_tenant(
        scope.tenant.id,
        descending=sort.startswith("-"),
        after=work.state.cursors.decode(cursor, sort),
        limit=limit,
    )


async def get(work: Work, scope: Scope, endpoint_id: UUID, *, lock: bool = False) -> Endpoint:
    """An endpoint made in this tenant; any other is absent from here."""
    endpoint = await work.webhooks.get(scope.tenant.id, endpoint_id, lock=lock)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id} here")
    return endpoint


async def update(
    work: Work,
    scope: Scope,
    endpoint_id: UUID,
    *,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    status: EndpointStatus | None = None,
    fields: frozenset[str] = frozenset(),
) -> Endpoint:
    """Change what an endpoint receives, or switch it off and on; switching on starts its
    failing clock afresh. `fields` names the fields the request set (description may be
    cleared with null)."""
    before = await get(work, scope, endpoint_id, lock=True)
    after = before
    if url is not None and url != before.url:
        after = replace(after, url=await delivery.check_target(url, work.settings))
    if event_types is not None:
        after = replace(after, event_types=webhooks.check_event_types(event_types))
    if "description" in fields:
        after = replace(after, description=description)
    if status is not None and status is not before.status:
        enabled = status is EndpointStatus.ENABLED
        after = replace(
            after,
            status=status,
            failing_since=None,
            disabled_at=None if enabled else work.now,
        )
    if after == before:
        return before
    after = replace(after, updated_at=work.now)
    await work.webhooks.update(after)
    await work.record(
        scope.caller.actor,
        Action.WEBHOOK_UPDATED,
        tenant=scope.tenant,
        target_id=after.id,
        changes=diff(before, after, _SHOWN),
    )
    return after


async def delete(work: Work, scope: Scope, endpoint_id: UUID) -> None:
    """Unsubscribe: nothing more is sent, including messages still waiting."""
    endpoint = await get(work, scope, endpoint_id, lock=True)
    await work.webhooks.delete(endpoint.id, work.now)
    await work.record(
        scope.caller.actor, Action.WEBHOOK_DELETED, tenant=scope.tenant, target_id=endpoint.id
    )


async def rotate_secret(work: Work, scope: Scope, endpoint_id: UUID) -> WithSecret:
    """A new signing secret, shown once; the old one stops signing at once (messages still
    waiting are signed with the new one when sent)."""
    endpoint = await get(work, scope, endpoint_id, lock=True)
    secret = delivery.new_secret()
    await work.webhooks.set_secret(endpoint.id, _seal(work, secret), work.now)
    await work.record(
        scope.caller.actor,
        Action.WEBHOOK_SECRET_ROTATED,
        tenant=scope.tenant,
        target_id=endpoint.id,
    )
    return WithSecret(endpoint=replace(endpoint, updated_at=work.now), secret=secret)


async def attempts(
    work: Work, scope: Scope, endpoint_id: UUID, *, sort: str, cursor: str | None, limit: int
) -> Page[Attempt]:
    """Every delivery attempt to an endpoint, with the receiver's status and the latency."""
    endpoint = await get(work, scope, endpoint_id)
    return await work.webhooks.attempts(
        endpoint.id,
        descending=sort.startswith("-"),
        after=work.state.cursors.decode(cursor, sort),
        limit=limit,
    )
