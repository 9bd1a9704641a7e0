"""Authorizations (seeds 000, 002): who holds which roles where, seen by tenant or by user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field

from access_api.dependencies import Access, Audit, Locked, Now, People, State, Tenants, requires
from access_api.domain import access
from access_api.domain import errors as e
from access_api.domain.access import Grant, GrantChange, GrantContext, GrantRequest, Scope
from access_api.domain.permissions import Permission
from access_api.domain.users import User
from access_api.errors import problem_responses
from access_api.routers.common import (
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
)

router = api_router(prefix="/v1/tenants", tags=["authorizations"], responses=SCOPED_PROBLEMS)

ReadUsers = Annotated[Scope, requires(Permission.USERS_READ)]
WriteAuthorizations = Annotated[Scope, requires(Permission.AUTHORIZATIONS_WRITE)]

CHANGE_PROBLEMS = problem_responses(
    e.CannotChangeOwnAccess, e.PrivilegeEscalation, e.LastAdmin, e.BulkRefused
)


class UserRef(BaseModel):
    id: UUID
    email: str
    first_name: str
    last_name: str


class TenantGrant(BaseModel):
    """One user's roles on this tenant."""

    user: UserRef
    roles: list[str]
    include_descendants: bool
    expires_at: datetime | None

    @classmethod
    def of(cls, user: User, grant: Grant) -> TenantGrant:
        return cls(
            user=UserRef(
                id=user.id, email=user.email, first_name=user.first_name, last_name=user.last_name
            ),
            roles=sorted(grant.roles),
            include_descendants=grant.include_descendants,
            expires_at=grant.expires_at,
        )


class UserGrant(BaseModel):
    """One of a user's grants, on this tenant or one below it."""

    tenant_id: UUID
    roles: list[str]
    include_descendants: bool
    expires_at: datetime | None


class UserGrants(BaseModel):
    items: list[UserGrant]
    inherited_roles: list[str] = Field(
        description="Roles reaching this tenant from grants above it (change them there)"
    )


class TenantGrantItem(Body):
    user_id: UUID
    roles: list[str] = Field(
        max_length=access.MAX_ROLES_PER_GRANT, description="[] removes all access here"
    )
    include_descendants: bool = False
    expires_at: AwareDatetime | None = Field(
        default=None, description="When this grant stops counting (future only); null: never"
    )


class UserGrantItem(Body):
    tenant_id: UUID
    roles: list[str] = Field(max_length=access.MAX_ROLES_PER_GRANT)
    include_descendants: bool = False
    expires_at: AwareDatetime | None = Field(
        default=None, description="When this grant stops counting (future only); null: never"
    )


class TenantGrantsBody(Body):
    items: list[TenantGrantItem] = Field(min_length=1, max_length=1000)


class UserGrantsBody(Body):
    items: list[UserGrantItem] = Field(
        max_length=1000,
        description="The user's complete grants on this tenant and below: those not listed "
        "are removed",
    )


async def _record(audit: Audit, scope: Scope, changes: list[GrantChange]) -> None:
    for change in changes:
        action = (
            "authorization.granted"
            if change.before is None
            else "authorization.removed"
            if change.after is None
            else "authorization.changed"
        )
        await audit.record(
            scope.caller.actor,
            action,
            tenant=scope.tenant,
            target_type="user",
            target_id=change.user_id,
            changes=access.grant_changes(change),
        )


@router.get("/{tenant_id}/authorizations", summary="Who is authorized on this account")
async def list_tenant_grants(
    scope: ReadUsers, grants: Access, state: State, limit: Limit = 50, cursor: Cursor = None
) -> ListPage[TenantGrant]:
    page = await grants.list_grants_on(
        scope.tenant.id, after=state.cursors.decode(cursor, "email"), limit=limit
    )
    return page_of(page, lambda pair: TenantGrant.of(*pair), state.cursors, "email")


@router.put(
    "/{tenant_id}/authorizations",
    summary="Set the listed users' roles on this account ([] = no access)",
    responses=CHANGE_PROBLEMS,
)
async def put_tenant_grants(
    body: TenantGrantsBody,
    scope: WriteAuthorizations,
    locked: Locked,
    grants: Access,
    audit: Audit,
    now: Now,
) -> ListPage[TenantGrant]:
    scope = await locked(scope, Permission.AUTHORIZATIONS_WRITE)
    tenant = scope.tenant
    requests = [
        GrantRequest(
            user_id=item.user_id,
            tenant_id=tenant.id,
            roles=tuple(item.roles),
            include_descendants=item.include_descendants,
            expires_at=item.expires_at,
        )
        for item in body.items
    ]
    roles = await grants.roles(tenant.root_id)
    changes = access.plan_grants(
        requests,
        GrantContext(
            caller=scope.caller,
            reachable_tenants=frozenset({tenant.id}),
            visible_users=await grants.grantable_users(
                scope.caller.user_id, tenant.id, tenant.root_id, (r.user_id for r in requests), now
            ),
            caller_standing={tenant.id: scope.standing},
            current=await grants.grants((r.user_id, tenant.id) for r in requests),
            roles=roles,
            root_id=tenant.root_id,
            root_admins=await grants.root_admins(tenant.root_id, now),
            now=now,
        ),
    )
    await grants.apply(changes, root_id=tenant.root_id, roles_by_key=roles, now=now)
    await _record(audit, scope, changes)
    page = await grants.list_grants_on(tenant.id, after=None, limit=len(body.items) + 1)
    listed = {item.user_id for item in body.items}
    return ListPage(
        items=[TenantGrant.of(user, grant) for user, grant in page.items if user.id in listed],
        next_cursor=None,
    )


async def _user_grants(scope: Scope, user_id: UUID, grants: Access, now: datetime) -> UserGrants:
    found = await grants.grants_at_or_below(scope.tenant.id, [user_id])
    held = await grants.held_by(scope.tenant.id, [user_id])
    inherited = [h for h in held.get(user_id, []) if h.depth > 0]
    return UserGrants(
        items=[
            UserGrant(
                tenant_id=g.tenant_id,
                roles=sorted(g.roles),
                include_descendants=g.include_descendants,
                expires_at=g.expires_at,
            )
            for g in sorted(found[user_id], key=lambda g: str(g.tenant_id))
        ],
        inherited_roles=sorted(access.roles_applying(inherited, now)),
    )


@router.get(
    "/{tenant_id}/users/{user_id}/authorizations",
    summary="A user's grants on this account and below",
)
async def get_user_grants(
    user_id: UUID, scope: ReadUsers, people: People, grants: Access, now: Now
) -> UserGrants:
    await people.visible(scope, user_id)
    return await _user_grants(scope, user_id, grants, now)


@router.put(
    "/{tenant_id}/users/{user_id}/authorizations",
    summary="Set a user's grants on this account and below (same role on many, or one each)",
    responses=CHANGE_PROBLEMS,
)
async def put_user_grants(
    user_id: UUID,
    body: UserGrantsBody,
    scope: WriteAuthorizations,
    locked: Locked,
    tenants: Tenants,
    grants: Access,
    audit: Audit,
    now: Now,
) -> UserGrants:
    access.ensure_not_self(scope.caller, user_id)
    scope = await locked(scope, Permission.AUTHORIZATIONS_WRITE)
    tenant = scope.tenant
    grantable = await grants.grantable_users(
        scope.caller.user_id, tenant.id, tenant.root_id, [user_id], now
    )
    if user_id not in grantable:
        raise e.NotFound(f"no user {user_id} here")
    requests = [
        GrantRequest(
            user_id=user_id,
            tenant_id=item.tenant_id,
            roles=tuple(item.roles),
            include_descendants=item.include_descendants,
            expires_at=item.expires_at,
        )
        for item in body.items
    ]
    wanted = {r.tenant_id for r in requests}
    reachable = await tenants.at_or_below(tenant.id, wanted)
    held = await grants.held_on(scope.caller.user_id, reachable)
    roles = await grants.roles(tenant.root_id)
    existing = (await grants.grants_at_or_below(tenant.id, [user_id]))[user_id]
    changes = access.plan_grants(
        requests,
        GrantContext(
            caller=scope.caller,
            reachable_tenants=reachable,
            visible_users=grantable,
            caller_standing={
                tenant_id: access.standing(
                    held[tenant_id], roles, now, scope.caller.permission_limit
                )
                for tenant_id in reachable
            },
            current={(g.user_id, g.tenant_id): g for g in existing}
            | await grants.grants((user_id, t) for t in reachable),
            roles=roles,
            root_id=tenant.root_id,
            root_admins=await grants.root_admins(tenant.root_id, now),
            now=now,
        ),
        replace_within=[(user_id, g.tenant_id) for g in existing],
        item="tenant",
    )
    await grants.apply(changes, root_id=tenant.root_id, roles_by_key=roles, now=now)
    await _record(audit, scope, changes)
    return await _user_grants(scope, user_id, grants, now)
