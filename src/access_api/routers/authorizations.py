"""Authorizations (seeds 000, 002): who holds which roles where, seen by tenant or by user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field

from access_api.dependencies import State, Work, requires
from access_api.domain import access
from access_api.domain import errors as e
from access_api.domain.access import Grant, Scope
from access_api.domain.permissions import Permission
from access_api.domain.users import User
from access_api.errors import problem_responses
from access_api.routers.common import (
    MAX_BULK_ITEMS,
    SCOPED_PROBLEMS,
    Body,
    Cursor,
    Limit,
    ListPage,
    api_router,
    page_of,
)
from access_api.use_cases import authorizations
from access_api.use_cases.authorizations import Wanted

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

    user_id: UUID = Field(description="The user's id, as PUT takes it back")
    user: UserRef
    roles: list[str]
    include_descendants: bool
    expires_at: datetime | None

    @classmethod
    def of(cls, user: User, grant: Grant) -> TenantGrant:
        return cls(
            user_id=user.id,
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

    @classmethod
    def of(cls, found: authorizations.UserGrants) -> UserGrants:
        return cls(
            items=[
                UserGrant(
                    tenant_id=g.tenant_id,
                    roles=sorted(g.roles),
                    include_descendants=g.include_descendants,
                    expires_at=g.expires_at,
                )
                for g in found.grants
            ],
            inherited_roles=found.inherited_roles,
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
    items: list[TenantGrantItem] = Field(min_length=1, max_length=MAX_BULK_ITEMS)

    def wanted(self, tenant_id: UUID) -> list[Wanted]:
        return [
            Wanted(
                user_id=item.user_id,
                tenant_id=tenant_id,
                roles=tuple(item.roles),
                include_descendants=item.include_descendants,
                expires_at=item.expires_at,
            )
            for item in self.items
        ]


class UserGrantsBody(Body):
    items: list[UserGrantItem] = Field(
        max_length=MAX_BULK_ITEMS,
        description="The user's complete grants on this tenant and below: those not listed "
        "are removed",
    )

    def wanted(self, user_id: UUID) -> list[Wanted]:
        return [
            Wanted(
                user_id=user_id,
                tenant_id=item.tenant_id,
                roles=tuple(item.roles),
                include_descendants=item.include_descendants,
                expires_at=item.expires_at,
            )
            for item in self.items
        ]


@router.get("/{tenant_id}/authorizations", summary="Who is authorized on this account")
async def list_tenant_grants(
    scope: ReadUsers, work: Work, state: State, limit: Limit = 50, cursor: Cursor = None
) -> ListPage[TenantGrant]:
    page = await authorizations.list_on_tenant(
        work, scope, after=state.cursors.decode(cursor, "email"), limit=limit
    )
    return page_of(page, lambda pair: TenantGrant.of(*pair), state.cursors, "email")


@router.put(
    "/{tenant_id}/authorizations",
    summary="Set the listed users' roles on this account ([] = no access)",
    responses=CHANGE_PROBLEMS,
)
async def put_tenant_grants(
    body: TenantGrantsBody, scope: WriteAuthorizations, work: Work
) -> ListPage[TenantGrant]:
    held = await authorizations.set_on_tenant(work, scope, body.wanted(scope.tenant.id))
    return ListPage(items=[TenantGrant.of(user, grant) for user, grant in held], next_cursor=None)


@router.get(
    "/{tenant_id}/users/{user_id}/authorizations",
    summary="A user's grants on this account and below",
)
async def get_user_grants(user_id: UUID, scope: ReadUsers, work: Work) -> UserGrants:
    return UserGrants.of(await authorizations.of_user(work, scope, user_id))


@router.put(
    "/{tenant_id}/users/{user_id}/authorizations",
    summary="Set a user's grants on this account and below (same role on many, or one each)",
    responses=CHANGE_PROBLEMS,
)
async def put_user_grants(
    user_id: UUID, body: UserGrantsBody, scope: WriteAuthorizations, work: Work
) -> UserGrants:
    found = await authorizations.set_for_user(work, scope, user_id, body.wanted(user_id))
    return UserGrants.of(found)
