"""The caller: who they are, and every account they can reach with what they may do there."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import Request
from pydantic import BaseModel, Field

from access_api.dependencies import Access, CurrentCaller, Now, Users
from access_api.domain import access
from access_api.domain import errors as e
from access_api.domain.audit import ActorKind
from access_api.domain.tenants import TenantKind, TenantStatus
from access_api.domain.users import TwoFactor, User
from access_api.routers.common import AUTHENTICATED_PROBLEMS, api_router

router = api_router(prefix="/v1/me", tags=["me"], responses=AUTHENTICATED_PROBLEMS)


class Credential(BaseModel):
    kind: ActorKind
    id: UUID
    expires_at: datetime | None


class ReachableTenant(BaseModel):
    id: UUID
    kind: TenantKind
    parent_id: UUID | None
    root_id: UUID
    name: str
    domain_prefix: str
    status: TenantStatus = Field(
        description="disabled when the account or one above it is disabled"
    )
    roles: list[str] = Field(description="Roles that apply here, granted here or inherited")
    permissions: list[str]


class UserOut(BaseModel):
    id: UUID
    email: str
    first_name: str
    last_name: str
    phone: str | None
    session_timeout_minutes: int
    two_factor: TwoFactor
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            first_name=user.first_name,
            last_name=user.last_name,
            phone=user.phone,
            session_timeout_minutes=user.session_timeout_minutes,
            two_factor=user.two_factor,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


class Me(UserOut):
    credential: Credential
    tenants: list[ReachableTenant]


@router.get("", summary="Who am I, and where can I act?")
async def get_me(
    caller: CurrentCaller, request: Request, users: Users, grants: Access, now: Now
) -> Me:
    user = await users.get(caller.user_id)
    if user is None:
        raise e.Unauthenticated()
    reachable = []
    for tenant, disabled, held, roles in await grants.reachable(caller.user_id, caller.root_id):
        standing = access.standing(held, roles, now, caller.permission_limit)
        if not standing.reached:
            continue
        reachable.append(
            ReachableTenant(
                id=tenant.id,
                kind=tenant.kind,
                parent_id=tenant.parent_id,
                root_id=tenant.root_id,
                name=tenant.name,
                domain_prefix=tenant.domain_prefix,
                status=TenantStatus.DISABLED if disabled else tenant.status,
                roles=sorted(standing.roles),
                permissions=sorted(standing.permissions),
            )
        )
    return Me(
        **UserOut.of(user).model_dump(),
        credential=Credential(
            kind=caller.credential,
            id=caller.credential_id,
            expires_at=getattr(request.state, "credential_expires_at", None)
            or getattr(request.state, "session_expires_at", None),
        ),
        tenants=reachable,
    )
