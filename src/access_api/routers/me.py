"""The caller: who they are, and every account they can reach with what they may do there."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import status
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from access_api.auth.credentials import Authenticated
from access_api.dependencies import Authentication, CurrentCaller, Work
from access_api.domain import errors as e
from access_api.domain import users
from access_api.domain.audit import ActorKind
from access_api.domain.tenants import TenantKind, TenantStatus
from access_api.errors import problem_responses
from access_api.routers.common import AUTHENTICATED_PROBLEMS, Body, Phone, UserOut, api_router
from access_api.use_cases import me
from access_api.use_cases.me import Profile, Reachable

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
    blocked_by: list[str] = Field(
        description="What this account's security policy refuses you now "
        "(two_factor_required, ip_not_allowed); empty when nothing"
    )

    @classmethod
    def of(cls, reachable: Reachable) -> ReachableTenant:
        tenant = reachable.tenant
        return cls(
            id=tenant.id,
            kind=tenant.kind,
            parent_id=tenant.parent_id,
            root_id=tenant.root_id,
            name=tenant.name,
            domain_prefix=tenant.domain_prefix,
            status=reachable.status,
            roles=reachable.roles,
            permissions=reachable.permissions,
            blocked_by=reachable.blocked_by,
        )


class Me(UserOut):
    credential: Credential
    tenants: list[ReachableTenant]
    recovery_codes_left: int = Field(description="Unused TOTP recovery codes")

    @classmethod
    def of_profile(cls, profile: Profile, found: Authenticated) -> Me:
        caller = found.caller
        return cls(
            **UserOut.of(profile.user).model_dump(),
            credential=Credential(
                kind=caller.credential, id=caller.credential_id, expires_at=found.expires_at
            ),
            tenants=[ReachableTenant.of(reachable) for reachable in profile.tenants],
            recovery_codes_left=profile.recovery_codes_left,
        )


@router.get("", summary="Who am I, and where can I act?")
async def get_me(found: Authentication, work: Work) -> Me:
    return Me.of_profile(await me.who_am_i(work, found.caller), found)


Name = Annotated[str, Field(min_length=1, max_length=users.NAME_MAX_LENGTH)]


class MePatch(Body):
    # Names can be changed, not cleared: null is not advertised (and is refused, 422).
    first_name: Name | SkipJsonSchema[None] = None
    last_name: Name | SkipJsonSchema[None] = None
    phone: Phone | None = Field(default=None, max_length=users.PHONE_MAX_LENGTH)
    # Fixed for life: only the current value is accepted (422 email_immutable otherwise), so
    # it is accepted but not advertised: no client should send it.
    email: SkipJsonSchema[str | None] = None


class PasswordChange(Body):
    current_password: str = Field(min_length=1, max_length=users.PASSWORD_MAX_LENGTH)
    new_password: str = Field(min_length=1, max_length=users.PASSWORD_MAX_LENGTH)


@router.patch(
    "",
    summary="Edit my profile",
    responses=problem_responses(e.EmailImmutable),
)
async def patch_me(body: MePatch, caller: CurrentCaller, work: Work) -> UserOut:
    return UserOut.of(await me.update_profile(work, caller, body.model_dump(exclude_unset=True)))


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password; my other sessions end",
    responses=problem_responses(e.ValidationFailed),
)
async def change_password(body: PasswordChange, caller: CurrentCaller, work: Work) -> None:
    await me.change_password(work, caller, body.current_password, body.new_password)
