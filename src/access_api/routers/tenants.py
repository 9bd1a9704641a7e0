"""Tenants and client accounts (seed 002): view, edit, add, disable, enable, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Request, Response, status
from pydantic import BaseModel, Field

from access_api.dependencies import (
    Access,
    Agents,
    Audit,
    Locked,
    Now,
    State,
    Tenants,
    requires,
)
from access_api.domain import access, tenants
from access_api.domain import errors as e
from access_api.domain.access import GrantContext, GrantRequest, Scope
from access_api.domain.audit import created
from access_api.domain.permissions import Permission
from access_api.domain.tenants import TenantKind, TenantStatus
from access_api.errors import problem_responses
from access_api.ids import new_id
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    IdList,
    Limit,
    ListPage,
    api_router,
    check_if_match,
    page_of,
    split_sort,
    with_etag,
)

router = api_router(prefix="/v1/tenants", tags=["tenants"], responses=SCOPED_PROBLEMS)

ReadTenant = Annotated[Scope, requires(Permission.TENANTS_READ)]
WriteClients = Annotated[Scope, requires(Permission.CLIENTS_WRITE)]
ClientStatus = Annotated[Scope, requires(Permission.CLIENTS_STATUS)]
DeleteClients = Annotated[Scope, requires(Permission.CLIENTS_DELETE)]

TENANT_FIELDS = ("kind", "parent_id", "name", "domain_prefix", "street_address", "status")


class TenantOut(BaseModel):
    id: UUID
    kind: TenantKind
    parent_id: UUID | None
    name: str
    domain_prefix: str
    street_address: str | None
    status: TenantStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tenant: tenants.Tenant) -> TenantOut:
        return cls(
            id=tenant.id,
            kind=tenant.kind,
            parent_id=tenant.parent_id,
            name=tenant.name,
            domain_prefix=tenant.domain_prefix,
            street_address=tenant.street_address,
            status=tenant.status,
            created_at=tenant.created_at,
            updated_at=tenant.updated_at,
        )


class TenantPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=tenants.NAME_MAX_LENGTH)
    street_address: str | None = Field(default=None, max_length=tenants.ADDRESS_MAX_LENGTH)
    kind: TenantKind | None = Field(
        default=None, description="Fixed at creation: only the current value is accepted"
    )
    domain_prefix: str | None = Field(
        default=None, description="Fixed at creation: only the current value is accepted"
    )


class InitialGrant(Body):
    user_id: UUID
    roles: list[str] = Field(max_length=access.MAX_ROLES_PER_GRANT)
    include_descendants: bool = False


class ClientCreate(Body):
    kind: Literal["client", "multi_client"]
    name: str = Field(min_length=1, max_length=tenants.NAME_MAX_LENGTH)
    domain_prefix: str = Field(min_length=3, max_length=63, pattern=tenants.DOMAIN_PREFIX_PATTERN)
    street_address: str | None = Field(default=None, max_length=tenants.ADDRESS_MAX_LENGTH)
    authorizations: list[InitialGrant] = Field(default_factory=list, max_length=1000)


class ClientDelete(IdList):
    confirm: str | None = Field(default=None, description='Must be "delete" (seed 002)')
    cascade: bool = Field(
        default=False, description="Also delete every account below the listed ones"
    )


class TenantItems(BaseModel):
    items: list[TenantOut]


class Deleted(BaseModel):
    deleted: list[UUID] = Field(description="Every deleted account, cascaded ones included")


ClientSort = Literal[
    "name", "-name", "domain_prefix", "-domain_prefix", "kind", "-kind", "status", "-status",
    "created_at", "-created_at", "updated_at", "-updated_at", "street_address",
    "-street_address",
]  # fmt: skip


@router.get("/{tenant_id}", summary="Get an account")
async def get_tenant(scope: ReadTenant, response: Response) -> TenantOut:
    body = TenantOut.of(scope.tenant)
    with_etag(response, body)
    return body


@router.patch(
    "/{tenant_id}",
    summary="Edit an account's name or street address",
    responses=problem_responses(e.TenantImmutableField, e.PreconditionFailed),
)
async def patch_tenant(
    body: TenantPatch,
    scope: WriteClients,
    request: Request,
    response: Response,
    repo: Tenants,
    audit: Audit,
    now: Now,
) -> TenantOut:
    await repo.lock_tree(scope.tenant.root_id)
    current = await repo.get(scope.tenant.id)
    if current is None:
        raise e.NotFound()
    check_if_match(request, TenantOut.of(current))
    updated, changes = tenants.update(current, body.model_dump(exclude_unset=True), now)
    if changes:
        await repo.update(updated)
        await audit.record(
            scope.caller.actor,
            "tenant.updated",
            tenant=updated,
            target_type="tenant",
            target_id=updated.id,
            changes=changes,
        )
    out = TenantOut.of(updated)
    with_etag(response, out)
    return out


@router.get("/{tenant_id}/clients", summary="List the accounts below this one")
async def list_clients(
    scope: ReadTenant,
    repo: Tenants,
    state: State,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of the name or domain prefix")
    ] = None,
    kind: TenantKind | None = None,
    status_: Annotated[TenantStatus | None, Query(alias="status")] = None,
    descendants: Annotated[
        bool, Query(description="Every account below, not only the direct children")
    ] = False,
    sort: ClientSort = "name",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListPage[TenantOut]:
    field, descending = split_sort(sort)
    page = await repo.list_below(
        scope.tenant.id,
        descendants=descendants,
        q=q,
        kind=kind,
        status=status_,
        sort=field,
        descending=descending,
        after=state.cursors.decode(cursor, sort),
        limit=limit,
    )
    return page_of(page, TenantOut.of, state.cursors, sort)


@router.post(
    "/{tenant_id}/clients",
    status_code=status.HTTP_201_CREATED,
    summary="Add a client or multi-client account, authorizing users on it at once",
    responses=problem_responses(
        e.InvalidParent, e.DomainPrefixTaken, e.PrivilegeEscalation, e.CannotChangeOwnAccess
    ),
)
async def create_client(
    body: ClientCreate,
    scope: WriteClients,
    locked: Locked,
    response: Response,
    repo: Tenants,
    grants: Access,
    audit: Audit,
    now: Now,
) -> TenantOut:
    scope = await locked(scope, Permission.CLIENTS_WRITE)
    client = tenants.new_child(
        scope.tenant,
        id=new_id(),
        kind=TenantKind(body.kind),
        name=body.name,
        domain_prefix=body.domain_prefix,
        street_address=body.street_address,
        now=now,
    )
    if body.authorizations:
        access.require(scope, Permission.AUTHORIZATIONS_WRITE)
    root_id = scope.tenant.root_id
    requests = [
        GrantRequest(
            user_id=item.user_id,
            tenant_id=client.id,
            roles=tuple(item.roles),
            include_descendants=item.include_descendants,
        )
        for item in body.authorizations
    ]
    changes: list[access.GrantChange] = []
    roles: dict[str, access.Role] = {}
    if requests:
        roles = await grants.roles(root_id)
        changes = access.plan_grants(
            requests,
            GrantContext(
                caller=scope.caller,
                reachable_tenants=frozenset({client.id}),
                visible_users=await grants.grantable_users(
                    scope.caller.user_id,
                    scope.tenant.id,
                    root_id,
                    (r.user_id for r in requests),
                    now,
                ),
                caller_standing={client.id: access.standing_below(scope.standing)},
                current={},
                roles=roles,
                root_id=root_id,
                root_admins=frozenset(),
                now=now,
            ),
        )
    await repo.insert(client)
    await grants.apply(changes, root_id=root_id, roles_by_key=roles, now=now)
    await audit.record(
        scope.caller.actor,
        "tenant.created",
        tenant=client,
        target_type="tenant",
        target_id=client.id,
        changes=created(client, TENANT_FIELDS),
    )
    for change in changes:
        await audit.record(
            scope.caller.actor,
            "authorization.granted",
            tenant=client,
            target_type="user",
            target_id=change.user_id,
            changes=access.grant_changes(change),
        )
    response.headers["Location"] = f"/v1/tenants/{client.id}"
    return TenantOut.of(client)


async def _set_status(
    scope: Scope,
    body: IdList,
    wanted: TenantStatus,
    repo: Tenants,
    audit: Audit,
    now: datetime,
) -> TenantItems:
    reachable = await repo.below(scope.tenant.id, body.ids, for_update=True)
    changes = tenants.plan_status_change(body.ids, reachable, wanted, now)
    action = "tenant.disabled" if wanted is TenantStatus.DISABLED else "tenant.enabled"
    for before, after in changes:
        await repo.update(after)
        await audit.record(
            scope.caller.actor,
            action,
            tenant=after,
            target_type="tenant",
            target_id=after.id,
            changes={"status": {"before": before.status.value, "after": after.status.value}},
        )
    current = {after.id: after for _, after in changes}
    return TenantItems(
        items=[TenantOut.of(current.get(i, reachable[i])) for i in tenants.unique(body.ids)]
    )


@router.post(
    "/{tenant_id}/clients/disable",
    summary="Disable accounts: nobody can act in them or below them until enabled",
    responses=problem_responses(e.BulkRefused),
)
async def disable_clients(
    body: IdList, scope: ClientStatus, repo: Tenants, audit: Audit, now: Now
) -> TenantItems:
    return await _set_status(scope, body, TenantStatus.DISABLED, repo, audit, now)


@router.post(
    "/{tenant_id}/clients/enable",
    summary="Enable accounts",
    responses=problem_responses(e.BulkRefused),
)
async def enable_clients(
    body: IdList, scope: ClientStatus, repo: Tenants, audit: Audit, now: Now
) -> TenantItems:
    return await _set_status(scope, body, TenantStatus.ENABLED, repo, audit, now)


@router.post(
    "/{tenant_id}/clients/delete",
    summary="Delete accounts; their domain prefixes are free again at once",
    responses=problem_responses(e.ConfirmationRequired, e.HasChildren, e.BulkRefused),
)
async def delete_clients(
    body: ClientDelete,
    scope: DeleteClients,
    locked: Locked,
    repo: Tenants,
    agents: Agents,
    audit: Audit,
    now: Now,
) -> Deleted:
    scope = await locked(scope, Permission.CLIENTS_DELETE)
    reachable = await repo.subtrees(scope.tenant.id, body.ids, for_update=True)
    targets = tenants.plan_deletion(body.ids, reachable, confirm=body.confirm, cascade=body.cascade)
    deleted: list[UUID] = []
    for target in targets:
        below = sorted(reachable[target.id].descendant_ids)
        deleted += [target.id, *[i for i in below if i not in deleted]]
        await audit.record(
            scope.caller.actor,
            "tenant.deleted",
            tenant=target,
            target_type="tenant",
            target_id=target.id,
            changes={
                "domain_prefix": {"before": target.domain_prefix, "after": None},
                "cascaded": {"before": None, "after": [str(i) for i in below]},
            },
        )
    deleted = list(dict.fromkeys(deleted))
    await repo.delete(deleted, now)
    for agent in await agents.deregister_in(deleted, now):
        await audit.record(
            scope.caller.actor,
            "agent.deregistered",
            tenant=scope.tenant,
            target_type="agent",
            target_id=agent.id,
            changes={"status": {"before": "registered", "after": "deregistered"}},
        )
    return Deleted(deleted=deleted)
