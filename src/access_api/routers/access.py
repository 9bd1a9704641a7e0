"""Access explained: GET …/users/{u}/access."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from access_api.dependencies import Work, requires
from access_api.domain.access import Scope
from access_api.domain.explained import PermissionExplained, Source, TenantExplained
from access_api.domain.permissions import Permission
from access_api.routers.common import SCOPED_PROBLEMS, api_router
from access_api.use_cases import access
from access_api.use_cases.access import AccessExplained

router = api_router(prefix="/v1/tenants", tags=["users"], responses=SCOPED_PROBLEMS)

ReadUsers = Annotated[Scope, requires(Permission.USERS_READ)]


class SourceOut(BaseModel):
    tenant_id: UUID = Field(description="The tenant the grant was made on")
    role: str
    via: Literal["direct", "inherited"] = Field(
        description="direct: granted on this tenant; inherited: an include_descendants grant "
        "on a tenant above"
    )
    expires_at: datetime | None

    @classmethod
    def of(cls, source: Source) -> SourceOut:
        return cls(
            tenant_id=source.tenant_id,
            role=source.role,
            via="inherited" if source.inherited else "direct",
            expires_at=source.expires_at,
        )


class PermissionOut(BaseModel):
    permission: str
    granted_by: list[SourceOut]
    blocked_by: str | None = Field(
        description="The refusal code of the policy that blocks this permission now "
        "(tenant_disabled, two_factor_required, ip_not_allowed), or null"
    )

    @classmethod
    def of(cls, explained: PermissionExplained) -> PermissionOut:
        return cls(
            permission=explained.permission,
            granted_by=[SourceOut.of(s) for s in explained.sources],
            blocked_by=explained.blocked_by,
        )


class TenantAccessOut(BaseModel):
    tenant_id: UUID
    name: str
    kind: str
    blocked_by: str | None
    permissions: list[PermissionOut]

    @classmethod
    def of(cls, explained: TenantExplained) -> TenantAccessOut:
        return cls(
            tenant_id=explained.tenant.id,
            name=explained.tenant.name,
            kind=explained.tenant.kind,
            blocked_by=explained.blocked_by,
            permissions=[PermissionOut.of(p) for p in explained.permissions],
        )


class AccessOut(BaseModel):
    user_id: UUID
    email: str
    tenants: list[TenantAccessOut]

    @classmethod
    def of(cls, explained: AccessExplained) -> AccessOut:
        return cls(
            user_id=explained.user.id,
            email=explained.user.email,
            tenants=[TenantAccessOut.of(t) for t in explained.tenants],
        )


@router.get(
    "/{tenant_id}/users/{user_id}/access",
    summary="Why this user can do what they can: permission by permission, grant by grant",
)
async def explain_access(user_id: UUID, scope: ReadUsers, work: Work) -> AccessOut:
    return AccessOut.of(await access.explain(work, scope, user_id))
