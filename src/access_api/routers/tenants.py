"""Tenants and client accounts (seed 002): view, edit, add, disable, enable, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Request, Response, status
from pydantic import BaseModel, Field

from access_api.dependencies import State, Work, requires
from access_api.domain import access, tenants
from access_api.domain import errors as e
from access_api.domain.access import Scope
from access_api.domain.permissions import Permission
from access_api.domain.tenants import TenantKind, TenantStatus
from access_api.errors import problem_responses
from access_api.routers.common import (
    MAX_BULK_ITEMS,
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
    tagged,
)
from access_api.use_cases import tenants as tenant_cases

router = api_router(prefix="/v1/tenants", tags=["tenants"], responses=SCOPED_PROBLEMS)

ReadTenant = Annotated[Scope, requires(Permission.TENANTS_READ)]
WriteClients = Annotated[Scope, requires(Permission.CLIENTS_WRITE)]
ClientStatus = Annotated[Scope, requires(Permission.CLIENTS_STATUS)]
DeleteClients = Annotated[Scope, requires(Permission.CLIENTS_DELETE)]


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
    domain_prefix: str = Field(
        min_length=tenants.DOMAIN_PREFIX_MIN_LENGTH,
        max_length=tenants.DOMAIN_PREFIX_MAX_LENGTH,
        pattern=tenants.DOMAIN_PREFIX_PATTERN,
    )
    street_address: str | None = Field(default=None, max_length=tenants.ADDRESS_MAX_LENGTH)
    authorizations: list[InitialGrant] = Field(default_factory=list, max_length=MAX_BULK_ITEMS)

    def command(self) -> tenant_cases.NewClient:
        return tenant_cases.NewClient(
            kind=TenantKind(self.kind),
            name=self.name,
            domain_prefix=self.domain_prefix,
            street_address=self.street_address,
            authorizations=[
                tenant_cases.InitialGrant(
                    user_id=item.user_id,
                    roles=tuple(item.roles),
                    include_descendants=item.include_descendants,
                )
                for item in self.authorizations
            ],
        )


class ClientDelete(IdList):
    confirm: str | None = Field(default=None, description='Must be "delete" (seed 002)')
    cascade: bool = Field(
        default=False, description="Also delete every account below the listed ones"
    )


class TenantItems(BaseModel):
    items: list[TenantOut]

    @classmethod
    def of(cls, found: list[tenants.Tenant]) -> TenantItems:
        return cls(items=[TenantOut.of(tenant) for tenant in found])


class Deleted(BaseModel):
    deleted: list[UUID] = Field(description="Every deleted account, cascaded ones included")


ClientSort = Literal[
    "name", "-name", "domain_prefix", "-domain_prefix", "kind", "-kind", "status", "-status",
    "created_at", "-created_at", "updated_at", "-updated_at", "street_address",
    "-street_address",
]  # fmt: skip


@router.get("/{tenant_id}", summary="Get an account", response_model=TenantOut)
async def get_tenant(scope: ReadTenant) -> Response:
    return tagged(TenantOut.of(scope.tenant))


@router.patch(
    "/{tenant_id}",
    summary="Edit an account's name or street address",
    responses=problem_responses(e.TenantImmutableField, e.PreconditionFailed),
    response_model=TenantOut,
)
async def patch_tenant(
    body: TenantPatch, scope: WriteClients, request: Request, work: Work
) -> Response:
    updated = await tenant_cases.update(
        work,
        scope,
        body.model_dump(exclude_unset=True),
        expect=lambda current: check_if_match(request, TenantOut.of(current)),
    )
    return tagged(TenantOut.of(updated))


@router.get("/{tenant_id}/clients", summary="List the accounts below this one")
async def list_clients(
    scope: ReadTenant,
    work: Work,
    state: State,
    q: Annotated[
        str | None,
        Query(
            max_length=tenants.SEARCH_MAX_LENGTH,
            description="Part of the name or domain prefix",
        ),
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
    page = await tenant_cases.list_below(
        work,
        scope,
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
    body: ClientCreate, scope: WriteClients, response: Response, work: Work
) -> TenantOut:
    client = await tenant_cases.create_client(work, scope, body.command())
    response.headers["Location"] = f"/v1/tenants/{client.id}"
    return TenantOut.of(client)


@router.post(
    "/{tenant_id}/clients/disable",
    summary="Disable accounts: nobody can act in them or below them until enabled",
    responses=problem_responses(e.BulkRefused, e.CannotDisableRoot),
)
async def disable_clients(body: IdList, scope: ClientStatus, work: Work) -> TenantItems:
    return TenantItems.of(
        await tenant_cases.set_status(work, scope, body.ids, TenantStatus.DISABLED)
    )


@router.post(
    "/{tenant_id}/clients/enable",
    summary="Enable accounts",
    responses=problem_responses(e.BulkRefused),
)
async def enable_clients(body: IdList, scope: ClientStatus, work: Work) -> TenantItems:
    return TenantItems.of(
        await tenant_cases.set_status(work, scope, body.ids, TenantStatus.ENABLED)
    )


@router.post(
    "/{tenant_id}/clients/delete",
    summary="Delete accounts; their domain prefixes are free again at once",
    responses=problem_responses(e.ConfirmationRequired, e.HasChildren, e.BulkRefused),
)
async def delete_clients(body: ClientDelete, scope: DeleteClients, work: Work) -> Deleted:
    deleted = await tenant_cases.delete(
        work, scope, body.ids, confirm=body.confirm, cascade=body.cascade
    )
    return Deleted(deleted=deleted)
