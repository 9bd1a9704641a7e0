"""The caller: who they are, and every account they can reach with what they may do there."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import status
from pydantic import BaseModel, Field

from access_api.dependencies import (
    Access,
    Audit,
    Authentication,
    CurrentCaller,
    Now,
    Sessions,
    State,
    Users,
)
from access_api.domain import access, users
from access_api.domain import errors as e
from access_api.domain.audit import ActorKind
from access_api.domain.errors import FieldError, ValidationFailed
from access_api.domain.tenants import TenantKind, TenantStatus
from access_api.errors import problem_responses
from access_api.routers.common import AUTHENTICATED_PROBLEMS, Body, Phone, api_router
from access_api.routers.users import UserOut

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


class Me(UserOut):
    credential: Credential
    tenants: list[ReachableTenant]


@router.get("", summary="Who am I, and where can I act?")
async def get_me(found: Authentication, users: Users, grants: Access, now: Now) -> Me:
    caller = found.caller
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
            expires_at=found.expires_at,
        ),
        tenants=reachable,
    )


class MePatch(Body):
    first_name: str | None = Field(default=None, min_length=1, max_length=users.NAME_MAX_LENGTH)
    last_name: str | None = Field(default=None, min_length=1, max_length=users.NAME_MAX_LENGTH)
    phone: Phone | None = Field(default=None, max_length=users.PHONE_MAX_LENGTH)
    email: str | None = Field(
        default=None, description="Fixed for life: only the current value is accepted"
    )


class PasswordChange(Body):
    current_password: str = Field(min_length=1, max_length=users.PASSWORD_MAX_LENGTH)
    new_password: str = Field(min_length=1, max_length=users.PASSWORD_MAX_LENGTH)


@router.patch(
    "",
    summary="Edit my profile",
    responses=problem_responses(e.EmailImmutable),
)
async def patch_me(
    body: MePatch, caller: CurrentCaller, repo: Users, audit: Audit, now: Now
) -> UserOut:
    current = await repo.lock(caller.user_id)
    if current is None:
        raise e.Unauthenticated()
    updated, changes = users.update_profile(current, body.model_dump(exclude_unset=True), now)
    if changes:
        await repo.update_profile(updated)
        await audit.record(
            caller.actor,
            "user.updated",
            tenant=None,
            target_type="user",
            target_id=caller.user_id,
            changes=changes,
        )
    return UserOut.of(updated)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change my password; my other sessions end",
    responses=problem_responses(e.ValidationFailed),
)
async def change_password(
    body: PasswordChange,
    caller: CurrentCaller,
    state: State,
    repo: Users,
    sessions: Sessions,
    audit: Audit,
    now: Now,
) -> None:
    user = await repo.lock(caller.user_id)
    stored = await repo.password_hash(caller.user_id)
    if user is None or not await state.passwords.verify(body.current_password, stored):
        raise ValidationFailed(
            [FieldError("current_password", "incorrect", "this is not your current password")]
        )
    users.check_password(body.new_password, email=user.email, field="new_password")
    if body.new_password == body.current_password:
        raise ValidationFailed(
            [FieldError("new_password", "unchanged", "choose a password you do not use now")]
        )
    await repo.set_password_hash(user.id, await state.passwords.hash(body.new_password), now)
    keep = caller.credential_id if caller.credential is ActorKind.SESSION else None
    await sessions.end_all(user.id, now, keep=keep)
    await audit.record(
        caller.actor,
        "user.password_changed",
        tenant=None,
        target_type="user",
        target_id=user.id,
    )
